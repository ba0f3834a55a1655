// SPDX-License-Identifier: BSD-2-Clause
//! Overflow-safe conversion between counter ticks and nanoseconds.
//!
//! sDDF's `period_transform` splits the value into quotient and remainder,
//! `(v / from) × to + ((v % from) × to) / from`, which is exact until a product overflows 64 bits
//! (for example `(v % from) × to` once `from × to` exceeds 2^64) and then silently wraps. Here the
//! product is formed in 128 bits, where `u64 × u64` cannot overflow, so every result is the exact
//! floor (or ceiling) of the rational `value × to_freq / from_freq`.
//!
//! Every function is **checked**: `None` when the source frequency is 0 or the exact result exceeds
//! `u64::MAX` (e.g. `ticks_to_ns` of more than about 1.8 × 10^10 ticks of a 1 Hz counter, or
//! `ns_to_ticks` of more than about 58 years on a 10 GHz counter). Saturation is one
//! `.unwrap_or(u64::MAX)` away for callers that want it.

/// Nanoseconds per second: the "frequency" of nanosecond time.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// Fit an exact 128-bit result into `u64`, or `None`.
const fn narrow(exact: u128) -> Option<u64> {
    if exact > u64::MAX as u128 {
        None
    } else {
        // Checked just above.
        #[allow(clippy::cast_possible_truncation)]
        Some(exact as u64)
    }
}

/// `floor(value × to_freq / from_freq)`: a count of `from_freq` units converted to `to_freq` units,
/// rounded down. `None` if `from_freq` is 0 or the result does not fit a `u64`.
pub const fn period_transform(value: u64, to_freq: u64, from_freq: u64) -> Option<u64> {
    if from_freq == 0 {
        return None;
    }
    narrow(value as u128 * to_freq as u128 / from_freq as u128)
}

/// `ceil(value × to_freq / from_freq)`, checked like [`period_transform`].
pub const fn period_transform_ceil(value: u64, to_freq: u64, from_freq: u64) -> Option<u64> {
    if from_freq == 0 {
        return None;
    }
    narrow((value as u128 * to_freq as u128).div_ceil(from_freq as u128))
}

/// Nanoseconds in `ticks` of a counter running at `freq_hz`, rounded down. `None` if `freq_hz` is
/// 0 or the result overflows.
pub const fn ticks_to_ns(ticks: u64, freq_hz: u64) -> Option<u64> {
    period_transform(ticks, NS_PER_SEC, freq_hz)
}

/// Whole ticks of a counter at `freq_hz` that fit in `ns` nanoseconds (rounded down, so a deadline
/// from it may fire up to one tick early; see [`ns_to_ticks_ceil`]). `None` on overflow.
pub const fn ns_to_ticks(ns: u64, freq_hz: u64) -> Option<u64> {
    period_transform(ns, freq_hz, NS_PER_SEC)
}

