// SPDX-License-Identifier: BSD-2-Clause
//! The Arm generic timer (`arm,armv8-timer`): the system counter and one EL0-accessible timer,
//! through system registers only (no MMIO).
//!
//! Registers: `CNTFRQ_EL0` (counter frequency, read once), the counter (`CNTPCT_EL0` or
//! `CNTVCT_EL0`), the compare value (`CNTP_CVAL_EL0` / `CNTV_CVAL_EL0`) and the control register
//! (`CNTP_CTL_EL0` / `CNTV_CTL_EL0`: `ENABLE` bit 0, `IMASK` bit 1, `ISTATUS` bit 2, read-only).
//! The timer condition is `ENABLE && counter >= CVAL` (`ISTATUS`); the interrupt is asserted, as a
//! level, while the condition holds and `IMASK` is clear.
//!
//! - `set_compare(Some(t))`: write `CVAL` = `t`, then `CTL` = `ENABLE` (unmasked). A deadline
//!   already passed asserts the interrupt at once.
//! - `set_compare(None)`: `CTL` = `IMASK` (disabled and masked): no interrupt.
//! - `ack`: set `IMASK`, so the level drops until the generic driver programs the next deadline.
//!
//! Which timer: sDDF's `arm_generic` descriptor names interrupt `dt_index` 1 of the timer node,
//! the non-secure **physical** timer (PPI 14), with the counter read from `CNTPCT_EL0`; seL4 must
//! export both to user level (`KernelArmExportPCNTUser`, `KernelArmExportPTMRUser`), as sDDF
//! requires. That is [`PhysicalTimer`]. [`VirtualTimer`] (PPI 11, `dt_index` 2) is there for a
//! kernel that exports the virtual timer instead. The register access is behind [`TimerRegs`] so
//! this logic is tested on the host against a model.

use lions_timer::TimerDevice;

/// `CNT*_CTL_EL0.ENABLE`.
pub const CTL_ENABLE: u64 = 1 << 0;
/// `CNT*_CTL_EL0.IMASK`.
pub const CTL_IMASK: u64 = 1 << 1;

/// The system registers of one generic timer.
pub trait TimerRegs {
    /// `CNTFRQ_EL0`: the counter frequency in Hz.
    fn frequency(&mut self) -> u64;
    /// The counter (`CNTPCT_EL0` or `CNTVCT_EL0`).
    fn counter(&mut self) -> u64;
    /// Write the compare value (`CNT*_CVAL_EL0`).
    fn set_cval(&mut self, cval: u64);
    /// Read the control register (`CNT*_CTL_EL0`).
    fn ctl(&mut self) -> u64;
    /// Write the control register.
    fn set_ctl(&mut self, ctl: u64);
}

/// Read one system register (`after "isb"`: after an `isb`, so a counter read is not taken
/// early).
#[cfg(target_arch = "aarch64")]
macro_rules! mrs {
    ($reg:expr $(, after $pre:literal)?) => {{
        let v: u64;
        // SAFETY: reading a generic-timer register (and an `isb`) touches no memory and changes
        // no state.
        unsafe {
            core::arch::asm!($($pre,)? concat!("mrs {}, ", $reg), out(reg) v,
                options(nomem, nostack, preserves_flags))
        };
        v
    }};
}

/// Write one system register, then `isb` so the write takes effect before the next step.
#[cfg(target_arch = "aarch64")]
macro_rules! msr {
    ($reg:expr, $v:expr) => {
        // SAFETY: writes this PD's timer register (owned by the value `self`); no memory is
        // touched.
        unsafe {
            core::arch::asm!(concat!("msr ", $reg, ", {}"), "isb", in(reg) $v,
                options(nomem, nostack, preserves_flags))
        }
    };
}

