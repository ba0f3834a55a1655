// SPDX-License-Identifier: BSD-2-Clause
//! I²C wire format: commands, responses, the request/response queue layouts, transaction commit,
//! and the bus-claim PPC labels.

use crate::config::I2cConnectionResource;
use bitflags::bitflags;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;
use lions_queue::atomic::AtomicU32;
use lions_queue::clients::{pair, region};
use lions_queue::{
    Capacity, Consumer, PeerError, Producer, PushError, QueueHeader, QueueMemory, RegionError,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Slots in every I²C queue: `(4096 - 32) / 16`, fixed by the C layout.
pub const I2C_QUEUE_CAPACITY: usize = 254;

/// Entries that may be in a queue at once (one slot stays empty: full when `tail - head + 1 == 254`).
pub const I2C_QUEUE_USABLE: u64 = 253;

/// Largest 7-bit bus address.
pub const I2C_BUS_ADDRESS_MAX: u8 = 0x7f;

/// The ring shape of every I²C queue.
pub fn capacity() -> Result<Capacity, RegionError> {
    Capacity::fixed::<u32>(I2C_QUEUE_CAPACITY as u64, I2C_QUEUE_USABLE)
        .map_err(RegionError::Capacity)
}

bitflags! {
    /// `flag_mask` of a command.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct CmdFlags: u8 {
        /// This command is a transaction header.
        const HEAD = 1;
        /// Read into the buffer (otherwise write from it).
        const READ = 2;
        /// Write the register address in `data[0]`, then repeated-start read (implies a read).
        const WRRD = 4;
        /// Send a stop condition after this command.
        const STOP = 8;
        /// Repeated start before this command (keeps the previous direction).
        const RSTART = 16;
    }
}

/// A raw command: `i2c_cmd_t` (16 B). Any bit pattern may arrive from a peer; use
/// [`decode`](Self::decode) before trusting it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct I2cCmd {
    /// The payload union (offset 0): header `{batch_len: u16 @0, address: u8 @2}` or a data
    /// pointer, in native byte order.
    pub payload: u64,
    /// Bytes of data for a body command (offset 8).
    pub data_len: u8,
    /// [`CmdFlags`] bits (offset 9).
    pub flag_mask: u8,
    /// Explicit C padding (offset 10).
    pub _pad: [u8; 6],
}

/// A decoded command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Start of a transaction of `batch_len` body commands on the device at `address`.
    Header {
        /// Number of body commands that follow.
        batch_len: u16,
        /// 7-bit bus address.
        address: u8,
    },
    /// One transfer of `len` bytes at `ptr` (client or driver virtual address).
    Body {
        /// Data pointer.
        ptr: u64,
        /// Data length.
        len: u8,
        /// Flags; never contains `HEAD`.
        flags: CmdFlags,
    },
}

/// Why a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdError {
    /// `flag_mask` has bits no flag defines.
    UnknownFlags(u8),
    /// A header carries flags besides `HEAD`.
    HeaderFlags(CmdFlags),
    /// A header's address does not fit 7 bits.
    AddressOutOfRange(u8),
    /// A body command may not carry `HEAD`.
    BodyHasHead,
}

impl core::fmt::Display for CmdError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::UnknownFlags(b) => write!(f, "unknown I2C command flags {b:#04x}"),
            Self::HeaderFlags(fl) => write!(f, "I2C header with extra flags {fl:?}"),
            Self::AddressOutOfRange(a) => write!(f, "I2C address {a:#x} exceeds 7 bits"),
            Self::BodyHasHead => write!(f, "I2C body command with HEAD flag"),
        }
    }
}

impl core::error::Error for CmdError {}

impl I2cCmd {
    /// A transaction header.
    pub fn header(batch_len: u16, address: u8) -> Result<Self, CmdError> {
        if address > I2C_BUS_ADDRESS_MAX {
            return Err(CmdError::AddressOutOfRange(address));
        }
        let mut p = [0u8; 8];
        p[..2].copy_from_slice(&batch_len.to_ne_bytes());
        p[2] = address;
        Ok(Self {
            payload: u64::from_ne_bytes(p),
            data_len: 0,
            flag_mask: CmdFlags::HEAD.bits(),
            _pad: [0; 6],
        })
    }

    /// A body command.
    pub fn body(ptr: u64, len: u8, flags: CmdFlags) -> Result<Self, CmdError> {
        if flags.contains(CmdFlags::HEAD) {
            return Err(CmdError::BodyHasHead);
        }
        Ok(Self {
            payload: ptr,
            data_len: len,
            flag_mask: flags.bits(),
            _pad: [0; 6],
        })
    }

