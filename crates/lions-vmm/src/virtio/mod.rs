// SPDX-License-Identifier: BSD-2-Clause
//! virtio 1.2 devices over the MMIO transport, their back ends the client sides of our
//! virtualisers, so a guest is just another client.
//!
//! - [`queue`]: the split virtqueue walker (total: guest misuse is a value).
//! - [`mmio`]: the virtio-mmio register emulator and the [`mmio::VirtioDevice`] trait.
//! - [`console`]: virtio-console (device 3) over a [`console::SerialBackend`].
//! - [`blk`]: virtio-blk (device 2) over a [`blk::BlkBackend`] (sDDF blk requests on 4 KiB transfer
//!   units, read-modify-write for partial blocks, FLUSH).
//! - [`net`]: virtio-net (device 1) over a [`net::NetBackend`].

pub mod blk;
pub mod console;
pub mod mmio;
pub mod net;
pub mod queue;
