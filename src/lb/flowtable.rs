//! The connection table seen from userspace: its size, where a flow lives in it, and reading or
//! dropping one flow. The table itself is `struct lb_flow_set` in `ebpf/lb.h`, its datapath
//! operations in `ebpf/lb_flows.h`: a per-CPU array of sets of `FLOW_WAYS` flows, LRU within a
//! set, each CPU writing its own copy (so a flow is looked for on every CPU).

use aya::maps::PerCpuValues;

use super::balancer::LoadBalancer;
use super::error::{LbError, Result, io_err, map_err};
use super::hash::flow_hash;
use super::maps::{ConnValue, FLOW_WAYS, FlowKey, FlowSet};

/// The most flows a table may be made for.
const MAX_FLOWS_LIMIT: u32 = 1 << 24;

/// Sets per CPU for a table of `max_flows` flows in all over `cpus` CPUs: each CPU's copy
/// holds its share, max_flows / cpus, rounded up to a power of two (the datapath masks the
/// hash). In all, not per CPU: the memory (32 bytes a flow) does not grow with the cores, and
/// it is the capacity the LRU hash with per-CPU lists it replaced had.
pub(crate) fn flow_sets(max_flows: u32, cpus: u32) -> Result<u32> {
    if max_flows == 0 || max_flows > MAX_FLOWS_LIMIT {
        return Err(LbError::Invalid(format!("max flows must be between 1 and {MAX_FLOWS_LIMIT}, not {max_flows}")));
    }
    let per_cpu = max_flows.div_ceil(cpus.max(1));
    Ok(per_cpu.max(FLOW_WAYS as u32).next_power_of_two() / FLOW_WAYS as u32)
}

/// `lb_flow_set_index` of `ebpf/lb_flows.h`: the set `flow` lives in, of `sets`.
pub fn set_index(flow: &FlowKey, sets: u32) -> u32 {
    flow_hash(flow).rotate_left(16) & (sets - 1)
}

impl LoadBalancer {
    /// Flows each CPU's copy of the connection table holds.
    pub fn flows_per_cpu(&self) -> u32 {
        self.maps.conn.len() * FLOW_WAYS as u32
    }

    /// The backend id and service id the connection table pins `flow` (client → VIP) to, on
    /// whichever CPU recorded it.
    pub fn connection(&self, flow: &FlowKey) -> Option<ConnValue> {
        let sets = self.maps.conn.get(&set_index(flow, self.maps.conn.len()), 0).ok()?;
        sets.iter()
            .flat_map(|set| set.way.iter())
            .find(|e| e.key == *flow)
            .map(|e| ConnValue { backend_id: e.backend_id, service_id: e.service_id })
    }

    /// Removes `flow` from every CPU's copy of the table (its next packet picks a backend
    /// afresh); returns whether it was there.
    pub fn forget_connection(&mut self, flow: &FlowKey) -> Result<bool> {
        let index = set_index(flow, self.maps.conn.len());
        let sets = self.maps.conn.get(&index, 0).map_err(map_err("reading the connection table"))?;
        let mut found = false;
        let cleared: Vec<FlowSet> = sets
            .iter()
            .map(|set| {
                let mut set = *set;
                for e in set.way.iter_mut().filter(|e| e.key == *flow) {
                    *e = Default::default();
                    found = true;
                }
                set
            })
            .collect();
        if found {
            let values = PerCpuValues::try_from(cleared).map_err(io_err("per-CPU values"))?;
            self.maps.conn.set(index, values, 0).map_err(map_err("writing the connection table"))?;
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_whole_power_of_two_sets() {
        assert_eq!(flow_sets(65536, 1).unwrap(), 16384);
        assert_eq!(flow_sets(65536, 2).unwrap(), 8192);
        assert_eq!(flow_sets(65536, 3).unwrap(), 8192); // 21846 per CPU, rounded up to 32768
        assert_eq!(flow_sets(1000, 2).unwrap(), 128);
        assert_eq!(flow_sets(1, 64).unwrap(), 1);
        assert!(flow_sets(0, 2).is_err());
        assert!(flow_sets(MAX_FLOWS_LIMIT + 1, 2).is_err());
    }
}
