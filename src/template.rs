//! minijinja environment for `{{ expr }}` in commands, `file=` bodies and expected outputs.
//!
//! Values come from the front matter's `vars` and the backend's facts
//! (`{{ nodes["kind-worker"].ip }}`). Undefined names are errors, never empty strings: a typo
//! must not silently turn a check into something that always passes.
//!
//! Which `{{ … }}` are tutor's (docs/architecture.md, "Templates"): one whose expression starts
//! with a name tutor knows — a var, a fact, or a name a `{% for %}`/`{% set %}` of the same
//! text binds. Every other one is left exactly as written, so Go templates
//! (`kubectl … -o go-template='{{.metadata.name}}'`, `docker inspect -f '{{json .State}}'`,
//! `{{range .items}}…{{end}}`) run and match as typed. A `{{ name }}`-shaped expression
//! (a bare name, maybe followed by `.`, `[`, `|` or `(`) with an unknown name is still an
//! error: it is a typo of a var, not a Go template. `{% … %}` tags are always tutor's.

use std::path::{Path, PathBuf};

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior};

use crate::tutorial::FrontMatter;

/// Top-level names a backend may provide in [`crate::backend::Backend::facts`].
pub const FACT_NAMES: &[&str] = &[
    "backend",
    "workdir",
    "run_name",
    "nodes",
    "cluster",
    // the running tutor executable (a tutorial about tutor runs it even when it is not on PATH)
    "tutor",
    // kind / kube backends
    "cluster_alias",
    "context",
    "kubeconfig",
    "artifacts",
];

#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: template error: {message}", path.display())]
pub struct TemplateError {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

pub struct Templates {
    env: Environment<'static>,
    vars: serde_json::Map<String, serde_json::Value>,
}

impl Templates {
    pub fn new(front: &FrontMatter) -> Templates {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        // Shell uses `{#` (`${#array[@]}`): move Jinja comments out of its way.
        let syntax = SyntaxConfig::builder().comment_delimiters("{##", "##}").build().expect("valid delimiters");
        env.set_syntax(syntax);
        let vars = front.vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Templates { env, vars }
    }

    fn has_template(text: &str) -> bool {
        text.contains("{{") || text.contains("{%")
    }

