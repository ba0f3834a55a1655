// SPDX-License-Identifier: BSD-2-Clause
//! The block device-class driver: the hardware trait a driver author implements ([`BlkDevice`])
//! and the generic loop that owns the queues, the checks, BARRIER ordering and the notifications
//! ([`BlkDriver`]).
//!
//! ## The trait, for driver authors
//!
//! ```text
//! fn info(&mut self) -> Option<BlkStorageInfo>;                          // None while not ready
//! fn submit(&mut self, req: DeviceRequest) -> Result<(), DeviceRequest>; // start; Err = busy
//! fn complete(&mut self) -> Option<DeviceCompletion>;                   // a finished request
//! fn ack_irq(&mut self) {}                                              // clear interrupt status
//! ```
//!
//! A device sees only READ, WRITE and FLUSH ([`DeviceOp`]), already checked against its capacity
//! and read-only flag, with the buffer's I/O address. It may finish them in any order; a device
//! that finishes synchronously (a file) simply has the completion ready at once. Nothing in a
//! device waits.
//!
//! ## The loop ([`BlkDriver`])
//!
//! - **Ready**: the storage info is published (Release store of `ready`) as soon as
//!   [`BlkDevice::info`] returns it, at construction or at a later event; the virt is notified
//!   then ([`BlkDriver::init`] does it for a device ready at construction). No request is taken
//!   before.
//! - **Every event** (IRQ or virt notification), in three phases:
//!   1. *process*: [`BlkDevice::ack_irq`] (on an IRQ); then, while anything moves: completions
//!      become responses (the virt's id echoed), a held BARRIER is answered once nothing is
//!      outstanding, and queued requests go to the device;
//!   2. *re-check*: blk has no signal flags, so nothing is requested; the loop in phase 1 runs
//!      until neither the device nor the queue can move, and the device's IRQ or the virt's
//!      next notification (both always sent) runs it again;
//!   3. *notify*: publish responses and notify the virt if there were any; acknowledge the IRQ
//!      (deferred).
//! - **Checks**: an unknown code, a READ/WRITE with count 0 or a range past the capacity, and a
//!   WRITE to a read-only device are answered at once with `ErrInvalidParam`, success count 0.
//! - **FLUSH** goes to the device in queue order; it makes durable every write completed before it
//!   was submitted.
//! - **BARRIER** never reaches the device: it is answered `Ok` once every request taken before it
//!   has completed, and no request behind it is taken until then.
//! - **Response room**: a request is taken only while the response queue has room for its
//!   response and for every request still outstanding, so responses never overflow even when the
//!   virt is slow to consume them.

use crate::Error;
use crate::config::BlkDriverConfig;
use crate::queue::{
    BLK_TRANSFER_SIZE, BlkRequest, BlkResponse, BlkServer, QueueError, RequestCode, ResponseStatus,
};
use crate::storage_info::{BlkStorageInfo, StorageInfoWriter};
use lions_os::{Channel, ChannelSet, Handler, Mapped};

/// What a device is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceOp {
    /// Device blocks to memory.
    Read,
    /// Memory to device blocks.
    Write,
    /// Make every completed write durable.
    Flush,
}

/// One request for the device, checked by the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRequest {
    /// The operation.
    pub op: DeviceOp,
    /// I/O address of the buffer (READ/WRITE; 0 for FLUSH).
    pub io_addr: u64,
    /// First block (4 KiB units), inside the device (READ/WRITE).
    pub block: u64,
    /// Blocks, at least 1 (READ/WRITE; 0 for FLUSH).
    pub count: u16,
    /// The requester's id, to be echoed in the completion.
    pub id: u32,
}

impl DeviceRequest {
    /// Bytes of buffer the request covers.
    pub fn len(&self) -> u64 {
        u64::from(self.count) * BLK_TRANSFER_SIZE as u64
    }

    /// Whether the request carries no buffer (FLUSH).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A finished request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceCompletion {
    /// The request's id.
    pub id: u32,
    /// How it ended.
    pub status: ResponseStatus,
    /// Blocks transferred.
    pub blocks: u16,
}

/// The hardware half of a block driver. No method waits.
pub trait BlkDevice {
    /// The device's storage info once it is ready (capacity in 4 KiB blocks), `None` before.
    fn info(&mut self) -> Option<BlkStorageInfo>;
    /// Start `req`; hand it back when the device cannot take it now (it is offered again later).
    fn submit(&mut self, req: DeviceRequest) -> Result<(), DeviceRequest>;
    /// A finished request, if any (any order).
    fn complete(&mut self) -> Option<DeviceCompletion>;
    /// Clear the device's interrupt status after an IRQ, before the loop services it.
    fn ack_irq(&mut self) {}
}

/// The generic block driver: a [`BlkDevice`] serving the virt's connection; see the module docs.
pub struct BlkDriver<'a, D> {
    dev: D,
    irq: Channel,
    virt: BlkServer<'a>,
    virt_ch: Channel,
    page: StorageInfoWriter<'a>,
    info: Option<BlkStorageInfo>,
    outstanding: u64,
    barrier: Option<u32>,
}

