// SPDX-License-Identifier: GPL-2.0
/* The bundled XDP L4 load balancer (docs/architecture.md, "The XDP load balancer").
 *
 * lb_xdp (XDP, on the device clients reach the VIPs through):
 *   ARP request for an announced VIP  -> ARP reply from the device MAC, XDP_TX
 *   IPv4 TCP/UDP to a service VIP     -> DNAT to a backend (connection table, else Maglev),
 *                                        next hop from bpf_fib_lookup, XDP_TX / XDP_REDIRECT
 *                                        (no next hop known: XDP_PASS translated, the kernel routes)
 *   service without backends          -> XDP_DROP
 *   anything else                     -> XDP_PASS, bytes untouched
 * lb_rev (tc egress, same device): replies backend -> client leave towards the client through
 *   this device; their source goes back to the VIP when the conn table pins that client's flow
 *   to that backend (backend_vips lists the candidate VIPs).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb.h"
#include "lb_hash.h"
#include "lb_flows.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define ETH_P_ARP_BE bpf_htons(0x0806)
#define ETH_P_IP_BE bpf_htons(0x0800)

/* Overridden by the loader; a constant so the verifier and JIT see a fixed modulus. */
volatile const __u32 lb_maglev_size = LB_MAGLEV_SIZE_DEFAULT;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb_vip_key);
	__type(value, struct lb_service);
	__uint(max_entries, LB_MAX_SERVICES_DEFAULT);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_backend);
	__uint(max_entries, LB_MAX_BACKENDS);
} backends SEC(".maps");

/* One row of lb_maglev_size backend ids per service id. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, LB_MAX_SERVICES_DEFAULT * LB_MAGLEV_SIZE_DEFAULT);
} maglev SEC(".maps");

/* The connection table: per-CPU set-associative, LRU within a set (lb_flows.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_flow_set);
	__uint(max_entries, LB_MAX_FLOWS / LB_FLOW_WAYS);
} conn SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb_vip_key);
	__type(value, struct lb_frontends);
	__uint(max_entries, LB_MAX_BACKENDS);
} backend_vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_nexthop);
	__uint(max_entries, LB_MAX_BACKENDS);
} nexthop SEC(".maps");

/* How long a cached FIB answer is trusted: route and neighbour changes show within this. */
#define LB_NEXTHOP_TTL_NS (250ull * 1000 * 1000)

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, LB_MAX_ANNOUNCED);
} announce SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_config);
	__uint(max_entries, 1);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_counters);
	__uint(max_entries, LB_MAX_SERVICES_DEFAULT);
} svc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_counters);
	__uint(max_entries, LB_MAX_BACKENDS);
} backend_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_global_stats);
	__uint(max_entries, 1);
} global_stats SEC(".maps");

struct arp_eth_ipv4 {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[6];
	__be32 spa;
	__u8 tha[6];
	__be32 tpa;
} __attribute__((packed));

static __always_inline struct lb_global_stats *gstats(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&global_stats, &zero);
}

#define LB_NO_REASON LB_C_MAX

/* Every exit of lb_xdp goes through here, so PACKETS always equals the sum of the actions. */
static __always_inline int verdict(struct lb_global_stats *g, int action, int reason)
{
	if (g) {
		g->c[LB_C_PACKETS]++;
		if (reason != LB_NO_REASON)
			g->c[reason]++;
		switch (action) {
		case XDP_PASS: g->c[LB_C_PASS]++; break;
		case XDP_TX: g->c[LB_C_TX]++; break;
		case XDP_REDIRECT: g->c[LB_C_REDIRECT]++; break;
		default: g->c[LB_C_DROP]++; break;
		}
	}
	return action;
}

static __always_inline void count(__u64 *cell_packets, __u64 *cell_bytes, __u64 bytes)
{
	*cell_packets += 1;
	*cell_bytes += bytes;
}

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

