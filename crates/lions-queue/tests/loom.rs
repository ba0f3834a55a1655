// SPDX-License-Identifier: BSD-2-Clause
//! Loom models of the ring and of the signalling protocol, run on the crate's own code (under
//! `--cfg loom` its atomics, fences and slot cells are loom's).
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p lions-queue --release --test loom
//! ```
//!
//! The preemption bound defaults to 4 here (so the whole file stays within a few minutes on two
//! cores); `LOOM_MAX_PREEMPTIONS` overrides it.
//!
//! - Ring: a producer thread pushes `k` entries (one publish per entry, or as many as fit per
//!   publish) through 2 or 4 slots, across the `u16`/`u32` index wrap; the consumer pops (one
//!   release per entry, or one per batch). FIFO order, no loss, no duplication; loom's `UnsafeCell`
//!   tracking proves that no slot is read and written concurrently, i.e. that the Release tail/head
//!   stores and Acquire loads really transfer slot ownership.
//! - Signalling, net style: the consumer runs process → `park` (request, re-check) → sleep; the
//!   producer pushes, publishes, then `should_notify(true)`. The notification is a
//!   single-writer counter (see [`Notification`] for why not a `swap`ped flag). Checked:
//!   a consumer asleep with entries still to come always has a notification pending (no lost
//!   wake-up).
//! - Signalling, serial style: the producer waits for space and the consumer notifies it when
//!   asked, while the producer always notifies the consumer. Notifications are loom's
//!   `thread::unpark` (a one-bit token, like a seL4 notification); a lost wake-up leaves both
//!   threads parked, which loom reports as a deadlock.
//! - Negative control: the same protocol without the two SeqCst fences must lose a wake-up, which
//!   shows that loom explores the store-buffering outcome the fences exist to forbid.
//!
//! On loom's SeqCst fences: loom 0.7 supports `fence(SeqCst)` (its README; `rt::fence` →
//! `fence_seqcst`): the fence is an acquire+release fence that also joins the thread's vector clock
//! with one global "SeqCst clock". For the store-buffering shape (store; fence; load on both
//! sides) this is exactly the C++20 rule: whichever fence comes second sees the other side's
//! store. It is *stronger* than C11 in one way: the fence pair also creates happens-before, so a
//! fence could hide a missing Acquire/Release on the ring indices. The ring models below therefore
//! use no signal (no fences at all); only the signalling models do.
#![cfg(loom)]
#![allow(clippy::unwrap_used)]

use lions_queue::signal::{self, Signal};
use lions_queue::{Consumer, Producer, PushError, RingIndex, RingStorage};
use loom::sync::atomic::{AtomicBool, AtomicU32, Ordering, fence};
use loom::thread;

/// Run `f` under loom, with a preemption bound of 4 unless `LOOM_MAX_PREEMPTIONS` says otherwise.
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(4);
    }
    builder.check(f);
}

/// Storage for one execution, leaked so that the handles can move to loom threads (which must be
/// `'static`). A few dozen bytes per explored execution.
fn storage<I: RingIndex, const N: usize>(start: I) -> &'static mut RingStorage<I, u64, N> {
    Box::leak(Box::new(RingStorage::starting_at(start)))
}

fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

// Compile-time: the handles cross threads, the storage is shared between them.
const _: () = {
    const fn send<T: Send>() {}
    const fn sync<T: Sync>() {}
    send::<Producer<'static, u16, u64>>();
    send::<Consumer<'static, u16, u64>>();
    send::<Signal<'static>>();
    sync::<RingStorage<u16, u64, 2>>();
};

// ---------------------------------------------------------------------------------------------
// The ring

/// Produce `0..items` (one publish per entry, or per batch of as many as fit).
fn produce<I: RingIndex>(p: &mut Producer<'_, I, u64>, items: u64, batch: bool) {
    let mut next = 0;
    while next < items {
        let before = next;
        loop {
            match p.push(next) {
                Ok(()) => next += 1,
                Err(PushError::Full(_)) => break,
                Err(PushError::Peer(e, _)) => panic!("well-behaved consumer reported: {e}"),
            }
            if !batch {
                p.publish();
            }
            if !batch || next == items {
                break;
            }
        }
        p.publish();
        if next == before {
            thread::yield_now();
        }
    }
}

/// Consume `0..items` in order (release per entry, or per batch).
fn consume<I: RingIndex>(c: &mut Consumer<'_, I, u64>, items: u64, batch: bool) {
    let mut expect = 0;
    while expect < items {
        let before = expect;
        while let Some(v) = c.pop().unwrap() {
            assert_eq!(v, expect, "FIFO order, no loss, no duplication");
            expect += 1;
            if !batch {
                c.release();
            }
        }
        c.release();
        if expect == before {
            thread::yield_now();
        }
    }
    assert_eq!(c.pop().unwrap(), None, "nothing beyond what was produced");
}

