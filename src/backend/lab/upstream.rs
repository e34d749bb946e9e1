//! The upstream Kubernetes binaries the lab runs — etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler, kubectl and helm — built from their Go modules by `k8s/build.sh` (see
//! docs/architecture.md, "Upstream binaries"): where they are, which release they are, and the
//! one pre-flight error when they are missing.
//!
//! The pins are the module versions in `k8s/go.mod` and `k8s/helm/go.mod`, compiled into tutor so
//! that the binary and the build script agree on the directory:
//! `${TUTOR_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tutor/k8s}/<kubernetes version>/bin/`.
//! `TUTOR_K8S_BIN` names another directory holding the same binaries.

use std::path::PathBuf;

const K8S_GO_MOD: &str = include_str!("../../../k8s/go.mod");
const HELM_GO_MOD: &str = include_str!("../../../k8s/helm/go.mod");
const COREDNS_GO_MOD: &str = include_str!("../../../k8s/coredns/go.mod");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    Etcd,
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    Kubectl,
    Helm,
    /// The lab nodes' kubelet API server (`k8s/cmd/tutor-kubelet`).
    TutorKubelet,
    /// The program of the `registry.k8s.io/e2e-test-images/agnhost` image, which the lab's
    /// pods play (`k8s.io/kubernetes/test/images/agnhost`).
    Agnhost,
    /// kube-proxy (`k8s.io/kubernetes/cmd/kube-proxy`), the program of the
    /// `registry.k8s.io/kube-proxy` image of the cluster's kube-proxy DaemonSet.
    KubeProxy,
    /// CoreDNS (`k8s/coredns`), the program of the `registry.k8s.io/coredns/coredns` image of
    /// the cluster DNS Deployment.
    Coredns,
    /// http-echo (`github.com/hashicorp/http-echo`), the program of the `hashicorp/http-echo`
    /// image.
    HttpEcho,
}

impl Binary {
    pub const ALL: [Binary; 11] = [
        Binary::Etcd,
        Binary::KubeApiserver,
        Binary::KubeControllerManager,
        Binary::KubeScheduler,
        Binary::Kubectl,
        Binary::Helm,
        Binary::TutorKubelet,
        Binary::Agnhost,
        Binary::KubeProxy,
        Binary::Coredns,
        Binary::HttpEcho,
    ];

    pub fn file_name(self) -> &'static str {
        match self {
            Binary::Etcd => "etcd",
            Binary::KubeApiserver => "kube-apiserver",
            Binary::KubeControllerManager => "kube-controller-manager",
            Binary::KubeScheduler => "kube-scheduler",
            Binary::Kubectl => "kubectl",
            Binary::Helm => "helm",
            Binary::TutorKubelet => "tutor-kubelet",
            Binary::Agnhost => "agnhost",
            Binary::KubeProxy => "kube-proxy",
            Binary::Coredns => "coredns",
            Binary::HttpEcho => "http-echo",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error(
        "the lab's Kubernetes {version} binaries are not built ({missing} missing in {dir}): run `bash k8s/build.sh` \
         from tutor's source tree (it needs Go {go} or newer; `.ci/install` runs it)"
    )]
    Missing { version: String, go: String, dir: String, missing: String },
}

/// The version a go.mod requires of `module` (block or single-line `require`).
fn required(go_mod: &str, module: &str) -> Option<String> {
    go_mod.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        let first = words.next()?;
        let (m, v) = if first == "require" { (words.next()?, words.next()?) } else { (first, words.next()?) };
        (m == module && v.starts_with('v')).then(|| v.to_string())
    })
}

/// The pinned Kubernetes release (`v1.33.1`): the VERSION the lab's nodes and kubectl print.
pub fn kubernetes_version() -> String {
    required(K8S_GO_MOD, "k8s.io/kubernetes").expect("k8s/go.mod requires k8s.io/kubernetes")
}

