#!/usr/bin/env python3
"""Soak of the lab (issue 17): N runs of a lab tutorial in a row, some killed at a random moment
(SIGKILL, SIGINT or SIGHUP), then what the runs left behind is counted (goal: 0) and the peak
memory of tutor and of the lab is reported.

Run as root, niced (the machine is shared):
    nice -n 10 python3 tests/bench/lab_soak.py [--runs 50] [--tutor target/debug/tutor] [--seed S]

Bounded: every run is SIGKILLed after --run-timeout seconds and the soak stops after
--budget seconds whatever happened. Traffic stays in the labs' namespaces (the tutorial's own).

Only what these runs made is counted, never another user's labs: a run's lab is the one whose
supervisor was started with `--owner <the run's pid>` (seen while the run goes), its processes
are those in its cgroup or carrying this soak's environment marker, its work directories live
in a temporary directory of this soak's (TMPDIR), its records in /run/tutor/runs are named
after the run's pid. After each run (its supervisor given up to 15 s to finish): leftovers of
that run; after the last one: everything every run left that the later runs did not clean,
then again after `tutor lab gc`. BPF programs, maps and root-namespace links are counted
machine-wide (before and after), so another user's lab changing them meanwhile shows as a
difference too.
"""

import argparse
import ctypes
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LABS = "/run/tutor/labs"
RUNS = "/run/tutor/runs"
MARK = "TUTOR_SOAK"


def cgroup2_root():
    for line in open("/proc/self/mountinfo"):
        f = line.split()
        sep = f.index("-")
        if f[sep + 1] == "cgroup2":
            return f[4]
    return "/run/tutor/cgroup2"


CG = os.path.join(cgroup2_root(), "tutor", "labs")


