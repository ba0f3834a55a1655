// SPDX-License-Identifier: BSD-2-Clause
//! virtio-blk (device ID 2) over the sDDF block protocol (virtio 1.2 §5.2).
//!
//! **Guest side.** One request queue. A request is a chain: a 16-byte device-readable header
//! `{type: u32, reserved: u32, sector: u64}`, the data buffers (device-readable for a write,
//! device-writable for a read), and a last device-writable status byte (`OK` 0, `IOERR` 1,
//! `UNSUPP` 2). Types served: `IN` (0), `OUT` (1), `FLUSH` (4), `GET_ID` (8); others are
//! `UNSUPP`. Sectors are 512 bytes. Offered features: `FLUSH`, `BLK_SIZE` (512), `SEG_MAX`,
//! `TOPOLOGY` (4 KiB physical blocks, so Linux aligns most I/O) and `RO` for a read-only disk.
//! Configuration space: `capacity` (u64, sectors) at 0, `seg_max` (u32) at 12, `blk_size` (u32)
//! at 20, `physical_block_exp` (u8) at 24, `min_io_size` (u16, sectors) at 26.
//!
//! **Back-end side.** The [`BlkBackend`] is the client side of the blk virtualiser: requests
//! `{op, block, count, offset}` in 4 KiB transfer units with data in a shared region (copied in
//! and out through a 512-byte bounce buffer), ids assigned by the back end, and responses
//! `{id, ok}` that arrive later (the VMM calls [`super::mmio::VirtioMmio::poll`] when it is
//! notified). The device owns [`SLOTS`] cells of [`CELL_UNITS`] transfer units in the data region
//! and keeps one guest request per cell:
//!
//! - a request larger than a cell is **chunked**: one back-end request per cell-sized piece,
//!   issued in order;
//! - a read reads the transfer units covering the sectors and copies out the part asked for;
//! - a write of whole transfer units copies the guest's data into the cell and writes it; a write
//!   that starts or ends inside a transfer unit does a **read-modify-write** (read the covering
//!   units, patch the sectors, write them back);
//! - `FLUSH` becomes a back-end flush.
//!
//! A response whose id names no request waiting for one is counted and ignored; an out-of-range
//! sector, a length that is not whole sectors, or a write to a read-only disk is `IOERR` without
//! a back-end request. The device never panics on what the guest or the back end wrote.

use super::mmio::{Progress, Queues, VirtioDevice};
use super::queue::{Chain, QUEUE_SIZE_MAX};
use crate::ram::GuestMemory;

/// virtio device ID of a block device.
pub const DEVICE_ID: u32 = 2;
/// virtio sector size.
pub const SECTOR: u64 = 512;
/// sDDF transfer unit.
pub const TRANSFER_UNIT: u64 = 4096;
/// Transfer units per cell.
pub const CELL_UNITS: u64 = 8;
/// Bytes per cell.
pub const CELL: u64 = CELL_UNITS * TRANSFER_UNIT;
/// Guest requests in flight at once (at most; fewer if the data region is smaller).
pub const SLOTS: usize = 4;

/// Feature: `size_max` is valid.
pub const F_SIZE_MAX: u64 = 1 << 1;
/// Feature: `seg_max` is valid.
pub const F_SEG_MAX: u64 = 1 << 2;
/// Feature: the disk is read-only.
pub const F_RO: u64 = 1 << 5;
/// Feature: `blk_size` is valid.
pub const F_BLK_SIZE: u64 = 1 << 6;
/// Feature: the `FLUSH` command.
pub const F_FLUSH: u64 = 1 << 9;
/// Feature: the topology fields are valid.
pub const F_TOPOLOGY: u64 = 1 << 10;

/// Request type: read.
pub const T_IN: u32 = 0;
/// Request type: write.
pub const T_OUT: u32 = 1;
/// Request type: flush.
pub const T_FLUSH: u32 = 4;
/// Request type: device id string.
pub const T_GET_ID: u32 = 8;
/// Status: success.
pub const S_OK: u8 = 0;
/// Status: I/O error.
pub const S_IOERR: u8 = 1;
/// Status: unsupported request.
pub const S_UNSUPP: u8 = 2;

/// The id string `GET_ID` returns (20 bytes, zero-padded).
pub const ID: &[u8; 20] = b"lions-vmm virtio-blk";

