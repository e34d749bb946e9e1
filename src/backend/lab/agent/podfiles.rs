//! What the kubelet writes for each pod: `/etc/hosts`, `/etc/resolv.conf` and the hostname,
//! derived from the pod's spec (hostname, subdomain, hostAliases, dnsPolicy, dnsConfig) and the
//! node's cluster DNS settings. Pure functions.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Pod;

/// The node's DNS settings (kubelet's `--cluster-dns`, `--cluster-domain`) and the node's own
/// resolv.conf (for `dnsPolicy: Default`).
#[derive(Debug, Clone)]
pub struct DnsSettings {
    pub cluster_dns: Vec<Ipv4Addr>,
    pub cluster_domain: String,
    pub node_resolv: String,
}

/// The pod's hostname: `spec.hostname`, else the pod's name, cut to 63 characters as the
/// kubelet does (a trailing `-` or `.` dropped).
pub fn hostname(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    let name = spec.and_then(|s| s.hostname.clone()).unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    let mut h: String = name.chars().take(63).collect();
    while h.ends_with('-') || h.ends_with('.') {
        h.pop();
    }
    h
}

/// The pod's fully qualified name when it has a subdomain (`h.sub.ns.svc.cluster.local`).
pub fn fqdn(pod: &Pod, domain: &str) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let sub = spec.subdomain.as_deref().filter(|s| !s.is_empty())?;
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    Some(format!("{}.{sub}.{ns}.svc.{domain}", hostname(pod)))
}

/// The kubelet's managed /etc/hosts for a pod with its own network.
pub fn hosts(pod: &Pod, ip: Option<Ipv4Addr>, domain: &str) -> String {
    let mut s = String::from("# Kubernetes-managed hosts file.\n");
    s += "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n";
    s += "fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n";
    if let Some(ip) = ip {
        match fqdn(pod, domain) {
            Some(f) => s += &format!("{ip}\t{f}\t{}\n", hostname(pod)),
            None => s += &format!("{ip}\t{}\n", hostname(pod)),
        }
    }
    let aliases = pod.spec.as_ref().and_then(|s| s.host_aliases.as_ref());
    if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
        s += "\n# Entries added by HostAliases.\n";
        for a in aliases {
            s += &format!("{}\t{}\n", a.ip, a.hostnames.clone().unwrap_or_default().join("\t"));
        }
    }
    s
}

/// The pod's /etc/resolv.conf per its `dnsPolicy` and `dnsConfig`.
pub fn resolv_conf(pod: &Pod, dns: &DnsSettings) -> String {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let policy = spec.and_then(|s| s.dns_policy.clone()).unwrap_or_else(|| "ClusterFirst".into());
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let cluster = match policy.as_str() {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    };
    let (mut servers, mut searches, mut options): (Vec<String>, Vec<String>, Vec<String>) = if policy == "None" {
        (vec![], vec![], vec![])
    } else if cluster && !dns.cluster_dns.is_empty() {
        let d = &dns.cluster_domain;
        (
            dns.cluster_dns.iter().map(|i| i.to_string()).collect(),
            vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()],
            vec!["ndots:5".into()],
        )
    } else {
        let mut servers = vec![];
        let mut searches = vec![];
        let mut options = vec![];
        for line in dns.node_resolv.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => servers.extend(words.map(str::to_string)),
                Some("search") => searches = words.map(str::to_string).collect(),
                Some("options") => options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        (servers, searches, options)
    };
    if let Some(cfg) = spec.and_then(|s| s.dns_config.as_ref()) {
        for s in cfg.nameservers.iter().flatten() {
            if !servers.contains(s) {
                servers.push(s.clone());
            }
        }
        for s in cfg.searches.iter().flatten() {
            if !searches.contains(s) {
                searches.push(s.clone());
            }
        }
        for o in cfg.options.iter().flatten() {
            let text = match &o.value {
                Some(v) => format!("{}:{v}", o.name.as_deref().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            };
            let key = o.name.clone().unwrap_or_default();
            options.retain(|x| x.split(':').next() != Some(key.as_str()));
            options.push(text);
        }
    }
    let mut s = String::new();
    if !searches.is_empty() {
        s += &format!("search {}\n", searches.join(" "));
    }
    for n in &servers {
        s += &format!("nameserver {n}\n");
    }
    if !options.is_empty() {
        s += &format!("options {}\n", options.join(" "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn dns() -> DnsSettings {
        DnsSettings {
            cluster_dns: vec![Ipv4Addr::new(10, 96, 0, 10)],
            cluster_domain: "cluster.local".into(),
            node_resolv: "nameserver 172.18.0.1\noptions ndots:0\n".into(),
        }
    }

    #[test]
    fn cluster_first_resolv_conf() {
        let p = pod("metadata: {name: web, namespace: shop}\nspec: {containers: []}\n");
        assert_eq!(
            resolv_conf(&p, &dns()),
            "search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn default_policy_and_host_network_use_the_node() {
        let p = pod("metadata: {name: a}\nspec: {dnsPolicy: Default, containers: []}\n");
        assert_eq!(resolv_conf(&p, &dns()), "nameserver 172.18.0.1\noptions ndots:0\n");
        let p = pod("metadata: {name: a}\nspec: {hostNetwork: true, containers: []}\n");
        assert_eq!(resolv_conf(&p, &dns()), "nameserver 172.18.0.1\noptions ndots:0\n");
        let p =
            pod("metadata: {name: a}\nspec: {hostNetwork: true, dnsPolicy: ClusterFirstWithHostNet, containers: []}\n");
        assert!(resolv_conf(&p, &dns()).contains("nameserver 10.96.0.10\n"));
    }

    #[test]
    fn dns_config_merges() {
        let p = pod(
            "metadata: {name: a}\nspec:\n  dnsPolicy: None\n  containers: []\n  dnsConfig:\n    nameservers: [1.2.3.4]\n    searches: [x.example]\n    options: [{name: ndots, value: \"2\"}, {name: edns0}]\n",
        );
        assert_eq!(resolv_conf(&p, &dns()), "search x.example\nnameserver 1.2.3.4\noptions ndots:2 edns0\n");
    }

    #[test]
    fn hosts_has_the_pod_and_aliases() {
        let p = pod(
            "metadata: {name: web-0, namespace: db}\nspec:\n  hostname: web-0\n  subdomain: web\n  containers: []\n  hostAliases: [{ip: 10.1.2.3, hostnames: [foo.local, bar.local]}]\n",
        );
        let h = hosts(&p, Some(Ipv4Addr::new(10, 244, 1, 5)), "cluster.local");
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"), "{h}");
        assert!(h.contains("10.244.1.5\tweb-0.web.db.svc.cluster.local\tweb-0\n"), "{h}");
        assert!(h.ends_with("# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n"), "{h}");
    }

    #[test]
    fn hostname_is_cut_to_63() {
        let long = "a".repeat(62) + "-b";
        let p = pod(&format!("metadata: {{name: {long}}}\nspec: {{containers: []}}\n"));
        assert_eq!(hostname(&p), "a".repeat(62));
    }
}
