//! Services and their backends, written to and read back from the maps (the maps are the only
//! state: a second `tutor lb` command sees what the first wrote).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::str::FromStr;

use aya::maps::PerCpuValues;

use super::balancer::LoadBalancer;
use super::error::{LbError, Result, io_err, map_err};
use super::maglev::{self, EMPTY, MaglevBackend};
use super::maps::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => IPPROTO_TCP,
            Proto::Udp => IPPROTO_UDP,
        }
    }

    pub fn from_number(n: u8) -> Option<Proto> {
        match n {
            IPPROTO_TCP => Some(Proto::Tcp),
            IPPROTO_UDP => Some(Proto::Udp),
            _ => None,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        })
    }
}

/// The Kubernetes service type a frontend stands for (`enum lb_service_kind`); listings only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceKind {
    ClusterIp,
    NodePort,
    #[default]
    LoadBalancer,
    ExternalIps,
}

impl ServiceKind {
    const ALL: [ServiceKind; 4] =
        [ServiceKind::ClusterIp, ServiceKind::NodePort, ServiceKind::LoadBalancer, ServiceKind::ExternalIps];

    fn from_raw(raw: u32) -> ServiceKind {
        Self::ALL.get(raw as usize).copied().unwrap_or_default()
    }

    fn raw(self) -> u32 {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(0) as u32
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceKind::ClusterIp => "ClusterIP",
            ServiceKind::NodePort => "NodePort",
            ServiceKind::LoadBalancer => "LoadBalancer",
            ServiceKind::ExternalIps => "ExternalIPs",
        })
    }
}

impl FromStr for ServiceKind {
    type Err = LbError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|k| k.to_string().eq_ignore_ascii_case(s)).ok_or_else(|| {
            LbError::Invalid(format!("unknown service type {s:?} (ClusterIP, NodePort, LoadBalancer, ExternalIPs)"))
        })
    }
}

/// A frontend: VIP, port, protocol. Parses `10.0.0.1:80/tcp` (protocol defaults to TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frontend {
    pub vip: Ipv4Addr,
    pub port: u16,
    pub proto: Proto,
}

impl FromStr for Frontend {
    type Err = LbError;
    fn from_str(s: &str) -> Result<Self> {
        let (addr, proto) = match s.rsplit_once('/') {
            Some((a, p)) => (a, p),
            None => (s, "tcp"),
        };
        let proto = match proto.to_ascii_lowercase().as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            other => return Err(LbError::Invalid(format!("unknown protocol {other:?} in {s:?} (tcp or udp)"))),
        };
        let sa: SocketAddrV4 =
            addr.parse().map_err(|_| LbError::Invalid(format!("{s:?} is not IPV4:PORT[/tcp|/udp]")))?;
        Ok(Frontend { vip: *sa.ip(), port: sa.port(), proto })
    }
}

impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.vip, self.port, self.proto)
    }
}

impl Frontend {
    fn key(&self) -> VipKey {
        VipKey { addr: addr_be(self.vip), port: port_be(self.port), proto: self.proto.number(), pad: 0 }
    }

    fn from_key(k: &VipKey) -> Option<Frontend> {
        Some(Frontend { vip: addr_from_be(k.addr), port: port_from_be(k.port), proto: Proto::from_number(k.proto)? })
    }
}

/// A service to install: frontend and backends (the same port space as the frontend's protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub frontend: Frontend,
    pub backends: Vec<SocketAddrV4>,
    pub kind: ServiceKind,
}

/// A service as the maps hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    pub frontend: Frontend,
    pub kind: ServiceKind,
    pub id: u32,
    pub backends: Vec<BackendView>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendView {
    pub id: u32,
    pub addr: SocketAddrV4,
    /// Maglev slots the backend holds in this service's table.
    pub slots: u32,
}

