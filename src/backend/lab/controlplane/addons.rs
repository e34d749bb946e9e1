//! The add-ons kubeadm installs when kind creates a cluster, as API objects written here from
//! their shapes: kube-proxy (ServiceAccount, its binding to `system:node-proxier`, the
//! `kube-proxy` ConfigMap with its KubeProxyConfiguration and kubeconfig, the DaemonSet) and the
//! cluster DNS (CoreDNS's ServiceAccount and RBAC, the `coredns` ConfigMap with the default
//! Corefile, the Deployment with two replicas, the `kube-dns` Service on the service range's
//! tenth address). The real DaemonSet and Deployment controllers make their pods, the scheduler
//! places them and the node agents run the real kube-proxy and CoreDNS in them.

use serde_json::{Value, json};

use super::Spec;

/// kubeadm's record of the cluster's configuration (`kube-system/kubeadm-config`, key
/// `ClusterConfiguration`), which tutorials read for the pod and service subnets and Cilium's
/// agent for the service range.
pub fn kubeadm_config(spec: &Spec, version: &str) -> Value {
    let cluster = format!(
        "apiServer:\n  certSANs:\n  - localhost\n  - 127.0.0.1\napiVersion: kubeadm.k8s.io/v1beta4\n\
         caCertificateValidityPeriod: 87600h0m0s\ncertificateValidityPeriod: 8760h0m0s\n\
         certificatesDir: /etc/kubernetes/pki\nclusterName: {cluster}\n\
         controlPlaneEndpoint: {cp}:6443\ncontrollerManager: {{}}\ndns: {{}}\n\
         encryptionAlgorithm: RSA-2048\netcd:\n  local:\n    dataDir: /var/lib/etcd\n\
         imageRepository: registry.k8s.io\nkind: ClusterConfiguration\nkubernetesVersion: {version}\n\
         networking:\n  dnsDomain: cluster.local\n  podSubnet: {pods}\n  serviceSubnet: {services}\n\
         proxy: {{}}\nscheduler: {{}}\n",
        cluster = spec.cluster,
        cp = spec.control_plane,
        pods = spec.pod_subnet,
        services = spec.service_subnet,
    );
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
           "data": {"ClusterConfiguration": cluster}})
}

/// kube-proxy's objects for `mode` (kind's `kubeProxyMode`: iptables, nftables, ipvs).
pub fn kube_proxy(spec: &Spec, mode: &str, version: &str) -> Value {
    let config = format!(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\n\
         kind: KubeProxyConfiguration\n\
         bindAddress: 0.0.0.0\n\
         clientConnection:\n  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\n\
         clusterCIDR: {cidr}\n\
         conntrack:\n  maxPerCore: 0\n  tcpCloseWaitTimeout: 0s\n  tcpEstablishedTimeout: 0s\n\
         iptables:\n  minSyncPeriod: 1s\n\
         nftables:\n  minSyncPeriod: 1s\n\
         mode: {mode}\n",
        cidr = spec.pod_subnet,
    );
    let kubeconfig = format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n- cluster:\n    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\n    server: {server}\n  name: default\n\
         contexts:\n- context:\n    cluster: default\n    namespace: default\n    user: default\n  name: default\n\
         current-context: default\n\
         users:\n- name: default\n  user:\n    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n",
        server = spec.server(),
    );
    let labels = json!({"k8s-app": "kube-proxy"});
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "kube-proxy", "namespace": "kube-system"}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": "kubeadm:node-proxier"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node-proxier"},
             "subjects": [{"kind": "ServiceAccount", "name": "kube-proxy", "namespace": "kube-system"}]},
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": {"app": "kube-proxy"}},
             "data": {"config.conf": config, "kubeconfig.conf": kubeconfig}},
            {"apiVersion": "apps/v1", "kind": "DaemonSet",
             "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": labels},
             "spec": {
                "selector": {"matchLabels": labels},
                "updateStrategy": {"type": "RollingUpdate"},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "priorityClassName": "system-node-critical",
                        "hostNetwork": true,
                        "serviceAccountName": "kube-proxy",
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "tolerations": [{"operator": "Exists"}],
                        "containers": [{
                            "name": "kube-proxy",
                            "image": format!("registry.k8s.io/kube-proxy:{version}"),
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf",
                                        "--hostname-override=$(NODE_NAME)"],
                            "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                            "securityContext": {"privileged": true},
                            "volumeMounts": [
                                {"name": "kube-proxy", "mountPath": "/var/lib/kube-proxy"},
                                {"name": "xtables-lock", "mountPath": "/run/xtables.lock"},
                                {"name": "lib-modules", "mountPath": "/lib/modules", "readOnly": true},
                            ],
                        }],
                        "volumes": [
                            {"name": "kube-proxy", "configMap": {"name": "kube-proxy"}},
                            {"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}},
                            {"name": "lib-modules", "hostPath": {"path": "/lib/modules"}},
                        ],
                    },
                },
             }},
        ],
    })
}

