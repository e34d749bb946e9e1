//! `tutor run` on fixture tutorials: verdicts, process hygiene, step selection, reports.

use crate::prelude::{Out, alive, fixture, read_pid, run_in, tutor};
use serde_json::Value;

crate::tests![
    every_feature_passes_and_leaves_no_process_behind,
    a_mismatch_exits_1_with_a_numbered_diff_and_stops_the_tutorial,
    keep_going_runs_the_rest_and_reports_wrong_exit_status,
    json_format_prints_one_record_per_block,
    junit_report_has_a_suite_per_tutorial_and_failures_with_the_diff,
    a_block_that_passed_after_retries_says_so_in_every_report,
    timeout_kills_the_whole_process_group,
    step_selection,
    a_backend_that_cannot_run_here_is_a_usage_error,
    the_run_record_defaults_to_target_tutor_last_run,
    daemons_of_a_host_run_end_with_it(Cgroup2)
];

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

fn every_feature_passes_and_leaves_no_process_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let record = tmp.path().join("record.json");
    let out = run_in(tmp.path(), &["run", s(&fixture("features.md")), "--workdir", s(&work), "--record", s(&record)]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("9 passed, 0 failed, 2 skipped"), "{out:?}");
    // The bg server was running during the tutorial (a later block checked) and is gone now.
    let server = read_pid(&work.join("server.pid"));
    assert!(!alive(server), "bg block {server} survived the run");
    // retry: the counter block needed three tries.
    assert_eq!(std::fs::read_to_string(work.join("counter")).unwrap().trim(), "3");
    // file= block rendered into the work directory.
    assert_eq!(std::fs::read_to_string(work.join("conf/app.yaml")).unwrap(), "name: hello\n");

    let rec: Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(rec["backend"], "host");
    assert!(rec["started_at"].as_str().unwrap().ends_with('Z'), "{}", rec["started_at"]);
    let t = &rec["tutorials"][0];
    assert_eq!((t["stem"].as_str(), t["status"].as_str()), (Some("features"), Some("passed")));
    assert_eq!(t["title"], "Every feature");
    let blocks: Vec<&Value> =
        t["steps"].as_array().unwrap().iter().flat_map(|s| s["blocks"].as_array().unwrap()).collect();
    let state = blocks.iter().find(|b| b["id"] == "notebook-state-2").unwrap();
    assert_eq!(state["output"], "$ echo \"$COLOR in ${PWD##*/}\"\nblue in sub\n$ cd ..\n");
    let skipped = blocks.iter().filter(|b| b["status"] == "skipped").count();
    assert_eq!(skipped, 2);
    let kind_only = blocks.iter().find(|b| b["reason"] == "only runs on the kind backend");
    assert!(kind_only.is_some());
}

fn a_mismatch_exits_1_with_a_numbered_diff_and_stops_the_tutorial() {
    let tmp = tempfile::tempdir().unwrap();
    let record = tmp.path().join("r.json");
    let out = run_in(tmp.path(), &["run", s(&fixture("mismatch.md")), "--record", s(&record)]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("✗ wrong  output does not match"), "{out:?}");
    assert!(out.stdout.contains("--- expected ("), "{out:?}");
    assert!(out.stdout.contains("mismatch.md:10)"), "{out:?}");
    // Diff lines are numbered as the tutorial file's lines.
    assert!(out.stdout.contains("  12      │-2\n"), "{out:?}");
    assert!(out.stdout.contains("       12 │+two\n"), "{out:?}");
    assert!(out.stdout.contains("- after  an earlier block failed"), "{out:?}");
    assert!(out.stdout.contains("0 passed, 1 failed, 2 skipped"), "{out:?}");
}

fn keep_going_runs_the_rest_and_reports_wrong_exit_status() {
    let tmp = tempfile::tempdir().unwrap();
    let record = tmp.path().join("r.json");
    let out = run_in(tmp.path(), &["run", "--keep-going", s(&fixture("mismatch.md")), "--record", s(&record)]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("✓ after"), "{out:?}");
    assert!(out.stdout.contains("`false` (line 24) exited with status 1, expected 0"), "{out:?}");
    assert!(out.stdout.contains("1 passed, 2 failed, 0 skipped"), "{out:?}");
}

