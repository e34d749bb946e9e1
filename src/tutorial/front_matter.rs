//! Optional YAML front matter between `---` lines at the very top of a tutorial.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::TutorialError;
use super::model::{FrontMatter, Need};

/// The keys the front matter knows (for "did you mean").
const KEYS: &[&str] = &["title", "backend", "timeout", "vars", "redact", "kubernetes", "offline", "needs"];

/// Split off the front matter. Returns it (if any) and the number of bytes it occupies, so the
/// Markdown parser can skip it while keeping offsets relative to the whole file.
pub fn split(source: &str) -> (Option<&str>, usize) {
    let Some(rest) = source.strip_prefix("---\n").or_else(|| source.strip_prefix("---\r\n")) else {
        return (None, 0);
    };
    let mut offset = source.len() - rest.len();
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            let yaml = &source[source.len() - rest.len()..offset];
            return (Some(yaml), offset + line.len());
        }
        offset += line.len();
    }
    (None, 0)
}

/// Parse the YAML (which starts on line 2 of the file). Every problem is reported, each at the
/// file's line (not the YAML document's); what could be read is returned as well.
pub fn parse(path: &Path, yaml: &str) -> (FrontMatter, Vec<TutorialError>) {
    let mut front = FrontMatter::default();
    let mut errors = Vec::new();
    let value: serde_yaml::Value = if yaml.trim().is_empty() {
        serde_yaml::Value::Null
    } else {
        match serde_yaml::from_str(yaml) {
            Ok(v) => v,
            Err(e) => return (front, vec![yaml_error(path, yaml, &e)]),
        }
    };
    let map = match value {
        serde_yaml::Value::Mapping(m) => m,
        serde_yaml::Value::Null => serde_yaml::Mapping::new(),
        _ => return (front, vec![TutorialError::at(path, 2, "front matter: expected `key: value` lines")]),
    };
    // The file line of a top-level key (the YAML starts on line 2).
    let line_of = |key: &str| {
        yaml.lines().position(|l| l.strip_prefix(key).is_some_and(|r| r.trim_start().starts_with(':'))).map(|i| i + 2)
    };
    for (key, value) in map {
        let Some(key) = key.as_str() else {
            errors.push(TutorialError::at(path, 2, format!("front matter: keys are names, found `{key:?}`")));
            continue;
        };
        let line = line_of(key).unwrap_or(2);
        let err = |message: String| TutorialError::at(path, line, format!("front matter: {message}"));
        let typed = |e: serde_yaml::Error| err(format!("`{key}`: {}", strip_location(&e.to_string())));
        match key {
            "title" => match serde_yaml::from_value(value) {
                Ok(t) => front.title = Some(t),
                Err(e) => errors.push(typed(e)),
            },
            "backend" => match serde_yaml::from_value::<String>(value) {
                Ok(b) => match b.parse() {
                    Ok(b) => front.backend = Some(b),
                    Err(m) => errors.push(err(m.to_string())),
                },
                Err(e) => errors.push(typed(e)),
            },
            "timeout" => match serde_yaml::from_value::<String>(value) {
                Ok(t) => match humantime::parse_duration(&t) {
                    Ok(d) if d.is_zero() => errors.push(err(format!("`timeout: {t}` must be longer than 0"))),
                    Ok(d) => front.timeout = Some(d),
                    Err(_) => errors.push(err(format!("invalid duration `{t}` for `timeout` (expected e.g. 30s, 2m)"))),
                },
                Err(e) => errors.push(typed(e)),
            },
            "kubernetes" => match serde_yaml::from_value::<String>(value) {
                Ok(k) => match k.parse() {
                    Ok(k) => front.kubernetes = Some(k),
                    Err(_) => errors.push(err(format!(
                        "`kubernetes: {k}`: expected `upstream` (the real control plane, the lab's default) or \
                         `emulated` (the deprecated emulation)"
                    ))),
                },
                Err(e) => errors.push(typed(e)),
            },
            "needs" => {
                #[derive(serde::Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Entry {
                    from: String,
                    #[serde(default)]
                    images: Vec<String>,
                }
                match serde_yaml::from_value::<Option<Vec<Entry>>>(value) {
                    Ok(list) => {
                        // Each entry's own line: its `from:` line under `needs:`.
                        let mut search = line;
                        for e in list.unwrap_or_default() {
                            let at = yaml
                                .lines()
                                .enumerate()
                                .skip(search.saturating_sub(1))
                                .find(|(_, l)| l.trim_start().trim_start_matches("- ").starts_with("from:"))
                                .map(|(i, _)| i + 2)
                                .unwrap_or(line);
                            search = at;
                            for image in &e.images {
                                if let Err(bad) = crate::backend::lab::agent::images::ImageRef::parse(image) {
                                    errors.push(TutorialError::at(path, at, format!("front matter: `needs`: {bad}")));
                                }
                            }
                            if e.images.is_empty() {
                                errors.push(TutorialError::at(
                                    path,
                                    at,
                                    format!("front matter: `needs` from `{}` names no `images`", e.from),
                                ));
                            }
                            front.needs.push(Need { from: e.from, from_step: 0, images: e.images, line: at });
                        }
                    }
                    Err(e) => errors.push(typed(e)),
                }
            }
            "vars" => match serde_yaml::from_value::<Option<BTreeMap<String, serde_json::Value>>>(value) {
                Ok(v) => front.vars = v.unwrap_or_default(),
                Err(e) => errors.push(typed(e)),
            },
            "redact" => match serde_yaml::from_value::<Option<BTreeMap<String, String>>>(value) {
                Ok(r) => {
                    let r = r.unwrap_or_default();
                    for (name, re) in &r {
                        // The entry's own line, under `redact:`.
                        let at = yaml
                            .lines()
                            .enumerate()
                            .skip(line - 1)
                            .find(|(_, l)| {
                                l.starts_with([' ', '\t'])
                                    && l.trim_start().strip_prefix(name.as_str()).is_some_and(|r| r.starts_with(':'))
                            })
                            .map(|(i, _)| i + 2)
                            .unwrap_or(line);
                        let at = |m: String| TutorialError::at(path, at, format!("front matter: {m}"));
                        if name.is_empty()
                            || !name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                        {
                            errors.push(at(format!(
                                "redaction name `{name}` must be UPPER_CASE (it is written `[{name}]`)"
                            )));
                        }
                        if let Err(e) = regex::Regex::new(re) {
                            errors.push(at(format!("redaction `{name}` is not a valid regex: {e}")));
                        }
                    }
                    front.redact = r;
                }
                Err(e) => errors.push(typed(e)),
            },
            "offline" => {
                let (offline, errs) = super::offline::parse(path, yaml, line, value);
                front.offline = offline;
                errors.extend(errs);
            }
            other => {
                let hint =
                    crate::template::closest(other, KEYS).map(|k| format!("did you mean `{k}`? ")).unwrap_or_default();
                errors.push(err(format!("unknown key `{other}` ({hint}known: {})", KEYS.join(", "))));
            }
        }
    }
    (front, errors)
}