impl LoadBalancer {
    /// Creates or updates a service. Established flows keep their backend (connection table);
    /// new flows follow the new table, rebuilt sticky so that only the flows of removed
    /// backends, or flows taken by added ones, change backend.
    pub fn upsert_service(&mut self, svc: &Service) -> Result<ServiceView> {
        let key = svc.frontend.key();
        let unique: BTreeSet<SocketAddrV4> = svc.backends.iter().copied().collect();
        if unique.len() >= self.maglev_size as usize {
            return Err(LbError::Invalid(format!(
                "{} backends do not fit a Maglev table of {} slots",
                unique.len(),
                self.maglev_size
            )));
        }
        let existing = self.maps.services.get(&key, 0).ok();
        let id = match existing {
            Some(v) => v.id,
            None => self.free_service_id()?,
        };
        let previous = match existing {
            Some(_) => Some(self.read_row(id)?),
            None => None,
        };
        let old_ids: BTreeSet<u32> = previous.iter().flatten().copied().filter(|&b| b != EMPTY).collect();

        let mut members = Vec::new();
        for addr in &unique {
            members.push(MaglevBackend {
                id: self.backend_id(*addr, &old_ids)?,
                addr: addr_be(*addr.ip()),
                port: port_be(addr.port()),
            });
        }
        let table = maglev::build(self.maglev_size, &members, previous.as_deref());
        self.write_row(id, &table, previous.as_deref())?;

        let new_ids: BTreeSet<u32> = members.iter().map(|m| m.id).collect();
        for &b in new_ids.difference(&old_ids) {
            self.adjust_refs(b, 1)?;
        }
        for &b in old_ids.difference(&new_ids) {
            self.adjust_refs(b, -1)?;
        }
        for m in &members {
            self.list_frontend(m, &svc.frontend)?;
        }
        if existing.is_none() {
            self.reset_counters(Counted::Service, id)?;
        }
        let value = ServiceValue { id, backend_count: members.len() as u32, kind: svc.kind.raw() };
        self.maps.services.insert(key, value, 0).map_err(map_err(format!("writing service {}", svc.frontend)))?;
        self.service(&svc.frontend)?
            .ok_or_else(|| LbError::Invalid(format!("service {} vanished while writing it", svc.frontend)))
    }

    /// Makes the maps hold exactly `wanted`: services whose backends differ are written again,
    /// services not wanted are removed; unchanged services are left alone (their Maglev rows and
    /// flows stay as they are).
    pub fn sync_services(&mut self, wanted: &[Service]) -> Result<()> {
        let have = self.services()?;
        for svc in wanted {
            let same = have.iter().find(|v| v.frontend == svc.frontend).is_some_and(|v| {
                let mut addrs: Vec<SocketAddrV4> = v.backends.iter().map(|b| b.addr).collect();
                addrs.sort();
                let mut want = svc.backends.clone();
                want.sort();
                want.dedup();
                addrs == want
            });
            if !same {
                self.upsert_service(svc)?;
            }
        }
        for v in have.iter().filter(|v| !wanted.iter().any(|w| w.frontend == v.frontend)) {
            self.remove_service(&v.frontend)?;
        }
        Ok(())
    }

    /// Removes a service; returns whether it existed. Its backends stay in the backends map
    /// (draining) so flows already pinned to them finish.
    pub fn remove_service(&mut self, frontend: &Frontend) -> Result<bool> {
        let key = frontend.key();
        let Ok(value) = self.maps.services.get(&key, 0) else { return Ok(false) };
        self.maps.services.remove(&key).map_err(map_err(format!("removing service {frontend}")))?;
        let ids: BTreeSet<u32> = self.read_row(value.id)?.into_iter().filter(|&b| b != EMPTY).collect();
        for b in ids {
            self.adjust_refs(b, -1)?;
        }
        self.unlist_frontend(frontend)?;
        Ok(true)
    }

    /// Adds `frontend` to the frontends the reply translation tries for backend `m`. A backend
    /// leaving a service stays listed: its draining flows still need their replies translated.
    fn list_frontend(&mut self, m: &MaglevBackend, frontend: &Frontend) -> Result<()> {
        let key = VipKey { addr: m.addr, port: m.port, proto: frontend.proto.number(), pad: 0 };
        let fk = frontend.key();
        let mut v = self.maps.backend_vips.get(&key, 0).unwrap_or_default();
        let n = v.count as usize;
        if v.vip[..n].contains(&fk) {
            return Ok(());
        }
        if n == FRONTENDS_PER_BACKEND {
            // Full: forget the oldest.
            v.vip.rotate_left(1);
            v.vip[n - 1] = fk;
        } else {
            v.vip[n] = fk;
            v.count += 1;
        }
        self.maps.backend_vips.insert(key, v, 0).map_err(map_err("writing backend_vips"))
    }

