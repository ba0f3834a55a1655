// SPDX-License-Identifier: BSD-2-Clause
//! Property tests of `Producer`/`Consumer` against a `VecDeque` model.
//!
//! Random sequences of push/push_slice/push_iter/enqueue/publish/abort/pop/pop_slice/pop_iter/peek/
//! dequeue/release
//! over `u16`, `u32` and `u64` indices, power-of-two capacities (all slots usable or one held
//! back) and non-power-of-two fixed capacities (6/6, 6/5, 254/253), starting near the index wrap.
//! The consumer must see exactly the published entries in order; `len`/`free`/`is_full` must agree
//! with the model.
//!
//! The adversary tests write random values into the shared `head`/`tail` between operations: no
//! panic (so no out-of-bounds slot access), every error is a `PeerError` naming the field the
//! adversary wrote, an impossible index is always refused, and once sane values are back the ring
//! works exactly as the model says.
//!
//! Under Miri the case count drops (`PROPTEST_CASES` still overrides it outside Miri).
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

use lions_queue::{
    Capacity, Consumer, IndexField, PeerError, Producer, PushError, RingIndex, RingStorage, Slot,
};
use proptest::prelude::*;
use proptest::test_runner::Config;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;

/// Cases per property: few under Miri (an interpreter), the proptest default (or
/// `PROPTEST_CASES`) otherwise.
fn config() -> Config {
    if cfg!(miri) {
        Config {
            cases: 3,
            failure_persistence: None,
            ..Config::default()
        }
    } else {
        Config::default()
    }
}

/// Longest operation sequence per case.
const MAX_OPS: usize = if cfg!(miri) { 60 } else { 300 };

#[derive(Debug, Clone, Copy)]
enum Op {
    Push,
    PushSlice(usize),
    Enqueue,
    Publish,
    Abort,
    Pop,
    PopSlice(usize),
    /// `push_iter` of this many items.
    PushIter(usize),
    /// `pop_iter` of at most the first, taking at most the second from the iterator.
    PopIter(usize, usize),
    Peek,
    Dequeue,
    Release,
    Check,
}

fn op(max_batch: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Push),
        2 => (0..=max_batch).prop_map(Op::PushSlice),
        1 => Just(Op::Enqueue),
        3 => Just(Op::Publish),
        1 => Just(Op::Abort),
        5 => Just(Op::Pop),
        2 => (0..=max_batch).prop_map(Op::PopSlice),
        2 => (0..=max_batch).prop_map(Op::PushIter),
        2 => (0..=max_batch, 0..=max_batch).prop_map(|(n, t)| Op::PopIter(n, t)),
        1 => Just(Op::Peek),
        1 => Just(Op::Dequeue),
        3 => Just(Op::Release),
        1 => Just(Op::Check),
    ]
}

/// A start index: at or just below the wrap, just below the half-way point, zero, or anywhere.
fn start(max: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        (0..300u64).prop_map(move |k| max - k),
        (0..16u64).prop_map(move |k| max / 2 - k),
        Just(0),
        any::<u64>().prop_map(move |v| v & max),
    ]
}

/// The shapes under test: (slots, usable, power of two?). Storage is sized to `slots`.
const SHAPES: &[(u64, u64)] = &[
    (1, 1),
    (2, 2),
    (4, 4),
    (8, 8),
    (8, 7),
    (6, 6),
    (6, 5),
    (254, 253),
];

fn capacity<I: RingIndex>(slots: u64, usable: u64) -> Capacity {
    if slots == usable && slots.is_power_of_two() {
        Capacity::new::<I>(slots).unwrap()
    } else {
        Capacity::fixed::<I>(slots, usable).unwrap()
    }
}

/// What the ring must look like: indices in the ring's own width, and the entries.
#[derive(Debug)]
struct Model {
    /// `I::MAX`: indices wrap at `max + 1`.
    max: u64,
    usable: u64,
    pow2: bool,
    /// Head as released by the consumer.
    head: u64,
    /// Tail as published by the producer.
    tail: u64,
    /// Published, not yet popped.
    visible: VecDeque<u64>,
    /// Popped, not yet released.
    popped: u64,
    /// Pushed, not yet published.
    staged: Vec<u64>,
    /// Next value to push (values are unique, so order and duplication show).
    next: u64,
}

