//! Resuming a kept environment on the host backend: `--keep` names the environment and says how
//! to go on, `--env NAME` goes on with the shells' state (variables, working directory) and the
//! captured values of the kept run, without set-up steps; a gone environment is an input error.

use std::path::Path;

use crate::prelude::{Out, run_in};

crate::tests![
    keep_names_the_environment_and_env_goes_on_with_its_state,
    env_refuses_unknown_gone_and_finished_environments
];

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Step 1 leaves an exported and a plain variable, a working directory and a captured value;
/// steps 2 and 3 need each of them.
const THREE_STEPS: &str = "---\nbackend: host\n---\n# R\n\n## Set up\n\n```console\n$ export GREETING=hi; PLAIN=there; mkdir -p sub; cd sub\n$ echo token-42\ntoken-[..TOKEN..]\n```\n\n## Use it\n\n```console\n$ echo \"$GREETING $PLAIN from ${PWD##*/}\"\nhi there from sub\n```\n\n## Use the capture\n\n```console\n$ echo {{ TOKEN }}\n42\n```\n";

/// `kept environment NAME (…)` → NAME.
fn kept_name(out: &Out) -> String {
    let line = out.stdout.lines().find(|l| l.starts_with("kept environment ")).unwrap_or_else(|| panic!("{out:?}"));
    line["kept environment ".len()..].split(' ').next().unwrap().to_string()
}

fn keep_names_the_environment_and_env_goes_on_with_its_state() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("r.md");
    std::fs::write(&t, THREE_STEPS).unwrap();
    let rec = tmp.path().join("rec/r.json");
    let run = |args: &[&str]| {
        let mut all = vec!["run"];
        all.extend(args);
        all.extend(["--record", s(&rec)]);
        run_in(tmp.path(), &all)
    };

    // Without the kept state, step 2 does not hold on its own.
    let out = run(&["r.md", "--from", "2", "--to", "2"]);
    assert_eq!(out.code, 1, "{out:?}");

    let out = run(&["r.md", "--keep", "--to", "1"]);
    assert_eq!(out.code, 0, "{out:?}");
    let name = kept_name(&out);
    let kept = out.stdout.lines().find(|l| l.starts_with("kept environment ")).unwrap();
    let workdir = kept.split("work directory ").nth(1).unwrap().split("):").next().unwrap().to_string();
    assert!(Path::new(&workdir).is_dir(), "{out:?}");
    assert!(out.stdout.contains(&format!("  go on with: tutor run --env {name} --from 2 r.md")), "{out:?}");
    let entry: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join(format!("rec/envs/{name}.json"))).unwrap())
            .unwrap();
    assert_eq!((entry["backend"].as_str(), entry["next_step"].as_u64()), (Some("host"), Some(2)), "{entry}");
    assert_eq!(entry["captures"]["TOKEN"], "42", "{entry}");

    // `--step 2` in the kept environment: no set-up steps, the state of step 1 is there.
    let out = run(&["r.md", "--env", &name, "--step", "2"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("set-up"), "no set-up on a kept environment: {out:?}");
    assert!(out.stdout.contains("2. Use it") && !out.stdout.contains("1. Set up"), "{out:?}");
    assert!(out.stdout.contains("1 passed, 0 failed"), "{out:?}");
    // Still kept, now going on from step 3.
    assert_eq!(kept_name(&out), name);
    assert!(out.stdout.contains(&format!("--env {name} --from 3 r.md")), "{out:?}");

    // No step flag and no path: the kept run's tutorial, from where it stopped; the captured
    // value is bound again.
    let out = run(&["--env", &name]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("3. Use the capture") && !out.stdout.contains("2. Use it"), "{out:?}");
    assert!(out.stdout.contains("1 passed, 0 failed"), "{out:?}");
    assert!(out.stdout.contains("(every step ran)"), "{out:?}");
    assert!(Path::new(&workdir).is_dir(), "never torn down");
    std::fs::remove_dir_all(&workdir).unwrap();
}

fn env_refuses_unknown_gone_and_finished_environments() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("r.md"), THREE_STEPS).unwrap();
    let rec = tmp.path().join("r.json");
    let out = run_in(tmp.path(), &["run", "--env", "nope", "--record", s(&rec)]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--env nope: no kept environment `nope`"), "{out:?}");

    let out = run_in(tmp.path(), &["run", "r.md", "--keep", "--record", s(&rec)]);
    assert_eq!(out.code, 0, "{out:?}");
    let name = kept_name(&out);
    // Every step ran: going on needs a step.
    let out = run_in(tmp.path(), &["run", "--env", &name, "--record", s(&rec)]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("went through every step"), "{out:?}");
    // Several tutorials cannot share one kept environment.
    std::fs::write(tmp.path().join("other.md"), THREE_STEPS).unwrap();
    let out = run_in(tmp.path(), &["run", "r.md", "other.md", "--env", &name, "--step", "1", "--record", s(&rec)]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("goes on with one tutorial"), "{out:?}");
    // Its work directory removed: the environment is gone, and forgotten.
    let entry = tmp.path().join(format!("envs/{name}.json"));
    let kept: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&entry).unwrap()).unwrap();
    std::fs::remove_dir_all(kept["workdir"].as_str().unwrap()).unwrap();
    let out = run_in(tmp.path(), &["run", "--env", &name, "--step", "2", "--record", s(&rec)]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("the kept host environment is gone"), "{out:?}");
    assert!(!entry.exists(), "a gone environment is forgotten");
}
