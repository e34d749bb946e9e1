//! `cilium connectivity test` on the lab (docs/architecture.md, "The cilium CLI"): the real
//! CLI's test deployments in `cilium-test-1`, created through the API server, its waits, and a
//! subset of its tests — those that need no network policy (`no-policies`,
//! `no-policies-extra`) — run for real: every action is a command executed in a client pod
//! through the API server's exec (as `kubectl exec`), and its outcome is what the command
//! returned. What is printed follows the real CLI's layout (progress dots, the buffered test
//! log shown when a test fails, the report). The planning of the actions and the layout are
//! pure functions of the observed objects (`plan`, `Report`), unit-tested below.

use std::io::Write;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, Service, ServiceAccount};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use regex::Regex;
use serde_json::json;

use super::{api_message, is_not_found};
use crate::backend::lab::cilium::CiliumError;

/// The test namespace's base name (`--test-namespace`); the CLI always suffixes it with the
/// sequence number of the concurrent run, so a single run uses `cilium-test-1`.
pub const TEST_NAMESPACE: &str = "cilium-test";
/// Images as the CLI's defaults name them (the lab's catalogue plays these repositories).
pub const CURL_IMAGE: &str = "quay.io/cilium/alpine-curl:v1.10.0";
pub const JSON_MOCK_IMAGE: &str = "quay.io/cilium/json-mock:v1.3.8";
pub const DNS_TEST_SERVER_IMAGE: &str = "registry.k8s.io/coredns/coredns:v1.12.0";

const CLIENT: &str = "client";
const CLIENT2: &str = "client2";
const CLIENT3: &str = "client3";
const ECHO_SAME: &str = "echo-same-node";
const ECHO_OTHER: &str = "echo-other-node";
const HOST_NETNS: &str = "host-netns";
const HOST_NETNS_NON_CILIUM: &str = "host-netns-non-cilium";
const DNS_CONFIGMAP: &str = "coredns-configmap";
const DNS_CONTAINER: &str = "dns-test-server";
const ECHO_PORT: u16 = 8080;
const HOST_PORT: u16 = 4000;
/// How long the set-up's waits may take (the CLI's long and short timeouts: Deployments,
/// DaemonSets and the namespace get the long one; DNS, Services and NodePorts the short one,
/// Services twice), and how often they look again.
const LONG: Duration = Duration::from_secs(300);
const SHORT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_secs(1);
/// The longest an executed command may take.
const EXEC_LIMIT: Duration = Duration::from_secs(120);
/// A command that succeeded without output is run again this many times, as the CLI does.
const RETRIES: usize = 3;

/// The flags of `cilium connectivity test` the lab plays.
pub const FLAGS: &str = "--test, --test-namespace, --single-node, --verbose/-v, --debug/-d, --timestamp/-t, \
    --force-deploy, --cleanup, --exit-zero-on-failure, --external-target, --external-ip, --external-other-ip, \
    --connect-timeout, --request-timeout, --retry, --retry-delay, --curl-image, --json-mock-image, \
    --dns-test-server-image, --timeout, --post-test-sleep, --hubble, --flow-validation, --ip-families, --test-concurrency=1, \
    --include-unsafe-tests, --collect-sysdump-on-failure=false, --print-flows";

/// Flags that take a value (`--flag VALUE` as well as `--flag=VALUE`).
pub const VALUE_FLAGS: &[&str] = &[
    "--test",
    "--test-namespace",
    "--external-target",
    "--external-ip",
    "--external-other-ip",
    "--connect-timeout",
    "--request-timeout",
    "--retry",
    "--retry-delay",
    "--curl-image",
    "--json-mock-image",
    "--dns-test-server-image",
    "--timeout",
    "--flow-validation",
    "--ip-families",
    "--test-concurrency",
    "--post-test-sleep",
];

#[derive(Debug, Clone)]
pub struct Params {
    pub test_namespace: String,
    /// `--test` expressions: (skip, regex). A test or scenario runs when no skip expression
    /// matches it and a run expression does (or there is none).
    pub filters: Vec<(bool, Regex)>,
    pub single_node: bool,
    pub verbose: bool,
    pub timestamp: bool,
    pub force_deploy: bool,
    pub cleanup_only: bool,
    pub exit_zero_on_failure: bool,
    pub hubble: bool,
    pub external_target: String,
    pub external_ip: String,
    pub external_other_ip: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub retry: u32,
    pub retry_delay: Duration,
    pub curl_image: String,
    pub json_mock_image: String,
    pub dns_test_server_image: String,
    pub timeout: Option<Duration>,
    /// `--post-test-sleep`: a pause after each test.
    pub post_test_sleep: Duration,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            test_namespace: TEST_NAMESPACE.into(),
            filters: vec![],
            single_node: false,
            verbose: false,
            timestamp: false,
            force_deploy: false,
            cleanup_only: false,
            exit_zero_on_failure: false,
            hubble: true,
            external_target: "one.one.one.one.".into(),
            external_ip: "1.1.1.1".into(),
            external_other_ip: "1.0.0.1".into(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            retry: 3,
            retry_delay: Duration::from_secs(3),
            curl_image: CURL_IMAGE.into(),
            json_mock_image: JSON_MOCK_IMAGE.into(),
            dns_test_server_image: DNS_TEST_SERVER_IMAGE.into(),
            timeout: None,
            post_test_sleep: Duration::ZERO,
        }
    }
}

impl PartialEq for Params {
    fn eq(&self, o: &Params) -> bool {
        format!("{self:?}") == format!("{o:?}")
    }
}

impl Params {
    /// The namespace the run uses: the base name with the run's sequence number.
    pub fn namespace(&self) -> String {
        format!("{}-1", self.test_namespace)
    }

    /// Whether the test or scenario `name` (`no-policies`, `no-policies/pod-to-pod`) runs.
    pub fn enabled(&self, name: &str) -> bool {
        if self.filters.iter().any(|(skip, re)| *skip && re.is_match(name)) {
            return false;
        }
        let runs: Vec<&Regex> = self.filters.iter().filter(|(skip, _)| !skip).map(|(_, re)| re).collect();
        runs.is_empty() || runs.iter().any(|re| re.is_match(name))
    }

    /// From the command's flags; errors name the flag.
    pub fn parse(flags: &[(String, Option<String>)]) -> Result<Params, String> {
        let mut p = Params::default();
        let bool_of = |v: &Option<String>, f: &str| match v.as_deref() {
            None | Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(x) => Err(format!("invalid argument \"{x}\" for \"{f}\" flag: not a boolean")),
        };
        let duration = |v: &str, f: &str| {
            super::go_duration(v).ok_or_else(|| format!("invalid argument \"{v}\" for \"{f}\" flag: not a duration"))
        };
        for (f, v) in flags {
            let val = v.clone().unwrap_or_default();
            match f.as_str() {
                "--test" => {
                    for expr in val.split(',').filter(|e| !e.is_empty()) {
                        let (skip, body) = match expr.strip_prefix('!') {
                            Some(b) => (true, b),
                            None => (false, expr),
                        };
                        let re = Regex::new(body).map_err(|e| format!("test filter: {e}"))?;
                        p.filters.push((skip, re));
                    }
                }
                "--test-namespace" => p.test_namespace = val,
                "--single-node" => p.single_node = bool_of(v, f)?,
                "--verbose" | "-v" | "--debug" | "-d" => p.verbose = bool_of(v, f)?,
                "--timestamp" | "-t" => p.timestamp = bool_of(v, f)?,
                "--force-deploy" => p.force_deploy = bool_of(v, f)?,
                "--cleanup" => p.cleanup_only = bool_of(v, f)?,
                "--exit-zero-on-failure" => p.exit_zero_on_failure = bool_of(v, f)?,
                "--hubble" => p.hubble = bool_of(v, f)?,
                "--external-target" => p.external_target = val,
                "--external-ip" => p.external_ip = val,
                "--external-other-ip" => p.external_other_ip = val,
                "--connect-timeout" => p.connect_timeout = duration(&val, f)?,
                "--request-timeout" => p.request_timeout = duration(&val, f)?,
                "--retry-delay" => p.retry_delay = duration(&val, f)?,
                "--post-test-sleep" => p.post_test_sleep = duration(&val, f)?,
                "--timeout" => p.timeout = Some(duration(&val, f)?).filter(|d| !d.is_zero()),
                "--retry" => {
                    p.retry = val
                        .parse()
                        .map_err(|_| format!("invalid argument \"{val}\" for \"--retry\" flag: not a number"))?
                }
                "--curl-image" => p.curl_image = val,
                "--json-mock-image" => p.json_mock_image = val,
                "--dns-test-server-image" => p.dns_test_server_image = val,
                // Flow validation needs Hubble Relay, which the lab does not play: accepted, and
                // the run says that validation is disabled.
                "--flow-validation" | "--print-flows" | "--all-flows" => {}
                "--include-unsafe-tests" => {}
                "--ip-families" => {
                    if val.split(',').any(|f| f != "ipv4" && f != "ipv6") {
                        return Err(format!("invalid argument \"{val}\" for \"--ip-families\" flag"));
                    }
                }
                "--test-concurrency" if val == "1" => {}
                "--collect-sysdump-on-failure" if !bool_of(v, f)? => {}
                other => return Err(format!("cilium connectivity test: flag {other} is not played by the lab")),
            }
        }
        Ok(p)
    }
}

