//! BPF masquerade (`bpf.masquerade: true` + ip-masq-agent): the lab's own tc programs
//! (`ebpf/snat.bpf.c`) loaded with aya into each node — `from_pod` on every pod's lxc device,
//! `to_node` on eth0 — and the `ipmasq` LPM map filled from `nonMasqueradeCIDRs`.
//! Attachments are TCX links owned by this process: they vanish with the lab.

use std::ffi::CString;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, MapData};
use aya::programs::{SchedClassifier, TcAttachType};
use aya::{Ebpf, include_bytes_aligned};

use super::LabError;
use super::sandbox::NsThread;
use super::topology::Cidr;

static OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/snat.bpf.o"));

/// Mirror of `struct snat_config` (ebpf/snat.h); addresses in network byte order.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SnatConfig {
    pub node_ip: u32,
    pub eth0_ifindex: u32,
    pub native_net: u32,
    pub native_mask: u32,
    pub service_net: u32,
    pub service_mask: u32,
}

// SAFETY: plain old data, no padding (six u32).
unsafe impl aya::Pod for SnatConfig {}

fn be(ip: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(ip.octets())
}

fn net_mask(c: Cidr) -> (u32, u32) {
    let mask = if c.len == 0 { 0 } else { u32::MAX << (32 - c.len as u32) };
    (be(c.addr), u32::from_ne_bytes(mask.to_be_bytes()))
}

/// Why a step of the BPF masquerade failed (the error's `source`).
#[derive(Debug, thiserror::Error)]
pub enum BpfCause {
    #[error(transparent)]
    Load(#[from] aya::EbpfError),
    #[error(transparent)]
    Map(#[from] aya::maps::MapError),
    #[error(transparent)]
    Program(#[from] aya::programs::ProgramError),
    #[error("no such device")]
    NoDevice,
    /// The program object is not in its slot (an attachment panicked while holding it).
    #[error("program lost")]
    Lost,
}

fn err<E: Into<BpfCause>>(what: &str) -> impl Fn(E) -> LabError + '_ {
    move |e| LabError::BpfMasq { what: what.to_string(), source: Box::new(e.into()) }
}

/// Mirror of `struct lb_backend_key` (ebpf/snat.h); address and port in network byte order.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LbBackendKey {
    pub addr: u32,
    pub port: u16,
    pub proto: u8,
    pub pad: u8,
}

// SAFETY: plain old data, no padding (u32 + u16 + 2 × u8).
unsafe impl aya::Pod for LbBackendKey {}

pub struct BpfMasq {
    // The Ebpf object moves into the node's namespace thread for each attachment (aya resolves
    // interface names in the calling thread's network namespace).
    ebpf: Mutex<Option<Ebpf>>,
}

impl BpfMasq {
    /// Load into `ns` (a node), fill the maps and attach `to_node` to eth0.
    pub fn load(
        ns: &NsThread,
        node_ip: Ipv4Addr,
        native: Cidr,
        services: Cidr,
        non_masq: &[Cidr],
    ) -> Result<BpfMasq, LabError> {
        let non_masq = non_masq.to_vec();
        let ebpf = ns.run(move || -> Result<Ebpf, LabError> {
            let mut ebpf = Ebpf::load(OBJECT).map_err(err("loading"))?;
            let name = CString::new("eth0").expect("no NUL");
            // SAFETY: a valid NUL-terminated string.
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
            if ifindex == 0 {
                return Err(err("eth0")(BpfCause::NoDevice));
            }
            let (native_net, native_mask) = net_mask(native);
            let (service_net, service_mask) = net_mask(services);
            let cfg = SnatConfig {
                node_ip: be(node_ip),
                eth0_ifindex: ifindex,
                native_net,
                native_mask,
                service_net,
                service_mask,
            };
            let mut config: Array<&mut MapData, SnatConfig> =
                Array::try_from(ebpf.map_mut("snat_config").expect("map in object")).map_err(err("snat_config"))?;
            config.set(0, cfg, 0).map_err(err("snat_config"))?;
            let mut trie: LpmTrie<&mut MapData, u32, u8> =
                LpmTrie::try_from(ebpf.map_mut("ipmasq").expect("map in object")).map_err(err("ipmasq"))?;
            for c in &non_masq {
                trie.insert(&Key::new(c.len as u32, be(c.addr)), 1, 0).map_err(err("ipmasq"))?;
            }
            for name in ["from_pod", "to_node"] {
                let p: &mut SchedClassifier = ebpf
                    .program_mut(name)
                    .expect("program in object")
                    .try_into()
                    .map_err(err::<aya::programs::ProgramError>(name))?;
                p.load().map_err(err(name))?;
            }
            attach(&mut ebpf, "to_node", "eth0")?;
            Ok(ebpf)
        })??;
        Ok(BpfMasq { ebpf: Mutex::new(Some(ebpf)) })
    }

