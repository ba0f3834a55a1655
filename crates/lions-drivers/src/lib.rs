// SPDX-License-Identifier: BSD-2-Clause
//! # lions-drivers: device drivers for lions-*
//!
//! Each driver implements one device-class trait ([`lions_serial::SerialDevice`],
//! [`lions_timer::TimerDevice`], [`lions_blk::driver::BlkDevice`]) for one device family; the class
//! crate's generic driver loop ([`lions_serial::SerialDriver`], [`lions_timer::TimerDriver`],
//! [`lions_blk::driver::BlkDriver`]) owns the queues, the PPC protocol and the signalling, so a
//! driver here is only hardware. A component binary (in
//! `lions-components`) builds the device from its `.device_resources` and hands it to the loop.
//!
//! | board | module | device | class | resources |
//! |---|---|---|---|---|
//! | `qemu_virt_aarch64` | [`qemu_virt_aarch64::pl011`] | Arm PL011 UART (`arm,pl011`) | serial | `regs` (4 KiB MMIO), 1 IRQ |
//! | `qemu_virt_aarch64` | [`qemu_virt_aarch64::generic_timer`] | Arm generic timer (`arm,armv8-timer`) | timer | system registers, 1 IRQ |
//! | `qemu_virt_aarch64` | [`qemu_virt_aarch64::virtio_blk`] | virtio-blk over virtio-mmio ([`virtio`], virtio 1.2, non-legacy) | blk | `regs`, the virtqueue DMA region, 1 IRQ |
//! | host | `host::serial` (feature `host`) | the launching terminal, a pty or any fd pair (`lions,host-serial`) | serial | 1 IRQ |
//! | host | `host::timer` (feature `host`) | a `CLOCK_MONOTONIC` timerfd (`lions,host-timer`) | timer | 1 IRQ |
//! | host | `host::blk` (feature `host`) | a raw image file, optionally read-only (`lions,host-blk`) | blk | 1 IRQ; the data regions mapped at their physical addresses |
//!
//! Register access goes through one small abstraction, [`mmio::Mmio`] (32-bit reads and writes at
//! byte offsets): [`mmio::MmioRegion`] on a board, register models in the host tests.
//!
//! ## Writing a driver
//!
//! Implement the class trait over a register-access trait, put a model of the device behind the
//! registers, and test the driver inside its whole subsystem on the deterministic `sim` backend:
//! for serial, `lions_serial::testkit::SerialRig` (feature `sim` of `lions-serial`) builds the
//! generic driver around your device, the Tx and Rx virtualisers and N clients in one call. The
//! worked example "a new UART driver, tested" (a FIFO UART with a status register) is
//! `crates/lions-serial/tests/worked_uart.rs`, run by `cargo test -p lions-serial`. Configs for a
//! hand-built system come from the class crates' safe constructors (`SerialDriverConfig::new`,
//! `BlkDriverConfig::new`, ...), with no zerocopy or pointer casts.
//!
//! ## Resource descriptors
//!
//! `config/<class>/<driver>/config.json` in this crate, in sDDF's format, so sdfgen picks a driver
//! by the device tree's `compatible` and gives it its regions and IRQs: `serial/pl011`,
//! `timer/arm_generic`, `blk/virtio_mmio`, `serial/host`, `timer/host`, `blk/host` (the host ones have one IRQ and no region; the
//! host board's device tree is `tools/host.dts`).
//!
//! ## Features
//!
//! - `host`: the Linux host-board drivers (std, libc); IRQs are host fds registered with
//!   `lions_os::host::register_irq_fd`.
//! - `std`: std support in the class crates.
//!
//! Without features the crate is `no_std` and builds for `aarch64-unknown-none`.
#![cfg_attr(not(any(test, feature = "std")), no_std)]

#[cfg(feature = "host")]
pub mod host;
pub mod i2c;
pub mod mmio;
pub mod qemu_virt_aarch64;
pub mod virtio;
