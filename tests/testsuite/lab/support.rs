//! Shared helpers of the lab integration tests: a lab that tears itself down when dropped,
//! and commands run inside it through the real `tutor lab` CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const TUTOR: &str = env!("CARGO_BIN_EXE_tutor");

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lab")
}

/// Why the lab tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("needs root".into());
    }
    for tool in ["ip", "nft", "nsenter", "iptables-restore", "curl"] {
        if Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            return Some(format!("needs {tool}"));
        }
    }
    None
}

pub struct Out {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Out {
    pub fn ok(self) -> String {
        assert_eq!(self.code, 0, "exit {}\nstdout:\n{}\nstderr:\n{}", self.code, self.stdout, self.stderr);
        self.stdout
    }
}

pub fn tutor(args: &[&str], cwd: &Path) -> Out {
    output(Command::new(TUTOR).args(args).current_dir(cwd))
}

/// `tutor ARGS` in the fixtures directory, labs running the real Kubernetes control plane
/// (the default; said explicitly so that a `TUTOR_LAB_K8S` of the caller's changes nothing).
pub fn tutor_upstream(args: &[&str]) -> Out {
    output(Command::new(TUTOR).args(args).current_dir(fixtures()).env("TUTOR_LAB_K8S", "upstream"))
}

/// Run `cmd` to its end, its output as text.
pub fn output(cmd: &mut Command) -> Out {
    let o = cmd.output().expect("run tutor");
    Out {
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        code: o.status.code().unwrap_or(-1),
    }
}

/// `tutor run NAME` on a fixture tutorial (lab backend, run record in a temporary file); asserts
/// it passed and returns stdout and stderr together.
pub fn run_fixture_tutorial(name: &str) -> String {
    let record = tempfile::NamedTempFile::new().unwrap();
    let record = record.path().to_str().expect("UTF-8 temp path");
    let o = tutor(&["run", name, "--record", record], &fixtures());
    let out = format!("{}{}", o.stdout, o.stderr);
    assert_eq!(o.code, 0, "{out}");
    out
}

/// The article's Cilium and demo app, once the cluster is up.
const ARTICLE: &str = "helm repo add cilium https://helm.cilium.io/ >/dev/null && \
    helm install -n kube-system cilium cilium/cilium -f cilium-medium.yaml >/dev/null && \
    kubectl apply -f http-sw-app.yaml";

pub struct Lab {
    pub name: String,
    pub cwd: PathBuf,
}

impl Lab {
    /// `tutor lab up [--config F]` with a name unique to this test process, on the real control
    /// plane (the lab's default).
    pub fn up(tag: &str, config: Option<&str>) -> Lab {
        Lab::up_with(tag, config, "upstream")
    }

    /// The same on the deprecated emulation (`TUTOR_LAB_K8S=emulated`), for the tests of the
    /// emulation itself (docs/architecture.md, "The emulated control plane").
    pub fn up_emulated(tag: &str, config: Option<&str>) -> Lab {
        Lab::up_with(tag, config, "emulated")
    }

    fn up_with(tag: &str, config: Option<&str>, kubernetes: &str) -> Lab {
        let name = format!("t{}-{tag}", std::process::id());
        let cwd = fixtures();
        let mut args = vec!["lab", "up", "--name", &name];
        if let Some(c) = config {
            args.extend(["--config", c]);
        }
        output(Command::new(TUTOR).args(&args).current_dir(&cwd).env("TUTOR_LAB_K8S", kubernetes)).ok();
        Lab { name, cwd }
    }

    /// `bash -c script` on `target` (host, a node, pod/NAME), in the fixtures directory.
    pub fn sh(&self, target: &str, script: &str) -> Out {
        tutor(&["lab", "exec", &self.name, target, "--", "bash", "-c", script], &self.cwd)
    }

    pub fn pid(&self) -> i32 {
        let info: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(format!("/run/tutor/labs/{}/lab.json", self.name)).unwrap())
                .unwrap();
        info["pid"].as_i64().unwrap() as i32
    }

    pub fn netns_inodes(&self) -> Vec<u64> {
        let info: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(format!("/run/tutor/labs/{}/lab.json", self.name)).unwrap())
                .unwrap();
        info["netns_inodes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect()
    }

    /// The inode of pod `pod`'s network namespace (the node agents own the pods of the real
    /// control plane, so `lab.json` does not list them).
    pub fn pod_netns(&self, pod: &str) -> u64 {
        let link = self.sh(&format!("pod/{pod}"), "readlink /proc/self/ns/net").ok();
        link.trim().trim_start_matches("net:[").trim_end_matches(']').parse().unwrap_or_else(|_| panic!("{link}"))
    }

    /// The eth0 address of the node `pod` (default namespace) runs on.
    pub fn node_ip_of(&self, pod: &str) -> String {
        let node = self.sh("host", &format!("kubectl get pod {pod} -o jsonpath='{{.spec.nodeName}}'")).ok();
        self.sh("host", &format!("kubectl get node {node} -o jsonpath='{{.status.addresses[0].address}}'")).ok()
    }

    /// Cluster with Cilium and the http-sw-app pods, as the article sets it up, on the real
    /// control plane: returns once every pod is Ready and cluster DNS answers (CoreDNS starts
    /// only once Cilium makes the nodes ready; before it is Available the kube-dns ClusterIP has
    /// no backend and a lookup fails at once, curl's exit 6, as a CI run saw).
    pub fn article(tag: &str) -> Lab {
        let lab = Lab::up(tag, Some("kind-config.yaml"));
        lab.sh("host", ARTICLE).ok();
        lab.sh(
            "host",
            "kubectl rollout status deployment/deathstar --timeout=300s >/dev/null && \
             kubectl wait --for=condition=Ready pods --all --timeout=300s >/dev/null && \
             kubectl -n kube-system wait --for=condition=Available deployment/coredns --timeout=300s >/dev/null",
        )
        .ok();
        lab
    }

    /// The same on the deprecated emulation (its pods run as soon as they are applied).
    pub fn article_emulated(tag: &str) -> Lab {
        let lab = Lab::up_emulated(tag, Some("kind-config.yaml"));
        lab.sh("host", ARTICLE).ok();
        lab
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = tutor(&["lab", "down", &self.name], &self.cwd);
    }
}

/// Whether any process still has one of these network namespaces.
/// The processes (pid and name) in one of these network namespaces.
pub fn netns_holders(inodes: &[u64]) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::metadata(e.path().join("ns/net")).map(|m| inodes.contains(&m.ino())).unwrap_or(false))
        .map(|e| {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            format!("{} {}", e.file_name().to_string_lossy(), comm.trim())
        })
        .collect()
}

pub fn netns_in_use(inodes: &[u64]) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .any(|e| std::fs::metadata(e.path().join("ns/net")).map(|m| inodes.contains(&m.ino())).unwrap_or(false))
}
