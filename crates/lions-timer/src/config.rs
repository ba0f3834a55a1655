// SPDX-License-Identifier: BSD-2-Clause
//! The timer client's config blob as `sdfgen` 0.35.1 writes it (magic `"sDDF\x06"`).

use lions_os::{Config, ConfigClass, sddf_magic};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Magic of the timer config.
pub const TIMER_MAGIC: [u8; 5] = sddf_magic(ConfigClass::Timer);

/// A timer client's config: `timer_client_config_t` (6 B, alignment 1), section
/// `.timer_client_config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct TimerClientConfig {
    /// `"sDDF\x06"` (offset 0).
    pub magic: [u8; 5],
    /// The client's end id of the PPC channel to the timer driver (offset 5).
    pub driver_id: u8,
}

impl Config for TimerClientConfig {
    const SECTION: &'static str = ".timer_client_config";
    const MAGIC: &'static [u8] = &TIMER_MAGIC;
    const NAME: &'static str = "timer_client_config_t";
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;
    use lions_os::ConfigError;

    #[test]
    fn layout_matches_c() {
        // Six bytes, all u8: no padding, alignment 1.
        assert_eq!(size_of::<TimerClientConfig>(), 6);
        assert_eq!(align_of::<TimerClientConfig>(), 1);
        assert_eq!(offset_of!(TimerClientConfig, magic), 0);
        assert_eq!(offset_of!(TimerClientConfig, driver_id), 5);
    }

    #[test]
    fn magic_is_checked() {
        let blob = *b"sDDF\x06\x03";
        assert_eq!(
            TimerClientConfig::from_blob(&blob).map(|c| c.driver_id),
            Ok(3)
        );
        for bad in [*b"sDDF\x03\x03", *b"SDDF\x06\x03", [0; 6]] {
            assert_eq!(
                TimerClientConfig::from_blob(&bad).err(),
                Some(ConfigError::BadMagic {
                    config: "timer_client_config_t"
                })
            );
        }
        assert_eq!(
            TimerClientConfig::from_blob(&blob[..5]).err(),
            Some(ConfigError::TooShort { needed: 6, have: 5 })
        );
    }
}
