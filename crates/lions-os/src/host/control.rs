// SPDX-License-Identifier: BSD-2-Clause
//! The control block: one shared-memory file holding every PD's kernel state on the host board.
//!
//! The launcher creates it (a memfd, zero-filled), every PD maps it read-write. Everything in it is
//! an atomic word, so any process may touch any field at any time; a PD only ever writes another
//! PD's slot through the operations below.
//!
//! ```text
//! offset 0     Header  (64 B)   magic "LionsHst" (u64 LE), version u32, num_pds u32
//! offset 64    PdSlot[num_pds]  (1088 B each, 64-byte aligned), indexed by PD number
//!
//! PdSlot, byte offsets:
//!   0  pending   u64  notification badge: bit n = the slot's own channel n (OR-coalesced);
//!                     bit 63 [`SLEEPING`]: the PD is blocked (or about to block) on its eventfd
//!   8  calls     u64  PPC requests waiting: bit n = a call arrived on the slot's channel n
//!  16  state     u32  0 starting, 1 running, 2 gone (faulted, exited or stopped)
//!  20  calling   u32  callee PD number + 1 while this PD waits in a PPC, else 0
//!  24  reply     u64  sequence << 2 | reply state (0 idle, 1 waiting, 2 replied, 3 peer gone)
//!  32  label     u64  message label (request, then reply)
//!  40  count     u64  message register count (request, then reply)
//!  48  stats     5 x u64: notifications sent, notifications received, PPCs made, PPCs served,
//!                IRQs received
//!  88  mrs       120 x u64 message registers (the PD's IPC buffer)
//! ```
//!
//! Each PD also has an eventfd (its wake-up), owned by the launcher and passed to the PD and its
//! peers. Wake-up rules:
//!
//! - **sleep**: before blocking, a PD ORs [`SLEEPING`] into its own `pending` (sequentially
//!   consistent); if any channel bit was already set it does not block. After waking (or to handle
//!   its badge) it swaps `pending` to zero, which also clears [`SLEEPING`].
//! - **notify**: the sender ORs the bit into the receiver's `pending` (sequentially consistent) and
//!   writes the receiver's eventfd only if `pending` was exactly [`SLEEPING`] before: the receiver
//!   is blocked (or about to) and this is the first notification since. A receiver that is running
//!   sees the bit before it next blocks, so a notification to it costs no system call and no
//!   wake-up; a word that already holds channel bits has a wake-up on its way. A gone receiver's
//!   notifications are dropped.
//! - **PPC**: the caller writes label, count and registers into its own slot, sets `calling` and
//!   `reply = seq|waiting` (sequentially consistent), re-checks that the callee is not gone, ORs its
//!   channel bit (in the callee's numbering) into the callee's `calls`, writes the callee's eventfd
//!   and blocks on its own eventfd until `reply` leaves `waiting`. The callee serves calls before
//!   notifications, one at a time: it copies the caller's registers into its own, runs `protected`,
//!   copies the reply registers back, and moves `reply` from `seq|waiting` to `seq|replied` with one
//!   compare-and-swap (a reply to an older call of a restarted caller is dropped), then writes the
//!   caller's eventfd.
//! - **death**: the launcher marks the slot gone (sequentially consistent), then moves every caller
//!   waiting on it to `peer gone` and wakes it ([`ControlBlock::mark_gone`]): with the caller's
//!   re-check above, a call into a dying PD always returns instead of hanging.
//! - A PD checks `calls` and `pending` before it blocks, and every change of either is followed by
//!   an eventfd write, so no wake-up is lost; a spurious one costs one more check.

use crate::channel::MAX_MESSAGE_REGISTERS;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::sys;

/// `"LionsHst"`, little-endian: the first word of a control block.
pub const MAGIC: u64 = u64::from_le_bytes(*b"LionsHst");

/// Layout version; bumped on any change to this file's layout or rules.
pub const VERSION: u32 = 2;

