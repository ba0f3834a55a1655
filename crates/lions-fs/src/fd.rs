// SPDX-License-Identifier: BSD-2-Clause
//! The FS server's fd table ([`FdTable`]): slots free → reserved → open, fds carrying a
//! generation so a stale or forged fd is refused, and a busy count per fd so one with operations
//! in flight cannot be closed.

use crate::queue::{OpenFlags, Status};

/// Slots of the fd table (`MAX_OPEN_FILES` of the C server library).
pub const MAX_OPEN_FILES: usize = 256;

/// What an fd names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FdKind {
    /// An open file.
    File,
    /// An open directory.
    Dir,
}

#[derive(Debug, Clone, Copy)]
enum SlotState<H> {
    Free,
    Reserved,
    Open {
        kind: FdKind,
        flags: OpenFlags,
        handle: H,
    },
}

#[derive(Debug, Clone, Copy)]
struct Slot<H> {
    generation: u64,
    busy: u32,
    state: SlotState<H>,
}

/// A reserved fd slot, to be [`fill`](FdTable::fill)ed or [`cancel`](FdTable::cancel)led.
#[must_use]
#[derive(Debug)]
pub struct Reservation {
    index: usize,
}

/// An operation in flight on an fd (its busy count holds one for it); hand it back with
/// [`FdTable::end`].
#[must_use]
#[derive(Debug)]
pub struct InFlight<H> {
    index: usize,
    generation: u64,
    /// The backend's handle of the open object.
    pub handle: H,
    /// The flags the fd was opened with.
    pub flags: OpenFlags,
}

/// The fd table: `N` slots, each free → reserved → open (file or directory), with a generation
/// and a busy count.
///
/// - An fd is `index + generation × N`. The generation advances whenever a slot is freed, so a
///   stale fd (closed, then the slot reused) is rejected; so is a generation *newer* than the
///   slot's (LionsOS's `fd_to_of` accepted those).
/// - [`begin`](Self::begin) counts an operation in; [`close`](Self::close) refuses a busy fd with
///   [`Status::OutstandingOperations`]. A synchronous server uses [`with_op`](Self::with_op), which
///   cannot forget the matching [`end`](Self::end).
/// - Handles are the backend's (`H: Copy`): the table never interprets them.
#[derive(Debug)]
pub struct FdTable<H, const N: usize = MAX_OPEN_FILES> {
    slots: [Slot<H>; N],
}

impl<H: Copy, const N: usize> Default for FdTable<H, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: Copy, const N: usize> FdTable<H, N> {
    /// Generations run modulo this, so `index + generation × N` never overflows.
    const GENERATIONS: u64 = u64::MAX / N as u64;

    /// An empty table.
    pub fn new() -> Self {
        const { assert!(N > 0) };
        Self {
            slots: [Slot {
                generation: 0,
                busy: 0,
                state: SlotState::Free,
            }; N],
        }
    }

    fn fd_of(&self, index: usize) -> u64 {
        index as u64 + self.slots[index].generation * N as u64
    }

    /// The slot index of `fd`, if its generation is the slot's current one.
    fn index_of(&self, fd: u64) -> Option<usize> {
        // `fd % N < N`, a usize.
        #[allow(clippy::cast_possible_truncation)]
        let index = (fd % N as u64) as usize;
        (self.slots[index].generation == fd / N as u64).then_some(index)
    }

    /// Reserve a free slot ([`Status::TooManyOpenFiles`] when none is left).
    pub fn reserve(&mut self) -> Result<Reservation, Status> {
        let index = self
            .slots
            .iter()
            .position(|s| matches!(s.state, SlotState::Free))
            .ok_or(Status::TooManyOpenFiles)?;
        self.slots[index].state = SlotState::Reserved;
        Ok(Reservation { index })
    }

    /// Make a reserved slot an open fd; returns the fd.
    pub fn fill(&mut self, r: Reservation, kind: FdKind, flags: OpenFlags, handle: H) -> u64 {
        self.slots[r.index].state = SlotState::Open {
            kind,
            flags,
            handle,
        };
        self.fd_of(r.index)
    }

