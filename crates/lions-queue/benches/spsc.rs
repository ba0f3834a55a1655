// SPDX-License-Identifier: BSD-2-Clause
//! Our ring against rtrb 0.4, heapless::spsc 0.9 and crossbeam's `ArrayQueue` (an MPMC baseline),
//! `u64` items, capacity 1024 everywhere (heapless holds `N - 1`, so it gets `N = 1025`). The
//! lions-queue and rtrb workloads live in `examples/spsc_work/mod.rs`, shared with
//! `examples/spsc_drive.rs` (callgrind, interleaved min/median), where each mode's API is listed.
//!
//! - `one_thread/single`: push 1024 then pop 1024, one operation (and one index store) per item.
//! - `one_thread/batched`: the same in batches of 64, in place on both sides (ours `push_iter` /
//!   `pop_iter`, rtrb `write_chunk_uninit` / `read_chunk`); `batched-slice` is ours through
//!   private buffers (`push_slice` / `pop_slice`).
//! - `two_threads/*`: a producer pinned to CPU 0 and a consumer pinned to CPU 1 stream 2^16 items
//!   (spinning when full/empty); only the stream is timed (`iter_custom`), not thread creation.
//!
//! `cargo bench -p lions-queue --bench spsc`. Throughput is in elements.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../examples/spsc_work/mod.rs"]
mod spsc_work;

use criterion::{Bencher, Criterion, Throughput, criterion_group, criterion_main};
use spsc_work::*;
use std::hint::{black_box, spin_loop};
use std::time::Duration;

fn one_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("one_thread");
    g.throughput(Throughput::Elements(N));
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    let mut s = ours();
    let (mut p, mut cns, _) = s.split().unwrap();
    let (mut rp, mut rc) = rtrb::RingBuffer::<u64>::new(CAP);
    g.bench_function("single/lions-queue", |b| {
        b.iter(|| black_box(ours_single(&mut p, &mut cns)))
    });
    g.bench_function("single/rtrb", |b| {
        b.iter(|| black_box(rtrb_single(&mut rp, &mut rc)))
    });
    g.bench_function("batched/lions-queue", |b| {
        b.iter(|| black_box(ours_batched(&mut p, &mut cns)))
    });
    g.bench_function("batched/rtrb", |b| {
        b.iter(|| black_box(rtrb_batched(&mut rp, &mut rc)))
    });
    g.bench_function("batched-slice/lions-queue", |b| {
        b.iter(|| black_box(ours_batched_slice(&mut p, &mut cns)))
    });

    let mut hq = Box::new(heapless::spsc::Queue::<u64, { CAP + 1 }>::new());
    let (mut hp, mut hc) = hq.split();
    g.bench_function("single/heapless", |b| {
        b.iter(|| {
            for i in 0..N {
                hp.enqueue(black_box(i)).unwrap();
            }
            let mut sum = 0;
            for _ in 0..N {
                sum += hc.dequeue().unwrap();
            }
            black_box(sum)
        })
    });

    let aq = crossbeam_queue::ArrayQueue::<u64>::new(CAP);
    g.bench_function("single/crossbeam-ArrayQueue", |b| {
        b.iter(|| {
            for i in 0..N {
                aq.push(black_box(i)).unwrap();
            }
            let mut sum = 0;
            for _ in 0..N {
                sum += aq.pop().unwrap();
            }
            black_box(sum)
        })
    });
    g.finish();
}

/// Time `iters` pinned runs of one two-thread workload.
fn pinned(b: &mut Bencher<'_>, run: fn() -> Duration) {
    b.iter_custom(|iters| (0..iters).map(|_| run()).sum());
}

fn two_heapless() -> Duration {
    let mut q = Box::new(heapless::spsc::Queue::<u64, { CAP + 1 }>::new());
    let (mut p, mut c) = q.split();
    pinned_pair(
        move || {
            for i in 0..STREAM {
                let mut v = i;
                while let Err(back) = p.enqueue(v) {
                    v = back;
                    spin_loop();
                }
            }
        },
        move || {
            let (mut sum, mut n) = (0, 0);
            while n < STREAM {
                match c.dequeue() {
                    Some(v) => {
                        sum += v;
                        n += 1;
                    }
                    None => spin_loop(),
                }
            }
            sum
        },
    )
}

fn two_crossbeam() -> Duration {
    let q = crossbeam_queue::ArrayQueue::<u64>::new(CAP);
    let q = &q;
    pinned_pair(
        move || {
            for i in 0..STREAM {
                let mut v = i;
                while let Err(back) = q.push(v) {
                    v = back;
                    spin_loop();
                }
            }
        },
        move || {
            let (mut sum, mut n) = (0, 0);
            while n < STREAM {
                match q.pop() {
                    Some(v) => {
                        sum += v;
                        n += 1;
                    }
                    None => spin_loop(),
                }
            }
            sum
        },
    )
}

fn two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("two_threads");
    g.throughput(Throughput::Elements(STREAM));
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("single/lions-queue", |b| pinned(b, two_ours_single));
    g.bench_function("single/rtrb", |b| pinned(b, two_rtrb_single));
    g.bench_function("batched/lions-queue", |b| pinned(b, two_ours_batched));
    g.bench_function("batched/rtrb", |b| pinned(b, two_rtrb_batched));
    g.bench_function("single/heapless", |b| pinned(b, two_heapless));
    g.bench_function("single/crossbeam-ArrayQueue", |b| pinned(b, two_crossbeam));
    g.finish();
}

criterion_group!(benches, one_thread, two_threads);
criterion_main!(benches);
