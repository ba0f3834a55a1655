// SPDX-License-Identifier: BSD-2-Clause
//! [`QueuedBlk`]: block I/O with requests kept in flight (read runs, write-behind) over a
//! [`BlkClient`] it owns; see the [parent module](super) docs.

use super::{BLK, BlkClient, ClientError, DEFAULT_PATIENCE, RequestId, count_of, wait_for};
use crate::queue::{RequestCode, ResponseStatus};
use crate::storage_info::BlkStorageInfo;

/// Most requests a [`QueuedBlk`] keeps in flight.
pub const QUEUED_OPS: usize = 64;

/// Most data-region blocks a [`QueuedBlk`] uses (4 MiB; a larger region is used up to this).
pub const QUEUED_SLOTS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Read,
    Write,
    Flush,
}

/// A request of a [`QueuedBlk`] in flight (or a read completed and not yet taken).
#[derive(Debug, Clone, Copy)]
struct Op {
    id: RequestId,
    kind: OpKind,
    block: u64,
    count: u16,
    /// First data-region block of its buffer.
    slot: usize,
    /// Its completion (status, blocks), once polled.
    done: Option<(ResponseStatus, u16)>,
    /// A read overtaken by a write to its blocks: freed when it completes, never served.
    stale: bool,
}

impl Op {
    fn overlaps(&self, block: u64, count: u64) -> bool {
        self.kind != OpKind::Flush
            && self.block < block.saturating_add(count)
            && block < self.block + u64::from(self.count)
    }

    fn ok(&self) -> Result<(), ClientError> {
        match self.done {
            Some((ResponseStatus::Ok, n)) if n >= self.count => Ok(()),
            Some((ResponseStatus::Ok, _)) => Err(ClientError::Status(ResponseStatus::ErrIo)),
            Some((s, _)) => Err(ClientError::Status(s)),
            None => Err(ClientError::Stalled),
        }
    }
}

/// Block I/O with many requests in flight over a [`BlkClient`] it owns: the blk data region is
/// divided into 4 KiB slots that requests borrow while they are out.
///
/// - [`write_blocks`](Self::write_blocks) copies the blocks into free slots, submits one WRITE
///   per contiguous run (as large as the slots allow), publishes and returns without waiting
///   (posted). A later write to blocks still being written first waits for that write, so two
///   writes of one block never race at the driver. A posted write that fails is reported by the
///   next `write_blocks` or [`flush`](Self::flush).
/// - [`prefetch`](Self::prefetch) submits a READ and returns; a later
///   [`read_blocks`](Self::read_blocks) inside its range waits only for that request (if it has not
///   completed yet) and copies out. Other reads submit, publish and wait. A read of blocks with
///   a write in flight waits for the write first; a write over a prefetched range drops it.
/// - [`flush`](Self::flush) waits for every posted write, then FLUSHes.
/// - Waiting polls the response queue with [`lions_os::relax`] between looks and gives up with
///   [`ClientError::Stalled`] after `patience` pauses in a row with nothing answered (the virt
///   stops answering a client it faulted).
pub struct QueuedBlk<'a> {
    client: BlkClient<'a>,
    slots: usize,
    busy: [u64; QUEUED_SLOTS / 64],
    ops: [Option<Op>; QUEUED_OPS],
    /// The first failure of a posted write, not yet reported.
    error: Option<ClientError>,
    patience: u32,
}

impl<'a> QueuedBlk<'a> {
    /// Queued I/O through `client` (whose requests should all have completed).
    pub fn new(client: BlkClient<'a>) -> Self {
        Self::with_patience(client, DEFAULT_PATIENCE)
    }

    /// The same, giving up after `patience` idle pauses (see [`DEFAULT_PATIENCE`]).
    pub fn with_patience(client: BlkClient<'a>, patience: u32) -> Self {
        Self {
            slots: (client.data_len / BLK).min(QUEUED_SLOTS),
            client,
            busy: [0; QUEUED_SLOTS / 64],
            ops: [None; QUEUED_OPS],
            error: None,
            patience,
        }
    }

    /// The storage info, once published (see [`BlkClient::info`]).
    pub fn info(&self) -> Option<BlkStorageInfo> {
        self.client.info()
    }

    /// Wait until the storage info is published, and return it ([`ClientError::Stalled`] when
    /// it is not published within the patience).
    pub fn wait_ready(&mut self) -> Result<BlkStorageInfo, ClientError> {
        let client = &self.client;
        wait_for(self.patience, || Ok((client.info(), false)))
    }

    /// Take the responses the virt published, without waiting (call it when the virt notifies
    /// this client's channel): finished writes free their slots and failures are kept for the
    /// next call; prefetched reads wait to be taken. Returns whether anything was answered.
    pub fn poll(&mut self) -> Result<bool, ClientError> {
        self.reap()
    }

    /// Requests out (or completed reads not yet taken).
    pub fn outstanding(&self) -> usize {
        self.ops.iter().flatten().count()
    }

    /// Most blocks one request can move (the data region's slots).
    pub fn max_blocks(&self) -> usize {
        self.slots.min(usize::from(u16::MAX))
    }

