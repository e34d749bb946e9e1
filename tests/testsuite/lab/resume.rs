//! Resuming a kept lab: `tutor run --keep` leaves the lab up and names it; `tutor run --env NAME`
//! goes on in it (no fresh lab, no teardown), a node's shell with the state it had; `tutor lab
//! exec` and `tutor shell` start with that state too.

use crate::lab::support::{fixtures, tutor};

crate::tests![a_kept_lab_goes_on_with_its_nodes_shell_state(Lab, K8s)];

fn a_kept_lab_goes_on_with_its_nodes_shell_state() {
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("TUTOR_BIN", crate::lab::support::TUTOR) };
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("r.json");
    let rec = rec.to_str().unwrap();
    let t = fixtures().join("resume.md");
    let t = t.to_str().unwrap();
    // On a fresh lab, step 3 has no kind-worker (step 1 creates the cluster): the reason says
    // which steps did not run and how to run them.
    let fresh = tutor(&["run", t, "--from", "3", "--no-pending", "--record", rec], tmp.path());
    assert_eq!(fresh.code, 1, "{}", fresh.stdout);
    assert!(
        fresh.stdout.contains("no node `kind-worker` in lab ")
            && fresh.stdout.contains("(steps 1-2 did not run on this fresh environment: `--step 3` runs the steps before it first, `--env NAME` goes on in an environment that `--keep` left)"),
        "{}",
        fresh.stdout
    );
    let out = tutor(&["run", t, "--keep", "--to", "2", "--record", rec], tmp.path()).ok();
    let kept = out.lines().find(|l| l.starts_with("kept environment ")).unwrap_or_else(|| panic!("{out}"));
    let name = kept["kept environment ".len()..].split(' ').next().unwrap().to_string();
    assert!(kept.contains("(lab backend"), "{out}");
    assert!(out.contains(&format!("go on with: tutor run --env {name} --from 3 ")), "{out}");
    // Step 3 on kind-worker needs the variable and directory step 2 left in that node's shell.
    let resumed = tutor(&["run", "--env", &name, "--record", rec], tmp.path());
    // `tutor lab exec` from any folder (the lab knows its kept run), and `tutor shell` with the
    // run record: the node's variables (exported or not), function and working directory.
    let script = "echo \"$GREETING $PLAIN\"; where; pwd";
    let exec = tutor(&["lab", "exec", &name, "kind-worker", "--", script], std::path::Path::new("/"));
    let shell = tutor(&["shell", &name, "kind-worker", "--record", rec, "--", script], tmp.path());
    let fresh = tutor(&["lab", "exec", &name, "kind-control-plane", "--", "echo \"[$GREETING]\"; pwd"], tmp.path());
    let listed = tutor(&["lab", "list"], tmp.path()).stdout;
    let down = tutor(&["lab", "down", &name], tmp.path());
    let workdir = kept.split("work directory ").nth(1).unwrap().split("):").next().unwrap();
    let _ = std::fs::remove_dir_all(workdir);
    let out = resumed.ok();
    assert!(out.contains("3. Use it") && !out.contains("2. State on a node"), "{out}");
    assert!(out.contains("1 passed, 0 failed"), "{out}");
    assert!(listed.contains(&name), "the lab stays up after an --env run: {listed}");
    assert_eq!(exec.ok(), "hi there\non kind-worker\n/etc\n");
    assert_eq!(shell.ok(), "hi there\non kind-worker\n/etc\n");
    // A node no block ran on: no state, said on stderr.
    assert!(fresh.stderr.contains("no block of the kept run"), "{}", fresh.stderr);
    assert!(fresh.ok().starts_with("[]\n"));
    down.ok();
}
