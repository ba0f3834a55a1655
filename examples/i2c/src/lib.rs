// SPDX-License-Identifier: BSD-2-Clause
//! # i2c: two clients of one I²C bus, paced by a timer
//!
//! Five PDs, described by `meta.py`: the timer driver (254), the I²C driver (200: the model bus
//! `i2c_driver_model_bus` of `lions-components`, a DS3231 and a PN532 model inside the driver
//! PD), the I²C virtualiser (199) and two clients, `clock` (2) and `nfc` (1). Each client has
//! one channel to the virtualiser (notifications both ways, and PPCs for bus claims) and one PPC
//! channel to the timer driver; the ids reach it in the `.i2c_client_config` and
//! `.timer_client_config` blobs that sdfgen writes and `cargo xtask build` puts into its ELF. No
//! channel number is written in the Rust code.
//!
//! ## Protocol (lions-i2c, sDDF 0.7's I²C)
//!
//! - A client claims its bus address by PPC to the virtualiser (label 1, MR0 = address); the
//!   virtualiser refuses every transaction to an address the client does not own.
//! - A transaction (one embedded-hal `transaction`) is staged in the client's request queue as a
//!   header and its bodies, whose data live in the client's data region, committed whole, and the
//!   virtualiser notified. The virtualiser checks it, rewrites the data pointers into the driver's
//!   mapping and passes it on; the driver's response comes back the same way.
//! - The device drivers (`lions_drivers::i2c::{ds3231, pn532}`) are generic over embedded-hal's
//!   `I2c`: here they run on [`lions_i2c::I2cClient`], which waits for each response.
//!
//! ## The two clients
//!
//! - `clock` claims 0x68 and, every [`CLOCK_PERIOD`], reads the DS3231's date and time and prints
//!   `clock: 2000-01-01 00:00:05`.
//! - `nfc` claims 0x24, prints the PN532's firmware version, configures its SAM, and every
//!   [`NFC_PERIOD`] asks for an ISO14443A card; a [`CardWatch`] turns the answers into
//!   `nfc: card 04a1b2c3 present` and `nfc: card 04a1b2c3 removed`.
#![cfg_attr(target_os = "none", no_std)]

use lions_drivers::i2c::model::Uid;
use lions_drivers::i2c::{ds3231, pn532};
use lions_i2c::{ClientError, I2cClient, I2cClientConfig};
use lions_os::{Channel, OsError};
use lions_timer::{TimerClient, TimerClientConfig};

// Private: `config!` takes no doc attributes; read them through the functions below.
lions_os::config!(static TIMER: TimerClientConfig = ".timer_client_config");
lions_os::config!(static I2C: I2cClientConfig = ".i2c_client_config");

/// One millisecond in nanoseconds.
pub const MS: u64 = 1_000_000;
/// One second in nanoseconds.
pub const SECOND: u64 = 1_000 * MS;
/// How often `clock` reads the DS3231.
pub const CLOCK_PERIOD: u64 = SECOND;
/// How often `nfc` asks the PN532 for a card.
pub const NFC_PERIOD: u64 = 200 * MS;

/// Bytes shown as lower-case hexadecimal without separators (`04a1b2c3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hex<'a>(pub &'a [u8]);

impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A change of the card in the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardEvent {
    /// This card came into the field (possibly replacing another, reported removed first).
    Present(Uid),
    /// This card left the field.
    Removed(Uid),
}

/// The card last seen, turning poll answers into changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CardWatch {
    card: Option<Uid>,
}

impl CardWatch {
    /// Record the answer of one poll; the changes it makes, in order (at most two: a card
    /// replaced by another between two polls is removed, then present).
    pub fn update(&mut self, now: Option<Uid>) -> [Option<CardEvent>; 2] {
        let before = core::mem::replace(&mut self.card, now);
        match (before, now) {
            (Some(a), Some(b)) if a == b => [None, None],
            (None, None) => [None, None],
            (Some(a), b) => [Some(CardEvent::Removed(a)), b.map(CardEvent::Present)],
            (None, Some(b)) => [Some(CardEvent::Present(b)), None],
        }
    }

    /// The card in the field as last seen.
    pub fn card(&self) -> Option<Uid> {
        self.card
    }
}

impl core::fmt::Display for CardEvent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Present(u) => write!(f, "card {} present", Hex(u.as_slice())),
            Self::Removed(u) => write!(f, "card {} removed", Hex(u.as_slice())),
        }
    }
}

