// SPDX-License-Identifier: BSD-2-Clause
//! # lions-fs: the LionsOS file-system service
//!
//! The LionsOS FS protocol (client ↔ FS server such as FAT or NFS), byte-compatible with LionsOS's
//! C components and the config blobs `sdfgen` 0.35.1 writes, and the parts built on it:
//!
//! | module | what | |
//! |---|---|---|
//! | [`protocol`] | wire format: command and completion messages, params, status codes, open flags, `fs_stat_t`, share-buffer bounds | no_std |
//! | [`queue`], [`config`] | the 511-message queues and a connection's client and server ends (protocol re-exported); config structs | no_std |
//! | [`share`] | [`ShareRegion`]: bounds-checked copies in and out of the share region, path checks | no_std |
//! | [`server`] | [`FsServer`] (a [`lions_os::Handler`]): command dispatch, [`FdTable`] with generations and busy counts; [`FsBackend`], the trait a file system implements | no_std |
//! | [`block`] | [`BlockDevice`], what a backend sits on (the lions-blk client provides one) | no_std |
//! | [`blk`] | [`fat_server`](blk::fat_server): the FAT server on a lions-blk client (the `fs_fat` component), [`BlockDevice`] for lions-blk's `QueuedBlk` | no_std + alloc, feature `fat` |
//! | [`cache`] | [`BlockCache`]: the backend's one block cache (write-back LRU, read runs, prefetch hints, write-back runs), sized by [`CacheConfig`] | no_std + alloc, feature `fat` |
//! | [`fat`] | [`FatFs`], the FAT backend; [`RamDisk`]; `format` | no_std + alloc, feature `fat` (default) |
//! | [`deferred`] | [`DeferredServer`] over a [`DeferredBackend`]: commands validated as [`FsServer`] does, completed after `start` returns, when the backend finishes them (asynchronous backends: NFS) | no_std |
//! | [`client`] | [`FsClient`]: asynchronous requests completed in any order, blocking calls, [`File`] with embedded-io `Read`/`Write`/`Seek` | no_std |
//!
//! A FAT server PD is `FsServer::from_config(&config, FatFs::new(blk_device))` handed to the
//! entry macro. The FAT backend runs on seL4 as on the host: the crates.io `fatfs` 0.3.6 needs
//! `std` (its no_std path depends on the unbuildable `core_io`), so the backend uses the
//! rust-fatfs 0.4 API as republished by `lamfat` (`=0.4.3`, no_std + alloc), and `fatfs` 0.3.6,
//! `mkfs.fat`, `fsck.fat` and mtools check its images in the tests (see [`fat`]). A seL4 PD needs
//! a global allocator for it.
//!
//! ## Wire protocol
//!
//! One connection is a **command queue** (client → server), a **completion queue** (server →
//! client), a **share region** for data, and one channel notified in both directions.
//!
//! **Queues.** Each queue ([`FsQueue`]) fills exactly one 32 KiB region (`fs_queue_t`): `head: u64`
//! at 0 (consumer-owned), `tail: u64` at 8 (producer-owned), 48 bytes of padding, then
//! [`FS_QUEUE_CAPACITY`] (511) 64-byte messages from offset 64. Indices are free-running `u64`;
//! slot = index mod 511; all 511 slots are usable; the producer writes messages at `tail + i` and
//! publishes with a Release store of `tail`, the consumer reads `tail` with Acquire and publishes
//! consumption with a Release store of `head`. Batching is explicit (stage many, publish once).
//! Because 511 is not a power of two our producer never lets live messages straddle the `u64` wrap
//! (unreachable in practice, but checked).
//!
//! **Notification.** No suppression flag: after publishing, a peer always notifies the other.
//!
//! **Commands** ([`FsCmd`], 64 B): `id: u64` at 0 (chosen by the client, echoed back), `type: u64`
//! at 8 ([`CommandType`], 0..=19), a 48-byte params union at 16 ([`Command`] is the decoded form;
//! one `#[repr(C)]` params struct per command). **Completions** ([`FsCmpl`], 64 B): `id` at 0,
//! `status: u64` at 8 ([`Status`], 0..=18), a 48-byte data union at 16 whose first word is the
//! command's result ([`CompletionData`]). Completions may arrive in any order.
//!
//! **Buffers** ([`FsBuffer`]) are `{offset, size}` into the share region, never pointers. A server
//! accepts one only if `offset < share_size && size <= share_size - offset && size != 0`
//! ([`check_buffer`]). Paths are passed without a NUL terminator, at most [`FS_MAX_PATH_LENGTH`]
//! bytes; names at most [`FS_MAX_NAME_LENGTH`]. Reads and writes are positional (explicit offset).
//! `STAT` writes an [`FsStat`] (17 × `u64`) into its buffer.
//!
//! ## Configuration
//!
//! LionsOS magics are 8 bytes: `"LionsOS\x01"` for the FS connection configs
//! ([`FsServerConfig`] in `.fs_server_config`, [`FsClientConfig`] in `.fs_client_config`, 64 B
//! each, holding one [`FsConnectionResource`]) and `"LionsOS\x02"` for [`NfsConfig`] in
//! `.nfs_config` (8200 B: NUL-terminated server address and export path).
#![cfg_attr(not(any(test, feature = "std")), no_std)]

#[cfg(feature = "fat")]
extern crate alloc;

#[cfg(feature = "fat")]
pub mod blk;
pub mod block;
mod builders;
#[cfg(feature = "fat")]
pub mod cache;
pub mod client;
pub mod config;
mod connection;
pub mod deferred;
#[cfg(feature = "fat")]
pub mod fat;
pub mod fd;
pub mod protocol;
pub mod queue;
pub mod server;
pub mod share;

pub use block::{BlockDevice, BlockError};
#[cfg(feature = "fat")]
pub use cache::{BlockCache, CacheConfig};
pub use client::{File, FsClient, FsError, Reply, Request, RequestId};
pub use config::{FsClientConfig, FsConnectionResource, FsServerConfig, NfsConfig, StrError};
pub use deferred::{DeferredBackend, DeferredServer};
#[cfg(feature = "fat")]
pub use fat::{FatFs, RamDisk};
pub use queue::{
    AccessMode, BufferError, Command, CommandType, CompletionData, DecodeError, FS_MAX_NAME_LENGTH,
    FS_MAX_PATH_LENGTH, FS_QUEUE_BYTES, FS_QUEUE_CAPACITY, FsBuffer, FsClientQueues, FsCmd, FsCmpl,
    FsMsg, FsQueue, FsServerQueues, FsStat, OpenFlags, OpenOptions, QueueError, Status,
    check_buffer, check_path,
};
pub use server::{FdKind, FdTable, FsBackend, FsServer, ServerError};
pub use share::ShareRegion;
