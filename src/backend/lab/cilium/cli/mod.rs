//! `cilium`, the Cilium CLI, on the lab host (docs/architecture.md, "The cilium CLI"): tutor
//! started under that name, speaking to the cluster through the lab host's kubeconfig
//! (`KUBECONFIG`, `--kubeconfig`, `--context`) as the real CLI does. `status [--wait]`,
//! `version` and `config view` print what the API's objects, the Helm release and the agents
//! say; `connectivity test` deploys the CLI's test workloads and runs its policy-free tests
//! between them (`connectivity.rs`); anything else is refused with a message naming what the
//! lab's cilium has.

pub mod connectivity;
pub mod status;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{ListParams, ObjectList};
use kube::{Api, Client};

use self::status::Status;
use super::{CiliumError, tabwriter};

/// What the lab's `cilium` answers.
const COMMANDS: &str = "status [--wait] [--wait-duration D] [--ignore-warnings], version [--client], config view, \
    connectivity test [--test REGEX,…] [--test-namespace NS] [--single-node] [--verbose] [--force-deploy] [--cleanup] …";

/// The root flags every command takes.
#[derive(Debug, Clone, PartialEq)]
struct Globals {
    namespace: String,
    context: Option<String>,
    kubeconfig: Option<String>,
    release: String,
}

#[derive(Debug, PartialEq)]
enum Command {
    Status { wait: bool, wait_duration: Duration, ignore_warnings: bool, interactive: bool },
    Version { client_only: bool },
    ConfigView,
    ConnectivityTest(Box<connectivity::Params>),
    Help,
}

pub async fn main(args: &[String]) -> ExitCode {
    let (globals, command) = match parse(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&globals, command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("\nError: {e}");
            ExitCode::from(1)
        }
    }
}

fn usage(what: String) -> String {
    format!(
        "{what}\nThe lab's cilium CLI has: {COMMANDS} (global flags: --namespace/-n, --context, --kubeconfig, --helm-release-name)"
    )
}

