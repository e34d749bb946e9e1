//! L2 announcements on the lab: nobody answers ARP for a LoadBalancer address without them;
//! with `l2announcements.enabled` and the article's policy exactly one worker does, the lab
//! host's neighbour table shows its MAC, and another worker takes over (gratuitous ARP) when
//! the announcer stops matching the policy or leaves the cluster.
//!
//! Pinned to the emulation (`lb_support::lb_lab`): the emulated L2 announcements and their
//! failover. On the real API the agents announce through Leases (`lab::cilium`'s XDP/L2 test
//! covers one announcer); these go once failover is covered there too.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::lab::lb_support::{VIP, arp_answers, lb_lab, node_mac};
use crate::lab::support::Lab;

crate::tests![
    arp_for_the_vip_only_with_l2_announcements_and_from_exactly_one_worker(Lab),
    another_worker_takes_over_when_the_announcer_stops_matching_or_leaves(Lab)
];

const WAIT: Duration = Duration::from_millis(300);

fn vip() -> Ipv4Addr {
    VIP.parse().unwrap()
}

/// (node, MAC) of the node answering ARP for the VIP, asserting there is exactly one.
fn announcer(lab: &Lab) -> (String, String) {
    let answers = arp_answers(lab, vip(), WAIT);
    assert_eq!(answers.len(), 1, "exactly one node answers ARP: {answers:?}");
    let node = ["kind-control-plane", "kind-worker", "kind-worker2"]
        .into_iter()
        .find(|n| node_mac(lab, n) == answers[0])
        .unwrap_or_else(|| panic!("{} is no node's MAC", answers[0]));
    (node.to_string(), answers[0].clone())
}

/// Milliseconds from running `change` on the lab host until the host reaches the VIP again
/// with `mac` in its neighbour table (bounded: 20 s).
fn failover_ms(lab: &Lab, change: &str, mac: &str) -> u64 {
    let script = format!(
        "s=$(date +%s%N); {change} >/dev/null; for i in $(seq 2000); do \
           if ip neigh show {VIP} | grep -q {mac} && curl -sf -m 1 -XPOST {VIP}/v1/request-landing >/dev/null; then break; fi; sleep 0.01; done; \
         echo $(( ($(date +%s%N) - s) / 1000000 ))"
    );
    let ms: u64 = lab.sh("host", &script).ok().trim().parse().unwrap();
    assert!(ms < 20_000, "no failover after {change}");
    ms
}

fn arp_for_the_vip_only_with_l2_announcements_and_from_exactly_one_worker() {
    let lab = lb_lab("l2", "-f cilium-medium.yaml", true);
    assert_eq!(arp_answers(&lab, vip(), WAIT), Vec::<String>::new(), "l2announcements disabled: nobody answers");
    let out = lab.sh("host", &format!("curl -s --connect-timeout 1 -XPOST {VIP}/v1/request-landing"));
    assert_ne!(out.code, 0, "unreachable without announcements: {}", out.stdout);

    lab.sh("host", "helm upgrade -n kube-system cilium cilium/cilium -f cilium-l2.yaml && kubectl rollout -n kube-system restart daemonset cilium").ok();
    let (node, mac) = announcer(&lab);
    assert!(node.starts_with("kind-worker"), "the policy excludes the control plane: {node}");
    let landed = lab.sh("host", &format!("curl -s --connect-timeout 2 {VIP}/v1/request-landing -XPOST")).ok();
    assert_eq!(landed, "Ship landed\n");
    let neigh = lab.sh("host", "ip neigh | grep 172.18").ok();
    let line = neigh.lines().find(|l| l.starts_with(&format!("{VIP} "))).unwrap_or_else(|| panic!("{neigh}"));
    assert!(line.contains(&format!("lladdr {mac} ")), "{neigh}");
    // Dropping the policy withdraws the announcement.
    lab.sh("host", "kubectl delete -f cilium-l2-policy.yaml").ok();
    assert!(arp_answers(&lab, vip(), WAIT).is_empty());
}

fn another_worker_takes_over_when_the_announcer_stops_matching_or_leaves() {
    let lab = lb_lab("failover", "-f cilium-l2.yaml", true);
    let (first, _) = announcer(&lab);
    lab.sh("host", &format!("curl -sf -XPOST {VIP}/v1/request-landing")).ok();
    let other = if first == "kind-worker" { "kind-worker2" } else { "kind-worker" };
    let other_mac = node_mac(&lab, other);
    // The announcer stops matching the policy (it becomes a control-plane node).
    let ms =
        failover_ms(&lab, &format!("kubectl label node {first} node-role.kubernetes.io/control-plane="), &other_mac);
    eprintln!("failover (policy no longer matches): {ms} ms");
    assert_eq!(announcer(&lab).0, other);
    // It matches again but the new holder keeps the lease; then the holder leaves the cluster.
    lab.sh("host", &format!("kubectl label node {first} node-role.kubernetes.io/control-plane-")).ok();
    assert_eq!(announcer(&lab).0, other, "sticky");
    let first_mac = node_mac(&lab, &first);
    let ms = failover_ms(&lab, &format!("kubectl delete node {other}"), &first_mac);
    eprintln!("failover (node deleted): {ms} ms");
    assert_eq!(announcer(&lab).0, first);
    let nodes = lab.sh("host", "kubectl get nodes").ok();
    assert!(!nodes.contains(other), "{nodes}");
    // The departed node no longer serves the VIP either.
    let xdp = lab.sh(other, "ip -d link show eth0").ok();
    assert!(!xdp.contains("xdp"), "{xdp}");
}
