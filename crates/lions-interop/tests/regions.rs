// SPDX-License-Identifier: BSD-2-Clause
//! Interop: every config sdfgen 0.35.1 wrote passes the region check a PD's token needs
//! ([`lions_os::mapped`]) against the mappings its `.system` file gives that PD: each region
//! the component uses is mapped there, whole, with the rights it claims, aligned, and no two
//! overlap. (On the host board the same check runs against the launcher's mapping table, which
//! is made from this file; on seL4 the Microkit tool maps what it says.)
#![allow(clippy::unwrap_used)]

use lions_blk::{BlkClientConfig, BlkDriverConfig, BlkVirtConfig};
use lions_fs::{FsClientConfig, FsServerConfig};
use lions_i2c::{I2cClientConfig, I2cDriverConfig, I2cVirtConfig};
use lions_interop::{Blob, Sdf};
use lions_net::{
    NetClientConfig, NetCopyConfig, NetDriverConfig, NetVirtRxConfig, NetVirtTxConfig,
};
use lions_os::Regions;
use lions_os::mapped::{Access, Lookup, check_with};
use lions_serial::{
    SerialClientConfig, SerialDriverConfig, SerialVirtRxConfig, SerialVirtTxConfig,
};

/// What `pd`'s mappings in `sdf` say about `[vaddr, vaddr + size)`.
fn lookup(sdf: &Sdf, pd: &str, vaddr: u64, size: u64) -> Lookup {
    let p = sdf.pd(pd).unwrap_or_else(|| panic!("no PD {pd}"));
    let held = p.maps.iter().find(|m| {
        let len = sdf.size(&m.mr);
        m.perms.read && vaddr >= m.vaddr && vaddr.saturating_add(size) <= m.vaddr + len
    });
    match held {
        Some(m) if m.perms.write => Lookup::Mapped(Access::ReadWrite),
        Some(_) => Lookup::Mapped(Access::Read),
        None => Lookup::Unmapped,
    }
}

/// Check blob `file` of `system` as a `C` against PD `pd`'s mappings; returns how many regions
/// it claims.
fn check<C>(system: &str, file: &str, pd: &str) -> usize
where
    C: Regions + zerocopy::KnownLayout<PointerMetadata = ()>,
{
    let sdf = Sdf::load(system);
    let blob = Blob::load(system, file);
    let cfg = C::from_blob(blob.bytes()).unwrap();
    check_with(cfg, |v, s| lookup(&sdf, pd, v, s))
        .unwrap_or_else(|e| panic!("{system}/{file} in {pd}: {e}"));
    let mut n = 0;
    cfg.claims(&mut |_| n += 1);
    n
}

#[test]
fn serial_configs_claim_what_their_pds_map() {
    let s = "serial";
    assert_eq!(
        check::<SerialDriverConfig>(s, "serial_driver_config.data", "serial_driver"),
        4
    );
    assert_eq!(
        check::<SerialVirtTxConfig>(s, "serial_virt_tx.data", "serial_virt_tx"),
        6
    );
    assert_eq!(
        check::<SerialVirtRxConfig>(s, "serial_virt_rx.data", "serial_virt_rx"),
        6
    );
    for c in ["client0", "client1"] {
        assert_eq!(
            check::<SerialClientConfig>(s, &format!("serial_client_{c}.data"), c),
            4
        );
    }
}

#[test]
fn net_configs_claim_what_their_pds_map() {
    for s in ["net", "net_vswitch", "virtio_sddf"] {
        check::<NetDriverConfig>(s, "net_driver.data", "net_driver");
        check::<NetVirtRxConfig>(s, "net_virt_rx.data", "net_virt_rx");
        check::<NetVirtTxConfig>(s, "net_virt_tx.data", "net_virt_tx");
    }
    for (s, n) in [("net", 2), ("net_vswitch", 3), ("virtio_sddf", 1)] {
        for i in 0..n {
            let (client, copier) = (format!("client{i}"), format!("net_copy{i}"));
            let claims = check::<NetClientConfig>(s, &format!("net_client_{client}.data"), &client);
            assert_eq!(claims, 6, "{s}/{client}: four queues and two data regions");
            check::<NetCopyConfig>(s, &format!("net_copy_{copier}.data"), &copier);
        }
    }
    check::<NetClientConfig>("nfs", "net_client_nfs.data", "nfs");
    check::<NetCopyConfig>("nfs", "net_copy_nfs_net_copy.data", "nfs_net_copy");
}