/// One end of an action, as the CLI names it in its lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    pub name: String,
    pub address: String,
    pub port: u32,
}

/// A pod the actions start from.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub namespace: String,
    pub name: String,
    pub container: String,
    pub ip: String,
    pub node: String,
    pub host_ip: String,
}

impl Source {
    fn from_pod(p: &Pod) -> Option<Source> {
        let spec = p.spec.as_ref()?;
        let st = p.status.as_ref()?;
        Some(Source {
            namespace: p.metadata.namespace.clone()?,
            name: p.metadata.name.clone()?,
            container: spec.containers.first()?.name.clone(),
            ip: st.pod_ip.clone().unwrap_or_default(),
            node: spec.node_name.clone().unwrap_or_default(),
            host_ip: st.host_ip.clone().unwrap_or_default(),
        })
    }

    fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// `curl-ipv4-0`, `ping-ipv4-internal-ip`, …
    pub name: String,
    pub src: Source,
    pub dst: Peer,
    pub command: Vec<String>,
}

impl Action {
    /// The action as the CLI prints it: `test/scenario:name: src (ip) -> dst (addr:port)`.
    pub fn describe(&self, scenario: &str) -> String {
        format!(
            "{scenario}:{}: {} ({}) -> {} ({}:{})",
            self.name,
            self.src.full_name(),
            self.src.ip,
            self.dst.name,
            self.dst.address,
            self.dst.port
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: &'static str,
    /// Why the scenario cannot run on this cluster (a feature it needs is off).
    pub unmet: Option<String>,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    pub name: &'static str,
    pub scenarios: Vec<Scenario>,
}

/// What the actions are planned from: the test pods, services and nodes as the API has them.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Client pods (`kind=client`), sorted by name.
    pub clients: Vec<Source>,
    /// Echo pods (`kind=echo`), sorted by name.
    pub echoes: Vec<Source>,
    /// Echo services: (namespace, name, cluster IP, port, node port), sorted by name.
    pub services: Vec<(String, String, String, u16, u16)>,
    /// Nodes: (name, InternalIP), sorted by name.
    pub nodes: Vec<(String, String)>,
    /// The host-network pods, one per node (`kind=host-netns`), sorted by node.
    pub host_pods: Vec<Source>,
    /// Whether the agents serve hostPort (kube-proxy replacement).
    pub host_port: bool,
}

/// A duration as Go prints it (`20s`, `1m30s`, `1.5s`).
fn go_duration_string(d: Duration) -> String {
    let total = d.as_secs_f64();
    let (m, rest) = ((total / 60.0).floor() as u64, total % 60.0);
    let secs = if rest.fract() == 0.0 { format!("{}s", rest as u64) } else { format!("{rest}s") };
    match m {
        0 => secs,
        m if m % 60 == 0 && rest == 0.0 => format!("{}h0m0s", m / 60),
        m if m >= 60 => format!("{}h{}m{secs}", m / 60, m % 60),
        m => format!("{m}m{secs}"),
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 { format!("{}", s as u64) } else { format!("{s}") }
}

/// The CLI's curl command for `url` (`CurlCommand`: the `-w` report of the connection, the
/// body discarded, fail on HTTP errors, its timeouts).
pub fn curl(p: &Params, url: &str, ipv4: bool, extra: &[String]) -> Vec<String> {
    let mut cmd: Vec<String> = ["curl", "--silent", "--fail", "--show-error"].iter().map(|s| s.to_string()).collect();
    if !p.connect_timeout.is_zero() {
        cmd.extend(["--connect-timeout".into(), secs(p.connect_timeout)]);
    }
    if !p.request_timeout.is_zero() {
        cmd.extend(["--max-time".into(), secs(p.request_timeout)]);
    }
    if ipv4 {
        cmd.push("-4".into());
    }
    let host = url.split("://").nth(1).unwrap_or(url).split(['/', ':']).next().unwrap_or("");
    if let Some(h) = host.strip_suffix('.') {
        cmd.extend(["-H".into(), format!("Host: {h}")]);
    }
    cmd.extend([
        "-w".into(),
        "%{local_ip}:%{local_port} -> %{remote_ip}:%{remote_port} = %{response_code}\n".into(),
        "--output".into(),
        "/dev/null".into(),
    ]);
    cmd.extend(extra.iter().cloned());
    cmd.push(url.into());
    cmd
}

fn ping(p: &Params, addr: &str) -> Vec<String> {
    let mut cmd: Vec<String> = vec!["ping".into(), "-c".into(), "1".into()];
    if !p.connect_timeout.is_zero() {
        cmd.extend(["-W".into(), secs(p.connect_timeout)]);
    }
    cmd.push(addr.into());
    cmd
}

/// The retry options of the scenarios that retry every error (to the world, to CIDRs).
fn retry_all(p: &Params) -> Vec<String> {
    if p.retry == 0 {
        return vec![];
    }
    let mut o = vec!["--retry".into(), p.retry.to_string(), "--retry-all-errors".into()];
    if !p.retry_delay.is_zero() {
        o.extend(["--retry-delay".into(), secs(p.retry_delay)]);
    }
    o
}

fn echo_peer(e: &Source) -> Peer {
    Peer { name: e.full_name(), address: e.ip.clone(), port: ECHO_PORT as u32 }
}

/// The tests the lab plays, with their actions, in the CLI's order.
pub fn plan(p: &Params, o: &Observed) -> Vec<Test> {
    let mut no_policies = Vec::new();

    // pod-to-pod: every client to every echo pod, by address.
    let mut actions = Vec::new();
    let mut i = 0;
    for c in &o.clients {
        for e in &o.echoes {
            let url = format!("http://{}:{ECHO_PORT}", e.ip);
            actions.push(Action {
                name: format!("curl-ipv4-{i}"),
                src: c.clone(),
                dst: echo_peer(e),
                command: curl(p, &url, true, &[]),
            });
            i += 1;
        }
    }
    no_policies.push(Scenario { name: "pod-to-pod", unmet: None, actions });

    // client-to-client: a ping between every two clients.
    let mut actions = Vec::new();
    let mut i = 0;
    for a in &o.clients {
        for b in &o.clients {
            if a.ip == b.ip {
                continue;
            }
            actions.push(Action {
                name: format!("ping-ipv4-{i}"),
                src: a.clone(),
                dst: Peer { name: b.full_name(), address: b.ip.clone(), port: 0 },
                command: ping(p, &b.ip),
            });
            i += 1;
        }
    }
    no_policies.push(Scenario { name: "client-to-client", unmet: None, actions });

    // pod-to-service: every client to every echo Service's ClusterIP.
    let mut actions = Vec::new();
    let mut i = 0;
    for c in &o.clients {
        for (ns, name, ip, port, _) in &o.services {
            let url = format!("http://{ip}:{port}");
            actions.push(Action {
                name: format!("curl-ipv4-{i}"),
                src: c.clone(),
                dst: Peer { name: format!("{ns}/{name}"), address: ip.clone(), port: *port as u32 },
                command: curl(p, &url, true, &[]),
            });
            i += 1;
        }
    }
    no_policies.push(Scenario { name: "pod-to-service", unmet: None, actions });

    // pod-to-hostport: every client to every echo pod's node on the echo's hostPort.
    let mut actions = Vec::new();
    let mut i = 0;
    for c in &o.clients {
        for e in &o.echoes {
            let url = format!("http://{}:{HOST_PORT}", e.host_ip);
            actions.push(Action {
                name: format!("curl-ipv4-{i}"),
                src: c.clone(),
                dst: Peer { name: e.full_name(), address: e.host_ip.clone(), port: HOST_PORT as u32 },
                command: curl(p, &url, true, &[]),
            });
            i += 1;
        }
    }
    let unmet = (!o.host_port).then(|| "Feature host-port is disabled".to_string());
    no_policies.push(Scenario { name: "pod-to-hostport", unmet, actions });

    // pod-to-world: http, https and https to a page of the external target.
    let target = &p.external_target;
    let mut actions = Vec::new();
    for (i, c) in o.clients.iter().enumerate() {
        for (kind, url, name) in [
            ("http", format!("http://{target}"), format!("{target}-http")),
            ("https", format!("https://{target}"), format!("{target}-https")),
            ("https", format!("https://{target}/index.html"), format!("{target}-https-index")),
        ] {
            let port = if kind == "http" { 80 } else { 443 };
            let index = if name.ends_with("-index") { "-index" } else { "" };
            actions.push(Action {
                name: format!("{kind}-to-{target}{index}-ipv4-{i}"),
                src: c.clone(),
                dst: Peer { name, address: target.clone(), port },
                command: curl(p, &url, true, &retry_all(p)),
            });
        }
    }
    no_policies.push(Scenario { name: "pod-to-world", unmet: None, actions });

    // pod-to-host: every client pings every node's InternalIP.
    let mut actions = Vec::new();
    for c in &o.clients {
        for (_, ip) in &o.nodes {
            actions.push(Action {
                name: "ping-ipv4-internal-ip".into(),
                src: c.clone(),
                dst: Peer { name: ip.clone(), address: ip.clone(), port: 0 },
                command: ping(p, ip),
            });
        }
    }
    no_policies.push(Scenario { name: "pod-to-host", unmet: None, actions });

    // host-to-pod: from every node's network namespace to every echo pod.
    let mut actions = Vec::new();
    let mut i = 0;
    for h in &o.host_pods {
        for e in &o.echoes {
            let url = format!("http://{}:{ECHO_PORT}", e.ip);
            actions.push(Action {
                name: format!("curl-ipv4-{i}"),
                src: h.clone(),
                dst: echo_peer(e),
                command: curl(p, &url, true, &[]),
            });
            i += 1;
        }
    }
    no_policies.push(Scenario { name: "host-to-pod", unmet: None, actions });

    // pod-to-cidr: every client to the two external addresses over https.
    let mut actions = Vec::new();
    for ip in [&p.external_ip, &p.external_other_ip] {
        let name = format!("external-{}", ip.replace(['.', ':'], ""));
        for (i, c) in o.clients.iter().enumerate() {
            actions.push(Action {
                name: format!("{name}-{i}"),
                src: c.clone(),
                dst: Peer { name: name.clone(), address: ip.clone(), port: 443 },
                command: curl(p, &format!("https://{ip}"), true, &retry_all(p)),
            });
        }
    }
    no_policies.push(Scenario { name: "pod-to-cidr", unmet: None, actions });

    // no-policies-extra: every echo Service's NodePort on the other nodes, then on the
    // client's own node.
    let nodeport = |local: bool| {
        let mut actions = Vec::new();
        let mut i = 0;
        for c in &o.clients {
            for (ns, name, _, port, node_port) in &o.services {
                for (_, ip) in &o.nodes {
                    if (ip == &c.host_ip) != local {
                        continue;
                    }
                    let url = format!("http://{ip}:{node_port}");
                    actions.push(Action {
                        name: format!("curl-{i}"),
                        src: c.clone(),
                        // The CLI names the Service (by its DNS name) as the destination.
                        dst: Peer { name: format!("{ns}/{name}"), address: format!("{name}.{ns}"), port: *port as u32 },
                        command: curl(p, &url, false, &[]),
                    });
                    i += 1;
                }
            }
        }
        actions
    };
    let extra = vec![
        Scenario { name: "pod-to-remote-nodeport", unmet: None, actions: nodeport(false) },
        Scenario { name: "pod-to-local-nodeport", unmet: None, actions: nodeport(true) },
    ];
    vec![Test { name: "no-policies", scenarios: no_policies }, Test { name: "no-policies-extra", scenarios: extra }]
}

/// What one executed command gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    /// The exit code, or why the command could not be run.
    pub code: Result<i32, String>,
}

impl Outcome {
    /// The CLI's verdict: `None` when the action succeeded, else its failure message.
    pub fn failure(&self, command: &[String]) -> Option<String> {
        let cmd = command.join(" ");
        match &self.code {
            Ok(0) if self.stdout.trim().is_empty() => {
                Some(format!("inconclusive results: command {cmd:?} was successful but without output"))
            }
            Ok(0) => None,
            Ok(n) => Some(format!("command {cmd:?} failed: command terminated with exit code {n}")),
            Err(e) => Some(format!("command {cmd:?} failed: {e}")),
        }
    }
}

/// Counts and lines of a run, laid out as the CLI does.
#[derive(Debug, Default)]
pub struct Report {
    pub tests: usize,
    pub skipped_tests: usize,
    pub skipped_scenarios: usize,
    pub actions: usize,
    /// Failed tests with their failed actions (description, message).
    pub failed: Vec<(String, Vec<(String, String)>)>,
}

impl Report {
    /// The report that ends the run; `Err` carries the CLI's error when tests failed.
    pub fn render(&self, ns: &str) -> (String, Option<String>) {
        if self.failed.is_empty() {
            return (
                format!(
                    "\n✅ [{ns}] All {} tests ({} actions) successful, {} tests skipped, {} scenarios skipped.\n",
                    self.tests - self.skipped_tests,
                    self.actions,
                    self.skipped_tests,
                    self.skipped_scenarios
                ),
                None,
            );
        }
        let failed_actions: usize = self.failed.iter().map(|(_, a)| a.len()).sum();
        let mut out = format!("\n📋 Test Report [{ns}]\n");
        out += &format!(
            "❌ {}/{} tests failed ({failed_actions}/{} actions), {} tests skipped, {} scenarios skipped:\n",
            self.failed.len(),
            self.tests - self.skipped_tests,
            self.actions,
            self.skipped_tests,
            self.skipped_scenarios
        );
        for (test, actions) in &self.failed {
            out += &format!("Test [{test}]:\n");
            for (a, msg) in actions {
                out += &format!("  🟥 {a}: {msg}\n");
            }
        }
        (out, Some(format!("[{ns}] {} tests failed", self.failed.len())))
    }
}

/// Where the run's lines go: stdout, each line prefixed with a timestamp under `--timestamp`.
struct Out {
    timestamp: bool,
}

impl Out {
    fn stamp(&self) -> String {
        if !self.timestamp {
            return String::new();
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        format!("[{}] ", humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(now.as_secs())))
    }

