//! The lab with the real control plane (`TUTOR_LAB_K8S=upstream`): etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler built from their Go modules by `k8s/build.sh`,
//! answering the real kubectl on the lab host.

use super::support::{self, Out, tutor_upstream};

crate::tests![
    the_real_api_server_answers_kubectl(Lab, K8s),
    pods_on_two_nodes_reach_each_other(Lab, K8s),
    pod_volumes_come_from_the_api(Lab, K8s),
    cluster_dns_and_services_are_coredns_and_kube_proxy(Lab, K8s),
    delete_cluster_stops_the_control_plane_and_removes_its_context(Lab, K8s),
    lab_down_leaves_no_control_plane_process(Lab, K8s),
    the_kube_backend_keeps_one_shell_per_pod(Lab, K8s)
];

/// A lab in upstream mode, down when dropped.
pub(super) struct Lab {
    name: String,
}

impl Lab {
    pub(super) fn up(tag: &str) -> Lab {
        let name = format!("t{}-{tag}", std::process::id());
        tutor_upstream(&["lab", "up", "--name", &name]).ok();
        Lab { name }
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn sh(&self, script: &str) -> Out {
        tutor_upstream(&["lab", "exec", &self.name, "host", "--", "bash", "-c", script])
    }

    pub(super) fn on(&self, target: &str, script: &str) -> Out {
        tutor_upstream(&["lab", "exec", &self.name, target, "--", "bash", "-c", script])
    }

    /// `script` until it exits 0 (60 s at most): what it printed then.
    pub(super) fn eventually(&self, script: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let o = self.sh(script);
            if o.code == 0 {
                return o.stdout;
            }
            assert!(std::time::Instant::now() < deadline, "`{script}` kept failing: {}{}", o.stdout, o.stderr);
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    fn info(&self) -> serde_json::Value {
        let path = format!("/run/tutor/labs/{}/lab.json", self.name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = tutor_upstream(&["lab", "down", &self.name]);
    }
}

/// The pids of the processes running `exe` (by their /proc/PID/exe) in these network namespaces.
fn processes_in(inodes: &[u64], exe: &str) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let ino = std::fs::metadata(e.path().join("ns/net")).ok()?.ino();
            let path = std::fs::read_link(e.path().join("exe")).ok()?;
            (inodes.contains(&ino) && path.file_name()? == exe).then_some(pid)
        })
        .collect()
}

