//! The Cilium operator the lab plays (`quay.io/cilium/operator-generic`, docs/architecture.md
//! "The Cilium operator") on the real control plane: `helm install cilium` runs it in the chart's
//! pods; it registers Cilium's CRDs and gives LoadBalancer Services addresses from
//! `CiliumLoadBalancerIPPool`s, as `kubectl` shows them.

use std::time::{Duration, Instant};

use super::support::{Out, tutor_upstream as tutor};

crate::tests![the_operator_registers_crds_and_assigns_load_balancer_ips(Lab, K8s)];

struct Lab(String);

impl Lab {
    fn sh(&self, script: &str) -> Out {
        tutor(&["lab", "exec", &self.0, "host", "--", "bash", "-c", script])
    }

    /// `script` until it exits 0 (`secs` at most): what it printed then.
    fn eventually(&self, secs: u64, script: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let o = self.sh(script);
            if o.code == 0 {
                return o.stdout;
            }
            assert!(Instant::now() < deadline, "`{script}` kept failing:\n{}{}", o.stdout, o.stderr);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn apply(&self, yaml: &str) -> Out {
        self.sh(&format!("kubectl apply -f - <<'EOF'\n{yaml}EOF"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = tutor(&["lab", "down", &self.0]);
    }
}

const POOL: &str = "apiVersion: cilium.io/v2alpha1
kind: CiliumLoadBalancerIPPool
metadata:
  name: default
spec:
  blocks:
  - cidr: 172.18.250.0/24
";

fn lb_service(name: &str, port: u16, annotations: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  annotations: {{{annotations}}}\n  labels: {{{labels}}}\nspec:\n  type: LoadBalancer\n  selector: {{app: {name}}}\n  ports:\n  - port: {port}\n"
    )
}

/// `kubectl get svc NAME`'s EXTERNAL-IP once it is `want`.
fn external_ip(lab: &Lab, name: &str, want: &str) -> String {
    lab.eventually(
        60,
        &format!("ip=$(kubectl get svc {name} --no-headers | awk '{{print $4}}'); echo $ip; [ \"$ip\" = '{want}' ]"),
    )
    .trim()
    .to_string()
}

fn the_operator_registers_crds_and_assigns_load_balancer_ips() {
    let lab = Lab(format!("t{}-ciliumop", std::process::id()));
    tutor(&["lab", "up", "--name", &lab.0]).ok();
    let cfg = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n";
    lab.sh(&format!("cat > /tmp/two.yaml <<'EOF'\n{cfg}EOF\nkind create cluster --config /tmp/two.yaml")).ok();
    lab.sh("helm repo add cilium https://helm.cilium.io/").ok();

    let started = Instant::now();
    lab.sh("helm install cilium cilium/cilium -n kube-system --version 1.15.1").ok();
    let installed = started.elapsed();
    lab.eventually(90, "kubectl get crd ciliumloadbalancerippools.cilium.io");
    let crds_after = started.elapsed();
    // The pool and the Service right away, as a tutorial's next blocks would.
    lab.apply(POOL).ok();
    lab.apply(&lb_service("deathstar-lb", 80, "", "")).ok();
    assert_eq!(external_ip(&lab, "deathstar-lb", "172.18.250.1"), "172.18.250.1");
    let ip_after = started.elapsed();
    eprintln!(
        "helm install took {installed:?}; from its start to the CRDs: {crds_after:?}, to the first EXTERNAL-IP: {ip_after:?}"
    );
    let logs = lab.sh("kubectl -n kube-system logs deploy/cilium-operator").ok();
    eprintln!("{logs}");

    // Both replicas run, one per node, and one holds Cilium's lease.
    let pods = lab.eventually(
        60,
        "out=$(kubectl -n kube-system get pods -l io.cilium/app=operator --no-headers); echo \"$out\"; \
         [ $(echo \"$out\" | grep -c ' 1/1 *Running ') = 2 ]",
    );
    assert_eq!(pods.lines().count(), 2, "{pods}");
    let holder = lab
        .sh("kubectl -n kube-system get lease cilium-operator-resource-lock -o jsonpath='{.spec.holderIdentity}'")
        .ok();
    assert!(holder.starts_with("kind-control-plane-") || holder.starts_with("kind-worker-"), "{holder}");

    let crds = lab.sh("kubectl get crd -o name | grep cilium.io").ok();
    for name in [
        "ciliumclusterwidenetworkpolicies",
        "ciliumendpoints",
        "ciliumidentities",
        "ciliuml2announcementpolicies",
        "ciliumloadbalancerippools",
        "ciliumnetworkpolicies",
        "ciliumnodes",
    ] {
        assert!(crds.contains(&format!("customresourcedefinition.apiextensions.k8s.io/{name}.cilium.io\n")), "{crds}");
    }
    // The columns kubectl prints come from the CRDs.
    let columns = |crd: &str| {
        lab.sh(&format!(
            "kubectl get crd {crd}.cilium.io -o jsonpath='{{.spec.versions[0].additionalPrinterColumns[*].name}}'"
        ))
        .ok()
    };
    assert_eq!(columns("ciliumnodes"), "CiliumInternalIP InternalIP Age");
    assert_eq!(columns("ciliumendpoints"), "Security Identity Endpoint State IPv4 IPv6");

    // `kubectl get ippools`: the pool's counts (254 addresses, one used).
    let pools = lab.eventually(30, "out=$(kubectl get ippools); echo \"$out\"; echo \"$out\" | grep -q ' 253 '");
    let mut lines = pools.lines();
    let header: Vec<&str> = lines.next().unwrap().split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(header, ["NAME", "DISABLED", "CONFLICTING", "IPS AVAILABLE", "AGE"], "{pools}");
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[..4], ["default", "false", "False", "253"], "{pools}");
    let cond = lab
        .sh("kubectl get svc deathstar-lb -o jsonpath='{.status.conditions[?(@.type==\"cilium.io/IPAMRequestSatisfied\")].status}'")
        .ok();
    assert_eq!(cond, "True");

    // A sharing key: a second port shares the address, the same port does not.
    let key = "lbipam.cilium.io/sharing-key: shared";
    lab.apply(&lb_service("web-http", 8080, key, "")).ok();
    lab.apply(&lb_service("web-https", 8443, key, "")).ok();
    lab.apply(&lb_service("web-again", 8080, key, "")).ok();
    assert_eq!(external_ip(&lab, "web-http", "172.18.250.2"), "172.18.250.2");
    assert_eq!(external_ip(&lab, "web-https", "172.18.250.2"), "172.18.250.2");
    assert_eq!(external_ip(&lab, "web-again", "172.18.250.3"), "172.18.250.3");
    // A requested address (the annotation).
    lab.apply(&lb_service("pinned", 80, "lbipam.cilium.io/ips: 172.18.250.77", "")).ok();
    assert_eq!(external_ip(&lab, "pinned", "172.18.250.77"), "172.18.250.77");

    // A disabled pool gives nothing: the Service that only it selects stays pending, and says why.
    let off = "apiVersion: cilium.io/v2alpha1\nkind: CiliumLoadBalancerIPPool\nmetadata:\n  name: spare\nspec:\n  disabled: true\n  blocks:\n  - start: 10.99.0.10\n    stop: 10.99.0.19\n  serviceSelector:\n    matchLabels: {pool: \"off\"}\n";
    lab.apply(off).ok();
    // (The default pool has no selector, so the Service asks for the disabled pool's address.)
    lab.apply(&lb_service("dark", 80, "lbipam.cilium.io/ips: 10.99.0.10", "pool: \"off\"")).ok();
    let reason = lab.eventually(
        30,
        "r=$(kubectl get svc dark -o jsonpath='{.status.conditions[0].reason}'); echo $r; [ -n \"$r\" ]",
    );
    assert_eq!(reason.trim(), "no_pool");
    assert_eq!(external_ip(&lab, "dark", "<pending>"), "<pending>");
    let row = lab.eventually(30, "kubectl get ippools spare --no-headers | grep ' true '");
    assert_eq!(row.split_whitespace().take(4).collect::<Vec<_>>(), ["spare", "true", "False", "10"], "{row}");

    // An overlapping pool is conflicting, and says with what.
    let red = "apiVersion: cilium.io/v2alpha1\nkind: CiliumLoadBalancerIPPool\nmetadata:\n  name: red\nspec:\n  blocks:\n  - cidr: 172.18.250.0/26\n";
    lab.apply(red).ok();
    let row = lab.eventually(30, "kubectl get ippools red --no-headers | grep ' True '");
    assert_eq!(row.split_whitespace().take(3).collect::<Vec<_>>(), ["red", "false", "True"], "{row}");
    let why = lab
        .sh("kubectl get ippools/red -o jsonpath='{.status.conditions[?(@.type==\"cilium.io/PoolConflict\")].message}'")
        .ok();
    assert_eq!(
        why,
        "Pool conflicts since range '172.18.250.0/26' overlaps range '172.18.250.0/24' from IP Pool 'default'"
    );

    // Pools the API refuses, and one it takes but LB IPAM cannot read (a condition, no crash).
    let o = lab.apply(&POOL.replace("name: default", "name: bad").replace("172.18.250.0/24", "10.0.0.0/33"));
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("must be of type cidr"), "{}", o.stderr);
    let o = lab
        .apply(&POOL.replace("name: default", "name: odd").replace("- cidr: 172.18.250.0/24", "- start: 10.7.0.300"));
    o.ok();
    let why = lab.eventually(
        30,
        "m=$(kubectl get ippools odd -o jsonpath='{.status.conditions[?(@.type==\"cilium.io/PoolInvalid\")].message}'); echo $m; [ -n \"$m\" ]",
    );
    assert_eq!(why.trim(), "spec.blocks[0]: bad IPv4 address \"10.7.0.300\"");

    // The default pool deleted: its addresses are taken back and given again from the pool that
    // no longer conflicts; that one deleted too, the Services are pending.
    lab.sh("kubectl delete ippools default").ok();
    assert_eq!(external_ip(&lab, "deathstar-lb", "172.18.250.1"), "172.18.250.1");
    let row = lab.eventually(30, "kubectl get ippools red --no-headers | grep ' False '");
    assert_eq!(row.split_whitespace().take(3).collect::<Vec<_>>(), ["red", "false", "False"], "{row}");
    assert_eq!(external_ip(&lab, "pinned", "<pending>"), "<pending>", "172.18.250.77 is in no pool now");
    lab.sh("kubectl delete ippools red").ok();
    assert_eq!(external_ip(&lab, "deathstar-lb", "<pending>"), "<pending>");
    let reason = lab.sh("kubectl get svc deathstar-lb -o jsonpath='{.status.conditions[0].reason}'").ok();
    assert_eq!(reason, "no_pool");
}
