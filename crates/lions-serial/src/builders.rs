// SPDX-License-Identifier: BSD-2-Clause
//! Safe constructors for the serial configs, so a test or a hand-written system builds them from
//! regions and channel ids, with the magic and the counts filled in, and no zerocopy or pointer
//! casts in user code.
//!
//! The layout and the meaning of every field are those of [`crate::config`] (what `sdfgen` writes);
//! a built config passes [`Config::check`] whenever its regions do (a data region's size is a power
//! of two, a queue region holds a [`SerialQueue`](crate::SerialQueue) header). Builders that can
//! exceed an array (a 65th client, a name of 64 bytes or more) return the [`ConfigError`] the check
//! would have reported.
//!
//! ```
//! use lions_os::{Config, RegionResource};
//! use lions_serial::{SerialClientConfig, SerialConnectionResource, SerialVirtTxConfig};
//!
//! let region = |vaddr, size| RegionResource { vaddr, size };
//! let to_driver = SerialConnectionResource::new(region(0x10_0000, 4096), region(0x20_0000, 4096), 0);
//! let from_client = SerialConnectionResource::new(region(0x30_0000, 4096), region(0x40_0000, 2048), 1);
//! let vtx = SerialVirtTxConfig::new(to_driver)
//!     .with_client(from_client, "shell")?
//!     .with_colour(true);
//! vtx.check()?;
//! assert_eq!(vtx.clients()[0].name(), b"shell");
//! # Ok::<(), lions_os::ConfigError>(())
//! ```

use crate::config::{
    BEGIN_STR_LENGTH, NAME_LENGTH, SERIAL_MAGIC, SerialClientConfig, SerialConnectionResource,
    SerialDriverConfig, SerialVirtRxConfig, SerialVirtTxClient, SerialVirtTxConfig,
};
use lions_os::{Config, ConfigError, MAX_CLIENTS, RegionResource};
use zerocopy::FromZeros;

/// The switch character the LionsOS examples use (Ctrl-\).
pub const DEFAULT_SWITCH_CHAR: u8 = 0x1c;
/// The character that ends the client number of an input switch in the LionsOS examples (CR).
pub const DEFAULT_TERMINATE_NUM_CHAR: u8 = b'\r';

fn too_many(config: &'static str, have: usize) -> ConfigError {
    ConfigError::Count {
        config,
        field: "num_clients",
        value: have as u64 + 1,
        max: MAX_CLIENTS as u64,
    }
}

/// Copy `text` into a NUL-terminated array (room for the NUL required).
fn c_string<const N: usize>(
    config: &'static str,
    field: &'static str,
    text: &[u8],
) -> Result<[u8; N], ConfigError> {
    if text.len() >= N || text.contains(&0) {
        return Err(ConfigError::Invalid {
            config,
            field,
            value: text.len() as u64,
        });
    }
    let mut out = [0; N];
    out[..text.len()].copy_from_slice(text);
    Ok(out)
}

impl SerialConnectionResource {
    /// One end of a queue: the header region, the data region (its size is the capacity, a power
    /// of two) and the channel id to the peer at this end.
    pub const fn new(queue: RegionResource, data: RegionResource, id: u8) -> Self {
        Self {
            queue,
            data,
            id,
            _pad: [0; 7],
        }
    }

    /// The same queue seen from the other end, whose channel to this end is `id`.
    pub const fn with_id(self, id: u8) -> Self {
        Self { id, ..self }
    }
}

impl SerialDriverConfig {
    /// A driver consuming `tx` (from the Tx virt) and, when there is an Rx virt, producing `rx`
    /// (`rx_enabled` is set exactly then). `default_baud` is what it programs at start-up.
    pub fn new(
        tx: SerialConnectionResource,
        rx: Option<SerialConnectionResource>,
        default_baud: u64,
    ) -> Self {
        let mut c = Self::new_zeroed();
        c.magic = SERIAL_MAGIC;
        c.tx = tx;
        if let Some(rx) = rx {
            c.rx = rx;
            c.rx_enabled = 1;
        }
        c.default_baud = default_baud;
        c
    }
}

impl SerialVirtTxConfig {
    /// A Tx virtualiser producing into `driver`, with no clients, no banner, colour and Rx off.
    pub fn new(driver: SerialConnectionResource) -> Self {
        let mut c = Self::new_zeroed();
        c.magic = SERIAL_MAGIC;
        c.driver = driver;
        c
    }

    /// Add the next client (its index is the number of clients so far): the queue it produces
    /// into, and its name for the colour legend (no NUL, shorter than
    /// [`NAME_LENGTH`]).
    pub fn with_client(
        mut self,
        conn: SerialConnectionResource,
        name: impl AsRef<[u8]>,
    ) -> Result<Self, ConfigError> {
        let n = usize::from(self.num_clients);
        if n >= MAX_CLIENTS {
            return Err(too_many(Self::NAME, n));
        }
        let name = c_string::<NAME_LENGTH>(Self::NAME, "clients.name", name.as_ref())?;
        self.clients[n] = SerialVirtTxClient { conn, name };
        self.num_clients += 1;
        Ok(self)
    }

    /// The banner written to the driver at start-up when Rx is on (no NUL, shorter than
    /// [`BEGIN_STR_LENGTH`]).
    pub fn with_begin_str(mut self, text: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        self.begin_str = c_string::<BEGIN_STR_LENGTH>(Self::NAME, "begin_str", text.as_ref())?;
        Ok(self)
    }

    /// Wrap each client's output in its ANSI colour (and print the legend at start-up).
    pub fn with_colour(mut self, on: bool) -> Self {
        self.enable_colour = on.into();
        self
    }

    /// Whether the subsystem has an Rx virtualiser.
    pub fn with_rx(mut self, on: bool) -> Self {
        self.enable_rx = on.into();
        self
    }
}

