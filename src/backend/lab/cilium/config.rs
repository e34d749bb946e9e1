//! The agent's configuration: the `cilium-config` ConfigMap, one option per key named as the
//! agent's flags, as `cilium-dbg build-config` writes it into the agent's `--config-dir` (one
//! file per key) and as the API serves it.

use std::collections::BTreeMap;
use std::path::Path;

use super::CiliumError;
use crate::backend::lab::topology::Cidr;
use crate::backend::lab::tunnel::{Protocol, Tunnel};
use crate::backend::lab::values::CiliumValues;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentConfig {
    pub options: BTreeMap<String, String>,
}

impl AgentConfig {
    pub fn from_map(options: BTreeMap<String, String>) -> AgentConfig {
        AgentConfig { options }
    }

    /// The options of a `--config-dir` (the kubelet's atomic-writer entries `..data`,
    /// `..<timestamp>` are not options).
    pub fn from_dir(dir: &Path) -> Result<AgentConfig, CiliumError> {
        let mut options = BTreeMap::new();
        let entries = std::fs::read_dir(dir).map_err(CiliumError::io(format!("reading {}", dir.display())))?;
        for e in entries {
            let e = e.map_err(CiliumError::io(format!("reading {}", dir.display())))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = e.path();
            if path.is_dir() {
                continue;
            }
            let value =
                std::fs::read_to_string(&path).map_err(CiliumError::io(format!("reading {}", path.display())))?;
            options.insert(name, value.trim_end_matches('\n').to_string());
        }
        Ok(AgentConfig { options })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    fn flag(&self, key: &str, default: bool) -> bool {
        match self.get(key) {
            Some(v) => matches!(v, "true" | "strict"),
            None => default,
        }
    }

    pub fn routing_mode(&self) -> &str {
        self.get("routing-mode").unwrap_or("tunnel")
    }

    /// `kube-proxy-replacement`: `true` (or the older `strict`).
    pub fn kube_proxy_replacement(&self) -> bool {
        self.flag("kube-proxy-replacement", false)
    }

    pub fn l2_announcements(&self) -> bool {
        self.flag("enable-l2-announcements", false)
    }

    /// The datapath settings the lab's node code acts on, checked as the real agent checks
    /// them at start (an invalid combination is an error naming the option).
    pub fn datapath(&self) -> Result<CiliumValues, CiliumError> {
        let bad = |key: &str, why: String| CiliumError::Config { key: key.into(), why };
        let mode = self.routing_mode();
        let native = match self.get("ipv4-native-routing-cidr").filter(|c| !c.is_empty()) {
            Some(c) => Some(Cidr::parse(c).map_err(|e| bad("ipv4-native-routing-cidr", e.to_string()))?),
            None => None,
        };
        let auto_direct_node_routes = self.flag("auto-direct-node-routes", false);
        let tunnel = match mode {
            "native" => {
                if native.is_none() {
                    return Err(bad("ipv4-native-routing-cidr", "routing-mode native needs it".into()));
                }
                None
            }
            "tunnel" => {
                if auto_direct_node_routes {
                    return Err(bad(
                        "auto-direct-node-routes",
                        "auto-direct-node-routes cannot be used with tunneling. Packets must be routed through the tunnel device."
                            .into(),
                    ));
                }
                let name = self.get("tunnel-protocol").filter(|p| !p.is_empty()).unwrap_or("vxlan");
                let protocol = Protocol::parse(name).ok_or_else(|| {
                    bad("tunnel-protocol", format!("\"{name}\" is not a tunnel protocol (vxlan or geneve)"))
                })?;
                let port = match self.get("tunnel-port").filter(|p| !p.is_empty() && *p != "0") {
                    Some(p) => p
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| bad("tunnel-port", format!("\"{p}\" is not a UDP port")))?,
                    None => protocol.default_port(),
                };
                Some(Tunnel { protocol, port })
            }
            other => {
                return Err(bad("routing-mode", format!("\"{other}\" is not a routing mode (tunnel or native)")));
            }
        };
        Ok(CiliumValues {
            routing_mode: Some(mode.to_string()),
            native_routing_cidr: native,
            auto_direct_node_routes,
            ipv4_masquerade: self.flag("enable-ipv4-masquerade", true),
            bpf_masquerade: self.flag("enable-bpf-masquerade", false),
            ip_masq_agent: self.flag("enable-ip-masq-agent", false),
            non_masquerade_cidrs: vec![],
            kube_proxy_replacement: self.kube_proxy_replacement(),
            tunnel,
            raw: serde_yaml::Value::Null,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> AgentConfig {
        AgentConfig::from_map(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn native_routing_options() {
        let c = cfg(&[
            ("routing-mode", "native"),
            ("ipv4-native-routing-cidr", "10.244.0.0/16"),
            ("auto-direct-node-routes", "true"),
            ("kube-proxy-replacement", "strict"),
            ("enable-bpf-masquerade", "false"),
        ]);
        let v = c.datapath().unwrap();
        assert!(v.native_routing() && v.auto_direct_node_routes && v.ipv4_masquerade && !v.bpf_masquerade);
        assert!(c.kube_proxy_replacement());
        assert_eq!(v.native_routing_cidr.unwrap().to_string(), "10.244.0.0/16");
    }

    #[test]
    fn tunnel_is_the_default_and_bad_values_are_named() {
        let v = cfg(&[]).datapath().unwrap();
        assert_eq!(v.tunnel, Some(Tunnel { protocol: Protocol::Vxlan, port: 8472 }));
        assert!(!v.native_routing() && v.native_routing_cidr.is_none());
        let v = cfg(&[("routing-mode", "tunnel"), ("tunnel-protocol", "geneve")]).datapath().unwrap();
        assert_eq!(v.tunnel, Some(Tunnel { protocol: Protocol::Geneve, port: 6081 }));
        let v = cfg(&[("tunnel-protocol", "vxlan"), ("tunnel-port", "4789")]).datapath().unwrap();
        assert_eq!(v.tunnel.unwrap().port, 4789);
        for (pairs, key) in [
            (&[("tunnel-protocol", "gre")][..], "tunnel-protocol"),
            (&[("tunnel-port", "70000")][..], "tunnel-port"),
            (&[("auto-direct-node-routes", "true")][..], "auto-direct-node-routes"),
            (&[("routing-mode", "overlay")][..], "routing-mode"),
            (&[("routing-mode", "native"), ("ipv4-native-routing-cidr", "10.244.0.0")][..], "ipv4-native-routing-cidr"),
            (&[("routing-mode", "native")][..], "ipv4-native-routing-cidr"),
        ] {
            let e = cfg(pairs).datapath().unwrap_err().to_string();
            assert!(e.contains(key), "{pairs:?}: {e}");
        }
        assert!(
            cfg(&[("routing-mode", "native"), ("ipv4-native-routing-cidr", "10.244.0.0/16")])
                .datapath()
                .unwrap()
                .tunnel
                .is_none()
        );
    }

    #[test]
    fn config_dir_skips_the_atomic_writer_entries() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("routing-mode"), "native").unwrap();
        std::fs::create_dir(d.path().join("..2026_01_01")).unwrap();
        std::os::unix::fs::symlink("..2026_01_01", d.path().join("..data")).unwrap();
        let c = AgentConfig::from_dir(d.path()).unwrap();
        assert_eq!(c.options.len(), 1);
        assert_eq!(c.routing_mode(), "native");
    }
}
