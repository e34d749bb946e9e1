//! The supervisor's model of one lab: its namespaces (host, nodes, pods), the Kubernetes
//! objects and the datapath settings, kept consistent with each other.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rand::Rng;

use super::LabError;
use super::apps::{self, Server};
use super::bpf_masq::BpfMasq;
use super::config::{Cluster, Role};
use super::dns::{self, DnsServer, Policy, Zone};
use super::network;
use super::registry::{self, LabInfo, NodeInfo, PodInfo};
use super::sandbox::{Mounts, NsThread};
use super::store::{App, ConfigMap, Container, Labels, NodeObj, Pod, Store};
use super::topology::{self, GATEWAY, NodePlan, Plan};
use super::values::CiliumValues;

pub struct NodeRt {
    pub plan: NodePlan,
    pub ns: NsThread,
    /// Docker's embedded DNS stand-in (127.0.0.11).
    pub dns: DnsServer,
    /// BPF masquerade programs, when the Helm values ask for them.
    pub bpf: Option<BpfMasq>,
}

pub struct PodRt {
    pub ns: NsThread,
    pub lxc: String,
    pub node: String,
    pub ip: Ipv4Addr,
    pub server: Option<Server>,
    pub dns: Option<DnsServer>,
}

pub struct HelmRelease {
    pub name: String,
    pub namespace: String,
    pub chart: String,
    pub revision: u32,
    pub updated: SystemTime,
}

pub struct ClusterRt {
    pub plan: Plan,
    pub config: Cluster,
    pub nodes: Vec<NodeRt>,
    pub store: Store,
    pub pods: HashMap<(String, String), PodRt>,
    pub values: Option<CiliumValues>,
    pub release: Option<HelmRelease>,
    pub created: SystemTime,
    /// Round-robin position of the scheduler.
    pub scheduled: usize,
    /// `<svc>.<ns>.svc.cluster.local` → ClusterIP, shared with the CoreDNS stand-ins.
    pub zone: Zone,
    /// LoadBalancer services' datapath (XDP LB, announcements).
    pub lb: super::xdp_lb::LbState,
}

pub struct Lab {
    pub name: String,
    pub dir: PathBuf,
    pub owner: Option<i32>,
    pub host: NsThread,
    pub outside: super::outside::Outside,
    pub cluster: Option<ClusterRt>,
}

fn write(path: &Path, text: &str) -> Result<(), LabError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| LabError::System(format!("{}: {e}", parent.display())))?;
    }
    std::fs::write(path, text).map_err(|e| LabError::System(format!("{}: {e}", path.display())))
}

/// A per-target /etc/resolv.conf, and the lab's CA bundle, bind-mounted over the real ones
/// inside the target.
fn resolv_mount(dir: &Path, slug: &str, text: &str) -> Result<Mounts, LabError> {
    let file = dir.join("etc").join(slug).join("resolv.conf");
    write(&file, text)?;
    let mut binds = vec![(file, PathBuf::from("/etc/resolv.conf"))];
    let bundle = dir.join("etc").join("ca-certificates.crt");
    if bundle.exists() {
        binds.push((bundle, PathBuf::from(super::tls::SYSTEM_BUNDLE)));
    }
    Ok(Mounts { binds })
}

/// Kubernetes' random name suffix alphabet (no vowels, no confusable digits).
pub fn suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

impl Lab {
    /// Claim the registry entry and build the lab host (bridge, shims).
    pub fn new(name: &str, owner: Option<i32>, exe: &Path) -> Result<Lab, LabError> {
        let dir = registry::claim(name)?;
        let bin = registry::shim_dir(name);
        std::fs::create_dir_all(&bin).map_err(|e| LabError::System(format!("{}: {e}", bin.display())))?;
        for tool in super::shims::TOOLS {
            std::os::unix::fs::symlink(exe, bin.join(tool))
                .map_err(|e| LabError::System(format!("{}: {e}", bin.display())))?;
        }
        super::tls::write_bundle(&dir)?;
        // The user's machine resolves through its LAN router, as the article's laptop does.
        let mounts = resolv_mount(&dir, "host", "nameserver 192.168.1.1\n")?;
        let host = NsThread::new("host", None, mounts)?;
        network::setup_host(&host, name)?;
        let outside = super::outside::build(&host, name)?;
        Ok(Lab { name: name.to_string(), dir, owner, host, outside, cluster: None })
    }

