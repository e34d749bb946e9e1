//! Maglev lookup tables (Eisenbud et al., NSDI 2016): each backend walks its own permutation
//! of the table (offset/skip from two hashes of its address) and the backends take turns
//! claiming their next free slot, so every backend gets an almost equal share.
//!
//! On top of the paper's construction, a rebuild is made *sticky* against the table it
//! replaces: a slot that belonged to a surviving backend keeps it unless the fresh table gives
//! the slot to a newly added backend. So removing a backend moves only that backend's flows
//! (≈1/N), adding one moves flows only to the newcomer, and no flow ever moves between two
//! backends that stay.

use std::collections::HashSet;

use super::hash::words_hash;

/// Identifies a backend in a table: its id in the `backends` map and the bytes that place it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaglevBackend {
    pub id: u32,
    /// Address and port as stored in the map; the permutation depends only on these.
    pub addr: u32,
    pub port: u16,
}

/// Slot value of a table without backends (backend ids start at 1).
pub const EMPTY: u32 = 0;

pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u64;
    while d * d <= u64::from(n) {
        if u64::from(n) % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

/// The table of `size` slots (a prime larger than the number of backends) for `backends`,
/// sticky against `previous` when given (see the module documentation).
pub fn build(size: u32, backends: &[MaglevBackend], previous: Option<&[u32]>) -> Vec<u32> {
    let fresh = fresh(size, backends);
    let Some(previous) = previous else { return fresh };
    let before: HashSet<u32> = previous.iter().copied().filter(|&id| id != EMPTY).collect();
    let now: HashSet<u32> = backends.iter().map(|b| b.id).collect();
    let survivor = |id: u32| before.contains(&id) && now.contains(&id);
    fresh.iter().zip(previous).map(|(&new, &old)| if survivor(old) && survivor(new) { old } else { new }).collect()
}

fn fresh(size: u32, backends: &[MaglevBackend]) -> Vec<u32> {
    let m = u64::from(size);
    let mut table = vec![EMPTY; size as usize];
    if backends.is_empty() {
        return table;
    }
    // The population order must not depend on the caller's order.
    let mut sorted = backends.to_vec();
    sorted.sort_by_key(|b| (b.addr.swap_bytes(), b.port.swap_bytes(), b.id));
    let perm: Vec<(u64, u64)> = sorted
        .iter()
        .map(|b| {
            let words = [b.addr, u32::from(b.port)];
            let offset = u64::from(words_hash(0x6d61_676c, &words)) % m;
            let skip = u64::from(words_hash(0x6576_6d61, &words)) % (m - 1) + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; sorted.len()];
    let mut filled = 0u64;
    'fill: loop {
        for (i, b) in sorted.iter().enumerate() {
            let (offset, skip) = perm[i];
            let mut slot = (offset + next[i] * skip) % m;
            while table[slot as usize] != EMPTY {
                next[i] += 1;
                slot = (offset + next[i] * skip) % m;
            }
            table[slot as usize] = b.id;
            next[i] += 1;
            filled += 1;
            if filled == m {
                break 'fill;
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const M: u32 = 65537;

    fn backends(n: u32) -> Vec<MaglevBackend> {
        (1..=n)
            .map(|i| MaglevBackend { id: i, addr: u32::from_ne_bytes([10, 0, 1, i as u8]), port: 8080u16.to_be() })
            .collect()
    }

    fn shares(t: &[u32]) -> HashMap<u32, usize> {
        let mut h = HashMap::new();
        for &id in t {
            *h.entry(id).or_default() += 1;
        }
        h
    }

    #[test]
    fn primes() {
        assert!(is_prime(65537) && is_prime(251) && is_prime(2) && !is_prime(65535) && !is_prime(1));
    }

    #[test]
    fn fills_every_slot_almost_evenly() {
        for n in [1u32, 2, 3, 7, 10] {
            let t = build(M, &backends(n), None);
            let s = shares(&t);
            assert!(!s.contains_key(&EMPTY));
            assert_eq!(s.len(), n as usize);
            let ideal = f64::from(M) / f64::from(n);
            for (&id, &count) in &s {
                assert!((count as f64 - ideal).abs() / ideal < 0.02, "n={n} id={id} count={count}");
            }
        }
    }

    #[test]
    fn independent_of_input_order() {
        let mut b = backends(5);
        let t1 = build(M, &b, None);
        b.reverse();
        assert_eq!(t1, build(M, &b, None));
    }

    #[test]
    fn empty_set_gives_empty_table() {
        assert!(build(251, &[], None).iter().all(|&s| s == EMPTY));
    }

    #[test]
    fn removal_moves_only_the_removed_backends_flows() {
        for n in [3u32, 5, 10] {
            let all = backends(n);
            let before = build(M, &all, None);
            let removed = 2;
            let rest: Vec<_> = all.iter().copied().filter(|b| b.id != removed).collect();
            let after = build(M, &rest, Some(&before));
            let mut moved = 0;
            for (&b, &a) in before.iter().zip(&after) {
                if b != a {
                    moved += 1;
                    assert_eq!(b, removed, "a flow moved between survivors {b} -> {a}");
                }
                assert_ne!(a, removed);
            }
            let fraction = f64::from(moved) / f64::from(M);
            assert!((fraction - 1.0 / f64::from(n)).abs() < 0.01, "n={n}: {fraction}");
            // The survivors still share the table evenly.
            let ideal = f64::from(M) / f64::from(n - 1);
            for count in shares(&after).values() {
                assert!((*count as f64 - ideal).abs() / ideal < 0.05, "{count} vs {ideal}");
            }
        }
    }

    #[test]
    fn addition_moves_flows_only_to_the_new_backend() {
        let old = backends(4);
        let before = build(M, &old, None);
        let all = backends(5);
        let after = build(M, &all, Some(&before));
        let mut moved = 0;
        for (&b, &a) in before.iter().zip(&after) {
            if b != a {
                moved += 1;
                assert_eq!(a, 5, "a flow moved between existing backends {b} -> {a}");
            }
        }
        let fraction = f64::from(moved) / f64::from(M);
        assert!((fraction - 0.2).abs() < 0.01, "{fraction}");
    }
}
