// SPDX-License-Identifier: BSD-2-Clause
//! The lions-queue bench workloads, shared by `benches/spsc.rs` (criterion) and
//! `examples/spsc_drive.rs` (callgrind and interleaved min/median against rtrb), so both measure the
//! same code. `u64` items, capacity 1024, batches of 64. Each side uses the best API its crate
//! offers:
//!
//! - single: ours `enqueue`/`dequeue` (push or pop plus one index store per item); rtrb
//!   `push`/`pop`.
//! - batched: ours `push_iter` (fills slots in place) + `publish`, `pop_iter` (yields each entry by
//!   value, one volatile read per slot) + `release`; rtrb `write_chunk_uninit(..).fill_from_iter`
//!   and `read_chunk(..).as_slices()` + `commit_all`. Both sum what they popped.
//! - batched-slice (ours only, for reference): `push_slice` from a private buffer, `pop_slice`
//!   into one.
//!
//! Two threads: a producer pinned to CPU 0 and a consumer pinned to CPU 1 (`sched_setaffinity`)
//! stream a bounded run of items; the clock starts when both threads are pinned and running (thread
//! creation is not timed) and stops when the consumer has every item. Short runs (2^16 items) are
//! rarely preempted, so the minimum and the median of many interleaved runs describe the ring
//! rather than the scheduler.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use lions_queue::{Consumer, Producer, PushError, RingStorage};
use std::hint::{black_box, spin_loop};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub const CAP: usize = 1024;
pub const BATCH: usize = 64;
/// Items per one-thread round: fill the ring, then drain it.
pub const N: u64 = CAP as u64;
/// Items per two-thread run.
pub const STREAM: u64 = 1 << 16;

pub type Ours = RingStorage<u32, u64, CAP>;
pub type OursP<'a> = Producer<'a, u32, u64>;
pub type OursC<'a> = Consumer<'a, u32, u64>;

pub fn ours() -> Box<Ours> {
    Box::new(Ours::new())
}

#[inline(never)]
pub fn ours_single(p: &mut OursP<'_>, c: &mut OursC<'_>) -> u64 {
    for i in 0..N {
        p.enqueue(black_box(i)).unwrap();
    }
    let mut sum = 0;
    for _ in 0..N {
        sum += c.dequeue().unwrap().unwrap();
    }
    sum
}

#[inline(never)]
pub fn ours_batched(p: &mut OursP<'_>, c: &mut OursC<'_>) -> u64 {
    for chunk in 0..N / BATCH as u64 {
        let base = chunk * BATCH as u64;
        let k = p.push_iter(black_box(base)..base + BATCH as u64).unwrap();
        debug_assert_eq!(k, BATCH);
        p.publish();
    }
    let mut sum = 0;
    for _ in 0..N / BATCH as u64 {
        let it = c.pop_iter(BATCH).unwrap();
        debug_assert_eq!(it.len(), BATCH);
        sum += it.sum::<u64>();
        c.release();
    }
    sum
}

#[inline(never)]
pub fn ours_batched_slice(p: &mut OursP<'_>, c: &mut OursC<'_>) -> u64 {
    let mut buf = [0u64; BATCH];
    for chunk in 0..N / BATCH as u64 {
        let base = black_box(chunk * BATCH as u64);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = base + i as u64;
        }
        assert_eq!(p.push_slice(&buf).unwrap(), BATCH);
        p.publish();
    }
    let mut sum = 0;
    for _ in 0..N / BATCH as u64 {
        let k = c.pop_slice(&mut buf).unwrap();
        debug_assert_eq!(k, BATCH);
        sum += buf[..k].iter().sum::<u64>();
        c.release();
    }
    sum
}

#[inline(never)]
pub fn rtrb_single(rp: &mut rtrb::Producer<u64>, rc: &mut rtrb::Consumer<u64>) -> u64 {
    for i in 0..N {
        rp.push(black_box(i)).unwrap();
    }
    let mut sum = 0;
    for _ in 0..N {
        sum += rc.pop().unwrap();
    }
    sum
}

#[inline(never)]
pub fn rtrb_batched(rp: &mut rtrb::Producer<u64>, rc: &mut rtrb::Consumer<u64>) -> u64 {
    for chunk in 0..N / BATCH as u64 {
        let base = chunk * BATCH as u64;
        let n = rp
            .write_chunk_uninit(BATCH)
            .unwrap()
            .fill_from_iter(black_box(base)..base + BATCH as u64);
        debug_assert_eq!(n, BATCH);
    }
    let mut sum = 0;
    for _ in 0..N / BATCH as u64 {
        let chunk = rc.read_chunk(BATCH).unwrap();
        let (a, b) = chunk.as_slices();
        sum += a.iter().sum::<u64>() + b.iter().sum::<u64>();
        chunk.commit_all();
    }
    sum
}

