// SPDX-License-Identifier: BSD-2-Clause
//! The block queue wire format (`blk_req_t`, `blk_resp_t`, `blk_req_queue_t`, `blk_resp_queue_t`)
//! and the two role handles over a request/response pair.
//!
//! A [`BlkRequester`] (client, or the virt toward the driver) produces requests and consumes
//! responses; a [`BlkServer`] (driver, or the virt toward a client) does the opposite. Rule: no
//! signal flags, whoever published anything notifies the peer.

use crate::config::BlkConnectionResource;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;
use lions_queue::atomic::AtomicU8;
use lions_queue::atomic::AtomicU32;
use lions_queue::{
    Capacity, Consumer, PeerError, Producer, PushError, QueueHeader, QueueMemory, RegionError,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bytes per block in every request and in the storage info (`BLK_TRANSFER_SIZE`).
pub const BLK_TRANSFER_SIZE: usize = 4096;

/// A request code that is not part of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownRequestCode(pub u32);

impl core::fmt::Display for UnknownRequestCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unknown blk request code {}", self.0)
    }
}

impl core::error::Error for UnknownRequestCode {}

/// A response status that is not part of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownResponseStatus(pub u32);

impl core::fmt::Display for UnknownResponseStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unknown blk response status {}", self.0)
    }
}

impl core::error::Error for UnknownResponseStatus {}

/// What a request asks for (`blk_req_code_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum RequestCode {
    /// Read `count` blocks from `block_number` into the buffer at `io_or_offset`.
    Read = 0,
    /// Write `count` blocks from the buffer at `io_or_offset` to `block_number`.
    Write = 1,
    /// Make every completed write durable. No buffer.
    Flush = 2,
    /// Complete every earlier request before starting any later one. No buffer.
    Barrier = 3,
}

impl RequestCode {
    /// Whether the request carries a data buffer (READ and WRITE).
    pub const fn has_buffer(self) -> bool {
        matches!(self, Self::Read | Self::Write)
    }
}

impl TryFrom<u32> for RequestCode {
    type Error = UnknownRequestCode;

    fn try_from(raw: u32) -> Result<Self, UnknownRequestCode> {
        Ok(match raw {
            0 => Self::Read,
            1 => Self::Write,
            2 => Self::Flush,
            3 => Self::Barrier,
            other => return Err(UnknownRequestCode(other)),
        })
    }
}

/// How a request ended (`blk_resp_status_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ResponseStatus {
    /// Done; `success_count` blocks transferred.
    Ok = 0,
    /// Failed for an unspecified reason.
    ErrUnspec = 1,
    /// Refused: bad code, block range, buffer offset or count.
    ErrInvalidParam = 2,
    /// The device reported an I/O error.
    ErrIo = 3,
    /// There is no device (or partition) behind this connection.
    ErrNoDevice = 4,
}

impl TryFrom<u32> for ResponseStatus {
    type Error = UnknownResponseStatus;

    fn try_from(raw: u32) -> Result<Self, UnknownResponseStatus> {
        Ok(match raw {
            0 => Self::Ok,
            1 => Self::ErrUnspec,
            2 => Self::ErrInvalidParam,
            3 => Self::ErrIo,
            4 => Self::ErrNoDevice,
            other => return Err(UnknownResponseStatus(other)),
        })
    }
}

/// One request: `blk_req_t` (32 B, alignment 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BlkRequest {
    /// Raw [`RequestCode`] (offset 0); read it with [`code`](Self::code).
    pub code: u32,
    /// Explicit C padding (offset 4).
    pub _pad0: u32,
    /// Byte offset of the buffer in the client's data region; toward the driver, the buffer's I/O
    /// address (offset 8).
    pub io_or_offset: u64,
    /// First block, in 4 KiB units (offset 16).
    pub block_number: u64,
    /// Number of blocks (offset 24).
    pub count: u16,
    /// Explicit C padding (offset 26).
    pub _pad1: u16,
    /// Requester-chosen id, echoed in the response (offset 28).
    pub id: u32,
}

impl BlkRequest {
    /// A request with zeroed padding.
    pub const fn new(
        code: RequestCode,
        io_or_offset: u64,
        block_number: u64,
        count: u16,
        id: u32,
    ) -> Self {
        Self {
            code: code as u32,
            _pad0: 0,
            io_or_offset,
            block_number,
            count,
            _pad1: 0,
            id,
        }
    }

    /// The typed code; an unknown raw value (from a misbehaving peer) is an error to answer with
    /// [`ResponseStatus::ErrInvalidParam`].
    pub fn code(&self) -> Result<RequestCode, UnknownRequestCode> {
        RequestCode::try_from(self.code)
    }
}

