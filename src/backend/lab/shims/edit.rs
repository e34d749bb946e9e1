//! `kubectl edit` for the lab, done on the shim's side (it needs the caller's editor): fetch the
//! object as YAML, run `$KUBE_EDITOR` (or `$EDITOR`) on it, apply the result. Tutorials use a
//! non-interactive editor, e.g. `KUBE_EDITOR="sed -i s/a/b/" kubectl edit cm coredns`.

use std::path::Path;

use super::super::LabError;
use super::super::protocol::{self, Request, Response};

/// What to print and the exit status.
pub struct Edited {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

/// kubectl's rule: an editor with spaces but no quotes or backslashes is split on spaces and
/// run directly; anything else goes through `bash -c`.
fn editor_command(editor: &str, file: &Path) -> std::process::Command {
    if !editor.contains(['"', '\'', '\\']) {
        let mut parts = editor.split(' ').filter(|p| !p.is_empty());
        let mut cmd = std::process::Command::new(parts.next().unwrap_or("vi"));
        cmd.args(parts).arg(file);
        cmd
    } else {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg("-c").arg(format!("{editor} \"$1\"")).arg("bash").arg(file);
        cmd
    }
}

pub fn run(lab: &str, args: &[String], cwd: &Path) -> Result<Edited, LabError> {
    let editor = std::env::var("KUBE_EDITOR").or_else(|_| std::env::var("EDITOR")).map_err(|_| {
        LabError::Input("kubectl edit on the lab needs KUBE_EDITOR (e.g. KUBE_EDITOR=\"sed -i s/a/b/\")".into())
    })?;
    let mut get: Vec<String> = args.iter().map(|a| if a == "edit" { "get".to_string() } else { a.clone() }).collect();
    get.extend(["-o".to_string(), "yaml".to_string()]);
    let call = |args: Vec<String>| {
        protocol::call(lab, &Request::Shim { tool: "kubectl".into(), args, cwd: cwd.to_path_buf() })
    };
    let original = match call(get)? {
        Response::Output { stdout, code: 0, .. } => stdout,
        Response::Output { stdout, stderr, code } => return Ok(Edited { stdout, stderr, code }),
        Response::Error { message, usage } => {
            return Err(LabError::remote(message, usage));
        }
        other => return Err(LabError::UnexpectedAnswer(format!("{other:?}"))),
    };
    let file = tempfile::Builder::new()
        .prefix("kubectl-edit-")
        .suffix(".yaml")
        .tempfile()
        .map_err(|source| LabError::Io { what: "creating the file to edit".into(), source })?;
    std::fs::write(file.path(), &original)
        .map_err(|source| LabError::Io { what: file.path().display().to_string(), source })?;
    let status = editor_command(&editor, file.path())
        .status()
        .map_err(|source| LabError::Io { what: "running the editor".into(), source })?;
    if !status.success() {
        return Ok(Edited {
            stdout: String::new(),
            stderr: "error: there was a problem with the editor\n".into(),
            code: 1,
        });
    }
    let edited = std::fs::read_to_string(file.path())
        .map_err(|source| LabError::Io { what: file.path().display().to_string(), source })?;
    if edited == original {
        return Ok(Edited { stdout: "Edit cancelled, no changes made.\n".into(), stderr: String::new(), code: 0 });
    }
    let mut apply = vec!["apply".to_string(), "-f".to_string(), file.path().display().to_string()];
    if let Some(i) = args.iter().position(|a| a == "-n" || a == "--namespace") {
        apply.extend(args[i..(i + 2).min(args.len())].iter().cloned());
    }
    match call(apply)? {
        Response::Output { stdout, stderr, code } => Ok(Edited {
            stdout: stdout.replace(" configured\n", " edited\n").replace(" unchanged\n", " edited\n"),
            stderr,
            code,
        }),
        Response::Error { message, usage } => Err(LabError::remote(message, usage)),
        other => Err(LabError::UnexpectedAnswer(format!("{other:?}"))),
    }
}
