//! The supervisor's model of one lab: its namespaces (host, nodes, pods), the Kubernetes
//! objects and the datapath settings, kept consistent with each other.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rand::Rng;

use super::LabError;
use super::apps::{self, Server};
use super::bpf_masq::BpfMasq;
use super::config::Cluster;
use super::controlplane::{self, ControlPlane};
use super::dns::{self, DnsServer, Policy, Zone};
use super::network;
use super::registry::{self, LabInfo, NodeInfo, PodInfo};
use super::sandbox::{HOST_PRIVATE, Mounts, NsThread, Private};
use super::seed::seed_system_objects;
use super::store::{App, Labels, NodeObj, Store};
use super::topology::{self, Cidr, GATEWAY, NodePlan, Plan};
use super::upstream::{self, Binary};
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
    /// The real control plane (upstream mode only), stopped before the nodes go.
    pub control_plane: Option<ControlPlane>,
    /// Upstream mode: the podCIDRs the node IPAM controller had assigned when the cluster was
    /// created (the plan's are the emulation's guess; a node missing here had none yet).
    pub assigned_pod_cidrs: std::collections::BTreeMap<String, Cidr>,
    /// Upstream mode: the XDP_PASS program on the bridge-side peer of each node's eth0 (its
    /// links are this instance's, see `prepare_node_datapath`).
    pub peer_pass: Option<crate::lb::LoadBalancer>,
    /// Pods left Pending because their node's podCIDR was full: tried again on every
    /// reconcile, but an error only for the command that created them.
    pub unaddressed: std::collections::HashSet<(String, String)>,
}

pub struct Lab {
    pub name: String,
    pub dir: PathBuf,
    pub owner: Option<i32>,
    pub host: NsThread,
    pub outside: super::outside::Outside,
    pub cluster: Option<ClusterRt>,
    /// The lab host's Docker images (`docker pull`, `kind load docker-image`).
    pub images: super::shims::Images,
    /// Clusters run the real Kubernetes control plane (the default) rather than the deprecated
    /// emulation (`TUTOR_LAB_K8S=emulated`, which `lab::start` sets from a tutorial's
    /// `kubernetes: emulated`).
    pub upstream: bool,
}

