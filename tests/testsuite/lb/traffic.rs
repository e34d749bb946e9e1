//! The packet-rate benchmark's generator and counter (ebpf/traffic.bpf.c) under
//! BPF_PROG_TEST_RUN, and a short run of every path in namespaces: packets reach every backend
//! in the expected shares and none is counted twice.

use std::net::{Ipv4Addr, SocketAddrV4};

use tutor::lb::Proto;
use tutor::lb::action::{DROP, PASS, TX};
use tutor::lb::traffic::{CLIENT, FrameSpec, GEN_MAC, NODE_MAC, PathKind, Traffic, TrafficOptions, TrafficReport, run};

crate::tests![
    the_generator_writes_packet_n_whatever_the_page_holds(Bpf),
    the_counter_counts_watched_backends_once_and_passes_the_rest(Bpf),
    bad_counter_slots_are_refused(Bpf),
    every_path_delivers_in_the_expected_shares_and_nothing_twice(Lab),
    bad_options_are_refused_before_anything_is_built(Bpf)
];

const VIP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 168, 250, 1), 80);

fn spec(proto: Proto) -> FrameSpec {
    FrameSpec { src_mac: GEN_MAC, dst_mac: NODE_MAC, src: CLIENT, dst: VIP, proto }
}

/// What a datapath may leave in a recycled page: the frame after DNAT, TTL and MAC rewrites.
fn rewritten(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[..12].copy_from_slice(&[0xaa; 12]);
    f[22] -= 1; // TTL
    f[30..34].copy_from_slice(&[10, 244, 1, 11]);
    f[24] ^= 0x5a; // checksums now wrong
    f[36..38].copy_from_slice(&8080u16.to_be_bytes());
    f
}

fn the_generator_writes_packet_n_whatever_the_page_holds() {
    for proto in [Proto::Udp, Proto::Tcp] {
        let mut t = Traffic::load(0).expect("load");
        let s = spec(proto);
        let flows = 5;
        t.configure(&s, flows).unwrap();
        let mut page = s.frame(flows, 0);
        for n in 0..12u64 {
            let (action, out) = t.generate_on(&page).unwrap();
            assert_eq!(action, TX, "{proto} packet {n}");
            assert_eq!(out, s.frame(flows, n), "{proto} packet {n}");
            page = rewritten(&out);
        }
        assert_eq!(t.sent().unwrap(), 12);
        // configure restarts the sequence.
        t.configure(&s, flows).unwrap();
        assert_eq!(t.generate_on(&page).unwrap().1, s.frame(flows, 0));
    }
}

fn the_counter_counts_watched_backends_once_and_passes_the_rest() {
    let mut t = Traffic::load(1 << 16).expect("load");
    let b1 = SocketAddrV4::new(Ipv4Addr::new(10, 244, 1, 11), 80);
    let b2 = SocketAddrV4::new(Ipv4Addr::new(10, 244, 2, 12), 8080);
    t.watch(1, b1).unwrap();
    t.watch(2, b2).unwrap();
    let to = |dst: SocketAddrV4, proto: Proto, n: u64| FrameSpec { dst, ..spec(proto) }.frame(100, n);
    for n in 0..10 {
        assert_eq!(t.count_one(&to(b1, Proto::Udp, n)).unwrap(), DROP);
    }
    for n in 10..13 {
        assert_eq!(t.count_one(&to(b2, Proto::Tcp, n)).unwrap(), DROP);
    }
    // The same sequence number again: counted, and as a duplicate.
    assert_eq!(t.count_one(&to(b2, Proto::Tcp, 11)).unwrap(), DROP);
    // A known address on another port: slot 0.
    assert_eq!(t.count_one(&to(SocketAddrV4::new(*b1.ip(), 81), Proto::Udp, 20)).unwrap(), DROP);
    // Not for a backend, and not IPv4: passed, not counted.
    assert_eq!(t.count_one(&to(VIP, Proto::Udp, 21)).unwrap(), PASS);
    let mut arp = to(b1, Proto::Udp, 22);
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(t.count_one(&arp).unwrap(), PASS);

    let c = t.counts().unwrap();
    assert_eq!((c[1].packets, c[1].duplicates, c[1].bytes), (10, 0, 600));
    assert_eq!((c[2].packets, c[2].duplicates), (4, 1));
    assert_eq!((c[0].packets, c[0].duplicates), (1, 0));
    assert!(c[3..].iter().all(|c| c.packets == 0));
    assert_eq!(t.cross_cpu_duplicates().unwrap(), 0);
}

