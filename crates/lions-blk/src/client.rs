// SPDX-License-Identifier: BSD-2-Clause
//! The client library: block I/O over a client's connection to the virt.
//!
//! ## Asynchronous ([`BlkClient`])
//!
//! - Wait for the storage info: [`info`](BlkClient::info) is `None` until the virt published this
//!   client's partition (capacity 0 means there is no partition behind this client).
//! - Submit with [`submit_read`](BlkClient::submit_read), [`submit_write`](BlkClient::submit_write),
//!   [`submit_flush`](BlkClient::submit_flush) and [`submit_barrier`](BlkClient::submit_barrier):
//!   each stages one request and returns its [`RequestId`] (a wrapping counter the library
//!   chooses). Buffers are byte offsets into the client's data region, 4 KiB aligned; fill and read
//!   them with [`copy_to_data`](BlkClient::copy_to_data) and
//!   [`copy_from_data`](BlkClient::copy_from_data), and leave a buffer alone while a request on it
//!   is in flight.
//! - [`publish`](BlkClient::publish) makes the staged requests visible and notifies the virt
//!   (the producer always notifies).
//! - The virt notifies [`channel`](BlkClient::channel) whenever it published responses;
//!   [`poll`](BlkClient::poll) takes them one by one, in completion order, which need not be the
//!   submission order: match them by id. Call [`publish`](BlkClient::publish) after polling: it
//!   hands the response slots back (and notifies the virt if requests wait for that room).
//! - At most `capacity` requests are in flight; beyond that `submit_*` returns
//!   [`ClientError::Full`]. The virt may hold some back (its `queue_depth` is this client's limit
//!   at the driver); they stay queued and go on as earlier ones complete.
//!
//! ## Blocking ([`BlockingBlk`])
//!
//! Owns a [`BlkClient`] and uses its whole data region as a bounce buffer:
//! [`read_blocks`](BlockingBlk::read_blocks) and [`write_blocks`](BlockingBlk::write_blocks) move
//! any whole number of 4 KiB blocks in chunks of at most the data region's size, each submitted,
//! published, and waited for by polling the response queue ([`lions_os::relax`] between looks).
//! As with the serial client, this finishes only while the virt and the driver run concurrently
//! (seL4 with higher priorities or other cores, the host board); on the single-threaded `sim`
//! backend use the asynchronous API from the PD's event handler.
//!
//! ## Queued ([`QueuedBlk`])
//!
//! Many requests in flight, each borrowing a run of 4 KiB slots of the data region: posted
//! writes, prefetched reads, FLUSH after the writes (see the type). The FS server's block device.
//!
//! ## Bounded waits
//!
//! A blocking call waits at most its *patience* ([`DEFAULT_PATIENCE`] relax pauses in a row with
//! nothing answered) and then fails with [`ClientError::Stalled`]: the virt stops answering a
//! client it faulted, and a server must not hang inside a handler because of it.

use crate::config::BlkClientConfig;
use crate::queue::{
    BLK_TRANSFER_SIZE, BlkRequest, BlkRequester, QueueError, RequestCode, ResponseStatus,
};
use crate::storage_info::{BlkStorageInfo, StorageInfoPage};
use core::ptr::NonNull;
use lions_os::{Channel, Mapped};
use lions_queue::PushError;

mod queued;

pub use queued::{QUEUED_OPS, QUEUED_SLOTS, QueuedBlk};

/// The id of a request, echoed in its [`Completion`].
pub type RequestId = u32;

const BLK: usize = BLK_TRANSFER_SIZE;

/// A finished request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// The request's id.
    pub id: RequestId,
    /// How it ended (an unknown status from the virt reads as `ErrUnspec`).
    pub status: ResponseStatus,
    /// Blocks transferred.
    pub blocks: u16,
}

/// Why a client operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The storage info is not published yet.
    NotReady,
    /// `capacity` requests are in flight: poll completions first.
    Full,
    /// Count 0, a buffer not 4 KiB aligned or outside the data region, or blocks past the
    /// capacity.
    Range,
    /// The request completed with this status (or `Ok` with fewer blocks: `ErrIo`).
    Status(ResponseStatus),
    /// The virt wrote an impossible queue index.
    Peer(lions_queue::PeerError),
    /// Notifying the virt was refused.
    Os(lions_os::OsError),
    /// A blocking call waited [`DEFAULT_PATIENCE`] (or the configured patience) pauses in a row
    /// without the virt answering anything: it stopped serving this client (it faults a client
    /// that wrote impossible indices), or it is gone. The requests still out are abandoned.
    Stalled,
}

