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
//!
//! ## Choosing one in the metaprogram
//!
//! sDDF's `net_virt_tx_config_t` has no field for a policy (and its layout must stay as sdfgen
//! writes it), so a system states its choice in a blob of our own, [`NetTxPolicyConfig`] in section
//! `.net_virt_tx_policy` of the Tx virt's image (`lions_meta`: `net.tx_policy(...)`). The
//! `net_virt_tx` component reads it and builds a [`Chosen`] policy: an [`Order`] (in order,
//! round-robin, strict priority with per-client levels), wrapped in a [`RateLimit`] when any client
//! has a limit. A rate limit's clock is the timer driver (the Tx virt is then one of its clients:
//! `.timer_client_config`), and the component arms a timeout at [`TxPolicy::wake_at`] so a held
//! client is served when its bucket refills. A system that writes no policy blob gets
//! round-robin.

use crate::queue::NET_BUFFER_SIZE;
use lions_os::{Config, ConfigError, MAX_CLIENTS};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

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
    /// Whether the client just picked from `ready` keeps the turn while it has frames:
    /// [`pick`](Self::pick) would pick it again as long as only its own head frame changes (and
    /// [`sent`](Self::sent) was called). The virtualiser then sends its frames in a row without
    /// asking again.
    fn keeps_turn(&self, ready: u64) -> bool {
        let _ = ready;
        false
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
    fn keeps_turn(&self, _: u64) -> bool {
        true
    }

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
    /// The turn comes back to a client that is the only one ready.
    #[inline]
    fn keeps_turn(&self, ready: u64) -> bool {
        ready & ready.wrapping_sub(1) == 0
    }

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
    /// Only the picked client's head changes, so the highest ready level (and its lowest
    /// index) stays the same.
    fn keeps_turn(&self, _: u64) -> bool {
        true
    }

    fn pick(&mut self, ready: u64, _: &[u16; MAX_CLIENTS]) -> Option<usize> {
        bits(ready).min_by_key(|&c| core::cmp::Reverse(self.prio[c]))
    }
}

/// A client's token bucket: `bytes_per_sec` of refill, at most `burst_bytes` saved up (16 B in a
/// [`NetTxPolicyConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
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

/// The orders a system can choose at run time (from a [`NetTxPolicyConfig`]).
#[derive(Debug, Clone, Copy)]
pub enum Order {
    /// [`InOrder`].
    InOrder(InOrder),
    /// [`RoundRobin`].
    RoundRobin(RoundRobin),
    /// [`StrictPriority`].
    StrictPriority(StrictPriority),
}

impl TxPolicy for Order {
    #[inline]
    fn keeps_turn(&self, ready: u64) -> bool {
        match self {
            Self::RoundRobin(p) => p.keeps_turn(ready),
            _ => true,
        }
    }

    #[inline]
    fn pick(&mut self, ready: u64, len: &[u16; MAX_CLIENTS]) -> Option<usize> {
        match self {
            Self::InOrder(p) => p.pick(ready, len),
            Self::RoundRobin(p) => p.pick(ready, len),
            Self::StrictPriority(p) => p.pick(ready, len),
        }
    }

    #[inline]
    fn sent(&mut self, client: usize, len: u16) {
        if let Self::RoundRobin(p) = self {
            p.sent(client, len);
        }
    }
}

/// The policy a [`NetTxPolicyConfig`] chose: an [`Order`], within per-client rate limits if any
/// client has one (`F` is the limits' clock).
// One value per Tx virt, made once, and no allocator (no_std): no reason to box the large one.
#[allow(clippy::large_enum_variant)]
pub enum Chosen<F> {
    /// No client is limited.
    Plain(Order),
    /// Some clients are limited.
    Limited(RateLimit<Order, F>),
}

impl<F: FnMut() -> u64> TxPolicy for Chosen<F> {
    fn begin(&mut self) {
        if let Self::Limited(p) = self {
            p.begin();
        }
    }

    #[inline]
    fn keeps_turn(&self, ready: u64) -> bool {
        matches!(self, Self::Plain(p) if p.keeps_turn(ready))
    }

    #[inline]
    fn pick(&mut self, ready: u64, len: &[u16; MAX_CLIENTS]) -> Option<usize> {
        match self {
            Self::Plain(p) => p.pick(ready, len),
            Self::Limited(p) => p.pick(ready, len),
        }
    }

    #[inline]
    fn sent(&mut self, client: usize, len: u16) {
        match self {
            Self::Plain(p) => p.sent(client, len),
            Self::Limited(p) => p.sent(client, len),
        }
    }

    fn wake_at(&self) -> Option<u64> {
        match self {
            Self::Plain(_) => None,
            Self::Limited(p) => p.wake_at(),
        }
    }
}

