// SPDX-License-Identifier: BSD-2-Clause
//! # lions-serial: the serial (character device) class
//!
//! Wire format and configuration of the serial subsystem, byte-compatible with sDDF 0.7 and the
//! blobs `sdfgen` 0.35.1 writes. A serial subsystem is a driver, a Tx virtualiser, an optional Rx
//! virtualiser and clients, joined by byte queues.
//!
//! ## Wire protocol
//!
//! - **Queue layout** ([`queue::SerialQueue`], 12 B): `tail` u32 at 0, `head` u32 at 4,
//!   `producer_signalled` u32 at 8, at the start of the queue region. The bytes live in a
//!   **separate data region**; capacity = data region size, a power of two, known only to each
//!   end's private handle (from the config), never read from shared memory.
//! - **Who writes what**: the producer writes the data bytes and `tail`; the consumer writes
//!   `head`. Both read the peer's index with Acquire and publish their own with Release. Indices
//!   are free-running `u32` and wrap in 32 bits; byte `i` is at `data[i % capacity]`.
//! - **Enqueue** (producer): stage bytes into free slots, then publish them with one tail store
//!   ([`queue::SerialProducer::write`], [`publish`](queue::SerialProducer::publish)).
//! - **Dequeue** (consumer): read bytes up to the tail, then hand the slots back with one head store
//!   ([`queue::SerialConsumer::read`], [`release`](queue::SerialConsumer::release)).
//! - **Notification rule**: the producer **always** notifies the consumer after publishing
//!   anything. The consumer notifies the producer **only when asked**: a producer that finds the
//!   queue full stores 0 ("signal me") into `producer_signalled`, re-checks for space
//!   ([`queue::SerialProducer::park`]) and waits; a consumer that freed space and sees the request
//!   cancels it (stores 1) and notifies ([`queue::SerialConsumer::should_notify`]). The request
//!   store and the notifier's load are each separated from the index access by a SeqCst fence
//!   (the store-buffering argument in `lions_queue::signal`).
//! - **Peer misbehaviour**: an impossible index (length above capacity, an index moving backwards)
//!   is reported as a [`lions_queue::PeerError`]; nothing panics, nothing is indexed out of bounds.
//!
//! ## Configuration (magic `"sDDF\x03"`)
//!
//! | struct | section | size |
//! |---|---|---|
//! | [`config::SerialDriverConfig`] | `.serial_driver_config` | 104 B |
//! | [`config::SerialVirtRxConfig`] | `.serial_virt_rx_config` | 2616 B |
//! | [`config::SerialVirtTxConfig`] | `.serial_virt_tx_config` | 6840 B |
//! | [`config::SerialClientConfig`] | `.serial_client_config` | 88 B |
//!
//! Every connection is a [`config::SerialConnectionResource`] (40 B: queue region, data region,
//! channel id). Each config checks its magic, its client count against the 64-entry array, and
//! every connected data region's size (a power of two) before use ([`lions_os::Config::check`]).
#![cfg_attr(not(any(test, feature = "std")), no_std)]

pub mod config;
pub mod queue;

pub use config::{
    SerialClientConfig, SerialConnectionResource, SerialDriverConfig, SerialVirtRxConfig,
    SerialVirtTxClient, SerialVirtTxConfig,
};
pub use queue::{SerialConsumer, SerialProducer, SerialQueue, SerialQueueError};
