// SPDX-License-Identifier: BSD-2-Clause
//! Unit-test helpers: owned memory standing in for shared regions, queue pairs whose far end the
//! test plays, a backend that records notifications, and a cache model that is not coherent.
#![allow(clippy::unwrap_used)]

use crate::NetConnectionResource;
use crate::cache::CacheOps;
use crate::queue::{NetQueue, NetSink, NetSource};
use crate::region::Span;
use core::ptr::NonNull;
use lions_os::runtime::{Backend, with_backend};
use lions_os::{
    Channel, ChannelSet, Handler, Mapped, MessageInfo, OsError, RegionResource, Regions,
};
use std::cell::RefCell;

/// Zeroed, page-aligned memory standing in for one shared region (a sim region, so
/// [`mapped`] finds it in the sim's mapping table), `bytes` rounded up to 8 long.
pub struct Mem {
    region: lions_os::sim::Region,
    len: usize,
}

impl Mem {
    pub fn new(bytes: usize) -> Self {
        Self {
            region: lions_os::sim::Region::new(bytes),
            len: bytes.div_ceil(8) * 8,
        }
    }

    pub fn ptr(&self) -> NonNull<u8> {
        self.region.as_ptr()
    }

    pub fn res(&self) -> RegionResource {
        RegionResource {
            vaddr: self.ptr().as_ptr().expose_provenance() as u64,
            size: self.len as u64,
        }
    }

    /// Write `bytes` at `at` (the test playing a peer or a device).
    pub fn write(&self, at: usize, bytes: &[u8]) {
        assert!(at + bytes.len() <= self.len);
        // SAFETY: in bounds (checked); the memory is only accessed through raw pointers.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr().as_ptr().add(at), bytes.len())
        };
    }

    /// Read `n` bytes at `at`.
    pub fn read(&self, at: usize, n: usize) -> Vec<u8> {
        assert!(at + n <= self.len);
        let mut out = vec![0; n];
        // SAFETY: in bounds (checked).
        unsafe { core::ptr::copy_nonoverlapping(self.ptr().as_ptr().add(at), out.as_mut_ptr(), n) };
        out
    }
}

/// `config`'s token, checked against the sim's mapping table.
pub fn mapped<C: Regions>(config: &C) -> Mapped<'_, C> {
    // SAFETY: each unit test builds one component per config (a restarted one after the first is
    // dropped) and plays the peers through the far ends only.
    unsafe { Mapped::check(config) }.unwrap()
}

/// A free/active queue pair.
pub struct Pair {
    pub free: Mem,
    pub active: Mem,
    pub cap: u16,
}

impl Pair {
    pub fn new(cap: u16) -> Self {
        let n = NetQueue::bytes_for(usize::from(cap));
        Self {
            free: Mem::new(n),
            active: Mem::new(n),
            cap,
        }
    }

    pub fn conn(&self, id: u8) -> NetConnectionResource {
        NetConnectionResource {
            free_queue: self.free.res(),
            active_queue: self.active.res(),
            num_buffers: self.cap,
            id,
            _pad: [0; 5],
        }
    }

    /// The source end, for the test playing the source.
    pub fn source(&self) -> NetSource<'_> {
        // SAFETY: the memory outlives the handle; the component under test holds the sink.
        unsafe { NetSource::from_connection(&self.conn(0)) }.unwrap()
    }

    /// The sink end, for the test playing the sink.
    pub fn sink(&self) -> NetSink<'_> {
        // SAFETY: as above, roles swapped.
        unsafe { NetSink::from_connection(&self.conn(0)) }.unwrap()
    }

    /// The active queue's shared tail.
    pub fn active_tail(&self) -> u16 {
        u16::from_le_bytes(self.active.read(0, 2).try_into().unwrap())
    }
}

/// A backend that records the channels notified (immediately or deferred).
#[derive(Default)]
pub struct Rec {
    pub notified: RefCell<Vec<u8>>,
}

impl Backend for Rec {
    fn pd_name(&self) -> &str {
        "unit"
    }
    fn notify(&self, ch: Channel) -> Result<(), OsError> {
        self.notified.borrow_mut().push(ch.index());
        Ok(())
    }
    fn irq_ack(&self, _: Channel) -> Result<(), OsError> {
        Ok(())
    }
    fn ppcall(&self, _: Channel, msg: MessageInfo) -> Result<MessageInfo, OsError> {
        Ok(msg)
    }
    fn mr(&self, _: usize) -> u64 {
        0
    }
    fn set_mr(&self, _: usize, _: u64) {}
}

/// One event for `h` (channels `set`); the channels it notified, in order.
pub fn event<H: Handler>(h: &mut H, set: ChannelSet) -> Vec<u8>
where
    H::Error: core::fmt::Debug,
{
    let rec = Rec::default();
    with_backend(&rec, || h.notified(set)).unwrap();
    rec.notified.take()
}

/// A cache that is not coherent with DMA: the device works on `device`, the CPU on the region
/// at `cpu`. `clean_invalidate` copies device → CPU (the CPU sees what the device wrote only
/// after it), `clean` copies CPU → device. Each operation is logged with the tail of `watch` at
/// that moment.
pub struct NonCoherent<'a> {
    pub cpu: &'a Mem,
    pub device: &'a Mem,
    pub watch: &'a Pair,
    pub log: &'a RefCell<Vec<(&'static str, usize, usize, u16)>>,
}

impl NonCoherent<'_> {
    /// Offset of `span` in the modelled region and its length; `None` outside it (logged only).
    fn place(&self, what: &'static str, span: &Span<'_>) -> Option<(usize, usize)> {
        let at = span
            .addr()
            .checked_sub(self.cpu.ptr().as_ptr().addr())
            .unwrap_or(usize::MAX);
        let n = usize::from(span.len());
        self.log
            .borrow_mut()
            .push((what, at, n, self.watch.active_tail()));
        (at != usize::MAX && at + n <= self.cpu.len).then_some((at, n))
    }
}

impl CacheOps for NonCoherent<'_> {
    fn clean(&self, span: Span<'_>) {
        if let Some((at, n)) = self.place("clean", &span) {
            self.device.write(at, &self.cpu.read(at, n));
        }
    }

    fn clean_invalidate(&self, span: Span<'_>) {
        if let Some((at, n)) = self.place("clean_invalidate", &span) {
            self.cpu.write(at, &self.device.read(at, n));
        }
    }
}
