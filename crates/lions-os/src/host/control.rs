// SPDX-License-Identifier: BSD-2-Clause
//! The host board's kernel objects: shared pages split by who may write them.
//!
//! seL4 gives a PD capabilities only for the channels its system description names; a PD cannot
//! even name another channel. The host board keeps that property by giving every channel its own
//! kernel objects and passing a PD (by descriptor inheritance) only the objects of its own
//! channels. No word a PD can write is read by anyone as a statement about another channel.
//!
//! ```text
//! board table  one memfd, created and written by the launcher only, sealed
//!              (F_SEAL_FUTURE_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) before any PD
//!              starts; every PD maps it read-only (no descriptor to it is writable, not even one
//!              re-opened through /proc/self/fd, and a read-only map cannot be made writable)
//!   offset 0   Header (64 B)  magic "LionsHst" (u64 LE), version u32, num_pds u32
//!   offset 64  state u32[num_pds]   0 starting, 1 running, 2 gone (faulted, exited or stopped)
//!
//! channel page one 4096-byte memfd per channel, mapped read-write by the channel's two ends (and
//!              the launcher) only. End 0 is the end with the lower (PD number, channel id).
//!   offset 0     Half 0: from end 0 to end 1
//!   offset 1088  Half 1: from end 1 to end 0
//!
//! Half (1088 B, 64-byte aligned), byte offsets:
//!    0  pending u64  bit 0 [`flag::PENDING`]: the sender notified the receiver (OR-coalesced);
//!                    bit 1 [`flag::SLEEPING`]: the receiver is blocked (or about to block);
//!                    every other bit is ignored
//!   64  call    u64  a PPC by the sender into the receiver: sequence << 2 | [`call`] state
//!   72  label   u64  message label (request, then reply)
//!   80  count   u64  message register count (request, then reply; the reader clamps it)
//!   88  mrs     120 x u64 message registers of the call
//!
//! wake-ups     one non-blocking pipe per half: only the sender holds its write end, only the
//!              receiver its read end (in an edge-triggered epoll set of all its inbound pipes,
//!              drained after each wake-up). Neither end can block, fill for good or change the
//!              flags of the other's side, so a peer cannot make a sender's wake-up write hang.
//!
//! stats page   one 4096-byte memfd per PD, mapped read-write by that PD and by the launcher:
//!              [`Stats`] at offset 0 (5 x u64), cumulative over restarts;
//!              [`Held`] at [`HELD_OFFSET`] (1 + 4 x u64): buffers the PD holds privately,
//!              as it reports them ([`crate::host::report_held`]); `reported` is cleared by
//!              the launcher when the PD is started again
//! ```
//!
//! A PD's message registers (its IPC buffer) are private memory of its process; a PPC copies them
//! into the channel's half and back.
//!
//! Rules:
//!
//! - **notify**: the sender (which must hold the notify right; the receiver ignores the flag of a
//!   peer that does not) drops the notification if the receiver is gone in the board table, else
//!   ORs [`flag::PENDING`] into its outbound half (sequentially consistent) and writes the half's
//!   pipe only if the word was exactly [`flag::SLEEPING`] before: the receiver is blocked (or
//!   about to) and this is the first notification on this channel since. A running receiver sees
//!   the flag before it next blocks, so a notification to it costs no system call.
//! - **sleep**: before blocking, a PD ORs [`flag::SLEEPING`] into the pending word of each inbound
//!   half whose sender may notify (sequentially consistent); if one already held
//!   [`flag::PENDING`] it does not block, nor if an inbound call waits. To take its badge it swaps
//!   every non-zero inbound pending word to zero (clearing [`flag::SLEEPING`] too): bit n of the
//!   badge is channel n exactly when channel n's half held [`flag::PENDING`]. So a PD's channel
//!   ids only ever get bits its own peers set, each on its own channel.
//! - **PPC**: the caller writes label, count and registers into its outbound half, stores
//!   `seq | WAITING` in its `call` (sequentially consistent), re-checks that the callee is not gone,
//!   writes the half's pipe, and waits on its inbound pipe of that channel until `call` holds
//!   `seq | REPLIED` (or `GONE`). The callee serves calls before notifications, lowest channel
//!   first, and only on channels whose peer holds the PPC right: it copies label, count (clamped)
//!   and registers into its private registers, runs `protected`, writes the reply into the half and
//!   moves `call` from the exact word it read to `REPLIED` with one compare-and-swap, then writes
//!   its outbound pipe of that channel.
//! - **death**: the launcher marks the PD gone in the board table (sequentially consistent), then,
//!   in each of the PD's channel pages, moves a call waiting on it to `GONE` and writes the pipe
//!   toward the caller, cancels the PD's own call, and clears its inbound pending words. With the
//!   caller's re-check, a call into a dying PD always returns.
//!
//! A PD can write only the halves of its own channels: a forged flag, call or reply there is one
//! its peer could receive from it legitimately anyway (a notification on a channel it holds; a call
//! it is refused unless it holds the PPC right; a reply to a call it was made). A pipe write
//! carries no badge, so a spurious wake-up costs the receiver one more check.

