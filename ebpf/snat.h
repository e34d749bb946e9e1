/* Maps shared by snat.bpf.c and the lab's userspace (src/backend/lab/bpf_masq.rs mirrors these
 * structs with #[repr(C)]). All addresses and ports are in network byte order. */
#ifndef TUTOR_SNAT_H
#define TUTOR_SNAT_H

#include <linux/types.h>

/* Per-node settings (array map "snat_config", one entry). */
struct snat_config {
	__u32 node_ip;        /* address SNAT rewrites to (the node's eth0) */
	__u32 eth0_ifindex;   /* where pod traffic is redirected (BPF host routing) */
	__u32 native_net;     /* ipv4NativeRoutingCIDR: routed by the kernel, never masqueraded */
	__u32 native_mask;
	__u32 service_net;    /* serviceSubnet: left to the node's service translation */
	__u32 service_mask;
};

/* ip-masq-agent's nonMasqueradeCIDRs (LPM trie "ipmasq"), as Cilium's cilium_ipmasq_v4. */
struct ipmasq_key {
	__u32 prefixlen;
	__u32 addr;
};

/* Forward NAT entry: a pod's flow to the outside → the node port it leaves with. */
struct snat_fwd_key {
	__u32 pod_ip;
	__u32 ext_ip;
	__u16 pod_port;
	__u16 ext_port;
	__u8 proto;
	__u8 pad[3];
};

/* Reverse NAT entry: a reply to the node port → the pod it belongs to. */
struct snat_rev_key {
	__u32 ext_ip;
	__u16 ext_port;
	__u16 nat_port;
	__u8 proto;
	__u8 pad[3];
};

struct snat_rev_val {
	__u32 pod_ip;
	__u16 pod_port;
	__u16 pad;
};

/* Backends of the lab's LoadBalancer services (hash "lb_backends", value unused): what they send
 * from their service port answers a flow the XDP LB balanced, which its tc program on eth0's
 * egress translates back to the VIP; masquerading it first would hide it from that program
 * (Cilium's datapath reverse-NATs service replies before SNAT for the same reason). */
struct lb_backend_key {
	__u32 addr;
	__u16 port;
	__u8 proto;
	__u8 pad;
};

#endif
