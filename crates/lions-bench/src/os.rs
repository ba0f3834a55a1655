// SPDX-License-Identifier: BSD-2-Clause
//! What every workload shares: the counting kernel shim, the measured event wrappers, plain heap
//! memory standing in for shared regions, and a raw ring that plays a component's peer.
//!
//! ## Protocol of the measurement
//!
//! - One [`Shim`] is installed with [`lions_os::runtime::with_backend`] for a whole workload, as
//!   the seL4 Microkit runtime installs its backend once per PD. Its `notify` counts per channel
//!   in [`insns_shim_notify`], a function of its own so that `xtask` can subtract its cost (the
//!   stand-in for the seL4 system call is not component work).
//! - Every event of a measured component runs through an `#[inline(never)]`, unmangled wrapper
//!   made by [`event_fns!`]: `insns_<component>` while measuring, `warm_<component>` during the
//!   warm-up. Callgrind's `--toggle-collect=insns_<component>` therefore counts exactly the
//!   component's `notified` (and its deferred action, performed at the end of the event as the
//!   Microkit event loop does), never the bench's own peer work nor the warm-up.
//! - Peers write the shared queues directly in their C wire layout ([`Ring`]), not through the
//!   crates' queue handles: the layouts are fixed (sDDF 0.7), the Rust handles are being reworked.

use core::cell::Cell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use lions_os::runtime::{Backend, take_deferred};
use lions_os::{Channel, ChannelSet, Handler, MessageInfo, OsError, RegionResource};

/// The kernel stand-in: counts notifications per channel, refuses nothing.
pub struct Shim {
    counts: [Cell<u64>; 64],
    /// Message registers, for the PPCs a workload makes at start (I²C bus claims).
    mrs: [Cell<u64>; 4],
}

impl Default for Shim {
    fn default() -> Self {
        Self {
            counts: [const { Cell::new(0) }; 64],
            mrs: [const { Cell::new(0) }; 4],
        }
    }
}

impl Shim {
    /// Notifications sent on channel `ch` since the last [`reset`](Self::reset).
    pub fn count(&self, ch: u8) -> u64 {
        self.counts[usize::from(ch) % 64].get()
    }

    /// All notifications since the last reset.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(Cell::get).sum()
    }

    /// Forget the counts (after the warm-up).
    pub fn reset(&self) {
        self.counts.iter().for_each(|c| c.set(0));
    }
}

/// The counting body of the shim's `notify`: its own symbol, subtracted by `xtask bench insns`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "Rust" fn insns_shim_notify(shim: &Shim, ch: u8) {
    let c = &shim.counts[usize::from(ch) % 64];
    c.set(c.get() + 1);
}

impl Backend for Shim {
    fn pd_name(&self) -> &str {
        "bench"
    }
    fn notify(&self, ch: Channel) -> Result<(), OsError> {
        insns_shim_notify(self, ch.index());
        Ok(())
    }
    fn irq_ack(&self, _: Channel) -> Result<(), OsError> {
        Ok(())
    }
    fn ppcall(&self, _: Channel, msg: MessageInfo) -> Result<MessageInfo, OsError> {
        Ok(msg)
    }
    fn mr(&self, i: usize) -> u64 {
        self.mrs.get(i).map_or(0, Cell::get)
    }
    fn set_mr(&self, i: usize, v: u64) {
        if let Some(mr) = self.mrs.get(i) {
            mr.set(v);
        }
    }
}

#[cold]
#[inline(never)]
fn failed(what: &str, e: &dyn core::fmt::Display) -> ! {
    panic!("{what} failed: {e}")
}

/// One event of `h`: `notified(set)`, then the deferred action, as the Microkit event loop
/// performs it when it waits for the next event. A handler error aborts the bench.
#[inline(always)]
pub fn event<H: Handler>(h: &mut H, set: ChannelSet) {
    if let Err(e) = h.notified(set) {
        failed("notified", &e);
    }
    if let Some(d) = take_deferred()
        && let Err(e) = d.execute()
    {
        failed("deferred action", &e);
    }
}

