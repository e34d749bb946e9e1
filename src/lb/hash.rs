//! The datapath's flow hash (`ebpf/lb_hash.h`), so userspace and tests can predict the Maglev
//! slot of a flow, and the hashes that place backends in Maglev permutations.

use super::maps::FlowKey;

const SEED: u32 = 0x7475_746f;

fn mix(mut h: u32, mut k: u32) -> u32 {
    k = k.wrapping_mul(0xcc9e_2d51).rotate_left(15).wrapping_mul(0x1b87_3593);
    h ^= k;
    h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64)
}

fn fmix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// `lb_flow_hash` of `ebpf/lb_hash.h`, bit for bit.
pub fn flow_hash(k: &FlowKey) -> u32 {
    let mut h = SEED;
    h = mix(h, k.saddr);
    h = mix(h, k.daddr);
    h = mix(h, u32::from(k.sport) | (u32::from(k.dport) << 16));
    h = mix(h, u32::from(k.proto));
    fmix(h ^ 13)
}

/// Murmur3 over a few words with a seed: the two independent hashes Maglev needs per backend.
pub fn words_hash(seed: u32, words: &[u32]) -> u32 {
    let h = words.iter().fold(seed, |h, &w| mix(h, w));
    fmix(h ^ (words.len() as u32 * 4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn flow_hash_depends_on_every_field() {
        let base = FlowKey::new(Ipv4Addr::new(10, 0, 0, 1), 1000, Ipv4Addr::new(10, 0, 0, 2), 80, 6);
        let h = flow_hash(&base);
        let variants = [
            FlowKey { saddr: base.saddr ^ 1, ..base },
            FlowKey { daddr: base.daddr ^ 1, ..base },
            FlowKey { sport: base.sport ^ 1, ..base },
            FlowKey { dport: base.dport ^ 1, ..base },
            FlowKey { proto: 17, ..base },
        ];
        for v in variants {
            assert_ne!(flow_hash(&v), h, "{v:?}");
        }
        assert_eq!(flow_hash(&base), h);
    }
}