    fn unlist_frontend(&mut self, frontend: &Frontend) -> Result<()> {
        let fk = frontend.key();
        let mut changed = Vec::new();
        for item in self.maps.backend_vips.iter() {
            let (k, v) = item.map_err(map_err("reading backend_vips"))?;
            let kept: Vec<VipKey> = v.vip[..v.count as usize].iter().copied().filter(|f| *f != fk).collect();
            if kept.len() != v.count as usize {
                let mut nv = FrontendsValue { count: kept.len() as u32, ..Default::default() };
                nv.vip[..kept.len()].copy_from_slice(&kept);
                changed.push((k, nv));
            }
        }
        for (k, v) in changed {
            if v.count == 0 {
                self.maps.backend_vips.remove(&k).map_err(map_err("writing backend_vips"))?;
            } else {
                self.maps.backend_vips.insert(k, v, 0).map_err(map_err("writing backend_vips"))?;
            }
        }
        Ok(())
    }

    /// Every service, read back from the maps, sorted by frontend.
    pub fn services(&self) -> Result<Vec<ServiceView>> {
        let mut keys = Vec::new();
        for item in self.maps.services.iter() {
            let (k, v) = item.map_err(map_err("reading services"))?;
            if let Some(f) = Frontend::from_key(&k) {
                keys.push((f, v));
            }
        }
        keys.sort_by_key(|(f, _)| *f);
        keys.into_iter().map(|(f, v)| self.view(f, v)).collect()
    }

    pub fn service(&self, frontend: &Frontend) -> Result<Option<ServiceView>> {
        match self.maps.services.get(&frontend.key(), 0) {
            Ok(v) => Ok(Some(self.view(*frontend, v)?)),
            Err(_) => Ok(None),
        }
    }

    fn view(&self, frontend: Frontend, v: ServiceValue) -> Result<ServiceView> {
        let mut slots: BTreeMap<u32, u32> = BTreeMap::new();
        for b in self.read_row(v.id)? {
            if b != EMPTY {
                *slots.entry(b).or_default() += 1;
            }
        }
        let mut backends = Vec::new();
        for (id, n) in slots {
            let be = self.maps.backends.get(&id, 0).map_err(map_err("reading backends"))?;
            let addr = SocketAddrV4::new(addr_from_be(be.addr), port_from_be(be.port));
            backends.push(BackendView { id, addr, slots: n });
        }
        backends.sort_by_key(|b| b.addr);
        Ok(ServiceView { frontend, kind: ServiceKind::from_raw(v.kind), id: v.id, backends })
    }

    /// The Maglev table of service `id` as the datapath sees it.
    pub fn maglev_row(&self, id: u32) -> Result<Vec<u32>> {
        self.read_row(id)
    }

    fn read_row(&self, id: u32) -> Result<Vec<u32>> {
        let base = id * self.maglev_size;
        (base..base + self.maglev_size)
            .map(|i| self.maps.maglev.get(&i, 0).map_err(map_err("reading the Maglev table")))
            .collect()
    }

    /// Writes only the slots that differ from `previous` (a backend change touches ≈1/N).
    fn write_row(&mut self, id: u32, table: &[u32], previous: Option<&[u32]>) -> Result<()> {
        let base = id * self.maglev_size;
        for (i, &b) in table.iter().enumerate() {
            if previous.is_some_and(|p| p[i] == b) {
                continue;
            }
            self.maps.maglev.set(base + i as u32, b, 0).map_err(map_err("writing the Maglev table"))?;
        }
        Ok(())
    }