    fn line(&self, s: &str) {
        println!("{}{s}", self.stamp());
        let _ = std::io::stdout().flush();
    }

    fn info(&self, s: &str) {
        self.line(&format!("ℹ️  {s}"));
    }

    fn raw(&self, s: &str) {
        print!("{s}");
        let _ = std::io::stdout().flush();
    }
}

/// A test's log: buffered (and shown only if the test fails) unless `--verbose`.
struct TestLog<'a> {
    out: &'a Out,
    buffer: Option<String>,
}

impl TestLog<'_> {
    fn log(&mut self, s: &str) {
        let line = format!("{}  {s}\n", self.out.stamp());
        match &mut self.buffer {
            Some(b) => b.push_str(&line),
            None => self.out.raw(&line),
        }
    }

    /// A failure shows what was buffered, and the rest of the test goes straight out.
    fn fail(&mut self, s: &str) {
        self.log(&format!("❌ {s}"));
        if let Some(b) = self.buffer.take() {
            self.out.raw(&format!("\n{b}"));
        }
    }
}

/// Runs `cilium connectivity test`.
pub async fn run(client: Client, cluster: &str, cilium_ns: &str, p: Params) -> Result<(), CiliumError> {
    let timeout = p.timeout;
    let work = run_inner(client, cluster, cilium_ns, p);
    match timeout {
        None => work.await,
        Some(t) => match tokio::time::timeout(t, work).await {
            Ok(r) => r,
            Err(_) => {
                Err(CiliumError::Cli(format!("connectivity test suite timeout ({}) reached", go_duration_string(t))))
            }
        },
    }
}

