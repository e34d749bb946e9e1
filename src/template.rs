//! minijinja environment for `{{ expr }}` in commands, `file=` bodies and expected outputs.
//!
//! Values come from the front matter's `vars` and the backend's facts
//! (`{{ nodes["kind-worker"].ip }}`). Undefined names are errors, never empty strings: a typo
//! must not silently turn a check into something that always passes.

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
        let mut ctx = match facts {
            serde_json::Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        ctx.extend(self.vars.clone());
        self.env.render_str(text, serde_json::Value::Object(ctx)).map_err(|e| error(path, line, &e))
    }

    /// Syntax errors and names that are neither vars nor facts (`fact_names`), without rendering.
    pub fn check(&self, text: &str, fact_names: &[&str], path: &Path, line: usize) -> Result<(), TemplateError> {
        if !Self::has_template(text) {
            return Ok(());
        }
        let tmpl = self.env.template_from_str(text).map_err(|e| error(path, line, &e))?;
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
        let e = t.check("{{ who ", FACT_NAMES, p, 5).unwrap_err();
        assert!(e.message.contains("syntax error"), "{}", e.message);
    }
}
