//! BPF_PROG_TEST_RUN packet tests of the XDP load balancer: action and exact output bytes.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::lb::support::*;
use tutor::lb::hash::flow_hash;
use tutor::lb::maps::FlowKey;
use tutor::lb::{LoadBalancer, Service, action};

crate::tests![
    syn_to_vip_is_dnat_to_the_maglev_backend_with_valid_checksums(Bpf),
    same_flow_keeps_its_backend_and_other_flows_spread(Bpf),
    removing_a_backend_keeps_established_flows_and_new_flows_avoid_it(Bpf),
    arp_request_for_an_announced_vip_gets_a_reply_and_others_pass(Bpf),
    udp_service_is_translated_with_and_without_checksum(Bpf),
    redirect_when_the_next_hop_is_on_another_device_and_pass_when_unroutable(Bpf),
    service_without_backends_drops(Bpf),
    a_flow_keeps_its_backend_and_its_replies_on_another_cpu(Bpf, TwoCpus),
    reply_is_translated_back_to_the_vip(Bpf),
    unhandled_traffic_passes_unchanged(Bpf),
    instances_sharing_pins_share_services_and_translate_each_others_replies(Bpf)
];

const VIP: &str = "172.18.255.200:80";

fn svc(frontend: &str, backends: &[&str]) -> Service {
    Service {
        frontend: frontend.parse().unwrap(),
        backends: backends.iter().map(|b| sa(b)).collect(),
        kind: Default::default(),
    }
}

/// The backend the Maglev table (read back from the map) gives `flow`, as the datapath computes it.
fn maglev_choice(lb: &LoadBalancer, frontend: &str, flow: &FlowKey) -> SocketAddrV4 {
    let view = lb.service(&frontend.parse().unwrap()).unwrap().unwrap();
    let row = lb.maglev_row(view.id).unwrap();
    let id = row[(flow_hash(flow) % lb.maglev_size()) as usize];
    view.backends.iter().find(|b| b.id == id).unwrap().addr
}

fn flow(client: SocketAddrV4, vip: SocketAddrV4, proto: u8) -> FlowKey {
    FlowKey::new(*client.ip(), client.port(), *vip.ip(), vip.port(), proto)
}

fn syn_to_vip_is_dnat_to_the_maglev_backend_with_valid_checksums() {
    in_test_netns(|lbin| {
        let mut lb = small_lb();
        lb.upsert_service(&svc("172.18.255.200:80/tcp", &["10.1.0.5:8080", "10.1.0.6:8080", "10.1.0.7:8080"])).unwrap();
        let client = sa("172.18.0.1:40000");
        let frame = tcp(client, sa(VIP), true, b"");
        let (act, out) = lb.test_run(&frame, Some(lbin)).unwrap();
        let backend = maglev_choice(&lb, "172.18.255.200:80/tcp", &flow(client, sa(VIP), 6));
        assert_eq!(act, action::TX, "fib next hop is on the ingress device");
        assert_eq!(out, rewritten(&frame, backend, false, true, Some((NEXT_HOP_MAC, DEV_MAC))));
        let s = lb.stats().unwrap();
        assert_eq!((s.counter("new_flow"), s.counter("tx"), s.counter("packets")), (1, 1, 1));
        // The connection table pins the flow to that backend.
        let conn = lb.connection(&flow(client, sa(VIP), 6)).expect("conn entry");
        let view = lb.service(&"172.18.255.200:80/tcp".parse().unwrap()).unwrap().unwrap();
        assert_eq!(view.backends.iter().find(|b| b.id == conn.backend_id).unwrap().addr, backend);
    });
}