static __always_inline int handle_arp(struct xdp_md *ctx, struct ethhdr *eth, void *end,
				      struct lb_global_stats *g)
{
	struct arp_eth_ipv4 *arp = (void *)(eth + 1);
	if ((void *)(arp + 1) > end)
		return verdict(g, XDP_PASS, LB_C_PASS_MALFORMED);
	if (arp->htype != bpf_htons(1) || arp->ptype != ETH_P_IP_BE || arp->hlen != 6 ||
	    arp->plen != 4 || arp->op != bpf_htons(1))
		return verdict(g, XDP_PASS, LB_C_PASS_NOT_VIP);
	__be32 tpa = arp->tpa, spa = arp->spa;
	if (tpa == spa || !bpf_map_lookup_elem(&announce, &tpa))
		return verdict(g, XDP_PASS, LB_C_PASS_NOT_VIP);
	__u32 zero = 0;
	struct lb_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || (cfg->ifindex && cfg->ifindex != ctx->ingress_ifindex))
		return verdict(g, XDP_PASS, LB_C_PASS_NOT_VIP);

	__builtin_memcpy(eth->h_dest, arp->sha, ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->mac, ETH_ALEN);
	arp->op = bpf_htons(2);
	__builtin_memcpy(arp->tha, arp->sha, ETH_ALEN);
	__builtin_memcpy(arp->sha, cfg->mac, ETH_ALEN);
	arp->tpa = spa;
	arp->spa = tpa;
	return verdict(g, XDP_TX, LB_C_ARP_REPLY);
}