    /// Names a `{{ … }}` of `text` may start with to be tutor's.
    fn known<'t>(&'t self, text: &'t str, fact_names: &[&'t str]) -> Vec<&'t str> {
        let mut names: Vec<&str> = self.vars.keys().map(String::as_str).chain(fact_names.iter().copied()).collect();
        names.extend(bound_names(text));
        names
    }

    /// `text` with every `{{ … }}` that is not tutor's wrapped in `{% raw %}`, and the unknown
    /// bare names found (`(offset, name)`).
    fn protect(&self, text: &str, fact_names: &[&str]) -> (String, Vec<(usize, String)>) {
        let known = self.known(text, fact_names);
        let mut out = String::with_capacity(text.len());
        let mut unknown = Vec::new();
        let mut rest = 0;
        for part in scan(text) {
            match part {
                Part::Expr { span, expr } => match classify(expr, &known) {
                    Kind::Tutor => {}
                    Kind::Foreign => {
                        out.push_str(&text[rest..span.start]);
                        out.push_str("{% raw %}");
                        out.push_str(&text[span.clone()]);
                        out.push_str("{% endraw %}");
                        rest = span.end;
                    }
                    Kind::Unknown(name) => unknown.push((span.start, name.to_string())),
                },
                Part::Unclosed(at) => {
                    out.push_str(&text[rest..at]);
                    out.push_str("{{ '{{' }}");
                    rest = at + 2;
                }
            }
        }
        out.push_str(&text[rest..]);
        (out, unknown)
    }

    /// Lines of `text` whose `{{ … }}` starts with a name tutor knows but reads like a Go
    /// template call (`{{ json .x }}` with a var named `json`): `(line offset, expression)`.
    pub fn ambiguous(&self, text: &str, fact_names: &[&str]) -> Vec<(usize, String)> {
        if !text.contains("{{") {
            return Vec::new();
        }
        let known = self.known(text, fact_names);
        scan(text)
            .into_iter()
            .filter_map(|p| match p {
                Part::Expr { span, expr } if classify(expr, &known) == Kind::Tutor && go_call(expr) => {
                    Some((text[..span.start].matches('\n').count(), text[span].to_string()))
                }
                _ => None,
            })
            .collect()
    }

    /// Whether `text` renders to itself: no `{{ … }}` or `{% … %}` of tutor's in it.
    pub fn is_literal(&self, text: &str, fact_names: &[&str]) -> bool {
        if !Self::has_template(text) {
            return true;
        }
        let known = self.known(text, fact_names);
        !text.contains("{%")
            && !text.contains("{##")
            && scan(text).into_iter().all(|p| match p {
                Part::Expr { expr, .. } => classify(expr, &known) == Kind::Foreign,
                Part::Unclosed(_) => true,
            })
    }

    /// Escape recorded output so that it reads back as itself: each line holding a `{{ … }}`
    /// of tutor's, a `{%` tag or a `{##` comment is wrapped in `{% raw %}`.
    pub fn escape(&self, text: &str) -> String {
        if !Self::has_template(text) && !text.contains("{##") {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len() + 32);
        for line in text.split_inclusive('\n') {
            let (body, nl) = match line.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (line, ""),
            };
            if self.is_literal(body, FACT_NAMES) {
                out.push_str(line);
            } else if body.contains("endraw") {
                // Cannot sit inside `{% raw %}`: quote every brace instead.
                out.push_str(&body.replace('{', "{% raw %}{{% endraw %}"));
                out.push_str(nl);
            } else {
                out.push_str(&format!("{{% raw %}}{body}{{% endraw %}}{nl}"));
            }
        }
        out
    }

    /// Render `text` (which starts on `line` of `path`) with vars and `facts`.
    pub fn render(
        &self,
        text: &str,
        facts: &serde_json::Value,
        path: &Path,
        line: usize,
    ) -> Result<String, TemplateError> {
        if !Self::has_template(text) {
            return Ok(text.to_string());
        }
        let names: Vec<&str> = match facts {
            serde_json::Value::Object(m) => m.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        let (source, unknown) = self.protect(text, &names);
        if let Some((at, name)) = unknown.first() {
            return Err(TemplateError {
                path: path.to_path_buf(),
                line: line + text[..*at].matches('\n').count(),
                message: format!("undefined value: `{name}` is neither a var nor a fact"),
            });
        }
        let mut ctx = match facts {
            serde_json::Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        ctx.extend(self.vars.clone());
        self.env.render_str(&source, serde_json::Value::Object(ctx)).map_err(|e| error(path, line, &e))
    }

    /// Syntax errors and names that are neither vars nor facts (`fact_names`), without rendering.
    pub fn check(&self, text: &str, fact_names: &[&str], path: &Path, line: usize) -> Result<(), TemplateError> {
        if !Self::has_template(text) {
            return Ok(());
        }
        let (source, bare) = self.protect(text, fact_names);
        if let Some((at, name)) = bare.first() {
            return Err(unknown_error(self, text, fact_names, path, line + text[..*at].matches('\n').count(), name));
        }
        let tmpl = self.env.template_from_str(&source).map_err(|e| error(path, line, &e))?;
        let mut unknown: Vec<String> = tmpl
            .undeclared_variables(false)
            .into_iter()
            .filter(|n| !self.vars.contains_key(n) && !fact_names.contains(&n.as_str()))
            .collect();
        unknown.sort();
        match unknown.first() {
            None => Ok(()),
            Some(name) => {
                let offset = text.lines().position(|l| l.contains(name.as_str())).unwrap_or(0);
                Err(TemplateError {
                    path: path.to_path_buf(),
                    line: line + offset,
                    message: format!(
                        "undefined variable `{name}` (define it under `vars:` in the front matter; facts are {})",
                        fact_names.join(", ")
                    ),
                })
            }
        }
    }
}

fn unknown_error(
    t: &Templates,
    text: &str,
    fact_names: &[&str],
    path: &Path,
    line: usize,
    name: &str,
) -> TemplateError {
    let known = t.known(text, fact_names);
    let hint = closest(name, &known).map(|k| format!("did you mean `{k}`? ")).unwrap_or_default();
    TemplateError {
        path: path.to_path_buf(),
        line,
        message: format!(
            "undefined variable `{name}` ({hint}define it under `vars:` in the front matter; facts are {}; \
             a Go template such as `{{{{.metadata.name}}}}` is left as written)",
            fact_names.join(", ")
        ),
    }
}

/// The known name closest to `name` by edit distance, if it is close enough to be a typo.
pub fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbours each cost one (`woh` is one from `who`).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

enum Part<'t> {
    /// `{{ … }}`: the whole span and the expression inside (trim markers removed).
    Expr { span: std::ops::Range<usize>, expr: &'t str },
    /// A `{{` that is never closed (output that happens to contain it).
    Unclosed(usize),
}

/// The `{{ … }}` of `text`, skipping `{% raw %}` … `{% endraw %}` regions.
fn scan(text: &str) -> Vec<Part<'_>> {
    static RAW: std::sync::OnceLock<(regex::Regex, regex::Regex)> = std::sync::OnceLock::new();
    let (raw_open, raw_close) =
        RAW.get_or_init(|| (regex_lite(r"\{%-?\s*raw\s*-?%\}"), regex_lite(r"\{%-?\s*endraw\s*-?%\}")));
    let mut parts = Vec::new();
    let mut i = 0;
    while let Some(off) = text[i..].find("{{") {
        let at = i + off;
        if let Some(m) = raw_open.find_at(text, i).filter(|m| m.start() < at) {
            i = raw_close.find_at(text, m.end()).map(|c| c.end()).unwrap_or(text.len());
            continue;
        }
        match close_of(&text[at + 2..]) {
            Some(close) => {
                let end = at + 2 + close + 2;
                let expr = text[at + 2..end - 2].trim_start_matches('-').trim_end_matches('-').trim();
                parts.push(Part::Expr { span: at..end, expr });
                i = end;
            }
            None => {
                parts.push(Part::Unclosed(at));
                i = at + 2;
            }
        }
    }
    parts
}

