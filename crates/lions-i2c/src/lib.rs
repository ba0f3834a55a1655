// SPDX-License-Identifier: BSD-2-Clause
//! # lions-i2c: the I²C device class
//!
//! Wire format and configuration of the sDDF 0.7 I²C subsystem (client → virtualiser → driver),
//! byte-compatible with the C components and with the config blobs `sdfgen` 0.35.1 writes, and
//! the components on it: the virtualiser ([`virt`], bus claiming and validation), the
//! device-class trait with the generic driver loop ([`driver`]), and the client library
//! ([`client`], embedded-hal 1.0 `I2c`, blocking and async). Each module's docs state its part of
//! the protocol.
//!
//! ## Wire protocol
//!
//! **Commands.** A request queue carries 16-byte [`I2cCmd`]s (`i2c_cmd_t`): an 8-byte payload
//! union at 0, `data_len: u8` at 8, `flag_mask: u8` at 9, padding to 16. `flag_mask` holds
//! [`CmdFlags`] (`HEAD` 1, `READ` 2, `WRRD` 4, `STOP` 8, `RSTART` 16):
//!
//! - with `HEAD` set the payload is a **header** `{batch_len: u16 @0, address: u8 @2}` (7-bit bus
//!   address);
//! - otherwise it is a **body** command whose payload is a pointer to `data_len` bytes of data: a
//!   client virtual address, rewritten by the virtualiser into the driver's mapping of the same
//!   client data region.
//!
//! A **transaction** is one header followed by exactly `batch_len` body commands, executed
//! atomically on the bus. [`I2cCmd::decode`] turns the raw union into [`Command`] and rejects
//! unknown flag bits.
//!
//! **Responses.** A response queue carries 16-byte [`I2cResponse`]s (`i2c_response_t`):
//! `err_cmd: u64` at 0 (index of the failing command), `bus_address: u8` at 8, padding,
//! `error: i32` at 12 ([`I2cError`]). No byte counts are returned.
//!
//! **Queues.** One 4 KiB region per queue. A request queue ([`I2cRequestQueue`]) is
//! `staged_active_tail: u32` at 0, `tail: u32` at 4, `head: u32` at 8, commands from offset 16; a
//! response queue ([`I2cResponseQueue`]) is `tail: u32` at 0, `head: u32` at 4, responses from 8.
//! Both hold [`I2C_QUEUE_CAPACITY`] = (4096 − 32) / 16 = 254 slots, a compile-time constant (the
//! config's `num_buffers` is ignored). Indices are free-running `u32`; slot = index mod 254; full
//! when `tail − head + 1 == 254`, i.e. 253 usable. Because 254 is not a power of two, our producer
//! never lets live entries straddle the `u32` wrap (see `lions_queue::Capacity::fixed`).
//!
//! **Commit.** A producer stages commands (invisible to the consumer) and then commits the whole
//! transaction with one Release store of `tail`, or aborts it. For C compatibility
//! [`RequestProducer`] mirrors its staged tail into `staged_active_tail` (a field only a C producer
//! reads) on every stage, commit and abort; nobody trusts its value, and we never read it.
//!
//! **Notification.** No signal flags: a producer **always** notifies its peer after a commit that
//! published something (client → virt → driver for requests, back for responses).
//!
//! **Bus claiming.** A client claims a bus address by a protected procedure call to the virt:
//! label [`BusRequest::Claim`] (1) or [`BusRequest::Release`] (2), MR0 = address; the reply label
//! is [`BusReply::Success`] (0) or [`BusReply::Failure`] (1).
//!
//! ## Configuration
//!
//! Magic `"sDDF\x04"`. Sections `.i2c_driver_config` ([`I2cDriverConfig`], 48 B),
//! `.i2c_virt_config` ([`I2cVirtConfig`], 4152 B) and `.i2c_client_config` ([`I2cClientConfig`],
//! 64 B). Client data regions are mapped into the driver too (there is no DMA), and the virt's
//! per-client entry gives both base addresses so it can translate pointers
//! ([`I2cVirtClient::translate`] checks the whole `[ptr, ptr + len)` range).
#![cfg_attr(not(any(test, feature = "std")), no_std)]

mod builders;
pub mod client;
pub mod config;
pub mod driver;
pub mod queue;
pub mod virt;

pub use client::{ClientError, I2cClient};
pub use config::{
    I2cClientConfig, I2cConnectionResource, I2cDriverConfig, I2cVirtClient, I2cVirtConfig,
};
pub use driver::{BusError, DataAccess, I2cDevice, I2cDriver, MappedData, Progress, Step};
pub use queue::{
    BusReply, BusRequest, CmdError, CmdFlags, Command, I2C_BUS_ADDRESS_MAX, I2C_QUEUE_CAPACITY,
    I2C_QUEUE_USABLE, I2cClientQueues, I2cCmd, I2cError, I2cRequestQueue, I2cResponse,
    I2cResponseQueue, I2cServerQueues, QueueError, RequestProducer, TransactionError, UnknownValue,
};
pub use virt::I2cVirt;

use lions_os::{Channel, OsError};
use lions_queue::PeerError;

/// What stops an I²C component (the PD then faults): a refused kernel operation, a queue set-up
/// failure, or a trusted peer (driver or virtualiser) that corrupted a shared queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A kernel operation was refused.
    Os(OsError),
    /// A queue could not be set up.
    Queue(QueueError),
    /// The trusted peer wrote an impossible index.
    Peer(PeerError),
    /// The trusted peer's queue refused a command it had room for.
    DriverQueue,
    /// A config names a channel id above 61.
    BadChannel(u8),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Os(e) => e.fmt(f),
            Self::Queue(e) => e.fmt(f),
            Self::Peer(e) => e.fmt(f),
            Self::DriverQueue => write!(f, "I2C peer queue refused a command"),
            Self::BadChannel(id) => write!(f, "I2C config names channel {id}, above 61"),
        }
    }
}

impl core::error::Error for Error {}

impl From<OsError> for Error {
    fn from(e: OsError) -> Self {
        Self::Os(e)
    }
}

impl From<QueueError> for Error {
    fn from(e: QueueError) -> Self {
        Self::Queue(e)
    }
}

impl From<PeerError> for Error {
    fn from(e: PeerError) -> Self {
        Self::Peer(e)
    }
}

/// The channel a connection's `id` names.
pub fn channel_of(conn: &I2cConnectionResource) -> Result<Channel, Error> {
    Channel::try_new(conn.id).ok_or(Error::BadChannel(conn.id))
}