fn ring<I: RingIndex, const N: usize>(start: I, items: u64, batch: bool) {
    model(move || {
        let (mut p, mut c, _signal) = storage::<I, N>(start).split().unwrap();
        let producer = thread::spawn(move || produce(&mut p, items, batch));
        consume(&mut c, items, batch);
        producer.join().unwrap();
    });
}

#[test]
fn ring_single_cap2_across_u16_wrap() {
    ring::<u16, 2>(u16::MAX - 1, 3, false);
}

#[test]
fn ring_batched_cap2_across_u16_wrap() {
    ring::<u16, 2>(u16::MAX - 1, 4, true);
}

#[test]
fn ring_single_cap4_across_u32_wrap() {
    ring::<u32, 4>(u32::MAX - 2, 5, false);
}

#[test]
fn ring_batched_cap4_across_u16_wrap() {
    ring::<u16, 4>(u16::MAX - 2, 6, true);
}

// ---------------------------------------------------------------------------------------------
// Signalling, net style: only the producer notifies, and only when asked.

/// A notification as seL4 has it: the notifier sets a pending bit, the waiter's `wait` consumes it.
/// Modelled with one writer only (a count of notifications sent; the waiter remembers how many it
/// consumed), because loom 0.7 lets a read-modify-write read a store that is not the latest (see
/// `loom_gap_rmw_may_read_a_stale_store`), which would turn a `swap`-based flag into false alarms.
struct Notification {
    sent: AtomicU32,
    /// Set by the notifier when it will never notify again.
    done: AtomicBool,
}

impl Notification {
    fn new() -> &'static Self {
        leak(Self {
            sent: AtomicU32::new(0),
            done: AtomicBool::new(false),
        })
    }

    /// Notifier: send one notification (`count` is the notifier's private tally).
    fn notify(&self, count: &mut u32) {
        *count += 1;
        self.sent.store(*count, Ordering::Release);
    }

    /// Notifier: no more notifications will come.
    fn finish(&self) {
        self.done.store(true, Ordering::Release);
    }

    /// Waiter: sleep until a notification is pending, and consume it. If the notifier finishes
    /// without one pending, the waiter would sleep forever: the lost wake-up, reported as a panic.
    fn wait(&self, taken: &mut u32, unseen: u64) {
        loop {
            let sent = self.sent.load(Ordering::Acquire);
            if sent > *taken {
                *taken = sent;
                return;
            }
            if self.done.load(Ordering::Acquire) {
                // Every notification happened before `done`: this load sees them all.
                let sent = self.sent.load(Ordering::Acquire);
                assert!(
                    sent > *taken,
                    "lost wake-up: waiter asleep with {unseen} entries unseen, and the notifier \
                     decided not to notify"
                );
                *taken = sent;
                return;
            }
            thread::yield_now();
        }
    }
}

/// Net style, generic over the flag implementation so the real `Signal` and the fence-less
/// control share the model.
fn net_style<S: Copy + Send + 'static>(
    items: u64,
    request: fn(S),
    cancel: fn(S),
    take_request: fn(S) -> bool,
    make: fn(&'static AtomicU32) -> S,
) {
    model(move || {
        let (mut p, mut c, _) = storage::<u32, 4>(u32::MAX).split().unwrap();
        let sig = make(leak(AtomicU32::new(signal::SIGNAL_NOT_REQUESTED)));
        let note = Notification::new();

        let producer = thread::spawn(move || {
            let mut sent = 0;
            for i in 0..items {
                p.enqueue(i).unwrap(); // never full: items <= capacity
                // Phase 3: notify only if asked (work was done: one entry).
                if take_request(sig) {
                    note.notify(&mut sent);
                }
            }
            note.finish();
        });

        let (mut seen, mut taken) = (0, 0);
        loop {
            // Phase 1: process.
            while let Some(v) = c.dequeue().unwrap() {
                assert_eq!(v, seen);
                seen += 1;
            }
            if seen == items {
                break;
            }
            // Phase 2: request, re-check; back to work if the ring is not empty after all.
            request(sig);
            if !c.is_empty().unwrap() {
                cancel(sig);
                continue;
            }
            // Sleep.
            note.wait(&mut taken, items - seen);
        }
        producer.join().unwrap();
    });
}

fn real_request(s: Signal<'static>) {
    s.request();
}

fn real_cancel(s: Signal<'static>) {
    s.cancel();
}

fn real_take(s: Signal<'static>) -> bool {
    s.should_notify(true)
}

#[test]
fn signal_net_style_no_lost_wakeup() {
    net_style(2, real_request, real_cancel, real_take, Signal::new);
}