fn cli(msg: impl Into<String>) -> CiliumError {
    CiliumError::Cli(msg.into())
}

async fn run_inner(client: Client, cluster: &str, cilium_ns: &str, p: Params) -> Result<(), CiliumError> {
    let out = Out { timestamp: p.timestamp };
    let ns = p.namespace();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if p.cleanup_only {
        out.info("🧹 Cleanup mode enabled - removing all connectivity test artifacts");
        delete_namespace(&out, &namespaces, cluster, &ns).await?;
        out.info("✅ Cleanup complete");
        return Ok(());
    }

    // The agents, the nodes and the options in force.
    let agents = Api::<Pod>::namespaced(client.clone(), cilium_ns)
        .list(&ListParams::default().labels(super::status::AGENT_SELECTOR))
        .await
        .map_err(|e| cli(format!("unable to list cilium pods: {}", api_message(&e))))?;
    let ds = Api::<DaemonSet>::namespaced(client.clone(), cilium_ns).get(super::status::AGENT).await.map_err(|e| {
        out.line("🟥 Unable to determine status of Cilium DaemonSet. Run \"cilium status\" for more details");
        cli(format!("unable to determine status of Cilium DaemonSet: {}", api_message(&e)))
    })?;
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| cli(format!("unable to list nodes: {}", api_message(&e))))?
        .items;
    let mut single_node = p.single_node;
    if !single_node {
        let desired = ds.status.as_ref().map(|s| s.desired_number_scheduled).unwrap_or(0);
        let workers = nodes
            .iter()
            .filter(|n| {
                !n.spec.as_ref().and_then(|s| s.taints.as_ref()).is_some_and(|ts| {
                    ts.iter().any(|t| {
                        t.effect == "NoSchedule"
                            && matches!(
                                t.key.as_str(),
                                "node-role.kubernetes.io/control-plane" | "node-role.kubernetes.io/master"
                            )
                    })
                })
            })
            .count();
        single_node = desired == 1 || workers == 1;
        if single_node {
            out.info("Single-node environment detected, enabling single-node connectivity test");
        }
    }
    let config = Api::<ConfigMap>::namespaced(client.clone(), cilium_ns)
        .get("cilium-config")
        .await
        .ok()
        .and_then(|c| c.data)
        .unwrap_or_default();
    let kpr = matches!(config.get("kube-proxy-replacement").map(String::as_str), Some("true" | "strict"));
    // hostPort is served by kube-proxy replacement (the agents' HostPort frontends); without
    // it the scenario that needs it is skipped, as the CLI skips it where the feature is off.
    let host_port = kpr;
    if config.get("monitor-aggregation").is_some_and(|m| m != "none" && !m.is_empty()) {
        out.info("Monitor aggregation detected, will skip some flow validation steps");
    }
    let version = agents
        .items
        .iter()
        .filter_map(|a| {
            a.spec.as_ref()?.containers.iter().find(|c| c.name == super::status::AGENT_CONTAINER)?.image.clone()
        })
        .filter_map(|i| crate::backend::lab::cilium::agent::image_version(&i))
        .min()
        .unwrap_or_else(|| "unknown".into());

    // The test's objects, created where missing, as the CLI does.
    if p.force_deploy {
        delete_namespace(&out, &namespaces, cluster, &ns).await?;
    }
    deploy(&out, &client, cluster, &ns, &p, single_node, host_port).await?;

    // Wait until they serve.
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let mut names = vec![CLIENT, CLIENT2, ECHO_SAME];
    if !single_node {
        names.push(CLIENT3);
        names.push(ECHO_OTHER);
    }
    for name in names {
        out.line(&format!("⌛ [{cluster}] Waiting for deployment {ns}/{name} to become ready..."));
        wait_deployment(&deployments, &ns, name).await?;
    }
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let list = |selector: String| {
        let pods = pods.clone();
        async move {
            let mut l: Vec<Pod> = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| cli(format!("unable to list pods ({selector}): {}", api_message(&e))))?
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            l.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            Ok::<Vec<Pod>, CiliumError>(l)
        }
    };
    let clients: Vec<Source> = list("kind=client".into()).await?.iter().filter_map(Source::from_pod).collect();
    let echoes: Vec<Source> = list("kind=echo".into()).await?.iter().filter_map(Source::from_pod).collect();
    let echo_named = |n: &str| echoes.iter().find(|e| e.name.starts_with(&format!("{n}-"))).cloned();
    let mut dns_targets = vec![echo_named(ECHO_SAME).ok_or_else(|| cli("unexpected number of same node pods: 0"))?];
    if !single_node {
        dns_targets.push(echo_named(ECHO_OTHER).ok_or_else(|| cli("unexpected number of other node pods: 0"))?);
    }
    for target in &dns_targets {
        for c in &clients {
            out.line(&format!(
                "⌛ [{cluster}] Waiting for pod {} to reach DNS server on {} pod...",
                c.full_name(),
                target.full_name()
            ));
            let what = format!(
                "timeout reached waiting for lookup for localhost from pod {} to server on pod {} to succeed",
                c.full_name(),
                target.full_name()
            );
            wait_command(&client, c, &["nslookup", "localhost", &target.ip], &what, SHORT).await?;
        }
    }
    for c in &clients {
        out.line(&format!("⌛ [{cluster}] Waiting for pod {} to reach default/kubernetes service...", c.full_name()));
        let what =
            format!("timeout reached waiting for lookup for kubernetes.default from pod {} to succeed", c.full_name());
        wait_command(&client, c, &searched_lookup("kubernetes.default"), &what, SHORT).await?;
    }
    let svc_api = Api::<Service>::namespaced(client.clone(), &ns);
    let mut services: Vec<Service> = svc_api
        .list(&ListParams::default().labels("kind=echo"))
        .await
        .map_err(|e| cli(format!("unable to list echo services: {}", api_message(&e))))?
        .items;
    services.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let first = clients.first().cloned().ok_or_else(|| cli("no client pod available"))?;
    let client_nodes: Vec<&str> = clients.iter().map(|c| c.node.as_str()).collect();
    let mut observed_services = Vec::new();
    for s in &services {
        let name = s.metadata.name.clone().unwrap_or_default();
        let spec = s.spec.clone().unwrap_or_default();
        let ip = spec.cluster_ip.clone().unwrap_or_default();
        let port =
            spec.ports.as_ref().and_then(|p| p.first()).map(|p| (p.port as u16, p.node_port.unwrap_or(0) as u16));
        let (port, node_port) = port.unwrap_or((0, 0));
        out.line(&format!("⌛ [{cluster}] Waiting for Service {ns}/{name} to become ready..."));
        let what = format!("timeout reached waiting for service {ns}/{name}");
        let want = format!("Address: {ip}\n");
        wait_until(&what, 2 * SHORT, || {
            let (client, first, name, want) = (client.clone(), first.clone(), name.clone(), want.clone());
            async move {
                let argv: Vec<String> = searched_lookup(&name).iter().map(|s| s.to_string()).collect();
                let o = exec(&client, &first, &argv).await;
                match o.code {
                    Ok(0) if o.stdout.replace("\r\n", "\n").contains(&want) => Ok(()),
                    Ok(0) => Err(format!("Service IP {:?} not found in nslookup output {:?}", want.trim(), o.stdout)),
                    Ok(n) => Err(format!("command terminated with exit code {n}")),
                    Err(e) => Err(e),
                }
            }
        })
        .await?;
        // With kube-proxy replacement the agents serve the Service: wait until those of the
        // clients' nodes list it with a backend (`cilium-dbg service list`).
        if kpr {
            for agent in agents.items.iter().filter(|a| {
                a.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| client_nodes.contains(&n))
            }) {
                let agent_name = agent.metadata.name.clone().unwrap_or_default();
                out.line(&format!(
                    "⌛ [{cluster}] Waiting for Service {ns}/{name} to be synchronized by Cilium pod {cilium_ns}/{agent_name}"
                ));
                let src = Source::from_pod(agent).ok_or_else(|| cli("an agent pod without a spec"))?;
                let src = Source { container: super::status::AGENT_CONTAINER.into(), ..src };
                let frontend = format!("{ip}:{port} ");
                let what = format!(
                    "timeout reached waiting for service {ns}/{name} to appear in Cilium pod {cilium_ns}/{agent_name}"
                );
                wait_until(&what, 2 * SHORT, || {
                    let (client, src, frontend) = (client.clone(), src.clone(), frontend.clone());
                    async move {
                        let o = exec(&client, &src, &["cilium-dbg".into(), "service".into(), "list".into()]).await;
                        let listed = o.stdout.lines().any(|l| l.contains(&frontend) && l.contains("(active)"));
                        if listed { Ok(()) } else { Err(format!("{} not listed with a backend", frontend.trim())) }
                    }
                })
                .await?;
            }
        }
        observed_services.push((ns.clone(), name, ip, port, node_port));
    }
    // Every agent's node serves the NodePorts, single node or not.
    for agent in &agents.items {
        let host_ip = agent.status.as_ref().and_then(|s| s.host_ip.clone()).unwrap_or_default();
        for (_, name, _, _, node_port) in &observed_services {
            out.line(&format!(
                "⌛ [{cluster}] Waiting for NodePort {host_ip}:{node_port} ({ns}/{name}) to become ready..."
            ));
            // The CLI asks `nc -z`; the lab's busybox has no -z, so a connection by curl
            // (which the echo servers answer) is the check.
            let url = format!("http://{host_ip}:{node_port}");
            let what = format!("timeout reached waiting for NodePort {host_ip}:{node_port} ({ns}/{name})");
            wait_command(
                &client,
                &first,
                &["curl", "--silent", "--output", "/dev/null", "--connect-timeout", "3", &url],
                &what,
                SHORT,
            )
            .await?;
        }
    }
    if !single_node {
        let daemonsets = Api::<DaemonSet>::namespaced(client.clone(), &ns);
        for name in [HOST_NETNS_NON_CILIUM, HOST_NETNS] {
            out.line(&format!("⌛ [{cluster}] Waiting for DaemonSet {ns}/{name} to become ready..."));
            wait_daemonset(&daemonsets, &ns, name).await?;
        }
    }
    let mut host_pods: Vec<Source> =
        list("kind=host-netns".into()).await?.iter().filter_map(Source::from_pod).collect();
    host_pods.sort_by(|a, b| a.node.cmp(&b.node));
    out.info("Skipping IPCache check");
    if p.hubble {
        out.line("🔭 Enabling Hubble telescope...");
        out.line(
            "⚠️  Unable to contact Hubble Relay, disabling Hubble telescope and flow validation: the lab plays no Hubble Relay",
        );
    }
    out.info(&format!("Cilium version: {version}"));

    let mut node_ips: Vec<(String, String)> = nodes
        .iter()
        .filter_map(|n| {
            let ip = n.status.as_ref()?.addresses.as_ref()?.iter().find(|a| a.type_ == "InternalIP")?.address.clone();
            Some((n.metadata.name.clone()?, ip))
        })
        .collect();
    node_ips.sort();
    let observed = Observed { clients, echoes, services: observed_services, nodes: node_ips, host_pods, host_port };
    let tests = plan(&p, &observed);
    let report = run_tests(&out, &client, &p, &ns, &tests).await;
    let (text, failed) = report.render(&ns);
    out.raw(&text);
    match failed {
        Some(e) if !p.exit_zero_on_failure => Err(cli(e)),
        _ => Ok(()),
    }
}

