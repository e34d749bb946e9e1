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
        let text = std::fs::read_to_string(path)
            .map_err(|e| LabError::Input(format!("{}: cannot read: {e}", path.display())))?;
        Cluster::parse(&text, &path.display().to_string())
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
        Ok(cluster)
    }
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

    #[test]
    fn wrong_kind_and_missing_control_plane_are_errors() {
        assert!(Cluster::parse(&ARTICLE.replace("kind: Cluster", "kind: Pod"), "x").is_err());
        let workers = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: worker\n";
        assert!(Cluster::parse(workers, "x").unwrap_err().to_string().contains("control-plane"));
        let bad_role = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: boss\n";
        assert!(Cluster::parse(bad_role, "x").unwrap_err().to_string().starts_with("x:4:"));
    }
}
