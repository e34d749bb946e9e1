//! Counters summed over CPUs: global (by action and reason), per service, per backend.

use std::net::SocketAddrV4;

use super::balancer::LoadBalancer;
use super::error::{Result, map_err};
use super::maps::{COUNTER_NAMES, Counters, addr_from_be, port_from_be};
use super::service::Frontend;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// `(name, value)` in the order of `enum lb_counter` in `ebpf/lb.h`.
    pub global: Vec<(&'static str, u64)>,
    pub services: Vec<(Frontend, Counters)>,
    pub backends: Vec<(SocketAddrV4, Counters)>,
}

impl Stats {
    pub fn counter(&self, name: &str) -> u64 {
        self.global.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v)
    }
}

impl LoadBalancer {
    pub fn stats(&self) -> Result<Stats> {
        let per_cpu = self.maps.global_stats.get(&0, 0).map_err(map_err("reading global_stats"))?;
        let mut totals = [0u64; COUNTER_NAMES.len()];
        for cpu in per_cpu.iter() {
            for (t, c) in totals.iter_mut().zip(cpu.c) {
                *t += c;
            }
        }
        let global = COUNTER_NAMES.iter().copied().zip(totals).collect();

        let mut services = Vec::new();
        for view in self.services()? {
            services.push((view.frontend, self.sum(true, view.id)?));
        }
        let mut backends = Vec::new();
        for id in 1..self.maps.backends.len() {
            let be = self.maps.backends.get(&id, 0).map_err(map_err("reading backends"))?;
            if be.addr != 0 {
                let addr = SocketAddrV4::new(addr_from_be(be.addr), port_from_be(be.port));
                backends.push((addr, self.sum(false, id)?));
            }
        }
        backends.sort_by_key(|(a, _)| *a);
        Ok(Stats { global, services, backends })
    }

    fn sum(&self, service: bool, id: u32) -> Result<Counters> {
        let map = if service { &self.maps.svc_stats } else { &self.maps.backend_stats };
        let values = map.get(&id, 0).map_err(map_err("reading counters"))?;
        Ok(values.iter().fold(Counters::default(), |acc, c| Counters {
            packets: acc.packets + c.packets,
            bytes: acc.bytes + c.bytes,
        }))
    }
}
