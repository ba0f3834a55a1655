// SPDX-License-Identifier: BSD-2-Clause
//! The one-thread workloads of `benches/spsc.rs` (1024 pushes then 1024 pops, one at a time or in
//! batches of 64) as plain functions, for callgrind and for a load-robust ratio against rtrb.
//!
//! - `spsc_drive -- os|rs|ob|rb`: 1000 rounds of one mode (ours/rtrb, single/batched), for
//!   `valgrind --tool=callgrind` (take the inclusive cost of the mode's function).
//! - `spsc_drive -- min`: 200 repetitions of 500 rounds of each mode, interleaved, printing the
//!   fastest repetition per mode and the time ratios.
//! - `ITER=1`: ours batched fills the slots with `push_iter` instead of `push_slice`.
#![allow(missing_docs, clippy::unwrap_used)]
use lions_queue::RingStorage;
use std::hint::black_box;
const CAP: usize = 1024;
const BATCH: usize = 64;
const N: u64 = CAP as u64;
const ROUNDS: u64 = 1000;
static ITER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[inline(never)]
fn ours_batched(
    p: &mut lions_queue::Producer<'_, u32, u64>,
    c: &mut lions_queue::Consumer<'_, u32, u64>,
) -> u64 {
    let mut buf = [0u64; BATCH];
    for chunk in 0..N / BATCH as u64 {
        let base = black_box(chunk * BATCH as u64);
        if ITER.load(std::sync::atomic::Ordering::Relaxed) {
            let k = p.push_iter(base..base + BATCH as u64).unwrap();
            debug_assert_eq!(k, BATCH);
        } else {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = base + i as u64;
            }
            assert_eq!(p.push_slice(&buf).unwrap(), BATCH);
        }
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
fn ours_single(
    p: &mut lions_queue::Producer<'_, u32, u64>,
    c: &mut lions_queue::Consumer<'_, u32, u64>,
) -> u64 {
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
fn rtrb_batched(rp: &mut rtrb::Producer<u64>, rc: &mut rtrb::Consumer<u64>) -> u64 {
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

#[inline(never)]
fn rtrb_single(rp: &mut rtrb::Producer<u64>, rc: &mut rtrb::Consumer<u64>) -> u64 {
    for i in 0..N {
        rp.push(black_box(i)).unwrap();
    }
    let mut sum = 0;
    for _ in 0..N {
        sum += rc.pop().unwrap();
    }
    sum
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    ITER.store(
        std::env::var_os("ITER").is_some(),
        std::sync::atomic::Ordering::Relaxed,
    );
    let mut s = Box::new(RingStorage::<u32, u64, CAP>::new());
    let (mut p, mut c, _) = s.split().unwrap();
    let (mut rp, mut rc) = rtrb::RingBuffer::<u64>::new(CAP);
    let mut t = 0;
    if which == "min" {
        let mut best = [f64::MAX; 4];
        let names = ["os", "rs", "ob", "rb"];
        for _rep in 0..200 {
            for (k, m) in names.iter().enumerate() {
                let start = std::time::Instant::now();
                for _ in 0..500 {
                    t += match *m {
                        "ob" => ours_batched(&mut p, &mut c),
                        "os" => ours_single(&mut p, &mut c),
                        "rb" => rtrb_batched(&mut rp, &mut rc),
                        _ => rtrb_single(&mut rp, &mut rc),
                    };
                }
                best[k] = best[k].min(start.elapsed().as_nanos() as f64 / 500.0);
            }
        }
        println!(
            "min ns/round: os {:.0} rs {:.0} (ours/rtrb time {:.2})  ob {:.0} rb {:.0} (ours/rtrb time {:.2})  {t}",
            best[0],
            best[1],
            best[0] / best[1],
            best[2],
            best[3],
            best[2] / best[3]
        );
        return;
    }
    for _ in 0..ROUNDS {
        t += match which.as_str() {
            "ob" => ours_batched(&mut p, &mut c),
            "os" => ours_single(&mut p, &mut c),
            "rb" => rtrb_batched(&mut rp, &mut rc),
            "rs" => rtrb_single(&mut rp, &mut rc),
            _ => panic!("ob|os|rb|rs"),
        };
    }
    println!("{t}");
}
