//! `tutor book` and `mdbook build` with the real mdbook binary on a small book; the HTML is
//! checked as mdBook rendered it. Skips (with the reason) when mdbook is not installed.

use std::path::Path;

use crate::book::fixture::{Book, build, mdbook, tutor};

crate::tests![
    book_shows_verified_outputs_and_verdicts(Mdbook),
    book_without_a_run_record_still_builds(Mdbook),
    record_flag_overrides_the_default_place(Mdbook),
    plain_mdbook_build_runs_tutor_from_path(Mdbook),
    a_broken_tutorial_fails_the_build_naming_file_and_line(Mdbook),
    the_projects_own_book_builds(Mdbook),
    no_absolute_path_of_the_build_machine_reaches_the_book(Mdbook),
    chapters_link_their_source_where_the_book_says_it_is_published(Mdbook),
    serve_rebuilds_on_chapter_and_record_changes(Mdbook),
    supports_is_answered_by_exit_code,
    without_mdbook_the_error_says_how_to_install_it
];

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn book_shows_verified_outputs_and_verdicts() {
    let book = Book::new(true);
    let html = read(&build(&book, &[]).join("native-routing.html"));
    let has = |s: &str| assert!(html.contains(s), "missing {s:?} in the page:\n{html}");
    let lacks = |s: &str| assert!(!html.contains(s), "{s:?} should not be in the page:\n{html}");
    // The chapter line and one badge per step.
    has("<div class=\"tutor-chapter\" data-status=\"failed\"");
    has("failed on lab, 2026-11-26: 4/5 blocks passed (1 skipped on lab)");
    assert_eq!(html.matches("<div class=\"tutor-step\"").count(), 5, "{html}");
    has(
        "<span class=\"tutor-badge tutor-passed\">✓ passed</span> <span class=\"tutor-meta\">1.2 s · lab · 2026-11-26</span>",
    );
    has(
        "<span class=\"tutor-badge tutor-failed\">✗ failed</span> <span class=\"tutor-meta\">5.0 s · lab · 2026-11-26</span>",
    );
    has(
        "<span class=\"tutor-badge tutor-skipped\">skipped</span> <span class=\"tutor-meta\">on lab · 2026-11-26</span>",
    );
    // Outputs: wildcards and redactions filled from the run, `...` kept.
    has(
        "<pre class=\"tutor-output\"><code class=\"nohighlight\">Creating cluster \"kind\" ...\n ✓ Ensuring node image (kindest/node:v1.31.0) 🖼",
    );
    has("cilium-4xk2p   1/1     Running   0          52s");
    has("10.244.0.0/24 via 172.18.0.2 dev eth0 proto kernel\n...");
    lacks("10.244.1.0/24");
    lacks("[POD]");
    // mdBook still highlights: the language stays, the attributes go.
    has("<code class=\"language-sh\">");
    has("<code class=\"language-console\">");
    lacks("retry=");
    lacks("{id=");
    lacks("title: Cilium");
    // Hidden lab plumbing, files shown as files, the failed block's diff collapsed.
    lacks("LAB_ONLY_PLUMBING");
    has("<div class=\"tutor-file-name\">kind-config.yaml</div>");
    has("<div class=\"tutor-failed-label\">✗ failed on 2026-11-26 (lab): output does not match");
    has("<details class=\"tutor-diff\" open=\"\"><summary>diff: expected vs actual</summary>");
    has("<span class=\"tutor-diff-add\">+;; connection timed out; no servers could be reached</span>");
    // The failed block shows what it printed, not the snapshot.
    has("<pre class=\"tutor-output\"><code class=\"nohighlight\">Server:\t\t10.96.0.10\n;; connection timed out");
    lacks("Name:\tkubernetes.io\nAddress");
    // Labels for the attributes that change a block's meaning; the copy button's commands.
    has(
        "data-attr=\"retry\" title=\"retry: run again until the output matches, for up to 60 s\">retries up to 60 s</span>",
    );
    has(">runs on kind-worker</span>");
    has(">kind only</span>");
    has(">times out after 5 min</span>");
    has("data-copy=\"kubectl -n kube-system get pods -l k8s-app=cilium\"");
    has("<div class=\"tutor-run\">run on lab · 2026-11-26 09:41 UTC · took 2.4 s");
    has("Not run on lab: backend=kind.");
    has("docker ps --format 'table {{.Names}}'");
}

