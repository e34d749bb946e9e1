/* Map values of the packet-rate benchmark's programs (traffic.bpf.c), mirrored by
 * `src/lb/traffic/maps.rs` (#[repr(C)], sizes checked by a test against the object's BTF).
 * Addresses, ports and checksums are in network byte order unless a field says otherwise. */
#ifndef TUTOR_TRAFFIC_H
#define TUTOR_TRAFFIC_H

#include <linux/types.h>

/* Bytes of the template the generator copies over every frame before it sets the flow:
 * Ethernet + IPv4 + the L4 header (TCP 20 or UDP 8) + the 4-byte sequence number of UDP,
 * rounded up to whole 8-byte words. Frames are at least this long. */
#define TG_HEADER_COPY 56

/* gen_cfg[0]: what the generator writes into each frame. */
struct tg_config {
	__u8 header[TG_HEADER_COPY]; /* the frame of flow 0, sequence number 0, valid checksums */
	__u32 flows;                 /* flows cycled through (>= 1); flow f = packet n % flows */
	__u32 saddr;                 /* flow 0's source address (host byte order) */
	__u16 sport;                 /* flow 0's source port (host byte order) */
	__u8 proto;                  /* IPPROTO_TCP (SYN) or IPPROTO_UDP */
	__u8 pad;
	__u32 pad2;
};

/* gen_state[0]: packets the generator has written (the next sequence number). */
struct tg_state {
	__u64 next;
};

/* Flow f's source: address saddr + (f >> TG_PORT_BITS), port sport + (f & mask). */
#define TG_PORT_BITS 14

/* slots[backend address, network byte order]: where its packets are counted. */
struct tg_slot {
	__u32 slot;
	__u16 port; /* network byte order; another port counts in slot 0 */
	__u16 pad;
};

/* counts[slot] (per CPU): packets and bytes delivered to a backend; slot 0 counts packets
 * for the benchmark's port whose destination is no known backend. */
struct tg_counts {
	__u64 packets;
	__u64 bytes;
	__u64 duplicates; /* sequence numbers this CPU had already seen (when deduplicating) */
};

#define TG_MAX_SLOTS 64

#endif
