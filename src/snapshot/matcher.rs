//! Expected-vs-actual matching, trycmd/snapbox style, line by line:
//! - `[..]` matches any text within a line;
//! - a line that is exactly `...` matches any number of lines (zero included);
//! - a line ending in ` (re)` is a regex for the whole line;
//! - `[NAME]` matches the front matter's redaction `NAME`.
//!
//! Trailing white space and a final newline are not significant: editors strip them.

use std::collections::BTreeMap;

use regex::Regex;

#[derive(Debug, thiserror::Error)]
#[error("expected output line `{line}`: invalid regex: {source}")]
pub struct MatchError {
    pub line: String,
    pub source: regex::Error,
}

enum Pattern {
    Literal(String),
    Regex(Regex),
    AnyLines,
}

pub struct Matcher {
    redactions: Vec<(String, String)>,
}

impl Matcher {
    /// `redactions` were validated as regexes by the front-matter parser; check again since a
    /// matcher can be built from anywhere.
    pub fn new(redactions: &BTreeMap<String, String>) -> Result<Matcher, MatchError> {
        for (name, re) in redactions {
            Regex::new(re).map_err(|source| MatchError { line: format!("[{name}]"), source })?;
        }
        Ok(Matcher { redactions: redactions.iter().map(|(k, v)| (format!("[{k}]"), v.clone())).collect() })
    }

    /// Compile one expected line.
    fn pattern(&self, line: &str) -> Result<Pattern, MatchError> {
        let line = line.trim_end();
        if line == "..." {
            return Ok(Pattern::AnyLines);
        }
        if let Some(re) = line.strip_suffix(" (re)") {
            return Regex::new(&format!("^(?:{re})$"))
                .map(Pattern::Regex)
                .map_err(|source| MatchError { line: line.into(), source });
        }
        let has_redaction = self.redactions.iter().any(|(n, _)| line.contains(n.as_str()));
        if !line.contains("[..]") && !has_redaction {
            return Ok(Pattern::Literal(line.to_string()));
        }
        let mut re = String::from("^");
        let mut rest = line;
        'outer: while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("[..]") {
                re.push_str(".*?");
                rest = r;
                continue;
            }
            for (name, pat) in &self.redactions {
                if let Some(r) = rest.strip_prefix(name.as_str()) {
                    re.push_str(&format!("(?:{pat})"));
                    rest = r;
                    continue 'outer;
                }
            }
            let c = rest.chars().next().unwrap();
            re.push_str(&regex::escape(&c.to_string()));
            rest = &rest[c.len_utf8()..];
        }
        re.push('$');
        Regex::new(&re).map(Pattern::Regex).map_err(|source| MatchError { line: line.into(), source })
    }

    fn patterns(&self, expected: &str) -> Vec<Pattern> {
        // An invalid ` (re)` line can only match itself literally; the runner reports
        // invalid regexes through `validate` before running.
        lines(expected).map(|l| self.pattern(l).unwrap_or_else(|_| Pattern::Literal(l.trim_end().into()))).collect()
    }

    /// Errors for every invalid ` (re)` line in `expected` (used by `tutor check`).
    pub fn validate(&self, expected: &str) -> Result<(), MatchError> {
        lines(expected).try_for_each(|l| self.pattern(l).map(|_| ()))
    }

    pub fn is_match(&self, expected: &str, actual: &str) -> bool {
        let pats = self.patterns(expected);
        let acts: Vec<&str> = lines(actual).map(str::trim_end).collect();
        matches_all(&pats, &acts)
    }

    /// For a matching pair, the actual lines each expected line covers, in order: one line for
    /// a pattern line, any number (possibly none) for `...`. `None` when they do not match, or
    /// when the texts are too large to align (more than [`MAX_CELLS`] line pairs).
    pub fn cover(&self, expected: &str, actual: &str) -> Option<Vec<std::ops::Range<usize>>> {
        let pats = self.patterns(expected);
        let acts: Vec<&str> = lines(actual).map(str::trim_end).collect();
        let (n, m) = (pats.len(), acts.len());
        if (n + 1).saturating_mul(m + 1) > MAX_CELLS {
            return None;
        }
        let reach = reach_table(&pats, &acts);
        if !reach[0][0] {
            return None;
        }
        let mut out = Vec::with_capacity(n);
        let mut j = 0;
        for (i, p) in pats.iter().enumerate() {
            let start = j;
            if matches!(p, Pattern::AnyLines) {
                // Take as few lines as still lets the rest match.
                while !reach[i + 1][j] {
                    j += 1;
                }
            } else {
                j += 1;
            }
            out.push(start..j);
        }
        Some(out)
    }

    /// `actual`, with each line that an expected pattern covers shown as that pattern, and runs
    /// of lines swallowed by `...` shown as `...`. Diffing `expected` against this shows only
    /// real differences; writing it in update mode keeps the wildcards that still hold.
    pub fn normalize(&self, expected: &str, actual: &str) -> String {
        let exp: Vec<&str> = lines(expected).map(str::trim_end).collect();
        let pats = self.patterns(expected);
        let acts: Vec<&str> = lines(actual).map(str::trim_end).collect();
        if matches_all(&pats, &acts) {
            return exp.join("\n");
        }
        let pairs = align(&pats, &acts);
        let mut out: Vec<&str> = Vec::new();
        let (mut ei, mut ai) = (0, 0);
        for (pe, pa) in pairs.into_iter().chain(std::iter::once((exp.len(), acts.len()))) {
            let gap = &acts[ai..pa];
            let any: Vec<usize> = (ei..pe).filter(|&i| matches!(pats[i], Pattern::AnyLines)).collect();
            match (any.first(), any.last()) {
                (Some(&first), Some(&last)) => {
                    // Lines before the first `...` and after the last one stand for themselves,
                    // position by position; the rest is what `...` swallowed.
                    let pre = (first - ei).min(gap.len());
                    let post = (pe - last - 1).min(gap.len() - pre);
                    out.extend(&gap[..pre]);
                    out.push("...");
                    out.extend(&gap[gap.len() - post..]);
                }
                _ => out.extend(gap),
            }
            if pe < exp.len() {
                out.push(exp[pe]);
            }
            (ei, ai) = (pe + 1, pa + 1);
        }
        out.join("\n")
    }
}

