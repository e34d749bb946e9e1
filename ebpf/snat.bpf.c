// SPDX-License-Identifier: GPL-2.0
/* The lab's BPF masquerade (Cilium's bpf.masquerade + ip-masq-agent, with BPF host routing).
 *
 * from_pod  — tc ingress on every pod's lxc device in a node: traffic to the native-routing
 *             CIDR, the service subnet or the node itself goes on through the kernel; anything
 *             else is SNATed to the node's address (unless its destination is in the ipmasq
 *             LPM map) and redirected straight to eth0 with bpf_redirect_neigh, past the node's
 *             netfilter — which is why kind's DOCKER_OUTPUT DNAT no longer applies.
 * to_node   — tc ingress on the node's eth0: replies to a NATed port are translated back to the
 *             pod's address and port and handed to the kernel, which routes them to the pod.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "snat.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct snat_config);
} snat_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipmasq_key);
	__type(value, __u8);
} ipmasq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct snat_fwd_key);
	__type(value, __u16);
} snat_fwd SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct snat_rev_key);
	__type(value, struct snat_rev_val);
} snat_rev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct lb_backend_key);
	__type(value, __u8);
} lb_backends SEC(".maps");

#define IP_OFF ETH_HLEN
#define IP_CSUM_OFF (IP_OFF + offsetof(struct iphdr, check))
#define IP_SRC_OFF (IP_OFF + offsetof(struct iphdr, saddr))
#define IP_DST_OFF (IP_OFF + offsetof(struct iphdr, daddr))
#define NAT_PORT_TRIES 16

struct flow {
	__u32 l4_off;
	__u32 csum_off;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 csum_flags;
};

/* An unfragmented IPv4 TCP/UDP packet: its ports and where its checksum sits. */
static __always_inline int parse(struct __sk_buff *skb, struct iphdr **iph_out, struct flow *f)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = data + ETH_HLEN;

	if ((void *)(iph + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	if (iph->ihl != 5 || (iph->frag_off & bpf_htons(0x3fff)))
		return -1;
	f->l4_off = ETH_HLEN + sizeof(*iph);
	f->proto = iph->protocol;
	if (iph->protocol == IPPROTO_TCP) {
		struct tcphdr *th = (void *)(iph + 1);
		if ((void *)(th + 1) > end)
			return -1;
		f->sport = th->source;
		f->dport = th->dest;
		f->csum_off = f->l4_off + offsetof(struct tcphdr, check);
		f->csum_flags = 0;
	} else if (iph->protocol == IPPROTO_UDP) {
		struct udphdr *uh = (void *)(iph + 1);
		if ((void *)(uh + 1) > end)
			return -1;
		f->sport = uh->source;
		f->dport = uh->dest;
		f->csum_off = f->l4_off + offsetof(struct udphdr, check);
		f->csum_flags = BPF_F_MARK_MANGLED_0;
	} else {
		return -1;
	}
	*iph_out = iph;
	return 0;
}

/* Rewrite one address (at addr_off) and one port (at port_off), fixing both checksums. */
static __always_inline int rewrite(struct __sk_buff *skb, struct flow *f, __u32 addr_off, __u32 old_ip,
				   __u32 new_ip, __u32 port_off, __u16 old_port, __u16 new_port)
{
	if (bpf_l4_csum_replace(skb, f->csum_off, old_ip, new_ip, BPF_F_PSEUDO_HDR | sizeof(new_ip) | f->csum_flags))
		return -1;
	if (old_port != new_port &&
	    bpf_l4_csum_replace(skb, f->csum_off, old_port, new_port, sizeof(new_port) | f->csum_flags))
		return -1;
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_ip, new_ip, sizeof(new_ip)))
		return -1;
	if (bpf_skb_store_bytes(skb, addr_off, &new_ip, sizeof(new_ip), 0))
		return -1;
	if (bpf_skb_store_bytes(skb, port_off, &new_port, sizeof(new_port), 0))
		return -1;
	return 0;
}

static __always_inline int in_net(__u32 ip, __u32 net, __u32 mask)
{
	return mask && (ip & mask) == net;
}

/* The node port a pod flow leaves with: the existing one, else the pod's own port or the next
 * free one for that destination. */
static __always_inline int nat_port(struct snat_fwd_key *fk, __u16 *out)
{
	__u16 *known = bpf_map_lookup_elem(&snat_fwd, fk);
	if (known) {
		*out = *known;
		return 0;
	}
	struct snat_rev_val rv = { .pod_ip = fk->pod_ip, .pod_port = fk->pod_port };
	struct snat_rev_key rk = { .ext_ip = fk->ext_ip, .ext_port = fk->ext_port, .proto = fk->proto };
	__u16 port = bpf_ntohs(fk->pod_port);
	for (int i = 0; i < NAT_PORT_TRIES; i++) {
		rk.nat_port = bpf_htons(port);
		if (bpf_map_update_elem(&snat_rev, &rk, &rv, BPF_NOEXIST) == 0) {
			bpf_map_update_elem(&snat_fwd, fk, &rk.nat_port, BPF_ANY);
			*out = rk.nat_port;
			return 0;
		}
		port = port >= 60999 ? 32768 : port + 1;
	}
	return -1;
}

static __always_inline struct snat_config *config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&snat_config, &zero);
}

SEC("classifier")
int from_pod(struct __sk_buff *skb)
{
	struct snat_config *cfg = config();
	struct iphdr *iph;
	struct flow f;

	if (!cfg || parse(skb, &iph, &f))
		return TC_ACT_OK;
	__u32 saddr = iph->saddr, daddr = iph->daddr;
	if (in_net(daddr, cfg->native_net, cfg->native_mask) || in_net(daddr, cfg->service_net, cfg->service_mask) ||
	    daddr == cfg->node_ip)
		return TC_ACT_OK;
	struct lb_backend_key bk = { .addr = saddr, .port = f.sport, .proto = f.proto };
	if (bpf_map_lookup_elem(&lb_backends, &bk))
		return TC_ACT_OK;

	struct ipmasq_key mk = { .prefixlen = 32, .addr = daddr };
	if (!bpf_map_lookup_elem(&ipmasq, &mk)) {
		struct snat_fwd_key fk = { .pod_ip = saddr, .ext_ip = daddr, .pod_port = f.sport, .ext_port = f.dport, .proto = f.proto };
		__u16 port;
		if (nat_port(&fk, &port))
			return TC_ACT_SHOT;
		/* TCP/UDP source port sits at the start of the L4 header. */
		if (rewrite(skb, &f, IP_SRC_OFF, saddr, cfg->node_ip, f.l4_off, f.sport, port))
			return TC_ACT_SHOT;
	}
	return bpf_redirect_neigh(cfg->eth0_ifindex, NULL, 0, 0);
}

SEC("classifier")
int to_node(struct __sk_buff *skb)
{
	struct snat_config *cfg = config();
	struct iphdr *iph;
	struct flow f;

	if (!cfg || parse(skb, &iph, &f) || iph->daddr != cfg->node_ip)
		return TC_ACT_OK;
	struct snat_rev_key rk = { .ext_ip = iph->saddr, .ext_port = f.sport, .nat_port = f.dport, .proto = f.proto };
	struct snat_rev_val *rv = bpf_map_lookup_elem(&snat_rev, &rk);
	if (!rv)
		return TC_ACT_OK;
	struct snat_rev_val back = *rv;
	/* Destination port follows the source port in TCP and UDP headers. */
	rewrite(skb, &f, IP_DST_OFF, cfg->node_ip, back.pod_ip, f.l4_off + 2, f.dport, back.pod_port);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
