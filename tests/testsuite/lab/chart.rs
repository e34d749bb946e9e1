//! The lab's Cilium chart (`charts/cilium/`, docs/architecture.md "The Cilium chart") with the
//! real helm: what it renders for the values of the tutorials, that it lints, and that a lab in
//! upstream mode serves it as `https://helm.cilium.io/` to `helm repo add` and `helm install`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use tutor::backend::lab::charts;
use tutor::backend::lab::upstream::{self, Binary};

use super::support::{Out, output, tutor_upstream};

crate::tests![
    the_native_routing_values_render_native_routing(K8s),
    the_defaults_render_a_vxlan_tunnel(K8s),
    masquerading_in_bpf_with_ip_masq_agent(K8s),
    bad_values_are_refused_by_the_chart(K8s),
    every_served_version_lints(K8s),
    helm_installs_cilium_from_the_labs_repository(Lab, K8s)
];

/// The Helm values of tutorials/native-routing.md's first install.
const NATIVE_ROUTING: &str = "\
cluster:
  name: kind-kind

k8sServiceHost: kind-control-plane
k8sServicePort: 6443
kubeProxyReplacement: strict

ipv4:
  enabled: true
ipv6:
  enabled: false

hubble:
  relay:
    enabled: true
  ui:
    enabled: true
ipam:
  mode: kubernetes

routingMode: native
ipv4NativeRoutingCIDR: 10.244.0.0/16
enableIPv4Masquerade: true
autoDirectNodeRoutes: false
";

fn helm(args: &[&str], dir: &Path) -> Out {
    output(
        Command::new(upstream::path(Binary::Helm))
            .args(args)
            .current_dir(dir)
            .env("HELM_CONFIG_HOME", dir.join("helm-config"))
            .env("HELM_CACHE_HOME", dir.join("helm-cache"))
            .env("HELM_DATA_HOME", dir.join("helm-data")),
    )
}

/// The chart as the repository serves `version`, written to `dir`.
fn packaged(version: &str, dir: &Path) -> PathBuf {
    let repo = charts::repo().expect("the chart packages");
    let path = dir.join(format!("cilium-{version}.tgz"));
    std::fs::write(&path, &repo.archives[&format!("cilium-{version}.tgz")]).unwrap();
    path
}

/// The objects `helm template` renders, by (kind, name).
fn render(chart: &Path, dir: &Path, extra: &[&str]) -> BTreeMap<(String, String), serde_yaml::Value> {
    let chart = chart.display().to_string();
    let mut args = vec!["template", "cilium", chart.as_str(), "-n", "kube-system"];
    args.extend_from_slice(extra);
    let out = helm(&args, dir).ok();
    let mut objects = BTreeMap::new();
    for doc in serde_yaml::Deserializer::from_str(&out) {
        let v = <serde_yaml::Value as serde::Deserialize>::deserialize(doc).unwrap();
        if v.is_null() {
            continue;
        }
        let kind = v["kind"].as_str().unwrap().to_string();
        let name = v["metadata"]["name"].as_str().unwrap().to_string();
        assert!(objects.insert((kind.clone(), name.clone()), v).is_none(), "{kind}/{name} twice");
    }
    objects
}

fn config(objects: &BTreeMap<(String, String), serde_yaml::Value>) -> BTreeMap<String, String> {
    let cm = &objects[&("ConfigMap".to_string(), "cilium-config".to_string())];
    assert_eq!(cm["metadata"]["namespace"].as_str(), Some("kube-system"));
    serde_yaml::from_value(cm["data"].clone()).expect("every key of cilium-config is a string")
}

fn names(objects: &BTreeMap<(String, String), serde_yaml::Value>, kind: &str) -> Vec<String> {
    objects.keys().filter(|(k, _)| k == kind).map(|(_, n)| n.clone()).collect()
}

fn source_chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/cilium")
}

