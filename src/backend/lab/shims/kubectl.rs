//! `kubectl get|apply|delete|exec|rollout|wait` on the lab's store.

use std::path::Path;

use serde_json::{Value, json};

use super::super::LabError;
use super::super::objects::{self, resource_name};
use super::super::state::{ClusterRt, Lab};
use super::super::store::{age, selects};
use super::{Args, Outcome, jsonpath, resolve, table, unsupported};

const WITH_VALUE: &[&str] = &[
    "-n",
    "--namespace",
    "-o",
    "--output",
    "-f",
    "--filename",
    "-c",
    "--container",
    "--context",
    "-l",
    "--selector",
    "--for",
    "--timeout",
];
const BOOLEANS: &[&str] =
    &["-A", "--all-namespaces", "-t", "-i", "--tty", "--stdin", "--all", "-q", "--quiet", "--overwrite"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Node,
    Pod,
    Service,
    ConfigMap,
    Deployment,
    DaemonSet,
    IpPool,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "nodes" | "node" | "no" => Kind::Node,
            "pods" | "pod" | "po" => Kind::Pod,
            "services" | "service" | "svc" => Kind::Service,
            "configmaps" | "configmap" | "cm" => Kind::ConfigMap,
            "deployments" | "deployment" | "deploy" | "deployments.apps" | "deployment.apps" => Kind::Deployment,
            "daemonsets" | "daemonset" | "ds" | "daemonsets.apps" | "daemonset.apps" => Kind::DaemonSet,
            "ippools"
            | "ippool"
            | "ciliumloadbalancerippools"
            | "ciliumloadbalancerippool"
            | "ciliumloadbalancerippools.cilium.io" => Kind::IpPool,
            _ => return None,
        })
    }

    fn api(self) -> &'static str {
        match self {
            Kind::Node => "Node",
            Kind::Pod => "Pod",
            Kind::Service => "Service",
            Kind::ConfigMap => "ConfigMap",
            Kind::Deployment => "Deployment",
            Kind::DaemonSet => "DaemonSet",
            Kind::IpPool => "CiliumLoadBalancerIPPool",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Kind::Node => "nodes",
            Kind::Pod => "pods",
            Kind::Service => "services",
            Kind::ConfigMap => "configmaps",
            Kind::Deployment => "deployments.apps",
            Kind::DaemonSet => "daemonsets.apps",
            Kind::IpPool => "ciliumloadbalancerippools.cilium.io",
        }
    }
}

fn fail(msg: String) -> Outcome {
    Outcome::Print { stdout: String::new(), stderr: msg, code: 1 }
}

