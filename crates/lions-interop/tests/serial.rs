// SPDX-License-Identifier: BSD-2-Clause
//! Interop: the serial blobs the real sdfgen 0.35.1 wrote (interop/fixtures/serial) parse as our
//! structs and agree with the `.system` file they came with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lions_interop::{Blob, Sdf};
use lions_os::Config;
use lions_serial::config::{
    SerialClientConfig, SerialConnectionResource, SerialDriverConfig, SerialVirtRxConfig,
    SerialVirtTxConfig,
};

fn system() -> Sdf {
    Sdf::load("serial")
}

fn blob(name: &str) -> Blob {
    Blob::load("serial", name)
}

/// A connection of `pd` to `expected_peer`: both regions mapped as described, shared with that
/// peer, and `id` is `pd`'s end of their channel.
fn check_conn(sdf: &Sdf, pd: &str, conn: &SerialConnectionResource, expected_peer: &str) {
    let queue = &sdf.mapped(pd, &conn.queue).1.name;
    let data = &sdf.mapped(pd, &conn.data).1.name;
    assert!(
        queue.contains("/queue/") && data.contains("/data/"),
        "{queue} / {data}"
    );
    assert_eq!(sdf.peer_of(pd, queue), expected_peer);
    assert_eq!(sdf.peer_of(pd, data), expected_peer);
    assert_eq!(
        Some(conn.id),
        sdf.0.channel_id(pd, expected_peer),
        "{pd} -> {expected_peer}"
    );
    assert!(conn.data.size.is_power_of_two());
}

fn clients_of(sdf: &Sdf, virt: &str) -> usize {
    sdf.0
        .channels_of(virt)
        .filter(|(_, peer)| peer.pd.starts_with("client"))
        .count()
}

#[test]
fn driver() {
    let sdf = system();
    let b = blob("serial_driver_config.data");
    assert_eq!(b.bytes().len(), size_of::<SerialDriverConfig>());
    let cfg = SerialDriverConfig::from_blob(b.bytes()).unwrap();
    check_conn(&sdf, "serial_driver", &cfg.rx, "serial_virt_rx");
    check_conn(&sdf, "serial_driver", &cfg.tx, "serial_virt_tx");
    assert_eq!(cfg.default_baud, 115_200);
    assert!(cfg.rx_enabled());
}

#[test]
fn virt_rx() {
    let sdf = system();
    let b = blob("serial_virt_rx.data");
    assert_eq!(b.bytes().len(), size_of::<SerialVirtRxConfig>());
    let cfg = SerialVirtRxConfig::from_blob(b.bytes()).unwrap();
    check_conn(&sdf, "serial_virt_rx", &cfg.driver, "serial_driver");
    assert_eq!(cfg.clients().len(), 2);
    assert_eq!(cfg.clients().len(), clients_of(&sdf, "serial_virt_rx"));
    for (i, c) in cfg.clients().iter().enumerate() {
        check_conn(&sdf, "serial_virt_rx", c, &format!("client{i}"));
    }
    assert_eq!(cfg.switch_char, 0x1c);
    assert_eq!(cfg.terminate_num_char, b'\r');
}

#[test]
fn virt_tx() {
    let sdf = system();
    let b = blob("serial_virt_tx.data");
    assert_eq!(b.bytes().len(), size_of::<SerialVirtTxConfig>());
    let cfg = SerialVirtTxConfig::from_blob(b.bytes()).unwrap();
    check_conn(&sdf, "serial_virt_tx", &cfg.driver, "serial_driver");
    assert_eq!(cfg.clients().len(), 2);
    assert_eq!(cfg.clients().len(), clients_of(&sdf, "serial_virt_tx"));
    for (i, c) in cfg.clients().iter().enumerate() {
        let name = format!("client{i}");
        check_conn(&sdf, "serial_virt_tx", &c.conn, &name);
        assert_eq!(c.name(), name.as_bytes());
    }
    assert_eq!(cfg.begin_str(), b"Begin input\r\n");
    assert!(cfg.enable_colour());
    assert!(cfg.enable_rx());
}

#[test]
fn clients() {
    let sdf = system();
    for i in 0..2 {
        let pd = format!("client{i}");
        let b = blob(&format!("serial_client_{pd}.data"));
        assert_eq!(b.bytes().len(), size_of::<SerialClientConfig>());
        let cfg = SerialClientConfig::from_blob(b.bytes()).unwrap();
        check_conn(&sdf, &pd, &cfg.rx, "serial_virt_rx");
        check_conn(&sdf, &pd, &cfg.tx, "serial_virt_tx");
    }
}

#[test]
fn magics_do_not_cross() {
    // A client blob is refused as a driver config (too short) and a driver blob's bytes with a
    // foreign magic are refused.
    let b = blob("serial_client_client0.data");
    assert!(SerialDriverConfig::from_blob(b.bytes()).is_err());
    let mut bytes = blob("serial_driver_config.data").bytes().to_vec();
    bytes[4] = 0x02;
    let b = lions_sdf::AlignedBlob::new(&bytes);
    assert!(SerialDriverConfig::from_blob(b.bytes()).is_err());
}

#[test]
fn tx_only_subsystem() {
    // The nfs system has no Rx virt: sdfgen leaves every Rx connection all zero.
    let sdf = Sdf::load("nfs");
    let b = Blob::load("nfs", "serial_driver_config.data");
    let cfg = SerialDriverConfig::from_blob(b.bytes()).unwrap();
    assert!(!cfg.rx_enabled());
    assert!(!cfg.rx.is_connected());
    check_conn(&sdf, "serial_driver", &cfg.tx, "serial_virt_tx");
    for pd in ["nfs", "client0"] {
        let b = Blob::load("nfs", &format!("serial_client_{pd}.data"));
        let cfg = SerialClientConfig::from_blob(b.bytes()).unwrap();
        assert!(!cfg.rx.is_connected(), "{pd}");
        check_conn(&sdf, pd, &cfg.tx, "serial_virt_tx");
    }
}
