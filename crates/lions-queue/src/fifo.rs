// SPDX-License-Identifier: BSD-2-Clause
//! Two small private FIFOs of client indices that virtualisers keep beside their queues.
//!
//! - [`Waiting`]: the clients waiting for room toward the driver, in the order they asked,
//!   each at most once (a bit mask says who is in). The serial Tx and I²C virtualisers serve it
//!   when the driver frees room, so a client that asked first is served first.
//! - [`Route`]: the client of each request sent to a driver that answers in order (the I²C
//!   virtualiser routes each response to whoever submitted it), up to 255 at once.
//!
//! Neither lives in shared memory: both are a component's own state, rebuilt from the queues
//! after a restart. Indices are client numbers below 64; every access is masked, so no index can
//! leave the arrays.

/// Clients waiting for room, first come first served, each at most once (see the module docs).
#[derive(Debug, Clone)]
pub struct Waiting {
    ring: [u8; 64],
    first: u8,
    last: u8,
    mask: u64,
}

impl Default for Waiting {
    fn default() -> Self {
        Self::new()
    }
}

impl Waiting {
    /// No client waiting.
    pub const fn new() -> Self {
        Self {
            ring: [0; 64],
            first: 0,
            last: 0,
            mask: 0,
        }
    }

    /// Client `c` (below 64) joins the end, unless it is already waiting.
    #[inline]
    pub fn push(&mut self, c: usize) {
        let bit = 1 << (c % 64);
        if self.mask & bit == 0 {
            self.mask |= bit;
            // `c % 64` fits a u8.
            #[allow(clippy::cast_possible_truncation)]
            let c = (c % 64) as u8;
            self.ring[usize::from(self.last % 64)] = c;
            self.last = self.last.wrapping_add(1);
        }
    }

    /// The client at the front.
    #[inline]
    pub fn front(&self) -> Option<usize> {
        (self.mask != 0).then(|| usize::from(self.ring[usize::from(self.first % 64)]))
    }

    /// Take the client at the front.
    #[inline]
    pub fn pop(&mut self) -> Option<usize> {
        let c = self.front()?;
        self.first = self.first.wrapping_add(1);
        self.mask &= !(1 << c);
        Some(c)
    }

    /// Whether client `c` is waiting.
    #[inline]
    pub fn contains(&self, c: usize) -> bool {
        self.mask & (1 << (c % 64)) != 0
    }

    /// Whether nobody waits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.mask == 0
    }

    /// How many clients wait.
    pub fn len(&self) -> u32 {
        self.mask.count_ones()
    }

    /// Nobody waits any more.
    pub fn clear(&mut self) {
        *self = Self::new();
    }
}

/// The client of each request at an in-order driver, oldest first (see the module docs).
#[derive(Debug, Clone)]
pub struct Route {
    ring: [u8; 256],
    first: u8,
    last: u8,
}

impl Default for Route {
    fn default() -> Self {
        Self::new()
    }
}

impl Route {
    /// No request outstanding.
    pub const fn new() -> Self {
        Self {
            ring: [0; 256],
            first: 0,
            last: 0,
        }
    }

    /// Whether 255 requests are outstanding (no more may be sent).
    #[inline]
    pub fn is_full(&self) -> bool {
        self.last.wrapping_add(1) == self.first
    }

    /// A request of client `c` (below 256) was sent; ignored when full.
    #[inline]
    pub fn push(&mut self, c: usize) {
        if !self.is_full() {
            // Client numbers are below 64.
            #[allow(clippy::cast_possible_truncation)]
            let c = c as u8;
            self.ring[usize::from(self.last)] = c;
            self.last = self.last.wrapping_add(1);
        }
    }

    /// The client of the oldest outstanding request, which the driver has now answered.
    #[inline]
    pub fn pop(&mut self) -> Option<usize> {
        (self.first != self.last).then(|| {
            let c = self.ring[usize::from(self.first)];
            self.first = self.first.wrapping_add(1);
            usize::from(c)
        })
    }

    /// A counter of requests pushed so far (mod 256): compare two readings to see whether any
    /// request was sent in between.
    #[inline]
    pub fn pushed(&self) -> u8 {
        self.last
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn waiting_is_first_come_first_served_and_each_client_once() {
        let mut w = Waiting::new();
        assert!(w.is_empty() && w.front().is_none() && w.pop().is_none());
        for c in [5, 3, 5, 63, 3] {
            w.push(c);
        }
        assert_eq!(w.len(), 3);
        assert!(w.contains(63) && !w.contains(4));
        assert_eq!(w.pop(), Some(5));
        w.push(5);
        assert_eq!(
            (w.pop(), w.pop(), w.pop(), w.pop()),
            (Some(3), Some(63), Some(5), None)
        );
        // Every client at once, many rounds: never more than 64 entries, order kept.
        for round in 0..10 {
            for c in 0..64 {
                w.push((c + round) % 64);
            }
            assert_eq!(w.len(), 64);
            for c in 0..64 {
                assert_eq!(w.pop(), Some((c + round) % 64));
            }
        }
        w.push(9);
        w.clear();
        assert!(w.is_empty() && !w.contains(9));
    }

    #[test]
    fn route_keeps_order_and_refuses_the_256th() {
        let mut r = Route::new();
        let before = r.pushed();
        for i in 0..300 {
            r.push(i % 7);
        }
        assert!(r.is_full());
        assert_eq!(r.pushed(), before.wrapping_add(255));
        for i in 0..255 {
            assert_eq!(r.pop(), Some(i % 7));
        }
        assert_eq!(r.pop(), None);
        assert!(!r.is_full());
    }
}