/// One response: `blk_resp_t` (12 B, alignment 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BlkResponse {
    /// Raw [`ResponseStatus`] (offset 0); read it with [`status`](Self::status).
    pub status: u32,
    /// Blocks transferred (offset 4).
    pub success_count: u16,
    /// Explicit C padding (offset 6).
    pub _pad: u16,
    /// The request's id (offset 8).
    pub id: u32,
}

impl BlkResponse {
    /// A response with zeroed padding.
    pub const fn new(status: ResponseStatus, success_count: u16, id: u32) -> Self {
        Self {
            status: status as u32,
            success_count,
            _pad: 0,
            id,
        }
    }

    /// The typed status.
    pub fn status(&self) -> Result<ResponseStatus, UnknownResponseStatus> {
        ResponseStatus::try_from(self.status)
    }
}

/// Request queue header: `blk_req_queue_t` without its flexible array (16 B); requests start at
/// offset 16.
#[repr(C)]
pub struct BlkReqQueue {
    /// Server-owned index (offset 0).
    pub head: AtomicU32,
    /// Requester-owned index (offset 4).
    pub tail: AtomicU32,
    /// C `bool`, requester-owned (offset 8): "hold my requests back" (advisory).
    pub plugged: AtomicU8,
    /// Explicit C padding up to the 8-aligned entry array (offset 9).
    pub _pad: [u8; 7],
}

// SAFETY: `head` and `tail` are fields of `self`; the C flexible array of 8-aligned `blk_req_t`
// starts at offset 16, a multiple of `align_of::<BlkRequest>()`.
unsafe impl QueueHeader for BlkReqQueue {
    type Index = u32;
    type Entry = BlkRequest;
    const ENTRIES_OFFSET: usize = 16;

    fn head(&self) -> &AtomicU32 {
        &self.head
    }

    fn tail(&self) -> &AtomicU32 {
        &self.tail
    }
}

/// Response queue header: `blk_resp_queue_t` without its flexible array (8 B); responses start at
/// offset 8.
#[repr(C)]
pub struct BlkRespQueue {
    /// Requester-owned index (offset 0).
    pub head: AtomicU32,
    /// Server-owned index (offset 4).
    pub tail: AtomicU32,
}

// SAFETY: `head` and `tail` are fields of `self`; the C flexible array of 4-aligned `blk_resp_t`
// starts at offset 8, a multiple of `align_of::<BlkResponse>()`.
unsafe impl QueueHeader for BlkRespQueue {
    type Index = u32;
    type Entry = BlkResponse;
    const ENTRIES_OFFSET: usize = 8;

    fn head(&self) -> &AtomicU32 {
        &self.head
    }

    fn tail(&self) -> &AtomicU32 {
        &self.tail
    }
}

/// Why a block queue handle could not be made: the one error type of every class crate's queues.
pub use lions_queue::clients::QueueError;

/// A restarted component's read-only look at one block queue region: the raw indices (`head` at
/// offset 0, `tail` at 4 in both layouts) and the entries in its slots. For rebuilding what a
/// component knew from shared memory; never used to pop or push.
#[derive(Clone, Copy)]
pub struct RawBlkQueue<'a, E> {
    head: &'a AtomicU32,
    tail: &'a AtomicU32,
    entries: NonNull<E>,
    slots: u32,
}

impl<'a, E: Copy> RawBlkQueue<'a, E> {
    /// The queue in region `r` with `capacity` slots of `E` from `entries_offset` (16 for
    /// requests, 8 for responses).
    ///
    /// # Safety
    /// `r` is mapped readable in this component for `'a`; `E` is a plain-old-data entry type of
    /// the layout (any bit pattern valid).
    pub unsafe fn new(
        r: &lions_os::RegionResource,
        capacity: u16,
        entries_offset: usize,
    ) -> Result<Self, QueueError> {
        let (base, len) = lions_queue::clients::region(r.vaddr, r.size)?;
        let needed = usize::from(capacity)
            .checked_mul(size_of::<E>())
            .and_then(|n| n.checked_add(entries_offset));
        if capacity == 0 || needed.is_none_or(|n| n > len) || base.as_ptr().addr() % 8 != 0 {
            return Err(QueueError::Region(RegionError::Misaligned));
        }
        // SAFETY: the region holds the 8-byte index header (checked above) and is 8-aligned;
        // the indices are atomics valid for any bits.
        let (head, tail) = unsafe {
            (
                &*base.as_ptr().cast::<AtomicU32>(),
                &*base.as_ptr().add(4).cast::<AtomicU32>(),
            )
        };
        Ok(Self {
            head,
            tail,
            // SAFETY: `entries_offset` is within the region (checked above).
            entries: unsafe { base.add(entries_offset) }.cast(),
            slots: u32::from(capacity),
        })
    }

