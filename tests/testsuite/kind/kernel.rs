//! Node kernels over a real Docker engine: `tutor run --backend kind` on a fixture tutorial that
//! creates a one-node kind cluster and runs its node blocks in one shell (one Docker exec with
//! stdin attached), as a user would. The fake engine of the unit tests (`backend/kind/
//! fake_docker.rs`) runs execs on the test machine; this is the real dockerd's multiplexed
//! stream, its exec inspect records and a real node container's process tree.

use serde_json::Value;

use crate::prelude::{fixture, run_in};

// Alone: a kind cluster takes both cores for a minute.
crate::tests![node_blocks_share_one_shell_per_node(DockerKind, Alone)];

fn docker_names() -> Vec<String> {
    let out = std::process::Command::new("docker").args(["ps", "-a", "--format", "{{.Names}}"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

fn node_blocks_share_one_shell_per_node() {
    let tmp = tempfile::tempdir().unwrap();
    let tutorial = tmp.path().join("node-kernel.md");
    std::fs::copy(fixture("kind/node-kernel.md"), &tutorial).unwrap();
    let before = docker_names();
    let out = run_in(
        tmp.path(),
        &["run", "--backend", "kind", "--keep-going", "--format", "json", "--record", "r.json", "node-kernel.md"],
    );
    let created: Vec<String> = docker_names().into_iter().filter(|n| !before.contains(n)).collect();
    assert!(created.is_empty(), "containers left behind: {created:?}");
    // `unexpected` fails on purpose, so the run fails.
    assert_eq!(out.code, 1, "{out:?}");
    let blocks: Vec<Value> = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("id").is_some())
        .collect();
    let block = |id: &str| blocks.iter().find(|b| b["id"] == id).unwrap_or_else(|| panic!("no block {id}: {out:?}"));
    let reason = |id: &str| block(id)["reason"].as_str().unwrap_or_default().to_string();
    for id in ["create", "define", "use", "statuses", "restarted", "after"] {
        assert_eq!(block(id)["status"], "passed", "{id}: {}\n{out:?}", block(id));
    }
    assert_eq!(block("unexpected")["status"], "failed", "{}", block("unexpected"));
    assert!(reason("unexpected").contains("exited with status 1; 1 later command not run"), "{}", reason("unexpected"));
    assert_eq!(block("exits")["status"], "passed", "{}", block("exits"));
    let exits = reason("exits");
    assert!(exits.contains("the shell exited with status 4"), "{}", block("exits"));
    assert!(exits.contains("restarted for the next block with its state from before this one"), "{exits}");
    assert_eq!(block("hang")["status"], "error", "{}", block("hang"));
    assert!(reason("hang").contains("timed out after 3s"), "{}", reason("hang"));
    // The 3 s timeout and a kill through a second exec, not the sleeper's 1000 s.
    let hang_ms = block("hang")["duration_ms"].as_u64().unwrap_or_else(|| panic!("{}", block("hang")));
    assert!(hang_ms < 20_000, "{}", block("hang"));
}
