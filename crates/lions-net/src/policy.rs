// SPDX-License-Identifier: BSD-2-Clause
//! Tx shaping policies: which client's frame the Tx virtualiser hands to the driver next.
//!
//! A policy is a small type behind [`TxPolicy`], chosen per system (the paper's use-case-specific
//! policies). The virtualiser validates frames itself; a policy only orders and admits them:
//!
//! | policy | order | starvation |
//! |---|---|---|
//! | [`InOrder`] | lowest client index first, each drained before the next (sDDF 0.7) | a busy low index starves the rest while the driver queue is the bottleneck |
//! | [`RoundRobin`] | one frame per ready client in turn | none: frame counts differ by at most one |
//! | [`StrictPriority`] | highest priority first (ties: lowest index) | intended: lower levels get only what higher ones leave |
//! | [`RateLimit`] | wraps any of the above; a client over its token bucket waits | a limited client never exceeds `burst + rate * t` bytes |

use crate::queue::NET_BUFFER_SIZE;
use lions_os::MAX_CLIENTS;

/// A Tx shaping policy. The virtualiser calls [`begin`](Self::begin) once per pass, then
/// [`pick`](Self::pick) and [`sent`](Self::sent) for each frame until `pick` says `None`, no client
/// is ready, or the driver queue is full. A decision costs at most one step per ready client: the
/// waiting clients come as a bit set, never as a scan over every possible client.
pub trait TxPolicy {
    /// A pass over the clients' queues begins (a rate limit reads its clock here).
    fn begin(&mut self) {}
    /// The client whose head frame goes next, among `ready` (bit `c`: client `c` has a valid
    /// frame of `len[c]` bytes waiting; `len` is meaningful only where `ready` has a bit).
    /// `None`: nothing more in this pass. A client outside `ready` is taken as `None`.
    fn pick(&mut self, ready: u64, len: &[u16; MAX_CLIENTS]) -> Option<usize>;
    /// The frame of `len` bytes picked from `client` went to the driver.
    fn sent(&mut self, client: usize, len: u16) {
        let _ = (client, len);
    }
    /// When (in the policy's clock units) a client it held back in this pass may send again; the
    /// virtualiser's PD may arm a timer for it. `None`: nobody is held back.
    fn wake_at(&self) -> Option<u64> {
        None
    }
}

/// sDDF's order: the lowest-numbered ready client, so each client is drained before the next.
#[derive(Debug, Default, Clone, Copy)]
pub struct InOrder;

impl TxPolicy for InOrder {
    #[inline]
    fn pick(&mut self, ready: u64, _: &[u16; MAX_CLIENTS]) -> Option<usize> {
        (ready != 0).then(|| ready.trailing_zeros() as usize)
    }
}

/// The clients in `set`, lowest first.
fn bits(mut set: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        let c = (set != 0).then(|| set.trailing_zeros() as usize)?;
        set &= set - 1;
        Some(c)
    })
}

/// One frame per ready client in turn, starting after the client served last.
#[derive(Debug, Default, Clone, Copy)]
pub struct RoundRobin {
    next: u32,
}

impl TxPolicy for RoundRobin {
    #[inline]
    fn pick(&mut self, ready: u64, _: &[u16; MAX_CLIENTS]) -> Option<usize> {
        // `next < 64`; rotating puts it at bit 0, so the first set bit is the next one in turn.
        let turn = ready.rotate_right(self.next);
        (turn != 0).then(|| ((self.next + turn.trailing_zeros()) % 64) as usize)
    }

    #[inline]
    fn sent(&mut self, client: usize, _: u16) {
        self.next = u32::try_from((client + 1) % MAX_CLIENTS).unwrap_or(0);
    }
}

/// The ready client with the highest priority (larger is higher, as seL4 priorities), ties to the
/// lowest index. A lower level is served only when no higher one has a frame waiting.
#[derive(Debug, Clone, Copy)]
pub struct StrictPriority {
    prio: [u8; MAX_CLIENTS],
}

