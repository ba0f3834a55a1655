// SPDX-License-Identifier: BSD-2-Clause
//! # hello: the smallest lions-* system
//!
//! Three PDs (`ping`, `pong`, `faulty`), described by `meta.py`. What they share is all in the
//! system description; the channel ids and the region address reach each PD in its
//! [`HelloConfig`], a config blob the metaprogram writes and `cargo xtask build` puts into the
//! PD's `.hello_config` section, like sdfgen's blobs for sDDF components. No channel number or
//! address is written in the Rust code.
//!
//! ## Protocol
//!
//! - `ping` notifies `pong` on channel [`HelloConfig::notify`]; `pong` prints it and notifies back
//!   (deferred, at the end of its handler).
//! - On each answer `ping` makes a PPC to `pong` on channel [`HelloConfig::ppc`]: label
//!   [`LABEL_SUM`], MR0..MR3 four numbers; `pong` replies with label [`LABEL_SUM_REPLY`] and their
//!   sum in MR0. After [`HelloConfig::rounds`] rounds `ping` stays idle.
//! - At start `pong` writes [`SHARED_VALUE`] into the region `shared` (mapped `rw` in `pong`) and
//!   notifies `faulty` on channel [`HelloConfig::go`]. `faulty` maps `shared` read-only: it reads
//!   the value, prints it, then writes, and the host board kills it with SIGSEGV.
#![cfg_attr(target_os = "none", no_std)]

use lions_os::{Channel, Config, ConfigError, OsError, RegionResource};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Magic at the start of a [`HelloConfig`].
pub const HELLO_MAGIC: [u8; 8] = *b"LionsHi\x01";

/// Channel id meaning "this PD has no such channel".
pub const NO_CHANNEL: u8 = 0xff;

/// Label of `ping`'s PPC: "sum the message registers".
pub const LABEL_SUM: u64 = 0x50;
/// Label of `pong`'s reply.
pub const LABEL_SUM_REPLY: u64 = 0x51;

/// What `pong` writes into the shared region and `faulty` reads.
pub const SHARED_VALUE: u64 = 0x1105_0042;

/// Each PD's view of the system (32 bytes, section `.hello_config`), written by `meta.py`:
/// `struct.pack("<8sQQBBBB4x", magic, vaddr, size, notify, ppc, go, rounds)`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct HelloConfig {
    /// [`HELLO_MAGIC`].
    pub magic: [u8; 8],
    /// The region `shared` as this PD maps it (zero if it does not).
    pub shared: RegionResource,
    /// Channel of the ping/pong notifications.
    pub notify: u8,
    /// Channel of the PPC from `ping` to `pong`.
    pub ppc: u8,
    /// Channel on which `pong` tells `faulty` the region is written.
    pub go: u8,
    /// Number of ping/pong rounds.
    pub rounds: u8,
    /// Explicit padding.
    pub _pad: [u8; 4],
}

impl Config for HelloConfig {
    const SECTION: &'static str = ".hello_config";
    const MAGIC: &'static [u8] = &HELLO_MAGIC;
    const NAME: &'static str = "hello_config";

    fn validate(&self) -> Result<(), ConfigError> {
        if !self.shared.vaddr.is_multiple_of(8) {
            return Err(ConfigError::Invalid {
                config: Self::NAME,
                field: "shared.vaddr",
                value: self.shared.vaddr,
            });
        }
        Ok(())
    }
}

impl HelloConfig {
    /// Channel `id` as this PD numbers it, or `None` for [`NO_CHANNEL`].
    pub fn channel(id: u8) -> Option<Channel> {
        if id == NO_CHANNEL {
            None
        } else {
            Channel::try_new(id)
        }
    }
}

// Private: `config!` takes no doc attributes; read it through [`config`].
lions_os::config!(static CONFIG: HelloConfig = ".hello_config");

/// Why a hello PD stops.
#[derive(Debug)]
pub enum Error {
    /// A kernel operation was refused.
    Os(OsError),
    /// The config section is missing or wrong.
    Config(ConfigError),
    /// The config lacks a channel this PD needs.
    NoChannel(&'static str),
    /// An event on a channel this PD does not expect.
    Unexpected(Channel),
}

impl From<OsError> for Error {
    fn from(e: OsError) -> Self {
        Self::Os(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Os(e) => write!(f, "{e}"),
            Self::Config(e) => write!(f, "{e}"),
            Self::NoChannel(what) => write!(f, "config has no `{what}` channel"),
            Self::Unexpected(ch) => write!(f, "unexpected event on {ch}"),
        }
    }
}

/// This PD's config, checked. A PD cannot run without it, so `init` panics with the reason
/// (the launcher reports the PD as failed).
pub fn config() -> &'static HelloConfig {
    match CONFIG.get() {
        Ok(cfg) => cfg,
        Err(e) => panic!("{}: {e}", lions_os::pd_name()),
    }
}

/// The channel `id` from the config, required.
pub fn required(id: u8, what: &'static str) -> Result<Channel, Error> {
    HelloConfig::channel(id).ok_or(Error::NoChannel(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn layout_matches_meta_py() {
        assert_eq!(size_of::<HelloConfig>(), 32);
        assert_eq!(offset_of!(HelloConfig, shared), 8);
        assert_eq!(offset_of!(HelloConfig, notify), 24);
        assert_eq!(offset_of!(HelloConfig, ppc), 25);
        assert_eq!(offset_of!(HelloConfig, go), 26);
        assert_eq!(offset_of!(HelloConfig, rounds), 27);
    }

    #[test]
    fn blob_round_trip() {
        let mut blob = [0u64; 4];
        let bytes = blob.as_mut_bytes();
        bytes[..8].copy_from_slice(&HELLO_MAGIC);
        bytes[8..16].copy_from_slice(&0x2000_0000u64.to_le_bytes());
        bytes[16..24].copy_from_slice(&0x1000u64.to_le_bytes());
        bytes[24..28].copy_from_slice(&[0, 1, NO_CHANNEL, 5]);
        let cfg = HelloConfig::from_blob(bytes).unwrap();
        assert_eq!(cfg.shared.vaddr, 0x2000_0000);
        assert_eq!(HelloConfig::channel(cfg.ppc), Some(Channel::new(1)));
        assert_eq!(HelloConfig::channel(cfg.go), None);
        assert_eq!(cfg.rounds, 5);
        bytes[0] = b'X';
        assert!(HelloConfig::from_blob(bytes).is_err());
    }

    #[test]
    fn unpatched_section_is_refused() {
        assert!(matches!(CONFIG.get(), Err(ConfigError::BadMagic { .. })));
    }
}
