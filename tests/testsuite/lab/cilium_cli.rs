//! The `cilium` CLI on the lab host and `cilium-dbg` in the agents' pods, against a lab running
//! the real control plane and the chart's DaemonSet: every number they print is compared with
//! what kubectl reads from the same API.

use std::time::Instant;

use super::k8s::Lab;
use super::support::fixtures;

crate::tests![
    cilium_status_waits_for_the_daemonset_and_matches_the_api(Lab, K8s),
    cilium_status_wait_times_out_when_an_agent_cannot_become_ready(Lab, K8s)
];

/// The article's release (no Envoy DaemonSet before 1.16), without Hubble's Deployments: the
/// lab's image catalogue has no program for cilium-envoy or hubble-relay, whose pods would
/// never be ready.
const INSTALL: &str = "helm repo add cilium https://helm.cilium.io/ && \
    helm install -n kube-system cilium cilium/cilium --version 1.15.1 -f cilium-no-direct-routes.yaml \
    --set hubble.relay.enabled=false --set hubble.ui.enabled=false";

/// The line of `text` that starts with `prefix`.
fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no line `{prefix}` in:\n{text}"))
}

fn cilium_status_waits_for_the_daemonset_and_matches_the_api() {
    let lab = Lab::up("ciliumcli");
    let dir = fixtures().display().to_string();
    let o = lab.sh(&format!("cd {dir} && kind create cluster --config kind-config.yaml"));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    lab.eventually("kubectl get serviceaccount default");
    // No Cilium yet: the CLI says what is missing and fails.
    let o = lab.sh("cilium status");
    assert_eq!(o.code, 1, "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("Errors:") && o.stdout.contains("daemonsets.apps \"cilium\" not found"), "{}", o.stdout);
    assert!(o.stderr.contains("Error: status check failed"), "{}", o.stderr);
    // An unknown command names what the lab's CLI has.
    let o = lab.sh("cilium clustermesh status");
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("not played by the lab's cilium CLI") && o.stderr.contains("config view"),
        "{}",
        o.stderr
    );

    let start = Instant::now();
    let o = lab.sh(&format!("cd {dir} && {INSTALL}"));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let installed = start.elapsed();
    let o = lab.sh("cilium status --wait --wait-duration 5m");
    let waited = start.elapsed();
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    eprintln!(
        "measure: helm install returned after {:.1} s, cilium status --wait after {:.1} s",
        installed.as_secs_f64(),
        waited.as_secs_f64()
    );
    // It returned because the DaemonSet is ready: the API says so too.
    let ds = lab
        .sh("kubectl -n kube-system get ds cilium -o jsonpath='{.status.desiredNumberScheduled} {.status.numberReady} {.status.numberAvailable}'")
        .ok();
    assert_eq!(ds, "3 3 3");
    let status = o.stdout;
    assert!(status.contains(" /¯¯\\__/¯¯\\    Cilium:             OK\n"), "{status}");
    assert!(status.contains("Envoy DaemonSet:    disabled (using embedded mode)\n"), "{status}");
    assert!(status.contains("Hubble Relay:       disabled\n"), "{status}");
    assert!(!status.contains("\u{1b}["), "no colours when stdout is not a terminal: {status}");
    let words = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>().join(" ");
    assert_eq!(words(line(&status, "DaemonSet")), "DaemonSet cilium Desired: 3, Ready: 3/3, Available: 3/3");
    let deploy = lab
        .sh("kubectl -n kube-system get deploy cilium-operator -o jsonpath='{.status.replicas} {.status.readyReplicas} {.status.availableReplicas}'")
        .ok();
    let d: Vec<&str> = deploy.split(' ').collect();
    assert_eq!(
        words(line(&status, "Deployment")),
        format!("Deployment cilium-operator Desired: {}, Ready: {}/{}, Available: {}/{}", d[0], d[1], d[0], d[2], d[0])
    );
    assert_eq!(words(line(&status, "Containers:")), "Containers: cilium Running: 3");
    assert_eq!(words(line(&status, "Helm chart version:")), "Helm chart version: 1.15.1");
    let image =
        lab.sh("kubectl -n kube-system get ds cilium -o jsonpath='{.spec.template.spec.containers[0].image}'").ok();
    assert_eq!(words(line(&status, "Image versions")), format!("Image versions cilium {image}: 3"));
    // Cluster Pods: the pods outside the host network, each with its CiliumEndpoint.
    let pods = lab
        .sh("kubectl get pods -A -o jsonpath='{range .items[*]}{.spec.hostNetwork} {.status.phase}{\"\\n\"}{end}'")
        .ok();
    let n =
        pods.lines().filter(|l| !l.starts_with("true") && (l.ends_with("Running") || l.ends_with("Pending"))).count();
    assert!(n >= 2, "{pods}");
    let managed = lab.eventually(&format!(
        "cilium status | grep -q 'Cluster Pods:          {n}/{n} managed by Cilium' && kubectl get cep -A --no-headers"
    ));
    assert_eq!(managed.lines().count(), n, "{managed}");
    assert!(managed.lines().all(|l| l.contains(" ready ") && l.contains("10.244.")), "{managed}");
    // A CiliumNode per node, with its router address and pod range.
    let cn = lab.sh("kubectl get ciliumnodes -o jsonpath='{range .items[*]}{.metadata.name} {.spec.addresses[?(@.type==\"CiliumInternalIP\")].ip} {.spec.ipam.podCIDRs[0]}{\"\\n\"}{end}'").ok();
    assert_eq!(cn.lines().count(), 3, "{cn}");
    for l in cn.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(f[1], format!("{}.224", f[2].trim_end_matches(".0/24")), "{cn}");
    }

    // `cilium version`: the running release from the Helm release.
    let v = lab.sh("cilium version").ok();
    assert!(v.starts_with("cilium-cli: tutor "), "{v}");
    assert!(v.contains("cilium image (default): v1.19.1\n") && v.ends_with("cilium image (running): 1.15.1\n"), "{v}");
    // `cilium config view` follows a helm upgrade.
    let before = lab.sh("cilium config view").ok();
    assert_eq!(words(line(&before, "auto-direct-node-routes ")), "auto-direct-node-routes false");
    let keys: Vec<&str> = before.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "sorted: {before}");
    let o = lab.sh(&format!(
        "cd {dir} && helm upgrade -n kube-system cilium cilium/cilium --version 1.15.1 --reuse-values --set autoDirectNodeRoutes=true"
    ));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let after = lab.sh("cilium config view").ok();
    assert_eq!(words(line(&after, "auto-direct-node-routes ")), "auto-direct-node-routes true");

    // cilium-dbg in an agent's pod: its endpoints are its node's pods, its load-balancer
    // entries the Services' frontends.
    let node =
        lab.sh("kubectl -n kube-system get pods -l k8s-app=kube-dns -o jsonpath='{.items[0].spec.nodeName}'").ok();
    let agent = lab
        .sh(&format!("kubectl -n kube-system get pods -l k8s-app=cilium --field-selector spec.nodeName={node} -o jsonpath='{{.items[0].metadata.name}}'"))
        .ok();
    let dbg = |args: &str| lab.sh(&format!("kubectl -n kube-system exec {agent} -c cilium-agent -- cilium-dbg {args}"));
    let eps = dbg("endpoint list").ok();
    assert!(
        eps.starts_with("ENDPOINT   POLICY (ingress)   POLICY (egress)   IDENTITY   LABELS (source:key[=value])"),
        "{eps}"
    );
    assert!(eps.contains("reserved:host"), "{eps}");
    let dns_ips = lab
        .sh(&format!("kubectl -n kube-system get pods -l k8s-app=kube-dns --field-selector spec.nodeName={node} -o jsonpath='{{.items[*].status.podIP}}'"))
        .ok();
    for ip in dns_ips.split_whitespace() {
        let row = eps.lines().find(|l| l.contains(&format!(" {ip} "))).unwrap_or_else(|| panic!("{ip} in {eps}"));
        assert!(row.contains("Disabled           Disabled") && row.trim_end().ends_with("ready"), "{row}");
    }
    assert!(eps.contains("k8s:k8s-app=kube-dns"), "{eps}");
    let lb = dbg("bpf lb list").ok();
    assert!(lb.starts_with("SERVICE ADDRESS"), "{lb}");
    let api = lab.sh("kubectl get endpointslices -l kubernetes.io/service-name=kubernetes -o jsonpath='{.items[0].endpoints[0].addresses[0]}'").ok();
    assert!(lb.contains(&format!("{api}:6443 (")), "{lb}");
    assert!(lb.contains("[ClusterIP, non-routable]"), "{lb}");
    let v = dbg("version").ok();
    assert!(v.starts_with("Client: 1.15.1 ") && v.contains("\nDaemon: 1.15.1 "), "{v}");
    let c = dbg("config").ok();
    assert!(c.starts_with("##### Read-write configurations #####\n") && c.contains("PolicyEnforcement"), "{c}");
    let all = dbg("config --all").ok();
    assert!(all.lines().any(|l| words(l) == "auto-direct-node-routes : true"), "{all}");
}