    /// Decode the tagged union, rejecting unknown flag bits, headers with other flags and
    /// addresses above 7 bits.
    pub fn decode(&self) -> Result<Command, CmdError> {
        let flags =
            CmdFlags::from_bits(self.flag_mask).ok_or(CmdError::UnknownFlags(self.flag_mask))?;
        if !flags.contains(CmdFlags::HEAD) {
            return Ok(Command::Body {
                ptr: self.payload,
                len: self.data_len,
                flags,
            });
        }
        let extra = flags - CmdFlags::HEAD;
        if !extra.is_empty() {
            return Err(CmdError::HeaderFlags(extra));
        }
        let p = self.payload.to_ne_bytes();
        let address = p[2];
        if address > I2C_BUS_ADDRESS_MAX {
            return Err(CmdError::AddressOutOfRange(address));
        }
        Ok(Command::Header {
            batch_len: u16::from_ne_bytes([p[0], p[1]]),
            address,
        })
    }
}

/// A raw value outside an enum's domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownValue(pub i64);

impl core::fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unknown I2C protocol value {}", self.0)
    }
}

impl core::error::Error for UnknownValue {}

/// A C enum of the protocol: its values as discriminants of `repr`, and a checked
/// `TryFrom<repr>` that refuses any other value with [`UnknownValue`].
macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident: $repr:ident { $($(#[$vm:meta])* $v:ident = $n:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr($repr)]
        pub enum $name {
            $($(#[$vm])* $v = $n,)*
        }

        impl TryFrom<$repr> for $name {
            type Error = UnknownValue;

            #[allow(clippy::unnecessary_fallible_conversions)]
            fn try_from(v: $repr) -> Result<Self, UnknownValue> {
                match v {
                    $($n => Ok(Self::$v),)*
                    _ => Err(UnknownValue(i64::try_from(v).unwrap_or(i64::MAX))),
                }
            }
        }
    };
}

wire_enum! {
    /// Result of a transaction: `i2c_err_t`.
    I2cError: i32 {
        /// The queue could not take the transaction.
        Queue = -1,
        /// Success.
        Ok = 0,
        /// The body commands do not form a valid transaction.
        MalformedTransaction = 1,
        /// The header is invalid.
        MalformedHeader = 2,
        /// The client does not own the bus address.
        UnpermittedAddr = 3,
        /// The bus timed out.
        Timeout = 4,
        /// The device did not acknowledge.
        Nack = 5,
        /// A read returned no data.
        NoRead = 6,
        /// Illegal command sequence.
        BadSeq = 7,
        /// Any other failure.
        Other = 8,
    }
}

/// A raw response: `i2c_response_t` (16 B).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct I2cResponse {
    /// Index of the failing command in the transaction (offset 0).
    pub err_cmd: u64,
    /// Bus address of the transaction (offset 8); responses are routed by it.
    pub bus_address: u8,
    /// Explicit C padding (offset 9).
    pub _pad: [u8; 3],
    /// Raw [`I2cError`] (offset 12).
    pub error: i32,
}

impl I2cResponse {
    /// A response.
    pub fn new(err_cmd: u64, bus_address: u8, error: I2cError) -> Self {
        Self {
            err_cmd,
            bus_address,
            _pad: [0; 3],
            error: error as i32,
        }
    }

    /// The error code, checked.
    pub fn error(&self) -> Result<I2cError, UnknownValue> {
        I2cError::try_from(self.error)
    }
}

/// Request queue header (12 B); the commands follow at offset 16.
#[repr(C)]
pub struct I2cRequestQueue {
    /// Producer's staged tail, mirrored for C producers (offset 0).
    staged_active_tail: AtomicU32,
    /// Producer-owned index (offset 4).
    tail: AtomicU32,
    /// Consumer-owned index (offset 8).
    head: AtomicU32,
}

// SAFETY: `head`/`tail` are fields of `self`; the command array starts at 16 in the C layout (12
// header bytes rounded up to the commands' 8-byte alignment), a multiple of `align_of::<I2cCmd>()`.
unsafe impl QueueHeader for I2cRequestQueue {
    type Index = u32;
    type Entry = I2cCmd;
    const ENTRIES_OFFSET: usize = 16;

    fn head(&self) -> &AtomicU32 {
        &self.head
    }

    fn tail(&self) -> &AtomicU32 {
        &self.tail
    }
}

/// Response queue header (8 B); the responses follow at offset 8.
#[repr(C)]
pub struct I2cResponseQueue {
    /// Producer-owned index (offset 0).
    tail: AtomicU32,
    /// Consumer-owned index (offset 4).
    head: AtomicU32,
}

// SAFETY: fields of `self`; responses start at 8 in the C layout, a multiple of 8.
unsafe impl QueueHeader for I2cResponseQueue {
    type Index = u32;
    type Entry = I2cResponse;
    const ENTRIES_OFFSET: usize = 8;

    fn head(&self) -> &AtomicU32 {
        &self.head
    }

    fn tail(&self) -> &AtomicU32 {
        &self.tail
    }
}

impl I2cRequestQueue {
    /// Bytes the queue occupies (4080; the region is 4096).
    pub const BYTES: usize = 16 + I2C_QUEUE_CAPACITY * size_of::<I2cCmd>();
}

impl I2cResponseQueue {
    /// Bytes the queue occupies (4072; the region is 4096).
    pub const BYTES: usize = 8 + I2C_QUEUE_CAPACITY * size_of::<I2cResponse>();
}

/// Why a transaction could not be staged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionError {
    /// Not enough free slots for header plus body; nothing was staged.
    Full {
        /// Slots needed.
        needed: u64,
        /// Slots free.
        free: u64,
    },
    /// The consumer wrote an impossible head; nothing was staged.
    Peer(PeerError),
    /// A command is invalid; nothing was staged.
    Cmd(CmdError),
}

impl core::fmt::Display for TransactionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Full { needed, free } => {
                write!(f, "transaction needs {needed} slots, {free} free")
            }
            Self::Peer(e) => e.fmt(f),
            Self::Cmd(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for TransactionError {}

/// The producing end of a request queue, with transaction commit.
pub struct RequestProducer<'a> {
    ring: Producer<'a, u32, I2cCmd>,
    header: &'a I2cRequestQueue,
}

impl<'a> RequestProducer<'a> {
    /// Mirror `published tail + staged` into `staged_active_tail`, as a C producer keeps it. We are
    /// the only writer of both; no peer may rely on the mirror, so Relaxed suffices.
    fn mirror(&self) {
        let tail = u64::from(self.header.tail.load(Ordering::Relaxed));
        // Wraps in the u32 index width, by design.
        #[allow(clippy::cast_possible_truncation)]
        let staged = tail.wrapping_add(self.ring.staged()) as u32;
        self.header
            .staged_active_tail
            .store(staged, Ordering::Relaxed);
    }

    /// Stage one command (invisible until [`commit`](Self::commit)).
    pub fn stage(&mut self, cmd: I2cCmd) -> Result<(), PushError<I2cCmd>> {
        self.ring.push(cmd)?;
        self.mirror();
        Ok(())
    }

    /// Stage a whole transaction: a header for `address` and `body`, or nothing at all.
    pub fn stage_transaction(
        &mut self,
        address: u8,
        body: &[I2cCmd],
    ) -> Result<(), TransactionError> {
        let batch_len = u16::try_from(body.len()).map_err(|_| TransactionError::Full {
            needed: u64::MAX,
            free: 0,
        })?;
        let header = I2cCmd::header(batch_len, address).map_err(TransactionError::Cmd)?;
        for c in body {
            match c.decode().map_err(TransactionError::Cmd)? {
                Command::Body { .. } => {}
                Command::Header { .. } => return Err(TransactionError::Cmd(CmdError::BodyHasHead)),
            }
        }
        let needed = 1 + body.len() as u64;
        let free = self.ring.free().map_err(TransactionError::Peer)?;
        if free < needed {
            return Err(TransactionError::Full { needed, free });
        }
        // Free slots only grow until we push, so every push below succeeds.
        for &c in core::iter::once(&header).chain(body) {
            if let Err(e) = self.ring.push(c) {
                self.ring.abort();
                self.mirror();
                return Err(match e {
                    PushError::Peer(p, _) => TransactionError::Peer(p),
                    PushError::Full(_) => TransactionError::Full { needed, free: 0 },
                });
            }
        }
        self.mirror();
        Ok(())
    }

    /// Commands staged and not yet committed.
    pub fn staged(&self) -> u64 {
        self.ring.staged()
    }

    /// Free slots now (re-reads the head).
    pub fn free(&mut self) -> Result<u64, PeerError> {
        self.ring.free()
    }

    /// Publish every staged command with one Release store of `tail`. Returns how many; if
    /// nonzero, notify the consumer (I²C always notifies).
    pub fn commit(&mut self) -> u64 {
        let n = self.ring.publish();
        self.mirror();
        n
    }

    /// Drop every staged command.
    pub fn abort(&mut self) {
        self.ring.abort();
        self.mirror();
    }
}

/// Why queues could not be set up: the queue error every class crate shares.
pub use lions_queue::clients::QueueError;

/// Both queues of a connection, checked, not yet claimed by a role.
type Memories<'a> = (
    QueueMemory<'a, I2cRequestQueue>,
    QueueMemory<'a, I2cResponseQueue>,
);