    /// The consumer's index.
    pub fn head(&self) -> u32 {
        self.head.load(Ordering::Acquire)
    }

    /// The producer's index.
    pub fn tail(&self) -> u32 {
        self.tail.load(Ordering::Acquire)
    }

    /// The entry in the slot of raw index `index` (slot `index % capacity`), as it is now.
    pub fn entry(&self, index: u32) -> E {
        let slot = (index % self.slots) as usize;
        // SAFETY: `slot < capacity` entries lie inside the region (checked by `new`); a volatile
        // read of a plain-old-data value a peer may be writing.
        unsafe { self.entries.add(slot).read_volatile() }
    }
}

/// Both queues of one connection, checked, not yet claimed by a role.
struct Pair<'a> {
    req: QueueMemory<'a, BlkReqQueue>,
    resp: QueueMemory<'a, BlkRespQueue>,
}

/// # Safety
/// As for [`lions_queue::clients::pair`].
unsafe fn pair<'a>(
    req: NonNull<u8>,
    req_len: usize,
    resp: NonNull<u8>,
    resp_len: usize,
    capacity: u16,
) -> Result<Pair<'a>, QueueError> {
    let cap = Capacity::new::<u32>(u64::from(capacity))
        .map_err(|e| QueueError::Region(RegionError::Capacity(e)))?;
    // SAFETY: forwarded from the caller.
    let (req, resp) = unsafe { lions_queue::clients::pair((req, req_len), (resp, resp_len), cap)? };
    Ok(Pair { req, resp })
}

/// The connection's (request, response) regions in this address space.
#[allow(clippy::type_complexity)]
fn connection_regions(
    conn: &BlkConnectionResource,
) -> Result<((NonNull<u8>, usize), (NonNull<u8>, usize)), QueueError> {
    Ok((
        lions_queue::clients::region(conn.req_queue.vaddr, conn.req_queue.size)?,
        lions_queue::clients::region(conn.resp_queue.vaddr, conn.resp_queue.size)?,
    ))
}

/// The requesting end of a connection: a client, or the virt toward the driver.
///
/// It keeps at most `capacity` requests in flight (submitted and not yet answered), so the server
/// can always answer: its response queue never overflows (sDDF leaves this unchecked).
pub struct BlkRequester<'a> {
    req: Producer<'a, u32, BlkRequest>,
    resp: Consumer<'a, u32, BlkResponse>,
    header: &'a BlkReqQueue,
    in_flight: u64,
}

impl<'a> BlkRequester<'a> {
    /// Requester over a request queue region at `req` and a response queue region at `resp`, both
    /// with `capacity` entries.
    ///
    /// # Safety
    /// Both regions are mapped read-write for `'a` and shared with at most one peer; no other
    /// requester of this connection exists in this or any other process while the handle lives.
    pub unsafe fn new(
        req: NonNull<u8>,
        req_len: usize,
        resp: NonNull<u8>,
        resp_len: usize,
        capacity: u16,
    ) -> Result<Self, QueueError> {
        // SAFETY: forwarded from the caller.
        let p = unsafe { pair(req, req_len, resp, resp_len, capacity) }?;
        let header = p.req.header();
        let mut req = p.req.producer().map_err(QueueError::Handle)?;
        let mut resp = p.resp.consumer().map_err(QueueError::Handle)?;
        // A restarted requester counts what it can see: requests not yet taken and answers not
        // yet read (requests the server holds are invisible, so this is a lower bound).
        let peer = |e: PeerError| QueueError::Handle(e.into());
        let in_flight = req.len().map_err(peer)? + resp.len().map_err(peer)?;
        Ok(Self {
            req,
            resp,
            header,
            in_flight,
        })
    }

    /// Requester over a connection from this component's config (`num_buffers` is the capacity).
    ///
    /// # Safety
    /// The connection describes regions mapped at its vaddrs in this component for `'a`, and the
    /// rest of [`new`](Self::new) holds.
    pub unsafe fn from_connection(conn: &BlkConnectionResource) -> Result<Self, QueueError> {
        let ((q, ql), (r, rl)) = connection_regions(conn)?;
        // SAFETY: forwarded from the caller.
        unsafe { Self::new(q, ql, r, rl, conn.num_buffers) }
    }