#[test]
fn blk_fs_and_i2c_configs_claim_what_their_pds_map() {
    for s in ["blk", "fat", "virtio_sddf"] {
        check::<BlkDriverConfig>(s, "blk_driver.data", "blk_driver");
        check::<BlkVirtConfig>(s, "blk_virt.data", "blk_virt");
    }
    for c in ["client0", "client1"] {
        check::<BlkClientConfig>("blk", &format!("blk_client_{c}.data"), c);
        check::<I2cClientConfig>("i2c", &format!("i2c_client_{c}.data"), c);
    }
    check::<BlkClientConfig>("virtio_sddf", "blk_client_client0.data", "client0");
    check::<BlkClientConfig>("fat", "blk_client_fatfs.data", "fatfs");
    assert_eq!(
        check::<FsServerConfig>("fat", "fs_server_fatfs.data", "fatfs"),
        3
    );
    assert_eq!(
        check::<FsClientConfig>("fat", "fs_client_client0.data", "client0"),
        3
    );
    check::<FsServerConfig>("nfs", "fs_server_nfs.data", "nfs");
    check::<I2cDriverConfig>("i2c", "i2c_driver.data", "i2c_driver");
    check::<I2cVirtConfig>("i2c", "i2c_virt.data", "i2c_virt");
}

#[test]
fn a_config_naming_what_its_pd_does_not_map_as_claimed_is_refused() {
    use lions_os::Config;
    let sdf = Sdf::load("serial");
    let blob = Blob::load("serial", "serial_virt_tx.data");
    let good = *SerialVirtTxConfig::from_blob(blob.bytes()).unwrap();
    let own = |v, s| lookup(&sdf, "serial_virt_tx", v, s);
    assert_eq!(check_with(&good, own), Ok(()));

    // Client 1's queue moved to where the PD maps nothing.
    let mut cfg = good;
    cfg.clients[1].conn.queue.vaddr = 0x7000_0000;
    let e = check_with(&cfg, own).unwrap_err();
    assert!(
        matches!(e, lions_os::MapError::Unmapped(c) if c.what == "client queue" && c.index == Some(1)),
        "{e}"
    );
    assert!(e.to_string().contains("not mapped"), "{e}");

    // The same system with the driver's queue mapped read-only: the virt writes it.
    let driver_queue = good.driver.queue.vaddr;
    let ro = |v, s| match lookup(&sdf, "serial_virt_tx", v, s) {
        Lookup::Mapped(_) if v == driver_queue => Lookup::Mapped(Access::Read),
        l => l,
    };
    let e = check_with(&good, ro).unwrap_err();
    assert!(
        matches!(e, lions_os::MapError::ReadOnly(c) if c.what == "driver queue"),
        "{e}"
    );

    // Client 0's data region overlapping client 1's queue, and a misaligned queue.
    let mut cfg = good;
    cfg.clients[0].conn.data.vaddr = good.clients[1].conn.queue.vaddr;
    // (Structural checks alone: the moved region is not mapped either.)
    let e = check_with(&cfg, |_, _| Lookup::Unknown).unwrap_err();
    assert!(matches!(e, lions_os::MapError::Overlap(..)), "{e}");
    assert!(matches!(
        check_with(&cfg, own),
        Err(lions_os::MapError::Unmapped(_))
    ));
    let mut cfg = good;
    cfg.clients[0].conn.queue.vaddr += 4;
    let e = check_with(&cfg, own).unwrap_err();
    assert!(matches!(e, lions_os::MapError::Misaligned(_)), "{e}");
}
