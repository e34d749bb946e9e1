//! `#[repr(C)]` mirrors of the map keys and values defined in `ebpf/lb.h` (the one definition).
//! `tests/testsuite/lb/layout.rs` checks every size and field offset against the BTF of the compiled
//! object. Addresses and ports are stored in network byte order, as the datapath reads them.

use std::net::Ipv4Addr;

/// `struct lb_vip_key`: key of the `services` map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VipKey {
    pub addr: u32,
    pub port: u16,
    pub proto: u8,
    pub pad: u8,
}

/// `struct lb_service`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServiceValue {
    pub id: u32,
    pub backend_count: u32,
    pub kind: u32,
}

/// `struct lb_backend`: value of the `backends` array; `addr == 0` marks a free id.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackendValue {
    pub addr: u32,
    pub port: u16,
    pub refs: u16,
}

/// `struct lb_flow_key`: a 5-tuple as seen on the wire (the key of a connection-table entry).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub pad: [u8; 3],
}

/// What the connection table pins a flow to (read from its `FlowEntry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnValue {
    pub backend_id: u32,
    pub service_id: u32,
}

/// `LB_FLOW_WAYS`: entries per set of the connection table.
pub const FLOW_WAYS: usize = 4;

/// `struct lb_flow_entry`: one way of a connection-table set; `key.proto == 0` marks it free.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowEntry {
    pub key: FlowKey,
    pub backend_id: u32,
    pub service_id: u32,
    pub used: u32,
    pub pad: u32,
}

/// `struct lb_flow_set`: value of the per-CPU `conn` array (see `ebpf/lb_flows.h`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowSet {
    pub way: [FlowEntry; FLOW_WAYS],
}

/// `LB_FRONTENDS_PER_BACKEND`.
pub const FRONTENDS_PER_BACKEND: usize = 4;

/// `struct lb_frontends`: value of `backend_vips` (key: the backend as a `VipKey`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrontendsValue {
    pub count: u32,
    pub vip: [VipKey; FRONTENDS_PER_BACKEND],
}

/// `struct lb_nexthop` (datapath-only cache; mirrored for the layout test).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NexthopValue {
    pub daddr: u32,
    pub ingress: u32,
    pub ifindex: u32,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    pub expires: u64,
}

/// `struct lb_config`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfigValue {
    pub mac: [u8; 6],
    pub pad: u16,
    pub ifindex: u32,
    pub maglev_size: u32,
    pub max_services: u32,
}

/// `struct lb_counters`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

/// `enum lb_counter`, in the order of `ebpf/lb.h`.
pub const COUNTER_NAMES: [&str; 17] = [
    "packets",
    "pass",
    "tx",
    "redirect",
    "drop",
    "pass_not_ipv4",
    "pass_malformed",
    "pass_fragment",
    "pass_ip_options",
    "pass_not_vip",
    "pass_ttl",
    "pass_nat",
    "drop_no_backend",
    "arp_reply",
    "new_flow",
    "established",
    "rev_nat",
];

/// `struct lb_global_stats`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GlobalValue {
    pub c: [u64; COUNTER_NAMES.len()],
}

// SAFETY: all are repr(C), made of integers, without implicit padding (checked by the layout test).
unsafe impl aya::Pod for VipKey {}
unsafe impl aya::Pod for ServiceValue {}
unsafe impl aya::Pod for BackendValue {}
unsafe impl aya::Pod for FlowKey {}
unsafe impl aya::Pod for FlowEntry {}
unsafe impl aya::Pod for FlowSet {}
unsafe impl aya::Pod for FrontendsValue {}
unsafe impl aya::Pod for NexthopValue {}
unsafe impl aya::Pod for ConfigValue {}
unsafe impl aya::Pod for Counters {}
unsafe impl aya::Pod for GlobalValue {}

/// IP protocol numbers the datapath handles.
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// Network-order storage of an address, as `__be32` read on this host.
pub fn addr_be(ip: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(ip.octets())
}

pub fn addr_from_be(raw: u32) -> Ipv4Addr {
    Ipv4Addr::from(raw.to_ne_bytes())
}

pub fn port_be(port: u16) -> u16 {
    port.to_be()
}

pub fn port_from_be(raw: u16) -> u16 {
    u16::from_be(raw)
}

impl FlowKey {
    pub fn new(saddr: Ipv4Addr, sport: u16, daddr: Ipv4Addr, dport: u16, proto: u8) -> Self {
        FlowKey {
            saddr: addr_be(saddr),
            daddr: addr_be(daddr),
            sport: port_be(sport),
            dport: port_be(dport),
            proto,
            pad: [0; 3],
        }
    }
}
