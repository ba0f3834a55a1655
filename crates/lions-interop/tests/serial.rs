// SPDX-License-Identifier: BSD-2-Clause
//! Interop: the serial blobs the real sdfgen 0.35.1 wrote (interop/fixtures/serial) parse as our
//! structs and agree with the `.system` file they came with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lions_os::{Config, RegionResource};
use lions_sdf::{AlignedBlob, System};
use lions_serial::config::{
    SerialClientConfig, SerialConnectionResource, SerialDriverConfig, SerialVirtRxConfig,
    SerialVirtTxConfig,
};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../interop/fixtures/serial");

fn system() -> System {
    System::load(format!("{DIR}/serial.system")).unwrap()
}

fn blob(name: &str) -> AlignedBlob {
    AlignedBlob::read(format!("{DIR}/{name}")).unwrap()
}

/// The region is mapped in `pd` exactly at its vaddr with the memory region's size; returns the
/// memory region's name.
fn mapped<'a>(sys: &'a System, pd: &str, r: &RegionResource) -> &'a str {
    let (map, mr) = sys.pd(pd).unwrap().map_at(sys, r.vaddr).unwrap_or_else(|| {
        panic!("{pd}: nothing mapped at {:#x}", r.vaddr);
    });
    assert_eq!(map.vaddr, r.vaddr, "{pd}: vaddr is the map's start");
    assert_eq!(mr.size, r.size, "{pd}: size of {}", mr.name);
    &mr.name
}

/// The one other PD that maps `mr`.
fn peer_of<'a>(sys: &'a System, pd: &str, mr: &str) -> &'a str {
    let peers: Vec<_> = sys
        .pds
        .iter()
        .filter(|p| p.name != pd && p.map_of(mr).is_some())
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(peers.len(), 1, "{mr} is shared by exactly two PDs");
    peers[0]
}

/// A connection of `pd` to `expected_peer`: both regions mapped as described, shared with that
/// peer, and `id` is `pd`'s end of their channel.
fn check_conn(sys: &System, pd: &str, conn: &SerialConnectionResource, expected_peer: &str) {
    let queue = mapped(sys, pd, &conn.queue);
    let data = mapped(sys, pd, &conn.data);
    assert!(
        queue.contains("/queue/") && data.contains("/data/"),
        "{queue} / {data}"
    );
    assert_eq!(peer_of(sys, pd, queue), expected_peer);
    assert_eq!(peer_of(sys, pd, data), expected_peer);
    assert_eq!(
        Some(conn.id),
        sys.channel_id(pd, expected_peer),
        "{pd} -> {expected_peer}"
    );
    assert!(conn.data.size.is_power_of_two());
}

fn clients_of(sys: &System, virt: &str) -> usize {
    sys.channels_of(virt)
        .filter(|(_, peer)| peer.pd.starts_with("client"))
        .count()
}

#[test]
fn driver() {
    let sys = system();
    let b = blob("serial_driver_config.data");
    assert_eq!(b.bytes().len(), size_of::<SerialDriverConfig>());
    let cfg = SerialDriverConfig::from_blob(b.bytes()).unwrap();
    check_conn(&sys, "serial_driver", &cfg.rx, "serial_virt_rx");
    check_conn(&sys, "serial_driver", &cfg.tx, "serial_virt_tx");
    assert_eq!(cfg.default_baud, 115_200);
    assert!(cfg.rx_enabled());
}

#[test]
fn virt_rx() {
    let sys = system();
    let b = blob("serial_virt_rx.data");
    assert_eq!(b.bytes().len(), size_of::<SerialVirtRxConfig>());
    let cfg = SerialVirtRxConfig::from_blob(b.bytes()).unwrap();
    check_conn(&sys, "serial_virt_rx", &cfg.driver, "serial_driver");
    assert_eq!(cfg.clients().len(), 2);
    assert_eq!(cfg.clients().len(), clients_of(&sys, "serial_virt_rx"));
    for (i, c) in cfg.clients().iter().enumerate() {
        check_conn(&sys, "serial_virt_rx", c, &format!("client{i}"));
    }
    assert_eq!(cfg.switch_char, 0x1c);
    assert_eq!(cfg.terminate_num_char, b'\r');
}

#[test]
fn virt_tx() {
    let sys = system();
    let b = blob("serial_virt_tx.data");
    assert_eq!(b.bytes().len(), size_of::<SerialVirtTxConfig>());
    let cfg = SerialVirtTxConfig::from_blob(b.bytes()).unwrap();
    check_conn(&sys, "serial_virt_tx", &cfg.driver, "serial_driver");
    assert_eq!(cfg.clients().len(), 2);
    assert_eq!(cfg.clients().len(), clients_of(&sys, "serial_virt_tx"));
    for (i, c) in cfg.clients().iter().enumerate() {
        let name = format!("client{i}");
        check_conn(&sys, "serial_virt_tx", &c.conn, &name);
        assert_eq!(c.name(), name.as_bytes());
    }
    assert_eq!(cfg.begin_str(), b"Begin input\r\n");
    assert!(cfg.enable_colour());
    assert!(cfg.enable_rx());
}

#[test]
fn clients() {
    let sys = system();
    for i in 0..2 {
        let pd = format!("client{i}");
        let b = blob(&format!("serial_client_{pd}.data"));
        assert_eq!(b.bytes().len(), size_of::<SerialClientConfig>());
        let cfg = SerialClientConfig::from_blob(b.bytes()).unwrap();
        check_conn(&sys, &pd, &cfg.rx, "serial_virt_rx");
        check_conn(&sys, &pd, &cfg.tx, "serial_virt_tx");
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
    let b = AlignedBlob::new(&bytes);
    assert!(SerialDriverConfig::from_blob(b.bytes()).is_err());
}

#[test]
fn tx_only_subsystem() {
    // The nfs system has no Rx virt: sdfgen leaves every Rx connection all zero.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../interop/fixtures/nfs");
    let sys = System::load(format!("{dir}/nfs.system")).unwrap();
    let b = AlignedBlob::read(format!("{dir}/serial_driver_config.data")).unwrap();
    let cfg = SerialDriverConfig::from_blob(b.bytes()).unwrap();
    assert!(!cfg.rx_enabled());
    assert!(!cfg.rx.is_connected());
    check_conn(&sys, "serial_driver", &cfg.tx, "serial_virt_tx");
    for pd in ["nfs", "client0"] {
        let b = AlignedBlob::read(format!("{dir}/serial_client_{pd}.data")).unwrap();
        let cfg = SerialClientConfig::from_blob(b.bytes()).unwrap();
        assert!(!cfg.rx.is_connected(), "{pd}");
        check_conn(&sys, pd, &cfg.tx, "serial_virt_tx");
    }
}