/// An agent that cannot program its node (an ip-masq-agent configuration it cannot read) never
/// turns ready: `cilium status --wait` gives up after `--wait-duration` with the CLI's error,
/// the last status on stderr.
fn cilium_status_wait_times_out_when_an_agent_cannot_become_ready() {
    let lab = Lab::up("ciliumbroken");
    let dir = fixtures().display().to_string();
    let o = lab.sh(
        "printf 'kind: Cluster\\napiVersion: kind.x-k8s.io/v1alpha4\\nnetworking:\\n  disableDefaultCNI: true\\n  kubeProxyMode: none\\n' > /tmp/one.yaml && \
         kind create cluster --config /tmp/one.yaml",
    );
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let o = lab.sh(&format!(
        "cd {dir} && {INSTALL} --set ipMasqAgent.enabled=true --set 'ipMasqAgent.config.nonMasqueradeCIDRs={{not-a-cidr}}'"
    ));
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    // The agent runs, but its node is never programmed.
    lab.eventually(
        "kubectl -n kube-system get pods -l k8s-app=cilium -o jsonpath='{.items[0].status.phase}' | grep -x Running",
    );
    let start = Instant::now();
    let o = lab.sh("cilium status --wait --wait-duration 20s");
    let took = start.elapsed();
    assert_eq!(o.code, 1, "{}{}", o.stdout, o.stderr);
    assert!(took.as_secs() >= 20 && took.as_secs() < 60, "{took:?}");
    assert!(
        o.stderr.contains(
            "Error: Unable to determine status:  timeout while waiting for status to become successful: context deadline exceeded"
        ),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("1 pods of DaemonSet cilium are not ready"), "{}", o.stderr);
    assert!(o.stderr.contains("not-a-cidr"), "the agent's own error: {}", o.stderr);
    let ready = lab.sh("kubectl -n kube-system get ds cilium -o jsonpath='{.status.numberReady}'").ok();
    assert_eq!(ready, "0");
}
