// SPDX-License-Identifier: BSD-2-Clause
//! # lions-drivers: device drivers for lions-*
//!
//! Each driver implements one device-class trait (`lions_serial::driver::SerialDevice`,
//! `lions_timer::driver::TimerDevice`) for one device family; the class crate's generic driver
//! loop owns the queues, the PPC protocol and the signalling, so a driver here is only hardware.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
