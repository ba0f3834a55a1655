// SPDX-License-Identifier: BSD-2-Clause
//! # lions-blk: the block storage class
//!
//! The block subsystem: wire format and configuration byte-compatible with sDDF 0.7 and the blobs
//! `sdfgen` 0.35.1 writes, and its components. A block subsystem is a driver, a virtualiser
//! (partitioning) and clients; each connection is a request queue, a response queue and a
//! storage-info page:
//!
//! ```text
//! client i --requests--> blk_virt --requests--> driver --> device
//! client i <-responses-- blk_virt <-responses-- driver <-- device
//! ```
//!
//! ## Components
//!
//! Each is a plain struct implementing [`lions_os::Handler`], so it runs under any backend; the
//! binaries in `lions-components` only read the config and build it.
//!
//! | module | component | what it does |
//! |---|---|---|
//! | [`driver`] | `blk_driver_*` | [`BlkDevice`], the hardware trait a driver author implements, and [`BlkDriver`], the generic loop: checks, BARRIER held until the device is idle, response room, notifications |
//! | [`virt`] | `blk_virt` | [`BlkVirt`]: waits for the driver, reads the partition table ([`partition`]: MBR or CRC-checked GPT), one partition per client, bounds checks, translation, per-client in-flight limit, per-client BARRIER ordering, faulty clients dropped |
//! | [`client`] | (library) | [`BlkClient`]: asynchronous I/O with request ids and out-of-order completions; [`BlockingBlk`]: blocking reads, writes, FLUSH and BARRIER over it |
//!
//! ## Ordering: FLUSH and BARRIER
//!
//! - **FLUSH** makes durable every write that completed before the FLUSH was submitted. It orders
//!   nothing: it is passed on in queue order like any request and may complete before writes
//!   submitted earlier that are still in flight.
//! - **BARRIER** (per client): every request the client submitted before it completes before the
//!   BARRIER is passed on, and no request submitted after it is passed on before the BARRIER
//!   completes. The virt passes it to the driver only when that client has nothing else there
//!   and holds the client's later requests; the driver answers it only when the device has
//!   nothing outstanding, and takes nothing behind it before. It is not a FLUSH.
//!
//! ## In-flight limit
//!
//! A server (the virt toward each client, the driver toward the virt) takes a request only when
//! the requester's response queue has room for its response on top of every response already
//! owed, so no response ever waits for room and no response queue overflows, whatever a
//! requester does. The virt also caps each client at an equal share of the driver's ids (at
//! least 1, at most the client's queue capacity; published as the client's `queue_depth`), so no
//! client can hold the driver for the others. A requester that frees response slots while
//! requests still wait in its queue notifies the server ([`BlkClient::publish`] does).
//!
//! ## Wire protocol
//!
//! - **Units**: block numbers and counts are in [`queue::BLK_TRANSFER_SIZE`] (4096-byte) units,
//!   never device sectors.
//! - **Request queue** ([`queue::BlkReqQueue`]): `head` u32 at 0, `tail` u32 at 4, `plugged` (C
//!   bool) at 8, entries ([`queue::BlkRequest`], 32 B) from offset 16. The requester (client, or
//!   the virt toward the driver) writes entries and `tail`; the server (driver, or the virt toward a
//!   client) writes `head`.
//! - **Response queue** ([`queue::BlkRespQueue`]): `head` u32 at 0, `tail` u32 at 4, entries
//!   ([`queue::BlkResponse`], 12 B) from offset 8. The server writes entries and `tail`; the
//!   requester writes `head`.
//! - **Indices** are free-running `u32`, wrapping in 32 bits; capacity = the connection's
//!   `num_buffers` (a power of two), known only to each end's private handle. Peer indices are read
//!   with Acquire, our own published with Release (sDDF itself has no acquire here); an impossible
//!   index is a [`lions_queue::PeerError`], never a panic.
//! - **Request**: `code` ([`queue::RequestCode`]: READ 0, WRITE 1, FLUSH 2, BARRIER 3),
//!   `io_or_offset` (byte offset into the client's data region; an I/O address toward the driver),
//!   `block_number`, `count` (blocks), `id` (chosen by the requester). FLUSH and BARRIER carry no
//!   buffer; BARRIER completes every earlier request before any later one starts.
//! - **Response**: `status` ([`queue::ResponseStatus`]: OK 0, ERR_UNSPEC 1, ERR_INVALID_PARAM 2,
//!   ERR_IO 3, ERR_NO_DEVICE 4), `success_count` (blocks done), `id` (the request's, echoed).
//!   Responses may come **out of order**.
//! - Raw codes stay raw `u32` in shared memory; typed accessors return `Result`, so an unknown value
//!   from a peer is an error to answer, not undefined behaviour.
//! - **Notification rule**: no flags; whoever enqueued anything **always** notifies the peer
//!   ([`queue::BlkRequester::publish`], [`queue::BlkServer::publish`]).
//! - **Plug**: `plugged` lets a requester ask the server to hold requests back; advisory only, as
//!   in sDDF no server is required to honour it.
//! - **Storage info** ([`storage_info::BlkStorageInfo`], 88 B, one 4 KiB region per connection):
//!   written by the server (driver for its own device, virt per client partition), then published
//!   by a Release store of `ready`; readers check `ready` with an Acquire load before trusting any
//!   other field ([`storage_info::StorageInfoPage`] reads, [`storage_info::StorageInfoWriter`]
//!   publishes).
//!
//! ## Configuration (magic `"sDDF\x02"`)
//!
//! | struct | section | size |
//! |---|---|---|
//! | [`config::BlkDriverConfig`] | `.blk_driver_config` | 64 B |
//! | [`config::BlkVirtConfig`] | `.blk_virt_config` | 5728 B |
//! | [`config::BlkClientConfig`] | `.blk_client_config` | 80 B |
//!
//! Every connection is a [`config::BlkConnectionResource`] (56 B: storage-info, request-queue and
//! response-queue regions, `num_buffers`, channel id). Each config checks its magic, its client
//! count, that `num_buffers` is a power of two whose queues fit their regions, and that data regions
//! are whole transfer units ([`lions_os::Config::check`]).
#![cfg_attr(not(any(test, feature = "std")), no_std)]

