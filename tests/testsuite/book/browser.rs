//! The built book in a real browser: headless Chromium loads the chapter and the index from
//! `file://`, a script added to the book reports what is actually rendered (visible boxes,
//! collapsed diff, highlighting), and screenshots land in `target/book-browser/` for a human
//! look. Skips (with the reason) when mdbook or chromium is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::book::fixture::{Book, build};

crate::tests![
    chapter_renders_badges_labels_outputs_copy_and_a_failed_block(Mdbook, Chromium),
    dark_themes_keep_labels_and_diffs_readable(Mdbook, Chromium),
    the_projects_book_index_loads(Mdbook, Chromium)
];

/// Runs in the page after load and writes its findings on `<body data-tutor-check=…>`, which
/// `--dump-dom` then shows.
const CHECK_JS: &str = r#"
window.addEventListener('load', function () {
  function visible(el) {
    if (!el) return false;
    var r = el.getBoundingClientRect();
    // checkVisibility also sees content skipped by a closed <details> (content-visibility).
    return r.width > 0 && r.height > 0 && el.checkVisibility({ opacityProperty: true, visibilityProperty: true });
  }
  // WCAG contrast ratio of two colours given as [r, g, b].
  function rgba(c) {
    var v = c.match(/[0-9.]+/g).map(Number);
    return { rgb: v.slice(0, 3), a: v.length > 3 ? v[3] : 1 };
  }
  function lum(rgb) {
    var v = rgb.map(function (x) {
      x = x / 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
  }
  function contrast(a, b) { var x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); }
  // The colour behind an element: its and its ancestors' backgrounds composited (translucent
  // ones over what is below them), white at the bottom.
  function background(el) {
    var layers = [];
    for (; el; el = el.parentElement) {
      var bg = getComputedStyle(el).backgroundColor;
      if (!bg || bg === 'transparent') continue;
      var c = rgba(bg);
      if (c.a === 0) continue;
      layers.push(c);
      if (c.a === 1) break;
    }
    var out = [255, 255, 255];
    for (var i = layers.length - 1; i >= 0; i--) {
      var l = layers[i];
      out = out.map(function (x, k) { return l.rgb[k] * l.a + x * (1 - l.a); });
    }
    return out;
  }
  function readable(el) { return !!el && contrast(rgba(getComputedStyle(el).color).rgb, background(el)) >= 4.5; }
  var diff = document.querySelector('details.tutor-diff');
  var sh = document.querySelector('code.language-sh');
  var labels = Array.prototype.filter.call(document.querySelectorAll('.tutor-label'), visible);
  var failed = document.querySelector('.tutor-block[data-status="failed"]');
  var del = document.querySelector('.tutor-diff-del'), add = document.querySelector('.tutor-diff-add');
  // The copy button of the console block: what reaches the clipboard API when it is clicked.
  var copied = null;
  if (navigator.clipboard) {
    navigator.clipboard.writeText = function (t) { copied = t; return Promise.resolve(); };
  }
  var pods = document.getElementById('tutor-cilium-pods');
  var button = pods && pods.querySelector('.clip-button');
  if (button) button.click();
  var report = {
    theme: document.documentElement.className,
    chapterLine: visible(document.querySelector('.tutor-chapter .tutor-badge')),
    runLine: (document.querySelector('.tutor-run') || {}).innerText || '',
    stepBadges: Array.prototype.filter.call(document.querySelectorAll('.tutor-step .tutor-badge'), visible).length,
    failedBadge: visible(document.querySelector('.tutor-badge.tutor-failed')),
    output: visible(document.querySelector('pre.tutor-output')),
    outputText: (document.querySelector('pre.tutor-output') || {}).innerText || '',
    diffSummary: !!diff && visible(diff.querySelector('summary')),
    diffOpen: !!diff && diff.open && visible(diff.querySelector('pre')),
    diffColours: !!del && !!add && getComputedStyle(del).color !== getComputedStyle(add).color
      && getComputedStyle(del).color !== getComputedStyle(diff.querySelector('code')).color,
    diffReadable: readable(del) && readable(add),
    failedLabel: !!failed && visible(failed.querySelector('.tutor-failed-label'))
      ? failed.querySelector('.tutor-failed-label').innerText : '',
    failedLabelReadable: !!failed && readable(failed.querySelector('.tutor-failed-label')),
    failedOutput: failed ? (failed.querySelector('pre.tutor-output') || {}).innerText || '' : '',
    labels: labels.map(function (l) { return l.innerText; }),
    labelsReadable: labels.length > 0 && labels.every(readable),
    copyButton: !!button,
    copied: copied,
    highlighted: !!sh && sh.classList.contains('hljs'),
    badgeColour: getComputedStyle(document.querySelector('.tutor-badge.tutor-passed')).backgroundColor
  };
  document.body.setAttribute('data-tutor-check', JSON.stringify(report));
});
"#;

pub(crate) fn chromium() -> Result<PathBuf, String> {
    let dirs: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| dirs.iter().map(move |d| d.join(name)))
        .find(|p| p.is_file())
        .ok_or_else(|| "chromium is not installed (Debian package `chromium`)".to_string())
}

