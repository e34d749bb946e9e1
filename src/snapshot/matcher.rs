//! Expected-vs-actual matching, line by line. The line syntax is cram's and scrut's, so their
//! tests read the same here:
//! - a plain line matches the actual line exactly (trailing white space is not significant);
//!   within it `[..]` matches any text, `[..NAME..]` (NAME in capitals) too and captures it
//!   (see [`Matcher::bind`]), `[NAME]` matches the front matter's redaction `NAME`; a line that
//!   starts with `\$` expects a line that starts with `$` (a `$ ` line would be a command);
//! - a line that is exactly `...` matches any number of lines (zero included);
//! - suffixes (after one space, several may follow each other): ` (re)` / ` (regex)` the line is
//!   a regex for the whole line; ` (glob)` / ` (gl)` `*` any text, `?` one character, `\`
//!   escapes; ` (esc)` / ` (escaped)` the line holds Python-style escapes (`\t`, `\r`, `\x1b`,
//!   `\xff`, `\\`) and is compared byte for byte; ` (no-eol)` the output's last line, without
//!   its final newline; ` (eq)` / ` (equal)` a plain line; scrut's quantifiers ` (?)`, ` (*)`,
//!   ` (+)` (also joined to a kind: ` (glob+)`) repeat the line zero or one, any, one or more times.
//!
//! Actual output reaches the matcher in its *display form* ([`display`]): bytes as text, with
//! every line that is not printable UTF-8 (control characters but tab, invalid UTF-8) written
//! escaped with ` (esc)`. The display form is lossless, so `\xfe` never equals `\xff`, and it is
//! what reports show. A missing final newline is kept as the absence of the text's last `\n`;
//! it only matters to a ` (no-eol)` line (a plain last line matches with or without newline).

use std::collections::BTreeMap;

use regex::bytes::Regex;

#[derive(Debug, thiserror::Error)]
#[error("expected output line `{line}`: invalid regex: {source}")]
pub struct MatchError {
    pub line: String,
    pub source: regex::Error,
}

/// Captured values by name (`[..NAME..]`).
pub type Captures = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    One,
    Opt,
    Star,
    Plus,
}

enum Test {
    /// Exact bytes (` (esc)` lines).
    Exact(Vec<u8>),
    /// Literal text, trailing white space not significant.
    Literal(Vec<u8>),
    /// Regex over the line without trailing white space (`exact`: over the raw line). The
    /// `(group, NAME)` pairs are the line's unbound captures.
    Regex {
        re: Regex,
        exact: bool,
        captures: Vec<(String, String)>,
    },
    Any,
}

struct Pattern {
    test: Test,
    repeat: Repeat,
    no_eol: bool,
}

impl Pattern {
    fn single(&self) -> bool {
        self.repeat == Repeat::One
    }
}

/// Actual output, decoded from its display form.
struct Actual {
    lines: Vec<Vec<u8>>,
    /// The last line has no final newline.
    no_eol: bool,
}

impl Actual {
    fn new(text: &str) -> Actual {
        let no_eol = !text.is_empty() && !text.ends_with('\n');
        let mut lines: Vec<Vec<u8>> = text.lines().map(decode).collect();
        // Trailing blank lines are not significant (a fence or a `.snap` file ends a line).
        while lines.last().is_some_and(|l| l.iter().all(u8::is_ascii_whitespace)) {
            lines.pop();
        }
        Actual { lines, no_eol }
    }
}

pub struct Matcher {
    redactions: Vec<(String, String)>,
}

/// Kinds and quantifiers, cram's and scrut's spellings.
fn modifier(word: &str) -> Option<(Option<&'static str>, Repeat)> {
    let (kind, rep) = match word.char_indices().last() {
        Some((i, '?')) => (&word[..i], Repeat::Opt),
        Some((i, '*')) => (&word[..i], Repeat::Star),
        Some((i, '+')) => (&word[..i], Repeat::Plus),
        _ => (word, Repeat::One),
    };
    let kind = match kind {
        "" if rep != Repeat::One => None,
        "eq" | "equal" => Some("eq"),
        "re" | "regex" => Some("re"),
        "glob" | "gl" => Some("glob"),
        "esc" | "escaped" => Some("esc"),
        "no-eol" if rep == Repeat::One => Some("no-eol"),
        _ => return None,
    };
    Some((kind, rep))
}