mod builders;
pub mod client;
pub mod config;
pub mod driver;
pub mod partition;
pub mod queue;
pub mod storage_info;
pub mod virt;

pub use client::{
    BlkClient, BlockingBlk, ClientError, Completion, DEFAULT_PATIENCE, QueuedBlk, RequestId,
};
pub use config::{
    BlkClientConfig, BlkConnectionResource, BlkDriverConfig, BlkVirtClient, BlkVirtConfig,
    BlkVirtDriver,
};
pub use driver::{BlkDevice, BlkDriver, DeviceCompletion, DeviceOp, DeviceRequest};
pub use partition::{Extent, PartitionError, PartitionTable, Partitioner, Scheme};
pub use queue::{
    BLK_TRANSFER_SIZE, BlkReqQueue, BlkRequest, BlkRequester, BlkRespQueue, BlkResponse, BlkServer,
    QueueError, RawBlkQueue, RequestCode, ResponseStatus,
};
pub use storage_info::{BlkStorageInfo, StorageInfoPage, StorageInfoWriter};
pub use virt::BlkVirt;

/// Why a block component's event handler failed (the component then faults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A kernel operation (notify, IRQ acknowledgement) was refused.
    Os(lions_os::OsError),
    /// A trusted peer (the driver, for the virt; the virt, for the driver) wrote an impossible
    /// queue index. The virt reports a misbehaving client differently: it stops serving it.
    Peer(lions_queue::PeerError),
    /// A response found its queue full although room was reserved for it (the requester moved
    /// its head backwards within the protocol's bounds).
    Overflow,
}

impl From<lions_os::OsError> for Error {
    fn from(e: lions_os::OsError) -> Self {
        Self::Os(e)
    }
}

impl From<lions_queue::PeerError> for Error {
    fn from(e: lions_queue::PeerError) -> Self {
        Self::Peer(e)
    }
}

impl<T> From<lions_queue::PushError<T>> for Error {
    fn from(e: lions_queue::PushError<T>) -> Self {
        match e {
            lions_queue::PushError::Full(_) => Self::Overflow,
            lions_queue::PushError::Peer(e, _) => Self::Peer(e),
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Os(e) => e.fmt(f),
            Self::Peer(e) => write!(f, "blk queue: {e}"),
            Self::Overflow => write!(f, "blk response queue overflow"),
        }
    }
}

impl core::error::Error for Error {}