/// Ticks of a counter at `freq_hz` until at least `ns` nanoseconds have elapsed (rounded up). Use
/// it for deadlines: a compare value from it never fires early, because
/// `ticks_to_ns(ns_to_ticks_ceil(ns, f), f) >= ns`. `None` on overflow.
pub const fn ns_to_ticks_ceil(ns: u64, freq_hz: u64) -> Option<u64> {
    period_transform_ceil(ns, freq_hz, NS_PER_SEC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Exact reference by a different route: quotient and remainder, each product in 128 bits.
    fn reference(v: u64, to: u64, from: u64) -> Option<u64> {
        if from == 0 {
            return None;
        }
        let (q, r) = (u128::from(v / from), u128::from(v % from));
        u64::try_from(q * u128::from(to) + r * u128::from(to) / u128::from(from)).ok()
    }

    /// The defining inequality of the floor: `res × from ≤ v × to < (res + 1) × from`.
    fn is_floor(res: u64, v: u64, to: u64, from: u64) -> bool {
        let num = u128::from(v) * u128::from(to);
        let (r, f) = (u128::from(res), u128::from(from));
        r * f <= num && num < (r + 1) * f
    }

    /// sDDF's split formula in u64, where it does not overflow.
    fn sddf_formula(v: u64, to: u64, from: u64) -> Option<u64> {
        (v / from)
            .checked_mul(to)?
            .checked_add((v % from).checked_mul(to)? / from)
    }

    const FREQS: [u64; 16] = [
        1,
        2,
        3,
        1_000,
        32_768,
        1_000_000,
        19_200_000,
        24_000_000,
        62_500_000,
        999_999_999,
        NS_PER_SEC,
        1_000_000_001,
        2_000_000_000,
        3_000_000_000,
        7_777_777_777,
        10_000_000_000,
    ];

    fn edge_values(freq: u64) -> Vec<u64> {
        let mut v = vec![
            0,
            1,
            2,
            999,
            u64::from(u32::MAX),
            1 << 53,
            u64::MAX / 2,
            u64::MAX - 1,
            u64::MAX,
        ];
        for base in [
            freq,
            NS_PER_SEC,
            u64::MAX / freq,
            u64::MAX / NS_PER_SEC,
            u64::MAX / 10_000_000_000,
        ] {
            v.extend((base.saturating_sub(2)..=base.saturating_add(2)).collect::<Vec<_>>());
        }
        v
    }

    #[test]
    fn edges_against_exact_arithmetic() {
        for &f in &FREQS {
            for v in edge_values(f) {
                for (to, from) in [(NS_PER_SEC, f), (f, NS_PER_SEC), (f, 1), (1, f), (f, f)] {
                    let got = period_transform(v, to, from);
                    assert_eq!(got, reference(v, to, from), "v={v} to={to} from={from}");
                    if let Some(res) = got {
                        assert!(is_floor(res, v, to, from), "v={v} to={to} from={from}");
                    }
                }
                assert_eq!(ticks_to_ns(v, f), period_transform(v, NS_PER_SEC, f));
                assert_eq!(ns_to_ticks(v, f), period_transform(v, f, NS_PER_SEC));
            }
        }
    }

    #[test]
    fn overflow_boundaries() {
        // 1 Hz: each tick is 10^9 ns.
        let max_ticks = u64::MAX / NS_PER_SEC;
        assert_eq!(ticks_to_ns(max_ticks, 1), Some(max_ticks * NS_PER_SEC));
        assert_eq!(ticks_to_ns(max_ticks + 1, 1), None);
        assert_eq!(ticks_to_ns(u64::MAX, 1), None);
        // 1 GHz is the identity over the whole range.
        assert_eq!(ticks_to_ns(u64::MAX, NS_PER_SEC), Some(u64::MAX));
        assert_eq!(ns_to_ticks(u64::MAX, NS_PER_SEC), Some(u64::MAX));
        // 10 GHz: ns -> ticks multiplies by 10.
        assert_eq!(
            ns_to_ticks(u64::MAX / 10, 10_000_000_000),
            Some(u64::MAX / 10 * 10)
        );
        assert_eq!(ns_to_ticks(u64::MAX / 10 + 1, 10_000_000_000), None);
        assert_eq!(ticks_to_ns(u64::MAX, 10_000_000_000), Some(u64::MAX / 10));
        // A zero frequency is refused where it divides, harmless where it multiplies.
        assert_eq!(ticks_to_ns(5, 0), None);
        assert_eq!(ns_to_ticks(5, 0), Some(0));
        assert_eq!(period_transform_ceil(5, 1, 0), None);
        assert_eq!(period_transform_ceil(u64::MAX, u64::MAX, 1), None);
        assert_eq!(
            period_transform_ceil(u64::MAX, u64::MAX, u64::MAX),
            Some(u64::MAX)
        );
    }

    /// The largest `v` whose floor result fits: `v × to < 2^64 × from`, i.e.
    /// `v ≤ (2^64 × from − 1) / to`, capped at `u64::MAX`.
    fn largest_floor_input(to: u64, from: u64) -> u64 {
        let lim = ((u128::from(u64::MAX) + 1) * u128::from(from) - 1) / u128::from(to);
        u64::try_from(lim).unwrap_or(u64::MAX)
    }

    /// The largest `v` whose ceiling result fits: `v × to ≤ u64::MAX × from`.
    fn largest_ceil_input(to: u64, from: u64) -> u64 {
        let lim = u128::from(u64::MAX) * u128::from(from) / u128::from(to);
        u64::try_from(lim).unwrap_or(u64::MAX)
    }

    /// At the exact overflow edge `m`: `m` converts (to the exact value), `m + 1` does not.
    fn check_overflow_edge(to: u64, from: u64) {
        let m = largest_floor_input(to, from);
        let got = period_transform(m, to, from);
        assert!(got.is_some(), "to={to} from={from}: {m} must convert");
        assert_eq!(got, reference(m, to, from));
        if m < u64::MAX {
            assert_eq!(
                period_transform(m + 1, to, from),
                None,
                "to={to} from={from}"
            );
        }
        let m = largest_ceil_input(to, from);
        let got = period_transform_ceil(m, to, from);
        let exact = (u128::from(m) * u128::from(to)).div_ceil(u128::from(from));
        assert_eq!(got.map(u128::from), Some(exact), "to={to} from={from}");
        if m < u64::MAX {
            assert_eq!(
                period_transform_ceil(m + 1, to, from),
                None,
                "to={to} from={from}"
            );
        }
    }

    #[test]
    fn exact_overflow_edge_of_every_table_frequency() {
        for &f in &FREQS {
            // ticks -> ns, ns -> ticks, and the extreme ratios.
            for (to, from) in [(NS_PER_SEC, f), (f, NS_PER_SEC), (f, 1), (1, f)] {
                check_overflow_edge(to, from);
            }
        }
        // Where the edge is: 1 Hz overflows after u64::MAX / 10^9 ticks (584 years of seconds);
        // at 1 GHz and below ns -> ticks never overflows; at 10 GHz it does past u64::MAX / 10.
        assert_eq!(largest_floor_input(NS_PER_SEC, 1), u64::MAX / NS_PER_SEC);
        assert_eq!(largest_floor_input(NS_PER_SEC, NS_PER_SEC), u64::MAX);
        assert_eq!(largest_floor_input(1, NS_PER_SEC), u64::MAX);
        assert_eq!(
            largest_floor_input(10_000_000_000, NS_PER_SEC),
            u64::MAX / 10
        );
    }

    #[test]
    fn exact_where_the_sddf_formula_wraps() {
        // Results that fit a u64 although sDDF's intermediate `(v % from) × to` does not.
        for (v, to, from) in [
            (1u64 << 40, 1u64 << 40, (1u64 << 40) + 1),
            (1 << 63, 3_000_000_000, 10_000_000_000),
            (u64::MAX, 9_999_999_999, 10_000_000_000),
        ] {
            assert_eq!(
                sddf_formula(v, to, from),
                None,
                "sDDF overflows at v={v} to={to} from={from}"
            );
            let got = period_transform(v, to, from);
            assert!(got.is_some(), "the true result fits");
            assert_eq!(got, reference(v, to, from));
            assert!(got.is_some_and(|r| is_floor(r, v, to, from)));
        }
        assert_eq!(
            period_transform(1 << 40, 1 << 40, (1 << 40) + 1),
            Some((1 << 40) - 1)
        );
    }

    #[test]
    fn exhaustive_small_frequencies() {
        // Every value below 3 × from for every from in 1..=300, both directions through 1 GHz.
        for f in 1..=300u64 {
            for v in 0..3 * f {
                assert_eq!(ticks_to_ns(v, f), reference(v, NS_PER_SEC, f));
                assert_eq!(ns_to_ticks(v, f), reference(v, f, NS_PER_SEC));
            }
        }
    }

    #[test]
    fn ceil_deadlines_never_fire_early() {
        for &f in &FREQS {
            for ns in edge_values(f) {
                if let Some(t) = ns_to_ticks_ceil(ns, f) {
                    if let Some(back) = ticks_to_ns(t, f) {
                        assert!(back >= ns, "f={f} ns={ns} t={t} back={back}");
                    }
                    assert!(
                        t.checked_sub(ns_to_ticks(ns, f).unwrap_or(0))
                            .is_some_and(|d| d <= 1)
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn matches_exact_rational(v in any::<u64>(), to in 1..=10_000_000_000u64, from in 1..=10_000_000_000u64) {
            let got = period_transform(v, to, from);
            prop_assert_eq!(got, reference(v, to, from));
            if let Some(res) = got {
                prop_assert!(is_floor(res, v, to, from));
            }
            if let Some(c) = sddf_formula(v, to, from) {
                prop_assert_eq!(got, Some(c), "agrees with sDDF wherever sDDF does not overflow");
            }
            let exact = u128::from(v) * u128::from(to) % u128::from(from) == 0;
            match (got, period_transform_ceil(v, to, from)) {
                (Some(f), Some(c)) => prop_assert_eq!(c, if exact { f } else { f + 1 }),
                (Some(f), None) => prop_assert!(f == u64::MAX && !exact),
                (None, c) => prop_assert_eq!(c, None),
            }
        }

        #[test]
        fn exact_overflow_edge_of_any_frequency(f in 1..=10_000_000_000u64) {
            check_overflow_edge(NS_PER_SEC, f);
            check_overflow_edge(f, NS_PER_SEC);
        }

        #[test]
        fn round_trips_are_bounded(ns in any::<u64>(), f in 1..=10_000_000_000u64) {
            if let Some(t) = ns_to_ticks_ceil(ns, f)
                && let Some(back) = ticks_to_ns(t, f)
            {
                prop_assert!(back >= ns);
            }
            if let Some(t) = ns_to_ticks(ns, f)
                && let Some(back) = ticks_to_ns(t, f)
            {
                prop_assert!(back <= ns);
            }
        }
    }
}