fn the_real_api_server_answers_kubectl() {
    let lab = Lab::up("k8s");
    let o = lab.sh("kind create cluster");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("Ensuring node image (kindest/node:v1.33.1)"), "{}", o.stderr);
    assert!(o.stderr.contains("Set kubectl context to \"kind-kind\""), "{}", o.stderr);

    // The real kubectl, the real API server, the pinned release on both sides.
    let v = lab.sh("kubectl version").ok();
    assert!(v.contains("Client Version: v1.33.1") && v.contains("Server Version: v1.33.1"), "{v}");
    assert_eq!(lab.sh("kubectl config current-context").ok(), "kind-kind\n");
    let ns = lab.sh("kubectl get namespaces -o name").ok();
    for want in ["namespace/default", "namespace/kube-node-lease", "namespace/kube-public", "namespace/kube-system"] {
        assert!(ns.lines().any(|l| l == want), "{want} missing:\n{ns}");
    }

    // Validation is the API server's own.
    let bad = lab.sh("kubectl create namespace Bad_Name");
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains(r#"The Namespace "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name""#),
        "{}",
        bad.stderr
    );
    let missing = lab.sh("kubectl -n nowhere create deployment web --image=nginx");
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains(r#"namespaces "nowhere" not found"#), "{}", missing.stderr);

    // A Deployment becomes a ReplicaSet (the real controller's name hash) and pods.
    lab.sh("kubectl create namespace shop && kubectl -n shop create deployment web --image=nginx --replicas=2").ok();
    let rs = lab.eventually("kubectl -n shop get rs -l app=web -o jsonpath='{.items[0].metadata.name}' | grep .");
    let hash =
        lab.sh("kubectl -n shop get rs -l app=web -o jsonpath='{.items[0].metadata.labels.pod-template-hash}'").ok();
    assert_eq!(rs.trim(), format!("web-{hash}"));
    let pods = lab.eventually("kubectl -n shop get pods -l app=web -o name | grep -c . | grep -qx 2 && kubectl -n shop get pods -l app=web -o name");
    assert_eq!(pods.lines().count(), 2, "{pods}");
    assert!(pods.lines().all(|p| p.starts_with(&format!("pod/web-{hash}-"))), "{pods}");

    // The node agent registers the node; kindnet's role writes the CNI configuration for the
    // podCIDR the node IPAM controller gave it, which turns the node Ready; the real scheduler
    // binds the pods to it and the agent runs them with addresses from that podCIDR.
    let nodes = lab.eventually(
        "kubectl wait --for=condition=Ready node/kind-control-plane --timeout=1s >/dev/null && kubectl get nodes",
    );
    let row: Vec<&str> = nodes.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        (row[0], row[1], row[2], row[4]),
        ("kind-control-plane", "Ready", "control-plane", "v1.33.1"),
        "{nodes}"
    );
    // The control plane's processes as their mirror pods, as on kind.
    let mirrors = lab.eventually(
        "kubectl -n kube-system get pods -l tier=control-plane --no-headers | grep -c ' 1/1 *Running' | grep -qx 4 && kubectl -n kube-system get pods -l tier=control-plane -o name",
    );
    for c in ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
        assert!(mirrors.lines().any(|l| l == format!("pod/{c}-kind-control-plane")), "{c} missing:\n{mirrors}");
    }
    let flags = lab.sh("kubectl -n kube-system get pod kube-apiserver-kind-control-plane -o jsonpath='{.spec.containers[0].command}'").ok();
    assert!(flags.contains("--service-cluster-ip-range=10.96.0.0/"), "{flags}");
    let cidr = lab.sh("kubectl get node kind-control-plane -o jsonpath='{.spec.podCIDR}'").ok();
    assert_eq!(cidr, "10.244.0.0/24");
    let ready = lab.sh("kubectl -n shop wait --for=condition=Ready pods -l app=web --timeout=60s");
    assert_eq!(ready.code, 0, "{}{}", ready.stdout, ready.stderr);
    let ips = lab.sh("kubectl -n shop get pods -l app=web -o jsonpath='{range .items[*]}{.status.podIP} {.spec.nodeName}{\"\\n\"}{end}'").ok();
    assert_eq!(ips.lines().count(), 2, "{ips}");
    for l in ips.lines() {
        let (ip, node) = l.split_once(' ').unwrap();
        assert!(ip.starts_with("10.244.0.") && node == "kind-control-plane", "{ips}");
    }

    // The kubelet API: exec and logs through the API server to the node.
    let pod = pods.lines().next().unwrap().trim_start_matches("pod/").to_string();
    let host = lab.sh(&format!("kubectl -n shop exec {pod} -- cat /etc/hostname")).ok();
    assert_eq!(host, format!("{pod}\n"));
    let first_ip = ips.lines().next().unwrap().split(' ').next().unwrap().to_string();
    let page = lab.on("kind-control-plane", &format!("curl -sf http://{first_ip}/")).ok();
    assert!(page.contains("Welcome to nginx"), "{page}");
    lab.sh("kubectl -n shop run hello --image=busybox --restart=Never -- echo hello from busybox").ok();
    let logs = lab.eventually("kubectl -n shop logs hello | grep .");
    assert_eq!(logs, "hello from busybox\n");
    let phase = lab.eventually("kubectl -n shop get pod hello -o jsonpath='{.status.phase}' | grep -x Succeeded");
    assert_eq!(phase, "Succeeded\n");
}

/// Two nodes with kind's default CNI: each gets its podCIDR, pods on different nodes reach each
/// other through the routes kindnet's role installs, and leave the cluster masqueraded.
fn pods_on_two_nodes_reach_each_other() {
    let lab = Lab::up("k8s2");
    let cfg = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n";
    let o = lab.sh(&format!("cat > /tmp/two.yaml <<'EOF'\n{cfg}EOF\nkind create cluster --config /tmp/two.yaml"));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    lab.eventually("kubectl wait --for=condition=Ready nodes --all --timeout=1s");
    // Once the node lifecycle controller has seen the nodes Ready, only kind's taint is left.
    let taints = lab.eventually(
        "kubectl get node kind-control-plane -o jsonpath='{.spec.taints[*].key}' | grep -x node-role.kubernetes.io/control-plane",
    );
    assert_eq!(taints, "node-role.kubernetes.io/control-plane\n");
    // Pod b runs agnhost (built from its Go module with the control plane).
    for (pod, node, container) in [
        ("a", "kind-control-plane", r#"{"name":"c","image":"busybox","command":["sleep","3600"]}"#),
        (
            "b",
            "kind-worker",
            r#"{"name":"c","image":"registry.k8s.io/e2e-test-images/agnhost:2.53","args":["netexec","--http-port=8080"]}"#,
        ),
    ] {
        let spec = format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{pod}"}},"spec":{{"nodeName":"{node}","tolerations":[{{"operator":"Exists"}}],"containers":[{container}]}}}}"#
        );
        lab.sh(&format!("kubectl create -f - <<'EOF'\n{spec}\nEOF")).ok();
    }
    let ready = lab.sh("kubectl wait --for=condition=Ready pod/a pod/b --timeout=60s");
    assert_eq!(ready.code, 0, "{}{}", ready.stdout, ready.stderr);
    let ip_b = lab.sh("kubectl get pod b -o jsonpath='{.status.podIP}'").ok();
    assert!(ip_b.starts_with("10.244.1."), "pod b on the worker: {ip_b}");
    let ping = lab.sh(&format!("kubectl exec a -- ping -c 1 -W 2 {ip_b}"));
    assert_eq!(ping.code, 0, "{}{}", ping.stdout, ping.stderr);
    assert!(ping.stdout.contains("1 packets received"), "{}", ping.stdout);
    let hostname = lab.sh(&format!("kubectl exec a -- wget -qO- http://{ip_b}:8080/hostname")).ok();
    assert_eq!(hostname, "b");
}

