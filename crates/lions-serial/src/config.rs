// SPDX-License-Identifier: BSD-2-Clause
//! Serial config blobs as `sdfgen` 0.35.1 writes them (magic `"sDDF\x03"`).
//!
//! Layouts are the C structs (LP64, natural alignment); every implicit C padding byte is an explicit
//! `_pad` field so the structs are `IntoBytes`. Counts are checked against their arrays by
//! [`Config::check`], and the accessors ([`SerialVirtRxConfig::clients`], ...) return only the valid
//! entries, so no component indexes past a count.

use crate::queue::SerialQueue;
use lions_os::{
    Claim, Config, ConfigClass, ConfigError, MAX_CLIENTS, RegionResource, Regions, check_count,
    sddf_magic,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Magic of every serial config.
pub const SERIAL_MAGIC: [u8; 5] = sddf_magic(ConfigClass::Serial);

/// Length of a client name in the Tx virt config (`SDDF_NAME_LENGTH`).
pub const NAME_LENGTH: usize = 64;

/// Length of the Tx virt's `begin_str` (`SDDF_SERIAL_BEGIN_STR_MAX_LEN`).
pub const BEGIN_STR_LENGTH: usize = 128;

/// One serial queue as seen by one end: `serial_connection_resource_t` (40 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SerialConnectionResource {
    /// The region holding the [`SerialQueue`] header (offset 0).
    pub queue: RegionResource,
    /// The byte data region; its size is the queue capacity (offset 16).
    pub data: RegionResource,
    /// Microkit channel id to the peer (offset 32).
    pub id: u8,
    /// Explicit C padding (offset 33).
    pub _pad: [u8; 7],
}

impl SerialConnectionResource {
    /// Whether this connection exists (sdfgen leaves an absent one, such as Rx without an Rx virt,
    /// all zero).
    pub fn is_connected(&self) -> bool {
        self.data.size != 0 || self.queue.size != 0
    }

    /// Claim the queue header read-write and the data region read-write when this end produces,
    /// read-only when it consumes (entry `index` of a table, if any); nothing when absent.
    pub fn claims(
        &self,
        what: [&'static str; 2],
        producer: bool,
        index: Option<usize>,
        claim: &mut dyn FnMut(Claim),
    ) {
        if !self.is_connected() {
            return;
        }
        let data = if producer {
            Claim::rw(what[1], self.data)
        } else {
            Claim::ro(what[1], self.data)
        };
        for c in [Claim::rw(what[0], self.queue), data.aligned(1)] {
            claim(index.map_or(c, |i| c.at(i)));
        }
    }

    /// Check an existing connection: the queue region holds a header and the data size is a
    /// power-of-two capacity a `u32` index can count. An absent connection passes.
    pub fn validate(&self, config: &'static str, field: &'static str) -> Result<(), ConfigError> {
        if !self.is_connected() {
            return Ok(());
        }
        let size = self.data.size;
        if !size.is_power_of_two() || size > 1 << 31 {
            return Err(ConfigError::Invalid {
                config,
                field,
                value: size,
            });
        }
        if self.queue.size < size_of::<SerialQueue>() as u64 {
            return Err(ConfigError::Invalid {
                config,
                field,
                value: self.queue.size,
            });
        }
        Ok(())
    }
}

/// The driver's config: `serial_driver_config_t` (104 B), section `.serial_driver_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SerialDriverConfig {
    /// `"sDDF\x03"` (offset 0).
    pub magic: [u8; 5],
    /// Explicit C padding (offset 5).
    pub _pad0: [u8; 3],
    /// Rx queue to the Rx virt; the driver produces (offset 8).
    pub rx: SerialConnectionResource,
    /// Tx queue from the Tx virt; the driver consumes (offset 48).
    pub tx: SerialConnectionResource,
    /// Baud rate to program at start-up (offset 88).
    pub default_baud: u64,
    /// C `bool`: whether an Rx virt exists (offset 96).
    pub rx_enabled: u8,
    /// Explicit C padding (offset 97).
    pub _pad1: [u8; 7],
}

impl SerialDriverConfig {
    /// Whether the subsystem has an Rx path.
    pub fn rx_enabled(&self) -> bool {
        self.rx_enabled != 0
    }
}

