//! `nmcli device show [IFACE]`: the lab host's NetworkManager view of its uplink (the article
//! reads its LAN resolver from it).

use super::super::LabError;
use super::super::outside::{ROUTER, UPLINK};
use super::{Outcome, unsupported};

pub fn run(argv: &[String]) -> Result<Outcome, LabError> {
    let words: Vec<&str> = argv.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["dev" | "device", "show"] | ["dev" | "device", "show", "wlp2s0"] => {
            let rows = [
                ("GENERAL.DEVICE", "wlp2s0".to_string()),
                ("GENERAL.TYPE", "wifi".into()),
                ("GENERAL.MTU", "1500".into()),
                ("GENERAL.STATE", "100 (connected)".into()),
                ("GENERAL.CONNECTION", "lab".into()),
                ("IP4.ADDRESS[1]", format!("{UPLINK}/24")),
                ("IP4.GATEWAY", ROUTER.to_string()),
                ("IP4.ROUTE[1]", "dst = 192.168.1.0/24, nh = 0.0.0.0, mt = 600".into()),
                ("IP4.ROUTE[2]", format!("dst = 0.0.0.0/0, nh = {ROUTER}, mt = 600")),
                ("IP4.DNS[1]", ROUTER.to_string()),
            ];
            Ok(Outcome::out(rows.iter().map(|(k, v)| format!("{:<40}{v}\n", format!("{k}:"))).collect::<String>()))
        }
        ["dev" | "device", "show", other] => Err(LabError::Input(format!("Error: Device '{other}' not found."))),
        _ => Err(unsupported("nmcli", argv)),
    }
}
