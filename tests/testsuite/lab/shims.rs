//! The control-plane shims on the lab: outputs in the real tools' formats, and one clear error
//! (exit 2) for anything outside the subset.
//!
//! Pinned to the emulation (`Lab::up_emulated`): these are the hand-written kubectl and helm
//! shims and their fixed outputs, which the real control plane replaces by the real binaries.
//! They go with the emulation.

use crate::lab::support::Lab;

crate::tests![
    kind_create_and_pending_pods_without_cni(Lab),
    helm_kubectl_and_docker_after_cilium(Lab),
    outside_the_subset_is_one_clear_error(Lab),
    kubectl_edit_with_kube_editor_and_nmcli(Lab),
    cluster_info_and_the_demo_app_by_url(Lab)
];

fn kind_create_and_pending_pods_without_cni() {
    let lab = Lab::up_emulated("kind", None);
    let o = lab.sh("host", "kind create cluster --config=kind-config.yaml");
    assert_eq!(o.code, 0);
    let want = "Creating cluster \"kind\" ...\n ✓ Ensuring node image (kindest/node:v1.29.2) 🖼\n ✓ Preparing nodes 📦 📦 📦  \n ✓ Writing configuration 📜 \n ✓ Starting control-plane 🕹️ \n ✓ Installing StorageClass 💾 \n ✓ Joining worker nodes 🚜 \nSet kubectl context to \"kind-kind\"\nYou can now use your cluster with:\n\nkubectl cluster-info --context kind-kind\n\nHave a nice day! 👋\n";
    assert_eq!(o.stderr, want);
    let again = lab.sh("host", "kind create cluster");
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("already exist"), "{}", again.stderr);
    let nodes = lab.sh("host", "kubectl get nodes").ok();
    assert!(nodes.starts_with("NAME                 STATUS     ROLES           AGE   VERSION\nkind-control-plane   NotReady   control-plane   "), "{nodes}");
    let pods = lab.sh("host", "kubectl get pods -A").ok();
    let coredns: Vec<&str> = pods.lines().filter(|l| l.contains("coredns-")).collect();
    assert_eq!(coredns.len(), 2);
    assert!(coredns.iter().all(|l| l.contains("0/1     Pending")), "{pods}");
    assert!(!pods.contains("kube-proxy"), "kubeProxyMode: none\n{pods}");
    assert!(pods.lines().any(|l| l.starts_with("kube-system          etcd-kind-control-plane ")), "{pods}");
    // Exec into a pending pod fails like kubectl.
    let pending = coredns[0].split_whitespace().nth(1).unwrap().to_string();
    let o = lab.sh("host", &format!("kubectl -n kube-system exec {pending} -- true"));
    assert_eq!(o.code, 1, "{}", o.stderr);
}

fn helm_kubectl_and_docker_after_cilium() {
    let lab = Lab::article_emulated("tools");
    assert_eq!(
        lab.sh("host", "helm repo add cilium https://helm.cilium.io/").ok(),
        "\"cilium\" has been added to your repositories\n"
    );
    let nodes = lab.sh("host", "kubectl get nodes").ok();
    assert_eq!(nodes.lines().filter(|l| l.contains("   Ready   ")).count(), 3, "{nodes}");
    let pods = lab.sh("host", "kubectl get pods").ok();
    assert_eq!(pods.lines().next().unwrap(), "NAME                         READY   STATUS    RESTARTS   AGE");
    assert_eq!(pods.lines().filter(|l| l.contains("1/1     Running")).count(), 4, "{pods}");
    let cm = lab.sh("host", "kubectl get configmaps -n kube-system kubeadm-config -o yaml | grep podSubnet").ok();
    assert_eq!(cm, "      podSubnet: 10.244.0.0/16\n");
    let cms = lab.sh("host", "kubectl get cm -n kube-system").ok();
    assert!(cms.starts_with("NAME             DATA   AGE\ncoredns          1      "), "{cms}");
    let yaml = lab.sh("host", "kubectl get pod tiefighter -o yaml").ok();
    assert!(
        yaml.contains("kind: Pod") && yaml.contains("  name: tiefighter") && yaml.contains("podIP: 10.244."),
        "{yaml}"
    );
    let names = lab.sh("host", "kubectl get pods -l class=deathstar -o jsonpath='{.items[*].status.phase}'").ok();
    assert_eq!(names, "Running Running");
    assert_eq!(lab.sh("host", "kubectl exec tiefighter -- hostname").ok(), "tiefighter\n");
    assert_eq!(lab.sh("host", "docker exec kind-worker2 hostname").ok(), "kind-worker2\n");
    let status = lab.sh("host", "kubectl -n kube-system exec ds/cilium -- cilium-dbg status").ok();
    assert!(status.contains("KubeProxyReplacement:    True"), "{status}");
    let ds = lab.sh("host", "kubectl -n kube-system rollout restart daemonset cilium").ok();
    assert_eq!(ds, "daemonset.apps/cilium restarted\n");
    assert_eq!(
        lab.sh("host", "kubectl rollout status deployment/deathstar").ok(),
        "deployment \"deathstar\" successfully rolled out\n"
    );
    let del = lab.sh("host", "kubectl delete -f http-sw-app.yaml").ok();
    assert_eq!(
        del,
        "service \"deathstar\" deleted\ndeployment.apps \"deathstar\" deleted\npod \"tiefighter\" deleted\npod \"xwing\" deleted\n"
    );
    let empty = lab.sh("host", "kubectl get pods");
    assert_eq!((empty.stdout.as_str(), empty.stderr.as_str()), ("", "No resources found in default namespace.\n"));
    let missing = lab.sh("host", "kubectl get pod nope");
    assert_eq!((missing.code, missing.stderr.as_str()), (1, "Error from server (NotFound): pods \"nope\" not found\n"));
}