async fn run_tests(out: &Out, client: &Client, p: &Params, ns: &str, tests: &[Test]) -> Report {
    let mut report = Report { tests: tests.len(), ..Report::default() };
    out.line(&format!("🏃[{ns}] Running {} tests ...", tests.len()));
    for (i, t) in tests.iter().enumerate() {
        let index = format!("[{}/{}]", i + 1, tests.len());
        if !t.scenarios.iter().any(|s| p.enabled(&format!("{}/{}", t.name, s.name))) {
            out.line(&format!("[=] [{ns}] Skipping test [{}] {index} (skipped by user)", t.name));
            report.skipped_tests += 1;
            continue;
        }
        out.line(&format!("[=] [{ns}] Test [{}] {index}", t.name));
        let mut log = TestLog { out, buffer: (!p.verbose).then(String::new) };
        let mut failures = Vec::new();
        for s in &t.scenarios {
            let scenario = format!("{}/{}", t.name, s.name);
            if !p.enabled(&scenario) {
                report.skipped_scenarios += 1;
                log.log(&format!("[-] Skipping Scenario [{scenario}] (skipped by user)"));
                continue;
            }
            if let Some(why) = &s.unmet {
                report.skipped_scenarios += 1;
                log.log(&format!("[-] Skipping Scenario [{scenario}] ({why})"));
                continue;
            }
            log.log(&format!("[-] Scenario [{scenario}]"));
            for a in &s.actions {
                let described = a.describe(&scenario);
                log.log(&format!("[.] Action [{described}]"));
                out.raw(".");
                report.actions += 1;
                let mut outcome = exec(client, &a.src, &a.command).await;
                for _ in 1..RETRIES {
                    if outcome.code != Ok(0) || !outcome.stdout.trim().is_empty() {
                        break;
                    }
                    outcome = exec(client, &a.src, &a.command).await;
                }
                if let Some(msg) = outcome.failure(&a.command) {
                    log.fail(&msg);
                    let program = &a.command[0];
                    log.log(&format!("ℹ️  {program} stdout:"));
                    log.log(outcome.stdout.trim());
                    log.log(&format!("ℹ️  {program} stderr:"));
                    log.log(outcome.stderr.trim());
                    log.log("");
                    failures.push((described, msg));
                }
            }
        }
        if log.buffer.is_some() {
            out.raw("\n");
        }
        if !failures.is_empty() {
            report.failed.push((t.name.to_string(), failures));
        }
        if !p.post_test_sleep.is_zero() {
            out.info(&format!(
                "[{ns}] Pausing for {} after test <Test {}, {} scenarios, 0 resources, expectFunc <nil>>",
                go_duration_string(p.post_test_sleep),
                t.name,
                t.scenarios.len()
            ));
            tokio::time::sleep(p.post_test_sleep).await;
        }
    }
    report
}

/// Runs `argv` in the source pod's first container through the API server's exec; a command
/// that has not ended after `EXEC_LIMIT` (its own timeouts are far shorter) is a failure.
async fn exec(client: &Client, src: &Source, argv: &[String]) -> Outcome {
    match tokio::time::timeout(EXEC_LIMIT, exec_once(client, src, argv)).await {
        Ok(o) => o,
        Err(_) => Outcome {
            stdout: String::new(),
            stderr: String::new(),
            code: Err(format!("no answer from pod {} within {} s", src.full_name(), EXEC_LIMIT.as_secs())),
        },
    }
}