    fn is_busy(&self, i: usize) -> bool {
        self.busy[i / 64] & (1 << (i % 64)) != 0
    }

    fn mark(&mut self, start: usize, n: usize, busy: bool) {
        for i in start..start + n {
            if busy {
                self.busy[i / 64] |= 1 << (i % 64);
            } else {
                self.busy[i / 64] &= !(1 << (i % 64));
            }
        }
    }

    /// The first run of `n` free slots.
    fn free_run(&self, n: usize) -> Option<usize> {
        let mut run = 0;
        for i in 0..self.slots {
            if self.is_busy(i) {
                run = 0;
            } else {
                run += 1;
                if run == n {
                    return Some(i + 1 - n);
                }
            }
        }
        None
    }

    fn release(&mut self, i: usize) {
        if let Some(op) = self.ops[i].take()
            && op.kind != OpKind::Flush
        {
            self.mark(op.slot, usize::from(op.count), false);
        }
    }

    /// Take every response; finished writes free their slots (a failure is kept for the next
    /// caller), finished stale reads are dropped. Returns whether anything was answered.
    fn reap(&mut self) -> Result<bool, ClientError> {
        let mut any = false;
        while let Some(c) = self.client.poll()? {
            any = true;
            let Some(i) = self
                .ops
                .iter()
                .position(|o| o.is_some_and(|o| o.id == c.id))
            else {
                continue; // Not ours (abandoned after a stall): nothing to do.
            };
            let Some(op) = self.ops[i].as_mut() else {
                continue;
            };
            op.done = Some((c.status, c.blocks));
            match op.kind {
                OpKind::Write => {
                    let r = op.ok();
                    self.release(i);
                    if let (Err(e), None) = (r, &self.error) {
                        self.error = Some(e);
                    }
                }
                OpKind::Read if op.stale => self.release(i),
                _ => {}
            }
        }
        if any {
            self.client.publish()?;
        }
        Ok(any)
    }

    /// Wait until `ready` holds (checked after each look at the responses).
    fn wait_until(&mut self, mut ready: impl FnMut(&Self) -> bool) -> Result<(), ClientError> {
        let patience = self.patience;
        wait_for(patience, || {
            let progress = self.reap()?;
            Ok((ready(self).then_some(()), progress))
        })
    }

    /// Stage a request of `count` blocks (with `data` copied into its slots first), without
    /// waiting: `None` when no op, slots or queue room is free now.
    fn try_start(
        &mut self,
        kind: OpKind,
        block: u64,
        count: u16,
        data: Option<&[u8]>,
    ) -> Result<Option<usize>, ClientError> {
        let Some(i) = self.ops.iter().position(Option::is_none) else {
            return Ok(None);
        };
        let n = usize::from(count);
        let slot = if kind == OpKind::Flush {
            0
        } else {
            match self.free_run(n) {
                Some(s) => s,
                None => return Ok(None),
            }
        };
        if let Some(d) = data {
            self.client.copy_to_data(slot * BLK, d)?;
        }
        let code = match kind {
            OpKind::Read => RequestCode::Read,
            OpKind::Write => RequestCode::Write,
            OpKind::Flush => RequestCode::Flush,
        };
        let id = match self.client.submit(code, block, count, slot * BLK) {
            Ok(id) => id,
            Err(ClientError::Full) => return Ok(None),
            Err(e) => return Err(e),
        };
        if kind != OpKind::Flush {
            self.mark(slot, n, true);
        }
        self.ops[i] = Some(Op {
            id,
            kind,
            block,
            count,
            slot,
            done: None,
            stale: false,
        });
        Ok(Some(i))
    }

    /// Stage a request, waiting for room if needed (completed reads nobody took are dropped
    /// first).
    fn start(
        &mut self,
        kind: OpKind,
        block: u64,
        count: u16,
        data: Option<&[u8]>,
    ) -> Result<usize, ClientError> {
        loop {
            if let Some(i) = self.try_start(kind, block, count, data)? {
                return Ok(i);
            }
            // Unclaimed prefetches make room first.
            let mut freed = false;
            for i in 0..QUEUED_OPS {
                if self.ops[i].is_some_and(|o| o.kind == OpKind::Read && o.done.is_some()) {
                    self.release(i);
                    freed = true;
                }
            }
            if freed {
                continue;
            }
            if self.outstanding() == 0 {
                // Nothing will come back to make room: the request is larger than the region.
                return Err(ClientError::Range);
            }
            self.client.publish()?;
            let before = self.outstanding();
            self.wait_until(|s| {
                s.outstanding() < before || s.ops.iter().flatten().any(|o| o.done.is_some())
            })?;
        }
    }

    /// Wait until op `i` has completed; returns it and frees it.
    fn finish(&mut self, i: usize) -> Result<Op, ClientError> {
        self.wait_until(|s| s.ops[i].is_some_and(|o| o.done.is_some()))?;
        let op = self.ops[i].ok_or(ClientError::Stalled)?;
        Ok(op)
    }

