//! Which Cilium release the operator plays: the tag of its own container's image (the chart
//! pins `quay.io/cilium/operator-generic:v<version>@<digest>`). What differs between the served
//! releases — CRD versions, printer columns, defaults — is decided here from that one fact.

use std::fmt;

/// A Cilium release, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Release {
    /// The newest release the lab's chart serves: what the operator plays when its image has no
    /// version tag (`:latest`, a digest only).
    pub const NEWEST: Release = Release { major: 1, minor: 19, patch: 1 };

    /// `v1.15.1`, `1.15.1`, `v1.15.1-rc.0` (the pre-release suffix is dropped).
    pub fn parse(tag: &str) -> Option<Release> {
        let t = tag.strip_prefix('v').unwrap_or(tag);
        let t = t.split(['-', '+']).next()?;
        let mut it = t.split('.').map(|p| p.parse::<u32>().ok());
        let r = Release { major: it.next()??, minor: it.next()??, patch: it.next().flatten().unwrap_or(0) };
        it.next().is_none().then_some(r)
    }

    /// The release an image reference names by its tag (`…/operator-generic:v1.15.1@sha256:…`).
    pub fn of_image(image: &str) -> Option<Release> {
        let name = image.split('@').next()?;
        let tag = &name[name.rfind('/').map(|i| i + 1).unwrap_or(0)..];
        Release::parse(tag.split_once(':')?.1)
    }

    /// From 1.18 `CiliumLoadBalancerIPPool` is stored as `cilium.io/v2`, `v2alpha1` still served.
    pub fn ip_pool_v2(&self) -> bool {
        *self >= Release { major: 1, minor: 18, patch: 0 }
    }

    /// `v2alpha1` pools are marked deprecated from the release after v2 came (1.19).
    pub fn ip_pool_v2alpha1_deprecated(&self) -> bool {
        *self >= Release { major: 1, minor: 19, patch: 0 }
    }

    /// The version pools are read and written as.
    pub fn ip_pool_version(&self) -> &'static str {
        if self.ip_pool_v2() { "v2" } else { "v2alpha1" }
    }

    /// `spec.allowFirstLastIPs` defaults to `No` (first and last address of a CIDR reserved)
    /// before 1.16, to `Yes` from 1.16.
    pub fn allow_first_last_default(&self) -> bool {
        *self >= Release { major: 1, minor: 16, patch: 0 }
    }

    /// `spec.cidrs`, the older name of `spec.blocks`, is read until 1.16 removed it.
    pub fn reads_cidrs(&self) -> bool {
        *self < Release { major: 1, minor: 16, patch: 0 }
    }

    /// From 1.17 network policies carry a `Valid` condition, shown by `kubectl get cnp`.
    pub fn policy_valid_column(&self) -> bool {
        *self >= Release { major: 1, minor: 17, patch: 0 }
    }

    /// The CRD schema version Cilium labels its CRDs with (`io.cilium.k8s.crd.schema.version`),
    /// where this project knows it (Cilium's compatibility table).
    pub fn crd_schema_version(&self) -> Option<&'static str> {
        match (self.major, self.minor, self.patch) {
            (1, 14, 2..=5) => Some("1.26.11"),
            (1, 15, 0..=2) => Some("1.28.1"),
            (1, 15, 3..=7) => Some("1.28.2"),
            _ => None,
        }
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_from_tags_and_images() {
        assert_eq!(Release::parse("v1.15.1"), Some(Release { major: 1, minor: 15, patch: 1 }));
        assert_eq!(Release::parse("1.19.0-rc.1"), Some(Release { major: 1, minor: 19, patch: 0 }));
        assert_eq!(Release::parse("latest"), None);
        assert_eq!(
            Release::of_image("quay.io/cilium/operator-generic:v1.15.1@sha256:f7d2"),
            Some(Release { major: 1, minor: 15, patch: 1 })
        );
        assert_eq!(Release::of_image("localhost:5000/cilium/operator-generic@sha256:f7d2"), None);
        assert_eq!(Release::of_image("quay.io/cilium/operator-generic"), None);
    }

    #[test]
    fn what_changes_between_releases() {
        let r = |s| Release::parse(s).unwrap();
        assert_eq!(r("1.15.1").ip_pool_version(), "v2alpha1");
        assert_eq!(r("1.18.4").ip_pool_version(), "v2");
        assert!(!r("1.15.1").allow_first_last_default() && r("1.16.5").allow_first_last_default());
        assert!(r("1.15.1").reads_cidrs() && !r("1.16.5").reads_cidrs());
        assert!(!r("1.16.5").policy_valid_column() && r("1.18.4").policy_valid_column());
        assert_eq!(r("1.15.1").crd_schema_version(), Some("1.28.1"));
        assert_eq!(r("1.19.1").crd_schema_version(), None);
    }
}