    pub fn info(&self) -> LabInfo {
        let me = std::process::id() as i32;
        let (nodes, pods, cluster) = match &self.cluster {
            None => (vec![], vec![], None),
            Some(c) => (
                c.nodes
                    .iter()
                    .map(|n| NodeInfo {
                        name: n.plan.name.clone(),
                        role: n.plan.role,
                        ip: n.plan.ip,
                        pod_cidr: n.plan.pod_cidr.to_string(),
                        tid: n.ns.tid(),
                    })
                    .collect(),
                c.store
                    .pods
                    .iter()
                    .filter(|p| !p.host_network)
                    .map(|p| {
                        let rt = c.pods.get(&(p.namespace.clone(), p.name.clone()));
                        PodInfo {
                            namespace: p.namespace.clone(),
                            name: p.name.clone(),
                            node: p.node.clone(),
                            ip: p.ip,
                            tid: rt.map(|r| r.ns.tid()),
                        }
                    })
                    .collect(),
                Some(c.plan.cluster.clone()),
            ),
        };
        LabInfo {
            name: self.name.clone(),
            pid: me,
            start_time: registry::start_time(me).unwrap_or_default(),
            owner: self.owner,
            host_tid: self.host.tid(),
            cluster,
            nodes,
            pods,
            netns_inodes: self.netns_inodes(),
        }
    }

    /// Inodes of every network namespace of the lab (to find processes left inside them).
    pub fn netns_inodes(&self) -> Vec<u64> {
        let me = std::process::id();
        let mut tids = vec![self.host.tid(), self.outside.router.tid()];
        if let Some(c) = &self.cluster {
            tids.extend(c.nodes.iter().map(|n| n.ns.tid()));
            tids.extend(c.pods.values().map(|p| p.ns.tid()));
        }
        tids.iter()
            .filter_map(|t| std::fs::metadata(format!("/proc/{me}/task/{t}/ns/net")).ok().map(|m| m.ino()))
            .collect()
    }

    pub fn publish(&self) -> Result<(), LabError> {
        registry::write_info(&self.info())
    }

    /// `kind create cluster`.
    pub fn create_cluster(&mut self, config: Cluster, name: Option<&str>) -> Result<&ClusterRt, LabError> {
        let plan = topology::plan(&config, name)?;
        if let Some(c) = &self.cluster {
            return Err(LabError::Input(format!(
                "node(s) already exist for a cluster with the name \"{}\"",
                c.plan.cluster
            )));
        }
        let mut nodes = Vec::new();
        for p in &plan.nodes {
            // kind rewrites the nodes' resolv.conf from docker's 127.0.0.11 to the gateway.
            let mounts = resolv_mount(&self.dir, &p.name, &format!("nameserver {GATEWAY}\noptions ndots:0\n"))?;
            let ns = NsThread::new(&p.name, Some(&p.name), mounts)?;
            network::attach_node(&self.host, &ns, &self.name, p)?;
            let names = plan.nodes.iter().map(|n| (n.name.clone(), n.ip)).collect();
            let policy = Policy {
                zone: Arc::new(RwLock::new(names)),
                authoritative_suffix: None,
                upstream: Some(SocketAddr::from((super::outside::ROUTER, 53))),
            };
            let dns = dns::serve(&ns, SocketAddr::from((Ipv4Addr::new(127, 0, 0, 11), 0)), policy)?;
            network::docker_dns_rules(&ns, dns.udp.port(), dns.tcp.port())?;
            nodes.push(NodeRt { plan: p.clone(), ns, dns, bpf: None });
        }
        let now = SystemTime::now();
        let mut store = Store::default();
        for n in &plan.nodes {
            store.nodes.push(NodeObj { name: n.name.clone(), role: n.role, ip: n.ip, pod_cidr: n.pod_cidr.to_string(), created: now });
        }
        seed_system_objects(&mut store, &plan, &config, now);
        let mut rt = ClusterRt {
            plan,
            config,
            nodes,
            store,
            pods: HashMap::new(),
            values: None,
            release: None,
            created: now,
            scheduled: 0,
            zone: Zone::default(),
            lb: super::xdp_lb::LbState::new(&self.name, self.host.tid()),
        };
        let kube_dns: Labels = [("k8s-app".to_string(), "kube-dns".to_string())].into();
        rt.seed_deployment("kube-system", "coredns", 2, kube_dns, "registry.k8s.io/coredns/coredns:v1.11.1");
        rt.roll("kube-system", "coredns");
        let lpp: Labels = [("app".to_string(), "local-path-provisioner".to_string())].into();
        rt.seed_deployment("local-path-storage", "local-path-provisioner", 1, lpp, "docker.io/kindest/local-path-provisioner:v20240202-8f1494ea");
        rt.roll("local-path-storage", "local-path-provisioner");
        rt.seed_services();
        if !rt.config.networking.disable_default_cni {
            rt.install_kindnet()?;
        }
        rt.reconcile(&self.dir)?;
        self.cluster = Some(rt);
        self.publish()?;
        Ok(self.cluster.as_ref().unwrap())
    }

