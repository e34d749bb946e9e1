//! The fence info string: `console {on=kind-worker retry=60s id=worker-routes}`.
//! The language comes first so that GitHub and mdBook still highlight the block.

use std::time::Duration;

use super::model::Attributes;

/// Language and attributes of one fence. `Err` carries a message (the caller adds file:line).
pub fn parse_info(info: &str) -> Result<(String, Attributes, bool), String> {
    let info = info.trim();
    let (lang, rest) = match info.find(|c: char| c.is_whitespace() || c == '{') {
        Some(i) => (&info[..i], info[i..].trim()),
        None => (info, ""),
    };
    let mut attrs = Attributes::default();
    if rest.is_empty() {
        return Ok((lang.to_string(), attrs, false));
    }
    let inner = rest
        .strip_prefix('{')
        .ok_or_else(|| format!("expected `{{` to open the attribute list after `{lang}`, found `{rest}`"))?;
    let inner = inner.strip_suffix('}').ok_or_else(|| format!("attribute list `{rest}` is not closed with `}}`"))?;
    if inner.contains(['{', '}']) {
        return Err(format!("malformed attribute list `{rest}`: nested braces"));
    }
    for token in tokens(inner)? {
        apply(&mut attrs, &token)?;
    }
    Ok((lang.to_string(), attrs, true))
}

/// Split on whitespace (or commas), keeping `key="a value"` together.
fn tokens(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            c if (c.is_whitespace() || c == ',') && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(format!("malformed attribute list `{{{s}}}`: unterminated quote"));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn duration(key: &str, value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value)
        .map_err(|_| format!("invalid duration `{value}` for `{key}=` (expected e.g. 30s, 2m, 500ms)"))
}

fn apply(attrs: &mut Attributes, token: &str) -> Result<(), String> {
    let (key, value) = match token.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (token, None),
    };
    let need = |v: Option<&str>| -> Result<String, String> {
        match v {
            Some(v) if !v.is_empty() => Ok(v.to_string()),
            _ => Err(format!("attribute `{key}` needs a value (`{key}=…`)")),
        }
    };
    let flag = |v: Option<&str>| -> Result<bool, String> {
        match v {
            None | Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(format!("attribute `{key}` is a flag; `{key}={v}` is not valid")),
        }
    };
    match key {
        "id" => {
            let v = need(value)?;
            if !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') {
                return Err(format!("invalid id `{v}`: use letters, digits, `-`, `_` and `.`"));
            }
            attrs.id = Some(v);
        }
        "on" => attrs.on = need(value)?.parse()?,
        "retry" => attrs.retry = Some(duration(key, &need(value)?)?),
        "timeout" => attrs.timeout = Some(duration(key, &need(value)?)?),
        "exit" => {
            let v = need(value)?;
            attrs.exit = v.parse().map_err(|_| format!("invalid exit status `{v}` (expected a number)"))?;
        }
        "bg" => attrs.bg = flag(value)?,
        "skip" => attrs.skip = flag(value)?,
        "hidden" => attrs.hidden = flag(value)?,
        "backend" => attrs.backend = Some(need(value)?.parse()?),
        "file" => attrs.file = Some(need(value)?),
        "" => return Err("malformed attribute list: empty attribute name".into()),
        other => {
            return Err(format!(
                "unknown attribute `{other}` (known: id, on, retry, timeout, exit, bg, backend, skip, hidden, file)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{BackendKind, Target};

    #[test]
    fn language_only() {
        let (lang, a, braces) = parse_info("console").unwrap();
        assert_eq!(lang, "console");
        assert!(!braces);
        assert_eq!(a.on, Target::Host);
    }

    #[test]
    fn every_attribute() {
        let (lang, a, _) = parse_info(
            "sh {id=x on=kind-worker retry=60s timeout=2m exit=3 bg backend=lab skip hidden file=\"a b.yaml\"}",
        )
        .unwrap();
        assert_eq!(lang, "sh");
        assert_eq!(a.id.as_deref(), Some("x"));
        assert_eq!(a.on, Target::Node("kind-worker".into()));
        assert_eq!(a.retry, Some(Duration::from_secs(60)));
        assert_eq!(a.timeout, Some(Duration::from_secs(120)));
        assert_eq!(a.exit, 3);
        assert!(a.bg && a.skip && a.hidden);
        assert_eq!(a.backend, Some(BackendKind::Lab));
        assert_eq!(a.file.as_deref(), Some("a b.yaml"));
    }

    #[test]
    fn commas_separate_too() {
        let (_, a, _) = parse_info("bash {on=pod/x,exit=1}").unwrap();
        assert_eq!(a.exit, 1);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let err = |s: &str| parse_info(s).unwrap_err();
        assert!(err("sh {frobnicate=1}").contains("unknown attribute `frobnicate`"));
        assert!(err("sh {retry=abc}").contains("invalid duration `abc`"));
        assert!(err("sh {on=x").contains("not closed"));
        assert!(err("sh on=x").contains("expected `{`"));
        assert!(err("sh {exit=}").contains("needs a value"));
        assert!(err("sh {bg=maybe}").contains("is a flag"));
        assert!(err("sh {backend=docker}").contains("unknown backend"));
        assert!(err("sh {on=a/b}").contains("invalid target"));
        assert!(err("sh {id=\"a}").contains("unterminated quote"));
    }
}
