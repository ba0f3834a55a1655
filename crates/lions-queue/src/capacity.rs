// SPDX-License-Identifier: BSD-2-Clause
//! Ring capacity: lives only in the private handle, never in shared memory, so a peer cannot make us
//! index outside the entry array.

use crate::index::RingIndex;

/// Why a capacity was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityError {
    /// Zero slots.
    Zero,
    /// Not a power of two (only fixed wire layouts may be, see [`Capacity::fixed`]).
    NotPowerOfTwo(u64),
    /// More slots than the index width can count (length `tail - head` must stay representable).
    TooLargeForIndex {
        /// Requested slots.
        slots: u64,
        /// Largest allowed for this index width.
        max: u64,
    },
    /// The usable length is larger than the number of slots.
    UsableAboveSlots,
    /// The backing entry array is shorter than the capacity.
    StorageTooSmall {
        /// Slots the capacity needs.
        needed: u64,
        /// Slots the storage has.
        have: u64,
    },
}

impl core::fmt::Display for CapacityError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Zero => write!(f, "queue capacity is zero"),
            Self::NotPowerOfTwo(n) => write!(f, "queue capacity {n} is not a power of two"),
            Self::TooLargeForIndex { slots, max } => {
                write!(
                    f,
                    "queue capacity {slots} exceeds {max} for this index width"
                )
            }
            Self::UsableAboveSlots => write!(f, "usable queue length exceeds the slot count"),
            Self::StorageTooSmall { needed, have } => {
                write!(
                    f,
                    "queue storage holds {have} entries but capacity needs {needed}"
                )
            }
        }
    }
}

impl core::error::Error for CapacityError {}

/// The shape of one ring: how many slots, how many may be in use at once, and how an index maps to a
/// slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    slots: u64,
    usable: u64,
    /// `slots - 1` when `slots` is a power of two, else 0 (then slot = index % slots).
    mask: u64,
    /// Whether `slots` is a power of two, decided once here so the hot paths test one flag.
    pow2: bool,
}

impl Capacity {
    /// A power-of-two capacity with every slot usable (net, serial, blk).
    pub fn new<I: RingIndex>(slots: u64) -> Result<Self, CapacityError> {
        if slots == 0 {
            return Err(CapacityError::Zero);
        }
        if !slots.is_power_of_two() {
            return Err(CapacityError::NotPowerOfTwo(slots));
        }
        Self::check_width::<I>(slots)?;
        Ok(Self {
            slots,
            usable: slots,
            mask: slots - 1,
            pow2: true,
        })
    }

    /// A capacity fixed by a wire layout whose C peer computes `slot = index % slots` and allows at
    /// most `usable` entries in flight (I²C: 254 slots, 253 usable; LionsOS fs: 511 and 511).
    ///
    /// When `slots` is not a power of two, `index % slots` jumps at the index wrap. The producer
    /// handle therefore never lets the in-flight window straddle the wrap (it reports the ring as
    /// full until the consumer catches up), so no two live entries ever share a slot.
    pub fn fixed<I: RingIndex>(slots: u64, usable: u64) -> Result<Self, CapacityError> {
        if slots == 0 || usable == 0 {
            return Err(CapacityError::Zero);
        }
        if usable > slots {
            return Err(CapacityError::UsableAboveSlots);
        }
        Self::check_width::<I>(slots)?;
        let mask = if slots.is_power_of_two() {
            slots - 1
        } else {
            0
        };
        Ok(Self {
            slots,
            usable,
            mask,
            pow2: slots.is_power_of_two(),
        })
    }

    fn check_width<I: RingIndex>(slots: u64) -> Result<(), CapacityError> {
        // A full ring has length `usable <= slots`, which must differ from 0 modulo 2^width.
        let max = I::MAX / 2 + 1;
        if slots > max {
            return Err(CapacityError::TooLargeForIndex { slots, max });
        }
        Ok(())
    }

    /// Number of slots in the entry array.
    #[inline]
    pub fn slots(&self) -> u64 {
        self.slots
    }

    /// Most entries that may be in the ring at once.
    #[inline]
    pub fn usable(&self) -> u64 {
        self.usable
    }

    /// Whether the slot mapping is continuous across the index wrap.
    #[inline]
    pub fn is_power_of_two(&self) -> bool {
        self.pow2
    }

    /// Number of slots as a `usize` (it was checked against a storage length when a handle was
    /// made, so it fits).
    #[allow(clippy::cast_possible_truncation)]
    pub(crate) fn slot_count(&self) -> usize {
        self.slots as usize
    }

    /// Slot of a free-running index.
    #[inline(always)]
    pub(crate) fn slot(&self, index: u64) -> usize {
        let s = if self.is_power_of_two() {
            index & self.mask
        } else {
            index % self.slots
        };
        // `s < slots`, and `slots` was checked against the storage length, a `usize`.
        #[allow(clippy::cast_possible_truncation)]
        let s = s as usize;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_capacities() {
        assert_eq!(Capacity::new::<u32>(0), Err(CapacityError::Zero));
        assert_eq!(
            Capacity::new::<u32>(254),
            Err(CapacityError::NotPowerOfTwo(254))
        );
        assert!(Capacity::new::<u16>(32768).is_ok());
        assert_eq!(
            Capacity::new::<u16>(65536),
            Err(CapacityError::TooLargeForIndex {
                slots: 65536,
                max: 32768
            })
        );
        assert_eq!(
            Capacity::fixed::<u32>(4, 5),
            Err(CapacityError::UsableAboveSlots)
        );
        let i2c = Capacity::fixed::<u32>(254, 253).unwrap();
        assert!(!i2c.is_power_of_two());
        assert_eq!(i2c.slot(300), 46);
        let one = Capacity::new::<u16>(1).unwrap();
        assert!(one.is_power_of_two());
        assert_eq!(one.slot(5), 0);
    }
}
