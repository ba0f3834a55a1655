// SPDX-License-Identifier: BSD-2-Clause
//! # lions-os: the only crate that knows which OS it runs on
//!
//! This release holds the resource and configuration primitives every component shares with sDDF
//! 0.7 and `sdfgen` 0.35.1; the Microkit-shaped API (channels, notify, PPC, the `Handler` trait) and
//! its backends follow.
//!
//! ## Wire protocol: configuration blobs
//!
//! A system's metaprogram (`sdfgen`) writes one binary blob per component and subsystem; the build
//! writes each blob into a named ELF section of the component (`.device_resources`,
//! `.serial_client_config`, ...), so the component finds its configuration in a static at start-up.
//! Blobs are the C structs, little-endian, natural alignment, LP64 (pointers are 8 bytes):
//!
//! - Every sDDF config starts with a 5-byte magic `"sDDF"` + class byte ([`ConfigClass`]); LionsOS
//!   configs start with the 8-byte `"LionsOS"` + a kind byte. A component checks it before using
//!   anything else ([`Config::check`]).
//! - A region is `{vaddr: u64, size: u64}` ([`RegionResource`], 16 B); a device region adds the
//!   device-visible address (`io_addr`, [`DeviceRegionResource`], 24 B).
//! - `.device_resources` ([`DeviceResources`], 1608 B): magic, `num_regions`, `num_irqs`, 64 device
//!   regions, 64 IRQ channel ids.
//! - Fixed arrays hold up to [`MAX_CLIENTS`] entries; the count fields say how many are real, and are
//!   checked against the array length before any access.
#![cfg_attr(not(any(test, feature = "std")), no_std)]

pub mod config;

pub use config::{
    Config, ConfigClass, ConfigError, DeviceIrqResource, DeviceRegionResource, DeviceResources,
    LIONSOS_MAGIC_PREFIX, MAX_CLIENTS, RegionResource, SDDF_MAGIC_PREFIX, check_count, sddf_magic,
};
