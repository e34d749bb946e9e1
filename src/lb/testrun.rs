//! Running the programs once on a frame with BPF_PROG_TEST_RUN (packet tests, benchmark).

use aya::programs::{SchedClassifier, Xdp};
use aya::{TestRun, TestRunOptions};

use super::balancer::LoadBalancer;
use super::error::{LbError, Result, prog_err};

impl LoadBalancer {
    /// Runs `lb_xdp` once on `frame` with BPF_PROG_TEST_RUN; `ingress_ifindex` names the device
    /// the frame "arrived" on (default: loopback). Returns the action and the output frame.
    pub fn test_run(&self, frame: &[u8], ingress_ifindex: Option<u32>) -> Result<(u32, Vec<u8>)> {
        let (action, out, _) = self.run_program("lb_xdp", frame, ingress_ifindex)?;
        Ok((action, out))
    }

    /// Runs the reply translation (`lb_rev`, tc) once on `frame`; returns the tc action and the
    /// output frame.
    pub fn test_run_rev(&self, frame: &[u8]) -> Result<(u32, Vec<u8>)> {
        let ebpf = self.ebpf.as_ref().ok_or(LbError::NoProgram)?;
        let prog: &SchedClassifier = ebpf
            .program("lb_rev")
            .ok_or_else(|| LbError::Invalid("object has no program lb_rev".into()))?
            .try_into()
            .map_err(prog_err("lb_rev"))?;
        let mut out = vec![0u8; frame.len() + 256];
        let opts = TestRunOptions { data_in: Some(frame), data_out: Some(&mut out), repeat: 1, ..Default::default() };
        let r = prog.test_run(opts).map_err(prog_err("BPF_PROG_TEST_RUN of lb_rev"))?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value, out))
    }

    /// One BPF_PROG_TEST_RUN call of the named XDP program; also returns the kernel's duration.
    pub(crate) fn run_program(
        &self,
        program: &str,
        frame: &[u8],
        ingress_ifindex: Option<u32>,
    ) -> Result<(u32, Vec<u8>, std::time::Duration)> {
        let ebpf = self.ebpf.as_ref().ok_or(LbError::NoProgram)?;
        let prog: &Xdp = ebpf
            .program(program)
            .ok_or_else(|| LbError::Invalid(format!("object has no program {program}")))?
            .try_into()
            .map_err(prog_err(program))?;
        let mut out = vec![0u8; frame.len() + 256];
        let ctx: Vec<u8> = ingress_ifindex.map(|i| xdp_md(frame.len() as u32, i)).unwrap_or_default();
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: ingress_ifindex.map(|_| ctx.as_slice()),
            repeat: 1,
            ..Default::default()
        };
        let r = prog.test_run(opts).map_err(prog_err(format!("BPF_PROG_TEST_RUN of {program}")))?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value, out, r.duration))
    }
}

/// `struct xdp_md` as BPF_PROG_TEST_RUN takes it: data 0, data_end = length, the ingress device.
fn xdp_md(len: u32, ingress_ifindex: u32) -> Vec<u8> {
    [0u32, len, 0, ingress_ifindex, 0, 0].iter().flat_map(|w| w.to_ne_bytes()).collect()
}
