//! A container's environment as the kubelet builds it: service links, `envFrom`, `env` with
//! `$(VAR)` expansion and `fieldRef`s. ConfigMaps and Secrets are passed in (fetched by the
//! caller), so the rules are pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, Service};

/// Why a container's environment cannot be built (the kubelet's `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("unsupported fieldRef {0}")]
    UnsupportedFieldRef(String),
    /// An `envFrom` source that is not optional and does not exist; `kind` is `configmap` or
    /// `secret`, as the kubelet writes it.
    #[error("{kind} \"{name}\" not found")]
    NoSource { kind: &'static str, name: String },
    /// A `configMapKeyRef`/`secretKeyRef` whose key is missing; `kind` is `ConfigMap` or `Secret`.
    #[error("couldn't find key {key} in {kind} {name}")]
    NoKey { key: String, kind: &'static str, name: String },
}

/// ConfigMap and Secret data the container refers to, by name.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
}

/// Docker-link-style variables for `services` (`NAME_SERVICE_HOST`, `NAME_PORT_80_TCP`, …).
pub fn service_links(services: &[Service]) -> Vec<(String, String)> {
    let mut out = vec![];
    for s in services {
        let Some(spec) = &s.spec else { continue };
        let Some(ip) = spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty() && *ip != "None") else { continue };
        let name = s.metadata.name.clone().unwrap_or_default().to_uppercase().replace('-', "_");
        let ports = spec.ports.clone().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        out.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
        out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        for p in &ports {
            if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((format!("{name}_SERVICE_PORT_{}", pn.to_uppercase().replace('-', "_")), p.port.to_string()));
            }
        }
        let proto = |p: &k8s_openapi::api::core::v1::ServicePort| p.protocol.clone().unwrap_or_else(|| "TCP".into());
        out.push((format!("{name}_PORT"), format!("{}://{ip}:{}", proto(first).to_lowercase(), first.port)));
        for p in &ports {
            let pr = proto(p);
            let base = format!("{name}_PORT_{}_{}", p.port, pr.to_uppercase());
            out.push((base.clone(), format!("{}://{ip}:{}", pr.to_lowercase(), p.port)));
            out.push((format!("{base}_PROTO"), pr.to_lowercase()));
            out.push((format!("{base}_PORT"), p.port.to_string()));
            out.push((format!("{base}_ADDR"), ip.to_string()));
        }
    }
    out
}

/// Expand `$(VAR)` from `known`; `$$` escapes; unknown references stay as written.
pub fn expand(s: &str, known: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let var = &inner[..end];
            match known.get(var) {
                Some(v) => out.push_str(v),
                None => out.push_str(&format!("$({var})")),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// `fieldRef` paths the kubelet resolves.
pub fn field(pod: &Pod, path: &str, pod_ip: Option<&str>, host_ip: &str) -> Result<String, EnvError> {
    let m = &pod.metadata;
    let label = |map: &Option<BTreeMap<String, String>>, key: &str| {
        map.as_ref().and_then(|l| l.get(key)).cloned().unwrap_or_default()
    };
    let key_of = |p: &str, prefix: &str| p.strip_prefix(prefix).and_then(|k| k.strip_suffix("']")).map(str::to_string);
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => {
            pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".into())
        }
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        "status.podIP" | "status.podIPs" => pod_ip.unwrap_or_default().to_string(),
        p => {
            if let Some(k) = key_of(p, "metadata.labels['") {
                label(&m.labels, &k)
            } else if let Some(k) = key_of(p, "metadata.annotations['") {
                label(&m.annotations, &k)
            } else {
                return Err(EnvError::UnsupportedFieldRef(p.to_string()));
            }
        }
    })
}

