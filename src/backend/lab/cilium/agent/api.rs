//! The agent's API for `cilium-dbg` (`/var/run/cilium/cilium.sock`, Cilium's path inside the
//! pod): one request line, the answer's text, then the connection closes. Every answer comes
//! from the agent's state (`NodeState`, `Facts`) and the kernel.

use std::path::Path;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector;
use tokio::io::AsyncWriteExt;

use super::{Facts, NodeState, SOCKET, lxc_links};
use crate::backend::lab::masquerade;
use crate::backend::lab::topology::NodePlan;
use crate::backend::lab::values::CiliumValues;

/// Serves `cilium-dbg` on [`SOCKET`] until the agent exits.
pub(super) async fn serve(state: Arc<Mutex<NodeState>>, facts: Arc<Facts>, nodes: reflector::Store<Node>) {
    let path = Path::new(SOCKET);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::remove_file(path);
    let listener = match tokio::net::UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("level=error msg=\"API socket {SOCKET}: {e}\"");
            return;
        }
    };
    loop {
        let Ok((conn, _)) = listener.accept().await else { continue };
        let (state, facts, count) = (state.clone(), facts.clone(), nodes.state().len());
        tokio::spawn(async move {
            let (r, mut w) = conn.into_split();
            let mut line = String::new();
            let mut r = tokio::io::BufReader::new(r);
            if tokio::io::AsyncBufReadExt::read_line(&mut r, &mut line).await.is_err() {
                return;
            }
            let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            let answer = tokio::task::spawn_blocking(move || {
                let st = state.lock().unwrap_or_else(|e| e.into_inner());
                answer(&st, &facts, count, &words)
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            let text = match answer {
                Ok(t) => format!("0\n{t}"),
                Err(e) => format!("1\n{e}\n"),
            };
            let _ = w.write_all(text.as_bytes()).await;
        });
    }
}

/// What `cilium-dbg WORDS` prints, from the agent's state and its maps.
fn answer(st: &NodeState, facts: &Facts, nodes: usize, words: &[String]) -> Result<String, String> {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let values = st.values.as_ref().ok_or("the agent has not programmed its node yet")?;
    let me = st.me.as_ref().ok_or("the agent has not programmed its node yet")?;
    match w.as_slice() {
        ["status", rest @ ..] if rest.iter().all(|r| matches!(*r, "--verbose" | "--brief")) => {
            if rest.contains(&"--brief") {
                return Ok(if st.failure.is_none() { "OK\n".into() } else { "error\n".into() });
            }
            Ok(status(st, facts, nodes, values, me))
        }
        ["service", "list"] => {
            let rows: Vec<(String, String, Vec<String>)> = st
                .frontends
                .iter()
                .map(|f| {
                    (
                        format!("{}:{}", f.ip, f.port),
                        f.kind.to_string(),
                        f.backends.iter().map(|b| format!("{b}:{}", f.target_port)).collect(),
                    )
                })
                .collect();
            Ok(crate::backend::lab::xdp_lb::service_table(&rows))
        }
        ["bpf", "ipmasq", "list"] => {
            let prefixes = match &st.bpf {
                Some((bpf, _)) if values.ip_masq_agent => bpf.ipmasq_list().map_err(|e| e.to_string())?,
                _ => vec![],
            };
            Ok(std::iter::once("IP PREFIX/ADDRESS".to_string()).chain(prefixes).map(|l| l + "\n").collect())
        }
        _ => Err(format!(
            "cilium-dbg {}: not played by the lab's cilium image (it has: status [--verbose|--brief], service list, bpf ipmasq list, build-config)",
            words.join(" ")
        )),
    }
}

fn status(st: &NodeState, facts: &Facts, nodes: usize, v: &CiliumValues, me: &NodePlan) -> String {
    let host = if v.bpf_masquerade { "BPF" } else { "Legacy" };
    let masq = masquerade::status_value(v, me);
    let routing = masquerade::routing_value(v);
    let k8s = &facts.kubernetes;
    let minor = k8s.trim_start_matches('v').splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
    let kpr = if v.kube_proxy_replacement { "True" } else { "False" };
    let controllers = if st.failure.is_none() { "ok".to_string() } else { "1 failing".to_string() };
    format!(
        "KVStore:                 Ok   Disabled\n\
         Kubernetes:              Ok   {minor} ({k8s}) [linux/amd64]\n\
         KubeProxyReplacement:    {kpr}   [eth0   {ip} (Direct Routing)]\n\
         Host firewall:           Disabled\n\
         CNI Chaining:            none\n\
         Cilium:                  Ok   {cilium}\n\
         NodeMonitor:             Disabled\n\
         IPAM:                    IPv4: {used}/254 allocated from {cidr}, \n\
         Host Routing:            {host}\n\
         Masquerading:            {masq}\n\
         Routing:                 {routing}\n\
         Controller Status:       {controllers}\n\
         Cluster nodes:           {nodes}\n",
        ip = me.ip,
        cilium = facts.cilium,
        // The pods' addresses on this node and the router's.
        used = lxc_links().len() + 1,
        cidr = me.pod_cidr,
    )
}
