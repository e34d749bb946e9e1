//! What kubeadm and kind put in a fresh cluster: control-plane static pods, the `kubeadm-config`
//! and `coredns` ConfigMaps, the `kubernetes` and `kube-dns` Services, system pods.

use std::time::SystemTime;

use super::config::{Cluster, Role};
use super::state::{ClusterRt, suffix};
use super::store::{App, ConfigMap, Container, Labels, Pod, Store};
use super::topology::{NodePlan, Plan};

/// What kubeadm and kind put in a fresh cluster.
pub fn seed_system_objects(store: &mut Store, plan: &Plan, config: &Cluster, now: SystemTime) {
    let cp = plan.nodes.iter().find(|n| n.role == Role::ControlPlane).expect("checked by the config").name.clone();
    let ks = "kube-system";
    for comp in ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
        store.pods.push(Pod {
            namespace: ks.into(),
            name: format!("{comp}-{cp}"),
            labels: [("component".to_string(), comp.to_string()), ("tier".into(), "control-plane".into())].into(),
            node: cp.clone(),
            host_network: true,
            needs_cni: false,
            app: App::Sleeper,
            containers: vec![Container {
                name: comp.into(),
                image: format!("registry.k8s.io/{comp}:v3.5.10-0"),
                ports: vec![],
            }],
            owner: Some(format!("Node/{cp}")),
            created: now,
            ip: plan.nodes.iter().find(|n| n.name == cp).map(|n| n.ip),
            running: true,
        });
    }
    if config.networking.kube_proxy_mode.as_deref() != Some("none") {
        store.daemonsets.push((ks.into(), "kube-proxy".into()));
        for n in &plan.nodes {
            store.pods.push(Pod {
                namespace: ks.into(),
                name: format!("kube-proxy-{}", suffix(5)),
                labels: [("k8s-app".to_string(), "kube-proxy".to_string())].into(),
                node: n.name.clone(),
                host_network: true,
                needs_cni: false,
                app: App::Sleeper,
                containers: vec![Container {
                    name: "kube-proxy".into(),
                    image: "registry.k8s.io/kube-proxy:v1.29.2".into(),
                    ports: vec![],
                }],
                owner: Some("DaemonSet/kube-proxy".into()),
                created: now,
                ip: Some(n.ip),
                running: true,
            });
        }
    }
    let pod_subnet = plan.pod_subnet.to_string();
    let svc_subnet = plan.service_subnet.to_string();
    store.configmaps.push(ConfigMap {
        namespace: ks.into(),
        name: "kubeadm-config".into(),
        data: [(
            "ClusterConfiguration".to_string(),
            format!(
                "apiServer:\n  certSANs:\n  - localhost\n  - 127.0.0.1\n  extraArgs:\n    runtime-config: \"\"\n  timeoutForControlPlane: 4m0s\napiVersion: kubeadm.k8s.io/v1beta3\ncertificatesDir: /etc/kubernetes/pki\nclusterName: {}\ncontrolPlaneEndpoint: {cp}:6443\ncontrollerManager:\n  extraArgs:\n    enable-hostpath-provisioner: \"true\"\ndns: {{}}\netcd:\n  local:\n    dataDir: /var/lib/etcd\nimageRepository: registry.k8s.io\nkind: ClusterConfiguration\nkubernetesVersion: v1.29.2\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: {pod_subnet}\n  serviceSubnet: {svc_subnet}\nscheduler: {{}}\n",
                plan.cluster
            ),
        )]
        .into(),
        created: now,
    });
    store.configmaps.push(ConfigMap {
        namespace: ks.into(),
        name: "coredns".into(),
        data: [("Corefile".to_string(), COREFILE.to_string())].into(),
        created: now,
    });
}

pub const COREFILE: &str = ".:53 {\n    errors\n    health {\n       lameduck 5s\n    }\n    ready\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n       pods insecure\n       fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }\n    prometheus :9153\n    forward . /etc/resolv.conf {\n       max_concurrent 1000\n    }\n    cache 30\n    loop\n    reload\n    loadbalance\n}\n";

impl ClusterRt {
    /// `kubernetes` and `kube-dns`, at the addresses kubeadm gives them.
    pub fn seed_services(&mut self) {
        use super::store::{Service, ServicePort};
        let sub = self.plan.service_subnet;
        let port = |name: &str, port: u16, target: u16, proto: &str| ServicePort {
            name: Some(name.into()),
            port,
            target_port: target,
            protocol: proto.into(),
            node_port: None,
        };
        let now = SystemTime::now();
        self.store.services.push(Service {
            namespace: "default".into(),
            name: "kubernetes".into(),
            labels: [("component".to_string(), "apiserver".to_string()), ("provider".into(), "kubernetes".into())]
                .into(),
            type_: "ClusterIP".into(),
            cluster_ip: sub.nth(1),
            ports: vec![port("https", 443, 6443, "TCP")],
            selector: Labels::new(),
            created: now,
            load_balancer_ip: None,
        });
        self.store.services.push(Service {
            namespace: "kube-system".into(),
            name: "kube-dns".into(),
            labels: [("k8s-app".to_string(), "kube-dns".to_string())].into(),
            type_: "ClusterIP".into(),
            cluster_ip: sub.nth(10),
            ports: vec![port("dns", 53, 53, "UDP"), port("dns-tcp", 53, 53, "TCP"), port("metrics", 9153, 9153, "TCP")],
            selector: [("k8s-app".to_string(), "kube-dns".to_string())].into(),
            created: now,
            load_balancer_ip: None,
        });
    }
}

pub fn system_pod(base: &str, node: &NodePlan, owner: &str, image: &str, now: SystemTime) -> Pod {
    Pod {
        namespace: "kube-system".into(),
        name: format!("{base}-{}", suffix(5)),
        labels: Labels::from([("k8s-app".to_string(), base.to_string())]),
        node: node.name.clone(),
        host_network: true,
        needs_cni: false,
        app: App::Sleeper,
        containers: vec![Container { name: base.into(), image: image.into(), ports: vec![] }],
        owner: Some(owner.into()),
        created: now,
        ip: Some(node.ip),
        running: true,
    }
}
