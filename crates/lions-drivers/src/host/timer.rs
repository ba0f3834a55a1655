// SPDX-License-Identifier: BSD-2-Clause
//! The host board's timer: a `CLOCK_MONOTONIC` timerfd as a [`TimerDevice`].
//!
//! - Counter: `CLOCK_MONOTONIC` in nanoseconds (frequency [`HOST_TIMER_HZ`], so ticks are ns),
//!   never going backwards. Every PD on the host shares this clock.
//! - `set_compare(Some(t))`: `timerfd_settime(TFD_TIMER_ABSTIME)` to expire once at `t` (a time
//!   already passed expires at once; `t` = 0, which would disarm, is taken as 1 ns).
//!   `set_compare(None)`: disarm. Re-arming also clears an expiry not yet read.
//! - `ack`: read the expiration count, so the fd is no longer readable.
//! - Interrupt: the timerfd is readable after an expiry ([`HostTimer::attach_irq`] registers it
//!   with `lions_os::host::register_irq_fd`).

use super::sys;
use lions_os::{Channel, OsError};
use lions_timer::TimerDevice;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The host timer's counter frequency: one tick per nanosecond.
pub const HOST_TIMER_HZ: u64 = 1_000_000_000;

/// A timerfd-backed timer device (see the [module docs](self)).
#[derive(Debug)]
pub struct HostTimer {
    fd: OwnedFd,
    last: u64,
    expirations: u64,
}

impl HostTimer {
    /// A new, disarmed timer.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            fd: sys::timerfd()?,
            last: 0,
            expirations: 0,
        })
    }

    /// Deliver this timer's expiries on `irq` (an `<irq>` channel of this PD, from
    /// `.device_resources`). Call it once, in `init`.
    pub fn attach_irq(&self, irq: Channel) -> Result<(), OsError> {
        lions_os::host::register_irq_fd(irq, self.fd.as_fd())
    }

    /// The timerfd: readable after an expiry until [`ack`](TimerDevice::ack).
    pub fn irq_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Expiries read by `ack` so far.
    pub fn expirations(&self) -> u64 {
        self.expirations
    }
}

impl TimerDevice for HostTimer {
    fn freq_hz(&self) -> u64 {
        HOST_TIMER_HZ
    }

    fn now_ticks(&mut self) -> u64 {
        self.last = self.last.max(sys::monotonic_ns());
        self.last
    }

    fn set_compare(&mut self, deadline: Option<u64>) {
        // Valid arguments cannot fail (the seconds of u64::MAX ns fit a time_t).
        let _ = sys::timerfd_arm_at(self.fd.as_fd(), deadline.map_or(0, |t| t.max(1)));
    }

    fn ack(&mut self) {
        let mut count = [0u8; 8];
        if let Ok(8) = sys::read(self.fd.as_fd(), &mut count) {
            self.expirations = self.expirations.wrapping_add(u64::from_ne_bytes(count));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// Whether `fd` is readable, waiting up to `ms`.
    fn readable(fd: BorrowedFd<'_>, ms: i32) -> bool {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        n == 1 && p.revents & libc::POLLIN != 0
    }

    fn armed(t: &HostTimer) -> bool {
        // SAFETY: all-zero is a valid itimerspec for the kernel to overwrite.
        let mut cur: libc::itimerspec = unsafe { core::mem::zeroed() };
        // SAFETY: the kernel writes into the live `cur`.
        let r = unsafe { libc::timerfd_gettime(t.fd.as_raw_fd(), &mut cur) };
        assert_eq!(r, 0);
        cur.it_value.tv_sec != 0 || cur.it_value.tv_nsec != 0
    }

    #[test]
    fn counts_nanoseconds_monotonically() {
        let mut t = HostTimer::new().unwrap();
        assert_eq!(t.freq_hz(), 1_000_000_000);
        let mut prev = t.now_ticks();
        assert!(prev > 0);
        for _ in 0..1000 {
            let now = t.now_ticks();
            assert!(now >= prev);
            prev = now;
        }
        assert!(!armed(&t), "created disarmed");
    }

    #[test]
    fn past_deadline_fires_at_once_and_ack_consumes_it() {
        let mut t = HostTimer::new().unwrap();
        let now = t.now_ticks();
        t.set_compare(Some(now - 1));
        assert!(readable(t.irq_fd(), 10_000), "expired");
        t.ack();
        assert_eq!(t.expirations(), 1);
        assert!(!readable(t.irq_fd(), 0), "ack consumed the expiry");
        t.ack();
        assert_eq!(t.expirations(), 1, "ack with nothing pending reads nothing");
        // Deadline 0 (the counter's origin) is in the past too, not "disarm".
        t.set_compare(Some(0));
        assert!(readable(t.irq_fd(), 10_000));
    }

    #[test]
    fn future_deadline_arms_and_none_disarms() {
        let mut t = HostTimer::new().unwrap();
        let hour = 3_600 * HOST_TIMER_HZ;
        let later = t.now_ticks() + hour;
        t.set_compare(Some(later));
        assert!(armed(&t));
        assert!(!readable(t.irq_fd(), 0));
        t.set_compare(None);
        assert!(!armed(&t));
        t.set_compare(Some(u64::MAX));
        assert!(armed(&t), "the far future is accepted");
    }

    #[test]
    fn rearming_clears_an_unread_expiry() {
        let mut t = HostTimer::new().unwrap();
        t.set_compare(Some(1));
        assert!(readable(t.irq_fd(), 10_000));
        t.set_compare(None);
        assert!(!readable(t.irq_fd(), 0), "disarm drops the pending expiry");
        t.set_compare(Some(1));
        assert!(readable(t.irq_fd(), 10_000));
        let later = t.now_ticks() + 3_600 * HOST_TIMER_HZ;
        t.set_compare(Some(later));
        assert!(!readable(t.irq_fd(), 0), "a later deadline replaces it");
    }
}