impl<'a, D: BlkDevice> BlkDriver<'a, D> {
    /// The driver for `dev` over the connection in `config`, with the device's IRQ on `irq`.
    ///
    /// The token says the config's regions are mapped read-write here for `'a`, and that this
    /// is the one driver built from them.
    pub fn new(
        dev: D,
        config: Mapped<'a, BlkDriverConfig>,
        irq: Channel,
    ) -> Result<Self, QueueError> {
        let config = config.config();
        // SAFETY: the token: mapped read-write here for `'a`, shared only with the virt, and this
        // driver makes the only server handle and storage-info writer (here and below).
        let virt = unsafe { BlkServer::from_connection(&config.virt) }?;
        // SAFETY: as above.
        let page = unsafe { StorageInfoWriter::from_region(&config.virt.storage_info) }?;
        Ok(Self::with_queues(
            dev,
            irq,
            virt,
            config.virt.channel()?,
            page,
        ))
    }

    /// The driver over handles made by the caller (tests, custom wiring). Publishes the storage
    /// info if the device is ready.
    pub fn with_queues(
        dev: D,
        irq: Channel,
        virt: BlkServer<'a>,
        virt_ch: Channel,
        page: StorageInfoWriter<'a>,
    ) -> Self {
        let mut d = Self {
            dev,
            irq,
            virt,
            virt_ch,
            page,
            info: None,
            outstanding: 0,
            barrier: None,
        };
        d.publish_info();
        d
    }

    /// Tell the virt the device is ready, if it is. Call once, from the PD's `init`.
    pub fn init(&mut self) -> Result<(), Error> {
        if self.info.is_some() {
            self.virt_ch.notify()?;
        }
        Ok(())
    }

    /// The device (for inspection and board-specific calls).
    pub fn device(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Requests at the device now.
    pub fn outstanding(&self) -> u64 {
        self.outstanding
    }

    /// Publish the storage info once the device has it; returns whether that happened now.
    fn publish_info(&mut self) -> bool {
        if self.info.is_some() {
            return false;
        }
        self.info = self.dev.info();
        if let Some(info) = &self.info {
            self.page.publish(info);
        }
        self.info.is_some()
    }

    fn respond(&mut self, status: ResponseStatus, blocks: u16, id: u32) -> Result<(), Error> {
        self.virt
            .respond(BlkResponse::new(status, blocks, id))
            .map_err(Error::from)
    }

    /// Phase 1: move completions, the barrier and requests until nothing moves.
    fn process(&mut self) -> Result<(), Error> {
        let Some(info) = self.info else {
            return Ok(());
        };
        loop {
            let mut moved = false;
            while let Some(c) = self.dev.complete() {
                self.outstanding = self.outstanding.saturating_sub(1);
                self.respond(c.status, c.blocks, c.id)?;
                moved = true;
            }
            if let Some(id) = self.barrier.filter(|_| self.outstanding == 0) {
                self.barrier = None;
                self.respond(ResponseStatus::Ok, 0, id)?;
                moved = true;
            }
            if !self.take_requests(&info)? && !moved {
                return Ok(());
            }
        }
    }

    /// Requests to the device while it takes them, no barrier is held and responses have room.
    fn take_requests(&mut self, info: &BlkStorageInfo) -> Result<bool, Error> {
        let mut took = false;
        while self.barrier.is_none() {
            let Some(req) = self.virt.peek_request(self.outstanding)? else {
                break;
            };
            match check(&req, info) {
                Err(status) => self.respond(status, 0, req.id)?,
                Ok(None) => self.barrier = Some(req.id),
                Ok(Some(r)) => {
                    if self.dev.submit(r).is_err() {
                        break;
                    }
                    self.outstanding += 1;
                }
            }
            self.virt.request()?;
            took = true;
        }
        Ok(took)
    }
}

/// The device request for `r`, `None` for a BARRIER, or the status of a refusal.
fn check(r: &BlkRequest, info: &BlkStorageInfo) -> Result<Option<DeviceRequest>, ResponseStatus> {
    let bad = ResponseStatus::ErrInvalidParam;
    let op = match r.code().map_err(|_| bad)? {
        RequestCode::Barrier => return Ok(None),
        RequestCode::Flush => {
            return Ok(Some(DeviceRequest {
                op: DeviceOp::Flush,
                io_addr: 0,
                block: 0,
                count: 0,
                id: r.id,
            }));
        }
        RequestCode::Read => DeviceOp::Read,
        RequestCode::Write if info.read_only() => return Err(bad),
        RequestCode::Write => DeviceOp::Write,
    };
    let end = r.block_number.checked_add(u64::from(r.count));
    if r.count == 0 || end.is_none_or(|e| e > info.capacity) {
        return Err(bad);
    }
    Ok(Some(DeviceRequest {
        op,
        io_addr: r.io_or_offset,
        block: r.block_number,
        count: r.count,
        id: r.id,
    }))
}

impl<D: BlkDevice> Handler for BlkDriver<'_, D> {
    type Error = Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Error> {
        let irq = channels.contains(self.irq);
        if irq {
            self.dev.ack_irq();
        }
        let became_ready = self.publish_info();
        self.process()?;
        if self.virt.publish() || became_ready {
            self.virt_ch.notify()?;
        }
        if irq {
            self.irq.deferred_irq_ack()?;
        }
        Ok(())
    }
}
