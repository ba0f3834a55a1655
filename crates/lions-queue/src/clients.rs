// SPDX-License-Identifier: BSD-2-Clause
//! The plumbing every virtualiser shares: mapping a queue region named in a config
//! ([`region`]) and a connection's two queues over them ([`pair`]), why a queue could not be set up ([`QueueError`], shared by every class crate), and the table of a
//! virtualiser's clients with the set of those still served ([`Clients`]).
//!
//! ## Protocol
//!
//! - A client is *configured* when its config entry exists (index below the config's count, at
//!   most [`MAX_CLIENTS`]) and *live* while it is served. A client whose queue indices were already
//!   inconsistent when its handle was made starts out faulty; one that later writes an impossible
//!   index is faulted by the component ([`Clients::fault`]). A faulted client is never served
//!   again; the others are unaffected.
//! - Every loop runs over the live clients only, in index order, by walking the set bits of one
//!   `u64` ([`Clients::each`], [`Clients::live`]): its cost is the number of live clients, never
//!   [`MAX_CLIENTS`].

use crate::{Capacity, HandleError, QueueHeader, QueueMemory, RegionError};
use core::ptr::NonNull;

/// Most clients a virtualiser serves (sdfgen's 64; one bit each in a `u64` set).
pub const MAX_CLIENTS: usize = 64;

/// Why a queue (or a pair of them) could not be set up over a config's regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// A region is misaligned or too small, or the capacity was refused.
    Region(RegionError),
    /// The indices already in shared memory are inconsistent.
    Handle(HandleError),
    /// A config names a region that is not mapped here (vaddr 0) or lies outside the address space.
    Unmapped,
    /// A queue to be primed already holds entries, or a handle to be re-made has staged entries.
    NotEmpty,
    /// A config's channel id is not a Microkit channel (above 61).
    Channel(u8),
}

impl From<RegionError> for QueueError {
    fn from(e: RegionError) -> Self {
        Self::Region(e)
    }
}

impl From<HandleError> for QueueError {
    fn from(e: HandleError) -> Self {
        Self::Handle(e)
    }
}

impl core::fmt::Display for QueueError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Region(e) => e.fmt(f),
            Self::Handle(e) => e.fmt(f),
            Self::Unmapped => write!(f, "queue region is not mapped in this component"),
            Self::NotEmpty => write!(f, "queue is not empty"),
            Self::Channel(id) => write!(f, "channel id {id} is above 61"),
        }
    }
}

impl core::error::Error for QueueError {}

/// A region a config names (`vaddr`, `size` as sdfgen writes them) as a pointer and length in
/// this address space: [`QueueError::Unmapped`] when `vaddr` is 0 or the region does not fit
/// the address space. Making the pointer is safe; using it is the caller's business.
pub fn region(vaddr: u64, size: u64) -> Result<(NonNull<u8>, usize), QueueError> {
    let addr = usize::try_from(vaddr).map_err(|_| QueueError::Unmapped)?;
    let len = usize::try_from(size).map_err(|_| QueueError::Unmapped)?;
    addr.checked_add(len).ok_or(QueueError::Unmapped)?;
    let ptr = NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(addr));
    Ok((ptr.ok_or(QueueError::Unmapped)?, len))
}

/// A connection's two queues, each with its entries after its header in its own region
/// (`(base, len)`, as [`region`] gives it) and `cap` entries: checked, not yet claimed by a role.
///
/// # Safety
/// As for [`QueueMemory::inline`], for both regions.
pub unsafe fn pair<'a, A: QueueHeader, B: QueueHeader>(
    a: (NonNull<u8>, usize),
    b: (NonNull<u8>, usize),
    cap: Capacity,
) -> Result<(QueueMemory<'a, A>, QueueMemory<'a, B>), QueueError> {
    // SAFETY: forwarded from the caller.
    let a = unsafe { QueueMemory::inline(a.0, a.1, cap)? };
    // SAFETY: forwarded from the caller.
    let b = unsafe { QueueMemory::inline(b.0, b.1, cap)? };
    Ok((a, b))
}

/// The members of `set` (bit `c` = client `c`) in index order: the cost is the number of members.
#[inline]
pub fn bits(mut set: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        let c = (set != 0).then(|| set.trailing_zeros() as usize)?;
        set &= set - 1;
        Some(c)
    })
}

/// A virtualiser's clients: one `T` (its queue ends, channel, ...) per configured client, and the
/// set of live ones.
pub struct Clients<T> {
    ends: [Option<T>; MAX_CLIENTS],
    configured: u64,
    live: u64,
}

