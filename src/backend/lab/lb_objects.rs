//! The objects LoadBalancer services depend on, as `kubectl` changes them: Cilium's
//! `CiliumLoadBalancerIPPool` and `CiliumL2AnnouncementPolicy`, node labels
//! (`kubectl label node`) and nodes leaving the cluster (`kubectl delete node`).

use serde_json::Value;

use super::LabError;
use super::l2_announce::L2Policy;
use super::lb_ipam::IpPool;
use super::state::ClusterRt;

/// Why `kubectl label node` refused; the messages are kubectl's stderr lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("Error from server (NotFound): nodes \"{0}\" not found\n")]
    NoNode(String),
    #[error("error: '{key}' already has a value ({value}), and --overwrite is false\n")]
    HasValue { key: String, value: String },
    #[error("error: invalid label spec: {0}\n")]
    InvalidSpec(String),
}

impl ClusterRt {
    /// Apply a pool or policy; returns kubectl's verb.
    pub fn apply_lb_object(&mut self, kind: &str, obj: &Value, name: &str) -> Result<&'static str, LabError> {
        if kind == "CiliumLoadBalancerIPPool" {
            let mut pool = IpPool::from_manifest(obj, name)?;
            return Ok(match self.store.ip_pools.iter_mut().find(|p| p.name == name) {
                Some(old) => {
                    pool.created = old.created;
                    let same = old.blocks == pool.blocks
                        && old.disabled == pool.disabled
                        && old.service_selector == pool.service_selector;
                    *old = pool;
                    if same { "unchanged" } else { "configured" }
                }
                None => {
                    self.store.ip_pools.push(pool);
                    "created"
                }
            });
        }
        let mut policy = L2Policy::from_manifest(obj, name)?;
        Ok(match self.store.l2_policies.iter_mut().find(|p| p.name == name) {
            Some(old) => {
                policy.created = old.created;
                *old = policy;
                "configured"
            }
            None => {
                self.store.l2_policies.push(policy);
                "created"
            }
        })
    }

    /// Delete a pool, a policy or a node object; whether it existed.
    pub fn delete_lb_object(&mut self, kind: &str, name: &str) -> bool {
        let before = (self.store.ip_pools.len(), self.store.l2_policies.len(), self.store.nodes.len());
        match kind {
            "CiliumLoadBalancerIPPool" => self.store.ip_pools.retain(|p| p.name != name),
            "CiliumL2AnnouncementPolicy" => self.store.l2_policies.retain(|p| p.name != name),
            // The node leaves the cluster (as when its kubelet is gone for good): its namespace
            // stays, but nothing elects it any more.
            _ => self.store.nodes.retain(|n| n.name != name),
        }
        before != (self.store.ip_pools.len(), self.store.l2_policies.len(), self.store.nodes.len())
    }

    /// `kubectl label node NAME k=v k2-`: kubectl's answer line, or why not (kubectl's words).
    pub fn label_node(&mut self, name: &str, changes: &[String], overwrite: bool) -> Result<String, LabelError> {
        if !self.store.nodes.iter().any(|n| n.name == name) {
            return Err(LabelError::NoNode(name.to_string()));
        }
        let current = super::l2_announce::node_labels(&self.store, name);
        let mut edits = Vec::new();
        for c in changes {
            if let Some(key) = c.strip_suffix('-') {
                edits.push((key.to_string(), None));
            } else if let Some((k, v)) = c.split_once('=') {
                if !overwrite && current.get(k).is_some_and(|old| old != v) {
                    return Err(LabelError::HasValue { key: k.to_string(), value: current[k].clone() });
                }
                edits.push((k.to_string(), Some(v.to_string())));
            } else {
                return Err(LabelError::InvalidSpec(c.clone()));
            }
        }
        let entry = self.store.node_labels.entry(name.to_string()).or_default();
        for (k, v) in edits {
            entry.insert(k, v);
        }
        Ok(format!("node/{name} {}\n", if changes.iter().all(|c| c.ends_with('-')) { "unlabeled" } else { "labeled" }))
    }
}
