//! The suite's own harness (libtest-mimic): every test is registered with what it needs from the
//! machine, checked when the test is about to run. A test whose needs are unmet is reported as
//! ignored with the reason (`ignored (needs root)`), never as passed; `--include-ignored` runs it
//! anyway. As root with the packages of `.ci/install`, everything runs except the real-cluster
//! kind tests, which need Docker and kind (see `Need::DockerKind`).
//!
//! Registering: each test module lists its tests once, after its imports:
//!
//! ```text
//! crate::tests![plain_test, lab_test(Lab), packet_test(Bpf, TwoCpus), async_test];
//! ```
//!
//! A test is a `fn()` or an `async fn()` (run on a current-thread tokio runtime) that panics on
//! failure. A function left out of the list is dead code (an error under clippy's
//! `-D warnings`), and `#[test]` in the suite is caught by `harness::no_plain_test_attributes`.

use std::future::Future;
use std::sync::{OnceLock, RwLock};

use libtest_mimic::{Arguments, Completion, Trial};

/// What a test needs from the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Root, and the tools the lab drives (`ip`, `nft`, …).
    Lab,
    /// Root: BPF programs, XDP, network namespaces.
    Bpf,
    /// The `mdbook` binary.
    Mdbook,
    /// A Chromium browser.
    Chromium,
    /// `kind` on PATH and an answering Docker engine (a real cluster is created).
    DockerKind,
    /// A machine without kind or without Docker (the pre-flight error a user meets there).
    NoDockerKind,
    /// At least two CPUs.
    TwoCpus,
    /// The upstream Kubernetes binaries `k8s/build.sh` builds (etcd, kube-apiserver, …, helm).
    K8s,
    /// The `actionlint` binary (`.ci/install` builds it where Go is available).
    Actionlint,
    /// No other test of this suite at the same time: the test compares the machine's state
    /// before and after, sweeps objects that other tests own (`tutor lab gc`), or adds and
    /// removes named network namespaces (`/run/netns`), which `ip` inside a lab walks to name a
    /// veth's peer (a namespace vanishing meanwhile prints "Peer netns reference is invalid").
    Alone,
    /// A writable cgroup v2 hierarchy (root; the machine's mount or a private one tutor mounts).
    Cgroup2,
    /// `tcpdump` (captures on a lab's bridge).
    Tcpdump,
    /// A kernel that makes Geneve devices (`CONFIG_GENEVE`, built in or as a module), tried in a
    /// network namespace of its own.
    Geneve,
}

impl Need {
    /// Why this need is unmet here, if it is (evaluated once per process).
    fn unmet(self) -> Option<String> {
        static CACHE: [OnceLock<Option<String>>; 13] = [const { OnceLock::new() }; 13];
        CACHE[self as usize]
            .get_or_init(|| match self {
                Need::Lab => crate::lab::support::skip_reason(),
                Need::Bpf => (!nix::unistd::Uid::effective().is_root()).then(|| "needs root".to_string()),
                Need::Mdbook => crate::book::fixture::mdbook().err().map(|e| format!("needs mdbook: {e}")),
                Need::Chromium => crate::book::browser::chromium().err().map(|e| format!("needs {e}")),
                Need::DockerKind => {
                    (!docker_and_kind()).then(|| "needs docker + kind (a real kind cluster)".to_string())
                }
                Need::NoDockerKind => docker_and_kind()
                    .then(|| "kind and a Docker engine exist here; kind::cluster covers this machine".to_string()),
                Need::TwoCpus => (std::thread::available_parallelism().map_or(1, |n| n.get()) < 2)
                    .then(|| "needs two CPUs".to_string()),
                Need::K8s => {
                    use tutor::backend::lab::upstream::{Binary, check};
                    check(&Binary::ALL).err().map(|e| format!("needs the Kubernetes binaries: {e}"))
                }
                Need::Alone => None,
                Need::Cgroup2 => tutor::backend::cgroup::base().err().map(|why| format!("needs cgroup v2: {why}")),
                Need::Tcpdump => (!std::process::Command::new("sh")
                    .args(["-c", "command -v tcpdump"])
                    .output()
                    .is_ok_and(|o| o.status.success()))
                .then(|| "needs tcpdump".to_string()),
                Need::Geneve => (!std::process::Command::new("unshare")
                    .args(["-n", "ip", "link", "add", "probe", "type", "geneve", "external"])
                    .output()
                    .is_ok_and(|o| o.status.success()))
                .then(|| "needs a kernel with Geneve devices (CONFIG_GENEVE)".to_string()),
                Need::Actionlint => crate::project::workflows::actionlint()
                    .is_none()
                    .then(|| "needs actionlint (.ci/install builds it where Go is available)".to_string()),
            })
            .clone()
    }
}