fn json_format_prints_one_record_per_block() {
    let tmp = tempfile::tempdir().unwrap();
    let record = tmp.path().join("r.json");
    let out = run_in(
        tmp.path(),
        &["run", "--format", "json", "--keep-going", s(&fixture("mismatch.md")), "--record", s(&record)],
    );
    assert_eq!(out.code, 1, "{out:?}");
    let lines: Vec<Value> = out.stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 4, "three blocks and the summary: {out:?}");
    let wrong = &lines[0];
    for key in [
        "type",
        "tutorial",
        "step",
        "id",
        "line",
        "target",
        "status",
        "duration_ms",
        "tries",
        "expected",
        "actual",
        "diff",
        "reason",
    ] {
        assert!(wrong.get(key).is_some(), "missing {key} in {wrong}");
    }
    assert_eq!((wrong["id"].as_str(), wrong["status"].as_str()), (Some("wrong"), Some("failed")));
    assert_eq!((wrong["step"].as_u64(), wrong["line"].as_u64()), (Some(1), Some(9)));
    assert_eq!(wrong["target"], "host");
    assert!(wrong["diff"].as_str().unwrap().contains("+two"), "{wrong}");
    assert!(wrong["expected"].as_str().unwrap().contains("\n2\n"), "{wrong}");
    assert!(wrong["actual"].as_str().unwrap().contains("\ntwo\n"), "{wrong}");
    assert_eq!(wrong["tries"], 1);
    assert_eq!(lines[1]["status"], "passed");
    assert_eq!(lines[1]["diff"], Value::Null);
    assert_eq!(lines[2]["status"], "failed");
    // The closing line goes to stderr so stdout stays machine-readable.
    assert!(out.stderr.contains("1 passed, 2 failed, 0 skipped"), "{out:?}");
}

fn junit_report_has_a_suite_per_tutorial_and_failures_with_the_diff() {
    use quick_xml::Reader;
    use quick_xml::events::Event;
    let tmp = tempfile::tempdir().unwrap();
    let junit = tmp.path().join("out/junit.xml");
    let record = tmp.path().join("r.json");
    let out = run_in(
        tmp.path(),
        &[
            "run",
            "--keep-going",
            s(&fixture("mismatch.md")),
            s(&fixture("timeout.md")),
            "--junit",
            s(&junit),
            "--record",
            s(&record),
            "--jobs",
            "2",
            "--workdir",
            s(&tmp.path().join("w")),
        ],
    );
    assert_eq!(out.code, 1, "{out:?}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let mut reader = Reader::from_str(&xml);
    let (mut suites, mut cases, mut failures, mut errors) = (0, 0, 0, 0);
    let mut failure_text = String::new();
    let mut in_failure = false;
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testsuite" => suites += 1,
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testcase" => cases += 1,
            Event::Start(e) if e.name().as_ref() == b"failure" => {
                failures += 1;
                in_failure = true;
            }
            Event::Empty(e) if e.name().as_ref() == b"failure" => failures += 1,
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"error" => errors += 1,
            Event::Text(t) if in_failure => failure_text.push_str(&t.decode().unwrap()),
            Event::End(e) if e.name().as_ref() == b"failure" => in_failure = false,
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!((suites, cases, failures, errors), (2, 4, 2, 1), "{xml}");
    assert!(failure_text.contains("+two"), "{xml}");
    // Parallel tutorials: lines carry the tutorial's name.
    assert!(out.stdout.contains("[timeout]"), "{out:?}");
}

fn timeout_kills_the_whole_process_group() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("w");
    let record = tmp.path().join("r.json");
    let started = std::time::Instant::now();
    let out = run_in(tmp.path(), &["run", s(&fixture("timeout.md")), "--workdir", s(&work), "--record", s(&record)]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(out.stdout.contains("! hang  timed out after 500ms"), "{out:?}");
    let pid = read_pid(&work.join("sleeper.pid"));
    assert!(!alive(pid), "`sleep 1000 &` ({pid}) survived the timeout");
    let rec: Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(rec["tutorials"][0]["steps"][0]["blocks"][0]["status"], "error");
}

fn step_selection() {
    let tmp = tempfile::tempdir().unwrap();
    let record = tmp.path().join("r.json");
    let f = fixture("features.md");
    let out = run_in(tmp.path(), &["run", s(&f), "--step", "2", "--record", s(&record)]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("2. Matcher") && !out.stdout.contains("1. Notebook state"), "{out:?}");
    assert!(out.stdout.contains("1 passed, 0 failed, 0 skipped"), "{out:?}");

    let out = run_in(tmp.path(), &["run", s(&f), "--from", "2", "--to", "3", "--record", s(&record)]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("2 passed, 0 failed, 0 skipped"), "{out:?}");

    let out = run_in(tmp.path(), &["run", s(&f), "--step", "9", "--record", s(&record)]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("features.md: step 9 does not exist: the tutorial has 4 step(s)"), "{out:?}");
}

fn a_backend_that_cannot_run_here_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let record = tmp.path().join("r.json");
    // A Docker engine that does not answer (this machine's CI runs a real one, which tutor
    // never starts for a DOCKER_HOST of the user's).
    let o = tutor()
        .args(["run", "--backend", "kind", s(&fixture("mismatch.md")), "--record", s(&record)])
        .current_dir(tmp.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let out = Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("kind") || out.stderr.contains("Docker"), "{out:?}");
    let out = run_in(tmp.path(), &["run", "--backend", "docker", s(&fixture("mismatch.md"))]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("unknown backend `docker`"), "{out:?}");
}