    /// Give a reserved slot back (the open failed).
    pub fn cancel(&mut self, r: Reservation) {
        self.free(r.index);
    }

    fn free(&mut self, index: usize) {
        let s = &mut self.slots[index];
        s.state = SlotState::Free;
        s.busy = 0;
        s.generation = (s.generation + 1) % Self::GENERATIONS;
    }

    /// Open through `open`, which runs only when a slot is free; returns the new fd.
    pub fn open(
        &mut self,
        kind: FdKind,
        flags: OpenFlags,
        open: impl FnOnce() -> Result<H, Status>,
    ) -> Result<u64, Status> {
        let r = self.reserve()?;
        match open() {
            Ok(h) => Ok(self.fill(r, kind, flags, h)),
            Err(e) => {
                self.cancel(r);
                Err(e)
            }
        }
    }

    /// Count an operation in on `fd`, which must be open as `kind` ([`Status::InvalidFd`]).
    pub fn begin(&mut self, fd: u64, kind: FdKind) -> Result<InFlight<H>, Status> {
        let index = self.index_of(fd).ok_or(Status::InvalidFd)?;
        let slot = &mut self.slots[index];
        match slot.state {
            SlotState::Open {
                kind: k,
                flags,
                handle,
            } if k == kind => {
                slot.busy = slot.busy.checked_add(1).ok_or(Status::AllocationError)?;
                Ok(InFlight {
                    index,
                    generation: slot.generation,
                    handle,
                    flags,
                })
            }
            _ => Err(Status::InvalidFd),
        }
    }

    /// Count an operation out.
    pub fn end(&mut self, op: InFlight<H>) {
        let slot = &mut self.slots[op.index];
        // A busy slot cannot be closed, so the generation still matches; checked all the same.
        if slot.generation == op.generation {
            slot.busy = slot.busy.saturating_sub(1);
        }
    }

    /// Run `f` as one operation on `fd` (begin, `f`, end).
    pub fn with_op<R>(
        &mut self,
        fd: u64,
        kind: FdKind,
        f: impl FnOnce(H, OpenFlags) -> R,
    ) -> Result<R, Status> {
        let op = self.begin(fd, kind)?;
        let r = f(op.handle, op.flags);
        self.end(op);
        Ok(r)
    }

    /// Operations in flight on `fd` (0 for an invalid fd).
    pub fn busy(&self, fd: u64) -> u32 {
        self.index_of(fd).map_or(0, |i| self.slots[i].busy)
    }

    /// Close `fd`, which must be open as `kind` and not busy
    /// ([`Status::OutstandingOperations`]); returns its handle for the backend to close.
    pub fn close(&mut self, fd: u64, kind: FdKind) -> Result<H, Status> {
        let index = self.index_of(fd).ok_or(Status::InvalidFd)?;
        let slot = &self.slots[index];
        match slot.state {
            SlotState::Open {
                kind: k, handle, ..
            } if k == kind => {
                if slot.busy > 0 {
                    return Err(Status::OutstandingOperations);
                }
                self.free(index);
                Ok(handle)
            }
            _ => Err(Status::InvalidFd),
        }
    }