/// Offset of the `}}` closing an expression that starts at `s`, skipping quoted strings
/// (`{{ "}}" }}`); the first `}}` when the quotes do not balance.
fn close_of(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == b'\\' && q != b'`' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if matches!(c, b'"' | b'\'' | b'`') => quote = Some(c),
            None if c == b'}' && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            None => {}
        }
        i += 1;
    }
    s.find("}}")
}

fn regex_lite(re: &str) -> regex::Regex {
    regex::Regex::new(re).expect("valid regex")
}

/// Names bound inside `text` by `{% for a, b in … %}`, `{% set x = … %}`, `{% with x = … %}`,
/// `{% macro m(a, b) %}`, plus `loop` inside a for.
fn bound_names(text: &str) -> Vec<&str> {
    if !text.contains("{%") {
        return Vec::new();
    }
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| regex_lite(r"\{%-?\s*(for|set|with|macro)\s+([^%]*?)(?:\s+in\s|=|%\})"));
    let mut out = Vec::new();
    for c in re.captures_iter(text) {
        if &c[1] == "for" {
            out.push("loop");
        }
        let names = c.get(2).map(|m| m.as_str()).unwrap_or("");
        out.extend(
            names
                .split(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                .filter(|n| !n.is_empty() && !n.starts_with(|c: char| c.is_ascii_digit())),
        );
    }
    out
}

