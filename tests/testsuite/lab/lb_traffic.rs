//! Traffic from the lab host to a LoadBalancer address through the bundled XDP LB on the
//! nodes' eth0: both deathstars answer, flows survive a backend being added, the article's
//! pool outside the bridge subnet works with its host route, native XDP with
//! `loadBalancer.acceleration: native` and generic XDP without, and BPF masquerade leaves the
//! replies to the LB.
//!
//! Pinned to the emulation (`lb_support::lb_lab`): the emulated lab's services on the XDP LB.
//! `lab::cilium` covers native XDP and the VIP on the real API; these go once generic XDP,
//! flows surviving a new backend and BPF masquerade's replies are covered there too.

use std::collections::BTreeSet;

use crate::lab::lb_support::{VIP, bridge, lb_lab, served_by};
use crate::lab::support::Lab;

crate::tests![
    native_xdp_serves_the_vip_and_spreads_over_both_deathstars(Lab),
    without_acceleration_the_same_program_runs_in_generic_mode(Lab),
    open_connections_survive_a_backend_pod_being_added(Lab),
    pool_outside_the_bridge_subnet_is_reached_through_the_host_route(Lab),
    bpf_masquerade_leaves_the_replies_to_the_load_balancer(Lab)
];

fn landing(ip: &str) -> String {
    format!("{ip}/v1/request-landing")
}

fn deathstars(lab: &Lab) -> BTreeSet<String> {
    lab.sh("host", "kubectl get pods -o name")
        .ok()
        .lines()
        .filter_map(|l| l.strip_prefix("pod/"))
        .filter(|n| n.starts_with("deathstar"))
        .map(str::to_string)
        .collect()
}

fn xdp_line(lab: &Lab, node: &str) -> String {
    lab.sh("host", &format!("docker exec -ti {node} ip addr | grep xdp")).ok()
}

fn native_xdp_serves_the_vip_and_spreads_over_both_deathstars() {
    let lab = lb_lab("native", "-f cilium-lb.yaml", true);
    let served = served_by(&lab, &landing(VIP), 40);
    assert_eq!(served.len(), 40, "every request answered: {served:?}");
    let seen: BTreeSet<String> = served.into_iter().collect();
    assert_eq!(seen, deathstars(&lab), "both deathstar pods answer");
    assert_eq!(lab.sh("host", &format!("curl -s {VIP}/v1/request-landing -XPOST")).ok(), "Ship landed\n");
    for node in ["kind-control-plane", "kind-worker", "kind-worker2"] {
        let line = xdp_line(&lab, node);
        assert!(
            line.contains("eth0@if") && line.contains(" xdp/id:") && !line.contains("xdpgeneric"),
            "{node}: {line}"
        );
    }
    let status = lab.sh("host", "kubectl -n kube-system exec ds/cilium -- cilium-dbg status --verbose | grep XDP").ok();
    assert_eq!(status, "  XDP Acceleration:       Native\n");
}

fn without_acceleration_the_same_program_runs_in_generic_mode() {
    let lab = lb_lab("generic", "-f cilium-l2.yaml", true);
    let line = xdp_line(&lab, "kind-worker");
    assert!(line.contains(" xdpgeneric/id:"), "{line}");
    assert_eq!(
        lab.sh("host", "kubectl -n kube-system exec ds/cilium -- cilium-dbg status --verbose | grep XDP").ok(),
        "  XDP Acceleration:       Disabled\n"
    );
    assert_eq!(served_by(&lab, &landing(VIP), 20).len(), 20);
    // The article's upgrade: native XDP after the agents restart.
    lab.sh("host", "helm upgrade -n kube-system cilium cilium/cilium -f cilium-lb.yaml && kubectl rollout -n kube-system restart daemonset cilium").ok();
    let line = xdp_line(&lab, "kind-worker");
    assert!(line.contains(" xdp/id:") && !line.contains("xdpgeneric"), "{line}");
    assert_eq!(served_by(&lab, &landing(VIP), 20).len(), 20, "served again right after the switch");
}

