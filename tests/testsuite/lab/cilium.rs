//! Cilium on the lab's real control plane: `helm install cilium` from the lab's chart
//! repository, the DaemonSet's pods running the lab's `cilium-agent`, which programs each node
//! from the API (native routing, masquerade, the kube-proxy replacement) and hands the node's
//! pods their network.

use super::k8s::Lab;
use super::support::fixtures;

crate::tests![
    native_routing_and_services_on_the_real_api(Lab, K8s),
    bpf_masquerade_and_cilium_dbg(Lab, K8s),
    xdp_load_balancer_and_l2_announcements(Lab, K8s),
    host_ports_and_external_traffic_policy(Lab, K8s)
];

/// Routes to other nodes' pod ranges via their addresses on the kind network.
fn direct_routes(routes: &str) -> usize {
    routes
        .lines()
        .filter(|l| l.starts_with("10.244.") && l.contains(" via 172.18.0.") && l.contains("dev eth0"))
        .count()
}

fn native_routing_and_services_on_the_real_api() {
    let lab = Lab::up("cilium");
    let dir = fixtures().display().to_string();
    let o = lab.sh(&format!("cd {dir} && kind create cluster --config kind-config.yaml"));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    // No CNI yet: NotReady, as on kind.
    let nodes = lab.eventually("kubectl get nodes --no-headers");
    assert_eq!(nodes.matches("NotReady").count(), 3, "{nodes}");
    let o = lab.sh(&format!(
        "cd {dir} && helm repo add cilium https://helm.cilium.io/ && \
         helm install -n kube-system cilium cilium/cilium -f cilium-no-direct-routes.yaml"
    ));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    // The agents write the CNI configuration once their node is programmed: the nodes turn
    // Ready, and the agents' pods pass their probes.
    lab.eventually("kubectl wait --for=condition=Ready nodes --all --timeout=1s");
    let o = lab.sh("kubectl -n kube-system rollout status ds/cilium --timeout=240s");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let cidr = lab.sh("kubectl get node kind-worker -o jsonpath='{.spec.podCIDR}'").ok();
    let base = cidr.trim().trim_end_matches(".0/24").to_string();
    let routes = lab.on("kind-worker", "ip route").ok();
    assert!(
        routes.contains(&format!("{base}.0/24 via {base}.224 dev cilium_host proto kernel src {base}.224")),
        "{routes}"
    );
    // autoDirectNodeRoutes is off: no route to the other nodes' pods.
    assert_eq!(direct_routes(&routes), 0, "{routes}");
    let masq = lab.on("kind-worker", "iptables -t nat -S CILIUM_POST_nat").ok();
    assert!(masq.contains(&format!("-s {base}.0/24 ! -d 10.244.0.0/16 ! -o cilium_+")), "{masq}");
    // A helm upgrade reaches the agents through cilium-config: direct routes to the peers.
    let o = lab.sh(&format!(
        "cd {dir} && helm upgrade -n kube-system cilium cilium/cilium -f cilium-no-direct-routes.yaml --set autoDirectNodeRoutes=true"
    ));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let r = lab.on("kind-worker", "ip route").ok();
        if direct_routes(&r) == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no direct routes: {r}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // Pods get Cilium's layout, and Services work without kube-proxy: CoreDNS reaches the API
    // through the kubernetes Service, a client reaches nginx by name.
    lab.sh("kubectl create deployment web --image=nginx --replicas=2 && kubectl expose deployment web --port=80").ok();
    lab.sh("kubectl run client --image=busybox -- sleep 3600").ok();
    let o = lab.sh("kubectl wait --for=condition=Ready pod --all --timeout=90s");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let route = lab.sh("kubectl exec client -- ip route").ok();
    assert!(route.starts_with("default via 10.244.") && route.contains(".224 dev eth0"), "{route}");
    let page = lab.eventually("kubectl exec client -- timeout 5 wget -qO- http://web.default.svc.cluster.local/");
    assert!(page.contains("Welcome to nginx"), "{page}");
    let o = lab.sh("kubectl -n kube-system wait --for=condition=Ready pod -l k8s-app=kube-dns --timeout=60s");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
}

