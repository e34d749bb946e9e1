//! kindnet's role on a lab node (kind's default CNI, `disableDefaultCNI: false`): what kindnetd
//! does on each node of a kind cluster, reconciled from the Nodes it observes through the API:
//! - the CNI network configuration (`10-kindnet.conflist`: ptp with host-local IPAM over the
//!   node's podCIDR) in the node's CNI configuration directory, once the node IPAM controller
//!   has given the node its podCIDR — which is what turns the node `Ready`;
//! - a route to every other node's podCIDR via that node's InternalIP;
//! - masquerade of pod traffic that leaves the cluster's pod network (kindnet's
//!   `KIND-MASQ-AGENT` chain in the nat table).
//!
//! It runs in the node agent (`--kindnet`), inside the node's network namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};

use crate::backend::lab::topology::Cidr;

/// The file kindnetd writes.
pub const CONFLIST: &str = "10-kindnet.conflist";
/// kindnet's masquerade chain.
pub const MASQ_CHAIN: &str = "KIND-MASQ-AGENT";

#[derive(Debug, thiserror::Error)]
pub enum KindnetError {
    #[error("writing the CNI configuration {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("running `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
}

/// The CNI network configuration for a node with this podCIDR.
pub fn conflist(pod_cidr: Cidr) -> String {
    let conf = serde_json::json!({
        "cniVersion": "0.3.1",
        "name": "kindnet",
        "plugins": [
            {
                "type": "ptp",
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "dataDir": "/run/cni-ipam-state",
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "ranges": [[{ "subnet": pod_cidr.to_string() }]]
                },
                "mtu": 1500
            },
            { "type": "portmap", "capabilities": { "portMappings": true } }
        ]
    });
    serde_json::to_string_pretty(&conf).expect("serialisable") + "\n"
}

/// What the Nodes say this node's datapath must be: its own podCIDR, and a route per other
/// node (podCIDR → InternalIP).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub own_cidr: Option<Cidr>,
    pub routes: BTreeMap<Cidr, Ipv4Addr>,
}

pub fn desired(me: &str, nodes: &[&Node]) -> Desired {
    let mut d = Desired::default();
    for n in nodes {
        let name = n.metadata.name.as_deref().unwrap_or_default();
        let Some(cidr) = n.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()).and_then(|c| Cidr::parse(c).ok()) else {
            continue;
        };
        if name == me {
            d.own_cidr = Some(cidr);
            continue;
        }
        let ip = n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .and_then(|a| a.address.parse::<Ipv4Addr>().ok());
        if let Some(ip) = ip {
            d.routes.insert(cidr, ip);
        }
    }
    d
}

fn run(args: &[&str]) -> Result<(), KindnetError> {
    let command = args.join(" ");
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|source| KindnetError::Spawn { command: command.clone(), source })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(KindnetError::Command { command, stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() })
    }
}

/// The nat rules kindnet installs: pod traffic to anything but the pod network and local
/// addresses is masqueraded behind the node's address.
fn masquerade(pod_subnet: Cidr) -> Result<(), KindnetError> {
    let subnet = pod_subnet.to_string();
    if run(&["iptables", "-t", "nat", "-N", MASQ_CHAIN]).is_err() {
        // Already there (an agent restarted): start the chain over.
        run(&["iptables", "-t", "nat", "-F", MASQ_CHAIN])?;
    }
    run(&["iptables", "-t", "nat", "-A", MASQ_CHAIN, "-d", &subnet, "-j", "RETURN"])?;
    run(&["iptables", "-t", "nat", "-A", MASQ_CHAIN, "-j", "MASQUERADE"])?;
    let rule = ["POSTROUTING", "-m", "addrtype", "!", "--dst-type", "LOCAL", "-j", MASQ_CHAIN];
    let with = |op: &'static str| -> Vec<&str> { ["iptables", "-t", "nat", op].into_iter().chain(rule).collect() };
    if run(&with("-C")).is_err() {
        run(&with("-A"))?;
    }
    Ok(())
}

/// Write `text` to `dir/name` atomically (the agent watches the directory).
fn write_conf(dir: &Path, name: &str, text: &str) -> Result<(), KindnetError> {
    let path = dir.join(name);
    let err = |source| KindnetError::Write { path: path.display().to_string(), source };
    std::fs::create_dir_all(dir).map_err(err)?;
    if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
        return Ok(());
    }
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)
}