use crate::channel::MAX_MESSAGE_REGISTERS;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::sys;

/// `"LionsHst"`, little-endian: the first word of a board table.
pub const MAGIC: u64 = u64::from_le_bytes(*b"LionsHst");

/// Layout version; bumped on any change to this file's layout or rules.
pub const VERSION: u32 = 4;

/// Size of a channel page and of a stats page.
pub const PAGE_SIZE: usize = 4096;

/// The bits of a half's `pending` word.
pub mod flag {
    /// The sender notified the receiver.
    pub const PENDING: u64 = 1;
    /// The receiver is blocked (or about to block) on its wake-up pipes.
    pub const SLEEPING: u64 = 2;
}

/// The first 64 bytes of the board table.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: AtomicU64,
    /// [`VERSION`].
    pub version: AtomicU32,
    /// Number of PDs in the table.
    pub num_pds: AtomicU32,
}

/// Lifecycle of a PD (its word in the board table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum PdState {
    /// Spawned (or about to be); calls and notifications queue up until it serves them.
    Starting = 0,
    /// Its event loop runs.
    Running = 1,
    /// Faulted, exited or stopped: notifications are dropped, calls fail with `PeerGone`.
    Gone = 2,
}

/// Call states (the low two bits of a half's `call` word).
pub mod call {
    /// No call in progress.
    pub const IDLE: u64 = 0;
    /// The caller waits for the callee.
    pub const WAITING: u64 = 1;
    /// The callee replied: label, count and registers hold the reply.
    pub const REPLIED: u64 = 2;
    /// The callee died (or was gone) before it replied.
    pub const GONE: u64 = 3;
    /// Mask of the state bits.
    pub const MASK: u64 = 3;
}

/// Per-PD counters (cumulative over restarts), at offset 0 of the PD's stats page.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Stats {
    /// `notify` calls that reached a live peer.
    pub notifications_sent: AtomicU64,
    /// Notification channels delivered to `notified` (one per channel per delivery).
    pub notifications_received: AtomicU64,
    /// PPCs this PD made that were answered.
    pub ppcs_made: AtomicU64,
    /// PPCs this PD served.
    pub ppcs_served: AtomicU64,
    /// IRQs (host fd events) delivered to `notified`.
    pub irqs_received: AtomicU64,
}

impl Stats {
    /// Add to a counter only this PD writes (plain load and store: no locked instruction).
    pub(crate) fn bump(counter: &AtomicU64, n: u64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }
}

/// Offset of [`Held`] in a stats page.
pub const HELD_OFFSET: usize = 512;

/// Slots of [`Held`].
pub const HELD_SLOTS: usize = 4;

/// What a slot of [`Held`] counts, by convention for every device class: a driver's receive
/// buffers ([`held::RX`]: posted to the device, not yet given back) and transmit buffers
/// ([`held::TX`]: taken to send, not yet given back).
pub mod held {
    /// Receive buffers a driver holds.
    pub const RX: usize = 0;
    /// Transmit buffers a driver holds.
    pub const TX: usize = 1;
}

/// Buffers a PD holds privately (taken from a shared queue and not yet given back on one), as
/// the PD itself reports them, at [`HELD_OFFSET`] of its stats page: an operator (the
/// launcher's `snapshot`) can then account for every buffer, including those in a driver's
/// private ring. Written only by the PD (relaxed stores), read by the launcher.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Held {
    /// Bit `i` set: slot `i` has been reported by this incarnation of the PD.
    pub reported: AtomicU64,
    /// Per slot ([`held`]), the buffers held.
    pub count: [AtomicU64; HELD_SLOTS],
}