/// A back-end operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlkOp {
    /// Read `count` units from `block` into the data region at `offset`.
    Read,
    /// Write `count` units from the data region at `offset` to `block`.
    Write,
    /// Make earlier writes durable.
    Flush,
}

/// A request to the blk virtualiser (sDDF's request entry; the back end assigns its id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkRequest {
    /// The operation.
    pub op: BlkOp,
    /// First transfer unit.
    pub block: u64,
    /// Number of transfer units.
    pub count: u16,
    /// Byte offset in the data region.
    pub offset: usize,
}

/// A response from the blk virtualiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkResponse {
    /// The request's id.
    pub id: u32,
    /// The request succeeded.
    pub ok: bool,
}

/// The blk client side the device uses (`lions_blk::client::BlkClient` implements it with the
/// `blk` feature).
pub trait BlkBackend {
    /// Capacity in transfer units (0 while the storage is not ready).
    fn capacity(&self) -> u64;
    /// The disk refuses writes.
    fn read_only(&self) -> bool {
        false
    }
    /// Size of the shared data region.
    fn data_len(&self) -> usize;
    /// Copies `bytes` into the data region at `offset`; false if out of the region.
    fn copy_to_data(&mut self, offset: usize, bytes: &[u8]) -> bool;
    /// Copies the data region at `offset` into `out`; false if out of the region.
    fn copy_from_data(&self, offset: usize, out: &mut [u8]) -> bool;
    /// Stages a request and returns its id; `None` when the request queue is full (offered
    /// again later) or the request was refused.
    fn submit(&mut self, req: BlkRequest) -> Option<u32>;
    /// Publishes staged requests (and notifies the virtualiser); called once per
    /// [`VirtioDevice::process`].
    fn publish(&mut self) {}
    /// The next response, if one arrived.
    fn take_response(&mut self) -> Option<BlkResponse>;
}

/// Bytes moved between guest RAM and the data region at a time.
const BOUNCE: usize = 512;

/// Copies `len` bytes of the chain's part (readable from `chain_off`, or writable) to or from
/// the data region at `data_off`, through a bounce buffer.
fn move_bytes<B: BlkBackend, M: GuestMemory>(
    backend: &mut B,
    mem: &mut M,
    chain: &Chain,
    to_guest: bool,
    chain_off: u64,
    data_off: u64,
    len: u64,
) -> bool {
    let mut b = [0u8; BOUNCE];
    let mut done = 0;
    while done < len {
        let n = u64_usize((len - done).min(BOUNCE as u64));
        let c = u32::try_from(chain_off + done).unwrap_or(u32::MAX);
        let d = u64_usize(data_off + done);
        let ok = if to_guest {
            backend.copy_from_data(d, &mut b[..n]) && chain.write(mem, c, &b[..n]) == Ok(n)
        } else {
            chain.read(mem, c, &mut b[..n]) == Ok(n) && backend.copy_to_data(d, &b[..n])
        };
        if !ok {
            return false;
        }
        done += n as u64;
    }
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    Flush,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the units of a read chunk.
    Read,
    /// Reading the units of a partial write before patching them.
    RmwRead,
    /// Writing a chunk.
    Write,
    /// Flushing.
    Flush,
}

#[derive(Debug, Clone)]
struct Pending {
    chain: Chain,
    kind: Kind,
    /// Byte address on the disk where the request starts.
    start: u64,
    /// Data bytes of the request.
    len: u64,
    /// Bytes completed.
    done: u64,
    phase: Phase,
    /// The id of the current back-end request, once accepted.
    submitted: Option<u32>,
}

/// The current chunk of a request: covering units and the bytes inside them.
#[derive(Debug, Clone, Copy)]
struct Piece {
    first_unit: u64,
    units: u64,
    /// Offset of the chunk's first byte in the cell.
    in_cell: u64,
    /// Bytes of the chunk.
    bytes: u64,
}

impl Pending {
    fn piece(&self) -> Piece {
        let pos = self.start + self.done;
        let end = self.start + self.len;
        let first_unit = pos / TRANSFER_UNIT;
        // Saturating: a back end may report any capacity.
        let cell_end = first_unit
            .saturating_add(CELL_UNITS)
            .saturating_mul(TRANSFER_UNIT);
        let chunk_end = end.min(cell_end);
        let units = chunk_end.div_ceil(TRANSFER_UNIT) - first_unit;
        Piece {
            first_unit,
            units,
            in_cell: pos - first_unit * TRANSFER_UNIT,
            bytes: chunk_end - pos,
        }
    }
}