def read(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def cmdline(pid):
    raw = read(f"/proc/{pid}/cmdline", "rb")
    return raw.split(b"\0")[:-1] if raw else []


def supervisors_of(owner):
    """Lab names of the supervisors started for run `owner` (`lab supervise --name N --owner P`)."""
    names = {}
    for pid in pids():
        a = cmdline(pid)
        if b"supervise" in a and b"--owner" in a:
            try:
                if int(a[a.index(b"--owner") + 1]) == owner:
                    names[a[a.index(b"--name") + 1].decode()] = pid
            except (ValueError, IndexError):
                pass
    return names


def marked(token):
    me = os.getpid()
    out = []
    for pid in pids():
        env = read(f"/proc/{pid}/environ", "rb")
        if pid != me and env and f"{MARK}={token}".encode() in env.split(b"\0"):
            out.append(pid)
    return out


def cgroup_procs(name):
    text = read(os.path.join(CG, name, "cgroup.procs")) or ""
    return [int(p) for p in text.split()]


def pss_kb(pid):
    """Proportional set size: shared pages (the tutor binary of many processes) counted once."""
    for line in (read(f"/proc/{pid}/smaps_rollup") or "").splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def hwm_kb(pid):
    for line in (read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def netns_holders(inodes, labs):
    """Tasks still in one of these network namespaces, but for those of another user's lab: a
    namespace inode number is reused once its namespace is gone, so a task in a live lab that is
    not one of these runs' holds a new namespace, not a leftover."""
    held = []
    for task in glob.glob("/proc/[0-9]*/task/[0-9]*/ns/net"):
        try:
            if os.stat(task).st_ino not in inodes:
                continue
        except OSError:
            continue
        pid = task.split("/")[2]
        cgroup = (read(f"/proc/{pid}/cgroup") or "").strip().split("::")[-1]
        lab = cgroup.split("/tutor/labs/")[1].split("/")[0] if "/tutor/labs/" in cgroup else None
        if lab is not None and lab not in labs:
            continue
        # Another lab's supervisor tearing down has left its cgroup already.
        argv = cmdline(int(pid))
        if b"supervise" in argv and b"--name" in argv and argv[argv.index(b"--name") + 1].decode() not in labs:
            continue
        held.append(f"{task} {b' '.join(argv).decode(errors='replace')[:80]}")
    return held


def bpf_ids(cmd):
    """Every BPF program (cmd 11) or map (12) id of the machine, through bpf(2)."""
    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint32 * 32)()
    ids, start = [], 0
    while True:
        attr[0], attr[1] = start, 0
        if libc.syscall(321, cmd, ctypes.byref(attr), ctypes.sizeof(attr)) != 0:
            return ids
        start = attr[1]
        ids.append(start)


def machine():
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    mounts = [l for l in open("/proc/self/mountinfo") if "tutor" in l]
    return {
        "bpf_progs": len(bpf_ids(11)),
        "bpf_maps": len(bpf_ids(12)),
        "root_links": len(links.splitlines()),
        "netns": len(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else 0,
        "bpffs_pins": len(os.listdir("/sys/fs/bpf")) if os.path.isdir("/sys/fs/bpf") else 0,
        "tutor_mounts": len(mounts),
    }


def leftovers(state, token, tmpdir):
    """What the runs so far left: names of labs, per kind of leftover."""
    labs = state["labs"]
    out = {
        "processes": sorted(set(marked(token)) | {p for n in labs for p in cgroup_procs(n)}),
        "supervisors": [n for n, pid in labs.items() if n.encode() in cmdline(pid) and b"supervise" in cmdline(pid)],
        "registry": [n for n in labs if os.path.exists(os.path.join(LABS, n))],
        "cgroups": [n for n in labs if os.path.isdir(os.path.join(CG, n))],
        "netns_held": netns_holders(state["inodes"], labs),
        "workdirs": os.listdir(tmpdir),
        "records": [r for r in (os.listdir(RUNS) if os.path.isdir(RUNS) else [])
                    if r.split("-")[0].isdigit() and int(r.split("-")[0]) in state["runs"]],
    }
    return out


def one_run(args, rng, state, token, env, i):
    kill = None
    if rng.random() < args.kill_share:
        kill = (rng.choice([signal.SIGKILL, signal.SIGINT, signal.SIGHUP]), rng.uniform(0.2, args.kill_window))
    log = open(os.path.join(args.logs, f"run-{i:02}.log"), "w")
    t0 = time.monotonic()
    p = subprocess.Popen([args.tutor, "run", args.tutorial], cwd=REPO, env=env, stdout=log, stderr=log,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    state["runs"].add(p.pid)
    sent = None
    peak_lab = peak_run = 0
    tick = 0
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        elapsed = time.monotonic() - t0
        tick += 1
        peak_run = max(peak_run, hwm_kb(p.pid))
        for name, sup in supervisors_of(p.pid).items():
            state["labs"][name] = sup
            state["sup_hwm"] = max(state["sup_hwm"], hwm_kb(sup))
            info = read(os.path.join(LABS, name, "lab.json"))
            if info:
                try:
                    state["inodes"].update(json.loads(info).get("netns_inodes", []))
                except ValueError:
                    pass
            if tick % 5 == 0:
                peak_lab = max(peak_lab, sum(pss_kb(q) for q in cgroup_procs(name)))
        if kill and not sent and elapsed >= kill[1]:
            os.kill(p.pid, kill[0])
            sent = kill
        if elapsed > args.run_timeout:
            os.kill(p.pid, signal.SIGKILL)
            sent = sent or (signal.SIGKILL, elapsed)
        time.sleep(0.1)
    log.close()
    secs = time.monotonic() - t0
    code = os.waitstatus_to_exitcode(status)
    # The supervisor tears its lab down once its owner is gone.
    deadline = time.monotonic() + 15
    mine = [n for n in state["labs"] if state["labs"][n] and os.path.exists(f"/proc/{state['labs'][n]}")]
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{state['labs'][n]}") for n in mine):
        time.sleep(0.1)
    state["peak_lab"] = max(state["peak_lab"], peak_lab)
    state["tutor_hwm"] = max(state["tutor_hwm"], peak_run)
    state["tutor_tree_maxrss"] = max(state["tutor_tree_maxrss"], usage.ru_maxrss)
    return {"run": i, "signal": sent[0].name if sent else None, "at": round(sent[1], 1) if sent else None,
            "code": code, "secs": round(secs, 1), "tutor_hwm_kb": peak_run, "lab_pss_kb": peak_lab}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--tutor", default=os.path.join(REPO, "target/debug/tutor"))
    ap.add_argument("--tutorial", default="tutorials/native-routing.md")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--kill-share", type=float, default=0.5, help="share of runs killed")
    ap.add_argument("--kill-window", type=float, default=30.0, help="kills land in the first N seconds")
    ap.add_argument("--run-timeout", type=float, default=240.0)
    ap.add_argument("--budget", type=float, default=3600.0, help="the whole soak, seconds")
    ap.add_argument("--logs", default=None)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("lab_soak: skipped (needs root)")
        return 0
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)
    token = f"{os.getpid()}-{seed}"
    tmpdir = tempfile.mkdtemp(prefix="tutor-soak-", dir="/tmp")
    args.logs = args.logs or tempfile.mkdtemp(prefix="tutor-soak-logs-", dir="/var/tmp")
    os.makedirs(args.logs, exist_ok=True)
    env = dict(os.environ, TMPDIR=tmpdir, **{MARK: token})
    env.pop("TUTOR_LAB_ROOT", None)
    env.pop("TUTOR_RUN_ROOT", None)
    before = machine()
    state = {"labs": {}, "inodes": set(), "runs": set(), "sup_hwm": 0, "peak_lab": 0, "tutor_hwm": 0,
             "tutor_tree_maxrss": 0}
    print(f"seed {seed}; logs {args.logs}; tutor {args.tutor}", flush=True)
    t0 = time.monotonic()
    rows, dirty = [], []
    for i in range(args.runs):
        if time.monotonic() - t0 > args.budget:
            print(f"budget of {args.budget:.0f} s spent after {i} runs", flush=True)
            break
        row = one_run(args, rng, state, token, env, i)
        left = {k: v for k, v in leftovers(state, token, tmpdir).items() if v}
        row["left"] = {k: len(v) for k, v in left.items()}
        rows.append(row)
        if left:
            dirty.append((i, left))
        print(json.dumps(row), flush=True)
    final = leftovers(state, token, tmpdir)
    subprocess.run([args.tutor, "lab", "gc"], env=env, capture_output=True)
    after_gc = leftovers(state, token, tmpdir)
    after = machine()
    codes = {}
    for r in rows:
        key = f"{r['signal'] or 'none'}->{r['code']}"
        codes[key] = codes.get(key, 0) + 1
    summary = {
        "runs": len(rows),
        "seed": seed,
        "outcomes": codes,
        "labs_seen": len(state["labs"]),
        "runs_with_leftovers_right_after": len(dirty),
        "left_after_last_run": {k: len(v) for k, v in final.items()},
        "left_after_gc": {k: len(v) for k, v in after_gc.items()},
        "machine_before": before,
        "machine_after": after,
        # VmHWM of the `tutor run` process itself (sampled, 0.1 s), and ru_maxrss of its tree
        # (the largest of it and the children it waited for: shells, nsenter, shims).
        "peak_tutor_run_rss_kb": state["tutor_hwm"],
        "peak_tutor_run_tree_maxrss_kb": state["tutor_tree_maxrss"],
        # VmHWM of the lab's supervisor, and the largest sum of PSS over the lab's cgroup
        # (supervisor, kernels, shims, daemons; sampled every 0.5 s).
        "peak_supervisor_rss_kb": state["sup_hwm"],
        "peak_lab_cgroup_pss_kb": state["peak_lab"],
        "wall_s": round(time.monotonic() - t0),
    }
    print(json.dumps(summary, indent=1), flush=True)
    for i, left in dirty:
        print(f"run {i} left: {left}", flush=True)
    print(f"after gc: {after_gc}", flush=True)
    if not any(after_gc.values()):
        shutil.rmtree(tmpdir, ignore_errors=True)
    return 1 if any(after_gc.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