/// The cluster DNS: CoreDNS behind the `kube-dns` Service.
pub fn coredns(spec: &Spec, version: &str) -> Value {
    let corefile = "\
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
";
    let labels = json!({"k8s-app": "kube-dns"});
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": "kube-system"}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:coredns"},
             "rules": [
                {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
             ]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "system:coredns"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
             "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"},
             "data": {"Corefile": corefile}},
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
             "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "priorityClassName": "system-cluster-critical",
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "tolerations": [
                            {"key": "CriticalAddonsOnly", "operator": "Exists"},
                            {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                        ],
                        "containers": [{
                            "name": "coredns",
                            "image": format!("registry.k8s.io/coredns/coredns:{version}"),
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["-conf", "/etc/coredns/Corefile"],
                            "ports": [
                                {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                {"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
                            ],
                            "livenessProbe": {"httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"},
                                              "initialDelaySeconds": 60, "timeoutSeconds": 5,
                                              "successThreshold": 1, "failureThreshold": 5},
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"},
                                               "periodSeconds": 1},
                            "securityContext": {"allowPrivilegeEscalation": false,
                                                "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                                                "readOnlyRootFilesystem": true},
                            "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": true}],
                        }],
                        "volumes": [{"name": "config-volume",
                                     "configMap": {"name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]}}],
                    },
                },
             }},
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "kube-dns", "namespace": "kube-system",
                          "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
                          "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
             "spec": {
                "selector": labels,
                "clusterIP": spec.cluster_dns_ip().to_string(),
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                    {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
                ],
             }},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::lab::controlplane::tests::spec;

    #[test]
    fn kube_proxy_points_at_the_api_server_with_its_token_and_mode() {
        let v = kube_proxy(&spec(), "nftables", "v1.33.1");
        let cm = &v["items"][2]["data"];
        let config = cm["config.conf"].as_str().unwrap();
        assert!(config.contains("mode: nftables\n") && config.contains("clusterCIDR: 10.244.0.0/16\n"), "{config}");
        let kc = cm["kubeconfig.conf"].as_str().unwrap();
        assert!(kc.contains("server: https://172.18.0.2:6443\n"), "{kc}");
        assert!(kc.contains("tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token"), "{kc}");
        let ds = &v["items"][3];
        assert_eq!(ds["spec"]["template"]["spec"]["containers"][0]["image"], "registry.k8s.io/kube-proxy:v1.33.1");
        assert_eq!(ds["spec"]["template"]["spec"]["hostNetwork"], true);
    }

    #[test]
    fn kubeadm_config_holds_the_subnets() {
        let v = kubeadm_config(&spec(), "v1.33.1");
        let text = v["data"]["ClusterConfiguration"].as_str().unwrap();
        let c: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        assert_eq!(c["networking"]["podSubnet"].as_str(), Some(spec().pod_subnet.to_string().as_str()));
        assert_eq!(c["networking"]["serviceSubnet"].as_str(), Some(spec().service_subnet.to_string().as_str()));
        assert_eq!(c["kind"].as_str(), Some("ClusterConfiguration"));
    }

    #[test]
    fn kube_dns_is_the_tenth_service_address() {
        let v = coredns(&spec(), "v1.12.0");
        let svc = v["items"].as_array().unwrap().iter().find(|o| o["kind"] == "Service").unwrap();
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.10");
        let d = v["items"].as_array().unwrap().iter().find(|o| o["kind"] == "Deployment").unwrap();
        assert_eq!(d["spec"]["replicas"], 2);
        assert_eq!(d["spec"]["template"]["spec"]["dnsPolicy"], "Default");
    }
}
