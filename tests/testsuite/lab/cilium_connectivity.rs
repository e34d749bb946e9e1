//! `cilium connectivity test` on a lab running the real control plane and the chart's Cilium:
//! it deploys the CLI's test objects through the API server, runs its tests between the lab's
//! pods, nodes and the outside world's stand-in, and reports in the CLI's format. It passes on
//! a healthy cluster, and fails, naming the cross-node actions, once a node loses its route to
//! another node's pods.

use std::time::Instant;

use super::k8s::Lab;
use super::support::{fixtures, tutor_upstream};

crate::tests![
    connectivity_test_passes_then_fails_without_a_route_to_a_peer(Lab, K8s),
    single_node_runs_what_one_node_can_and_cleanup_removes_it(Lab, K8s)
];

/// Cilium's defaults (tunnel mode, VXLAN) with kube-proxy replacement, as the Cilium docs
/// install it on kind.
const INSTALL: &str = "helm repo add cilium https://helm.cilium.io/ >/dev/null && \
     helm install cilium cilium/cilium --version 1.19.1 -n kube-system --set ipam.mode=kubernetes \
     --set kubeProxyReplacement=true --set k8sServiceHost=kind-control-plane --set k8sServicePort=6443";

const NS: &str = "cilium-test-1";

/// `kubectl get` of a jsonpath, in the test namespace.
fn get(lab: &Lab, what: &str, path: &str) -> String {
    lab.sh(&format!("kubectl -n {NS} get {what} -o jsonpath='{path}'")).ok()
}

