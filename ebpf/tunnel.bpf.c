// SPDX-License-Identifier: GPL-2.0
/* The lab's tunnel mode (Cilium's routing-mode: tunnel), around the kernel's own VXLAN or Geneve
 * device in flow-based ("external") mode, as Cilium uses it.
 *
 * from_host    — tc egress on cilium_host: the node routes every other node's podCIDR through
 *                cilium_host (its pods' forwarded traffic and its own). A packet whose
 *                destination is in "tunnel_map" gets that node's address as its tunnel key and
 *                is redirected to the tunnel device, which encapsulates it (UDP 8472 or 6081)
 *                toward that address, with the source's security identity ("tunnel_ids") as
 *                its VNI; anything else goes on unchanged.
 * from_overlay — tc ingress on the tunnel device: the decapsulated frame carries the sending
 *                node's MAC addresses, so the kernel would take it for another host's; it is
 *                marked as this host's and the kernel routes it on (to the pod's lxc device).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "tunnel.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct tunnel_config);
	__uint(max_entries, 1);
} tunnel_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tunnel_key);
	__type(value, struct tunnel_value);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} tunnel_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 65536);
} tunnel_ids SEC(".maps");

SEC("classifier")
int from_host(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	__u32 zero = 0;

	if ((void *)(iph + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	struct tunnel_config *cfg = bpf_map_lookup_elem(&tunnel_config, &zero);
	if (!cfg || !cfg->ifindex)
		return TC_ACT_OK;
	struct tunnel_key k = { .prefixlen = 32, .addr = iph->daddr };
	struct tunnel_value *peer = bpf_map_lookup_elem(&tunnel_map, &k);
	if (!peer)
		return TC_ACT_OK;
	__u32 *id = bpf_map_lookup_elem(&tunnel_ids, &iph->saddr);
	struct bpf_tunnel_key key = {
		.tunnel_id = id ? *id : cfg->world,
		/* bpf_tunnel_key holds the address in host byte order. */
		.remote_ipv4 = bpf_ntohl(peer->node_ip),
		.tunnel_ttl = 64,
	};
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), 0))
		return TC_ACT_SHOT;
	return bpf_redirect(cfg->ifindex, 0);
}

SEC("classifier")
int from_overlay(struct __sk_buff *skb)
{
	if (skb->pkt_type == PACKET_OTHERHOST)
		bpf_skb_change_type(skb, PACKET_HOST);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
