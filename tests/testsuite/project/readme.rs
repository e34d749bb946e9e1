//! README.md is what a newcomer reads first: short, its example tutorial really prints what the
//! README says it prints, and its links lead somewhere.

use std::path::Path;
use std::process::Command;

crate::tests![
    readme_is_read_in_two_minutes,
    readme_starts_with_setup_and_tests,
    readme_example_prints_what_the_readme_shows,
    readme_links_lead_to_files
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// The body of the first fenced block opened by `open` (a whole line) after `after`.
fn block_after(text: &str, after: &str, open: &str) -> String {
    let start = text.find(after).unwrap_or_else(|| panic!("README.md: no {after:?}"));
    let rest = &text[start..];
    let body_start =
        rest.find(&format!("\n{open}\n")).unwrap_or_else(|| panic!("no {open} block after {after:?}")) + open.len() + 2;
    let close = open.chars().take_while(|c| *c == '`').collect::<String>();
    let body = &rest[body_start..];
    let end = body.find(&format!("\n{close}\n")).unwrap();
    body[..end + 1].to_string()
}

fn readme_is_read_in_two_minutes() {
    let len = readme().len();
    assert!(len <= 6 * 1024, "README.md is {len} bytes: at most 6 KB, the rest belongs in the book");
}

fn readme_starts_with_setup_and_tests() {
    let text = readme();
    let first = block_after(&text, "# tutor", "```console");
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines.len(), 4, "set-up and tests, each under its comment:\n{first}");
    assert!(lines[1].starts_with("bash .ci/install && "), "{first}");
    assert!(lines[1].ends_with("tutor run tutorials/native-routing.md"), "{first}");
    assert_eq!(lines[2], "# tests");
}

/// Durations differ from run to run.
fn timeless(text: &str) -> String {
    regex::Regex::new(r"\b\d+(\.\d+)?(ms|s)\b").unwrap().replace_all(text, "<t>").into_owned()
}

fn readme_example_prints_what_the_readme_shows() {
    let text = readme();
    let tutorial = block_after(&text, "## A tutorial", "````markdown");
    let shown = block_after(&text, "## A tutorial", "```text");
    let (command, expected) = shown.split_once('\n').unwrap();
    assert_eq!(command, "$ tutor run words.md");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("words.md"), &tutorial).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tutor"))
        .args(["run", "words.md"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{printed}");
    assert_eq!(timeless(&printed), timeless(expected), "README.md's output of its example is stale");
}

fn readme_links_lead_to_files() {
    let text = readme();
    let re = regex::Regex::new(r"\]\(([^)#]+)\)").unwrap();
    let mut checked = 0;
    for c in re.captures_iter(&text) {
        let link = &c[1];
        if link.starts_with("http") {
            continue;
        }
        assert!(root().join(link).is_file(), "README.md links {link}, which does not exist");
        checked += 1;
    }
    assert!(checked >= 10, "README.md links into the book: {checked} links");
}
