//! LB IPAM on the lab: `type: LoadBalancer` Services get an EXTERNAL-IP from a
//! `CiliumLoadBalancerIPPool` (pending before), give it back when deleted, wait when the pools
//! are exhausted, and never get one from a pool that overlaps an older one. `cilium-dbg service
//! list` shows what the XDP LB's maps hold.
//!
//! Pinned to the emulation (`Lab::up_emulated`): the emulated LB IPAM (pool conflicts,
//! exhaustion, release). On the real API the operator assigns addresses (`lab::cilium_operator`);
//! these go once it covers conflicts and exhaustion too.

use crate::lab::support::Lab;

crate::tests![
    external_ip_pending_allocated_released_exhausted_and_conflicting(Lab),
    cilium_dbg_service_list_reads_the_xdp_lb_maps(Lab)
];

fn external_ip(lab: &Lab, svc: &str) -> String {
    let row = lab.sh("host", &format!("kubectl get svc {svc}")).ok();
    row.lines().nth(1).unwrap().split_whitespace().nth(3).unwrap().to_string()
}

fn external_ip_pending_allocated_released_exhausted_and_conflicting() {
    let lab = Lab::up_emulated("ipam", Some("kind-config.yaml"));
    lab.sh("host", "helm install -n kube-system cilium cilium/cilium -f cilium-medium.yaml && kubectl apply -f http-sw-app.yaml -f deathstar-svc.yaml").ok();
    let table = lab.sh("host", "kubectl get service deathstar-lb").ok();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    );
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&cells[..2], ["deathstar-lb", "LoadBalancer"]);
    assert!(cells[2].starts_with("10.96."), "{table}");
    assert_eq!(cells[3], "<pending>", "no pool yet:\n{table}");
    let np: u16 = cells[4].strip_prefix("80:").and_then(|p| p.strip_suffix("/TCP")).unwrap().parse().unwrap();
    assert!((30000..=32767).contains(&np), "{table}");

    lab.sh("host", "kubectl apply -f cilium-lbsvc-pool.yaml").ok();
    assert_eq!(external_ip(&lab, "deathstar-lb"), "172.18.250.1");
    let ingress =
        lab.sh("host", "kubectl get svc deathstar-lb -o jsonpath='{.status.loadBalancer.ingress[0].ip}'").ok();
    assert_eq!(ingress, "172.18.250.1");
    assert!(lab.sh("host", "kubectl get svc deathstar-lb").ok().contains(&format!("80:{np}/TCP")), "node port kept");

    // A one-address pool instead: the old address is taken back, the new one given.
    lab.sh("host", "kubectl delete -f cilium-lbsvc-pool.yaml && kubectl apply -f cilium-lbsvc-pool-one.yaml").ok();
    assert_eq!(external_ip(&lab, "deathstar-lb"), "192.168.250.10");
    // Exhausted: the next service waits.
    lab.sh("host", "kubectl apply -f deathstar-svc2.yaml").ok();
    assert_eq!(external_ip(&lab, "deathstar-lb2"), "<pending>");
    // A pool overlapping the older one is conflicting: it gives nothing.
    lab.sh("host", "kubectl apply -f cilium-lbsvc-pool-overlap.yaml").ok();
    assert_eq!(external_ip(&lab, "deathstar-lb2"), "<pending>", "conflicting pool used");
    let pools = lab.sh("host", "kubectl get ippools").ok();
    let rows: Vec<Vec<&str>> = pools.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "DISABLED", "CONFLICTING", "IPS", "AVAILABLE", "AGE"], "{pools}");
    assert_eq!(rows[1][..4], ["one", "false", "False", "0"], "{pools}");
    assert_eq!(rows[2][..4], ["overlap", "false", "True", "0"], "{pools}");
    // Deleting the first service releases its address to the waiting one.
    lab.sh("host", "kubectl delete svc deathstar-lb").ok();
    assert_eq!(external_ip(&lab, "deathstar-lb2"), "192.168.250.10");
    // Once the older pool is gone the other one no longer conflicts.
    lab.sh("host", "kubectl delete -f cilium-lbsvc-pool-one.yaml && kubectl apply -f deathstar-svc.yaml").ok();
    assert_eq!(external_ip(&lab, "deathstar-lb2"), "192.168.250.10", "still inside a usable pool: kept");
    assert_eq!(external_ip(&lab, "deathstar-lb"), "192.168.250.5");
}

fn cilium_dbg_service_list_reads_the_xdp_lb_maps() {
    let lab = crate::lab::lb_support::lb_lab("svclist", "-f cilium-l2.yaml", true);
    let pods = lab.sh("host", "kubectl get pods -o wide").ok();
    let mut ips: Vec<String> = pods
        .lines()
        .filter(|l| l.starts_with("deathstar-"))
        .map(|l| l.split_whitespace().nth(5).unwrap().to_string())
        .collect();
    ips.sort();
    let list = lab.sh("host", "kubectl -n kube-system exec ds/cilium -- cilium-dbg service list").ok();
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("ID   Frontend") && lines[0].contains("Service Type   Backend"), "{list}");
    let at =
        lines.iter().position(|l| l.contains("172.18.250.1:80")).unwrap_or_else(|| panic!("no LB frontend:\n{list}"));
    assert!(lines[at].contains("LoadBalancer   1 => 10.244."), "{list}");
    let mut backends: Vec<String> = lines[at..at + 2]
        .iter()
        .map(|l| l.split("=> ").nth(1).unwrap().trim_end_matches(":80 (active)").to_string())
        .collect();
    backends.sort();
    assert_eq!(backends, ips, "{list}");
    assert!(lines[at + 1].trim_start().starts_with("2 => "), "{list}");
    // Pods going away leave the maps, and the listing, at once.
    lab.sh("host", "kubectl apply -f deathstar-extra.yaml").ok();
    let list = lab.sh("host", "kubectl -n kube-system exec ds/cilium -- cilium-dbg service list").ok();
    assert!(list.contains("3 => 10.244."), "{list}");
    // No endpoints left: the frontend stays, without backends.
    lab.sh("host", "kubectl delete pod deathstar-extra && kubectl delete deployment deathstar").ok();
    let list = lab.sh("host", "kubectl -n kube-system exec ds/cilium -- cilium-dbg service list").ok();
    let line = list.lines().find(|l| l.contains("172.18.250.1:80")).unwrap_or_else(|| panic!("{list}"));
    assert!(line.trim_end().ends_with("LoadBalancer"), "{list}");
    lab.sh("host", "kubectl delete svc deathstar-lb").ok();
    let list = lab.sh("host", "kubectl -n kube-system exec ds/cilium -- cilium-dbg service list").ok();
    assert!(!list.contains("172.18.250.1"), "{list}");
}