impl Model {
    fn new<I: RingIndex>(cap: Capacity, start: u64) -> Self {
        Self {
            max: I::MAX,
            usable: cap.usable(),
            pow2: cap.is_power_of_two(),
            head: start,
            tail: start,
            visible: VecDeque::new(),
            popped: 0,
            staged: Vec::new(),
            next: 0,
        }
    }

    fn add(&self, a: u64, n: u64) -> u64 {
        a.wrapping_add(n) & self.max
    }

    fn dist(&self, to: u64, from: u64) -> u64 {
        to.wrapping_sub(from) & self.max
    }

    fn local_tail(&self) -> u64 {
        self.add(self.tail, self.staged.len() as u64)
    }

    /// Entries in the ring: published (popped or not, until released) and staged.
    fn used(&self) -> u64 {
        self.dist(self.local_tail(), self.head)
    }

    /// Entries the producer may still push. A non-power-of-two ring never lets the live window
    /// straddle the index wrap (`index % slots` jumps there).
    fn free(&self) -> u64 {
        let free = self.usable - self.used();
        let lt = self.local_tail();
        if self.pow2 {
            free
        } else if lt < self.head {
            0
        } else {
            free.min((self.max - lt).saturating_add(1))
        }
    }

    fn push(&mut self) -> u64 {
        let v = self.next;
        self.next += 1;
        self.staged.push(v);
        v
    }

    fn publish(&mut self) -> u64 {
        let n = self.staged.len() as u64;
        self.tail = self.add(self.tail, n);
        self.visible.extend(self.staged.drain(..));
        n
    }

    fn pop(&mut self) -> Option<u64> {
        let v = self.visible.pop_front();
        if v.is_some() {
            self.popped += 1;
        }
        v
    }

    fn release(&mut self) -> u64 {
        let n = self.popped;
        self.head = self.add(self.head, n);
        self.popped = 0;
        n
    }
}

/// Apply one operation to both handles and the model, checking every result exactly.
fn apply<I: RingIndex>(
    op: Op,
    p: &mut Producer<'_, I, u64>,
    c: &mut Consumer<'_, I, u64>,
    m: &mut Model,
) -> Result<(), TestCaseError> {
    match op {
        Op::Push => {
            if m.free() > 0 {
                let v = m.push();
                prop_assert_eq!(p.push(v), Ok(()));
            } else {
                prop_assert_eq!(
                    p.push(u64::MAX),
                    Err(PushError::Full(u64::MAX)),
                    "full means full"
                );
            }
        }
        Op::PushSlice(n) => {
            let k = (n as u64).min(m.free());
            let values: Vec<u64> = (m.next..m.next + n as u64).collect();
            prop_assert_eq!(p.push_slice(&values).unwrap() as u64, k);
            for _ in 0..k {
                m.push();
            }
        }
        Op::Enqueue => {
            if m.free() > 0 {
                let v = m.push();
                prop_assert_eq!(p.enqueue(v), Ok(()));
                m.publish();
            } else {
                prop_assert_eq!(p.enqueue(u64::MAX), Err(PushError::Full(u64::MAX)));
            }
        }
        Op::Publish => prop_assert_eq!(p.publish(), m.publish()),
        Op::Abort => {
            p.abort();
            m.staged.clear();
        }
        Op::Pop => prop_assert_eq!(c.pop().unwrap(), m.pop()),
        Op::PopSlice(n) => {
            let mut out = vec![0; n];
            let k = c.pop_slice(&mut out).unwrap();
            prop_assert_eq!(k, n.min(m.visible.len()));
            for &v in &out[..k] {
                prop_assert_eq!(Some(v), m.pop());
            }
        }
        Op::PushIter(n) => {
            let k = (n as u64).min(m.free());
            prop_assert_eq!(p.push_iter(m.next..m.next + n as u64).unwrap() as u64, k);
            for _ in 0..k {
                m.push();
            }
        }
        Op::PopIter(n, take) => {
            let mut it = c.pop_iter(n).unwrap();
            let k = it.len();
            prop_assert_eq!(k, n.min(m.visible.len()));
            let got: Vec<u64> = if take >= k {
                // All of it, through `fold`.
                let mut all = Vec::new();
                it.for_each(|v| all.push(v));
                all
            } else {
                // Part of it, through `next`; the rest stays in the ring.
                let part = it.by_ref().take(take).collect();
                prop_assert_eq!(it.len(), k - take);
                drop(it);
                part
            };
            prop_assert_eq!(got.len(), take.min(k));
            for v in got {
                prop_assert_eq!(Some(v), m.pop());
            }
        }
        Op::Peek => prop_assert_eq!(c.peek().unwrap(), m.visible.front().copied()),
        Op::Dequeue => {
            prop_assert_eq!(c.dequeue().unwrap(), m.pop());
            m.release();
        }
        Op::Release => prop_assert_eq!(c.release(), m.release()),
        Op::Check => check(p, c, m)?,
    }
    prop_assert_eq!(p.staged(), m.staged.len() as u64);
    prop_assert_eq!(c.consumed(), m.popped);
    Ok(())
}

