//! The CustomResourceDefinitions the Cilium operator registers at start, written here from their
//! documented facts (group, kinds, names, short names, scope, versions, the columns `kubectl get`
//! prints). The schemas are this project's own and permissive (unknown fields are kept) except
//! where users meet the real validation: a pool's `cidr` must be a CIDR, `allowFirstLastIPs` is
//! `Yes` or `No`, and an identity has `security-labels`.
//!
//! Registration is Cilium's: every operator replica, before anything else, creates each CRD or
//! updates it when it is older than its own (never when it serves a version this release does
//! not know: a newer operator registered it), then waits until the API server has established
//! them all.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::OperatorError;
use super::release::Release;

pub const GROUP: &str = "cilium.io";
pub const SCHEMA_LABEL: &str = "io.cilium.k8s.crd.schema.version";

/// An object whose own fields are not checked.
fn open() -> Value {
    json!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

fn col(name: &str, type_: &str, path: &str) -> Value {
    json!({ "name": name, "type": type_, "jsonPath": path })
}

fn age() -> Value {
    col("Age", "date", ".metadata.creationTimestamp")
}

/// One version of a CRD: (name, served, storage, deprecated).
struct Version<'a> {
    name: &'a str,
    storage: bool,
    deprecated: bool,
}

struct Def<'a> {
    kind: &'a str,
    plural: &'a str,
    short: &'a [&'a str],
    categories: &'a [&'a str],
    namespaced: bool,
    versions: Vec<Version<'a>>,
    columns: Vec<Value>,
    schema: Value,
    status_subresource: bool,
}

impl Def<'_> {
    fn crd(&self, release: &Release) -> CustomResourceDefinition {
        let versions: Vec<Value> = self
            .versions
            .iter()
            .map(|v| {
                let mut o = json!({
                    "name": v.name, "served": true, "storage": v.storage,
                    "schema": { "openAPIV3Schema": self.schema },
                });
                if !self.columns.is_empty() {
                    o["additionalPrinterColumns"] = Value::Array(self.columns.clone());
                }
                if self.status_subresource {
                    o["subresources"] = json!({ "status": {} });
                }
                if v.deprecated {
                    o["deprecated"] = json!(true);
                }
                o
            })
            .collect();
        let mut names = json!({
            "kind": self.kind, "listKind": format!("{}List", self.kind),
            "plural": self.plural, "singular": self.kind.to_lowercase(),
        });
        if !self.short.is_empty() {
            names["shortNames"] = json!(self.short);
        }
        if !self.categories.is_empty() {
            names["categories"] = json!(self.categories);
        }
        let mut metadata = json!({ "name": format!("{}.{GROUP}", self.plural) });
        if let Some(v) = release.crd_schema_version() {
            metadata["labels"] = json!({ SCHEMA_LABEL: v });
        }
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": metadata,
            "spec": {
                "group": GROUP, "names": names,
                "scope": if self.namespaced { "Namespaced" } else { "Cluster" },
                "versions": versions,
            }
        });
        serde_json::from_value(crd).expect("the CRDs written here are CustomResourceDefinitions")
    }
}

/// `CiliumLoadBalancerIPPool`'s schema: `spec` is required; blocks' CIDRs and
/// `allowFirstLastIPs` are checked as Cilium's schema checks them.
fn ip_pool_schema(release: &Release) -> Value {
    let block = json!({
        "type": "object",
        "properties": {
            "cidr": { "type": "string", "format": "cidr" },
            "start": { "type": "string" },
            "stop": { "type": "string" },
        },
    });
    let mut spec = json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {
            "blocks": { "type": "array", "items": block },
            "disabled": { "type": "boolean", "default": false },
            "serviceSelector": open(),
            "allowFirstLastIPs": { "type": "string", "enum": ["Yes", "No"] },
        },
    });
    if release.reads_cidrs() {
        spec["properties"]["cidrs"] = json!({ "type": "array", "items": block });
    }
    json!({
        "type": "object",
        "required": ["metadata", "spec"],
        "properties": { "spec": spec, "status": open() },
    })
}

