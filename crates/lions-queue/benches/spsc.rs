// SPDX-License-Identifier: BSD-2-Clause
//! Our ring against rtrb 0.4, heapless::spsc 0.9 and crossbeam's `ArrayQueue` (an MPMC baseline),
//! `u64` items, capacity 1024 everywhere (heapless holds `N - 1`, so it gets `N = 1025`).
//!
//! - `one_thread/single`: push 1024 then pop 1024, one operation (and, for us, one index store)
//!   per item.
//! - `one_thread/batched`: the same in batches of 64: ours `push_slice`s 64 and publishes once,
//!   `pop_slice`s 64 into a private buffer and releases once; rtrb uses
//!   `write_chunk_uninit`/`read_chunk` (it reads in place; ours copies out, because entries in
//!   memory shared with an untrusted peer must be copied before they are checked). Both sum a
//!   slice of the length the pop returned (summing the whole fixed-size `[u64; 64]` compiled to a
//!   chain of 64 dependent scalar adds, where rtrb's slices got a vectorised loop).
//! - `one_thread/batched-iter`: ours with `push_iter` (fills slots in place, as rtrb's
//!   `fill_from_iter`) instead of filling a private buffer for `push_slice`.
//! - `two_threads/*`: a producer thread and a consumer thread stream 2^20 items (spinning when
//!   full/empty), timed with `iter_custom` around scoped threads.
//!
//! `cargo bench -p lions-queue` (about two minutes). Throughput is in elements.
#![allow(clippy::unwrap_used, missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lions_queue::atomic::AtomicU32;
use lions_queue::{Capacity, Consumer, Producer, PushError, RingIndex, RingStorage, Slot};
use std::hint::{black_box, spin_loop};
use std::time::{Duration, Instant};

const CAP: usize = 1024;
const BATCH: usize = 64;
const ONE_THREAD_ITEMS: u64 = CAP as u64;
const STREAM_ITEMS: u64 = 1 << 20;

type Ours = RingStorage<u32, u64, CAP>;

fn ours() -> Box<Ours> {
    Box::new(Ours::new())
}

/// The same ring with `head`, `tail` and the slots on separate cache lines (`RingStorage`, like the
/// sDDF wire layouts, packs head, tail, flag and the first slots into one line). Only for telling
/// the algorithm's cost from the layout's.
#[repr(C)]
struct Padded {
    head: Line<AtomicU32>,
    tail: Line<AtomicU32>,
    slots: Line<[Slot<u64>; CAP]>,
}

#[repr(C, align(128))]
struct Line<T>(T);

impl Padded {
    fn new() -> Box<Self> {
        Box::new(Self {
            head: Line(u32::new_atomic(0)),
            tail: Line(u32::new_atomic(0)),
            slots: Line(core::array::from_fn(|_| Slot::new(0))),
        })
    }

    fn split(&self) -> (Producer<'_, u32, u64>, Consumer<'_, u32, u64>) {
        let cap = Capacity::new::<u32>(CAP as u64).unwrap();
        // SAFETY: one producer and one consumer over `self`, which outlives both.
        unsafe {
            (
                Producer::new(&self.head.0, &self.tail.0, &self.slots.0, cap).unwrap(),
                Consumer::new(&self.head.0, &self.tail.0, &self.slots.0, cap).unwrap(),
            )
        }
    }
}