    /// `kind delete cluster`: every node and pod namespace goes, the lab host stays.
    pub fn delete_cluster(&mut self) -> Option<String> {
        let c = self.cluster.take()?;
        let name = c.plan.cluster.clone();
        // Node links on the bridge vanish with the node namespaces' eth0 peers.
        drop(c);
        let _ = self.publish();
        Some(name)
    }

    pub fn cluster_mut(&mut self) -> Result<&mut ClusterRt, LabError> {
        self.cluster.as_mut().ok_or_else(|| LabError::Input("no cluster: run `kind create cluster` first".into()))
    }
}

/// What kubeadm and kind put in a fresh cluster.
fn seed_system_objects(store: &mut Store, plan: &Plan, config: &Cluster, now: SystemTime) {
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
            containers: vec![Container { name: comp.into(), image: format!("registry.k8s.io/{comp}:v3.5.10-0"), ports: vec![] }],
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
                containers: vec![Container { name: "kube-proxy".into(), image: "registry.k8s.io/kube-proxy:v1.29.2".into(), ports: vec![] }],
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
    pub fn node(&self, name: &str) -> Option<&NodeRt> {
        self.nodes.iter().find(|n| n.plan.name == name)
    }

    fn plans(&self) -> Vec<NodePlan> {
        self.nodes.iter().map(|n| n.plan.clone()).collect()
    }

    /// kind's default CNI (kindnet): pod routes to every node, no Cilium devices.
    fn install_kindnet(&mut self) -> Result<(), LabError> {
        let plans = self.plans();
        let values = CiliumValues {
            routing_mode: Some("native".into()),
            auto_direct_node_routes: true,
            ..Default::default()
        };
        for n in &self.nodes {
            super::datapath::install_node(&n.ns, &n.plan)?;
            super::datapath::sync_node_routes(&n.ns, &n.plan, &plans, &values)?;
        }
        self.store.cni = true;
        Ok(())
    }

    /// Apply Cilium's Helm values: devices and routes on every node, then the pods that were
    /// waiting for a network.
    pub fn apply_cilium(&mut self, values: CiliumValues, dir: &Path) -> Result<(), LabError> {
        let plans = self.plans();
        let first = self.values.is_none();
        for n in &self.nodes {
            if first {
                super::datapath::install_node(&n.ns, &n.plan)?;
            }
            super::datapath::sync_node_routes(&n.ns, &n.plan, &plans, &values)?;
        }
        self.sync_masquerade(&values)?;
        if first {
            let now = SystemTime::now();
            self.store.daemonsets.push(("kube-system".into(), "cilium".into()));
            for n in &self.nodes {
                self.store.pods.push(system_pod("cilium", &n.plan, "DaemonSet/cilium", "quay.io/cilium/cilium:v1.15.1", now));
            }
            let cp = self.nodes.iter().find(|n| n.plan.role == Role::Worker).unwrap_or(&self.nodes[0]);
            let mut op = system_pod("cilium-operator", &cp.plan, "Deployment/cilium-operator", "quay.io/cilium/operator-generic:v1.15.1", now);
            op.name = format!("cilium-operator-{}-{}", "5d9f8c8b7", suffix(5));
            self.store.pods.push(op);
            // Hubble's pods need the pod network, as in a real install.
            let enabled = |path: [&str; 3]| {
                values.raw.get(path[0]).and_then(|v| v.get(path[1])).and_then(|v| v.get(path[2])).and_then(serde_yaml::Value::as_bool)
                    == Some(true)
            };
            for (name, on, image) in [
                ("hubble-relay", enabled(["hubble", "relay", "enabled"]), "quay.io/cilium/hubble-relay:v1.15.1"),
                ("hubble-ui", enabled(["hubble", "ui", "enabled"]), "quay.io/cilium/hubble-ui:v0.13.0"),
            ] {
                if on {
                    self.seed_deployment("kube-system", name, 1, [("k8s-app".to_string(), name.to_string())].into(), image);
                    self.roll("kube-system", name);
                }
            }
        }
        self.store.cni = true;
        self.values = Some(values);
        self.reconcile(dir)?;
        self.sync_services()
    }

    /// `kubectl rollout restart`: new pods (names, addresses, apps) for a Deployment; for a
    /// DaemonSet (cilium) new agent pods that re-apply the datapath.
    pub fn restart(&mut self, deployment: bool, ns: &str, name: &str, dir: &Path) -> Result<(), LabError> {
        if deployment {
            self.roll(ns, name);
        } else {
            let owner = format!("DaemonSet/{name}");
            let now = SystemTime::now();
            for p in self.store.pods.iter_mut().filter(|p| p.namespace == ns && p.owner.as_deref() == Some(owner.as_str())) {
                let base = p.name.rsplit_once('-').map(|(b, _)| b.to_string()).unwrap_or_else(|| p.name.clone());
                p.name = format!("{base}-{}", suffix(5));
                p.created = now;
            }
            if name == "cilium"
                && let Some(v) = self.values.clone()
            {
                let plans = self.plans();
                for n in &self.nodes {
                    super::datapath::sync_node_routes(&n.ns, &n.plan, &plans, &v)?;
                }
                self.sync_masquerade(&v)?;
            }
        }
        self.reconcile(dir)?;
        self.sync_services()
    }

    /// iptables or BPF masquerade on every node, as `values` say.
    fn sync_masquerade(&mut self, values: &CiliumValues) -> Result<(), LabError> {
        let plans = self.plans();
        let native = values.native_routing_cidr.unwrap_or(self.plan.pod_subnet);
        let non_masq = super::masquerade::non_masquerade(values);
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            super::masquerade::sync(&n.ns, &n.plan, &plans, values)?;
            let want = values.ipv4_masquerade && values.bpf_masquerade;
            // Reload on every change, so the ipmasq map always holds the current CIDRs.
            self.nodes[i].bpf = None;
            if want {
                let n = &self.nodes[i];
                let bpf = BpfMasq::load(&n.ns, n.plan.ip, native, self.plan.service_subnet, &non_masq)?;
                for p in self.pods.values().filter(|p| p.node == n.plan.name) {
                    bpf.attach_pod(&n.ns, &p.lxc)?;
                }
                self.nodes[i].bpf = Some(bpf);
            }
        }
        Ok(())
    }

    /// Start every pod that can run and does not yet.
    pub fn reconcile(&mut self, dir: &Path) -> Result<(), LabError> {
        if !self.store.cni {
            return Ok(());
        }
        for i in 0..self.store.pods.len() {
            let p = &self.store.pods[i];
            if p.running || !p.needs_cni {
                continue;
            }
            let (ns, name) = (p.namespace.clone(), p.name.clone());
            let rt = self.start_pod(i, dir)?;
            let pod = &mut self.store.pods[i];
            pod.ip = Some(rt.ip);
            pod.running = true;
            self.pods.insert((ns, name), rt);
        }
        Ok(())
    }

    fn free_ip(&self, node: &NodePlan) -> Result<Ipv4Addr, LabError> {
        let used: Vec<Ipv4Addr> = self.pods.values().filter(|p| p.node == node.name).map(|p| p.ip).collect();
        (10..255u32)
            .map(|i| node.pod_cidr.nth(i))
            .find(|ip| !used.contains(ip) && *ip != node.router_ip)
            .ok_or_else(|| LabError::System(format!("node {} has no free pod address", node.name)))
    }

    fn start_pod(&self, i: usize, dir: &Path) -> Result<PodRt, LabError> {
        let pod = &self.store.pods[i];
        let node = self.node(&pod.node).ok_or_else(|| LabError::System(format!("pod {} on unknown node {}", pod.name, pod.node)))?;
        let ip = self.free_ip(&node.plan)?;
        let resolv = match pod.app {
            // dnsPolicy: Default — the node's resolver.
            App::CoreDns => format!("nameserver {GATEWAY}\noptions ndots:0\n"),
            _ => format!(
                "search {ns}.svc.cluster.local svc.cluster.local cluster.local\nnameserver {}\noptions ndots:5\n",
                self.plan.service_subnet.nth(10),
                ns = pod.namespace
            ),
        };
        let mounts = resolv_mount(dir, &format!("pod-{}-{}", pod.namespace, pod.name), &resolv)?;
        let ns = NsThread::new(&pod.name, Some(&pod.name), mounts)?;
        let lxc = format!("lxc{}", network::hex_id(&[&pod.namespace, &pod.name, &suffix(4)], 12));
        network::attach_pod(&node.ns, &ns, &lxc, ip, node.plan.router_ip)?;
        if let Some(bpf) = &node.bpf {
            bpf.attach_pod(&node.ns, &lxc)?;
        }
        let server = match pod.app {
            App::Deathstar { port } => Some(apps::http(&ns, port, &pod.name, apps::deathstar)?),
            _ => None,
        };
        let dns = match pod.app {
            App::CoreDns => {
                let corefile = self
                    .store
                    .configmap("kube-system", "coredns")
                    .and_then(|c| c.data.get("Corefile"))
                    .ok_or_else(|| LabError::Input("configmap kube-system/coredns has no Corefile".into()))?;
                let upstream = dns::corefile_upstream(corefile, GATEWAY)?;
                let policy = Policy {
                    zone: self.zone.clone(),
                    authoritative_suffix: Some("cluster.local".into()),
                    upstream: Some(SocketAddr::from((upstream, 53))),
                };
                Some(dns::serve(&ns, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 53)), policy)?)
            }
            _ => None,
        };
        Ok(PodRt { ns, lxc, node: pod.node.clone(), ip, server, dns })
    }

    /// Remove a pod and its network.
    pub fn delete_pod(&mut self, namespace: &str, name: &str) {
        self.store.pods.retain(|p| !(p.namespace == namespace && p.name == name));
        if let Some(rt) = self.pods.remove(&(namespace.to_string(), name.to_string()))
            && let Some(node) = self.node(&rt.node)
        {
            let _ = network::detach_pod(&node.ns, &rt.lxc, rt.ip);
        }
    }
}

impl ClusterRt {
    /// `kubernetes` and `kube-dns`, at the addresses kubeadm gives them.
    fn seed_services(&mut self) {
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
            labels: [("component".to_string(), "apiserver".to_string()), ("provider".into(), "kubernetes".into())].into(),
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

fn system_pod(base: &str, node: &NodePlan, owner: &str, image: &str, now: SystemTime) -> Pod {
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
