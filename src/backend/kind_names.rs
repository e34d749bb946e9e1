//! kind's node naming rule, shared by the kind backend (which predicts kind's containers) and
//! the lab (which names its nodes as kind would).

use std::collections::HashMap;

/// `<cluster>-<role>` for the first node of a role, then `<cluster>-<role>2`, `…3`, in order.
pub fn node_names<'a>(cluster: &str, roles: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    roles
        .into_iter()
        .map(|role| {
            let n = counts.entry(role).or_insert(0);
            *n += 1;
            if *n == 1 { format!("{cluster}-{role}") } else { format!("{cluster}-{role}{n}") }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbered_per_role() {
        let names = super::node_names("kind", ["control-plane", "worker", "worker", "control-plane"]);
        assert_eq!(names, ["kind-control-plane", "kind-worker", "kind-worker2", "kind-control-plane2"]);
    }
}
