//! Container logs as `kubectl logs` shows them, read from the CRI-format files the runtime
//! writes (`TIME STREAM TAG CONTENT`, TAG `F` for a full line, `P` for a partial one):
//! `--timestamps`, `--tail`, `--since`, `--limit-bytes`.

use k8s_openapi::chrono::{DateTime, Utc};

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct LogOptions {
    #[serde(default)]
    pub timestamps: bool,
    /// Last N lines (`--tail`).
    #[serde(default)]
    pub tail: Option<i64>,
    /// Only lines newer than this (`--since`, `--since-time`).
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    #[serde(default)]
    pub limit_bytes: Option<i64>,
}

/// One parsed log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    pub time: &'a str,
    pub stream: &'a str,
    pub full: bool,
    pub content: &'a [u8],
}

/// Parse one CRI log line (without its trailing newline).
pub fn parse(line: &[u8]) -> Option<Line<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    let tag = parts.next()?;
    let content = parts.next().unwrap_or_default();
    Some(Line { time, stream, full: tag != b"P", content })
}

/// What `kubectl logs` prints for one record.
pub fn render(l: &Line<'_>, timestamps: bool, out: &mut Vec<u8>) {
    if timestamps {
        out.extend_from_slice(l.time.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(l.content);
    if l.full {
        out.push(b'\n');
    }
}

/// The whole of a log file as `kubectl logs` prints it with `opts`.
pub fn format(file: &[u8], opts: &LogOptions) -> Vec<u8> {
    let lines: Vec<Line<'_>> = file
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(parse)
        .filter(|l| match opts.since {
            Some(since) => DateTime::parse_from_rfc3339(l.time).map(|t| t.with_timezone(&Utc) >= since).unwrap_or(true),
            None => true,
        })
        .collect();
    let skip = match opts.tail {
        Some(n) if n >= 0 => lines.len().saturating_sub(n as usize),
        _ => 0,
    };
    let mut out = Vec::new();
    for l in &lines[skip..] {
        render(l, opts.timestamps, &mut out);
    }
    if let Some(limit) = opts.limit_bytes.filter(|l| *l >= 0) {
        out.truncate(limit as usize);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &[u8] = b"2026-12-01T06:00:00.000000001Z stdout F one\n\
2026-12-01T06:00:01.000000000Z stderr F two\n\
2026-12-01T06:00:02.000000000Z stdout P thr\n\
2026-12-01T06:00:02.500000000Z stdout F ee\n";

    #[test]
    fn plain_tail_timestamps_since_limit() {
        assert_eq!(format(FILE, &LogOptions::default()), b"one\ntwo\nthree\n");
        let tail = LogOptions { tail: Some(1), ..Default::default() };
        assert_eq!(format(FILE, &tail), b"ee\n");
        let ts = LogOptions { timestamps: true, tail: Some(3), ..Default::default() };
        assert_eq!(
            String::from_utf8(format(FILE, &ts)).unwrap(),
            "2026-12-01T06:00:01.000000000Z two\n2026-12-01T06:00:02.000000000Z thr2026-12-01T06:00:02.500000000Z ee\n"
        );
        let since = LogOptions {
            since: Some(DateTime::parse_from_rfc3339("2026-12-01T06:00:01Z").unwrap().with_timezone(&Utc)),
            ..Default::default()
        };
        assert_eq!(format(FILE, &since), b"two\nthree\n");
        let limit = LogOptions { limit_bytes: Some(5), ..Default::default() };
        assert_eq!(format(FILE, &limit), b"one\nt");
    }

    #[test]
    fn odd_lines() {
        assert_eq!(parse(b"t stdout F"), Some(Line { time: "t", stream: "stdout", full: true, content: b"" }));
        assert_eq!(parse(b"garbage"), None);
        assert_eq!(format(b"t stdout F a b  c\n", &LogOptions::default()), b"a b  c\n");
    }
}