fn one_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("one_thread");
    g.throughput(Throughput::Elements(ONE_THREAD_ITEMS));
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    let mut s = ours();
    let (mut p, mut cns, _) = s.split().unwrap();
    g.bench_function("single/lions-queue", |b| {
        b.iter(|| {
            for i in 0..ONE_THREAD_ITEMS {
                p.enqueue(black_box(i)).unwrap();
            }
            let mut sum = 0;
            for _ in 0..ONE_THREAD_ITEMS {
                sum += cns.dequeue().unwrap().unwrap();
            }
            black_box(sum)
        })
    });
    g.bench_function("batched/lions-queue", |b| {
        b.iter(|| {
            let mut buf = [0u64; BATCH];
            for chunk in 0..ONE_THREAD_ITEMS / BATCH as u64 {
                let base = black_box(chunk * BATCH as u64);
                for (i, b) in buf.iter_mut().enumerate() {
                    *b = base + i as u64;
                }
                assert_eq!(p.push_slice(&buf).unwrap(), BATCH);
                p.publish();
            }
            let mut sum = 0;
            for _ in 0..ONE_THREAD_ITEMS / BATCH as u64 {
                let k = cns.pop_slice(&mut buf).unwrap();
                debug_assert_eq!(k, BATCH);
                sum += buf[..k].iter().sum::<u64>();
                cns.release();
            }
            black_box(sum)
        })
    });
    g.bench_function("batched-iter/lions-queue", |b| {
        b.iter(|| {
            for chunk in 0..ONE_THREAD_ITEMS / BATCH as u64 {
                let base = chunk * BATCH as u64;
                let n = p.push_iter(black_box(base)..base + BATCH as u64).unwrap();
                debug_assert_eq!(n, BATCH);
                p.publish();
            }
            let mut buf = [0u64; BATCH];
            let mut sum = 0;
            for _ in 0..ONE_THREAD_ITEMS / BATCH as u64 {
                let k = cns.pop_slice(&mut buf).unwrap();
                debug_assert_eq!(k, BATCH);
                sum += buf[..k].iter().sum::<u64>();
                cns.release();
            }
            black_box(sum)
        })
    });

    let (mut rp, mut rc) = rtrb::RingBuffer::<u64>::new(CAP);
    g.bench_function("single/rtrb", |b| {
        b.iter(|| {
            for i in 0..ONE_THREAD_ITEMS {
                rp.push(black_box(i)).unwrap();
            }
            let mut sum = 0;
            for _ in 0..ONE_THREAD_ITEMS {
                sum += rc.pop().unwrap();
            }
            black_box(sum)
        })
    });
    g.bench_function("batched/rtrb", |b| {
        b.iter(|| {
            for chunk in 0..ONE_THREAD_ITEMS / BATCH as u64 {
                let base = chunk * BATCH as u64;
                let n = rp
                    .write_chunk_uninit(BATCH)
                    .unwrap()
                    .fill_from_iter(black_box(base)..base + BATCH as u64);
                debug_assert_eq!(n, BATCH);
            }
            let mut sum = 0;
            for _ in 0..ONE_THREAD_ITEMS / BATCH as u64 {
                let chunk = rc.read_chunk(BATCH).unwrap();
                let (a, b) = chunk.as_slices();
                sum += a.iter().sum::<u64>() + b.iter().sum::<u64>();
                chunk.commit_all();
            }
            black_box(sum)
        })
    });

    let mut hq = Box::new(heapless::spsc::Queue::<u64, { CAP + 1 }>::new());
    let (mut hp, mut hc) = hq.split();
    g.bench_function("single/heapless", |b| {
        b.iter(|| {
            for i in 0..ONE_THREAD_ITEMS {
                hp.enqueue(black_box(i)).unwrap();
            }
            let mut sum = 0;
            for _ in 0..ONE_THREAD_ITEMS {
                sum += hc.dequeue().unwrap();
            }
            black_box(sum)
        })
    });

    let aq = crossbeam_queue::ArrayQueue::<u64>::new(CAP);
    g.bench_function("single/crossbeam-ArrayQueue", |b| {
        b.iter(|| {
            for i in 0..ONE_THREAD_ITEMS {
                aq.push(black_box(i)).unwrap();
            }
            let mut sum = 0;
            for _ in 0..ONE_THREAD_ITEMS {
                sum += aq.pop().unwrap();
            }
            black_box(sum)
        })
    });
    g.finish();
}

/// Time `iters` runs of a two-thread stream; `run` spawns both sides in a scope and returns the
/// consumer's checksum.
fn stream(iters: u64, mut run: impl FnMut() -> u64) -> Duration {
    const EXPECT: u64 = STREAM_ITEMS * (STREAM_ITEMS - 1) / 2;
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let sum = run();
        total += start.elapsed();
        assert_eq!(sum, EXPECT, "every item arrived exactly once");
    }
    total
}