fn pod_volumes_come_from_the_api() {
    let lab = Lab::up("k8svol");
    let o = lab.sh("kind create cluster");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    lab.eventually("kubectl wait --for=condition=Ready nodes --all --timeout=1s");
    lab.eventually("kubectl get serviceaccount default");
    let out = |script: &str| lab.sh(script).ok().trim_end().to_string();
    let pod = r#"apiVersion: v1
kind: Pod
metadata: {name: vol}
spec:
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"], volumeMounts: [{name: cfg, mountPath: /etc/cfg}]}
  volumes: [{name: cfg, configMap: {name: greeting}}]
"#;
    let o = lab.sh(&format!(
        "kubectl create configmap greeting --from-literal=text=hello && kubectl apply -f - <<'EOF'\n{pod}EOF"
    ));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let ready = lab.sh("kubectl wait --for=condition=Ready pod/vol --timeout=60s");
    assert_eq!(ready.code, 0, "{}{}", ready.stdout, ready.stderr);
    assert_eq!(out("kubectl exec vol -- cat /etc/cfg/text"), "hello");
    // An exec starts in the container's working directory, inside the pod's own tree.
    let pwd = lab.sh("kubectl exec vol -- sh -c 'pwd; cd .'");
    assert_eq!((pwd.stdout.as_str(), pwd.stderr.as_str(), pwd.code), ("/\n", "", 0));
    // The service account's token, CA and namespace, as the admission plugin asked for them.
    let sa = out("kubectl exec vol -- ls /var/run/secrets/kubernetes.io/serviceaccount");
    assert_eq!(sa, "ca.crt\nnamespace\ntoken");
    assert_eq!(out("kubectl exec vol -- cat /var/run/secrets/kubernetes.io/serviceaccount/namespace"), "default");
    // The token is the API server's own: it authenticates as the pod's service account.
    let who = out(concat!(
        "server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}'); ",
        "token=$(kubectl exec vol -- cat /var/run/secrets/kubernetes.io/serviceaccount/token); ",
        "kubectl --kubeconfig=/dev/null --server=$server --insecure-skip-tls-verify --token=$token ",
        "auth whoami -o jsonpath='{.status.userInfo.username}'"
    ));
    assert_eq!(who, "system:serviceaccount:default:default");
    // Edits reach the running pod through ..data.
    lab.sh(
        "kubectl create configmap greeting --from-literal=text=changed -o yaml --dry-run=client | kubectl apply -f -",
    )
    .ok();
    lab.eventually("kubectl exec vol -- cat /etc/cfg/text | grep -x changed");
    // The pod cannot write into it, and what it writes elsewhere stays in the pod.
    let w = lab.sh("kubectl exec vol -- sh -c 'echo x > /etc/cfg/new'");
    assert_ne!(w.code, 0);
    assert!(w.stderr.contains("Read-only file system"), "{}", w.stderr);
    // A pod whose ConfigMap does not exist waits with the kubelet's event.
    lab.sh("kubectl run missing --image=busybox --overrides='{\"spec\":{\"volumes\":[{\"name\":\"v\",\"configMap\":{\"name\":\"nope\"}}],\"containers\":[{\"name\":\"missing\",\"image\":\"busybox\",\"volumeMounts\":[{\"name\":\"v\",\"mountPath\":\"/v\"}]}]}}'").ok();
    let ev = lab.eventually("kubectl get events --field-selector involvedObject.name=missing,reason=FailedMount -o jsonpath='{.items[0].message}' | grep .");
    assert_eq!(ev.trim(), "MountVolume.SetUp failed for volume \"v\" : configmap \"nope\" not found");
    assert_eq!(out("kubectl get pod missing -o jsonpath='{.status.phase}'"), "Pending");
    // Init containers run one after the other, to their end, before the containers start.
    let init = r#"apiVersion: v1
kind: Pod
metadata: {name: init}
spec:
  initContainers:
  - {name: first, image: busybox, command: [sh, -c, 'echo $GREETING > /work/a'], env: [{name: GREETING, value: hi}], volumeMounts: [{name: w, mountPath: /work}]}
  - {name: second, image: busybox, command: [sh, -c, 'cat /work/a > /work/b; echo second'], volumeMounts: [{name: w, mountPath: /work}]}
  containers:
  - {name: app, image: busybox, command: [sh, -c, 'cat /work/b; sleep 3600'], volumeMounts: [{name: w, mountPath: /work}]}
  volumes: [{name: w, emptyDir: {}}]
"#;
    lab.sh(&format!("kubectl apply -f - <<'EOF'\n{init}EOF")).ok();
    let ready = lab.sh("kubectl wait --for=condition=Ready pod/init --timeout=60s");
    assert_eq!(ready.code, 0, "{}{}", ready.stdout, ready.stderr);
    assert_eq!(out("kubectl logs init"), "hi");
    assert_eq!(out("kubectl logs init -c second"), "second");
    let reasons = "kubectl get pod init -o jsonpath='{.status.initContainerStatuses[*].state.terminated.reason}'";
    assert_eq!(out(reasons), "Completed Completed");
    // A failing init container holds the pod back, as kubectl shows it.
    lab.sh("kubectl run broken --image=busybox --overrides='{\"spec\":{\"initContainers\":[{\"name\":\"fail\",\"image\":\"busybox\",\"command\":[\"false\"]}],\"containers\":[{\"name\":\"broken\",\"image\":\"busybox\",\"command\":[\"sleep\",\"3600\"]}]}}'").ok();
    lab.eventually("kubectl get pod broken --no-headers | grep -E 'Init:(Error|CrashLoopBackOff)'");
    assert_eq!(out("kubectl get pod broken -o jsonpath='{.status.phase}'"), "Pending");
}

