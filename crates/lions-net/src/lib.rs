// SPDX-License-Identifier: BSD-2-Clause
//! # lions-net: the network device class
//!
//! The sDDF 0.7 network subsystem: wire format and configuration byte-compatible with the C
//! components and with the config blobs `sdfgen` 0.35.1 writes, and its trusted components. A
//! Rust component built on this crate can replace its C twin in a system.
//!
//! ```text
//! NIC --driver--> net_virt_rx --+--> net_copy 0 --> client 0
//!                               +--> net_copy 1 --> client 1      (by destination MAC)
//! NIC <--driver-- net_virt_tx <-+--- client 0
//!                               +--- client 1                     (validated, shaped)
//! ```
//!
//! ## Components
//!
//! Each is a plain struct implementing [`lions_os::Handler`], so it runs under any backend; the
//! binaries in `lions-components` only read the config and build it.
//!
//! | module | component | what it does |
//! |---|---|---|
//! | [`driver`] | `net_driver_*` | [`EthDevice`], the hardware trait a NIC driver implements, and [`EthDriver`], the generic loop that owns the queues and the signalling (`rx_provide`, `rx_return`, `tx_provide`, `tx_return`) |
//! | [`virt_rx`] | `net_virt_rx` | [`VirtRx`]: demultiplexing by destination MAC, broadcast to every client with a per-buffer holder set, unmatched frames straight back to the driver, cache clean+invalidate before the header is read |
//! | [`virt_tx`] | `net_virt_tx` | [`VirtTx`]: validation of every client descriptor (bad ones back to their client), translation to device addresses, cache clean, a [`TxPolicy`] choosing the order, an in-flight bit per client buffer (the driver gives back only what it holds) |
//! | [`policy`] | (in `net_virt_tx`) | [`InOrder`], [`RoundRobin`], [`StrictPriority`], and per-client bandwidth limits ([`RateLimit`]); the system's choice in [`NetTxPolicyConfig`] |
//! | [`copy`] | `net_copy` | [`Copier`]: frames from the shared Rx DMA region into the client's own region; drops when the client has no free buffer |
//! | [`arp`] | `net_arp` | [`ArpResponder`]: answers ARP requests for a table of addresses ([`NetArpConfig`]; the paper's first broadcast scheme) |
//! | [`broadcast`] | (in `net_virt_rx`) | [`NetRxBroadcastConfig`]: which clients receive broadcasts (all, as sDDF, unless a system chooses) |
//! | [`cache`] | | [`CacheOps`]: [`Coherent`] (host, QEMU) or `Aarch64Cache` (`DC CVAC`/`DC CIVAC` + `DSB`) |
//! | [`region`] | | [`DataRegion`]/[`Span`]: bounds-checked access to buffers in shared memory |
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
//! **Who notifies whom.** Driver → Rx virt, Rx virt → copier, copier → client on *active*, and
//! client → copier, copier → Rx virt, Rx virt → driver on *free*; client → Tx virt → driver on
//! *active*, and back on *free*; each only when the consumer asked. Notifications toward a
//! higher-priority PD (virt → driver, copier → Rx virt) are deferred to the end of the event, as
//! sDDF does; the others are immediate. Zeroed memory reads as "signal requested", so each
//! consumer that never waits withdraws the request at start ([`NetSource::prime_free`]).
//!
//! **Start-up.** The Rx virt puts every Rx DMA buffer (device addresses) on the driver's free
//! queue. On client connections sDDF's convention holds: the *source* primes the free queue it
//! consumes with its own buffers (the copier toward its client, each client on its Tx queue,
//! [`NetSource::prime_free`]), and the sink adopts that tail when the first buffer arrives
//! ([`NetSink::adopt_free_once`]), so either side may start first.
//!
//! **Trust.** A virtualiser or copier never panics on what a client wrote into shared memory: a
//! bad descriptor is returned to its owner, or dropped and counted where returning is impossible;
//! a client that writes an impossible index is dropped from service
//! ([`queue::Clients`]); the other clients are unaffected. Only a trusted peer (the driver, a
//! virtualiser) can make a component fail ([`Error`]).
//!
//! ## Configuration
//!
//! Every config starts with the magic `"sDDF\x05"` (`lib_sddf_lwip`: `"sDDF\x08"`) and lives in its
//! own section: `.net_driver_config` ([`NetDriverConfig`], 88 B), `.net_virt_rx_config`
//! ([`NetVirtRxConfig`], 27 744 B), `.net_virt_tx_config` ([`NetVirtTxConfig`], 134 200 B),
//! `.net_copy_config` ([`NetCopyConfig`], 1128 B), `.net_vswitch_config` ([`NetVswitchConfig`],
//! 7200 B), `.net_client_config` ([`NetClientConfig`], 128 B) and `.lib_sddf_lwip_config`
//! ([`LibSddfLwipConfig`], 32 B). Our own, beside them: `.net_virt_tx_policy`
//! ([`NetTxPolicyConfig`], 1112 B, magic `"lionsTP\x01"`), the Tx policy. A connection ([`NetConnectionResource`], 40 B) names the free and
//! active queue regions as mapped in this component, the capacity and the channel id.
#![cfg_attr(not(any(test, feature = "std")), no_std)]

