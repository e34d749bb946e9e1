//! Cilium's tunnel mode on the lab's real control plane, installed as the Cilium docs' kind guide
//! does it (`helm install cilium cilium/cilium --version 1.19.1` with the chart's defaults:
//! `routingMode: tunnel`, `tunnelProtocol: vxlan`), plus the kube-proxy replacement. What is
//! checked is the wire: a capture on the lab's bridge (the kind network) must show the pods'
//! traffic inside UDP 8472 (VXLAN) or 6081 (Geneve) between node addresses, and never a pod
//! address as an outer one — which native routing would show, and the test checks it does.

use std::time::{Duration, Instant};

use super::k8s::Lab;
use super::support::fixtures;

crate::tests![
    vxlan_by_default_and_back_and_forth_to_native(Lab, K8s, Tcpdump),
    geneve_encapsulates_pod_traffic(Lab, K8s, Tcpdump, Geneve)
];

const INSTALL: &str = "helm repo add cilium https://helm.cilium.io/ >/dev/null && \
     helm install cilium cilium/cilium --version 1.19.1 -n kube-system --set ipam.mode=kubernetes \
     --set kubeProxyReplacement=true --set k8sServiceHost=kind-control-plane --set k8sServicePort=6443";

/// `kind create cluster` (a control plane and two workers, no default CNI, no kube-proxy), then
/// `helm install` with `extra`: the seconds from the install to every node Ready.
fn cluster_with_cilium(lab: &Lab, extra: &str) -> f64 {
    let dir = fixtures().display().to_string();
    let o = lab.sh(&format!("cd {dir} && kind create cluster --config kind-config.yaml"));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    lab.eventually("kubectl get serviceaccount default");
    let start = Instant::now();
    let o = lab.sh(&format!("{INSTALL} {extra}"));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let o = lab.sh("kubectl wait --for=condition=Ready nodes --all --timeout=240s");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let ready = start.elapsed().as_secs_f64();
    eprintln!("tunnel: every node Ready {ready:.1} s after helm install ({extra})");
    ready
}

/// A client on kind-worker and nginx on kind-worker2 (placed by `nodeName`): their addresses.
fn pods_on_two_nodes(lab: &Lab) -> (String, String) {
    let on = |node: &str| format!("--overrides='{{\"apiVersion\":\"v1\",\"spec\":{{\"nodeName\":\"{node}\"}}}}'");
    lab.sh(&format!("kubectl run web --image=nginx {}", on("kind-worker2"))).ok();
    lab.sh(&format!("kubectl run client --image=busybox {} -- sleep 3600", on("kind-worker"))).ok();
    let o = lab.sh("kubectl wait --for=condition=Ready pod/web pod/client --timeout=120s");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let ip = |pod: &str| lab.sh(&format!("kubectl get pod {pod} -o jsonpath='{{.status.podIP}}'")).ok();
    (ip("client"), ip("web"))
}

/// What the bridge of the kind network carried while the client fetched nginx's page: the
/// packets whose outer addresses are the two pods' (plain routing), and those on UDP `port`
/// decoded with the encapsulated packet (`tcpdump -T vxlan` for 8472, which tcpdump would take
/// for OTV).
struct Capture {
    plain: String,
    tunneled: String,
    page: String,
}

fn capture(lab: &Lab, port: u16, client: &str, web: &str) -> Capture {
    let decode = if port == 8472 { "-T vxlan" } else { "" };
    let o = lab.sh(&format!(
        "set -e; br=$(ip -o link show type bridge | awk -F': ' '$2 ~ /^br-/ {{print $2; exit}}'); \
         rm -f /tmp/cap.pcap; tcpdump -nn -U -i \"$br\" -w /tmp/cap.pcap 'udp port {port} or host {client} or host {web}' 2>/dev/null & pid=$!; \
         sleep 1; page=$(kubectl exec client -- timeout 5 wget -qO- http://{web}/ || true); sleep 1; kill $pid; wait $pid || true; \
         echo \"$page\" > /tmp/page; tcpdump -nn -r /tmp/cap.pcap 'host {client} or host {web}' 2>/dev/null > /tmp/plain; \
         tcpdump -nn -r /tmp/cap.pcap {decode} 'udp port {port}' 2>/dev/null > /tmp/tunneled"
    ));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    Capture {
        plain: lab.sh("cat /tmp/plain").ok(),
        tunneled: lab.sh("cat /tmp/tunneled").ok(),
        page: lab.sh("cat /tmp/page").ok(),
    }
}

