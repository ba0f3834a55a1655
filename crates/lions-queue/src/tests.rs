// SPDX-License-Identifier: BSD-2-Clause
//! Unit tests of the ring handles: wrap in every width, batching, peer misbehaviour.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use super::*;
use crate::index::RingIndex;
use crate::sync::Ordering;

#[test]
fn fifo_and_batching() {
    let mut s = RingStorage::<u32, u32, 4>::new();
    let (mut p, mut c, _) = s.split().unwrap();
    assert_eq!(
        p.push_slice(&[1, 2, 3, 4, 5]).unwrap(),
        4,
        "all four slots are usable"
    );
    assert!(matches!(p.push(9), Err(PushError::Full(9))));
    assert_eq!(c.len().unwrap(), 0);
    assert_eq!(p.publish(), 4);
    assert_eq!(p.publish(), 0, "nothing new to publish");
    let mut out = [0; 3];
    assert_eq!(c.pop_slice(&mut out).unwrap(), 3);
    assert_eq!(out, [1, 2, 3]);
    assert!(
        p.is_full().unwrap(),
        "slots are not free until the consumer releases"
    );
    assert_eq!(c.release(), 3);
    assert_eq!(p.free().unwrap(), 3);
    assert_eq!(c.dequeue().unwrap(), Some(4));
    assert_eq!(c.dequeue().unwrap(), None);
}

#[test]
fn abort_discards_staged() {
    let mut s = RingStorage::<u32, u8, 8>::new();
    let (mut p, mut c, _) = s.split().unwrap();
    p.enqueue(1).unwrap();
    p.push(2).unwrap();
    p.push(3).unwrap();
    assert_eq!(p.staged(), 2);
    p.abort();
    p.push(4).unwrap();
    p.publish();
    assert_eq!(c.dequeue().unwrap(), Some(1));
    assert_eq!(c.dequeue().unwrap(), Some(4));
    assert_eq!(c.dequeue().unwrap(), None);
}

/// Fill and drain across the index wrap; `full` must still mean full (the sDDF u16 bug).
fn wrap_case<I: RingIndex>(start: I) {
    let mut s = RingStorage::<I, u64, 8>::starting_at(start);
    let (mut p, mut c, _) = s.split().unwrap();
    let mut next = 0u64;
    let mut expect = 0u64;
    for _round in 0..6 {
        while p.push(next).is_ok() {
            next += 1;
        }
        assert_eq!(p.len().unwrap(), 8, "a full ring is full across the wrap");
        assert!(p.is_full().unwrap());
        p.publish();
        assert_eq!(c.len().unwrap(), 8);
        for _ in 0..5 {
            assert_eq!(c.pop().unwrap(), Some(expect));
            expect += 1;
        }
        c.release();
    }
}

#[test]
fn wraps_in_every_width() {
    wrap_case::<u16>(u16::MAX - 3);
    wrap_case::<u32>(u32::MAX - 3);
    wrap_case::<u64>(u64::MAX - 3);
}

#[test]
fn non_power_of_two_never_straddles_the_wrap() {
    // 6 slots, u16: 65536 % 6 = 4, so index 65535 and index 3 would both map to slot 3.
    let cap = Capacity::fixed::<u16>(6, 6).unwrap();
    let mut s = RingStorage::<u16, u64, 6>::starting_at(u16::MAX - 2);
    let (mut p, mut c, _) = s.split_with(cap).unwrap();
    // Only the three indices up to 65535 may be used before the consumer catches up.
    assert_eq!(p.push_slice(&[10, 11, 12, 13]).unwrap(), 3);
    p.publish();
    assert_eq!(c.pop().unwrap(), Some(10));
    c.release();
    assert!(
        p.is_full().unwrap(),
        "window may not straddle the wrap while live entries remain"
    );
    assert_eq!(c.pop().unwrap(), Some(11));
    assert_eq!(c.pop().unwrap(), Some(12));
    c.release();
    assert_eq!(
        p.push_slice(&[20, 21, 22, 23, 24, 25, 26]).unwrap(),
        6,
        "empty at the wrap: full ring again"
    );
    p.publish();
    let mut out = [0; 6];
    assert_eq!(c.pop_slice(&mut out).unwrap(), 6);
    assert_eq!(out, [20, 21, 22, 23, 24, 25]);
}

