//! The control-plane tools a tutorial calls on the lab (`kind`, `kubectl`, `helm`, `docker`),
//! answered by the supervisor from the lab's real state. The shim processes only forward their
//! argv here (see `cli::lab::shim_dispatch`).

mod args;
mod docker;
pub mod edit;
mod helm;
mod jsonpath;
mod kind;
mod kubectl;
mod nmcli;
mod table;

use std::path::Path;

use super::LabError;
use super::protocol::Response;
use super::state::Lab;

pub use args::Args;
pub use docker::Images;

/// Names the shims are installed under.
pub const TOOLS: [&str; 5] = ["kind", "kubectl", "helm", "docker", "nmcli"];

/// What a tool invocation did.
pub enum Outcome {
    Print { stdout: String, stderr: String, code: i32 },
    Exec { tid: i32, argv: Vec<String> },
}

impl Outcome {
    pub fn out(s: impl Into<String>) -> Outcome {
        Outcome::Print { stdout: s.into(), stderr: String::new(), code: 0 }
    }
    pub fn err(s: impl Into<String>) -> Outcome {
        Outcome::Print { stdout: String::new(), stderr: s.into(), code: 0 }
    }
}

/// The one error for everything outside the lab's subset.
pub fn unsupported(tool: &str, args: &[String]) -> LabError {
    LabError::UnsupportedCommand { tool: tool.to_string(), args: args.to_vec(), detail: None }
}

pub fn dispatch(lab: &mut Lab, tool: &str, args: &[String], cwd: &Path) -> Response {
    let result = match tool {
        "kind" => kind::run(lab, args, cwd),
        "kubectl" => kubectl::run(lab, args, cwd),
        "helm" => helm::run(lab, args, cwd),
        "docker" => docker::run(lab, args),
        "nmcli" => nmcli::run(args),
        _ => Err(unsupported(tool, args)),
    };
    // An unknown flag is reported with the whole invocation, like any unsupported command.
    let result = result.map_err(|e| match e {
        LabError::UnsupportedDetail(detail) => {
            LabError::UnsupportedCommand { tool: tool.to_string(), args: args.to_vec(), detail: Some(detail) }
        }
        other => other,
    });
    match result {
        Ok(Outcome::Print { stdout, stderr, code }) => Response::Output { stdout, stderr, code },
        Ok(Outcome::Exec { tid, argv }) => Response::Exec { tid, argv },
        Err(e) => Response::from_error(&e),
    }
}

/// Resolve a path argument against the caller's working directory, as the lab host sees it
/// (the caller runs there; its /tmp and /run are not the supervisor's).
/// `host` is [`Lab::host_root`].
pub fn resolve(host: &Path, cwd: &Path, file: &str) -> std::path::PathBuf {
    let path = cwd.join(file);
    host.join(path.strip_prefix("/").unwrap_or(&path))
}