/// The page came through the tunnel: UDP `port` between node addresses carrying the two pods'
/// packets with the client's security identity as the VNI (`vni` as tcpdump prints it), and no
/// pod address on the wire outside it.
fn assert_tunneled(c: &Capture, port: u16, client: &str, web: &str, vni: &str) {
    assert!(c.page.contains("Welcome to nginx"), "{}", c.page);
    assert_eq!(c.plain, "", "pod addresses seen unencapsulated on the bridge");
    let outer = c.tunneled.lines().filter(|l| l.contains(&format!(".{port}: "))).count();
    assert!(outer > 0, "no UDP {port} on the bridge:\n{}", c.tunneled);
    assert!(
        c.tunneled.contains("IP 172.18.0.3.") && c.tunneled.contains(&format!("> 172.18.0.4.{port}: ")),
        "not between kind-worker and kind-worker2:\n{}",
        c.tunneled
    );
    assert!(
        c.tunneled.contains(&format!("{client}.")) && c.tunneled.contains(&format!("> {web}.80: ")),
        "the pods' packets are not inside:\n{}",
        c.tunneled
    );
    assert!(
        c.tunneled.lines().any(|l| l.contains(&format!("> 172.18.0.4.{port}: "))
            && l.split(vni).nth(1).is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_alphanumeric()))),
        "no `{vni}` from kind-worker:\n{}",
        c.tunneled
    );
}

/// The client's security identity, once its node's agent published its CiliumEndpoint (the
/// agent's tunnel map gets it in the same pass).
fn client_identity(lab: &Lab) -> u64 {
    let id = lab.eventually("kubectl get ciliumendpoint client -o jsonpath='{.status.identity.id}' | grep .");
    std::thread::sleep(Duration::from_secs(1));
    id.trim().parse().unwrap()
}

/// Tunnel mode's routes on a node: every other node's podCIDR via the router address on
/// cilium_host, 50 bytes under eth0's MTU.
fn tunnel_routes(routes: &str) -> usize {
    routes
        .lines()
        .filter(|l| l.starts_with("10.244.") && l.contains("dev cilium_host") && l.trim_end().ends_with(" mtu 1450"))
        .count()
}

fn direct_routes(routes: &str) -> usize {
    routes
        .lines()
        .filter(|l| l.starts_with("10.244.") && l.contains(" via 172.18.0.") && l.contains("dev eth0"))
        .count()
}

