// SPDX-License-Identifier: BSD-2-Clause
//! Interop: the net configs sdfgen 0.35.1 wrote (`interop/fixtures/{net,net_vswitch,nfs}`) parse
//! with our structs and agree with the `.system` file they came with.
#![allow(clippy::unwrap_used)]

use lions_interop::{Blob, Sdf};
use lions_net::queue::NetQueue;
use lions_net::*;
use lions_os::Config;

/// A connection of `pd` to `peer`: both queues are `pd`'s mappings of regions `peer` maps too, big
/// enough for the capacity, and `id` is `pd`'s end of their channel.
fn check_conn(sdf: &Sdf, pd: &str, peer: &str, c: &NetConnectionResource) {
    let free = sdf.check_shared(pd, peer, c.free_queue.vaddr, c.free_queue.size);
    let active = sdf.check_shared(pd, peer, c.active_queue.vaddr, c.active_queue.size);
    assert!(
        free.ends_with("/free") && active.ends_with("/active"),
        "{free} {active}"
    );
    let cap = usize::from(c.num_buffers);
    assert!(cap.is_power_of_two());
    assert!(NetQueue::bytes_for(cap) as u64 <= c.free_queue.size.min(c.active_queue.size));
    assert_eq!(u64::from(c.id), sdf.channel_id(pd, peer), "{pd} -> {peer}");
}

