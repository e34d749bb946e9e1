//! `cilium-dbg` in the `cilium` image. `build-config` is what the DaemonSet's `config` init
//! container runs: the `cilium-config` ConfigMap written as one file per option into the
//! agent's `--config-dir`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::CiliumError;

pub async fn main(args: &[String]) -> Result<ExitCode, CiliumError> {
    match args.first().map(String::as_str) {
        Some("build-config") => build_config(&args[1..]).await,
        Some(_) => ask_agent(args).await,
        None => Err(CiliumError::Usage(
            "cilium-dbg: a command is needed (the lab's has: status, version, config, endpoint list, service list, bpf lb list, bpf ipmasq list, build-config)"
                .into(),
        )),
    }
}

/// Everything else is answered by the agent, over its API socket.
async fn ask_agent(args: &[String]) -> Result<ExitCode, CiliumError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sock = super::agent::SOCKET;
    let mut conn = tokio::net::UnixStream::connect(sock).await.map_err(CiliumError::io(format!(
        "Error: Unable to reach the agent's API at unix://{sock} (is cilium-agent running?)"
    )))?;
    conn.write_all(format!("{}\n", args.join(" ")).as_bytes())
        .await
        .map_err(CiliumError::io("sending the request to the agent"))?;
    let mut text = String::new();
    conn.read_to_string(&mut text).await.map_err(CiliumError::io("reading the agent's answer"))?;
    let (code, body) = text.split_once('\n').unwrap_or(("1", "the agent closed the connection\n"));
    if code == "0" {
        print!("{body}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprint!("Error: {body}");
        Ok(ExitCode::from(1))
    }
}

async fn build_config(args: &[String]) -> Result<ExitCode, CiliumError> {
    let mut dest = PathBuf::from("/tmp/cilium/config-map");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.split_once('=') {
            Some(("--dest", v)) => dest = PathBuf::from(v),
            None if a == "--dest" => {
                dest = PathBuf::from(it.next().ok_or_else(|| CiliumError::Usage("--dest needs a value".into()))?)
            }
            _ => return Err(CiliumError::Usage(format!("build-config: unknown flag {a}"))),
        }
    }
    let namespace = std::env::var("CILIUM_K8S_NAMESPACE").unwrap_or_else(|_| "kube-system".into());
    let client = kube::Client::try_default().await.map_err(CiliumError::api("connecting to the API server"))?;
    let options = super::agent::config_map(&client, &namespace).await?;
    write_dir(&dest, &options)?;
    eprintln!("level=info msg=\"Writing {} options to {}\" subsys=build-config", options.len(), dest.display());
    Ok(ExitCode::SUCCESS)
}

/// One file per option; options no longer in the ConfigMap are removed.
fn write_dir(dest: &Path, options: &std::collections::BTreeMap<String, String>) -> Result<(), CiliumError> {
    std::fs::create_dir_all(dest).map_err(CiliumError::io(format!("creating {}", dest.display())))?;
    for e in std::fs::read_dir(dest).map_err(CiliumError::io(format!("reading {}", dest.display())))?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !options.contains_key(&name) && e.path().is_file() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    for (k, v) in options {
        if k.contains('/') || k.starts_with('.') {
            return Err(CiliumError::Config { key: k.clone(), why: "not a valid option name".into() });
        }
        let path = dest.join(k);
        std::fs::write(&path, v).map_err(CiliumError::io(format!("writing {}", path.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_files_and_read_back() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("stale"), "x").unwrap();
        let opts = [("routing-mode".to_string(), "native".to_string())].into_iter().collect();
        write_dir(d.path(), &opts).unwrap();
        assert!(!d.path().join("stale").exists());
        let back = super::super::config::AgentConfig::from_dir(d.path()).unwrap();
        assert_eq!(back.options, opts);
        let bad = [("../x".to_string(), "y".to_string())].into_iter().collect();
        assert!(write_dir(d.path(), &bad).is_err());
    }
}
