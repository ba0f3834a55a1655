// SPDX-License-Identifier: BSD-2-Clause
//! Interop: the I²C configs sdfgen 0.35.1 wrote (`interop/fixtures/i2c`) parse with our structs and
//! agree with the `.system` file.
#![allow(clippy::unwrap_used)]

use lions_i2c::*;
use lions_interop::{Blob, Sdf};
use lions_os::Config;

/// Both queues are `pd`'s mappings of regions `peer` maps too, large enough for the fixed layout,
/// and `id` is `pd`'s end of their channel.
fn check_conn(sdf: &Sdf, pd: &str, peer: &str, c: &I2cConnectionResource) {
    sdf.check_shared(pd, peer, c.req_queue.vaddr, c.req_queue.size);
    sdf.check_shared(pd, peer, c.resp_queue.vaddr, c.resp_queue.size);
    assert!(c.req_queue.size >= I2cRequestQueue::BYTES as u64);
    assert!(c.resp_queue.size >= I2cResponseQueue::BYTES as u64);
    assert_eq!(u64::from(c.id), sdf.channel_id(pd, peer), "{pd} -> {peer}");
}

#[test]
fn i2c_fixture() {
    let sdf = Sdf::load("i2c");
    let blob = Blob::load("i2c", "i2c_driver.data");
    let drv = I2cDriverConfig::from_blob(blob.bytes()).unwrap();
    check_conn(&sdf, "i2c_driver", "i2c_virt", &drv.virt);

    let blob = Blob::load("i2c", "i2c_virt.data");
    assert_eq!(blob.bytes().len(), size_of::<I2cVirtConfig>());
    let virt = I2cVirtConfig::from_blob(blob.bytes()).unwrap();
    check_conn(&sdf, "i2c_virt", "i2c_driver", &virt.driver);
    assert_eq!(virt.clients().len(), 2);
    for (i, c) in virt.clients().iter().enumerate() {
        let client = format!("client{i}");
        check_conn(&sdf, "i2c_virt", &client, &c.conn);
        // The data region: the client's mapping and the driver's mapping of the same region.
        let mr = sdf.check_region(&client, c.client_data_vaddr, c.data_size);
        assert_eq!(
            sdf.check_region("i2c_driver", c.driver_data_vaddr, c.data_size),
            mr
        );
        assert_eq!(
            c.translate(c.client_data_vaddr + 8, 8),
            Some(c.driver_data_vaddr + 8)
        );
        assert_eq!(c.translate(c.client_data_vaddr + c.data_size - 4, 8), None);

        let blob = Blob::load("i2c", &format!("i2c_client_{client}.data"));
        let cfg = I2cClientConfig::from_blob(blob.bytes()).unwrap();
        check_conn(&sdf, &client, "i2c_virt", &cfg.virt);
        assert_eq!(cfg.data.vaddr, c.client_data_vaddr);
        assert_eq!(sdf.check_region(&client, cfg.data.vaddr, cfg.data.size), mr);
    }
    assert!(
        I2cClientConfig::from_blob(Blob::load("i2c", "i2c_driver.data").bytes()).is_err(),
        "48 B blob is too short"
    );
}