impl<T> Clients<T> {
    /// One entry per config entry in `configs` (at most [`MAX_CLIENTS`]; more are ignored), made
    /// by `make`: `Ok(Some(t))` serves the client, `Ok(None)` starts it out faulty (its queues
    /// already hold inconsistent indices), `Err` refuses the whole table.
    pub fn new<S, E>(
        configs: impl IntoIterator<Item = S>,
        mut make: impl FnMut(usize, S) -> Result<Option<T>, E>,
    ) -> Result<Self, E> {
        let mut t = Self {
            ends: [const { None }; MAX_CLIENTS],
            configured: 0,
            live: 0,
        };
        for ((c, slot), cfg) in t.ends.iter_mut().enumerate().zip(configs) {
            t.configured |= 1 << c;
            *slot = make(c, cfg)?;
            t.live |= u64::from(slot.is_some()) << c;
        }
        Ok(t)
    }

    /// The live clients (bit `c` = client `c`).
    #[inline]
    pub fn live(&self) -> u64 {
        self.live
    }

    /// The faulted clients (configured and not live).
    pub fn faulty(&self) -> u64 {
        self.configured & !self.live
    }

    /// Client `c`'s entry, unless it is unconfigured or faulted.
    #[inline]
    pub fn get(&mut self, c: usize) -> Option<&mut T> {
        // A client is live exactly while its entry is `Some` (`new` and `fault` keep the two in
        // step), so the entry alone answers.
        self.ends.get_mut(c)?.as_mut()
    }

    /// Stop serving client `c` for good.
    pub fn fault(&mut self, c: usize) {
        if c < MAX_CLIENTS {
            self.live &= !(1 << c);
            self.ends[c] = None;
        }
    }

    /// Run `f` on each live client in `set` (bit `c` = client `c`), in index order; one for which
    /// it returns `Ok(false)` (it misbehaved) is faulted. The first error stops the walk.
    #[inline]
    pub fn each_in<E>(
        &mut self,
        set: u64,
        mut f: impl FnMut(usize, &mut T) -> Result<bool, E>,
    ) -> Result<(), E> {
        let mut todo = set & self.live;
        while todo != 0 {
            let c = todo.trailing_zeros() as usize;
            todo &= todo - 1;
            let Some(t) = self.ends.get_mut(c).and_then(Option::as_mut) else {
                continue;
            };
            if !f(c, t)? {
                self.fault(c);
            }
        }
        Ok(())
    }

    /// [`each_in`](Self::each_in) over every live client.
    #[inline]
    pub fn each<E>(&mut self, f: impl FnMut(usize, &mut T) -> Result<bool, E>) -> Result<(), E> {
        self.each_in(u64::MAX, f)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_live_clients_are_visited_and_faults_stick() {
        let mut t = Clients::new(0..5u32, |c, v| Ok::<_, ()>((c != 3).then_some(v * 10))).unwrap();
        assert_eq!(t.live(), 0b10111);
        assert_eq!(t.faulty(), 0b01000, "client 3 starts out faulty");
        let mut seen = Vec::new();
        t.each(|c, v| {
            seen.push((c, *v));
            Ok::<_, ()>(c != 1)
        })
        .unwrap();
        assert_eq!(seen, [(0, 0), (1, 10), (2, 20), (4, 40)]);
        assert_eq!(t.faulty(), 0b01010, "client 1 misbehaved");
        assert!(t.get(1).is_none() && t.get(3).is_none() && t.get(5).is_none());
        assert!(t.get(64).is_none());
        assert_eq!(t.get(4).copied(), Some(40));
        seen.clear();
        t.each_in(0b110101, |c, _| {
            seen.push((c, 0));
            Ok::<_, ()>(true)
        })
        .unwrap();
        assert_eq!(
            seen,
            [(0, 0), (2, 0), (4, 0)],
            "only the live ones of the set"
        );
        assert_eq!(
            t.each(|c, _| if c == 2 { Err(c) } else { Ok(true) }),
            Err(2)
        );
        assert_eq!(bits(0b1010_0001).collect::<Vec<_>>(), [0, 5, 7]);
        assert_eq!(bits(1 << 63).collect::<Vec<_>>(), [63]);
        assert_eq!(bits(0).count(), 0);
        let r = Clients::<u8>::new(0..3, |c, _| if c == 2 { Err("bad") } else { Ok(Some(0)) });
        assert_eq!(r.err(), Some("bad"));
    }

    #[test]
    fn regions_are_checked() {
        assert_eq!(region(0, 4096), Err(QueueError::Unmapped));
        assert_eq!(
            region(u64::MAX - 10, 4096).err(),
            Some(QueueError::Unmapped)
        );
        let (p, n) = region(0x1000, 4096).unwrap();
        assert_eq!((p.as_ptr().addr(), n), (0x1000, 4096));
        assert_eq!(
            QueueError::Channel(62).to_string(),
            "channel id 62 is above 61"
        );
    }
}
