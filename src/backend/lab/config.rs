//! kind's `Cluster` config (kind.x-k8s.io/v1alpha4), parsed strictly: a field kind does not know
//! is an error with its line, because a typo silently ignored would build a different cluster
//! than the one the tutorial describes.

use std::path::Path;

use serde::Deserialize;

use super::LabError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cluster {
    pub kind: String,
    pub api_version: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "default_nodes")]
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub networking: Networking,
    // Accepted because real configs carry them; they change nothing in the lab's network.
    #[serde(default)]
    pub feature_gates: Option<serde_yaml::Value>,
    #[serde(default)]
    pub runtime_config: Option<serde_yaml::Value>,
    #[serde(default)]
    pub kubeadm_config_patches: Option<serde_yaml::Value>,
    #[serde(default, rename = "kubeadmConfigPatchesJSON6902")]
    pub kubeadm_config_patches_json6902: Option<serde_yaml::Value>,
    #[serde(default)]
    pub containerd_config_patches: Option<serde_yaml::Value>,
    #[serde(default, rename = "containerdConfigPatchesJSON6902")]
    pub containerd_config_patches_json6902: Option<serde_yaml::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ControlPlane,
    Worker,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Node {
    pub role: Role,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    pub extra_mounts: Option<serde_yaml::Value>,
    #[serde(default)]
    pub extra_port_mappings: Option<serde_yaml::Value>,
    #[serde(default)]
    pub kubeadm_config_patches: Option<serde_yaml::Value>,
    #[serde(default, rename = "kubeadmConfigPatchesJSON6902")]
    pub kubeadm_config_patches_json6902: Option<serde_yaml::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Networking {
    #[serde(default)]
    pub ip_family: Option<String>,
    #[serde(default)]
    pub api_server_address: Option<String>,
    #[serde(default)]
    pub api_server_port: Option<u16>,
    #[serde(default)]
    pub pod_subnet: Option<String>,
    #[serde(default)]
    pub service_subnet: Option<String>,
    #[serde(default, rename = "disableDefaultCNI")]
    pub disable_default_cni: bool,
    #[serde(default)]
    pub kube_proxy_mode: Option<String>,
    #[serde(default)]
    pub dns_search: Option<Vec<String>>,
}

fn default_nodes() -> Vec<Node> {
    vec![Node {
        role: Role::ControlPlane,
        image: None,
        labels: None,
        extra_mounts: None,
        extra_port_mappings: None,
        kubeadm_config_patches: None,
        kubeadm_config_patches_json6902: None,
    }]
}

impl Default for Cluster {
    /// What `kind create cluster` builds without `--config`: one control-plane node.
    fn default() -> Self {
        Cluster {
            kind: "Cluster".into(),
            api_version: "kind.x-k8s.io/v1alpha4".into(),
            name: None,
            nodes: default_nodes(),
            networking: Networking::default(),
            feature_gates: None,
            runtime_config: None,
            kubeadm_config_patches: None,
            kubeadm_config_patches_json6902: None,
            containerd_config_patches: None,
            containerd_config_patches_json6902: None,
        }
    }
}

impl Cluster {
    pub fn load(path: &Path) -> Result<Cluster, LabError> {
        Cluster::load_as(path, path)
    }

    /// `load`, naming the file `shown` in errors (a shim's file, read through the lab host).
    pub fn load_as(path: &Path, shown: &Path) -> Result<Cluster, LabError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LabError::Input(format!("{}: cannot read: {e}", shown.display())))?;
        Cluster::parse(&text, &shown.display().to_string())
    }

    /// `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Cluster, LabError> {
        let cluster: Cluster = serde_yaml::from_str(text).map_err(|e| {
            let at = e.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default();
            LabError::Input(format!("{origin}{at}: {e}"))
        })?;
        if cluster.kind != "Cluster" {
            return Err(LabError::Input(format!("{origin}: kind is `{}`, expected `Cluster`", cluster.kind)));
        }
        if cluster.api_version != "kind.x-k8s.io/v1alpha4" {
            return Err(LabError::Input(format!(
                "{origin}: apiVersion `{}` is not supported (expected kind.x-k8s.io/v1alpha4)",
                cluster.api_version
            )));
        }
        if !cluster.nodes.iter().any(|n| n.role == Role::ControlPlane) {
            return Err(LabError::Input(format!("{origin}: a cluster needs a control-plane node")));
        }
        if let Some(family) = &cluster.networking.ip_family
            && family != "ipv4"
        {
            return Err(LabError::UnsupportedDetail(format!(
                "{origin}: networking.ipFamily `{family}` (the lab is IPv4 only)"
            )));
        }
        cluster.check_networks(text, origin)?;
        Ok(cluster)
    }

    /// The node count fits the node network, and the pod, service and node networks (the
    /// node network is the lab's bridge, 172.18.0.0/16, as Docker's `kind` network) are
    /// disjoint: overlapping ranges route one kind of address to the other.
    fn check_networks(&self, text: &str, origin: &str) -> Result<(), LabError> {
        use super::topology::{self, Cidr};
        let at = |key: &str| line_of(text, key).map(|l| format!(":{l}")).unwrap_or_default();
        let nodes = Cidr { addr: topology::BRIDGE_NET, len: topology::BRIDGE_PREFIX };
        let max = topology::max_nodes();
        if self.nodes.len() as u64 > max {
            return Err(LabError::Input(format!(
                "{origin}{}: {} nodes do not fit in the node network {nodes} (at most {max}: .0 and .1 are \
                 the network and the bridge, the last address is broadcast); use fewer nodes",
                at("nodes"),
                self.nodes.len()
            )));
        }
        let subnet = |v: &Option<String>, default: &str, key: &str| {
            Cidr::parse(v.as_deref().unwrap_or(default))
                .map_err(|e| LabError::Input(format!("{origin}{}: networking.{key}: {e}", at(key))))
        };
        let pods = subnet(&self.networking.pod_subnet, topology::DEFAULT_POD_SUBNET, "podSubnet")?;
        let services = subnet(&self.networking.service_subnet, topology::DEFAULT_SERVICE_SUBNET, "serviceSubnet")?;
        let overlap = |a: Cidr, b: Cidr| a.contains(b.addr) || b.contains(a.addr);
        let given =
            |key: &str, v: &Option<String>| if v.is_some() { key.to_string() } else { format!("{key} (default)") };
        let pod_key = given("podSubnet", &self.networking.pod_subnet);
        let svc_key = given("serviceSubnet", &self.networking.service_subnet);
        // Blame the line of a subnet that is written down.
        let line = |first: &str| if at(first).is_empty() { at("serviceSubnet") } else { at(first) };
        if overlap(pods, nodes) {
            return Err(LabError::Input(format!(
                "{origin}{}: networking.{pod_key} {pods} overlaps the node network {nodes} (the lab's bridge, \
                 as Docker's `kind` network): choose a range outside it, e.g. {}",
                at("podSubnet"),
                topology::DEFAULT_POD_SUBNET
            )));
        }
        if overlap(services, nodes) {
            return Err(LabError::Input(format!(
                "{origin}{}: networking.{svc_key} {services} overlaps the node network {nodes} (the lab's \
                 bridge, as Docker's `kind` network): choose a range outside it, e.g. {}",
                at("serviceSubnet"),
                topology::DEFAULT_SERVICE_SUBNET
            )));
        }
        if overlap(pods, services) {
            return Err(LabError::Input(format!(
                "{origin}{}: networking.{pod_key} {pods} and networking.{svc_key} {services} overlap: pod and \
                 service addresses must be distinct ranges",
                line("podSubnet")
            )));
        }
        Ok(())
    }
}

