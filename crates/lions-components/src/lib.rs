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
//! | binary | component | boards |
//! |---|---|---|
//! | `serial_virt_tx`, `serial_virt_rx` | serial virtualisers (`lions_serial`) | every board |
//! | `serial_driver_host` | serial driver: stdin/stdout or a pty | host |
//! | `serial_driver_pl011` | serial driver: ARM PL011 UART | `qemu_virt_aarch64` |
//! | `timer_driver_host` | timer driver: a timerfd | host |
//! | `timer_driver_arm_generic` | timer driver: the ARM generic timer | `qemu_virt_aarch64` |
//! | `net_virt_rx`, `net_virt_tx`, `net_copy` | network virtualisers and copier (`lions_net`) | every board |
//! | `net_arp` | ARP responder for every client, the only broadcast receiver (`lions_net`) | every board |
//! | `net_driver_host_tap` | Ethernet driver: a Linux TAP (root or `CAP_NET_ADMIN`) | host |
//! | `net_driver_host_user` | Ethernet driver: the user-mode network, no privileges | host |
//! | `net_driver_virtio` | Ethernet driver: virtio-net over MMIO | `qemu_virt_aarch64` |
//! | `blk_virt` | block virtualiser with partitions (`lions_blk`) | every board |
//! | `blk_driver_host` | block driver: a disk image file | host |
//! | `blk_driver_virtio` | block driver: virtio-blk over MMIO | `qemu_virt_aarch64` |
//! | `fs_fat` | FAT file-system server (`lions_fs`) | every board |
//! | `fs_nfs` | NFSv3 file-system server (`lions_nfs::fs_nfs`), a network client | every board |
//! | `i2c_virt` | I²C virtualiser (`lions_i2c`) | every board |
//! | `i2c_driver_model_bus` | I²C bus of device models (DS3231, PN532), for boards without a controller | host, `qemu_virt_aarch64` |
//! | `i2c_driver_host_dev` | I²C driver: a Linux `/dev/i2c-N` adapter | host |
//! | `i2c_driver_meson` | I²C driver: the Amlogic Meson controller | Odroid-C4 (seL4) |
//!
//! Host-only drivers are not built for seL4; a seL4 driver built for Linux is a stub that says so.
//!
//! Build seL4 components by name (`cargo build --target aarch64-unknown-none -p lions-components
//! --bin serial_virt_tx`), as `cargo xtask build <example> --board qemu_virt_aarch64` does.
#![cfg_attr(not(test), no_std)]
