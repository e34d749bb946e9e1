//! The lab's Cilium chart repository (docs/architecture.md, "The Cilium chart"): what
//! `https://helm.cilium.io/` serves inside a lab. The chart is this project's own
//! (`charts/cilium/`, compiled in); each version listed in `charts/cilium-versions.yaml` is
//! packaged from it at first use — Chart.yaml's version, the values that release pins — into
//! a `.tgz` built here byte for byte the same every time (fixed times and owners, files in a
//! fixed order, gzip with stored blocks), and `index.yaml` lists them with their digests.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

/// The host name the repository answers for.
pub const HOST: &str = "helm.cilium.io";

/// The chart's files, relative to `charts/cilium/`. `the_embedded_files_are_the_charts_files`
/// keeps this list equal to the folder.
const FILES: &[(&str, &str)] = &[
    ("Chart.yaml", include_str!("../../../charts/cilium/Chart.yaml")),
    ("values.yaml", include_str!("../../../charts/cilium/values.yaml")),
    ("templates/NOTES.txt", include_str!("../../../charts/cilium/templates/NOTES.txt")),
    ("templates/_helpers.tpl", include_str!("../../../charts/cilium/templates/_helpers.tpl")),
    ("templates/cilium-agent.yaml", include_str!("../../../charts/cilium/templates/cilium-agent.yaml")),
    ("templates/cilium-configmap.yaml", include_str!("../../../charts/cilium/templates/cilium-configmap.yaml")),
    ("templates/cilium-envoy.yaml", include_str!("../../../charts/cilium/templates/cilium-envoy.yaml")),
    ("templates/cilium-operator.yaml", include_str!("../../../charts/cilium/templates/cilium-operator.yaml")),
    ("templates/hubble-relay.yaml", include_str!("../../../charts/cilium/templates/hubble-relay.yaml")),
    ("templates/hubble-ui.yaml", include_str!("../../../charts/cilium/templates/hubble-ui.yaml")),
    ("templates/hubble.yaml", include_str!("../../../charts/cilium/templates/hubble.yaml")),
];

const VERSIONS: &str = include_str!("../../../charts/cilium-versions.yaml");

/// Modification time of every archive member and of the index: 2024-01-01T00:00:00Z.
const EPOCH: u64 = 1_704_067_200;
const CREATED: &str = "2024-01-01T00:00:00Z";

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("charts/cilium-versions.yaml: {0}")]
    Versions(#[source] serde_yaml::Error),
    #[error("chart {version}: values.yaml has {count} settings at `{path}` (one expected)")]
    ValuePath { version: String, path: String, count: usize },
    #[error("chart {version}: {what}")]
    Chart { version: String, what: String },
}

#[derive(serde::Deserialize)]
struct VersionList {
    versions: Vec<VersionEntry>,
}

#[derive(serde::Deserialize)]
struct VersionEntry {
    version: String,
    #[serde(default)]
    values: BTreeMap<String, serde_yaml::Value>,
}

/// Every served version, packaged, and the index that lists them.
pub struct Repo {
    pub index: String,
    /// `cilium-<version>.tgz` → the archive.
    pub archives: BTreeMap<String, Vec<u8>>,
    /// Newest first, as in `charts/cilium-versions.yaml`.
    pub versions: Vec<String>,
}

/// The newest version the repository serves (what `cilium version` calls the default image).
pub fn newest_version() -> Result<String, ChartError> {
    let list: VersionList = serde_yaml::from_str(VERSIONS).map_err(ChartError::Versions)?;
    list.versions.into_iter().next().map(|v| v.version).ok_or_else(|| ChartError::Chart {
        version: "-".into(),
        what: "charts/cilium-versions.yaml lists no version".into(),
    })
}

/// The repository, built once per process.
pub fn repo() -> Result<&'static Repo, &'static ChartError> {
    static REPO: OnceLock<Result<Repo, ChartError>> = OnceLock::new();
    REPO.get_or_init(build).as_ref()
}