/// One direction of a channel (see the [module docs](self)).
#[repr(C, align(64))]
#[derive(Debug)]
pub struct Half {
    /// [`flag`] bits.
    pub pending: AtomicU64,
    _pad: [u64; 7],
    /// `seq << 2 | state`, see [`call`].
    pub call: AtomicU64,
    /// Message label.
    pub label: AtomicU64,
    /// Message register count.
    pub count: AtomicU64,
    /// Message registers.
    pub mrs: [AtomicU64; MAX_MESSAGE_REGISTERS],
}

impl Half {
    /// Post a notification (sender side). Returns whether the half's wake-up pipe must be written.
    pub fn notify(&self) -> bool {
        self.pending.fetch_or(flag::PENDING, Ordering::SeqCst) == flag::SLEEPING
    }

    /// Announce that the receiver is about to block (receiver side). Returns false when a
    /// notification is already pending (handle it instead of blocking); the next
    /// [`take`](Self::take) clears the flag either way.
    pub fn prepare_sleep(&self) -> bool {
        self.pending.fetch_or(flag::SLEEPING, Ordering::SeqCst) & flag::PENDING == 0
    }

    /// Take the pending notification (receiver side), clearing [`flag::SLEEPING`] too.
    pub fn take(&self) -> bool {
        self.pending.load(Ordering::Relaxed) != 0
            && self.pending.swap(0, Ordering::SeqCst) & flag::PENDING != 0
    }

    /// The call word when a call waits in this half (callee side).
    pub fn waiting_call(&self) -> Option<u64> {
        let w = self.call.load(Ordering::Acquire);
        (w & call::MASK == call::WAITING).then_some(w)
    }

    /// Answer the call whose word was `w` with `state` (callee or launcher side): true when the
    /// call was still waiting, so the caller must be woken.
    pub fn finish_call(&self, w: u64, state: u64) -> bool {
        self.call
            .compare_exchange(
                w,
                (w & !call::MASK) | (state & call::MASK),
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
    }

    /// Message register count as stored, clamped to [`MAX_MESSAGE_REGISTERS`].
    pub fn clamped_count(&self) -> usize {
        usize::try_from(self.count.load(Ordering::Relaxed))
            .unwrap_or(MAX_MESSAGE_REGISTERS)
            .min(MAX_MESSAGE_REGISTERS)
    }
}

/// Offset of half 1 in a channel page.
pub const HALF1_OFFSET: usize = size_of::<Half>();
const _: () = assert!(2 * size_of::<Half>() <= PAGE_SIZE);

/// Map `len` bytes of a memfd read-write: the common part of the page types below.
fn map_rw(fd: BorrowedFd<'_>, len: usize) -> io::Result<sys::Mapping> {
    sys::Mapping::new(fd, len, true)
}

/// A mapped channel page: the two [`Half`]s of one channel.
pub struct ChannelPage {
    map: sys::Mapping,
}

impl core::fmt::Debug for ChannelPage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChannelPage").finish_non_exhaustive()
    }
}

impl ChannelPage {
    /// Create a zeroed channel page (launcher side): the memfd to pass to the channel's two ends,
    /// and the launcher's own mapping.
    pub fn create(name: &str) -> io::Result<(OwnedFd, Self)> {
        let fd = sys::memfd(name, PAGE_SIZE as u64, false)?;
        let map = map_rw(fd.as_fd(), PAGE_SIZE)?;
        Ok((fd, Self { map }))
    }

    /// Map an existing channel page (an end's side).
    pub fn open(fd: BorrowedFd<'_>) -> io::Result<Self> {
        Ok(Self {
            map: map_rw(fd, PAGE_SIZE)?,
        })
    }

    /// Half `i` (0: from end 0 to end 1, 1: from end 1 to end 0). Panics if `i > 1`.
    pub fn half(&self, i: usize) -> &Half {
        assert!(i < 2, "a channel has two halves");
        debug_assert!(self.map.len() >= 2 * size_of::<Half>());
        // SAFETY: in bounds (two halves fit in the page, checked at compile time), aligned
        // (page-aligned base, 64-byte aligned halves), and holding only atomics, for which every
        // bit pattern is valid and which other processes change only atomically.
        unsafe { &*self.map.ptr().add(i * size_of::<Half>()).cast::<Half>() }
    }
}

/// A mapped stats page (one per PD).
pub struct StatsPage {
    map: sys::Mapping,
}

impl core::fmt::Debug for StatsPage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StatsPage").finish_non_exhaustive()
    }
}

impl StatsPage {
    /// Create a zeroed stats page (launcher side).
    pub fn create(name: &str) -> io::Result<(OwnedFd, Self)> {
        let fd = sys::memfd(name, PAGE_SIZE as u64, false)?;
        let map = map_rw(fd.as_fd(), PAGE_SIZE)?;
        Ok((fd, Self { map }))
    }