async fn exec_once(client: &Client, src: &Source, argv: &[String]) -> Outcome {
    use tokio::io::AsyncReadExt;
    let pods = Api::<Pod>::namespaced(client.clone(), &src.namespace);
    let ap = kube::api::AttachParams::default().container(&src.container).stdin(false).stdout(true).stderr(true);
    let failed = |e: String| Outcome {
        stdout: String::new(),
        stderr: String::new(),
        code: Err(format!("error with exec request (pod={}, container={}): {e}", src.full_name(), src.container)),
    };
    let mut proc = match pods.exec(&src.name, argv.iter().map(String::as_str), &ap).await {
        Ok(p) => p,
        Err(e) => return failed(api_message(&e)),
    };
    let (mut so, mut se) = match (proc.stdout(), proc.stderr()) {
        (Some(a), Some(b)) => (a, b),
        _ => return failed("no output streams".into()),
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let (a, b) = tokio::join!(so.read_to_string(&mut stdout), se.read_to_string(&mut stderr));
    if let Err(e) = a.and(b) {
        return failed(e.to_string());
    }
    let status = match proc.take_status() {
        Some(s) => s.await,
        None => None,
    };
    let _ = proc.join().await;
    let code = crate::backend::kind::pod_exec::exit_code(status.as_ref()).map_err(|e| e.to_string());
    Outcome { stdout, stderr, code }
}

/// `nslookup NAME` as the CLI runs it to wait for the cluster's DNS, through the pod's search
/// list: the image's busybox `nslookup` here (Debian's) does not apply the search domains of
/// `/etc/resolv.conf`, so each is tried in turn as the resolver would, then the name itself.
fn searched_lookup(name: &str) -> [String; 3] {
    [
        "sh".into(),
        "-c".into(),
        format!(
            "for d in $(sed -n 's/^search //p' /etc/resolv.conf) ''; do nslookup {name}${{d:+.$d}} && exit 0; done; exit 1"
        ),
    ]
}

/// Retries `check` every second until it succeeds or the wait's deadline; the error then says
/// `what` with the last error, as the CLI's waits do.
async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<(), CiliumError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(cli(format!("{what} (last error: {e})"))),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

async fn wait_command<S: AsRef<str>>(
    client: &Client,
    src: &Source,
    argv: &[S],
    what: &str,
    limit: Duration,
) -> Result<(), CiliumError> {
    let argv: Vec<String> = argv.iter().map(|s| s.as_ref().to_string()).collect();
    wait_until(what, limit, || {
        let (client, src, argv) = (client.clone(), src.clone(), argv.clone());
        async move {
            let o = exec(&client, &src, &argv).await;
            match o.code {
                Ok(0) => Ok(()),
                Ok(n) => Err(format!("command terminated with exit code {n}")),
                Err(e) => Err(e),
            }
        }
    })
    .await
}

async fn wait_deployment(api: &Api<Deployment>, ns: &str, name: &str) -> Result<(), CiliumError> {
    let what = format!("timeout reached waiting for deployment {ns}/{name} to become ready");
    wait_until(&what, LONG, || async {
        let d = api.get(name).await.map_err(|e| api_message(&e))?;
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let st = d.status.unwrap_or_default();
        let fresh = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
        let ready = st.ready_replicas.unwrap_or(0);
        let available = st.available_replicas.unwrap_or(0);
        if fresh && st.updated_replicas.unwrap_or(0) == want && ready == want && available == want {
            Ok(())
        } else {
            Err(format!("only {ready} of {want} replicas are ready"))
        }
    })
    .await
}

async fn wait_daemonset(api: &Api<DaemonSet>, ns: &str, name: &str) -> Result<(), CiliumError> {
    let what = format!("timeout reached waiting for DaemonSet {ns}/{name} to become ready");
    wait_until(&what, LONG, || async {
        let d = api.get(name).await.map_err(|e| api_message(&e))?;
        let st = d.status.unwrap_or_default();
        let fresh = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
        if fresh && st.number_ready == st.desired_number_scheduled && st.number_unavailable.unwrap_or(0) == 0 {
            Ok(())
        } else {
            Err(format!("only {} of {} pods are ready", st.number_ready, st.desired_number_scheduled))
        }
    })
    .await
}

async fn delete_namespace(out: &Out, api: &Api<Namespace>, cluster: &str, ns: &str) -> Result<(), CiliumError> {
    out.line(&format!("🔥 [{cluster}] Deleting connectivity check deployments..."));
    match api.delete(ns, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(cli(format!("unable to delete namespace {ns}: {}", api_message(&e)))),
    }
    out.line(&format!("⌛ [{cluster}] Waiting for namespace {ns} to disappear"));
    let what = format!("timeout reached waiting for namespace {ns} to disappear");
    wait_until(&what, LONG, || async {
        match api.get(ns).await {
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api_message(&e)),
            Ok(_) => Err("still there".into()),
        }
    })
    .await
}

/// The test objects, in the order the CLI creates them (see `objects`).
async fn deploy(
    out: &Out,
    client: &Client,
    cluster: &str,
    ns: &str,
    p: &Params,
    single_node: bool,
    host_port: bool,
) -> Result<(), CiliumError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get(ns).await.is_err() {
        out.line(&format!("✨ [{cluster}] Creating namespace {ns} for connectivity check..."));
        let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).expect("a namespace");
        namespaces
            .create(&PostParams::default(), &obj)
            .await
            .map_err(|e| cli(format!("unable to create namespace {ns}: {}", api_message(&e))))?;
    }
    let pp = PostParams::default();
    for o in objects(ns, p, single_node, host_port) {
        let exists = match &o {
            Object::Service(s) => {
                Api::<Service>::namespaced(client.clone(), ns).get(name_of(&s.metadata)).await.is_ok()
            }
            Object::ConfigMap(c) => {
                Api::<ConfigMap>::namespaced(client.clone(), ns).get(name_of(&c.metadata)).await.is_ok()
            }
            Object::Deployment(d) => {
                Api::<Deployment>::namespaced(client.clone(), ns).get(name_of(&d.metadata)).await.is_ok()
            }
            Object::DaemonSet(d) => {
                Api::<DaemonSet>::namespaced(client.clone(), ns).get(name_of(&d.metadata)).await.is_ok()
            }
        };
        if exists {
            continue;
        }
        let failed = |what: String| move |e: kube::Error| cli(format!("unable to create {what}: {}", api_message(&e)));
        match o {
            Object::Service(s) => {
                let name = name_of(&s.metadata).to_string();
                out.line(&format!("✨ [{cluster}] Deploying {name} service..."));
                Api::<Service>::namespaced(client.clone(), ns)
                    .create(&pp, &s)
                    .await
                    .map_err(failed(format!("service {name}")))?;
            }
            Object::ConfigMap(c) => {
                out.line(&format!("✨ [{cluster}] Deploying DNS test server configmap..."));
                Api::<ConfigMap>::namespaced(client.clone(), ns)
                    .create(&pp, &c)
                    .await
                    .map_err(failed(format!("configmap {DNS_CONFIGMAP}")))?;
            }
            Object::Deployment(d) => {
                let name = name_of(&d.metadata).to_string();
                let label = match name.as_str() {
                    ECHO_SAME => "same-node deployment".to_string(),
                    ECHO_OTHER => "other-node deployment".to_string(),
                    n => format!("{n} deployment"),
                };
                out.line(&format!("✨ [{cluster}] Deploying {label}..."));
                let sa: ServiceAccount =
                    serde_json::from_value(json!({"metadata": {"name": name}})).expect("an account");
                match Api::<ServiceAccount>::namespaced(client.clone(), ns).create(&pp, &sa).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => return Err(failed(format!("service account {name}"))(e)),
                }
                Api::<Deployment>::namespaced(client.clone(), ns)
                    .create(&pp, &d)
                    .await
                    .map_err(failed(format!("deployment {name}")))?;
            }
            Object::DaemonSet(d) => {
                let name = name_of(&d.metadata).to_string();
                // The CLI prints the DaemonSet's name where the cluster's goes, and the other way round.
                out.line(&format!("✨ [{name}] Deploying {cluster} daemonset..."));
                Api::<DaemonSet>::namespaced(client.clone(), ns)
                    .create(&pp, &d)
                    .await
                    .map_err(failed(format!("daemonset {name}")))?;
            }
        }
    }
    if !single_node {
        out.info("Skipping tests that require a node Without Cilium");
    }
    Ok(())
}

fn name_of(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    m.name.as_deref().unwrap_or_default()
}

#[derive(Debug, Clone)]
pub enum Object {
    Service(Service),
    ConfigMap(ConfigMap),
    Deployment(Deployment),
    DaemonSet(DaemonSet),
}

fn affinity(anti: bool) -> serde_json::Value {
    let term = json!([{
        "labelSelector": {"matchExpressions": [{"key": "name", "operator": "In", "values": [CLIENT]}]},
        "topologyKey": "kubernetes.io/hostname"
    }]);
    if anti {
        json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term}})
    } else {
        json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term}})
    }
}

/// The CLI's Deployment shape: labels `name` and `kind` on the object, the selector and the
/// pods; one container named after the Deployment with NET_RAW; its own ServiceAccount.
fn deployment(
    name: &str,
    kind: &str,
    image: &str,
    extra_labels: &[(&str, &str)],
    pod: serde_json::Value,
) -> Deployment {
    let mut labels = json!({"name": name, "kind": kind});
    for (k, v) in extra_labels {
        labels[*k] = json!(v);
    }
    let mut container = json!({
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {"capabilities": {"add": ["NET_RAW"]}}
    });
    let mut spec = json!({"serviceAccountName": name, "containers": []});
    if let Some(c) = pod.get("container").and_then(|c| c.as_object()) {
        for (k, v) in c {
            container[k] = v.clone();
        }
    }
    if let Some(s) = pod.get("spec").and_then(|c| c.as_object()) {
        for (k, v) in s {
            spec[k] = v.clone();
        }
    }
    let mut containers = vec![container];
    if let Some(more) = pod.get("more").and_then(|m| m.as_array()) {
        containers.extend(more.iter().cloned());
    }
    spec["containers"] = json!(containers);
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"name": name, "kind": kind}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"name": name, "kind": kind}},
            "template": {"metadata": {"name": name, "labels": labels}, "spec": spec}
        }
    }))
    .expect("a deployment")
}