fn build() -> Result<Repo, ChartError> {
    let list: VersionList = serde_yaml::from_str(VERSIONS).map_err(ChartError::Versions)?;
    let mut archives = BTreeMap::new();
    let mut entries = Vec::new();
    let mut versions = Vec::new();
    for entry in &list.versions {
        let files = chart_files(entry)?;
        let tgz = gzip(&tar(&files));
        let meta: serde_yaml::Mapping = serde_yaml::from_str(&files[0].1)
            .map_err(|e| ChartError::Chart { version: entry.version.clone(), what: format!("Chart.yaml: {e}") })?;
        let name = format!("cilium-{}.tgz", entry.version);
        entries.push(index_entry(meta, &tgz, &name));
        archives.insert(name, tgz);
        versions.push(entry.version.clone());
    }
    let mut index = serde_yaml::Mapping::new();
    index.insert("apiVersion".into(), "v1".into());
    let mut charts = serde_yaml::Mapping::new();
    charts.insert("cilium".into(), serde_yaml::Value::Sequence(entries));
    index.insert("entries".into(), serde_yaml::Value::Mapping(charts));
    index.insert("generated".into(), CREATED.into());
    let index = serde_yaml::to_string(&index).expect("a YAML mapping serializes");
    Ok(Repo { index, archives, versions })
}

/// One version's files: Chart.yaml and values.yaml rewritten, the templates as they are.
fn chart_files(entry: &VersionEntry) -> Result<Vec<(&'static str, String)>, ChartError> {
    let mut out = Vec::new();
    for (path, text) in FILES {
        let text = match *path {
            "Chart.yaml" => {
                let mut t = set_value(text, &["version"], &entry.version.clone().into(), &entry.version)?;
                t = set_value(&t, &["appVersion"], &entry.version.clone().into(), &entry.version)?;
                t
            }
            "values.yaml" => {
                let mut t = text.to_string();
                for (key, value) in &entry.values {
                    let path: Vec<&str> = key.split('.').collect();
                    t = set_value(&t, &path, value, &entry.version)?;
                }
                t
            }
            _ => text.to_string(),
        };
        out.push((*path, text));
    }
    Ok(out)
}

/// Set the scalar at `path` in a YAML text by rewriting its one line, so the comments of the
/// file stay (helm shows them with `helm show values`).
fn set_value(text: &str, path: &[&str], value: &serde_yaml::Value, version: &str) -> Result<String, ChartError> {
    let rendered = serde_yaml::to_string(value).expect("a scalar serializes");
    let rendered = rendered.trim_end();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut hits = 0;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let indent = body.len() - body.trim_start().len();
        let trimmed = body.trim_start();
        let key = (!trimmed.starts_with('#') && !trimmed.starts_with('-'))
            .then(|| trimmed.split_once(':'))
            .flatten()
            .filter(|(k, rest)| !k.contains(' ') && (rest.is_empty() || rest.starts_with(' ')));
        if let Some((key, rest)) = key {
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            let here = stack.iter().map(|(_, k)| k.as_str()).chain([key]).eq(path.iter().copied());
            if here && !rest.trim().is_empty() {
                hits += 1;
                let _ = writeln!(out, "{}{key}: {rendered}", &body[..indent]);
                stack.push((indent, key.to_string()));
                continue;
            }
            stack.push((indent, key.to_string()));
        }
        out.push_str(line);
    }
    if hits != 1 {
        return Err(ChartError::ValuePath { version: version.into(), path: path.join("."), count: hits });
    }
    Ok(out)
}