/// One timer's register set (a unit struct: only one value should program the timer, make one per
/// PD) and its [`TimerRegs`] on aarch64.
macro_rules! sysreg_timer {
    ($(#[$doc:meta])* $ty:ident, $cnt:literal, $cval:literal, $ctl:literal) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        pub struct $ty(());

        impl $ty {
            /// The timer's registers. Only one value should program the timer: make one per PD.
            pub const fn new() -> Self {
                Self(())
            }
        }

        #[cfg(target_arch = "aarch64")]
        impl TimerRegs for $ty {
            fn frequency(&mut self) -> u64 {
                mrs!("cntfrq_el0")
            }
            fn counter(&mut self) -> u64 {
                mrs!($cnt, after "isb")
            }
            fn set_cval(&mut self, cval: u64) {
                msr!($cval, cval)
            }
            fn ctl(&mut self) -> u64 {
                mrs!($ctl)
            }
            fn set_ctl(&mut self, ctl: u64) {
                msr!($ctl, ctl)
            }
        }
    };
}

sysreg_timer!(
    /// The EL1 non-secure physical timer as exported to EL0 (`CNTPCT_EL0`, `CNTP_CVAL_EL0`,
    /// `CNTP_CTL_EL0`): what sDDF's `arm_generic` descriptor (`dt_index` 1) pairs with.
    PhysicalTimer, "cntpct_el0", "cntp_cval_el0", "cntp_ctl_el0"
);
sysreg_timer!(
    /// The virtual timer (`CNTVCT_EL0`, `CNTV_CVAL_EL0`, `CNTV_CTL_EL0`; device-tree `dt_index` 2).
    VirtualTimer, "cntvct_el0", "cntv_cval_el0", "cntv_ctl_el0"
);

/// The generic timer as a [`TimerDevice`] over any [`TimerRegs`].
#[derive(Debug)]
pub struct GenericTimer<R> {
    regs: R,
    freq: u64,
}

impl<R: TimerRegs> GenericTimer<R> {
    /// The timer behind `regs`, disabled and masked; reads `CNTFRQ_EL0` once (0 there makes
    /// [`lions_timer::TimerDriver::new`] refuse the device).
    pub fn new(mut regs: R) -> Self {
        let freq = regs.frequency();
        regs.set_ctl(CTL_IMASK);
        Self { regs, freq }
    }

    /// The registers (for inspection).
    #[cfg(test)]
    fn regs(&mut self) -> &mut R {
        &mut self.regs
    }
}

impl<R: TimerRegs> TimerDevice for GenericTimer<R> {
    fn freq_hz(&self) -> u64 {
        self.freq
    }

    fn now_ticks(&mut self) -> u64 {
        self.regs.counter()
    }

    fn set_compare(&mut self, deadline: Option<u64>) {
        match deadline {
            Some(t) => {
                self.regs.set_cval(t);
                self.regs.set_ctl(CTL_ENABLE);
            }
            None => self.regs.set_ctl(CTL_IMASK),
        }
    }

    fn ack(&mut self) {
        let ctl = self.regs.ctl();
        self.regs.set_ctl((ctl & CTL_ENABLE) | CTL_IMASK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lions_os::Channel;
    use lions_timer::TimerDriver;

    /// `CNT*_CTL_EL0.ISTATUS` (read-only).
    const CTL_ISTATUS: u64 = 1 << 2;

    /// One timer: counter, compare and control, with `ISTATUS` and the interrupt line derived as
    /// the architecture defines them.
    #[derive(Debug, Default)]
    struct Model {
        freq: u64,
        cnt: u64,
        cval: u64,
        ctl: u64,
        ctl_writes: usize,
    }

    impl Model {
        fn istatus(&self) -> bool {
            self.ctl & CTL_ENABLE != 0 && self.cnt >= self.cval
        }
        fn irq(&self) -> bool {
            self.istatus() && self.ctl & CTL_IMASK == 0
        }
    }

    impl TimerRegs for Model {
        fn frequency(&mut self) -> u64 {
            self.freq
        }
        fn counter(&mut self) -> u64 {
            self.cnt
        }
        fn set_cval(&mut self, cval: u64) {
            self.cval = cval;
        }
        fn ctl(&mut self) -> u64 {
            (self.ctl & (CTL_ENABLE | CTL_IMASK)) | if self.istatus() { CTL_ISTATUS } else { 0 }
        }
        fn set_ctl(&mut self, ctl: u64) {
            self.ctl_writes += 1;
            self.ctl = ctl & (CTL_ENABLE | CTL_IMASK);
        }
    }

    fn timer(cnt: u64) -> GenericTimer<Model> {
        GenericTimer::new(Model {
            freq: 62_500_000,
            cnt,
            ..Model::default()
        })
    }

    #[test]
    fn starts_disabled_and_masked_with_the_counter_frequency() {
        let mut t = timer(1000);
        assert_eq!(t.freq_hz(), 62_500_000);
        assert_eq!(t.regs().ctl, CTL_IMASK);
        assert_eq!(t.now_ticks(), 1000);
        t.regs().cnt = 5000;
        assert_eq!(t.now_ticks(), 5000);
    }

    #[test]
    fn compare_is_programmed_then_enabled_unmasked() {
        let mut t = timer(100);
        t.set_compare(Some(500));
        assert_eq!((t.regs().cval, t.regs().ctl), (500, CTL_ENABLE));
        assert!(!t.regs().irq(), "not yet");
        t.regs().cnt = 499;
        assert!(!t.regs().irq());
        t.regs().cnt = 500;
        assert!(t.regs().irq(), "fires at the deadline");
    }

    #[test]
    fn a_deadline_in_the_past_fires_at_once() {
        let mut t = timer(10_000);
        t.set_compare(Some(3));
        assert!(t.regs().irq());
        t.set_compare(Some(0));
        assert!(t.regs().irq());
    }

    #[test]
    fn none_disables_the_interrupt() {
        let mut t = timer(10_000);
        t.set_compare(Some(5));
        assert!(t.regs().irq());
        t.set_compare(None);
        assert!(!t.regs().irq());
        assert_eq!(t.regs().ctl & CTL_ENABLE, 0);
        t.regs().cnt = u64::MAX;
        assert!(!t.regs().irq(), "stays quiet whatever the counter does");
    }

    #[test]
    fn ack_masks_until_the_next_compare() {
        let mut t = timer(0);
        t.set_compare(Some(10));
        t.regs().cnt = 20;
        assert!(t.regs().irq());
        t.ack();
        assert!(!t.regs().irq(), "level dropped");
        assert!(t.regs().istatus(), "condition still met: only masked");
        t.set_compare(Some(30));
        assert!(!t.regs().irq());
        t.regs().cnt = 30;
        assert!(t.regs().irq(), "re-programming unmasks");
        // Ack of a disabled timer keeps it disabled.
        t.set_compare(None);
        t.ack();
        assert_eq!(t.regs().ctl, CTL_IMASK);
    }

    #[test]
    fn generic_driver_programs_the_earliest_deadline_in_ticks() {
        let mut d = TimerDriver::new(timer(1_000), Channel::new(0)).unwrap();
        assert_eq!(
            d.device_mut().regs().ctl,
            CTL_IMASK,
            "disarmed by the driver"
        );
        // 62.5 MHz: 1 µs = 62.5 ticks, rounded up to 63 (never early).
        d.set_timeout(Channel::new(3), 1_000);
        d.set_timeout(Channel::new(4), 10_000_000);
        let regs = d.device_mut().regs();
        assert_eq!((regs.cval, regs.ctl), (1_063, CTL_ENABLE));
        assert_eq!(d.now_ns(), 16_000, "1000 ticks at 62.5 MHz");
    }

    #[test]
    fn zero_frequency_is_refused_by_the_driver() {
        let t = GenericTimer::new(Model::default());
        assert!(TimerDriver::new(t, Channel::new(0)).is_err());
    }
}