    fn free_service_id(&self) -> Result<u32> {
        let mut used = BTreeSet::new();
        for item in self.maps.services.iter() {
            used.insert(item.map_err(map_err("reading services"))?.1.id);
        }
        (0..self.max_services).find(|id| !used.contains(id)).ok_or_else(|| {
            LbError::Full(format!("all {} service slots are used (see --max-services)", self.max_services))
        })
    }

    /// The id of backend `addr`: its existing one, else a never-used one, else one whose
    /// backend no service uses any more (its drained flows go with it).
    fn backend_id(&mut self, addr: SocketAddrV4, keep: &BTreeSet<u32>) -> Result<u32> {
        let (want_addr, want_port) = (addr_be(*addr.ip()), port_be(addr.port()));
        let mut free = None;
        let mut draining = None;
        for id in 1..self.maps.backends.len() {
            let be = self.maps.backends.get(&id, 0).map_err(map_err("reading backends"))?;
            if be.addr == want_addr && be.port == want_port {
                return Ok(id);
            }
            if be.addr == 0 && free.is_none() {
                free = Some(id);
            } else if be.addr != 0 && be.refs == 0 && draining.is_none() && !keep.contains(&id) {
                draining = Some(id);
            }
        }
        let id = free.or(draining).ok_or_else(|| LbError::Full("the backends map is full".into()))?;
        self.maps
            .backends
            .set(id, BackendValue { addr: want_addr, port: want_port, refs: 0 }, 0)
            .map_err(map_err("writing backends"))?;
        self.reset_counters(Counted::Backend, id)?;
        Ok(id)
    }

    fn adjust_refs(&mut self, id: u32, delta: i32) -> Result<()> {
        let mut be = self.maps.backends.get(&id, 0).map_err(map_err("reading backends"))?;
        be.refs = (i32::from(be.refs) + delta).clamp(0, i32::from(u16::MAX)) as u16;
        self.maps.backends.set(id, be, 0).map_err(map_err("writing backends"))
    }

    fn reset_counters(&mut self, which: Counted, id: u32) -> Result<()> {
        let cpus = aya::util::nr_cpus().map_err(|(what, cause)| LbError::Io { what: what.into(), cause })?;
        let zeros = PerCpuValues::try_from(vec![Counters::default(); cpus]).map_err(io_err("per-CPU values"))?;
        let map = match which {
            Counted::Service => &mut self.maps.svc_stats,
            Counted::Backend => &mut self.maps.backend_stats,
        };
        map.set(id, zeros, 0).map_err(map_err("resetting counters"))
    }

    /// Answers ARP requests for `vip` on the attached device (L2 announcement).
    pub fn announce_vip(&mut self, vip: Ipv4Addr) -> Result<()> {
        self.maps.announce.insert(addr_be(vip), 1, 0).map_err(map_err(format!("announcing {vip}")))
    }

    /// Stops answering ARP for `vip`; returns whether it was announced.
    pub fn withdraw_vip(&mut self, vip: Ipv4Addr) -> Result<bool> {
        Ok(self.maps.announce.remove(&addr_be(vip)).is_ok())
    }

    pub fn announced(&self) -> Result<Vec<Ipv4Addr>> {
        let mut v: Vec<Ipv4Addr> = self
            .maps
            .announce
            .keys()
            .map(|k| k.map(addr_from_be).map_err(map_err("reading announcements")))
            .collect::<Result<_>>()?;
        v.sort();
        Ok(v)
    }
}

#[derive(Clone, Copy)]
enum Counted {
    Service,
    Backend,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontend_parses_and_prints() {
        let f: Frontend = "10.96.0.10:53/udp".parse().unwrap();
        assert_eq!(f, Frontend { vip: Ipv4Addr::new(10, 96, 0, 10), port: 53, proto: Proto::Udp });
        assert_eq!(f.to_string(), "10.96.0.10:53/UDP");
        assert_eq!("1.2.3.4:80".parse::<Frontend>().unwrap().proto, Proto::Tcp);
        assert!("1.2.3.4:80/sctp".parse::<Frontend>().is_err());
        assert!("1.2.3.4/tcp".parse::<Frontend>().is_err());
        assert!("::1:80/tcp".parse::<Frontend>().is_err());
    }
}