/// [`NetTxPolicyConfig::order`]: sDDF's order ([`InOrder`]).
pub const ORDER_IN_ORDER: u8 = 0;
/// [`NetTxPolicyConfig::order`]: [`RoundRobin`].
pub const ORDER_ROUND_ROBIN: u8 = 1;
/// [`NetTxPolicyConfig::order`]: [`StrictPriority`] by [`NetTxPolicyConfig::priority`].
pub const ORDER_STRICT_PRIORITY: u8 = 2;

/// The Tx policy a system chose in its metaprogram: our own blob (1112 B), section
/// `.net_virt_tx_policy`, beside sDDF's `.net_virt_tx_config` (see the module docs). Client `c`
/// is the Tx virt config's `clients[c]`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NetTxPolicyConfig {
    /// `"lionsTP\x01"` (offset 0).
    pub magic: [u8; 8],
    /// [`ORDER_IN_ORDER`], [`ORDER_ROUND_ROBIN`] or [`ORDER_STRICT_PRIORITY`] (offset 8).
    pub order: u8,
    /// Zero (offset 9).
    pub _pad: [u8; 7],
    /// The clients with a rate limit, bit `c` = client `c` (offset 16).
    pub limited: u64,
    /// Each client's level for strict priority, larger first (offset 24).
    pub priority: [u8; MAX_CLIENTS],
    /// Each limited client's token bucket (offset 88).
    pub limits: [Limit; MAX_CLIENTS],
}

impl NetTxPolicyConfig {
    /// The order this config chose.
    pub fn chosen_order(&self) -> Order {
        match self.order {
            ORDER_IN_ORDER => Order::InOrder(InOrder),
            ORDER_STRICT_PRIORITY => Order::StrictPriority(StrictPriority::new(&self.priority)),
            _ => Order::RoundRobin(RoundRobin::default()),
        }
    }

    /// The policy this config chose, the limits reading `clock` (monotonic nanoseconds).
    pub fn policy<F: FnMut() -> u64>(&self, clock: F) -> Chosen<F> {
        if self.limited == 0 {
            return Chosen::Plain(self.chosen_order());
        }
        let limited = (0..MAX_CLIENTS).filter(|c| self.limited >> c & 1 != 0);
        let p = RateLimit::new(self.chosen_order(), clock);
        Chosen::Limited(limited.fold(p, |p, c| p.limit(c, self.limits[c])))
    }

    /// The policy of the blob `found` in the PD's image (its `config!` static's `get()`), or
    /// round-robin when the image holds none (not this config's magic): a system that writes no
    /// policy gets sDDF's order. Any other error is the blob's.
    pub fn policy_or_default<F: FnMut() -> u64>(
        found: Result<&Self, ConfigError>,
        clock: F,
    ) -> Result<Chosen<F>, ConfigError> {
        match found {
            Ok(p) => Ok(p.policy(clock)),
            Err(ConfigError::BadMagic { .. }) => {
                Ok(Chosen::Plain(Order::RoundRobin(RoundRobin::default())))
            }
            Err(e) => Err(e),
        }
    }
}

impl Config for NetTxPolicyConfig {
    const SECTION: &'static str = ".net_virt_tx_policy";
    const MAGIC: &'static [u8] = b"lionsTP\x01";
    const NAME: &'static str = "lions_net_tx_policy";

