//! Image programs tutor plays (docs/architecture.md, "Cilium on the real API"): where no
//! registry has an image's program, the image's layer links it to the tutor executable
//! (`@tutor` in the catalogue) and tutor tells which program it is from its argv[0], as it does
//! for the lab's shims.

use std::process::ExitCode;

use super::cilium::{self, CiliumError};

/// The programs (argv[0] names).
pub const PROGRAMS: &[&str] = &[
    "cilium",
    "cilium-agent",
    "cilium-dbg",
    cilium::operator::PROGRAM,
    "cilium-operator",
    "cilium-envoy-starter",
    "deathstar",
    "netserver",
    "json-server",
    "pause",
];

/// When tutor was started as one of these programs: run it and give its exit code.
pub fn dispatch() -> Option<ExitCode> {
    let argv0 = std::env::args_os().next()?;
    let program = std::path::Path::new(&argv0).file_name()?.to_string_lossy().into_owned();
    if !PROGRAMS.contains(&program.as_str()) {
        return None;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match program.as_str() {
        "deathstar" => return Some(serve(&program, 80, super::apps::deathstar)),
        // Cilium's json-mock image: json-server on $PORT (80 without it), as its start script.
        "json-server" => {
            let port = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(80);
            return Some(serve(&program, port, super::apps::json_mock));
        }
        // The `pause` of Cilium's test images (alpine-curl): sleeps until a signal ends it.
        "pause" => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        // netperf's control port (12865): connections are accepted, no test is run.
        "netserver" => return Some(serve(&program, 12865, super::apps::refuse_tests)),
        // The cilium-envoy DaemonSet's proxy: the lab plays no L7 proxy (no L7 policy, Ingress
        // or Gateway traffic goes through it); its process serves the health endpoint the
        // DaemonSet probes, so the pods are Ready while it runs, as Envoy's own /healthz says.
        "cilium-envoy-starter" => {
            eprintln!("[info] the lab's cilium-envoy: health on 127.0.0.1:9878; no L7 proxy is played");
            return Some(serve(&program, 9878, super::apps::envoy_health));
        }
        _ => {}
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{program}: starting the async runtime: {e}");
            return Some(ExitCode::from(1));
        }
    };
    // The cilium CLI on the lab host: its errors are its own ("Error: …"), not an agent's log.
    if program == "cilium" {
        return Some(rt.block_on(cilium::cli::main(&args)));
    }
    let result = rt.block_on(async {
        match program.as_str() {
            "cilium-agent" => cilium::agent::main(&args).await,
            "cilium-operator-generic" | "cilium-operator" => {
                cilium::operator::main(&args).await.map_err(CiliumError::from)
            }
            _ => cilium::dbg::main(&args).await,
        }
    });
    Some(match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("level=fatal msg=\"{e}\" subsys={program}");
            ExitCode::from(if matches!(e, CiliumError::Usage(_)) { 2 } else { 1 })
        }
    })
}

fn serve(program: &str, port: u16, handler: super::apps::Handler) -> ExitCode {
    let name = std::env::var("HOSTNAME").unwrap_or_else(|_| program.to_string());
    match super::apps::serve_blocking(port, &name, handler) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: port {port}: {e}");
            ExitCode::from(1)
        }
    }
}
