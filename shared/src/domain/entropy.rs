//! The randomness of ids and retry jitter, in one place: the thread's generator, or a seeded
//! stream a test installed on its thread ([`seed_thread`]), so one seed can fix a whole simulated
//! run (tests/sim) and a failing run replays.

use rand::distributions::{Distribution, Standard};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;

thread_local! {
    static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// A random value: from this thread's seeded stream if one was installed, else `rand::random`.
pub fn random<T>() -> T
where
    Standard: Distribution<T>,
{
    SEEDED.with(|s| match s.borrow_mut().as_mut() {
        Some(rng) => rng.gen(),
        None => rand::random(),
    })
}

/// Draw this thread's ids and jitter from a stream seeded with `seed` (test support: a
/// current-thread runtime runs every use case on the thread that called this).
pub fn seed_thread(seed: u64) {
    SEEDED.with(|s| *s.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_thread_draws_the_same_stream_again() {
        seed_thread(42);
        let first: (u128, f64) = (random(), random());
        seed_thread(42);
        assert_eq!(first, (random(), random()));
        seed_thread(43);
        assert_ne!(first.0, random::<u128>());
    }
}