#[test]
fn one_slot_held_back_when_usable_is_smaller() {
    let cap = Capacity::fixed::<u32>(4, 3).unwrap();
    let mut s = RingStorage::<u32, u8, 4>::new();
    let (mut p, _c, _) = s.split_with(cap).unwrap();
    assert_eq!(p.push_slice(&[1, 2, 3, 4]).unwrap(), 3);
}

#[test]
fn capacity_must_fit_storage() {
    let mut s = RingStorage::<u32, u8, 4>::new();
    let cap = Capacity::new::<u32>(8).unwrap();
    assert_eq!(
        s.split_with(cap).err(),
        Some(HandleError::Capacity(CapacityError::StorageTooSmall {
            needed: 8,
            have: 4
        }))
    );
}

/// Ring fields held only by shared reference, so a test can play the misbehaving peer through
/// `head`/`tail` while handles exist. (Writing through a pointer taken before `RingStorage::split`
/// aliases its `&mut self` borrow: undefined behaviour that Miri reports under both Stacked and Tree
/// Borrows.)
struct Raw<I: RingIndex, T, const N: usize> {
    head: I::Atomic,
    tail: I::Atomic,
    slots: [Slot<T>; N],
}

impl<I: RingIndex, T: Copy + Default, const N: usize> Raw<I, T, N> {
    fn new() -> Self {
        Self {
            head: I::new_atomic(I::ZERO),
            tail: I::new_atomic(I::ZERO),
            slots: core::array::from_fn(|_| Slot::new(T::default())),
        }
    }

    fn cap(&self) -> Capacity {
        Capacity::new::<I>(N as u64).unwrap()
    }
}

#[test]
fn consumer_rejects_impossible_tails() {
    let mut s = RingStorage::<u32, u32, 4>::new();
    {
        let (mut p, mut c, _) = s.split().unwrap();
        p.push_slice(&[1, 2]).unwrap();
        p.publish();
        assert_eq!(c.len().unwrap(), 2);
    }
    // A lying producer claims 5 entries in a 4-slot ring.
    u32::store(&s.tail, 5, Ordering::Relaxed);
    let err = s.split().err().unwrap();
    assert!(matches!(
        err,
        HandleError::Peer(PeerError {
            field: IndexField::Tail,
            value: 5,
            ..
        })
    ));

    let r = Raw::<u32, u32, 4>::new();
    // SAFETY: one producer and one consumer over `r`, which outlives them.
    let (mut p, mut c) = unsafe {
        (
            Producer::<u32, u32>::new(&r.head, &r.tail, &r.slots, r.cap()).unwrap(),
            Consumer::<u32, u32>::new(&r.head, &r.tail, &r.slots, r.cap()).unwrap(),
        )
    };
    p.push_slice(&[1, 2]).unwrap();
    p.publish();
    assert_eq!(c.pop().unwrap(), Some(1));
    u32::store(&r.tail, 1, Ordering::Relaxed); // moved backwards
    let e = c.len().unwrap_err();
    assert_eq!(e.field, IndexField::Tail);
    assert_eq!(e.value, 1);
    u32::store(&r.tail, 99, Ordering::Relaxed); // far past capacity
    assert!(
        c.pop().is_ok(),
        "entry 2 was already seen and stays readable"
    );
    assert!(c.pop().is_err());
    u32::store(&r.tail, 3, Ordering::Relaxed); // the peer comes back to its senses
    assert_eq!(c.len().unwrap(), 1);
}

#[test]
fn producer_rejects_impossible_heads() {
    let r = Raw::<u16, u32, 4>::new();
    // SAFETY: one producer over `r`, which outlives it; the test plays the consumer.
    let mut p = unsafe { Producer::<u16, u32>::new(&r.head, &r.tail, &r.slots, r.cap()).unwrap() };
    p.push_slice(&[1, 2, 3]).unwrap();
    p.publish();
    u16::store(&r.head, 4, Ordering::Relaxed); // past the published tail
    assert!(
        matches!(p.push(7), Ok(())),
        "a push that needs no refresh still works"
    );
    assert!(matches!(
        p.push(8),
        Err(PushError::Peer(
            PeerError {
                field: IndexField::Head,
                value: 4,
                ..
            },
            8
        ))
    ));
    u16::store(&r.head, u16::MAX, Ordering::Relaxed); // backwards
    assert!(p.free().is_err());
    u16::store(&r.head, 2, Ordering::Relaxed);
    assert_eq!(p.free().unwrap(), 2, "tail (with staged) 4, head 2");
}