    /// Map an existing stats page (the PD's side).
    pub fn open(fd: BorrowedFd<'_>) -> io::Result<Self> {
        Ok(Self {
            map: map_rw(fd, PAGE_SIZE)?,
        })
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        // SAFETY: offset 0 of a page-aligned 4096-byte mapping of atomics (any bits valid).
        unsafe { &*self.map.ptr().cast::<Stats>() }
    }

    /// The buffers the PD reports holding.
    pub fn held(&self) -> &Held {
        const _: () = assert!(HELD_OFFSET >= size_of::<Stats>());
        const _: () = assert!(HELD_OFFSET + size_of::<Held>() <= PAGE_SIZE);
        const _: () = assert!(HELD_OFFSET.is_multiple_of(align_of::<Held>()));
        // SAFETY: in bounds and aligned (checked above, page-aligned base), beside `Stats`, and
        // holding only atomics (any bits valid).
        unsafe { &*self.map.ptr().add(HELD_OFFSET).cast::<Held>() }
    }
}

/// The mapped board table: every PD's lifecycle state, written by the launcher only.
pub struct BoardTable {
    map: sys::Mapping,
    num_pds: usize,
    writable: bool,
}

impl core::fmt::Debug for BoardTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BoardTable")
            .field("num_pds", &self.num_pds)
            .field("writable", &self.writable)
            .finish()
    }
}

impl BoardTable {
    /// Bytes needed for `num_pds` PDs.
    pub const fn size(num_pds: usize) -> usize {
        size_of::<Header>() + num_pds * size_of::<u32>()
    }

    /// Create the board table for `num_pds` PDs (launcher side), every PD
    /// [`PdState::Starting`]: the sealed memfd to pass to the PDs (nobody can map it writable
    /// again) and the launcher's own writable mapping.
    pub fn create(num_pds: usize) -> io::Result<(OwnedFd, Self)> {
        let n = u32::try_from(num_pds).map_err(|_| io::Error::other("too many PDs"))?;
        let fd = sys::memfd("lions-host-board", Self::size(num_pds) as u64, true)?;
        let t = Self {
            map: sys::Mapping::new(fd.as_fd(), Self::size(num_pds), true)?,
            num_pds,
            writable: true,
        };
        let h = t.header();
        h.version.store(VERSION, Ordering::Relaxed);
        h.num_pds.store(n, Ordering::Relaxed);
        h.magic.store(MAGIC, Ordering::Release);
        sys::seal_read_only(fd.as_fd())?;
        Ok((fd, t))
    }

    /// Map an existing board table read-only (PD side), checking magic, version and size.
    pub fn open(fd: BorrowedFd<'_>, num_pds: usize) -> io::Result<Self> {
        let t = Self {
            map: sys::Mapping::new(fd, Self::size(num_pds), false)?,
            num_pds,
            writable: false,
        };
        let h = t.header();
        if h.magic.load(Ordering::Acquire) != MAGIC
            || h.version.load(Ordering::Relaxed) != VERSION
            || h.num_pds.load(Ordering::Relaxed) as usize != num_pds
        {
            return Err(io::Error::other(
                "board table has the wrong magic, version or size (launcher and PD built from different lions-os versions?)",
            ));
        }
        Ok(t)
    }

    /// The header.
    pub fn header(&self) -> &Header {
        debug_assert!(self.map.len() >= size_of::<Header>());
        // SAFETY: the mapping is page aligned, at least `size(num_pds)` bytes, lives as long as
        // `self`, and holds only atomics (any bit pattern valid, changed only atomically).
        unsafe { &*self.map.ptr().cast::<Header>() }
    }

    /// Number of PDs.
    pub fn num_pds(&self) -> usize {
        self.num_pds
    }

    fn word(&self, pd: usize) -> &AtomicU32 {
        assert!(pd < self.num_pds, "PD number {pd} out of range");
        // SAFETY: in bounds (checked above), 4-byte aligned after the 64-byte header, atomics
        // only; see `header`.
        unsafe {
            &*self
                .map
                .ptr()
                .add(size_of::<Header>() + pd * size_of::<u32>())
                .cast::<AtomicU32>()
        }
    }

    /// The state of PD `pd`. Panics if `pd` is out of range.
    pub fn state(&self, pd: usize) -> PdState {
        match self.word(pd).load(Ordering::SeqCst) {
            0 => PdState::Starting,
            1 => PdState::Running,
            _ => PdState::Gone,
        }
    }

