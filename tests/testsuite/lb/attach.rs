//! Attaching and detaching without pins: native and SKB mode, gone when the LoadBalancer is
//! dropped. (The tc reply program's attachment is exercised by lb_e2e: replies get translated.)

use std::process::Command;

use crate::lb::support::*;
use tutor::lb::AttachMode;

crate::tests![native_and_skb_attachments_end_with_the_balancer(Bpf)];

fn link(dev: &str) -> String {
    String::from_utf8(Command::new("ip").args(["-d", "link", "show", dev]).output().unwrap().stdout).unwrap()
}

fn native_and_skb_attachments_end_with_the_balancer() {
    in_test_netns(|_| {
        for (mode, marker) in [(AttachMode::Native, " xdp qdisc"), (AttachMode::Skb, " xdpgeneric qdisc")] {
            let mut lb = small_lb();
            let attached = lb.attach("lbin", mode).unwrap();
            assert_eq!((attached.mode, attached.fallback), (mode, None));
            assert!(link("lbin").contains(marker), "{mode:?}: {}", link("lbin"));
            drop(lb);
            assert!(!link("lbin").contains("prog/xdp"), "still attached: {}", link("lbin"));
        }
        let err = small_lb().attach("nosuchdev", AttachMode::Native).err().unwrap().to_string();
        assert!(err.contains("nosuchdev") && err.contains("does not exist"), "{err}");
    });
}