    /// Requests submitted (staged or published) and not yet answered.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// Stage one request; it reaches the server at the next [`publish`](Self::publish). Refused as
    /// `Full` when `capacity` requests are already in flight.
    pub fn submit(&mut self, request: BlkRequest) -> Result<(), PushError<BlkRequest>> {
        if self.in_flight >= self.req.capacity().usable() {
            return Err(PushError::Full(request));
        }
        self.req.push(request)?;
        self.in_flight += 1;
        Ok(())
    }

    /// Take the next response (any order relative to the requests). Its slot goes back to the
    /// server at the next [`publish`](Self::publish).
    pub fn response(&mut self) -> Result<Option<BlkResponse>, PeerError> {
        let r = self.resp.pop()?;
        if r.is_some() {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        Ok(r)
    }

    /// Hand read response slots back and publish staged requests. Returns whether the server must
    /// be notified: **always** when any request was published, and when response slots were handed
    /// back while requests still wait in the queue (a server takes a request only when its response
    /// will have room, so it may be waiting for exactly these slots). An error: the server's
    /// request-queue head, read for that, is impossible.
    #[inline]
    pub fn publish(&mut self) -> Result<bool, PeerError> {
        let freed = self.resp.release() > 0;
        Ok(self.req.publish() > 0 || freed && !self.req.is_empty()?)
    }

    /// Ask the server to hold requests back until [`unplug`](Self::unplug) (advisory).
    pub fn plug(&self) {
        self.header.plugged.store(1, Ordering::Release);
    }

    /// Withdraw [`plug`](Self::plug).
    pub fn unplug(&self) {
        self.header.plugged.store(0, Ordering::Release);
    }
}

/// The serving end of a connection: the driver, or the virt toward a client.
pub struct BlkServer<'a> {
    req: Consumer<'a, u32, BlkRequest>,
    resp: Producer<'a, u32, BlkResponse>,
    header: &'a BlkReqQueue,
}

impl<'a> BlkServer<'a> {
    /// Server over a request queue region at `req` and a response queue region at `resp`, both with
    /// `capacity` entries.
    ///
    /// # Safety
    /// Both regions are mapped read-write for `'a` and shared with at most one peer; no other
    /// server of this connection exists in this or any other process while the handle lives.
    pub unsafe fn new(
        req: NonNull<u8>,
        req_len: usize,
        resp: NonNull<u8>,
        resp_len: usize,
        capacity: u16,
    ) -> Result<Self, QueueError> {
        // SAFETY: forwarded from the caller.
        let p = unsafe { pair(req, req_len, resp, resp_len, capacity) }?;
        let header = p.req.header();
        let req = p.req.consumer().map_err(QueueError::Handle)?;
        let resp = p.resp.producer().map_err(QueueError::Handle)?;
        Ok(Self { req, resp, header })
    }

    /// Server over a connection from this component's config.
    ///
    /// # Safety
    /// As for [`BlkRequester::from_connection`], with the server role.
    pub unsafe fn from_connection(conn: &BlkConnectionResource) -> Result<Self, QueueError> {
        let ((q, ql), (r, rl)) = connection_regions(conn)?;
        // SAFETY: forwarded from the caller.
        unsafe { Self::new(q, ql, r, rl, conn.num_buffers) }
    }

    /// Take the next request. Check its code with [`BlkRequest::code`] and its range before use.
    pub fn request(&mut self) -> Result<Option<BlkRequest>, PeerError> {
        self.req.pop()
    }

    /// The next request, left in the queue (take it with [`request`](Self::request) once
    /// handled), if its response will have room: more free response slots than `owed`, the
    /// responses still due for requests already taken. `None` when the queue is empty or the
    /// responses have no room for one more.
    #[inline]
    pub fn peek_request(&mut self, owed: u64) -> Result<Option<BlkRequest>, PeerError> {
        if self.resp.free()? <= owed {
            return Ok(None);
        }
        self.req.peek()
    }

    /// Stage one response; it reaches the requester at the next [`publish`](Self::publish).
    pub fn respond(&mut self, response: BlkResponse) -> Result<(), PushError<BlkResponse>> {
        self.resp.push(response)
    }

    /// Hand read request slots back and publish staged responses. Returns whether the requester
    /// must be notified: **always** when any response was published.
    pub fn publish(&mut self) -> bool {
        self.req.release();
        self.resp.publish() > 0
    }

    /// Whether the requester asked us to hold its requests back (advisory).
    pub fn is_plugged(&self) -> bool {
        self.header.plugged.load(Ordering::Acquire) != 0
    }
}

#[cfg(test)]
mod tests;
