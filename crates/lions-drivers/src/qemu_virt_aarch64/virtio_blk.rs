// SPDX-License-Identifier: BSD-2-Clause
//! virtio-blk (virtio 1.2 §5.2) over virtio-mmio, as QEMU's `virt` board offers it
//! (`-device virtio-blk-device`, device id 2), as a [`BlkDevice`].
//!
//! - **Resources** (`config/blk/virtio_mmio/config.json`): `regs`, the 4 KiB virtio-mmio slot;
//!   `virtio_rings`, the split virtqueue (descriptor table, available and used rings); and
//!   `virtio_requests`, 32 bytes per descriptor for request headers and status bytes. Data
//!   buffers are never mapped here: the loop hands their I/O addresses straight to the device.
//! - **Init**: probe (magic, version 2, device id 2), negotiate `VERSION_1` (required), `RO`,
//!   `BLK_SIZE` and `FLUSH`, one queue of the largest power of two the device, the ring region
//!   and [`MAX_QUEUE_SIZE`] allow, DRIVER_OK. Storage info: capacity = config `capacity` (512-byte
//!   sectors) / 8, sector size = `blk_size` when offered (512..=4096, a power of two) else 512,
//!   read-only from `RO`, queue depth = queue size / 3.
//! - **Requests**: READ and WRITE are three-descriptor chains: the 16-byte header (`type` IN 0 or
//!   OUT 1, `sector` = block × 8) and the 1-byte status footer live in the requests region at
//!   32 × head; the data descriptor (device-writable for READ) is the request's buffer. FLUSH is a
//!   header and a status (type 4); without the `FLUSH` feature the device has no volatile cache
//!   and FLUSH completes at once. The device is notified unless it suppressed notifications.
//! - **Completions**, in the device's order: status OK is `Ok` with every block, IOERR `ErrIo`,
//!   UNSUPP `ErrInvalidParam`, anything else `ErrUnspec`.
//! - **IRQ**: `ack_irq` acknowledges the interrupt status.

use crate::mmio::Mmio;
use crate::virtio::mmio::F_VERSION_1;
use crate::virtio::queue::{MAX_QUEUE_SIZE, QueueError};
use crate::virtio::{Buffer, DmaRegion, SplitQueue, VirtioError, VirtioMmio};
use lions_blk::{
    BlkDevice, BlkStorageInfo, DeviceCompletion, DeviceOp, DeviceRequest, ResponseStatus,
};

/// virtio device id of a block device.
pub const DEVICE_ID: u32 = 2;

/// Feature: the device is read-only.
pub const F_RO: u64 = 1 << 5;
/// Feature: `blk_size` holds the logical block size.
pub const F_BLK_SIZE: u64 = 1 << 6;
/// Feature: the device has a volatile cache and takes FLUSH.
pub const F_FLUSH: u64 = 1 << 9;

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;
/// Bytes per descriptor in the requests region: header (16) and status (1), padded.
const SLOT: usize = 32;
const MAX: usize = MAX_QUEUE_SIZE as usize;
/// FLUSH requests completed at once (no `FLUSH` feature) that wait for `complete`.
const INSTANT: usize = 8;

/// A virtio-blk device; see the module docs.
#[derive(Debug)]
pub struct VirtioBlk<M> {
    dev: VirtioMmio<M>,
    queue: SplitQueue,
    requests: DmaRegion,
    /// By chain head: the request's id and block count.
    inflight: [Option<(u32, u16)>; MAX],
    instant: [u32; INSTANT],
    num_instant: usize,
    info: BlkStorageInfo,
    flush: bool,
}