/// `bpf.masquerade` with ip-masq-agent: the agents load the lab's BPF masquerade, `cilium-dbg`
/// in their pods reports it from their state and maps, and the Star Wars demo's pods (the
/// lab's deathstar and netperf images) reach each other and the outside, masqueraded.
fn bpf_masquerade_and_cilium_dbg() {
    let lab = Lab::up("ciliumbpf");
    let dir = fixtures().display().to_string();
    let o = lab.sh(&format!(
        "cd {dir} && kind create cluster --config kind-config.yaml && helm repo add cilium https://helm.cilium.io/ && \
         helm install -n kube-system cilium cilium/cilium -f cilium-bpf-masq.yaml"
    ));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    // The default service account comes a moment after the cluster (pods need it).
    lab.eventually("kubectl get serviceaccount default");
    let o = lab.sh(&format!("cd {dir} && kubectl apply -f http-sw-app.yaml"));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let o = lab.sh("kubectl wait --for=condition=Ready pod --all --timeout=120s");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let status = lab.eventually("kubectl -n kube-system exec ds/cilium -- cilium-dbg status | grep Masquerading");
    assert_eq!(
        status.trim_end(),
        "Masquerading:            BPF (ip-masq-agent)   [eth0]   10.244.0.0/16 [IPv4: Enabled, IPv6: Disabled]"
    );
    // Cluster health from the agents' probes of every node's health port; a node that drops
    // them is unreachable (for the others, and for its own agent).
    let health = "kubectl -n kube-system exec ds/cilium -- cilium-dbg status | grep '^Cluster health:'";
    let line = lab.eventually(&format!("{health} | grep ' 3/3 reachable '"));
    assert!(line.starts_with("Cluster health:          3/3 reachable   (20"), "{line}");
    lab.on("kind-worker2", "iptables -I INPUT -p tcp --dport 4240 -j DROP").ok();
    lab.eventually(&format!("{health} | grep ' 2/3 reachable '"));
    lab.on("kind-worker2", "iptables -D INPUT -p tcp --dport 4240 -j DROP").ok();
    let list = lab.sh("kubectl -n kube-system exec ds/cilium -- cilium-dbg bpf ipmasq list").ok();
    assert_eq!(list, "IP PREFIX/ADDRESS\n10.244.0.0/16\n169.254.0.0/16\n");
    let landed = lab.eventually(
        "kubectl exec tiefighter -- curl -s --connect-timeout 5 -XPOST deathstar.default.svc.cluster.local/v1/request-landing",
    );
    assert_eq!(landed, "Ship landed\n");
    // Leaving the cluster, the pod's address is replaced by its node's (BPF SNAT on eth0). By
    // address: names outside the cluster no longer resolve (the article's CoreDNS problem).
    let origin = lab.eventually("kubectl exec tiefighter -- curl -s --connect-timeout 5 http://203.0.113.10/ip");
    assert!(origin.starts_with("{\"origin\":\"172.18.0."), "{origin}");
    let services = lab.sh("kubectl -n kube-system exec ds/cilium -- cilium-dbg service list").ok();
    assert!(services.starts_with("ID   Frontend"), "{services}");
    assert!(services.contains("ClusterIP"), "{services}");
    let unknown = lab.sh("kubectl -n kube-system exec ds/cilium -- cilium-dbg bpf ct list global");
    assert_ne!(unknown.code, 0);
    assert!(unknown.stderr.contains("not played by the lab's cilium image"), "{}", unknown.stderr);
}

/// The MAC the lab host has in its neighbour table for `ip` (empty when none).
fn neighbour(lab: &Lab, ip: &str) -> String {
    let n = lab.sh(&format!("ip neigh show {ip}")).ok();
    n.split_whitespace().skip_while(|w| *w != "lladdr").nth(1).unwrap_or_default().to_string()
}

/// A node's MAC on the kind network.
fn mac(lab: &Lab, node: &str) -> String {
    lab.on(node, "cat /sys/class/net/eth0/address").ok().trim().to_string()
}

