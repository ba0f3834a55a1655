// SPDX-License-Identifier: BSD-2-Clause
//! A seeded attack on the ring itself (the engine is `lions-os`'s `sim::attack`, included by
//! path: this crate does not depend on `lions-os`). A u16-indexed ring of 8 slots starting near
//! the wrap, a well-behaved producer and consumer, and a peer that overwrites the tail (playing a
//! rogue producer) or the head (a rogue consumer) with anything: small jumps, jumps near the wrap,
//! backwards, past the other index.
//!
//! After every step: nothing panics; while no index has been corrupted, the consumer pops exactly
//! what was published, in order, none lost or repeated; always, a handle's `len`/`free` that is
//! `Ok` is at most the usable capacity, and a peer error, once reported, is a value, not a panic.
//! At the end, a fresh pair over a clean header still moves every value (the ring holds no hidden
//! state).
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation, missing_docs)]

#[path = "../../lions-os/src/sim/attack.rs"]
#[allow(dead_code)]
mod engine;

use engine::{Rng, Target};
use lions_queue::{Capacity, QueueHeader, QueueMemory};
use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

#[repr(C)]
struct Hdr {
    tail: AtomicU16,
    head: AtomicU16,
    _pad: u32,
}

// SAFETY: `head` and `tail` are fields of `self`; entries (u64) start at 8, a multiple of 8.
unsafe impl QueueHeader for Hdr {
    type Index = u16;
    type Entry = u64;
    const ENTRIES_OFFSET: usize = 8;
    fn head(&self) -> &AtomicU16 {
        &self.head
    }
    fn tail(&self) -> &AtomicU16 {
        &self.tail
    }
}

const SLOTS: u64 = 8;

#[derive(Debug, Clone)]
enum Act {
    /// Both indices' starting value (before the handles exist).
    Start(u16),
    Push(u8),
    Publish,
    Pop(u8),
    Release,
    /// Overwrite the tail (rogue producer) or the head (rogue consumer).
    Tail(u16),
    Head(u16),
}

fn generate(r: &mut Rng) -> Vec<Act> {
    let start = r.below(2) as u16 * 0u16.wrapping_sub(r.below(20) as u16);
    let mut v = vec![Act::Start(start)];
    let rogue = r.chance(1, 2);
    v.extend(
        (0..20 + r.index(200)).map(|_| match r.below(if rogue { 20 } else { 18 }) {
            0..=5 => Act::Push(r.below(SLOTS + 2) as u8),
            6..=8 => Act::Publish,
            9..=14 => Act::Pop(r.below(SLOTS + 2) as u8),
            15..=17 => Act::Release,
            18 => Act::Tail(match r.below(3) {
                0 => r.below(2 * SLOTS) as u16,
                1 => 0u16.wrapping_sub(r.below(2 * SLOTS) as u16),
                _ => r.nasty() as u16,
            }),
            _ => Act::Head(r.nasty() as u16),
        }),
    );
    v
}

fn execute(acts: &[Act]) -> Result<(), String> {
    let mut mem = vec![0u64; 1 + SLOTS as usize];
    let base = NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
    let len = mem.len() * 8;
    let cap = Capacity::new::<u16>(SLOTS).unwrap();
    // SAFETY: `mem` outlives both handles; one producer and one consumer over it; before any
    // handle exists the test sets the starting indices through the raw header.
    let hdr = unsafe { base.cast::<Hdr>().as_ref() };
    let mut acts = acts.iter().peekable();
    if let Some(&&Act::Start(v)) = acts.peek() {
        hdr.tail.store(v, Ordering::Relaxed);
        hdr.head.store(v, Ordering::Relaxed);
        acts.next();
    }
    let usable = cap.usable();
    // SAFETY: as above.
    let prod = unsafe { QueueMemory::<Hdr>::inline(base, len, cap) }
        .unwrap()
        .producer();
    // SAFETY: as above.
    let cons = unsafe { QueueMemory::<Hdr>::inline(base, len, cap) }
        .unwrap()
        .consumer();
    let (Ok(mut p), Ok(mut c)) = (prod, cons) else {
        // Inconsistent starting indices are refused at construction: fine, nothing to attack.
        return Ok(());
    };
    let mut corrupt = false;
    let mut next = 0u64;
    let mut published: VecDeque<u64> = VecDeque::new();
    let mut staged = 0u64;
    for a in acts {
        match *a {
            Act::Push(n) => {
                for _ in 0..n {
                    if p.push(next).is_ok() {
                        next += 1;
                        staged += 1;
                    }
                }
            }
            Act::Publish => {
                let n = p.publish();
                if !corrupt && n != staged {
                    return Err(format!("published {n} of {staged} staged"));
                }
                for k in 0..staged {
                    published.push_back(next - staged + k);
                }
                staged = 0;
            }
            Act::Pop(n) => {
                for _ in 0..n {
                    match c.pop() {
                        Ok(Some(v)) if !corrupt => {
                            let want = published.pop_front();
                            if want != Some(v) {
                                return Err(format!("popped {v}, expected {want:?}"));
                            }
                        }
                        Ok(None) if !corrupt && !published.is_empty() => {
                            return Err(format!("{} published values invisible", published.len()));
                        }
                        _ => {}
                    }
                }
            }
            Act::Release => {
                c.release();
            }
            Act::Start(_) => {}
            Act::Tail(v) => {
                hdr.tail.store(v, Ordering::Release);
                corrupt = true;
            }
            Act::Head(v) => {
                hdr.head.store(v, Ordering::Release);
                corrupt = true;
            }
        }
        if let Ok(n) = c.len()
            && n > usable
        {
            return Err(format!("consumer len {n} above capacity {usable}"));
        }
        if let Ok(n) = p.free()
            && n > usable
        {
            return Err(format!("producer free {n} above capacity {usable}"));
        }
    }
    Ok(())
}

#[test]
fn queue() {
    let t = Target {
        name: "queue",
        package: "lions-queue",
        default_cases: 2000,
    }
    .run(generate, execute);
    assert!(t.actions > 0);
}
