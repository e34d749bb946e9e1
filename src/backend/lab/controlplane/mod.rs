//! The real Kubernetes control plane of a lab cluster: etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler (the upstream binaries, see `upstream`) started as
//! processes inside the control-plane node's namespaces, with the certificates, kubeconfigs and
//! flags kubeadm gives them on a kind node (see docs/architecture.md, "The real control plane").
//!
//! Layout of a cluster's directory (`<lab dir>/k8s/<cluster>/`):
//! `pki/` (ca, apiserver, apiserver-kubelet-client, sa, front-proxy-ca, front-proxy-client,
//! controller-manager and scheduler serving certificates), `etcd/` (data),
//! `*.conf` (admin, controller-manager, scheduler kubeconfigs), `nodes/<node>/kubelet.conf`
//! and `nodes/<node>/kubelet.{crt,key}` (each node's identity and serving certificate),
//! `logs/<component>.log`, `timings.json` (where start-up time went).

pub mod addons;
pub mod kubeconfig;
pub mod pki;
pub mod probe;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::LabError;
use super::sandbox::NsThread;
use super::topology::Cidr;
use super::upstream::{self, Binary};
use crate::backend::LabKubernetes;
use pki::{Ca, Identity, Pair};

/// The Kubernetes a lab runs: `explicit` (a tutorial's `kubernetes:`) when given, else
/// `TUTOR_LAB_K8S` (`upstream` or `emulated`; unset or empty: upstream), else the real control
/// plane. A value of the variable that is neither is a pre-flight error naming it.
pub fn mode(explicit: Option<LabKubernetes>) -> Result<LabKubernetes, LabError> {
    mode_from(explicit, std::env::var_os(MODE_VAR))
}

/// [`mode`] with the variable's value given.
fn mode_from(explicit: Option<LabKubernetes>, var: Option<std::ffi::OsString>) -> Result<LabKubernetes, LabError> {
    if let Some(m) = explicit {
        return Ok(m);
    }
    let Some(var) = var.filter(|v| !v.is_empty()) else { return Ok(LabKubernetes::default()) };
    let text = var.to_string_lossy();
    text.parse().map_err(|e| LabError::Preflight(format!("{MODE_VAR}={text}: {e}")))
}

/// The environment variable that selects the lab's Kubernetes (`upstream`, the default, or
/// `emulated`, deprecated).
pub const MODE_VAR: &str = "TUTOR_LAB_K8S";

/// The API server's port, as on kind's control-plane node.
pub const API_PORT: u16 = 6443;
const ETCD_CLIENT: &str = "http://127.0.0.1:2379";

/// What the control plane is built from.
#[derive(Debug, Clone)]
pub struct Spec {
    /// kind's cluster name (`kind`); the kubeconfig context is `kind-<cluster>`.
    pub cluster: String,
    pub control_plane: String,
    pub ip: Ipv4Addr,
    pub pod_subnet: Cidr,
    pub service_subnet: Cidr,
    /// Every node (name, IP): each gets a kubelet identity.
    pub nodes: Vec<(String, Ipv4Addr)>,
    /// kind's `featureGates` and `runtimeConfig`, as `--feature-gates`/`--runtime-config` values.
    pub feature_gates: Option<String>,
    pub runtime_config: Option<String>,
}

impl Spec {
    pub fn server(&self) -> String {
        format!("https://{}:{API_PORT}", self.ip)
    }

    /// The cluster DNS service's ClusterIP (kube-dns): the service range's tenth address, as
    /// kubeadm sets it.
    pub fn cluster_dns_ip(&self) -> Ipv4Addr {
        self.service_subnet.nth(10)
    }

    /// The `kubernetes` Service's ClusterIP: the service range's first address.
    pub fn kubernetes_service_ip(&self) -> Ipv4Addr {
        self.service_subnet.nth(1)
    }
}

/// Where start-up time went, in milliseconds from the start of `ControlPlane::start`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub pki_ms: u64,
    pub spawned_ms: u64,
    pub etcd_ready_ms: Option<u64>,
    /// First answer to `GET /api/v1/nodes` (what `kubectl get nodes` needs).
    pub api_serving_ms: Option<u64>,
    /// `GET /readyz` answered 200 (every post-start hook done).
    pub api_ready_ms: Option<u64>,
    /// The controller manager and the scheduler started (after `/readyz`).
    pub controllers_spawned_ms: Option<u64>,
}

