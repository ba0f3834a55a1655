// SPDX-License-Identifier: BSD-2-Clause
//! # webserver: LionsOS's web server, as a library
//!
//! The `webserver` PD (`src/bin/webserver.rs`) is a thin wrapper over this crate:
//!
//! - [`http`]: the HTTP/1.1 request parser and response-head writer (no_std, total over any
//!   input);
//! - [`conn`]: one connection's state machine over a [`conn::FileSource`] (the PD's FS client);
//! - [`WebConfig`]: the PD's `.webserver_config` blob (address, port, connections), written by
//!   the example's metaprogram.
#![cfg_attr(not(test), no_std)]

pub mod conn;
pub mod http;

use lions_os::Config;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The most connections a `webserver` PD can serve at once (its static socket storage); the
/// config picks how many of them it uses.
pub const MAX_CONNECTIONS: usize = 16;

/// The web server's address and limits, written by the metaprogram into section
/// `.webserver_config` (24 bytes): magic `"lionsWB\x01"` at 0, IPv4 address at 8, prefix length
/// at 12 (0: DHCP), a pad byte, TCP port (little-endian) at 14, default gateway at 16 (0.0.0.0:
/// none), connections served at once at 20 (1..=[`MAX_CONNECTIONS`]), 2 pad bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct WebConfig {
    /// [`WEB_MAGIC`].
    pub magic: [u8; 8],
    /// The address.
    pub ip: [u8; 4],
    /// Prefix length; 0 asks for DHCP.
    pub prefix: u8,
    /// Padding.
    pub _pad: u8,
    /// The TCP port served.
    pub port: u16,
    /// Default gateway; all zero for none.
    pub gateway: [u8; 4],
    /// Connections served at once.
    pub connections: u16,
    /// Padding.
    pub _pad2: [u8; 2],
}

/// The magic of [`WebConfig`].
pub const WEB_MAGIC: [u8; 8] = *b"lionsWB\x01";

impl Config for WebConfig {
    const SECTION: &'static str = ".webserver_config";
    const MAGIC: &'static [u8] = &WEB_MAGIC;
    const NAME: &'static str = "webserver_config";

    fn validate(&self) -> Result<(), lions_os::ConfigError> {
        let bad = |field, value| {
            Err(lions_os::ConfigError::Invalid {
                config: Self::NAME,
                field,
                value,
            })
        };
        if self.prefix > 32 {
            return bad("prefix", u64::from(self.prefix));
        }
        if self.port == 0 {
            return bad("port", 0);
        }
        if self.connections == 0 || usize::from(self.connections) > MAX_CONNECTIONS {
            return bad("connections", u64::from(self.connections));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn config_layout_and_limits() {
        assert_eq!(size_of::<WebConfig>(), 24);
        assert_eq!(offset_of!(WebConfig, ip), 8);
        assert_eq!(offset_of!(WebConfig, prefix), 12);
        assert_eq!(offset_of!(WebConfig, port), 14);
        assert_eq!(offset_of!(WebConfig, gateway), 16);
        assert_eq!(offset_of!(WebConfig, connections), 20);
        let mut c = WebConfig {
            magic: WEB_MAGIC,
            ip: [10, 0, 2, 10],
            prefix: 24,
            _pad: 0,
            port: 80,
            gateway: [10, 0, 2, 1],
            connections: 8,
            _pad2: [0; 2],
        };
        assert!(c.validate().is_ok());
        // The blob as meta.py packs it ("<8s4sBxH4sH2x").
        let mut blob = Vec::from(WEB_MAGIC);
        blob.extend([10, 0, 2, 10, 24, 0, 80, 0, 10, 0, 2, 1, 8, 0, 0, 0]);
        assert_eq!(c.as_bytes(), &blob[..]);
        c.connections = 0;
        assert!(c.validate().is_err());
        c.connections = u16::try_from(MAX_CONNECTIONS).unwrap() + 1;
        assert!(c.validate().is_err());
        c.connections = 1;
        c.port = 0;
        assert!(c.validate().is_err());
        c.port = 80;
        c.prefix = 33;
        assert!(c.validate().is_err());
    }
}