#[test]
fn signal_net_style_park_helper() {
    // The same protocol through `signal::park`, which packs request + re-check + cancel.
    model(|| {
        let (mut p, mut c, sig) = storage::<u16, 2>(u16::MAX).split().unwrap();
        let note = Notification::new();
        let producer = thread::spawn(move || {
            let mut sent = 0;
            for i in 0..2 {
                p.enqueue(i).unwrap();
                if sig.should_notify(true) {
                    note.notify(&mut sent);
                }
            }
            note.finish();
        });
        let (mut seen, mut taken) = (0, 0);
        while seen < 2 {
            while let Some(v) = c.dequeue().unwrap() {
                assert_eq!(v, seen);
                seen += 1;
            }
            if seen < 2 && !signal::park(sig, || !c.is_empty().unwrap()) {
                note.wait(&mut taken, 2 - seen);
            }
        }
        producer.join().unwrap();
    });
}

/// The protocol with the two SeqCst fences removed (a loom-only copy; the crate's `Signal` is not
/// touched). Store-buffering lets both sides read stale values, and the wake-up is lost.
#[derive(Clone, Copy)]
struct NoFence(&'static AtomicU32);

fn nofence_request(s: NoFence) {
    s.0.store(signal::SIGNAL_REQUESTED, Ordering::Relaxed);
}

fn nofence_cancel(s: NoFence) {
    s.0.store(signal::SIGNAL_NOT_REQUESTED, Ordering::Relaxed);
}

fn nofence_take(s: NoFence) -> bool {
    if s.0.load(Ordering::Relaxed) == signal::SIGNAL_REQUESTED {
        nofence_cancel(s);
        true
    } else {
        false
    }
}

#[test]
#[should_panic(expected = "lost wake-up")]
fn signal_without_fences_loses_a_wakeup() {
    net_style(1, nofence_request, nofence_cancel, nofence_take, NoFence);
}

/// One fence is not enough either: with the waiter's fence only, the notifier's load may still
/// be reordered before its tail store.
#[test]
#[should_panic(expected = "lost wake-up")]
fn signal_with_waiter_fence_only_loses_a_wakeup() {
    fn request(s: NoFence) {
        nofence_request(s);
        fence(Ordering::SeqCst);
    }
    net_style(1, request, nofence_cancel, nofence_take, NoFence);
}

// ---------------------------------------------------------------------------------------------
// Signalling, serial style: the producer waits for space and asks the consumer to signal it; the
// producer always notifies the consumer after enqueueing. Notification = `unpark` (a one-bit token
// like a seL4 notification); a lost wake-up parks both threads, which loom reports as a deadlock.

#[test]
fn signal_serial_style_producer_waits_for_space() {
    const ITEMS: u64 = 3;
    model(|| {
        let (mut p, mut c, space) = storage::<u32, 1>(u32::MAX).split().unwrap();
        let consumer = thread::current();
        let producer = thread::spawn(move || {
            for i in 0..ITEMS {
                loop {
                    match p.enqueue(i) {
                        Ok(()) => break,
                        Err(PushError::Full(_)) => {
                            // Phase 2: ask for space, re-check; sleep only if still full.
                            if !signal::park(space, || !p.is_full().unwrap()) {
                                thread::park();
                            }
                        }
                        Err(PushError::Peer(e, _)) => panic!("{e}"),
                    }
                }
                consumer.unpark(); // serial: always notify the consumer
            }
        });
        let producer_thread = producer.thread().clone();
        let mut seen = 0;
        while seen < ITEMS {
            let mut did_work = false;
            while let Some(v) = c.pop().unwrap() {
                assert_eq!(v, seen);
                seen += 1;
                did_work = true;
            }
            c.release();
            // Phase 3: notify the producer only if space was made and it asked.
            if space.should_notify(did_work) {
                producer_thread.unpark();
            }
            if seen < ITEMS && !did_work {
                thread::park(); // wait for the producer's notification
            }
        }
        producer.join().unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// A loom 0.7 gap, pinned so we notice when it is fixed.

/// Loom keeps modification order as vector clocks, so two unordered stores are unordered in it,
/// and a read-modify-write may read either: here the second `swap` reads the first `swap`'s own
/// `false` although the notifier's `true` happens before it (through `y`). C11 forbids
/// `r1 = false, r2 = true, r3 = false`: an RMW reads the latest value in the (total) modification
/// order. This is why the notification above has a single writer.
#[test]
#[should_panic(expected = "C11 forbids")]
fn loom_gap_rmw_may_read_a_stale_store() {
    model(|| {
        let x = leak(AtomicBool::new(false));
        let y = leak(AtomicBool::new(false));
        let t = thread::spawn(move || {
            x.store(true, Ordering::Release);
            y.store(true, Ordering::Release);
        });
        let r1 = x.swap(false, Ordering::Acquire);
        let r2 = y.load(Ordering::Acquire);
        let r3 = x.swap(false, Ordering::Acquire);
        assert!(
            !(r2 && !r1 && !r3),
            "C11 forbids r1 = false, r2 = true, r3 = false"
        );
        t.join().unwrap();
    });
}
