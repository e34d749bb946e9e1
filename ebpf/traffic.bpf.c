// SPDX-License-Identifier: GPL-2.0
/* The packet-rate benchmark's two programs (`tutor lb bench --traffic`).
 *
 * tg_gen (XDP, run by BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES): the traffic
 *   generator. Every run writes the template header over the frame (the frame's page may come
 *   back from an earlier packet that a datapath rewrote), sets flow n % flows's source address
 *   and port and the packet's sequence number (TCP sequence number, or the first 4 bytes of the
 *   UDP payload), fixes the checksums incrementally and returns XDP_TX: the kernel sends the
 *   frame out of the test run's ingress device, a veth, whose peer receives it.
 * tg_fwd (XDP, on the node's eth0 in the forward-only turn): redirects every frame to the device
 *   in fwd_cfg[0] untouched: what a veth hop costs without any load balancing.
 * tg_count (XDP, on each backend's device): counts the packets addressed to a known backend
 *   address and port (slot from the `slots` map; slot 0 counts a known address on the wrong
 *   port), optionally records each sequence number in a per-CPU bitmap to catch a packet
 *   delivered twice, and drops them (the backend is a sink). Everything else passes.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "traffic.h"

#define ETH_P_IP_BE bpf_htons(0x0800)

/* Overridden by the loader: words of the sequence bitmap, a power of two (0: no bitmap). */
volatile const __u32 tg_seen_words = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct tg_config);
	__uint(max_entries, 1);
} gen_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct tg_state);
	__uint(max_entries, 1);
} gen_state SEC(".maps");

/* backend address (network byte order) -> its slot in `counts` and its port */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct tg_slot);
	__uint(max_entries, TG_MAX_SLOTS);
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct tg_counts);
	__uint(max_entries, TG_MAX_SLOTS);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} fwd_cfg SEC(".maps");

/* Bit (seq & 63) of word (seq >> 6) & (tg_seen_words - 1): sequence numbers seen by this CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} seen SEC(".maps");

/* RFC 1624 incremental update on raw 16-bit words: byte order does not matter. */
static __always_inline __u16 csum_replace4(__u16 check, __u32 from, __u32 to)
{
	__u32 s = (__u16)~check;
	s += (~from & 0xffff) + (~from >> 16);
	s += (to & 0xffff) + (to >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~s & 0xffff;
}

static __always_inline __u16 csum_replace2(__u16 check, __u16 from, __u16 to)
{
	__u32 s = (__u16)~check;
	s += (__u16)~from;
	s += to;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~s & 0xffff;
}

#define L4_OFF (sizeof(struct ethhdr) + sizeof(struct iphdr))

SEC("xdp")
int tg_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct tg_config *cfg = bpf_map_lookup_elem(&gen_cfg, &zero);
	struct tg_state *st = bpf_map_lookup_elem(&gen_state, &zero);
	if (!cfg || !st || data + TG_HEADER_COPY > end)
		return XDP_ABORTED;
	__u64 n = st->next++;

	__u64 *dst = data;
	const __u64 *src = (const __u64 *)cfg->header;
#pragma unroll
	for (int i = 0; i < TG_HEADER_COPY / 8; i++)
		dst[i] = src[i];

	__u32 flows = cfg->flows ? cfg->flows : 1;
	__u32 f = (__u32)(n % flows);
	__u32 saddr = bpf_htonl(cfg->saddr + (f >> TG_PORT_BITS));
	__u16 sport = bpf_htons((__u16)(cfg->sport + (f & ((1u << TG_PORT_BITS) - 1))));
	__u32 seq = bpf_htonl((__u32)n);

	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u32 old_saddr = ip->saddr;
	ip->saddr = saddr;
	ip->check = csum_replace4(ip->check, old_saddr, saddr);

	if (cfg->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = data + L4_OFF;
		__u16 check = tcp->check;
		check = csum_replace4(check, old_saddr, saddr);
		check = csum_replace2(check, tcp->source, sport);
		check = csum_replace4(check, tcp->seq, seq);
		tcp->source = sport;
		tcp->seq = seq;
		tcp->check = check;
	} else {
		struct udphdr *udp = data + L4_OFF;
		__u32 *payload = (void *)(udp + 1);
		__u16 check = udp->check;
		if (check) {
			check = csum_replace4(check, old_saddr, saddr);
			check = csum_replace2(check, udp->source, sport);
			check = csum_replace4(check, *payload, seq);
			udp->check = check ? check : 0xffff;
		}
		udp->source = sport;
		*payload = seq;
	}
	return XDP_TX;
}

SEC("xdp")
int tg_fwd(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u32 *ifindex = bpf_map_lookup_elem(&fwd_cfg, &zero);
	if (!ifindex || !*ifindex)
		return XDP_DROP;
	return bpf_redirect(*ifindex, 0);
}

SEC("xdp")
int tg_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != ETH_P_IP_BE)
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5)
		return XDP_PASS;
	__u16 dport;
	__u32 seq;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip + 1);
		if ((void *)(tcp + 1) > end)
			return XDP_PASS;
		dport = tcp->dest;
		seq = tcp->seq;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(ip + 1);
		__u32 *payload = (void *)(udp + 1);
		if ((void *)(payload + 1) > end)
			return XDP_PASS;
		dport = udp->dest;
		seq = *payload;
	} else {
		return XDP_PASS;
	}
	__u32 daddr = ip->daddr;
	struct tg_slot *s = bpf_map_lookup_elem(&slots, &daddr);
	if (!s)
		return XDP_PASS;
	__u32 slot = s->port == dport ? s->slot : 0;
	struct tg_counts *c = bpf_map_lookup_elem(&counts, &slot);
	if (!c)
		return XDP_DROP;
	c->packets++;
	c->bytes += end - data;
	if (tg_seen_words) {
		__u32 n = bpf_ntohl(seq);
		__u32 w = (n >> 6) & (tg_seen_words - 1);
		__u64 *word = bpf_map_lookup_elem(&seen, &w);
		if (word) {
			__u64 bit = 1ull << (n & 63);
			if (*word & bit)
				c->duplicates++;
			else
				*word |= bit;
		}
	}
	return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
