//! `docker exec [-t] [-i] NODE CMD…`: the node containers are the lab's node namespaces.

use super::super::LabError;
use super::super::state::Lab;
use super::{Args, Outcome, unsupported};

pub fn run(lab: &mut Lab, argv: &[String]) -> Result<Outcome, LabError> {
    if argv.first().map(String::as_str) != Some("exec") {
        return Err(unsupported("docker", argv));
    }
    // Options stop at the container name.
    let split =
        argv[1..].iter().position(|a| !a.starts_with('-')).map(|i| i + 1).ok_or_else(|| unsupported("docker", argv))?;
    Args::parse(
        &argv[1..split],
        &["-e", "--env", "-w", "--workdir", "-u", "--user"],
        &["-t", "-i", "--tty", "--interactive"],
    )?;
    let node = &argv[split];
    let cmd: Vec<String> = argv[split + 1..].to_vec();
    if cmd.is_empty() {
        return Err(LabError::Input("\"docker exec\" requires at least 2 arguments.".into()));
    }
    let c = lab
        .cluster
        .as_ref()
        .ok_or_else(|| LabError::Input(format!("Error response from daemon: No such container: {node}")))?;
    let n = c
        .node(node)
        .ok_or_else(|| LabError::Input(format!("Error response from daemon: No such container: {node}")))?;
    Ok(Outcome::Exec { tid: n.ns.tid(), argv: cmd })
}
