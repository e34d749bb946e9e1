//! `helm repo add|update`, `helm install|upgrade RELEASE cilium/cilium -f F [--set k=v]`:
//! the values drive the lab's datapath.

use std::path::Path;
use std::time::SystemTime;

use serde_yaml::Value;

use super::super::LabError;
use super::super::state::{HelmRelease, Lab};
use super::super::values::{CiliumValues, merge};
use super::{Args, Outcome, resolve, unsupported};

const CILIUM_VERSION: &str = "1.15.1";

pub fn run(lab: &mut Lab, argv: &[String], cwd: &Path) -> Result<Outcome, LabError> {
    let a = Args::parse(
        argv,
        &["-n", "--namespace", "-f", "--values", "--set", "--version", "--kube-context", "--timeout"],
        &["--wait", "--install", "--create-namespace", "--reuse-values", "--force-update"],
    )?;
    let pos: Vec<&str> = a.positional.iter().map(String::as_str).collect();
    match pos.as_slice() {
        ["repo", "add", name, _url] => Ok(Outcome::out(format!("\"{name}\" has been added to your repositories\n"))),
        ["repo", "update"] => Ok(Outcome::out(
            "Hang tight while we grab the latest from your chart repositories...\n...Successfully got an update from the \"cilium\" chart repository\nUpdate Complete. ⎈Happy Helming!⎈\n",
        )),
        [verb @ ("install" | "upgrade"), release, chart] => install(lab, &a, verb, release, chart, cwd, argv),
        _ => Err(unsupported("helm", argv)),
    }
}

fn install(
    lab: &mut Lab,
    a: &Args,
    verb: &str,
    release: &str,
    chart: &str,
    cwd: &Path,
    argv: &[String],
) -> Result<Outcome, LabError> {
    if chart != "cilium/cilium" {
        return Err(unsupported("helm", argv));
    }
    let namespace = a.value(&["-n", "--namespace"]).unwrap_or("default").to_string();
    let mut raw = Value::Mapping(Default::default());
    let mut origin = String::from("--set");
    for f in a.all(&["-f", "--values"]) {
        let path = resolve(&lab.host_root(), cwd, f);
        let text = std::fs::read_to_string(&path).map_err(|e| LabError::Input(format!("{f}: {e}")))?;
        let v: Value = serde_yaml::from_str(&text).map_err(|e| {
            let at = e.location().map(|l| format!(":{}", l.line())).unwrap_or_default();
            LabError::Input(format!("{f}{at}: {e}"))
        })?;
        if !v.is_null() && !v.is_mapping() {
            return Err(not_a_mapping(f, &text, &v));
        }
        if !v.is_null() {
            merge(&mut raw, v);
        }
        origin = f.to_string();
    }
    for s in a.all(&["--set"]) {
        merge(&mut raw, set_value(s)?);
    }
    let values = CiliumValues::from_value(raw, &origin)?;
    let dir = lab.dir.clone();
    let c = lab.cluster_mut()?;
    let revision = match (&c.release, verb) {
        (Some(r), "install") if r.name == release => {
            return Err(LabError::Input("INSTALLATION FAILED: cannot re-use a name that is still in use".into()));
        }
        (None, "upgrade") => {
            return Err(LabError::Input(format!("UPGRADE FAILED: \"{release}\" has no deployed releases")));
        }
        (Some(r), _) => r.revision + 1,
        (None, _) => 1,
    };
    c.apply_cilium(values, &dir)?;
    let now = SystemTime::now();
    c.release = Some(HelmRelease {
        name: release.into(),
        namespace: namespace.clone(),
        chart: chart.into(),
        revision,
        updated: now,
    });
    let head = if verb == "upgrade" {
        format!("Release \"{release}\" has been upgraded. Happy Helming!\n")
    } else {
        String::new()
    };
    Ok(Outcome::out(format!(
        "{head}NAME: {release}\nLAST DEPLOYED: {}\nNAMESPACE: {namespace}\nSTATUS: deployed\nREVISION: {revision}\nTEST SUITE: None\nNOTES:\nYou have successfully {} Cilium.\n\nYour release version is {CILIUM_VERSION}.\n\nFor any further help, visit https://docs.cilium.io/en/v1.15/gettinghelp\n",
        helm_date(now),
        if verb == "upgrade" { "upgraded" } else { "installed" }
    )))
}

/// Helm values files hold one mapping (`key: value`); a list or a scalar is an error naming the
/// file and the line where the document starts, as Helm's "cannot unmarshal" is unclear.
fn not_a_mapping(file: &str, text: &str, v: &Value) -> LabError {
    let line = text
        .lines()
        .position(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#') && t != "---"
        })
        .map_or(1, |i| i + 1);
    let what = match v {
        Value::Sequence(_) => "a list",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        _ => "not a mapping",
    };
    LabError::Input(format!(
        "{file}:{line}: Helm values must be a mapping of keys to values (`key: value`), this file holds {what}"
    ))
}

/// `--set a.b=c` as a values tree.
fn set_value(s: &str) -> Result<Value, LabError> {
    let (path, v) = s.split_once('=').ok_or_else(|| LabError::Input(format!("--set {s}: expected key=value")))?;
    if path.is_empty() {
        return Err(LabError::Input(format!("--set {s}: the key before `=` is empty (expected key=value)")));
    }
    if path.split('.').any(str::is_empty) {
        return Err(LabError::Input(format!("--set {s}: `{path}` has an empty key between dots (expected a.b=value)")));
    }
    let mut value: Value = serde_yaml::from_str(v).unwrap_or(Value::String(v.into()));
    for key in path.rsplit('.') {
        let mut m = serde_yaml::Mapping::new();
        m.insert(Value::String(key.into()), value);
        value = Value::Mapping(m);
    }
    Ok(value)
}

/// Helm's `LAST DEPLOYED` (Go's ANSIC layout, UTC).
fn helm_date(t: SystemTime) -> String {
    let iso = super::super::store::rfc3339(t);
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(secs / 86400 % 7) as usize];
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let m: usize = iso[5..7].parse().unwrap_or(1);
    let d: u32 = iso[8..10].parse().unwrap_or(1);
    format!("{wd} {} {d:>2} {} {}", months[m - 1], &iso[11..19], &iso[0..4])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_builds_nested_values() {
        let v = set_value("bpf.masquerade=true").unwrap();
        assert_eq!(v["bpf"]["masquerade"], Value::Bool(true));
    }

    #[test]
    fn empty_set_keys_are_errors() {
        let e = set_value("=x").unwrap_err().to_string();
        assert_eq!(e, "--set =x: the key before `=` is empty (expected key=value)");
        let e = set_value("a..b=1").unwrap_err().to_string();
        assert!(e.contains("`a..b` has an empty key between dots"), "{e}");
        assert!(set_value(".a=1").is_err() && set_value("a.=1").is_err());
    }

    #[test]
    fn values_that_are_not_a_mapping_name_file_and_line() {
        let text = "# Cilium\n\n- routingMode: native\n";
        let v: Value = serde_yaml::from_str(text).unwrap();
        let e = not_a_mapping("values.yaml", text, &v).to_string();
        assert_eq!(
            e,
            "values.yaml:3: Helm values must be a mapping of keys to values (`key: value`), this file holds a list"
        );
    }

    #[test]
    fn date_layout() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(helm_date(t), "Tue Nov 14 22:13:20 2023");
    }
}