/// LoadBalancer addresses on the real API: the operator's LB IPAM gives the address, the
/// agents serve it through the bundled XDP load balancer on every node's eth0 (generic mode,
/// then native with `loadBalancer.acceleration`), and L2 announcements make the worker that
/// holds the Service's lease answer ARP for it; when the policy no longer selects that worker,
/// the other one takes the lease and the address over.
fn xdp_load_balancer_and_l2_announcements() {
    let lab = Lab::up("ciliumlb");
    let dir = fixtures().display().to_string();
    let o = lab.sh(&format!(
        "cd {dir} && kind create cluster --config kind-config.yaml && helm repo add cilium https://helm.cilium.io/ && \
         helm install -n kube-system cilium cilium/cilium -f cilium-l2.yaml"
    ));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    lab.eventually("kubectl get serviceaccount default");
    lab.eventually("kubectl get crd ciliuml2announcementpolicies.cilium.io ciliumloadbalancerippools.cilium.io");
    let o = lab.sh(&format!(
        "cd {dir} && kubectl apply -f http-sw-app.yaml -f deathstar-svc.yaml -f cilium-lbsvc-pool.yaml -f cilium-l2-policy.yaml"
    ));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let o = lab.sh("kubectl wait --for=condition=Ready pod --all --timeout=120s");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let ip =
        lab.eventually("kubectl get service deathstar-lb -o jsonpath='{.status.loadBalancer.ingress[0].ip}' | grep .");
    // The newest release's pools give their first address too (`allowFirstLastIPs`).
    let ip = ip.trim().to_string();
    assert!(ip.starts_with("172.18.250."), "{ip}");
    // From the lab host (the kind machine): ARP answered by the holder, balanced in XDP.
    let landed = lab.eventually(&format!("curl -s --connect-timeout 2 -XPOST {ip}/v1/request-landing"));
    assert_eq!(landed, "Ship landed\n");
    let holder = lab
        .eventually("kubectl -n kube-system get lease cilium-l2announce-default-deathstar-lb -o jsonpath='{.spec.holderIdentity}' | grep .")
        .trim()
        .to_string();
    assert!(holder == "kind-worker" || holder == "kind-worker2", "the control plane is not selected: {holder}");
    assert_eq!(neighbour(&lab, &ip), mac(&lab, &holder));
    let link = lab.on(&holder, "ip link show eth0").ok();
    assert!(link.contains("xdpgeneric"), "{link}");
    let services = lab.sh("kubectl -n kube-system exec ds/cilium -- cilium-dbg service list").ok();
    assert!(services.contains(&format!("{ip}:80")) && services.contains("LoadBalancer"), "{services}");
    // The holder is no longer eligible: it gives the lease up, the other worker takes it and
    // tells the network with a gratuitous ARP.
    let other = if holder == "kind-worker" { "kind-worker2" } else { "kind-worker" };
    let policy = format!(
        "apiVersion: cilium.io/v2alpha1\nkind: CiliumL2AnnouncementPolicy\nmetadata: {{name: default}}\nspec:\n  nodeSelector: {{matchLabels: {{kubernetes.io/hostname: {other}}}}}\n  loadBalancerIPs: true\n"
    );
    let o = lab.sh(&format!("printf '%s' '{policy}' | kubectl apply -f -"));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let took_over = std::time::Instant::now();
    let deadline = took_over + std::time::Duration::from_secs(60);
    while neighbour(&lab, &ip) != mac(&lab, other) {
        assert!(std::time::Instant::now() < deadline, "{other} did not take {ip} over");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    eprintln!("takeover by {other} seen on the lab host after {:?}", took_over.elapsed());
    let now = lab.sh("kubectl -n kube-system get lease cilium-l2announce-default-deathstar-lb -o jsonpath='{.spec.holderIdentity}'").ok();
    assert_eq!(now.trim(), other);
    let landed = lab.eventually(&format!("curl -s --connect-timeout 2 -XPOST {ip}/v1/request-landing"));
    assert_eq!(landed, "Ship landed\n");
    // Native XDP: the agents restart with the new option and attach in driver mode.
    let o = lab.sh(&format!(
        "cd {dir} && helm upgrade -n kube-system cilium cilium/cilium -f cilium-l2.yaml --set loadBalancer.acceleration=native && \
         kubectl -n kube-system rollout restart ds/cilium && kubectl -n kube-system rollout status ds/cilium --timeout=240s"
    ));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let xdp = lab
        .eventually("kubectl -n kube-system exec ds/cilium -- cilium-dbg status --verbose | grep 'XDP Acceleration'");
    assert_eq!(xdp, "  XDP Acceleration:       Native\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let link = lab.on(other, "ip link show eth0").ok();
        if link.contains(" xdp ") || link.contains("xdp/id") || (link.contains("xdp") && !link.contains("xdpgeneric")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no native XDP on {other}: {link}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // The agents re-attach one node at a time as the DaemonSet rolls; on a loaded machine the
    // last one may take a while after `rollout status` (a restarted agent re-takes its lease and
    // re-announces). A failure says what each node had.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let o = lab.sh(&format!("curl -s --connect-timeout 2 -XPOST {ip}/v1/request-landing"));
        if o.code == 0 && o.stdout == "Ship landed\n" {
            break;
        }
        if std::time::Instant::now() > deadline {
            let mut why = format!("{ip} not served through native XDP: {}{}\n", o.stdout, o.stderr);
            for n in ["kind-worker", "kind-worker2"] {
                why += &format!("{n}: {}\n", lab.on(n, "ip -d link show eth0; ip route").stdout);
            }
            why += &lab.sh(&format!("ip neigh show {ip}; kubectl -n kube-system get pods -o wide; kubectl -n kube-system get lease cilium-l2announce-default-deathstar-lb -o yaml; for p in $(kubectl -n kube-system get pods -l k8s-app=cilium -o name); do kubectl -n kube-system logs $p --tail=15; done")).stdout;
            panic!("{why}");
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// The kube-proxy replacement's host ports and `externalTrafficPolicy`: a pod's `hostPort` is
/// reached on its node's address; a NodePort with `Local` is served only by the node that runs
/// an endpoint, which sees the client's own address; with `Cluster` every node serves it,
/// rewriting the source to its own address when the endpoint runs elsewhere.
fn host_ports_and_external_traffic_policy() {
    let lab = Lab::up("ciliumports");
    let dir = fixtures().display().to_string();
    let o = lab.sh(&format!(
        "cd {dir} && kind create cluster --config kind-config.yaml && helm repo add cilium https://helm.cilium.io/ && \
         helm install -n kube-system cilium cilium/cilium -f cilium-medium.yaml"
    ));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    lab.eventually("kubectl get serviceaccount default");
    let o = lab.sh(&format!("cd {dir} && kubectl apply -f ports.yaml"));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let o = lab.sh("kubectl wait --for=condition=Ready pod --all --timeout=120s");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let ip = |node: &str| {
        lab.sh(&format!("kubectl get node {node} -o jsonpath='{{.status.addresses[0].address}}'"))
            .ok()
            .trim()
            .to_string()
    };
    let (worker, cp) = (ip("kind-worker"), ip("kind-control-plane"));
    // The host port, on the pod's node only.
    let name = lab.eventually(&format!("curl -s --connect-timeout 3 http://{worker}:8081/hostname"));
    assert_eq!(name, "hostport");
    assert_ne!(lab.sh(&format!("curl -s --connect-timeout 3 http://{cp}:8081/hostname")).code, 0);
    let agent = lab
        .sh("kubectl -n kube-system get pod -l k8s-app=cilium --field-selector spec.nodeName=kind-worker -o name")
        .ok();
    let list = lab.sh(&format!("kubectl -n kube-system exec {} -- cilium-dbg service list", agent.trim())).ok();
    assert!(list.lines().any(|l| l.contains(&format!("{worker}:8081")) && l.contains(" HostPort ")), "{list}");
    // externalTrafficPolicy: Local — the endpoint's node serves it and keeps the client's
    // address (the lab host, 172.18.0.1); the others have no endpoint to send to.
    let client = lab.eventually(&format!("curl -s --connect-timeout 3 http://{worker}:30081/clientip"));
    assert!(client.starts_with("172.18.0.1:"), "{client}");
    let refused = lab.sh(&format!("curl -s --connect-timeout 3 http://{cp}:30081/clientip"));
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    // Cluster: every node serves it; the control plane forwards to kind-worker's endpoint
    // with its own address as the source, so the reply comes back through it.
    lab.sh(r#"kubectl patch service echo -p '{"spec":{"externalTrafficPolicy":"Cluster"}}'"#).ok();
    let client = lab.eventually(&format!("curl -s --connect-timeout 3 http://{cp}:30081/clientip"));
    assert!(client.starts_with(&format!("{cp}:")), "{client}");
    let client = lab.eventually(&format!("curl -s --connect-timeout 3 http://{worker}:30081/clientip"));
    assert!(client.starts_with("172.18.0.1:"), "{client}");
}
