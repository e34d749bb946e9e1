//! The GitHub workflows and the composite action, read as GitHub reads them (YAML): which jobs
//! run, on which events, with which permissions, and the commands their steps run — so that a
//! change that breaks CI or the book's deployment fails here first. `actionlint` checks them
//! too when it is installed (`.ci/install` builds it where Go is available).

use std::path::{Path, PathBuf};

use serde_yaml::Value;

crate::tests![
    readme_test_command_is_what_ci_runs,
    tests_workflow_runs_readme_test_command_as_root_on_every_push_and_pull_request,
    book_workflow_publishes_the_tests_run_on_pages_from_main,
    kind_workflow_still_runs_the_tutorials_on_kind,
    composite_action_installs_tutor_and_runs_the_given_tutorials,
    install_script_is_valid_bash,
    actionlint_accepts_the_workflows(Actionlint)
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn load(rel: &str) -> Value {
    let path = root().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn steps<'a>(workflow: &'a Value, job: &str) -> &'a Vec<Value> {
    workflow["jobs"][job]["steps"].as_sequence().unwrap_or_else(|| panic!("job {job} has no steps"))
}

fn uses(steps: &[Value]) -> Vec<&str> {
    steps.iter().filter_map(|s| s["uses"].as_str()).collect()
}

fn runs(steps: &[Value]) -> Vec<&str> {
    steps.iter().filter_map(|s| s["run"].as_str()).collect()
}

/// The step that uses `action` (`actions/upload-artifact`, any version).
fn step_using<'a>(steps: &'a [Value], action: &str) -> &'a Value {
    steps
        .iter()
        .find(|s| s["uses"].as_str().is_some_and(|u| u.split('@').next() == Some(action)))
        .unwrap_or_else(|| panic!("no step uses {action}"))
}

/// The `on:` keys (serde_yaml reads `on` as a string key).
fn events(workflow: &Value) -> Vec<String> {
    match &workflow["on"] {
        Value::Mapping(m) => m.keys().filter_map(|k| k.as_str().map(str::to_string)).collect(),
        Value::Sequence(s) => s.iter().filter_map(|k| k.as_str().map(str::to_string)).collect(),
        Value::String(s) => vec![s.clone()],
        other => panic!("unexpected `on`: {other:?}"),
    }
}

/// README's test command: the line after `# tests` in its first console block.
fn readme_test_command() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut lines = readme.lines().skip_while(|l| !l.starts_with("```console"));
    let mut next_is_it = false;
    for line in lines.by_ref() {
        if line.starts_with("```") && next_is_it {
            break;
        }
        if next_is_it {
            return line.trim().to_string();
        }
        if line.trim() == "# tests" {
            next_is_it = true;
        }
    }
    panic!("README.md: no `# tests` line followed by the test command in its first console block")
}

/// `.ci/run`'s last command line (what CI runs after the install).
fn ci_run_command() -> String {
    let run = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    run.lines().rev().find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).unwrap().trim().to_string()
}

fn readme_test_command_is_what_ci_runs() {
    assert_eq!(readme_test_command(), ci_run_command());
}

fn tests_workflow_runs_readme_test_command_as_root_on_every_push_and_pull_request() {
    let w = load(".github/workflows/tests.yml");
    let ev = events(&w);
    assert!(ev.contains(&"push".into()) && ev.contains(&"pull_request".into()), "{ev:?}");
    assert!(w["on"]["push"]["branches"].is_null(), "every branch, not only main: {:?}", w["on"]["push"]);
    let s = steps(&w, "test");
    assert!(uses(s).iter().any(|u| u.starts_with("actions/checkout@")), "{s:?}");
    let tool = step_using(s, "dtolnay/rust-toolchain");
    let components = tool["with"]["components"].as_str().unwrap_or("");
    assert!(components.contains("rustfmt") && components.contains("clippy"), "the fmt/clippy gates need them");
    let ci = runs(s).into_iter().find(|r| r.contains("bash .ci/run")).expect("a step runs bash .ci/run");
    assert!(ci.starts_with("sudo "), "the lab needs root: {ci}");
    assert!(ci.contains("PATH=$PATH"), "cargo must stay on PATH under sudo: {ci}");
    let upload = step_using(s, "actions/upload-artifact");
    assert_eq!(upload["if"].as_str(), Some("always()"), "reports of a failed run are the useful ones");
    assert_eq!(upload["with"]["name"].as_str(), Some("tutor-run"));
    let paths = upload["with"]["path"].as_str().unwrap();
    assert!(paths.contains("target/tutor/*.xml") && paths.contains("target/tutor/*.json"), "{paths}");
    // README's test command writes its JUnit report where the upload looks.
    let junit = ci_run_command();
    let at = junit.split_whitespace().skip_while(|w| *w != "--junit").nth(1).expect("--junit in the test command");
    assert!(at.starts_with("target/tutor/") && at.ends_with(".xml"), "{at}");
    // The composite action is exercised as another repository would use it.
    let a = steps(&w, "action");
    let step = a.iter().find(|s| s["uses"].as_str() == Some("./")).expect("a step uses ./");
    assert!(step["with"]["paths"].as_str().is_some(), "{step:?}");
}