impl Regions for SerialDriverConfig {
    fn claims(&self, claim: &mut dyn FnMut(Claim)) {
        self.tx.claims(["tx queue", "tx data"], false, None, claim);
        if self.rx_enabled() {
            self.rx.claims(["rx queue", "rx data"], true, None, claim);
        }
    }
}

impl Config for SerialDriverConfig {
    const SECTION: &'static str = ".serial_driver_config";
    const MAGIC: &'static [u8] = &SERIAL_MAGIC;
    const NAME: &'static str = "serial_driver_config_t";

    fn validate(&self) -> Result<(), ConfigError> {
        self.rx.validate(Self::NAME, "rx")?;
        self.tx.validate(Self::NAME, "tx")
    }
}

/// The Rx virtualiser's config: `serial_virt_rx_config_t` (2616 B), section
/// `.serial_virt_rx_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SerialVirtRxConfig {
    /// `"sDDF\x03"` (offset 0).
    pub magic: [u8; 5],
    /// Explicit C padding (offset 5).
    pub _pad0: [u8; 3],
    /// Rx queue from the driver; the virt consumes (offset 8).
    pub driver: SerialConnectionResource,
    /// Rx queues to the clients; the virt produces (offset 48, 40 B each).
    pub clients: [SerialConnectionResource; MAX_CLIENTS],
    /// Valid entries in `clients` (offset 2608).
    pub num_clients: u8,
    /// C `char`: the byte that starts an input switch (offset 2609).
    pub switch_char: u8,
    /// C `char`: the byte that ends the client number (offset 2610).
    pub terminate_num_char: u8,
    /// Explicit C padding (offset 2611).
    pub _pad1: [u8; 5],
}

impl SerialVirtRxConfig {
    /// The client connections that exist (count checked by [`Config::check`], clamped here too).
    pub fn clients(&self) -> &[SerialConnectionResource] {
        &self.clients[..usize::from(self.num_clients).min(MAX_CLIENTS)]
    }
}

impl Regions for SerialVirtRxConfig {
    fn claims(&self, claim: &mut dyn FnMut(Claim)) {
        let driver = ["driver queue", "driver data"];
        self.driver.claims(driver, false, None, claim);
        for (i, c) in self.clients().iter().enumerate() {
            c.claims(["client queue", "client data"], true, Some(i), claim);
        }
    }
}

impl Config for SerialVirtRxConfig {
    const SECTION: &'static str = ".serial_virt_rx_config";
    const MAGIC: &'static [u8] = &SERIAL_MAGIC;
    const NAME: &'static str = "serial_virt_rx_config_t";

    fn validate(&self) -> Result<(), ConfigError> {
        check_count(
            Self::NAME,
            "num_clients",
            self.num_clients.into(),
            MAX_CLIENTS,
        )?;
        self.driver.validate(Self::NAME, "driver")?;
        self.clients()
            .iter()
            .try_for_each(|c| c.validate(Self::NAME, "clients"))
    }
}

/// One client of the Tx virtualiser: `serial_virt_tx_client_config_t` (104 B).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SerialVirtTxClient {
    /// Tx queue from the client; the virt consumes (offset 0).
    pub conn: SerialConnectionResource,
    /// NUL-terminated client name, for the colour legend (offset 40).
    pub name: [u8; NAME_LENGTH],
}

impl SerialVirtTxClient {
    /// The name up to its first NUL (the whole array if it has none).
    pub fn name(&self) -> &[u8] {
        until_nul(&self.name)
    }
}

/// The Tx virtualiser's config: `serial_virt_tx_config_t` (6840 B), section
/// `.serial_virt_tx_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SerialVirtTxConfig {
    /// `"sDDF\x03"` (offset 0).
    pub magic: [u8; 5],
    /// Explicit C padding (offset 5).
    pub _pad0: [u8; 3],
    /// Tx queue to the driver; the virt produces (offset 8).
    pub driver: SerialConnectionResource,
    /// The clients (offset 48, 104 B each).
    pub clients: [SerialVirtTxClient; MAX_CLIENTS],
    /// Valid entries in `clients` (offset 6704).
    pub num_clients: u8,
    /// NUL-terminated banner written to the driver at start-up when Rx is enabled (offset 6705).
    pub begin_str: [u8; BEGIN_STR_LENGTH],
    /// C `bool`: wrap each client's output in its ANSI colour (offset 6833).
    pub enable_colour: u8,
    /// C `bool`: an Rx virt exists (offset 6834).
    pub enable_rx: u8,
    /// Explicit C padding (offset 6835).
    pub _pad1: [u8; 5],
}