fn lines(s: &str) -> impl Iterator<Item = &str> {
    s.lines()
}

fn line_matches(p: &Pattern, a: &str) -> bool {
    match p {
        Pattern::Literal(l) => l == a,
        Pattern::Regex(r) => r.is_match(a),
        Pattern::AnyLines => true,
    }
}

/// Whole-text match. Without `...` it is a straight line-by-line comparison; with it, a
/// dynamic programme over (pattern, line) positions.
fn matches_all(pats: &[Pattern], acts: &[&str]) -> bool {
    if !pats.iter().any(|p| matches!(p, Pattern::AnyLines)) {
        return pats.len() == acts.len() && pats.iter().zip(acts).all(|(p, a)| line_matches(p, a));
    }
    let (n, m) = (pats.len(), acts.len());
    // ok[j] = patterns i.. match lines j.. (rolling over i from the end).
    let mut next = vec![false; m + 1];
    next[m] = true;
    for i in (0..n).rev() {
        let mut cur = vec![false; m + 1];
        for j in (0..=m).rev() {
            cur[j] = match &pats[i] {
                Pattern::AnyLines => next[j] || (j < m && cur[j + 1]),
                p => j < m && line_matches(p, acts[j]) && next[j + 1],
            };
        }
        next = cur;
    }
    next[0]
}

/// Largest alignment table [`Matcher::cover`] builds (cells of booleans).
pub const MAX_CELLS: usize = 4_000_000;

/// `reach[i][j]`: patterns `i..` match lines `j..`.
fn reach_table(pats: &[Pattern], acts: &[&str]) -> Vec<Vec<bool>> {
    let (n, m) = (pats.len(), acts.len());
    let mut reach = vec![vec![false; m + 1]; n + 1];
    reach[n][m] = true;
    for i in (0..n).rev() {
        for j in (0..=m).rev() {
            reach[i][j] = match &pats[i] {
                Pattern::AnyLines => reach[i + 1][j] || (j < m && reach[i][j + 1]),
                p => j < m && reach[i + 1][j + 1] && line_matches(p, acts[j]),
            };
        }
    }
    reach
}