/// Every observer agrees with the model (each call re-reads the peer's index).
fn check<I: RingIndex>(
    p: &mut Producer<'_, I, u64>,
    c: &mut Consumer<'_, I, u64>,
    m: &Model,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(p.len().unwrap(), m.used());
    prop_assert_eq!(p.is_empty().unwrap(), m.used() == 0);
    prop_assert_eq!(p.free().unwrap(), m.free());
    prop_assert_eq!(p.is_full().unwrap(), m.free() == 0);
    prop_assert_eq!(c.len().unwrap(), m.visible.len() as u64);
    prop_assert_eq!(c.is_empty().unwrap(), m.visible.is_empty());
    Ok(())
}

/// Run `ops` on a `RingStorage` of `N` slots shaped `cap`, starting at `start`, then drain it.
fn run<I: RingIndex, const N: usize>(
    cap: Capacity,
    start: u64,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let mut storage = RingStorage::<I, u64, N>::starting_at(I::wrap(start));
    let (mut p, mut c, _signal) = storage.split_with(cap).unwrap();
    let mut m = Model::new::<I>(cap, start);
    for &op in ops {
        apply(op, &mut p, &mut c, &mut m)?;
    }
    check(&mut p, &mut c, &m)?;
    // Everything published comes out, in order, exactly once.
    prop_assert_eq!(p.publish(), m.publish());
    prop_assert_eq!(c.release(), m.release());
    while let Some(v) = c.dequeue().unwrap() {
        prop_assert_eq!(Some(v), m.pop());
        m.release();
    }
    prop_assert!(m.visible.is_empty(), "entries lost: {:?}", m.visible);
    check(&mut p, &mut c, &m)
}

fn run_shape<I: RingIndex>(shape: usize, start: u64, ops: &[Op]) -> Result<(), TestCaseError> {
    let (slots, usable) = SHAPES[shape];
    let cap = capacity::<I>(slots, usable);
    match slots {
        1 => run::<I, 1>(cap, start, ops),
        2 => run::<I, 2>(cap, start, ops),
        4 => run::<I, 4>(cap, start, ops),
        8 => run::<I, 8>(cap, start, ops),
        6 => run::<I, 6>(cap, start, ops),
        254 => run::<I, 254>(cap, start, ops),
        _ => unreachable!(),
    }
}

fn ops_for(shape: usize) -> impl Strategy<Value = Vec<Op>> {
    let batch = if SHAPES[shape].0 > 8 { 80 } else { 10 };
    prop::collection::vec(op(batch), 1..MAX_OPS)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn model_u16(shape in 0..SHAPES.len(), start in start(u16::MAX.into()), seed in any::<u64>()) {
        let ops = sample_ops(shape, seed);
        run_shape::<u16>(shape, start, &ops)?;
    }

    #[test]
    fn model_u32(
        (shape, ops) in (0..SHAPES.len()).prop_flat_map(|s| (Just(s), ops_for(s))),
        start in start(u32::MAX.into()),
    ) {
        run_shape::<u32>(shape, start, &ops)?;
    }

    #[test]
    fn model_u64(
        (shape, ops) in (0..SHAPES.len()).prop_flat_map(|s| (Just(s), ops_for(s))),
        start in start(u64::MAX),
    ) {
        run_shape::<u64>(shape, start, &ops)?;
    }

    #[test]
    fn model_u16_shrinkable(
        (shape, ops) in (0..SHAPES.len()).prop_flat_map(|s| (Just(s), ops_for(s))),
        start in start(u16::MAX.into()),
    ) {
        run_shape::<u16>(shape, start, &ops)?;
    }
}

