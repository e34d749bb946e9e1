//! `tutor lb` as separate processes: the attachment and the maps outlive each command
//! (pinned), and `detach` removes them.

use std::process::Command as Std;

use assert_cmd::Command;
use tutor::lb::topology::{LB_IFACE, Topology, VIP, request};

crate::tests![attach_manage_and_detach_across_processes(Bpf, Alone)];

fn tutor(args: &[&str]) -> assert_cmd::assert::Assert {
    Command::cargo_bin("tutor").unwrap().arg("lb").args(args).assert()
}

fn xdp_on(topo: &Topology) -> bool {
    let out = Std::new("ip").args(["-n", &topo.ns("lb"), "link", "show", LB_IFACE]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains("xdp")
}

fn attach_manage_and_detach_across_processes() {
    let topo = Topology::create(&format!("lbtest-cli-{}", std::process::id()), 2).expect("namespaces");
    let fs = crate::lb::support::Bpffs::mount();
    let dir = fs.0.path().join("lbc").to_string_lossy().into_owned();
    let pin = ["--pin-dir", dir.as_str()];
    let lb_ns = topo.ns("lb");

    let attach = ["attach", "--iface", LB_IFACE, "--netns", &lb_ns, "--maglev-size", "251", "--pin-dir", &dir];
    tutor(&attach).success().stdout(predicates::str::contains("attached to lbc (Native mode)"));
    assert!(xdp_on(&topo));
    tutor(&attach).code(2).stderr(predicates::str::contains("already attached"));

    let frontend = format!("{VIP}/tcp");
    let (b1, b2) = (Topology::backend(1).to_string(), Topology::backend(2).to_string());
    tutor(&[&["service", "add", &frontend, "--backend", &b1, "--backend", &b2][..], &pin[..]].concat()).success();
    tutor(&[&["service", "list"][..], &pin[..]].concat()).success().stdout(
        "ID   Frontend                Service Type   Backend\n\
         1    10.0.100.1:80/TCP       LoadBalancer   1 => 10.0.1.2:8080/TCP (active)\n\
         \x20                                           2 => 10.0.2.2:8080/TCP (active)\n",
    );

    let answered = topo.in_client(|| (0..40).map(|_| request(VIP).expect("request")).collect::<Vec<_>>()).unwrap();
    assert!(answered.contains(&1) && answered.contains(&2), "{answered:?}");

    tutor(&[&["stats"][..], &pin[..]].concat())
        .success()
        .stdout(predicates::str::is_match(r"(?m)^new_flow +40$").unwrap())
        .stdout(predicates::str::contains("10.0.100.1:80/TCP"));
    tutor(&[&["announce", "10.0.100.1"][..], &pin[..]].concat()).success();
    tutor(&[&["announce", "--withdraw", "10.0.100.9"][..], &pin[..]].concat()).code(2);
    tutor(&[&["service", "add", "10.0.100.1/tcp"][..], &pin[..]].concat())
        .code(2)
        .stderr(predicates::str::contains("is not IPV4:PORT"));
    tutor(&[&["service", "del", &frontend][..], &pin[..]].concat()).success();
    tutor(&[&["service", "del", &frontend][..], &pin[..]].concat())
        .code(2)
        .stderr(predicates::str::contains("no service"));

    tutor(&[&["detach"][..], &pin[..]].concat()).success();
    assert!(!std::path::Path::new(&dir).exists());
    assert!(!xdp_on(&topo), "XDP still attached after detach");
    tutor(&[&["stats"][..], &pin[..]].concat()).code(2).stderr(predicates::str::contains("tutor lb attach"));
}
