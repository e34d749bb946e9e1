//! The front matter's `offline:` map (docs/architecture.md, "Tutorial format"): URLs a tutorial
//! fetches (`kubectl apply -f https://…`, `curl`, `helm repo add`) and the content the lab's
//! outside world serves for each, since the lab has no internet. Other backends fetch the real
//! URL and ignore the map.
//!
//! ```yaml
//! offline:
//!   https://raw.githubusercontent.com/org/repo/v1/deploy.yaml: offline/deploy.yaml   # beside the tutorial
//!   https://example.com/hello.txt: {file: hello.txt, type: text/plain}               # its file=hello.txt block
//! ```

use std::path::{Path, PathBuf};

use super::error::TutorialError;
use super::model::{BlockKind, OfflineSource, OfflineUrl, Step};

/// The keys of an entry written as a map.
const ENTRY_KEYS: &[&str] = &["path", "file", "type"];

/// Parse the `offline:` value; `line` is the file line of the `offline:` key, `yaml` the front
/// matter (starting on the file's line 2).
pub fn parse(path: &Path, yaml: &str, line: usize, value: serde_yaml::Value) -> (Vec<OfflineUrl>, Vec<TutorialError>) {
    let mut out: Vec<OfflineUrl> = Vec::new();
    let mut errors = Vec::new();
    let map = match value {
        serde_yaml::Value::Mapping(m) => m,
        serde_yaml::Value::Null => return (out, errors),
        _ => {
            errors.push(TutorialError::at(
                path,
                line,
                "front matter: `offline` maps URLs to what the lab serves for them (`URL: FILE` lines)",
            ));
            return (out, errors);
        }
    };
    for (key, value) in map {
        let Some(url) = key.as_str() else {
            errors.push(TutorialError::at(
                path,
                line,
                format!("front matter: `offline`: keys are URLs, found `{key:?}`"),
            ));
            continue;
        };
        let at = entry_line(yaml, line, url);
        let err = |m: String| TutorialError::at(path, at, format!("front matter: `offline`: `{url}`: {m}"));
        let (host, target) = match split_url(url) {
            Ok(parts) => parts,
            Err(m) => {
                errors.push(err(m));
                continue;
            }
        };
        let (source, content_type) = match entry(value) {
            Ok(s) => s,
            Err(m) => {
                errors.push(err(m));
                continue;
            }
        };
        if let Some(first) = out.iter().find(|o| o.host == host && o.target == target) {
            errors.push(err(format!(
                "served twice: line {} serves the same host and path (the lab serves one content over http and \
                 https)",
                first.line
            )));
            continue;
        }
        out.push(OfflineUrl { url: url.to_string(), host, target, source, content_type, line: at });
    }
    (out, errors)
}

/// The file line of `url`'s entry under `offline:` (quoted or not), else the key's line.
fn entry_line(yaml: &str, line: usize, url: &str) -> usize {
    yaml.lines()
        .enumerate()
        .skip(line - 1)
        .find(|(_, l)| {
            let l = l.trim_start();
            let l = l.strip_prefix(['"', '\'']).unwrap_or(l);
            l.strip_prefix(url).is_some_and(|r| r.trim_start_matches(['"', '\'']).trim_start().starts_with(':'))
        })
        .map(|(i, _)| i + 2)
        .unwrap_or(line)
}

/// `URL: PATH` or `URL: {path: P | file: NAME, type: T}`.
fn entry(value: serde_yaml::Value) -> Result<(OfflineSource, Option<String>), String> {
    let path = |p: &str| -> Result<OfflineSource, String> {
        let pb = PathBuf::from(p);
        if p.is_empty() || pb.is_absolute() {
            return Err(format!("`{p}` must be a path relative to the tutorial's folder"));
        }
        Ok(OfflineSource::Path(pb))
    };
    match value {
        serde_yaml::Value::String(s) => Ok((path(&s)?, None)),
        serde_yaml::Value::Mapping(m) => {
            let (mut source, mut ctype) = (None, None);
            for (k, v) in m {
                let k = k.as_str().unwrap_or_default().to_string();
                let Some(v) = v.as_str().map(str::to_string) else {
                    return Err(format!("`{k}` takes a string"));
                };
                match k.as_str() {
                    "path" | "file" if source.is_some() => {
                        return Err("give one of `path` (a file beside the tutorial) or `file` (a file= block)".into());
                    }
                    "path" => source = Some(path(&v)?),
                    "file" => source = Some(OfflineSource::Block(v)),
                    "type" => {
                        let (kind, sub) = v.split_once('/').unwrap_or_default();
                        if kind.is_empty() || sub.is_empty() || v.contains(['\r', '\n']) {
                            return Err(format!("`type: {v}` is not a media type (e.g. application/json)"));
                        }
                        ctype = Some(v);
                    }
                    other => {
                        let hint = crate::template::closest(other, ENTRY_KEYS)
                            .map(|k| format!("did you mean `{k}`? "))
                            .unwrap_or_default();
                        return Err(format!("unknown key `{other}` ({hint}known: {})", ENTRY_KEYS.join(", ")));
                    }
                }
            }
            let source = source
                .ok_or("say what to serve: `path: FILE` (beside the tutorial) or `file: NAME` (a file= block)")?;
            Ok((source, ctype))
        }
        _ => Err("expected a path relative to the tutorial, or `{path: FILE}` / `{file: NAME}`".into()),
    }
}

