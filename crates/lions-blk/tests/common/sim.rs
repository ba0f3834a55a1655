// SPDX-License-Identifier: BSD-2-Clause
//! Sim-backend pieces shared by the subsystem tests: connection regions and an in-memory block
//! device whose completions the test releases (in any order), performing its "DMA" into the
//! regions by I/O address (= the address in this process) and refusing any address outside the
//! data regions it was told about.
#![allow(dead_code, clippy::unwrap_used, clippy::cast_possible_truncation)]

use lions_blk::{
    BlkConnectionResource, BlkDevice, BlkReqQueue, BlkRequest, BlkRespQueue, BlkResponse,
    BlkStorageInfo, DeviceCompletion, DeviceOp, DeviceRequest, ResponseStatus,
};
use lions_os::RegionResource;
use lions_os::sim::Region;
use lions_queue::clients::{pair, region};
use lions_queue::{Capacity, Consumer, PeerError, Producer};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use zerocopy::FromZeros;

pub const BLK: usize = 4096;

/// A region's address in this process (which the tests also use as its I/O address).
pub fn addr(r: &Region) -> u64 {
    r.as_ptr().as_ptr().expose_provenance() as u64
}

pub fn res(r: &Region) -> RegionResource {
    RegionResource {
        vaddr: addr(r),
        size: r.len() as u64,
    }
}

/// A requester on the raw rings, as a misbehaving virt or client has them: unlike
/// [`lions_blk::BlkRequester`] it keeps no in-flight count, so it can push past the limit.
pub struct RawRequester<'a> {
    req: Producer<'a, u32, BlkRequest>,
    resp: Consumer<'a, u32, BlkResponse>,
}

impl RawRequester<'_> {
    /// # Safety
    /// The connection's queue regions are mapped for the handle's life; the server holds the
    /// other end of each ring and nobody else one of these.
    pub unsafe fn from_connection(conn: &BlkConnectionResource) -> Self {
        let cap = Capacity::new::<u32>(conn.num_buffers.into()).unwrap();
        let req = region(conn.req_queue.vaddr, conn.req_queue.size).unwrap();
        let resp = region(conn.resp_queue.vaddr, conn.resp_queue.size).unwrap();
        // SAFETY: forwarded from the caller.
        let (req, resp) = unsafe { pair::<BlkReqQueue, BlkRespQueue>(req, resp, cap) }.unwrap();
        Self {
            req: req.producer().unwrap(),
            resp: resp.consumer().unwrap(),
        }
    }

    /// Stage a request, however many are in flight.
    pub fn submit(&mut self, r: BlkRequest) -> Result<(), BlkRequest> {
        self.req.push(r).map_err(|e| match e {
            lions_queue::PushError::Full(r) | lions_queue::PushError::Peer(_, r) => r,
        })
    }

    /// The next response.
    pub fn response(&mut self) -> Result<Option<BlkResponse>, PeerError> {
        self.resp.pop()
    }

    /// Hand read responses back, publish requests: whether the server must hear of it (as
    /// [`lions_blk::BlkRequester::publish`] says).
    pub fn publish(&mut self) -> Result<bool, PeerError> {
        let freed = self.resp.release() > 0;
        Ok(self.req.publish() > 0 || freed && !self.req.is_empty()?)
    }
}

/// The three regions of one connection.
pub struct Conn {
    pub info: Region,
    pub req: Region,
    pub resp: Region,
    pub cap: u16,
}

impl Conn {
    pub fn new(cap: u16) -> Self {
        let n = usize::from(cap);
        Self {
            info: Region::new(Region::PAGE),
            req: Region::new(16 + 32 * n),
            resp: Region::new(8 + 12 * n),
            cap,
        }
    }

    pub fn res(&self, id: u8) -> BlkConnectionResource {
        BlkConnectionResource::new(
            self.info.resource(),
            self.req.resource(),
            self.resp.resource(),
            self.cap,
            id,
        )
    }

    /// The request queue header, as a misbehaving peer sees it.
    pub fn req_header(&self) -> &BlkReqQueue {
        // SAFETY: page-aligned, large enough, lives as long as `self`; atomics valid for any bits.
        unsafe { self.req.as_ptr().cast::<BlkReqQueue>().as_ref() }
    }

    /// The response queue header.
    pub fn resp_header(&self) -> &BlkRespQueue {
        // SAFETY: as above.
        unsafe { self.resp.as_ptr().cast::<BlkRespQueue>().as_ref() }
    }
}

/// One request as the device saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub op: DeviceOp,
    pub block: u64,
    pub count: u16,
}