fn connectivity_test_passes_then_fails_without_a_route_to_a_peer() {
    let lab = Lab::up("conn");
    let dir = fixtures().display().to_string();
    let o = lab.sh(&format!("cd {dir} && kind create cluster --config kind-config.yaml"));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let o = lab.sh(INSTALL);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let o = lab.sh("cilium status --wait --wait-duration 5m");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);

    // A healthy cluster: every test passes.
    let start = Instant::now();
    let o = lab.sh("cilium connectivity test");
    let took = start.elapsed().as_secs_f64();
    eprintln!("measure: cilium connectivity test (3 nodes, healthy) took {took:.1} s\n{}", o.stdout);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let out = o.stdout;
    assert!(out.contains(&format!("✨ [kind-kind] Creating namespace {NS} for connectivity check...\n")), "{out}");
    assert!(out.contains("✨ [kind-kind] Deploying same-node deployment...\n"), "{out}");
    assert!(out.contains(&format!("⌛ [kind-kind] Waiting for deployment {NS}/client to become ready...\n")), "{out}");
    assert!(out.contains(&format!("🏃[{NS}] Running 2 tests ...\n[=] [{NS}] Test [no-policies] [1/2]\n")), "{out}");

    // The objects are the API's, where the CLI puts them, and the namespace stays.
    let deployments = get(&lab, "deploy", "{.items[*].metadata.name}");
    assert_eq!(deployments, "client client2 client3 echo-other-node echo-same-node");
    let ready = get(&lab, "deploy", "{.items[*].status.readyReplicas}");
    assert_eq!(ready, "1 1 1 1 1");
    let node_of = |label: &str| get(&lab, &format!("pods -l {label}"), "{.items[0].spec.nodeName}");
    let (client_node, same_node, other_node) =
        (node_of("name=client"), node_of("name=echo-same-node"), node_of("name=echo-other-node"));
    assert_eq!(client_node, same_node);
    assert_ne!(client_node, other_node);
    assert_eq!(node_of("name=client2"), client_node);
    assert_ne!(node_of("name=client3"), client_node);

    // The number of actions follows from what the API has: 3 clients, 2 echo pods, 2 echo
    // Services (NodePort), the nodes, one host-network pod per schedulable node.
    let count = |what: &str| get(&lab, what, "{.items[*].metadata.name}").split_whitespace().count();
    let (clients, echoes, services, hosts) = (
        count("pods -l kind=client"),
        count("pods -l kind=echo"),
        count("svc -l kind=echo"),
        count("pods -l kind=host-netns"),
    );
    let nodes = lab.sh("kubectl get nodes -o name").ok().lines().count();
    assert_eq!((clients, echoes, services, nodes), (3, 2, 2, 3));
    let actions = clients * echoes              // pod-to-pod
        + clients * (clients - 1)               // client-to-client
        + clients * services                    // pod-to-service
        + clients * echoes                      // pod-to-hostport, on the echo pods' nodes
        + clients * 3                           // pod-to-world: http, https, https /index.html
        + clients * nodes                       // pod-to-host
        + hosts * echoes                        // host-to-pod
        + 2 * clients                           // pod-to-cidr: 1.1.1.1 and 1.0.0.1
        + clients * services * (nodes - 1)      // pod-to-remote-nodeport
        + clients * services; // pod-to-local-nodeport
    assert!(
        out.contains(&format!(
            "\n✅ [{NS}] All 2 tests ({actions} actions) successful, 0 tests skipped, 0 scenarios skipped.\n"
        )),
        "{out}"
    );
    // Nothing failed, so the tests' logs stayed buffered: only dots were printed.
    assert!(!out.contains("[.] Action") && !out.contains('❌'), "{out}");

    // A second run finds the objects and creates nothing; `--test` keeps one scenario.
    let o = lab.sh("cilium connectivity test --test 'no-policies/pod-to-pod$' --verbose");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(!o.stdout.contains("✨"), "{}", o.stdout);
    assert!(
        o.stdout.contains(&format!("[=] [{NS}] Skipping test [no-policies-extra] [2/2] (skipped by user)\n")),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("  [-] Skipping Scenario [no-policies/pod-to-service] (skipped by user)\n"),
        "{}",
        o.stdout
    );
    let echo_other_ip = get(&lab, "pods -l name=echo-other-node", "{.items[0].status.podIP}");
    assert!(
        o.stdout.contains(&format!(" -> {NS}/echo-other-node-"))
            && o.stdout.contains(&format!("({echo_other_ip}:8080)]")),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(&format!(
            "\n✅ [{NS}] All 1 tests ({} actions) successful, 1 tests skipped, 7 scenarios skipped.\n",
            clients * echoes
        )),
        "{}",
        o.stdout
    );

    // The other node loses its route to the client's node's pods while a run pauses between
    // its two tests (`--post-test-sleep`): the first passed, the second's actions whose replies
    // cross back to the client's node fail, and the run fails with the CLI's report.
    let cidr = lab.sh(&format!("kubectl get node {client_node} -o jsonpath='{{.spec.podCIDR}}'")).ok();
    let route = lab.on(&other_node, &format!("ip route show {cidr}")).ok().trim().to_string();
    assert!(route.contains("dev cilium_host"), "tunnel mode's route: {route}");
    let run = {
        let script = "cilium connectivity test --post-test-sleep 20s > /tmp/ct.log 2>&1; echo rc=$? >> /tmp/ct.log";
        let name = lab.name().to_string();
        std::thread::spawn(move || tutor_upstream(&["lab", "exec", &name, "host", "--", "bash", "-c", script]))
    };
    lab.eventually("grep -q 'Pausing for 20s after test <Test no-policies,' /tmp/ct.log");
    let o = lab.on(&other_node, &format!("ip route del {cidr} && ip route"));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(!o.stdout.contains(&cidr), "{}", o.stdout);
    let ran = run.join().unwrap();
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let out = lab.sh("cat /tmp/ct.log").ok();
    eprintln!("measure: the run that lost a route:\n{out}");
    assert!(out.ends_with(&format!("\nError: [{NS}] 1 tests failed\nrc=1\n")), "{out}");
    assert!(
        out.contains(&format!(
            "[=] [{NS}] Test [no-policies] [1/2]\n{}\n",
            ".".repeat(actions - clients * services * nodes)
        )),
        "{out}"
    );
    let report = &out[out.find("📋 Test Report").unwrap_or_else(|| panic!("a report: {out}"))..];
    assert!(report.contains("\nTest [no-policies-extra]:\n") && !report.contains("Test [no-policies]:"), "{report}");
    // The test's log was shown from its first failure: the scenario, the action, curl's error.
    assert!(out.contains("  [-] Scenario [no-policies-extra/pod-to-remote-nodeport]\n"), "{out}");
    assert!(out.contains("  ℹ️  curl stderr:\n  curl: (28) Failed to connect to "), "{out}");
    let other_ip =
        lab.sh(&format!("kubectl get node {other_node} -o jsonpath='{{.status.addresses[0].address}}'")).ok();
    let np = get(&lab, "svc echo-other-node", "{.spec.ports[0].nodePort}");
    let client_pod = get(&lab, "pods -l name=client", "{.items[0].metadata.name}");
    let failed: Vec<&str> = report.lines().filter(|l| l.starts_with("  🟥 ")).collect();
    assert!(
        failed.iter().any(|l| l.contains("pod-to-remote-nodeport:curl-")
            && l.contains(&format!("{NS}/{client_pod} ("))
            && l.contains(&format!("http://{other_ip}:{np}\" failed: command terminated with exit code 28"))),
        "the client through the other node's NodePort to its local echo pod: {report}"
    );
    // Only the client's node's pods lost their way back from the other node: clients on the
    // other node reaching its own NodePort still pass.
    let client3 = get(&lab, "pods -l name=client3", "{.items[0].metadata.name}");
    assert!(
        !failed.iter().any(|l| l.contains(&format!("{client3} (")) && l.contains(&format!("http://{other_ip}:{np}\""))),
        "{report}"
    );

    // A new run, the route still missing: like the CLI, it does not get past its set-up
    // (a client cannot reach the DNS server of the echo pod on the other node).
    let start = Instant::now();
    let o = lab.sh("cilium connectivity test");
    let took = start.elapsed().as_secs_f64();
    eprintln!("measure: a run without the route failed after {took:.1} s");
    assert_eq!(o.code, 1, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stderr.contains(&format!("Error: timeout reached waiting for lookup for localhost from pod {NS}/"))
            && o.stderr.contains("to succeed (last error: command terminated with exit code 1)"),
        "{}",
        o.stderr
    );
    assert!(took < 120.0, "{took}");

    // With the route back as the agent made it, the cross-node actions pass again.
    let o = lab.on(&other_node, &format!("ip route add {route}"));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let o = lab.sh("cilium connectivity test --test 'no-policies-extra'");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
}

