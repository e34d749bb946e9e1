//! The CNI side of a cluster: kind's default CNI, or Cilium as its Helm values describe it
//! (devices, routes, masquerade, agent pods), and `rollout restart`.

use std::path::Path;
use std::time::SystemTime;

use super::LabError;
use super::bpf_masq::BpfMasq;
use super::config::Role;
use super::seed::system_pod;
use super::state::{ClusterRt, suffix};
use super::values::CiliumValues;

impl ClusterRt {
    /// kind's default CNI (kindnet): pod routes to every node, no Cilium devices.
    pub fn install_kindnet(&mut self) -> Result<(), LabError> {
        let plans = self.plans();
        let values =
            CiliumValues { routing_mode: Some("native".into()), auto_direct_node_routes: true, ..Default::default() };
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
                self.store.pods.push(system_pod(
                    "cilium",
                    &n.plan,
                    "DaemonSet/cilium",
                    "quay.io/cilium/cilium:v1.15.1",
                    now,
                ));
            }
            let cp = self.nodes.iter().find(|n| n.plan.role == Role::Worker).unwrap_or(&self.nodes[0]);
            let mut op = system_pod(
                "cilium-operator",
                &cp.plan,
                "Deployment/cilium-operator",
                "quay.io/cilium/operator-generic:v1.15.1",
                now,
            );
            op.name = format!("cilium-operator-{}-{}", "5d9f8c8b7", suffix(5));
            self.store.pods.push(op);
            // Hubble's pods need the pod network, as in a real install.
            let enabled = |path: [&str; 3]| {
                values
                    .raw
                    .get(path[0])
                    .and_then(|v| v.get(path[1]))
                    .and_then(|v| v.get(path[2]))
                    .and_then(serde_yaml::Value::as_bool)
                    == Some(true)
            };
            for (name, on, image) in [
                ("hubble-relay", enabled(["hubble", "relay", "enabled"]), "quay.io/cilium/hubble-relay:v1.15.1"),
                ("hubble-ui", enabled(["hubble", "ui", "enabled"]), "quay.io/cilium/hubble-ui:v0.13.0"),
            ] {
                if on {
                    self.seed_deployment(
                        "kube-system",
                        name,
                        1,
                        [("k8s-app".to_string(), name.to_string())].into(),
                        image,
                    );
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
            for p in
                self.store.pods.iter_mut().filter(|p| p.namespace == ns && p.owner.as_deref() == Some(owner.as_str()))
            {
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
    pub fn sync_masquerade(&mut self, values: &CiliumValues) -> Result<(), LabError> {
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
}
