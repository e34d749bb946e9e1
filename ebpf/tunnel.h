/* Maps shared by tunnel.bpf.c and the lab's userspace (src/backend/lab/cilium/tunnel.rs mirrors
 * these structs with #[repr(C)]). Addresses in network byte order. */
#ifndef TUTOR_TUNNEL_H
#define TUTOR_TUNNEL_H

#include <linux/types.h>

/* Per-node settings (array map "tunnel_config", one entry). */
struct tunnel_config {
	__u32 ifindex; /* the tunnel device (cilium_vxlan or cilium_geneve) */
	__u32 world;   /* the VNI of a source with no identity in "tunnel_ids": Cilium's world (2) */
};

/* Key of the LPM trie "tunnel_map": a peer node's podCIDR. */
struct tunnel_key {
	__u32 prefixlen;
	__u32 addr;
};

/* Hash "tunnel_ids": a source address (network byte order) → its security identity, which
 * the encapsulation carries as its VNI, as Cilium's does. */

/* Where that podCIDR lives: the node's address on the kind network. */
struct tunnel_value {
	__u32 node_ip;
};

#endif
