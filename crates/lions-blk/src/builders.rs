// SPDX-License-Identifier: BSD-2-Clause
//! Safe constructors for the block configs, so a test or a hand-written system builds them from
//! regions and channel ids, with the magic and the counts filled in, and no zerocopy or pointer
//! casts in user code.
//!
//! A built config passes [`Config::check`] whenever its regions do (a power-of-two buffer count,
//! queue regions that hold the header and the entries, data regions in whole transfer units).
//!
//! ```
//! use lions_blk::{BlkClientConfig, BlkConnectionResource, BlkVirtConfig};
//! use lions_os::{Config, DeviceRegionResource, RegionResource};
//!
//! let r = |vaddr, size| RegionResource { vaddr, size };
//! let conn = |base: u64, id| BlkConnectionResource::new(
//!     r(base, 4096), r(base + 0x1000, 4096), r(base + 0x2000, 4096), 16, id);
//! let data = |vaddr| DeviceRegionResource { region: r(vaddr, 0x10_000), io_addr: vaddr };
//! let virt = BlkVirtConfig::new(conn(0x10_0000, 0), data(0x20_0000))
//!     .with_client(conn(0x30_0000, 1), data(0x40_0000), 0)?;
//! virt.check()?;
//! let client = BlkClientConfig::new(conn(0x50_0000, 0), r(0x60_0000, 0x10_000));
//! client.check()?;
//! # Ok::<(), lions_os::ConfigError>(())
//! ```

use crate::config::{
    BLK_MAGIC, BlkClientConfig, BlkConnectionResource, BlkDriverConfig, BlkVirtClient,
    BlkVirtConfig, BlkVirtDriver,
};
use lions_os::{Config, ConfigError, DeviceRegionResource, MAX_CLIENTS, RegionResource};
use zerocopy::FromZeros;

impl BlkConnectionResource {
    /// One end of a block connection: the storage-info region, the request and response queue
    /// regions, the number of buffers (queue entries, a power of two) and the channel id to the
    /// peer at this end.
    pub const fn new(
        storage_info: RegionResource,
        req_queue: RegionResource,
        resp_queue: RegionResource,
        num_buffers: u16,
        id: u8,
    ) -> Self {
        Self {
            storage_info,
            req_queue,
            resp_queue,
            num_buffers,
            id,
            _pad: [0; 5],
        }
    }

    /// The same connection seen from the other end, whose channel to this end is `id`.
    pub const fn with_id(self, id: u8) -> Self {
        Self { id, ..self }
    }
}

impl BlkDriverConfig {
    /// A driver serving the virt over `virt`.
    pub fn new(virt: BlkConnectionResource) -> Self {
        let mut c = Self::new_zeroed();
        c.magic = BLK_MAGIC;
        c.virt = virt;
        c
    }
}

impl BlkVirtConfig {
    /// A virtualiser in front of the driver (`driver`: the connection; `data`: the driver's data
    /// region as the virt maps it, with the device's address), with no clients.
    pub fn new(driver: BlkConnectionResource, data: DeviceRegionResource) -> Self {
        let mut c = Self::new_zeroed();
        c.magic = BLK_MAGIC;
        c.driver = BlkVirtDriver { conn: driver, data };
        c
    }

    /// Add the next client: its connection, its data region (as the virt maps it, with the
    /// device's address) and the partition it may reach.
    pub fn with_client(
        mut self,
        conn: BlkConnectionResource,
        data: DeviceRegionResource,
        partition: u32,
    ) -> Result<Self, ConfigError> {
        let n = self.clients().len();
        if n >= MAX_CLIENTS || self.num_clients != n as u64 {
            return Err(ConfigError::Count {
                config: Self::NAME,
                field: "num_clients",
                value: self.num_clients.saturating_add(1),
                max: MAX_CLIENTS as u64,
            });
        }
        self.clients[n] = BlkVirtClient {
            conn,
            data,
            partition,
            _pad: [0; 4],
        };
        self.num_clients += 1;
        Ok(self)
    }
}

impl BlkClientConfig {
    /// A client of the virt over `virt`, with its data region `data`.
    pub fn new(virt: BlkConnectionResource, data: RegionResource) -> Self {
        let mut c = Self::new_zeroed();
        c.magic = BLK_MAGIC;
        c.virt = virt;
        c.data = data;
        c
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn r(vaddr: u64, size: u64) -> RegionResource {
        RegionResource { vaddr, size }
    }

    fn conn(i: u64, id: u8) -> BlkConnectionResource {
        let b = i << 24;
        BlkConnectionResource::new(r(b, 4096), r(b + 0x1000, 4096), r(b + 0x2000, 4096), 32, id)
    }

    fn data(i: u64) -> DeviceRegionResource {
        DeviceRegionResource {
            region: r((i << 24) + 0x10_0000, 0x20_000),
            io_addr: 0x4000_0000 + (i << 24),
        }
    }

    #[test]
    fn connection_round_trips() {
        let c = conn(2, 5);
        assert_eq!(c.storage_info, r(2 << 24, 4096));
        assert_eq!(c.req_queue, r((2 << 24) + 0x1000, 4096));
        assert_eq!(c.resp_queue, r((2 << 24) + 0x2000, 4096));
        assert_eq!((c.num_buffers, c.id), (32, 5));
        assert_eq!(c.with_id(0).req_queue, c.req_queue);
        assert_eq!(c.with_id(0).id, 0);
    }

    #[test]
    fn driver_round_trips() {
        let d = BlkDriverConfig::new(conn(1, 3));
        d.check().unwrap();
        assert_eq!(d.virt, conn(1, 3));
    }

    #[test]
    fn virt_round_trips_and_refuses_a_65th_client() {
        let v = BlkVirtConfig::new(conn(0, 0), data(0))
            .with_client(conn(1, 1), data(1), 0)
            .unwrap()
            .with_client(conn(2, 2), data(2), 3)
            .unwrap();
        v.check().unwrap();
        assert_eq!(v.driver.conn, conn(0, 0));
        assert_eq!(v.driver.data, data(0));
        assert_eq!(v.clients().len(), 2);
        assert_eq!(v.clients()[1].conn, conn(2, 2));
        assert_eq!(v.clients()[1].data, data(2));
        assert_eq!(v.clients()[1].partition, 3);
        let mut full = BlkVirtConfig::new(conn(0, 0), data(0));
        for _ in 0..MAX_CLIENTS {
            full = full.with_client(conn(1, 1), data(1), 0).unwrap();
        }
        full.check().unwrap();
        assert!(matches!(
            full.with_client(conn(1, 1), data(1), 0),
            Err(ConfigError::Count { value: 65, .. })
        ));
    }

    #[test]
    fn client_round_trips_and_bad_sizes_fail_the_check() {
        let c = BlkClientConfig::new(conn(1, 0), r(0x9000_0000, 0x10_000));
        c.check().unwrap();
        assert_eq!(c.virt, conn(1, 0));
        assert_eq!(c.data, r(0x9000_0000, 0x10_000));
        // Not whole transfer units, and not a power-of-two buffer count: the check refuses.
        assert!(BlkClientConfig::new(conn(1, 0), r(0, 100)).check().is_err());
        let odd = BlkConnectionResource::new(r(0, 4096), r(0, 4096), r(0, 4096), 3, 0);
        assert!(BlkDriverConfig::new(odd).check().is_err());
    }
}
