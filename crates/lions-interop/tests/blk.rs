// SPDX-License-Identifier: BSD-2-Clause
//! Interop: the blk blobs the real sdfgen 0.35.1 wrote (interop/fixtures/blk, fat) parse as our
//! structs and agree with the `.system` file they came with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lions_blk::config::{BlkClientConfig, BlkConnectionResource, BlkDriverConfig, BlkVirtConfig};
use lions_blk::{BlkReqQueue, BlkRequest, BlkRespQueue, BlkResponse, BlkStorageInfo};
use lions_interop::{Blob, Sdf};
use lions_os::{Config, DeviceRegionResource};

fn load(system: &str) -> Sdf {
    Sdf::load(system)
}

fn blob(system: &str, name: &str) -> Blob {
    Blob::load(system, name)
}

/// Which end of the connection a PD is: the server writes the storage info, the requester only
/// reads it.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Requester,
    Server,
}

/// A connection of `pd` to `peer`: all three regions mapped as described and shared with `peer`,
/// `id` is `pd`'s end of their channel, and both queues of `num_buffers` entries fit.
fn check_conn(sdf: &Sdf, pd: &str, conn: &BlkConnectionResource, peer: &str, role: Role) {
    for r in [&conn.storage_info, &conn.req_queue, &conn.resp_queue] {
        let (_, mr) = sdf.mapped(pd, r);
        assert_eq!(sdf.peer_of(pd, &mr.name), peer);
    }
    let writable = sdf.mapped(pd, &conn.storage_info).0.perms.write;
    assert_eq!(
        writable,
        role == Role::Server,
        "{pd}: only the server may write storage info"
    );
    assert_eq!(Some(conn.id), sdf.0.channel_id(pd, peer), "{pd} -> {peer}");
    let n = u64::from(conn.num_buffers);
    assert!(n.is_power_of_two());
    assert!(conn.storage_info.size >= size_of::<BlkStorageInfo>() as u64);
    let fits = |header: usize, entry: usize| header as u64 + entry as u64 * n;
    assert!(conn.req_queue.size >= fits(size_of::<BlkReqQueue>(), size_of::<BlkRequest>()));
    assert!(conn.resp_queue.size >= fits(size_of::<BlkRespQueue>(), size_of::<BlkResponse>()));
}

/// A data region as the device sees it: mapped at its vaddr, and `io_addr` is the region's
/// physical address.
fn check_device_data(sdf: &Sdf, pd: &str, data: &DeviceRegionResource) -> String {
    let (map, mr) = sdf.mapped(pd, &data.region);
    let writable = map.perms.write;
    assert!(writable);
    assert_eq!(
        mr.phys_addr,
        Some(data.io_addr),
        "{pd}: io_addr of {}",
        mr.name
    );
    mr.name.clone()
}

#[test]
fn driver() {
    let sdf = load("blk");
    let b = blob("blk", "blk_driver.data");
    assert_eq!(b.bytes().len(), size_of::<BlkDriverConfig>());
    let cfg = BlkDriverConfig::from_blob(b.bytes()).unwrap();
    check_conn(&sdf, "blk_driver", &cfg.virt, "blk_virt", Role::Server);
}

#[test]
fn virt() {
    let sdf = load("blk");
    let b = blob("blk", "blk_virt.data");
    assert_eq!(b.bytes().len(), size_of::<BlkVirtConfig>());
    let cfg = BlkVirtConfig::from_blob(b.bytes()).unwrap();
    check_conn(
        &sdf,
        "blk_virt",
        &cfg.driver.conn,
        "blk_driver",
        Role::Requester,
    );
    let driver_data = check_device_data(&sdf, "blk_virt", &cfg.driver.data);
    assert!(
        sdf.0
            .pd("blk_driver")
            .unwrap()
            .map_of(&driver_data)
            .is_none(),
        "drivers never map data"
    );
    let clients = sdf
        .channels_of("blk_virt")
        .filter(|(_, p)| p.pd.starts_with("client"))
        .count();
    assert_eq!(cfg.clients().len(), 2);
    assert_eq!(cfg.clients().len(), clients);
    for (i, c) in cfg.clients().iter().enumerate() {
        let pd = format!("client{i}");
        check_conn(&sdf, "blk_virt", &c.conn, &pd, Role::Server);
        let data = check_device_data(&sdf, "blk_virt", &c.data);
        assert_eq!(sdf.peer_of("blk_virt", &data), pd);
        assert_eq!(
            c.partition,
            u32::try_from(i).unwrap(),
            "meta/blk.py: client i on partition i"
        );
    }
}

#[test]
fn clients() {
    let sdf = load("blk");
    for i in 0..2 {
        let pd = format!("client{i}");
        let b = blob("blk", &format!("blk_client_{pd}.data"));
        assert_eq!(b.bytes().len(), size_of::<BlkClientConfig>());
        let cfg = BlkClientConfig::from_blob(b.bytes()).unwrap();
        check_conn(&sdf, &pd, &cfg.virt, "blk_virt", Role::Requester);
        let (map, mr) = sdf.mapped(&pd, &cfg.data);
        let writable = map.perms.write;
        assert!(writable);
        assert_eq!(sdf.peer_of(&pd, &mr.name), "blk_virt");
    }
}

#[test]
fn fat_server_is_a_blk_client() {
    let sdf = load("fat");
    let b = blob("fat", "blk_client_fatfs.data");
    let cfg = BlkClientConfig::from_blob(b.bytes()).unwrap();
    check_conn(&sdf, "fatfs", &cfg.virt, "blk_virt", Role::Requester);
    let b = blob("fat", "blk_virt.data");
    let virt = BlkVirtConfig::from_blob(b.bytes()).unwrap();
    assert_eq!(virt.clients().len(), 1);
    check_conn(
        &sdf,
        "blk_virt",
        &virt.clients()[0].conn,
        "fatfs",
        Role::Server,
    );
}

#[test]
fn foreign_blob_is_refused() {
    let b = blob("serial", "serial_client_client0.data");
    assert!(
        BlkClientConfig::from_blob(b.bytes()).is_err(),
        "serial magic is not blk"
    );
}
