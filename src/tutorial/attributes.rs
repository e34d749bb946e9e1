//! The fence info string: `console {on=kind-worker retry=60s id=worker-routes}`.
//! The language comes first so that GitHub and mdBook still highlight the block.

use std::time::Duration;

use super::model::Attributes;

/// What is wrong with a fence's attribute list (the caller adds file:line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    #[error("expected `{{` to open the attribute list after `{lang}`, found `{found}`")]
    NotOpened { lang: String, found: String },
    #[error("attribute list `{0}` is not closed with `}}`")]
    NotClosed(String),
    #[error("malformed attribute list `{0}`: nested braces")]
    NestedBraces(String),
    #[error("malformed attribute list `{{{0}}}`: unterminated quote")]
    UnterminatedQuote(String),
    #[error("malformed attribute list: empty attribute name")]
    EmptyName,
    #[error("unknown attribute `{0}` (known: id, on, retry, timeout, exit, bg, backend, skip, hidden, file)")]
    Unknown(String),
    #[error("attribute `{0}` needs a value (`{0}=…`)")]
    NeedsValue(String),
    #[error("attribute `{key}` is a flag; `{key}={value}` is not valid")]
    NotAFlag { key: String, value: String },
    #[error("invalid id `{0}`: use letters, digits, `-`, `_` and `.`")]
    InvalidId(String),
    #[error("invalid duration `{value}` for `{key}=` (expected e.g. 30s, 2m, 500ms)")]
    InvalidDuration { key: String, value: String },
    #[error("invalid exit status `{0}` (expected a number)")]
    InvalidExit(String),
    /// `on=` or `backend=` names no target or backend (the message says which and why).
    #[error("{message}")]
    InvalidValue { key: String, message: String },
    /// `file=` together with attributes that only apply to executed blocks.
    #[error("attribute `{0}` does not apply to a file= block")]
    NotForFiles(String),
}

/// Language and attributes of one fence.
pub fn parse_info(info: &str) -> Result<(String, Attributes, bool), AttributeError> {
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
        .ok_or_else(|| AttributeError::NotOpened { lang: lang.to_string(), found: rest.to_string() })?;
    let inner = inner.strip_suffix('}').ok_or_else(|| AttributeError::NotClosed(rest.to_string()))?;
    if inner.contains(['{', '}']) {
        return Err(AttributeError::NestedBraces(rest.to_string()));
    }
    for token in tokens(inner)? {
        apply(&mut attrs, &token)?;
    }
    Ok((lang.to_string(), attrs, true))
}

/// Split on whitespace (or commas), keeping `key="a value"` together.
fn tokens(s: &str) -> Result<Vec<String>, AttributeError> {
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
        return Err(AttributeError::UnterminatedQuote(s.to_string()));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn duration(key: &str, value: &str) -> Result<Duration, AttributeError> {
    humantime::parse_duration(value)
        .map_err(|_| AttributeError::InvalidDuration { key: key.to_string(), value: value.to_string() })
}

fn apply(attrs: &mut Attributes, token: &str) -> Result<(), AttributeError> {
    let (key, value) = match token.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (token, None),
    };
    let need = |v: Option<&str>| -> Result<String, AttributeError> {
        match v {
            Some(v) if !v.is_empty() => Ok(v.to_string()),
            _ => Err(AttributeError::NeedsValue(key.to_string())),
        }
    };
    let flag = |v: Option<&str>| -> Result<bool, AttributeError> {
        match v {
            None | Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(AttributeError::NotAFlag { key: key.to_string(), value: v.to_string() }),
        }
    };
    let invalid = |message: String| AttributeError::InvalidValue { key: key.to_string(), message };
    match key {
        "id" => {
            let v = need(value)?;
            if !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') {
                return Err(AttributeError::InvalidId(v));
            }
            attrs.id = Some(v);
        }
        "on" => attrs.on = need(value)?.parse().map_err(invalid)?,
        "retry" => attrs.retry = Some(duration(key, &need(value)?)?),
        "timeout" => attrs.timeout = Some(duration(key, &need(value)?)?),
        "exit" => {
            let v = need(value)?;
            attrs.exit = v.parse().map_err(|_| AttributeError::InvalidExit(v))?;
        }
        "bg" => attrs.bg = flag(value)?,
        "skip" => attrs.skip = flag(value)?,
        "hidden" => attrs.hidden = flag(value)?,
        "backend" => attrs.backend = Some(need(value)?.parse().map_err(invalid)?),
        "file" => attrs.file = Some(need(value)?),
        "" => return Err(AttributeError::EmptyName),
        other => return Err(AttributeError::Unknown(other.to_string())),
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
        let err = |s: &str| parse_info(s).unwrap_err().to_string();
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
