/* Flow hash for the Maglev lookup; `src/lb/hash.rs` computes the same function (tested), so
 * userspace can predict which backend a flow gets. Murmur3's 32-bit mixing over the raw
 * (network order) words of the 5-tuple. */
#ifndef TUTOR_LB_HASH_H
#define TUTOR_LB_HASH_H

#include "lb.h"

#define LB_HASH_SEED 0x7475746fu /* "tuto" */

static __always_inline __u32 lb_rotl(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static __always_inline __u32 lb_mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51u;
	k = lb_rotl(k, 15);
	k *= 0x1b873593u;
	h ^= k;
	h = lb_rotl(h, 13);
	return h * 5 + 0xe6546b64u;
}

static __always_inline __u32 lb_fmix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static __always_inline __u32 lb_flow_hash(const struct lb_flow_key *k)
{
	__u32 h = LB_HASH_SEED;
	h = lb_mix(h, k->saddr);
	h = lb_mix(h, k->daddr);
	h = lb_mix(h, (__u32)k->sport | ((__u32)k->dport << 16));
	h = lb_mix(h, k->proto);
	return lb_fmix(h ^ 13);
}

#endif