/// A lab node as its agent is started: where (its namespaces) and what it registers.
/// Whether the NodeRestriction admission plugin forbids a node to set this label on itself:
/// keys under `kubernetes.io` or `k8s.io` except the kubelet's own and the topology ones.
pub fn node_restricted(key: &str) -> bool {
    let Some((domain, _)) = key.split_once('/') else { return false };
    let under = |d: &str| domain == d || domain.ends_with(&format!(".{d}"));
    let allowed_keys = [
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "node.kubernetes.io/instance-type",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
    ];
    let allowed_domains = ["kubelet.kubernetes.io", "node.kubernetes.io", "topology.kubernetes.io"];
    (under("kubernetes.io") || under("k8s.io"))
        && !allowed_keys.contains(&key)
        && !allowed_domains.iter().any(|d| under(d))
}

pub struct AgentNode<'a> {
    pub name: &'a str,
    pub ip: Ipv4Addr,
    pub ns: &'a NsThread,
    pub labels: std::collections::BTreeMap<String, String>,
    /// `key[=value]:Effect`, as the kubelet's `--register-with-taints`.
    pub taints: Vec<String>,
}

struct Component {
    name: String,
    child: Child,
    log: PathBuf,
}

pub struct ControlPlane {
    pub spec: Spec,
    pub dir: PathBuf,
    pub ca: Pair,
    /// The cluster-admin identity (`kubernetes-admin`, group `system:masters`).
    pub admin: Pair,
    pub timings: Timings,
    tls: probe::Tls,
    procs: Vec<Component>,
    started: Instant,
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// The flags of each component. Pure: tested below without starting anything.
pub struct Flags<'a> {
    pub spec: &'a Spec,
    pub dir: &'a Path,
}

impl Flags<'_> {
    fn pki(&self, f: &str) -> String {
        p(&self.dir.join("pki").join(f))
    }

    pub fn etcd(&self) -> Vec<String> {
        let name = &self.spec.control_plane;
        vec![
            format!("--name={name}"),
            format!("--data-dir={}", p(&self.dir.join("etcd"))),
            format!("--listen-client-urls={ETCD_CLIENT}"),
            format!("--advertise-client-urls={ETCD_CLIENT}"),
            "--listen-peer-urls=http://127.0.0.1:2380".into(),
            "--initial-advertise-peer-urls=http://127.0.0.1:2380".into(),
            format!("--initial-cluster={name}=http://127.0.0.1:2380"),
            "--listen-metrics-urls=http://127.0.0.1:2381".into(),
            "--snapshot-count=10000".into(),
            // The lab's data lives as long as the lab: durability buys nothing, fsync costs.
            "--unsafe-no-fsync=true".into(),
            "--log-level=warn".into(),
        ]
    }

    pub fn apiserver(&self) -> Vec<String> {
        let s = self.spec;
        let mut f = vec![
            format!("--advertise-address={}", s.ip),
            "--allow-privileged=true".into(),
            "--authorization-mode=Node,RBAC".into(),
            format!("--client-ca-file={}", self.pki("ca.crt")),
            "--enable-admission-plugins=NodeRestriction".into(),
            "--enable-bootstrap-token-auth=true".into(),
            format!("--etcd-servers={ETCD_CLIENT}"),
            format!("--kubelet-client-certificate={}", self.pki("apiserver-kubelet-client.crt")),
            format!("--kubelet-client-key={}", self.pki("apiserver-kubelet-client.key")),
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname".into(),
            format!("--secure-port={API_PORT}"),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", self.pki("sa.pub")),
            format!("--service-account-signing-key-file={}", self.pki("sa.key")),
            format!("--service-cluster-ip-range={}", s.service_subnet),
            format!("--tls-cert-file={}", self.pki("apiserver.crt")),
            format!("--tls-private-key-file={}", self.pki("apiserver.key")),
            format!("--cert-dir={}", self.pki("")),
            // The front proxy: how aggregated API servers learn who is asking.
            format!("--proxy-client-cert-file={}", self.pki("front-proxy-client.crt")),
            format!("--proxy-client-key-file={}", self.pki("front-proxy-client.key")),
            "--requestheader-allowed-names=front-proxy-client".into(),
            format!("--requestheader-client-ca-file={}", self.pki("front-proxy-ca.crt")),
            "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
            "--requestheader-group-headers=X-Remote-Group".into(),
            "--requestheader-username-headers=X-Remote-User".into(),
        ];
        if let Some(g) = &s.feature_gates {
            f.push(format!("--feature-gates={g}"));
        }
        if let Some(r) = &s.runtime_config {
            f.push(format!("--runtime-config={r}"));
        }
        f
    }

    pub fn controller_manager(&self) -> Vec<String> {
        let s = self.spec;
        let conf = p(&self.dir.join("controller-manager.conf"));
        let mut f = vec![
            "--allocate-node-cidrs=true".into(),
            format!("--authentication-kubeconfig={conf}"),
            format!("--authorization-kubeconfig={conf}"),
            "--bind-address=127.0.0.1".into(),
            format!("--cert-dir={}", self.pki("")),
            format!("--client-ca-file={}", self.pki("ca.crt")),
            format!("--cluster-cidr={}", s.pod_subnet),
            format!("--cluster-name={}", s.cluster),
            format!("--cluster-signing-cert-file={}", self.pki("ca.crt")),
            format!("--cluster-signing-key-file={}", self.pki("ca.key")),
            "--controllers=*,bootstrapsigner,tokencleaner".into(),
            format!("--kubeconfig={conf}"),
            "--leader-elect=true".into(),
            "--node-cidr-mask-size=24".into(),
            format!("--root-ca-file={}", self.pki("ca.crt")),
            format!("--service-account-private-key-file={}", self.pki("sa.key")),
            format!("--service-cluster-ip-range={}", s.service_subnet),
            format!("--tls-cert-file={}", self.pki("controller-manager.crt")),
            format!("--tls-private-key-file={}", self.pki("controller-manager.key")),
            "--use-service-account-credentials=true".into(),
        ];
        if let Some(g) = &s.feature_gates {
            f.push(format!("--feature-gates={g}"));
        }
        f
    }

    pub fn scheduler(&self) -> Vec<String> {
        let conf = p(&self.dir.join("scheduler.conf"));
        let mut f = vec![
            format!("--authentication-kubeconfig={conf}"),
            format!("--authorization-kubeconfig={conf}"),
            "--bind-address=127.0.0.1".into(),
            format!("--kubeconfig={conf}"),
            "--leader-elect=true".into(),
            format!("--tls-cert-file={}", self.pki("scheduler.crt")),
            format!("--tls-private-key-file={}", self.pki("scheduler.key")),
        ];
        if let Some(g) = &self.spec.feature_gates {
            f.push(format!("--feature-gates={g}"));
        }
        f
    }
}

