//! Cluster names, and the two-way mapping between the names a tutorial was written with
//! (`kind`, `kind-worker`, `kind-kind`) and the run's uniquely named cluster
//! (`tutor-<run>`, `tutor-<run>-worker`, `kind-tutor-<run>`).
//!
//! Tutorials are written against kind's default cluster name (that is what the lab mimics and
//! what readers type), but every run here gets its own cluster so that runs never collide with
//! each other or with the user's own `kind` cluster. Scripts are rewritten towards the real
//! names, outputs back towards the tutorial's, so expected outputs stay portable.

/// kind refuses longer names; node containers append `-control-plane` and need to stay valid
/// hostnames, so stay well below kind's limit.
pub const MAX_CLUSTER_NAME: usize = 40;

/// The cluster name kind uses when none is given.
pub const KIND_DEFAULT_NAME: &str = "kind";

/// A kind cluster name for a run: `tutor-<run_name>` reduced to `[a-z0-9-]`. Runs whose names
/// are too long keep a hash of the full name so that they stay distinct.
pub fn cluster_name(run_name: &str) -> String {
    let mut cleaned = String::with_capacity(run_name.len());
    for c in run_name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            cleaned.push(c);
        } else if !cleaned.ends_with('-') {
            cleaned.push('-');
        }
    }
    let cleaned = cleaned.trim_matches('-');
    let base = match cleaned.strip_prefix("tutor-") {
        Some(rest) if !rest.is_empty() => format!("tutor-{rest}"),
        _ if cleaned.is_empty() || cleaned == "tutor" => "tutor-run".to_string(),
        _ => format!("tutor-{cleaned}"),
    };
    if base.len() <= MAX_CLUSTER_NAME {
        return base;
    }
    let hash = format!("{:08x}", fnv1a(run_name.as_bytes()) as u32);
    let keep = MAX_CLUSTER_NAME - hash.len() - 1;
    format!("{}-{hash}", base[..keep].trim_end_matches('-'))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// Maps names between the tutorial's view and the run's real cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameMap {
    /// The cluster name the tutorial was written for (`kind` unless it asked for another).
    pub alias: String,
    /// The run's real cluster name.
    pub real: String,
    /// Node name suffixes that exist (`control-plane`, `worker`, `worker2`, …).
    suffixes: Vec<String>,
}

impl NameMap {
    pub fn new(alias: impl Into<String>, real: impl Into<String>) -> Self {
        NameMap { alias: alias.into(), real: real.into(), suffixes: Vec::new() }
    }

    /// Whether any rewriting happens at all (a run may be told to use the tutorial's name).
    pub fn is_identity(&self) -> bool {
        self.alias == self.real
    }