/// Longest common subsequence of (pattern, line) pairs that match, `...` excluded, as
/// increasing index pairs. Large outputs fall back to a positional pairing to bound the cost.
fn align(pats: &[Pattern], acts: &[&str]) -> Vec<(usize, usize)> {
    let (n, m) = (pats.len(), acts.len());
    if n.saturating_mul(m) > MAX_CELLS {
        return (0..n.min(m))
            .filter(|&i| !matches!(pats[i], Pattern::AnyLines) && line_matches(&pats[i], acts[i]))
            .map(|i| (i, i))
            .collect();
    }
    let mut len = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            len[i][j] = if !matches!(pats[i], Pattern::AnyLines) && line_matches(&pats[i], acts[j]) {
                len[i + 1][j + 1] + 1
            } else {
                len[i + 1][j].max(len[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n && j < m {
        if !matches!(pats[i], Pattern::AnyLines)
            && line_matches(&pats[i], acts[j])
            && len[i][j] == len[i + 1][j + 1] + 1
        {
            out.push((i, j));
            i += 1;
            j += 1;
        } else if len[i + 1][j] >= len[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Matcher {
        let mut r = BTreeMap::new();
        r.insert("POD".to_string(), "cilium-[a-z0-9]{5}".to_string());
        Matcher::new(&r).unwrap()
    }

    #[test]
    fn literal_lines() {
        assert!(m().is_match("a\nb", "a\nb\n"));
        assert!(m().is_match("a  \nb", "a\nb   "), "trailing blanks are not significant");
        assert!(!m().is_match("a\nb", "a\nc"));
        assert!(!m().is_match("a", "a\nb"));
        assert!(!m().is_match("a\nb", "a"));
        assert!(m().is_match("", ""));
        assert!(!m().is_match("", "x"));
    }

    #[test]
    fn wildcard_within_a_line() {
        assert!(m().is_match("NAME AGE\nx [..]", "NAME AGE\nx 5m"));
        assert!(m().is_match("x[..]", "x"));
        assert!(m().is_match("a[..]c[..]e", "abcde"));
        assert!(!m().is_match("a[..]c", "abd"));
        assert!(m().is_match("1.2 [..]", "1.2 x"), "regex metacharacters are literal");
        assert!(!m().is_match("1.2 [..]", "132 x"));
    }

    #[test]
    fn any_lines() {
        assert!(m().is_match("start\n...\nend", "start\nend"));
        assert!(m().is_match("start\n...\nend", "start\n1\n2\nend"));
        assert!(m().is_match("...", "anything\nat all"));
        assert!(!m().is_match("start\n...\nend", "start\n1\n2"));
        assert!(m().is_match("...\nx\n...\ny", "a\nx\nb\nx\ny"));
    }

    #[test]
    fn regex_lines() {
        assert!(m().is_match("rtt=[0-9.]+ ms (re)", "rtt=0.09 ms"));
        assert!(!m().is_match("rtt=[0-9.]+ ms (re)", "rtt=fast ms"));
        assert!(!m().is_match("a (re)", "ab"), "anchored at both ends");
        assert!(m().validate("( (re)").is_err());
    }

    #[test]
    fn redactions() {
        assert!(m().is_match("pod [POD] ready", "pod cilium-ab12c ready"));
        assert!(!m().is_match("pod [POD] ready", "pod cilium-AB12C ready"));
        assert!(m().is_match("[UNKNOWN]", "[UNKNOWN]"), "undefined names are literal");
        assert!(Matcher::new(&[("X".to_string(), "(".to_string())].into()).is_err());
    }

    #[test]
    fn cover_says_which_lines_each_pattern_took() {
        assert_eq!(m().cover("a\n...\nz [..]", "a\nb\nc\nz 1"), Some(vec![0..1, 1..3, 3..4]));
        assert_eq!(m().cover("...", "").map(|c| c.len()), Some(1), "`...` may take no line");
        assert!(m().cover("...", "").unwrap()[0].is_empty());
        assert_eq!(m().cover("a", "b"), None);
    }

    #[test]
    fn normalize_keeps_patterns_that_hold() {
        let exp = "NAME STATUS AGE\nnode-a Ready [..]\n...\nend";
        let act = "NAME STATUS AGE\nnode-a Ready 5m\nx\ny\nend";
        assert_eq!(m().normalize(exp, act), exp, "a match normalises to the expectation");
        let act = "NAME STATUS AGE\nnode-a NotReady 5m\nx\nend";
        assert_eq!(m().normalize(exp, act), "NAME STATUS AGE\nnode-a NotReady 5m\n...\nend");
        assert_eq!(m().normalize("a\nb", "a\nc\nb"), "a\nc\nb");
        assert_eq!(m().normalize("a [..]\nb", "zzz"), "zzz");
    }
}