fn echo_deployment(name: &str, p: &Params, host_port: bool, label: (&str, &str), anti: bool) -> Deployment {
    let mut port = json!({"name": "http-8080", "containerPort": ECHO_PORT});
    if host_port {
        port["hostPort"] = json!(HOST_PORT);
    }
    deployment(
        name,
        "echo",
        &p.json_mock_image,
        &[label],
        json!({
            "container": {
                "env": [{"name": "PORT", "value": ECHO_PORT.to_string()}, {"name": "NAMED_PORT", "value": "http-8080"}],
                "ports": [port],
                "readinessProbe": {
                    "httpGet": {"path": "/", "port": ECHO_PORT, "scheme": "HTTP"},
                    "timeoutSeconds": 2, "successThreshold": 1, "periodSeconds": 1,
                    "initialDelaySeconds": 1, "failureThreshold": 3
                }
            },
            "spec": {
                "affinity": affinity(anti),
                "volumes": [{"name": "coredns-config-volume", "configMap": {
                    "name": DNS_CONFIGMAP, "items": [{"key": "Corefile", "path": "Corefile"}]}}]
            },
            "more": [{
                "name": DNS_CONTAINER,
                "image": p.dns_test_server_image,
                "imagePullPolicy": "IfNotPresent",
                "args": ["-conf", "/etc/coredns/Corefile"],
                "ports": [{"containerPort": 53, "name": "dns-53"}, {"containerPort": 53, "name": "dns-udp-53", "protocol": "UDP"}],
                "readinessProbe": {
                    "httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"},
                    "timeoutSeconds": 2, "successThreshold": 1, "periodSeconds": 1,
                    "initialDelaySeconds": 1, "failureThreshold": 3
                },
                "volumeMounts": [{"name": "coredns-config-volume", "mountPath": "/etc/coredns", "readOnly": true}]
            }]
        }),
    )
}

fn client_deployment(
    name: &str,
    p: &Params,
    label: Option<(&str, &str)>,
    affinity: Option<serde_json::Value>,
) -> Deployment {
    let mut spec = json!({});
    if let Some(a) = affinity {
        spec["affinity"] = a;
    }
    deployment(
        name,
        "client",
        &p.curl_image,
        label.as_slice(),
        json!({"container": {"command": ["/usr/bin/pause"]}, "spec": spec}),
    )
}

fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kind": "echo"}},
        "spec": {
            "type": "NodePort",
            "ports": [{"name": "http", "port": ECHO_PORT}],
            "selector": {"name": name},
            "ipFamilyPolicy": "PreferDualStack"
        }
    }))
    .expect("a service")
}

fn host_daemonset(name: &str, p: &Params, non_cilium: bool) -> DaemonSet {
    let mut caps = vec!["NET_RAW"];
    let mut spec = json!({"hostNetwork": true});
    if non_cilium {
        caps.push("NET_ADMIN");
        spec["tolerations"] = json!([{"operator": "Exists"}]);
        spec["nodeSelector"] = json!({"cilium.io/no-schedule": "true"});
    }
    spec["containers"] = json!([{
        "name": name,
        "image": p.curl_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/usr/bin/pause"],
        "securityContext": {"capabilities": {"add": caps}}
    }]);
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"name": name, "kind": HOST_NETNS}},
        "spec": {
            "selector": {"matchLabels": {"name": name, "kind": HOST_NETNS}},
            "template": {
                "metadata": {"name": name, "labels": {"name": name, "kind": HOST_NETNS, "other": "host-netns"}},
                "spec": spec
            }
        }
    }))
    .expect("a daemonset")
}

/// The DNS test server's Corefile. The CLI's answers `localhost` with CoreDNS's `local`
/// plugin, which the lab's CoreDNS build does not have; `hosts` with the same entries answers
/// the same queries.
pub const COREFILE: &str =
    ". {\n    hosts {\n        127.0.0.1 localhost\n        ::1 localhost\n    }\n    ready\n    log\n}\n";

/// Every object the CLI creates in the test namespace, in its order.
pub fn objects(ns: &str, p: &Params, single_node: bool, host_port: bool) -> Vec<Object> {
    let _ = ns;
    let mut v = vec![
        Object::Service(service(ECHO_SAME)),
        Object::ConfigMap(
            serde_json::from_value(json!({"metadata": {"name": DNS_CONFIGMAP}, "data": {"Corefile": COREFILE}}))
                .expect("a configmap"),
        ),
        Object::Deployment(echo_deployment(ECHO_SAME, p, host_port, ("other", "echo"), false)),
        Object::Deployment(client_deployment(CLIENT, p, None, None)),
        Object::Deployment(client_deployment(CLIENT2, p, Some(("other", "client")), Some(affinity(false)))),
    ];
    if !single_node {
        v.push(Object::Deployment(client_deployment(
            CLIENT3,
            p,
            Some(("other", "client-other-node")),
            Some(affinity(true)),
        )));
        v.push(Object::Service(service(ECHO_OTHER)));
        v.push(Object::Deployment(echo_deployment(ECHO_OTHER, p, host_port, ("first", "echo"), true)));
        v.push(Object::DaemonSet(host_daemonset(HOST_NETNS, p, false)));
        v.push(Object::DaemonSet(host_daemonset(HOST_NETNS_NON_CILIUM, p, true)));
    }
    v
}