/// Every file of the built book (pages, search index, scripts).
fn all_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { all_files(&p, out) } else { out.push(p) }
    }
}

fn no_absolute_path_of_the_build_machine_reaches_the_book() {
    let book = Book::new(false);
    let root = std::fs::canonicalize(book.root()).unwrap();
    let root_text = root.display().to_string();
    // A record as a run in this very folder writes it: absolute snapshot paths in diffs,
    // a temporary work directory in outputs, an absolute tutorial path.
    let mut rec = crate::book::fixture::record();
    let t = &mut rec["tutorials"][0];
    t["path"] = format!("{root_text}/tutorials/native-routing.md").into();
    let dns = &mut t["steps"][3]["blocks"][0];
    dns["diff"] = format!(
        "--- expected ({root_text}/snapshots/native-routing/dns.snap)\n+++ actual\n-Name:\tkubernetes.io\n+cd /tmp/tutor-native-routing-a1B2c3/x\n"
    )
    .into();
    dns["output"] = "cd /tmp/tutor-native-routing-a1B2c3/x\n".into();
    dns["reason"] = format!("see {root_text}/target/tutor/artifacts").into();
    book.add("target/tutor/last-run.json", &rec.to_string());
    let out = build(&book, &[]);
    let mut files = Vec::new();
    all_files(&out, &mut files);
    let pages = files.iter().filter(|p| p.extension().is_some_and(|e| e == "html" || e == "js")).count();
    assert!(pages > 5, "{files:?}");
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else { continue };
        for leak in [root_text.as_str(), "/tmp/tutor-", book.root().to_str().unwrap()] {
            assert!(!text.contains(leak), "{} contains {leak:?}", f.display());
        }
    }
    let html = read(&out.join("native-routing.html"));
    assert!(html.contains("--- expected (snapshots/native-routing/dns.snap)"), "{html}");
    assert!(html.contains("cd &lt;workdir&gt;/x"), "{html}");
    assert!(html.contains("see target/tutor/artifacts"), "{html}");
}

fn chapters_link_their_source_where_the_book_says_it_is_published() {
    let book = Book::new(true);
    book.append_config(
        "[output.html]\ngit-repository-url = \"https://example.org/me/proj\"\n\
         edit-url-template = \"https://example.org/me/proj/edit/main/{path}\"\n",
    );
    let html = read(&build(&book, &[]).join("native-routing.html"));
    assert!(
        html.contains("<a class=\"tutor-source\" href=\"https://example.org/me/proj/blob/main/tutorials/native-routing.md\">source</a>"),
        "{html}"
    );
    assert!(
        html.contains("https://example.org/me/proj/edit/main/tutorials/native-routing.md"),
        "mdBook's edit link:\n{html}"
    );
}

fn book_without_a_run_record_still_builds() {
    let book = Book::new(false);
    let html = read(&build(&book, &[]).join("native-routing.html"));
    assert!(html.contains("not run yet: outputs shown are the recorded expectations"), "{html}");
    assert_eq!(html.matches("<div class=\"tutor-step\" data-status=\"not-run\"").count(), 5, "{html}");
    assert!(html.contains("(kindest/node:v1.31.0) [..]"), "the snapshot as written:\n{html}");
    assert!(html.contains("[POD]   1/1     Running"), "{html}");
}

fn record_flag_overrides_the_default_place() {
    let book = Book::new(false);
    book.add("elsewhere.json", &crate::book::fixture::record().to_string());
    let html = read(&build(&book, &["--record", "elsewhere.json"]).join("native-routing.html"));
    assert!(html.contains("failed on lab, 2026-11-26"), "{html}");
}