pub fn run(lab: &mut Lab, argv: &[String], cwd: &Path) -> Result<Outcome, LabError> {
    let a = Args::parse(argv, WITH_VALUE, BOOLEANS)?;
    let ns = a.value(&["-n", "--namespace"]).unwrap_or("default").to_string();
    let dir = lab.dir.clone();
    let host = lab.host_root();
    let Some(verb) = a.positional.first().cloned() else { return Err(unsupported("kubectl", argv)) };
    if lab.cluster.is_none() {
        return Ok(fail(
            "The connection to the server localhost:8080 was refused - did you specify the right host or port?\n"
                .into(),
        ));
    }
    // `-f URL`: a tutorial's `offline:` content first (docs/architecture.md, "Offline content").
    let fetched: std::collections::HashMap<String, Vec<u8>> =
        a.values.iter().filter_map(|(_, v)| Some((v.clone(), lab.outside.fetch(v)?))).collect();
    let c = lab.cluster_mut()?;
    match verb.as_str() {
        "get" => get(c, &a, &ns, argv),
        "apply" | "create" | "delete" => {
            let out = change(c, &a, &verb, &ns, &dir, (&host, cwd, &fetched), argv);
            c.sync_services()?;
            out
        }
        "exec" => exec(c, &a, &ns, argv),
        "label" => match &a.positional[1..] {
            [kind, name, changes @ ..] if Kind::parse(kind) == Some(Kind::Node) && !changes.is_empty() => {
                let out = c.label_node(name, changes, a.flag(&["--overwrite"]));
                c.sync_services()?;
                Ok(out.map(Outcome::out).unwrap_or_else(|e| fail(e.to_string())))
            }
            _ => Err(unsupported("kubectl", argv)),
        },
        "cluster-info" => cluster_info(c, &a.positional[1..], argv),
        "rollout" => {
            let rest: Vec<&str> = a.positional[1..].iter().map(String::as_str).collect();
            let (action, kind, name) = match rest.as_slice() {
                [action, kn] if kn.contains('/') => {
                    let (k, n) = kn.split_once('/').unwrap();
                    (*action, k, n)
                }
                [action, k, n] => (*action, *k, *n),
                _ => return Err(unsupported("kubectl", argv)),
            };
            let kind = Kind::parse(kind)
                .filter(|k| matches!(k, Kind::Deployment | Kind::DaemonSet))
                .ok_or_else(|| unsupported("kubectl", argv))?;
            let exists = match kind {
                Kind::Deployment => c.store.deployments.iter().any(|d| d.namespace == ns && d.name == name),
                _ => c.store.daemonsets.iter().any(|(n, d)| *n == ns && d == name),
            };
            if !exists {
                return Ok(fail(format!("Error from server (NotFound): {} \"{name}\" not found\n", kind.plural())));
            }
            match action {
                "restart" => {
                    c.restart(kind == Kind::Deployment, &ns, name, &dir)?;
                    Ok(Outcome::out(format!("{}/{name} restarted\n", resource_name(kind.api()))))
                }
                "status" => Ok(Outcome::out(match kind {
                    Kind::Deployment => format!("deployment \"{name}\" successfully rolled out\n"),
                    _ => format!("daemon set \"{name}\" successfully rolled out\n"),
                })),
                _ => Err(unsupported("kubectl", argv)),
            }
        }
        "wait" => {
            let sel = a.value(&["-l", "--selector"]);
            let pods: Vec<String> = c
                .store
                .pods
                .iter()
                .filter(|p| a.flag(&["-A", "--all-namespaces"]) || p.namespace == ns)
                .filter(|p| sel.is_none_or(|s| selects(&parse_selector(s), &p.labels)))
                .filter(|p| {
                    a.flag(&["--all"])
                        || a.positional[1..]
                            .iter()
                            .any(|x| x.trim_start_matches("pod/").trim_start_matches("pods/") == p.name)
                })
                .map(|p| format!("pod/{}", p.name))
                .collect();
            let pending: Vec<&String> = pods
                .iter()
                .filter(|p| !c.store.pods.iter().any(|x| format!("pod/{}", x.name) == **p && x.running))
                .collect();
            if !pending.is_empty() {
                return Ok(fail(format!("error: timed out waiting for the condition on {}\n", pending[0])));
            }
            Ok(Outcome::out(pods.iter().map(|p| format!("{p} condition met\n")).collect::<String>()))
        }
        _ => Err(unsupported("kubectl", argv)),
    }
}

/// `kubectl apply|create|delete` (services are synced by the caller).
fn change(
    c: &mut ClusterRt,
    a: &Args,
    verb: &str,
    ns: &str,
    dir: &Path,
    (host, cwd, fetched): (&Path, &Path, &std::collections::HashMap<String, Vec<u8>>),
    argv: &[String],
) -> Result<Outcome, LabError> {
    let files = a.all(&["-f", "--filename"]);
    if files.is_empty() {
        return match (verb, &a.positional[1..]) {
            ("delete", [kind, names @ ..]) if !names.is_empty() => {
                let k = Kind::parse(kind).ok_or_else(|| unsupported("kubectl", argv))?;
                let mut out = String::new();
                for n in names {
                    match c.delete(k.api(), ns, n)? {
                        Some(line) => out.push_str(&format!("{line}\n")),
                        None => {
                            return Ok(fail(format!(
                                "Error from server (NotFound): {} \"{n}\" not found\n",
                                k.plural()
                            )));
                        }
                    }
                }
                Ok(Outcome::out(out))
            }
            _ => Err(unsupported("kubectl", argv)),
        };
    }
    let mut out = String::new();
    for f in files {
        for obj in objects::load(&resolve(host, cwd, f), f, fetched.get(f))? {
            if verb == "delete" {
                let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
                let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
                let ons = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or(ns);
                match c.delete(kind, ons, name)? {
                    Some(line) => out.push_str(&format!("{line}\n")),
                    None => {
                        return Ok(Outcome::Print {
                            stdout: out,
                            stderr: format!(
                                "Error from server (NotFound): error when deleting \"{f}\": {}s \"{name}\" not found\n",
                                kind.to_lowercase()
                            ),
                            code: 1,
                        });
                    }
                }
            } else {
                let line = c.apply(&obj, ns, dir)?;
                out.push_str(&line.replace(" unchanged", if verb == "create" { " created" } else { " unchanged" }));
                out.push('\n');
            }
        }
    }
    Ok(Outcome::out(out))
}

