// SPDX-License-Identifier: BSD-2-Clause
//! Interop: the timer client blobs the real sdfgen 0.35.1 wrote (interop/fixtures/timer, net)
//! parse as our struct and name the client's PPC channel to the driver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lions_interop::{Blob, Sdf};
use lions_os::Config;
use lions_timer::TimerClientConfig;

/// Every `timer_client_<pd>.data` of `system` names `pd`'s end of a PPC channel to the driver,
/// and the clients found are exactly the driver's channel peers.
fn check_system(system: &str) -> usize {
    let sys = Sdf::load(system);
    let mut found = 0;
    for (driver_end, client_end) in sys.channels_of("timer_driver") {
        let pd = &client_end.pd;
        let b = Blob::load(system, &format!("timer_client_{pd}.data"));
        assert_eq!(b.bytes().len(), size_of::<TimerClientConfig>());
        let cfg = TimerClientConfig::from_blob(b.bytes()).unwrap();
        assert_eq!(
            Some(cfg.driver_id),
            sys.0.channel_id(pd, "timer_driver"),
            "{system}/{pd}"
        );
        assert_eq!(cfg.driver_id, client_end.id);
        assert!(client_end.pp, "{pd} calls the driver by PPC");
        assert!(!driver_end.pp, "the driver never calls its clients");
        found += 1;
    }
    let driver = sys.pd("timer_driver").unwrap();
    assert!(driver.passive, "sdfgen makes the timer driver passive");
    found
}

#[test]
fn timer_system() {
    assert_eq!(check_system("timer"), 2);
}

#[test]
fn net_system_clients() {
    assert_eq!(check_system("net"), 2);
}

#[test]
fn foreign_blob_is_refused() {
    let b = Blob::load("serial", "serial_client_client0.data");
    assert!(
        TimerClientConfig::from_blob(b.bytes()).is_err(),
        "serial magic is not timer"
    );
}