    /// Open fds: `(fd, kind, handle)`.
    pub fn iter(&self) -> impl Iterator<Item = (u64, FdKind, H)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.state {
                SlotState::Open { kind, handle, .. } => Some((self.fd_of(i), kind, handle)),
                _ => None,
            })
    }

    /// How many fds are open.
    pub fn open_count(&self) -> usize {
        self.iter().count()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::AccessMode;

    const RO: OpenFlags = OpenFlags::new(AccessMode::ReadOnly);

    #[test]
    fn fds_carry_generations() {
        let mut t: FdTable<u32, 4> = FdTable::new();
        let a = t.open(FdKind::File, RO, || Ok(10)).unwrap();
        assert_eq!(a, 0, "slot 0, generation 0");
        assert_eq!(t.close(a, FdKind::File), Ok(10));
        assert_eq!(t.close(a, FdKind::File), Err(Status::InvalidFd), "twice");
        let b = t.open(FdKind::File, RO, || Ok(11)).unwrap();
        assert_eq!(b, 4, "slot 0 again, generation 1");
        assert_eq!(
            t.begin(a, FdKind::File).map(|_| ()),
            Err(Status::InvalidFd),
            "stale"
        );
        assert_eq!(
            t.with_op(b + 4, FdKind::File, |h, _| h),
            Err(Status::InvalidFd),
            "a newer generation is as invalid as an older one"
        );
        assert_eq!(t.with_op(b, FdKind::File, |h, _| h), Ok(11));
        assert_eq!(
            t.with_op(b, FdKind::Dir, |h, _| h),
            Err(Status::InvalidFd),
            "a file fd is not a directory fd"
        );
        assert_eq!(t.close(b, FdKind::Dir), Err(Status::InvalidFd));
        assert_eq!(
            t.with_op(3, FdKind::File, |h, _| h),
            Err(Status::InvalidFd),
            "free slot"
        );
        assert_eq!(
            t.with_op(u64::MAX, FdKind::File, |h, _| h),
            Err(Status::InvalidFd)
        );
    }

    #[test]
    fn busy_fds_cannot_close() {
        let mut t: FdTable<u32, 4> = FdTable::new();
        let fd = t.open(FdKind::Dir, RO, || Ok(1)).unwrap();
        let op1 = t.begin(fd, FdKind::Dir).unwrap();
        let op2 = t.begin(fd, FdKind::Dir).unwrap();
        assert_eq!(t.busy(fd), 2);
        assert_eq!(t.close(fd, FdKind::Dir), Err(Status::OutstandingOperations));
        t.end(op1);
        assert_eq!(t.close(fd, FdKind::Dir), Err(Status::OutstandingOperations));
        t.end(op2);
        assert_eq!(t.busy(fd), 0);
        assert_eq!(t.close(fd, FdKind::Dir), Ok(1));
    }

    #[test]
    fn the_table_fills_and_failed_opens_free_their_slot() {
        let mut t: FdTable<usize, 3> = FdTable::new();
        let fds: Vec<u64> = (0..3)
            .map(|i| t.open(FdKind::File, RO, || Ok(i)).unwrap())
            .collect();
        let mut called = false;
        assert_eq!(
            t.open(FdKind::File, RO, || {
                called = true;
                Ok(9)
            }),
            Err(Status::TooManyOpenFiles)
        );
        assert!(!called, "the backend is not asked when no slot is free");
        assert_eq!(t.open_count(), 3);
        t.close(fds[1], FdKind::File).unwrap();
        assert_eq!(
            t.open(FdKind::File, RO, || Err(Status::NoFile)),
            Err(Status::NoFile)
        );
        assert_eq!(t.open_count(), 2, "the failed open left its slot free");
        let again = t.open(FdKind::File, RO, || Ok(7)).unwrap();
        assert_eq!(again, 1 + 2 * 3, "slot 1 after two frees");
        let r = t.reserve().unwrap_err();
        assert_eq!(r, Status::TooManyOpenFiles);
    }

    #[test]
    fn generations_wrap_without_overflow() {
        let mut t: FdTable<u8, 256> = FdTable::new();
        t.slots[5].generation = FdTable::<u8, 256>::GENERATIONS - 1;
        let fd = t.open(FdKind::File, RO, || Ok(0)).unwrap();
        assert_eq!(fd, 0);
        // Use slot 5 at the last generation.
        for i in 1..5 {
            t.open(FdKind::File, RO, || Ok(i)).unwrap();
        }
        let last = t.open(FdKind::File, RO, || Ok(5)).unwrap();
        assert_eq!(last, 5 + (FdTable::<u8, 256>::GENERATIONS - 1) * 256);
        t.close(last, FdKind::File).unwrap();
        let next = t.open(FdKind::File, RO, || Ok(6)).unwrap();
        assert_eq!(next, 5, "generation wrapped to 0");
        assert_eq!(
            t.with_op(last, FdKind::File, |h, _| h),
            Err(Status::InvalidFd)
        );
    }
}
