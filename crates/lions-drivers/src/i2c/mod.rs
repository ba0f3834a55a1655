// SPDX-License-Identifier: BSD-2-Clause
//! I²C: device drivers generic over embedded-hal 1.0 [`embedded_hal::i2c::I2c`] (so they run on
//! our client library or on any microcontroller's bus), device models written from the data
//! sheets, and the **model bus**: an [`lions_i2c::I2cDevice`] that hosts those models in the
//! driver PD, for boards without an I²C controller (the host board, `qemu_virt_aarch64`).
//!
//! | module | device | address |
//! |---|---|---|
//! | [`ds3231`] | Maxim DS3231 real-time clock: time, alarm 1, temperature | 0x68 |
//! | [`pn532`] | NXP PN532 NFC controller over I²C: firmware version, SAM configuration, ISO14443A card UID | 0x24 |
//! | [`model`] | models of both, and [`model::ModelBus`] | |
//! | [`meson`] | the Amlogic Meson I²C controller (Odroid-C4) as an [`lions_i2c::I2cDevice`] | |
//! | [`meson_model`] | a register model of that controller over a [`model::ModelBus`] | |

pub mod ds3231;
pub mod meson;
pub mod meson_model;
pub mod model;
pub mod pn532;