fn cluster_dns_and_services_are_coredns_and_kube_proxy() {
    let lab = Lab::up("k8sdns");
    let cfg = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n";
    let o = lab.sh(&format!("cat > /tmp/dns.yaml <<'EOF'\n{cfg}EOF\nkind create cluster --config /tmp/dns.yaml"));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let out = |script: &str| lab.sh(script).ok().trim_end().to_string();
    // kubeadm's add-ons, run by the real controllers on the nodes.
    let ready = lab.sh("kubectl -n kube-system rollout status deploy/coredns --timeout=90s && kubectl -n kube-system rollout status ds/kube-proxy --timeout=60s");
    assert_eq!(ready.code, 0, "{}{}", ready.stdout, ready.stderr);
    assert_eq!(out("kubectl -n kube-system get ds kube-proxy -o jsonpath='{.status.numberReady}'"), "2");
    assert_eq!(out("kubectl -n kube-system get svc kube-dns -o jsonpath='{.spec.clusterIP}'"), "10.96.0.10");
    // A Service by name from a pod on the other node: CoreDNS answers, kube-proxy balances.
    let o = lab.sh(concat!(
        "kubectl create deployment web --image=nginx --replicas=2 && kubectl expose deployment web --port=80 && ",
        "kubectl run t --image=busybox --restart=Never -- sleep 3600 && ",
        "kubectl wait --for=condition=Available deploy/web --timeout=60s && kubectl wait --for=condition=Ready pod/t --timeout=60s"
    ));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let ip = out("kubectl get svc web -o jsonpath='{.spec.clusterIP}'");
    let ns = out("kubectl exec t -- nslookup web.default.svc.cluster.local");
    assert!(ns.contains("Server:\t\t10.96.0.10\n") && ns.ends_with(&format!("Address: {ip}")), "{ns}");
    let page = out("kubectl exec t -- wget -qO- http://web");
    assert!(page.contains("<title>Welcome to nginx!</title>"), "{page}");
    // hashicorp/http-echo runs the real http-echo, built from its Go module.
    lab.sh("kubectl run echo --image=hashicorp/http-echo:1.0 -- -text=hello-from-echo && kubectl wait --for=condition=Ready pod/echo --timeout=60s").ok();
    let echo_ip = out("kubectl get pod echo -o jsonpath='{.status.podIP}'");
    assert_eq!(out(&format!("kubectl exec t -- wget -qO- http://{echo_ip}:5678")), "hello-from-echo");
    // Each request shows in a backend's log (nginx's access log is its output).
    let logs = out("kubectl logs -l app=web --prefix --tail=-1");
    assert!(logs.contains("\"GET / HTTP/1.1\" 200"), "{logs}");
}