fn same_flow_keeps_its_backend_and_other_flows_spread() {
    in_test_netns(|lbin| {
        let mut lb = small_lb();
        lb.upsert_service(&svc("172.18.255.200:80/tcp", &["10.1.0.5:8080", "10.1.0.6:8080"])).unwrap();
        let client = sa("172.18.0.1:40001");
        let (_, first) = lb.test_run(&tcp(client, sa(VIP), true, b""), Some(lbin)).unwrap();
        for _ in 0..5 {
            let (act, out) = lb.test_run(&tcp(client, sa(VIP), false, b"GET /"), Some(lbin)).unwrap();
            assert_eq!(act, action::TX);
            assert_eq!(destination(&out), destination(&first));
        }
        let s = lb.stats().unwrap();
        assert_eq!((s.counter("new_flow"), s.counter("established")), (1, 5));
        let mut seen = std::collections::BTreeSet::new();
        for port in 1000..1100 {
            let (_, out) =
                lb.test_run(&tcp(sa(&format!("172.18.0.1:{port}")), sa(VIP), true, b""), Some(lbin)).unwrap();
            seen.insert(destination(&out));
        }
        assert_eq!(seen.len(), 2, "100 flows use both backends");
    });
}

fn removing_a_backend_keeps_established_flows_and_new_flows_avoid_it() {
    in_test_netns(|lbin| {
        let mut lb = small_lb();
        let all = ["10.1.0.5:8080", "10.1.0.6:8080", "10.1.0.7:8080"];
        lb.upsert_service(&svc("172.18.255.200:80/tcp", &all)).unwrap();
        let clients: Vec<SocketAddrV4> = (2000..2300).map(|p| sa(&format!("172.18.0.1:{p}"))).collect();
        let before: Vec<SocketAddrV4> = clients
            .iter()
            .map(|c| destination(&lb.test_run(&tcp(*c, sa(VIP), true, b""), Some(lbin)).unwrap().1))
            .collect();
        let removed = sa(all[1]);
        assert!(before.contains(&removed));
        lb.upsert_service(&svc("172.18.255.200:80/tcp", &[all[0], all[2]])).unwrap();
        for (c, b) in clients.iter().zip(&before) {
            let (act, out) = lb.test_run(&tcp(*c, sa(VIP), false, b"x"), Some(lbin)).unwrap();
            assert_eq!((act, destination(&out)), (action::TX, *b), "established flow {c} moved");
        }
        for p in 3000..3300 {
            let (_, out) = lb.test_run(&tcp(sa(&format!("172.18.0.1:{p}")), sa(VIP), true, b""), Some(lbin)).unwrap();
            assert_ne!(destination(&out), removed, "a new flow went to the removed backend");
        }
        let view = lb.service(&"172.18.255.200:80/tcp".parse().unwrap()).unwrap().unwrap();
        assert_eq!(view.backends.iter().map(|b| b.addr).collect::<Vec<_>>(), vec![sa(all[0]), sa(all[2])]);
    });
}

fn arp_request_for_an_announced_vip_gets_a_reply_and_others_pass() {
    in_test_netns(|lbin| {
        let mut lb = small_lb();
        lb.set_device(lbin, DEV_MAC).unwrap();
        let vip = Ipv4Addr::new(172, 18, 255, 200);
        let asker = Ipv4Addr::new(172, 18, 0, 1);
        lb.announce_vip(vip).unwrap();
        let (act, out) = lb.test_run(&arp_request(asker, vip), Some(lbin)).unwrap();
        assert_eq!(act, action::TX);
        let mut want = Vec::new();
        want.extend(CLIENT_MAC);
        want.extend(DEV_MAC);
        want.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
        want.extend(DEV_MAC);
        want.extend(vip.octets());
        want.extend(CLIENT_MAC);
        want.extend(asker.octets());
        assert_eq!(out, want);

        for frame in [arp_request(asker, Ipv4Addr::new(172, 18, 255, 201)), arp_request(vip, vip)] {
            let (act, out) = lb.test_run(&frame, Some(lbin)).unwrap();
            assert_eq!((act, out), (action::PASS, frame));
        }
        // Only on the device it is attached to.
        let (act, _) = lb.test_run(&arp_request(asker, vip), Some(1)).unwrap();
        assert_eq!(act, action::PASS);
        assert!(lb.withdraw_vip(vip).unwrap());
        let (act, _) = lb.test_run(&arp_request(asker, vip), Some(lbin)).unwrap();
        assert_eq!(act, action::PASS);
    });
}

