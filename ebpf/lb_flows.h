/* The connection table's operations (struct lb_flow_set in lb.h): find a flow in the local
 * CPU's set, in the other CPUs' copies of that set, and record one in the local set.
 *
 * Why not an LRU hash map: its insert costs ≈ 430 ns into a full 65536-entry table on these
 * machines (cache misses behind bucket spinlocks, batch evictions). Here a new flow costs two
 * cold sets (this CPU's and, on a miss, the others') and no lock. The price: a set of
 * LB_FLOW_WAYS evicts its least recently used flow as soon as a fifth flow hashes to it, even
 * while other sets have room: with random flows the first evictions come about a tenth full,
 * and after as many flows as its size the table holds about 80 % of them.
 *
 * Each CPU writes only its own copy. Readers on other CPUs may race a write: a way is freed
 * (proto 0) first and gets its proto back last, with compiler barriers between, so on x86
 * (stores and loads each in order) a reader that matches the whole key also reads the
 * backend written with it. */
#ifndef TUTOR_LB_FLOWS_H
#define TUTOR_LB_FLOWS_H

#include <bpf/bpf_helpers.h>
#include "lb.h"
#include "lb_hash.h"

/* Overridden by the loader: sets per CPU - 1 (a power of two - 1), and possible CPUs. */
volatile const __u32 lb_flow_mask = LB_MAX_FLOWS / LB_FLOW_WAYS - 1;
volatile const __u32 lb_nr_cpus = 1;

#define lb_barrier() asm volatile("" ::: "memory")

/* The set a flow lives in; other bits of the hash than the Maglev slot's low ones. */
static __always_inline __u32 lb_flow_set_index(__u32 hash)
{
	return lb_rotl(hash, 16) & lb_flow_mask;
}

/* Keys compared as two 8-byte words: the key is 16 bytes, 8-aligned in a way. */
static __always_inline struct lb_flow_entry *lb_set_find(struct lb_flow_set *s, const __u64 *k)
{
#pragma unroll
	for (int i = 0; i < LB_FLOW_WAYS; i++) {
		const __u64 *w = (const __u64 *)&s->way[i].key;
		if (w[0] == k[0] && w[1] == k[1])
			return &s->way[i];
	}
	return 0;
}

/* The flow in another CPU's copy of set `*idx` (not `self`'s). */
static __always_inline struct lb_flow_entry *lb_flow_find_remote(void *table, __u32 *idx,
								  const __u64 *k, __u32 self)
{
	for (__u32 cpu = 0; cpu < LB_MAX_CPUS; cpu++) {
		if (cpu >= lb_nr_cpus)
			break;
		if (cpu == self)
			continue;
		struct lb_flow_set *s = bpf_map_lookup_percpu_elem(table, idx, cpu);
		if (!s)
			break;
		struct lb_flow_entry *e = lb_set_find(s, k);
		if (e)
			return e;
	}
	return 0;
}

/* The way a new flow takes: a free one, else the least recently used (ages wrap safely). */
static __always_inline struct lb_flow_entry *lb_set_victim(struct lb_flow_set *s, __u32 clock)
{
	struct lb_flow_entry *v = &s->way[0];
	__u32 oldest = 0;
#pragma unroll
	for (int i = 0; i < LB_FLOW_WAYS; i++) {
		if (!s->way[i].key.proto)
			return &s->way[i];
		__u32 age = clock - s->way[i].used;
		if (age >= oldest) {
			oldest = age;
			v = &s->way[i];
		}
	}
	return v;
}

static __always_inline void lb_flow_write(struct lb_flow_entry *e, const struct lb_flow_key *k,
					  __u32 backend_id, __u32 service_id, __u32 clock)
{
	e->key.proto = 0;
	lb_barrier();
	e->backend_id = backend_id;
	e->service_id = service_id;
	e->used = clock;
	e->key.saddr = k->saddr;
	e->key.daddr = k->daddr;
	e->key.sport = k->sport;
	e->key.dport = k->dport;
	lb_barrier();
	e->key.proto = k->proto;
}

#endif