#[derive(Debug, PartialEq, Eq)]
enum Kind<'t> {
    Tutor,
    Foreign,
    /// A bare-name expression whose name tutor does not know: a typo.
    Unknown(&'t str),
}

/// Go template keywords that may stand alone (`{{end}}`, `{{ else }}`).
const GO_WORDS: &[&str] = &["end", "else", "break", "continue", "nil", "true", "false", "block", "define"];

fn leading_name(expr: &str) -> Option<(&str, &str)> {
    let end = expr.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(expr.len());
    let name = &expr[..end];
    (!name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit())).then(|| (name, &expr[end..]))
}

fn classify<'t>(expr: &'t str, known: &[&str]) -> Kind<'t> {
    // Jinja's way of writing its own delimiters (`{{ "{{" }}`): no Go template prints these.
    let unquoted = expr.strip_prefix('"').and_then(|e| e.strip_suffix('"'));
    let unquoted = unquoted.or_else(|| expr.strip_prefix('\'').and_then(|e| e.strip_suffix('\'')));
    if unquoted.is_some_and(|u| matches!(u, "{{" | "}}" | "{%" | "%}" | "{#" | "#}")) {
        return Kind::Tutor;
    }
    let Some((name, rest)) = leading_name(expr) else { return Kind::Foreign };
    if known.contains(&name) {
        return Kind::Tutor;
    }
    // Jinja-shaped: the name alone, an attribute, index or call on it, or an operator after it.
    // Go-shaped: the name followed by arguments (`json .x`, `printf "%s" .y`, `len .items`).
    let trimmed = rest.trim_start();
    let word = leading_name(trimmed).map(|(w, _)| w);
    let bare = trimmed.is_empty()
        || rest.starts_with(['.', '[', '('])
        || trimmed.starts_with(['|', '~', '+', '-', '*', '/', '%', '=', '!', '<', '>'])
        || matches!(word, Some("if" | "is" | "in" | "and" | "or" | "not"));
    if bare && !GO_WORDS.contains(&name) { Kind::Unknown(name) } else { Kind::Foreign }
}

/// `name arg…`: a Go function call or keyword with arguments (`json .x`, `range .items`).
fn go_call(expr: &str) -> bool {
    leading_name(expr).is_some_and(|(_, rest)| {
        rest.starts_with(char::is_whitespace) && rest.trim_start().starts_with(['.', '$', '"', '`'])
    })
}

