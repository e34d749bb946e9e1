//! The two configuration files the backend reads: the tutorial's kind cluster config (only what
//! naming needs: the cluster name and the node roles) and the user's kubeconfig (reduced to the
//! one context `--context` names).

use std::path::PathBuf;

use kube::config::Kubeconfig;
use serde::Deserialize;

/// A tutorial's `kind: Cluster` config that is not one.
#[derive(Debug, thiserror::Error)]
pub enum KindConfigError {
    #[error("not a kind cluster config: {0}")]
    Yaml(#[source] serde_yaml::Error),
    #[error("not a kind cluster config: `kind: {0}` (expected `kind: Cluster`)")]
    NotCluster(String),
}

/// The user's kubeconfig cannot be read, or lacks what `--context` names.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("no kubeconfig: set KUBECONFIG or create ~/.kube/config")]
    Missing,
    #[error("cannot read kubeconfig {}: {source}", path.display())]
    Read { path: PathBuf, source: kube::config::KubeconfigError },
    #[error("kubeconfig {}: {source}", path.display())]
    Merge { path: PathBuf, source: kube::config::KubeconfigError },
    #[error(
        "context `{context}` not found{}",
        if known.is_empty() {
            ": the kubeconfig has no contexts".to_string()
        } else {
            format!(" in the kubeconfig (contexts: {})", known.join(", "))
        }
    )]
    NoContext { context: String, known: Vec<String> },
    #[error("context `{0}` is empty in the kubeconfig")]
    EmptyContext(String),
    #[error("context `{context}` names cluster `{cluster}`, which the kubeconfig does not define")]
    NoCluster { context: String, cluster: String },
    #[error("context `{context}` names user `{user}`, which the kubeconfig does not define")]
    NoUser { context: String, user: String },
}

/// The parts of a `kind.x-k8s.io/v1alpha4` Cluster config this backend looks at.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct KindConfig {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub nodes: Vec<KindNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KindNode {
    #[serde(default = "default_role")]
    pub role: String,
}

fn default_role() -> String {
    "control-plane".into()
}

impl KindConfig {
    pub fn parse(text: &str) -> Result<Self, KindConfigError> {
        let cfg: KindConfig = serde_yaml::from_str(text).map_err(KindConfigError::Yaml)?;
        match cfg.kind.as_deref() {
            Some("Cluster") | None => Ok(cfg),
            Some(other) => Err(KindConfigError::NotCluster(other.to_string())),
        }
    }

    /// The node container names kind gives this config's nodes in a cluster called `cluster`
    /// (kind numbers the second and later nodes of a role: `worker`, `worker2`, …, and adds a
    /// load balancer in front of several control planes).
    pub fn node_names(&self, cluster: &str) -> Vec<String> {
        let roles: Vec<&str> = if self.nodes.is_empty() {
            vec!["control-plane"]
        } else {
            self.nodes.iter().map(|n| n.role.as_str()).collect()
        };
        let mut names = crate::backend::kind_names::node_names(cluster, roles.iter().copied());
        if roles.iter().filter(|r| **r == "control-plane").count() > 1 {
            names.push(format!("{cluster}-external-load-balancer"));
        }
        names
    }
}

