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
    #[error("unknown attribute `{name}` ({}known: id, on, retry, timeout, exit, bg, backend, skip, hidden, file)",
        suggestion.as_ref().map(|s| format!("did you mean `{s}`? ")).unwrap_or_default())]
    Unknown { name: String, suggestion: Option<String> },
    #[error("attribute `{0}` needs a value (`{0}=…`)")]
    NeedsValue(String),
    #[error("attribute `{key}` is a flag; `{key}={value}` is not valid")]
    NotAFlag { key: String, value: String },
    #[error("invalid id `{0}`: use letters, digits, `-`, `_` and `.`")]
    InvalidId(String),
    #[error("invalid duration `{value}` for `{key}=` (expected e.g. 30s, 2m, 500ms)")]
    InvalidDuration { key: String, value: String },
    #[error("invalid exit status `{0}` (expected a number from 0 to 255)")]
    InvalidExit(String),
    /// `timeout=0s`: the block would be killed before it starts.
    #[error("`{key}={value}` must be longer than 0")]
    ZeroDuration { key: String, value: String },
    /// `on=` or `backend=` names no target or backend (the message says which and why).
    #[error("{message}")]
    InvalidValue { key: String, message: String },
    /// `file=` together with attributes that only apply to executed blocks.
    #[error("attribute `{0}` does not apply to a file= block")]
    NotForFiles(String),
}

/// Every known attribute name (for "did you mean").
pub const NAMES: &[&str] = &["id", "on", "retry", "timeout", "exit", "bg", "backend", "skip", "hidden", "file"];

/// Language and attributes of one fence. Every bad attribute of the list is reported, in order.
pub fn parse_info(info: &str) -> Result<(String, Attributes, bool), Vec<AttributeError>> {
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
        .ok_or_else(|| vec![AttributeError::NotOpened { lang: lang.to_string(), found: rest.to_string() }])?;
    let inner = inner.strip_suffix('}').ok_or_else(|| vec![AttributeError::NotClosed(rest.to_string())])?;
    if inner.contains(['{', '}']) {
        return Err(vec![AttributeError::NestedBraces(rest.to_string())]);
    }
    let errors: Vec<AttributeError> =
        tokens(inner).map_err(|e| vec![e])?.iter().filter_map(|t| apply(&mut attrs, t).err()).collect();
    if errors.is_empty() { Ok((lang.to_string(), attrs, true)) } else { Err(errors) }
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

/// A time-out of zero would kill the block before it starts (`retry=0s` is fine: one try).
fn positive(key: &str, value: &str) -> Result<Duration, AttributeError> {
    match duration(key, value)? {
        d if d.is_zero() => Err(AttributeError::ZeroDuration { key: key.to_string(), value: value.to_string() }),
        d => Ok(d),
    }
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
        "on" => attrs.on = need(value)?.parse().map_err(|e: crate::backend::InvalidTarget| invalid(e.to_string()))?,
        "retry" => attrs.retry = Some(duration(key, &need(value)?)?),
        "timeout" => attrs.timeout = Some(positive(key, &need(value)?)?),
        "exit" => {
            let v = need(value)?;
            // An exit status is one byte: 256 would never be seen (bash reports 0).
            attrs.exit = v.parse::<u8>().map(i32::from).map_err(|_| AttributeError::InvalidExit(v))?;
        }
        "bg" => attrs.bg = flag(value)?,
        "skip" => attrs.skip = flag(value)?,
        "hidden" => attrs.hidden = flag(value)?,
        "backend" => {
            attrs.backend =
                Some(need(value)?.parse().map_err(|e: crate::backend::UnknownBackend| invalid(e.to_string()))?)
        }
        "file" => attrs.file = Some(need(value)?),
        "" => return Err(AttributeError::EmptyName),
        other => {
            let suggestion = crate::template::closest(other, NAMES).map(str::to_string);
            return Err(AttributeError::Unknown { name: other.to_string(), suggestion });
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
        let err = |s: &str| parse_info(s).unwrap_err()[0].to_string();
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

    #[test]
    fn ranges_and_suggestions() {
        let errs = |s: &str| parse_info(s).unwrap_err().iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(errs("sh {exit=256}"), ["invalid exit status `256` (expected a number from 0 to 255)"]);
        assert_eq!(errs("sh {exit=-1}"), ["invalid exit status `-1` (expected a number from 0 to 255)"]);
        assert_eq!(parse_info("sh {exit=255}").unwrap().1.exit, 255);
        assert_eq!(errs("sh {timeout=0s}"), ["`timeout=0s` must be longer than 0"]);
        assert_eq!(parse_info("sh {retry=0s}").unwrap().1.retry, Some(Duration::ZERO));
        assert!(errs("sh {retry=-1s}")[0].contains("invalid duration `-1s`"));
        // Every bad attribute of one list, in order, each with its suggestion.
        assert_eq!(
            errs("sh {tmeout=1s exit=300 on=kind-worker hiden}"),
            [
                "unknown attribute `tmeout` (did you mean `timeout`? known: id, on, retry, timeout, exit, bg, backend, skip, hidden, file)",
                "invalid exit status `300` (expected a number from 0 to 255)",
                "unknown attribute `hiden` (did you mean `hidden`? known: id, on, retry, timeout, exit, bg, backend, skip, hidden, file)",
            ]
        );
    }
}
