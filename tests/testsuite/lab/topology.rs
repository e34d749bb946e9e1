//! Topology from kind configs on the real control plane: node names, addresses, pod CIDRs (the
//! node IPAM controller's), Cilium's routes before and after `autoDirectNodeRoutes` exactly as
//! the article prints them (for the CIDRs the nodes got).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::lab::support::Lab;

crate::tests![
    article_three_nodes_routes_before_and_after_direct_routes(Lab, K8s),
    one_node_default_cluster_through_kind(Lab, K8s),
    five_nodes_custom_pod_subnet_and_name(Lab, K8s),
    bad_config_is_an_input_error_with_line(Lab, K8s)
];

const NODE_CIDRS: &str =
    r#"kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}{"\t"}{.spec.podCIDR}{"\n"}{end}'"#;

/// Each node's podCIDR, once the node IPAM controller has assigned every one (in the order
/// the nodes registered; the controller manager does it seconds after they register).
fn node_cidrs(lab: &Lab) -> BTreeMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let cidrs: BTreeMap<String, String> = lab
            .sh("host", NODE_CIDRS)
            .ok()
            .lines()
            .map(|l| {
                let (n, c) = l.split_once('\t').unwrap();
                (n.to_string(), c.to_string())
            })
            .collect();
        if cidrs.values().all(|c| !c.is_empty()) {
            return cidrs;
        }
        assert!(Instant::now() < deadline, "podCIDRs not all assigned: {cidrs:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `ip route` on a kind node at 172.18.0.`me` whose pod range is `own` with Cilium's router at
/// `.224`, and with direct routes to `peers` (pod range, node IP): Cilium's native routing as the
/// article prints it.
fn cilium_routes(me: u8, own: &str, peers: &[(String, String)]) -> String {
    let base = own.trim_end_matches(".0/24");
    let mut lines: Vec<(String, String)> =
        peers.iter().map(|(cidr, ip)| (cidr.clone(), format!("{cidr} via {ip} dev eth0 proto kernel \n"))).collect();
    lines.push((
        own.to_string(),
        format!(
            "{own} via {base}.224 dev cilium_host proto kernel src {base}.224 \n{base}.224 dev cilium_host proto kernel scope link \n"
        ),
    ));
    // The kernel lists the routes by prefix: compare the addresses, not the text.
    lines.sort_by_key(|(cidr, _)| cidr.trim_end_matches("/24").parse::<std::net::Ipv4Addr>().unwrap());
    format!(
        "default via 172.18.0.1 dev eth0 \n{}172.18.0.0/16 dev eth0 proto kernel scope link src 172.18.0.{me} \n",
        lines.into_iter().map(|(_, l)| l).collect::<String>()
    )
}

/// `ip route` on `node` until it is `want` (the agents program the nodes from the API).
fn routes_become(lab: &Lab, node: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = lab.sh(node, "ip route").ok();
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{node}: ip route is\n{got}\nnot\n{want}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn article_three_nodes_routes_before_and_after_direct_routes() {
    let lab = Lab::up("topo3", Some("kind-config.yaml"));
    let cidrs = node_cidrs(&lab);
    let mut ranges: Vec<&str> = cidrs.values().map(String::as_str).collect();
    ranges.sort();
    assert_eq!(ranges, ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"], "{cidrs:?}");
    // No CNI yet: only docker's routes.
    assert_eq!(
        lab.sh("kind-worker", "ip route").ok(),
        "default via 172.18.0.1 dev eth0 \n172.18.0.0/16 dev eth0 proto kernel scope link src 172.18.0.3 \n"
    );
    lab.sh(
        "host",
        "helm repo add cilium https://helm.cilium.io/ && \
         helm install -n kube-system cilium cilium/cilium -f cilium-no-direct-routes.yaml",
    )
    .ok();
    let own = &cidrs["kind-worker"];
    routes_become(&lab, "kind-worker", &cilium_routes(3, own, &[]));
    let up = lab.sh("host", "helm upgrade -n kube-system cilium cilium/cilium -f cilium-medium.yaml").ok();
    assert!(up.contains("REVISION: 2"), "{up}");
    let peers = [("kind-control-plane", "172.18.0.2"), ("kind-worker2", "172.18.0.4")]
        .map(|(n, ip)| (cidrs[n].clone(), ip.to_string()));
    let after = cilium_routes(3, own, &peers);
    routes_become(&lab, "kind-worker", &after);
    // Through docker exec, as the article enters the node.
    assert_eq!(lab.sh("host", "docker exec -ti kind-worker ip route").ok(), after);
    assert_eq!(lab.sh("kind-worker", "hostname").ok(), "kind-worker\n");
    assert!(lab.sh("kind-worker", "ip -br addr show eth0").ok().contains("172.18.0.3/16"));
}

fn one_node_default_cluster_through_kind() {
    let lab = Lab::up("topo1", None);
    let o = lab.sh("host", "kind create cluster 2>&1; kind get nodes");
    let out = o.ok();
    assert!(out.contains("Creating cluster \"kind\" ..."), "{out}");
    assert!(out.contains(" ✓ Installing CNI 🔌"), "{out}");
    assert!(out.ends_with("kind-control-plane\n"), "{out}");
    // kind's default CNI (kindnet's role) gives pods a network: CoreDNS's pods get ready.
    let ready = lab.sh(
        "host",
        "kubectl -n kube-system rollout status deployment/coredns --timeout=180s && \
         kubectl -n kube-system get pods -l k8s-app=kube-dns --no-headers",
    );
    let pods = ready.ok();
    let coredns: Vec<&str> = pods.lines().filter(|l| l.starts_with("coredns-")).collect();
    assert_eq!(coredns.len(), 2, "{pods}");
    assert!(coredns.iter().all(|l| l.contains("1/1") && l.contains("Running")), "{pods}");
    let o = lab.sh("host", "kind delete cluster 2>&1; kind get clusters 2>&1");
    assert_eq!(
        o.ok(),
        "Deleting cluster \"kind\" ...\nDeleted nodes: [\"kind-control-plane\"]\nNo kind clusters found.\n"
    );
}

fn five_nodes_custom_pod_subnet_and_name() {
    let lab = Lab::up("topo5", Some("kind-5-nodes.yaml"));
    // One /24 of the custom podSubnet per node, in the order they registered.
    let cidrs = node_cidrs(&lab);
    assert_eq!(
        cidrs.keys().map(String::as_str).collect::<Vec<_>>(),
        ["dev-control-plane", "dev-worker", "dev-worker2", "dev-worker3", "dev-worker4"]
    );
    let mut ranges: Vec<&str> = cidrs.values().map(String::as_str).collect();
    ranges.sort();
    assert_eq!(ranges, ["10.100.0.0/24", "10.100.1.0/24", "10.100.2.0/24", "10.100.3.0/24", "10.100.4.0/24"]);
    let wide = lab.sh("host", "kubectl get nodes -o wide").ok();
    assert!(wide.lines().nth(5).unwrap().starts_with("dev-worker4 "), "{wide}");
    assert!(wide.contains("172.18.0.6"), "{wide}");
    // Every node reaches every other over the bridge.
    lab.sh(
        "dev-worker4",
        "for i in 2 3 4 5; do bash -c \"</dev/tcp/172.18.0.$i/1\" 2>&1 | grep -q refused || exit 1; done",
    )
    .ok();
    let cm = lab.sh("host", "kubectl get configmaps -n kube-system kubeadm-config -o yaml | grep Subnet").ok();
    assert_eq!(cm, "      podSubnet: 10.100.0.0/16\n      serviceSubnet: 10.96.0.0/16\n");
}

fn bad_config_is_an_input_error_with_line() {
    let o = crate::lab::support::tutor(
        &["lab", "up", "--name", "never", "--config", "kind-bad.yaml"],
        &crate::lab::support::fixtures(),
    );
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("kind-bad.yaml:7:"), "{}", o.stderr);
    assert!(!std::path::Path::new("/run/tutor/labs/never").exists());
}