fn error(path: &Path, line: usize, e: &minijinja::Error) -> TemplateError {
    let offset = e.line().map(|l| l.saturating_sub(1)).unwrap_or(0);
    let message = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    TemplateError { path: path.to_path_buf(), line: line + offset, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn templates() -> Templates {
        let mut front = FrontMatter::default();
        front.vars.insert("who".into(), json!("world"));
        Templates::new(&front)
    }

    #[test]
    fn renders_vars_and_facts() {
        let t = templates();
        let facts = json!({"nodes": {"kind-worker": {"ip": "172.18.0.3"}}});
        let out = t.render("hi {{ who }} {{ nodes['kind-worker'].ip }}\n", &facts, Path::new("t.md"), 1).unwrap();
        assert_eq!(out, "hi world 172.18.0.3\n");
    }

    #[test]
    fn shell_syntax_is_left_alone() {
        let t = templates();
        let text = "echo ${#a[@]} {x} $((1+1))\n";
        assert_eq!(t.render(text, &json!({}), Path::new("t.md"), 1).unwrap(), text);
        let mixed = "echo ${#a[@]} {{ who }}";
        assert_eq!(t.render(mixed, &json!({}), Path::new("t.md"), 1).unwrap(), "echo ${#a[@]} world");
    }

    #[test]
    fn undefined_is_an_error_with_the_line() {
        let t = templates();
        let e = t.render("a\n{{ nope }}\n", &json!({}), Path::new("t.md"), 10).unwrap_err();
        assert_eq!(e.line, 11);
        assert!(e.to_string().starts_with("t.md:11: template error: undefined value"), "{e}");
    }

    #[test]
    fn check_knows_vars_and_facts() {
        let t = templates();
        let p = Path::new("t.md");
        assert!(t.check("{{ who }} {{ nodes.x }}", FACT_NAMES, p, 1).is_ok());
        let e = t.check("ok\n{{ whom }}", FACT_NAMES, p, 5).unwrap_err();
        assert_eq!(e.line, 6);
        assert!(e.message.contains("undefined variable `whom`"));
        let e = t.check("{% if who %}", FACT_NAMES, p, 5).unwrap_err();
        assert!(e.message.contains("syntax error"), "{}", e.message);
        let e = t.check("{{ woh }}", FACT_NAMES, p, 5).unwrap_err();
        assert!(e.message.contains("did you mean `who`"), "{}", e.message);
    }

    #[test]
    fn go_templates_run_as_written() {
        let t = templates();
        let p = Path::new("t.md");
        let facts = json!({"nodes": {}});
        for text in [
            "kubectl get pod -o go-template='{{.metadata.name}}'\n",
            "docker inspect -f '{{ .State.Status }}' x",
            "docker inspect -f '{{json .Config}}' x",
            "kubectl get pods -o go-template='{{range .items}}{{.metadata.name}}{{\"\\n\"}}{{end}}'",
            "{{- index .metadata.labels \"app\" -}} {{ $x := 1 }} {{ else }}",
            "unclosed {{ here",
            "a }} b {{",
        ] {
            assert_eq!(t.render(text, &facts, p, 1).unwrap(), text, "{text}");
            assert!(t.check(text, FACT_NAMES, p, 1).is_ok(), "{text}");
            assert!(t.is_literal(text, FACT_NAMES), "{text}");
        }
        let mixed = "kubectl get node {{ who }} -o go-template='{{.metadata.name}}'";
        assert_eq!(
            t.render(mixed, &facts, p, 1).unwrap(),
            "kubectl get node world -o go-template='{{.metadata.name}}'"
        );
        assert!(!t.is_literal(mixed, FACT_NAMES));
        let looped = "{% for n in nodes %}{{ n }} {{ loop.index }}{% endfor %}";
        assert_eq!(t.render(looped, &json!({"nodes": ["a", "b"]}), p, 1).unwrap(), "a 1b 2");
        assert_eq!(t.render("{% raw %}{{ who }}{% endraw %}", &facts, p, 1).unwrap(), "{{ who }}");
        assert_eq!(t.render("{{ \"{{\" }} who {{ '}}' }}", &facts, p, 1).unwrap(), "{{ who }}", "Jinja's escape");
    }

    #[test]
    fn ambiguous_lines_are_found() {
        let mut front = FrontMatter::default();
        front.vars.insert("json".into(), json!("x"));
        let t = Templates::new(&front);
        let text = "a\ndocker inspect -f '{{json .Config}}' x\n{{ json }}";
        assert_eq!(t.ambiguous(text, FACT_NAMES), vec![(1, "{{json .Config}}".to_string())]);
    }

    #[test]
    fn escaped_output_reads_back_as_itself() {
        let t = templates();
        let p = Path::new("t.md");
        for text in [
            "hello {{ who }}\n",
            "{% if x %}\nplain\n{{.metadata.name}}\n",
            "{## not a comment ##}\n",
            "tricky {% endraw %} {{ who }}",
            "no template at all\n",
        ] {
            let escaped = t.escape(text);
            assert_eq!(t.render(&escaped, &json!({}), p, 1).unwrap(), text, "{escaped}");
        }
        assert_eq!(t.escape("{{.metadata.name}}\n"), "{{.metadata.name}}\n", "Go templates need no escape");
    }
}