fn book_workflow_publishes_the_tests_run_on_pages_from_main() {
    let w = load(".github/workflows/book.yml");
    let run = &w["on"]["workflow_run"];
    assert_eq!(run["workflows"][0].as_str(), Some("tests"), "{run:?}");
    assert_eq!(load(".github/workflows/tests.yml")["name"].as_str(), Some("tests"), "workflow_run names it");
    assert_eq!(run["branches"][0].as_str(), Some("main"));
    assert_eq!(run["types"][0].as_str(), Some("completed"));
    let build = steps(&w, "build");
    let download = step_using(build, "actions/download-artifact");
    assert_eq!(download["with"]["name"].as_str(), Some("tutor-run"), "the artifact the tests workflow uploads");
    assert_eq!(download["with"]["run-id"].as_str(), Some("${{ github.event.workflow_run.id }}"));
    assert_eq!(download["with"]["path"].as_str(), Some("target/tutor"), "where tutor book reads the record");
    let book = build.iter().find(|s| s["run"].as_str().is_some_and(|r| r.contains("-- book"))).expect("tutor book");
    let dest = book["run"].as_str().unwrap().split_whitespace().skip_while(|w| *w != "--dest").nth(1).unwrap();
    let env = &book["env"];
    assert!(env["MDBOOK_OUTPUT__HTML__EDIT_URL_TEMPLATE"].as_str().unwrap().ends_with("/{path}"), "{env:?}");
    assert!(env["MDBOOK_OUTPUT__HTML__GIT_REPOSITORY_URL"].as_str().unwrap().contains("github.repository"));
    let pages = step_using(build, "actions/upload-pages-artifact");
    assert_eq!(pages["with"]["path"].as_str(), Some(dest), "the folder the book was built into");
    let deploy = &w["jobs"]["deploy"];
    assert_eq!(deploy["needs"].as_str(), Some("build"));
    assert_eq!(deploy["permissions"]["pages"].as_str(), Some("write"));
    assert_eq!(deploy["permissions"]["id-token"].as_str(), Some("write"));
    assert_eq!(deploy["environment"]["name"].as_str(), Some("github-pages"));
    step_using(steps(&w, "deploy"), "actions/deploy-pages");
    assert_eq!(w["permissions"]["contents"].as_str(), Some("read"), "least privilege by default");
}

fn kind_workflow_still_runs_the_tutorials_on_kind() {
    let w = load(".github/workflows/tutorials.yml");
    let r = runs(steps(&w, "kind")).join("\n");
    assert!(r.contains("tutor run --backend kind tutorials/"), "{r}");
}

fn composite_action_installs_tutor_and_runs_the_given_tutorials() {
    let a = load("action.yml");
    assert_eq!(a["runs"]["using"].as_str(), Some("composite"));
    for input in ["paths", "backend", "junit"] {
        assert!(a["inputs"][input]["description"].as_str().is_some(), "input {input}");
    }
    assert_eq!(a["inputs"]["paths"]["default"].as_str(), Some("tutorials/"));
    let s = a["runs"]["steps"].as_sequence().unwrap();
    for step in s {
        if step["run"].is_string() {
            assert_eq!(step["shell"].as_str(), Some("bash"), "composite run steps need a shell: {step:?}");
        }
    }
    let r = runs(s).join("\n");
    assert!(r.contains("$GITHUB_ACTION_PATH/.ci/install"), "installs what tutor needs: {r}");
    assert!(r.contains("install --locked --path \"$GITHUB_ACTION_PATH\""), "{r}");
    let run = s.iter().find(|st| st["run"].as_str().is_some_and(|r| r.contains("\" run "))).expect("tutor run");
    let env = &run["env"];
    assert_eq!(env["TUTOR_PATHS"].as_str(), Some("${{ inputs.paths }}"));
    assert_eq!(env["TUTOR_BACKEND"].as_str(), Some("${{ inputs.backend }}"));
    assert_eq!(env["TUTOR_JUNIT"].as_str(), Some("${{ inputs.junit }}"));
    // Inputs reach the script through the environment, never spliced into it.
    assert!(!run["run"].as_str().unwrap().contains("${{"), "{run:?}");
}

fn install_script_is_valid_bash() {
    for script in [".ci/install", ".ci/run"] {
        let out = std::process::Command::new("bash").arg("-n").arg(root().join(script)).output().unwrap();
        assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

pub(crate) fn actionlint() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    dirs.push("/usr/local/bin".into());
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join("go/bin"));
    }
    dirs.into_iter().map(|d| d.join("actionlint")).find(|p| p.is_file())
}

fn actionlint_accepts_the_workflows() {
    let lint = actionlint().expect("Need::Actionlint");
    let out = std::process::Command::new(lint).current_dir(root()).output().unwrap();
    assert!(
        out.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
