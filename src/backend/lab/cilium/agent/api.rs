//! The agent's API for `cilium-dbg` (`/var/run/cilium/cilium.sock`, Cilium's path inside the
//! pod): one request line, the answer's text, then the connection closes. Every answer comes
//! from the agent's state (`NodeState`, `Facts`, its endpoints and options in force) and the
//! kernel.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector;
use tokio::io::AsyncWriteExt;

use super::endpoints::{self, Endpoint};
use super::{AgentConfig, Facts, NodeState, SOCKET, lxc_links};
use crate::backend::lab::cilium::tabwriter;
use crate::backend::lab::masquerade;
use crate::backend::lab::services::Frontend;
use crate::backend::lab::topology::NodePlan;
use crate::backend::lab::values::CiliumValues;

/// What the API reads besides the node's state: the endpoints (`endpoints.rs`) and the
/// options the agent runs with (`cilium-config` as last read).
#[derive(Default)]
pub(super) struct Extra {
    pub endpoints: endpoints::Shared,
    pub config: Mutex<AgentConfig>,
    /// The last round of health probes (`health.rs`).
    pub health: super::health::Shared,
}

/// Serves `cilium-dbg` on [`SOCKET`] until the agent exits.
pub(super) async fn serve(
    state: Arc<Mutex<NodeState>>,
    facts: Arc<Facts>,
    nodes: reflector::Store<Node>,
    extra: Arc<Extra>,
) {
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
        let (state, facts, count, extra) = (state.clone(), facts.clone(), nodes.state().len(), extra.clone());
        tokio::spawn(async move {
            let (r, mut w) = conn.into_split();
            let mut line = String::new();
            let mut r = tokio::io::BufReader::new(r);
            if tokio::io::AsyncBufReadExt::read_line(&mut r, &mut line).await.is_err() {
                return;
            }
            let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            let answer = tokio::task::spawn_blocking(move || {
                let eps = extra.endpoints.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let config = extra.config.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let health = extra.health.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let st = state.lock().unwrap_or_else(|e| e.into_inner());
                let c =
                    Ctx { st: &st, facts: &facts, nodes: count, eps: &eps, config: &config, health: health.as_ref() };
                answer(&c, &words)
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

/// Everything an answer is made from.
struct Ctx<'a> {
    st: &'a NodeState,
    facts: &'a Facts,
    nodes: usize,
    eps: &'a [Endpoint],
    config: &'a AgentConfig,
    health: Option<&'a super::health::Round>,
}

/// The commands the lab's image answers (for the refusal of the others).
const COMMANDS: &str = "status [--verbose|--brief|-o json], version, config [--all|--read-only], endpoint list [-o json] [--no-headers], service list, bpf lb list, bpf ipmasq list, build-config";

/// What `cilium-dbg WORDS` prints, from the agent's state and its maps.
fn answer(c: &Ctx, words: &[String]) -> Result<String, String> {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let st = c.st;
    let json = |rest: &[&str]| matches!(rest, ["-o", "json"] | ["-o=json"] | ["--output", "json"] | ["--output=json"]);
    // The status model answers from the start: that the node is not programmed is its news.
    if let ["status", rest @ ..] = w.as_slice()
        && json(rest)
    {
        return Ok(status_json(c) + "\n");
    }
    let values = st.values.as_ref().ok_or("the agent has not programmed its node yet")?;
    let me = st.me.as_ref().ok_or("the agent has not programmed its node yet")?;
    match w.as_slice() {
        ["status", rest @ ..] if rest.iter().all(|r| matches!(*r, "--verbose" | "--brief")) => {
            if rest.contains(&"--brief") {
                return Ok(if st.failure.is_none() { "OK\n".into() } else { "error\n".into() });
            }
            Ok(status(st, c.facts, c.nodes, c.health, values, me, rest.contains(&"--verbose").then_some(c.config)))
        }
        ["version"] => {
            let v = version(&c.facts.cilium);
            Ok(format!("Client: {v}\nDaemon: {v}\n"))
        }
        ["config", rest @ ..] => config(c.config, rest),
        ["endpoint", "list" | "ls", rest @ ..] if json(rest) => Ok(endpoints_json(c.eps) + "\n"),
        ["endpoint", "list" | "ls"] => Ok(endpoint_list(c.eps, true)),
        ["endpoint", "list" | "ls", "--no-headers"] => Ok(endpoint_list(c.eps, false)),
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
        ["bpf", "lb", "list" | "ls"] => Ok(bpf_lb_list(&st.frontends)),
        ["bpf", "ipmasq", "list"] => {
            let prefixes = match &st.bpf {
                Some((bpf, _)) if values.ip_masq_agent => bpf.ipmasq_list().map_err(|e| e.to_string())?,
                _ => vec![],
            };
            Ok(std::iter::once("IP PREFIX/ADDRESS".to_string()).chain(prefixes).map(|l| l + "\n").collect())
        }
        _ => Err(format!("cilium-dbg {}: not played by the lab's cilium image (it has: {COMMANDS})", words.join(" "))),
    }
}

/// The version line of the agent and of `cilium-dbg` (the same image): the Cilium release the
/// pod's image plays, then what plays it.
fn version(cilium: &str) -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    format!("{cilium} (tutor {}) {}/{arch}", env!("CARGO_PKG_VERSION"), std::env::consts::OS)
}

/// `cilium-dbg status -o json`: the parts of Cilium's status model the lab has (what the cilium
/// CLI's `status` reads from every agent).
fn status_json(c: &Ctx) -> String {
    let k8s = &c.facts.kubernetes;
    let minor = k8s.trim_start_matches('v').splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
    let cilium = match (&c.st.failure, &c.st.me) {
        (Some(e), _) => serde_json::json!({ "state": "Failure", "msg": e }),
        (None, None) => serde_json::json!({ "state": "Warning", "msg": "the node is not programmed yet" }),
        (None, Some(_)) => serde_json::json!({ "state": "Ok", "msg": version(&c.facts.cilium) }),
    };
    serde_json::to_string_pretty(&serde_json::json!({
        "cilium": cilium,
        "kubernetes": { "state": "Ok", "msg": format!("{minor} ({k8s}) [linux/amd64]") },
        "kvstore": { "state": "Ok", "msg": "Disabled" },
    }))
    .expect("serializable")
}

/// `cilium-dbg config`: the read-write options as the agent runs with them (from its
/// `cilium-config` options, defaults where an option is not set); `--all`/`--read-only` also
/// (or only) every option it was given.
fn config(cfg: &AgentConfig, rest: &[&str]) -> Result<String, String> {
    let (mut ro, mut rw) = (false, true);
    for r in rest {
        match *r {
            "--all" | "-a" => ro = true,
            "--read-only" | "-r" => (ro, rw) = (true, false),
            other => return Err(format!("cilium-dbg config {other}: not played by the lab's cilium image")),
        }
    }
    let line = |k: &str, v: &str| format!("{k:<34}: {v}\n");
    let mut out = String::new();
    if ro {
        out += "#### Read-only configurations ####\n";
        for (k, v) in &cfg.options {
            out += &line(k, v);
        }
        let host = std::env::var("KUBERNETES_SERVICE_HOST").unwrap_or_default();
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_default();
        out += &line("k8s-configuration", "");
        out += &line("k8s-endpoint", &if host.is_empty() { String::new() } else { format!("https://{host}:{port}") });
    }
    if rw {
        let on = |key: &str| if cfg.get(key) == Some("true") { "Enabled" } else { "Disabled" };
        let mut level = cfg.get("monitor-aggregation").unwrap_or("none").to_string();
        if let Some(f) = level.get_mut(0..1) {
            f.make_ascii_uppercase();
        }
        out += "##### Read-write configurations #####\n";
        out += &line("Debug", on("debug"));
        out += &line("MonitorAggregationLevel", &level);
        out += &line("PolicyAuditMode", on("policy-audit-mode"));
        out += &line("PolicyEnforcement", cfg.get("enable-policy").unwrap_or("default"));
    }
    Ok(out)
}

/// `cilium-dbg endpoint list`'s table (Go tabwriter, minwidth 5, padding 3): one line per
/// endpoint and one per further label. The lab enforces no policy: both columns `Disabled`.
pub fn endpoint_list(eps: &[Endpoint], headers: bool) -> String {
    let mut t = String::new();
    if headers {
        t += "ENDPOINT\tPOLICY (ingress)\tPOLICY (egress)\tIDENTITY\tLABELS (source:key[=value])\tIPv6\tIPv4\tSTATUS\t\n";
        t += "\tENFORCEMENT\tENFORCEMENT\t\t\t\t\t\n";
    }
    let mut eps: Vec<&Endpoint> = eps.iter().collect();
    eps.sort_by_key(|e| e.id);
    for e in eps {
        let id = e.identity.map(|i| i.to_string()).unwrap_or_else(|| "<no label id>".into());
        let ipv4 = e.ipv4.map(|i| i.to_string()).unwrap_or_default();
        let labels: Vec<&str> =
            if e.labels.is_empty() { vec!["no labels"] } else { e.labels.iter().map(String::as_str).collect() };
        for (i, l) in labels.iter().enumerate() {
            if i == 0 {
                t += &format!("{}\tDisabled\tDisabled\t{id}\t{l}\t\t{ipv4}\t{}\t\n", e.id, e.state);
            } else {
                t += &format!("\t\t\t\t{l}\t\t\t\t\n");
            }
        }
    }
    tabwriter::render_with(&t, 5, 3)
}

/// `cilium-dbg endpoint list -o json`: Cilium's endpoint model, the parts the lab has.
fn endpoints_json(eps: &[Endpoint]) -> String {
    let list: Vec<serde_json::Value> = eps
        .iter()
        .map(|e| {
            let mut addressing = serde_json::json!({});
            if let Some(ip) = e.ipv4 {
                addressing["ipv4"] = serde_json::json!(ip.to_string());
            }
            serde_json::json!({
                "id": e.id,
                "status": {
                    "state": e.state,
                    "identity": e.identity.map(|id| serde_json::json!({ "id": id, "labels": e.labels })),
                    "labels": { "security-relevant": e.labels },
                    "networking": { "addressing": [addressing] },
                    "policy": { "realized": { "policy-enabled": "none" } },
                    "external-identifiers": e.pod.as_ref().map(|(ns, name, _)| serde_json::json!({
                        "k8s-namespace": ns, "k8s-pod-name": name, "pod-name": format!("{ns}/{name}"),
                    })),
                },
            })
        })
        .collect();
    serde_json::to_string_pretty(&list).expect("serializable")
}

/// `cilium-dbg bpf lb list`: per frontend the agent programmed, its service entry (slot 0,
/// with the service's flags) and one entry per backend slot, all with the frontend's reverse
/// NAT ID (the ID `service list` prints). Frontends with the same address and port (a
/// Service's TCP and UDP port 53) are listed under one key, as Cilium's printer appends the
/// entries of equal keys.
pub fn bpf_lb_list(frontends: &[Frontend]) -> String {
    let mut rows: BTreeMap<(std::net::Ipv4Addr, u16), Vec<String>> = BTreeMap::new();
    for (i, f) in frontends.iter().enumerate() {
        let id = i + 1;
        let flags = if f.kind == "ClusterIP" { "ClusterIP, non-routable" } else { f.kind };
        let entries = rows.entry((f.ip, f.port)).or_default();
        entries.push(format!("0.0.0.0:0 ({id}) (0) [{flags}] "));
        for (slot, b) in f.backends.iter().enumerate() {
            entries.push(format!("{b}:{} ({id}) ({})", f.target_port, slot + 1));
        }
    }
    let mut t = String::from("SERVICE ADDRESS\tBACKEND ADDRESS (REVNAT_ID) (SLOT)\t\n");
    for ((ip, port), entries) in rows {
        for (k, e) in entries.iter().enumerate() {
            let key = if k == 0 { format!("{ip}:{port}") } else { String::new() };
            t += &format!("{key}\t{e}\t\n");
        }
    }
    tabwriter::render_with(&t, 5, 3)
}

/// `cilium-dbg status`; with `--verbose` (`verbose` holds the options in force) also the
/// KubeProxyReplacement details.
fn status(
    st: &NodeState,
    facts: &Facts,
    nodes: usize,
    health: Option<&super::health::Round>,
    v: &CiliumValues,
    me: &NodePlan,
    verbose: Option<&AgentConfig>,
) -> String {
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
         {details}\
         Masquerading:            {masq}\n\
         Routing:                 {routing}\n\
         Controller Status:       {controllers}\n\
         Cluster health:          {health}\n",
        ip = me.ip,
        cilium = facts.cilium,
        // Before the first round of probes: how many nodes there are to probe.
        health = health.map_or_else(|| format!("probing {nodes} nodes"), |h| h.status_value()),
        // The pods' addresses on this node and the router's.
        used = lxc_links().len() + 1,
        cidr = me.pod_cidr,
        details = verbose
            .map(|cfg| {
                crate::backend::lab::xdp_lb::kpr_details(
                    v.kube_proxy_replacement,
                    cfg.get("bpf-lb-mode"),
                    crate::backend::lab::cilium::lb::acceleration(cfg.get("bpf-lb-acceleration"))
                        == crate::lb::AttachMode::Native,
                    cfg.l2_announcements(),
                )
            })
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn endpoint_list_is_cilium_dbgs_table() {
        let eps = [
            Endpoint {
                id: 12,
                pod: Some(("default".into(), "web".into(), "u".into())),
                ipv4: Some(Ipv4Addr::new(10, 244, 1, 7)),
                labels: vec!["k8s:app=web".into(), "k8s:io.kubernetes.pod.namespace=default".into()],
                identity: Some(4242),
                state: "ready",
            },
            Endpoint {
                id: 3,
                pod: None,
                ipv4: None,
                labels: vec!["reserved:host".into()],
                identity: Some(1),
                state: "ready",
            },
        ];
        let t = endpoint_list(&eps, true);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "ENDPOINT   POLICY (ingress)   POLICY (egress)   IDENTITY   LABELS (source:key[=value])               IPv6   IPv4         STATUS   "
        );
        // Padded through the IPv4 column (11 + 19 + 18 + 11 + 42 + 7 + 13 characters).
        assert_eq!(lines[1].trim_end(), "           ENFORCEMENT        ENFORCEMENT");
        assert_eq!(lines[1].len(), 121);
        assert_eq!(
            lines[2],
            "3          Disabled           Disabled          1          reserved:host                                                 ready   "
        );
        assert_eq!(
            lines[3],
            "12         Disabled           Disabled          4242       k8s:app=web                                      10.244.1.7   ready   "
        );
        assert_eq!(lines[4].trim(), "k8s:io.kubernetes.pod.namespace=default");
        assert_eq!(lines.len(), 5);
        assert!(!endpoint_list(&eps, false).contains("ENDPOINT"));
        let json: serde_json::Value = serde_json::from_str(&endpoints_json(&eps)).unwrap();
        assert_eq!(json[0]["status"]["state"], "ready");
        assert_eq!(json[0]["status"]["networking"]["addressing"][0]["ipv4"], "10.244.1.7");
    }

    #[test]
    fn bpf_lb_list_has_a_slot_per_backend() {
        let f = |kind, ip, port, backends: Vec<Ipv4Addr>| Frontend {
            kind,
            ip,
            proto: "tcp".into(),
            port,
            target_port: 8080,
            backends,
        };
        let t = bpf_lb_list(&[
            f(
                "ClusterIP",
                Ipv4Addr::new(10, 96, 0, 20),
                80,
                vec![Ipv4Addr::new(10, 244, 1, 5), Ipv4Addr::new(10, 244, 2, 7)],
            ),
            f("NodePort", Ipv4Addr::new(172, 18, 0, 3), 30080, vec![]),
            f("ClusterIP", Ipv4Addr::new(10, 96, 0, 20), 80, vec![]),
        ]);
        assert_eq!(
            t,
            "SERVICE ADDRESS    BACKEND ADDRESS (REVNAT_ID) (SLOT)             \n\
             10.96.0.20:80      0.0.0.0:0 (1) (0) [ClusterIP, non-routable]    \n\
             \x20                  10.244.1.5:8080 (1) (1)                        \n\
             \x20                  10.244.2.7:8080 (1) (2)                        \n\
             \x20                  0.0.0.0:0 (3) (0) [ClusterIP, non-routable]    \n\
             172.18.0.3:30080   0.0.0.0:0 (2) (0) [NodePort]                   \n"
        );
    }

    #[test]
    fn config_shows_the_options_in_force() {
        let cfg = AgentConfig::from_map(
            [("debug", "true"), ("monitor-aggregation", "medium"), ("routing-mode", "native")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let rw = config(&cfg, &[]).unwrap();
        assert!(
            rw.starts_with("##### Read-write configurations #####\nDebug                             : Enabled\n"),
            "{rw}"
        );
        assert!(rw.contains("MonitorAggregationLevel           : Medium\n"), "{rw}");
        assert!(rw.contains("PolicyEnforcement                 : default\n"), "{rw}");
        let all = config(&cfg, &["--all"]).unwrap();
        assert!(all.contains("routing-mode                      : native\n") && all.contains("Read-write"), "{all}");
        assert!(config(&cfg, &["--bogus"]).is_err());
    }
}
