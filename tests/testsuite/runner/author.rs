//! The author's loop: the run record kept per tutorial, reports (failure list, JSON records,
//! JUnit), Go templates that run as written, updates that read back as the same expectation,
//! and `--step N` running the earlier steps as set-up.

use std::path::Path;

use serde_json::Value;

use crate::prelude::{fixture, run_in, tutor};

crate::tests![
    concurrent_runs_both_land_in_the_record_and_partial_runs_never_replace_a_complete_one,
    step_n_runs_the_earlier_steps_first_as_set_up,
    a_run_ends_with_the_list_of_failures_and_json_has_a_summary,
    input_errors_are_json_records_too,
    junit_has_a_case_per_block_with_file_line_and_output,
    go_templates_run_as_written_and_typos_of_vars_are_still_errors,
    update_output_reads_back_as_the_same_expectation,
    check_warns_where_a_var_starts_a_go_style_call,
    update_escapes_colour_codes_prompt_and_exit_lines,
    review_accepts_and_rejects_without_prompting,
    review_takes_keys_in_a_terminal
];

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

fn record(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn stems(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|t| t["stem"].as_str().unwrap().to_string()).collect()
}

const TWO_STEPS: &str = "---\nbackend: host\n---\n# T\n\n## One\n\n```console\n$ export GREETING=hi; mkdir -p sub; cd sub\n```\n\n## Two\n\n```console\n$ echo \"$GREETING from ${PWD##*/}\"\nhi from sub\n```\n";

fn concurrent_runs_both_land_in_the_record_and_partial_runs_never_replace_a_complete_one() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("r.json");
    let a = write(tmp.path(), "tutorials/a.md", TWO_STEPS);
    let b = write(tmp.path(), "tutorials/b.md", &TWO_STEPS.replace("# T", "# B"));
    // Two separate `tutor run` processes finishing at about the same time.
    let children: Vec<_> = [&a, &b]
        .iter()
        .map(|t| tutor().args(["run", s(t), "--record", s(&rec)]).current_dir(tmp.path()).output())
        .collect();
    for c in children {
        assert!(c.unwrap().status.success());
    }
    let r = record(&rec);
    assert_eq!(stems(&r["tutorials"]), ["a", "b"], "{r}");
    assert_eq!(r["version"], 2);
    for t in r["tutorials"].as_array().unwrap() {
        assert!(t["started_at"].as_str().unwrap().ends_with('Z'), "{t}");
        assert!(t.get("partial").is_none(), "{t}");
    }
    // Really concurrent: spawned together.
    let spawned: Vec<_> = [&a, &b]
        .iter()
        .map(|t| {
            tutor()
                .args(["run", s(t), "--record", s(&tmp.path().join("c.json"))])
                .current_dir(tmp.path())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in spawned {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(stems(&record(&tmp.path().join("c.json"))["tutorials"]), ["a", "b"]);

    // A `--step 2` debugging run is kept as partial; a's complete run still stands.
    let out = run_in(tmp.path(), &["run", s(&a), "--step", "2", "--record", s(&rec)]);
    assert_eq!(out.code, 0, "{out:?}");
    let r = record(&rec);
    assert_eq!(stems(&r["tutorials"]), ["a", "b"]);
    assert!(r["tutorials"][0].get("partial").is_none(), "{r}");
    assert_eq!(r["partial"][0]["stem"], "a");
    assert_eq!(r["partial"][0]["partial"], "step 2, step 1 as set-up");
    assert_eq!(r["partial"][0]["steps"][0]["setup"], true);
}

fn step_n_runs_the_earlier_steps_first_as_set_up() {
    let tmp = tempfile::tempdir().unwrap();
    let t = write(tmp.path(), "t.md", TWO_STEPS);
    let out = run_in(tmp.path(), &["run", s(&t), "--step", "2", "--record", s(&tmp.path().join("r.json"))]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("set-up: step 1 ran first (1 block(s)"), "{out:?}");
    assert!(out.stdout.contains("2. Two") && !out.stdout.contains("1. One"), "{out:?}");
    assert!(out.stdout.contains("1 passed, 0 failed, 0 skipped"), "{out:?}");
    // A failing set-up step stops the run and says so.
    let broken = write(tmp.path(), "u.md", &TWO_STEPS.replace("mkdir -p sub; cd sub", "false"));
    let out = run_in(tmp.path(), &["run", s(&broken), "--step", "2", "--record", s(&tmp.path().join("r.json"))]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("set-up: step 1 failed"), "{out:?}");
    assert!(out.stdout.contains("(set-up step 1)"), "the failure list names it: {out:?}");
}

fn a_run_ends_with_the_list_of_failures_and_json_has_a_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let mism = fixture("mismatch.md");
    let rec = tmp.path().join("r.json");
    let out = run_in(tmp.path(), &["run", "--keep-going", s(&mism), "--record", s(&rec)]);
    assert_eq!(out.code, 1, "{out:?}");
    let tail = out.stdout.split("failures:\n").nth(1).expect("a failure list");
    let want = format!(
        "    {m}:9 wrong — output does not match\n    {m}:23 status — `false` (line 24) exited with status 1, expected 0\n",
        m = mism.display()
    );
    assert!(tail.starts_with(&want), "{out:?}");

    let out = run_in(tmp.path(), &["run", "--format", "json", "--keep-going", s(&mism), "--record", s(&rec)]);
    let last: Value = serde_json::from_str(out.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "summary");
    assert_eq!((last["passed"].as_u64(), last["failed"].as_u64()), (Some(1), Some(2)));
    assert_eq!(last["outcome"], "fail");
    assert_eq!(last["failures"][1]["id"], "status");
}

fn input_errors_are_json_records_too() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = write(tmp.path(), "bad.md", "# x\n\n```sh {exit=}\ntrue\n```\n");
    let out = run_in(tmp.path(), &["run", "--format", "json", s(&bad), "--record", s(&tmp.path().join("r.json"))]);
    assert_eq!(out.code, 2, "{out:?}");
    let lines: Vec<Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert_eq!(lines[0]["type"], "error");
    assert_eq!(lines[0]["file"], s(&bad));
    assert_eq!(lines[0]["line"], 3);
    assert!(lines[0]["message"].as_str().unwrap().contains("needs a value"), "{out:?}");
    assert_eq!((lines[1]["type"].as_str(), lines[1]["outcome"].as_str()), (Some("summary"), Some("usage")));
    assert!(!tmp.path().join("r.json").exists(), "nothing ran, nothing recorded");
}