/// `rx_data` of a copier: `(oid, memory-region suffix)`; every other oid is unmapped.
type Sources<'a> = &'a [(u8, &'a str)];

const VIRT_ONLY: Sources<'static> = &[(0, "rx/data/device")];

#[allow(clippy::too_many_arguments)]
fn check_client_and_copier(
    sys: &str,
    sdf: &Sdf,
    client: &str,
    copier: &str,
    rx_peer: &str,
    tx_peer: &str,
    mac: [u8; 6],
    sources: Sources<'_>,
) {
    let blob = Blob::load(sys, &format!("net_client_{client}.data"));
    let cfg = NetClientConfig::from_blob(blob.bytes()).unwrap();
    check_conn(sdf, client, copier, &cfg.rx);
    check_conn(sdf, client, tx_peer, &cfg.tx);
    sdf.check_shared(client, copier, cfg.rx_data.vaddr, cfg.rx_data.size);
    let tx_mr = sdf.check_shared(client, tx_peer, cfg.tx_data.vaddr, cfg.tx_data.size);
    assert!(tx_mr.ends_with(&format!("tx/data/client/{client}")));
    assert_eq!(cfg.mac_addr, MacAddr(mac));
    assert_eq!(u64::from(cfg.rx.num_buffers) * 2048, cfg.rx_data.size);

    let blob = Blob::load(sys, &format!("net_copy_{copier}.data"));
    let cfg = NetCopyConfig::from_blob(blob.bytes()).unwrap();
    check_conn(sdf, copier, rx_peer, &cfg.rx);
    check_conn(sdf, copier, client, &cfg.client);
    // rx_data is indexed by oid: the vswitch's source port, or 0 behind the Rx virt.
    for oid in 0..64u8 {
        match sources.iter().find(|(o, _)| *o == oid) {
            Some((_, suffix)) => {
                let r = cfg.rx_data(oid).unwrap();
                let mr = sdf.check_region(copier, r.vaddr, r.size);
                assert!(mr.ends_with(suffix), "{copier} oid {oid}: {mr}");
            }
            None => assert!(cfg.rx_data(oid).is_none() && cfg.rx_data[usize::from(oid)].size == 0),
        }
    }
    sdf.check_shared(copier, client, cfg.client_data.vaddr, cfg.client_data.size);
}

fn check_driver_and_virts(sys: &str, sdf: &Sdf, rx_clients: &[&str], tx_clients: &[&str]) {
    let blob = Blob::load(sys, "net_driver.data");
    let drv = NetDriverConfig::from_blob(blob.bytes()).unwrap();
    check_conn(sdf, "net_driver", "net_virt_rx", &drv.virt_rx);
    check_conn(sdf, "net_driver", "net_virt_tx", &drv.virt_tx);

    let blob = Blob::load(sys, "net_virt_rx.data");
    assert_eq!(blob.bytes().len(), size_of::<NetVirtRxConfig>());
    let rx = NetVirtRxConfig::from_blob(blob.bytes()).unwrap();
    check_conn(sdf, "net_virt_rx", "net_driver", &rx.driver);
    assert_eq!(rx.driver.num_buffers, drv.virt_rx.num_buffers);
    let data = sdf.check_region("net_virt_rx", rx.data.region.vaddr, rx.data.region.size);
    assert_eq!(
        Some(rx.data.io_addr),
        sdf.phys(data),
        "io_addr is the DMA region's phys_addr"
    );
    assert_eq!(rx.data.region.size, u64::from(rx.driver.num_buffers) * 2048);
    let meta = sdf.check_region(
        "net_virt_rx",
        rx.buffer_metadata.vaddr,
        rx.buffer_metadata.size,
    );
    assert!(
        rx.buffer_metadata.size >= u64::from(rx.driver.num_buffers),
        "{meta}: a byte per buffer"
    );
    assert_eq!(rx.clients().len(), rx_clients.len());
    for (c, peer) in rx.clients().iter().zip(rx_clients) {
        check_conn(sdf, "net_virt_rx", peer, &c.conn);
    }

    let blob = Blob::load(sys, "net_virt_tx.data");
    assert_eq!(blob.bytes().len(), size_of::<NetVirtTxConfig>());
    let tx = NetVirtTxConfig::from_blob(blob.bytes()).unwrap();
    check_conn(sdf, "net_virt_tx", "net_driver", &tx.driver);
    assert_eq!(tx.clients().len(), tx_clients.len());
    let mut total = 0;
    for (c, peer) in tx.clients().iter().zip(tx_clients) {
        check_conn(sdf, "net_virt_tx", peer, &c.conn);
        assert!(!c.regions().is_empty());
        for r in c.regions() {
            let mr = sdf.check_region("net_virt_tx", r.data.region.vaddr, r.data.region.size);
            assert_eq!(Some(r.data.io_addr), sdf.phys(mr));
            assert_eq!(u64::from(r.num_buffers) * 2048, r.data.region.size);
            total += u64::from(r.num_buffers);
        }
    }
    // sdfgen rounds the driver queue up to a power of two (1536 buffers -> 2048 with a vswitch).
    let cap = u64::from(tx.driver.num_buffers);
    assert!(
        total <= cap && cap < 2 * total,
        "the driver Tx queue holds every Tx buffer: {total} in {cap}"
    );
}

#[test]
fn net_fixture() {
    let sdf = Sdf::load("net");
    check_driver_and_virts(
        "net",
        &sdf,
        &["net_copy0", "net_copy1"],
        &["client0", "client1"],
    );
    let blob = Blob::load("net", "net_virt_rx.data");
    let rx = NetVirtRxConfig::from_blob(blob.bytes()).unwrap();
    for (i, (client, copier)) in [("client0", "net_copy0"), ("client1", "net_copy1")]
        .into_iter()
        .enumerate()
    {
        let mac = [0x52, 0x54, 0x01, 0x00, 0x00, u8::try_from(i).unwrap()];
        assert_eq!(rx.clients()[i].macs(), &[MacAddr(mac)]);
        check_client_and_copier(
            "net",
            &sdf,
            client,
            copier,
            "net_virt_rx",
            "net_virt_tx",
            mac,
            VIRT_ONLY,
        );
        let blob = Blob::load("net", &format!("lib_sddf_lwip_config_{client}.data"));
        let lwip = LibSddfLwipConfig::from_blob(blob.bytes()).unwrap();
        let mr = sdf.check_region(client, lwip.pbuf_pool.vaddr, lwip.pbuf_pool.size);
        assert!(mr.ends_with(&format!("lib_sddf_lwip/{client}")));
        assert!(lwip.num_pbufs > 0);
    }
}

#[test]
fn net_vswitch_fixture() {
    let sys = "net_vswitch";
    let sdf = Sdf::load(sys);
    check_driver_and_virts(
        sys,
        &sdf,
        &["net_copy2", "net_vswitch"],
        &["client2", "net_vswitch"],
    );
    for i in 0..3u8 {
        let (client, copier) = (format!("client{i}"), format!("net_copy{i}"));
        let (rx_peer, tx_peer) = if i < 2 {
            ("net_vswitch", "net_vswitch")
        } else {
            ("net_virt_rx", "net_virt_tx")
        };
        let sources: Sources<'_> = match i {
            0 => &[(1, "tx/data/client/client1"), (2, "rx/data/device")],
            1 => &[(0, "tx/data/client/client0"), (2, "rx/data/device")],
            _ => VIRT_ONLY,
        };
        check_client_and_copier(
            sys,
            &sdf,
            &client,
            &copier,
            rx_peer,
            tx_peer,
            [0x52, 0x54, 1, 0, 1, i],
            sources,
        );
    }
    let blob = Blob::load(sys, "net_vswitch.data");
    assert_eq!(blob.bytes().len(), size_of::<NetVswitchConfig>());
    let vs = NetVswitchConfig::from_blob(blob.bytes()).unwrap();
    assert_eq!(vs.ports().len(), 3);
    // Client ports: rx toward the copier, tx from the client.
    for (i, p) in vs.ports()[..2].iter().enumerate() {
        check_conn(&sdf, "net_vswitch", &format!("net_copy{i}"), &p.rx);
        check_conn(&sdf, "net_vswitch", &format!("client{i}"), &p.tx);
        sdf.check_shared(
            "net_vswitch",
            &format!("client{i}"),
            p.tx_data.vaddr,
            p.tx_data.size,
        );
        assert_eq!(
            p.mac_addr,
            MacAddr([0x52, 0x54, 1, 0, 1, u8::try_from(i).unwrap()])
        );
    }
    // The virtualiser port is last, its connections crossed.
    let virt = &vs.ports()[2];
    check_conn(&sdf, "net_vswitch", "net_virt_tx", &virt.rx);
    check_conn(&sdf, "net_vswitch", "net_virt_rx", &virt.tx);
    assert_eq!(virt.mac_addr, MacAddr::default());
    // ACL rules client0 <-> client1 and client0 <-> outside, both directions.
    assert_eq!(
        [vs.ports[0].acl, vs.ports[1].acl, vs.ports[2].acl],
        [0b110, 0b001, 0b001]
    );
    assert!(vs.ports()[0].may_send_to(2) && !vs.ports()[1].may_send_to(2));
    sdf.check_region(
        "net_vswitch",
        vs.buffer_metadata.vaddr,
        vs.buffer_metadata.size,
    );
}

#[test]
fn nfs_fixture_net_side() {
    let sys = "nfs";
    let sdf = Sdf::load(sys);
    check_driver_and_virts(sys, &sdf, &["nfs_net_copy"], &["nfs"]);
    check_client_and_copier(
        sys,
        &sdf,
        "nfs",
        "nfs_net_copy",
        "net_virt_rx",
        "net_virt_tx",
        [0x52, 0x54, 1, 0, 2, 0],
        VIRT_ONLY,
    );
    let blob = Blob::load(sys, "lib_sddf_lwip_config_nfs.data");
    let lwip = LibSddfLwipConfig::from_blob(blob.bytes()).unwrap();
    sdf.check_region("nfs", lwip.pbuf_pool.vaddr, lwip.pbuf_pool.size);
}

#[test]
fn wrong_blobs_are_refused() {
    let blob = Blob::load("net", "lib_sddf_lwip_config_client0.data");
    assert!(
        NetDriverConfig::from_blob(blob.bytes()).is_err(),
        "too short and wrong magic"
    );
    let blob = Blob::load("net", "net_copy_net_copy0.data");
    assert!(
        LibSddfLwipConfig::from_blob(blob.bytes()).is_err(),
        "net magic, not lwip"
    );
}
