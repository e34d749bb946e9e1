//! The runner as a notebook kernel, end to end through `tutor run` on the host backend: cram's and
//! scrut's expectation rules (fixtures written from their documentation), one shell per target,
//! daemons, big commands, retry rules, a closed stdout.

use crate::prelude::{fixture, run_in};
use serde_json::Value;

crate::tests![
    every_cram_and_scrut_rule_passes,
    every_failing_counterpart_fails_for_its_reason,
    a_200_kb_command_goes_through_stdin,
    a_closed_stdout_ends_tutor_quietly
];

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

fn json_blocks(stdout: &str) -> Vec<Value> {
    stdout.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|v| v.get("id").is_some()).collect()
}

fn every_cram_and_scrut_rule_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let record = tmp.path().join("r.json");
    let start = std::time::Instant::now();
    let out = run_in(tmp.path(), &["run", s(&fixture("cram.md")), "--record", s(&record)]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("0 failed"), "{out:?}");
    // The daemon block does not wait for the daemon to close the output pipe.
    assert!(start.elapsed() < std::time::Duration::from_secs(15), "{:?}", start.elapsed());
}

fn every_failing_counterpart_fails_for_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let record = tmp.path().join("r.json");
    let out = run_in(
        tmp.path(),
        &["run", s(&fixture("cram_fail.md")), "--keep-going", "--format", "json", "--record", s(&record)],
    );
    assert_eq!(out.code, 1, "{out:?}");
    let blocks = json_blocks(&out.stdout);
    assert_eq!(blocks.len(), 8, "{out:?}");
    for b in &blocks {
        assert_eq!(b["status"], "failed", "{b}");
    }
    let by_id = |id: &str| blocks.iter().find(|b| b["id"] == id).unwrap_or_else(|| panic!("no block {id}"));
    let stopped = by_id("unexpected-failure");
    assert!(stopped["reason"].as_str().unwrap().contains("exited with status 1; 1 later command not run"), "{stopped}");
    // The record has the transcript: the failing command's status, nothing of the later one.
    let rec: Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    let recorded = rec["tutorials"][0]["steps"][0]["blocks"][1].clone();
    assert_eq!(recorded["output"], "$ false\n[1]\n", "{recorded}");
    let missing = by_id("not-found");
    let reason = missing["reason"].as_str().unwrap();
    assert!(reason.contains("command not found: not retried") && !reason.contains("tries"), "{missing}");
}

fn a_200_kb_command_goes_through_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    let long = "x".repeat(200_000);
    let md = format!("---\nbackend: host\n---\n\n## Big\n\n```console\n$ v='{long}'; echo ${{#v}}\n200000\n```\n");
    let t = tmp.path().join("big.md");
    std::fs::write(&t, md).unwrap();
    let out = run_in(tmp.path(), &["run", s(&t), "--record", s(&tmp.path().join("r.json"))]);
    assert_eq!(out.code, 0, "{out:?}");
}

fn a_closed_stdout_ends_tutor_quietly() {
    let has_script = std::process::Command::new("script").arg("--version").output().is_ok_and(|o| o.status.success());
    if !has_script {
        eprintln!("skipped: util-linux `script` (a pseudo-terminal) is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_tutor");
    let cmd = format!(
        "{bin} run {} --record {} | head -1; echo \"tutor=${{PIPESTATUS[0]}}\"",
        s(&fixture("cram.md")),
        s(&tmp.path().join("r.json"))
    );
    // A pseudo-terminal, as a user at a terminal would run it.
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("SHELL", "/bin/bash")
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("panicked"), "{text}");
    assert!(!text.contains("Broken pipe"), "{text}");
    assert!(text.contains("tutor=141"), "{text}");
}
