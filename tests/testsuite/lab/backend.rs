//! The lab through the runner's `Backend` trait: up, exec on every kind of target, a
//! background block, facts, and teardown — plus teardown when the owning process dies.

use std::time::Duration;

use tutor::backend::{self, BackendKind, ExecRequest, Target, UpContext};

crate::tests![backend_runs_blocks_on_host_nodes_and_pods(Lab, K8s), lab_goes_down_when_its_owner_exits(Lab, K8s)];

fn req<'a>(target: &'a Target, script: &'a str) -> ExecRequest<'a> {
    ExecRequest { target, script, timeout: Duration::from_secs(30), env: &[] }
}

async fn backend_runs_blocks_on_host_nodes_and_pods() {
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("TUTOR_BIN", crate::lab::support::TUTOR) };
    let work = tempfile::tempdir().unwrap();
    for f in ["kind-config.yaml", "cilium-medium.yaml", "http-sw-app.yaml"] {
        std::fs::copy(crate::lab::support::fixtures().join(f), work.path().join(f)).unwrap();
    }
    let mut b = backend::create(BackendKind::Lab, None).unwrap();
    let ctx = UpContext {
        workdir: work.path().to_path_buf(),
        run_name: format!("be{}", std::process::id()),
        keep: false,
        kubernetes: None,
        offline: Vec::new(),
        images: vec![],
    };
    b.up(&ctx).await.unwrap();
    let host = Target::Host;
    let setup = "kind create cluster --config kind-config.yaml 2>/dev/null && \
        helm repo add cilium https://helm.cilium.io/ >/dev/null && \
        helm install -n kube-system cilium cilium/cilium -f cilium-medium.yaml >/dev/null && \
        kubectl apply -f http-sw-app.yaml >/dev/null && \
        kubectl rollout status deployment/deathstar --timeout=300s >/dev/null && \
        kubectl wait --for=condition=Ready pods --all --timeout=300s >/dev/null && pwd";
    let o = b.exec(ExecRequest { timeout: Duration::from_secs(600), ..req(&host, setup) }).await.unwrap();
    assert_eq!(o.exit, Some(0), "{}", o.output);
    assert!(
        o.output.ends_with(&format!("{}\n", work.path().display())),
        "host blocks start in the work directory: {}",
        o.output
    );
    let facts = b.facts();
    assert_eq!(facts["nodes"]["kind-worker"]["ip"], "172.18.0.3");
    // The podCIDR is the one the node IPAM controller gave the node, as the API says (or empty
    // when it had not assigned it yet as the cluster was created), never the plan's guess.
    let o = b.exec(req(&host, "kubectl get node kind-worker2 -o jsonpath='{.spec.podCIDR}'")).await.unwrap();
    assert!(o.output.starts_with("10.244."), "{}", o.output);
    let fact = facts["nodes"]["kind-worker2"]["podCIDR"].as_str().unwrap();
    assert!(fact == o.output || fact.is_empty(), "fact {fact}, API {}", o.output);
    let node = Target::Node("kind-worker".into());
    let o = b.exec(req(&node, "hostname; ip -br link show cilium_host | cut -d' ' -f1")).await.unwrap();
    assert_eq!(o.output, "kind-worker\ncilium_host@cilium_net\n");
    let pod = Target::Pod { namespace: "default".into(), name: "tiefighter".into() };
    let o = b
        // The agents program the new Service a moment after its pods are Ready: try a few times.
        .exec(req(
            &pod,
            "for i in $(seq 8); do curl -s --connect-timeout 2 -XPOST deathstar.default.svc.cluster.local/v1/request-landing && break; sleep 1; done; exit 3",
        ))
        .await
        .unwrap();
    assert_eq!((o.output.as_str(), o.exit), ("Ship landed\n", Some(3)));
    let missing = Target::Pod { namespace: "default".into(), name: "nope".into() };
    // A target missing at run time is the environment's state (a later step may create it):
    // the block fails (exit 1), it is not an input error.
    let e = b.exec(req(&missing, "true")).await.unwrap_err();
    assert!(matches!(e, tutor::backend::BackendError::TargetMissing(_)) && !e.is_usage(), "{e}");
    let timeout = ExecRequest { target: &node, script: "sleep 30", timeout: Duration::from_millis(300), env: &[] };
    assert!(b.exec(timeout).await.unwrap().timed_out);
    let bg = b.spawn(req(&pod, "echo serving; exec sleep 1000")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bg.stop().await.output, "serving\n");
    assert!(b.state_path(&node).starts_with(&work.path().display().to_string()));
    b.down().await.unwrap();
    assert!(!std::path::Path::new(&format!("/run/tutor/labs/{}", ctx.run_name)).exists());
    b.down().await.unwrap();
}

fn lab_goes_down_when_its_owner_exits() {
    // SAFETY: as above.
    unsafe { std::env::set_var("TUTOR_BIN", crate::lab::support::TUTOR) };
    let mut owner = std::process::Command::new("sleep").arg("600").spawn().unwrap();
    let name = format!("own{}", std::process::id());
    let info = tutor::backend::lab::start(&name, Some(owner.id() as i32), None, None).unwrap();
    assert!(info.alive());
    owner.kill().unwrap();
    owner.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while info.alive() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!info.alive(), "the supervisor outlived its owner");
    assert!(!std::path::Path::new(&format!("/run/tutor/labs/{name}")).exists());
}