fn udp_service_is_translated_with_and_without_checksum() {
    in_test_netns(|lbin| {
        let mut lb = small_lb();
        lb.upsert_service(&svc("10.96.0.10:53/udp", &["10.1.0.9:5353"])).unwrap();
        let frame = udp(sa("172.18.0.1:5000"), sa("10.96.0.10:53"), b"query");
        let (act, out) = lb.test_run(&frame, Some(lbin)).unwrap();
        assert_eq!(act, action::TX);
        assert_eq!(out, rewritten(&frame, sa("10.1.0.9:5353"), false, true, Some((NEXT_HOP_MAC, DEV_MAC))));
        let mut nosum = udp(sa("172.18.0.1:5001"), sa("10.96.0.10:53"), b"query");
        nosum[40] = 0;
        nosum[41] = 0;
        let (_, out) = lb.test_run(&nosum, Some(lbin)).unwrap();
        assert_eq!(&out[40..42], &[0, 0], "a zero UDP checksum stays zero");
        assert_eq!(out, rewritten(&nosum, sa("10.1.0.9:5353"), false, true, Some((NEXT_HOP_MAC, DEV_MAC))));
        // TCP to the UDP service's VIP:port is not the service.
        let t = tcp(sa("172.18.0.1:5000"), sa("10.96.0.10:53"), true, b"");
        assert_eq!(lb.test_run(&t, Some(lbin)).unwrap(), (action::PASS, t));
    });
}

fn redirect_when_the_next_hop_is_on_another_device_and_pass_when_unroutable() {
    in_test_netns(|_lbin| {
        let mut lb = small_lb();
        lb.upsert_service(&svc("172.18.255.200:80/tcp", &["10.1.0.5:8080"])).unwrap();
        lb.upsert_service(&svc("172.18.255.201:80/tcp", &["172.31.0.5:8080"])).unwrap();
        let frame = tcp(sa("172.18.0.1:4000"), sa(VIP), true, b"");
        let (act, out) = lb.test_run(&frame, None).unwrap();
        assert_eq!(act, action::REDIRECT, "arrived on lo, leaves on lbin");
        assert_eq!(out, rewritten(&frame, sa("10.1.0.5:8080"), false, true, Some((NEXT_HOP_MAC, DEV_MAC))));
        let frame = tcp(sa("172.18.0.1:4000"), sa("172.18.255.201:80"), true, b"");
        let (act, out) = lb.test_run(&frame, None).unwrap();
        assert_eq!(act, action::PASS, "no route: translated, left to the kernel");
        assert_eq!(out, rewritten(&frame, sa("172.31.0.5:8080"), false, false, None));
        assert_eq!(lb.stats().unwrap().counter("pass_nat"), 1);
    });
}

fn service_without_backends_drops() {
    in_test_netns(|lbin| {
        let mut lb = small_lb();
        lb.upsert_service(&svc("172.18.255.200:80/tcp", &[])).unwrap();
        let (act, _) = lb.test_run(&tcp(sa("172.18.0.1:1"), sa(VIP), true, b""), Some(lbin)).unwrap();
        assert_eq!(act, action::DROP);
        assert_eq!(lb.stats().unwrap().counter("drop_no_backend"), 1);
    });
}

fn run_on_cpu(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).unwrap();
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).unwrap();
}