impl From<lions_queue::PeerError> for ClientError {
    fn from(e: lions_queue::PeerError) -> Self {
        Self::Peer(e)
    }
}

impl From<lions_os::OsError> for ClientError {
    fn from(e: lions_os::OsError) -> Self {
        Self::Os(e)
    }
}

impl core::fmt::Display for ClientError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotReady => write!(f, "blk storage not ready"),
            Self::Full => write!(f, "blk request queue full"),
            Self::Range => write!(f, "blk request outside the device or the data region"),
            Self::Status(s) => write!(f, "blk request failed: {s:?}"),
            Self::Peer(e) => write!(f, "blk queue: {e}"),
            Self::Os(e) => e.fmt(f),
            Self::Stalled => write!(f, "blk virt stopped answering"),
        }
    }
}

impl core::error::Error for ClientError {}

/// A block client: its queues to the virt, its storage-info page and its data region.
pub struct BlkClient<'a> {
    queue: BlkRequester<'a>,
    ch: Channel,
    page: StorageInfoPage<'a>,
    data: NonNull<u8>,
    data_len: usize,
    next_id: RequestId,
}

impl<'a> BlkClient<'a> {
    /// The client over the connection and data region in `config`.
    ///
    /// The token says the config's regions are mapped here for `'a` (the storage info readable,
    /// the rest read-write), and that this is the one client built from them.
    pub fn new(config: Mapped<'a, BlkClientConfig>) -> Result<Self, QueueError> {
        let config = config.config();
        // SAFETY: the token: mapped here for `'a` as claimed, shared only with the virt (and, for
        // data, the device), and this client makes the only requester handle (here and below).
        let queue = unsafe { BlkRequester::from_connection(&config.virt) }?;
        // SAFETY: as above.
        let page = unsafe { StorageInfoPage::from_region(&config.virt.storage_info) }?;
        let (data, data_len) = lions_queue::clients::region(config.data.vaddr, config.data.size)?;
        // SAFETY: as above: the data region is mapped read-write for `'a`.
        Ok(unsafe { Self::with_queues(queue, config.virt.channel()?, page, data, data_len) })
    }

    /// The client over handles made by the caller (tests, custom wiring).
    ///
    /// # Safety
    /// `data..data + data_len` is the data region the virt translates this client's offsets
    /// against, mapped read-write for `'a`.
    pub unsafe fn with_queues(
        queue: BlkRequester<'a>,
        ch: Channel,
        page: StorageInfoPage<'a>,
        data: NonNull<u8>,
        data_len: usize,
    ) -> Self {
        Self {
            queue,
            ch,
            page,
            data,
            data_len,
            next_id: 0,
        }
    }

    /// The channel to the virt: it notifies here when responses are published.
    pub fn channel(&self) -> Channel {
        self.ch
    }

    /// The storage info (this client's partition), once published.
    pub fn info(&self) -> Option<BlkStorageInfo> {
        self.page.read()
    }

    /// Size of the data region in bytes.
    pub fn data_len(&self) -> usize {
        self.data_len
    }

    /// Requests submitted and not yet polled.
    pub fn in_flight(&self) -> u64 {
        self.queue.in_flight()
    }

    /// Stage a READ of `count` blocks from `block` into the buffer at `offset`.
    pub fn submit_read(
        &mut self,
        block: u64,
        count: u16,
        offset: usize,
    ) -> Result<RequestId, ClientError> {
        self.submit(RequestCode::Read, block, count, offset)
    }

    /// Stage a WRITE of `count` blocks from the buffer at `offset` to `block`.
    pub fn submit_write(
        &mut self,
        block: u64,
        count: u16,
        offset: usize,
    ) -> Result<RequestId, ClientError> {
        self.submit(RequestCode::Write, block, count, offset)
    }

    /// Stage a FLUSH: the writes completed before it become durable.
    pub fn submit_flush(&mut self) -> Result<RequestId, ClientError> {
        self.submit(RequestCode::Flush, 0, 0, 0)
    }

    /// Stage a BARRIER: every request submitted before it completes before any submitted after it
    /// starts.
    pub fn submit_barrier(&mut self) -> Result<RequestId, ClientError> {
        self.submit(RequestCode::Barrier, 0, 0, 0)
    }

