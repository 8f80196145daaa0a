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
    ceiling.mul_f64(unit).max(Duration::from_secs(1).min(ceiling))
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
    fn handset_unreachable_is_retried_but_a_block_is_not() {
        assert!(delivery_error_is_retryable(30003));
        assert!(delivery_error_is_retryable(30008));
        assert!(!delivery_error_is_retryable(30007));
        assert!(!delivery_error_is_retryable(30004));
        assert!(!delivery_error_is_retryable(21610));
    }
}