/// A long deterministic-per-seed sequence for `u16`, so that many fill/drain rounds cross the wrap
/// (the shrinkable variant above covers short ones).
fn sample_ops(shape: usize, seed: u64) -> Vec<Op> {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let n = if cfg!(miri) { 100 } else { 1000 };
    let batch = if SHAPES[shape].0 > 8 { 80 } else { 10 };
    prop::collection::vec(op(batch), n)
        .new_tree(&mut runner)
        .unwrap()
        .current()
}

// ---------------------------------------------------------------------------------------------
// Adversary: random values written into the shared indices between operations.

#[derive(Debug, Clone, Copy)]
enum AdvOp {
    Ring(Op),
    /// Write this (truncated) value into `head`, playing a lying consumer.
    LieHead(u64),
    /// Write this value into `tail`, playing a lying producer.
    LieTail(u64),
    /// Put back the values the handles last published.
    Restore,
}

fn adv_ops(max_batch: usize) -> impl Strategy<Value = Vec<AdvOp>> {
    prop::collection::vec(
        prop_oneof![
            12 => op(max_batch).prop_map(AdvOp::Ring),
            1 => any::<u64>().prop_map(AdvOp::LieHead),
            1 => any::<u64>().prop_map(AdvOp::LieTail),
            1 => (0..8u64).prop_map(AdvOp::LieHead),
            1 => (0..8u64).prop_map(AdvOp::LieTail),
            2 => Just(AdvOp::Restore),
        ],
        1..MAX_OPS,
    )
}

/// Ring fields reachable only through shared references, so the adversary can write them while
/// the handles exist (a pointer into a `RingStorage` taken around `split` would alias its `&mut`).
struct Shared<I: RingIndex> {
    head: I::Atomic,
    tail: I::Atomic,
    slots: Vec<Slot<u64>>,
}

impl<I: RingIndex> Shared<I> {
    fn new(slots: u64, start: u64) -> Self {
        Self {
            head: I::new_atomic(I::wrap(start)),
            tail: I::new_atomic(I::wrap(start)),
            slots: (0..slots).map(|_| Slot::new(0)).collect(),
        }
    }

    fn handles(&self, cap: Capacity) -> (Producer<'_, I, u64>, Consumer<'_, I, u64>) {
        // SAFETY: exactly one producer and one consumer are made over `self`, which outlives them.
        unsafe {
            (
                Producer::new(&self.head, &self.tail, &self.slots, cap).unwrap(),
                Consumer::new(&self.head, &self.tail, &self.slots, cap).unwrap(),
            )
        }
    }

    fn set_head(&self, v: u64) {
        I::store(&self.head, I::wrap(v), Ordering::Relaxed);
    }

    fn set_tail(&self, v: u64) {
        I::store(&self.tail, I::wrap(v), Ordering::Relaxed);
    }
}

/// How a lie relates to the true state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lie {
    /// The field holds what its owner last published.
    None,
    /// A value the protocol could have produced earlier (stale): may be accepted or refused.
    Stale(u64),
    /// A value the protocol can never produce here: every re-read must refuse it.
    Impossible(u64),
}

impl Lie {
    fn value(self) -> Option<u64> {
        match self {
            Lie::None => None,
            Lie::Stale(v) | Lie::Impossible(v) => Some(v),
        }
    }
}

fn peer_err(e: &PeerError, field: IndexField, lie: Lie) -> Result<(), TestCaseError> {
    prop_assert_eq!(e.field, field);
    prop_assert_eq!(
        Some(e.value),
        lie.value(),
        "an error without a lie in {:?}",
        field
    );
    Ok(())
}

