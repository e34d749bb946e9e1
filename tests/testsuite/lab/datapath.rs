//! Traffic through the lab's real datapath: pod to pod across nodes, ClusterIP load
//! balancing, cluster DNS, and masquerade as the outside world sees it.
//!
//! Pinned to the emulation (`Lab::article_emulated`): this is the emulated Cilium datapath, built
//! from the Helm values by the supervisor. Cilium on the real API (the agents of `lab::cilium`,
//! `lab::cilium_tunnel`) covers routes, masquerade and services there; these go with the
//! emulation once it also covers DNS through Docker's DNS stand-in and the LAN resolver.

use crate::lab::support::Lab;

crate::tests![
    pods_reach_each_other_across_nodes(Lab),
    cluster_ip_by_name_spreads_over_both_deathstars(Lab),
    dns_through_coredns_docker_dns_and_the_lan(Lab),
    iptables_masquerade_seen_by_the_external_server(Lab),
    bpf_masquerade_breaks_docker_dns_until_coredns_forwards_to_the_lan(Lab)
];

fn pods_reach_each_other_across_nodes() {
    let lab = Lab::article_emulated("p2p");
    let pods = lab.sh("host", "kubectl get pods -o wide").ok();
    let row = |name: &str| {
        pods.lines().find(|l| l.starts_with(name)).unwrap().split_whitespace().map(str::to_string).collect::<Vec<_>>()
    };
    let (tie, xwing) = (row("tiefighter"), row("xwing"));
    assert_ne!(tie[6], xwing[6], "round-robin puts them on different workers:\n{pods}");
    for ds in pods.lines().filter(|l| l.starts_with("deathstar-")) {
        let ip = ds.split_whitespace().nth(5).unwrap();
        let out = lab.sh("pod/xwing", &format!("curl -s --connect-timeout 5 -XPOST {ip}/v1/request-landing")).ok();
        assert_eq!(out, "Ship landed\n");
    }
    // The pod's view: its /32 and Cilium's gateway.
    let route = lab.sh("pod/tiefighter", "ip route").ok();
    assert!(route.starts_with("default via 10.244."), "{route}");
    assert!(route.contains(".224 dev eth0 mtu 1500") || route.contains(".224 dev eth0"), "{route}");
}

fn cluster_ip_by_name_spreads_over_both_deathstars() {
    let lab = Lab::article_emulated("svc");
    let out = lab
        .sh("host", "kubectl exec tiefighter -- curl --connect-timeout 10 -s -XPOST deathstar.default.svc.cluster.local/v1/request-landing")
        .ok();
    assert_eq!(out, "Ship landed\n");
    let served = lab
        .sh("pod/tiefighter", "for i in $(seq 40); do curl -si -XPOST deathstar/v1/request-landing | grep -i x-served-by; done | sort | uniq -c")
        .ok();
    assert_eq!(served.lines().count(), 2, "both deathstar pods must answer:\n{served}");
    let svc = lab.sh("host", "kubectl get svc deathstar -o wide").ok();
    assert!(svc.contains("ClusterIP   10.96.") && svc.contains("class=deathstar,org=empire"), "{svc}");
    // Deleting the service takes its name and address away.
    lab.sh("host", "kubectl delete svc deathstar").ok();
    let gone = lab.sh("pod/tiefighter", "getent hosts deathstar.default.svc.cluster.local");
    assert_eq!(gone.code, 2, "{}", gone.stdout);
}