/// The cluster name of the kubeconfig's context (`kind-kind`), as the CLI prints it.
pub fn cluster_name(kubeconfig: Option<&str>, context: Option<&str>) -> String {
    let kc = match kubeconfig {
        Some(path) => kube::config::Kubeconfig::read_from(path),
        None => kube::config::Kubeconfig::read(),
    };
    let Ok(kc) = kc else { return String::new() };
    let ctx = context.map(str::to_string).or(kc.current_context.clone()).unwrap_or_default();
    kc.contexts
        .iter()
        .find(|c| c.name == ctx)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .unwrap_or(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(name: &str, ip: &str, node: &str, host_ip: &str) -> Source {
        Source {
            namespace: "cilium-test-1".into(),
            name: name.into(),
            container: name.split('-').next().unwrap().into(),
            ip: ip.into(),
            node: node.into(),
            host_ip: host_ip.into(),
        }
    }

    fn observed() -> Observed {
        Observed {
            clients: vec![
                src("client-a", "10.244.1.10", "kind-worker", "172.18.0.3"),
                src("client2-b", "10.244.1.11", "kind-worker", "172.18.0.3"),
                src("client3-c", "10.244.2.12", "kind-worker2", "172.18.0.4"),
            ],
            echoes: vec![
                src("echo-other-node-d", "10.244.2.20", "kind-worker2", "172.18.0.4"),
                src("echo-same-node-e", "10.244.1.21", "kind-worker", "172.18.0.3"),
            ],
            services: vec![
                ("cilium-test-1".into(), "echo-other-node".into(), "10.96.0.50".into(), 8080, 31001),
                ("cilium-test-1".into(), "echo-same-node".into(), "10.96.0.51".into(), 8080, 31002),
            ],
            nodes: vec![
                ("kind-control-plane".into(), "172.18.0.2".into()),
                ("kind-worker".into(), "172.18.0.3".into()),
                ("kind-worker2".into(), "172.18.0.4".into()),
            ],
            host_pods: vec![
                src("host-netns-x", "172.18.0.2", "kind-control-plane", "172.18.0.2"),
                src("host-netns-y", "172.18.0.3", "kind-worker", "172.18.0.3"),
                src("host-netns-z", "172.18.0.4", "kind-worker2", "172.18.0.4"),
            ],
            host_port: false,
        }
    }

    fn flags(s: &[&str]) -> Vec<(String, Option<String>)> {
        s.iter()
            .map(|f| match f.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (f.to_string(), None),
            })
            .collect()
    }

    #[test]
    fn plans_the_no_policies_tests_from_the_observed_objects() {
        let p = Params::default();
        let tests = plan(&p, &observed());
        let names: Vec<&str> = tests.iter().map(|t| t.name).collect();
        assert_eq!(names, ["no-policies", "no-policies-extra"]);
        let count = |t: usize, s: &str| tests[t].scenarios.iter().find(|x| x.name == s).unwrap().actions.len();
        assert_eq!(count(0, "pod-to-pod"), 6);
        assert_eq!(count(0, "client-to-client"), 6);
        assert_eq!(count(0, "pod-to-service"), 6);
        assert_eq!(count(0, "pod-to-world"), 9);
        assert_eq!(count(0, "pod-to-host"), 9);
        assert_eq!(count(0, "host-to-pod"), 6);
        assert_eq!(count(0, "pod-to-cidr"), 6);
        // Remote: every other node; local: the client's own.
        assert_eq!(count(1, "pod-to-remote-nodeport"), 12);
        assert_eq!(count(1, "pod-to-local-nodeport"), 6);
        let hostport = tests[0].scenarios.iter().find(|s| s.name == "pod-to-hostport").unwrap();
        assert_eq!(hostport.unmet.as_deref(), Some("Feature host-port is disabled"));

        let a = &tests[0].scenarios[0].actions[0];
        assert_eq!(
            a.describe("no-policies/pod-to-pod"),
            "no-policies/pod-to-pod:curl-ipv4-0: cilium-test-1/client-a (10.244.1.10) -> cilium-test-1/echo-other-node-d (10.244.2.20:8080)"
        );
        assert_eq!(
            a.command.join(" "),
            "curl --silent --fail --show-error --connect-timeout 2 --max-time 10 -4 -w %{local_ip}:%{local_port} -> %{remote_ip}:%{remote_port} = %{response_code}\n --output /dev/null http://10.244.2.20:8080"
        );
        let world = &tests[0].scenarios.iter().find(|s| s.name == "pod-to-world").unwrap().actions[1];
        assert_eq!(world.name, "https-to-one.one.one.one.-ipv4-0");
        assert!(world.command.windows(2).any(|w| w == ["-H", "Host: one.one.one.one"]), "{:?}", world.command);
        assert!(world.command.contains(&"--retry-all-errors".to_string()));
        let ping = &tests[0].scenarios.iter().find(|s| s.name == "pod-to-host").unwrap().actions[0];
        assert_eq!(ping.command, ["ping", "-c", "1", "-W", "2", "172.18.0.2"]);
        let remote = &tests[1].scenarios[0].actions[0];
        assert_eq!(remote.command.last().unwrap(), "http://172.18.0.2:31001");
        assert_eq!(
            remote.describe("no-policies-extra/pod-to-remote-nodeport"),
            "no-policies-extra/pod-to-remote-nodeport:curl-0: cilium-test-1/client-a (10.244.1.10) -> cilium-test-1/echo-other-node (echo-other-node.cilium-test-1:8080)"
        );
    }

    #[test]
    fn test_filters_are_regexes_with_negation() {
        let p = Params::parse(&flags(&["--test=no-policies/pod-to-pod,!extra", "--test-namespace=mine"])).unwrap();
        assert_eq!(p.namespace(), "mine-1");
        assert!(p.enabled("no-policies/pod-to-pod"));
        assert!(!p.enabled("no-policies/pod-to-service"));
        assert!(!p.enabled("no-policies-extra/pod-to-local-nodeport"));
        let p = Params::parse(&flags(&["--test=!/pod-to-cidr"])).unwrap();
        assert!(p.enabled("no-policies") && !p.enabled("no-policies/pod-to-cidr"));
        assert!(Params::parse(&flags(&["--test=("])).unwrap_err().contains("test filter"));
        let e = Params::parse(&flags(&["--perf"])).unwrap_err();
        assert!(e.contains("--perf") && e.contains("not played"), "{e}");
        let p = Params::parse(&flags(&["--connect-timeout=5s", "--request-timeout=30s", "--retry=0"])).unwrap();
        let cmd = curl(&p, "https://one.one.one.one.", true, &retry_all(&p));
        assert!(cmd.join(" ").contains("--connect-timeout 5 --max-time 30 -4 -H Host: one.one.one.one -w"), "{cmd:?}");
        assert!(!cmd.contains(&"--retry".to_string()));
    }

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration_string(Duration::from_secs(20)), "20s");
        assert_eq!(go_duration_string(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration_string(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration_string(Duration::from_secs(3600)), "1h0m0s");
        let p = Params::parse(&flags(&["--post-test-sleep=20s"])).unwrap();
        assert_eq!(p.post_test_sleep, Duration::from_secs(20));
    }

    #[test]
    fn outcomes_are_judged_as_the_cli_does() {
        let cmd = vec!["curl".to_string(), "http://x".to_string()];
        let o = |code, out: &str| Outcome { stdout: out.into(), stderr: String::new(), code };
        assert_eq!(o(Ok(0), "1.2.3.4:5 -> 6.7.8.9:80 = 200\n").failure(&cmd), None);
        assert_eq!(
            o(Ok(28), "").failure(&cmd).unwrap(),
            "command \"curl http://x\" failed: command terminated with exit code 28"
        );
        assert!(o(Ok(0), "").failure(&cmd).unwrap().starts_with("inconclusive results"));
        assert!(o(Err("no such pod".into()), "").failure(&cmd).unwrap().ends_with("failed: no such pod"));
    }

    #[test]
    fn the_report_is_the_clis() {
        let ok = Report { tests: 2, skipped_tests: 0, skipped_scenarios: 1, actions: 66, failed: vec![] };
        let (text, err) = ok.render("cilium-test-1");
        assert_eq!(
            text,
            "\n✅ [cilium-test-1] All 2 tests (66 actions) successful, 0 tests skipped, 1 scenarios skipped.\n"
        );
        assert_eq!(err, None);
        let bad = Report {
            failed: vec![(
                "no-policies".into(),
                vec![("a: x -> y".into(), "boom".into()), ("b: x -> z".into(), "bang".into())],
            )],
            ..ok
        };
        let (text, err) = bad.render("cilium-test-1");
        assert_eq!(
            text,
            "\n📋 Test Report [cilium-test-1]\n❌ 1/2 tests failed (2/66 actions), 0 tests skipped, 1 scenarios skipped:\nTest [no-policies]:\n  🟥 a: x -> y: boom\n  🟥 b: x -> z: bang\n"
        );
        assert_eq!(err.as_deref(), Some("[cilium-test-1] 1 tests failed"));
    }

    #[test]
    fn objects_have_the_clis_names_and_shapes() {
        let p = Params::default();
        let objs = objects("cilium-test-1", &p, false, true);
        let names: Vec<String> = objs
            .iter()
            .map(|o| match o {
                Object::Service(s) => format!("svc/{}", name_of(&s.metadata)),
                Object::ConfigMap(c) => format!("cm/{}", name_of(&c.metadata)),
                Object::Deployment(d) => format!("deploy/{}", name_of(&d.metadata)),
                Object::DaemonSet(d) => format!("ds/{}", name_of(&d.metadata)),
            })
            .collect();
        assert_eq!(
            names,
            [
                "svc/echo-same-node",
                "cm/coredns-configmap",
                "deploy/echo-same-node",
                "deploy/client",
                "deploy/client2",
                "deploy/client3",
                "svc/echo-other-node",
                "deploy/echo-other-node",
                "ds/host-netns",
                "ds/host-netns-non-cilium"
            ]
        );
        let Object::Deployment(echo) = &objs[2] else { panic!() };
        let v = serde_json::to_value(echo).unwrap();
        assert_eq!(
            v["spec"]["template"]["metadata"]["labels"],
            json!({"name": "echo-same-node", "kind": "echo", "other": "echo"})
        );
        let containers = v["spec"]["template"]["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers[0]["name"], "echo-same-node");
        assert_eq!(containers[0]["ports"][0], json!({"name": "http-8080", "containerPort": 8080, "hostPort": 4000}));
        assert_eq!(containers[1]["name"], "dns-test-server");
        assert_eq!(
            v["spec"]["template"]["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                [0]["topologyKey"],
            "kubernetes.io/hostname"
        );
        let Object::Deployment(c3) = &objs[5] else { panic!() };
        let v = serde_json::to_value(c3).unwrap();
        assert!(v["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"].is_object());
        assert_eq!(v["spec"]["template"]["spec"]["containers"][0]["command"], json!(["/usr/bin/pause"]));
        assert_eq!(v["spec"]["template"]["spec"]["serviceAccountName"], "client3");
        let single = objects("cilium-test-1", &p, true, false);
        assert_eq!(single.len(), 5);
    }
}