/// Whether `kind` is on PATH (or built by `k8s/kind-node.sh`) and a Docker engine answers
/// (started first where `TUTOR_START_DOCKERD` allows it, as the backend would).
fn docker_and_kind() -> bool {
    use tutor::backend::kind::own_build;
    use tutor::backend::kind::preflight::{self, Probe};
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let env = Probe::from_env();
        if let Err(e) = own_build::ensure_dockerd(env.docker_host.as_deref(), env.path.as_deref()) {
            eprintln!("tutor could not start dockerd: {e}");
        }
        preflight::find_in_path("kind", env.path.as_deref()).is_some()
            && crate::prelude::block_on(preflight::connect_docker(env.docker_host.as_deref())).is_ok()
    })
}

/// A registered test.
pub struct Test {
    name: String,
    run: Box<dyn FnOnce() + Send>,
    needs: &'static [Need],
}

/// A test function: `fn()` or `async fn()`. (`M` only keeps the two impls apart.)
pub trait TestFn<M> {
    fn into_runner(self) -> Box<dyn FnOnce() + Send>;
}

pub struct Plain;
pub struct Async;

impl<F: FnOnce() + Send + 'static> TestFn<Plain> for F {
    fn into_runner(self) -> Box<dyn FnOnce() + Send> {
        Box::new(self)
    }
}

impl<F, Fut> TestFn<Async> for F
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    fn into_runner(self) -> Box<dyn FnOnce() + Send> {
        Box::new(move || crate::prelude::block_on(self()))
    }
}

impl Test {
    /// `module` is the test's `module_path!()`; the crate's own name is left out of test names
    /// (`lab::gc::…`), so `cargo test lab::` selects an area.
    pub fn new<M>(module: &str, name: &str, f: impl TestFn<M>, needs: &'static [Need]) -> Test {
        let module = module.split_once("::").map_or("", |(_, rest)| rest);
        Test { name: format!("{module}::{name}"), run: f.into_runner(), needs }
    }
}

/// `crate::tests![name, name(Need, …), …]`: the module's `tests()`, one `Test` per function.
#[macro_export]
macro_rules! tests {
    ($($name:ident $(($($need:ident),+ $(,)?))?),* $(,)?) => {
        pub(crate) fn tests() -> Vec<$crate::harness::Test> {
            vec![$($crate::harness::Test::new(
                module_path!(),
                stringify!($name),
                $name,
                &[$($($crate::harness::Need::$need),+)?],
            )),*]
        }
    };
}

/// Tests marked `Alone` take this for writing, all others for reading.
static ALONE: RwLock<()> = RwLock::new(());

pub fn main(mut tests: Vec<Test>) -> std::process::ExitCode {
    let args = Arguments::from_args();
    let forced = args.ignored || args.include_ignored;
    tests.sort_by(|a, b| a.name.cmp(&b.name));
    let trials = tests
        .into_iter()
        .map(|t| {
            let Test { name, run, needs } = t;
            Trial::ignorable_test(name, move || {
                let unmet: Vec<String> = needs.iter().filter_map(|n| n.unmet()).collect();
                if !unmet.is_empty() && !forced {
                    return Ok(Completion::ignored_with(unmet.join(", ")));
                }
                let _turn = if needs.contains(&Need::Alone) {
                    Turn::Alone(ALONE.write().unwrap_or_else(|e| e.into_inner()))
                } else {
                    Turn::Shared(ALONE.read().unwrap_or_else(|e| e.into_inner()))
                };
                run();
                Ok(Completion::Completed)
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

#[allow(dead_code)] // held for its drop
enum Turn<'a> {
    Alone(std::sync::RwLockWriteGuard<'a, ()>),
    Shared(std::sync::RwLockReadGuard<'a, ()>),
}

crate::tests![no_plain_test_attributes];

/// `#[test]` does nothing in this harness (the suite is built without `--test`): a test written
/// that way would silently never run.
fn no_plain_test_attributes() {
    fn walk(dir: &std::path::Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, line) in text.lines().enumerate() {
                    let line = line.trim();
                    if line.starts_with("#[test]") || line.starts_with("#[tokio::test") {
                        found.push(format!("{}:{}: {line}", path.display(), i + 1));
                    }
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testsuite"), &mut found);
    assert!(found.is_empty(), "register these with crate::tests![…] instead:\n{}", found.join("\n"));
}
