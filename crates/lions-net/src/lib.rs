// SPDX-License-Identifier: BSD-2-Clause
//! # lions-net: the network device class
//!
//! Wire format and configuration of the sDDF 0.7 network subsystem, byte-compatible with the C
//! components and with the config blobs `sdfgen` 0.35.1 writes. A Rust component built on this
//! crate can replace its C twin in a system.
//!
//! ## Wire protocol
//!
//! **Buffers.** Every data region is an array of [`NET_BUFFER_SIZE`] (2048) byte buffers; buffer
//! `i` starts at offset `i * 2048`. Buffers are passed by reference in a 16-byte descriptor,
//! [`NetBuffDesc`] (`net_buff_desc_t`):
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 8 | `io_or_offset` | IO address between Rx/Tx virt and driver, otherwise offset in the data region |
//! | 8 | 2 | `len` | bytes of frame data in the buffer |
//! | 10 | 1 | `oid` | bits 0..=5: region/owner id (C 6-bit bitfield); bits 6..=7 unused |
//! | 11 | 5 | — | padding |
//!
//! Clients write `oid = 0`; the Tx virtualiser, copier and vswitch use it to say which of several
//! data regions a buffer lives in.
//!
//! **Queues.** Each `net_queue_t` ([`NetQueue`]) is one region: `tail: u16` at 0 (producer-owned),
//! `head: u16` at 2 (consumer-owned), `consumer_signalled: u32` at 4, then the descriptor array at
//! offset 8. Indices are free-running `u16` that wrap in 16 bits (length = `tail - head` wrapping in
//! `u16`, which fixes the sDDF full-check bug); slot = index mod capacity; every slot is usable;
//! the capacity (`num_buffers` from the config, a power of two) is never read from shared memory.
//!
//! **Queue pairs.** Queues always come in pairs of equal capacity between the same two
//! components: a *free* queue and an *active* queue. Frames flow on *active* from the
//! [`NetSource`] to the [`NetSink`] (Rx: driver → Rx virt → copier → client; Tx: client → Tx virt
//! → driver; each arrow is one pair), and emptied buffers come back on *free*:
//!
//! 1. The source dequeues a buffer from *free*, fills it, enqueues it on *active*.
//! 2. The sink dequeues it from *active*, uses it, enqueues it on *free*.
//!
//! Enqueuing a descriptor passes ownership of the buffer to the consumer; the tail store (Release)
//! is the transfer point, the peer reads the tail with Acquire.
//!
//! **Notification rule.** Only a queue's **producer** notifies, and only when the queue's consumer
//! asked: the consumer stores `consumer_signalled = 0` to request a signal, re-checks the queue
//! (the three phases in `lions_queue::signal`), and sleeps; the producer, after publishing, tests
//! the flag and, if it is 0, stores 1 and notifies. See [`NetSource::should_notify_active`],
//! [`NetSink::should_notify_free`] and the `park_*` methods.
//!
//! ## Configuration
//!
//! Every config starts with the magic `"sDDF\x05"` (`lib_sddf_lwip`: `"sDDF\x08"`) and lives in its
//! own section: `.net_driver_config` ([`NetDriverConfig`], 88 B), `.net_virt_rx_config`
//! ([`NetVirtRxConfig`], 27 744 B), `.net_virt_tx_config` ([`NetVirtTxConfig`], 134 200 B),
//! `.net_copy_config` ([`NetCopyConfig`], 1128 B), `.net_vswitch_config` ([`NetVswitchConfig`],
//! 7200 B), `.net_client_config` ([`NetClientConfig`], 128 B) and `.lib_sddf_lwip_config`
//! ([`LibSddfLwipConfig`], 32 B). A connection ([`NetConnectionResource`], 40 B) names the free and
//! active queue regions as mapped in this component, the capacity and the channel id.
#![cfg_attr(not(any(test, feature = "std")), no_std)]

pub mod config;
pub mod queue;

pub use config::{
    LibSddfLwipConfig, MacAddr, NetClientConfig, NetConnectionResource, NetCopyConfig,
    NetDriverConfig, NetVirtRxClient, NetVirtRxConfig, NetVirtTxClient, NetVirtTxConfig,
    NetVirtTxRegion, NetVswitchConfig, NetVswitchPort,
};
pub use queue::{
    BufferError, NET_BUFFER_SIZE, NetBuffDesc, NetQueue, NetSink, NetSource, OID_MAX, QueueError,
};
