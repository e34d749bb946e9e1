//! Optional YAML front matter between `---` lines at the very top of a tutorial.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::TutorialError;
use super::model::FrontMatter;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    title: Option<String>,
    backend: Option<String>,
    timeout: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    redact: BTreeMap<String, String>,
}

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

/// Parse the YAML (which starts on line 2 of the file).
pub fn parse(path: &Path, yaml: &str) -> Result<FrontMatter, TutorialError> {
    let raw: Raw = if yaml.trim().is_empty() {
        serde_yaml::from_str("{}").expect("empty mapping")
    } else {
        serde_yaml::from_str(yaml).map_err(|e| {
            let line = e.location().map(|l| l.line() + 1).unwrap_or(1);
            TutorialError::at(path, line, format!("front matter: {e}"))
        })?
    };
    let line_of = |key: &str| yaml.lines().position(|l| l.starts_with(&format!("{key}:"))).map(|i| i + 2).unwrap_or(1);
    let backend = match raw.backend {
        Some(b) => Some(b.parse().map_err(|m: String| TutorialError::at(path, line_of("backend"), m))?),
        None => None,
    };
    let timeout = match raw.timeout {
        Some(t) => Some(humantime::parse_duration(&t).map_err(|_| {
            TutorialError::at(
                path,
                line_of("timeout"),
                format!("front matter: invalid duration `{t}` for `timeout` (expected e.g. 30s, 2m)"),
            )
        })?),
        None => None,
    };
    for (name, re) in &raw.redact {
        if !name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') || name.is_empty() {
            return Err(TutorialError::at(
                path,
                line_of("redact"),
                format!("front matter: redaction name `{name}` must be UPPER_CASE (it is written `[{name}]`)"),
            ));
        }
        if let Err(e) = regex::Regex::new(re) {
            return Err(TutorialError::at(
                path,
                line_of("redact"),
                format!("front matter: redaction `{name}` is not a valid regex: {e}"),
            ));
        }
    }
    Ok(FrontMatter { title: raw.title, backend, timeout, vars: raw.vars, redact: raw.redact })
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
        let fm = parse(
            Path::new("t.md"),
            "title: T\nbackend: host\ntimeout: 5s\nvars:\n  who: world\nredact:\n  POD: 'cilium-[a-z0-9]{5}'\n",
        )
        .unwrap();
        assert_eq!(fm.title.as_deref(), Some("T"));
        assert_eq!(fm.timeout, Some(std::time::Duration::from_secs(5)));
        assert_eq!(fm.vars["who"], "world");
        assert_eq!(fm.redact["POD"], "cilium-[a-z0-9]{5}");
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse(Path::new("t.md"), "title: T\ncolour: red\n").unwrap_err().to_string();
        assert!(e.starts_with("t.md:3: front matter: unknown field `colour`"), "{e}");
        let e = parse(Path::new("t.md"), "title: T\ntimeout: soon\n").unwrap_err().to_string();
        assert!(e.starts_with("t.md:3:") && e.contains("invalid duration `soon`"), "{e}");
        let e = parse(Path::new("t.md"), "redact:\n  POD: '('\n").unwrap_err().to_string();
        assert!(e.contains("not a valid regex"), "{e}");
    }
}
