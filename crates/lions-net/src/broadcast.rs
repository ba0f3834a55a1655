// SPDX-License-Identifier: BSD-2-Clause
//! Which clients the Rx virtualiser delivers broadcast frames to: [`NetRxBroadcastConfig`].
//!
//! sDDF's Rx virt hands every broadcast frame to every client. The paper's first broadcast scheme
//! instead gives them to one trusted ARP responder ([`ArpResponder`](crate::ArpResponder)) that
//! answers for every client, so the clients never see another client's broadcast traffic.
//! sDDF's `net_virt_rx_config_t` has no field for this (its layout stays as sdfgen writes it), so a
//! system states its choice in a blob of our own in section `.net_virt_rx_broadcast` of the Rx
//! virt's image (`lions_meta`: `net.arp_responder(...)` writes it). A system that writes none
//! (nothing with the magic in that section) keeps sDDF's behaviour.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `"lionsRB\x01"` |
//! | 8 | 8 | `clients`: bit `c` = client `c` receives broadcasts |

use lions_os::{Config, ConfigError};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The Rx virt's broadcast set (16 bytes; see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NetRxBroadcastConfig {
    /// `"lionsRB\x01"` (offset 0).
    pub magic: [u8; 8],
    /// The clients that receive broadcasts, bit `c` = client `c` (offset 8).
    pub clients: u64,
}

impl NetRxBroadcastConfig {
    /// The broadcast set a system chose, or every client (sDDF's behaviour) when `config` is
    /// absent (`BadMagic`: the section was never written). Any other config error is returned.
    pub fn clients_or_all(config: Result<&Self, ConfigError>) -> Result<u64, ConfigError> {
        match config {
            Ok(c) => Ok(c.clients),
            Err(ConfigError::BadMagic { .. }) => Ok(u64::MAX),
            Err(e) => Err(e),
        }
    }
}

impl Config for NetRxBroadcastConfig {
    const SECTION: &'static str = ".net_virt_rx_broadcast";
    const MAGIC: &'static [u8] = b"lionsRB\x01";
    const NAME: &'static str = "lions_net_rx_broadcast";
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layout() {
        assert_eq!(size_of::<NetRxBroadcastConfig>(), 16);
        assert_eq!(offset_of!(NetRxBroadcastConfig, magic), 0);
        assert_eq!(offset_of!(NetRxBroadcastConfig, clients), 8);
    }

    #[test]
    fn a_blob_names_the_set_and_no_blob_means_everyone() {
        let mut blob = [0u64; 2];
        assert_eq!(
            NetRxBroadcastConfig::clients_or_all(NetRxBroadcastConfig::from_blob(blob.as_bytes())),
            Ok(u64::MAX)
        );
        blob.as_mut_bytes()[..8].copy_from_slice(b"lionsRB\x01");
        blob[1] = 0b100;
        let c = NetRxBroadcastConfig::from_blob(blob.as_bytes());
        assert_eq!(NetRxBroadcastConfig::clients_or_all(c), Ok(0b100));
        assert!(matches!(
            NetRxBroadcastConfig::clients_or_all(NetRxBroadcastConfig::from_blob(
                &blob.as_bytes()[..8]
            )),
            Err(ConfigError::TooShort { .. })
        ));
    }
}