/// Counters of what the device refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlkStats {
    /// Requests completed with `IOERR` or `UNSUPP` without reaching the back end.
    pub refused: u32,
    /// Responses from the back end that named no waiting request.
    pub bad_responses: u32,
    /// Requests the back end failed.
    pub failed: u32,
}

/// The block device model.
#[derive(Debug)]
pub struct Blk<B> {
    /// The back end.
    pub backend: B,
    slots: [Option<Pending>; SLOTS],
    /// Back-end requests still in flight when the device was reset: their cell stays busy
    /// until the response arrives (the back end may still write it).
    orphans: [Option<u32>; SLOTS],
    nslots: usize,
    /// What was refused.
    pub stats: BlkStats,
}

fn u64_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

impl<B: BlkBackend> Blk<B> {
    /// A block device over `backend`; `None` if its data region cannot hold one cell.
    pub fn new(backend: B) -> Option<Self> {
        let nslots = (backend.data_len() / u64_usize(CELL)).min(SLOTS);
        if nslots == 0 {
            return None;
        }
        Some(Self {
            backend,
            slots: [const { None }; SLOTS],
            orphans: [None; SLOTS],
            nslots,
            stats: BlkStats::default(),
        })
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    fn capacity_bytes(&self) -> u64 {
        self.backend.capacity().saturating_mul(TRANSFER_UNIT)
    }

    /// Writes the status byte (the last writable byte) and returns the chain.
    fn finish<M: GuestMemory>(
        q: &mut Queues,
        mem: &mut M,
        chain: &Chain,
        data_written: u32,
        status: u8,
        p: &mut Progress,
    ) {
        let w = chain.writable_len();
        let mut used = 0;
        if w > 0 && chain.write(mem, w - 1, &[status]).is_ok() {
            used = data_written.saturating_add(1);
        }
        match q.q[0].push_used(mem, chain.head, used) {
            Ok(()) => p.used = true,
            Err(e) => p.error = p.error.or(Some(e)),
        }
    }

    /// Starts a guest request: returns it pending, or completes it at once.
    fn start<M: GuestMemory>(
        &mut self,
        q: &mut Queues,
        mem: &mut M,
        chain: Chain,
        p: &mut Progress,
    ) -> Option<Pending> {
        let mut hdr = [0u8; 16];
        let refuse = |s: &mut Self, q: &mut Queues, mem: &mut M, status, p: &mut Progress| {
            s.stats.refused += 1;
            Self::finish(q, mem, &chain, 0, status, p);
            None
        };
        if chain.writable_len() == 0 || chain.read(mem, 0, &mut hdr) != Ok(16) {
            return refuse(self, q, mem, S_IOERR, p);
        }
        let ty = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let sector = u64::from_le_bytes([
            hdr[8], hdr[9], hdr[10], hdr[11], hdr[12], hdr[13], hdr[14], hdr[15],
        ]);
        let (kind, len) = match ty {
            T_IN => (Kind::Read, u64::from(chain.writable_len() - 1)),
            T_OUT => (Kind::Write, u64::from(chain.readable_len() - 16)),
            T_FLUSH => (Kind::Flush, 0),
            T_GET_ID => {
                let n = chain.write(
                    mem,
                    0,
                    &ID[..ID.len().min(u64_usize(u64::from(chain.writable_len() - 1)))],
                );
                let n = u32::try_from(n.unwrap_or(0)).unwrap_or(0);
                Self::finish(q, mem, &chain, n, S_OK, p);
                return None;
            }
            _ => return refuse(self, q, mem, S_UNSUPP, p),
        };
        let start = sector.checked_mul(SECTOR);
        let in_range = start
            .and_then(|s| s.checked_add(len))
            .is_some_and(|e| e <= self.capacity_bytes());
        if !len.is_multiple_of(SECTOR)
            || !in_range
            || (kind == Kind::Write && self.backend.read_only())
        {
            return refuse(self, q, mem, S_IOERR, p);
        }
        let start = start.unwrap_or(0);
        if len == 0 && kind != Kind::Flush {
            Self::finish(q, mem, &chain, 0, S_OK, p);
            return None;
        }
        let mut pending = Pending {
            chain,
            kind,
            start,
            len,
            done: 0,
            phase: Phase::Flush,
            submitted: None,
        };
        pending.phase = Self::next_phase(&pending);
        Some(pending)
    }

    fn next_phase(r: &Pending) -> Phase {
        match r.kind {
            Kind::Flush => Phase::Flush,
            Kind::Read => Phase::Read,
            Kind::Write => {
                let pc = r.piece();
                if pc.in_cell == 0 && pc.bytes == pc.units * TRANSFER_UNIT {
                    Phase::Write
                } else {
                    Phase::RmwRead
                }
            }
        }
    }

    /// Offers the slot's current back-end request. Copies write data into the cell first.
    fn submit<M: GuestMemory>(&mut self, slot: usize, mem: &mut M) {
        let Some(r) = self.slots[slot].as_mut() else {
            return;
        };
        if r.submitted.is_some() {
            return;
        }
        let pc = r.piece();
        let cell = slot as u64 * CELL;
        if r.phase == Phase::Write && pc.in_cell == 0 && pc.bytes == pc.units * TRANSFER_UNIT {
            // A whole-unit write: the guest's data goes straight into the cell.
            if !move_bytes(
                &mut self.backend,
                mem,
                &r.chain,
                false,
                16 + r.done,
                cell,
                pc.bytes,
            ) {
                self.stats.failed += 1;
            }
        }
        let (op, block, count) = match r.phase {
            Phase::Read | Phase::RmwRead => (BlkOp::Read, pc.first_unit, pc.units),
            Phase::Write => (BlkOp::Write, pc.first_unit, pc.units),
            Phase::Flush => (BlkOp::Flush, 0, 0),
        };
        let req = BlkRequest {
            op,
            block,
            count: u16::try_from(count).unwrap_or(0),
            offset: u64_usize(cell),
        };
        r.submitted = self.backend.submit(req);
    }

    /// Handles the response for `slot`.
    fn complete<M: GuestMemory>(
        &mut self,
        q: &mut Queues,
        mem: &mut M,
        slot: usize,
        ok: bool,
        p: &mut Progress,
    ) {
        let Some(mut r) = self.slots[slot].take() else {
            return;
        };
        if !ok {
            self.stats.failed += 1;
            Self::finish(q, mem, &r.chain, 0, S_IOERR, p);
            return;
        }
        let pc = r.piece();
        let cell = slot as u64 * CELL;
        let at = cell + pc.in_cell;
        match r.phase {
            Phase::Flush => {
                Self::finish(q, mem, &r.chain, 0, S_OK, p);
                return;
            }
            Phase::Read => {
                if !move_bytes(&mut self.backend, mem, &r.chain, true, r.done, at, pc.bytes) {
                    self.stats.failed += 1;
                }
                r.done += pc.bytes;
            }
            Phase::RmwRead => {
                // Patch the guest's sectors into the units just read, then write them back.
                if !move_bytes(
                    &mut self.backend,
                    mem,
                    &r.chain,
                    false,
                    16 + r.done,
                    at,
                    pc.bytes,
                ) {
                    self.stats.failed += 1;
                }
                r.phase = Phase::Write;
                r.submitted = None;
                self.slots[slot] = Some(r);
                return;
            }
            Phase::Write => r.done += pc.bytes,
        }
        if r.done >= r.len {
            let written = if r.kind == Kind::Read {
                u32::try_from(r.len).unwrap_or(0)
            } else {
                0
            };
            Self::finish(q, mem, &r.chain, written, S_OK, p);
            return;
        }
        r.phase = Self::next_phase(&r);
        r.submitted = None;
        self.slots[slot] = Some(r);
    }
}

impl<B: BlkBackend> VirtioDevice for Blk<B> {
    fn device_id(&self) -> u32 {
        DEVICE_ID
    }
    fn num_queues(&self) -> usize {
        1
    }
    fn device_features(&self) -> u64 {
        let ro = if self.backend.read_only() { F_RO } else { 0 };
        F_FLUSH | F_BLK_SIZE | F_SEG_MAX | F_TOPOLOGY | ro
    }
    fn read_config(&self, offset: u64, buf: &mut [u8]) {
        let mut cfg = [0u8; 36];
        let sectors = self
            .backend
            .capacity()
            .saturating_mul(TRANSFER_UNIT / SECTOR);
        cfg[0..8].copy_from_slice(&sectors.to_le_bytes());
        cfg[12..16].copy_from_slice(&u32::from(QUEUE_SIZE_MAX - 2).to_le_bytes());
        cfg[20..24].copy_from_slice(&512u32.to_le_bytes());
        cfg[24] = 3; // 2^3 logical blocks per physical block: 4 KiB.
        cfg[26..28].copy_from_slice(&8u16.to_le_bytes());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = usize::try_from(offset)
                .ok()
                .and_then(|o| cfg.get(o.checked_add(i)?))
                .copied()
                .unwrap_or(0);
        }
    }
    fn reset(&mut self) {
        // Requests in flight at the back end complete into nothing; their cells stay reserved
        // until their responses arrive.
        for s in 0..self.nslots {
            if let Some(id) = self.slots[s].take().and_then(|r| r.submitted) {
                self.orphans[s] = Some(id);
            }
        }
    }
    fn process<M: GuestMemory>(&mut self, q: &mut Queues, mem: &mut M) -> Progress {
        let mut p = Progress::default();
        while let Some(resp) = self.backend.take_response() {
            let slot = (0..self.nslots).find(|&s| {
                self.slots[s]
                    .as_ref()
                    .is_some_and(|r| r.submitted == Some(resp.id))
            });
            let orphan = (0..self.nslots).find(|&s| self.orphans[s] == Some(resp.id));
            match (slot, orphan) {
                (Some(s), _) => self.complete(q, mem, s, resp.ok, &mut p),
                (None, Some(s)) => self.orphans[s] = None,
                (None, None) => self.stats.bad_responses += 1,
            }
        }
        for s in 0..self.nslots {
            if self.slots[s].is_none() && self.orphans[s].is_none() {
                let vq = &mut q.q[0];
                let chain = match vq
                    .pop(mem)
                    .and_then(|h| h.map(|h| vq.walk(mem, h)).transpose())
                {
                    Ok(Some(c)) => c,
                    Ok(None) => break,
                    Err(e) => {
                        p.error = p.error.or(Some(e));
                        break;
                    }
                };
                self.slots[s] = self.start(q, mem, chain, &mut p);
            }
        }
        for s in 0..self.nslots {
            self.submit(s, mem);
        }
        self.backend.publish();
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abort::Width;
    use crate::ram::GuestRam;
    use crate::virtio::mmio::{F_VERSION_1, VirtioMmio, reg};
    use crate::virtio::queue::tests::{AVAIL, DESC, Driver, USED};
    use std::collections::VecDeque;
    use std::vec;
    use std::vec::Vec;

    /// A blk virtualiser model: a disk of 4 KiB units, requests queued, served on `serve`.
    struct FakeDisk {
        disk: Vec<u8>,
        data: Vec<u8>,
        queue: VecDeque<(u32, BlkRequest)>,
        next_id: u32,
        resp: VecDeque<BlkResponse>,
        log: Vec<BlkRequest>,
        published: u32,
        limit: usize,
        ro: bool,
    }

    impl FakeDisk {
        fn new(units: usize) -> Self {
            let disk = (0..units * 4096)
                .map(|i| u8::try_from(i % 253).unwrap())
                .collect();
            Self {
                disk,
                data: vec![0; SLOTS * usize::try_from(CELL).unwrap()],
                queue: VecDeque::new(),
                next_id: 100,
                published: 0,
                resp: VecDeque::new(),
                log: Vec::new(),
                limit: 16,
                ro: false,
            }
        }
        fn serve(&mut self) {
            while let Some((id, r)) = self.queue.pop_front() {
                let d = usize::try_from(r.block * 4096).unwrap();
                let n = usize::from(r.count) * 4096;
                let o = r.offset;
                let ok = d + n <= self.disk.len();
                if ok {
                    match r.op {
                        BlkOp::Read => self.data[o..o + n].copy_from_slice(&self.disk[d..d + n]),
                        BlkOp::Write => self.disk[d..d + n].copy_from_slice(&self.data[o..o + n]),
                        BlkOp::Flush => {}
                    }
                }
                self.resp.push_back(BlkResponse { id, ok });
            }
        }
    }

    impl BlkBackend for FakeDisk {
        fn capacity(&self) -> u64 {
            (self.disk.len() / 4096) as u64
        }
        fn read_only(&self) -> bool {
            self.ro
        }
        fn data_len(&self) -> usize {
            self.data.len()
        }
        fn copy_to_data(&mut self, offset: usize, bytes: &[u8]) -> bool {
            self.data
                .get_mut(offset..offset + bytes.len())
                .map(|d| d.copy_from_slice(bytes))
                .is_some()
        }
        fn copy_from_data(&self, offset: usize, out: &mut [u8]) -> bool {
            self.data
                .get(offset..offset + out.len())
                .map(|d| out.copy_from_slice(d))
                .is_some()
        }
        fn submit(&mut self, req: BlkRequest) -> Option<u32> {
            if self.queue.len() >= self.limit {
                return None;
            }
            self.log.push(req);
            self.next_id += 1;
            self.queue.push_back((self.next_id, req));
            Some(self.next_id)
        }
        fn publish(&mut self) {
            self.published += 1;
        }
        fn take_response(&mut self) -> Option<BlkResponse> {
            self.resp.pop_front()
        }
    }

    struct Rig {
        drv: Driver,
    }

    const HDR: u64 = 0x4000;
    const BUF: u64 = 0x10000;
    const STATUS: u64 = 0x5000;

    impl Rig {
        fn setup(mem: &mut GuestRam<'_>, disk: FakeDisk) -> (Self, VirtioMmio<Blk<FakeDisk>>) {
            let mut d = VirtioMmio::new(Blk::new(disk).unwrap());
            crate::virtio::mmio::tests::bring_up(
                &mut d,
                mem,
                F_VERSION_1 | F_FLUSH,
                &[(DESC, AVAIL, USED, 16)],
            );
            (
                Self {
                    drv: Driver::new(16),
                },
                d,
            )
        }
        /// Publishes a request with its header at HDR(+slot), data at BUF, status at STATUS.
        fn request(
            &mut self,
            mem: &mut GuestRam<'_>,
            ty: u32,
            sector: u64,
            data_len: u32,
            first: u16,
        ) {
            let hdr = HDR + u64::from(first) * 16;
            mem.write_u32(hdr, ty).unwrap();
            mem.write_u32(hdr + 4, 0).unwrap();
            mem.write_u64(hdr + 8, sector).unwrap();
            let data_w = ty != T_OUT;
            let st = STATUS + u64::from(first);
            mem.write(st, &[0xee]).unwrap();
            let mut bufs = vec![(hdr, 16, false)];
            if data_len > 0 {
                bufs.push((BUF, data_len, data_w));
            }
            bufs.push((st, 1, true));
            self.drv.publish(mem, first, &bufs);
        }
        fn run(d: &mut VirtioMmio<Blk<FakeDisk>>, mem: &mut GuestRam<'_>) {
            d.write(mem, reg::QUEUE_NOTIFY, Width::Word, 0);
            for _ in 0..100 {
                d.dev.backend.serve();
                d.poll(mem);
            }
        }
    }

    #[test]
    fn config_space() {
        let mut m = vec![0u8; 0x40000];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        let (_, mut d) = Rig::setup(&mut ram, FakeDisk::new(16));
        assert_eq!(d.read(reg::CONFIG, Width::Double), 128);
        assert_eq!(d.read(reg::CONFIG + 20, Width::Word), 512);
        assert_eq!(d.read(reg::CONFIG + 24, Width::Byte), 3);
        assert_eq!(d.read(reg::CONFIG + 12, Width::Word), 126);
        assert_eq!(d.read(reg::CONFIG + 0x1000, Width::Word), 0);
        assert_eq!(
            d.read(reg::DEVICE_FEATURES, Width::Word),
            F_FLUSH | F_BLK_SIZE | F_SEG_MAX | F_TOPOLOGY
        );
    }

    #[test]
    fn unaligned_read_spanning_cells() {
        let mut m = vec![0u8; 0x40000];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        let (mut rig, mut d) = Rig::setup(&mut ram, FakeDisk::new(64));
        // Sector 3 for 40 KiB + 512: starts inside unit 0, crosses a cell boundary.
        let len = 40 * 1024 + 512;
        rig.request(&mut ram, T_IN, 3, len, 0);
        Rig::run(&mut d, &mut ram);
        assert_eq!(rig.drv.take_used(&ram), Some((0, len + 1)));
        assert_eq!(ram.slice(STATUS, 1).unwrap(), &[S_OK]);
        let want = &d.dev.backend.disk[3 * 512..3 * 512 + usize::try_from(len).unwrap()];
        assert_eq!(ram.slice(BUF, usize::try_from(len).unwrap()).unwrap(), want);
        // Chunked: units 0..8, then 8..11.
        let reads: Vec<_> = d
            .dev
            .backend
            .log
            .iter()
            .map(|r| (r.op, r.block, r.count))
            .collect();
        assert_eq!(reads, [(BlkOp::Read, 0, 8), (BlkOp::Read, 8, 3)]);
        assert_eq!(d.dev.in_flight(), 0);
    }

    #[test]
    fn partial_write_does_read_modify_write() {
        let mut m = vec![0u8; 0x40000];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        let (mut rig, mut d) = Rig::setup(&mut ram, FakeDisk::new(16));
        let before = d.dev.backend.disk.clone();
        // Two sectors from sector 7: the last sector of unit 0 and the first of unit 1.
        ram.write(BUF, &[0xab; 1024]).unwrap();
        rig.request(&mut ram, T_OUT, 7, 1024, 0);
        Rig::run(&mut d, &mut ram);
        assert_eq!(rig.drv.take_used(&ram), Some((0, 1)));
        assert_eq!(ram.slice(STATUS, 1).unwrap(), &[S_OK]);
        let disk = &d.dev.backend.disk;
        assert!(disk[3584..4608].iter().all(|&b| b == 0xab));
        assert_eq!(disk[..3584], before[..3584]);
        assert_eq!(disk[4608..], before[4608..]);
        let ops: Vec<_> = d
            .dev
            .backend
            .log
            .iter()
            .map(|r| (r.op, r.block, r.count))
            .collect();
        assert_eq!(ops, [(BlkOp::Read, 0, 2), (BlkOp::Write, 0, 2)]);
    }

    #[test]
    fn aligned_write_and_flush_without_reads() {
        let mut m = vec![0u8; 0x40000];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        let (mut rig, mut d) = Rig::setup(&mut ram, FakeDisk::new(16));
        ram.write(BUF, &[0x5a; 8192]).unwrap();
        rig.request(&mut ram, T_OUT, 16, 8192, 0);
        rig.request(&mut ram, T_FLUSH, 0, 0, 3);
        Rig::run(&mut d, &mut ram);
        assert_eq!(rig.drv.take_used(&ram), Some((0, 1)));
        assert_eq!(rig.drv.take_used(&ram), Some((3, 1)));
        assert!(d.dev.backend.disk[8192..16384].iter().all(|&b| b == 0x5a));
        let ops: Vec<_> = d.dev.backend.log.iter().map(|r| r.op).collect();
        assert_eq!(ops, [BlkOp::Write, BlkOp::Flush]);
    }

    #[test]
    fn refusals_and_get_id() {
        let mut m = vec![0u8; 0x40000];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        let mut disk = FakeDisk::new(4);
        disk.ro = true;
        let (mut rig, mut d) = Rig::setup(&mut ram, disk);
        // Past the end; not whole sectors; write to read-only; unknown type; GET_ID.
        rig.request(&mut ram, T_IN, 31, 1024, 0);
        Rig::run(&mut d, &mut ram);
        assert_eq!(
            (rig.drv.take_used(&ram), ram.slice(STATUS, 1).unwrap()[0]),
            (Some((0, 1)), S_IOERR)
        );
        rig.request(&mut ram, T_IN, 0, 100, 0);
        Rig::run(&mut d, &mut ram);
        assert_eq!(ram.slice(STATUS, 1).unwrap()[0], S_IOERR);
        rig.request(&mut ram, T_OUT, 0, 512, 0);
        Rig::run(&mut d, &mut ram);
        assert_eq!(ram.slice(STATUS, 1).unwrap()[0], S_IOERR);
        rig.request(&mut ram, 99, 0, 0, 0);
        Rig::run(&mut d, &mut ram);
        assert_eq!(ram.slice(STATUS, 1).unwrap()[0], S_UNSUPP);
        rig.request(&mut ram, u32::MAX, u64::MAX, 512, 0);
        Rig::run(&mut d, &mut ram);
        assert_eq!(ram.slice(STATUS, 1).unwrap()[0], S_UNSUPP);
        rig.request(&mut ram, T_IN, u64::MAX, 512, 0);
        Rig::run(&mut d, &mut ram);
        assert_eq!(ram.slice(STATUS, 1).unwrap()[0], S_IOERR);
        assert_eq!(d.dev.stats.refused, 6);
        assert!(d.dev.backend.log.is_empty());
        rig.request(&mut ram, T_GET_ID, 0, 20, 0);
        Rig::run(&mut d, &mut ram);
        assert_eq!(ram.slice(BUF, 20).unwrap(), ID);
        assert_eq!(ram.slice(STATUS, 1).unwrap()[0], S_OK);
        for _ in 0..7 {
            rig.drv.take_used(&ram);
        }
        assert_eq!(d.errors().0, 0);
    }

    #[test]
    fn backend_full_failure_and_forged_responses() {
        let mut m = vec![0u8; 0x40000];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        let (mut rig, mut d) = Rig::setup(&mut ram, FakeDisk::new(16));
        // The back end's queue is full: the request waits, then goes.
        d.dev.backend.limit = 0;
        rig.request(&mut ram, T_IN, 0, 512, 0);
        d.write(&mut ram, reg::QUEUE_NOTIFY, Width::Word, 0);
        assert_eq!((d.dev.in_flight(), d.dev.backend.log.len()), (1, 0));
        // A response for a request never made, and ids out of range: counted, ignored.
        d.dev.backend.resp.extend([
            BlkResponse { id: 0, ok: true },
            BlkResponse { id: 9, ok: true },
            BlkResponse {
                id: u32::MAX,
                ok: false,
            },
        ]);
        d.poll(&mut ram);
        assert_eq!(d.dev.stats.bad_responses, 3);
        assert_eq!(d.dev.in_flight(), 1);
        d.dev.backend.limit = 16;
        // The back end fails the read: IOERR.
        d.poll(&mut ram);
        assert_eq!(d.dev.backend.queue.front().map(|q| q.0), Some(101));
        d.dev.backend.queue.clear();
        d.dev
            .backend
            .resp
            .push_back(BlkResponse { id: 101, ok: false });
        d.poll(&mut ram);
        assert_eq!(ram.slice(STATUS, 1).unwrap()[0], S_IOERR);
        assert_eq!((d.dev.stats.failed, d.dev.in_flight()), (1, 0));
        // A duplicate response after completion is ignored.
        d.dev
            .backend
            .resp
            .push_back(BlkResponse { id: 101, ok: true });
        d.poll(&mut ram);
        assert_eq!(d.dev.stats.bad_responses, 4);
        assert!(d.dev.backend.published >= 4);
    }

    #[test]
    fn reset_keeps_cells_of_requests_in_flight() {
        let mut m = vec![0u8; 0x40000];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        let (mut rig, mut d) = Rig::setup(&mut ram, FakeDisk::new(16));
        rig.request(&mut ram, T_IN, 0, 512, 0);
        d.write(&mut ram, reg::QUEUE_NOTIFY, Width::Word, 0);
        assert_eq!(d.dev.backend.queue.len(), 1);
        // The driver resets the device and starts again with four requests.
        d.write(&mut ram, reg::STATUS, Width::Word, 0);
        crate::virtio::mmio::tests::bring_up(
            &mut d,
            &mut ram,
            F_VERSION_1,
            &[(DESC, AVAIL, USED, 16)],
        );
        rig = Rig {
            drv: Driver::new(16),
        };
        for i in 0..4 {
            rig.request(&mut ram, T_IN, 8, 512, i * 3);
        }
        d.write(&mut ram, reg::QUEUE_NOTIFY, Width::Word, 0);
        // Cell 0 still belongs to the old request: only three new ones went out.
        let cells: Vec<_> = d.dev.backend.queue.iter().map(|(_, r)| r.offset).collect();
        assert_eq!(cells, [0, 32768, 65536, 98304]);
        assert_eq!(d.dev.in_flight(), 3);
        // The old response frees cell 0 for the fourth request; nothing counts as forged.
        for _ in 0..10 {
            d.dev.backend.serve();
            d.poll(&mut ram);
        }
        assert_eq!(d.dev.in_flight(), 0);
        assert_eq!(d.dev.stats.bad_responses, 0);
        let offsets: Vec<_> = d.dev.backend.log.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [0, 32768, 65536, 98304, 0]);
    }

    #[test]
    fn data_region_too_small_refused() {
        let mut disk = FakeDisk::new(4);
        disk.data.truncate(usize::try_from(CELL).unwrap() - 1);
        assert!(Blk::new(disk).is_none());
    }
}