fn junit_has_a_case_per_block_with_file_line_and_output() {
    use quick_xml::Reader;
    use quick_xml::events::Event;
    let tmp = tempfile::tempdir().unwrap();
    let mism = fixture("mismatch.md");
    let junit = tmp.path().join("j.xml");
    let out = run_in(
        tmp.path(),
        &["run", "--keep-going", s(&mism), "--junit", s(&junit), "--record", s(&tmp.path().join("r.json"))],
    );
    assert_eq!(out.code, 1, "{out:?}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let mut reader = Reader::from_str(&xml);
    let mut cases = Vec::new();
    let mut outs = Vec::new();
    let mut in_out = false;
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testcase" => {
                let attr = |k: &str| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == k.as_bytes())
                        .map(|a| a.unescape_value().unwrap().into_owned())
                };
                cases.push((attr("name"), attr("classname"), attr("file"), attr("line")));
            }
            Event::Start(e) if e.name().as_ref() == b"system-out" => in_out = true,
            Event::Text(t) if in_out => outs.push(t.decode().unwrap().into_owned()),
            Event::End(e) if e.name().as_ref() == b"system-out" => in_out = false,
            Event::Eof => break,
            _ => {}
        }
    }
    let m = Some(mism.display().to_string());
    assert_eq!(
        cases,
        vec![
            (Some("wrong".into()), m.clone(), m.clone(), Some("9".into())),
            (Some("after".into()), m.clone(), m.clone(), Some("16".into())),
            (Some("status".into()), m.clone(), m.clone(), Some("23".into())),
        ],
        "{xml}"
    );
    assert!(outs.iter().any(|o| o.contains("$ echo after\nafter")), "{xml}");
}

fn go_templates_run_as_written_and_typos_of_vars_are_still_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let t = write(
        tmp.path(),
        "go.md",
        "---\nbackend: host\nvars:\n  who: world\n---\n# Go\n\n## Templates\n\n```console\n$ printf '%s\\n' '{{.metadata.name}}' '{{ json .State }}' \"{{ who }}\"\n{{.metadata.name}}\n{{ json .State }}\n{{ who }}\n$ printf '{{range .items}}{{.name}}{{end}}\\n'\n{{range .items}}{{.name}}{{end}}\n```\n",
    );
    let rec = tmp.path().join("r.json");
    let out = run_in(tmp.path(), &["run", s(&t), "--record", s(&rec)]);
    assert_eq!(out.code, 0, "{out:?}");
    let output = record(&rec)["tutorials"][0]["steps"][0]["blocks"][0]["output"].as_str().unwrap().to_string();
    assert!(output.contains("\n{{.metadata.name}}\n{{ json .State }}\nworld\n"), "{output}");
    let out = run_in(tmp.path(), &["check", s(&t)]);
    assert_eq!(out.code, 0, "{out:?}");

    let typo =
        write(tmp.path(), "typo.md", &std::fs::read_to_string(&t).unwrap().replace("\"{{ who }}\"", "\"{{ woh }}\""));
    let out = run_in(tmp.path(), &["run", s(&typo), "--record", s(&rec)]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("typo.md:11: template error: undefined variable `woh` (did you mean `who`?"),
        "{out:?}"
    );
}