fn bad_counter_slots_are_refused() {
    let mut t = Traffic::load(0).expect("load");
    assert!(t.watch(0, VIP).is_err());
    assert!(t.watch(64, VIP).is_err());
    assert!(t.configure(&spec(Proto::Udp), 0).is_err());
}

fn check_run(report: &TrafficReport) {
    let text = report.to_string();
    assert_eq!(report.cross_cpu_duplicates, 0, "{text}");
    for p in &report.paths {
        let what = p.path.label();
        assert!(p.sent() > 0);
        for t in &p.turns {
            assert_eq!(t.duplicates, 0, "{what}: a packet was counted twice\n{text}");
            assert_eq!(t.stray, 0, "{what}: packets on a wrong port\n{text}");
            assert!(t.delivered_total() + t.lost() == t.sent, "{what}: more delivered than sent\n{text}");
        }
        // Packets can be lost (a full veth ring while the machine is busy), not many.
        assert!(p.lost() * 20 <= p.sent(), "{what}: {} of {} lost\n{text}", p.lost(), p.sent());
        if !p.path.balances() {
            continue;
        }
        let shares = p.shares();
        assert_eq!(shares.len(), report.options.backends.len());
        for ((b, got), want) in report.options.backends.iter().zip(&shares).zip(&p.expected_shares) {
            assert!(*got > 0.0, "{what}: nothing reached {b}\n{text}");
            assert!((got - want).abs() <= want * 0.10, "{what}: {b} got {got:.3}, expected {want:.3} ± 10 %\n{text}");
        }
    }
    assert!(report.ratio_native_nft() > 0.0);
}

fn every_path_delivers_in_the_expected_shares_and_nothing_twice() {
    for proto in [Proto::Udp, Proto::Tcp] {
        let opts = TrafficOptions {
            vip: VIP,
            backends: vec![
                SocketAddrV4::new(Ipv4Addr::new(10, 244, 1, 11), 80),
                SocketAddrV4::new(Ipv4Addr::new(10, 244, 1, 12), 80),
                SocketAddrV4::new(Ipv4Addr::new(10, 244, 2, 13), 8080),
            ],
            proto,
            packets: 60_000,
            rounds: 1,
            flows: 4096,
            dedupe: true,
        };
        let report = run(&opts).unwrap_or_else(|e| panic!("{proto}: {e}"));
        check_run(&report);
        // Maglev gives each of three backends about a third of its table.
        let native = report.path(PathKind::XdpNative);
        assert!(native.expected_shares.iter().all(|s| (s - 1.0 / 3.0).abs() < 0.02), "{:?}", native.expected_shares);
    }
    let left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let mine = format!("lbpps-{}-", std::process::id());
    assert!(!left.iter().any(|n| n.starts_with(&mine)), "namespaces left behind: {left:?}");
}

fn bad_options_are_refused_before_anything_is_built() {
    let base = TrafficOptions::default();
    let cases = [
        TrafficOptions { backends: vec![], ..base.clone() },
        TrafficOptions { backends: vec![base.backends[0], base.backends[0]], ..base.clone() },
        TrafficOptions { vip: base.backends[0], ..base.clone() },
        TrafficOptions { packets: 0, ..base.clone() },
        TrafficOptions { flows: 0, ..base.clone() },
    ];
    for opts in cases {
        assert!(run(&opts).is_err(), "{opts:?}");
    }
}