impl StrictPriority {
    /// Client `c` gets `prio[c]`; clients beyond the slice get 0.
    pub fn new(prio: &[u8]) -> Self {
        let mut p = [0; MAX_CLIENTS];
        for (d, s) in p.iter_mut().zip(prio) {
            *d = *s;
        }
        Self { prio: p }
    }
}

impl TxPolicy for StrictPriority {
    fn pick(&mut self, ready: u64, _: &[u16; MAX_CLIENTS]) -> Option<usize> {
        bits(ready).min_by_key(|&c| core::cmp::Reverse(self.prio[c]))
    }
}

/// A client's token bucket: `bytes_per_sec` of refill, at most `burst_bytes` saved up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Refill rate (0: only the initial burst, ever).
    pub bytes_per_sec: u64,
    /// Bucket size, also the initial fill; raised to at least one full buffer (2048), or a frame
    /// could never pass.
    pub burst_bytes: u64,
}

/// Nanoseconds per second: tokens are kept in byte-nanoseconds, so refills are exact.
const NS: u128 = 1_000_000_000;

/// Per-client bandwidth limits (token buckets over a clock in nanoseconds) around an inner policy
/// that orders the clients within their limits. A client without a [`Limit`] is not limited.
pub struct RateLimit<P, F> {
    inner: P,
    clock: F,
    last: u64,
    limited: u64,
    limit: [Limit; MAX_CLIENTS],
    /// Tokens in byte-nanoseconds (bytes × 10⁹).
    tokens: [u128; MAX_CLIENTS],
    wake: Option<u64>,
}

impl<P: TxPolicy, F: FnMut() -> u64> RateLimit<P, F> {
    /// `inner` ordering the clients, `clock` returning monotonic nanoseconds (a timer client's
    /// `time_now`, a counter, or a fake clock in tests). Nobody is limited yet.
    pub fn new(inner: P, mut clock: F) -> Self {
        let last = clock();
        Self {
            inner,
            clock,
            last,
            limited: 0,
            limit: [Limit {
                bytes_per_sec: 0,
                burst_bytes: 0,
            }; MAX_CLIENTS],
            tokens: [0; MAX_CLIENTS],
            wake: None,
        }
    }

    /// Limit `client` (ignored beyond 63), starting with a full bucket.
    #[must_use]
    pub fn limit(mut self, client: usize, mut limit: Limit) -> Self {
        if client < MAX_CLIENTS {
            limit.burst_bytes = limit.burst_bytes.max(NET_BUFFER_SIZE);
            self.limit[client] = limit;
            self.tokens[client] = u128::from(limit.burst_bytes) * NS;
            self.limited |= 1 << client;
        }
        self
    }

    /// The inner policy.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// Whole bytes client `client` may send now.
    pub fn tokens(&self, client: usize) -> u64 {
        self.tokens
            .get(client)
            .map_or(0, |t| u64::try_from(t / NS).unwrap_or(u64::MAX))
    }
}

impl<P: TxPolicy, F: FnMut() -> u64> TxPolicy for RateLimit<P, F> {
    fn begin(&mut self) {
        let now = (self.clock)();
        let dt = u128::from(now.saturating_sub(self.last));
        self.last = self.last.max(now);
        self.wake = None;
        for c in bits(self.limited) {
            let l = self.limit[c];
            let full = u128::from(l.burst_bytes) * NS;
            self.tokens[c] = (self.tokens[c] + dt * u128::from(l.bytes_per_sec)).min(full);
        }
        self.inner.begin();
    }

    fn pick(&mut self, ready: u64, len: &[u16; MAX_CLIENTS]) -> Option<usize> {
        let mut eligible = ready;
        for c in bits(ready & self.limited) {
            let need = u128::from(len[c]) * NS;
            if self.tokens[c] < need {
                eligible &= !(1 << c);
                let rate = u128::from(self.limit[c].bytes_per_sec);
                if rate > 0 {
                    let wait = u64::try_from((need - self.tokens[c]).div_ceil(rate));
                    let at = self.last.saturating_add(wait.unwrap_or(u64::MAX));
                    self.wake = Some(self.wake.map_or(at, |w| w.min(at)));
                }
            }
        }
        self.inner.pick(eligible, len)
    }