fn dns_through_coredns_docker_dns_and_the_lan() {
    let lab = Lab::article_emulated("dns");
    assert_eq!(lab.sh("pod/tiefighter", "getent hosts swapi.dev").ok(), "203.0.113.10    swapi.dev\n");
    let dns_ip = lab.sh("host", "kubectl -n kube-system get svc kube-dns -o jsonpath='{.spec.clusterIP}'").ok();
    assert_eq!(dns_ip, "10.96.0.10");
    // Nodes resolve through kind's DNAT to Docker's resolver; node names resolve too.
    assert_eq!(lab.sh("kind-worker", "cat /etc/resolv.conf | grep nameserver").ok(), "nameserver 172.18.0.1\n");
    assert_eq!(lab.sh("kind-worker", "getent hosts kind-worker2").ok(), "172.18.0.4      kind-worker2\n");
    let rules = lab.sh("host", "docker exec -ti kind-worker iptables -t nat -S DOCKER_OUTPUT").ok();
    let lines: Vec<&str> = rules.lines().collect();
    assert_eq!(lines[0], "-N DOCKER_OUTPUT");
    assert!(
        lines[1].starts_with(
            "-A DOCKER_OUTPUT -d 172.18.0.1/32 -p tcp -m tcp --dport 53 -j DNAT --to-destination 127.0.0.11:"
        ),
        "{rules}"
    );
    assert!(
        lines[2].starts_with(
            "-A DOCKER_OUTPUT -d 172.18.0.1/32 -p udp -m udp --dport 53 -j DNAT --to-destination 127.0.0.11:"
        ),
        "{rules}"
    );
    // The CoreDNS fix of the article: forward straight to the LAN resolver, restart coredns.
    lab.sh("host", "kubectl -n kube-system get cm coredns -o yaml | sed 's|forward . /etc/resolv.conf|forward . 192.168.1.1|' > cm.yaml.tmp && kubectl apply -f cm.yaml.tmp; rm -f cm.yaml.tmp").ok();
    let before = lab.sh("host", "kubectl -n kube-system get pods -l k8s-app=kube-dns -o name").ok();
    assert_eq!(
        lab.sh("host", "kubectl -n kube-system rollout restart deployment coredns").ok(),
        "deployment.apps/coredns restarted\n"
    );
    let after = lab.sh("host", "kubectl -n kube-system get pods -l k8s-app=kube-dns -o name").ok();
    assert_ne!(before, after);
    assert_eq!(lab.sh("pod/tiefighter", "getent hosts swapi.dev").ok(), "203.0.113.10    swapi.dev\n");
}

fn iptables_masquerade_seen_by_the_external_server() {
    let lab = Lab::article_emulated("masq");
    // The article's request, over TLS (the lab CA is trusted inside the lab).
    let out =
        lab.sh("host", "kubectl exec tiefighter -- curl --connect-timeout 10 -s https://swapi.dev/api/starships").ok();
    assert_eq!(
        out,
        "{\"count\":36,\"next\":\"https://swapi.dev/api/starships/?page=2\",\"previous\":null,\"results\":[...]}\n"
    );
    let out = lab.sh("host", "kubectl exec tiefighter -- curl --connect-timeout 10 -s https://swapi.dev/ip").ok();
    assert_eq!(out, format!("{{\"origin\":\"{}\"}}\n", lab.node_ip_of("tiefighter")));
    let chain = lab.sh("kind-worker", "iptables -t nat -S CILIUM_POST_nat").ok();
    let want = r#"-N CILIUM_POST_nat
-A CILIUM_POST_nat -s 10.244.2.0/24 -m set --match-set cilium_node_set_v4 dst -m comment --comment "exclude traffic to cluster nodes from masquerade" -j ACCEPT
-A CILIUM_POST_nat -s 10.244.2.0/24 ! -d 10.244.0.0/16 ! -o cilium_+ -m comment --comment "cilium masquerade non-cluster" -j MASQUERADE
-A CILIUM_POST_nat -m mark --mark 0xa00/0xe00 -m comment --comment "exclude proxy return traffic from masquerade" -j ACCEPT
-A CILIUM_POST_nat -s 127.0.0.1/32 -o cilium_host -m comment --comment "cilium host->cluster from 127.0.0.1 masquerade" -j SNAT --to-source 10.244.2.224
-A CILIUM_POST_nat -o cilium_host -m mark --mark 0xf00/0xf00 -m conntrack --ctstate DNAT -m comment --comment "hairpin traffic that originated from a local pod" -j SNAT --to-source 10.244.2.224
"#;
    // Without the ipset tool the node-set rule is listed as one ACCEPT per node.
    if std::process::Command::new("sh").args(["-c", "command -v ipset"]).output().unwrap().status.success() {
        assert_eq!(chain, want);
    }
    let status = lab.sh("host", "kubectl -n kube-system exec ds/cilium -- cilium-dbg status | grep Masquerading").ok();
    assert_eq!(status, "Masquerading:            IPTables [IPv4: Enabled, IPv6: Disabled]\n");
    // Without masquerade the request leaves with the pod's address, which the outside cannot
    // route back: the request fails, as it would on the internet.
    lab.sh(
        "host",
        "helm upgrade -n kube-system cilium cilium/cilium -f cilium-medium.yaml --set enableIPv4Masquerade=false",
    )
    .ok();
    assert_eq!(lab.sh("kind-worker", "iptables -t nat -S CILIUM_POST_nat 2>&1").code, 1);
    let o = lab.sh("pod/tiefighter", "curl --connect-timeout 2 -s http://203.0.113.10/");
    assert_ne!(o.code, 0, "{}", o.stdout);
}

