//! `cilium-dbg` inside the lab's cilium pods: answered from the node's real state and the
//! Helm values in force.

use super::LabError;
use super::state::ClusterRt;

pub fn run(c: &ClusterRt, node: &str, args: &[String]) -> Result<String, LabError> {
    let values = c.values.as_ref().ok_or_else(|| LabError::CiliumNotInstalled)?;
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["status", rest @ ..] if rest.iter().all(|r| *r == "--verbose") => {
            let n = c.node(node).ok_or_else(|| LabError::NoSuchNode(node.to_string()))?;
            let masq = super::masquerade::status_value(values, &n.plan);
            let routing = super::masquerade::routing_value(values);
            let pods = c.pods.values().filter(|p| p.node == node).count();
            Ok(format!(
                "KVStore:                 Ok   Disabled\nKubernetes:              Ok   1.29 (v1.29.2) [linux/amd64]\nKubeProxyReplacement:    {}   [eth0   {} (Direct Routing)]\nHost firewall:           Disabled\nCNI Chaining:            none\nCilium:                  Ok   1.15.1\nNodeMonitor:             Disabled\nIPAM:                    IPv4: {}/254 allocated from {}, \nIPv4 BIG TCP:            Disabled\nIPv6 BIG TCP:            Disabled\nBandwidthManager:        Disabled\nHost Routing:            {}\n{}Masquerading:            {masq}\nRouting:                 {routing}\nController Status:       ok\nProxy Status:            OK\nCluster health:          {}/{} reachable\n",
                if values.kube_proxy_replacement { "True" } else { "False" },
                n.plan.ip,
                pods + 1,
                n.plan.pod_cidr,
                if values.bpf_masquerade { "BPF" } else { "Legacy" },
                super::xdp_lb::status_lines(c, rest.contains(&"--verbose")),
                c.nodes.len(),
                c.nodes.len(),
            ))
        }
        ["service", "list"] => c.service_list(node),
        ["bpf", "ipmasq", "list"] => {
            if !(values.bpf_masquerade && values.ip_masq_agent) {
                return Ok("IP PREFIX/ADDRESS\n".into());
            }
            let n = c.node(node).ok_or_else(|| LabError::NoSuchNode(node.to_string()))?;
            let prefixes = match &n.bpf {
                Some(bpf) => bpf.ipmasq_list()?,
                None => vec![],
            };
            Ok(std::iter::once("IP PREFIX/ADDRESS".to_string()).chain(prefixes).map(|l| l + "\n").collect())
        }
        _ => Err(super::shims::unsupported("cilium-dbg", args)),
    }
}