/// On one node the CLI deploys no other-node workloads and plans no cross-node actions;
/// `--cleanup` deletes the namespace and nothing else.
fn single_node_runs_what_one_node_can_and_cleanup_removes_it() {
    let lab = Lab::up("conn1");
    let o = lab.sh(
        "printf 'kind: Cluster\\napiVersion: kind.x-k8s.io/v1alpha4\\nnetworking:\\n  disableDefaultCNI: true\\n  kubeProxyMode: none\\n' > /tmp/one.yaml && \
         kind create cluster --config /tmp/one.yaml",
    );
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    // One operator replica: the chart's two are spread over two nodes.
    let o = lab.sh(&format!("{INSTALL} --set operator.replicas=1 && cilium status --wait --wait-duration 5m"));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let start = Instant::now();
    let o = lab.sh("cilium connectivity test");
    eprintln!("measure: cilium connectivity test (1 node) took {:.1} s", start.elapsed().as_secs_f64());
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout.starts_with("ℹ️  Single-node environment detected, enabling single-node connectivity test\n"),
        "{}",
        o.stdout
    );
    assert!(!o.stdout.contains("other-node") && !o.stdout.contains("daemonset"), "{}", o.stdout);
    assert_eq!(get(&lab, "deploy", "{.items[*].metadata.name}"), "client client2 echo-same-node");
    // 2 clients, 1 echo pod and Service, 1 node: pod-to-pod 2, client-to-client 2,
    // pod-to-service 2, pod-to-hostport 2, pod-to-world 6, pod-to-host 2, pod-to-cidr 4,
    // local NodePort 2.
    assert!(
        o.stdout.ends_with(&format!(
            "\n✅ [{NS}] All 2 tests (22 actions) successful, 0 tests skipped, 0 scenarios skipped.\n"
        )),
        "{}",
        o.stdout
    );

    let o = lab.sh("cilium connectivity test --cleanup");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("🧹 Cleanup mode enabled") && o.stdout.contains("✅ Cleanup complete"), "{}", o.stdout);
    let o = lab.sh(&format!("kubectl get ns {NS}"));
    assert_ne!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("not found"), "{}", o.stderr);
}
