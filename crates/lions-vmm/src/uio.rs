// SPDX-License-Identifier: BSD-2-Clause
//! Doorbells of a Linux driver VM (UIO): how a guest and a native component signal each other.
//!
//! A driver VM runs a Linux driver in a guest whose init is a small static UIO program; the
//! sDDF queues and data regions it serves are mapped into the guest and exposed as `/dev/uioN`
//! maps (map 0 is the IRQ status). Signals cross the VM boundary in both directions:
//!
//! - **Guest to native**: the UIO program writes to a reserved guest-physical page that is not
//!   mapped (a doorbell). The write is a data abort; the VMM finds the doorbell in its
//!   [`Doorbells`] table ([`Doorbells::ring`]) and notifies the native peer's channel. The value
//!   written is ignored, and a read of a doorbell returns 0.
//! - **Native to guest**: the native peer notifies the VMM, which injects the SPI registered for
//!   that UIO node ([`crate::gic::Gic::inject`]); Linux's `uio_pdrv_genirq` wakes the program's
//!   `poll`, which re-enables the IRQ by writing 1 to the device file.
//!
//! The native side cannot tell a driver VM from a native driver: it sees the same queues and the
//! same notifications.

use crate::fault::MmioAccess;

/// Most doorbells one VMM has.
pub const MAX_DOORBELLS: usize = 16;

/// A doorbell: a guest-physical range whose writes notify a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Doorbell {
    /// Guest-physical base.
    pub gpa: u64,
    /// Size of the range.
    pub size: u64,
    /// The Microkit channel of the native peer.
    pub channel: u8,
}

/// The VMM's doorbells.
#[derive(Debug, Clone, Default)]
pub struct Doorbells {
    bells: [Option<Doorbell>; MAX_DOORBELLS],
    /// Doorbell writes seen.
    pub rung: u32,
}

impl Doorbells {
    /// No doorbells.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a doorbell; false when the table is full, the range is empty or overflows, or it
    /// overlaps another.
    pub fn add(&mut self, bell: Doorbell) -> bool {
        let Some(end) = bell.gpa.checked_add(bell.size).filter(|_| bell.size > 0) else {
            return false;
        };
        if self
            .bells
            .iter()
            .flatten()
            .any(|b| bell.gpa < b.gpa + b.size && b.gpa < end)
        {
            return false;
        }
        match self.bells.iter_mut().find(|b| b.is_none()) {
            Some(slot) => {
                *slot = Some(bell);
                true
            }
            None => false,
        }
    }

    /// The access if it hits a doorbell: `Some(Some(channel))` for a write (notify it),
    /// `Some(None)` for a read (returns 0), `None` if no doorbell is there.
    pub fn ring(&mut self, access: &MmioAccess) -> Option<Option<u8>> {
        let bell = self
            .bells
            .iter()
            .flatten()
            .find(|b| access.offset_in(b.gpa, b.size).is_some())?;
        if access.write.is_some() {
            self.rung = self.rung.saturating_add(1);
            Some(Some(bell.channel))
        } else {
            Some(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abort::Width;
    use crate::fault::{emulate, tests::Regs, tests::esr};

    #[test]
    fn doorbell_write_notifies_its_channel() {
        let mut d = Doorbells::new();
        assert!(d.add(Doorbell {
            gpa: 0x30_0000,
            size: 0x1000,
            channel: 7
        }));
        assert!(!d.add(Doorbell {
            gpa: 0x30_0ff8,
            size: 8,
            channel: 8
        }));
        assert!(!d.add(Doorbell {
            gpa: u64::MAX,
            size: 2,
            channel: 8
        }));
        assert!(!d.add(Doorbell {
            gpa: 0x40_0000,
            size: 0,
            channel: 8
        }));
        let mut regs = Regs::default();
        let mut notified = None;
        emulate(esr(4, 1, true, false, false), 0x30_0010, &mut regs, |a| {
            notified = d.ring(&a)?;
            Some(0)
        })
        .unwrap();
        assert_eq!((notified, d.rung), (Some(7), 1));
        // A read returns 0 and notifies nothing; elsewhere is not a doorbell.
        regs.x[2] = 99;
        emulate(esr(4, 2, false, false, false), 0x30_0000, &mut regs, |a| {
            d.ring(&a).map(|_| 0)
        })
        .unwrap();
        assert_eq!((regs.x[2], d.rung), (0, 1));
        let far = MmioAccess {
            gpa: 0x30_1000,
            width: Width::Byte,
            write: Some(1),
        };
        assert_eq!(d.ring(&far), None);
        for i in 1..MAX_DOORBELLS as u64 {
            assert!(d.add(Doorbell {
                gpa: 0x100_0000 * i,
                size: 0x1000,
                channel: 1
            }));
        }
        assert!(!d.add(Doorbell {
            gpa: 0x7000_0000,
            size: 0x1000,
            channel: 1
        }));
    }
}