    /// Set the state of PD `pd` (launcher side). Panics on a read-only (PD's) mapping.
    pub fn set_state(&self, pd: usize, s: PdState) {
        assert!(self.writable, "the board table is read-only here");
        self.word(pd).store(s as u32, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn layout_is_pinned() {
        assert_eq!(size_of::<Header>(), 64);
        assert_eq!(offset_of!(Half, pending), 0);
        assert_eq!(offset_of!(Half, call), 64);
        assert_eq!(offset_of!(Half, label), 72);
        assert_eq!(offset_of!(Half, count), 80);
        assert_eq!(offset_of!(Half, mrs), 88);
        assert_eq!(size_of::<Half>(), 1088);
        assert_eq!(HALF1_OFFSET, 1088);
        assert_eq!(size_of::<Stats>(), 40);
        assert_eq!(offset_of!(Held, reported), 0);
        assert_eq!(offset_of!(Held, count), 8);
        assert_eq!(size_of::<Held>(), 40);
        assert_eq!(HELD_OFFSET, 512);
        assert_eq!(BoardTable::size(3), 64 + 3 * 4);
    }

    #[test]
    fn notify_coalesces_and_wakes_only_a_sleeper() {
        let (fd, page) = ChannelPage::create("test").unwrap();
        let h = page.half(1);
        assert!(!h.notify(), "a running receiver is not woken");
        assert!(!h.prepare_sleep(), "work pending: do not block");
        assert!(h.take());
        assert_eq!(h.pending.load(Ordering::SeqCst), 0, "take clears the flag");
        assert!(!h.take(), "taken once");
        assert!(h.prepare_sleep(), "nothing pending: block");
        assert!(h.notify(), "first notification wakes a sleeper");
        assert!(!h.notify(), "coalesced: the wake-up is on its way");
        assert!(h.take());
        // Bits other than PENDING are not notifications.
        h.pending.store(!flag::PENDING, Ordering::SeqCst);
        assert!(!h.take(), "only the PENDING bit counts");
        // A second mapping sees the same memory; the other half is separate.
        let other = ChannelPage::open(fd.as_fd()).unwrap();
        assert!(other.half(0).prepare_sleep());
        assert!(page.half(0).notify());
        assert_eq!(
            other.half(0).pending.load(Ordering::Acquire),
            flag::SLEEPING | flag::PENDING
        );
        assert_eq!(other.half(1).pending.load(Ordering::Acquire), 0);
    }

    #[test]
    fn calls_finish_once() {
        let (_fd, page) = ChannelPage::create("test").unwrap();
        let h = page.half(0);
        assert_eq!(h.waiting_call(), None);
        h.call.store((7 << 2) | call::WAITING, Ordering::SeqCst);
        let w = h.waiting_call().unwrap();
        assert!(h.finish_call(w, call::REPLIED));
        assert!(!h.finish_call(w, call::GONE), "answered once");
        assert_eq!(h.call.load(Ordering::SeqCst), (7 << 2) | call::REPLIED);
        h.count.store(u64::MAX, Ordering::SeqCst);
        assert_eq!(h.clamped_count(), MAX_MESSAGE_REGISTERS);
    }

    #[test]
    fn board_table_is_read_only_for_pds() {
        let (fd, t) = BoardTable::create(3).unwrap();
        assert_eq!(t.state(2), PdState::Starting);
        t.set_state(2, PdState::Running);
        let ro = BoardTable::open(fd.as_fd(), 3).unwrap();
        assert_eq!(ro.state(2), PdState::Running);
        t.set_state(2, PdState::Gone);
        assert_eq!(
            ro.state(2),
            PdState::Gone,
            "the launcher's writes stay visible"
        );
        assert!(
            BoardTable::open(fd.as_fd(), 4).is_err(),
            "size mismatch refused"
        );
        // Neither a writable map nor a write through any descriptor is possible after the seal.
        assert!(sys::Mapping::new(fd.as_fd(), BoardTable::size(3), true).is_err());
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        let reopened = std::fs::OpenOptions::new().write(true).open(&path);
        if let Ok(mut f) = reopened {
            use std::io::Write as _;
            assert!(
                f.write_all(&[0xff; 8]).is_err(),
                "write through a re-opened fd"
            );
        }
        assert_eq!(ro.header().magic.load(Ordering::SeqCst), MAGIC);
    }
}