fn open_connections_survive_a_backend_pod_being_added() {
    let lab = lb_lab("addpod", "-f cilium-lb.yaml", true);
    // 24 connections with half-sent requests; a third backend appears; then they finish.
    let script = format!(
        "fds=(); for i in $(seq 24); do exec {{fd}}<>/dev/tcp/{VIP}/80; fds+=($fd); \
           printf 'POST /v1/request-landing HTTP/1.1\\r\\nHost: deathstar\\r\\n' >&$fd; done; \
         kubectl apply -f deathstar-extra.yaml >/dev/null; \
         for fd in \"${{fds[@]}}\"; do printf 'Content-Length: 0\\r\\n\\r\\n' >&$fd; done; \
         for fd in \"${{fds[@]}}\"; do timeout 5 cat <&$fd | tr -d '\\r' | grep -c 'Ship landed'; done | sort | uniq -c"
    );
    let counts = lab.sh("host", &script).ok();
    assert_eq!(counts.trim(), "24 1", "every open connection completes on its backend");
    let list = lab.sh("host", "kubectl -n kube-system exec ds/cilium -- cilium-dbg service list").ok();
    assert!(list.contains("3 => 10.244."), "{list}");
    let seen: BTreeSet<String> = served_by(&lab, &landing(VIP), 60).into_iter().collect();
    assert!(seen.contains("deathstar-extra"), "new flows reach the new backend: {seen:?}");
}

fn pool_outside_the_bridge_subnet_is_reached_through_the_host_route() {
    let lab = Lab::up_emulated("pool192", Some("kind-config.yaml"));
    lab.sh("host", "helm install -n kube-system cilium cilium/cilium -f cilium-l2.yaml && kubectl apply -f http-sw-app.yaml -f deathstar-svc.yaml -f cilium-lbsvc-pool-192.yaml -f cilium-l2-policy.yaml").ok();
    let svc = lab.sh("host", "kubectl get svc deathstar-lb").ok();
    assert!(svc.contains("   192.168.250.1   80:"), "{svc}");
    let before = lab.sh("host", "curl -s --connect-timeout 1 -XPOST 192.168.250.1/v1/request-landing");
    assert_ne!(before.code, 0, "no route yet: {}", before.stdout);
    let br = bridge(&lab);
    lab.sh("host", &format!("ip route add 192.168.250.0/24 dev {br} src 172.18.0.1")).ok();
    let route = lab.sh("host", "ip route | grep 192.168.250").ok();
    assert_eq!(route, format!("192.168.250.0/24 dev {br} scope link src 172.18.0.1 \n"));
    assert_eq!(
        lab.sh("host", "curl -s --connect-timeout 2 -XPOST 192.168.250.1/v1/request-landing").ok(),
        "Ship landed\n"
    );
    let seen: BTreeSet<String> = served_by(&lab, &landing("192.168.250.1"), 30).into_iter().collect();
    assert_eq!(seen, deathstars(&lab));
    let neigh = lab.sh("host", "ip neigh show 192.168.250.1").ok();
    assert!(neigh.contains("lladdr 02:42:ac:12:00:0"), "announced by a node: {neigh}");
}

fn bpf_masquerade_leaves_the_replies_to_the_load_balancer() {
    let lab = lb_lab("bpfmasq", "-f cilium-bpf-masq.yaml -f cilium-lb.yaml", true);
    let masq = lab.sh("host", "kubectl -n kube-system exec ds/cilium -- cilium-dbg status | grep Masquerading").ok();
    assert!(masq.contains("BPF"), "{masq}");
    let served = served_by(&lab, &landing(VIP), 30);
    assert_eq!(served.len(), 30);
    assert_eq!(served.into_iter().collect::<BTreeSet<_>>(), deathstars(&lab));
}
