// SPDX-License-Identifier: BSD-2-Clause
//! # lions-serial: the serial (character device) class
//!
//! The serial subsystem: wire format and configuration byte-compatible with sDDF 0.7 and the blobs
//! `sdfgen` 0.35.1 writes, and its components. A serial subsystem is a driver, a Tx virtualiser,
//! an optional Rx virtualiser and clients, joined by byte queues:
//!
//! ```text
//! client i --tx queue--> serial_virt_tx --tx queue--> driver --> device
//! client i <--rx queue-- serial_virt_rx <--rx queue-- driver <-- device
//! ```
//!
//! ## Components
//!
//! Each is a plain struct implementing [`lions_os::Handler`], so it runs under any backend; the
//! binaries in `lions-components` only read the config and build it.
//!
//! | module | component | what it does |
//! |---|---|---|
//! | [`driver`] | `serial_driver_*` | [`SerialDevice`], the hardware trait a driver author implements, and [`SerialDriver`], the generic loop that owns the queues and the signalling |
//! | [`virt_tx`] | `serial_virt_tx` | [`VirtTx`]: clients' batches (whole lines) to the driver, per-client colour, name legend, FIFO of clients waiting for room, faulty clients ignored |
//! | [`virt_rx`] | `serial_virt_rx` | [`VirtRx`]: input to the current client, switched by switch char + client number + terminate char ([`SwitchMachine`]); full client queues drop |
//! | [`client`] | (library) | [`SerialClient`]: `core::fmt::Write`, embedded-io `Read`/`Write`/`ReadReady`/`WriteReady`, [`serial_print!`]/[`serial_println!`]; `\n` as `\r\n`, output published per line |
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
//!   ([`write`](lions_queue::bytes::ByteProducer::write), [`publish`](lions_queue::bytes::ByteProducer::publish),
//!   reached through [`queue::SerialProducer`]).
//! - **Dequeue** (consumer): read bytes up to the tail, then hand the slots back with one head store
//!   ([`read`](lions_queue::bytes::ByteConsumer::read), [`release`](lions_queue::bytes::ByteConsumer::release),
//!   reached through [`queue::SerialConsumer`]).
//! - **Notification rule**: the producer **always** notifies the consumer after publishing
//!   anything. The consumer notifies the producer **only when asked**: a producer that finds the
//!   queue full stores 0 ("signal me") into `producer_signalled`, re-checks for space
//!   ([`queue::SerialProducer::park`]) and waits; a consumer that freed space and sees the request
//!   cancels it (stores 1) and notifies ([`queue::SerialConsumer::should_notify`]). The request
//!   store and the notifier's load are each separated from the index access by a SeqCst fence
//!   (the store-buffering argument in `lions_queue::signal`).
//! - **Who notifies whom**: client → Tx virt after publishing output; Tx virt → driver after every
//!   transfer, → client only when it waits for space; driver → Tx virt only when the virt waits for
//!   space, → Rx virt after enqueuing input; Rx virt → client after delivering input, → driver only
//!   when it waits for space (its Rx queue was full).
//! - **Peer misbehaviour**: an impossible index (length above capacity, an index moving backwards)
//!   is reported as a [`lions_queue::PeerError`] by the queue handles and as an
//!   [`Error::Peer`] (field and value) by the components; nothing panics, nothing is indexed out
//!   of bounds.
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

pub mod builders;
pub mod client;
pub mod config;
pub mod driver;
pub mod queue;
#[cfg(feature = "sim")]
pub mod testkit;
pub mod virt_rx;
pub mod virt_tx;

pub use client::{OnFull, SerialClient};
pub use config::{
    SerialClientConfig, SerialConnectionResource, SerialDriverConfig, SerialVirtRxConfig,
    SerialVirtTxClient, SerialVirtTxConfig,
};
pub use driver::{SerialDevice, SerialDriver};
pub use queue::{SerialConsumer, SerialProducer, SerialQueue, SerialQueueError};
pub use virt_rx::{SwitchMachine, VirtRx};
pub use virt_tx::VirtTx;

/// Why a serial component's event handler failed (the component then faults).
///
/// 8 bytes, so `Result<(), Error>` comes back in one register on every event (see
/// [`SerialPeerError`] for what that costs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A kernel operation (notify, IRQ acknowledgement) was refused.
    Os(lions_os::OsError),
    /// A peer wrote an impossible queue index. The virtualisers report only their trusted peer
    /// (the driver) this way; a misbehaving client is marked faulty instead.
    Peer(SerialPeerError),
}

/// A [`lions_queue::PeerError`] of a serial queue as an event handler reports it: which index and
/// the value the peer wrote (a serial index is a `u32`). The range the protocol allowed at that
/// point is not kept, so that [`Error`] fits one register (the handle that refused the index
/// returns the whole `PeerError` to a caller that wants it).
///
/// `repr(C)`: the field first, so the enum [`Error`] can keep its tag in `field`'s spare values
/// and the OS error beside it, in 8 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerialPeerError {
    /// The offending field.
    pub field: lions_queue::IndexField,
    /// The value read from shared memory (a wider one saturates).
    pub value: u32,
}

impl From<lions_queue::PeerError> for SerialPeerError {
    #[cold]
    fn from(e: lions_queue::PeerError) -> Self {
        Self {
            field: e.field,
            value: u32::try_from(e.value).unwrap_or(u32::MAX),
        }
    }
}

impl core::fmt::Display for SerialPeerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match self.field {
            lions_queue::IndexField::Head => "head",
            lions_queue::IndexField::Tail => "tail",
        };
        write!(
            f,
            "peer wrote {name} = {}, outside what the protocol allows",
            self.value
        )
    }
}

impl From<lions_os::OsError> for Error {
    fn from(e: lions_os::OsError) -> Self {
        Self::Os(e)
    }
}

impl From<lions_queue::PeerError> for Error {
    #[cold]
    fn from(e: lions_queue::PeerError) -> Self {
        Self::Peer(e.into())
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Os(e) => e.fmt(f),
            Self::Peer(e) => write!(f, "serial queue: {e}"),
        }
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod error_tests {
    use super::*;
    use lions_queue::{IndexField, PeerError};

    #[test]
    fn error_is_one_word_and_names_the_index() {
        assert_eq!(size_of::<Result<(), Error>>(), 8);
        let e = PeerError {
            field: IndexField::Tail,
            value: 9,
            low: 3,
            high: 7,
        };
        let s = Error::from(e);
        assert_eq!(
            s,
            Error::Peer(SerialPeerError {
                field: IndexField::Tail,
                value: 9
            })
        );
        assert_eq!(
            s.to_string(),
            "serial queue: peer wrote tail = 9, outside what the protocol allows"
        );
        let wide = PeerError {
            field: IndexField::Head,
            value: u64::MAX,
            low: 0,
            high: 0,
        };
        assert_eq!(
            SerialPeerError::from(wide),
            SerialPeerError {
                field: IndexField::Head,
                value: u32::MAX
            }
        );
    }
}