/// `key=value,…` from kind's `featureGates`/`runtimeConfig` maps, keys sorted.
pub fn key_values(v: Option<&serde_yaml::Value>, what: &str) -> Result<Option<String>, LabError> {
    let Some(v) = v else { return Ok(None) };
    let m = v.as_mapping().ok_or_else(|| LabError::Input(format!("kind config: `{what}` must be a mapping")))?;
    let mut kv: Vec<String> = Vec::new();
    for (k, val) in m {
        let k = k.as_str().ok_or_else(|| LabError::Input(format!("kind config: `{what}` keys must be strings")))?;
        let val = match val {
            serde_yaml::Value::Bool(b) => b.to_string(),
            serde_yaml::Value::String(s) => s.clone(),
            serde_yaml::Value::Number(n) => n.to_string(),
            _ => return Err(LabError::Input(format!("kind config: `{what}.{k}` must be a scalar"))),
        };
        kv.push(format!("{k}={val}"));
    }
    kv.sort();
    Ok((!kv.is_empty()).then(|| kv.join(",")))
}

/// Write every certificate, key and component kubeconfig of the cluster into `dir`.
fn write_pki(spec: &Spec, dir: &Path) -> Result<(Pair, Pair), LabError> {
    let pki = dir.join("pki");
    let ca = Ca::generate("kubernetes")?;
    ca.pair.write(&pki, "ca")?;
    let cp = spec.control_plane.as_str();
    let dns = [
        cp,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
    ];
    ca.server("kube-apiserver", &dns, &[spec.kubernetes_service_ip(), spec.ip, Ipv4Addr::LOCALHOST])?
        .write(&pki, "apiserver")?;
    ca.client(&Identity { user: "kube-apiserver-kubelet-client", groups: &["system:masters"] })?
        .write(&pki, "apiserver-kubelet-client")?;
    let front = Ca::generate("front-proxy-ca")?;
    front.pair.write(&pki, "front-proxy-ca")?;
    front.client(&Identity { user: "front-proxy-client", groups: &[] })?.write(&pki, "front-proxy-client")?;
    let (sa_key, sa_pub) = pki::service_account_key()?;
    pki::write_private(&pki.join("sa.key"), &sa_key)?;
    pki::write_file(&pki.join("sa.pub"), &sa_pub)?;
    let server = spec.server();
    let conf = |file: &Path, id: Identity<'_>| -> Result<Pair, LabError> {
        let client = ca.client(&id)?;
        let name = format!("kind-{}", spec.cluster);
        pki::write_private(
            file,
            &kubeconfig::single(&kubeconfig::Entry {
                name: &name,
                server: &server,
                ca: &ca.pair.cert,
                client: &client,
            }),
        )?;
        Ok(client)
    };
    let admin = conf(&dir.join("admin.conf"), Identity { user: "kubernetes-admin", groups: &["system:masters"] })?;
    conf(&dir.join("controller-manager.conf"), Identity { user: "system:kube-controller-manager", groups: &[] })?;
    // kindnet's role in the node agents acts as kind's `kindnet` ServiceAccount (RBAC from
    // `apply_kindnet_rbac`).
    conf(
        &dir.join("kindnet.conf"),
        Identity {
            user: "system:serviceaccount:kube-system:kindnet",
            groups: &["system:serviceaccounts", "system:serviceaccounts:kube-system"],
        },
    )?;
    conf(&dir.join("scheduler.conf"), Identity { user: "system:kube-scheduler", groups: &[] })?;
    for (stem, cn) in [("controller-manager", "kube-controller-manager"), ("scheduler", "kube-scheduler")] {
        ca.server(cn, &["localhost", cn], &[Ipv4Addr::LOCALHOST])?.write(&pki, stem)?;
    }
    for (node, ip) in &spec.nodes {
        let nd = dir.join("nodes").join(node);
        conf(&nd.join("kubelet.conf"), Identity { user: &format!("system:node:{node}"), groups: &["system:nodes"] })?;
        ca.server(node, &[node.as_str()], &[*ip])?.write(&nd, "kubelet")?;
    }
    Ok((ca.pair.clone(), admin))
}

