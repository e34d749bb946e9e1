//! The supervisor's control socket: one JSON request, one JSON response per connection.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::LabError;
use super::registry::{self, LabInfo};

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Info,
    Down,
    /// A shim invocation: `tool` is `kind`, `kubectl`, `helm` or `docker`.
    Shim {
        tool: String,
        args: Vec<String>,
        cwd: PathBuf,
    },
    /// Make the machine's `path` (a work directory) visible at the same path in the lab host,
    /// whose /tmp and /run are its own (answered without waiting for a shim in progress).
    Share {
        path: PathBuf,
    },
    /// Serve these URLs' content from the outside world (a tutorial's `offline:` map).
    Serve {
        files: Vec<crate::backend::Served>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Info(LabInfo),
    Done,
    /// What the tool printed, and its exit status.
    Output {
        stdout: String,
        stderr: String,
        code: i32,
    },
    /// Run `argv` inside target thread `tid` of the supervisor, with the caller's stdio
    /// (`kubectl exec`, `docker exec`).
    Exec {
        tid: i32,
        argv: Vec<String>,
    },
    Error {
        message: String,
        usage: bool,
    },
}

impl Response {
    pub fn from_error(e: &LabError) -> Response {
        Response::Error { message: e.report(), usage: e.is_usage() }
    }
}

/// Send one request to lab `name` and wait for the answer.
pub fn call(name: &str, req: &Request) -> Result<Response, LabError> {
    let path = registry::socket(name);
    let mut stream = UnixStream::connect(&path).map_err(|_| LabError::NoSuchLab(name.to_string()))?;
    let mut line = serde_json::to_string(req).expect("serialisable");
    line.push('\n');
    let io = |source| LabError::Io { what: format!("lab {name}: talking over {}", path.display()), source };
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).map_err(io)?;
    if answer.is_empty() {
        return Err(LabError::SupervisorClosed(name.to_string()));
    }
    serde_json::from_str(&answer).map_err(|source| LabError::Json { what: format!("lab {name}: bad answer"), source })
}

/// Read one request from a connection.
pub fn read_request(stream: &UnixStream) -> Result<Request, LabError> {
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|source| LabError::Io { what: "reading a request".into(), source })?;
    serde_json::from_str(&line).map_err(|source| LabError::Json { what: "parsing a request".into(), source })
}

pub fn write_response(mut stream: &UnixStream, resp: &Response) {
    let mut line = serde_json::to_string(resp).expect("serialisable");
    line.push('\n');
    let _ = stream.write_all(line.as_bytes());
}