/// Why a client stops.
#[derive(Debug)]
pub enum Error {
    /// A PPC or notification was refused.
    Os(OsError),
    /// The I²C client failed (claim refused, transaction failed).
    I2c(ClientError),
    /// The DS3231 driver failed.
    Ds3231(ds3231::Error<ClientError>),
    /// The PN532 driver failed.
    Pn532(pn532::Error<ClientError>),
    /// A notification on a channel that is neither the timer's nor the virtualiser's.
    Unexpected(Channel),
}

impl From<OsError> for Error {
    fn from(e: OsError) -> Self {
        Self::Os(e)
    }
}

impl From<ClientError> for Error {
    fn from(e: ClientError) -> Self {
        Self::I2c(e)
    }
}

impl From<ds3231::Error<ClientError>> for Error {
    fn from(e: ds3231::Error<ClientError>) -> Self {
        Self::Ds3231(e)
    }
}

impl From<pn532::Error<ClientError>> for Error {
    fn from(e: pn532::Error<ClientError>) -> Self {
        Self::Pn532(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Os(e) => write!(f, "{e}"),
            Self::I2c(e) => write!(f, "{e}"),
            Self::Ds3231(e) => write!(f, "DS3231: {e:?}"),
            Self::Pn532(e) => write!(f, "PN532: {e:?}"),
            Self::Unexpected(ch) => write!(f, "unexpected notification on {ch}"),
        }
    }
}

/// This PD's timer client, from its `.timer_client_config`. A client cannot run without it, so
/// a missing or wrong config panics with the reason (the launcher reports the PD as failed).
pub fn timer_client() -> TimerClient {
    let cfg = TIMER
        .get()
        .unwrap_or_else(|e| panic!("{}: {e}", lions_os::pd_name()));
    TimerClient::from_config(cfg).unwrap_or_else(|| {
        panic!(
            "{}: timer_client_config: driver_id {} is not a channel",
            lions_os::pd_name(),
            cfg.driver_id
        )
    })
}

/// This PD's I²C client, from its `.i2c_client_config` (panics with the reason if it is missing
/// or names regions that are not mapped).
pub fn i2c_client() -> I2cClient<'static> {
    let cfg = I2C
        .mapped()
        .unwrap_or_else(|e| panic!("{}: {e}", lions_os::pd_name()));
    I2cClient::new(cfg)
        .unwrap_or_else(|e| panic!("{}: i2c_client_config: {e}", lions_os::pd_name()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lions_os::{Config, ConfigError};

    fn uid(b: &[u8]) -> Uid {
        Uid::new(b)
    }

    #[test]
    fn uids_print_as_hex() {
        assert_eq!(Hex(&[0x04, 0xa1, 0x0b, 0xff]).to_string(), "04a10bff");
        assert_eq!(Hex(&[]).to_string(), "");
        let a = uid(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(CardEvent::Present(a).to_string(), "card deadbeef present");
        assert_eq!(CardEvent::Removed(a).to_string(), "card deadbeef removed");
    }

    #[test]
    fn the_watch_reports_changes_only() {
        let (a, b) = (uid(&[1, 2, 3, 4]), uid(&[4, 3, 2, 1, 0, 9, 8]));
        let mut w = CardWatch::default();
        assert_eq!(w.update(None), [None, None]);
        assert_eq!(w.update(Some(a)), [Some(CardEvent::Present(a)), None]);
        assert_eq!(w.update(Some(a)), [None, None], "the same card stays");
        assert_eq!(
            w.update(Some(b)),
            [Some(CardEvent::Removed(a)), Some(CardEvent::Present(b))],
            "a swap is a removal, then a presence"
        );
        assert_eq!(w.card(), Some(b));
        assert_eq!(w.update(None), [Some(CardEvent::Removed(b)), None]);
        assert_eq!(w.update(None), [None, None]);
    }

    #[test]
    fn unpatched_sections_are_refused() {
        assert!(matches!(TIMER.get(), Err(ConfigError::BadMagic { .. })));
        assert!(matches!(I2C.get(), Err(ConfigError::BadMagic { .. })));
    }

    #[test]
    fn i2c_client_blob_as_sdfgen_writes_it() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../interop/fixtures/i2c/");
        let blob = std::fs::read(format!("{root}i2c_client_client0.data")).unwrap();
        let cfg = I2cClientConfig::from_blob(&blob).unwrap();
        assert_eq!(cfg.virt.id, 0, "client0's channel to the virt");
        assert_eq!(cfg.data.size, 0x1000);
    }
}
