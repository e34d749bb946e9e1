//! The node agent's container runtime on the real kernel, without an API server: sandboxes
//! (network namespace, veth, address, hosts/resolv.conf/hostname), container processes, logs,
//! restarts and back-off, image pull errors, termination.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use tutor::backend::lab::agent::podfiles::DnsSettings;
use tutor::backend::lab::agent::runtime::{Config, Runtime, SyncInputs, SyncResult};
use tutor::backend::lab::agent::status::State;
use tutor::backend::lab::sandbox::{Mounts, NsThread};
use tutor::backend::lab::topology::Cidr;

crate::tests![
    busybox_pod_has_its_own_network_files_and_logs(Lab),
    nginx_serves_its_welcome_page_and_two_pods_do_not_clash(Lab),
    crash_loop_back_off_and_restart_count(Lab),
    restart_policy_never_keeps_the_exit(Lab),
    unknown_image_is_err_image_pull_then_back_off(Lab),
    host_network_pod_shares_the_node(Lab),
    graceful_termination_sends_sigterm_first(Lab),
    pods_write_into_their_own_root_and_see_their_volumes(Lab)
];

struct Node {
    ns: NsThread,
    rt: Arc<Runtime>,
    _state: tempfile::TempDir,
}

impl Node {
    fn new() -> Node {
        let ns = NsThread::new("agent-test-node", Some("test-worker"), Mounts::default()).unwrap();
        ns.ip(&["link set lo up".into()]).unwrap();
        ns.sysctl("net.ipv4.ip_forward", "1").unwrap();
        // Outside /tmp and /run: pods get their own.
        let state = tempfile::Builder::new().prefix("tutor-agent-test").tempdir_in("/var/tmp").unwrap();
        let cfg = Config {
            node: "test-worker".into(),
            node_ip: Ipv4Addr::new(172, 18, 0, 3),
            state_dir: state.path().join("node"),
            image_dir: state.path().join("images"),
            path: std::env::var("PATH").unwrap(),
            dns: DnsSettings {
                cluster_dns: vec![Ipv4Addr::new(10, 96, 0, 10)],
                cluster_domain: "cluster.local".into(),
                node_resolv: "nameserver 172.18.0.1\n".into(),
            },
            cni_conf_dir: state.path().join("cni"),
            tutor: std::path::PathBuf::from(super::support::TUTOR),
        };
        let rt = Arc::new(Runtime::new(cfg, || {}));
        rt.ipam.lock().unwrap().set_cidr(Cidr::parse("10.244.1.0/24").unwrap());
        Node { ns, rt, _state: state }
    }

    fn sync(&self, pod: &Pod) -> SyncResult {
        self.sync_with(pod, SyncInputs { network_ready: true, ..Default::default() })
    }

    fn sync_with(&self, pod: &Pod, inputs: SyncInputs) -> SyncResult {
        let rt = self.rt.clone();
        let pod = pod.clone();
        self.ns.run(move || rt.sync(&pod, &inputs)).unwrap()
    }

    /// Sync until `done` holds for the result (or fail after a few seconds).
    fn sync_until(&self, pod: &Pod, what: &str, done: impl Fn(&SyncResult) -> bool) -> SyncResult {
        self.sync_with_until(pod, &SyncInputs { network_ready: true, ..Default::default() }, what, done)
    }