fn plain_mdbook_build_runs_tutor_from_path() {
    let book = Book::new(true);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_tutor")).parent().unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin_dir.to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let out = std::process::Command::new(mdbook().unwrap())
        .arg("build")
        .current_dir(book.root())
        .env("PATH", path)
        .env_remove("TUTOR_RECORD")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = read(&book.root().join("book/native-routing.html"));
    assert!(html.contains("tutor-badge tutor-failed"), "{html}");
    let intro = read(&book.root().join("book/index.html"));
    assert!(
        intro.contains("Tutorials, verified.") && !intro.contains("tutor-chapter"),
        "prose chapters stay as written"
    );
}

fn a_broken_tutorial_fails_the_build_naming_file_and_line() {
    let book = Book::new(false);
    book.add("tutorials/native-routing.md", "# X\n\n## S\n\n```sh {colour=red}\ntrue\n```\n");
    let out =
        tutor().args(["book", "--root"]).arg(book.root()).arg("--dest").arg(book.root().join("out")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tutorials/native-routing.md:5: unknown attribute `colour`"), "{err}");
}

fn the_projects_own_book_builds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dest = Path::new(env!("CARGO_TARGET_TMPDIR")).join("project-book");
    let out = tutor()
        .args(["book", "--root"])
        .arg(root)
        .arg("--dest")
        .arg(&dest)
        .env_remove("TUTOR_RECORD")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let index = read(&dest.join("index.html"));
    assert!(index.contains("tutor: tested tutorials"), "{index}");
    assert!(!root.join("tutorials/native-routing.md").exists() || dest.join("native-routing.html").exists());
}

fn supports_is_answered_by_exit_code() {
    let status = |r: &str| tutor().args(["book", "preprocess", "supports", r]).status().unwrap().code();
    assert_eq!(status("html"), Some(0));
    assert_eq!(status("epub"), Some(1));
}

fn without_mdbook_the_error_says_how_to_install_it() {
    let empty = tempfile::tempdir().unwrap();
    let out = tutor()
        .arg("book")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", empty.path())
        .env("HOME", empty.path())
        .env("CARGO_HOME", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mdbook is not installed") && err.contains("cargo install mdbook --locked --version ^0.5"),
        "{err}"
    );
}

/// `GET path` on 127.0.0.1:port, the body if the answer is 200.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.starts_with("HTTP/1.1 200").then_some(text)
}

/// Polls `path` until its body satisfies `ok` (mdBook rebuilds a second or so after a change).
fn wait_for(port: u16, path: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let mut last = None;
    while std::time::Instant::now() < deadline {
        last = http_get(port, path);
        if last.as_deref().is_some_and(&ok) {
            return last.unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    panic!("the served book never showed {what}:\n{}", last.unwrap_or_default())
}

/// Kills the server's whole process group (tutor and mdbook) when the test ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ =
            nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.0.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

fn serve_rebuilds_on_chapter_and_record_changes() {
    use std::os::unix::process::CommandExt;
    let book = Book::new(false);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = tutor()
        .args(["book", "--serve", "--hostname", "127.0.0.1", "--port", &port.to_string(), "--root"])
        .arg(book.root())
        .arg("--dest")
        .arg(book.root().join("served"))
        .env_remove("TUTOR_RECORD")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let _server = Server(child);
    wait_for(port, "/native-routing.html", "the chapter, not run yet", |b| b.contains("not run yet"));
    // A chapter changes: rebuilt.
    let chapter = book.root().join("tutorials/native-routing.md");
    let text = std::fs::read_to_string(&chapter).unwrap();
    std::fs::write(&chapter, text.replace("A kind cluster without", "SERVE-MARKER: a kind cluster without")).unwrap();
    wait_for(port, "/native-routing.html", "the edited chapter", |b| b.contains("SERVE-MARKER"));
    // A run writes its record: rebuilt with the verdicts.
    book.add("target/tutor/last-run.json", &crate::book::fixture::record().to_string());
    wait_for(port, "/native-routing.html", "the run's verdicts", |b| b.contains("failed on lab, 2026-11-26"));
}