fn parse(args: &[String]) -> Result<(Globals, Command), String> {
    let mut g = Globals {
        namespace: std::env::var("CILIUM_NAMESPACE").unwrap_or_else(|_| "kube-system".into()),
        context: None,
        kubeconfig: None,
        release: "cilium".into(),
    };
    let mut words = Vec::new();
    let mut flags: Vec<(String, Option<String>)> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if a.starts_with('-') => (n.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |inline: Option<String>| {
            inline.or_else(|| it.next().cloned()).ok_or_else(|| usage(format!("flag needs an argument: {name}")))
        };
        match name.as_str() {
            "-n" | "--namespace" => g.namespace = value(inline)?,
            "--context" => g.context = Some(value(inline)?),
            "--kubeconfig" => g.kubeconfig = Some(value(inline)?),
            "--helm-release-name" => g.release = value(inline)?,
            "--wait-duration" | "-o" | "--output" | "--worker-count" => {
                flags.push((name.clone(), Some(value(inline)?)))
            }
            f if connectivity::VALUE_FLAGS.contains(&f)
                && words.first().map(String::as_str) == Some("connectivity") =>
            {
                flags.push((name.clone(), Some(value(inline)?)))
            }
            "-h" | "--help" => words.insert(0, "help".to_string()),
            f if f.starts_with('-') => flags.push((f.to_string(), inline)),
            _ => words.push(a.clone()),
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let flag_bool = |v: &Option<String>, name: &str| -> Result<bool, String> {
        match v.as_deref() {
            None | Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(x) => Err(usage(format!("invalid argument \"{x}\" for \"{name}\" flag: not a boolean"))),
        }
    };
    let command = match words.as_slice() {
        [] | ["help", ..] => Command::Help,
        ["status"] => {
            let (mut wait, mut wait_duration, mut ignore_warnings, mut interactive) =
                (false, status::WAIT_DURATION, false, true);
            for (f, v) in &flags {
                match f.as_str() {
                    "--wait" => wait = flag_bool(v, f)?,
                    "--ignore-warnings" => ignore_warnings = flag_bool(v, f)?,
                    "--interactive" => interactive = flag_bool(v, f)?,
                    "--verbose" => {}
                    "--worker-count" => {}
                    "--wait-duration" => {
                        let v = v.as_deref().unwrap_or("");
                        wait_duration = go_duration(v).ok_or_else(|| {
                            usage(format!("invalid argument \"{v}\" for \"--wait-duration\" flag: not a duration (e.g. 30s, 5m, 1m30s)"))
                        })?
                    }
                    "-o" | "--output" if v.as_deref() == Some("summary") => {}
                    other => return Err(usage(format!("cilium status: flag {other} is not played by the lab"))),
                }
            }
            Command::Status { wait, wait_duration, ignore_warnings, interactive }
        }
        ["version"] => {
            let mut client_only = false;
            for (f, v) in &flags {
                match f.as_str() {
                    "--client" => client_only = flag_bool(v, f)?,
                    other => return Err(usage(format!("cilium version: flag {other} is not played by the lab"))),
                }
            }
            Command::Version { client_only }
        }
        ["config", "view"] => {
            if let Some((f, _)) = flags.first() {
                return Err(usage(format!("cilium config view: flag {f} is not played by the lab")));
            }
            Command::ConfigView
        }
        ["connectivity", "test"] => Command::ConnectivityTest(Box::new(
            connectivity::Params::parse(&flags)
                .map_err(|e| usage(format!("{e}\n(the lab's connectivity test takes: {})", connectivity::FLAGS)))?,
        )),
        other => return Err(usage(format!("cilium {}: not played by the lab's cilium CLI", other.join(" ")))),
    };
    Ok((g, command))
}

/// Go's `time.ParseDuration` for what a user writes: `90s`, `5m`, `1m30s`, `1.5h`, `500ms`.
pub fn go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

async fn client(g: &Globals) -> Result<Client, CiliumError> {
    let bad = |e: kube::config::KubeconfigError| CiliumError::Kubeconfig(e.to_string());
    let opts = kube::config::KubeConfigOptions { context: g.context.clone(), ..Default::default() };
    let config = match &g.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path).map_err(bad)?;
            kube::Config::from_custom_kubeconfig(kc, &opts).await.map_err(bad)?
        }
        None => kube::Config::from_kubeconfig(&opts).await.map_err(bad)?,
    };
    Client::try_from(config).map_err(CiliumError::api("creating the Kubernetes client"))
}