impl SerialVirtTxConfig {
    /// The clients that exist (count checked by [`Config::check`], clamped here too).
    pub fn clients(&self) -> &[SerialVirtTxClient] {
        &self.clients[..usize::from(self.num_clients).min(MAX_CLIENTS)]
    }

    /// The banner up to its first NUL.
    pub fn begin_str(&self) -> &[u8] {
        until_nul(&self.begin_str)
    }

    /// Whether client output is coloured.
    pub fn enable_colour(&self) -> bool {
        self.enable_colour != 0
    }

    /// Whether the subsystem has an Rx path.
    pub fn enable_rx(&self) -> bool {
        self.enable_rx != 0
    }
}

impl Regions for SerialVirtTxConfig {
    fn claims(&self, claim: &mut dyn FnMut(Claim)) {
        let driver = ["driver queue", "driver data"];
        self.driver.claims(driver, true, None, claim);
        for (i, c) in self.clients().iter().enumerate() {
            c.conn
                .claims(["client queue", "client data"], false, Some(i), claim);
        }
    }
}

impl Config for SerialVirtTxConfig {
    const SECTION: &'static str = ".serial_virt_tx_config";
    const MAGIC: &'static [u8] = &SERIAL_MAGIC;
    const NAME: &'static str = "serial_virt_tx_config_t";

    fn validate(&self) -> Result<(), ConfigError> {
        check_count(
            Self::NAME,
            "num_clients",
            self.num_clients.into(),
            MAX_CLIENTS,
        )?;
        self.driver.validate(Self::NAME, "driver")?;
        self.clients()
            .iter()
            .try_for_each(|c| c.conn.validate(Self::NAME, "clients"))
    }
}

/// A client's config: `serial_client_config_t` (88 B), section `.serial_client_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SerialClientConfig {
    /// `"sDDF\x03"` (offset 0).
    pub magic: [u8; 5],
    /// Explicit C padding (offset 5).
    pub _pad0: [u8; 3],
    /// Rx queue from the Rx virt; the client consumes (absent without an Rx virt) (offset 8).
    pub rx: SerialConnectionResource,
    /// Tx queue to the Tx virt; the client produces (offset 48).
    pub tx: SerialConnectionResource,
}

impl Regions for SerialClientConfig {
    fn claims(&self, claim: &mut dyn FnMut(Claim)) {
        self.tx.claims(["tx queue", "tx data"], true, None, claim);
        self.rx.claims(["rx queue", "rx data"], false, None, claim);
    }
}

impl Config for SerialClientConfig {
    const SECTION: &'static str = ".serial_client_config";
    const MAGIC: &'static [u8] = &SERIAL_MAGIC;
    const NAME: &'static str = "serial_client_config_t";

    fn validate(&self) -> Result<(), ConfigError> {
        self.rx.validate(Self::NAME, "rx")?;
        self.tx.validate(Self::NAME, "tx")
    }
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use core::mem::offset_of;
    use zerocopy::FromZeros;

    // Offsets from C natural alignment, LP64: the 5-byte magic is padded to 8 because the next
    // member (a connection, holding u64s) is 8-aligned; a struct's size is rounded up to its
    // alignment (8 for all of these).

    #[test]
    fn connection_layout() {
        // 16 + 16 + 1 = 33, rounded to 40.
        assert_eq!(size_of::<SerialConnectionResource>(), 40);
        assert_eq!(align_of::<SerialConnectionResource>(), 8);
        assert_eq!(offset_of!(SerialConnectionResource, queue), 0);
        assert_eq!(offset_of!(SerialConnectionResource, data), 16);
        assert_eq!(offset_of!(SerialConnectionResource, id), 32);
        assert_eq!(offset_of!(SerialConnectionResource, _pad), 33);
    }

