//! Resuming a kept environment on the host backend: `--keep` names the environment and says how
//! to go on, `--env NAME` goes on with the shells' state (variables, working directory) and the
//! captured values of the kept run, without set-up steps; a gone environment is an input error.
//! `tutor shell NAME` starts a shell there with the same state.

use std::path::Path;

use crate::prelude::{Out, run_in};

crate::tests![
    keep_names_the_environment_and_env_goes_on_with_its_state,
    env_refuses_unknown_gone_and_finished_environments,
    a_shell_in_a_kept_environment_starts_with_its_state,
    an_interactive_shell_in_a_kept_environment
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

/// A variable (not exported), an exported one, a function, an alias, a directory and a capture.
const STATEFUL: &str = "---\nbackend: host\n---\n# S\n\n## Set up\n\n```console\n$ GREETING=hello; export OUT=out; greet() { echo \"greet $*\"; }; alias say=echo\n$ mkdir -p sub && cd sub\n$ echo id-77\nid-[..ID..]\n```\n";

/// `tutor run --keep` of [`STATEFUL`] in `dir`: the environment's name and work directory.
fn keep_stateful(dir: &Path) -> (String, String) {
    std::fs::write(dir.join("s.md"), STATEFUL).unwrap();
    let out = run_in(dir, &["run", "s.md", "--keep"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(&format!("`tutor shell {}` to look around", kept_name(&out))), "{out:?}");
    let kept = out.stdout.lines().find(|l| l.starts_with("kept environment ")).unwrap();
    let workdir = kept.split("work directory ").nth(1).unwrap().split("):").next().unwrap().to_string();
    (kept_name(&out), workdir)
}

fn a_shell_in_a_kept_environment_starts_with_its_state() {
    let tmp = tempfile::tempdir().unwrap();
    let (name, workdir) = keep_stateful(tmp.path());
    // One argument: a command line, with the tutorial's variables, functions, aliases, working
    // directory and captured values.
    let out = run_in(tmp.path(), &["shell", &name, "--", "echo \"$GREETING $OUT $ID\"; greet a b; pwd; say aliased"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, format!("hello out 77\ngreet a b\n{workdir}/sub\naliased\n"), "{out:?}");
    // Several: a command (here the tutorial's function) and its arguments; its status is tutor's.
    let out = run_in(tmp.path(), &["shell", &name, "host", "--", "greet", "x y"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "greet x y\n"), "{out:?}");
    let out = run_in(tmp.path(), &["shell", &name, "--", "exit 7"]);
    assert_eq!(out.code, 7, "{out:?}");
    // No command and stdin no terminal: the script on stdin, in the same state; what it starts
    // is not handed the state loader.
    let mut child = crate::prelude::tutor()
        .args(["shell", &name])
        .current_dir(tmp.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let script = "echo \"$GREETING\"; greet stdin\nbash -c 'echo \"child [$BASH_ENV] [$GREETING] [$OUT]\"'\n";
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\ngreet stdin\nchild [] [] [out]\n");
    // The kept environment is still there for `tutor run --env`: the shell changed nothing.
    assert!(Path::new(&workdir).join("sub").is_dir());

    // Names that are not kept environments, and targets the host does not have: exit 2.
    let out = run_in(tmp.path(), &["shell", "nope", "--", "true"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("no kept environment `nope`"), "{out:?}");
    let out = run_in(tmp.path(), &["shell", &name, "kind-worker", "--", "true"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("target `kind-worker` does not exist on the host backend"), "{out:?}");
    // Its work directory removed: gone, and forgotten.
    std::fs::remove_dir_all(&workdir).unwrap();
    let out = run_in(tmp.path(), &["shell", &name, "--", "true"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains(&format!("the kept host environment `{name}` is gone")), "{out:?}");
    let out = run_in(tmp.path(), &["shell", &name, "--", "true"]);
    assert!(out.stderr.contains(&format!("no kept environment `{name}`")), "{out:?}");
}

/// Through a pseudo-terminal (util-linux `script`): an interactive shell whose prompt names the
/// environment, with the tutorial's state; `exit N` is tutor's status.
fn an_interactive_shell_in_a_kept_environment() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let (name, workdir) = keep_stateful(tmp.path());
    let mut child = crate::prelude::in_terminal(&format!("shell {name}"), tmp.path());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"greet \"$GREETING\" from ${PWD##*/}\n").unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    stdin.write_all(b"exit 3\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains(&format!("[{name} host sub]# ")), "the prompt names where it is: {text}");
    assert!(text.contains("greet hello from sub\n"), "{text}");
    std::fs::remove_dir_all(&workdir).unwrap();
}
