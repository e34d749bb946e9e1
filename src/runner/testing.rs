//! Hand-built tutorials for unit tests (no Markdown parser involved).

use std::path::PathBuf;

use crate::tutorial::{Attributes, Block, BlockKind, ConsoleCommand, FrontMatter, Step, Tutorial};

/// A console block; `commands` are `(command, expected output)`.
pub fn console(id: &str, commands: &[(&str, &str)]) -> Block {
    let mut body = String::new();
    let cmds = commands
        .iter()
        .enumerate()
        .map(|(i, (c, e))| {
            body.push_str(&format!("$ {c}\n"));
            if !e.is_empty() {
                body.push_str(e);
                body.push('\n');
            }
            ConsoleCommand {
                line: 10 + i,
                prompt_text: format!("$ {c}"),
                command: c.to_string(),
                expected: e.to_string(),
                blank_before: 0,
            }
        })
        .collect();
    Block {
        id: id.into(),
        line: 9,
        lang: "console".into(),
        attrs: Attributes::default(),
        kind: BlockKind::Console(cmds),
        body_span: 0..body.len(),
        body,
        body_line: 10,
    }
}

pub fn shell(id: &str, body: &str) -> Block {
    Block {
        id: id.into(),
        line: 9,
        lang: "sh".into(),
        attrs: Attributes::default(),
        kind: BlockKind::Shell,
        body: body.into(),
        body_line: 10,
        body_span: 0..body.len(),
    }
}

pub fn with_steps(steps: Vec<Vec<Block>>) -> Tutorial {
    let steps = steps
        .into_iter()
        .enumerate()
        .map(|(i, blocks)| Step {
            number: i + 1,
            title: format!("Step {}", i + 1),
            slug: format!("s{}", i + 1),
            line: 1 + i * 20,
            blocks,
        })
        .collect();
    Tutorial {
        path: PathBuf::from("t.md"),
        stem: "t".into(),
        source: String::new(),
        front: FrontMatter::default(),
        steps,
        notes: Vec::new(),
    }
}

/// One console block per command, its output not checked beyond being empty.
pub fn tutorial(steps: &[&[&str]]) -> Tutorial {
    with_steps(
        steps
            .iter()
            .enumerate()
            .map(|(s, cmds)| {
                cmds.iter().enumerate().map(|(b, c)| console(&format!("s{}-{}", s + 1, b + 1), &[(c, "")])).collect()
            })
            .collect(),
    )
}