/// The CRDs of `release`, in the order the operator registers them.
pub fn definitions(release: &Release) -> Vec<CustomResourceDefinition> {
    let v2 = || vec![Version { name: "v2", storage: true, deprecated: false }];
    let v2alpha1 = || vec![Version { name: "v2alpha1", storage: true, deprecated: false }];
    let cilium: &[&str] = &["cilium"];
    let policy: &[&str] = &["cilium", "ciliumpolicy"];
    let generic = json!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true });
    let pool_versions = if release.ip_pool_v2() {
        vec![
            Version { name: "v2", storage: true, deprecated: false },
            Version { name: "v2alpha1", storage: false, deprecated: release.ip_pool_v2alpha1_deprecated() },
        ]
    } else {
        v2alpha1()
    };
    let valid = col("Valid", "string", ".status.conditions[?(@.type=='Valid')].status");
    let defs = [
        Def {
            kind: "CiliumNetworkPolicy",
            plural: "ciliumnetworkpolicies",
            short: &["cnp", "ciliumnp"],
            categories: policy,
            namespaced: true,
            versions: v2(),
            columns: if release.policy_valid_column() { vec![age(), valid.clone()] } else { vec![] },
            schema: generic.clone(),
            status_subresource: true,
        },
        Def {
            kind: "CiliumClusterwideNetworkPolicy",
            plural: "ciliumclusterwidenetworkpolicies",
            short: &["ccnp"],
            categories: policy,
            namespaced: false,
            versions: v2(),
            columns: if release.policy_valid_column() { vec![valid] } else { vec![] },
            schema: generic.clone(),
            status_subresource: true,
        },
        Def {
            kind: "CiliumEndpoint",
            plural: "ciliumendpoints",
            short: &["cep", "ciliumep"],
            categories: cilium,
            namespaced: true,
            versions: v2(),
            columns: vec![
                col("Security Identity", "integer", ".status.identity.id"),
                col("Endpoint State", "string", ".status.state"),
                col("IPv4", "string", ".status.networking.addressing[0].ipv4"),
                col("IPv6", "string", ".status.networking.addressing[0].ipv6"),
            ],
            schema: generic.clone(),
            status_subresource: false,
        },
        Def {
            kind: "CiliumNode",
            plural: "ciliumnodes",
            short: &["cn", "ciliumn"],
            categories: cilium,
            namespaced: false,
            versions: v2(),
            columns: vec![
                col("CiliumInternalIP", "string", ".spec.addresses[?(@.type==\"CiliumInternalIP\")].ip"),
                col("InternalIP", "string", ".spec.addresses[?(@.type==\"InternalIP\")].ip"),
                age(),
            ],
            schema: json!({
                "type": "object", "required": ["metadata", "spec"],
                "properties": { "spec": open(), "status": open() },
            }),
            status_subresource: true,
        },
        Def {
            kind: "CiliumIdentity",
            plural: "ciliumidentities",
            short: &["ciliumid"],
            categories: cilium,
            namespaced: false,
            versions: v2(),
            columns: vec![col("Namespace", "string", ".metadata.labels.io\\.kubernetes\\.pod\\.namespace"), age()],
            schema: json!({
                "type": "object", "required": ["metadata", "security-labels"],
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {
                    "security-labels": { "type": "object", "additionalProperties": { "type": "string" } },
                },
            }),
            status_subresource: true,
        },
        Def {
            kind: "CiliumLoadBalancerIPPool",
            plural: "ciliumloadbalancerippools",
            short: &["ippools", "ippool", "lbippool", "lbippools"],
            categories: cilium,
            namespaced: false,
            versions: pool_versions,
            columns: vec![
                col("Disabled", "boolean", ".spec.disabled"),
                col("Conflicting", "string", ".status.conditions[?(@.type==\"cilium.io/PoolConflict\")].status"),
                col("IPs Available", "string", ".status.conditions[?(@.type==\"cilium.io/IPsAvailable\")].message"),
                age(),
            ],
            schema: ip_pool_schema(release),
            status_subresource: true,
        },
        Def {
            kind: "CiliumL2AnnouncementPolicy",
            plural: "ciliuml2announcementpolicies",
            short: &["l2announcement"],
            categories: cilium,
            namespaced: false,
            versions: v2alpha1(),
            columns: vec![age()],
            schema: json!({
                "type": "object", "required": ["metadata"],
                "properties": { "spec": open(), "status": open() },
            }),
            status_subresource: true,
        },
    ];
    defs.iter().map(|d| d.crd(release)).collect()
}

/// What registration does with one CRD, given what the API server has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Create,
    Update,
    /// Already as this release registers it.
    Keep,
    /// Registered by a newer operator (it serves a version this release does not know).
    Newer(String),
}

/// The fields registration owns: names, scope, versions (with their schemas and columns), and
/// the schema-version label.
fn owned(crd: &CustomResourceDefinition) -> Value {
    let spec = serde_json::to_value(&crd.spec).unwrap_or_default();
    json!({
        "label": crd.metadata.labels.as_ref().and_then(|l| l.get(SCHEMA_LABEL)),
        "names": spec["names"], "scope": spec["scope"], "versions": spec["versions"],
    })
}

pub fn step(want: &CustomResourceDefinition, have: Option<&CustomResourceDefinition>) -> Step {
    let Some(have) = have else { return Step::Create };
    let ours: Vec<&str> = want.spec.versions.iter().map(|v| v.name.as_str()).collect();
    let stored = have.status.as_ref().and_then(|s| s.stored_versions.clone()).unwrap_or_default();
    if let Some(v) =
        have.spec.versions.iter().map(|v| &v.name).chain(&stored).find(|v| !ours.contains(&v.as_str())).cloned()
    {
        return Step::Newer(v);
    }
    if owned(want) == owned(have) { Step::Keep } else { Step::Update }
}