SEC("xdp")
int lb_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct lb_global_stats *g = gstats();

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return verdict(g, XDP_PASS, LB_C_PASS_MALFORMED);
	if (eth->h_proto == ETH_P_ARP_BE)
		return handle_arp(ctx, eth, end, g);
	if (eth->h_proto != ETH_P_IP_BE)
		return verdict(g, XDP_PASS, LB_C_PASS_NOT_IPV4);

	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return verdict(g, XDP_PASS, LB_C_PASS_MALFORMED);
	if (ip->version != 4 || ip->ihl < 5)
		return verdict(g, XDP_PASS, LB_C_PASS_MALFORMED);
	if (ip->ihl != 5)
		return verdict(g, XDP_PASS, LB_C_PASS_IP_OPTIONS);
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return verdict(g, XDP_PASS, LB_C_PASS_FRAGMENT);
	__u16 tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < sizeof(*ip) || (void *)ip + tot_len > end)
		return verdict(g, XDP_PASS, LB_C_PASS_MALFORMED);

	__u16 *ports; /* [0] source, [1] destination */
	__u16 *l4check;
	__u8 proto = ip->protocol;
	if (proto == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip + 1);
		if ((void *)(tcp + 1) > end || tot_len < sizeof(*ip) + sizeof(*tcp))
			return verdict(g, XDP_PASS, LB_C_PASS_MALFORMED);
		ports = (__u16 *)tcp;
		l4check = &tcp->check;
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(ip + 1);
		if ((void *)(udp + 1) > end || tot_len < sizeof(*ip) + sizeof(*udp))
			return verdict(g, XDP_PASS, LB_C_PASS_MALFORMED);
		ports = (__u16 *)udp;
		l4check = &udp->check;
	} else {
		return verdict(g, XDP_PASS, LB_C_PASS_NOT_VIP);
	}

	struct lb_vip_key vk = { .addr = ip->daddr, .port = ports[1], .proto = proto };
	struct lb_service *svc = bpf_map_lookup_elem(&services, &vk);
	if (!svc)
		return verdict(g, XDP_PASS, LB_C_PASS_NOT_VIP);
	if (ip->ttl <= 1)
		return verdict(g, XDP_PASS, LB_C_PASS_TTL);

	struct lb_flow_key fk __attribute__((aligned(8))) = {
		.saddr = ip->saddr, .daddr = ip->daddr,
		.sport = ports[0], .dport = ports[1], .proto = proto,
	};
	__u32 svc_id = svc->id;
	struct lb_backend *be = 0;
	__u32 be_id = 0;
	int fresh = 0;
	__u32 hash = lb_flow_hash(&fk);
	__u32 set_idx = lb_flow_set_index(hash);
	__u32 clock = g ? (__u32)g->c[LB_C_PACKETS] : 0;
	struct lb_flow_set *set = bpf_map_lookup_elem(&conn, &set_idx);
	struct lb_flow_entry *c = set ? lb_set_find(set, (const __u64 *)&fk) : 0;
	int local = c != 0;
	if (!c)
		c = lb_flow_find_remote(&conn, &set_idx, (const __u64 *)&fk, bpf_get_smp_processor_id());
	if (c && c->service_id == svc_id) {
		be_id = c->backend_id;
		be = bpf_map_lookup_elem(&backends, &be_id);
		if (be && !be->addr)
			be = 0;
	}
	if (be) {
		if (local)
			c->used = clock;
		else if (set) /* recorded by another CPU: copy it here, later packets stay local */
			lb_flow_write(lb_set_victim(set, clock), &fk, be_id, svc_id, clock);
	} else {
		if (!svc->backend_count)
			return verdict(g, XDP_DROP, LB_C_DROP_NO_BACKEND);
		__u32 slot = svc_id * lb_maglev_size + hash % lb_maglev_size;
		__u32 *idp = bpf_map_lookup_elem(&maglev, &slot);
		if (!idp)
			return verdict(g, XDP_DROP, LB_C_DROP_NO_BACKEND);
		be_id = *idp;
		be = bpf_map_lookup_elem(&backends, &be_id);
		if (!be || !be->addr)
			return verdict(g, XDP_DROP, LB_C_DROP_NO_BACKEND);
		/* A stale copy on another CPU stays (only its CPU writes it); lb_rev asks every copy. */
		if (set)
			lb_flow_write(local ? c : lb_set_victim(set, clock), &fk, be_id, svc_id, clock);
		fresh = 1;
	}

	__u32 new_daddr = be->addr;
	__u16 new_dport = be->port;
	__u16 check = *l4check;
	if (proto == IPPROTO_TCP || check) {
		check = csum_replace4(check, ip->daddr, new_daddr);
		check = csum_replace2(check, ports[1], new_dport);
		if (proto == IPPROTO_UDP && !check)
			check = 0xffff;
		*l4check = check;
	}
	ip->check = csum_replace4(ip->check, ip->daddr, new_daddr);
	ip->daddr = new_daddr;
	ports[1] = new_dport;

	__u64 bytes = end - data;
	struct lb_counters *sc = bpf_map_lookup_elem(&svc_stats, &svc_id);
	if (sc)
		count(&sc->packets, &sc->bytes, bytes);
	struct lb_counters *bc = bpf_map_lookup_elem(&backend_stats, &be_id);
	if (bc)
		count(&bc->packets, &bc->bytes, bytes);
	if (g)
		g->c[fresh ? LB_C_NEW_FLOW : LB_C_ESTABLISHED]++;

	struct lb_nexthop *nh = bpf_map_lookup_elem(&nexthop, &be_id);
	if (!nh)
		return verdict(g, XDP_PASS, LB_C_PASS_NAT);
	__u64 now = bpf_ktime_get_coarse_ns();
	if (nh->daddr != new_daddr || nh->ingress != ctx->ingress_ifindex || now > nh->expires) {
		struct bpf_fib_lookup fib = {
			.family = AF_INET,
			.tos = ip->tos,
			.l4_protocol = proto,
			.sport = ports[0],
			.dport = new_dport,
			.tot_len = tot_len,
			.ipv4_src = ip->saddr,
			.ipv4_dst = new_daddr,
			.ifindex = ctx->ingress_ifindex,
		};
		if (bpf_fib_lookup(ctx, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS) {
			nh->expires = 0;
			return verdict(g, XDP_PASS, LB_C_PASS_NAT);
		}
		nh->daddr = new_daddr;
		nh->ingress = ctx->ingress_ifindex;
		nh->ifindex = fib.ifindex;
		__builtin_memcpy(nh->smac, fib.smac, ETH_ALEN);
		__builtin_memcpy(nh->dmac, fib.dmac, ETH_ALEN);
		nh->expires = now + LB_NEXTHOP_TTL_NS;
	}

	/* We forward like a router: one hop less. */
	__u16 old_ttl_word = *(__u16 *)&ip->ttl;
	ip->ttl--;
	ip->check = csum_replace2(ip->check, old_ttl_word, *(__u16 *)&ip->ttl);
	__builtin_memcpy(eth->h_dest, nh->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, nh->smac, ETH_ALEN);
	if (nh->ifindex == ctx->ingress_ifindex)
		return verdict(g, XDP_TX, LB_NO_REASON);
	return verdict(g, bpf_redirect(nh->ifindex, 0), LB_NO_REASON);
}