/// The container's whole environment, in the kubelet's order: service links, `envFrom`,
/// then `env` (later entries win).
pub fn build(
    pod: &Pod,
    c: &Container,
    services: &[Service],
    sources: &Sources,
    pod_ip: Option<&str>,
    host_ip: &str,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = vec![];
    let mut set = |vars: &mut BTreeMap<String, String>, k: String, v: String| {
        if !vars.contains_key(&k) {
            order.push(k.clone());
        }
        vars.insert(k, v);
    };
    let links = pod.spec.as_ref().and_then(|s| s.enable_service_links).unwrap_or(true);
    for (k, v) in service_links(services) {
        let is_kubernetes = k.starts_with("KUBERNETES_");
        if links || is_kubernetes {
            set(&mut vars, k, v);
        }
    }
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, what, name, optional) = if let Some(r) = &from.config_map_ref {
            (sources.config_maps.get(&r.name), "configmap", r.name.clone(), r.optional.unwrap_or(false))
        } else if let Some(r) = &from.secret_ref {
            (sources.secrets.get(&r.name), "secret", r.name.clone(), r.optional.unwrap_or(false))
        } else {
            continue;
        };
        match data {
            Some(d) => {
                for (k, v) in d {
                    set(&mut vars, format!("{prefix}{k}"), v.clone());
                }
            }
            None if optional => {}
            None => return Err(EnvError::NoSource { kind: what, name }),
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            expand(v, &vars)
        } else if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                field(pod, &f.field_path, pod_ip, host_ip)?
            } else if let Some(r) = &from.config_map_key_ref {
                match sources.config_maps.get(&r.name).and_then(|d| d.get(&r.key)) {
                    Some(v) => v.clone(),
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(EnvError::NoKey { key: r.key.clone(), kind: "ConfigMap", name: r.name.clone() });
                    }
                }
            } else if let Some(r) = &from.secret_key_ref {
                match sources.secrets.get(&r.name).and_then(|d| d.get(&r.key)) {
                    Some(v) => v.clone(),
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(EnvError::NoKey { key: r.key.clone(), kind: "Secret", name: r.name.clone() });
                    }
                }
            } else {
                continue;
            }
        } else {
            String::new()
        };
        set(&mut vars, e.name.clone(), value);
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let v = vars[&k].clone();
            (k, v)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion() {
        let known: BTreeMap<String, String> = [("A".to_string(), "x".to_string())].into();
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &known), "x-$(B)-$(A)-$");
    }

    #[test]
    fn links_for_kubernetes_service() {
        let s: Service = serde_yaml::from_str(
            "metadata: {name: kubernetes}\nspec: {clusterIP: 10.96.0.1, ports: [{name: https, port: 443, protocol: TCP}]}\n",
        )
        .unwrap();
        let l: BTreeMap<_, _> = service_links(&[s]).into_iter().collect();
        assert_eq!(l["KUBERNETES_SERVICE_HOST"], "10.96.0.1");
        assert_eq!(l["KUBERNETES_SERVICE_PORT"], "443");
        assert_eq!(l["KUBERNETES_SERVICE_PORT_HTTPS"], "443");
        assert_eq!(l["KUBERNETES_PORT"], "tcp://10.96.0.1:443");
        assert_eq!(l["KUBERNETES_PORT_443_TCP_ADDR"], "10.96.0.1");
    }

    #[test]
    fn env_order_refs_and_errors() {
        let pod: Pod = serde_yaml::from_str(
            "metadata: {name: p, namespace: n, labels: {app: web}}\nspec:\n  nodeName: kind-worker\n  containers:\n  - name: c\n    envFrom: [{configMapRef: {name: cm}, prefix: CM_}]\n    env:\n    - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n    - {name: APP, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}}\n    - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}\n    - {name: GREETING, value: \"hi $(POD) $(CM_k)\"}\n",
        )
        .unwrap();
        let c = pod.spec.as_ref().unwrap().containers[0].clone();
        let mut src = Sources::default();
        let e = build(&pod, &c, &[], &src, None, "172.18.0.3").unwrap_err();
        assert_eq!(e, EnvError::NoSource { kind: "configmap", name: "cm".into() });
        assert_eq!(e.to_string(), "configmap \"cm\" not found");
        src.config_maps.insert("cm".into(), [("k".to_string(), "v".to_string())].into());
        let env = build(&pod, &c, &[], &src, Some("10.244.1.2"), "172.18.0.3").unwrap();
        let m: BTreeMap<_, _> = env.iter().cloned().collect();
        assert_eq!(env[0].0, "CM_k");
        assert_eq!(m["POD"], "p");
        assert_eq!(m["APP"], "web");
        assert_eq!(m["IP"], "10.244.1.2");
        assert_eq!(m["GREETING"], "hi p v");
    }
}