    fn submit(
        &mut self,
        code: RequestCode,
        block: u64,
        count: u16,
        offset: usize,
    ) -> Result<RequestId, ClientError> {
        let info = self.info().ok_or(ClientError::NotReady)?;
        if code.has_buffer() {
            let blocks = u64::from(count);
            let in_dev = block
                .checked_add(blocks)
                .is_some_and(|e| e <= info.capacity);
            let in_data = (usize::from(count) * BLK)
                .checked_add(offset)
                .is_some_and(|e| e <= self.data_len);
            if count == 0 || !in_dev || !in_data || !offset.is_multiple_of(BLK) {
                return Err(ClientError::Range);
            }
        }
        let id = self.next_id;
        let req = BlkRequest::new(code, offset as u64, block, count, id);
        match self.queue.submit(req) {
            Ok(()) => {
                self.next_id = id.wrapping_add(1);
                Ok(id)
            }
            Err(PushError::Full(_)) => Err(ClientError::Full),
            Err(PushError::Peer(e, _)) => Err(e.into()),
        }
    }

    /// Hand the slots of polled completions back and publish the staged requests; notify the virt
    /// if requests were published, or if slots were handed back while requests still wait in the
    /// queue (the virt takes a request only when the response can be delivered: see
    /// [`crate::virt`]).
    pub fn publish(&mut self) -> Result<(), ClientError> {
        if self.queue.publish()? {
            self.ch.notify()?;
        }
        Ok(())
    }

    /// The next completion, if any (completion order, not submission order). Its slot is handed
    /// back at the next [`publish`](Self::publish): call it after handling completions.
    pub fn poll(&mut self) -> Result<Option<Completion>, ClientError> {
        Ok(self.queue.response()?.map(|r| Completion {
            id: r.id,
            status: r.status().unwrap_or(ResponseStatus::ErrUnspec),
            blocks: r.success_count,
        }))
    }

    /// The data region's bytes `offset..offset + len`, or `Range`.
    fn span(&self, offset: usize, len: usize) -> Result<*mut u8, ClientError> {
        match offset.checked_add(len) {
            // SAFETY: `offset + len <= data_len`: inside the region.
            Some(end) if end <= self.data_len => Ok(unsafe { self.data.as_ptr().add(offset) }),
            _ => Err(ClientError::Range),
        }
    }

    /// Copy `bytes` into the data region at `offset` (for a WRITE).
    pub fn copy_to_data(&mut self, offset: usize, bytes: &[u8]) -> Result<(), ClientError> {
        let dst = self.span(offset, bytes.len())?;
        // SAFETY: `dst..dst + len` is inside the mapped data region, which no Rust reference
        // covers; the device reads it only for a WRITE the caller submits afterwards.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        Ok(())
    }

    /// Copy the data region at `offset` into `out` (after a READ completed).
    pub fn copy_from_data(&self, offset: usize, out: &mut [u8]) -> Result<(), ClientError> {
        let src = self.span(offset, out.len())?;
        // SAFETY: as in `copy_to_data`; the device wrote it for a READ that has completed.
        unsafe { core::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// The data region (for zero-copy use: reading or writing it is the caller's business and
    /// unsafe while a request on those bytes is in flight).
    pub fn data_region(&self) -> (NonNull<u8>, usize) {
        (self.data, self.data_len)
    }
}

/// Pauses ([`lions_os::relax`]) a blocking call waits with nothing answered before it gives up
/// with [`ClientError::Stalled`]. On the host board a pause is a 20 µs sleep (so about half a
/// minute at least); on seL4 a spin hint, so a system with a slow device sets its own
/// ([`BlockingBlk::with_patience`], [`QueuedBlk::with_patience`]).
pub const DEFAULT_PATIENCE: u32 = 1 << 20;

/// Wait, by [`lions_os::relax`], until `ready` gives a value; `ready` reports progress (anything
/// answered) with its flag, which restarts the count of idle pauses. Gives up after `patience`
/// idle pauses in a row.
fn wait_for<T>(
    patience: u32,
    mut ready: impl FnMut() -> Result<(Option<T>, bool), ClientError>,
) -> Result<T, ClientError> {
    let mut idle = 0u32;
    loop {
        match ready()? {
            (Some(v), _) => return Ok(v),
            (None, true) => idle = 0,
            (None, false) if idle >= patience => return Err(ClientError::Stalled),
            (None, false) => {
                idle += 1;
                lions_os::relax();
            }
        }
    }
}

/// Blocking block I/O over a [`BlkClient`] it owns; see the module docs.
pub struct BlockingBlk<'a> {
    client: BlkClient<'a>,
    patience: u32,
}

impl<'a> BlockingBlk<'a> {
    /// Blocking I/O through `client` (whose requests should all have completed).
    pub fn new(client: BlkClient<'a>) -> Self {
        Self {
            client,
            patience: DEFAULT_PATIENCE,
        }
    }