/// The 1-based line of the first `key:` in `text` (a YAML key at any indentation).
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines().position(|l| l.trim_start().trim_start_matches("- ").starts_with(&format!("{key}:"))).map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARTICLE: &str = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: control-plane\n  - role: worker\n  - role: worker\nnetworking:\n  disableDefaultCNI: true\n  kubeProxyMode: none\n";

    #[test]
    fn parses_the_article_config() {
        let c = Cluster::parse(ARTICLE, "kind-config.yaml").unwrap();
        assert_eq!(c.nodes.len(), 3);
        assert_eq!(c.nodes[1].role, Role::Worker);
        assert!(c.networking.disable_default_cni);
        assert_eq!(c.networking.kube_proxy_mode.as_deref(), Some("none"));
    }

    #[test]
    fn unknown_field_names_file_and_line() {
        let text = ARTICLE.replace("  kubeProxyMode: none", "  kubeProxyMod: none");
        let e = Cluster::parse(&text, "k.yaml").unwrap_err().to_string();
        assert!(e.starts_with("k.yaml:9:"), "{e}");
        assert!(e.contains("kubeProxyMod"), "{e}");
    }

    const NET: &str =
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: control-plane\nnetworking:\n";

    #[test]
    fn networks_must_not_overlap() {
        let e = |extra: &str| Cluster::parse(&format!("{NET}{extra}"), "k.yaml").unwrap_err().to_string();
        let msg = e("  podSubnet: 172.18.0.0/16\n");
        assert!(
            msg.starts_with("k.yaml:6: networking.podSubnet 172.18.0.0/16 overlaps the node network 172.18.0.0/16"),
            "{msg}"
        );
        let msg = e("  podSubnet: 172.16.0.0/12\n");
        assert!(msg.starts_with("k.yaml:6: networking.podSubnet 172.16.0.0/12 overlaps the node network"), "{msg}");
        let msg = e("  serviceSubnet: 172.18.128.0/20\n");
        assert!(
            msg.starts_with("k.yaml:6: networking.serviceSubnet 172.18.128.0/20 overlaps the node network"),
            "{msg}"
        );
        let msg = e("  podSubnet: 10.96.0.0/16\n  serviceSubnet: 10.96.0.0/16\n");
        assert!(
            msg.starts_with(
                "k.yaml:6: networking.podSubnet 10.96.0.0/16 and networking.serviceSubnet 10.96.0.0/16 overlap"
            ),
            "{msg}"
        );
        // kind's default service range is 10.96.0.0/16.
        let msg = e("  podSubnet: 10.96.128.0/17\n");
        assert!(msg.contains("networking.serviceSubnet (default) 10.96.0.0/16 overlap"), "{msg}");
        Cluster::parse(&format!("{NET}  podSubnet: 10.100.0.0/16\n"), "k.yaml").unwrap();
        let msg = e("  podSubnet: 10.1.0.0/33\n");
        assert!(msg.starts_with("k.yaml:6: networking.podSubnet: `10.1.0.0/33`: bad prefix length"), "{msg}");
        Cluster::parse(&format!("{NET}  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/16\n"), "k.yaml").unwrap();
    }

    #[test]
    fn the_node_count_is_bounded_by_the_node_network() {
        let many = |n: usize| {
            let mut t =
                String::from("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: control-plane\n");
            t.push_str(&"  - role: worker\n".repeat(n - 1));
            t.push_str("networking:\n  podSubnet: 10.0.0.0/8\n  serviceSubnet: 192.168.128.0/17\n");
            t
        };
        let max = super::super::topology::max_nodes() as usize;
        assert_eq!(Cluster::parse(&many(max), "k.yaml").unwrap().nodes.len(), max);
        let e = Cluster::parse(&many(max + 1), "k.yaml").unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("k.yaml:3: {} nodes do not fit in the node network 172.18.0.0/16", max + 1)),
            "{e}"
        );
    }

    #[test]
    fn wrong_kind_and_missing_control_plane_are_errors() {
        assert!(Cluster::parse(&ARTICLE.replace("kind: Cluster", "kind: Pod"), "x").is_err());
        let workers = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: worker\n";
        assert!(Cluster::parse(workers, "x").unwrap_err().to_string().contains("control-plane"));
        let bad_role = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: boss\n";
        assert!(Cluster::parse(bad_role, "x").unwrap_err().to_string().starts_with("x:4:"));
    }
}