/// A line split into its body and suffixes.
struct Parsed<'a> {
    body: &'a str,
    kind: &'static str,
    esc: bool,
    no_eol: bool,
    repeat: Repeat,
}

fn parse_line(line: &str) -> Parsed<'_> {
    let mut p = Parsed { body: line.trim_end(), kind: "eq", esc: false, no_eol: false, repeat: Repeat::One };
    for _ in 0..3 {
        let Some(open) = p.body.rfind(" (") else { break };
        let Some(word) = p.body[open + 2..].strip_suffix(')') else { break };
        let Some((kind, rep)) = modifier(word) else { break };
        match kind {
            Some("esc") if !p.esc => p.esc = true,
            Some("no-eol") if !p.no_eol => p.no_eol = true,
            Some(k @ ("re" | "glob" | "eq")) if p.kind == "eq" => p.kind = k,
            None => {}
            _ => break,
        }
        if rep != Repeat::One {
            if p.repeat != Repeat::One {
                break;
            }
            p.repeat = rep;
        }
        p.body = &p.body[..open];
    }
    p
}

fn capture_name() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"^\[\.\.([A-Z][A-Z0-9_]*)\.\.\]").expect("valid regex"))
}

/// Names captured with `[..NAME..]` in an expectation, in order of appearance (a name once).
pub fn capture_names(expected: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in expected.lines() {
        let p = parse_line(line);
        if p.esc || p.kind != "eq" {
            continue;
        }
        let mut rest = p.body;
        while let Some(at) = rest.find("[..") {
            rest = &rest[at..];
            if let Some(c) = capture_name().captures(rest) {
                let name = c[1].to_string();
                rest = &rest[c[0].len()..];
                if !out.contains(&name) {
                    out.push(name);
                }
            } else {
                rest = &rest[3..];
            }
        }
    }
    out
}

impl Matcher {
    /// `redactions` were validated as regexes by the front-matter parser; check again since a
    /// matcher can be built from anywhere.
    pub fn new(redactions: &BTreeMap<String, String>) -> Result<Matcher, MatchError> {
        for (name, re) in redactions {
            regex::Regex::new(re).map_err(|source| MatchError { line: format!("[{name}]"), source })?;
        }
        Ok(Matcher { redactions: redactions.iter().map(|(k, v)| (format!("[{k}]"), v.clone())).collect() })
    }

    /// Compile one expected line. `bound`: captures already bound (they match their value);
    /// `None` treats every capture as `[..]`.
    fn pattern(&self, line: &str, bound: Option<&Captures>) -> Result<Pattern, MatchError> {
        let err = |source| MatchError { line: line.trim_end().into(), source };
        if line.trim_end() == "..." {
            return Ok(Pattern { test: Test::Any, repeat: Repeat::Star, no_eol: false });
        }
        let p = parse_line(line);
        let (repeat, no_eol) = (p.repeat, p.no_eol);
        let body: Vec<u8> = if p.esc { unescape(p.body) } else { p.body.as_bytes().to_vec() };
        let test = match p.kind {
            "re" => {
                let text = String::from_utf8_lossy(&body);
                let re = Regex::new(&format!("^(?:{text})$")).map_err(err)?;
                Test::Regex { re, exact: p.esc, captures: Vec::new() }
            }
            "glob" => Test::Regex { re: Regex::new(&glob(&body)).map_err(err)?, exact: p.esc, captures: Vec::new() },
            _ if p.esc => Test::Exact(body),
            _ => {
                let text = p.body.strip_prefix('\\').filter(|t| t.starts_with('$')).unwrap_or(p.body);
                self.plain(text, bound).map_err(err)?
            }
        };
        Ok(Pattern { test, repeat, no_eol })
    }

