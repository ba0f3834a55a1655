// SPDX-License-Identifier: BSD-2-Clause
//! # lions-vmm: the virtual machine monitor library
//!
//! The hardware-independent part of a VMM protection domain that runs one AArch64 Linux guest on
//! seL4 (LionsOS runs Linux drivers and Linux guests this way: one small VMM PD per guest). Every
//! module here is pure Rust and `no_std`, works on guest RAM through the checked
//! [`ram::GuestMemory`] trait, and is tested on the host with guest RAM as a byte buffer.
//!
//! **The host board cannot run guests**: it promises no hardware virtualisation, so guest boot
//! runs only on seL4 (QEMU `virt` with `virtualization=on`, or hardware). Everything else (the
//! decoders, device models, interrupt controller and boot layout) runs in `cargo test`.
//!
//! ## Modules, in the order a fault flows through them
//!
//! - [`ram`]: guest RAM regions and guest-physical translation; an access outside RAM is a
//!   value, never a wild read or write.
//! - [`abort`]: stage-2 data-abort decoding from the ESR syndrome (width, register, sign
//!   extension, 64-bit register, direction, PC advance), a total function over every syndrome.
//! - [`linux`]: arm64 `Image` header check, kernel/DTB/initrd placement, entry registers.
//! - [`virtio`]: the virtio-mmio transport (virtio 1.2, non-legacy), a total split-virtqueue
//!   walker, and the console, block and network devices whose back ends are traits the client
//!   sides of the serial, blk and net virtualisers implement (a guest is just another client).
//! - [`gic`]: a software GICv2 distributor with per-vCPU banked SGI/PPI state, list-register
//!   injection with an overflow queue, and maintenance handling; the virtual timer PPI.
//! - [`psci`]: PSCI 1.2 calls a guest makes with `SMC`/`HVC` (VERSION, FEATURES, CPU_ON,
//!   SYSTEM_OFF/RESET).
//! - [`fdt`]: a flattened-device-tree writer for the memory, virtio-mmio and chosen/initrd nodes.
//! - [`fault`]: one data-abort fault end to end (decode, dispatch, register write-back, PC).
//! - [`uio`]: the doorbells of a Linux driver VM (guest to native by a fault on a reserved
//!   page, native to guest by an injected IRQ).
//!
//! ## Protocol with the seL4 side
//!
//! The VMM PD receives a vCPU's faults on its child id (`lions_os::microkit::vcpu` decodes them
//! and makes the vCPU calls). A data abort arrives with the faulting guest-physical address and
//! the ESR: [`fault::emulate`] decodes it ([`abort::decode`]), lets the PD read or write the
//! emulated device (a virtio-mmio window, the GIC distributor, a UIO doorbell), writes the target
//! register for a read ([`abort::DataAbort::read_result`]) and advances the PC by
//! [`abort::DataAbort::pc_step`]; the PD writes the registers back and resumes the vCPU. Interrupts a device raises go through
//! [`gic::Gic::inject`], which yields the list-register writes the PD performs; a VGIC
//! maintenance fault is [`gic::Gic::maintenance`].
#![no_std]

#[cfg(test)]
extern crate std;

pub mod abort;
#[cfg(any(feature = "serial", feature = "blk", feature = "net"))]
pub mod backends;
pub mod fault;
pub mod fdt;
pub mod gic;
pub mod linux;
pub mod psci;
pub mod ram;
pub mod uio;
pub mod virtio;
