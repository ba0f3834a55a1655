// SPDX-License-Identifier: BSD-2-Clause
//! Drivers for QEMU's `virt` machine (`-machine virt -cpu cortex-a53`), the first seL4 board:
//!
//! - [`pl011::Pl011`]: the PL011 UART at `0x0900_0000` (`arm,pl011`, SPI 1), a
//!   [`SerialDevice`](lions_serial::SerialDevice) over an [`Mmio`](crate::mmio::Mmio) block;
//! - [`generic_timer::GenericTimer`]: the Arm generic timer (`arm,armv8-timer`, a PPI), a
//!   [`TimerDevice`](lions_timer::TimerDevice) over system registers.
//!
//! Both are `no_std` and allocation-free; only the system-register accessors are
//! aarch64-specific, so the logic of both is tested on the host against register models.

pub mod generic_timer;
pub mod pl011;
pub mod virtio_blk;
pub mod virtio_net;
