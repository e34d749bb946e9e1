//! Kubeconfig files: one per component (controller manager, scheduler, each node's kubelet) and
//! the lab host's, where `kind create cluster` adds a `kind-NAME` cluster, user and context and
//! makes it current, and `kind delete cluster` removes them — what kind does to `~/.kube/config`.

use std::path::Path;

use base64::Engine;
use serde_yaml::{Mapping, Value};

use super::super::LabError;
use super::pki::{self, Pair};

/// One cluster/user/context triple, all named `name`.
pub struct Entry<'a> {
    pub name: &'a str,
    pub server: &'a str,
    pub ca: &'a str,
    pub client: &'a Pair,
}

fn b64(s: &str) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(s))
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    Value::Mapping(pairs.into_iter().map(|(k, v)| (Value::String(k.into()), v)).collect())
}

fn named(name: &str, key: &str, body: Value) -> Value {
    map(vec![(key, body), ("name", Value::String(name.into()))])
}

fn triple(e: &Entry<'_>) -> (Value, Value, Value) {
    let cluster = named(
        e.name,
        "cluster",
        map(vec![("certificate-authority-data", b64(e.ca)), ("server", Value::String(e.server.into()))]),
    );
    let context = named(
        e.name,
        "context",
        map(vec![("cluster", Value::String(e.name.into())), ("user", Value::String(e.name.into()))]),
    );
    let user = named(
        e.name,
        "user",
        map(vec![("client-certificate-data", b64(&e.client.cert)), ("client-key-data", b64(&e.client.key))]),
    );
    (cluster, context, user)
}

fn empty() -> Mapping {
    let Value::Mapping(m) = map(vec![
        ("apiVersion", Value::String("v1".into())),
        ("clusters", Value::Sequence(vec![])),
        ("contexts", Value::Sequence(vec![])),
        ("current-context", Value::String(String::new())),
        ("kind", Value::String("Config".into())),
        ("preferences", Value::Mapping(Mapping::new())),
        ("users", Value::Sequence(vec![])),
    ]) else {
        unreachable!()
    };
    m
}

/// A kubeconfig holding only `e`, current.
pub fn single(e: &Entry<'_>) -> String {
    let mut m = empty();
    put(&mut m, e);
    serde_yaml::to_string(&Value::Mapping(m)).expect("serialisable")
}

fn list<'m>(m: &'m mut Mapping, key: &str) -> &'m mut Vec<Value> {
    let v = m.entry(Value::String(key.into())).or_insert_with(|| Value::Sequence(vec![]));
    if !v.is_sequence() {
        *v = Value::Sequence(vec![]);
    }
    v.as_sequence_mut().expect("a sequence")
}

fn is_named(v: &Value, name: &str) -> bool {
    v.get("name").and_then(Value::as_str) == Some(name)
}

fn put(m: &mut Mapping, e: &Entry<'_>) {
    let (cluster, context, user) = triple(e);
    for (key, item) in [("clusters", cluster), ("contexts", context), ("users", user)] {
        let l = list(m, key);
        l.retain(|v| !is_named(v, e.name));
        l.push(item);
    }
    m.insert(Value::String("current-context".into()), Value::String(e.name.into()));
}

fn load(path: &Path) -> Result<Mapping, LabError> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => match serde_yaml::from_str::<Value>(&text) {
            Ok(Value::Mapping(m)) => Ok(m),
            Ok(_) => Err(LabError::Input(format!("{}: not a kubeconfig (a YAML mapping)", path.display()))),
            Err(e) => Err(LabError::Input(format!("{}: {e}", path.display()))),
        },
        Ok(_) => Ok(empty()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(empty()),
        Err(e) => Err(LabError::io(path, e)),
    }
}

fn save(path: &Path, m: Mapping) -> Result<(), LabError> {
    let text = serde_yaml::to_string(&Value::Mapping(m)).expect("serialisable");
    let tmp = path.with_extension("tmp");
    pki::write_private(&tmp, &text)?;
    std::fs::rename(&tmp, path).map_err(|e| LabError::io(path, e))
}

/// Add (or replace) `e` in the kubeconfig at `path` and make it the current context.
pub fn merge(path: &Path, e: &Entry<'_>) -> Result<(), LabError> {
    let mut m = load(path)?;
    put(&mut m, e);
    save(path, m)
}

/// Remove the cluster, user and context `name`; the current context is cleared if it was `name`.
pub fn remove(path: &Path, name: &str) -> Result<(), LabError> {
    let mut m = load(path)?;
    for key in ["clusters", "contexts", "users"] {
        list(&mut m, key).retain(|v| !is_named(v, name));
    }
    if m.get("current-context").and_then(Value::as_str) == Some(name) {
        m.insert(Value::String("current-context".into()), Value::String(String::new()));
    }
    save(path, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(tag: &str) -> Pair {
        Pair { cert: format!("cert-{tag}"), key: format!("key-{tag}") }
    }

    fn names(m: &Value, key: &str) -> Vec<String> {
        m[key].as_sequence().unwrap().iter().map(|v| v["name"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn merge_adds_contexts_and_remove_takes_them_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let (a, b) = (pair("a"), pair("b"));
        merge(&path, &Entry { name: "kind-kind", server: "https://172.18.0.2:6443", ca: "ca", client: &a }).unwrap();
        merge(&path, &Entry { name: "kind-two", server: "https://172.18.0.5:6443", ca: "ca", client: &b }).unwrap();
        let v: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(names(&v, "contexts"), ["kind-kind", "kind-two"]);
        assert_eq!(v["current-context"], "kind-two");
        assert_eq!(v["clusters"][0]["cluster"]["server"], "https://172.18.0.2:6443");
        assert_eq!(v["users"][1]["user"]["client-key-data"], "a2V5LWI=");
        // Re-creating a cluster replaces its entries instead of doubling them.
        merge(&path, &Entry { name: "kind-kind", server: "https://172.18.0.9:6443", ca: "ca", client: &a }).unwrap();
        let v: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(names(&v, "clusters"), ["kind-two", "kind-kind"]);
        remove(&path, "kind-kind").unwrap();
        let v: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(names(&v, "users"), ["kind-two"]);
        assert_eq!(v["current-context"], "");
    }

    #[test]
    fn a_broken_kubeconfig_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, "clusters: [").unwrap();
        let e = remove(&path, "kind-kind").unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
    }
}