pub mod arp;
pub mod broadcast;
mod builders;
pub mod cache;
pub mod client;
pub mod config;
pub mod copy;
pub mod driver;
pub mod policy;
pub mod queue;
pub mod region;
#[cfg(test)]
mod testkit;
pub mod virt_rx;
pub mod virt_tx;

/// The TCP/IP stack the client library is built on, re-exported so a client names its types
/// (`lions_net::smoltcp::wire::Ipv4Address`, sockets, ...) at exactly the version this crate uses.
pub use smoltcp;

pub use arp::{ArpEntry, ArpResponder, ArpStats, NetArpConfig};
pub use broadcast::NetRxBroadcastConfig;
#[cfg(target_arch = "aarch64")]
pub use cache::Aarch64Cache;
pub use cache::{CacheOps, Coherent, PlatformCache};
pub use config::{
    LibSddfLwipConfig, MacAddr, NetClientConfig, NetConnectionResource, NetCopyConfig,
    NetDriverConfig, NetVirtRxClient, NetVirtRxConfig, NetVirtTxClient, NetVirtTxConfig,
    NetVirtTxRegion, NetVswitchConfig, NetVswitchPort,
};
pub use copy::{Copier, CopyStats};
pub use driver::{EthDevice, EthDriver};
pub use policy::{
    Chosen, InOrder, Limit, NetTxPolicyConfig, Order, RateLimit, RoundRobin, StrictPriority,
    TxPolicy,
};
pub use queue::{
    BufferError, NET_BUFFER_SIZE, NetBuffDesc, NetQueue, NetSink, NetSource, OID_MAX, QueueError,
    RawQueue,
};
pub use region::{DataRegion, Span};
pub use virt_rx::{RxStats, VirtRx};
pub use virt_tx::{TxStats, VirtTx};

/// Why a net component could not be built from its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupError {
    /// A queue pair could not be set up.
    Queue(QueueError),
    /// A channel id above Microkit's 61.
    Channel(u8),
    /// A data or metadata region is not mapped in this component (vaddr 0).
    Unmapped,
    /// A data or metadata region is smaller than the buffers its queues can hold.
    RegionTooSmall {
        /// Bytes needed.
        needed: u64,
        /// Bytes the config gives.
        have: u64,
    },
    /// The Tx virtualiser's clients have more buffers than it can track
    /// ([`virt_tx::MAX_TX_BUFFERS`]).
    TooManyBuffers(u64),
}

impl From<QueueError> for SetupError {
    fn from(e: QueueError) -> Self {
        Self::Queue(e)
    }
}

impl core::fmt::Display for SetupError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Queue(e) => e.fmt(f),
            Self::Channel(id) => write!(f, "channel id {id} above 61"),
            Self::Unmapped => write!(f, "data region is not mapped in this component"),
            Self::RegionTooSmall { needed, have } => {
                write!(f, "region has {have} bytes, its buffers need {needed}")
            }
            Self::TooManyBuffers(n) => write!(f, "{n} Tx buffers, more than the virt tracks"),
        }
    }
}

impl core::error::Error for SetupError {}

/// Why a net component's event handler failed (the PD then faults). Only trusted peers (the
/// driver, the virtualisers) can cause one; a misbehaving client is marked faulty instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A kernel operation (notify, IRQ acknowledgement) was refused.
    Os(lions_os::OsError),
    /// A trusted peer wrote an impossible queue index.
    Peer(lions_queue::PeerError),
    /// A trusted peer's queue had no room for a buffer it must take back: it holds more buffers
    /// than exist (or a queue is smaller than the buffers it carries).
    Full,
    /// A queue handle could not be re-made (a trusted peer corrupted the queue at start-up).
    Queue(QueueError),
}

impl From<QueueError> for Error {
    fn from(e: QueueError) -> Self {
        Self::Queue(e)
    }
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
            lions_queue::PushError::Full(_) => Self::Full,
            lions_queue::PushError::Peer(e, _) => Self::Peer(e),
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Os(e) => e.fmt(f),
            Self::Peer(e) => write!(f, "net queue: {e}"),
            Self::Full => write!(f, "net queue: a peer returned more buffers than exist"),
            Self::Queue(e) => write!(f, "net queue: {e}"),
        }
    }
}

impl core::error::Error for Error {}