    /// The same, giving up after `patience` idle pauses (see [`DEFAULT_PATIENCE`]).
    pub fn with_patience(client: BlkClient<'a>, patience: u32) -> Self {
        Self { client, patience }
    }

    /// The asynchronous client underneath.
    pub fn client(&mut self) -> &mut BlkClient<'a> {
        &mut self.client
    }

    /// The storage info, once published (see [`BlkClient::info`]).
    pub fn info(&self) -> Option<BlkStorageInfo> {
        self.client.info()
    }

    /// Wait until the storage info is published, and return it; [`ClientError::Stalled`] when
    /// it is not published within the patience.
    pub fn wait_ready(&mut self) -> Result<BlkStorageInfo, ClientError> {
        let client = &self.client;
        wait_for(self.patience, || Ok((client.info(), false)))
    }

    /// Submit one request, publish it and wait for its completion; returns the blocks done.
    fn run(&mut self, code: RequestCode, block: u64, count: u16) -> Result<u16, ClientError> {
        let id = self.client.submit(code, block, count, 0)?;
        self.client.publish()?;
        let client = &mut self.client;
        let c = wait_for(self.patience, || match client.poll()? {
            Some(c) if c.id == id => Ok((Some(c), true)),
            Some(_) => Ok((None, true)),
            None => Ok((None, false)),
        })?;
        self.client.publish()?;
        match c.status {
            ResponseStatus::Ok if c.blocks >= count => Ok(c.blocks),
            ResponseStatus::Ok => Err(ClientError::Status(ResponseStatus::ErrIo)),
            s => Err(ClientError::Status(s)),
        }
    }

    /// The chunk length in bytes for a transfer of `len` bytes, or `Range`.
    fn chunk(&self, len: usize) -> Result<usize, ClientError> {
        let chunk = (self.client.data_len / BLK).min(usize::from(u16::MAX)) * BLK;
        if !len.is_multiple_of(BLK) || (chunk == 0 && len > 0) {
            return Err(ClientError::Range);
        }
        Ok(chunk)
    }

    /// Read `buf.len() / 4096` blocks from `block` into `buf` (a whole number of blocks).
    pub fn read_blocks(&mut self, block: u64, buf: &mut [u8]) -> Result<(), ClientError> {
        let chunk = self.chunk(buf.len())?;
        for (i, part) in buf.chunks_mut(chunk.max(1)).enumerate() {
            let at = block + (i * chunk / BLK) as u64;
            self.run(RequestCode::Read, at, count_of(part.len()))?;
            self.client.copy_from_data(0, part)?;
        }
        Ok(())
    }

    /// Write `buf` (a whole number of blocks) to the disk from `block`.
    pub fn write_blocks(&mut self, block: u64, buf: &[u8]) -> Result<(), ClientError> {
        let chunk = self.chunk(buf.len())?;
        for (i, part) in buf.chunks(chunk.max(1)).enumerate() {
            self.client.copy_to_data(0, part)?;
            let at = block + (i * chunk / BLK) as u64;
            self.run(RequestCode::Write, at, count_of(part.len()))?;
        }
        Ok(())
    }

    /// FLUSH and wait: every write completed so far is durable.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        self.run(RequestCode::Flush, 0, 0).map(drop)
    }

    /// BARRIER and wait.
    pub fn barrier(&mut self) -> Result<(), ClientError> {
        self.run(RequestCode::Barrier, 0, 0).map(drop)
    }

    /// Give the asynchronous client back.
    pub fn into_inner(self) -> BlkClient<'a> {
        self.client
    }
}

/// Blocks in a chunk (at most `u16::MAX` blocks by construction).
fn count_of(bytes: usize) -> u16 {
    u16::try_from(bytes / BLK).unwrap_or(u16::MAX)
}