async fn run(g: &Globals, command: Command) -> Result<ExitCode, CiliumError> {
    match command {
        Command::Help => {
            println!("cilium: the Cilium CLI, as the lab plays it.\n\nCommands: {COMMANDS}");
            Ok(ExitCode::SUCCESS)
        }
        Command::ConnectivityTest(params) => {
            let client = client(g).await?;
            let cluster = connectivity::cluster_name(g.kubeconfig.as_deref(), g.context.as_deref());
            connectivity::run(client, &cluster, &g.namespace, *params).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ConfigView => {
            let client = client(g).await?;
            let cm = Api::<ConfigMap>::namespaced(client, &g.namespace).get("cilium-config").await.map_err(|e| {
                CiliumError::Cli(format!(
                    "Unable to view config:  unable get ConfigMap \"cilium-config\": {}",
                    api_message(&e)
                ))
            })?;
            print!("{}", config_view(&cm.data.unwrap_or_default()));
            Ok(ExitCode::SUCCESS)
        }
        Command::Version { client_only } => {
            let arch = match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                a => a,
            };
            println!(
                "cilium-cli: tutor {} compiled with rustc on {}/{arch}",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS
            );
            let default = crate::backend::lab::charts::newest_version()
                .map(|v| format!("v{v}"))
                .unwrap_or_else(|e| format!("unknown ({e})"));
            println!("cilium image (default): {default}");
            println!("cilium image (stable): {}", stable_version().await);
            if client_only {
                return Ok(ExitCode::SUCCESS);
            }
            match helm_metadata(g).await {
                Ok(m) => println!("cilium image (running): {}", m.version),
                Err(e) => {
                    println!("cilium image (running): unknown. Unable to obtain cilium version. Reason: {e}")
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { wait, wait_duration, ignore_warnings, interactive } => {
            let client = client(g).await?;
            let colour = std::io::stdout().is_terminal();
            let show = |s: &Status| if colour { s.format() } else { tabwriter::strip_colours(&s.format()) };
            let deadline = Instant::now() + wait_duration;
            let mut lines = 0usize;
            let mut last: Option<Status> = None;
            let outcome = loop {
                if Instant::now() >= deadline {
                    break Err("timeout while waiting for status to become successful: context deadline exceeded");
                }
                let collected =
                    tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), collect(&client, g)).await;
                let Ok(s) = collected else { continue };
                let done = !wait || s.ready(ignore_warnings);
                let crashed = s.agent_crashed;
                last = Some(s);
                if done {
                    break Ok(());
                }
                if crashed {
                    break Err("wait canceled, cilium agent container has crashed or was terminated: context canceled");
                }
                tokio::time::sleep(status::RETRY.min(deadline.saturating_duration_since(Instant::now()))).await;
                // The real CLI redraws the summary in place while it waits; only on a terminal here.
                if let Some(s) = last.as_ref().filter(|_| interactive && colour) {
                    let text = show(s);
                    cursor_up(lines);
                    lines = text.lines().count() + 1;
                    print!("{text}");
                    let _ = std::io::stdout().flush();
                }
            };
            cursor_up(if colour { lines } else { 0 });
            let text = last.as_ref().map(show).unwrap_or_default();
            match outcome {
                Ok(()) => {
                    print!("{text}");
                    let errors = &last.as_ref().map(|s| s.collection_errors.clone()).unwrap_or_default();
                    if errors.is_empty() {
                        Ok(ExitCode::SUCCESS)
                    } else {
                        Err(CiliumError::Cli(format!("status check failed: [{}]", errors.join(", "))))
                    }
                }
                Err(e) => {
                    eprint!("{text}");
                    Err(CiliumError::Cli(format!("Unable to determine status:  {e}")))
                }
            }
        }
    }
}

/// Cilium's stable release as the real CLI asks for it (raw.githubusercontent.com's
/// `stable.txt`, which the lab's outside world serves when a tutorial declares it offline);
/// `unknown` when the request fails, as the CLI says then.
async fn stable_version() -> String {
    let out = tokio::process::Command::new("curl")
        .args(["-fsS", "--max-time", "5", "https://raw.githubusercontent.com/cilium/cilium/main/stable.txt"])
        .stderr(std::process::Stdio::null())
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() && o.stdout.len() < 1024 => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => "unknown".into(),
    }
}

fn cursor_up(lines: usize) {
    for _ in 0..lines {
        print!("\u{1b}[A\u{1b}[2K");
    }
}

/// `cilium config view`: the ConfigMap's keys, sorted, and values in two columns.
pub fn config_view(data: &std::collections::BTreeMap<String, String>) -> String {
    tabwriter::render(&data.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect::<String>())
}

/// The API server's message for a failed request (`configmaps "x" not found`).
fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        e => e.to_string(),
    }
}

#[derive(serde::Deserialize)]
struct HelmMetadata {
    version: String,
}

