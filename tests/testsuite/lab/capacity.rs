//! Running out of pod addresses on the emulated lab: the command that asked for the pods fails
//! naming the node and its podCIDR, the pods stay Pending, and the lab stays usable.
//!
//! Pinned to the emulation (`Lab::up_emulated`): what it checks is the emulated control plane's
//! own failure (the apply that asked for the pods fails naming the node). On the real control
//! plane the apply succeeds and the node agent reports the pod instead; this test goes with the
//! emulation.

use crate::lab::support::Lab;

crate::tests![a_full_pod_cidr_fails_one_apply_and_the_lab_goes_on(Lab)];

fn a_full_pod_cidr_fails_one_apply_and_the_lab_goes_on() {
    let lab = Lab::up_emulated("crowd", Some("kind-one-node.yaml"));
    let full = lab.sh("host", "kubectl apply -f crowd-250.yaml");
    assert_eq!(full.code, 1, "{}{}", full.stdout, full.stderr);
    assert!(
        full.stderr.contains(
            "node kind-control-plane has no free pod address in its podCIDR 10.244.0.0/24 (pods default/crowd-"
        ),
        "{}",
        full.stderr
    );
    assert!(full.stderr.contains("left Pending"), "{}", full.stderr);
    let pods = lab.sh("host", "kubectl get pods").ok();
    let running = pods.lines().filter(|l| l.contains(" Running ")).count();
    let pending = pods.lines().filter(|l| l.contains(" Pending ")).count();
    // .10 to .254 of the /24: 245 addresses, 4 of them kube-system's (CoreDNS, local-path);
    // the pods that got none wait, each named in the error.
    assert_eq!((running, pending), (241, 9), "{pods}");
    assert_eq!(full.stderr.matches("default/crowd-").count(), pending, "{}", full.stderr);
    // Later commands that need no address work, and do not repeat the old error.
    let svc = lab.sh("host", "kubectl apply -f crowd-svc.yaml");
    assert_eq!(svc.code, 0, "{}", svc.stderr);
    // Fewer replicas free addresses: the next pod starts.
    lab.sh("host", "kubectl apply -f crowd-5.yaml && kubectl apply -f late-pod.yaml").ok();
    let late = lab.sh("host", "kubectl get pod late -o jsonpath='{.status.phase} {.status.podIP}'").ok();
    assert!(late.starts_with("Running 10.244.0."), "{late}");
    let pods = lab.sh("host", "kubectl get pods").ok();
    assert_eq!(pods.lines().count(), 7, "header and 6 pods: {pods}");
    assert!(pods.lines().skip(1).all(|l| l.contains(" Running ")), "{pods}");
}