    /// Record the run's nodes (real container names) so scripts naming them can be rewritten.
    pub fn set_nodes<'a>(&mut self, real_nodes: impl IntoIterator<Item = &'a str>) {
        let prefix = format!("{}-", self.real);
        self.suffixes = real_nodes.into_iter().filter_map(|n| n.strip_prefix(&prefix).map(str::to_string)).collect();
        // Longest first, so `worker2` is never seen as `worker` + "2".
        self.suffixes.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        self.suffixes.dedup();
    }

    /// The tutorial's name of a real node (`tutor-x-worker` → `kind-worker`).
    pub fn node_alias(&self, real_node: &str) -> String {
        match real_node.strip_prefix(&format!("{}-", self.real)) {
            Some(suffix) => format!("{}-{suffix}", self.alias),
            None => real_node.to_string(),
        }
    }

    /// The real node a tutorial's node name stands for, if it is one of the run's nodes.
    pub fn node_real(&self, name: &str) -> Option<String> {
        let suffix = name.strip_prefix(&format!("{}-", self.alias))?;
        self.suffixes.iter().any(|s| s == suffix).then(|| format!("{}-{suffix}", self.real))
    }

    /// Rewrite a script from the tutorial's names to the run's: node names and the kubeconfig
    /// context `kind-<alias>`. Only whole names are replaced (`kind-worker` is left alone inside
    /// `my-kind-worker` or `kind-worker2`), and never the bare word `kind` (the command).
    pub fn to_real(&self, script: &str) -> String {
        if self.is_identity() {
            return script.to_string();
        }
        let mut out = script.to_string();
        for suffix in &self.suffixes {
            out = replace_word(&out, &format!("{}-{suffix}", self.alias), &format!("{}-{suffix}", self.real));
        }
        replace_word(&out, &format!("kind-{}", self.alias), &format!("kind-{}", self.real))
    }

    /// Rewrite output from the run's names back to the tutorial's. The real name is unique to
    /// this run, so every occurrence of it means this cluster.
    pub fn to_alias(&self, output: &str) -> String {
        if self.is_identity() {
            return output.to_string();
        }
        if self.real.len() == self.alias.len() || !output.contains(&self.real) {
            return output.replace(&self.real, &self.alias);
        }
        // Tables (kubectl's columns) are laid out again: a column whose cells got shorter or
        // longer names is as wide as kubectl would have made it for the tutorial's names.
        let lines: Vec<&str> = output.split_inclusive('\n').collect();
        let mut out = String::with_capacity(output.len());
        let mut i = 0;
        while i < lines.len() {
            if let Some(starts) = header_columns(lines[i]) {
                let mut end = i + 1;
                while end < lines.len() && fits(lines[end], &starts) {
                    end += 1;
                }
                if end > i + 1 && lines[i..end].iter().any(|l| l.contains(&self.real)) {
                    out.push_str(&self.relayout(&lines[i..end], &starts));
                    i = end;
                    continue;
                }
            }
            out.push_str(&lines[i].replace(&self.real, &self.alias));
            i += 1;
        }
        out
    }

    /// `rows` (a header and its rows, columns starting at `starts`) with the names replaced and
    /// the columns that changed resized, keeping each column's padding.
    fn relayout(&self, rows: &[&str], starts: &[usize]) -> String {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|l| {
                let body = l.trim_end_matches('\n');
                (0..starts.len())
                    .map(|k| {
                        let from = starts[k].min(body.len());
                        let to = starts.get(k + 1).map_or(body.len(), |&e| e.min(body.len()));
                        body[from..to].trim_end().to_string()
                    })
                    .collect()
            })
            .collect();
        let mapped: Vec<Vec<String>> =
            cells.iter().map(|r| r.iter().map(|c| c.replace(&self.real, &self.alias)).collect()).collect();
        let widths: Vec<usize> = (0..starts.len().saturating_sub(1))
            .map(|k| {
                let width = starts[k + 1] - starts[k];
                if cells.iter().zip(&mapped).all(|(a, b)| a[k] == b[k]) {
                    return width;
                }
                let before = cells.iter().map(|r| r[k].len()).max().unwrap_or(0);
                let after = mapped.iter().map(|r| r[k].len()).max().unwrap_or(0);
                after + (width - before)
            })
            .collect();
        let mut out = String::new();
        for (row, line) in mapped.iter().zip(rows) {
            let mut text = String::new();
            for (k, cell) in row.iter().enumerate() {
                text.push_str(cell);
                if k + 1 < row.len() && row[k + 1..].iter().any(|c| !c.is_empty()) {
                    text.push_str(&" ".repeat(widths[k].saturating_sub(cell.len())));
                }
            }
            out.push_str(text.trim_end());
            if line.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }
}

/// The column starts of a kubectl table header (`NAME   STATUS   ROLES …`): upper-case words
/// separated by at least two spaces; `None` for anything else.
fn header_columns(line: &str) -> Option<Vec<usize>> {
    let body = line.trim_end_matches('\n');
    if !body.is_ascii()
        || body.starts_with(' ')
        || !body.chars().any(|c| c.is_ascii_uppercase())
        || !body.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || " -_()/.".contains(c))
    {
        return None;
    }
    let b = body.as_bytes();
    let mut starts = vec![0];
    for i in 2..b.len() {
        if b[i] != b' ' && b[i - 1] == b' ' && b[i - 2] == b' ' {
            starts.push(i);
        }
    }
    (starts.len() >= 2).then_some(starts)
}

