//! Requests/s from the lab host to the deathstar Service (two pods on two workers) through a
//! LoadBalancer address: the bundled XDP LB in native mode on the announcing node's eth0
//! (`loadBalancer.acceleration: native`) vs the same Service done kube-proxy-like with nftables
//! on that same node (DNAT to a random endpoint + masquerade of external traffic). Same lab,
//! same run, rounds alternating, medians; every packet stays inside the lab's namespaces.
//! One TCP connection per request (the deathstar app closes after answering).
//!
//! Run: `cargo bench --bench lab_lb_rps` (as root).

#[path = "../testsuite/lab/support.rs"]
#[allow(dead_code)] // the bench uses a few of the suite's lab helpers
mod lab_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lab_support::Lab;

const ROUNDS: usize = 5;
const ROUND: Duration = Duration::from_secs(2);
const CLIENTS: usize = 4;
const VIP: &str = "172.18.250.1";
/// The nftables Service's address, routed by the lab host to the same node.
const NFT_VIP: &str = "172.18.250.200";

fn host_netns(lab: &Lab) -> PathBuf {
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("/run/tutor/labs/{}/lab.json", lab.name)).unwrap())
            .unwrap();
    PathBuf::from(format!("/proc/{}/task/{}/ns/net", info["pid"], info["host_tid"]))
}

fn request(to: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_secs(2)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"POST /v1/request-landing HTTP/1.1\r\nHost: deathstar\r\nContent-Length: 0\r\n\r\n").is_err() {
        return false;
    }
    let mut body = Vec::new();
    s.read_to_end(&mut body).is_ok() && body.ends_with(b"Ship landed\n")
}

/// (requests/s, failures) from CLIENTS loops in the lab host for ROUND.
fn load(lab: &Lab, ip: &str) -> (f64, u64) {
    let to: SocketAddr = format!("{ip}:80").parse().unwrap();
    tutor::lb::netns::in_netns(&host_netns(lab), || {
        let start = Instant::now();
        let results: Vec<(u64, u64)> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    s.spawn(|| {
                        let (mut ok, mut bad) = (0, 0);
                        while start.elapsed() < ROUND {
                            if request(to) { ok += 1 } else { bad += 1 }
                        }
                        (ok, bad)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ok: u64 = results.iter().map(|r| r.0).sum();
        (ok as f64 / start.elapsed().as_secs_f64(), results.iter().map(|r| r.1).sum())
    })
    .unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    if lab_support::skip_reason().is_some() {
        eprintln!("lab_lb_rps: skipped ({})", lab_support::skip_reason().unwrap());
        return;
    }
    let lab = Lab::up(&format!("lbrps{}", std::process::id()), Some("kind-config.yaml"));
    lab.sh("host", "helm install -n kube-system cilium cilium/cilium -f cilium-lb.yaml >/dev/null && kubectl apply -f http-sw-app.yaml -f deathstar-svc.yaml -f cilium-lbsvc-pool.yaml -f cilium-l2-policy.yaml >/dev/null").ok();
    // The announcing node, from the MAC the lab host resolved the VIP to (02:42:ac:12:00:0N).
    let neigh =
        lab.sh("host", &format!("curl -sf -XPOST {VIP}/v1/request-landing >/dev/null && ip neigh show {VIP}")).ok();
    let last = u8::from_str_radix(
        neigh.split("lladdr ").nth(1).unwrap().split_whitespace().next().unwrap().rsplit(':').next().unwrap(),
        16,
    )
    .unwrap();
    let node_ip = format!("172.18.0.{last}");
    let nodes = lab.sh("host", "kubectl get nodes -o wide").ok();
    let node = nodes
        .lines()
        .find(|l| l.contains(&format!(" {node_ip} ")))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let pods = lab.sh("host", "kubectl get pods -o wide").ok();
    let ips: Vec<&str> =
        pods.lines().filter(|l| l.starts_with("deathstar-")).map(|l| l.split_whitespace().nth(5).unwrap()).collect();
    let nft = format!(
        "table ip bench_kube_proxy {{\n chain pre {{ type nat hook prerouting priority dstnat; policy accept;\n  ip daddr {NFT_VIP} tcp dport 80 meta mark set 0x4000 dnat to numgen random mod 2 map {{ 0 : {}, 1 : {} }} : 80\n }}\n chain post {{ type nat hook postrouting priority srcnat; policy accept;\n  meta mark 0x4000 masquerade\n }}\n}}\n",
        ips[0], ips[1]
    );
    std::fs::write(std::env::temp_dir().join(format!("lab_lb_rps_{}.nft", std::process::id())), &nft).unwrap();
    let file = std::env::temp_dir().join(format!("lab_lb_rps_{}.nft", std::process::id()));
    lab.sh(&node, &format!("nft -f {}", file.display())).ok();
    let _ = std::fs::remove_file(&file);
    lab.sh("host", &format!("ip route add {NFT_VIP}/32 via {node_ip}")).ok();
    let mode = lab.sh(&node, "ip addr show eth0 | grep -o 'xdp[a-z]*/id:[0-9]*' || true").ok();
    println!(
        "lab_lb_rps: announcer {node} ({node_ip}), XDP {}, {CLIENTS} clients, {ROUNDS} rounds of {ROUND:?}",
        mode.trim()
    );

    let mut failed = 0;
    let mut rounds = |ip: &str, nft: &mut Vec<f64>| -> Vec<f64> {
        let mut out = Vec::new();
        for _ in 0..ROUNDS {
            let (r, f) = load(&lab, ip);
            out.push(r);
            let (r, f2) = load(&lab, NFT_VIP);
            nft.push(r);
            failed += f + f2;
        }
        out
    };
    // The nftables rounds run beside each mode: the node's eth0 carries the XDP program (passing
    // what is not for a VIP) in both, so each mode has its own baseline.
    let (mut kp_native, mut kp_generic) = (Vec::new(), Vec::new());
    let native = rounds(VIP, &mut kp_native);
    // Without `loadBalancer.acceleration` the lab runs the same program in generic mode.
    lab.sh("host", "helm upgrade -n kube-system cilium cilium/cilium -f cilium-l2.yaml >/dev/null && kubectl rollout -n kube-system restart daemonset cilium >/dev/null").ok();
    let generic_mode = lab.sh(&node, "ip addr show eth0 | grep -o 'xdp[a-z]*/id:[0-9]*'").ok();
    let generic = rounds(VIP, &mut kp_generic);
    let show = |v: &[f64]| v.iter().map(|r| r.round()).collect::<Vec<_>>();
    let label = |what: &str, m: &str| format!("{what} ({})", m.trim());
    let line =
        |what: String, v: &[f64]| println!("  {what:<44}: {:>8.0} req/s  rounds {:?}", median(v.to_vec()), show(v));
    line(label("XDP LB native", &mode), &native);
    line("nftables DNAT + masquerade, beside native".into(), &kp_native);
    line(label("XDP LB generic", &generic_mode), &generic);
    line("nftables DNAT + masquerade, beside generic".into(), &kp_generic);
    println!(
        "  ratio native / nftables: {:.2}   generic / nftables: {:.2}   native / generic: {:.2}   (failed requests: {failed})",
        median(native.clone()) / median(kp_native),
        median(generic.clone()) / median(kp_generic),
        median(native) / median(generic)
    );
}