    /// Attach `from_pod` to a pod's lxc device on this node.
    pub fn attach_pod(&self, ns: &NsThread, lxc: &str) -> Result<(), LabError> {
        let mut slot = self.ebpf.lock().unwrap_or_else(|e| e.into_inner());
        let mut ebpf = slot.take().ok_or_else(|| err("attach")(BpfCause::Lost))?;
        let lxc = lxc.to_string();
        let (ebpf, result) = ns.run(move || {
            let r = attach(&mut ebpf, "from_pod", &lxc);
            (ebpf, r)
        })?;
        *slot = Some(ebpf);
        result
    }

    /// Make the `lb_backends` map hold exactly `backends` (address, port, IP protocol).
    pub fn set_lb_backends(&self, backends: &[(Ipv4Addr, u16, u8)]) -> Result<(), LabError> {
        use aya::maps::HashMap;
        let mut slot = self.ebpf.lock().unwrap_or_else(|e| e.into_inner());
        let ebpf = slot.as_mut().ok_or_else(|| err("lb_backends")(BpfCause::Lost))?;
        let mut map: HashMap<&mut MapData, LbBackendKey, u8> =
            HashMap::try_from(ebpf.map_mut("lb_backends").expect("map in object")).map_err(err("lb_backends"))?;
        let want: Vec<LbBackendKey> = backends
            .iter()
            .map(|(a, p, proto)| LbBackendKey { addr: be(*a), port: p.to_be(), proto: *proto, pad: 0 })
            .collect();
        let stale: Vec<LbBackendKey> = map.keys().filter_map(Result::ok).filter(|k| !want.contains(k)).collect();
        for k in stale {
            map.remove(&k).map_err(err("lb_backends"))?;
        }
        for k in want {
            map.insert(k, 1, 0).map_err(err("lb_backends"))?;
        }
        Ok(())
    }

    /// The `ipmasq` map's prefixes, as `cilium-dbg bpf ipmasq list` prints them.
    pub fn ipmasq_list(&self) -> Result<Vec<String>, LabError> {
        let slot = self.ebpf.lock().unwrap_or_else(|e| e.into_inner());
        let ebpf = slot.as_ref().ok_or_else(|| err("ipmasq")(BpfCause::Lost))?;
        let trie: LpmTrie<&MapData, u32, u8> =
            LpmTrie::try_from(ebpf.map("ipmasq").expect("map in object")).map_err(err("ipmasq"))?;
        let mut out: Vec<(u32, u32)> = Vec::new();
        for k in trie.keys() {
            let k = k.map_err(err("ipmasq"))?;
            out.push((u32::from_be_bytes(k.data().to_ne_bytes()), k.prefix_len()));
        }
        out.sort();
        Ok(out.into_iter().map(|(a, l)| format!("{}/{l}", Ipv4Addr::from(a))).collect())
    }
}

fn attach(ebpf: &mut Ebpf, prog: &str, iface: &str) -> Result<(), LabError> {
    let p: &mut SchedClassifier = ebpf
        .program_mut(prog)
        .expect("program in object")
        .try_into()
        .map_err(err::<aya::programs::ProgramError>(prog))?;
    p.attach(iface, TcAttachType::Ingress).map_err(err(&format!("attaching {prog} to {iface}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_layout_matches_the_c_header() {
        assert_eq!(std::mem::size_of::<SnatConfig>(), 24);
        assert_eq!(std::mem::offset_of!(SnatConfig, eth0_ifindex), 4);
        assert_eq!(std::mem::offset_of!(SnatConfig, service_mask), 20);
    }

    #[test]
    fn masks_are_network_order() {
        let (net, mask) = net_mask(Cidr::parse("10.244.0.0/16").unwrap());
        assert_eq!(net.to_ne_bytes(), [10, 244, 0, 0]);
        assert_eq!(mask.to_ne_bytes(), [255, 255, 0, 0]);
    }
}
