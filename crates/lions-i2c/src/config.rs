// SPDX-License-Identifier: BSD-2-Clause
//! I²C configuration structs as `sdfgen` 0.35.1 serialises them (magic `"sDDF\x04"`). Offsets in
//! the comments are the C ones (LP64), pinned by the tests.

use lions_os::{
    Claim, Config, ConfigClass, ConfigError, MAX_CLIENTS, RegionResource, Regions, check_count,
    sddf_magic,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

const I2C_MAGIC: [u8; 5] = sddf_magic(ConfigClass::I2c);

/// A request/response queue pair as mapped in this component: `i2c_connection_resource_t` (40 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct I2cConnectionResource {
    /// The request queue region (offset 0).
    pub req_queue: RegionResource,
    /// The response queue region (offset 16).
    pub resp_queue: RegionResource,
    /// Written by sdfgen but ignored on the wire: I²C queues always hold 254 slots (offset 32).
    pub num_buffers: u16,
    /// Microkit channel id to the peer (offset 34).
    pub id: u8,
    /// Explicit C padding (offset 35).
    pub _pad: [u8; 5],
}

/// Driver config: `i2c_driver_config_t` (48 B), section `.i2c_driver_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct I2cDriverConfig {
    /// `"sDDF\x04"` (offset 0).
    pub magic: [u8; 5],
    /// Explicit C padding (offset 5).
    pub _pad: [u8; 3],
    /// Queues to the virtualiser (offset 8).
    pub virt: I2cConnectionResource,
}

impl I2cConnectionResource {
    /// Claim both queues read-write (entry `index` of a table, if any).
    pub fn claims(&self, index: Option<usize>, claim: &mut dyn FnMut(Claim)) {
        for c in [
            Claim::rw("request queue", self.req_queue),
            Claim::rw("response queue", self.resp_queue),
        ] {
            claim(index.map_or(c, |i| c.at(i)));
        }
    }
}

impl Regions for I2cDriverConfig {
    /// The queues to the virt (client data regions are reached through the virt's translation,
    /// see `MappedData` in the driver).
    fn claims(&self, claim: &mut dyn FnMut(Claim)) {
        self.virt.claims(None, claim);
    }
}

impl Config for I2cDriverConfig {
    const SECTION: &'static str = ".i2c_driver_config";
    const MAGIC: &'static [u8] = &I2C_MAGIC;
    const NAME: &'static str = "i2c_driver_config_t";
}

/// One client of the virtualiser (64 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct I2cVirtClient {
    /// Queues to the client (offset 0).
    pub conn: I2cConnectionResource,
    /// Size of the client's data region (offset 40).
    pub data_size: u64,
    /// The data region's base in the driver (offset 48).
    pub driver_data_vaddr: u64,
    /// The data region's base in the client (offset 56).
    pub client_data_vaddr: u64,
}

impl I2cVirtClient {
    /// Translate a client data pointer to the driver's mapping, if the whole `[ptr, ptr + len)`
    /// lies inside the client's data region (sDDF checked only the start).
    pub fn translate(&self, ptr: u64, len: u64) -> Option<u64> {
        let offset = ptr.checked_sub(self.client_data_vaddr)?;
        let end = offset.checked_add(len)?;
        if offset >= self.data_size || end > self.data_size {
            return None;
        }
        self.driver_data_vaddr.checked_add(offset)
    }
}

/// Virtualiser config: `i2c_virt_config_t` (4152 B), section `.i2c_virt_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct I2cVirtConfig {
    /// `"sDDF\x04"` (offset 0).
    pub magic: [u8; 5],
    /// Explicit C padding (offset 5).
    pub _pad: [u8; 3],
    /// Valid entries in `clients` (offset 8).
    pub num_clients: u64,
    /// Queues to the driver (offset 16).
    pub driver: I2cConnectionResource,
    /// Clients in the order they were added (offset 56).
    pub clients: [I2cVirtClient; MAX_CLIENTS],
}

impl I2cVirtConfig {
    /// The valid clients (clamped to the array).
    pub fn clients(&self) -> &[I2cVirtClient] {
        let n = usize::try_from(self.num_clients)
            .unwrap_or(MAX_CLIENTS)
            .min(MAX_CLIENTS);
        &self.clients[..n]
    }
}

impl Regions for I2cVirtConfig {
    /// The driver's and the clients' queues (the virt maps no data region).
    fn claims(&self, claim: &mut dyn FnMut(Claim)) {
        self.driver.claims(None, claim);
        for (i, c) in self.clients().iter().enumerate() {
            c.conn.claims(Some(i), claim);
        }
    }
}

impl Config for I2cVirtConfig {
    const SECTION: &'static str = ".i2c_virt_config";
    const MAGIC: &'static [u8] = &I2C_MAGIC;
    const NAME: &'static str = "i2c_virt_config_t";

    fn validate(&self) -> Result<(), ConfigError> {
        check_count(Self::NAME, "num_clients", self.num_clients, MAX_CLIENTS)
    }
}