fn the_native_routing_values_render_native_routing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("values.yaml"), NATIVE_ROUTING).unwrap();
    // The article's release, as the repository packages it, and the newest (the source).
    for (chart, version) in [(packaged("1.15.1", dir.path()), "1.15.1"), (source_chart(), "1.19.1")] {
        let objects = render(&chart, dir.path(), &["-f", "values.yaml"]);
        let mut accounts = vec!["cilium", "cilium-operator", "hubble-relay", "hubble-ui"];
        if version != "1.15.1" {
            accounts.push("cilium-envoy");
        }
        accounts.sort();
        assert_eq!(names(&objects, "ServiceAccount"), accounts);
        assert_eq!(names(&objects, "ClusterRole"), ["cilium", "cilium-operator", "hubble-ui"]);
        assert_eq!(names(&objects, "ClusterRoleBinding"), ["cilium", "cilium-operator", "hubble-ui"]);
        assert_eq!(names(&objects, "Role"), ["cilium-config-agent"]);
        assert_eq!(names(&objects, "RoleBinding"), ["cilium-config-agent"]);
        assert_eq!(names(&objects, "Secret"), ["cilium-ca", "hubble-relay-client-certs", "hubble-server-certs"]);
        assert_eq!(names(&objects, "Service"), ["hubble-peer", "hubble-relay", "hubble-ui"]);
        assert_eq!(names(&objects, "Deployment"), ["cilium-operator", "hubble-relay", "hubble-ui"]);
        let daemonsets = names(&objects, "DaemonSet");
        if version == "1.15.1" {
            assert_eq!(daemonsets, ["cilium"]);
        } else {
            assert_eq!(daemonsets, ["cilium", "cilium-envoy"]);
        }

        let c = config(&objects);
        for (key, want) in [
            ("routing-mode", "native"),
            ("ipv4-native-routing-cidr", "10.244.0.0/16"),
            ("auto-direct-node-routes", "false"),
            ("kube-proxy-replacement", "strict"),
            ("enable-ipv4-masquerade", "true"),
            ("enable-bpf-masquerade", "false"),
            ("enable-ipv4", "true"),
            ("enable-ipv6", "false"),
            ("ipam", "kubernetes"),
            ("cluster-name", "kind-kind"),
            ("enable-hubble", "true"),
        ] {
            assert_eq!(c.get(key).map(String::as_str), Some(want), "{version}: {key} in {c:?}");
        }
        assert!(!c.contains_key("cluster-pool-ipv4-cidr"), "{c:?}");

        let ds = &objects[&("DaemonSet".to_string(), "cilium".to_string())];
        assert_eq!(ds["metadata"]["labels"]["k8s-app"].as_str(), Some("cilium"));
        let pod = &ds["spec"]["template"]["spec"];
        assert_eq!(pod["hostNetwork"].as_bool(), Some(true));
        let agent = &pod["containers"][0];
        assert_eq!(agent["name"].as_str(), Some("cilium-agent"));
        let image = agent["image"].as_str().unwrap();
        assert!(image.starts_with(&format!("quay.io/cilium/cilium:v{version}@sha256:")), "{image}");
        let env: Vec<(String, String)> = agent["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str()?.to_string())))
            .collect();
        assert!(env.contains(&("KUBERNETES_SERVICE_HOST".into(), "kind-control-plane".into())), "{env:?}");
        assert!(env.contains(&("KUBERNETES_SERVICE_PORT".into(), "6443".into())), "{env:?}");

        let op = &objects[&("Deployment".to_string(), "cilium-operator".to_string())];
        assert_eq!(op["spec"]["replicas"].as_u64(), Some(2));
        let image = op["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap();
        assert!(image.starts_with(&format!("quay.io/cilium/operator-generic:v{version}@sha256:")), "{image}");
    }
}

fn the_defaults_render_a_vxlan_tunnel() {
    let dir = tempfile::tempdir().unwrap();
    let objects = render(&packaged("1.15.1", dir.path()), dir.path(), &[]);
    let c = config(&objects);
    for (key, want) in [
        ("routing-mode", "tunnel"),
        ("tunnel-protocol", "vxlan"),
        ("kube-proxy-replacement", "false"),
        ("ipam", "cluster-pool"),
        ("cluster-pool-ipv4-cidr", "10.0.0.0/8"),
        ("cluster-pool-ipv4-mask-size", "24"),
        ("cluster-name", "default"),
        ("enable-hubble", "true"),
        ("auto-direct-node-routes", "false"),
    ] {
        assert_eq!(c.get(key).map(String::as_str), Some(want), "{key} in {c:?}");
    }
    assert!(!c.contains_key("ipv4-native-routing-cidr") && !c.contains_key("enable-l2-announcements"), "{c:?}");
    // Hubble is on by default, its relay and UI are not.
    assert_eq!(names(&objects, "Deployment"), ["cilium-operator"]);
    assert_eq!(names(&objects, "Service"), ["hubble-peer"]);

    // Geneve, and the kube-proxy replacement's switches of the L2 tutorials.
    let objects = render(
        &packaged("1.15.1", dir.path()),
        dir.path(),
        &[
            "--set",
            "tunnelProtocol=geneve",
            "--set",
            "kubeProxyReplacement=true,l2announcements.enabled=true,externalIPs.enabled=true",
            "--set",
            "devices={eth0,net0},loadBalancer.acceleration=native,k8sClientRateLimit.qps=50,k8sClientRateLimit.burst=100",
            "--set",
            "operator.replicas=1,debug.enabled=true,hubble.enabled=false",
        ],
    );
    let c = config(&objects);
    for (key, want) in [
        ("tunnel-protocol", "geneve"),
        ("kube-proxy-replacement", "true"),
        ("enable-l2-announcements", "true"),
        ("enable-external-ips", "true"),
        ("devices", "eth0 net0"),
        ("bpf-lb-acceleration", "native"),
        ("k8s-client-qps", "50"),
        ("k8s-client-burst", "100"),
        ("debug", "true"),
        ("enable-hubble", "false"),
    ] {
        assert_eq!(c.get(key).map(String::as_str), Some(want), "{key} in {c:?}");
    }
    assert_eq!(names(&objects, "Role"), ["cilium-config-agent", "cilium-l2announcement"]);
    assert!(names(&objects, "Service").is_empty() && names(&objects, "Secret").is_empty());
    let op = &objects[&("Deployment".to_string(), "cilium-operator".to_string())];
    assert_eq!(op["spec"]["replicas"].as_u64(), Some(1));
}

fn masquerading_in_bpf_with_ip_masq_agent() {
    let dir = tempfile::tempdir().unwrap();
    let values = format!(
        "{}\nbpf:\n  masquerade: true\nipMasqAgent:\n  enabled: true\n  config:\n    nonMasqueradeCIDRs:\n      - 10.244.0.0/8\n",
        NATIVE_ROUTING.replace("autoDirectNodeRoutes: false", "autoDirectNodeRoutes: true")
    );
    std::fs::write(dir.path().join("values.yaml"), values).unwrap();
    let objects = render(&packaged("1.15.1", dir.path()), dir.path(), &["-f", "values.yaml"]);
    let c = config(&objects);
    for (key, want) in
        [("enable-bpf-masquerade", "true"), ("enable-ip-masq-agent", "true"), ("auto-direct-node-routes", "true")]
    {
        assert_eq!(c.get(key).map(String::as_str), Some(want), "{key} in {c:?}");
    }
    let masq = &objects[&("ConfigMap".to_string(), "ip-masq-agent".to_string())];
    let conf: serde_json::Value = serde_json::from_str(masq["data"]["config"].as_str().unwrap()).unwrap();
    assert_eq!(conf, serde_json::json!({"nonMasqueradeCIDRs": ["10.244.0.0/8"]}));
}

fn bad_values_are_refused_by_the_chart() {
    let dir = tempfile::tempdir().unwrap();
    let chart = packaged("1.15.1", dir.path()).display().to_string();
    let o = helm(&["template", "cilium", &chart, "--set", "routingMode=direct"], dir.path());
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(o.stderr.contains(r#"routingMode must be "tunnel" or "native", not "direct""#), "{}", o.stderr);
    let o = helm(&["template", "cilium", &chart, "--set", "tunnelProtocol=gre"], dir.path());
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(o.stderr.contains(r#"tunnelProtocol must be "vxlan" or "geneve", not "gre""#), "{}", o.stderr);
}

fn every_served_version_lints() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("values.yaml"), NATIVE_ROUTING).unwrap();
    let repo = charts::repo().unwrap();
    assert!(repo.versions.len() >= 4, "{:?}", repo.versions);
    let mut charts: Vec<PathBuf> = repo.versions.iter().map(|v| packaged(v, dir.path())).collect();
    charts.push(source_chart());
    for chart in &charts {
        let chart = chart.display().to_string();
        for extra in [&[][..], &["-f", "values.yaml"][..]] {
            let mut args = vec!["lint", chart.as_str(), "--strict"];
            args.extend_from_slice(extra);
            let o = helm(&args, dir.path());
            assert_eq!(o.code, 0, "helm {args:?}:\n{}{}", o.stdout, o.stderr);
            assert!(o.stdout.contains("1 chart(s) linted, 0 chart(s) failed"), "{}", o.stdout);
        }
    }
    // `helm show chart` reads what `helm search` lists.
    let o = helm(&["show", "chart", &packaged("1.15.1", dir.path()).display().to_string()], dir.path()).ok();
    assert!(
        o.contains("name: cilium\n") && o.contains("version: 1.15.1\n") && o.contains("appVersion: 1.15.1\n"),
        "{o}"
    );
}

struct Lab(String);

impl Lab {
    fn sh(&self, script: &str) -> Out {
        tutor_upstream(&["lab", "exec", &self.0, "host", "--", "bash", "-c", script])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = tutor_upstream(&["lab", "down", &self.0]);
    }
}

/// The tutorials' commands against the lab's stand-in for helm.cilium.io: the repository is
/// added over HTTPS (the lab's CA), lists every served version, and `helm install` creates
/// the chart's objects in the real API server. (The cilium pods do not run yet: no image of
/// the agent's catalogue plays cilium.)
fn helm_installs_cilium_from_the_labs_repository() {
    let lab = Lab(format!("t{}-chart", std::process::id()));
    tutor_upstream(&["lab", "up", "--name", &lab.0]).ok();
    let o = lab.sh("kind create cluster");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);

    let add = lab.sh("helm repo add cilium https://helm.cilium.io/");
    assert_eq!(add.code, 0, "{}{}", add.stdout, add.stderr);
    assert_eq!(add.stdout, "\"cilium\" has been added to your repositories\n");
    // The lab keeps helm's repositories to itself.
    let home = lab.sh("echo $HELM_CONFIG_HOME").ok();
    assert!(home.starts_with(&format!("/run/tutor/labs/{}/", lab.0)), "{home}");

    let search = lab.sh("helm search repo cilium --versions").ok();
    let rows: Vec<Vec<&str>> = search.lines().skip(1).map(|l| l.split('\t').map(str::trim).collect()).collect();
    let served = &charts::repo().unwrap().versions;
    assert_eq!(rows.len(), served.len(), "{search}");
    for (row, version) in rows.iter().zip(served) {
        assert_eq!(
            &row[..4],
            ["cilium/cilium", version, version, "eBPF-based Networking, Security, and Observability"]
        );
    }

    let started = std::time::Instant::now();
    let install = lab.sh("helm install cilium cilium/cilium -n kube-system --version 1.15.1");
    let took = started.elapsed();
    assert_eq!(install.code, 0, "{}{}", install.stdout, install.stderr);
    assert!(install.stdout.contains("STATUS: deployed"), "{}", install.stdout);
    assert!(install.stdout.contains("Cilium 1.15.1 is installed in namespace kube-system"), "{}", install.stdout);
    eprintln!("helm install took {took:?}");

    let ds =
        lab.sh("kubectl -n kube-system get ds cilium -o jsonpath='{.spec.template.spec.containers[0].image}'").ok();
    assert!(ds.starts_with("quay.io/cilium/cilium:v1.15.1@sha256:351d6685"), "{ds}");
    let mode = lab
        .sh("kubectl -n kube-system get cm cilium-config -o jsonpath='{.data.routing-mode}/{.data.tunnel-protocol}'")
        .ok();
    assert_eq!(mode, "tunnel/vxlan");
    let op = lab.sh("kubectl -n kube-system get deploy cilium-operator -o jsonpath='{.spec.replicas}'").ok();
    assert_eq!(op, "2");
    let list = lab.sh("helm list -n kube-system -o json").ok();
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["chart"], "cilium-1.15.1");
    assert_eq!(list[0]["status"], "deployed");

    // An upgrade to the newest served version with the tutorial's values.
    let o = lab.sh(&format!(
        "f=$(mktemp) && cat > $f <<'EOF'\n{NATIVE_ROUTING}EOF\nhelm upgrade -n kube-system cilium cilium/cilium -f $f | grep STATUS; rm $f"
    ));
    assert_eq!(o.stdout, "STATUS: deployed\n", "{}", o.stderr);
    let mode = lab.sh("kubectl -n kube-system get cm cilium-config -o jsonpath='{.data.routing-mode} {.data.ipv4-native-routing-cidr}'").ok();
    assert_eq!(mode, "native 10.244.0.0/16");
    let envoy = lab.sh("kubectl -n kube-system get ds cilium-envoy -o name").ok();
    assert_eq!(envoy, "daemonset.apps/cilium-envoy\n");
}