/// Run one adversary sequence. With `chaos`, every lie is written, including plausible ones that
/// run ahead of the truth (the handles cannot tell those from a real peer, so only memory safety
/// and error shape are checked, and recovery is by restarting the handles). Without `chaos`,
/// plausible-but-ahead lies are skipped, so every entry the consumer sees must still be exact.
fn run_adversary<I: RingIndex>(
    shape: usize,
    start: u64,
    ops: &[AdvOp],
    chaos: bool,
) -> Result<(), TestCaseError> {
    let (slots, usable) = SHAPES[shape];
    let cap = capacity::<I>(slots, usable);
    let ring = Shared::<I>::new(slots, start);
    {
        let (mut p, mut c) = ring.handles(cap);
        let mut m = Model::new::<I>(cap, start);
        let (mut head_lie, mut tail_lie) = (Lie::None, Lie::None);
        let mut tainted = false;
        for &op in ops {
            match op {
                AdvOp::LieHead(raw) => {
                    ring.set_head(raw & m.max);
                    head_lie = Lie::Stale(raw & m.max);
                }
                AdvOp::LieTail(raw) => {
                    ring.set_tail(raw & m.max);
                    tail_lie = Lie::Stale(raw & m.max);
                }
                AdvOp::Restore => {
                    ring.set_head(m.head);
                    ring.set_tail(m.tail);
                    head_lie = Lie::None;
                    tail_lie = Lie::None;
                    if !tainted {
                        check(&mut p, &mut c, &m)?;
                    }
                }
                AdvOp::Ring(op) if tainted => chaos_op(op, &mut p, &mut c, &mut m)?,
                AdvOp::Ring(op) if head_lie == Lie::None && tail_lie == Lie::None => {
                    apply(op, &mut p, &mut c, &mut m)?;
                }
                AdvOp::Ring(op) => lied_op(op, &mut p, &mut c, &mut m, head_lie, tail_lie)?,
            }
            if tainted {
                continue;
            }
            // The truth moved (or a lie was just written): classify what the fields hold now.
            // An owner's store overwrites the lie in its own field.
            head_lie = match classify_head(ring_head(&ring), &m) {
                Some(lie) => lie,
                None if chaos => {
                    tainted = true;
                    Lie::Stale(ring_head(&ring))
                }
                None => {
                    ring.set_head(m.head);
                    Lie::None
                }
            };
            tail_lie = match classify_tail(ring_tail(&ring), &m) {
                Some(lie) => lie,
                None if chaos => {
                    tainted = true;
                    Lie::Stale(ring_tail(&ring))
                }
                None => {
                    ring.set_tail(m.tail);
                    Lie::None
                }
            };
        }
        if !tainted {
            // Sane values back: the same handles keep working exactly.
            ring.set_head(m.head);
            ring.set_tail(m.tail);
            check(&mut p, &mut c, &m)?;
            for _ in 0..2 * usable {
                apply(Op::Push, &mut p, &mut c, &mut m)?;
                apply(Op::Publish, &mut p, &mut c, &mut m)?;
                apply(Op::Pop, &mut p, &mut c, &mut m)?;
                apply(Op::Release, &mut p, &mut c, &mut m)?;
            }
            check(&mut p, &mut c, &m)?;
            return Ok(());
        }
    }
    // Chaos: a restarted pair over sane indices works exactly.
    let restart = start.wrapping_add(12345) & I::MAX;
    ring.set_head(restart);
    ring.set_tail(restart);
    let (mut p, mut c) = ring.handles(cap);
    let mut m = Model::new::<I>(cap, restart);
    for i in 0..3 * usable {
        let op = [
            Op::Push,
            Op::PushSlice(3),
            Op::Publish,
            Op::Pop,
            Op::Release,
        ][(i % 5) as usize];
        apply(op, &mut p, &mut c, &mut m)?;
    }
    check(&mut p, &mut c, &m)
}