fn two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("two_threads");
    g.throughput(Throughput::Elements(STREAM_ITEMS));
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    g.bench_function("single/lions-queue", |b| {
        b.iter_custom(|iters| {
            stream(iters, || {
                let mut s = ours();
                let (mut p, mut cns, _) = s.split().unwrap();
                std::thread::scope(|sc| {
                    sc.spawn(move || {
                        for i in 0..STREAM_ITEMS {
                            let mut v = i;
                            while let Err(e) = p.enqueue(v) {
                                let PushError::Full(back) = e else {
                                    panic!("peer error")
                                };
                                v = back;
                                spin_loop();
                            }
                        }
                    });
                    let mut sum = 0;
                    let mut n = 0;
                    while n < STREAM_ITEMS {
                        match cns.dequeue().unwrap() {
                            Some(v) => {
                                sum += v;
                                n += 1;
                            }
                            None => spin_loop(),
                        }
                    }
                    sum
                })
            })
        })
    });

    g.bench_function("batched/lions-queue", |b| {
        b.iter_custom(|iters| {
            stream(iters, || {
                let mut s = ours();
                let (mut p, mut cns, _) = s.split().unwrap();
                std::thread::scope(|sc| {
                    sc.spawn(move || {
                        let mut i = 0;
                        let mut buf = [0u64; BATCH];
                        while i < STREAM_ITEMS {
                            let m = usize::try_from(STREAM_ITEMS - i)
                                .map_or(BATCH, |left| left.min(BATCH));
                            for (j, b) in buf[..m].iter_mut().enumerate() {
                                *b = i + j as u64;
                            }
                            let k = p.push_slice(&buf[..m]).unwrap();
                            if k == 0 {
                                spin_loop();
                            } else {
                                p.publish();
                                i += k as u64;
                            }
                        }
                    });
                    let mut sum = 0;
                    let mut n = 0;
                    let mut buf = [0u64; BATCH];
                    while n < STREAM_ITEMS {
                        let k = cns.pop_slice(&mut buf).unwrap();
                        if k == 0 {
                            spin_loop();
                        } else {
                            sum += buf[..k].iter().sum::<u64>();
                            cns.release();
                            n += k as u64;
                        }
                    }
                    sum
                })
            })
        })
    });

    g.bench_function("single/lions-queue-padded", |b| {
        b.iter_custom(|iters| {
            stream(iters, || {
                let s = Padded::new();
                let (mut p, mut cns) = s.split();
                std::thread::scope(|sc| {
                    sc.spawn(move || {
                        for i in 0..STREAM_ITEMS {
                            let mut v = i;
                            while let Err(e) = p.enqueue(v) {
                                let PushError::Full(back) = e else {
                                    panic!("peer error")
                                };
                                v = back;
                                spin_loop();
                            }
                        }
                    });
                    let mut sum = 0;
                    let mut n = 0;
                    while n < STREAM_ITEMS {
                        match cns.dequeue().unwrap() {
                            Some(v) => {
                                sum += v;
                                n += 1;
                            }
                            None => spin_loop(),
                        }
                    }
                    sum
                })
            })
        })
    });

    g.bench_function("batched/lions-queue-padded", |b| {
        b.iter_custom(|iters| {
            stream(iters, || {
                let s = Padded::new();
                let (mut p, mut cns) = s.split();
                std::thread::scope(|sc| {
                    sc.spawn(move || {
                        let mut i = 0;
                        let mut buf = [0u64; BATCH];
                        while i < STREAM_ITEMS {
                            let m = usize::try_from(STREAM_ITEMS - i)
                                .map_or(BATCH, |left| left.min(BATCH));
                            for (j, b) in buf[..m].iter_mut().enumerate() {
                                *b = i + j as u64;
                            }
                            let k = p.push_slice(&buf[..m]).unwrap();
                            if k == 0 {
                                spin_loop();
                            } else {
                                p.publish();
                                i += k as u64;
                            }
                        }
                    });
                    let mut sum = 0;
                    let mut n = 0;
                    let mut buf = [0u64; BATCH];
                    while n < STREAM_ITEMS {
                        let k = cns.pop_slice(&mut buf).unwrap();
                        if k == 0 {
                            spin_loop();
                        } else {
                            sum += buf[..k].iter().sum::<u64>();
                            cns.release();
                            n += k as u64;
                        }
                    }
                    sum
                })
            })
        })
    });

    g.bench_function("single/rtrb", |b| {
        b.iter_custom(|iters| {
            stream(iters, || {
                let (mut p, mut cns) = rtrb::RingBuffer::<u64>::new(CAP);
                std::thread::scope(|sc| {
                    sc.spawn(move || {
                        for i in 0..STREAM_ITEMS {
                            let mut v = i;
                            while let Err(rtrb::PushError::Full(back)) = p.push(v) {
                                v = back;
                                spin_loop();
                            }
                        }
                    });
                    let mut sum = 0;
                    let mut n = 0;
                    while n < STREAM_ITEMS {
                        match cns.pop() {
                            Ok(v) => {
                                sum += v;
                                n += 1;
                            }
                            Err(_) => spin_loop(),
                        }
                    }
                    sum
                })
            })
        })
    });

    g.bench_function("batched/rtrb", |b| {
        b.iter_custom(|iters| {
            stream(iters, || {
                let (mut p, mut cns) = rtrb::RingBuffer::<u64>::new(CAP);
                std::thread::scope(|sc| {
                    sc.spawn(move || {
                        let mut i = 0;
                        while i < STREAM_ITEMS {
                            let left = usize::try_from(STREAM_ITEMS - i).unwrap_or(usize::MAX);
                            let n = p.slots().min(BATCH).min(left);
                            if n == 0 {
                                spin_loop();
                                continue;
                            }
                            let w = p
                                .write_chunk_uninit(n)
                                .unwrap()
                                .fill_from_iter(i..i + n as u64);
                            i += w as u64;
                        }
                    });
                    let mut sum = 0;
                    let mut n = 0;
                    while n < STREAM_ITEMS {
                        let k = cns.slots().min(BATCH);
                        if k == 0 {
                            spin_loop();
                            continue;
                        }
                        let chunk = cns.read_chunk(k).unwrap();
                        let (a, b) = chunk.as_slices();
                        sum += a.iter().sum::<u64>() + b.iter().sum::<u64>();
                        chunk.commit_all();
                        n += k as u64;
                    }
                    sum
                })
            })
        })
    });

    g.bench_function("single/heapless", |b| {
        b.iter_custom(|iters| {
            stream(iters, || {
                let mut q = Box::new(heapless::spsc::Queue::<u64, { CAP + 1 }>::new());
                let (mut p, mut cns) = q.split();
                std::thread::scope(|sc| {
                    sc.spawn(move || {
                        for i in 0..STREAM_ITEMS {
                            let mut v = i;
                            while let Err(back) = p.enqueue(v) {
                                v = back;
                                spin_loop();
                            }
                        }
                    });
                    let mut sum = 0;
                    let mut n = 0;
                    while n < STREAM_ITEMS {
                        match cns.dequeue() {
                            Some(v) => {
                                sum += v;
                                n += 1;
                            }
                            None => spin_loop(),
                        }
                    }
                    sum
                })
            })
        })
    });

    g.bench_function("single/crossbeam-ArrayQueue", |b| {
        b.iter_custom(|iters| {
            stream(iters, || {
                let q = crossbeam_queue::ArrayQueue::<u64>::new(CAP);
                std::thread::scope(|sc| {
                    let q = &q;
                    sc.spawn(move || {
                        for i in 0..STREAM_ITEMS {
                            let mut v = i;
                            while let Err(back) = q.push(v) {
                                v = back;
                                spin_loop();
                            }
                        }
                    });
                    let mut sum = 0;
                    let mut n = 0;
                    while n < STREAM_ITEMS {
                        match q.pop() {
                            Some(v) => {
                                sum += v;
                                n += 1;
                            }
                            None => spin_loop(),
                        }
                    }
                    sum
                })
            })
        })
    });
    g.finish();
}

criterion_group!(benches, one_thread, two_threads);
criterion_main!(benches);
