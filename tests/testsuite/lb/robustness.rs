//! 1,000,000 random and mutated frames (seeded, reproducible) through BPF_PROG_TEST_RUN: the
//! program only ever answers PASS / TX / REDIRECT / DROP-by-design, leaves what it passes
//! untouched (unless it translated it), keeps IPv4 header checksums valid, and its counters
//! add up to exactly what was observed.

use std::net::Ipv4Addr;

use crate::lb::support::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tutor::lb::{Service, action};

crate::tests![a_million_random_and_mutated_frames(Bpf)];

const FRAMES: u32 = 1_000_000;
const SEED: u64 = 0x7475_746f_725f_6c62;

fn ipv4_header_ok(frame: &[u8]) -> bool {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] || frame[14] != 0x45 {
        return false;
    }
    let mut sum = 0u32;
    for pair in frame[14..34].chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

fn mutate(rng: &mut StdRng, templates: &[Vec<u8>]) -> Vec<u8> {
    if rng.random_ratio(1, 10) {
        let len = rng.random_range(14..200);
        let mut f: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if rng.random_bool(0.5) {
            f[12..14].copy_from_slice(&[0x08, 0x00]);
        }
        return f;
    }
    let mut f = templates[rng.random_range(0..templates.len())].clone();
    // Vary the flow so the connection table sees many of them.
    if f.len() >= 38 && f[12..14] == [0x08, 0x00] && rng.random_bool(0.7) {
        f[26..30].copy_from_slice(&[172, 18, rng.random(), rng.random()]);
        f[34..36].copy_from_slice(&rng.random::<u16>().to_be_bytes());
    }
    for _ in 0..rng.random_range(0..4) {
        match rng.random_range(0..6) {
            0 => {
                let i = rng.random_range(0..f.len());
                f[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let i = rng.random_range(0..f.len());
                f[i] = rng.random();
            }
            2 => f.truncate(rng.random_range(14..=f.len())),
            3 => f.extend((0..rng.random_range(1..40)).map(|_| rng.random::<u8>())),
            4 if f.len() > 14 => f[14] = 0x40 | rng.random_range(0..16), // IHL
            5 if f.len() > 21 => f[20] = rng.random::<u8>() & 0x3f,      // fragment bits
            _ => {}
        }
    }
    f
}

fn a_million_random_and_mutated_frames() {
    in_test_netns(|lbin| {
        let mut lb = small_lb();
        let svc = |f: &str, b: &[&str]| Service {
            frontend: f.parse().unwrap(),
            backends: b.iter().map(|s| sa(s)).collect(),
            kind: Default::default(),
        };
        lb.upsert_service(&svc("172.18.255.200:80/tcp", &["10.1.0.5:8080", "10.1.0.6:8080", "10.1.0.7:8080"])).unwrap();
        lb.upsert_service(&svc("172.18.255.200:53/udp", &["10.1.0.8:53"])).unwrap();
        lb.upsert_service(&svc("172.18.255.201:80/tcp", &[])).unwrap(); // drops by design
        lb.upsert_service(&svc("172.18.255.202:80/tcp", &["172.31.0.1:80"])).unwrap(); // unroutable
        lb.set_device(lbin, DEV_MAC).unwrap();
        lb.announce_vip(Ipv4Addr::new(172, 18, 255, 200)).unwrap();

        let client = sa("172.18.0.1:40000");
        let templates = vec![
            tcp(client, sa("172.18.255.200:80"), true, b""),
            tcp(client, sa("172.18.255.200:80"), false, b"GET / HTTP/1.1\r\n\r\n"),
            udp(client, sa("172.18.255.200:53"), b"query"),
            tcp(client, sa("172.18.255.201:80"), true, b""),
            tcp(client, sa("172.18.255.202:80"), true, b""),
            tcp(client, sa("172.18.0.9:22"), true, b""),
            arp_request(Ipv4Addr::new(172, 18, 0, 1), Ipv4Addr::new(172, 18, 255, 200)),
            arp_request(Ipv4Addr::new(172, 18, 0, 1), Ipv4Addr::new(172, 18, 0, 3)),
        ];

        let mut rng = StdRng::seed_from_u64(SEED);
        let mut seen = [0u64; 5];
        let mut changed_pass = 0u64;
        for n in 0..FRAMES {
            let frame = mutate(&mut rng, &templates);
            let ingress = if n % 2 == 0 { Some(lbin) } else { None };
            let (act, out) = lb.test_run(&frame, ingress).unwrap_or_else(|e| panic!("frame {n} {frame:02x?}: {e}"));
            assert!(
                matches!(act, action::PASS | action::TX | action::REDIRECT | action::DROP),
                "frame {n}: action {act} for {frame:02x?}"
            );
            seen[act as usize] += 1;
            match act {
                action::PASS if out != frame => {
                    changed_pass += 1;
                    assert!(ipv4_header_ok(&out) || !ipv4_header_ok(&frame), "frame {n}: broke the IP checksum");
                }
                action::TX | action::REDIRECT if frame[12..14] == [0x08, 0x00] => {
                    assert!(ipv4_header_ok(&out) || !ipv4_header_ok(&frame), "frame {n}: broke the IP checksum");
                    assert_eq!(out.len(), frame.len(), "frame {n}: length changed");
                }
                _ => {}
            }
        }

        let s = lb.stats().unwrap();
        let c = |name| s.counter(name);
        assert_eq!(c("packets"), u64::from(FRAMES));
        assert_eq!(c("pass") + c("tx") + c("redirect") + c("drop"), c("packets"));
        assert_eq!([c("drop"), c("pass"), c("tx"), c("redirect")], [seen[1], seen[2], seen[3], seen[4]]);
        let reasons = [
            "pass_not_ipv4",
            "pass_malformed",
            "pass_fragment",
            "pass_ip_options",
            "pass_not_vip",
            "pass_ttl",
            "pass_nat",
        ];
        assert_eq!(reasons.iter().map(|r| c(r)).sum::<u64>(), c("pass"));
        assert_eq!(c("drop"), c("drop_no_backend"));
        assert_eq!(changed_pass, c("pass_nat"), "only translated packets pass changed");
        let forwarded = c("tx") - c("arp_reply") + c("redirect") + c("pass_nat");
        assert_eq!(c("new_flow") + c("established"), forwarded);
        let by_service: u64 = s.services.iter().map(|(_, k)| k.packets).sum();
        let by_backend: u64 = s.backends.iter().map(|(_, k)| k.packets).sum();
        assert_eq!((by_service, by_backend), (forwarded, forwarded));
        for (name, min) in [
            ("arp_reply", 1000),
            ("new_flow", 1000),
            ("established", 100),
            ("drop", 100),
            ("pass_nat", 100),
            ("redirect", 1000),
            ("pass_malformed", 1000),
            ("pass_fragment", 1000),
            ("pass_ip_options", 1000),
        ] {
            assert!(c(name) >= min, "the mix exercised {name} only {} times", c(name));
        }
        eprintln!("{:?}", s.global);
    });
}