/// Create or update every CRD of `release`, then wait until all are established.
pub async fn register(client: &Client, release: &Release) -> Result<(), OperatorError> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let defs = definitions(release);
    for want in &defs {
        let name = want.metadata.name.clone().unwrap_or_default();
        // A conflict means another replica wrote it between our read and our write: read again.
        for attempt in 0.. {
            let have = api.get_opt(&name).await.map_err(super::api_err(format!("reading CRD {name}")))?;
            let r = match step(want, have.as_ref()) {
                Step::Keep => Ok(()),
                Step::Newer(v) => {
                    eprintln!("CRD {name} serves {v}, newer than Cilium {release}: left as it is");
                    Ok(())
                }
                Step::Create => api.create(&PostParams::default(), want).await.map(|_| ()),
                Step::Update => {
                    let mut obj = have.expect("an update has a current object");
                    let mut labels = obj.metadata.labels.take().unwrap_or_default();
                    labels.remove(SCHEMA_LABEL);
                    labels.extend(want.metadata.labels.clone().unwrap_or_default());
                    obj.metadata.labels = Some(labels);
                    obj.spec = want.spec.clone();
                    api.replace(&name, &PostParams::default(), &obj).await.map(|_| ())
                }
            };
            match r {
                Ok(()) => break,
                Err(kube::Error::Api(e)) if (e.code == 409) && attempt < 10 => continue,
                Err(e) => return Err(super::api_err(format!("registering CRD {name}"))(e)),
            }
        }
    }
    for want in &defs {
        let name = want.metadata.name.clone().unwrap_or_default();
        loop {
            let crd = api.get(&name).await.map_err(super::api_err(format!("reading CRD {name}")))?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_name(release: &str) -> std::collections::BTreeMap<String, Value> {
        definitions(&Release::parse(release).unwrap())
            .into_iter()
            .map(|c| (c.metadata.name.clone().unwrap(), serde_json::to_value(c).unwrap()))
            .collect()
    }

    #[test]
    fn names_scopes_and_columns_are_ciliums() {
        let crds = by_name("1.15.1");
        assert_eq!(
            crds.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "ciliumclusterwidenetworkpolicies.cilium.io",
                "ciliumendpoints.cilium.io",
                "ciliumidentities.cilium.io",
                "ciliuml2announcementpolicies.cilium.io",
                "ciliumloadbalancerippools.cilium.io",
                "ciliumnetworkpolicies.cilium.io",
                "ciliumnodes.cilium.io",
            ]
        );
        let pool = &crds["ciliumloadbalancerippools.cilium.io"];
        assert_eq!(pool["spec"]["scope"], "Cluster");
        assert_eq!(pool["spec"]["names"]["singular"], "ciliumloadbalancerippool");
        assert_eq!(pool["spec"]["names"]["shortNames"], json!(["ippools", "ippool", "lbippool", "lbippools"]));
        let v = &pool["spec"]["versions"];
        assert_eq!(v.as_array().unwrap().len(), 1);
        assert_eq!((v[0]["name"].as_str(), v[0]["storage"].as_bool()), (Some("v2alpha1"), Some(true)));
        let cols: Vec<&str> =
            v[0]["additionalPrinterColumns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(cols, ["Disabled", "Conflicting", "IPs Available", "Age"]);
        assert_eq!(pool["metadata"]["labels"][SCHEMA_LABEL], "1.28.1");
        assert_eq!(crds["ciliumendpoints.cilium.io"]["spec"]["scope"], "Namespaced");
        assert_eq!(crds["ciliumnodes.cilium.io"]["spec"]["names"]["shortNames"], json!(["cn", "ciliumn"]));
        assert!(
            crds["ciliumnetworkpolicies.cilium.io"]["spec"]["versions"][0].get("additionalPrinterColumns").is_none()
        );
    }

    #[test]
    fn newer_releases_store_pools_as_v2() {
        let crds = by_name("1.19.1");
        let v = &crds["ciliumloadbalancerippools.cilium.io"]["spec"]["versions"];
        assert_eq!((v[0]["name"].as_str(), v[0]["storage"].as_bool()), (Some("v2"), Some(true)));
        assert_eq!((v[1]["name"].as_str(), v[1]["storage"].as_bool()), (Some("v2alpha1"), Some(false)));
        assert_eq!(v[1]["deprecated"], true);
        let cnp = &crds["ciliumnetworkpolicies.cilium.io"]["spec"]["versions"][0]["additionalPrinterColumns"];
        assert_eq!(cnp[1]["name"], "Valid");
    }

    #[test]
    fn registration_creates_updates_and_leaves_newer_crds() {
        let old = definitions(&Release::parse("1.15.1").unwrap());
        let new = definitions(&Release::parse("1.19.1").unwrap());
        let pool = |d: &[CustomResourceDefinition]| {
            d.iter().find(|c| c.spec.names.plural == "ciliumloadbalancerippools").unwrap().clone()
        };
        assert_eq!(step(&pool(&old), None), Step::Create);
        assert_eq!(step(&pool(&old), Some(&pool(&old))), Step::Keep);
        assert_eq!(step(&pool(&new), Some(&pool(&old))), Step::Update);
        assert_eq!(step(&pool(&old), Some(&pool(&new))), Step::Newer("v2".into()));
    }
}