/// Whether `unshare --net` works here (root, or user namespaces allowed).
fn can_isolate_network() -> bool {
    Command::new("unshare").args(["--net", "true"]).status().is_ok_and(|s| s.success())
}

/// Headless Chromium with everything that could reach the network switched off, and where
/// possible in a network namespace of its own (loopback only, gone when it exits), so that
/// not one packet of its leaves the machine whatever its defaults are.
fn browser(profile: &Path) -> Command {
    let mut cmd = if can_isolate_network() {
        let mut c = Command::new("unshare");
        c.args(["--net", "--"]).arg(chromium().unwrap());
        c
    } else {
        Command::new(chromium().unwrap())
    };
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        "--virtual-time-budget=5000",
    ]);
    cmd.arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

fn url(p: &Path) -> String {
    format!("file://{}", p.display())
}

fn dump_dom(profile: &Path, page: &Path) -> String {
    let out = browser(profile).arg("--dump-dom").arg(url(page)).output().unwrap();
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `size`: the window, `1280,2000` for a whole chapter.
fn screenshot(profile: &Path, page: &Path, name: &str, size: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/book-browser");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join(name);
    let _ = std::fs::remove_file(&png);
    let out = browser(profile)
        .arg(format!("--window-size={size}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(url(page))
        .output()
        .unwrap();
    assert!(out.status.success() && png.is_file(), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    png
}

/// The JSON the check script left on `<body>`.
fn report(dom: &str) -> serde_json::Value {
    let start = dom.find("data-tutor-check=\"").unwrap_or_else(|| panic!("the check script did not run:\n{dom}")) + 18;
    let end = start + dom[start..].find('"').unwrap();
    let json = dom[start..end].replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">");
    serde_json::from_str(&json).unwrap()
}

fn chapter_renders_badges_labels_outputs_copy_and_a_failed_block() {
    let book = Book::new(true);
    book.add("check.js", CHECK_JS);
    book.append_config("[output.html]\nadditional-js = [\"check.js\"]\n");
    let out = build(&book, &[]);
    let profile = tempfile::tempdir().unwrap();
    let chapter = out.join("native-routing.html");
    let dom = dump_dom(profile.path(), &chapter);
    let r = report(&dom);
    assert_eq!(r["chapterLine"], true, "{r}");
    assert!(r["runLine"].as_str().unwrap().starts_with("run on lab · 2026-11-26 09:41 UTC · took 2.4 s"), "{r}");
    assert_eq!(r["stepBadges"], 5, "{r}");
    assert_eq!(r["failedBadge"], true, "{r}");
    assert_eq!(r["output"], true, "{r}");
    assert!(r["outputText"].as_str().unwrap().contains("Creating cluster \"kind\""), "{r}");
    // A failed block: its label, what it printed, and the diff open and coloured.
    assert!(r["failedLabel"].as_str().unwrap().starts_with("✗ failed on 2026-11-26 (lab)"), "{r}");
    assert!(r["failedOutput"].as_str().unwrap().contains(";; connection timed out"), "{r}");
    assert!(!r["failedOutput"].as_str().unwrap().contains("Name:"), "not the stale expectation: {r}");
    assert_eq!(r["diffSummary"], true, "{r}");
    assert_eq!(r["diffOpen"], true, "{r}");
    assert_eq!(r["diffColours"], true, "{r}");
    assert_eq!(r["diffReadable"], true, "{r}");
    assert_eq!(r["failedLabelReadable"], true, "{r}");
    // Labels for the attributes that change a block's meaning.
    let labels: Vec<&str> = r["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    for want in ["times out after 5 min", "retries up to 60 s", "runs on kind-worker", "kind only"] {
        assert!(labels.contains(&want), "{want}: {r}");
    }
    assert_eq!(r["labelsReadable"], true, "{r}");
    // The console block's copy button copies the command, no prompt, no output.
    assert_eq!(r["copyButton"], true, "{r}");
    assert_eq!(r["copied"], "kubectl -n kube-system get pods -l k8s-app=cilium", "{r}");
    assert_eq!(r["highlighted"], true, "mdBook's highlighting still applies: {r}");
    assert_eq!(r["badgeColour"], "rgb(26, 127, 55)", "the theme's style sheet applies: {r}");
    assert!(!dom.contains("LAB_ONLY_PLUMBING"));
    // No path of the machine that built the page, in what the browser shows.
    let root = book.root().display().to_string();
    assert!(!dom.contains(&root) && !dom.contains("/tmp/"), "an absolute path in the page:\n{dom}");
    let png = screenshot(profile.path(), &chapter, "native-routing.png", "1280,2000");
    eprintln!("screenshot: {}", png.display());

    let index = out.join("index.html");
    let dom = dump_dom(profile.path(), &index);
    assert!(dom.contains("Tutorials, verified."), "{dom}");
    assert!(dom.contains("native-routing.html"), "the chapter is in the table of contents:\n{dom}");
    screenshot(profile.path(), &index, "index.png", "1280,720");
}

fn dark_themes_keep_labels_and_diffs_readable() {
    for theme in ["coal", "navy", "ayu"] {
        let book = Book::new(true);
        book.add("check.js", CHECK_JS);
        book.append_config(&format!(
            "[output.html]\nadditional-js = [\"check.js\"]\ndefault-theme = \"{theme}\"\npreferred-dark-theme = \"{theme}\"\n"
        ));
        let out = build(&book, &[]);
        let profile = tempfile::tempdir().unwrap();
        let chapter = out.join("native-routing.html");
        let r = report(&dump_dom(profile.path(), &chapter));
        assert!(r["theme"].as_str().unwrap().split(' ').any(|c| c == theme), "{theme}: {r}");
        assert_eq!(r["diffReadable"], true, "{theme}: {r}");
        assert_eq!(r["labelsReadable"], true, "{theme}: {r}");
        assert_eq!(r["failedLabelReadable"], true, "{theme}: {r}");
        assert_eq!(r["diffColours"], true, "{theme}: {r}");
        screenshot(profile.path(), &chapter, &format!("native-routing-{theme}.png"), "1280,2000");
    }
}

fn the_projects_book_index_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dest = Path::new(env!("CARGO_TARGET_TMPDIR")).join("project-book-browser");
    let out = crate::book::fixture::tutor()
        .args(["book", "--root"])
        .arg(root)
        .arg("--dest")
        .arg(&dest)
        .env_remove("TUTOR_RECORD")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let profile = tempfile::tempdir().unwrap();
    let dom = dump_dom(profile.path(), &dest.join("index.html"));
    assert!(dom.contains("<title>Introduction - tutor: tested tutorials</title>"), "{dom}");
    screenshot(profile.path(), &dest.join("index.html"), "project-index.png", "1280,720");
    // The tutorials written so far (SUMMARY.md links only existing files, see book_summary.rs).
    for stem in ["getting-started", "native-routing"] {
        if !root.join(format!("tutorials/{stem}.md")).exists() {
            continue;
        }
        let chapter = dest.join(format!("{stem}.html"));
        let dom = dump_dom(profile.path(), &chapter);
        assert!(dom.contains("class=\"tutor-chapter\""), "{dom}");
        assert!(dom.contains("class=\"tutor-step\""), "{dom}");
        screenshot(profile.path(), &chapter, &format!("project-{stem}.png"), "1280,2000");
    }
}