    #[test]
    fn driver_layout() {
        // 8 + 40 + 40 = 88; u64 at 88; bool at 96; 97 rounded to 104.
        assert_eq!(size_of::<SerialDriverConfig>(), 104);
        assert_eq!(offset_of!(SerialDriverConfig, magic), 0);
        assert_eq!(offset_of!(SerialDriverConfig, rx), 8);
        assert_eq!(offset_of!(SerialDriverConfig, tx), 48);
        assert_eq!(offset_of!(SerialDriverConfig, default_baud), 88);
        assert_eq!(offset_of!(SerialDriverConfig, rx_enabled), 96);
        assert_eq!(offset_of!(SerialDriverConfig, _pad1), 97);
    }

    #[test]
    fn virt_rx_layout() {
        // 8 + 40 = 48; 64 × 40 = 2560 → 2608; three u8s → 2611, rounded to 2616.
        assert_eq!(size_of::<SerialVirtRxConfig>(), 2616);
        assert_eq!(offset_of!(SerialVirtRxConfig, driver), 8);
        assert_eq!(offset_of!(SerialVirtRxConfig, clients), 48);
        assert_eq!(offset_of!(SerialVirtRxConfig, num_clients), 2608);
        assert_eq!(offset_of!(SerialVirtRxConfig, switch_char), 2609);
        assert_eq!(offset_of!(SerialVirtRxConfig, terminate_num_char), 2610);
        assert_eq!(offset_of!(SerialVirtRxConfig, _pad1), 2611);
    }

    #[test]
    fn virt_tx_layout() {
        // Client: 40 + 64 = 104 (already a multiple of 8).
        assert_eq!(size_of::<SerialVirtTxClient>(), 104);
        assert_eq!(offset_of!(SerialVirtTxClient, conn), 0);
        assert_eq!(offset_of!(SerialVirtTxClient, name), 40);
        // 8 + 40 = 48; 64 × 104 = 6656 → 6704; u8 → 6705; 128 → 6833; two bools → 6835 → 6840.
        assert_eq!(size_of::<SerialVirtTxConfig>(), 6840);
        assert_eq!(offset_of!(SerialVirtTxConfig, driver), 8);
        assert_eq!(offset_of!(SerialVirtTxConfig, clients), 48);
        assert_eq!(offset_of!(SerialVirtTxConfig, num_clients), 6704);
        assert_eq!(offset_of!(SerialVirtTxConfig, begin_str), 6705);
        assert_eq!(offset_of!(SerialVirtTxConfig, enable_colour), 6833);
        assert_eq!(offset_of!(SerialVirtTxConfig, enable_rx), 6834);
        assert_eq!(offset_of!(SerialVirtTxConfig, _pad1), 6835);
    }

    #[test]
    fn client_layout() {
        // 8 + 40 + 40 = 88.
        assert_eq!(size_of::<SerialClientConfig>(), 88);
        assert_eq!(offset_of!(SerialClientConfig, rx), 8);
        assert_eq!(offset_of!(SerialClientConfig, tx), 48);
    }

    fn conn(data_size: u64) -> SerialConnectionResource {
        SerialConnectionResource {
            queue: RegionResource {
                vaddr: 0x2000_0000,
                size: 0x1000,
            },
            data: RegionResource {
                vaddr: 0x2000_1000,
                size: data_size,
            },
            id: 1,
            _pad: [0; 7],
        }
    }

    #[test]
    fn magic_is_checked() {
        let mut c = SerialClientConfig::new_zeroed();
        assert_eq!(
            c.check(),
            Err(ConfigError::BadMagic {
                config: "serial_client_config_t"
            })
        );
        c.magic = *b"sDDF\x02";
        assert!(
            matches!(c.check(), Err(ConfigError::BadMagic { .. })),
            "blk magic is not serial"
        );
        c.magic = SERIAL_MAGIC;
        assert_eq!(c.check(), Ok(()), "absent connections are fine");
        let mut d = SerialDriverConfig::new_zeroed();
        d.magic = *b"sDDG\x03";
        assert!(matches!(d.check(), Err(ConfigError::BadMagic { .. })));
    }