/// Pin the calling thread to `cpu`; false when the OS refused (then the run is not pinned).
pub fn pin(cpu: usize) -> bool {
    // SAFETY: `cpu_set_t` is plain data, valid all-zero; `CPU_SET` writes inside it, and
    // `sched_setaffinity` reads `size_of` bytes of it for the calling thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Run `producer` on CPU 0 and `consumer` on CPU 1 (the calling thread), timing from the moment
/// both are pinned and running until the consumer returns. Returns the time and the consumer's
/// checksum, which must be the sum of `0..STREAM`.
pub fn pinned_pair(producer: impl FnOnce() + Send, consumer: impl FnOnce() -> u64) -> Duration {
    let ready = AtomicBool::new(false);
    let go = AtomicBool::new(false);
    let (t, sum) = std::thread::scope(|s| {
        s.spawn(|| {
            pin(0);
            ready.store(true, Ordering::Release);
            while !go.load(Ordering::Acquire) {
                spin_loop();
            }
            producer();
        });
        pin(1);
        while !ready.load(Ordering::Acquire) {
            spin_loop();
        }
        let start = Instant::now();
        go.store(true, Ordering::Release);
        let sum = consumer();
        (start.elapsed(), sum)
    });
    assert_eq!(sum, STREAM * (STREAM - 1) / 2, "every item arrived once");
    t
}

/// Before a two-thread run, pass one ring's worth of items through from the calling (consumer)
/// thread, so every ring starts with its slots mapped and in the consumer's cache (ours are
/// zeroed at construction, rtrb's are not touched until written; without this, rtrb's first
/// writes fault pages in and the two rings start from different states).
fn warm_ours(p: &mut OursP<'_>, c: &mut OursC<'_>) {
    for i in 0..N {
        p.enqueue(i).unwrap();
        c.dequeue().unwrap().unwrap();
    }
}

fn warm_rtrb(p: &mut rtrb::Producer<u64>, c: &mut rtrb::Consumer<u64>) {
    for i in 0..N {
        p.push(i).unwrap();
        c.pop().unwrap();
    }
}

pub fn two_ours_single() -> Duration {
    let mut s = ours();
    let (mut p, mut c, _) = s.split().unwrap();
    warm_ours(&mut p, &mut c);
    pinned_pair(
        move || {
            for i in 0..STREAM {
                let mut v = i;
                while let Err(e) = p.enqueue(v) {
                    let PushError::Full(back) = e else {
                        panic!("peer error")
                    };
                    v = back;
                    spin_loop();
                }
            }
        },
        move || {
            let (mut sum, mut n) = (0, 0);
            while n < STREAM {
                match c.dequeue().unwrap() {
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

pub fn two_ours_batched() -> Duration {
    let mut s = ours();
    let (mut p, mut c, _) = s.split().unwrap();
    warm_ours(&mut p, &mut c);
    pinned_pair(
        move || {
            let mut i = 0;
            while i < STREAM {
                let m = (STREAM - i).min(BATCH as u64);
                let k = p.push_iter(i..i + m).unwrap();
                if k == 0 {
                    spin_loop();
                } else {
                    p.publish();
                    i += k as u64;
                }
            }
        },
        move || {
            let (mut sum, mut n) = (0, 0);
            while n < STREAM {
                let it = c.pop_iter(BATCH).unwrap();
                let k = it.len();
                if k == 0 {
                    spin_loop();
                } else {
                    sum += it.sum::<u64>();
                    c.release();
                    n += k as u64;
                }
            }
            sum
        },
    )
}

pub fn two_rtrb_single() -> Duration {
    let (mut p, mut c) = rtrb::RingBuffer::<u64>::new(CAP);
    warm_rtrb(&mut p, &mut c);
    pinned_pair(
        move || {
            for i in 0..STREAM {
                let mut v = i;
                while let Err(rtrb::PushError::Full(back)) = p.push(v) {
                    v = back;
                    spin_loop();
                }
            }
        },
        move || {
            let (mut sum, mut n) = (0, 0);
            while n < STREAM {
                match c.pop() {
                    Ok(v) => {
                        sum += v;
                        n += 1;
                    }
                    Err(_) => spin_loop(),
                }
            }
            sum
        },
    )
}

/// rtrb's chunk calls check the cached index first and re-read the peer's only when it is short;
/// on `TooFewSlots(k)` we take the `k` there are.
pub fn two_rtrb_batched() -> Duration {
    let (mut p, mut c) = rtrb::RingBuffer::<u64>::new(CAP);
    warm_rtrb(&mut p, &mut c);
    pinned_pair(
        move || {
            let mut i = 0;
            while i < STREAM {
                #[allow(clippy::cast_possible_truncation)]
                let m = (STREAM - i).min(BATCH as u64) as usize;
                let chunk = match p.write_chunk_uninit(m) {
                    Ok(w) => w,
                    Err(rtrb::chunks::ChunkError::TooFewSlots(0)) => {
                        spin_loop();
                        continue;
                    }
                    Err(rtrb::chunks::ChunkError::TooFewSlots(k)) => {
                        p.write_chunk_uninit(k).unwrap()
                    }
                };
                let w = chunk.fill_from_iter(i..);
                i += w as u64;
            }
        },
        move || {
            let (mut sum, mut n) = (0, 0);
            while n < STREAM {
                let chunk = match c.read_chunk(BATCH) {
                    Ok(r) => r,
                    Err(rtrb::chunks::ChunkError::TooFewSlots(0)) => {
                        spin_loop();
                        continue;
                    }
                    Err(rtrb::chunks::ChunkError::TooFewSlots(k)) => c.read_chunk(k).unwrap(),
                };
                let (a, b) = chunk.as_slices();
                sum += a.iter().sum::<u64>() + b.iter().sum::<u64>();
                n += chunk.len() as u64;
                chunk.commit_all();
            }
            sum
        },
    )
}