/// The user's kubeconfig reduced to `context`, its cluster and its user, with `context` as the
/// current context: handed to the tutorial's `kubectl` and `helm` so that no block can reach
/// another cluster by accident.
pub fn single_context(kc: &Kubeconfig, context: &str) -> Result<Kubeconfig, KubeconfigError> {
    let Some(named) = kc.contexts.iter().find(|c| c.name == context) else {
        let mut known: Vec<String> = kc.contexts.iter().map(|c| c.name.clone()).collect();
        known.sort();
        return Err(KubeconfigError::NoContext { context: context.to_string(), known });
    };
    let ctx = named.context.as_ref().ok_or_else(|| KubeconfigError::EmptyContext(context.to_string()))?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .ok_or_else(|| KubeconfigError::NoCluster { context: context.to_string(), cluster: ctx.cluster.clone() })?;
    let users = match &ctx.user {
        Some(user) => vec![
            kc.auth_infos
                .iter()
                .find(|u| &u.name == user)
                .ok_or_else(|| KubeconfigError::NoUser { context: context.to_string(), user: user.clone() })?
                .clone(),
        ],
        None => Vec::new(),
    };
    Ok(Kubeconfig {
        clusters: vec![cluster.clone()],
        auth_infos: users,
        contexts: vec![named.clone()],
        current_context: Some(context.to_string()),
        kind: Some("Config".into()),
        api_version: Some("v1".into()),
        ..Kubeconfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARTICLE: &str = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: control-plane\n  - role: worker\n  - role: worker\nnetworking:\n  disableDefaultCNI: true\n  kubeProxyMode: none\n";

    #[test]
    fn article_config_gives_kind_node_names() {
        let cfg = KindConfig::parse(ARTICLE).unwrap();
        assert_eq!(cfg.name, None);
        assert_eq!(cfg.node_names("kind"), ["kind-control-plane", "kind-worker", "kind-worker2"]);
        assert_eq!(cfg.node_names("tutor-r1")[2], "tutor-r1-worker2");
    }

    #[test]
    fn ha_config_has_a_load_balancer_and_empty_config_one_node() {
        let cfg = KindConfig::parse("kind: Cluster\nname: ha\nnodes:\n- role: control-plane\n- role: control-plane\n")
            .unwrap();
        assert_eq!(cfg.name.as_deref(), Some("ha"));
        assert_eq!(cfg.node_names("ha"), ["ha-control-plane", "ha-control-plane2", "ha-external-load-balancer"]);
        assert_eq!(KindConfig::parse("kind: Cluster\n").unwrap().node_names("x"), ["x-control-plane"]);
    }

    #[test]
    fn other_documents_are_rejected() {
        assert!(KindConfig::parse("kind: Deployment\n").unwrap_err().to_string().contains("kind: Deployment"));
        assert!(KindConfig::parse("nodes: 3\n").is_err());
    }

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: prod-cluster
  cluster: {server: "https://prod.example:6443"}
- name: lab-cluster
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: prod-admin
  user: {token: secret-prod}
- name: lab-user
  user: {token: secret-lab}
contexts:
- name: prod
  context: {cluster: prod-cluster, user: prod-admin}
- name: lab
  context: {cluster: lab-cluster, user: lab-user, namespace: tutorials}
"#;

    #[test]
    fn kubeconfig_is_reduced_to_the_named_context() {
        let kc = Kubeconfig::from_yaml(KUBECONFIG).unwrap();
        let one = single_context(&kc, "lab").unwrap();
        assert_eq!(one.current_context.as_deref(), Some("lab"));
        assert_eq!(one.contexts.len(), 1);
        assert_eq!(one.clusters.len(), 1);
        assert_eq!(one.clusters[0].name, "lab-cluster");
        assert_eq!(one.auth_infos[0].name, "lab-user");
        let text = serde_yaml::to_string(&one).unwrap();
        assert!(!text.contains("prod"), "{text}");
        // What we write must read back as a kubeconfig.
        let back = Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(back.contexts[0].context.as_ref().unwrap().namespace.as_deref(), Some("tutorials"));
    }

    #[test]
    fn unknown_context_lists_the_known_ones() {
        let kc = Kubeconfig::from_yaml(KUBECONFIG).unwrap();
        let err = single_context(&kc, "staging").unwrap_err();
        assert!(matches!(&err, KubeconfigError::NoContext { known, .. } if known == &["lab", "prod"]), "{err:?}");
        let err = err.to_string();
        assert!(err.contains("`staging` not found") && err.contains("lab, prod"), "{err}");
        assert!(single_context(&Kubeconfig::default(), "x").unwrap_err().to_string().contains("no contexts"));
    }
}