    fn sync_with_until(
        &self,
        pod: &Pod,
        inputs: &SyncInputs,
        what: &str,
        done: impl Fn(&SyncResult) -> bool,
    ) -> SyncResult {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.sync_with(pod, inputs.clone());
            if done(&r) {
                return r;
            }
            assert!(Instant::now() < deadline, "{what}: last result {:?} {:?}", r.records, r.events);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A command in the node's network namespace.
    fn sh(&self, script: &str) -> String {
        let script = script.to_string();
        self.ns
            .run(move || std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
            .unwrap()
    }

    /// `kill_pod` from the node's namespaces, as the agent (which runs inside its node) calls it.
    fn kill(&self, uid: &str, grace: Duration) -> bool {
        let rt = self.rt.clone();
        let uid = uid.to_string();
        self.ns.run(move || rt.kill_pod(&uid, grace)).unwrap()
    }

    fn kill_all(&self) {
        let rt = self.rt.clone();
        self.ns.run(move || rt.kill_all()).unwrap()
    }

    fn log(&self, pod: &str, container: &str) -> String {
        let h = self.rt.container("default", pod, container).expect("container known");
        std::fs::read_to_string(h.log.expect("has a log")).unwrap()
    }
}

fn pod(yaml: &str) -> Pod {
    serde_yaml::from_str(yaml).unwrap()
}

fn running(r: &SyncResult) -> bool {
    !r.records.is_empty() && r.records.iter().all(|c| c.is_running())
}

fn busybox_pod_has_its_own_network_files_and_logs() {
    let node = Node::new();
    let p = pod(
        "metadata: {name: bb, namespace: default, uid: u-bb}\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n    command: [sh, -c, 'echo hello; hostname; cat /etc/resolv.conf; ip -4 -o addr show eth0; grep bb /etc/hosts; sleep 30']\n",
    );
    let r = node.sync_until(&p, "running", running);
    let ip = r.sandbox.pod_ip.expect("pod IP");
    assert_eq!(ip, Ipv4Addr::new(10, 244, 1, 2));
    // Its output lands in the log, in CRI format, from inside the pod's namespaces.
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let l = node.log("bb", "c");
        if l.contains("10.244.1.2\tbb") || Instant::now() > deadline {
            break l;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(log.contains(" stdout F hello\n"), "{log}");
    assert!(log.contains(" stdout F bb\n"), "{log}");
    assert!(log.contains("search default.svc.cluster.local svc.cluster.local cluster.local"), "{log}");
    assert!(log.contains("inet 10.244.1.2/24"), "{log}");
    // The agent's socket (what the kubelet API server asks): logs, and where the container runs.
    let sock = node._state.path().join("agent.sock");
    tutor::backend::lab::agent::api::serve(&sock, node.rt.clone()).unwrap();
    let ask = |req: &str| {
        use std::io::{Read, Write};
        let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        c.write_all(format!("{req}\n").as_bytes()).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    };
    let logs = ask(r#"{"op":"logs","namespace":"default","pod":"bb","container":"c","tail":1,"timestamps":false}"#);
    assert!(logs.starts_with("{}\n") && logs.lines().count() == 2, "{logs}");
    let logs = ask(r#"{"op":"logs","namespace":"default","pod":"bb","container":"c"}"#);
    assert!(logs.contains("\nhello\nbb\n"), "{logs}");
    let where_ = ask(r#"{"op":"container","namespace":"default","pod":"bb","container":"c"}"#);
    assert!(where_.contains(r#""ns_dir":"/proc/"#) && where_.contains("HOSTNAME=bb"), "{where_}");
    let missing = ask(r#"{"op":"logs","namespace":"default","pod":"nope","container":"c"}"#);
    assert!(missing.contains(r#"{"error":"container \"c\" in pod default/nope is not on this node"}"#), "{missing}");
    // The node reaches the pod over the veth.
    let ping = node.sh("busybox ping -c1 -W1 10.244.1.2");
    assert!(ping.contains("1 packets received"), "{ping}");
    assert!(node.kill("u-bb", Duration::from_secs(1)));
    assert!(node.rt.container("default", "bb", "c").is_none());
    // The veth goes with the pod's network namespace (the kernel frees it asynchronously).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let links = node.sh("ip -o link");
        if !links.contains("veth") {
            break;
        }
        assert!(Instant::now() < deadline, "the pod's veth is still there: {links}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn nginx_serves_its_welcome_page_and_two_pods_do_not_clash() {
    let node = Node::new();
    let mk = |n: &str| {
        pod(&format!(
            "metadata: {{name: {n}, namespace: default, uid: u-{n}}}\nspec:\n  containers:\n  - name: nginx\n    image: nginx\n    readinessProbe: {{httpGet: {{path: /, port: 80}}, periodSeconds: 1}}\n"
        ))
    };
    let (a, b) = (mk("web-a"), mk("web-b"));
    for p in [&a, &b] {
        node.sync_until(p, "nginx ready", |r| running(r) && r.records[0].ready);
    }
    for ip in ["10.244.1.2", "10.244.1.3"] {
        let page = node.sh(&format!("curl -s --max-time 2 http://{ip}/"));
        assert!(page.contains("Welcome to nginx!"), "{ip}: {page}");
    }
    // As in the real image, nginx's access log is the container's output.
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let l = node.log("web-a", "nginx");
        if l.contains("\"GET / HTTP/1.1\" 200") || Instant::now() > deadline {
            break l;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(log.contains(" stdout F ") && log.contains("\"GET / HTTP/1.1\" 200"), "{log}");
    node.kill_all();
}

fn crash_loop_back_off_and_restart_count() {
    let node = Node::new();
    let p = pod(
        "metadata: {name: crash, namespace: default, uid: u-crash}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    command: [sh, -c, 'echo run; exit 3']\n",
    );
    // First run, immediate restart, then the back-off.
    let r = node.sync_until(
        &p,
        "back-off",
        |r| matches!(&r.records[0].state, State::Waiting { reason, .. } if reason == "CrashLoopBackOff"),
    );
    let c = &r.records[0];
    assert_eq!(c.restarts, 1, "{c:?}");
    assert!(matches!(c.last, Some(State::Terminated { exit_code: 3, .. })), "{c:?}");
    assert!(r.requeue.unwrap() <= Duration::from_secs(10));
    assert!(r.events.iter().any(|e| e.reason == "BackOff"), "{:?}", r.events);
    node.kill_all();
}

fn restart_policy_never_keeps_the_exit() {
    let node = Node::new();
    let p = pod(
        "metadata: {name: once, namespace: default, uid: u-once}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: debian\n    command: [bash, -c, 'echo done']\n",
    );
    let r = node.sync_until(&p, "terminated", |r| matches!(r.records[0].state, State::Terminated { .. }));
    assert!(matches!(r.records[0].state, State::Terminated { exit_code: 0, .. }), "{:?}", r.records);
    assert_eq!(tutor::backend::lab::agent::status::phase("Never", &r.records), "Succeeded");
    std::thread::sleep(Duration::from_millis(200));
    let r = node.sync(&p);
    assert_eq!(r.records[0].restarts, 0);
    node.kill_all();
}

fn unknown_image_is_err_image_pull_then_back_off() {
    let node = Node::new();
    let p = pod(
        "metadata: {name: nope, namespace: default, uid: u-nope}\nspec:\n  containers:\n  - name: c\n    image: example.com/nothing/here:1.0\n",
    );
    let r = node.sync(&p);
    assert!(
        matches!(&r.records[0].state, State::Waiting { reason, message: Some(m) } if reason == "ErrImagePull" && m.contains("example.com/nothing/here:1.0")),
        "{:?}",
        r.records
    );
    assert!(
        r.events.iter().any(|e| e.warning && e.note.contains("\"example.com/nothing/here:1.0\"")),
        "{:?}",
        r.events
    );
    let r = node.sync(&p);
    assert!(
        matches!(&r.records[0].state, State::Waiting { reason, .. } if reason == "ImagePullBackOff"),
        "{:?}",
        r.records
    );
    node.kill_all();
}

fn host_network_pod_shares_the_node() {
    let node = Node::new();
    let p = pod(
        "metadata: {name: hn, namespace: default, uid: u-hn}\nspec:\n  hostNetwork: true\n  containers:\n  - name: c\n    image: busybox\n    command: [sh, -c, 'hostname; ip -o link show; sleep 30']\n",
    );
    let r = node.sync_until(&p, "running", running);
    assert_eq!(r.sandbox.pod_ip, Some(Ipv4Addr::new(172, 18, 0, 3)));
    std::thread::sleep(Duration::from_millis(300));
    let log = node.log("hn", "c");
    assert!(log.contains(" stdout F test-worker\n"), "{log}");
    assert!(!log.contains("eth0"), "the node namespace of this test has no eth0: {log}");
    node.kill_all();
}

fn graceful_termination_sends_sigterm_first() {
    let node = Node::new();
    let p = pod(
        "metadata: {name: term, namespace: default, uid: u-term}\nspec:\n  containers:\n  - name: c\n    image: debian\n    command: [bash, -c, 'trap \"echo got TERM; exit 0\" TERM; echo up; while :; do sleep 0.05; done']\n",
    );
    node.sync_until(&p, "running", running);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    assert!(node.kill("u-term", Duration::from_secs(5)));
    assert!(started.elapsed() < Duration::from_secs(4), "SIGTERM was not enough: {:?}", started.elapsed());
}

fn pods_write_into_their_own_root_and_see_their_volumes() {
    use tutor::backend::lab::agent::volumes::{Content, File};
    let node = Node::new();
    let leak = format!("/root/tutor-pod-write-{}", std::process::id());
    let p = pod(&format!(
        concat!(
            "metadata: {{name: vol, namespace: default, uid: u-vol}}\n",
            "spec:\n",
            "  volumes: [{{name: cfg, configMap: {{name: c}}}}, {{name: scratch, emptyDir: {{}}}}]\n",
            "  containers:\n",
            "  - name: a\n",
            "    image: busybox\n",
            "    command: [sh, -c, 'echo w > {leak}; echo t > /etc/tutor-pod-write; cat {leak} /etc/cfg/greeting; ",
            "echo x > /etc/cfg/new || echo refused; echo shared > /scratch/f; ls /var/run/secrets/kubernetes.io/serviceaccount; sleep 30']\n",
            "    volumeMounts:\n",
            "    - {{name: cfg, mountPath: /etc/cfg}}\n",
            "    - {{name: cfg, mountPath: /var/run/secrets/kubernetes.io/serviceaccount}}\n",
            "    - {{name: scratch, mountPath: /scratch}}\n",
        ),
        leak = leak
    ));
    let contents = [
        (
            "cfg".to_string(),
            Content::Files(vec![File {
                path: "greeting".into(),
                data: b"hello from a volume\n".to_vec(),
                mode: 0o644,
            }]),
        ),
        ("scratch".to_string(), Content::EmptyDir),
    ]
    .into();
    let inputs = SyncInputs { network_ready: true, volumes: Ok(contents), ..Default::default() };
    node.sync_with_until(&p, &inputs, "running", running);
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let l = node.log("vol", "a");
        if l.contains("greeting") || Instant::now() > deadline {
            break l;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(log.contains(" stdout F w\n") && log.contains(" stdout F hello from a volume\n"), "{log}");
    assert!(log.contains("Read-only file system") && log.contains(" stdout F refused\n"), "{log}");
    assert!(log.contains(" stdout F greeting\n"), "the token directory is mounted through /var/run: {log}");
    // Nothing the pod wrote reached the machine's filesystem; its emptyDir is on the node.
    assert!(!std::path::Path::new(&leak).exists(), "{leak} was written on the machine");
    assert!(!std::path::Path::new("/etc/tutor-pod-write").exists());
    let shared = node._state.path().join("node/pods/default_vol_u-vol/volumes/kubernetes.io~empty-dir/scratch/f");
    assert_eq!(std::fs::read_to_string(&shared).unwrap(), "shared\n");
    // A volume that cannot be set up keeps the pod from starting, with the kubelet's event.
    let q = pod(
        "metadata: {name: nomount, namespace: default, uid: u-nomount}\nspec:\n  containers: [{name: c, image: busybox}]\n",
    );
    let err = tutor::backend::lab::agent::volumes::MountError {
        volume: "cfg".into(),
        cause: tutor::backend::lab::agent::volumes::MountCause::NoSource { kind: "configmap", name: "c".into() },
    };
    let r = node.sync_with(&q, SyncInputs { network_ready: true, volumes: Err(err), ..Default::default() });
    assert!(r.sandbox.pod_ip.is_none());
    assert!(
        r.events.iter().any(|e| e.reason == "FailedMount"
            && e.note == "MountVolume.SetUp failed for volume \"cfg\" : configmap \"c\" not found"),
        "{:?}",
        r.events
    );
    node.kill_all();
}