fn bpf_masquerade_breaks_docker_dns_until_coredns_forwards_to_the_lan() {
    let lab = Lab::article_emulated("bpf");
    let up = lab.sh("host", "helm upgrade -n kube-system cilium cilium/cilium -f cilium-bpf-masq.yaml").ok();
    assert!(up.starts_with("Release \"cilium\" has been upgraded. Happy Helming!\n"), "{up}");
    let status = lab.sh("host", "kubectl -n kube-system exec ds/cilium -- cilium-dbg status | grep Masquerading").ok();
    assert_eq!(
        status,
        "Masquerading:            BPF (ip-masq-agent)   [eth0]   10.244.0.0/16 [IPv4: Enabled, IPv6: Disabled]\n"
    );
    let list = lab.sh("host", "kubectl -n kube-system exec ds/cilium -- cilium-dbg bpf ipmasq list").ok();
    assert_eq!(list, "IP PREFIX/ADDRESS\n10.244.0.0/16\n169.254.0.0/16\n");
    // The iptables chain is gone: what masquerades below is the BPF program.
    assert_ne!(lab.sh("kind-worker", "iptables -t nat -S CILIUM_POST_nat").code, 0);
    // SNAT by BPF: the external server sees the node's address.
    let node_ip = lab.node_ip_of("tiefighter");
    let out = lab.sh("pod/tiefighter", "curl -s --connect-timeout 5 http://203.0.113.10/").ok();
    assert_eq!(out, format!("{{\"origin\":\"{node_ip}\"}}\n"));
    // Cluster traffic is untouched by it.
    assert_eq!(
        lab.sh("pod/tiefighter", "curl -s -XPOST deathstar.default.svc.cluster.local/v1/request-landing").ok(),
        "Ship landed\n"
    );
    // CoreDNS's upstream queries to 172.18.0.1 now skip the node's DOCKER_OUTPUT DNAT: external
    // names fail while cluster names still resolve.
    let broken = lab.sh("pod/tiefighter", "getent hosts swapi.dev");
    assert_ne!(broken.code, 0, "{}", broken.stdout);
    // The article's fix.
    lab.sh("host", "kubectl -n kube-system get cm coredns -o yaml | sed 's|forward . /etc/resolv.conf|forward . 192.168.1.1|' > cm.bpf.tmp && kubectl apply -f cm.bpf.tmp; rm -f cm.bpf.tmp").ok();
    lab.sh("host", "kubectl -n kube-system rollout restart deployment coredns").ok();
    let fixed = lab.sh("host", "kubectl exec tiefighter -- curl --connect-timeout 10 -s https://swapi.dev/ip").ok();
    assert_eq!(fixed, format!("{{\"origin\":\"{node_ip}\"}}\n"));
}