/// What `head = v` is to the producer, or `None` when it runs ahead of the true head (plausible, so
/// the producer may accept it and overwrite unreleased slots: indistinguishable from a real peer).
fn classify_head(v: u64, m: &Model) -> Option<Lie> {
    // The producer accepts a head in [its cached head, its published tail]; its cached head is
    // never below `local tail - usable` and never above the true head.
    if v == m.head {
        Some(Lie::None)
    } else if m.dist(m.tail, v) > m.usable {
        Some(Lie::Impossible(v))
    } else if m.dist(v, m.head) > m.dist(m.tail, m.head) {
        Some(Lie::Stale(v))
    } else {
        None
    }
}

/// What `tail = v` is to the consumer, or `None` when it runs ahead of the true tail.
fn classify_tail(v: u64, m: &Model) -> Option<Lie> {
    // The consumer accepts a tail in [its cached tail, its released head + usable].
    let d = m.dist(v, m.head);
    if v == m.tail {
        Some(Lie::None)
    } else if d > m.usable {
        Some(Lie::Impossible(v))
    } else if d <= m.dist(m.tail, m.head) {
        Some(Lie::Stale(v))
    } else {
        None
    }
}

fn ring_head<I: RingIndex>(r: &Shared<I>) -> u64 {
    I::load(&r.head, Ordering::Relaxed).to_u64()
}

fn ring_tail<I: RingIndex>(r: &Shared<I>) -> u64 {
    I::load(&r.tail, Ordering::Relaxed).to_u64()
}

/// One operation while a stale or impossible value sits in `head` or `tail` (never one that runs
/// ahead of the truth): results may be stale or refused, but never wrong.
fn lied_op<I: RingIndex>(
    op: Op,
    p: &mut Producer<'_, I, u64>,
    c: &mut Consumer<'_, I, u64>,
    m: &mut Model,
    head_lie: Lie,
    tail_lie: Lie,
) -> Result<(), TestCaseError> {
    let h_imp = matches!(head_lie, Lie::Impossible(_));
    let t_imp = matches!(tail_lie, Lie::Impossible(_));
    match op {
        Op::Push | Op::Enqueue => {
            let v = m.next;
            let r = if matches!(op, Op::Push) {
                p.push(v)
            } else {
                p.enqueue(v)
            };
            match r {
                Ok(()) => {
                    prop_assert!(m.free() > 0, "pushed into a full ring");
                    m.push();
                    if matches!(op, Op::Enqueue) {
                        m.publish();
                    }
                }
                Err(PushError::Full(x)) => {
                    prop_assert_eq!(x, v);
                    prop_assert!(!h_imp, "an impossible head was accepted");
                    prop_assert!(m.free() == 0 || head_lie != Lie::None);
                }
                Err(PushError::Peer(e, x)) => {
                    prop_assert_eq!(x, v);
                    peer_err(&e, IndexField::Head, head_lie)?;
                }
            }
        }
        Op::PushSlice(n) => {
            let values: Vec<u64> = (m.next..m.next + n as u64).collect();
            match p.push_slice(&values) {
                Ok(k) => {
                    let fits = m.free().min(n as u64);
                    prop_assert!(k as u64 <= fits);
                    prop_assert!(k as u64 == fits || head_lie != Lie::None);
                    for _ in 0..k {
                        m.push();
                    }
                }
                Err(e) => peer_err(&e, IndexField::Head, head_lie)?,
            }
        }
        Op::Pop | Op::Peek | Op::Dequeue => {
            let r = match op {
                Op::Pop => c.pop(),
                Op::Peek => c.peek(),
                _ => c.dequeue(),
            };
            let released = matches!(op, Op::Dequeue) && r.is_ok();
            match r {
                Ok(Some(v)) => {
                    prop_assert_eq!(Some(&v), m.visible.front(), "consumer saw a wrong entry");
                    if !matches!(op, Op::Peek) {
                        m.pop();
                    }
                }
                Ok(None) => {
                    prop_assert!(!t_imp, "an impossible tail was accepted");
                    prop_assert!(m.visible.is_empty() || tail_lie != Lie::None);
                }
                Err(e) => peer_err(&e, IndexField::Tail, tail_lie)?,
            }
            if released {
                m.release();
            }
        }
        Op::PopSlice(n) => {
            let mut out = vec![0; n];
            match c.pop_slice(&mut out) {
                Ok(k) => {
                    prop_assert!(k <= m.visible.len());
                    prop_assert!(k == n.min(m.visible.len()) || tail_lie != Lie::None);
                    for &v in &out[..k] {
                        prop_assert_eq!(Some(v), m.pop());
                    }
                }
                Err(e) => peer_err(&e, IndexField::Tail, tail_lie)?,
            }
        }
        Op::PushIter(n) => match p.push_iter(m.next..m.next + n as u64) {
            Ok(k) => {
                let fits = m.free().min(n as u64);
                prop_assert!(k as u64 <= fits);
                prop_assert!(k as u64 == fits || head_lie != Lie::None);
                for _ in 0..k {
                    m.push();
                }
            }
            Err(e) => peer_err(&e, IndexField::Head, head_lie)?,
        },
        Op::PopIter(n, take) => match c.pop_iter(n) {
            Ok(it) => {
                let k = it.len();
                prop_assert!(k <= m.visible.len());
                prop_assert!(k == n.min(m.visible.len()) || tail_lie != Lie::None);
                for v in it.take(take) {
                    prop_assert_eq!(Some(v), m.pop());
                }
            }
            Err(e) => peer_err(&e, IndexField::Tail, tail_lie)?,
        },
        Op::Check => {
            match p.len() {
                Ok(n) => {
                    prop_assert!(!h_imp, "an impossible head was accepted");
                    prop_assert!(n >= m.used() && n <= m.usable);
                }
                Err(e) => peer_err(&e, IndexField::Head, head_lie)?,
            }
            match p.free() {
                Ok(n) => {
                    prop_assert!(!h_imp);
                    prop_assert!(n <= m.free());
                    prop_assert!(n == m.free() || head_lie != Lie::None);
                }
                Err(e) => peer_err(&e, IndexField::Head, head_lie)?,
            }
            match c.len() {
                Ok(n) => {
                    prop_assert!(!t_imp, "an impossible tail was accepted");
                    prop_assert!(n <= m.visible.len() as u64);
                    prop_assert!(n == m.visible.len() as u64 || tail_lie != Lie::None);
                }
                Err(e) => peer_err(&e, IndexField::Tail, tail_lie)?,
            }
        }
        Op::Publish | Op::Abort | Op::Release => apply(op, p, c, m)?,
    }
    Ok(())
}