/// A connection's (request, response) queue regions in this address space.
#[allow(clippy::type_complexity)]
fn regions(
    conn: &I2cConnectionResource,
) -> Result<((NonNull<u8>, usize), (NonNull<u8>, usize)), QueueError> {
    Ok((
        region(conn.req_queue.vaddr, conn.req_queue.size)?,
        region(conn.resp_queue.vaddr, conn.resp_queue.size)?,
    ))
}

/// The requesting side of a connection (a client toward the virt, the virt toward the driver).
pub struct I2cClientQueues<'a> {
    /// Requests we produce.
    pub requests: RequestProducer<'a>,
    /// Responses we consume.
    pub responses: Consumer<'a, u32, I2cResponse>,
}

/// The serving side of a connection (the virt toward a client, the driver toward the virt).
pub struct I2cServerQueues<'a> {
    /// Requests we consume.
    pub requests: Consumer<'a, u32, I2cCmd>,
    /// Responses we produce; publish, then notify if anything was published.
    pub responses: Producer<'a, u32, I2cResponse>,
}

impl<'a> I2cClientQueues<'a> {
    /// The requesting side over a request and a response queue region. Resets
    /// `staged_active_tail` to the published tail (nothing is staged yet).
    ///
    /// # Safety
    /// Both regions are mapped read-write for `'a`, shared with exactly one peer, and this process
    /// makes no other requesting side over them.
    pub unsafe fn new(
        req: NonNull<u8>,
        req_len: usize,
        resp: NonNull<u8>,
        resp_len: usize,
    ) -> Result<Self, QueueError> {
        // SAFETY: forwarded from the caller.
        let (req, resp): Memories = unsafe { pair((req, req_len), (resp, resp_len), capacity()?)? };
        let header = req.header();
        let requests = RequestProducer {
            ring: req.producer()?,
            header,
        };
        requests.mirror();
        Ok(Self {
            requests,
            responses: resp.consumer()?,
        })
    }