/// Bit of `PdSlot::pending` that says the PD is blocked (or about to block) on its eventfd, so a
/// notification must write it (see the [module docs](self)). Above every channel bit.
pub const SLEEPING: u64 = 1 << 63;
const _: () = assert!(crate::channel::MAX_CHANNEL < 63);

/// The first 64 bytes of the control block.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: AtomicU64,
    /// [`VERSION`].
    pub version: AtomicU32,
    /// Number of PD slots that follow.
    pub num_pds: AtomicU32,
}

/// Lifecycle of a PD slot (`PdSlot::state`).
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

/// Reply states (the low two bits of `PdSlot::reply`).
pub mod reply {
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

/// Per-PD counters (cumulative over restarts).
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
    /// Add one to a counter only this PD writes (plain load and store: no locked instruction).
    pub(crate) fn bump(counter: &AtomicU64, n: u64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }
}

/// One PD's kernel state.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct PdSlot {
    /// Pending notification badge (bit n = own channel n).
    pub pending: AtomicU64,
    /// Pending PPC requests (bit n = a call on own channel n).
    pub calls: AtomicU64,
    /// A [`PdState`] value.
    pub state: AtomicU32,
    /// Callee PD number + 1 while waiting in a PPC, else 0.
    pub calling: AtomicU32,
    /// `seq << 2 | state`, see [`reply`].
    pub reply: AtomicU64,
    /// Message label.
    pub label: AtomicU64,
    /// Message register count.
    pub count: AtomicU64,
    /// Counters.
    pub stats: Stats,
    /// Message registers.
    pub mrs: [AtomicU64; MAX_MESSAGE_REGISTERS],
}

impl PdSlot {
    /// The slot's state.
    pub fn state(&self) -> PdState {
        match self.state.load(Ordering::SeqCst) {
            0 => PdState::Starting,
            1 => PdState::Running,
            _ => PdState::Gone,
        }
    }

    /// Set the slot's state.
    pub fn set_state(&self, s: PdState) {
        self.state.store(s as u32, Ordering::SeqCst);
    }

    /// Announce that this PD is about to block on its eventfd (own slot only). Returns false,
    /// leaving the flag set, when notification bits are already pending (handle them instead of
    /// blocking); the next [`take_pending`](Self::take_pending) clears the flag either way.
    pub fn prepare_sleep(&self) -> bool {
        self.pending.fetch_or(SLEEPING, Ordering::SeqCst) & !SLEEPING == 0
    }

    /// Take the pending notification badge (own slot only), clearing [`SLEEPING`] too.
    pub fn take_pending(&self) -> u64 {
        self.pending.swap(0, Ordering::SeqCst) & !SLEEPING
    }

    /// Take the lowest pending call request, if any (callee side).
    pub fn take_call(&self) -> Option<u8> {
        let c = self.calls.load(Ordering::Acquire);
        if c == 0 {
            return None;
        }
        let bit = c & c.wrapping_neg();
        self.calls.fetch_and(!bit, Ordering::AcqRel);
        // `trailing_zeros` of a u64 is at most 64.
        #[allow(clippy::cast_possible_truncation)]
        Some(bit.trailing_zeros() as u8)
    }
}

/// A mapped control block.
pub struct ControlBlock {
    map: sys::Mapping,
    num_pds: usize,
}

impl core::fmt::Debug for ControlBlock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ControlBlock")
            .field("num_pds", &self.num_pds)
            .finish()
    }
}

impl ControlBlock {
    /// Bytes needed for `num_pds` PDs.
    pub const fn size(num_pds: usize) -> usize {
        size_of::<Header>() + num_pds * size_of::<PdSlot>()
    }

    /// Create a zeroed control block for `num_pds` PDs (launcher side): the memfd to pass to the
    /// PDs and the launcher's own mapping. Every slot starts [`PdState::Starting`].
    pub fn create(num_pds: usize) -> io::Result<(OwnedFd, Self)> {
        let n = u32::try_from(num_pds).map_err(|_| io::Error::other("too many PDs"))?;
        let fd = sys::memfd("lions-host-control", Self::size(num_pds) as u64)?;
        let cb = Self {
            map: sys::Mapping::new(fd.as_fd(), Self::size(num_pds))?,
            num_pds,
        };
        let h = cb.header();
        h.version.store(VERSION, Ordering::Relaxed);
        h.num_pds.store(n, Ordering::Relaxed);
        h.magic.store(MAGIC, Ordering::Release);
        Ok((fd, cb))
    }