/// One operation after a plausible lie ran ahead of the truth: the handles may now disagree with
/// the model, so only the shape of every answer is checked (no panic, bounded lengths, errors name
/// the right field).
fn chaos_op<I: RingIndex>(
    op: Op,
    p: &mut Producer<'_, I, u64>,
    c: &mut Consumer<'_, I, u64>,
    m: &mut Model,
) -> Result<(), TestCaseError> {
    // The handle may have accepted a run-ahead lie, after which even the truth can look impossible
    // to it: only the field is certain.
    let head_err = |e: PeerError| -> Result<(), TestCaseError> {
        prop_assert_eq!(e.field, IndexField::Head);
        Ok(())
    };
    let tail_err = |e: PeerError| -> Result<(), TestCaseError> {
        prop_assert_eq!(e.field, IndexField::Tail);
        Ok(())
    };
    match op {
        Op::Push | Op::Enqueue => {
            let r = if matches!(op, Op::Push) {
                p.push(m.next)
            } else {
                p.enqueue(m.next)
            };
            match r {
                Ok(()) => {
                    m.next += 1;
                }
                Err(PushError::Full(_)) => {}
                Err(PushError::Peer(e, _)) => head_err(e)?,
            }
        }
        Op::PushSlice(n) => {
            let values = vec![7; n];
            if let Err(e) = p.push_slice(&values) {
                head_err(e)?;
            }
        }
        Op::Publish => {
            p.publish();
        }
        Op::Abort => p.abort(),
        Op::Pop | Op::Peek | Op::Dequeue => {
            let r = match op {
                Op::Pop => c.pop(),
                Op::Peek => c.peek(),
                _ => c.dequeue(),
            };
            if let Err(e) = r {
                tail_err(e)?;
            }
        }
        Op::PopSlice(n) => {
            let mut out = vec![0; n];
            match c.pop_slice(&mut out) {
                Ok(k) => prop_assert!(k <= n),
                Err(e) => tail_err(e)?,
            }
        }
        Op::PushIter(n) => {
            if let Err(e) = p.push_iter(core::iter::repeat_n(7, n)) {
                head_err(e)?;
            }
        }
        Op::PopIter(n, take) => match c.pop_iter(n) {
            Ok(it) => {
                prop_assert!(it.len() <= n);
                prop_assert!(it.take(take).count() <= n);
            }
            Err(e) => tail_err(e)?,
        },
        Op::Release => {
            c.release();
        }
        Op::Check => {
            match p.len() {
                Ok(n) => prop_assert!(n <= m.usable),
                Err(e) => head_err(e)?,
            }
            match p.free() {
                Ok(n) => prop_assert!(n <= m.usable),
                Err(e) => head_err(e)?,
            }
            match c.len() {
                Ok(n) => prop_assert!(n <= m.usable),
                Err(e) => tail_err(e)?,
            }
        }
    }
    prop_assert!(p.staged() <= m.usable);
    prop_assert!(c.consumed() <= m.usable);
    Ok(())
}