    #[test]
    fn counts_are_checked_and_clamped() {
        let mut rx = SerialVirtRxConfig::new_zeroed();
        rx.magic = SERIAL_MAGIC;
        rx.num_clients = 64;
        assert_eq!(rx.check(), Ok(()), "64 zeroed (absent) clients");
        assert_eq!(rx.clients().len(), 64);
        rx.num_clients = 65;
        assert_eq!(
            rx.check(),
            Err(ConfigError::Count {
                config: "serial_virt_rx_config_t",
                field: "num_clients",
                value: 65,
                max: 64
            })
        );
        assert_eq!(rx.clients().len(), 64);

        let mut tx = SerialVirtTxConfig::new_zeroed();
        tx.magic = SERIAL_MAGIC;
        tx.num_clients = 255;
        assert!(matches!(
            tx.check(),
            Err(ConfigError::Count { value: 255, .. })
        ));
        assert_eq!(tx.clients().len(), 64);
        tx.num_clients = 2;
        assert_eq!(tx.clients().len(), 2);
        assert_eq!(tx.check(), Ok(()));
    }

    #[test]
    fn capacities_are_checked() {
        let mut c = SerialClientConfig::new_zeroed();
        c.magic = SERIAL_MAGIC;
        c.tx = conn(0x10000);
        assert_eq!(c.check(), Ok(()));
        c.rx = conn(0x3000);
        assert_eq!(
            c.check(),
            Err(ConfigError::Invalid {
                config: "serial_client_config_t",
                field: "rx",
                value: 0x3000
            })
        );
        c.rx = conn(1 << 32);
        assert!(
            matches!(c.check(), Err(ConfigError::Invalid { field: "rx", .. })),
            "above 2^31"
        );
        c.rx = conn(0x1000);
        c.rx.queue.size = 8;
        assert!(
            matches!(c.check(), Err(ConfigError::Invalid { value: 8, .. })),
            "header does not fit"
        );

        // Only valid clients are validated: a bad entry past num_clients is ignored.
        let mut tx = SerialVirtTxConfig::new_zeroed();
        tx.magic = SERIAL_MAGIC;
        tx.clients[1].conn = conn(100);
        tx.num_clients = 1;
        assert_eq!(tx.check(), Ok(()));
        tx.num_clients = 2;
        assert!(matches!(
            tx.check(),
            Err(ConfigError::Invalid {
                field: "clients",
                ..
            })
        ));
    }

    #[test]
    fn strings_and_bools() {
        let mut tx = SerialVirtTxConfig::new_zeroed();
        tx.begin_str[..11].copy_from_slice(b"Begin input");
        tx.clients[0].name = [b'x'; NAME_LENGTH];
        tx.clients[1].name[..7].copy_from_slice(b"client1");
        assert_eq!(tx.begin_str(), b"Begin input");
        assert_eq!(
            tx.clients[0].name().len(),
            NAME_LENGTH,
            "unterminated name is clamped"
        );
        assert_eq!(tx.clients[1].name(), b"client1");
        assert!(!tx.enable_colour() && !tx.enable_rx());
        tx.enable_colour = 1;
        tx.enable_rx = 2;
        assert!(
            tx.enable_colour() && tx.enable_rx(),
            "any non-zero C bool is true"
        );
        let mut d = SerialDriverConfig::new_zeroed();
        assert!(!d.rx_enabled());
        d.rx_enabled = 1;
        assert!(d.rx_enabled());
    }

    #[test]
    fn from_blob_round_trip() {
        let mut c = SerialClientConfig::new_zeroed();
        c.magic = SERIAL_MAGIC;
        c.tx = conn(0x1000);
        let mut buf = [0u64; 11];
        buf.as_mut_bytes().copy_from_slice(c.as_bytes());
        let parsed = SerialClientConfig::from_blob(buf.as_bytes()).unwrap();
        assert_eq!(parsed.tx, c.tx);
        assert_eq!(parsed.tx.id, 1);
        assert!(SerialClientConfig::from_blob(&buf.as_bytes()[..87]).is_err());
    }
}