    /// Map an existing control block (PD side), checking magic, version and size.
    pub fn open(fd: BorrowedFd<'_>, num_pds: usize) -> io::Result<Self> {
        let cb = Self {
            map: sys::Mapping::new(fd, Self::size(num_pds))?,
            num_pds,
        };
        let h = cb.header();
        if h.magic.load(Ordering::Acquire) != MAGIC
            || h.version.load(Ordering::Relaxed) != VERSION
            || h.num_pds.load(Ordering::Relaxed) as usize != num_pds
        {
            return Err(io::Error::other(
                "control block has the wrong magic, version or size (launcher and PD built from different lions-os versions?)",
            ));
        }
        Ok(cb)
    }

    /// The header.
    pub fn header(&self) -> &Header {
        debug_assert!(self.map.len() >= size_of::<Header>());
        // SAFETY: the mapping is page aligned, at least `size(num_pds)` bytes, lives as long as
        // `self`, and holds only atomics, for which every bit pattern (zero included) is valid and
        // which other processes change only atomically.
        unsafe { &*self.map.ptr().cast::<Header>() }
    }

    /// Number of PD slots.
    pub fn num_pds(&self) -> usize {
        self.num_pds
    }

    /// Slot of PD `i`. Panics if `i` is out of range.
    pub fn slot(&self, i: usize) -> &PdSlot {
        assert!(i < self.num_pds, "PD number {i} out of range");
        // SAFETY: in bounds (checked above, the mapping holds `num_pds` slots after the header),
        // aligned (64-byte header, 64-byte aligned slots, page-aligned base), valid for any bits,
        // and only ever accessed atomically; see `header`.
        unsafe {
            &*self
                .map
                .ptr()
                .add(size_of::<Header>() + i * size_of::<PdSlot>())
                .cast::<PdSlot>()
        }
    }

    /// Post notification `bits` (in the receiver's numbering) to PD `pd`. Returns whether the
    /// receiver's eventfd must be written, or `None` when the PD is gone (dropped).
    pub fn post_notification(&self, pd: usize, bits: u64) -> Option<bool> {
        let s = self.slot(pd);
        if s.state() == PdState::Gone {
            return None;
        }
        Some(s.pending.fetch_or(bits, Ordering::SeqCst) == SLEEPING)
    }

    /// Mark PD `pd` gone (launcher side, after its process ended): clears its pending work and
    /// returns the PDs that waited in a call into it, now answered with `peer gone`; the caller of
    /// this function must write their eventfds.
    pub fn mark_gone(&self, pd: usize) -> Vec<usize> {
        let s = self.slot(pd);
        s.set_state(PdState::Gone);
        s.pending.store(0, Ordering::SeqCst);
        s.calls.store(0, Ordering::SeqCst);
        s.calling.store(0, Ordering::SeqCst);
        let w = s.reply.load(Ordering::SeqCst);
        s.reply.store(w & !reply::MASK, Ordering::SeqCst);
        let me = u32::try_from(pd + 1).unwrap_or(u32::MAX);
        (0..self.num_pds)
            .filter(|&i| {
                let c = self.slot(i);
                if i == pd || c.calling.load(Ordering::SeqCst) != me {
                    return false;
                }
                let w = c.reply.load(Ordering::SeqCst);
                w & reply::MASK == reply::WAITING
                    && c.reply
                        .compare_exchange(
                            w,
                            (w & !reply::MASK) | reply::GONE,
                            Ordering::SeqCst,
                            Ordering::SeqCst,
                        )
                        .is_ok()
            })
            .collect()
    }

