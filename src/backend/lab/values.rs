//! The subset of Cilium's Helm values the lab acts on. Helm accepts any key, so unknown keys
//! are kept (for `helm get values`) but ignored.

use serde_yaml::Value;

use super::LabError;
use super::topology::Cidr;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CiliumValues {
    pub routing_mode: Option<String>,
    pub native_routing_cidr: Option<Cidr>,
    pub auto_direct_node_routes: bool,
    pub ipv4_masquerade: bool,
    pub bpf_masquerade: bool,
    pub ip_masq_agent: bool,
    pub non_masquerade_cidrs: Vec<Cidr>,
    pub kube_proxy_replacement: bool,
    /// Tunnel mode's encapsulation (`routing-mode: tunnel`; the lab's agent on the real API).
    pub tunnel: Option<super::tunnel::Tunnel>,
    /// Everything as given, merged over the files in order.
    pub raw: Value,
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn truthy(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => Some(matches!(s.as_str(), "true" | "strict")),
        _ => None,
    }
}

/// Deep-merge `over` into `base` (Helm's `-f a -f b` semantics).
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

impl CiliumValues {
    pub fn from_value(raw: Value, origin: &str) -> Result<CiliumValues, LabError> {
        let cidr = |v: &Value, what: &str| -> Result<Cidr, LabError> {
            let s = v.as_str().ok_or_else(|| LabError::Input(format!("{origin}: {what} must be a string")))?;
            Cidr::parse(s).map_err(|e| LabError::Input(format!("{origin}: {what}: {e}")))
        };
        let mut v = CiliumValues {
            routing_mode: get(&raw, &["routingMode"]).and_then(Value::as_str).map(str::to_string),
            auto_direct_node_routes: truthy(get(&raw, &["autoDirectNodeRoutes"])).unwrap_or(false),
            // Cilium's chart default is true.
            ipv4_masquerade: truthy(get(&raw, &["enableIPv4Masquerade"])).unwrap_or(true),
            bpf_masquerade: truthy(get(&raw, &["bpf", "masquerade"])).unwrap_or(false),
            ip_masq_agent: truthy(get(&raw, &["ipMasqAgent", "enabled"])).unwrap_or(false),
            kube_proxy_replacement: truthy(get(&raw, &["kubeProxyReplacement"])).unwrap_or(false),
            ..Default::default()
        };
        if let Some(c) = get(&raw, &["ipv4NativeRoutingCIDR"]) {
            v.native_routing_cidr = Some(cidr(c, "ipv4NativeRoutingCIDR")?);
        }
        if let Some(list) = get(&raw, &["ipMasqAgent", "config", "nonMasqueradeCIDRs"]).and_then(Value::as_sequence) {
            for c in list {
                v.non_masquerade_cidrs.push(cidr(c, "ipMasqAgent.config.nonMasqueradeCIDRs")?);
            }
        }
        if v.native_routing() && v.native_routing_cidr.is_none() {
            return Err(LabError::Input(format!("{origin}: routingMode native needs ipv4NativeRoutingCIDR")));
        }
        if !v.native_routing() {
            return Err(LabError::Unsupported(format!(
                "{origin}: routingMode `{}` is not supported on the lab backend (it implements routingMode: native): mark the block backend=kind",
                v.routing_mode.as_deref().unwrap_or("tunnel")
            )));
        }
        v.raw = raw;
        Ok(v)
    }

    pub fn native_routing(&self) -> bool {
        self.routing_mode.as_deref() == Some("native")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEDIUM: &str = "cluster:\n  name: kind-kind\nkubeProxyReplacement: strict\nroutingMode: native\nipv4NativeRoutingCIDR: 10.244.0.0/16\nenableIPv4Masquerade: true\nautoDirectNodeRoutes: true\n";

    #[test]
    fn article_values() {
        let v = CiliumValues::from_value(serde_yaml::from_str(MEDIUM).unwrap(), "f").unwrap();
        assert!(v.native_routing() && v.auto_direct_node_routes && v.ipv4_masquerade && v.kube_proxy_replacement);
        assert!(!v.bpf_masquerade);
        assert_eq!(v.native_routing_cidr.unwrap().to_string(), "10.244.0.0/16");
    }

    #[test]
    fn bpf_masquerade_and_merge() {
        let mut base: Value = serde_yaml::from_str(MEDIUM).unwrap();
        merge(&mut base, serde_yaml::from_str("bpf:\n  masquerade: true\nipMasqAgent:\n  enabled: true\n  config:\n    nonMasqueradeCIDRs:\n      - 10.244.0.0/8\n").unwrap());
        let v = CiliumValues::from_value(base, "f").unwrap();
        assert!(v.bpf_masquerade && v.ip_masq_agent);
        assert_eq!(v.non_masquerade_cidrs[0].to_string(), "10.0.0.0/8");
        assert!(v.auto_direct_node_routes);
    }

    #[test]
    fn tunnel_mode_is_unsupported() {
        let e = CiliumValues::from_value(serde_yaml::from_str("ipam:\n  mode: kubernetes\n").unwrap(), "v.yaml")
            .unwrap_err();
        assert!(e.is_usage() && e.to_string().contains("tunnel"), "{e}");
    }
}