/// `check` on every node until it holds (60 s at most).
fn on_every_node(lab: &Lab, script: &str, check: impl Fn(&str) -> bool) {
    for node in ["kind-control-plane", "kind-worker", "kind-worker2"] {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let o = lab.on(node, script);
            if check(&o.stdout) {
                break;
            }
            assert!(Instant::now() < deadline, "{node}: `{script}`:\n{}{}", o.stdout, o.stderr);
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn root_netns_links() -> String {
    let o = std::process::Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn vxlan_by_default_and_back_and_forth_to_native() {
    let lab = Lab::up("tunvx");
    cluster_with_cilium(&lab, "");
    // The kernel's VXLAN device, flow-based, on Cilium's port, in the node (not the machine).
    let link = lab.on("kind-worker", "ip -d link show cilium_vxlan").ok();
    assert!(link.contains("vxlan external") && link.contains("dstport 8472"), "{link}");
    assert!(!root_netns_links().contains("cilium_"), "a Cilium device in the machine's namespace");
    let routes = lab.on("kind-worker", "ip route").ok();
    assert_eq!(tunnel_routes(&routes), 2, "{routes}");
    assert_eq!(direct_routes(&routes), 0, "{routes}");
    let status = lab.eventually("kubectl -n kube-system exec ds/cilium -- cilium-dbg status | grep ^Routing:");
    assert_eq!(status.trim_end(), "Routing:                 Network: Tunnel [vxlan]   Host: Legacy");
    let (client, web) = pods_on_two_nodes(&lab);
    let vni = format!("vni {}", client_identity(&lab));
    // The route MTU leaves room for the encapsulation (iproute2's `ip`: nginx's image has no
    // busybox applets in the way).
    let route = lab.sh("kubectl exec web -- ip route").ok();
    assert!(route.lines().next().unwrap_or("").trim_end().ends_with(" dev eth0 mtu 1450"), "{route}");
    assert_tunneled(&capture(&lab, 8472, &client, &web), 8472, &client, &web, &vni);
    // CoreDNS answers through the tunnel and the kube-proxy replacement.
    let dns = lab.eventually("kubectl exec client -- nslookup kubernetes.default.svc.cluster.local");
    assert!(dns.contains("10.96.0.1"), "{dns}");
    // Leaving the cluster, the pod's address is replaced by its node's.
    let masq = lab.on("kind-worker", "iptables -t nat -S CILIUM_POST_nat").ok();
    let cidr = lab.sh("kubectl get node kind-worker -o jsonpath='{.spec.podCIDR}'").ok();
    assert!(masq.contains(&format!("-s {cidr} ! -d {cidr} ! -o cilium_+")), "{masq}");
    assert!(masq.contains("cilium host->cluster masquerade"), "{masq}");
    let origin = lab.eventually("kubectl exec client -- timeout 5 wget -qO- http://203.0.113.10/ip");
    assert!(origin.contains("\"origin\":\"172.18.0.3\""), "{origin}");

    // To native routing: the tunnel device and its routes go, direct routes come, and the pods'
    // packets cross the bridge as they are (what the capture above must not show).
    let native = "--set routingMode=native --set ipv4NativeRoutingCIDR=10.244.0.0/16 --set autoDirectNodeRoutes=true";
    let o = lab.sh(&format!("{} {native}", INSTALL.replace("helm install", "helm upgrade")));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    on_every_node(&lab, "ip -o link; ip route", |out| {
        !out.contains("cilium_vxlan") && tunnel_routes(out) == 0 && direct_routes(out) == 2
    });
    let plain = capture(&lab, 8472, &client, &web);
    assert!(plain.page.contains("Welcome to nginx"), "{}", plain.page);
    assert!(plain.plain.contains(&format!("IP {client}.")), "{}", plain.plain);
    assert_eq!(plain.tunneled, "");

    // And back to the default: no direct route is left behind.
    let o = lab.sh(&INSTALL.replace("helm install", "helm upgrade"));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    on_every_node(&lab, "ip -o link; ip route", |out| {
        out.contains("cilium_vxlan") && tunnel_routes(out) == 2 && direct_routes(out) == 0
    });
    assert_tunneled(&capture(&lab, 8472, &client, &web), 8472, &client, &web, &vni);

    // BPF masquerade in tunnel mode: the other nodes' pods still through the tunnel, the
    // outside still sees the node's address.
    let o = lab.sh(&format!("{} --set bpf.masquerade=true", INSTALL.replace("helm install", "helm upgrade")));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let masq = lab
        .eventually("kubectl -n kube-system exec ds/cilium -- cilium-dbg status | grep '^Masquerading: *BPF' | grep .");
    assert!(masq.contains(".0/24 [IPv4: Enabled, IPv6: Disabled]"), "{masq}");
    assert_tunneled(&capture(&lab, 8472, &client, &web), 8472, &client, &web, &vni);
    let origin = lab.eventually("kubectl exec client -- timeout 5 wget -qO- http://203.0.113.10/ip");
    assert!(origin.contains("\"origin\":\"172.18.0.3\""), "{origin}");
    drop(lab);
    assert!(!root_netns_links().contains("cilium_"), "a Cilium device left in the machine's namespace");
}

fn geneve_encapsulates_pod_traffic() {
    let lab = Lab::up("tungn");
    cluster_with_cilium(&lab, "--set tunnelProtocol=geneve");
    let link = lab.on("kind-worker", "ip -d link show cilium_geneve").ok();
    assert!(link.contains("geneve external") && link.contains("dstport 6081"), "{link}");
    let status = lab.eventually("kubectl -n kube-system exec ds/cilium -- cilium-dbg status | grep ^Routing:");
    assert_eq!(status.trim_end(), "Routing:                 Network: Tunnel [geneve]   Host: Legacy");
    let (client, web) = pods_on_two_nodes(&lab);
    let vni = format!("vni {:#x}", client_identity(&lab));
    assert_tunneled(&capture(&lab, 6081, &client, &web), 6081, &client, &web, &vni);
    let dns = lab.eventually("kubectl exec client -- nslookup kubernetes.default.svc.cluster.local");
    assert!(dns.contains("10.96.0.1"), "{dns}");
}