    /// The requesting side of a connection from a config.
    ///
    /// # Safety
    /// The config describes this component's real mappings; no other requesting side exists.
    pub unsafe fn from_connection(conn: &I2cConnectionResource) -> Result<Self, QueueError> {
        let ((q, ql), (r, rl)) = regions(conn)?;
        // SAFETY: forwarded from the caller.
        unsafe { Self::new(q, ql, r, rl) }
    }
}

impl<'a> I2cServerQueues<'a> {
    /// The serving side over a request and a response queue region.
    ///
    /// # Safety
    /// As for [`I2cClientQueues::new`], with the roles swapped.
    pub unsafe fn new(
        req: NonNull<u8>,
        req_len: usize,
        resp: NonNull<u8>,
        resp_len: usize,
    ) -> Result<Self, QueueError> {
        // SAFETY: forwarded from the caller.
        let (req, resp): Memories = unsafe { pair((req, req_len), (resp, resp_len), capacity()?)? };
        Ok(Self {
            requests: req.consumer()?,
            responses: resp.producer()?,
        })
    }

    /// The serving side of a connection from a config.
    ///
    /// # Safety
    /// As for [`I2cClientQueues::from_connection`].
    pub unsafe fn from_connection(conn: &I2cConnectionResource) -> Result<Self, QueueError> {
        let ((q, ql), (r, rl)) = regions(conn)?;
        // SAFETY: forwarded from the caller.
        unsafe { Self::new(q, ql, r, rl) }
    }
}

wire_enum! {
    /// PPC label a client sends to the virt to claim or release a bus address (MR0 = address).
    BusRequest: u64 {
        /// `I2C_BUS_CLAIM`.
        Claim = 1,
        /// `I2C_BUS_RELEASE`.
        Release = 2,
    }
}

wire_enum! {
    /// PPC reply label of a bus claim or release.
    BusReply: u64 {
        /// `I2C_SUCCESS`.
        Success = 0,
        /// `I2C_FAILURE`.
        Failure = 1,
    }
}

#[cfg(test)]
mod tests;