fn the_run_record_defaults_to_target_tutor_last_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_in(tmp.path(), &["run", s(&fixture("mismatch.md"))]);
    assert_eq!(out.code, 1, "{out:?}");
    let rec: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("target/tutor/last-run.json")).unwrap()).unwrap();
    let block = &rec["tutorials"][0]["steps"][0]["blocks"][0];
    assert_eq!(block["id"], "wrong");
    assert_eq!(block["reason"], "output does not match");
    assert!(block["diff"].as_str().unwrap().contains("-2"), "{block}");
    assert_eq!(block["output"], "$ printf 'one\\ntwo\\nthree\\n'\none\ntwo\nthree\n");
}

fn a_block_that_passed_after_retries_says_so_in_every_report() {
    let tmp = tempfile::tempdir().unwrap();
    let record = tmp.path().join("r.json");
    let junit = tmp.path().join("junit.xml");
    let says = |text: &str| {
        let at = text.find("passed after 3 tries, ").unwrap_or_else(|| panic!("no retry note in {text}"));
        assert!(text[at..].contains(" s"), "{text}");
    };
    // Human: the block's line, and JUnit from the same run.
    let w = tmp.path().join("w1");
    let out = run_in(
        tmp.path(),
        &["run", s(&fixture("features.md")), "--workdir", s(&w), "--record", s(&record), "--junit", s(&junit)],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let line = out.stdout.lines().find(|l| l.contains("✓ converge")).unwrap_or_else(|| panic!("{out:?}"));
    says(line);
    let xml = std::fs::read_to_string(&junit).unwrap();
    let case = &xml[xml.find("name=\"converge\"").unwrap_or_else(|| panic!("{xml}"))..];
    let case = &case[..case.find("</testcase>").unwrap_or(case.len())];
    assert!(case.contains("name=\"tries\" value=\"3\""), "{case}");
    says(case);
    // JSON.
    let w = tmp.path().join("w2");
    let out = run_in(
        tmp.path(),
        &["run", s(&fixture("features.md")), "--workdir", s(&w), "--record", s(&record), "--format", "json"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let converge = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["id"] == "converge")
        .unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(converge["tries"], 3, "{converge}");
    assert_eq!(converge["status"], "passed", "{converge}");
    says(converge["reason"].as_str().unwrap_or_default());
}

/// A `setsid -f` daemon of a host-backend block leaves the run's process groups but not the
/// run's cgroup: it keeps running until the tutorial ends, then it is killed with the cgroup.
fn daemons_of_a_host_run_end_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("w");
    let md = tmp.path().join("daemon.md");
    std::fs::write(
        &md,
        "---\nbackend: host\n---\n# Daemon\n\n## Start\n\n```console\n\
         $ setsid -f sh -c 'echo $$ > daemon.pid; exec sleep 3041' && echo started\nstarted\n\
         $ grep -o 'tutor/runs/.*' /proc/self/cgroup > cgroup.txt\n```\n\n## Still there\n\n\
         ```console\n$ sleep 0.2; kill -0 $(cat daemon.pid) && echo alive\nalive\n```\n",
    )
    .unwrap();
    let out = run_in(tmp.path(), &["run", s(&md), "--workdir", s(&work), "--record", s(&tmp.path().join("r.json"))]);
    assert_eq!(out.code, 0, "{out:?}");
    let pid = read_pid(&work.join("daemon.pid"));
    assert!(!alive(pid), "the daemon {pid} outlived the run");
    let rel = std::fs::read_to_string(work.join("cgroup.txt")).unwrap();
    let base = tutor::backend::cgroup::base().unwrap();
    let cg = base.parent().unwrap().join(rel.trim());
    assert!(rel.starts_with("tutor/runs/") && !cg.exists(), "{rel}: the run's cgroup is left");
}