impl<M: Mmio> VirtioBlk<M> {
    /// Set up the virtio-blk device behind `regs` with its rings in `rings` and its request
    /// headers in `requests`.
    pub fn new(regs: M, rings: DmaRegion, requests: DmaRegion) -> Result<Self, VirtioError> {
        let mut dev = VirtioMmio::probe(regs, DEVICE_ID)?;
        let features = dev.negotiate(F_RO | F_BLK_SIZE | F_FLUSH, F_VERSION_1)?;
        let max = match dev.queue_max(0) {
            Ok(max) => max.min(MAX_QUEUE_SIZE),
            Err(e) => {
                dev.fail();
                return Err(e);
            }
        };
        let fits = |n: u16| {
            SplitQueue::layout(n).2 <= rings.len() && usize::from(n) * SLOT <= requests.len()
        };
        let size = (0..16)
            .rev()
            .map(|s| 1u16 << s)
            .find(|&n| n <= max && fits(n));
        let queue = size
            .ok_or(QueueError::Size(0))
            .and_then(|n| SplitQueue::new(rings, n));
        let Ok(queue) = queue else {
            dev.fail();
            return Err(VirtioError::QueueMemory);
        };
        dev.setup_queue(0, &queue);
        dev.driver_ok();
        let blk_size = u16::try_from(dev.config32(20)).unwrap_or(0);
        let usable = (512..=4096).contains(&blk_size) && blk_size.is_power_of_two();
        let info = BlkStorageInfo {
            serial_number: [0; 64],
            read_only: u8::from(features & F_RO != 0),
            ready: 0,
            sector_size: if features & F_BLK_SIZE != 0 && usable {
                blk_size
            } else {
                512
            },
            block_size: 1,
            queue_depth: queue.size() / 3,
            cylinders: 0,
            heads: 0,
            blocks: 0,
            _pad: 0,
            capacity: dev.config64(0) / 8,
        };
        Ok(Self {
            dev,
            queue,
            requests,
            inflight: [None; MAX],
            instant: [0; INSTANT],
            num_instant: 0,
            info,
            flush: features & F_FLUSH != 0,
        })
    }

    /// The transport (for inspection).
    pub fn transport(&mut self) -> &mut VirtioMmio<M> {
        &mut self.dev
    }
}

impl<M: Mmio> BlkDevice for VirtioBlk<M> {
    fn info(&mut self) -> Option<BlkStorageInfo> {
        Some(self.info)
    }

    fn submit(&mut self, req: DeviceRequest) -> Result<(), DeviceRequest> {
        let kind = match req.op {
            DeviceOp::Read => T_IN,
            DeviceOp::Write => T_OUT,
            DeviceOp::Flush if self.flush => T_FLUSH,
            DeviceOp::Flush => {
                let slot = self.instant.get_mut(self.num_instant).ok_or(req)?;
                *slot = req.id;
                self.num_instant += 1;
                return Ok(());
            }
        };
        let needed = if req.op == DeviceOp::Flush { 2 } else { 3 };
        let head = self
            .queue
            .next_head()
            .filter(|_| self.queue.num_free() >= needed);
        let Some(head) = head else {
            return Err(req);
        };
        let at = usize::from(head) * SLOT;
        self.requests.write32(at, kind);
        self.requests.write32(at + 4, 0);
        self.requests.write64(at + 8, req.block * 8);
        self.requests.write8(at + 16, 0xff);
        let header = Buffer {
            addr: self.requests.io_addr(at),
            len: 16,
            device_writes: false,
        };
        let data = Buffer {
            addr: req.io_addr,
            len: u32::try_from(req.len()).unwrap_or(u32::MAX),
            device_writes: req.op == DeviceOp::Read,
        };
        let status = Buffer {
            addr: self.requests.io_addr(at + 16),
            len: 1,
            device_writes: true,
        };
        let chain = [header, data, status];
        let chain: &[Buffer] = if needed == 2 {
            &[header, status]
        } else {
            &chain
        };
        if self.queue.add(chain).is_none() {
            return Err(req);
        }
        self.inflight[usize::from(head)] = Some((req.id, req.count));
        if self.queue.should_notify() {
            self.dev.notify(0);
        }
        Ok(())
    }

    fn complete(&mut self) -> Option<DeviceCompletion> {
        if let Some(n) = self.num_instant.checked_sub(1) {
            self.num_instant = n;
            return Some(DeviceCompletion {
                id: self.instant[n],
                status: ResponseStatus::Ok,
                blocks: 0,
            });
        }
        loop {
            let used = self.queue.pop_used()?;
            let Some((id, count)) = self.inflight[usize::from(used.head)].take() else {
                continue;
            };
            let (status, blocks) = match self.requests.read8(usize::from(used.head) * SLOT + 16) {
                S_OK => (ResponseStatus::Ok, count),
                S_IOERR => (ResponseStatus::ErrIo, 0),
                S_UNSUPP => (ResponseStatus::ErrInvalidParam, 0),
                _ => (ResponseStatus::ErrUnspec, 0),
            };
            return Some(DeviceCompletion { id, status, blocks });
        }
    }

    fn ack_irq(&mut self) {
        self.dev.ack_interrupt();
    }
}