/// Whether a row lines up with the header's columns: printable text reaching into the second
/// column, a space before each column start it reaches (the later cells may be empty). A
/// shorter line is text after the table, or the runner's marker line between two commands.
fn fits(line: &str, starts: &[usize]) -> bool {
    let body = line.trim_end_matches('\n').as_bytes();
    body.len() > starts[1]
        && body.iter().all(|b| (b' '..=b'~').contains(b))
        && starts[1..].iter().all(|&s| s >= body.len() || (body[s - 1] == b' ' && body[s] != b' '))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

/// Replace whole-name occurrences of `from` (not preceded or followed by a name character;
/// a trailing `.` is allowed so that `kind-worker.` at a sentence end still counts).
fn replace_word(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(from) {
        let before = if pos > 0 { rest[..pos].chars().last() } else { out.chars().last() };
        let after = rest[pos + from.len()..].chars().next();
        let whole = !before.is_some_and(is_name_char) && !after.is_some_and(|c| is_name_char(c) && c != '.');
        out.push_str(&rest[..pos]);
        out.push_str(if whole { to } else { from });
        rest = &rest[pos + from.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_laid_out_for_the_tutorials_names() {
        let mut m = NameMap::new("kind", "tutor-abc123");
        m.set_nodes(["tutor-abc123-control-plane", "tutor-abc123-worker"]);
        let real = "NAME                         STATUS   ROLES           AGE    VERSION\n\
                    tutor-abc123-control-plane   Ready    control-plane   112s   v1.33.1\n\
                    tutor-abc123-worker          Ready    <none>          95s    v1.33.1\n\
                    done\n";
        assert_eq!(
            m.to_alias(real),
            "NAME                 STATUS   ROLES           AGE    VERSION\n\
             kind-control-plane   Ready    control-plane   112s   v1.33.1\n\
             kind-worker          Ready    <none>          95s    v1.33.1\n\
             done\n"
        );
        // Not a table: replaced in place.
        assert_eq!(m.to_alias("Deleted nodes: [\"tutor-abc123-worker\"]\n"), "Deleted nodes: [\"kind-worker\"]\n");
    }

    /// A table ends at the first line that is not one of its rows: a line shorter than the
    /// second column's start (such as the per-command marker line of a host block's script,
    /// `\x1etutor-<nonce>:0\x1e`, 26 characters) is not a row, and neither is a line holding
    /// control characters. (kubernetes-basics.md on real kind: the marker line was taken for a
    /// row whose 26-character NAME cell kept the column as wide as the run's names.)
    #[test]
    fn a_table_ends_before_a_line_that_is_no_row() {
        let mut m = NameMap::new("kind", "tutor-abc123");
        m.set_nodes(["tutor-abc123-control-plane", "tutor-abc123-worker"]);
        let real = "NAME                         STATUS   ROLES           AGE    VERSION\n\
                    tutor-abc123-control-plane   Ready    control-plane   107s   v1.33.1\n\
                    tutor-abc123-worker          Ready    <none>          94s    v1.33.1\n\
                    \u{1e}tutor-0123456789abcdef:0\u{1e}\n\
                    NAME      READY   UP-TO-DATE   AVAILABLE   AGE\n\
                    coredns   2/2     2            2           103s\n\
                    a line of text after the table\n";
        assert_eq!(
            m.to_alias(real),
            "NAME                 STATUS   ROLES           AGE    VERSION\n\
             kind-control-plane   Ready    control-plane   107s   v1.33.1\n\
             kind-worker          Ready    <none>          94s    v1.33.1\n\
             \u{1e}tutor-0123456789abcdef:0\u{1e}\n\
             NAME      READY   UP-TO-DATE   AVAILABLE   AGE\n\
             coredns   2/2     2            2           103s\n\
             a line of text after the table\n"
        );
        // Text after a table, longer than the names, stays out of it.
        let real = "NAME                  STATUS\n\
                    tutor-abc123-worker   Ready\n\
                    the nodes are ready now, all of them\n";
        assert_eq!(
            m.to_alias(real),
            "NAME          STATUS\nkind-worker   Ready\nthe nodes are ready now, all of them\n"
        );
    }

    #[test]
    fn cluster_names_are_prefixed_and_cleaned() {
        assert_eq!(cluster_name("native-routing-3f2a"), "tutor-native-routing-3f2a");
        assert_eq!(cluster_name("tutor-abc"), "tutor-abc");
        assert_eq!(cluster_name("Native Routing_01!"), "tutor-native-routing-01");
        assert_eq!(cluster_name("--"), "tutor-run");
        assert_eq!(cluster_name(""), "tutor-run");
    }

    #[test]
    fn long_cluster_names_are_cut_but_stay_distinct() {
        let a = cluster_name("a-very-long-tutorial-name-that-goes-on-and-on-run-1");
        let b = cluster_name("a-very-long-tutorial-name-that-goes-on-and-on-run-2");
        assert!(a.len() <= MAX_CLUSTER_NAME, "{a}");
        assert!(b.len() <= MAX_CLUSTER_NAME, "{b}");
        assert_ne!(a, b);
        assert!(a.starts_with("tutor-a-very-long"));
        assert!(a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        assert!(!a.contains("--"));
    }

    fn map() -> NameMap {
        let mut m = NameMap::new("kind", "tutor-r1");
        m.set_nodes(["tutor-r1-control-plane", "tutor-r1-worker", "tutor-r1-worker2"]);
        m
    }

    #[test]
    fn scripts_get_real_node_names() {
        let m = map();
        assert_eq!(
            m.to_real("docker exec kind-worker ip route; kubectl describe node kind-worker2"),
            "docker exec tutor-r1-worker ip route; kubectl describe node tutor-r1-worker2"
        );
        assert_eq!(m.to_real("kubectl --context kind-kind get po"), "kubectl --context kind-tutor-r1 get po");
        // The command itself and look-alike names stay.
        assert_eq!(m.to_real("kind create cluster"), "kind create cluster");
        assert_eq!(m.to_real("my-kind-worker kind-worker3 kind-workers"), "my-kind-worker kind-worker3 kind-workers");
        assert_eq!(m.to_real("ssh kind-control-plane."), "ssh tutor-r1-control-plane.");
        assert_eq!(m.to_real("kind-worker,kind-worker2"), "tutor-r1-worker,tutor-r1-worker2");
    }

    #[test]
    fn outputs_get_the_tutorials_names() {
        let m = map();
        let out =
            "tutor-r1-control-plane   Ready\ntutor-r1-worker2   NotReady\nSet kubectl context to \"kind-tutor-r1\"\n";
        assert_eq!(
            m.to_alias(out),
            "kind-control-plane   Ready\nkind-worker2   NotReady\nSet kubectl context to \"kind-kind\"\n"
        );
    }

    #[test]
    fn node_names_resolve_both_ways() {
        let m = map();
        assert_eq!(m.node_real("kind-worker2").as_deref(), Some("tutor-r1-worker2"));
        assert_eq!(m.node_real("kind-worker9"), None);
        assert_eq!(m.node_real("tutor-r1-worker"), None);
        assert_eq!(m.node_alias("tutor-r1-control-plane"), "kind-control-plane");
        assert_eq!(m.node_alias("elsewhere"), "elsewhere");
    }

    #[test]
    fn identity_map_changes_nothing() {
        let mut m = NameMap::new("kind", "kind");
        m.set_nodes(["kind-worker"]);
        assert!(m.is_identity());
        assert_eq!(m.to_real("docker exec kind-worker true"), "docker exec kind-worker true");
        assert_eq!(m.to_alias("kind-worker"), "kind-worker");
    }
}
