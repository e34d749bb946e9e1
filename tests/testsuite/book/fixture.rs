//! A small book shaped like the real one (book.toml, tutorials/, snapshots/) with a chapter
//! modelled on the native-routing tutorial, and a run record written the way `tutor run`
//! writes it (plain JSON, so the test pins the documented shape, not Rust types).

use std::path::{Path, PathBuf};
use std::process::Command;

pub const CHAPTER: &str = r#"---
title: Cilium native routing in kind
redact:
  POD: 'cilium-[a-z0-9]{5}'
---
# Cilium native routing in kind

A kind cluster without its default CNI and without kube-proxy, then Cilium in native routing mode.

## Create the cluster

```yaml {file=kind-config.yaml}
kind: Cluster
nodes: [{role: control-plane}, {role: worker}]
networking:
  disableDefaultCNI: true
  kubeProxyMode: none
```

```sh {id=create timeout=5m}
kind create cluster --config kind-config.yaml
```

```sh {backend=lab id=lab-plumbing}
LAB_ONLY_PLUMBING=1 true
```

## Install Cilium

```console {retry=60s id=cilium-pods}
$ kubectl -n kube-system get pods -l k8s-app=cilium
NAME           READY   STATUS    RESTARTS   AGE
[POD]   1/1     Running   0          [..]
[POD]   1/1     Running   0          [..]
```

## Node routes

```console {on=kind-worker id=worker-routes}
$ ip route
default via 172.18.0.1 dev eth0
10.244.0.0/24 via 172.18.0.2 dev eth0 proto kernel
...
```

## DNS from a pod

```sh {id=dns}
kubectl exec dnsutils -- nslookup kubernetes.io
```

## On a real kind cluster only

```sh {backend=kind id=docker-ps}
docker ps --format 'table {{ "{{" }}.Names{{ "}}" }}'
```
"#;

pub struct Book {
    dir: tempfile::TempDir,
}

impl Book {
    /// The book, with or without a run record in the default place.
    pub fn new(with_record: bool) -> Book {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write(
            "book.toml",
            "[book]\ntitle = \"Fixture book\"\nsrc = \"tutorials\"\n[build]\ncreate-missing = false\n\
             [preprocessor.tutor]\ncommand = \"tutor book preprocess\"\nhide-backends = [\"lab\"]\n",
        );
        write(
            "tutorials/SUMMARY.md",
            "# Summary\n\n[Introduction](README.md)\n\n- [Native routing](native-routing.md)\n",
        );
        write("tutorials/README.md", "# Fixture book\n\nTutorials, verified.\n");
        write("tutorials/native-routing.md", CHAPTER);
        write(
            "snapshots/native-routing/create.snap",
            "---\ntutorial: tutorials/native-routing.md\nid: create\ncommand: kind create cluster --config kind-config.yaml\n---\n\
             Creating cluster \"kind\" ...\n ✓ Ensuring node image (kindest/node:v1.31.0) [..]\n ✓ Preparing nodes\nSet kubectl context to \"kind-kind\"\n",
        );
        write(
            "snapshots/native-routing/dns.snap",
            "---\ntutorial: tutorials/native-routing.md\nid: dns\ncommand: kubectl exec dnsutils -- nslookup kubernetes.io\n---\n\
             Server:\t\t10.96.0.10\nName:\tkubernetes.io\nAddress: [..]\n",
        );
        if with_record {
            write("target/tutor/last-run.json", &record().to_string());
        }
        Book { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Add a file to the book (e.g. a script for the browser check).
    pub fn add(&self, rel: &str, text: &str) {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn append_config(&self, text: &str) {
        let p = self.root().join("book.toml");
        let mut toml = std::fs::read_to_string(&p).unwrap();
        toml.push_str(text);
        std::fs::write(p, toml).unwrap();
    }
}

fn block(id: &str, line: usize, status: &str, output: &str) -> serde_json::Value {
    serde_json::json!({ "id": id, "line": line, "target": "host", "status": status, "duration_ms": 40, "output": output })
}

/// The last run: everything passed but DNS (the article's breakage), the kind-only block skipped.
pub fn record() -> serde_json::Value {
    let mut dns =
        block("dns", 50, "failed", "Server:\t\t10.96.0.10\n;; connection timed out; no servers could be reached\n");
    dns["diff"] = " Server:\t\t10.96.0.10\n-Name:\tkubernetes.io\n-Address: [..]\n+;; connection timed out; no servers could be reached\n".into();
    dns["reason"] = "output does not match".into();
    let mut docker = block("docker-ps", 56, "skipped", "");
    docker["reason"] = "backend=kind".into();
    serde_json::json!({
        "backend": "lab",
        "started_at": "2026-11-26T09:41:07Z",
        "duration_ms": 2412,
        "tutorials": [{
            "path": "tutorials/native-routing.md",
            "stem": "native-routing",
            "title": "Cilium native routing in kind",
            "status": "failed",
            "duration_ms": 2390,
            "steps": [
                { "number": 1, "title": "Create the cluster", "duration_ms": 1234, "blocks": [
                    block("create", 19, "passed", "Creating cluster \"kind\" ...\n ✓ Ensuring node image (kindest/node:v1.31.0) 🖼\n ✓ Preparing nodes\nSet kubectl context to \"kind-kind\"\n"),
                    block("lab-plumbing", 23, "passed", ""),
                ]},
                { "number": 2, "title": "Install Cilium", "duration_ms": 812, "blocks": [
                    block("cilium-pods", 29, "passed", "$ kubectl -n kube-system get pods -l k8s-app=cilium\nNAME           READY   STATUS    RESTARTS   AGE\ncilium-4xk2p   1/1     Running   0          52s\ncilium-h7q9d   1/1     Running   0          52s\n"),
                ]},
                { "number": 3, "title": "Node routes", "duration_ms": 35, "blocks": [
                    block("worker-routes", 38, "passed", "$ ip route\ndefault via 172.18.0.1 dev eth0\n10.244.0.0/24 via 172.18.0.2 dev eth0 proto kernel\n10.244.1.0/24 dev cilium_host proto kernel scope link\n10.244.2.0/24 via 172.18.0.4 dev eth0 proto kernel\n"),
                ]},
                { "number": 4, "title": "DNS from a pod", "duration_ms": 5003, "blocks": [dns] },
                { "number": 5, "title": "On a real kind cluster only", "duration_ms": 0, "blocks": [docker] },
            ]
        }]
    })
}

/// `mdbook`, if installed (PATH or cargo's bin folder), else the reason to skip.
pub fn mdbook() -> Result<PathBuf, String> {
    tutor::book::find_mdbook().map(|m| m.path).map_err(|e| e.to_string())
}

pub fn tutor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tutor"))
}

/// `tutor book --root <book> --dest <book>/out`, asserting success; returns the output folder.
pub fn build(book: &Book, extra: &[&str]) -> PathBuf {
    let dest = book.root().join("out");
    let out = tutor()
        .args(["book", "--root"])
        .arg(book.root())
        .arg("--dest")
        .arg(&dest)
        .args(extra)
        .env_remove("TUTOR_RECORD")
        .current_dir(book.root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tutor book failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    dest
}