fn adversary_case() -> impl Strategy<Value = (usize, Vec<AdvOp>)> {
    (0..SHAPES.len()).prop_flat_map(|s| (Just(s), adv_ops(if SHAPES[s].0 > 8 { 80 } else { 10 })))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn adversary_u16((shape, ops) in adversary_case(), start in start(u16::MAX.into())) {
        run_adversary::<u16>(shape, start, &ops, false)?;
    }

    #[test]
    fn adversary_u32((shape, ops) in adversary_case(), start in start(u32::MAX.into())) {
        run_adversary::<u32>(shape, start, &ops, false)?;
    }

    #[test]
    fn adversary_u64((shape, ops) in adversary_case(), start in start(u64::MAX)) {
        run_adversary::<u64>(shape, start, &ops, false)?;
    }

    #[test]
    fn chaos_u16((shape, ops) in adversary_case(), start in start(u16::MAX.into())) {
        run_adversary::<u16>(shape, start, &ops, true)?;
    }

    #[test]
    fn chaos_u32((shape, ops) in adversary_case(), start in start(u32::MAX.into())) {
        run_adversary::<u32>(shape, start, &ops, true)?;
    }

    #[test]
    fn chaos_u64((shape, ops) in adversary_case(), start in start(u64::MAX)) {
        run_adversary::<u64>(shape, start, &ops, true)?;
    }
}

/// Two real threads stream entries through a small ring (batched and single), across the `u16`
/// wrap. Natively a smoke test of `Send` handles; under Miri, its data-race detector and weak-memory
/// emulation check the slot hand-over on every access.
#[test]
fn two_threads_stream() {
    let items: u64 = if cfg!(miri) { 2_000 } else { 50_000 };
    for batch in [1, 3] {
        let mut s = RingStorage::<u16, u64, 4>::starting_at(u16::MAX - 5);
        let (mut p, mut c, _) = s.split().unwrap();
        std::thread::scope(|sc| {
            sc.spawn(move || {
                let mut i = 0;
                while i < items {
                    let mut k = 0;
                    while k < batch && i < items && p.push(i).is_ok() {
                        i += 1;
                        k += 1;
                    }
                    if k == 0 {
                        std::thread::yield_now();
                    } else {
                        p.publish();
                    }
                }
            });
            let mut expect = 0;
            while expect < items {
                let mut k = 0;
                while k < batch {
                    match c.pop().unwrap() {
                        Some(v) => {
                            assert_eq!(v, expect, "FIFO, no loss, no duplication");
                            expect += 1;
                            k += 1;
                        }
                        None => break,
                    }
                }
                if k == 0 {
                    std::thread::yield_now();
                } else {
                    c.release();
                }
            }
            assert_eq!(c.pop().unwrap(), None);
        });
    }
}