/// The connection table is one copy per CPU: a flow recorded on one CPU keeps its backend when
/// its packets land on another (also after the service changed), and its replies are
/// translated whatever CPU sees them.
fn a_flow_keeps_its_backend_and_its_replies_on_another_cpu() {
    in_test_netns(|lbin| {
        let mut lb = small_lb();
        let all = ["10.1.0.5:8080", "10.1.0.6:8080", "10.1.0.7:8080"];
        lb.upsert_service(&svc("172.18.255.200:80/tcp", &all)).unwrap();
        let clients: Vec<SocketAddrV4> = (5000..5200).map(|p| sa(&format!("172.18.0.2:{p}"))).collect();
        run_on_cpu(0);
        let before: Vec<SocketAddrV4> = clients
            .iter()
            .map(|c| destination(&lb.test_run(&tcp(*c, sa(VIP), true, b""), Some(lbin)).unwrap().1))
            .collect();
        lb.upsert_service(&svc("172.18.255.200:80/tcp", &[all[0], all[2], "10.1.0.8:8080"])).unwrap();
        run_on_cpu(1);
        // Replies first: CPU 1 has not seen these flows, the entries are in CPU 0's copy only.
        for (c, b) in clients.iter().zip(&before).take(20) {
            let reply = tcp(*b, *c, false, b"ok");
            assert_eq!(lb.test_run_rev(&reply).unwrap().1, rewritten(&reply, sa(VIP), true, false, None));
        }
        for (c, b) in clients.iter().zip(&before) {
            let (act, out) = lb.test_run(&tcp(*c, sa(VIP), false, b"x"), Some(lbin)).unwrap();
            assert_eq!((act, destination(&out)), (action::TX, *b), "flow {c} moved on another CPU");
        }
        let s = lb.stats().unwrap();
        assert_eq!((s.counter("new_flow"), s.counter("established"), s.counter("rev_nat")), (200, 200, 20));
        // A reply for a flow neither CPU pinned to that backend is left alone.
        let stranger = tcp(sa(all[0]), sa("172.18.0.2:6000"), false, b"x");
        assert_eq!(lb.test_run_rev(&stranger).unwrap(), (0, stranger));
    });
}

fn reply_is_translated_back_to_the_vip() {
    in_test_netns(|lbin| {
        let mut lb = small_lb();
        lb.upsert_service(&svc("172.18.255.200:80/tcp", &["10.1.0.5:8080"])).unwrap();
        let client = sa("172.18.0.1:40000");
        lb.test_run(&tcp(client, sa(VIP), true, b""), Some(lbin)).unwrap();
        let reply = tcp(sa("10.1.0.5:8080"), client, false, b"HTTP/1.1 200 OK");
        let (act, out) = lb.test_run_rev(&reply).unwrap();
        assert_eq!(act, 0, "TC_ACT_OK");
        assert_eq!(out, rewritten(&reply, sa(VIP), true, false, None));
        // A packet from the backend to someone it never served is left alone.
        let other = tcp(sa("10.1.0.5:8080"), sa("172.18.0.9:1234"), false, b"x");
        assert_eq!(lb.test_run_rev(&other).unwrap(), (0, other));
        assert_eq!(lb.stats().unwrap().counter("rev_nat"), 1);
    });
}