/// A YAML syntax error at the file's line, its message without the YAML document's positions.
fn yaml_error(path: &Path, yaml: &str, e: &serde_yaml::Error) -> TutorialError {
    let mut line = e.location().map(|l| l.line() + 1).unwrap_or(2);
    // A duplicate key is located at its mapping; the second occurrence is the line to fix.
    if let Some(key) = e.to_string().strip_prefix("duplicate entry with key \"").and_then(|r| r.split('"').next())
        && let Some(i) = yaml
            .lines()
            .enumerate()
            .filter(|(_, l)| l.strip_prefix(key).is_some_and(|r| r.trim_start().starts_with(':')))
            .nth(1)
            .map(|(i, _)| i)
    {
        line = i + 2;
    }
    TutorialError::at(path, line, format!("front matter: {}", strip_location(&e.to_string())))
}

/// `… at line 2 column 7` (positions in the YAML document, not the file) removed.
fn strip_location(message: &str) -> String {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| regex::Regex::new(r" at line \d+ column \d+").expect("valid regex"));
    re.replace_all(message, "").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_finds_the_block() {
        let src = "---\ntitle: x\n---\n# Hi\n";
        let (yaml, end) = split(src);
        assert_eq!(yaml, Some("title: x\n"));
        assert_eq!(&src[end..], "# Hi\n");
        assert_eq!(split("# no front matter\n"), (None, 0));
        assert_eq!(split("---\nnever closed\n"), (None, 0));
    }

    #[test]
    fn parses_fields() {
        let (fm, errors) = parse(
            Path::new("t.md"),
            "title: T\nbackend: host\ntimeout: 5s\nvars:\n  who: world\nredact:\n  POD: 'cilium-[a-z0-9]{5}'\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(fm.title.as_deref(), Some("T"));
        assert_eq!(fm.timeout, Some(std::time::Duration::from_secs(5)));
        assert_eq!(fm.vars["who"], "world");
        assert_eq!(fm.redact["POD"], "cilium-[a-z0-9]{5}");
    }

    fn errors(yaml: &str) -> Vec<String> {
        parse(Path::new("t.md"), yaml).1.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            errors("title: T\ncolour: red\n"),
            [
                "t.md:3: front matter: unknown key `colour` (known: title, backend, timeout, vars, redact, kubernetes, offline, needs)"
            ]
        );
        let e = errors("title: T\ntimeout: soon\n");
        assert!(e[0].starts_with("t.md:3:") && e[0].contains("invalid duration `soon`"), "{e:?}");
        let e = errors("redact:\n  POD: '('\n");
        assert!(e[0].starts_with("t.md:3:") && e[0].contains("not a valid regex"), "{e:?}");
    }

    #[test]
    fn every_problem_at_once_with_suggestions() {
        assert_eq!(
            errors("titel: T\ntimeout: 0s\nbackend: docker\nredact:\n  OK: a\n  pod: b\nvar:\n  x: 1\n"),
            [
                "t.md:2: front matter: unknown key `titel` (did you mean `title`? known: title, backend, timeout, vars, redact, kubernetes, offline, needs)",
                "t.md:3: front matter: `timeout: 0s` must be longer than 0",
                "t.md:4: front matter: unknown backend `docker` (expected lab, kind, kube or host)",
                "t.md:7: front matter: redaction name `pod` must be UPPER_CASE (it is written `[pod]`)",
                "t.md:8: front matter: unknown key `var` (did you mean `vars`? known: title, backend, timeout, vars, redact, kubernetes, offline, needs)",
            ]
        );
    }

    #[test]
    fn kubernetes_is_upstream_or_emulated_or_not_given() {
        use crate::backend::LabKubernetes;
        let kubernetes = |yaml: &str| parse(Path::new("t.md"), yaml).0.kubernetes;
        assert_eq!(kubernetes("title: T\n"), None);
        assert_eq!(kubernetes("kubernetes: upstream\n"), Some(LabKubernetes::Upstream));
        assert_eq!(kubernetes("kubernetes: emulated\n"), Some(LabKubernetes::Emulated));
        assert_eq!(
            errors("title: T\nkubernetes: emulation\n"),
            ["t.md:3: front matter: `kubernetes: emulation`: expected `upstream` (the real control plane, the lab's \
                 default) or `emulated` (the deprecated emulation)"]
        );
    }

    #[test]
    fn yaml_syntax_errors_are_at_the_files_line_without_the_documents_position() {
        let e = errors("title: T\nvars:\n  a: 1\n b: 2\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("t.md:5: front matter: "), "{e:?}");
        assert!(!e[0].contains(" at line "), "{e:?}");
        let e = errors("title: T\ntitle: U\n");
        assert!(e[0].starts_with("t.md:3: front matter: ") && e[0].contains("duplicate"), "{e:?}");
    }
}
