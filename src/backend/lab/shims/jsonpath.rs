//! kubectl's JSONPath templates (`{range .items[*]}{.metadata.name}{"\t"}{end}`) on top of an
//! RFC 9535 engine (`serde_json_path`): this module only handles kubectl's template layer —
//! literal text, `{"…"}` strings, `{range}`/`{end}` — and hands each path to the library.

use serde_json::Value;
use serde_json_path::JsonPath;

#[derive(Debug, PartialEq)]
enum Node {
    Text(String),
    Path(String),
    Range(String, Vec<Node>),
}

/// What is wrong with a template (kubectl prints it after `error: `).
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("unterminated string in template")]
    UnterminatedString,
    #[error("unclosed action in template {0:?}")]
    Unclosed(String),
    #[error("{{end}} without {{range}}")]
    EndWithoutRange,
    #[error("bad literal {0}")]
    BadLiteral(String),
    #[error("error parsing jsonpath {path}: {cause}")]
    Path {
        path: String,
        // Part of the message (kubectl prints one line), not a `source()`.
        cause: Box<serde_json_path::ParseError>,
    },
}

pub fn render(template: &str, data: &Value) -> Result<String, TemplateError> {
    let tokens = tokenize(template)?;
    let mut pos = 0;
    let nodes = parse(&tokens, &mut pos, false)?;
    let mut out = String::new();
    eval(&nodes, data, &mut out)?;
    Ok(out)
}

#[derive(Debug)]
enum Token {
    Text(String),
    Expr(String),
}

fn tokenize(t: &str) -> Result<Vec<Token>, TemplateError> {
    let mut tokens = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            tokens.push(Token::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 1..];
        // A quoted literal may contain braces.
        let close = if after.trim_start().starts_with('"') {
            let q = after.find('"').unwrap();
            let end_q = after[q + 1..].find('"').ok_or(TemplateError::UnterminatedString)? + q + 1;
            after[end_q..].find('}').map(|c| c + end_q)
        } else {
            after.find('}')
        }
        .ok_or_else(|| TemplateError::Unclosed(t.to_string()))?;
        tokens.push(Token::Expr(after[..close].trim().to_string()));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        tokens.push(Token::Text(rest.to_string()));
    }
    Ok(tokens)
}

fn parse(tokens: &[Token], pos: &mut usize, in_range: bool) -> Result<Vec<Node>, TemplateError> {
    let mut nodes = Vec::new();
    while *pos < tokens.len() {
        let tok = &tokens[*pos];
        *pos += 1;
        match tok {
            Token::Text(s) => nodes.push(Node::Text(s.clone())),
            Token::Expr(e) if e == "end" => {
                if in_range {
                    return Ok(nodes);
                }
                return Err(TemplateError::EndWithoutRange);
            }
            Token::Expr(e) if e.starts_with("range ") => {
                let path = e["range ".len()..].trim().to_string();
                // kubectl tolerates a missing final {end} (the article's command has none).
                let body = parse(tokens, pos, true)?;
                nodes.push(Node::Range(path, body));
            }
            Token::Expr(e) if e.starts_with('"') => nodes.push(Node::Text(unquote(e)?)),
            Token::Expr(e) => nodes.push(Node::Path(e.clone())),
        }
    }
    Ok(nodes)
}

fn unquote(e: &str) -> Result<String, TemplateError> {
    let inner = e
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or_else(|| TemplateError::BadLiteral(e.to_string()))?;
    Ok(inner.replace("\\t", "\t").replace("\\n", "\n").replace("\\\"", "\"").replace("\\\\", "\\"))
}

fn query<'a>(path: &str, data: &'a Value) -> Result<Vec<&'a Value>, TemplateError> {
    let p = path.trim_start_matches('@').trim_start_matches('$');
    let full = if p.is_empty() { "$".to_string() } else { format!("${p}") };
    let jp = JsonPath::parse(&full).map_err(|e| TemplateError::Path { path: path.to_string(), cause: Box::new(e) })?;
    Ok(jp.query(data).all())
}

fn eval(nodes: &[Node], data: &Value, out: &mut String) -> Result<(), TemplateError> {
    for n in nodes {
        match n {
            Node::Text(s) => out.push_str(s),
            Node::Path(p) => {
                let vals: Vec<String> = query(p, data)?.into_iter().map(scalar).collect();
                out.push_str(&vals.join(" "));
            }
            Node::Range(p, body) => {
                for item in query(p, data)? {
                    eval(body, item, out)?;
                }
            }
        }
    }
    Ok(())
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nodes() -> Value {
        json!({"items": [
            {"metadata": {"name": "kind-control-plane"}, "spec": {"podCIDR": "10.244.0.0/24"}},
            {"metadata": {"name": "kind-worker"}, "spec": {"podCIDR": "10.244.2.0/24"}}
        ]})
    }

    #[test]
    fn article_template_without_end() {
        let t = r#"{range .items[*]}{.metadata.name}{"\t"}{.spec.podCIDR}{"\n"}"#;
        assert_eq!(render(t, &nodes()).unwrap(), "kind-control-plane\t10.244.0.0/24\nkind-worker\t10.244.2.0/24\n");
    }

    #[test]
    fn lists_join_with_spaces_and_text_passes_through() {
        assert_eq!(
            render("names: {.items[*].metadata.name}!", &nodes()).unwrap(),
            "names: kind-control-plane kind-worker!"
        );
        assert_eq!(render("{.items[0].spec}", &nodes()).unwrap(), r#"{"podCIDR":"10.244.0.0/24"}"#);
        assert!(render("{.items[", &nodes()).is_err());
        assert!(render("{end}", &nodes()).is_err());
    }
}