#[test]
fn push_iter_fills_in_place_across_the_array_end() {
    let mut s = RingStorage::<u16, u64, 8>::starting_at(u16::MAX - 2);
    let (mut p, mut c, _) = s.split().unwrap();
    assert_eq!(p.push_iter(0..5).unwrap(), 5);
    assert_eq!(p.push_iter(5..20).unwrap(), 3, "only three slots left");
    assert_eq!(p.push_iter(20..21).unwrap(), 0, "full");
    p.publish();
    let mut out = [0; 8];
    assert_eq!(c.pop_slice(&mut out).unwrap(), 8);
    assert_eq!(out, [0, 1, 2, 3, 4, 5, 6, 7]);
    c.release();
    assert_eq!(
        p.push_iter([40, 41].into_iter().chain(42..43)).unwrap(),
        3,
        "an iterator that ends early stages what it gave"
    );
    p.publish();
    assert_eq!(c.pop_slice(&mut out).unwrap(), 3);
    assert_eq!(out[..3], [40, 41, 42]);
}

#[test]
fn push_iter_keeps_the_wrap_rule_of_fixed_capacities() {
    // As `non_power_of_two_never_straddles_the_wrap`, through `push_iter`.
    let cap = Capacity::fixed::<u16>(6, 6).unwrap();
    let mut s = RingStorage::<u16, u64, 6>::starting_at(u16::MAX - 2);
    let (mut p, mut c, _) = s.split_with(cap).unwrap();
    assert_eq!(p.push_iter(10..14).unwrap(), 3);
    p.publish();
    for v in 10..13 {
        assert_eq!(c.pop().unwrap(), Some(v));
    }
    c.release();
    assert_eq!(p.push_iter(20..27).unwrap(), 6);
    p.publish();
    let mut out = [0; 6];
    assert_eq!(c.pop_slice(&mut out).unwrap(), 6);
    assert_eq!(out, [20, 21, 22, 23, 24, 25]);
}

#[test]
fn push_iter_reports_a_lying_consumer() {
    let r = Raw::<u32, u32, 4>::new();
    // SAFETY: one producer over `r`, which outlives it; the test plays the consumer.
    let mut p = unsafe { Producer::<u32, u32>::new(&r.head, &r.tail, &r.slots, r.cap()).unwrap() };
    assert_eq!(p.push_iter(0..4).unwrap(), 4);
    p.publish();
    u32::store(&r.head, 9, Ordering::Relaxed); // past the published tail
    let e = p.push_iter(0..1).unwrap_err();
    assert_eq!((e.field, e.value), (IndexField::Head, 9));
}

#[test]
fn pop_iter_reads_in_place_across_the_array_end() {
    // 32 slots starting 5 before the u16 wrap and 20 in: entries 20.. sit at slots 20..31, 0..
    let mut s = RingStorage::<u16, u64, 32>::starting_at(u16::MAX - 4);
    let (mut p, mut c, _) = s.split().unwrap();
    assert_eq!(p.push_iter(0..20).unwrap(), 20);
    p.publish();
    assert_eq!(c.pop_iter(20).unwrap().count(), 20);
    c.release();
    assert_eq!(p.push_iter(100..131).unwrap(), 31);
    p.publish();
    // Through `fold` (groups of eight and single slots, both runs of the wrap).
    let it = c.pop_iter(64).unwrap();
    assert_eq!(it.len(), 31, "only what is published");
    assert_eq!(it.sum::<u64>(), (100..131).sum::<u64>());
    assert_eq!(c.consumed(), 31);
    assert_eq!(p.free().unwrap(), 1, "nothing handed back before release");
    assert_eq!(c.release(), 31);
    assert_eq!(p.free().unwrap(), 32);
    assert_eq!(c.pop_iter(8).unwrap().len(), 0, "empty");
}

