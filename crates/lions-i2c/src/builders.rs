// SPDX-License-Identifier: BSD-2-Clause
//! Safe constructors for the I²C configs, so a test or a hand-written system builds them from
//! regions and channel ids, with the magic and the counts filled in, and no zerocopy or pointer
//! casts in user code. A built config passes [`Config::check`].
//!
//! ```
//! use lions_i2c::{I2cClientConfig, I2cConnectionResource, I2cVirtConfig};
//! use lions_os::{Config, RegionResource};
//!
//! let r = |vaddr, size| RegionResource { vaddr, size };
//! let conn = |base: u64, id| I2cConnectionResource::new(r(base, 4096), r(base + 0x1000, 4096), 32, id);
//! // The client maps its data region at 0x60_0000; the driver maps the same memory at 0x70_0000.
//! let virt = I2cVirtConfig::new(conn(0x10_0000, 0))
//!     .with_client(conn(0x20_0000, 1), r(0x60_0000, 4096), 0x70_0000)?;
//! virt.check()?;
//! assert_eq!(virt.clients()[0].translate(0x60_0010, 4), Some(0x70_0010));
//! I2cClientConfig::new(conn(0x20_0000, 0), r(0x60_0000, 4096)).check()?;
//! # Ok::<(), lions_os::ConfigError>(())
//! ```

use crate::config::{
    I2cClientConfig, I2cConnectionResource, I2cDriverConfig, I2cVirtClient, I2cVirtConfig,
};
use lions_os::{Config, ConfigClass, ConfigError, MAX_CLIENTS, RegionResource, sddf_magic};
use zerocopy::FromZeros;

const MAGIC: [u8; 5] = sddf_magic(ConfigClass::I2c);

impl I2cConnectionResource {
    /// One end of an I²C connection: the request and response queue regions, the number of
    /// buffers (queue entries) and the channel id to the peer at this end.
    pub const fn new(
        req_queue: RegionResource,
        resp_queue: RegionResource,
        num_buffers: u16,
        id: u8,
    ) -> Self {
        Self {
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

impl I2cDriverConfig {
    /// A driver serving the virt over `virt`.
    pub fn new(virt: I2cConnectionResource) -> Self {
        let mut c = Self::new_zeroed();
        c.magic = MAGIC;
        c.virt = virt;
        c
    }
}

impl I2cVirtConfig {
    /// A virtualiser in front of the driver over `driver`, with no clients.
    pub fn new(driver: I2cConnectionResource) -> Self {
        let mut c = Self::new_zeroed();
        c.magic = MAGIC;
        c.driver = driver;
        c
    }

    /// Add the next client: its connection, its data region as the client maps it, and the
    /// address at which the driver maps the same memory (the virt translates between the two).
    pub fn with_client(
        mut self,
        conn: I2cConnectionResource,
        client_data: RegionResource,
        driver_data_vaddr: u64,
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
        self.clients[n] = I2cVirtClient {
            conn,
            data_size: client_data.size,
            driver_data_vaddr,
            client_data_vaddr: client_data.vaddr,
        };
        self.num_clients += 1;
        Ok(self)
    }
}

impl I2cClientConfig {
    /// A client of the virt over `virt`, with its data region `data`.
    pub fn new(virt: I2cConnectionResource, data: RegionResource) -> Self {
        let mut c = Self::new_zeroed();
        c.magic = MAGIC;
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

    fn conn(i: u64, id: u8) -> I2cConnectionResource {
        I2cConnectionResource::new(r(i << 20, 4096), r((i << 20) + 4096, 4096), 64, id)
    }

    #[test]
    fn connection_round_trips() {
        let c = conn(4, 2);
        assert_eq!(
            (c.req_queue, c.resp_queue),
            (r(4 << 20, 4096), r((4 << 20) + 4096, 4096))
        );
        assert_eq!((c.num_buffers, c.id), (64, 2));
        assert_eq!(c.with_id(0).req_queue, c.req_queue);
    }

    #[test]
    fn driver_and_client_round_trip() {
        let d = I2cDriverConfig::new(conn(1, 1));
        d.check().unwrap();
        assert_eq!(d.virt, conn(1, 1));
        let c = I2cClientConfig::new(conn(2, 0), r(0x8000, 4096));
        c.check().unwrap();
        assert_eq!((c.virt, c.data), (conn(2, 0), r(0x8000, 4096)));
    }

    #[test]
    fn virt_round_trips_and_refuses_a_65th_client() {
        let v = I2cVirtConfig::new(conn(0, 0))
            .with_client(conn(1, 1), r(0x10_0000, 0x2000), 0x90_0000)
            .unwrap();
        v.check().unwrap();
        assert_eq!(v.driver, conn(0, 0));
        let c = v.clients()[0];
        assert_eq!(c.conn, conn(1, 1));
        assert_eq!(
            (c.data_size, c.client_data_vaddr, c.driver_data_vaddr),
            (0x2000, 0x10_0000, 0x90_0000)
        );
        assert_eq!(c.translate(0x10_1000, 16), Some(0x90_1000));
        assert_eq!(c.translate(0x10_1ff8, 16), None);
        let mut full = I2cVirtConfig::new(conn(0, 0));
        for _ in 0..MAX_CLIENTS {
            full = full.with_client(conn(1, 1), r(0, 4096), 0).unwrap();
        }
        full.check().unwrap();
        assert!(matches!(
            full.with_client(conn(1, 1), r(0, 4096), 0),
            Err(ConfigError::Count { value: 65, .. })
        ));
    }
}
