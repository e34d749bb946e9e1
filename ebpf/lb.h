/* Map keys and values of the bundled XDP load balancer (lb.bpf.c).
 *
 * The single definition of every struct the datapath shares with userspace: `src/lb/maps.rs`
 * mirrors them with #[repr(C)] and a test compares sizes and field offsets with this header
 * (through the BTF of the compiled object). Addresses and ports are in network byte order.
 * Fields are laid out so no struct has implicit padding: hash keys must hash the same bytes
 * on both sides. */
#ifndef TUTOR_LB_H
#define TUTOR_LB_H

#include <linux/types.h>

/* Defaults; the loader overrides the sizes that depend on them. */
#define LB_MAGLEV_SIZE_DEFAULT 65537
#define LB_MAX_SERVICES_DEFAULT 16
#define LB_MAX_BACKENDS 4096
#define LB_MAX_FLOWS 65536
#define LB_MAX_ANNOUNCED 256

/* services: (VIP, port, protocol) -> service */
struct lb_vip_key {
	__u32 addr;
	__u16 port;
	__u8 proto;
	__u8 pad;
};

struct lb_service {
	__u32 id;            /* row of the Maglev table and of svc_stats, < max services */
	__u32 backend_count; /* 0: the VIP exists but has nowhere to go, packets are dropped */
	__u32 kind;          /* enum lb_service_kind; for listings only */
};

enum lb_service_kind {
	LB_KIND_CLUSTER_IP,
	LB_KIND_NODE_PORT,
	LB_KIND_LOAD_BALANCER,
	LB_KIND_EXTERNAL_IPS,
};

/* backends: id -> address. id 0 is never used (an empty Maglev slot reads 0). */
struct lb_backend {
	__u32 addr;
	__u16 port;
	__u16 refs; /* services whose table holds it; userspace bookkeeping, 0 = draining */
};

/* conn table key: a 5-tuple as seen on the wire (client -> VIP) */
struct lb_flow_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

/* The connection table: a PERCPU_ARRAY of sets, each CPU with its own copy, a flow in set
 * (rotl(flow hash, 16) & mask), in one of LB_FLOW_WAYS ways; LRU within the set. Lock-free: a
 * CPU writes only its own copy and reads the others' when it misses (a flow that changes CPU
 * keeps its backend; the reply translation finds an entry whatever CPU recorded it). A set can
 * evict its least recently used entry while other sets still have room: the price of O(1)
 * inserts without locks (see the README). The loader sizes each CPU's copy for its share of
 * the flows, max flows / CPUs rounded up to a power of two. */
#define LB_FLOW_WAYS 4
#define LB_MAX_CPUS 1024

struct lb_flow_entry {
	struct lb_flow_key key; /* key.proto == 0: a free way (only TCP and UDP flows are stored) */
	__u32 backend_id;
	__u32 service_id;
	__u32 used;             /* the CPU's packet count at the last use: LRU within the set */
	__u32 pad;
};

struct lb_flow_set {
	struct lb_flow_entry way[LB_FLOW_WAYS];
};

/* backend_vips: backend (addr, port, proto as a struct lb_vip_key) -> the frontends it serves
 * or served. The reply translation tries each: a reply is translated to frontend F only if the
 * conn table pins (client -> F) to this very backend, so no second table is written per flow. */
#define LB_FRONTENDS_PER_BACKEND 4
struct lb_frontends {
	__u32 count;
	struct lb_vip_key vip[LB_FRONTENDS_PER_BACKEND];
};

/* nexthop[backend id] (per CPU): the last bpf_fib_lookup answer for the backend, reused until
 * `expires` (bpf_ktime_get_coarse_ns) so established flows skip the FIB. */
struct lb_nexthop {
	__u32 daddr;   /* the backend address it was computed for (ids get reused) */
	__u32 ingress; /* and the ingress device */
	__u32 ifindex;
	__u8 smac[6];
	__u8 dmac[6];
	__u64 expires;
};

/* config[0]: what the datapath needs to know about the device it is attached to */
struct lb_config {
	__u8 mac[6];          /* source MAC of ARP replies */
	__u16 pad;
	__u32 ifindex;        /* ARP is answered only on this device (0: any) */
	__u32 maglev_size;    /* for userspace opening the pinned maps; the datapath uses a constant */
	__u32 max_services;
};

/* svc_stats[service id], backend_stats[backend id] (per CPU) */
struct lb_counters {
	__u64 packets;
	__u64 bytes;
};

/* global_stats[0] (per CPU). Invariants (tested):
 * PACKETS = PASS + TX + REDIRECT + DROP; PASS = sum of PASS_*; DROP = DROP_NO_BACKEND;
 * NEW_FLOW + ESTABLISHED = packets forwarded (TX + REDIRECT - ARP_REPLY + PASS_NAT). */
enum lb_counter {
	LB_C_PACKETS,
	LB_C_PASS,
	LB_C_TX,
	LB_C_REDIRECT,
	LB_C_DROP,
	LB_C_PASS_NOT_IPV4,
	LB_C_PASS_MALFORMED,
	LB_C_PASS_FRAGMENT,
	LB_C_PASS_IP_OPTIONS,
	LB_C_PASS_NOT_VIP,
	LB_C_PASS_TTL,
	LB_C_PASS_NAT,        /* translated, no FIB next hop: the kernel routes it */
	LB_C_DROP_NO_BACKEND,
	LB_C_ARP_REPLY,
	LB_C_NEW_FLOW,
	LB_C_ESTABLISHED,
	LB_C_REV_NAT,         /* replies translated back to the VIP by the tc program */
	LB_C_MAX,
};

struct lb_global_stats {
	__u64 c[LB_C_MAX];
};

#endif