    /// Make a gone PD's slot ready for a new incarnation (launcher side, before the re-spawn).
    /// Regions, stats and the reply sequence persist.
    pub fn reset_for_restart(&self, pd: usize) {
        let s = self.slot(pd);
        s.pending.store(0, Ordering::SeqCst);
        s.calls.store(0, Ordering::SeqCst);
        s.set_state(PdState::Starting);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn layout_is_pinned() {
        assert_eq!(size_of::<Header>(), 64);
        assert_eq!(offset_of!(PdSlot, pending), 0);
        assert_eq!(offset_of!(PdSlot, calls), 8);
        assert_eq!(offset_of!(PdSlot, state), 16);
        assert_eq!(offset_of!(PdSlot, calling), 20);
        assert_eq!(offset_of!(PdSlot, reply), 24);
        assert_eq!(offset_of!(PdSlot, label), 32);
        assert_eq!(offset_of!(PdSlot, count), 40);
        assert_eq!(offset_of!(PdSlot, stats), 48);
        assert_eq!(offset_of!(PdSlot, mrs), 88);
        assert_eq!(size_of::<PdSlot>(), 1088);
        assert_eq!(ControlBlock::size(3), 64 + 3 * 1088);
    }

    #[test]
    fn notify_coalesces_and_gone_drops() {
        let (fd, cb) = ControlBlock::create(2).unwrap();
        assert_eq!(
            cb.post_notification(1, 1 << 2),
            Some(false),
            "a running PD is not woken"
        );
        assert!(!cb.slot(1).prepare_sleep(), "work pending: do not block");
        assert_eq!(
            cb.slot(1).take_pending(),
            1 << 2,
            "the flag is not a channel"
        );
        assert_eq!(cb.slot(1).pending.load(Ordering::SeqCst), 0);
        assert!(cb.slot(1).prepare_sleep(), "nothing pending: block");
        assert_eq!(
            cb.post_notification(1, 1 << 3),
            Some(true),
            "first bit wakes a sleeper"
        );
        assert_eq!(cb.post_notification(1, 1 << 3), Some(false), "coalesced");
        assert_eq!(
            cb.post_notification(1, 1 << 5),
            Some(false),
            "wake already on its way"
        );
        assert_eq!(cb.slot(1).take_pending(), (1 << 3) | (1 << 5));
        // A second mapping sees the same memory.
        let other = ControlBlock::open(fd.as_fd(), 2).unwrap();
        assert!(other.slot(0).prepare_sleep());
        assert_eq!(cb.post_notification(0, 1), Some(true));
        assert_eq!(other.slot(0).pending.load(Ordering::Acquire), SLEEPING | 1);
        assert!(
            ControlBlock::open(fd.as_fd(), 3).is_err(),
            "size mismatch refused"
        );
        assert!(cb.mark_gone(1).is_empty());
        assert_eq!(cb.post_notification(1, 1), None);
        cb.reset_for_restart(1);
        assert_eq!(cb.slot(1).state(), PdState::Starting);
    }

    #[test]
    fn mark_gone_answers_waiting_callers() {
        let (_fd, cb) = ControlBlock::create(3).unwrap();
        // PD 0 waits in a call into PD 2; PD 1 is idle.
        cb.slot(0).calling.store(3, Ordering::SeqCst);
        cb.slot(0)
            .reply
            .store((7 << 2) | reply::WAITING, Ordering::SeqCst);
        cb.slot(2).calls.store(1 << 4, Ordering::SeqCst);
        assert_eq!(cb.mark_gone(2), vec![0]);
        assert_eq!(
            cb.slot(0).reply.load(Ordering::SeqCst),
            (7 << 2) | reply::GONE
        );
        assert_eq!(cb.slot(2).calls.load(Ordering::SeqCst), 0);
        assert_eq!(cb.slot(2).take_call(), None);
        cb.slot(2).calls.store(0b1010, Ordering::SeqCst);
        assert_eq!(cb.slot(2).take_call(), Some(1));
        assert_eq!(cb.slot(2).take_call(), Some(3));
        assert_eq!(cb.slot(2).take_call(), None);
    }
}