fn write(path: &Path, text: &str) -> Result<(), LabError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| LabError::io(parent, e))?;
    }
    std::fs::write(path, text).map_err(|e| LabError::io(path, e))
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
    Ok(Mounts { binds, ..Default::default() })
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
        let upstream = controlplane::mode(None)? == crate::backend::LabKubernetes::Upstream;
        let dir = registry::claim(name)?;
        super::supervisor::contain(name)?;
        let bin = registry::shim_dir(name);
        std::fs::create_dir_all(&bin).map_err(|e| LabError::io(&bin, e))?;
        // `tutor` itself too, so a tutorial can run `tutor lb bench` from the lab host.
        let mut share = vec![dir.clone()];
        // With the real control plane, the `cilium` CLI too (tutor itself, `cilium::cli`).
        let cilium: &[&str] = if upstream { &["tutor", "cilium"] } else { &["tutor"] };
        for tool in super::shims::TOOLS.iter().chain(cilium) {
            // With the real control plane, `kubectl` and `helm` are the real binaries.
            let target = match *tool {
                "kubectl" if upstream => upstream::path(Binary::Kubectl),
                "helm" if upstream => upstream::path(Binary::Helm),
                _ => exe.to_path_buf(),
            };
            // A program under the machine's /tmp or /run (a clone built there, as CI's) must
            // stay visible behind the lab host's own /tmp and /run.
            if HOST_PRIVATE.iter().any(|d| target.starts_with(d)) && !share.contains(&target) {
                share.push(target.clone());
            }
            std::os::unix::fs::symlink(&target, bin.join(tool)).map_err(|e| LabError::io(&bin.join(tool), e))?;
        }
        // The outside world's certificates: the lab's own CA joins the targets' bundle.
        let certs = super::tls::Certs::new(super::outside::FIXED_TLS_NAMES.to_vec())?;
        super::tls::write_bundle(&dir, certs.ca_pem())?;
        // The user's machine resolves through its LAN router, as the article's laptop does.
        let mounts = resolv_mount(&dir, "host", "nameserver 192.168.1.1\n")?;
        // Blocks write in a /tmp and a /run of the lab's own; the lab's folder (shims, socket,
        // kubeconfig) is bound back in, work directories when a command starts in one
        // (`target_command`). See docs/architecture.md, "Lab host filesystem".
        let private = Private { dirs: HOST_PRIVATE.iter().map(PathBuf::from).collect(), share };
        let host = NsThread::with_private("host", mounts, private)?;
        network::setup_host(&host, name)?;
        let outside = super::outside::build(&host, name, certs)?;
        Ok(Lab {
            name: name.to_string(),
            dir,
            owner,
            host,
            outside,
            cluster: None,
            images: Default::default(),
            upstream,
        })
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
                        // With the real control plane, only what the API said (else empty).
                        pod_cidr: match &c.control_plane {
                            Some(_) => {
                                c.assigned_pod_cidrs.get(&n.plan.name).map(ToString::to_string).unwrap_or_default()
                            }
                            None => n.plan.pod_cidr.to_string(),
                        },
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
            kubeconfig: self.upstream.then(|| self.kubeconfig().display().to_string()),
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

    /// The lab host's root directory as this process reaches it (through the host thread), so
    /// that a file a shim names in the host's private /tmp is found.
    pub fn host_root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/task/{}/root", std::process::id(), self.host.tid()))
    }

    /// The lab host's kubeconfig (what `~/.kube/config` is on a kind user's machine).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
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
                catch_all: None,
            };
            let dns = dns::serve(&ns, SocketAddr::from((Ipv4Addr::new(127, 0, 0, 11), 0)), policy)?;
            network::docker_dns_rules(&ns, dns.udp.port(), dns.tcp.port())?;
            nodes.push(NodeRt { plan: p.clone(), ns, dns, bpf: None });
        }
        if self.upstream {
            return self.create_upstream_cluster(plan, config, nodes);
        }
        let now = SystemTime::now();
        let mut store = Store::default();
        for n in &plan.nodes {
            store.nodes.push(NodeObj {
                name: n.name.clone(),
                role: n.role,
                ip: n.ip,
                pod_cidr: n.pod_cidr.to_string(),
                created: now,
            });
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
            unaddressed: Default::default(),
            zone: Zone::default(),
            lb: super::xdp_lb::LbState::new(&self.name, self.host.tid()),
            control_plane: None,
            assigned_pod_cidrs: Default::default(),
            peer_pass: None,
        };
        let kube_dns: Labels = [("k8s-app".to_string(), "kube-dns".to_string())].into();
        rt.seed_deployment("kube-system", "coredns", 2, kube_dns, "registry.k8s.io/coredns/coredns:v1.11.1");
        rt.roll("kube-system", "coredns");
        let lpp: Labels = [("app".to_string(), "local-path-provisioner".to_string())].into();
        rt.seed_deployment(
            "local-path-storage",
            "local-path-provisioner",
            1,
            lpp,
            "docker.io/kindest/local-path-provisioner:v20240202-8f1494ea",
        );
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

    /// `kind create cluster` with the real control plane: etcd, kube-apiserver,
    /// kube-controller-manager and kube-scheduler in the control-plane node, the lab host's
    /// kubeconfig gets context `kind-<name>`.
    fn create_upstream_cluster(
        &mut self,
        plan: Plan,
        config: Cluster,
        nodes: Vec<NodeRt>,
    ) -> Result<&ClusterRt, LabError> {
        let cp_node = nodes
            .iter()
            .find(|n| n.plan.role == super::config::Role::ControlPlane)
            .ok_or_else(|| LabError::Input("the kind config has no control-plane node".into()))?;
        let spec = controlplane::Spec {
            cluster: plan.cluster.clone(),
            control_plane: cp_node.plan.name.clone(),
            ip: cp_node.plan.ip,
            pod_subnet: plan.pod_subnet,
            service_subnet: plan.service_subnet,
            nodes: plan.nodes.iter().map(|n| (n.name.clone(), n.ip)).collect(),
            feature_gates: controlplane::key_values(config.feature_gates.as_ref(), "featureGates")?,
            runtime_config: controlplane::key_values(config.runtime_config.as_ref(), "runtimeConfig")?,
        };
        let peer_pass = self.prepare_node_datapath(&nodes)?;
        let dir = self.dir.join("k8s").join(&plan.cluster);
        let mut cp = ControlPlane::start(&cp_node.ns, &dir, spec)?;
        cp.wait_ready(&cp_node.ns, std::time::Duration::from_secs(90))?;
        let context = format!("kind-{}", plan.cluster);
        controlplane::kubeconfig::merge(
            &self.kubeconfig(),
            &controlplane::kubeconfig::Entry {
                name: &context,
                server: &cp.spec.server(),
                ca: &cp.ca.cert,
                client: &cp.admin,
            },
        )?;
        // Each node's agent (the kubelet's role), with kind's labels and taints; a cluster
        // without workers keeps no control-plane taint, as kind removes it. What a node may not
        // set on itself (`marks`) is set by the admin once it has registered.
        let workers = plan.nodes.iter().any(|n| n.role == super::config::Role::Worker);
        let (agents, marks): (Vec<controlplane::AgentNode<'_>>, Vec<_>) = nodes
            .iter()
            .zip(&config.nodes)
            .map(|(n, c)| {
                let mut labels = std::collections::BTreeMap::new();
                let mut taints = Vec::new();
                if n.plan.role == super::config::Role::ControlPlane {
                    labels.insert("node-role.kubernetes.io/control-plane".to_string(), String::new());
                    labels.insert("node.kubernetes.io/exclude-from-external-load-balancers".to_string(), String::new());
                    if workers {
                        taints.push("node-role.kubernetes.io/control-plane:NoSchedule".to_string());
                    }
                }
                labels.extend(c.labels.clone().unwrap_or_default());
                let (restricted, labels) = labels.into_iter().partition(|(k, _)| controlplane::node_restricted(k));
                let agent = controlplane::AgentNode { name: &n.plan.name, ip: n.plan.ip, ns: &n.ns, labels, taints };
                (agent, (n.plan.name.clone(), restricted))
            })
            .unzip();
        let kindnet = !config.networking.disable_default_cni;
        if kindnet {
            cp.apply_kindnet_rbac(&cp_node.ns)?;
        }
        cp.apply_addons(&cp_node.ns, config.networking.kube_proxy_mode.as_deref())?;
        cp.start_agents(&agents, &super::tutor_exe(), kindnet)?;
        cp.label_nodes(&cp_node.ns, &marks, std::time::Duration::from_secs(60))?;
        // The podCIDRs are the node IPAM controller's (in the order the nodes registered), not
        // the plan's guess: what it has assigned by now; the others are unknown to the lab.
        cp.wait_default_service_account(&cp_node.ns, std::time::Duration::from_secs(60))?;
        let assigned = cp.assigned_pod_cidrs(&cp_node.ns).unwrap_or_default();
        let rt = ClusterRt {
            lb: super::xdp_lb::LbState::new(&self.name, self.host.tid()),
            plan,
            config,
            nodes,
            store: Store::default(),
            pods: HashMap::new(),
            values: None,
            release: None,
            created: SystemTime::now(),
            scheduled: 0,
            unaddressed: Default::default(),
            zone: Zone::default(),
            control_plane: Some(cp),
            assigned_pod_cidrs: assigned,
            peer_pass: Some(peer_pass),
        };
        self.cluster = Some(rt);
        self.publish()?;
        Ok(self.cluster.as_ref().unwrap())
    }

    /// What a kind machine gives the CNI under its nodes, for the XDP programs a CNI attaches
    /// (the Cilium agents' load balancer):
    /// - one bpf filesystem shared by the nodes, as they share one kernel (`SharedBpffs`);
    /// - `eth0` of a node is a veth: frames a native XDP program sends back out of it
    ///   (`XDP_TX`) reach the bridge only when the bridge-side peer runs an XDP program too, so
    ///   each peer gets the bundled LB's XDP_PASS program (GRO alone was not enough: a CI run
    ///   saw the ARP replies of native XDP lost);
    /// - XDP cannot complete a partial checksum, so the lab host's bridge sends full ones.
    fn prepare_node_datapath(&self, nodes: &[NodeRt]) -> Result<crate::lb::LoadBalancer, LabError> {
        let bpffs = super::sandbox::SharedBpffs::new(&self.name)?;
        for n in nodes {
            bpffs.attach(&n.ns)?;
        }
        self.host.command(&["ethtool", "-K", &network::bridge_name(&self.name), "tx", "off"], "")?;
        let lb_err = |what: String| move |source| LabError::Lb { what, source: Box::new(source) };
        let opts = crate::lb::LoadOptions {
            maglev_size: 3,
            max_services: 1,
            max_flows: 1024,
            pin_dir: None,
            shared_pin_dir: None,
        };
        let mut pass = crate::lb::LoadBalancer::load(&opts).map_err(lb_err("loading the XDP_PASS program".into()))?;
        let host = PathBuf::from(format!("/proc/{}/task/{}/ns/net", std::process::id(), self.host.tid()));
        for n in nodes {
            let peer = network::node_veth(&self.name, &n.plan.name);
            self.host.command(&["ethtool", "-K", &peer, "gro", "on"], "")?;
            pass.attach_peer_pass_in_netns(&host, &peer).map_err(lb_err(format!("attaching XDP_PASS to {peer}")))?;
        }
        Ok(pass)
    }

    /// `kind delete cluster`: every node and pod namespace goes, the lab host stays.
    pub fn delete_cluster(&mut self) -> Option<String> {
        let mut c = self.cluster.take()?;
        let name = c.plan.cluster.clone();
        if let Some(mut cp) = c.control_plane.take() {
            cp.stop();
            let _ = controlplane::kubeconfig::remove(&self.kubeconfig(), &format!("kind-{name}"));
            let _ = std::fs::remove_dir_all(&cp.dir);
        }
        // Node links on the bridge vanish with the node namespaces' eth0 peers.
        drop(c);
        let _ = self.publish();
        Some(name)
    }

    pub fn cluster_mut(&mut self) -> Result<&mut ClusterRt, LabError> {
        self.cluster.as_mut().ok_or_else(|| LabError::Input("no cluster: run `kind create cluster` first".into()))
    }
}