/// The in-memory disk behind [`MemDisk`].
pub struct DiskState {
    pub image: RefCell<Vec<u8>>,
    pub ready: Cell<bool>,
    pub read_only: Cell<bool>,
    pub sector_size: Cell<u16>,
    /// Most requests the device holds at once.
    pub depth: Cell<usize>,
    pub pending: RefCell<Vec<DeviceRequest>>,
    pub done: RefCell<VecDeque<DeviceCompletion>>,
    /// Every request submitted, in order.
    pub log: RefCell<Vec<Seen>>,
    /// Where the device may do DMA: (I/O address, length).
    pub windows: RefCell<Vec<(u64, usize)>>,
    pub flushes: Cell<u32>,
    /// Fail requests touching this block with `ErrIo`.
    pub bad_block: Cell<Option<u64>>,
}

impl DiskState {
    pub fn new(image: Vec<u8>) -> Self {
        Self {
            image: RefCell::new(image),
            ready: Cell::new(true),
            read_only: Cell::new(false),
            sector_size: Cell::new(512),
            depth: Cell::new(usize::MAX),
            pending: RefCell::new(Vec::new()),
            done: RefCell::new(VecDeque::new()),
            log: RefCell::new(Vec::new()),
            windows: RefCell::new(Vec::new()),
            flushes: Cell::new(0),
            bad_block: Cell::new(None),
        }
    }

    pub fn window(&self, r: &Region) {
        self.windows.borrow_mut().push((addr(r), r.len()));
    }

    /// The device memory at `io..io + len`, which must lie in one window.
    fn dma(&self, io: u64, len: usize) -> *mut u8 {
        let inside = self
            .windows
            .borrow()
            .iter()
            .any(|&(a, l)| io >= a && io + len as u64 <= a + l as u64);
        assert!(
            inside,
            "device DMA at {io:#x}+{len:#x} outside every data region"
        );
        std::ptr::with_exposed_provenance_mut::<u8>(io as usize)
    }

    /// Finish the pending requests `pick` selects, last submitted first, doing their I/O.
    /// Returns how many.
    pub fn complete_where(&self, pick: impl Fn(&DeviceRequest) -> bool) -> usize {
        let mut pending = self.pending.borrow_mut();
        let mut n = 0;
        for i in (0..pending.len()).rev() {
            if !pick(&pending[i]) {
                continue;
            }
            let r = pending.remove(i);
            let len = r.len() as usize;
            let at = r.block as usize * BLK;
            let bad = self
                .bad_block
                .get()
                .is_some_and(|b| b >= r.block && b < r.block + u64::from(r.count));
            let status = if bad {
                ResponseStatus::ErrIo
            } else {
                let mut image = self.image.borrow_mut();
                match r.op {
                    DeviceOp::Read => {
                        let dst = self.dma(r.io_addr, len);
                        // SAFETY: `dst..dst + len` lies in a live test region (checked by `dma`).
                        unsafe { std::ptr::copy_nonoverlapping(image[at..].as_ptr(), dst, len) };
                    }
                    DeviceOp::Write => {
                        let src = self.dma(r.io_addr, len);
                        // SAFETY: as above.
                        unsafe {
                            std::ptr::copy_nonoverlapping(src, image[at..].as_mut_ptr(), len)
                        };
                    }
                    DeviceOp::Flush => self.flushes.set(self.flushes.get() + 1),
                }
                ResponseStatus::Ok
            };
            let blocks = if bad { 0 } else { r.count };
            self.done.borrow_mut().push_back(DeviceCompletion {
                id: r.id,
                status,
                blocks,
            });
            n += 1;
        }
        n
    }

    pub fn pending_len(&self) -> usize {
        self.pending.borrow().len()
    }
}

/// A [`BlkDevice`] over a [`DiskState`] the test keeps.
pub struct MemDisk<'a>(pub &'a DiskState);

impl BlkDevice for MemDisk<'_> {
    fn info(&mut self) -> Option<BlkStorageInfo> {
        let s = self.0;
        if !s.ready.get() {
            return None;
        }
        let mut info = BlkStorageInfo::new_zeroed();
        info.serial_number[..8].copy_from_slice(b"MEMDISK1");
        info.read_only = s.read_only.get().into();
        info.sector_size = s.sector_size.get();
        info.block_size = 1;
        info.queue_depth = 64;
        info.capacity = (s.image.borrow().len() / BLK) as u64;
        Some(info)
    }

    fn submit(&mut self, req: DeviceRequest) -> Result<(), DeviceRequest> {
        let s = self.0;
        if s.pending.borrow().len() >= s.depth.get() {
            return Err(req);
        }
        s.log.borrow_mut().push(Seen {
            op: req.op,
            block: req.block,
            count: req.count,
        });
        s.pending.borrow_mut().push(req);
        Ok(())
    }

    fn complete(&mut self) -> Option<DeviceCompletion> {
        self.0.done.borrow_mut().pop_front()
    }
}