/// `kubectl cluster-info [dump]`: the API endpoints, or nodes and kube-system pods as JSON (with
/// the controller manager's flags, where `--cluster-cidr` is found).
fn cluster_info(c: &ClusterRt, rest: &[String], argv: &[String]) -> Result<Outcome, LabError> {
    match rest {
        [] => Ok(Outcome::out(format!(
            "Kubernetes control plane is running at https://{API}\nCoreDNS is running at https://{API}/api/v1/namespaces/kube-system/services/kube-dns:dns/proxy\n\nTo further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.\n"
        ))),
        [d] if d == "dump" => {
            let nodes: Vec<Value> = c.store.nodes.iter().map(|n| n.to_json(c.store.cni)).collect();
            let pods: Vec<Value> = c
                .store
                .pods
                .iter()
                .filter(|p| p.namespace == "kube-system")
                .map(|p| {
                    let mut j = p.to_json();
                    if p.name.starts_with("kube-controller-manager-") {
                        j["spec"]["containers"][0]["command"] = json!([
                            "kube-controller-manager",
                            "--allocate-node-cidrs=true",
                            format!("--cluster-cidr={}", c.plan.pod_subnet),
                            format!("--cluster-name={}", c.plan.cluster),
                            format!("--service-cluster-ip-range={}", c.plan.service_subnet),
                        ]);
                    }
                    j
                })
                .collect();
            let list = |kind: &str, items: Vec<Value>| {
                serde_json::to_string_pretty(
                    &json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": ""}, "items": items}),
                )
                .unwrap()
            };
            Ok(Outcome::out(format!("{}\n{}\n", list("NodeList", nodes), list("PodList", pods))))
        }
        _ => Err(unsupported("kubectl", argv)),
    }
}

/// Where kind publishes the API server on the user's machine.
const API: &str = "127.0.0.1:6443";

