//! Compiles every `ebpf/*.bpf.c` into `$OUT_DIR/<name>.bpf.o` with clang `-target bpf`, so the
//! binary can embed the objects (`aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb.bpf.o"))`).
//! Rust-on-BPF needs nightly + rust-src, which this toolchain lacks (docs/architecture.md,
//! "Platform facts"): the programs are C.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-changed=ebpf");

    let mut sources: Vec<PathBuf> =
        std::fs::read_dir("ebpf").map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    sources.sort();
    for path in &sources {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    for src in sources.iter().filter(|p| p.to_string_lossy().ends_with(".bpf.c")) {
        compile(&clang, src, &out);
    }
}

fn compile(clang: &str, src: &Path, out: &Path) {
    let stem = src.file_name().unwrap().to_string_lossy().trim_end_matches(".c").to_string();
    let obj = out.join(format!("{stem}.o"));
    let arch_include = format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let result = Command::new(clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg("-I")
        .arg(&arch_include)
        .arg("-I")
        .arg("ebpf")
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(&obj)
        .output();
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "\n\nclang not found: tutor compiles its XDP programs (ebpf/*.bpf.c) with clang.\n\
             Install it with: apt-get install clang llvm libbpf-dev   (or run .ci/install)\n\
             (set CLANG=/path/to/clang to use another one)\n"
        ),
        Err(e) => panic!("cannot run {clang}: {e}"),
        Ok(o) if !o.status.success() => {
            let stderr = String::from_utf8_lossy(&o.stderr);
            let hint = if stderr.contains("bpf/bpf_helpers.h") {
                "\nlibbpf headers are missing: apt-get install libbpf-dev\n"
            } else {
                ""
            };
            panic!("\n\nclang failed on {}:\n{stderr}{hint}", src.display());
        }
        Ok(_) => {}
    }
}
