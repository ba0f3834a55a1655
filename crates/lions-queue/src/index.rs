// SPDX-License-Identifier: BSD-2-Clause
//! Ring index widths. Each wire layout fixes its own: `u16` for net, `u32` for serial, blk and I²C,
//! `u64` for the LionsOS file-system queue. All arithmetic wraps in that width, never in a wider
//! promoted type (sDDF's net full-check computed `tail - head` after C integer promotion, so a full
//! queue read as not full once the tail had wrapped).

use crate::sync::{AtomicU16, AtomicU32, AtomicU64, Ordering};

mod sealed {
    pub trait Sealed {}
}

/// A free-running ring index of one fixed width, with its atomic twin.
pub trait RingIndex:
    Copy + Eq + Ord + core::fmt::Debug + Send + Sync + sealed::Sealed + 'static
{
    /// The atomic type holding this index in shared memory.
    type Atomic: Send + Sync;
    /// Largest value of the index before it wraps to zero.
    const MAX: u64;
    /// Zero.
    const ZERO: Self;
    /// Widen to `u64` (lossless).
    fn to_u64(self) -> u64;
    /// Truncate a `u64` to this width: this *is* the wrapping step.
    fn wrap(v: u64) -> Self;
    /// `self + n` modulo 2^width.
    #[inline]
    fn add(self, n: u64) -> Self {
        Self::wrap(self.to_u64().wrapping_add(n))
    }
    /// `self - other` modulo 2^width, as the distance from `other` forward to `self`.
    #[inline]
    fn dist_from(self, other: Self) -> u64 {
        self.to_u64().wrapping_sub(other.to_u64()) & Self::MAX
    }
    /// A new atomic holding `v`.
    fn new_atomic(v: Self) -> Self::Atomic;
    /// Atomic load.
    fn load(a: &Self::Atomic, order: Ordering) -> Self;
    /// Atomic store.
    fn store(a: &Self::Atomic, v: Self, order: Ordering);
}

macro_rules! ring_index {
    ($t:ty, $atomic:ty) => {
        impl sealed::Sealed for $t {}
        impl RingIndex for $t {
            type Atomic = $atomic;
            const MAX: u64 = <$t>::MAX as u64;
            const ZERO: Self = 0;
            #[inline]
            fn to_u64(self) -> u64 {
                self as u64
            }
            #[inline]
            #[allow(clippy::cast_possible_truncation)] // truncation is the wrap
            fn wrap(v: u64) -> Self {
                v as $t
            }
            fn new_atomic(v: Self) -> Self::Atomic {
                <$atomic>::new(v)
            }
            #[inline]
            fn load(a: &Self::Atomic, order: Ordering) -> Self {
                a.load(order)
            }
            #[inline]
            fn store(a: &Self::Atomic, v: Self, order: Ordering) {
                a.store(v, order)
            }
        }
    };
}

ring_index!(u16, AtomicU16);
ring_index!(u32, AtomicU32);
ring_index!(u64, AtomicU64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_wraps_in_native_width() {
        // The sDDF bug: u16 tail wrapped to 2, head at 65534; the true length is 4.
        assert_eq!(2u16.dist_from(65534), 4);
        assert_eq!(3u32.dist_from(u32::MAX), 4);
        assert_eq!(0u64.dist_from(u64::MAX), 1);
        assert_eq!(u16::MAX.add(1), 0);
        assert_eq!(7u16.dist_from(7), 0);
    }
}