fn index_entry(meta: serde_yaml::Mapping, tgz: &[u8], name: &str) -> serde_yaml::Value {
    let mut e = meta;
    e.insert("created".into(), CREATED.into());
    e.insert("digest".into(), hex(ring::digest::digest(&ring::digest::SHA256, tgz).as_ref()).into());
    e.insert("urls".into(), serde_yaml::Value::Sequence(vec![format!("https://{HOST}/{name}").into()]));
    serde_yaml::Value::Mapping(e)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A ustar archive of `cilium/<path>` members, as `helm package` lays a chart out.
fn tar(files: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, text) in files {
        let name = format!("cilium/{path}");
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |h: &mut [u8; 512], at: usize, width: usize, v: u64| {
            let s = format!("{v:0w$o}\0", w = width - 1);
            h[at..at + width].copy_from_slice(s.as_bytes());
        };
        octal(&mut h, 100, 8, 0o644);
        octal(&mut h, 108, 8, 0);
        octal(&mut h, 116, 8, 0);
        octal(&mut h, 124, 12, text.len() as u64);
        octal(&mut h, 136, 12, EPOCH);
        h[148..156].copy_from_slice(b"        ");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(text.as_bytes());
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// gzip (RFC 1952) of deflate stored blocks (RFC 1951): valid for every reader, no compressor
/// needed; a chart is a few tens of kilobytes.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let mut chunks = data.chunks(65_535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// An HTTP answer of the repository for `path` (`/index.yaml`, `/cilium-<version>.tgz`).
pub fn serve(path: &str) -> (u16, &'static str, Vec<u8>) {
    let repo = match repo() {
        Ok(r) => r,
        Err(e) => return (500, "text/plain", format!("{e}\n").into_bytes()),
    };
    let path = path.split('?').next().unwrap_or("");
    match path.trim_start_matches('/') {
        "index.yaml" => (200, "text/yaml", repo.index.clone().into_bytes()),
        name => match repo.archives.get(name) {
            Some(tgz) => (200, "application/x-tar", tgz.clone()),
            None => (404, "text/plain", b"Not Found\n".to_vec()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_files_are_the_charts_files() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/cilium");
        let mut found = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    found.push(p.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        found.sort();
        let mut listed: Vec<String> = FILES.iter().map(|(p, _)| p.to_string()).collect();
        listed.sort();
        assert_eq!(found, listed);
    }

    #[test]
    fn every_version_packages_with_its_values() {
        let repo = repo().unwrap();
        assert!(repo.versions.contains(&"1.15.1".to_string()), "{:?}", repo.versions);
        let index: serde_yaml::Value = serde_yaml::from_str(&repo.index).unwrap();
        let entries = index["entries"]["cilium"].as_sequence().unwrap();
        assert_eq!(entries.len(), repo.versions.len());
        for e in entries {
            let v = e["version"].as_str().unwrap();
            assert_eq!(e["appVersion"].as_str(), Some(v));
            let tgz = &repo.archives[&format!("cilium-{v}.tgz")];
            assert_eq!(e["digest"].as_str().unwrap(), hex(ring::digest::digest(&ring::digest::SHA256, tgz).as_ref()));
        }
        let list: VersionList = serde_yaml::from_str(VERSIONS).unwrap();
        let old = list.versions.iter().find(|e| e.version == "1.15.1").unwrap();
        let files = chart_files(old).unwrap();
        let values: serde_yaml::Value = serde_yaml::from_str(&files[1].1).unwrap();
        assert_eq!(values["image"]["tag"].as_str(), Some("v1.15.1"));
        assert_eq!(values["envoy"]["enabled"].as_bool(), Some(false));
        // Only the listed lines changed: the comments stay.
        assert_eq!(files[1].1.lines().count(), FILES[1].1.lines().count());
    }

    #[test]
    fn packaging_is_deterministic() {
        let list: VersionList = serde_yaml::from_str(VERSIONS).unwrap();
        let a = gzip(&tar(&chart_files(&list.versions[0]).unwrap()));
        let b = gzip(&tar(&chart_files(&list.versions[0]).unwrap()));
        assert_eq!(a, b);
    }

    #[test]
    fn a_value_path_must_exist_once() {
        let err = set_value("a:\n  b: 1\n", &["a", "c"], &1.into(), "x").unwrap_err();
        assert!(matches!(err, ChartError::ValuePath { count: 0, .. }), "{err}");
        let ok = set_value("a:\n  b: 1 \n  c:\n    b: 2\nb: 3\n", &["a", "b"], &"v".into(), "x").unwrap();
        assert_eq!(ok, "a:\n  b: v\n  c:\n    b: 2\nb: 3\n");
    }

    #[test]
    fn the_crc_is_gzips() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
