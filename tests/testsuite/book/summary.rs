//! tutorials/SUMMARY.md and the tutorials agree: every linked chapter exists (book.toml has
//! `create-missing = false`, so a missing one breaks `mdbook build`), and every tutorial is in
//! the book, linked rather than left as a draft once its file exists.

use std::path::Path;

crate::tests![summary_and_tutorials_agree, summary_parsing_sees_links_and_drafts];

fn summary_entries(summary: &str) -> Vec<(String, String)> {
    let re = regex::Regex::new(r"\[([^\]]+)\]\(([^)]*)\)").unwrap();
    re.captures_iter(summary).map(|c| (c[1].to_string(), c[2].to_string())).collect()
}

/// Chapters below `dir` (sub-folders too: guide/, internals/), relative to `root`.
fn markdown_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            markdown_files(root, &p, out);
        } else if p.extension().is_some_and(|x| x == "md") && p.file_name().is_some_and(|n| n != "SUMMARY.md") {
            out.push(p.strip_prefix(root).unwrap().display().to_string());
        }
    }
}

fn summary_and_tutorials_agree() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tutorials");
    let summary = std::fs::read_to_string(dir.join("SUMMARY.md")).unwrap();
    let entries = summary_entries(&summary);
    assert!(!entries.is_empty(), "SUMMARY.md lists no chapter");
    for (title, link) in entries.iter().filter(|(_, l)| !l.is_empty()) {
        assert!(
            dir.join(link).is_file(),
            "SUMMARY.md links [{title}]({link}) but tutorials/{link} does not exist: make it a draft, `[{title}]()`"
        );
    }
    let linked: Vec<&str> = entries.iter().map(|(_, l)| l.as_str()).collect();
    let mut files = Vec::new();
    markdown_files(&dir, &dir, &mut files);
    files.sort();
    for file in files {
        assert!(
            linked.contains(&file.as_str()),
            "tutorials/{file} is not in the book: link it in tutorials/SUMMARY.md (turn its draft `[…]()` into `[…]({file})`)"
        );
    }
}

fn summary_parsing_sees_links_and_drafts() {
    let e = summary_entries("# Summary\n\n[Intro](README.md)\n\n- [A b](a.md)\n- [Later]()\n");
    assert_eq!(
        e,
        [("Intro".into(), "README.md".into()), ("A b".into(), "a.md".into()), ("Later".into(), String::new())]
    );
}