#[test]
fn pop_iter_fold_yields_every_entry_in_order_at_any_start_and_length() {
    // `fold` reads groups of slots, then single slots, in each of the two runs of a wrap: every
    // mix of those, from starts on and off the group boundaries.
    for start in [0u32, 1, 7, 8, 31, 32, 33, 64, 95, 100, 127] {
        for len in 0..=128u64 {
            let mut s = RingStorage::<u32, u64, 128>::starting_at(start);
            let (mut p, mut c, _) = s.split().unwrap();
            assert_eq!(p.push_iter(1000..1000 + len).unwrap() as u64, len);
            p.publish();
            let got = c.pop_iter(200).unwrap().fold(Vec::new(), |mut v, x| {
                v.push(x);
                v
            });
            assert_eq!(
                got,
                (1000..1000 + len).collect::<Vec<_>>(),
                "start {start} len {len}"
            );
            assert_eq!(c.release(), len);
        }
    }
}

#[test]
fn pop_iter_pops_only_what_it_yields() {
    let mut s = RingStorage::<u32, u64, 8>::new();
    let (mut p, mut c, _) = s.split().unwrap();
    assert_eq!(p.push_iter(10..16).unwrap(), 6);
    p.publish();
    let mut it = c.pop_iter(4).unwrap();
    assert_eq!(it.size_hint(), (4, Some(4)));
    assert_eq!(it.next(), Some(10));
    assert_eq!(it.next(), Some(11));
    drop(it);
    assert_eq!(c.consumed(), 2, "two yielded, two left in the ring");
    let it = c.pop_iter(8).unwrap();
    core::mem::forget(it);
    assert_eq!(c.consumed(), 2, "a forgotten iterator pops nothing");
    let mut all = [0; 4];
    let mut n = 0;
    c.pop_iter(8).unwrap().for_each(|v| {
        all[n] = v;
        n += 1;
    });
    assert_eq!((n, all), (4, [12, 13, 14, 15]));
    assert_eq!(c.release(), 6);
}

#[test]
fn pop_iter_keeps_the_wrap_rule_of_fixed_capacities() {
    // As `non_power_of_two_never_straddles_the_wrap`, read through `pop_iter`.
    let cap = Capacity::fixed::<u16>(6, 6).unwrap();
    let mut s = RingStorage::<u16, u64, 6>::starting_at(u16::MAX - 2);
    let (mut p, mut c, _) = s.split_with(cap).unwrap();
    assert_eq!(p.push_slice(&[10, 11, 12, 13]).unwrap(), 3);
    p.publish();
    let mut it = c.pop_iter(6).unwrap();
    assert_eq!(it.next(), Some(10));
    drop(it);
    assert_eq!(c.pop_iter(6).unwrap().collect::<Vec<_>>(), [11, 12]);
    c.release();
    assert_eq!(p.push_slice(&[20, 21, 22, 23, 24, 25, 26]).unwrap(), 6);
    p.publish();
    assert_eq!(
        c.pop_iter(6).unwrap().collect::<Vec<_>>(),
        [20, 21, 22, 23, 24, 25]
    );
    assert_eq!(c.pop().unwrap(), None);
}

#[test]
fn pop_iter_reports_a_lying_producer() {
    let r = Raw::<u32, u32, 4>::new();
    // SAFETY: one consumer over `r`, which outlives it; the test plays the producer.
    let mut c = unsafe { Consumer::<u32, u32>::new(&r.head, &r.tail, &r.slots, r.cap()).unwrap() };
    u32::store(&r.tail, 2, Ordering::Relaxed);
    assert_eq!(c.pop_iter(1).unwrap().count(), 1);
    u32::store(&r.tail, 99, Ordering::Relaxed); // far past capacity
    assert_eq!(
        c.pop_iter(4).unwrap().count(),
        1,
        "the entry already seen stays readable"
    );
    let e = c.pop_iter(4).err().unwrap();
    assert_eq!((e.field, e.value), (IndexField::Tail, 99));
    u32::store(&r.tail, 0, Ordering::Relaxed); // backwards
    assert!(c.pop_iter(1).is_err());
    u32::store(&r.tail, 3, Ordering::Relaxed);
    assert_eq!(c.pop_iter(4).unwrap().count(), 1);
}