fn outside_the_subset_is_one_clear_error() {
    let lab = Lab::up_emulated("unsup", Some("kind-config.yaml"));
    for cmd in [
        "kubectl port-forward svc/x 8080:80",
        "kubectl get events",
        "kind load image-archive img.tar",
        "helm install x bitnami/nginx",
        "docker run -ti busybox",
        "helm install -n kube-system cilium cilium/cilium --set routingMode=tunnel",
    ] {
        let o = lab.sh("host", cmd);
        assert_eq!(o.code, 2, "{cmd}: {}", o.stderr);
        assert!(o.stderr.contains("not supported on the lab backend"), "{cmd}: {}", o.stderr);
    }
    let o = lab.sh("host", "kubectl get pods --watch");
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("mark the block backend=kind"), "{}", o.stderr);
    // The shims exist only inside the lab.
    let o = lab.sh("kind-worker", "case $PATH in *tutor/labs*) echo shims;; *) echo none;; esac");
    assert_eq!(o.ok(), "none\n");
    let o = lab.sh("host", "command -v kubectl");
    assert!(o.ok().starts_with("/run/tutor/labs/"));
}

fn kubectl_edit_with_kube_editor_and_nmcli() {
    let lab = Lab::up_emulated("edit", Some("kind-config.yaml"));
    assert_eq!(
        lab.sh("host", "nmcli dev show | grep 'IP4.DNS'").ok(),
        "IP4.DNS[1]:                             192.168.1.1\n"
    );
    let o = lab
        .sh(
            "host",
            "KUBE_EDITOR='sed -i s|/etc/resolv.conf|192.168.1.1|' kubectl edit configmaps -n kube-system coredns",
        )
        .ok();
    assert_eq!(o, "configmap/coredns edited\n");
    let cf = lab.sh("host", "kubectl -n kube-system get cm coredns -o jsonpath='{.data.Corefile}' | grep forward").ok();
    assert_eq!(cf, "    forward . 192.168.1.1 {\n");
    assert_eq!(
        lab.sh("host", "KUBE_EDITOR=true kubectl -n kube-system edit cm coredns").ok(),
        "Edit cancelled, no changes made.\n"
    );
    let o = lab.sh("host", "unset KUBE_EDITOR EDITOR; kubectl -n kube-system edit cm coredns");
    assert_eq!(o.code, 2, "{}", o.stderr);
}

fn cluster_info_and_the_demo_app_by_url() {
    let lab = Lab::up_emulated("url", Some("kind-config.yaml"));
    assert_eq!(
        lab.sh("host", "kubectl cluster-info dump | grep -m 1 cluster-cidr").ok(),
        "              \"--cluster-cidr=10.244.0.0/16\",\n"
    );
    assert!(lab.sh("host", "kubectl cluster-info").ok().starts_with("Kubernetes control plane is running at https://"));
    let o = lab
        .sh(
            "host",
            "kubectl apply -f https://raw.githubusercontent.com/cilium/cilium/HEAD/examples/minikube/http-sw-app.yaml",
        )
        .ok();
    assert_eq!(
        o,
        "service/deathstar created\ndeployment.apps/deathstar created\npod/tiefighter created\npod/xwing created\n"
    );
    let o = lab.sh("host", "kubectl apply -f http-sw-app.yaml").ok();
    assert_eq!(
        o,
        "service/deathstar unchanged\ndeployment.apps/deathstar unchanged\npod/tiefighter unchanged\npod/xwing unchanged\n"
    );
    let o = lab.sh("host", "kubectl apply -f https://example.com/app.yaml");
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("not supported on the lab backend"), "{}", o.stderr);
}
