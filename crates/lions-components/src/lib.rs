// SPDX-License-Identifier: BSD-2-Clause
//! # lions-components: the component binaries
//!
//! One binary per component, named as sdfgen names its program image (`serial_virt_tx`,
//! `serial_virt_rx`, `serial_driver_host`, `timer_driver_host`, ...). Each reads its config
//! sections (written into the ELF by `cargo xtask build`), builds the library struct from its class
//! crate and hands it to `lions_os::protection_domain!`. There is no logic here beyond that wiring;
//! the wire protocols are documented in the class crates.
//!
//! An example system names these binaries in its metaprogram
//! (`asm.pd("serial_virt_tx", package="lions-components")`).
#![cfg_attr(not(test), no_std)]
