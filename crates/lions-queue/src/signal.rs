// SPDX-License-Identifier: BSD-2-Clause
//! The signalling protocol: avoid useless notifications without ever losing a wake-up.
//!
//! A shared `u32` flag sits next to each ring. Polarity as in sDDF: **0 = "signal me"**, 1 = "no
//! signal needed". A component runs each queue in three phases:
//!
//! 1. *Process* while progress is possible.
//! 2. *Register*: [`Signal::request`], then re-check the condition that stopped processing; if
//!    progress became possible, [`Signal::cancel`] and go back to 1 ([`park`] does both steps).
//! 3. *Notify*: only if work was done and the peer asked ([`Signal::take_request`]).
//!
//! Why the fences: the waiter does `flag = 0; fence; read index`, the notifier does `write index;
//! fence; read flag`. Without the two SeqCst fences this is the store-buffering litmus test, in
//! which both loads may see the old values: the waiter sees no work and sleeps, the notifier sees no
//! request and does not notify, and the wake-up is lost. With a SeqCst fence between each store and
//! the following load, at least one side sees the other's store.
//!
//! Who uses the flag, per class: net, the producer notifies the consumer only when asked (the flag
//! is `consumer_signalled`); serial, the producer always notifies and the consumer notifies the
//! producer only when asked (`producer_signalled`); blk, I²C and fs have no flag and always notify.

use crate::sync::{AtomicU32, Ordering, fence};

/// Flag value meaning "the waiter wants a signal".
pub const SIGNAL_REQUESTED: u32 = 0;
/// Flag value meaning "no signal needed" (or already sent).
pub const SIGNAL_NOT_REQUESTED: u32 = 1;

/// A signal-request flag in shared memory.
#[derive(Clone, Copy)]
pub struct Signal<'a> {
    flag: &'a AtomicU32,
}

impl<'a> Signal<'a> {
    /// The flag at `flag`.
    #[inline]
    pub fn new(flag: &'a AtomicU32) -> Self {
        Self { flag }
    }

    /// Waiter: ask to be signalled. The SeqCst fence orders this store before the waiter's
    /// re-check of the ring (store-buffering, see the module docs).
    #[inline]
    pub fn request(&self) {
        self.flag.store(SIGNAL_REQUESTED, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Either side: withdraw the request. No fence: a cancel is always followed by a request (or by
    /// the notification it stands for) before anyone sleeps on the flag.
    #[inline]
    pub fn cancel(&self) {
        self.flag.store(SIGNAL_NOT_REQUESTED, Ordering::Relaxed);
    }

    /// Notifier: whether the waiter asked. The SeqCst fence orders the notifier's preceding index
    /// publication before this load.
    #[inline]
    pub fn is_requested(&self) -> bool {
        fence(Ordering::SeqCst);
        self.flag.load(Ordering::Relaxed) == SIGNAL_REQUESTED
    }

    /// Notifier: if the waiter asked, cancel its request and return true (the caller then notifies).
    #[inline]
    pub fn take_request(&self) -> bool {
        if self.is_requested() {
            self.cancel();
            true
        } else {
            false
        }
    }

    /// Notifier, phase 3: notify only when work was done and the waiter asked.
    #[inline]
    pub fn should_notify(&self, did_work: bool) -> bool {
        did_work && self.take_request()
    }
}

/// Waiter, phase 2: request a signal and re-check. Returns `true` when `has_work` became true after
/// all (the request is cancelled and the caller goes back to processing), `false` when it is safe
/// to sleep: any later progress by the peer will be signalled.
pub fn park(signal: Signal<'_>, has_work: impl FnOnce() -> bool) -> bool {
    signal.request();
    if has_work() {
        signal.cancel();
        true
    } else {
        false
    }
}

/// [`park`] with a re-check that can fail (a re-read of the peer's index that found it corrupt):
/// `Ok(true)` = work arrived (request withdrawn), `Ok(false)` = safe to sleep, `Err` = the re-check
/// failed (request withdrawn, error returned).
pub fn park_with<E>(
    signal: Signal<'_>,
    has_work: impl FnOnce() -> Result<bool, E>,
) -> Result<bool, E> {
    signal.request();
    match has_work() {
        Ok(false) => Ok(false),
        other => {
            signal.cancel();
            other
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn polarity_matches_sddf() {
        let flag = AtomicU32::new(SIGNAL_NOT_REQUESTED);
        let s = Signal::new(&flag);
        assert!(!s.should_notify(true));
        s.request();
        assert_eq!(flag.load(Ordering::Relaxed), 0);
        assert!(!s.should_notify(false), "no work, no notification");
        assert!(
            s.is_requested(),
            "a notifier that did no work leaves the request standing"
        );
        assert!(s.should_notify(true));
        assert_eq!(
            flag.load(Ordering::Relaxed),
            1,
            "notifying cancels the request"
        );
        assert!(!s.should_notify(true), "one request, one notification");
    }

    #[test]
    fn park_rechecks() {
        let flag = AtomicU32::new(SIGNAL_NOT_REQUESTED);
        let s = Signal::new(&flag);
        assert!(park(s, || true));
        assert!(
            !s.is_requested(),
            "work found on re-check cancels the request"
        );
        assert!(!park(s, || false));
        assert!(
            s.is_requested(),
            "nothing to do: the request stays for the peer to see"
        );
    }
}