    fn validate(&self) -> Result<(), ConfigError> {
        if self.order > ORDER_STRICT_PRIORITY {
            return Err(ConfigError::Invalid {
                config: Self::NAME,
                field: "order",
                value: self.order.into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::Cell;

    const LEN: [u16; MAX_CLIENTS] = [100; MAX_CLIENTS];

    /// A policy that says a client keeps the turn picks it again, frame after frame, while it
    /// stays ready and nobody else's readiness changes (what the Tx virt relies on to send runs).
    #[test]
    fn keeping_the_turn_is_what_pick_would_do() {
        let prio = StrictPriority::new(&[1, 3, 3, 0]);
        let mut all: [Order; 3] = [
            Order::InOrder(InOrder),
            Order::RoundRobin(RoundRobin::default()),
            Order::StrictPriority(prio),
        ];
        let mut kept = 0;
        for p in &mut all {
            for ready in [0b1u64, 0b100, 0b1010, 0b1111, 0b1000_0001] {
                let Some(c) = p.pick(ready, &LEN) else {
                    continue;
                };
                if !p.keeps_turn(ready) {
                    continue;
                }
                kept += 1;
                for _ in 0..5 {
                    p.sent(c, 100);
                    assert_eq!(p.pick(ready, &LEN), Some(c), "{p:?} {ready:#b}");
                }
            }
        }
        assert_eq!(
            kept,
            5 + 2 + 5,
            "in order and priority always, round-robin alone only"
        );
        assert!(!RoundRobin::default().keeps_turn(0b11));
    }

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

    #[test]
    fn policy_config_layout() {
        use core::mem::offset_of;
        assert_eq!(size_of::<Limit>(), 16);
        assert_eq!(offset_of!(Limit, burst_bytes), 8);
        assert_eq!(size_of::<NetTxPolicyConfig>(), 1112);
        assert_eq!(align_of::<NetTxPolicyConfig>(), 8);
        assert_eq!(offset_of!(NetTxPolicyConfig, magic), 0);
        assert_eq!(offset_of!(NetTxPolicyConfig, order), 8);
        assert_eq!(offset_of!(NetTxPolicyConfig, limited), 16);
        assert_eq!(offset_of!(NetTxPolicyConfig, priority), 24);
        assert_eq!(offset_of!(NetTxPolicyConfig, limits), 88);
    }

    /// The blob as `lions_meta` writes it (little-endian, packed as the offsets above).
    fn blob(order: u8, limited: u64, prio: &[u8], limits: &[(usize, u64, u64)]) -> Vec<u8> {
        let mut b = b"lionsTP\x01".to_vec();
        b.extend([order, 0, 0, 0, 0, 0, 0, 0]);
        b.extend(limited.to_le_bytes());
        b.extend((0..64).map(|c| prio.get(c).copied().unwrap_or(0)));
        for c in 0..64 {
            let (r, burst) = limits
                .iter()
                .find(|l| l.0 == c)
                .map_or((0, 0), |l| (l.1, l.2));
            b.extend(r.to_le_bytes());
            b.extend(burst.to_le_bytes());
        }
        b
    }

    /// The blob as the component sees it: copied (a `Vec<u8>` need not be 8-aligned), checked.
    fn parse(b: &[u8]) -> Result<NetTxPolicyConfig, ConfigError> {
        let cfg = NetTxPolicyConfig::read_from_bytes(b).map_err(|_| ConfigError::Misaligned)?;
        cfg.check().map(|()| cfg)
    }

    #[test]
    fn the_config_chooses_the_policy() {
        let all = 0b11;
        let order = |b: &[u8]| run(&mut parse(b).unwrap().policy(|| 0), all, &LEN, 4);
        assert_eq!(order(&blob(ORDER_IN_ORDER, 0, &[], &[])), [0, 0, 0, 0]);
        assert_eq!(order(&blob(ORDER_ROUND_ROBIN, 0, &[], &[])), [0, 1, 0, 1]);
        assert_eq!(
            order(&blob(ORDER_STRICT_PRIORITY, 0, &[1, 7], &[])),
            [1, 1, 1, 1]
        );
        // Client 0 limited to its 2048-byte burst: two 1000-byte frames, then only client 1.
        let b = blob(ORDER_ROUND_ROBIN, 1, &[], &[(0, 1000, 0)]);
        let cfg = parse(&b).unwrap();
        let mut p = cfg.policy(|| 0);
        assert!(matches!(p, Chosen::Limited(_)));
        assert_eq!(
            run(&mut p, all, &[1000; MAX_CLIENTS], 6),
            [0, 1, 0, 1, 1, 1]
        );
        assert_eq!(p.wake_at(), Some(952_000_000));
        let plain = parse(&blob(ORDER_IN_ORDER, 0, &[], &[])).unwrap();
        assert!(matches!(
            plain.policy(|| 0),
            Chosen::Plain(Order::InOrder(_))
        ));
        assert_eq!(plain.policy(|| 0).wake_at(), None);
        // A wrong magic or an unknown order is refused.
        let mut bad = blob(3, 0, &[], &[]);
        assert!(matches!(parse(&bad), Err(ConfigError::Invalid { .. })));
        bad[8] = 0;
        assert!(parse(&bad).is_ok());
        bad[0] = b'L';
        assert!(matches!(parse(&bad), Err(ConfigError::BadMagic { .. })));
        // No blob (a wrong magic) is round-robin; a refused one stays refused; a good one is its.
        let or_default = |b: &[u8]| {
            let found = parse(b);
            NetTxPolicyConfig::policy_or_default(found.as_ref().map_err(Clone::clone), || 0)
        };
        let dflt = or_default(&bad);
        assert!(matches!(dflt, Ok(Chosen::Plain(Order::RoundRobin(_)))));
        let refused = or_default(&blob(3, 0, &[], &[]));
        assert!(matches!(refused, Err(ConfigError::Invalid { .. })));
        let found = or_default(&blob(ORDER_IN_ORDER, 0, &[], &[]));
        assert!(matches!(found, Ok(Chosen::Plain(Order::InOrder(_)))));
    }
}
