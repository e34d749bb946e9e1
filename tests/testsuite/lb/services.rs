//! Service management against the real maps: ids, backend sharing and draining, limits.

use crate::lb::support::*;
use tutor::lb::{Frontend, LbError, Service, ServiceKind};

crate::tests![services_read_back_from_the_maps(Bpf), limits_give_clear_errors(Bpf)];

fn svc(frontend: &str, backends: &[&str]) -> Service {
    Service {
        frontend: frontend.parse().unwrap(),
        backends: backends.iter().map(|b| sa(b)).collect(),
        kind: ServiceKind::ClusterIp,
    }
}

fn services_read_back_from_the_maps() {
    let mut lb = small_lb();
    let a = lb.upsert_service(&svc("10.96.0.10:53/udp", &["10.1.0.1:53", "10.1.0.2:53"])).unwrap();
    let b = lb.upsert_service(&svc("10.96.0.1:443/tcp", &["10.1.0.1:6443"])).unwrap();
    assert_ne!(a.id, b.id);
    let all = lb.services().unwrap();
    assert_eq!(
        all.iter().map(|s| s.frontend.to_string()).collect::<Vec<_>>(),
        ["10.96.0.1:443/TCP", "10.96.0.10:53/UDP"]
    );
    assert_eq!(all[1].kind, ServiceKind::ClusterIp);
    let slots: u32 = all[1].backends.iter().map(|b| b.slots).sum();
    assert_eq!(slots, lb.maglev_size(), "every slot holds a backend");

    // Replacing the backend set keeps the service id and the ids of backends that stay.
    let kept = a.backends.iter().find(|x| x.addr == sa("10.1.0.2:53")).unwrap().id;
    let a2 = lb.upsert_service(&svc("10.96.0.10:53/udp", &["10.1.0.2:53", "10.1.0.3:53"])).unwrap();
    assert_eq!(a2.id, a.id);
    assert_eq!(a2.backends.iter().find(|x| x.addr == sa("10.1.0.2:53")).unwrap().id, kept);
    // A backend that left (draining) gets its old id back when it returns.
    let gone = a.backends.iter().find(|x| x.addr == sa("10.1.0.1:53")).unwrap().id;
    let a3 = lb.upsert_service(&svc("10.96.0.10:53/udp", &["10.1.0.1:53"])).unwrap();
    assert_eq!(a3.backends[0].id, gone);

    assert!(lb.remove_service(&"10.96.0.10:53/udp".parse::<Frontend>().unwrap()).unwrap());
    assert!(!lb.remove_service(&"10.96.0.10:53/udp".parse::<Frontend>().unwrap()).unwrap());
    assert_eq!(lb.services().unwrap().len(), 1);
    // The freed service id is reused.
    assert_eq!(lb.upsert_service(&svc("10.96.0.11:53/udp", &[])).unwrap().id, a.id);
}

fn limits_give_clear_errors() {
    let mut lb = small_lb(); // 4 services, Maglev size 251
    for i in 0..4 {
        lb.upsert_service(&svc(&format!("10.96.0.{i}:80/tcp"), &["10.1.0.1:80"])).unwrap();
    }
    match lb.upsert_service(&svc("10.96.0.9:80/tcp", &[])) {
        Err(LbError::Full(msg)) => assert!(msg.contains("max-services"), "{msg}"),
        other => panic!("expected Full, got {other:?}"),
    }
    let many: Vec<String> = (0..251).map(|i| format!("10.2.{}.{}:80", i / 200, i % 200 + 1)).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let err = lb.upsert_service(&svc("10.96.0.0:80/tcp", &refs)).unwrap_err().to_string();
    assert!(err.contains("do not fit a Maglev table of 251"), "{err}");
}