/// The etcd release the pinned Kubernetes uses (`v3.5.21`), from k8s/go.mod.
pub fn etcd_version() -> String {
    required(K8S_GO_MOD, "go.etcd.io/etcd/server/v3").expect("k8s/go.mod requires go.etcd.io/etcd/server/v3")
}

/// The pinned helm release.
pub fn helm_version() -> String {
    required(HELM_GO_MOD, "helm.sh/helm/v3").expect("k8s/helm/go.mod requires helm.sh/helm/v3")
}

/// The pinned CoreDNS release (the cluster DNS image's tag).
pub fn coredns_version() -> String {
    required(COREDNS_GO_MOD, "github.com/coredns/coredns")
        .expect("k8s/coredns/go.mod requires github.com/coredns/coredns")
}

/// The Go release the modules need (their `go` directive).
pub fn go_version() -> String {
    [K8S_GO_MOD, HELM_GO_MOD, COREDNS_GO_MOD]
        .iter()
        .filter_map(|m| m.lines().find_map(|l| l.strip_prefix("go ")).map(str::trim))
        .max_by_key(|v| v.split('.').map(|n| n.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>())
        .unwrap_or("1.24")
        .to_string()
}

/// The directory `k8s/build.sh` builds into (or `TUTOR_K8S_BIN`).
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TUTOR_K8S_BIN") {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("TUTOR_K8S_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from("/root/.cache"));
        base.join("tutor").join("k8s")
    });
    cache.join(kubernetes_version()).join("bin")
}

pub fn path(b: Binary) -> PathBuf {
    bin_dir().join(b.file_name())
}

fn executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Pre-flight: every binary in `needed` is built. Returns their directory.
pub fn check(needed: &[Binary]) -> Result<PathBuf, UpstreamError> {
    check_in(bin_dir(), needed)
}

fn check_in(dir: PathBuf, needed: &[Binary]) -> Result<PathBuf, UpstreamError> {
    let missing: Vec<&str> =
        needed.iter().filter(|b| !executable(&dir.join(b.file_name()))).map(|b| b.file_name()).collect();
    if missing.is_empty() {
        return Ok(dir);
    }
    Err(UpstreamError::Missing {
        version: kubernetes_version(),
        go: go_version(),
        dir: dir.display().to_string(),
        missing: missing.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_come_from_the_go_modules() {
        let k = kubernetes_version();
        assert!(k.starts_with("v1.") && k.split('.').count() == 3, "{k}");
        assert!(helm_version().starts_with("v3."), "{}", helm_version());
        assert!(go_version().starts_with("1."), "{}", go_version());
    }

    #[test]
    fn required_reads_both_require_forms() {
        assert_eq!(required("require k8s.io/kubernetes v1.2.3\n", "k8s.io/kubernetes").as_deref(), Some("v1.2.3"));
        let block = "require (\n\tfoo v0.1.0\n\tk8s.io/kubernetes v1.33.1 // indirect\n)\n";
        assert_eq!(required(block, "k8s.io/kubernetes").as_deref(), Some("v1.33.1"));
        // A replace line names the module too, but with `=>` second.
        assert_eq!(required("\tk8s.io/api => k8s.io/api v0.33.1\n", "k8s.io/api"), None);
        assert_eq!(required(block, "k8s.io/api"), None);
    }

    #[test]
    fn missing_binaries_are_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        // Not executable: as good as missing.
        std::fs::write(dir.path().join("etcd"), "").unwrap();
        let err = check_in(dir.path().to_path_buf(), &[Binary::Etcd, Binary::Kubectl]).unwrap_err().to_string();
        assert!(err.contains("etcd, kubectl missing"), "{err}");
        assert!(err.contains("bash k8s/build.sh") && err.contains(&go_version()), "{err}");
        use std::os::unix::fs::PermissionsExt;
        for b in Binary::ALL {
            let p = dir.path().join(b.file_name());
            std::fs::write(&p, "").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert_eq!(check_in(dir.path().to_path_buf(), &Binary::ALL).unwrap(), dir.path());
    }
}