    fn sent(&mut self, client: usize, len: u16) {
        if let Some(t) = self.tokens.get_mut(client) {
            *t = t.saturating_sub(u128::from(len) * NS);
        }
        self.inner.sent(client, len);
    }

    fn wake_at(&self) -> Option<u64> {
        self.wake
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::Cell;

    const LEN: [u16; MAX_CLIENTS] = [100; MAX_CLIENTS];

    /// `lens` with only the clients in `ready` waiting: the set and the lengths a policy sees.
    fn mask(ready: u64, lens: &[u16; MAX_CLIENTS]) -> (u64, [u16; MAX_CLIENTS]) {
        let lens = core::array::from_fn(|c| if ready & (1 << c) != 0 { lens[c] } else { 0 });
        (ready, lens)
    }

    /// `p.pick` over what `mask` gives.
    fn pick(p: &mut impl TxPolicy, (ready, lens): (u64, [u16; MAX_CLIENTS])) -> Option<usize> {
        p.pick(ready, &lens)
    }

    /// Pick and send until `pick` says `None` or `n` frames went, the clients in `ready` staying
    /// backlogged; the clients picked, in order.
    fn run(p: &mut impl TxPolicy, ready: u64, lens: &[u16; MAX_CLIENTS], n: usize) -> Vec<usize> {
        p.begin();
        let mut out = Vec::new();
        let (ready, lens) = &mask(ready, lens);
        while out.len() < n {
            let Some(c) = p.pick(*ready, lens) else { break };
            assert!(ready & (1 << c) != 0, "picked {c} outside {ready:#x}");
            p.sent(c, lens[c]);
            out.push(c);
        }
        out
    }

    #[test]
    fn in_order_drains_the_lowest_first() {
        assert_eq!(run(&mut InOrder, 0b1010_0100, &LEN, 3), [2, 2, 2]);
        assert_eq!(pick(&mut InOrder, mask(0, &LEN)), None);
        assert_eq!(pick(&mut InOrder, mask(1 << 63, &LEN)), Some(63));
    }

    #[test]
    fn round_robin_table() {
        let mut rr = RoundRobin::default();
        assert_eq!(run(&mut rr, 0b1011, &LEN, 7), [0, 1, 3, 0, 1, 3, 0]);
        // Client 1 went quiet: the turn skips it, and resumes after the last one served.
        assert_eq!(run(&mut rr, 0b1001, &LEN, 3), [3, 0, 3]);
        assert_eq!(
            run(&mut rr, 1 << 63 | 1, &LEN, 4),
            [63, 0, 63, 0],
            "after 3 comes 63"
        );
        assert_eq!(pick(&mut rr, mask(0, &LEN)), None);
    }

    #[test]
    fn strict_priority_starves_lower_levels() {
        let mut p = StrictPriority::new(&[1, 5, 5, 9]);
        assert_eq!(
            run(&mut p, 0b1111, &LEN, 4),
            [3, 3, 3, 3],
            "the top level takes everything"
        );
        assert_eq!(
            run(&mut p, 0b0111, &LEN, 3),
            [1, 1, 1],
            "ties go to the lowest index"
        );
        assert_eq!(
            run(&mut p, 0b0001, &LEN, 2),
            [0, 0],
            "the bottom runs when alone"
        );
        assert_eq!(
            run(&mut p, 1 << 40, &LEN, 1),
            [40],
            "clients beyond the table are level 0"
        );
        assert_eq!(pick(&mut p, mask(0, &LEN)), None);
    }

    proptest! {
        /// With a fixed set of backlogged clients, k rounds give every client exactly k frames,
        /// and consecutive picks follow the cyclic order.
        #[test]
        fn round_robin_is_fair(ready in 1u64.., start in 0u32..64, k in 1usize..5) {
            let mut rr = RoundRobin { next: start };
            let n = ready.count_ones() as usize;
            let picks = run(&mut rr, ready, &LEN, n * k);
            for c in (0..64).filter(|c| ready & (1 << c) != 0) {
                prop_assert_eq!(picks.iter().filter(|&&p| p == c).count(), k);
            }
            for w in picks.windows(2) {
                let gap = (w[1] + 64 - w[0] - 1) % 64;
                let between = (1..=gap).filter(|i| ready & (1 << ((w[0] + i) % 64)) != 0).count();
                prop_assert_eq!(between, 0, "{} skipped a ready client before {}", w[0], w[1]);
            }
        }

        /// Whatever is ready, strict priority picks a client of the highest ready level.
        #[test]
        fn strict_priority_picks_the_top(prio in prop::collection::vec(any::<u8>(), 64), ready in 1u64..) {
            let mut p = StrictPriority::new(&prio);
            let c = pick(&mut p, mask(ready, &LEN)).unwrap();
            let top = (0..64).filter(|i| ready & (1 << i) != 0).map(|i| prio[i]).max().unwrap();
            prop_assert_eq!(prio[c], top);
        }

        /// A backlogged limited client sends exactly what its bucket allows, over a simulated
        /// clock: after each pass `burst + rate*t - len < sent <= burst + rate*t`, and the wake-up
        /// time it reports is the first instant its next frame fits.
        #[test]
        fn token_bucket_bounds(rate in 1_000u64..100_000_000, burst in 4096u64..20_000,
                               len in 60u16..=2048, steps in prop::collection::vec(0u64..20_000, 1..40)) {
            let now = Cell::new(1_000_000u64);
            let mut p = RateLimit::new(RoundRobin::default(), || now.get())
                .limit(1, Limit { bytes_per_sec: rate, burst_bytes: burst });
            let mut lens = LEN;
            lens[1] = len;
            let need = u128::from(len) * NS;
            // Each step refills less than 2048 bytes and a pass spends down to below one frame,
            // so the bucket never reaches its cap after the first pass: nothing is clipped.
            let mut sent = run(&mut p, 0b10, &lens, usize::MAX).len() as u128 * u128::from(len);
            let mut t = 0u128;
            for dt in steps {
                now.set(now.get() + dt);
                t += u128::from(dt);
                sent += run(&mut p, 0b10, &lens, usize::MAX).len() as u128 * u128::from(len);
                let allowed = u128::from(burst) * NS + t * u128::from(rate);
                prop_assert!(sent * NS <= allowed, "sent {} > allowed {}", sent, allowed / NS);
                prop_assert!(sent * NS + need > allowed, "sent {} too little", sent);
                let wait = u128::from(p.wake_at().unwrap() - now.get());
                let tokens = p.tokens[1];
                prop_assert!(tokens + wait * u128::from(rate) >= need, "woken too early");
                prop_assert!(tokens + (wait - 1) * u128::from(rate) < need, "woken too late");
            }
        }
    }

    #[test]
    fn rate_limit_holds_only_limited_clients() {
        let now = Cell::new(0u64);
        // Client 0: 1000 B/s, burst 2048. Client 1: unlimited.
        let mut p = RateLimit::new(RoundRobin::default(), || now.get())
            .limit(
                0,
                Limit {
                    bytes_per_sec: 1000,
                    burst_bytes: 0,
                },
            )
            .limit(
                99,
                Limit {
                    bytes_per_sec: 1,
                    burst_bytes: 1,
                },
            );
        let mut lens = [1000; MAX_CLIENTS];
        assert_eq!(
            run(&mut p, 0b11, &lens, 6),
            [0, 1, 0, 1, 1, 1],
            "two frames of burst, then held"
        );
        assert_eq!(p.tokens(0), 48);
        // 952 more bytes take 952 ms at 1000 B/s.
        assert_eq!(p.wake_at(), Some(952_000_000));
        now.set(951_999_999);
        assert_eq!(run(&mut p, 0b01, &lens, 1), [], "one nanosecond early");
        now.set(952_000_000);
        assert_eq!(run(&mut p, 0b01, &lens, 2), [0]);
        assert_eq!(p.wake_at(), Some(1_952_000_000));
        // A long idle time refills to the burst only; a clock going backwards adds nothing.
        now.set(1_000_000_000_000);
        lens[0] = 2048;
        assert_eq!(run(&mut p, 0b01, &lens, 3), [0]);
        now.set(5);
        assert_eq!(run(&mut p, 0b01, &lens, 3), []);
        assert!(p.inner().next == 1);
    }
}