fn update_output_reads_back_as_the_same_expectation() {
    let tmp = tempfile::tempdir().unwrap();
    let src = "---\nbackend: host\nvars:\n  who: world\n---\n# U\n\n## In a list\n\n1. Print:\n\n   ```console\n   $ echo 'a {% raw %}{{ who }}{% endraw %}'; echo b; echo; echo 'c {% raw %}{% x %}{% endraw %}'\n   old\n   ```\n\n> ```console\n> $ echo quoted\n> old\n> ```\n";
    let t = write(tmp.path(), "u.md", src);
    let rec = tmp.path().join("r.json");
    let out = run_in(tmp.path(), &["run", s(&t), "--update", "--record", s(&rec)]);
    assert_eq!(out.code, 0, "{out:?}");
    let text = std::fs::read_to_string(&t).unwrap();
    assert!(
        text.contains("   $ echo 'a {% raw %}{{ who }}{% endraw %}'; echo b; echo; echo 'c {% raw %}{% x %}{% endraw %}'\n   {% raw %}a {{ who }}{% endraw %}\n   b\n\n   {% raw %}c {% x %}{% endraw %}\n   ```\n"),
        "{text}"
    );
    assert!(text.contains("> ```console\n> $ echo quoted\n> quoted\n> ```\n"), "{text}");
    // The updated file parses and passes as it stands.
    let out = run_in(tmp.path(), &["run", s(&t), "--record", s(&rec)]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = run_in(tmp.path(), &["run", s(&t), "--update", "--record", s(&rec)]);
    assert!(out.stdout.contains("update: nothing changed"), "{out:?}");
}

fn check_warns_where_a_var_starts_a_go_style_call() {
    let tmp = tempfile::tempdir().unwrap();
    let t = write(
        tmp.path(),
        "amb.md",
        "---\nbackend: host\nvars:\n  json: x\n---\n# A\n\n## S\n\n```console\n$ echo '{{ json }}'\nx\n$ docker inspect -f '{{json .State}}' c\n```\n",
    );
    let out = run_in(tmp.path(), &["check", s(&t)]);
    assert_eq!(out.code, 0, "a warning is not an error: {out:?}");
    assert!(
        out.stderr.contains("warning: ") && out.stderr.contains("amb.md:13: `{{json .State}}` starts with a name"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("amb.md:11"), "{out:?}");
}

fn update_escapes_colour_codes_prompt_and_exit_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let src = "---\nbackend: host\n---\n# E\n\n## S\n\n```console\n$ printf '\\033[31mred\\033[0m\\n$ not a command\\n...\\nx (re)\\n[1]\\n'\nold\n```\n\n```sh {id=snap}\nprintf '\\033[1mbold\\033[0m\\n$ fine here\\n'\n```\n";
    let t = write(tmp.path(), "e.md", src);
    let rec = tmp.path().join("r.json");
    let out = run_in(tmp.path(), &["run", s(&t), "--update", "--record", s(&rec)]);
    assert_eq!(out.code, 0, "{out:?}");
    let text = std::fs::read_to_string(&t).unwrap();
    assert!(
        text.contains("\\x1b[31mred\\x1b[0m (esc)\n\\$ not a command\n"),
        "colour codes as (esc), `$` lines escaped: {text}"
    );
    assert!(text.contains("\n[1] (eq)\n```"), "an output `[1]` is not an exit line: {text}");
    assert!(!text.contains("\nx (re)\n") && !text.contains("\n...\n"), "pattern-like lines escaped: {text}");
    let snap = std::fs::read_to_string(tmp.path().join("snapshots/e/snap.snap")).unwrap();
    assert!(snap.contains("\n\\x1b[1mbold\\x1b[0m (esc)\n$ fine here\n"), "{snap}");
    // It reads back as the same expectation.
    let out = run_in(tmp.path(), &["run", s(&t), "--record", s(&rec)]);
    assert_eq!(out.code, 0, "{out:?}\n{text}");
}

/// `tutor` as a user runs it: pending changes are recorded (outside CI).
fn user() -> std::process::Command {
    let mut c = tutor();
    c.env_remove("TUTOR_NO_PENDING");
    c
}

fn user_run(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = user().args(args).current_dir(dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

const REVIEWED: &str = "---\nbackend: host\n---\n# R\n\nSome prose  with trailing blanks  \n\n## S\n\n```console {id=c}\n$ printf 'NAME AGE\\nweb 5m\\nnew line\\n'\nNAME AGE\nweb [..]\nold line\n```\n\n```sh {id=s}\necho changed\n```\n";

fn reviewed_project(dir: &Path) -> std::path::PathBuf {
    let t = write(dir, "tutorials/r.md", REVIEWED);
    write(dir, "snapshots/r/s.snap", "---\ntutorial: r.md\nid: s\ncommand: echo changed\n---\noriginal\n");
    t
}

fn review_accepts_and_rejects_without_prompting() {
    let tmp = tempfile::tempdir().unwrap();
    let t = reviewed_project(tmp.path());
    let rec = tmp.path().join("r.json");
    let (code, out) = user_run(tmp.path(), &["run", "--keep-going", s(&t), "--record", s(&rec)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("2 pending change(s): `tutor review`"), "{out}");
    assert!(out.contains("output does not match (new output pending: `tutor review`)"), "{out}");
    assert!(tmp.path().join("snapshots/r/s.snap.new").exists());
    assert!(tmp.path().join("snapshots/r/c.console.new").exists());
    // Nothing changed yet.
    assert_eq!(std::fs::read_to_string(&t).unwrap(), REVIEWED);
    // In CI nothing is recorded unless asked.
    let ci = user()
        .args(["run", "--keep-going", s(&t), "--record", s(&rec)])
        .env("CI", "1")
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&ci.stdout).contains("pending change"));
    // Without a terminal and without --accept/--reject, review lists and refuses.
    let (code, out) = user_run(tmp.path(), &["review", "tutorials"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not a terminal"), "{out}");

    let (code, out) = user_run(tmp.path(), &["review", "--accept", "tutorials"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 accepted, 0 rejected, 0 skipped"), "{out}");
    // Only the changed line changed; the `[..]` that still matches is kept; the rest of the
    // file is byte for byte the same.
    assert_eq!(std::fs::read_to_string(&t).unwrap(), REVIEWED.replace("old line", "new line"));
    let snap = std::fs::read_to_string(tmp.path().join("snapshots/r/s.snap")).unwrap();
    assert!(snap.ends_with("---\nchanged\n"), "{snap}");
    assert!(!tmp.path().join("snapshots/r/s.snap.new").exists());
    let (code, out) = user_run(tmp.path(), &["run", s(&t), "--record", s(&rec)]);
    assert_eq!(code, 0, "accepted changes pass: {out}");

    // Reject: the expectation stays, the pending file goes.
    std::fs::write(&t, REVIEWED).unwrap();
    let (code, _) = user_run(tmp.path(), &["run", "--keep-going", s(&t), "--record", s(&rec)]);
    assert_eq!(code, 1);
    let (code, out) = user_run(tmp.path(), &["review", "--reject", "tutorials"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 accepted, 1 rejected"), "the snapshot was accepted before: {out}");
    assert_eq!(std::fs::read_to_string(&t).unwrap(), REVIEWED);
    let (code, out) = user_run(tmp.path(), &["review", "tutorials"]);
    assert_eq!((code, out.trim()), (0, "no pending changes"));
}

fn review_takes_keys_in_a_terminal() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let t = reviewed_project(tmp.path());
    let rec = tmp.path().join("r.json");
    let (code, _) = user_run(tmp.path(), &["run", "--keep-going", s(&t), "--record", s(&rec)]);
    assert_eq!(code, 1);
    // `script` gives tutor a pseudo-terminal; the keys come through it: accept the first
    // change (the console block), skip the second (the snapshot).
    let mut child = crate::prelude::in_terminal("review tutorials", tmp.path());
    let mut stdin = child.stdin.take().unwrap();
    for key in ["a", "s"] {
        std::thread::sleep(std::time::Duration::from_millis(700));
        stdin.write_all(key.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(out.status.success(), "{text}");
    assert!(text.contains("[1/2]") && text.contains("block `c`"), "{text}");
    assert!(text.contains("-old line") && text.contains("+new line"), "the diff is shown: {text}");
    assert!(text.contains("1 accepted, 0 rejected, 1 skipped"), "{text}");
    assert_eq!(std::fs::read_to_string(&t).unwrap(), REVIEWED.replace("old line", "new line"));
    assert!(tmp.path().join("snapshots/r/s.snap.new").exists(), "skipped stays pending");
    drop(stdin);
}
