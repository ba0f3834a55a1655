// SPDX-License-Identifier: BSD-2-Clause
//! # lions-queue: one SPSC ring for every device class
//!
//! Every lions-* component talks to its neighbours through single-producer, single-consumer rings in
//! shared memory, byte-compatible with sDDF 0.7 and LionsOS queues. This crate is the one ring; the
//! class crates (`lions-net`, `lions-serial`, `lions-blk`, `lions-i2c`, `lions-fs`) only say where
//! its fields live ([`QueueHeader`]) and what an entry is.
//!
//! ## Wire protocol
//!
//! - A ring is a `head` (written only by the consumer), a `tail` (written only by the producer) and an
//!   array of entries, either right after the header (net, blk, I²C, fs) or in a separate data
//!   region (serial bytes).
//! - Indices are free-running unsigned integers of the layout's own width (`u16` net; `u32` serial,
//!   blk, I²C; `u64` fs) and wrap in that width. Length is `tail - head` (wrapping); empty when 0,
//!   full when it reaches the usable capacity. Entry `i` lives in slot `i % slots`.
//! - The capacity is never read from shared memory: it is given to each handle from the
//!   configuration, checked (power of two, or a fixed wire constant) and kept privately.
//! - Ownership of an entry passes to the consumer when the producer's tail store covers it, and back
//!   when the consumer's head store passes it. The peer's index is read with **Acquire**, our own is
//!   written with **Release**.
//! - The producer may stage any number of entries and publish them with one tail store (batching);
//!   the consumer may pop many and release them with one head store.
//! - A peer that writes an impossible index (a length above capacity, an index that moves backwards
//!   or past ours) is reported as a [`PeerError`]; nothing panics and nothing is indexed out of
//!   bounds.
//! - Signalling (the `signal` module): a `u32` flag, 0 = "signal me", with the three-phase
//!   process / request-and-recheck / notify-if-asked protocol and its two SeqCst fences.
//! - Beside the rings, a virtualiser's private bookkeeping of its clients: the client table with
//!   its fault mask (`clients`) and the FIFOs of waiting clients and of in-order routes (`fifo`);
//!   none of it is in shared memory.
//!
//! ## Example
//!
//! ```
//! use lions_queue::RingStorage;
//!
//! let mut storage = RingStorage::<u32, u64, 8>::new();
//! let (mut tx, mut rx, _signal) = storage.split().unwrap();
//! for i in 0..3 {
//!     tx.push(i).unwrap();
//! }
//! assert_eq!(rx.pop().unwrap(), None, "staged entries are invisible until published");
//! assert_eq!(tx.publish(), 3);
//! assert_eq!(rx.pop().unwrap(), Some(0));
//! ```
#![cfg_attr(not(test), no_std)]

pub mod bytes;
mod capacity;
pub mod clients;
pub mod fifo;
mod index;
mod memory;
mod ring;
pub mod signal;
mod sync;

pub use capacity::{Capacity, CapacityError};
pub use index::RingIndex;
pub use memory::{QueueHeader, QueueMemory, RegionError, RingStorage};
pub use ring::{Consumer, HandleError, IndexField, PeerError, PopIter, Producer, PushError};
pub use signal::Signal;
pub use sync::Slot;

/// The atomics a [`QueueHeader`] is built from (loom's under `--cfg loom`).
pub mod atomic {
    pub use crate::sync::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};
}

#[cfg(all(test, not(loom)))]
mod tests;
