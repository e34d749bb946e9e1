//! End to end in network namespaces: client — LB namespace (XDP on its client-facing veth,
//! reply translation on the same device's egress) — backend namespaces with a tiny TCP server.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tutor::lb::topology::{LB_IFACE, Topology, VIP, request};
use tutor::lb::{AttachMode, LoadBalancer, LoadOptions, Service};

crate::tests![connections_spread_over_backends_and_survive_adding_one(Bpf, Alone)];

fn service(backends: &[usize]) -> Service {
    Service {
        frontend: format!("{VIP}/tcp").parse().unwrap(),
        backends: backends.iter().map(|&i| Topology::backend(i)).collect(),
        kind: Default::default(),
    }
}

/// `n` sequential requests from the client namespace; panics on any failure.
fn requests(topo: &Topology, n: usize) -> BTreeMap<usize, usize> {
    topo.in_client(|| {
        let mut by_backend = BTreeMap::new();
        for k in 0..n {
            let b = request(VIP).unwrap_or_else(|e| panic!("request {k} failed: {e}"));
            *by_backend.entry(b).or_default() += 1;
        }
        by_backend
    })
    .unwrap()
}

fn assert_shares(counts: &BTreeMap<usize, usize>, backends: &[usize]) {
    let total: usize = counts.values().sum();
    assert_eq!(counts.keys().copied().collect::<Vec<_>>(), backends, "{counts:?}");
    let ideal = total as f64 / backends.len() as f64;
    for (b, &n) in counts {
        assert!((n as f64 - ideal).abs() < ideal * 0.35, "backend {b} got {n} of {total}: {counts:?}");
    }
}

fn connections_spread_over_backends_and_survive_adding_one() {
    let topo = Topology::create(&format!("lbtest-e2e-{}", std::process::id()), 3).expect("namespaces");
    let mut lb =
        LoadBalancer::load(&LoadOptions { maglev_size: 65537, max_services: 2, ..Default::default() }).unwrap();
    lb.upsert_service(&service(&[1, 2])).unwrap();
    let attached = lb.attach_in_netns(&topo.ns_path("lb"), LB_IFACE, AttachMode::Native).unwrap();
    assert_eq!(attached.mode, AttachMode::Native, "{:?}", attached.fallback);

    assert_shares(&requests(&topo, 400), &[1, 2]);

    // Clients keep connecting while backend 3 joins: not one connection may fail.
    let stop = AtomicBool::new(false);
    let during = std::thread::scope(|s| {
        let load = s.spawn(|| {
            topo.in_client(|| {
                let mut results = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    results.push(request(VIP).map_err(|e| e.to_string()));
                }
                results
            })
            .unwrap()
        });
        std::thread::sleep(Duration::from_millis(300));
        lb.upsert_service(&service(&[1, 2, 3])).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::SeqCst);
        load.join().unwrap()
    });
    let failed: Vec<&String> = during.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(during.len() > 50, "only {} requests during the change", during.len());
    assert!(
        failed.is_empty(),
        "{} of {} connections failed: {:?}",
        failed.len(),
        during.len(),
        &failed[..failed.len().min(5)]
    );

    assert_shares(&requests(&topo, 600), &[1, 2, 3]);

    let stats = lb.stats().unwrap();
    assert!(stats.counter("rev_nat") > 0, "replies were translated back to the VIP");
    assert_eq!(stats.counter("drop"), 0);
    assert!(stats.counter("redirect") > 0, "{:?}", stats.global);
    let served: u64 = topo.servers.iter().map(|s| s.served.load(Ordering::Relaxed)).sum();
    assert_eq!(served as usize, 400 + during.len() + 600);
    drop(lb);
    // Detached: the VIP is unreachable again.
    assert!(topo.in_client(|| request(VIP)).unwrap().is_err());
}