/// Make the node's datapath what `want` says, given what was programmed before (`have`).
fn apply(cni_dir: &Path, want: &Desired, have: &mut Desired) -> Result<(), KindnetError> {
    if let Some(cidr) = want.own_cidr
        && have.own_cidr != Some(cidr)
    {
        write_conf(cni_dir, CONFLIST, &conflist(cidr))?;
        have.own_cidr = Some(cidr);
    }
    let gone: BTreeSet<Cidr> = have.routes.keys().filter(|c| !want.routes.contains_key(c)).copied().collect();
    for cidr in gone {
        let _ = run(&["ip", "route", "del", &cidr.to_string()]);
        have.routes.remove(&cidr);
    }
    for (cidr, via) in &want.routes {
        if have.routes.get(cidr) != Some(via) {
            run(&["ip", "route", "replace", &cidr.to_string(), "via", &via.to_string()])?;
            have.routes.insert(*cidr, *via);
        }
    }
    Ok(())
}

/// kindnet for node `me`: watches the Nodes and keeps this node's CNI configuration, routes and
/// masquerade as they say, until the task is dropped.
pub async fn run_for(client: Client, me: String, cni_dir: PathBuf, pod_subnet: Option<Cidr>) {
    if let Some(s) = pod_subnet
        && let Err(e) = masquerade(s)
    {
        eprintln!("kindnet on {me}: {e}");
    }
    let (reader, writer) = reflector::store::<Node>();
    let stream = reflector(writer, watcher(Api::<Node>::all(client), watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    futures_util::pin_mut!(stream);
    let mut have = Desired::default();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            ev = stream.next() => {
                match ev {
                    None => return,
                    Some(Err(e)) => eprintln!("kindnet on {me}: watching nodes: {e}"),
                    Some(Ok(_)) => {}
                }
            }
            _ = tick.tick() => {}
        }
        let nodes = reader.state();
        let want = desired(&me, &nodes.iter().map(|n| n.as_ref()).collect::<Vec<_>>());
        let (dir, mut h) = (cni_dir.clone(), have.clone());
        let r = tokio::task::spawn_blocking(move || apply(&dir, &want, &mut h).map(|_| h)).await;
        match r {
            Ok(Ok(h)) => have = h,
            Ok(Err(e)) => eprintln!("kindnet on {me}: {e}"),
            Err(e) => eprintln!("kindnet on {me}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeSpec, NodeStatus};

    fn node(name: &str, cidr: Option<&str>, ip: &str) -> Node {
        Node {
            metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
            spec: Some(NodeSpec { pod_cidr: cidr.map(str::to_string), ..Default::default() }),
            status: Some(NodeStatus {
                addresses: Some(vec![
                    NodeAddress { type_: "Hostname".into(), address: name.into() },
                    NodeAddress { type_: "InternalIP".into(), address: ip.into() },
                ]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn routes_go_to_the_other_nodes_pod_cidrs_via_their_internal_ips() {
        let (a, b, c) = (
            node("kind-control-plane", Some("10.244.0.0/24"), "172.18.0.2"),
            node("kind-worker", Some("10.244.1.0/24"), "172.18.0.3"),
            node("kind-worker2", None, "172.18.0.4"),
        );
        let d = desired("kind-worker", &[&a, &b, &c]);
        assert_eq!(d.own_cidr, Some(Cidr::parse("10.244.1.0/24").unwrap()));
        // A node without a podCIDR yet gets no route.
        assert_eq!(
            d.routes.into_iter().collect::<Vec<_>>(),
            vec![(Cidr::parse("10.244.0.0/24").unwrap(), Ipv4Addr::new(172, 18, 0, 2))]
        );
    }

    #[test]
    fn conflist_is_ptp_over_the_node_pod_cidr() {
        let v: serde_json::Value = serde_json::from_str(&conflist(Cidr::parse("10.244.2.0/24").unwrap())).unwrap();
        assert_eq!(v["name"], "kindnet");
        assert_eq!(v["plugins"][0]["type"], "ptp");
        assert_eq!(v["plugins"][0]["ipam"]["ranges"][0][0]["subnet"], "10.244.2.0/24");
    }

    #[test]
    fn the_conf_is_written_once_and_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let want = Desired { own_cidr: Some(Cidr::parse("10.244.0.0/24").unwrap()), routes: BTreeMap::new() };
        let mut have = Desired::default();
        apply(dir.path(), &want, &mut have).unwrap();
        assert_eq!(have, want);
        let names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names, vec![CONFLIST.to_string()]);
        assert!(super::super::node::cni_configured(dir.path()));
    }
}