/// Client config: `i2c_client_config_t` (64 B), section `.i2c_client_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct I2cClientConfig {
    /// `"sDDF\x04"` (offset 0).
    pub magic: [u8; 5],
    /// Explicit C padding (offset 5).
    pub _pad: [u8; 3],
    /// Queues to the virtualiser (offset 8).
    pub virt: I2cConnectionResource,
    /// The client's data region: every command's data lives here (offset 48).
    pub data: RegionResource,
}

impl Regions for I2cClientConfig {
    fn claims(&self, claim: &mut dyn FnMut(Claim)) {
        self.virt.claims(None, claim);
        claim(Claim::rw("data region", self.data).aligned(1));
    }
}

impl Config for I2cClientConfig {
    const SECTION: &'static str = ".i2c_client_config";
    const MAGIC: &'static [u8] = &I2C_MAGIC;
    const NAME: &'static str = "i2c_client_config_t";
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use core::mem::offset_of;
    use zerocopy::FromZeros;

    #[test]
    fn layouts_match_c() {
        assert_eq!(size_of::<I2cConnectionResource>(), 40);
        assert_eq!(offset_of!(I2cConnectionResource, req_queue), 0);
        assert_eq!(offset_of!(I2cConnectionResource, resp_queue), 16);
        assert_eq!(offset_of!(I2cConnectionResource, num_buffers), 32);
        assert_eq!(offset_of!(I2cConnectionResource, id), 34);
        assert_eq!(offset_of!(I2cConnectionResource, _pad), 35);
        assert_eq!(size_of::<I2cDriverConfig>(), 48);
        assert_eq!(offset_of!(I2cDriverConfig, virt), 8);
        assert_eq!(size_of::<I2cVirtClient>(), 64);
        assert_eq!(offset_of!(I2cVirtClient, data_size), 40);
        assert_eq!(offset_of!(I2cVirtClient, driver_data_vaddr), 48);
        assert_eq!(offset_of!(I2cVirtClient, client_data_vaddr), 56);
        assert_eq!(size_of::<I2cVirtConfig>(), 4152);
        assert_eq!(offset_of!(I2cVirtConfig, num_clients), 8);
        assert_eq!(offset_of!(I2cVirtConfig, driver), 16);
        assert_eq!(offset_of!(I2cVirtConfig, clients), 56);
        assert_eq!(size_of::<I2cClientConfig>(), 64);
        assert_eq!(offset_of!(I2cClientConfig, virt), 8);
        assert_eq!(offset_of!(I2cClientConfig, data), 48);
    }

    #[test]
    fn magic_and_counts_are_checked() {
        assert_eq!(I2cVirtConfig::MAGIC, b"sDDF\x04");
        let mut v = Box::new(I2cVirtConfig::new_zeroed());
        assert!(matches!(v.check(), Err(ConfigError::BadMagic { .. })));
        v.magic = I2C_MAGIC;
        v.num_clients = 64;
        assert!(v.check().is_ok());
        assert_eq!(v.clients().len(), 64);
        v.num_clients = 65;
        assert!(matches!(
            v.check(),
            Err(ConfigError::Count {
                field: "num_clients",
                value: 65,
                ..
            })
        ));
        v.num_clients = u64::MAX;
        assert!(v.check().is_err());
        assert_eq!(
            v.clients().len(),
            64,
            "accessors clamp even unchecked counts"
        );
        let mut d = I2cDriverConfig::new_zeroed();
        d.magic = *b"sDDF\x05";
        assert!(d.check().is_err(), "a net magic is not an I2C magic");
        d.magic = I2C_MAGIC;
        assert!(d.check().is_ok());
        let mut c = I2cClientConfig::new_zeroed();
        c.magic = I2C_MAGIC;
        assert!(c.check().is_ok());
        assert_eq!(
            [
                I2cDriverConfig::SECTION,
                I2cVirtConfig::SECTION,
                I2cClientConfig::SECTION
            ],
            [
                ".i2c_driver_config",
                ".i2c_virt_config",
                ".i2c_client_config"
            ]
        );
    }

    #[test]
    fn translate_checks_the_whole_range() {
        let mut c = I2cVirtClient::new_zeroed();
        c.data_size = 0x1000;
        c.client_data_vaddr = 0x2000_2000;
        c.driver_data_vaddr = 0x2000_3000;
        assert_eq!(c.translate(0x2000_2000, 16), Some(0x2000_3000));
        assert_eq!(c.translate(0x2000_2ff0, 16), Some(0x2000_3ff0));
        assert_eq!(
            c.translate(0x2000_2ff1, 16),
            None,
            "end pointer past the region"
        );
        assert_eq!(c.translate(0x2000_3000, 0), None, "start past the region");
        assert_eq!(c.translate(0x2000_1fff, 1), None, "below the region");
        assert_eq!(
            c.translate(0x2000_2000, u64::MAX),
            None,
            "overflowing length"
        );
    }
}
