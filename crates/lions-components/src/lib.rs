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
//!
//! | binary | boards |
//! |---|---|
//! | `serial_virt_tx`, `serial_virt_rx` | every board |
//! | `serial_driver_host`, `timer_driver_host` | host (Linux only; not built for seL4) |
//! | `serial_driver_pl011`, `timer_driver_arm_generic` | `qemu_virt_aarch64` (seL4; on Linux a stub that says so) |
//! | `fs_nfs` | every board (the NFS file-system server: `lions_nfs::fs_nfs`) |
//!
//! Build seL4 components by name (`cargo build --target aarch64-unknown-none -p lions-components
//! --bin serial_virt_tx`), as `cargo xtask build <example> --board qemu_virt_aarch64` does.
#![cfg_attr(not(test), no_std)]