fn parse_selector(s: &str) -> super::super::store::Labels {
    s.split(',').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn exec(c: &ClusterRt, a: &Args, ns: &str, argv: &[String]) -> Result<Outcome, LabError> {
    let target = a
        .positional
        .get(1)
        .ok_or_else(|| LabError::Input("error: pod, type/name or --filename must be specified".into()))?;
    if a.command.is_empty() {
        return Err(LabError::Input("error: you must specify at least one command for the container".into()));
    }
    let pod = match target.split_once('/') {
        None | Some(("pod" | "pods" | "po", _)) => {
            let name = target.rsplit('/').next().unwrap();
            c.store.pod(ns, name)
        }
        Some((kind, name)) => {
            let owner = match Kind::parse(kind) {
                Some(Kind::DaemonSet) => format!("DaemonSet/{name}"),
                Some(Kind::Deployment) => format!("Deployment/{name}"),
                _ => return Err(unsupported("kubectl", argv)),
            };
            c.store
                .pods
                .iter()
                .filter(|p| p.namespace == ns && p.owner.as_deref() == Some(owner.as_str()))
                .min_by_key(|p| p.node.clone())
        }
    };
    let Some(pod) = pod else {
        return Ok(fail(format!(
            "Error from server (NotFound): pods \"{}\" not found\n",
            target.rsplit('/').next().unwrap()
        )));
    };
    if a.command[0] == "cilium-dbg" || a.command[0] == "cilium" {
        if pod.owner.as_deref() != Some("DaemonSet/cilium") {
            return Ok(fail(format!("error: exec: \"{}\": executable file not found in $PATH\n", a.command[0])));
        }
        return super::super::cilium_dbg::run(c, &pod.node, &a.command[1..]).map(Outcome::out);
    }
    if !pod.running {
        return Ok(fail(format!(
            "error: unable to upgrade connection: container not found (\"{}\")\n",
            pod.containers.first().map(|x| x.name.as_str()).unwrap_or("")
        )));
    }
    let tid = if pod.host_network {
        c.node(&pod.node).map(|n| n.ns.tid())
    } else {
        c.pods.get(&(pod.namespace.clone(), pod.name.clone())).map(|r| r.ns.tid())
    }
    .ok_or_else(|| LabError::PodWithoutNamespace(pod.name.clone()))?;
    Ok(Outcome::Exec { tid, argv: a.command.clone() })
}

/// One object as `get` shows it: namespace, name, API JSON, table cells.
type Row = (String, String, Value, Vec<String>);

/// Objects of `kind` in scope, with the table's header.
fn objects_of(c: &ClusterRt, kind: Kind, ns: Option<&str>, wide: bool) -> (Vec<&'static str>, Vec<Row>) {
    let in_ns = |n: &str| ns.is_none_or(|x| x == n);
    match kind {
        Kind::Node => {
            let mut head = vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"];
            if wide {
                head.extend(["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]);
            }
            let rows = c
                .store
                .nodes
                .iter()
                .map(|n| {
                    let j = n.to_json(c.store.cni);
                    let role =
                        if n.role == super::super::config::Role::ControlPlane { "control-plane" } else { "<none>" };
                    let mut r = vec![
                        n.name.clone(),
                        if n.ready(c.store.cni) { "Ready" } else { "NotReady" }.into(),
                        role.into(),
                        age(n.created),
                        super::super::store::KUBE_VERSION.into(),
                    ];
                    if wide {
                        r.extend([
                            n.ip.to_string(),
                            "<none>".into(),
                            "Debian GNU/Linux 12 (bookworm)".into(),
                            super::super::store::kernel(),
                            "containerd://1.7.13".into(),
                        ]);
                    }
                    (String::new(), n.name.clone(), j, r)
                })
                .collect();
            (head, rows)
        }
        Kind::Pod => {
            let mut head = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
            if wide {
                head.extend(["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]);
            }
            let rows = c
                .store
                .pods
                .iter()
                .filter(|p| in_ns(&p.namespace))
                .map(|p| {
                    let n = p.containers.len().max(1);
                    let mut r = vec![
                        p.name.clone(),
                        format!("{}/{n}", if p.running { n } else { 0 }),
                        p.phase().into(),
                        "0".into(),
                        age(p.created),
                    ];
                    if wide {
                        r.extend([
                            p.ip.map(|i| i.to_string()).unwrap_or("<none>".into()),
                            p.node.clone(),
                            "<none>".into(),
                            "<none>".into(),
                        ]);
                    }
                    (p.namespace.clone(), p.name.clone(), p.to_json(), r)
                })
                .collect();
            (head, rows)
        }
        Kind::Service => {
            let mut head = vec!["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"];
            if wide {
                head.push("SELECTOR");
            }
            let rows = c
                .store
                .services
                .iter()
                .filter(|s| in_ns(&s.namespace))
                .map(|s| {
                    let ports: Vec<String> = s
                        .ports
                        .iter()
                        .map(|p| match p.node_port {
                            Some(np) => format!("{}:{np}/{}", p.port, p.protocol),
                            None => format!("{}/{}", p.port, p.protocol),
                        })
                        .collect();
                    let external = match s.load_balancer_ip {
                        Some(ip) => ip.to_string(),
                        None if s.type_ == "LoadBalancer" => "<pending>".into(),
                        None => "<none>".into(),
                    };
                    let mut r = vec![
                        s.name.clone(),
                        s.type_.clone(),
                        s.cluster_ip.to_string(),
                        external,
                        ports.join(","),
                        age(s.created),
                    ];
                    if wide {
                        let sel: Vec<String> = s.selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        r.push(if sel.is_empty() { "<none>".into() } else { sel.join(",") });
                    }
                    (s.namespace.clone(), s.name.clone(), s.to_json(), r)
                })
                .collect();
            (head, rows)
        }
        Kind::ConfigMap => {
            let rows = c
                .store
                .configmaps
                .iter()
                .filter(|m| in_ns(&m.namespace))
                .map(|m| {
                    (
                        m.namespace.clone(),
                        m.name.clone(),
                        m.to_json(),
                        vec![m.name.clone(), m.data.len().to_string(), age(m.created)],
                    )
                })
                .collect();
            (vec!["NAME", "DATA", "AGE"], rows)
        }
        Kind::Deployment => {
            let rows = c
                .store
                .deployments
                .iter()
                .filter(|d| in_ns(&d.namespace))
                .map(|d| {
                    let owner = format!("Deployment/{}", d.name);
                    let ready = c.store.pods.iter().filter(|p| p.namespace == d.namespace && p.owner.as_deref() == Some(owner.as_str()) && p.running).count();
                    let j = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": d.name, "namespace": d.namespace, "labels": d.labels}, "spec": {"replicas": d.replicas, "template": d.template}});
                    (d.namespace.clone(), d.name.clone(), j, vec![d.name.clone(), format!("{ready}/{}", d.replicas), d.replicas.to_string(), ready.to_string(), age(d.created)])
                })
                .collect();
            (vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], rows)
        }
        Kind::DaemonSet => {
            let rows = c
                .store
                .daemonsets
                .iter()
                .filter(|(n, _)| in_ns(n))
                .map(|(n, d)| {
                    let owner = format!("DaemonSet/{d}");
                    let pods = c
                        .store
                        .pods
                        .iter()
                        .filter(|p| p.namespace == *n && p.owner.as_deref() == Some(owner.as_str()))
                        .count()
                        .to_string();
                    let j =
                        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": d, "namespace": n}});
                    (
                        n.clone(),
                        d.clone(),
                        j,
                        vec![
                            d.clone(),
                            pods.clone(),
                            pods.clone(),
                            pods.clone(),
                            pods.clone(),
                            pods,
                            "kubernetes.io/os=linux".into(),
                            age(c.created),
                        ],
                    )
                })
                .collect();
            (vec!["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"], rows)
        }
        Kind::IpPool => super::super::lb_ipam::table(&c.store),
    }
}

fn get(c: &ClusterRt, a: &Args, ns: &str, argv: &[String]) -> Result<Outcome, LabError> {
    let what = a
        .positional
        .get(1)
        .ok_or_else(|| LabError::Input("error: you must specify the type of resource to get".into()))?;
    let (kind_s, mut names): (&str, Vec<String>) = match what.split_once('/') {
        Some((k, n)) => (k, vec![n.to_string()]),
        None => (what.as_str(), a.positional[2..].to_vec()),
    };
    let kind = Kind::parse(kind_s).ok_or_else(|| unsupported("kubectl", argv))?;
    names.retain(|n| !n.is_empty());
    let all_ns = a.flag(&["-A", "--all-namespaces"]);
    let scope = if matches!(kind, Kind::Node | Kind::IpPool) || all_ns { None } else { Some(ns) };
    let output = a.value(&["-o", "--output"]).unwrap_or("");
    let wide = output == "wide";
    let (head, mut rows) = objects_of(c, kind, scope, wide);
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    if let Some(sel) = a.value(&["-l", "--selector"]) {
        let want = parse_selector(sel);
        rows.retain(|(_, _, j, _)| {
            let labels: super::super::store::Labels = j
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
                .unwrap_or_default();
            selects(&want, &labels)
        });
    }
    if !names.is_empty() {
        for n in &names {
            if !rows.iter().any(|r| &r.1 == n) {
                return Ok(fail(format!("Error from server (NotFound): {} \"{n}\" not found\n", kind.plural())));
            }
        }
        rows.retain(|r| names.contains(&r.1));
    }
    let single = names.len() == 1;
    let data = if single {
        rows[0].2.clone()
    } else {
        json!({"apiVersion": "v1", "kind": "List", "items": rows.iter().map(|r| r.2.clone()).collect::<Vec<_>>(), "metadata": {"resourceVersion": ""}})
    };
    match output {
        "" | "wide" => {
            if rows.is_empty() {
                let msg = match scope {
                    Some(n) => format!("No resources found in {n} namespace.\n"),
                    None => "No resources found\n".into(),
                };
                return Ok(Outcome::err(msg));
            }
            let mut table_rows = vec![];
            let mut h: Vec<String> = head.iter().map(|s| s.to_string()).collect();
            if all_ns && !matches!(kind, Kind::Node | Kind::IpPool) {
                h.insert(0, "NAMESPACE".into());
            }
            table_rows.push(h);
            for (rns, _, _, mut cells) in rows {
                if all_ns && !matches!(kind, Kind::Node | Kind::IpPool) {
                    cells.insert(0, rns);
                }
                table_rows.push(cells);
            }
            Ok(Outcome::out(table::render(&table_rows)))
        }
        "yaml" => Ok(Outcome::out(
            serde_yaml::to_string(&data).map_err(|source| LabError::Yaml { what: "rendering YAML".into(), source })?,
        )),
        "json" => Ok(Outcome::out(serde_json::to_string_pretty(&data).unwrap() + "\n")),
        "name" => Ok(Outcome::out(
            rows.iter().map(|r| format!("{}/{}\n", kind.api().to_lowercase(), r.1)).collect::<String>(),
        )),
        o if o.starts_with("jsonpath=") => {
            let t = o["jsonpath=".len()..].trim_matches('\'');
            match jsonpath::render(t, &data) {
                Ok(s) => Ok(Outcome::out(s)),
                Err(e) => Ok(fail(format!("error: {e}\n"))),
            }
        }
        _ => Err(unsupported("kubectl", argv)),
    }
}