/* Whether some CPU's copy of the connection table pins flow `k` to backend `bk`. Every copy
 * is asked, not just the first holding the flow: after a backend was replaced, a CPU that has
 * not seen the flow since may still hold the old choice. */
static __always_inline int pinned_to(const struct lb_flow_key *k, const struct lb_vip_key *bk)
{
	__u32 idx = lb_flow_set_index(lb_flow_hash(k));
	for (__u32 cpu = 0; cpu < LB_MAX_CPUS; cpu++) {
		if (cpu >= lb_nr_cpus)
			break;
		struct lb_flow_set *s = bpf_map_lookup_percpu_elem(&conn, &idx, cpu);
		if (!s)
			break;
		struct lb_flow_entry *e = lb_set_find(s, (const __u64 *)k);
		if (!e)
			continue;
		__u32 id = e->backend_id;
		struct lb_backend *be = bpf_map_lookup_elem(&backends, &id);
		if (be && be->addr == bk->addr && be->port == bk->port)
			return 1;
	}
	return 0;
}

SEC("classifier")
int lb_rev(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != ETH_P_IP_BE)
		return TC_ACT_OK;
	if (data + sizeof(*eth) + sizeof(struct iphdr) + sizeof(struct tcphdr) > end) {
		if (bpf_skb_pull_data(skb, sizeof(*eth) + sizeof(struct iphdr) + sizeof(struct tcphdr)))
			return TC_ACT_OK;
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
	}
	struct iphdr *ip = data + sizeof(struct ethhdr);
	if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl != 5 ||
	    (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
		return TC_ACT_OK;
	__u8 proto = ip->protocol;
	__u32 l4off = sizeof(struct ethhdr) + sizeof(struct iphdr);
	__u32 check_off;
	if (proto == IPPROTO_TCP)
		check_off = l4off + offsetof(struct tcphdr, check);
	else if (proto == IPPROTO_UDP)
		check_off = l4off + offsetof(struct udphdr, check);
	else
		return TC_ACT_OK;
	__u16 *ports = (void *)(ip + 1);
	if ((void *)(ports + 2) > end)
		return TC_ACT_OK;

	struct lb_vip_key bk = { .addr = ip->saddr, .port = ports[0], .proto = proto };
	struct lb_frontends *fr = bpf_map_lookup_elem(&backend_vips, &bk);
	if (!fr)
		return TC_ACT_OK;
	__u32 new_saddr = 0;
	__u16 new_sport = 0;
	for (int i = 0; i < LB_FRONTENDS_PER_BACKEND; i++) {
		if (i >= fr->count)
			break;
		struct lb_flow_key fk __attribute__((aligned(8))) = {
			.saddr = ip->daddr, .daddr = fr->vip[i].addr,
			.sport = ports[1], .dport = fr->vip[i].port, .proto = proto,
		};
		if (pinned_to(&fk, &bk)) {
			new_saddr = fk.daddr;
			new_sport = fk.dport;
			break;
		}
	}
	if (!new_saddr)
		return TC_ACT_OK;
	__u32 old_saddr = bk.addr;
	__u16 old_sport = bk.port;

	__u64 mangled0 = proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	bpf_l4_csum_replace(skb, check_off, old_saddr, new_saddr, BPF_F_PSEUDO_HDR | mangled0 | 4);
	bpf_l4_csum_replace(skb, check_off, old_sport, new_sport, mangled0 | 2);
	bpf_l3_csum_replace(skb, sizeof(struct ethhdr) + offsetof(struct iphdr, check),
			    old_saddr, new_saddr, 4);
	bpf_skb_store_bytes(skb, sizeof(struct ethhdr) + offsetof(struct iphdr, saddr),
			    &new_saddr, 4, 0);
	bpf_skb_store_bytes(skb, l4off, &new_sport, 2, 0);

	struct lb_global_stats *g = gstats();
	if (g)
		g->c[LB_C_REV_NAT]++;
	return TC_ACT_OK;
}

/* XDP_PASS and nothing else: on the peer of a veth carrying lb_xdp it makes XDP_TX frames
 * deliver (docs/architecture.md, "Platform facts"); also the harness-overhead baseline of
 * `tutor lb bench`. */
SEC("xdp")
int lb_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