/// `https://Host.example/a/b?x=1` → (`host.example`, `/a/b?x=1`), or why the lab cannot serve it.
pub fn split_url(url: &str) -> Result<(String, String), String> {
    if url.contains('#') {
        return Err("a fragment (`#…`) is never sent to a server: leave it out".into());
    }
    if !url.contains("://") {
        return Err("not an absolute URL (expected http://HOST/… or https://HOST/…)".into());
    }
    let uri: http::Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
    let scheme = uri.scheme_str().ok_or("not an absolute URL (expected http://HOST/… or https://HOST/…)")?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        other => return Err(format!("`{other}:` URLs cannot be served: the lab serves http:// and https://")),
    };
    let authority = uri.authority().ok_or("no host")?;
    if authority.as_str().contains('@') {
        return Err("user information (`user@`) is not supported".into());
    }
    if let Some(port) = authority.port_u16()
        && port != default_port
    {
        return Err(format!("port {port}: the lab's outside world serves ports 80 (http) and 443 (https)"));
    }
    let host = authority.host().to_ascii_lowercase();
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return Err("an address, not a name: the lab serves content by host name".into());
    }
    if !host.contains('.')
        || host.split('.').any(|l| {
            l.is_empty()
                || l.len() > 63
                || l.starts_with('-')
                || l.ends_with('-')
                || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    {
        return Err(format!("`{host}` is not a public host name (labels of letters, digits and `-`, with a dot)"));
    }
    let target = uri.path_and_query().map(|p| p.as_str()).filter(|p| !p.is_empty()).unwrap_or("/");
    let target = if target.starts_with('/') { target.to_string() } else { format!("/{target}") };
    Ok((host, target))
}

/// Entries naming a `file=` block the tutorial does not have, each at its line.
pub fn check_blocks(path: &Path, offline: &[OfflineUrl], steps: &[Step]) -> Vec<TutorialError> {
    let files: Vec<(&str, usize)> = steps
        .iter()
        .flat_map(|s| s.blocks.iter())
        .filter_map(|b| match &b.kind {
            BlockKind::File(name) => Some((name.as_str(), b.line)),
            _ => None,
        })
        .collect();
    let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    let mut errors = Vec::new();
    for o in offline {
        let OfflineSource::Block(name) = &o.source else { continue };
        let lines: Vec<String> = files.iter().filter(|(n, _)| n == name).map(|(_, l)| l.to_string()).collect();
        let problem = match lines.len() {
            1 => continue,
            0 => {
                let hint = crate::template::closest(name, &names)
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                format!("no `file={name}` block in the tutorial{hint}")
            }
            _ => format!(
                "{} blocks write `file={name}` (lines {}): serve a file beside the tutorial with `path:` instead",
                lines.len(),
                lines.join(", ")
            ),
        };
        errors.push(TutorialError::at(path, o.line, format!("front matter: `offline`: `{}`: {problem}", o.url)));
    }
    errors
}

/// The `file=` block's body or the file beside the tutorial (`tutorial` is its path) that
/// `o` serves.
pub fn content(o: &OfflineUrl, tutorial: &Path, steps: &[Step]) -> Result<Vec<u8>, TutorialError> {
    match &o.source {
        OfflineSource::Block(name) => steps
            .iter()
            .flat_map(|s| s.blocks.iter())
            .find(|b| matches!(&b.kind, BlockKind::File(n) if n == name))
            .map(|b| b.body.clone().into_bytes())
            .ok_or_else(|| {
                TutorialError::at(tutorial, o.line, format!("front matter: `offline`: no `file={name}` block"))
            }),
        OfflineSource::Path(rel) => {
            let file = source_path(tutorial, rel);
            std::fs::read(&file).map_err(|e| {
                TutorialError::at(
                    tutorial,
                    o.line,
                    format!("front matter: `offline`: `{}`: cannot read {}: {e}", o.url, file.display()),
                )
            })
        }
    }
}

/// Where a `path:` source is: relative to the tutorial's folder.
pub fn source_path(tutorial: &Path, rel: &Path) -> PathBuf {
    tutorial.parent().unwrap_or(Path::new("")).join(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_and_target() {
        assert_eq!(
            split_url("https://Raw.GitHubUserContent.com/a/b.yaml").unwrap(),
            ("raw.githubusercontent.com".into(), "/a/b.yaml".into())
        );
        assert_eq!(split_url("http://example.com").unwrap(), ("example.com".into(), "/".into()));
        assert_eq!(split_url("https://example.com:443/x?y=1&z").unwrap(), ("example.com".into(), "/x?y=1&z".into()));
        for (bad, why) in [
            ("ftp://example.com/x", "`ftp:` URLs cannot be served"),
            ("example.com/x", "not an absolute URL"),
            ("https://example.com:8443/x", "port 8443"),
            ("https://203.0.113.7/x", "an address, not a name"),
            ("https://localhost/x", "not a public host name"),
            ("https://a..b/x", "not a public host name"),
            ("https://u@example.com/x", "user information"),
            ("https://example.com/x#top", "fragment"),
            ("https://exa mple.com/", "not a URL"),
        ] {
            let e = split_url(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    fn parsed(yaml: &str) -> (Vec<OfflineUrl>, Vec<String>) {
        let value: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
        let (o, e) = parse(Path::new("t.md"), yaml, 2, value["offline"].clone());
        (o, e.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn entries_are_paths_or_maps() {
        let (o, e) = parsed(
            "offline:\n  https://example.com/a.yaml: offline/a.yaml\n  \"http://example.org/b\": {file: b.txt, type: text/plain}\n",
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(o[0].source, OfflineSource::Path("offline/a.yaml".into()));
        assert_eq!((o[0].host.as_str(), o[0].target.as_str(), o[0].line), ("example.com", "/a.yaml", 3));
        assert_eq!(o[1].source, OfflineSource::Block("b.txt".into()));
        assert_eq!(o[1].content_type.as_deref(), Some("text/plain"));
        assert_eq!(o[1].line, 4);
    }

    #[test]
    fn bad_entries_name_their_line() {
        let (_, e) = parsed(
            "offline:\n  https://example.com/a: {paht: a}\n  https://example.com:81/b: b\n  https://example.com/c: {type: json, path: c}\n  http://example.com/a: /etc/passwd\n  https://example.com/d: {}\n  https://example.com/e: [x]\n",
        );
        assert_eq!(
            e,
            [
                "t.md:3: front matter: `offline`: `https://example.com/a`: unknown key `paht` (did you mean `path`? known: path, file, type)",
                "t.md:4: front matter: `offline`: `https://example.com:81/b`: port 81: the lab's outside world serves ports 80 (http) and 443 (https)",
                "t.md:5: front matter: `offline`: `https://example.com/c`: `type: json` is not a media type (e.g. application/json)",
                "t.md:6: front matter: `offline`: `http://example.com/a`: `/etc/passwd` must be a path relative to the tutorial's folder",
                "t.md:7: front matter: `offline`: `https://example.com/d`: say what to serve: `path: FILE` (beside the tutorial) or `file: NAME` (a file= block)",
                "t.md:8: front matter: `offline`: `https://example.com/e`: expected a path relative to the tutorial, or `{path: FILE}` / `{file: NAME}`",
            ]
        );
        let (_, e) = parsed("offline:\n  https://example.com/a: a\n  http://example.com/a: b\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("t.md:4:") && e[0].contains("served twice: line 3"), "{e:?}");
        let (_, e) = parsed("offline: https://example.com/a\n");
        assert!(e[0].starts_with("t.md:2:") && e[0].contains("maps URLs"), "{e:?}");
    }
}