    /// A plain line: literal unless it holds `[..]`, captures or redactions.
    fn plain(&self, text: &str, bound: Option<&Captures>) -> Result<Test, regex::Error> {
        let has_redaction = self.redactions.iter().any(|(n, _)| text.contains(n.as_str()));
        if !text.contains("[..") && !has_redaction {
            return Ok(Test::Literal(text.as_bytes().to_vec()));
        }
        let mut re = String::from("(?s)^");
        let mut captures = Vec::new();
        let mut rest = text;
        'outer: while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("[..]") {
                re.push_str("(?-u:.)*?");
                rest = r;
                continue;
            }
            if let Some(c) = capture_name().captures(rest) {
                let name = &c[1];
                match bound.and_then(|b| b.get(name)) {
                    Some(value) => re.push_str(&regex::escape(value)),
                    None if bound.is_some() => {
                        let group = format!("c{}", captures.len());
                        re.push_str(&format!("(?P<{group}>(?-u:.)*?)"));
                        captures.push((group, name.to_string()));
                    }
                    None => re.push_str("(?-u:.)*?"),
                }
                rest = &rest[c[0].len()..];
                continue;
            }
            for (name, pat) in &self.redactions {
                if let Some(r) = rest.strip_prefix(name.as_str()) {
                    re.push_str(&format!("(?:{pat})"));
                    rest = r;
                    continue 'outer;
                }
            }
            let c = rest.chars().next().expect("not empty");
            re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
            rest = &rest[c.len_utf8()..];
        }
        re.push('$');
        Ok(Test::Regex { re: Regex::new(&re)?, exact: false, captures })
    }

    fn patterns(&self, expected: &str, bound: Option<&Captures>) -> Vec<Pattern> {
        // An invalid regex line can only match itself literally; the runner reports invalid
        // regexes through `validate` before running.
        let mut lines: Vec<&str> = expected.lines().collect();
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        lines
            .into_iter()
            .map(|l| {
                self.pattern(l, bound).unwrap_or_else(|_| Pattern {
                    test: Test::Literal(l.trim_end().as_bytes().to_vec()),
                    repeat: Repeat::One,
                    no_eol: false,
                })
            })
            .collect()
    }

    /// Errors for every invalid regex line in `expected` (used by `tutor check`).
    pub fn validate(&self, expected: &str) -> Result<(), MatchError> {
        expected.lines().try_for_each(|l| self.pattern(l, None).map(|_| ()))
    }

    /// Whether `actual` (display form) matches `expected`; captures match like `[..]`.
    pub fn is_match(&self, expected: &str, actual: &str) -> bool {
        let pats = self.patterns(expected, None);
        matches_all(&pats, &Actual::new(actual))
    }

    /// Match with captures: `bound` values must appear where their `[..NAME..]` stands; the
    /// others are taken from the actual output. `Some(new bindings)` on a match (a name captured
    /// twice in one expectation must take the same text both times).
    pub fn bind(&self, expected: &str, actual: &str, bound: &Captures) -> Option<Captures> {
        let pats = self.patterns(expected, Some(bound));
        let act = Actual::new(actual);
        if !pats.iter().any(|p| matches!(&p.test, Test::Regex { captures, .. } if !captures.is_empty())) {
            return matches_all(&pats, &act).then(Captures::new);
        }
        let cover = cover_of(&pats, &act)?;
        let mut new = Captures::new();
        for (p, range) in pats.iter().zip(cover) {
            let Test::Regex { re, exact, captures } = &p.test else { continue };
            if captures.is_empty() || range.is_empty() {
                continue;
            }
            let line = subject(&act.lines[range.start], *exact);
            let c = re.captures(line)?;
            for (group, name) in captures {
                let value =
                    String::from_utf8_lossy(c.name(group).map(|m| m.as_bytes()).unwrap_or_default()).into_owned();
                match new.get(name) {
                    Some(v) if *v != value => return None,
                    _ => {
                        new.insert(name.clone(), value);
                    }
                }
            }
        }
        Some(new)
    }

    /// For a matching pair, the actual lines each expected line covers, in order: one line for
    /// a plain line, any number (possibly none) for `...` and quantified lines. `None` when they
    /// do not match, or when the texts are too large to align (more than [`MAX_CELLS`] pairs).
    pub fn cover(&self, expected: &str, actual: &str) -> Option<Vec<std::ops::Range<usize>>> {
        cover_of(&self.patterns(expected, None), &Actual::new(actual))
    }

    /// `actual`, with each line that an expected pattern covers shown as that pattern, and runs
    /// of lines swallowed by `...` (or a quantified line) shown as that line. Diffing `expected`
    /// against this shows only real differences; writing it in update mode keeps the wildcards
    /// that still hold.
    pub fn normalize(&self, expected: &str, actual: &str) -> String {
        let pats = self.patterns(expected, None);
        let exp: Vec<&str> = expected.lines().map(str::trim_end).take(pats.len()).collect();
        let act = Actual::new(actual);
        if matches_all(&pats, &act) {
            return exp.join("\n");
        }
        let shown: Vec<&str> = actual.lines().map(str::trim_end).take(act.lines.len()).collect();
        let pairs = align(&pats, &act);
        let mut out: Vec<&str> = Vec::new();
        let (mut ei, mut ai) = (0, 0);
        for (pe, pa) in pairs.into_iter().chain(std::iter::once((exp.len(), shown.len()))) {
            let gap = &shown[ai..pa];
            let elastic: Vec<usize> = (ei..pe).filter(|&i| !pats[i].single()).collect();
            match (elastic.first(), elastic.last()) {
                (Some(&first), Some(&last)) => {
                    // Lines before the first elastic line and after the last one stand for
                    // themselves, position by position; the rest is what the elastic ones took.
                    let pre = (first - ei).min(gap.len());
                    let post = (pe - last - 1).min(gap.len() - pre);
                    out.extend(&gap[..pre]);
                    out.extend(elastic.iter().map(|&i| exp[i]));
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

/// The text a regex or literal is compared with.
fn subject(line: &[u8], exact: bool) -> &[u8] {
    if exact { line } else { line.trim_ascii_end() }
}

fn line_matches(p: &Pattern, act: &Actual, j: usize) -> bool {
    let line = act.lines[j].as_slice();
    if p.no_eol && !(act.no_eol && j + 1 == act.lines.len()) {
        return false;
    }
    match &p.test {
        Test::Exact(b) => b == line,
        Test::Literal(l) => l.as_slice() == line.trim_ascii_end(),
        Test::Regex { re, exact, .. } => re.is_match(subject(line, *exact)),
        Test::Any => true,
    }
}

/// `ok[i][j]`-style step: can patterns `i..` match lines `j..`, given row `i + 1` (`next`) and
/// the cells of row `i` already computed to the right (`cur`).
fn step(p: &Pattern, matched: impl Fn() -> bool, j: usize, m: usize, next: &[bool], cur: &[bool]) -> bool {
    let here = || j < m && matched();
    match p.repeat {
        Repeat::One => here() && next[j + 1],
        Repeat::Opt => next[j] || (here() && next[j + 1]),
        Repeat::Star => next[j] || (here() && cur[j + 1]),
        Repeat::Plus => here() && (next[j + 1] || cur[j + 1]),
    }
}

/// Whole-text match. Without quantified lines it is a straight line-by-line comparison;
/// with them, a dynamic programme over (pattern, line) positions.
fn matches_all(pats: &[Pattern], act: &Actual) -> bool {
    let m = act.lines.len();
    if pats.iter().all(Pattern::single) {
        return pats.len() == m && pats.iter().enumerate().all(|(j, p)| line_matches(p, act, j));
    }
    let mut next = vec![false; m + 1];
    next[m] = true;
    for p in pats.iter().rev() {
        let mut cur = vec![false; m + 1];
        for j in (0..=m).rev() {
            cur[j] = step(p, || line_matches(p, act, j), j, m, &next, &cur);
        }
        next = cur;
    }
    next[0]
}

/// Largest alignment table [`Matcher::cover`] and the diff alignment build (cells).
pub const MAX_CELLS: usize = 4_000_000;

fn cover_of(pats: &[Pattern], act: &Actual) -> Option<Vec<std::ops::Range<usize>>> {
    let (n, m) = (pats.len(), act.lines.len());
    if (n + 1).saturating_mul(m + 1) > MAX_CELLS {
        return None;
    }
    // reach[i][j]: patterns i.. match lines j..
    let mut reach = vec![vec![false; m + 1]; n + 1];
    reach[n][m] = true;
    for i in (0..n).rev() {
        let (head, tail) = reach.split_at_mut(i + 1);
        let (cur, next) = (&mut head[i], &tail[0]);
        for j in (0..=m).rev() {
            cur[j] = step(&pats[i], || line_matches(&pats[i], act, j), j, m, next, cur);
        }
    }
    if !reach[0][0] {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    let mut j = 0;
    for (i, p) in pats.iter().enumerate() {
        let start = j;
        match p.repeat {
            Repeat::One => j += 1,
            // Take as few lines as still lets the rest match.
            Repeat::Opt => {
                if !reach[i + 1][j] {
                    j += 1;
                }
            }
            Repeat::Star | Repeat::Plus => {
                if p.repeat == Repeat::Plus {
                    j += 1;
                }
                while !reach[i + 1][j] {
                    j += 1;
                }
            }
        }
        out.push(start..j);
    }
    Some(out)
}

/// Longest common subsequence of (pattern, line) pairs that match, quantified lines excluded,
/// as increasing index pairs. Large outputs fall back to a positional pairing to bound the cost.
fn align(pats: &[Pattern], act: &Actual) -> Vec<(usize, usize)> {
    let (n, m) = (pats.len(), act.lines.len());
    let pair = |i: usize, j: usize| pats[i].single() && line_matches(&pats[i], act, j);
    if n.saturating_mul(m) > MAX_CELLS {
        return (0..n.min(m)).filter(|&i| pair(i, i)).map(|i| (i, i)).collect();
    }
    let mut len = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            len[i][j] = if pair(i, j) { len[i + 1][j + 1] + 1 } else { len[i + 1][j].max(len[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n && j < m {
        if pair(i, j) && len[i][j] == len[i + 1][j + 1] + 1 {
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

/// A glob line as an anchored regex: `*` any text, `?` one character, `\c` the character c.
fn glob(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut re = String::from("(?s)^");
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str("(?-u:.)*"),
            '?' => re.push('.'),
            '\\' => match chars.next() {
                Some(n) => re.push_str(&regex::escape(n.encode_utf8(&mut [0; 4]))),
                None => re.push_str(r"\\"),
            },
            c => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    re.push('$');
    re
}

/// Python-style escapes to bytes: `\\ \t \r \n \a \b \f \v \0 \' \" \xHH` and octal `\ooo`;
/// any other backslash stays as it is (as Python leaves unknown escapes).
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = b[i + 1];
        i += 2;
        let simple = match c {
            b'\\' => Some(b'\\'),
            b't' => Some(b'\t'),
            b'r' => Some(b'\r'),
            b'n' => Some(b'\n'),
            b'a' => Some(7),
            b'b' => Some(8),
            b'f' => Some(12),
            b'v' => Some(11),
            b'\'' => Some(b'\''),
            b'"' => Some(b'"'),
            _ => None,
        };
        if let Some(v) = simple {
            out.push(v);
        } else if c == b'x' && i + 2 <= b.len() && b[i..i + 2].iter().all(u8::is_ascii_hexdigit) {
            out.push(u8::from_str_radix(std::str::from_utf8(&b[i..i + 2]).expect("hex digits"), 16).expect("hex"));
            i += 2;
        } else if (b'0'..=b'7').contains(&c) {
            let mut v = u32::from(c - b'0');
            let mut k = 0;
            while k < 2 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                v = v * 8 + u32::from(b[i] - b'0');
                i += 1;
                k += 1;
            }
            out.push((v & 0xff) as u8);
        } else {
            out.extend_from_slice(&[b'\\', c]);
        }
    }
    out
}

/// Escape `line` Python-style: `\\`, `\t`, `\r`, `\xHH` for other control bytes and invalid
/// UTF-8; valid non-ASCII characters stay as they are.
pub fn escape(line: &[u8]) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    for chunk in line.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str(r"\\"),
                '\t' => out.push_str(r"\t"),
                '\r' => out.push_str(r"\r"),
                '\n' => out.push_str(r"\n"),
                c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

const ESC: &str = " (esc)";

/// A line that the display form must escape: not printable UTF-8, or text that would read as
/// an escaped line.
fn needs_escape(line: &[u8]) -> bool {
    match std::str::from_utf8(line) {
        Ok(s) => s.chars().any(|c| (c.is_control() && c != '\t') || c == '\u{7f}') || s.trim_end().ends_with(ESC),
        Err(_) => true,
    }
}

/// Output bytes as the text reports show and the matcher reads: printable lines as they are,
/// the others escaped with ` (esc)`; the final newline kept if there was one.
pub fn display(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes)
        && !s.split('\n').any(|l| needs_escape(l.as_bytes()))
    {
        return s.to_string();
    }
    let mut out = String::with_capacity(bytes.len() + 16);
    let mut lines = bytes.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        if last && line.is_empty() {
            break;
        }
        if needs_escape(line) {
            out.push_str(&escape(line));
            out.push_str(ESC);
        } else {
            out.push_str(std::str::from_utf8(line).expect("checked by needs_escape"));
        }
        if !last {
            out.push('\n');
        }
    }
    out
}

/// The bytes of one display-form line.
fn decode(line: &str) -> Vec<u8> {
    match line.strip_suffix(ESC) {
        Some(body) => unescape(body),
        None => line.as_bytes().to_vec(),
    }
}

impl Matcher {
    /// One line of actual output (display form) written as an expected line that matches
    /// exactly it: as it is when it reads as a plain line, else escaped with ` (esc)`.
    /// `console`: the line goes into a console block, where a line starting with `$` would be a
    /// command (it becomes `\$…`). Update mode writes recorded lines through this.
    pub fn expectation_line(&self, line: &str, console: bool) -> String {
        let bytes = decode(line);
        let text = std::str::from_utf8(&bytes).ok();
        let plain = text.is_some_and(|t| {
            let p = parse_line(t);
            !needs_escape(t.as_bytes())
                && t.trim_end() != "..."
                && p.body.len() == t.trim_end().len()
                && !t.contains("[..")
                && !t.starts_with('\\')
                && !self.redactions.iter().any(|(n, _)| t.contains(n.as_str()))
        });
        match text {
            Some(t) if plain && console && t.starts_with('$') => format!("\\{t}"),
            Some(t) if plain => t.to_string(),
            _ => {
                let mut e = escape(&bytes);
                // Text that ends like a suffix must not be read as one: its space goes escaped.
                while let Some(at) = e.rfind(" (").filter(|_| parse_line(&e).body.len() < e.trim_end().len()) {
                    e.replace_range(at..at + 1, r"\x20");
                }
                if e.ends_with(' ') {
                    let at = e.len() - 1;
                    e.replace_range(at.., r"\x20");
                }
                if console && e.starts_with('$') {
                    e.replace_range(0..1, r"\x24");
                }
                format!("{e}{ESC}")
            }
        }
    }
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
        assert!(m().is_match("a\n", "a\n\n"), "trailing blank lines are not significant");
    }

    #[test]
    fn wildcard_within_a_line() {
        assert!(m().is_match("NAME AGE\nx [..]", "NAME AGE\nx 5m"));
        assert!(m().is_match("x[..]", "x"));
        assert!(m().is_match("a[..]c[..]e", "abcde"));
        assert!(!m().is_match("a[..]c", "abd"));
        assert!(m().is_match("1.2 [..]", "1.2 x"), "regex metacharacters are literal");
        assert!(!m().is_match("1.2 [..]", "132 x"));
        assert!(m().is_match("a[..]", "a\\xff (esc)"), "[..] takes any bytes");
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
        assert!(m().is_match("rtt=[0-9.]+ ms (regex)", "rtt=0.09 ms"), "scrut's spelling");
        assert!(!m().is_match("rtt=[0-9.]+ ms (re)", "rtt=fast ms"));
        assert!(!m().is_match("a (re)", "ab"), "anchored at both ends");
        assert!(!m().is_match("a (re)", "ba"), "anchored at both ends");
        assert!(m().validate("( (re)").is_err());
    }

    #[test]
    fn glob_lines() {
        assert!(m().is_match("jq-* (glob)", "jq-1.7.1"));
        assert!(m().is_match("a?c (glob)", "abc"));
        assert!(!m().is_match("a?c (glob)", "abbc"), "? is one character");
        assert!(m().is_match("a\\*c (glob)", "a*c"), "escaped star is literal");
        assert!(!m().is_match("a\\*c (glob)", "abc"));
        assert!(m().is_match("1.2 * (gl)", "1.2 x"), "dots are literal");
        assert!(!m().is_match("1.2 * (glob)", "132 x"));
        assert!(!m().is_match("x* (glob)", "yx"), "anchored");
    }

    #[test]
    fn escaped_lines_compare_bytes() {
        assert!(m().is_match("a\\tb (esc)", "a\tb"));
        assert!(m().is_match("\\x1b[31mred\\x1b[0m (esc)", &display(b"\x1b[31mred\x1b[0m\n")));
        assert!(m().is_match("line\\r (esc)", &display(b"line\r\n")));
        assert!(!m().is_match("line\\r (esc)", "line"), "an escaped line is exact");
        assert!(m().is_match("\\xff (esc)", &display(b"\xff\n")));
        assert!(!m().is_match("\\xff (esc)", &display(b"\xfe\n")), "invalid UTF-8 is compared as bytes");
        assert!(!m().is_match("\\xfe", &display(b"\xff")), "a plain line is not unescaped");
        assert!(m().is_match("back\\\\slash (escaped)", "back\\slash"));
        assert!(m().is_match("\\x1b* (glob) (esc)", &display(b"\x1b[0m")), "suffixes combine");
        assert!(m().is_match("[0-9]+\\t[a-z]+ (re) (esc)", "12\tab"));
        assert!(!m().is_match("[0-9]+\\t[a-z]+ (re) (esc)", "12 ab"));
    }

    #[test]
    fn no_eol_lines() {
        assert!(m().is_match("abc (no-eol)", "abc"));
        assert!(!m().is_match("abc (no-eol)", "abc\n"), "the output ended its line");
        assert!(m().is_match("abc", "abc"), "a plain last line matches without newline too");
        assert!(m().is_match("a\nb (no-eol)", "a\nb"));
        assert!(!m().is_match("a (no-eol)\nb", "a\nb"), "only the last line can miss its newline");
        assert!(m().is_match("\\x1b (esc) (no-eol)", &display(b"\x1b")));
        assert!(m().is_match("\\x1b (no-eol) (esc)", &display(b"\x1b")));
    }

    #[test]
    fn quantifiers() {
        assert!(m().is_match("a\nb (?)\nc", "a\nc"));
        assert!(m().is_match("a\nb (?)\nc", "a\nb\nc"));
        assert!(!m().is_match("a\nb (?)\nc", "a\nb\nb\nc"));
        assert!(m().is_match("a\nb (*)\nc", "a\nb\nb\nc"));
        assert!(m().is_match("a\nb (*)\nc", "a\nc"));
        assert!(!m().is_match("a\nb (+)\nc", "a\nc"));
        assert!(m().is_match("a\nb (+)\nc", "a\nb\nb\nc"));
        assert!(m().is_match("x* (glob+)\nend", "x1\nx2\nend"));
        assert!(!m().is_match("x* (glob+)\nend", "x1\ny\nend"));
        assert!(m().is_match("\\d+ (re*)", "1\n22"));
    }

    #[test]
    fn dollar_lines() {
        assert!(m().is_match("\\$ not a command", "$ not a command"));
        assert!(m().is_match("\\x24 esc (esc)", "$ esc"));
        assert_eq!(m().expectation_line("$ x", true), "\\$ x");
        assert_eq!(m().expectation_line("$ x", false), "$ x");
    }

    #[test]
    fn expectation_lines_match_what_they_were_made_from() {
        for raw in [
            &b"plain"[..],
            b"$ prompt-like",
            b"...",
            b"a [..] b",
            b"ends in (re)",
            b"ends in (glob)",
            b"ends in (esc)",
            b"\x1b[1mbold",
            b"\xfe\xff",
            b"tab\there",
            b"\\$ backslash",
            b"x (?)",
            b"pod [POD] ready",
        ] {
            let shown = display(raw);
            let exp = m().expectation_line(&shown, true);
            assert!(m().is_match(&exp, &shown), "{raw:?} -> {exp:?}");
            let other = display(b"something else");
            assert!(!m().is_match(&exp, &other), "{exp:?}");
        }
    }

    #[test]
    fn display_is_lossless_and_only_escapes_what_it_must() {
        assert_eq!(display(b"plain\ttab\n"), "plain\ttab\n");
        assert_eq!(display("ünïcode\n".as_bytes()), "ünïcode\n");
        assert_eq!(display(b"a\r\nb"), "a\\r (esc)\nb");
        assert_eq!(display(b"\xff\n"), "\\xff (esc)\n");
        assert_eq!(display(b"x (esc)\n"), "x (esc) (esc)\n");
        for raw in [&b"a\\b\x01\n"[..], b"\xc3\x28", b"x (esc)"] {
            let shown = display(raw);
            let back: Vec<Vec<u8>> = shown.lines().map(decode).collect();
            let orig: Vec<&[u8]> = raw.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
            assert_eq!(back, orig);
        }
    }

    #[test]
    fn redactions() {
        assert!(m().is_match("pod [POD] ready", "pod cilium-ab12c ready"));
        assert!(!m().is_match("pod [POD] ready", "pod cilium-AB12C ready"));
        assert!(m().is_match("[UNKNOWN]", "[UNKNOWN]"), "undefined names are literal");
        assert!(Matcher::new(&[("X".to_string(), "(".to_string())].into()).is_err());
    }

    #[test]
    fn captures_bind_and_must_agree() {
        let none = Captures::new();
        let got = m().bind("ip [..IP..] up\nx", "ip 10.0.0.1 up\nx", &none).unwrap();
        assert_eq!(got.get("IP").map(String::as_str), Some("10.0.0.1"));
        let bound: Captures = [("IP".to_string(), "10.0.0.1".to_string())].into();
        assert_eq!(m().bind("to [..IP..]", "to 10.0.0.1", &bound), Some(Captures::new()));
        assert_eq!(m().bind("to [..IP..]", "to 10.0.0.2", &bound), None, "a bound name matches its value");
        assert_eq!(m().bind("[..A..] [..A..]", "x y", &none), None, "twice in one expectation: same text");
        assert!(m().bind("[..A..] [..A..]", "x x", &none).is_some());
        assert!(m().is_match("to [..IP..]", "to anything"), "without bindings a capture is [..]");
        assert_eq!(capture_names("a [..IP..] [..]\n[..IP..] [..PORT..]\nz (re)"), ["IP", "PORT"]);
    }

    #[test]
    fn cover_says_which_lines_each_pattern_took() {
        assert_eq!(m().cover("a\n...\nz [..]", "a\nb\nc\nz 1"), Some(vec![0..1, 1..3, 3..4]));
        assert_eq!(m().cover("...", "").map(|c| c.len()), Some(1), "`...` may take no line");
        assert!(m().cover("...", "").unwrap()[0].is_empty());
        assert_eq!(m().cover("a", "b"), None);
        assert_eq!(m().cover("a\nb (+)\nc", "a\nb\nb\nc"), Some(vec![0..1, 1..3, 3..4]));
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