/// The last lines of a component's log, for an error message.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl ControlPlane {
    /// Write the PKI and start the four components from `node`'s thread (so inside its
    /// namespaces). Returns once they are spawned; `wait_ready` waits for the API.
    pub fn start(node: &NsThread, dir: &Path, spec: Spec) -> Result<ControlPlane, LabError> {
        let started = Instant::now();
        upstream::check(&[Binary::Etcd, Binary::KubeApiserver, Binary::KubeControllerManager, Binary::KubeScheduler])
            .map_err(|e| LabError::Preflight(e.to_string()))?;
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
        }
        std::fs::create_dir_all(dir.join("logs")).map_err(|e| LabError::io(dir, e))?;
        let (ca, admin) = write_pki(&spec, dir)?;
        let tls = probe::Tls::new(&ca.cert, &admin)?;
        let mut timings = Timings { pki_ms: started.elapsed().as_millis() as u64, ..Timings::default() };
        let flags = Flags { spec: &spec, dir };
        let plan = [("etcd", Binary::Etcd, flags.etcd()), ("kube-apiserver", Binary::KubeApiserver, flags.apiserver())];
        let mut cp = ControlPlane {
            spec: spec.clone(),
            dir: dir.to_path_buf(),
            ca,
            admin,
            timings: Timings::default(),
            tls,
            procs: Vec::new(),
            started,
        };
        // etcd and the API server at once: the API server retries etcd until it answers.
        for (name, bin, args) in plan {
            cp.spawn(node, name, bin, args)?;
        }
        timings.spawned_ms = started.elapsed().as_millis() as u64;
        cp.timings = timings;
        Ok(cp)
    }

    fn spawn(&mut self, node: &NsThread, name: &'static str, bin: Binary, args: Vec<String>) -> Result<(), LabError> {
        let log = self.dir.join("logs").join(format!("{name}.log"));
        let child = spawn(node, name, &upstream::path(bin), &args, &log, &self.dir)?;
        write_static_pod(&self.manifest_dir(), name, &args, child.id())?;
        self.procs.push(Component { name: name.to_string(), child, log });
        Ok(())
    }

    /// Where the control-plane node's static pod manifests are written (its agent's
    /// `--pod-manifest-path`): one `<component>.json` (the Pod kubeadm would write) and a
    /// `<component>.pid` with the process that runs it.
    pub fn manifest_dir(&self) -> PathBuf {
        self.dir.join("nodes").join(&self.spec.control_plane).join("manifests")
    }

    /// The controller manager and the scheduler, once the API server is ready: they read the
    /// authentication configuration at start-up and exit if RBAC's bootstrap roles are not
    /// there yet (kubeadm's kubelet restarts them until they are; starting them after
    /// `/readyz` needs no restart).
    fn start_controllers(&mut self, node: &NsThread) -> Result<(), LabError> {
        let (cm, sched) = {
            let flags = Flags { spec: &self.spec, dir: &self.dir };
            (flags.controller_manager(), flags.scheduler())
        };
        self.spawn(node, "kube-controller-manager", Binary::KubeControllerManager, cm)?;
        self.spawn(node, "kube-scheduler", Binary::KubeScheduler, sched)
    }

    /// Wait until the API server answers `/readyz` with 200, probing from `node`'s namespaces,
    /// then start the controller manager and the scheduler. A component that exits first fails
    /// the wait with the end of its log.
    pub fn wait_ready(&mut self, node: &NsThread, timeout: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        let etcd = SocketAddr::from((Ipv4Addr::LOCALHOST, 2379));
        let api = SocketAddr::from((self.spec.ip, API_PORT));
        loop {
            for c in &mut self.procs {
                if let Ok(Some(status)) = c.child.try_wait() {
                    return Err(LabError::ComponentExited {
                        name: c.name.to_string(),
                        status: status.to_string(),
                        log: c.log.clone(),
                        tail: tail(&c.log, 15),
                    });
                }
            }
            let tls = self.tls.clone();
            let (need_etcd, need_serving) =
                (self.timings.etcd_ready_ms.is_none(), self.timings.api_serving_ms.is_none());
            let short = Duration::from_millis(500);
            let (e, s, r) = node.run(move || {
                let e = need_etcd && probe::http(etcd, "/health", short).is_ok_and(|c| c == 200);
                let s = need_serving && probe::https(&tls, api, "/api/v1/nodes", short).is_ok_and(|c| c == 200);
                let r = (!need_serving || s) && probe::https(&tls, api, "/readyz", short).is_ok_and(|c| c == 200);
                (e, s, r)
            })?;
            let now = self.started.elapsed().as_millis() as u64;
            if e {
                self.timings.etcd_ready_ms = Some(now);
            }
            if s {
                self.timings.api_serving_ms = Some(now);
            }
            if r {
                self.timings.etcd_ready_ms.get_or_insert(now);
                self.timings.api_ready_ms = Some(now);
                self.start_controllers(node)?;
                self.timings.controllers_spawned_ms = Some(self.started.elapsed().as_millis() as u64);
                let json = serde_json::to_string_pretty(&self.timings).expect("serialisable");
                pki::write_file(&self.dir.join("timings.json"), &json)?;
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LabError::ApiNotReady {
                    api,
                    timeout,
                    log: self.procs[1].log.clone(),
                    tail: tail(&self.procs[1].log, 15),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start a node agent (`tutor lab node-agent`, the kubelet's role) in each node's namespaces,
    /// with the node's identity and serving certificate from the PKI and `tutor-kubelet` as its
    /// kubelet API; `kindnet` makes each agent play kind's default CNI as well.
    pub fn start_agents(&mut self, nodes: &[AgentNode<'_>], exe: &Path, kindnet: bool) -> Result<(), LabError> {
        upstream::check(&[Binary::TutorKubelet]).map_err(|e| LabError::Preflight(e.to_string()))?;
        let p = |path: PathBuf| path.display().to_string();
        for n in nodes {
            let nd = self.dir.join("nodes").join(n.name);
            let mut args: Vec<String> = [
                "lab",
                "node-agent",
                "--node",
                n.name,
                "--node-ip",
                &n.ip.to_string(),
                "--kubeconfig",
                &p(nd.join("kubelet.conf")),
                "--state-dir",
                &p(nd.join("agent")),
                // A DaemonSet's hostPath /etc/cni/net.d is this directory (hostPaths of a
                // node live under its agent's `hostpath/`), as on a real node.
                "--cni-conf-dir",
                &p(nd.join("agent/hostpath/etc/cni/net.d")),
                "--cluster-dns",
                &self.spec.cluster_dns_ip().to_string(),
                "--node-labels",
                &n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                "--register-with-taints",
                &n.taints.join(","),
                "--kubelet-server",
                &p(upstream::path(Binary::TutorKubelet)),
                "--tls-cert-file",
                &p(nd.join("kubelet.crt")),
                "--tls-private-key-file",
                &p(nd.join("kubelet.key")),
                "--client-ca-file",
                &p(self.dir.join("pki/ca.crt")),
            ]
            .iter()
            .map(|a| a.to_string())
            .collect();
            if kindnet {
                args.extend(["--kindnet".into(), "--cluster-cidr".into(), self.spec.pod_subnet.to_string()]);
                args.extend(["--kindnet-kubeconfig".into(), p(self.dir.join("kindnet.conf"))]);
            }
            if n.name == self.spec.control_plane {
                args.extend(["--pod-manifest-path".into(), p(self.manifest_dir())]);
            }
            let name = format!("node-agent {}", n.name);
            let log = self.dir.join("logs").join(format!("node-agent-{}.log", n.name));
            let child = spawn(n.ns, &name, exe, &args, &log, &self.dir)?;
            self.procs.push(Component { name, child, log });
        }
        Ok(())
    }

    /// Run the real kubectl as the cluster's admin from `node`'s namespaces, with `stdin`,
    /// until it succeeds or `deadline` passes (objects it needs may not exist yet): its stdout.
    fn kubectl_admin(
        &self,
        node: &NsThread,
        args: &[String],
        stdin: &str,
        deadline: Instant,
    ) -> Result<String, LabError> {
        use std::io::Write;
        let kubectl = upstream::path(Binary::Kubectl);
        let admin = self.dir.join("admin.conf");
        loop {
            let mut cmd = Command::new(&kubectl);
            cmd.arg("--kubeconfig")
                .arg(&admin)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let child = node.run(move || cmd.spawn())?.map_err(|e| LabError::io(&kubectl, e))?;
            let out = (|| {
                let mut child = child;
                child.stdin.take().expect("piped").write_all(stdin.as_bytes())?;
                child.wait_with_output()
            })()
            .map_err(|e| LabError::io(&kubectl, e))?;
            if out.status.success() {
                return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
            }
            if Instant::now() >= deadline {
                return Err(LabError::CommandFailed {
                    command: format!("kubectl {}", args.join(" ")),
                    stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                    input: None,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Label registered nodes as the cluster's admin, as kubeadm marks the control plane: the
    /// labels the NodeRestriction admission plugin does not let a node set on itself
    /// (`node-role.kubernetes.io/…`). Waits for each node to register (`timeout` in all).
    pub fn label_nodes(
        &self,
        node: &NsThread,
        labels: &[(String, std::collections::BTreeMap<String, String>)],
        timeout: Duration,
    ) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        for (name, map) in labels.iter().filter(|(_, m)| !m.is_empty()) {
            let mut args: Vec<String> = vec!["label".into(), "--overwrite".into(), format!("node/{name}")];
            args.extend(map.iter().map(|(k, v)| format!("{k}={v}")));
            self.kubectl_admin(node, &args, "", deadline)?;
        }
        Ok(())
    }

    /// Wait (`timeout`) for the `default` ServiceAccount of the `default` namespace, which the
    /// controller manager's service-account controller creates seconds after it starts: until
    /// then the API server refuses every pod there ("error looking up service account
    /// default/default"). On kind the nodes' boot outlasts it, so a tutorial's `kubectl apply`
    /// right after `kind create cluster` works; the lab's create returns as fast as that.
    pub fn wait_default_service_account(&self, node: &NsThread, timeout: Duration) -> Result<(), LabError> {
        let args: Vec<String> =
            ["get", "serviceaccount", "default", "-n", "default", "-o", "name"].map(String::from).to_vec();
        self.kubectl_admin(node, &args, "", Instant::now() + timeout).map(drop)
    }

    /// The podCIDRs the node IPAM controller has assigned so far, by node name (one query: the
    /// controller manager assigns them seconds after the nodes register, and nothing waits
    /// for that here).
    pub fn assigned_pod_cidrs(&self, node: &NsThread) -> Result<std::collections::BTreeMap<String, Cidr>, LabError> {
        let args: Vec<String> =
            ["get", "nodes", "-o", r#"jsonpath={range .items[*]}{.metadata.name}{" "}{.spec.podCIDR}{"\n"}{end}"#]
                .map(String::from)
                .to_vec();
        let out = self.kubectl_admin(node, &args, "", Instant::now())?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(name, cidr)| Some((name.to_string(), Cidr::parse(cidr.trim()).ok()?)))
            .collect())
    }

    /// kindnet's ServiceAccount and RBAC, as kind's manifest grants them: read and patch Nodes,
    /// watch pods, namespaces and network policies.
    pub fn apply_kindnet_rbac(&self, node: &NsThread) -> Result<(), LabError> {
        let objects = serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "kindnet", "namespace": "kube-system"}},
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "kindnet"},
                 "rules": [
                    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch", "patch"]},
                    {"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["list", "watch"]},
                    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["list", "watch"]},
                 ]},
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "kindnet"},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kindnet"},
                 "subjects": [{"kind": "ServiceAccount", "name": "kindnet", "namespace": "kube-system"}]},
            ],
        });
        let args: Vec<String> =
            ["apply", "--server-side", "--field-manager=kind", "-f", "-"].map(String::from).to_vec();
        self.kubectl_admin(node, &args, &objects.to_string(), Instant::now() + Duration::from_secs(30)).map(drop)
    }

    /// kubeadm's add-ons: the cluster DNS, and kube-proxy unless `kube_proxy_mode` is `none`
    /// (kind's `kubeProxyMode`, `iptables` by default). See `addons`.
    pub fn apply_addons(&self, node: &NsThread, kube_proxy_mode: Option<&str>) -> Result<(), LabError> {
        let mut items = addons::coredns(&self.spec, &upstream::coredns_version())["items"].clone();
        items.as_array_mut().expect("a list").push(addons::kubeadm_config(&self.spec, &upstream::kubernetes_version()));
        let mode = kube_proxy_mode.unwrap_or("iptables");
        if mode != "none" {
            let kp = addons::kube_proxy(&self.spec, mode, &upstream::kubernetes_version());
            items.as_array_mut().expect("a list").extend(kp["items"].as_array().cloned().unwrap_or_default());
        }
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
        let args: Vec<String> =
            ["apply", "--server-side", "--field-manager=kubeadm", "-f", "-"].map(String::from).to_vec();
        self.kubectl_admin(node, &args, &list.to_string(), Instant::now() + Duration::from_secs(30)).map(drop)
    }

    /// The processes, for reports: (component, pid).
    pub fn pids(&self) -> Vec<(&str, u32)> {
        self.procs.iter().map(|c| (c.name.as_str(), c.child.id())).collect()
    }

    /// Stop the components (TERM, then KILL after two seconds), API server first.
    pub fn stop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let mut procs = std::mem::take(&mut self.procs);
        procs.reverse();
        for c in &procs {
            let _ = kill(Pid::from_raw(c.child.id() as i32), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        for c in &mut procs {
            while matches!(c.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if matches!(c.child.try_wait(), Ok(None)) {
                let _ = c.child.kill();
                let _ = c.child.wait();
            }
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Start `bin` from `node`'s thread, output to `log`; it dies with that thread (PDEATHSIG), so a
/// killed supervisor cannot leave it behind.
/// The static pod of a control-plane component, as kubeadm writes it to
/// `/etc/kubernetes/manifests` (image of the pinned release, the flags it runs with), and the
/// pid of its process: the agent makes its mirror pod from these.
fn write_static_pod(dir: &Path, name: &str, args: &[String], pid: u32) -> Result<(), LabError> {
    let image = match name {
        "etcd" => format!("registry.k8s.io/etcd:{}-0", upstream::etcd_version().trim_start_matches('v')),
        _ => format!("registry.k8s.io/{name}:{}", upstream::kubernetes_version()),
    };
    let command: Vec<String> = std::iter::once(name.to_string()).chain(args.iter().cloned()).collect();
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "kube-system",
            "labels": { "component": name, "tier": "control-plane" },
        },
        "spec": {
            "hostNetwork": true,
            "priorityClassName": "system-node-critical",
            "securityContext": { "seccompProfile": { "type": "RuntimeDefault" } },
            "containers": [{
                "name": name,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": command,
            }],
        },
    });
    std::fs::create_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
    let json = dir.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(&pod).expect("serialisable") + "\n";
    std::fs::write(&json, text).map_err(|e| LabError::io(&json, e))?;
    let pid_file = dir.join(format!("{name}.pid"));
    std::fs::write(&pid_file, format!("{pid}\n")).map_err(|e| LabError::io(&pid_file, e))
}

fn spawn(node: &NsThread, name: &str, bin: &Path, args: &[String], log: &Path, cwd: &Path) -> Result<Child, LabError> {
    use std::os::unix::process::CommandExt;
    let out = std::fs::File::create(log).map_err(|e| LabError::io(log, e))?;
    let err = out.try_clone().map_err(|e| LabError::io(log, e))?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let name = name.to_string();
    node.run(move || cmd.spawn())?.map_err(|source| LabError::Io { what: format!("cannot start {name}"), source })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_real_control_plane_is_the_default_and_the_emulation_an_explicit_choice() {
        let var = |v: &str| Some(std::ffi::OsString::from(v));
        assert_eq!(mode_from(None, None).unwrap(), LabKubernetes::Upstream);
        assert_eq!(mode_from(None, var("")).unwrap(), LabKubernetes::Upstream);
        assert_eq!(mode_from(None, var("upstream")).unwrap(), LabKubernetes::Upstream);
        assert_eq!(mode_from(None, var("emulated")).unwrap(), LabKubernetes::Emulated);
        // The tutorial's choice wins over the variable, both ways.
        assert_eq!(mode_from(Some(LabKubernetes::Emulated), var("upstream")).unwrap(), LabKubernetes::Emulated);
        assert_eq!(mode_from(Some(LabKubernetes::Upstream), var("emulated")).unwrap(), LabKubernetes::Upstream);
        // An unknown value is a pre-flight error naming the variable and the choices, never a
        // silent default.
        let e = mode_from(None, var("emulation")).unwrap_err();
        assert!(matches!(e, LabError::Preflight(_)) && e.is_usage(), "{e:?}");
        assert_eq!(
            e.to_string(),
            "TUTOR_LAB_K8S=emulation: unknown lab Kubernetes `emulation` (expected `upstream`, the real control \
             plane and the default, or `emulated`, the deprecated emulation)"
        );
    }

    #[test]
    fn node_restriction_decides_which_labels_a_node_sets_itself() {
        for own in [
            "kubernetes.io/hostname",
            "node.kubernetes.io/exclude-from-external-load-balancers",
            "tier",
            "example.com/x",
            "topology.kubernetes.io/zone",
        ] {
            assert!(!node_restricted(own), "{own}");
        }
        for admin in [
            "node-role.kubernetes.io/control-plane",
            "node-role.kubernetes.io/worker",
            "foo.k8s.io/bar",
            "kubernetes.io/role",
        ] {
            assert!(node_restricted(admin), "{admin}");
        }
    }

    /// A one-node kind cluster's spec (also the add-ons' tests').
    pub(crate) fn spec() -> Spec {
        Spec {
            cluster: "kind".into(),
            control_plane: "kind-control-plane".into(),
            ip: Ipv4Addr::new(172, 18, 0, 2),
            pod_subnet: Cidr::parse("10.244.0.0/16").unwrap(),
            service_subnet: Cidr::parse("10.96.0.0/12").unwrap(),
            nodes: vec![("kind-control-plane".into(), Ipv4Addr::new(172, 18, 0, 2))],
            feature_gates: Some("A=true".into()),
            runtime_config: None,
        }
    }

    #[test]
    fn controller_manager_allocates_node_cidrs_from_the_pod_subnet() {
        let s = spec();
        let f = Flags { spec: &s, dir: Path::new("/x") }.controller_manager();
        for want in [
            "--allocate-node-cidrs=true",
            "--cluster-cidr=10.244.0.0/16",
            "--service-cluster-ip-range=10.96.0.0/12",
            "--cluster-name=kind",
            "--feature-gates=A=true",
        ] {
            assert!(f.iter().any(|a| a == want), "{want} missing in {f:?}");
        }
    }

    #[test]
    fn apiserver_serves_tls_on_the_node_ip() {
        let s = spec();
        let f = Flags { spec: &s, dir: Path::new("/x") }.apiserver();
        for want in [
            "--advertise-address=172.18.0.2",
            "--secure-port=6443",
            "--service-cluster-ip-range=10.96.0.0/12",
            "--tls-cert-file=/x/pki/apiserver.crt",
            "--etcd-servers=http://127.0.0.1:2379",
        ] {
            assert!(f.iter().any(|a| a == want), "{want} missing in {f:?}");
        }
        assert_eq!(s.kubernetes_service_ip(), Ipv4Addr::new(10, 96, 0, 1));
    }

    #[test]
    fn feature_gates_and_runtime_config_from_kind_maps() {
        let v: serde_yaml::Value = serde_yaml::from_str("B: false\nA: true\n").unwrap();
        assert_eq!(key_values(Some(&v), "featureGates").unwrap().as_deref(), Some("A=true,B=false"));
        let v: serde_yaml::Value = serde_yaml::from_str("api/alpha: \"false\"\n").unwrap();
        assert_eq!(key_values(Some(&v), "runtimeConfig").unwrap().as_deref(), Some("api/alpha=false"));
        assert_eq!(key_values(None, "x").unwrap(), None);
        let bad: serde_yaml::Value = serde_yaml::from_str("[1]").unwrap();
        assert!(key_values(Some(&bad), "featureGates").unwrap_err().to_string().contains("featureGates"));
    }

    #[test]
    fn pki_writes_every_identity() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec();
        s.nodes.push(("kind-worker".into(), Ipv4Addr::new(172, 18, 0, 3)));
        write_pki(&s, dir.path()).unwrap();
        for f in [
            "pki/ca.crt",
            "pki/ca.key",
            "pki/apiserver.crt",
            "pki/sa.key",
            "pki/sa.pub",
            "admin.conf",
            "controller-manager.conf",
            "scheduler.conf",
            "nodes/kind-worker/kubelet.conf",
            "nodes/kind-worker/kubelet.crt",
        ] {
            assert!(dir.path().join(f).is_file(), "{f}");
        }
        let conf = std::fs::read_to_string(dir.path().join("nodes/kind-worker/kubelet.conf")).unwrap();
        assert!(conf.contains("server: https://172.18.0.2:6443") && conf.contains("name: kind-kind"), "{conf}");
    }
}