    /// Check a transfer of `len` bytes at `block`: whole blocks inside the device.
    fn check(&self, block: u64, len: usize) -> Result<u64, ClientError> {
        let info = self.client.info().ok_or(ClientError::NotReady)?;
        let n = (len / BLK) as u64;
        if !len.is_multiple_of(BLK) || block.checked_add(n).is_none_or(|e| e > info.capacity) {
            return Err(ClientError::Range);
        }
        Ok(n)
    }

    /// Wait until no write overlapping `block..block + n` is out.
    fn wait_writes(&mut self, block: u64, n: u64) -> Result<(), ClientError> {
        let clash = |s: &Self| {
            s.ops
                .iter()
                .flatten()
                .any(|o| o.kind == OpKind::Write && o.overlaps(block, n))
        };
        if clash(self) {
            self.client.publish()?;
            self.wait_until(|s| !clash(s))?;
        }
        Ok(())
    }

    /// Start reading `count` blocks at `block` and return at once; a later
    /// [`read_blocks`](Self::read_blocks) inside the range takes them. A hint: nothing happens
    /// when the range overlaps another request, lies outside the device, or no room is free.
    pub fn prefetch(&mut self, block: u64, count: u64) -> Result<(), ClientError> {
        let count = count.min(self.max_blocks() as u64);
        let Some(info) = self.client.info() else {
            return Ok(());
        };
        let count = count.min(info.capacity.saturating_sub(block));
        if count == 0 || self.ops.iter().flatten().any(|o| o.overlaps(block, count)) {
            return Ok(());
        }
        let count = u16::try_from(count).unwrap_or(u16::MAX); // `<= max_blocks() <= u16::MAX`
        if self.try_start(OpKind::Read, block, count, None)?.is_some() {
            self.client.publish()?;
        }
        Ok(())
    }

    /// Read `buf.len() / 4096` blocks from `block` into `buf` (see the type's docs).
    pub fn read_blocks(&mut self, block: u64, buf: &mut [u8]) -> Result<(), ClientError> {
        let n = self.check(block, buf.len())?;
        if n == 0 {
            return Ok(());
        }
        self.reap()?;
        self.wait_writes(block, n)?;
        // A prefetch that holds the whole range.
        let hit = self.ops.iter().position(|o| {
            o.is_some_and(|o| {
                o.kind == OpKind::Read
                    && !o.stale
                    && o.block <= block
                    && block + n <= o.block + u64::from(o.count)
            })
        });
        if let Some(i) = hit {
            let op = self.finish(i)?;
            let r = op.ok().and_then(|()| {
                // `block - op.block < op.count <= u16::MAX`.
                let at =
                    (op.slot + usize::from(u16::try_from(block - op.block).unwrap_or(0))) * BLK;
                self.client.copy_from_data(at, buf)
            });
            self.release(i);
            return r;
        }
        // Prefetches that overlap only part of it are left to finish on their own.
        let chunk = self.max_blocks().max(1) * BLK;
        for (k, part) in buf.chunks_mut(chunk).enumerate() {
            let at = block + (k * chunk / BLK) as u64;
            let i = self.start(OpKind::Read, at, count_of(part.len()), None)?;
            self.client.publish()?;
            let op = self.finish(i)?;
            let r = op
                .ok()
                .and_then(|()| self.client.copy_from_data(op.slot * BLK, part));
            self.release(i);
            r?;
        }
        Ok(())
    }

    /// Write `buf` (a whole number of blocks) from `block`, posted (see the type's docs); returns
    /// the failure of an earlier posted write if one is unreported.
    pub fn write_blocks(&mut self, block: u64, buf: &[u8]) -> Result<(), ClientError> {
        let n = self.check(block, buf.len())?;
        self.reap()?;
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if n == 0 {
            return Ok(());
        }
        for i in 0..QUEUED_OPS {
            if let Some(o) = self.ops[i].as_mut()
                && o.kind == OpKind::Read
                && o.overlaps(block, n)
            {
                if o.done.is_some() {
                    self.release(i);
                } else {
                    o.stale = true;
                }
            }
        }
        self.wait_writes(block, n)?;
        let chunk = self.max_blocks().max(1) * BLK;
        for (k, part) in buf.chunks(chunk).enumerate() {
            let at = block + (k * chunk / BLK) as u64;
            self.start(OpKind::Write, at, count_of(part.len()), Some(part))?;
        }
        self.client.publish()
    }

    /// Wait for every posted write, report the first that failed, then FLUSH and wait: every
    /// write so far is durable.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        self.client.publish()?;
        let writing = |s: &Self| s.ops.iter().flatten().any(|o| o.kind == OpKind::Write);
        self.wait_until(|s| !writing(s))?;
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let i = self.start(OpKind::Flush, 0, 0, None)?;
        self.client.publish()?;
        let op = self.finish(i)?;
        self.release(i);
        op.ok()
    }

    /// Wait for everything out, and give the asynchronous client back.
    pub fn into_inner(mut self) -> Result<BlkClient<'a>, ClientError> {
        self.client.publish()?;
        self.wait_until(|s| {
            s.ops
                .iter()
                .flatten()
                .all(|o| o.done.is_some() && o.kind != OpKind::Write)
        })?;
        Ok(self.client)
    }
}