impl ClusterRt {
    pub fn node(&self, name: &str) -> Option<&NodeRt> {
        self.nodes.iter().find(|n| n.plan.name == name)
    }

    pub fn plans(&self) -> Vec<NodePlan> {
        self.nodes.iter().map(|n| n.plan.clone()).collect()
    }

    /// Start every pod that can run and does not yet. A pod whose node has no free address
    /// stays Pending and the other pods go on; the error names the pods the node could not
    /// address the first time (the command that created them fails, later ones do not).
    pub fn reconcile(&mut self, dir: &Path) -> Result<(), LabError> {
        if !self.store.cni {
            return Ok(());
        }
        let pods = &self.store.pods;
        self.unaddressed.retain(|(ns, name)| pods.iter().any(|p| p.namespace == *ns && p.name == *name && !p.running));
        let mut exhausted: Option<LabError> = None;
        for i in 0..self.store.pods.len() {
            let p = &self.store.pods[i];
            if p.running || !p.needs_cni {
                continue;
            }
            let (ns, name) = (p.namespace.clone(), p.name.clone());
            let rt = match self.start_pod(i, dir) {
                Ok(rt) => rt,
                Err(LabError::PodAddressesExhausted { node, pod_cidr, mut pods }) => {
                    if self.unaddressed.insert((ns.clone(), name.clone())) {
                        // One node's pods in the message (pods are spread evenly, so the
                        // nodes fill up together).
                        match &mut exhausted {
                            Some(LabError::PodAddressesExhausted { node: first, pods: all, .. }) => {
                                if *first == node {
                                    all.append(&mut pods);
                                }
                            }
                            _ => exhausted = Some(LabError::PodAddressesExhausted { node, pod_cidr, pods }),
                        }
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.unaddressed.remove(&(ns.clone(), name.clone()));
            let pod = &mut self.store.pods[i];
            pod.ip = Some(rt.ip);
            pod.running = true;
            self.pods.insert((ns, name), rt);
        }
        exhausted.map_or(Ok(()), Err)
    }

    /// The pod addresses of a node: its podCIDR from `.10` on, without the node's router
    /// address (`ns/pod` names the pod that asked, for the error).
    fn free_ip(&self, node: &NodePlan, pod: &str) -> Result<Ipv4Addr, LabError> {
        let used: Vec<Ipv4Addr> = self.pods.values().filter(|p| p.node == node.name).map(|p| p.ip).collect();
        (10..255u32).map(|i| node.pod_cidr.nth(i)).find(|ip| !used.contains(ip) && *ip != node.router_ip).ok_or_else(
            || LabError::PodAddressesExhausted {
                node: node.name.clone(),
                pod_cidr: node.pod_cidr.to_string(),
                pods: vec![pod.to_string()],
            },
        )
    }

    fn start_pod(&self, i: usize, dir: &Path) -> Result<PodRt, LabError> {
        let pod = &self.store.pods[i];
        let node = self
            .node(&pod.node)
            .ok_or_else(|| LabError::PodOnUnknownNode { pod: pod.name.clone(), node: pod.node.clone() })?;
        let ip = self.free_ip(&node.plan, &format!("{}/{}", pod.namespace, pod.name))?;
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
                    catch_all: None,
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