/// A component's `init`-like start-up step, with its deferred action.
pub fn start<E: core::fmt::Display>(f: impl FnOnce() -> Result<(), E>) {
    if let Err(e) = f() {
        failed("init", &e);
    }
    if let Some(d) = take_deferred()
        && let Err(e) = d.execute()
    {
        failed("deferred action", &e);
    }
}

/// Events run by the warm-up wrappers.
pub static WARM_EVENTS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The measured (`insns_*`) and warm-up (`warm_*`) event wrappers of one component type.
macro_rules! event_fns {
    ($(#[$doc:meta])* $measured:ident, $warm:ident, $ty:ty) => {
        $(#[$doc])*
        #[inline(never)]
        #[unsafe(no_mangle)]
        pub extern "Rust" fn $measured(h: &mut $ty, set: lions_os::ChannelSet) {
            $crate::os::event(h, set)
        }
        /// The same event during the warm-up (not collected). It counts itself, which also
        /// keeps the compiler from merging it with the measured wrapper into one symbol.
        #[inline(never)]
        #[unsafe(no_mangle)]
        pub extern "Rust" fn $warm(h: &mut $ty, set: lions_os::ChannelSet) {
            $crate::os::WARM_EVENTS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            $crate::os::event(h, set)
        }
    };
}
pub(crate) use event_fns;

/// The channel set of `ids`.
pub fn set(ids: &[u8]) -> ChannelSet {
    ids.iter()
        .fold(ChannelSet::EMPTY, |s, &i| s.with(Channel::new(i)))
}

/// Zeroed, 8-aligned heap memory standing in for one shared region.
pub struct Mem {
    buf: Vec<u64>,
}

impl Mem {
    /// `bytes` zeroed bytes (rounded up to 8).
    pub fn new(bytes: usize) -> Self {
        Self {
            buf: vec![0; bytes.div_ceil(8)],
        }
    }

    /// Start of the region.
    pub fn ptr(&self) -> NonNull<u8> {
        NonNull::from(&self.buf[..]).cast()
    }

    /// Its address as a config names it.
    pub fn addr(&self) -> u64 {
        self.ptr().as_ptr().expose_provenance() as u64
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.buf.len() * 8
    }

    /// The region as a config names it.
    pub fn res(&self) -> RegionResource {
        RegionResource {
            vaddr: self.addr(),
            size: self.len() as u64,
        }
    }

    /// Write `bytes` at `at` (a peer or device writing).
    pub fn write(&self, at: usize, bytes: &[u8]) {
        assert!(at + bytes.len() <= self.len(), "write outside the region");
        // SAFETY: in bounds (checked); the memory is only accessed through raw pointers while the
        // components hold it.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr().as_ptr().add(at), bytes.len())
        };
    }

    /// Read `out.len()` bytes at `at`.
    pub fn read(&self, at: usize, out: &mut [u8]) {
        assert!(at + out.len() <= self.len(), "read outside the region");
        // SAFETY: in bounds (checked).
        unsafe {
            core::ptr::copy_nonoverlapping(self.ptr().as_ptr().add(at), out.as_mut_ptr(), out.len())
        };
    }

    /// The little-endian `u32` at `at` (4-aligned), read atomically.
    pub fn load32(&self, at: usize) -> u32 {
        self.atomic32(at).load(Ordering::Acquire)
    }

    /// Store `v` at `at` (4-aligned) atomically.
    pub fn store32(&self, at: usize, v: u32) {
        self.atomic32(at).store(v, Ordering::Release);
    }

    fn atomic32(&self, at: usize) -> &AtomicU32 {
        assert!(
            at.is_multiple_of(4) && at + 4 <= self.len(),
            "bad u32 at {at}"
        );
        // SAFETY: aligned and in bounds (checked); shared words are only accessed atomically.
        unsafe { AtomicU32::from_ptr(self.ptr().as_ptr().add(at).cast()) }
    }

    fn atomic16(&self, at: usize) -> &AtomicU16 {
        assert!(
            at.is_multiple_of(2) && at + 2 <= self.len(),
            "bad u16 at {at}"
        );
        // SAFETY: as in `atomic32`.
        unsafe { AtomicU16::from_ptr(self.ptr().as_ptr().add(at).cast()) }
    }
}

/// Width of a ring's free-running indices.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Width {
    /// `uint16_t` (net queues).
    U16,
    /// `uint32_t` (serial, blk).
    U32,
}