impl SerialVirtRxConfig {
    /// An Rx virtualiser consuming `driver`, with no clients and the examples' switch sequence
    /// ([`DEFAULT_SWITCH_CHAR`], digits, [`DEFAULT_TERMINATE_NUM_CHAR`]).
    pub fn new(driver: SerialConnectionResource) -> Self {
        let mut c = Self::new_zeroed();
        c.magic = SERIAL_MAGIC;
        c.driver = driver;
        c.switch_char = DEFAULT_SWITCH_CHAR;
        c.terminate_num_char = DEFAULT_TERMINATE_NUM_CHAR;
        c
    }

    /// Add the next client: the queue the virt produces its input into.
    pub fn with_client(mut self, conn: SerialConnectionResource) -> Result<Self, ConfigError> {
        let n = usize::from(self.num_clients);
        if n >= MAX_CLIENTS {
            return Err(too_many(Self::NAME, n));
        }
        self.clients[n] = conn;
        self.num_clients += 1;
        Ok(self)
    }

    /// The input-switch sequence: `switch`, the client's number in decimal, `terminate`.
    pub fn with_switch(mut self, switch: u8, terminate: u8) -> Self {
        self.switch_char = switch;
        self.terminate_num_char = terminate;
        self
    }
}

impl SerialClientConfig {
    /// A client producing into `tx` and, when there is an Rx virt, consuming `rx`.
    pub fn new(tx: SerialConnectionResource, rx: Option<SerialConnectionResource>) -> Self {
        let mut c = Self::new_zeroed();
        c.magic = SERIAL_MAGIC;
        c.tx = tx;
        if let Some(rx) = rx {
            c.rx = rx;
        }
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

    fn conn(i: u64, id: u8) -> SerialConnectionResource {
        SerialConnectionResource::new(r(i << 20, 4096), r((i << 20) + 4096, 1024), id)
    }

    #[test]
    fn connection_round_trips() {
        let c = conn(3, 7);
        assert_eq!(c.queue, r(3 << 20, 4096));
        assert_eq!(c.data, r((3 << 20) + 4096, 1024));
        assert_eq!(c.id, 7);
        assert!(c.is_connected());
        assert_eq!(c.with_id(2).id, 2);
        assert_eq!(c.with_id(2).data, c.data);
    }

    #[test]
    fn driver_with_and_without_rx() {
        let d = SerialDriverConfig::new(conn(1, 1), Some(conn(2, 2)), 115_200);
        d.check().unwrap();
        assert_eq!(d.tx, conn(1, 1));
        assert_eq!(d.rx, conn(2, 2));
        assert!(d.rx_enabled());
        assert_eq!(d.default_baud, 115_200);
        let d = SerialDriverConfig::new(conn(1, 1), None, 9600);
        d.check().unwrap();
        assert!(!d.rx_enabled());
        assert!(!d.rx.is_connected());
    }

    #[test]
    fn virt_tx_round_trips_and_refuses_overflow() {
        let v = SerialVirtTxConfig::new(conn(0, 0))
            .with_client(conn(1, 1), "alpha")
            .unwrap()
            .with_client(conn(2, 2), b"beta")
            .unwrap()
            .with_begin_str("Begin input\r\n")
            .unwrap()
            .with_colour(true)
            .with_rx(true);
        v.check().unwrap();
        assert_eq!(v.driver, conn(0, 0));
        assert_eq!(v.clients().len(), 2);
        assert_eq!(v.clients()[0].name(), b"alpha");
        assert_eq!(v.clients()[1].conn, conn(2, 2));
        assert_eq!(v.begin_str(), b"Begin input\r\n");
        assert!(v.enable_colour() && v.enable_rx());

        let long = [b'x'; NAME_LENGTH];
        assert!(matches!(
            SerialVirtTxConfig::new(conn(0, 0)).with_client(conn(1, 1), long),
            Err(ConfigError::Invalid { .. })
        ));
        let mut full = SerialVirtTxConfig::new(conn(0, 0));
        for i in 0..MAX_CLIENTS {
            full = full.with_client(conn(1, 1), format!("c{i}")).unwrap();
        }
        full.check().unwrap();
        assert!(matches!(
            full.with_client(conn(1, 1), "one too many"),
            Err(ConfigError::Count { value: 65, .. })
        ));
    }

    #[test]
    fn virt_rx_round_trips() {
        let v = SerialVirtRxConfig::new(conn(0, 0))
            .with_client(conn(1, 1))
            .unwrap()
            .with_switch(b'@', b'#');
        v.check().unwrap();
        assert_eq!(v.driver, conn(0, 0));
        assert_eq!(v.clients(), &[conn(1, 1)]);
        assert_eq!((v.switch_char, v.terminate_num_char), (b'@', b'#'));
        let d = SerialVirtRxConfig::new(conn(0, 0));
        assert_eq!(d.switch_char, DEFAULT_SWITCH_CHAR);
        assert_eq!(d.terminate_num_char, DEFAULT_TERMINATE_NUM_CHAR);
    }

    #[test]
    fn client_round_trips_and_bad_regions_fail_the_check() {
        let c = SerialClientConfig::new(conn(1, 0), Some(conn(2, 1)));
        c.check().unwrap();
        assert_eq!((c.tx, c.rx), (conn(1, 0), conn(2, 1)));
        let c = SerialClientConfig::new(conn(1, 0), None);
        c.check().unwrap();
        assert!(!c.rx.is_connected());
        // A capacity that is not a power of two is the check's to refuse, not the builder's.
        let bad = SerialConnectionResource::new(r(0x1000, 4096), r(0x2000, 1000), 0);
        assert!(SerialClientConfig::new(bad, None).check().is_err());
    }
}