/// The release's metadata as helm itself reads it (the real CLI links helm's library; the lab
/// host's `helm` is the real binary): `helm get metadata RELEASE -n NAMESPACE -o json`.
async fn helm_metadata(g: &Globals) -> Result<HelmMetadata, String> {
    let mut cmd = tokio::process::Command::new("helm");
    cmd.args(["get", "metadata", &g.release, "-n", &g.namespace, "-o", "json"]);
    if let Some(k) = &g.kubeconfig {
        cmd.args(["--kubeconfig", k]);
    }
    if let Some(c) = &g.context {
        cmd.args(["--kube-context", c]);
    }
    let out = cmd.output().await.map_err(|e| format!("running helm: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.trim().trim_start_matches("Error: ").to_string());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("helm's metadata: {e}"))
}

async fn list<K>(api: &Api<K>, lp: &ListParams) -> Result<ObjectList<K>, String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(lp).await.map_err(|e| api_message(&e))
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// One pass of the real CLI's collection (see `status.rs`).
async fn collect(client: &Client, g: &Globals) -> Status {
    let ns = &g.namespace;
    let mut s = Status::default();
    let daemonsets = Api::<DaemonSet>::namespaced(client.clone(), ns);
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    let pods = Api::<Pod>::namespaced(client.clone(), ns);

    // The agents: a missing DaemonSet is an error.
    match daemonsets.get(status::AGENT).await {
        Ok(ds) => s.daemonset(status::AGENT, &ds),
        Err(e) => {
            let msg = api_message(&e);
            s.error(status::AGENT, status::AGENT, msg.clone());
            s.collection_errors.push(msg);
        }
    }
    // Envoy's DaemonSet: none means Envoy runs in the agent (embedded mode).
    match daemonsets.get(status::ENVOY).await {
        Ok(ds) => {
            s.daemonset(status::ENVOY, &ds);
            pods_of(&pods, &mut s, status::ENVOY, status::ENVOY_SELECTOR).await;
        }
        Err(e) if is_not_found(&e) => s.set_disabled(status::ENVOY),
        Err(e) => {
            let msg = api_message(&e);
            s.error(status::ENVOY, status::ENVOY, msg.clone());
            s.collection_errors.push(msg);
        }
    }
    // The Deployments: absent means disabled.
    for (name, selector, always) in [
        (status::OPERATOR, status::OPERATOR_SELECTOR, true),
        (status::RELAY, status::RELAY_SELECTOR, true),
        (status::HUBBLE_UI, status::HUBBLE_UI_SELECTOR, false),
        (status::CLUSTERMESH, status::CLUSTERMESH_SELECTOR, true),
    ] {
        let exists = match deployments.get(name).await {
            Ok(d) => {
                s.deployment(name, &d);
                true
            }
            Err(e) if is_not_found(&e) => {
                s.set_disabled(name);
                false
            }
            Err(e) => {
                let msg = api_message(&e);
                s.error(name, name, msg.clone());
                s.collection_errors.push(msg);
                true
            }
        };
        // The operator's, relay's and clustermesh's pods are looked at in any case (they are
        // listed under Containers: even when there are none), hubble-ui's only when deployed.
        if always || exists {
            pods_of(&pods, &mut s, name, selector).await;
        }
    }
    // The agents' pods, and in each running one what cilium-dbg says.
    match list(&pods, &ListParams::default().labels(status::AGENT_SELECTOR)).await {
        Err(e) => s.collection_errors.push(e),
        Ok(l) => {
            s.pods(status::AGENT, &l.items);
            let running: Vec<&Pod> = l
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .collect();
            let asks = running.iter().filter(|p| status::agent_running(p)).map(|p| {
                let pods = pods.clone();
                let name = p.metadata.name.clone().unwrap_or_default();
                async move {
                    let st = ask(&pods, ns, &name, &["cilium-dbg", "status", "-o", "json"]).await;
                    let eps = ask(&pods, ns, &name, &["cilium-dbg", "endpoint", "list", "-o", "json"]).await;
                    (name, st, eps)
                }
            });
            for (name, st, eps) in futures_util::future::join_all(asks).await {
                s.agent_answers(&name, st, eps);
            }
            for p in running.into_iter().filter(|p| !status::agent_running(p)) {
                s.agent_not_running(p);
            }
        }
    }
    // Cluster Pods: every pod, against the CiliumEndpoints (none while the CRD is not there).
    let all = list(&Api::<Pod>::all(client.clone()), &ListParams::default()).await;
    let ceps = Api::<kube::api::DynamicObject>::all_with(client.clone(), &cep_resource());
    let endpoints = match ceps.list(&ListParams::default()).await {
        Ok(l) => Ok(l.items.len()),
        Err(e) if is_not_found(&e) => Ok(0),
        Err(e) => Err(api_message(&e)),
    };
    match (all, endpoints) {
        (Ok(all), Ok(n)) => s.pod_count(&all.items, n),
        (Err(e), _) | (_, Err(e)) => s.collection_errors.push(e),
    }
    match Api::<ConfigMap>::namespaced(client.clone(), ns).get("cilium-config").await {
        Ok(cm) => {
            let mut errs: Vec<String> = cm
                .metadata
                .annotations
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| k.starts_with(status::CONFIG_PREFIX))
                .map(|(_, v)| v)
                .collect();
            errs.sort();
            s.config_errors = errs;
        }
        Err(e) => {
            s.collection_errors.push(format!("unable to retrieve ConfigMap \"cilium-config\": {}", api_message(&e)))
        }
    }
    // The chart version: left empty when helm cannot tell, as the real CLI leaves it.
    if let Ok(m) = helm_metadata(g).await {
        s.helm_chart_version = m.version;
    }
    s
}

fn cep_resource() -> kube::api::ApiResource {
    kube::api::ApiResource {
        group: "cilium.io".into(),
        version: "v2".into(),
        api_version: "cilium.io/v2".into(),
        kind: "CiliumEndpoint".into(),
        plural: "ciliumendpoints".into(),
    }
}

async fn pods_of(pods: &Api<Pod>, s: &mut Status, name: &str, selector: &str) {
    match list(pods, &ListParams::default().labels(selector)).await {
        Ok(l) => s.pods(name, &l.items),
        Err(e) => s.collection_errors.push(e),
    }
}

/// Runs a command in a pod's agent container (the API server's exec, as `kubectl exec`) and
/// parses its JSON output.
async fn ask(pods: &Api<Pod>, ns: &str, pod: &str, command: &[&str]) -> Result<serde_json::Value, String> {
    use tokio::io::AsyncReadExt;
    let ap =
        kube::api::AttachParams::default().container(status::AGENT_CONTAINER).stdin(false).stdout(true).stderr(true);
    let failed =
        |e: String| format!("error with exec request (pod={ns}/{pod}, container={}): {e}", status::AGENT_CONTAINER);
    let mut p = pods.exec(pod, command.iter().copied(), &ap).await.map_err(|e| failed(api_message(&e)))?;
    let (mut out, mut err) = (String::new(), String::new());
    let mut so = p.stdout().ok_or_else(|| failed("no stdout".into()))?;
    let mut se = p.stderr().ok_or_else(|| failed("no stderr".into()))?;
    let (a, b) = tokio::join!(so.read_to_string(&mut out), se.read_to_string(&mut err));
    a.and(b).map_err(|e| failed(e.to_string()))?;
    let status = match p.take_status() {
        Some(s) => s.await,
        None => None,
    };
    let _ = p.join().await;
    if status.as_ref().and_then(|s| s.status.as_deref()) != Some("Success") {
        return Err(format!(
            "command failed (pod={ns}/{pod}, container={}): {:?}",
            status::AGENT_CONTAINER,
            err.trim_end()
        ));
    }
    serde_json::from_str(&out).map_err(|e| format!("unable to unmarshal response of cilium status: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn commands_and_flags() {
        let (g, c) = parse(&args("status --wait --wait-duration=90s -n cilium-ns")).unwrap();
        assert_eq!(g.namespace, "cilium-ns");
        assert_eq!(
            c,
            Command::Status {
                wait: true,
                wait_duration: Duration::from_secs(90),
                ignore_warnings: false,
                interactive: true
            }
        );
        assert_eq!(parse(&args("--context kind-kind config view")).unwrap().1, Command::ConfigView);
        assert_eq!(parse(&args("version --client")).unwrap().1, Command::Version { client_only: true });
        let e = parse(&args("connectivity perf")).unwrap_err();
        assert!(e.contains("cilium connectivity perf: not played") && e.contains("config view"), "{e}");
        let (_, c) = parse(&args("connectivity test --test no-policies --single-node -n kube-system")).unwrap();
        let Command::ConnectivityTest(p) = c else { panic!("{c:?}") };
        assert!(p.single_node && p.enabled("no-policies/pod-to-pod") && !p.enabled("other/x"));
        let e = parse(&args("connectivity test --perf")).unwrap_err();
        assert!(e.contains("flag --perf is not played") && e.contains("--test-namespace"), "{e}");
        assert!(parse(&args("status --wait-duration forever")).is_err());
        assert!(parse(&args("status -o json")).is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(go_duration("5"), None);
        assert_eq!(go_duration(""), None);
    }

    #[test]
    fn config_view_is_sorted_columns() {
        let data = [("routing-mode", "native"), ("auto-direct-node-routes", "true"), ("debug", "false")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            config_view(&data),
            "auto-direct-node-routes    true\ndebug                      false\nrouting-mode               native\n"
        );
    }
}
