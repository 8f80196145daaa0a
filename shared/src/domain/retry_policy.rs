//! Retry policy: which failures another attempt can fix, and how long to wait (pure functions).
//!
//! Backoff is "full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"): the wait
//! before attempt n+1 is uniform in [0, min(cap, base * 2^(n-1))]. The random draw is a parameter
//! so tests are deterministic.

use std::time::Duration;

/// The ceiling of the wait after `attempts_made` attempts: `min(cap, base * 2^(attempts_made-1))`.
pub fn backoff_ceiling(attempts_made: u32, base: Duration, cap: Duration) -> Duration {
    let exp = attempts_made.saturating_sub(1).min(30);
    base.saturating_mul(1u32 << exp).min(cap)
}

/// Full-jitter wait: `unit` (in [0, 1)) scales the ceiling. A floor of one second keeps a burst
/// of failures from retrying in the same instant.
pub fn backoff(attempts_made: u32, base: Duration, cap: Duration, unit: f64) -> Duration {
    let ceiling = backoff_ceiling(attempts_made, base, cap);
    let unit = if unit.is_finite() { unit.clamp(0.0, 1.0) } else { 0.0 };
    // Not `mul_f64`: it panics when the product rounds past `Duration::MAX` (a ceiling near it,
    // from absurd but parseable SMSRELAY_RETRY_BASE/CAP), and rounding may land a little above
    // the ceiling.
    let scaled = Duration::try_from_secs_f64(ceiling.as_secs_f64() * unit).unwrap_or(ceiling);
    scaled.min(ceiling).max(Duration::from_secs(1).min(ceiling))
}

/// Whether a delivery failure reported in a status callback (`undelivered`/`failed` with this
/// `ErrorCode`) is worth a fresh attempt: the handset or carrier may accept it later.
pub fn delivery_error_is_retryable(code: u32) -> bool {
    matches!(
        code,
        30001 // queue overflow: sent too fast
            | 30003 // unreachable handset (off, no signal)
            | 30008 // unknown carrier error
            | 30022 // 10DLC rate limit exceeded
            | 30450 // SMS pumping protection, temporary block
    )
}

/// Whether a provider error code means the recipient opted out (add to the opt-out registry).
pub fn means_opted_out(code: u32) -> bool {
    code == 21610
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BASE: Duration = Duration::from_secs(1);
    const CAP: Duration = Duration::from_secs(900);

    #[test]
    fn the_ceiling_doubles_per_attempt_until_the_cap() {
        assert_eq!(backoff_ceiling(1, BASE, CAP), Duration::from_secs(1));
        assert_eq!(backoff_ceiling(2, BASE, CAP), Duration::from_secs(2));
        assert_eq!(backoff_ceiling(5, BASE, CAP), Duration::from_secs(16));
        assert_eq!(backoff_ceiling(11, BASE, CAP), CAP);
        assert_eq!(backoff_ceiling(400, BASE, CAP), CAP);
    }

    #[test]
    fn full_jitter_stays_within_the_ceiling() {
        for attempt in 1..12 {
            for unit in [0.0, 0.25, 0.5, 0.999] {
                let d = backoff(attempt, BASE, CAP, unit);
                assert!(d <= backoff_ceiling(attempt, BASE, CAP));
            }
        }
        assert_eq!(backoff(4, BASE, CAP, 0.5), Duration::from_secs(4));
    }

    #[test]
    fn junk_randomness_never_panics() {
        assert_eq!(backoff(3, BASE, CAP, f64::NAN), Duration::from_secs(1));
        assert_eq!(backoff(3, BASE, CAP, 7.0), Duration::from_secs(4));
    }

    #[test]
    fn a_ceiling_near_the_largest_duration_never_panics() {
        // Found by `full_jitter_never_panics_and_stays_within_its_bounds`: `mul_f64` panicked
        // ("cannot convert float seconds to Duration") once the product rounded past Duration::MAX,
        // and below that rounding could wait a second longer than the ceiling.
        assert_eq!(backoff(1, Duration::MAX, Duration::MAX, 1.0), Duration::MAX);
        assert_eq!(backoff(40, Duration::MAX, Duration::MAX, 0.0), Duration::from_secs(1));
        let cap = Duration::from_secs(9_813_131_729_223_107); // 9813131729223108 as an f64
        assert_eq!(backoff(2, Duration::MAX, cap, 1.0), cap);
    }

    #[test]
    fn handset_unreachable_is_retried_but_a_block_is_not() {
        assert!(delivery_error_is_retryable(30003));
        assert!(delivery_error_is_retryable(30008));
        assert!(!delivery_error_is_retryable(30007));
        assert!(!delivery_error_is_retryable(30004));
        assert!(!delivery_error_is_retryable(21610));
    }

    fn any_duration() -> impl Strategy<Value = Duration> {
        prop_oneof![
            (0u64..3_600_000).prop_map(Duration::from_millis),
            (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
            Just(Duration::MAX),
        ]
    }

    proptest! {
        #[test]
        fn the_ceiling_doubles_until_the_cap_and_never_shrinks(attempts in 0u32..200, base in any_duration(), cap in any_duration()) {
            let ceiling = backoff_ceiling(attempts, base, cap);
            prop_assert!(ceiling <= cap);
            prop_assert!(ceiling >= base.min(cap));
            let next = backoff_ceiling(attempts.saturating_add(1), base, cap);
            prop_assert!(next >= ceiling);
            if (1..=30).contains(&attempts) {
                prop_assert!(next == cap || next == ceiling.saturating_mul(2) || ceiling == cap);
            }
        }

        #[test]
        fn full_jitter_never_panics_and_stays_within_its_bounds(
            attempts in any::<u32>(),
            base in any_duration(),
            cap in any_duration(),
            unit in prop_oneof![0.0f64..1.0, any::<f64>(), Just(f64::NAN), Just(1.0), Just(f64::INFINITY)],
        ) {
            let ceiling = backoff_ceiling(attempts, base, cap);
            let wait = backoff(attempts, base, cap, unit);
            prop_assert!(wait <= ceiling);
            prop_assert!(wait >= Duration::from_secs(1).min(ceiling));
        }

        #[test]
        fn a_larger_draw_never_waits_less(attempts in 1u32..40, a in 0.0f64..1.0, b in 0.0f64..1.0) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(backoff(attempts, BASE, CAP, lo) <= backoff(attempts, BASE, CAP, hi));
        }
    }
}
