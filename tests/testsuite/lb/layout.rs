//! The #[repr(C)] mirrors in `src/lb/maps.rs` have the sizes and field offsets of the C
//! structs in `ebpf/lb.h`, as clang laid them out: read from the BTF of the compiled object.

use std::collections::HashMap;
use std::mem::{offset_of, size_of};

use object::{Object, ObjectSection};
use tutor::lb::maps::*;

crate::tests![
    mirrors_match_the_c_header,
    traffic_mirrors_match_the_c_header,
    flow_ways_match_the_c_header,
    counter_names_match_the_c_enum
];

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/lb.bpf.o"));
static TRAFFIC_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/traffic.bpf.o"));

/// struct name -> (size, member name -> byte offset), from the object's .BTF section.
fn btf_structs() -> HashMap<String, (u32, HashMap<String, u32>)> {
    btf_structs_of(OBJECT)
}

fn btf_structs_of(object: &[u8]) -> HashMap<String, (u32, HashMap<String, u32>)> {
    let elf = object::File::parse(object).expect("parse ELF");
    let btf = elf.section_by_name(".BTF").expect(".BTF section").data().unwrap();
    let u16_at = |o: usize| u16::from_le_bytes(btf[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(btf[o..o + 4].try_into().unwrap());
    assert_eq!(u16_at(0), 0xeb9f, "BTF magic");
    let hdr_len = u32_at(4) as usize;
    let (type_off, type_len) = (hdr_len + u32_at(8) as usize, u32_at(12) as usize);
    let str_off = hdr_len + u32_at(16) as usize;
    let name = |off: u32| {
        let start = str_off + off as usize;
        let end = btf[start..].iter().position(|&b| b == 0).unwrap() + start;
        String::from_utf8(btf[start..end].to_vec()).unwrap()
    };
    let mut out = HashMap::new();
    let mut p = type_off;
    while p < type_off + type_len {
        let (name_off, info, size) = (u32_at(p), u32_at(p + 4), u32_at(p + 8));
        let (kind, vlen, kflag) = ((info >> 24) & 0x1f, (info & 0xffff) as usize, info >> 31);
        p += 12;
        let extra = match kind {
            1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
            3 => 12,                      // ARRAY
            4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
            6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
            _ => 0,
        };
        if kind == 4 {
            let members = (0..vlen)
                .map(|i| {
                    let m = p + 12 * i;
                    let bits = u32_at(m + 8);
                    let bit_off = if kflag == 1 { bits & 0xff_ffff } else { bits };
                    assert_eq!(bit_off % 8, 0, "bitfields are not mirrored");
                    (name(u32_at(m)), bit_off / 8)
                })
                .collect();
            out.insert(name(name_off), (size, members));
        }
        p += extra;
    }
    out
}

macro_rules! check {
    ($structs:expr, $c:literal, $rust:ty, [$($field:ident),+ $(,)?]) => {{
        let (size, members) = $structs.get($c).unwrap_or_else(|| panic!("no struct {} in BTF", $c));
        assert_eq!(*size as usize, size_of::<$rust>(), "size of {}", $c);
        let mut names: Vec<&str> = vec![$(stringify!($field)),+];
        let mut c_names: Vec<&str> = members.keys().map(|s| s.as_str()).collect();
        names.sort();
        c_names.sort();
        assert_eq!(names, c_names, "fields of {}", $c);
        $(assert_eq!(members[stringify!($field)] as usize, offset_of!($rust, $field), "{}.{}", $c, stringify!($field));)+
    }};
}

fn mirrors_match_the_c_header() {
    let s = btf_structs();
    check!(s, "lb_vip_key", VipKey, [addr, port, proto, pad]);
    check!(s, "lb_service", ServiceValue, [id, backend_count, kind]);
    check!(s, "lb_backend", BackendValue, [addr, port, refs]);
    check!(s, "lb_flow_key", FlowKey, [saddr, daddr, sport, dport, proto, pad]);
    check!(s, "lb_flow_entry", FlowEntry, [key, backend_id, service_id, used, pad]);
    check!(s, "lb_flow_set", FlowSet, [way]);
    check!(s, "lb_frontends", FrontendsValue, [count, vip]);
    check!(s, "lb_nexthop", NexthopValue, [daddr, ingress, ifindex, smac, dmac, expires]);
    check!(s, "lb_config", ConfigValue, [mac, pad, ifindex, maglev_size, max_services]);
    check!(s, "lb_counters", Counters, [packets, bytes]);
    check!(s, "lb_global_stats", GlobalValue, [c]);
}

/// The packet-rate benchmark's mirrors (`src/lb/traffic.rs`) against `ebpf/traffic.h`.
fn traffic_mirrors_match_the_c_header() {
    use tutor::lb::traffic::{Counts, GenConfig, GenState, SlotValue};
    let s = btf_structs_of(TRAFFIC_OBJECT);
    check!(s, "tg_config", GenConfig, [header, flows, saddr, sport, proto, pad, pad2]);
    check!(s, "tg_state", GenState, [next]);
    check!(s, "tg_slot", SlotValue, [slot, port, pad]);
    check!(s, "tg_counts", Counts, [packets, bytes, duplicates]);
}

fn flow_ways_match_the_c_header() {
    let header = include_str!("../../../ebpf/lb.h");
    let line = header.lines().find(|l| l.starts_with("#define LB_FLOW_WAYS ")).expect("LB_FLOW_WAYS");
    assert_eq!(line.split_whitespace().nth(2), Some(FLOW_WAYS.to_string().as_str()));
}

fn counter_names_match_the_c_enum() {
    let header = include_str!("../../../ebpf/lb.h");
    let body = &header[header.find("enum lb_counter {").unwrap()..];
    let body = &body[..body.find("};").unwrap()];
    let names: Vec<String> = body
        .lines()
        .filter_map(|l| l.trim().strip_prefix("LB_C_"))
        .map(|l| l.split(|c: char| c == ',' || c.is_whitespace()).next().unwrap().to_ascii_lowercase())
        .filter(|n| n != "max")
        .collect();
    assert_eq!(names, COUNTER_NAMES);
}
