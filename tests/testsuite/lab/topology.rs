//! Topology from kind configs: node names, addresses, pod CIDRs, routes before and after
//! `autoDirectNodeRoutes` exactly as the article prints them.

use crate::lab::support::Lab;

crate::tests![
    article_three_nodes_routes_before_and_after_direct_routes(Lab),
    one_node_default_cluster_through_kind(Lab),
    five_nodes_custom_pod_subnet_and_name(Lab),
    bad_config_is_an_input_error_with_line(Lab)
];

const BEFORE: &str = "default via 172.18.0.1 dev eth0 
10.244.2.0/24 via 10.244.2.224 dev cilium_host proto kernel src 10.244.2.224 
10.244.2.224 dev cilium_host proto kernel scope link 
172.18.0.0/16 dev eth0 proto kernel scope link src 172.18.0.3 
";

const AFTER: &str = "default via 172.18.0.1 dev eth0 
10.244.0.0/24 via 172.18.0.2 dev eth0 proto kernel 
10.244.1.0/24 via 172.18.0.4 dev eth0 proto kernel 
10.244.2.0/24 via 10.244.2.224 dev cilium_host proto kernel src 10.244.2.224 
10.244.2.224 dev cilium_host proto kernel scope link 
172.18.0.0/16 dev eth0 proto kernel scope link src 172.18.0.3 
";

const NODE_CIDRS: &str =
    r#"kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}{"\t"}{.spec.podCIDR}{"\n"}'"#;

fn article_three_nodes_routes_before_and_after_direct_routes() {
    let lab = Lab::up("topo3", Some("kind-config.yaml"));
    assert_eq!(
        lab.sh("host", NODE_CIDRS).ok(),
        "kind-control-plane\t10.244.0.0/24\nkind-worker\t10.244.2.0/24\nkind-worker2\t10.244.1.0/24\n"
    );
    // No CNI yet: only docker's routes.
    assert_eq!(
        lab.sh("kind-worker", "ip route").ok(),
        "default via 172.18.0.1 dev eth0 \n172.18.0.0/16 dev eth0 proto kernel scope link src 172.18.0.3 \n"
    );
    lab.sh("host", "helm install -n kube-system cilium cilium/cilium -f cilium-no-direct-routes.yaml").ok();
    assert_eq!(lab.sh("kind-worker", "ip route").ok(), BEFORE);
    let up = lab.sh("host", "helm upgrade -n kube-system cilium cilium/cilium -f cilium-medium.yaml").ok();
    assert!(up.contains("REVISION: 2"), "{up}");
    assert_eq!(lab.sh("kind-worker", "ip route").ok(), AFTER);
    // Through docker exec, as the article enters the node.
    assert_eq!(lab.sh("host", "docker exec -ti kind-worker ip route").ok(), AFTER);
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
    // kind's default CNI gives pods a network at once.
    let pods = lab.sh("host", "kubectl get pods -n kube-system").ok();
    assert!(pods.lines().filter(|l| l.starts_with("coredns-")).all(|l| l.contains("Running")), "{pods}");
    let o = lab.sh("host", "kind delete cluster 2>&1; kind get clusters 2>&1");
    assert_eq!(
        o.ok(),
        "Deleting cluster \"kind\" ...\nDeleted nodes: [\"kind-control-plane\"]\nNo kind clusters found.\n"
    );
}

fn five_nodes_custom_pod_subnet_and_name() {
    let lab = Lab::up("topo5", Some("kind-5-nodes.yaml"));
    assert_eq!(
        lab.sh("host", NODE_CIDRS).ok(),
        "dev-control-plane\t10.100.0.0/24\ndev-worker\t10.100.4.0/24\ndev-worker2\t10.100.3.0/24\ndev-worker3\t10.100.2.0/24\ndev-worker4\t10.100.1.0/24\n"
    );
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