/// One SPSC ring in its C layout, driven by the bench as the peer of a component: the header
/// (`head`/`tail` at fixed offsets) in one region, entries of type `E` at `entries` in the same
/// or another region, `cap` slots (a power of two), slot = index mod `cap`.
pub struct Ring<'m, E> {
    header: &'m Mem,
    head_at: usize,
    tail_at: usize,
    entries: &'m Mem,
    entries_at: usize,
    cap: u32,
    width: Width,
    _e: core::marker::PhantomData<E>,
}

impl<'m, E: Copy> Ring<'m, E> {
    /// The ring over `header` (indices at `head_at`, `tail_at`) and `entries` (from
    /// `entries_at`), `cap` slots.
    pub fn new(
        header: &'m Mem,
        (head_at, tail_at): (usize, usize),
        entries: &'m Mem,
        entries_at: usize,
        cap: u32,
        width: Width,
    ) -> Self {
        assert!(
            cap.is_power_of_two(),
            "capacity {cap} is not a power of two"
        );
        assert!(entries_at + cap as usize * size_of::<E>() <= entries.len());
        Self {
            header,
            head_at,
            tail_at,
            entries,
            entries_at,
            cap,
            width,
            _e: core::marker::PhantomData,
        }
    }

    fn load(&self, at: usize) -> u32 {
        match self.width {
            Width::U16 => u32::from(self.header.atomic16(at).load(Ordering::Acquire)),
            Width::U32 => self.header.load32(at),
        }
    }

    fn store(&self, at: usize, v: u32) {
        match self.width {
            Width::U16 => {
                let v = u16::try_from(v & 0xffff).unwrap_or_default();
                self.header.atomic16(at).store(v, Ordering::Release);
            }
            Width::U32 => self.header.store32(at, v),
        }
    }

    fn mask(&self, v: u32) -> u32 {
        match self.width {
            Width::U16 => v & 0xffff,
            Width::U32 => v,
        }
    }

    fn slot(&self, index: u32) -> *mut E {
        let at = self.entries_at + (index & (self.cap - 1)) as usize * size_of::<E>();
        // SAFETY: `at` lies inside `entries` (checked in `new` for every slot).
        unsafe { self.entries.ptr().as_ptr().add(at).cast() }
    }

    /// Entries queued.
    pub fn len(&self) -> u32 {
        self.mask(
            self.load(self.tail_at)
                .wrapping_sub(self.load(self.head_at)),
        )
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Produce one entry; panics if the ring is full (the bench never overfills a queue).
    pub fn push(&self, e: E) {
        assert!(self.len() < self.cap, "bench peer: queue full");
        let t = self.load(self.tail_at);
        // SAFETY: the slot is ours until the tail moves past it (single producer).
        unsafe { self.slot(t).write_unaligned(e) };
        self.store(self.tail_at, self.mask(t.wrapping_add(1)));
    }

    /// Consume one entry.
    pub fn pop(&self) -> Option<E> {
        if self.is_empty() {
            return None;
        }
        let h = self.load(self.head_at);
        // SAFETY: published by the producer (tail past it), not yet released by us.
        let e = unsafe { self.slot(h).read_unaligned() };
        self.store(self.head_at, self.mask(h.wrapping_add(1)));
        Some(e)
    }
}