fn delete_cluster_stops_the_control_plane_and_removes_its_context() {
    let lab = Lab::up("k8sdel");
    lab.sh("kind create cluster --name one").ok();
    assert_eq!(lab.sh("kind get clusters").ok(), "one\n");
    let inodes: Vec<u64> = lab.info()["netns_inodes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    for exe in ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
        assert_eq!(processes_in(&inodes, exe).len(), 1, "{exe} is not running in the lab");
    }
    assert_eq!(lab.sh("kubectl config get-contexts -o name").ok(), "kind-one\n");
    let o = lab.sh("kind delete cluster --name one");
    assert_eq!(o.code, 0, "{}", o.stderr);
    for exe in ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
        assert!(processes_in(&inodes, exe).is_empty(), "{exe} still runs after kind delete cluster");
    }
    assert_eq!(lab.sh("kubectl config get-contexts -o name").ok(), "");
    assert!(!std::path::Path::new(&format!("/run/tutor/labs/{}/k8s/one", lab.name)).exists());
}

fn lab_down_leaves_no_control_plane_process() {
    let lab = Lab::up("k8sdown");
    lab.sh("kind create cluster").ok();
    let inodes: Vec<u64> = lab.info()["netns_inodes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(processes_in(&inodes, "kube-apiserver").len(), 1);
    drop(lab);
    assert!(!support::netns_in_use(&inodes), "a process of the lab outlived `lab down`");
}

/// `tutor run --backend kube` against the real API server, on the lab host: blocks on a pod run
/// in one shell (a Kubernetes exec session with stdin), so a variable, a function and the
/// working directory carry from block to block; a block that times out is killed through a
/// second exec at once, its background job with it, and the next block on that pod gets a new
/// shell with the state from before; another pod has a shell of its own.
fn the_kube_backend_keeps_one_shell_per_pod() {
    let lab = Lab::up("podkernel");
    let o = lab.sh("kind create cluster");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    // The default service account comes a moment after the cluster.
    lab.eventually("kubectl get serviceaccount default");
    lab.sh("kubectl run shell --image=busybox -- sleep 3600 && kubectl run other --image=busybox -- sleep 3600").ok();
    let ready = lab.sh("kubectl wait --for=condition=Ready pod/shell pod/other --timeout=90s");
    assert_eq!(ready.code, 0, "{}{}", ready.stdout, ready.stderr);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let fixture = support::fixtures().join("pod-kernel.md");
    let began = std::time::Instant::now();
    // Run from the directory itself, so that the lab host (whose /tmp is its own) is given it.
    std::fs::copy(&fixture, dir.path().join("pod-kernel.md")).unwrap();
    let run = format!(
        "{} run --backend kube --context kind-kind --keep-going --format json --record r.json pod-kernel.md",
        support::TUTOR
    );
    let o = support::output(
        std::process::Command::new(support::TUTOR)
            .args(["lab", "exec", &lab.name, "host", "--", "bash", "-c", &run])
            .current_dir(dir.path())
            .env("TUTOR_LAB_K8S", "upstream"),
    );
    let took = began.elapsed();
    assert_eq!(o.code, 1, "{}{}", o.stdout, o.stderr);
    let blocks: Vec<serde_json::Value> = o
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("id").is_some())
        .collect();
    let status = |id: &str| {
        let b = blocks.iter().find(|b| b["id"] == id).unwrap_or_else(|| panic!("no block {id}: {}", o.stdout));
        (b["status"].as_str().unwrap_or_default().to_string(), b["reason"].as_str().unwrap_or_default().to_string())
    };
    for id in ["define", "use", "after", "other"] {
        assert_eq!(status(id).0, "passed", "{id}: {:?}\n{}", status(id), o.stdout);
    }
    let (hang, reason) = status("hang");
    assert_eq!(hang, "error", "{reason}");
    assert!(reason.contains("timed out after 2s"), "{reason}");
    // The 2 s timeout, the kill and a new session, not the sleeper's 1000 s.
    assert!(took < std::time::Duration::from_secs(60), "{took:?}");
}