fn unhandled_traffic_passes_unchanged() {
    in_test_netns(|lbin| {
        let mut lb = small_lb();
        lb.upsert_service(&svc("172.18.255.200:80/tcp", &["10.1.0.5:8080"])).unwrap();
        let syn = tcp(sa("172.18.0.1:40000"), sa(VIP), true, b"");
        let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("non-VIP", tcp(sa("172.18.0.1:40000"), sa("172.18.255.9:80"), true, b""), "pass_not_vip"),
            ("VIP, other port", tcp(sa("172.18.0.1:40000"), sa("172.18.255.200:81"), true, b""), "pass_not_vip"),
            // BPF_PROG_TEST_RUN refuses frames under 14 bytes: the shortest is a bare Ethernet header.
            ("Ethernet header only", syn[..14].to_vec(), "pass_malformed"),
            ("truncated IPv4", syn[..14 + 12].to_vec(), "pass_malformed"),
            ("truncated TCP", syn[..14 + 20 + 10].to_vec(), "pass_malformed"),
        ];
        let mut icmp = syn.clone();
        icmp[23] = 1;
        cases.push(("ICMP to the VIP", icmp, "pass_not_vip"));
        let mut frag = syn.clone();
        frag[20] |= 0x20; // MF
        cases.push(("first fragment", frag, "pass_fragment"));
        let mut frag = syn.clone();
        frag[21] = 8; // offset 64
        cases.push(("later fragment", frag, "pass_fragment"));
        let mut ttl = syn.clone();
        ttl[22] = 1;
        cases.push(("TTL 1", ttl, "pass_ttl"));
        let mut long = syn.clone();
        long[16..18].copy_from_slice(&1000u16.to_be_bytes());
        cases.push(("IP length beyond the frame", long, "pass_malformed"));
        // IPv4 with 4 bytes of options (IHL 6), otherwise a SYN to the VIP.
        let mut opts = syn[..34].to_vec();
        opts[14] = 0x46;
        opts[16..18].copy_from_slice(&(20u16 + 4 + 20).to_be_bytes());
        opts.extend([1, 1, 1, 0]);
        opts.extend(&syn[34..]);
        cases.push(("IP options", opts, "pass_ip_options"));
        let mut v6 = Vec::new();
        etherparse::PacketBuilder::ethernet2(CLIENT_MAC, DEV_MAC)
            .ipv6([0xfd; 16], [0xfe; 16], 64)
            .tcp(1, 80, 0, 100)
            .write(&mut v6, b"")
            .unwrap();
        cases.push(("IPv6", v6, "pass_not_ipv4"));
        let mut bad_version = syn.clone();
        bad_version[14] = 0x65;
        cases.push(("IP version 6 in an IPv4 frame", bad_version, "pass_malformed"));

        for (name, frame, counter) in &cases {
            let before = lb.stats().unwrap().counter(counter);
            let (act, out) = lb.test_run(frame, Some(lbin)).unwrap();
            assert_eq!(act, action::PASS, "{name}");
            assert_eq!(&out, frame, "{name}: bytes changed");
            assert_eq!(lb.stats().unwrap().counter(counter), before + 1, "{name}: {counter}");
        }
        assert_eq!(lb.stats().unwrap().counter("new_flow"), 0);
    });
}

fn instances_sharing_pins_share_services_and_translate_each_others_replies() {
    let fs = Bpffs::mount();
    let opts = |node: &str| fs.node_options(node);
    in_test_netns(|lbin| {
        let mut a = LoadBalancer::load(&opts("node-a")).unwrap();
        let b = LoadBalancer::load(&opts("node-b")).unwrap();
        a.upsert_service(&svc("172.18.255.200:80/tcp", &["10.1.0.5:8080"])).unwrap();
        assert_eq!(b.services().unwrap(), a.services().unwrap());
        // Node A balances the request, the reply leaves through node B.
        let client = sa("172.18.0.1:40000");
        assert_eq!(a.test_run(&tcp(client, sa(VIP), true, b""), Some(lbin)).unwrap().0, action::TX);
        let reply = tcp(sa("10.1.0.5:8080"), client, false, b"ok");
        assert_eq!(b.test_run_rev(&reply).unwrap(), (0, rewritten(&reply, sa(VIP), true, false, None)));
        // Announcements and counters stay per node.
        a.announce_vip(Ipv4Addr::new(172, 18, 255, 200)).unwrap();
        assert!(b.announced().unwrap().is_empty());
        assert_eq!((a.stats().unwrap().counter("new_flow"), b.stats().unwrap().counter("new_flow")), (1, 0));
        // Another process sees all of node B's maps in its own directory.
        let reopened = LoadBalancer::open(&fs.0.path().join("node-b")).unwrap();
        assert_eq!(reopened.services().unwrap().len(), 1);
        drop((a, b, reopened));
    });
    fs.clean(&["node-a", "node-b"]);
    let left: Vec<_> = std::fs::read_dir(fs.0.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".debug")) // bpffs's own iterators
        .collect();
    assert!(left.is_empty(), "pins left behind: {left:?}");
}
