//! [`Backoff`]: the wait between attempts, with optional jitter.

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long to wait between attempts: constant or doubling, optionally
/// shortened by a random part (jitter).
///
/// The delays of a backoff without jitter are exact. With
/// [`jitter`](Backoff::jitter), each delay is drawn anew, never longer than
/// the delay without jitter: jitter only shortens, so the backoff's
/// maximum and any sum of its delays still bound the waits.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lameduck::Backoff;
///
/// let b = Backoff::exponential(Duration::from_millis(10), Duration::from_millis(50));
/// let waits: Vec<_> = (1..=4).map(|n| b.delay(n)).collect();
/// assert_eq!(waits, [10, 20, 40, 50].map(Duration::from_millis));
///
/// // The same waits, each shortened by up to a quarter, at random.
/// let b = b.jitter(0.25);
/// let wait = b.delay(3);
/// assert!(wait >= Duration::from_millis(30) && wait <= Duration::from_millis(40));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    shape: Shape,
    jitter: Fraction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Constant(Duration),
    Exponential { initial: Duration, max: Duration },
}

/// A jitter fraction as the user gave it, compared bit for bit so that
/// equality stays an equivalence whatever was given (NaN included).
#[derive(Debug, Clone, Copy)]
struct Fraction(f64);

impl PartialEq for Fraction {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Fraction {}

/// One in fixed point: fractions are applied as multiples of 2^-32.
const ONE: u64 = 1 << 32;

impl Backoff {
    /// The same wait after every attempt. Zero retries at once; a wait too
    /// long for the clock, such as [`Duration::MAX`], waits until shutdown.
    #[must_use]
    pub fn constant(wait: Duration) -> Self {
        Backoff {
            shape: Shape::Constant(wait),
            jitter: Fraction(0.0),
        }
    }

    /// A doubling wait from `initial`, capped at `max` (doubling saturates;
    /// a `max` below `initial` waits `max`). Waits are as for
    /// [`Backoff::constant`].
    #[must_use]
    pub fn exponential(initial: Duration, max: Duration) -> Self {
        Backoff {
            shape: Shape::Exponential { initial, max },
            jitter: Fraction(0.0),
        }
    }

    /// Shortens each delay by a random part of it, up to `fraction`: a
    /// delay `d` becomes a delay drawn evenly between `d × (1 − fraction)`
    /// and `d`.
    ///
    /// * `0` (the default) means no jitter: every delay is exact.
    /// * `1`, the maximum, draws each delay between zero and `d` ("full
    ///   jitter"), the widest spread.
    /// * In between, `0.2` draws between 80 % and 100 % of `d`.
    ///
    /// Jitter never lengthens a delay, so an exponential backoff's `max`
    /// stays its longest wait. It spreads the retries of many instances
    /// that failed at the same moment (a shared database restarted), so
    /// they do not all come back at once.
    ///
    /// A fraction below 0, above 1 or NaN (`20.0` meant as 20 %, say) is a
    /// configuration error when the lifecycle is built or the component is
    /// added. [`delay`](Backoff::delay) itself never panics: it clamps such
    /// a fraction into 0..=1, NaN counting as 0.
    ///
    /// Draws come from the standard library's randomly seeded hasher: good
    /// enough to spread retries, not for anything secret.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lameduck::Backoff;
    ///
    /// let b = Backoff::constant(Duration::from_secs(1)).jitter(0.5);
    /// for attempt in 1..=100 {
    ///     let d = b.delay(attempt);
    ///     assert!(d >= Duration::from_millis(500) && d <= Duration::from_secs(1));
    /// }
    /// ```
    #[must_use]
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = Fraction(fraction);
        self
    }

    /// The wait after failed attempt number `attempt` (counting from 1),
    /// with jitter drawn anew on each call if the backoff has some.
    pub fn delay(&self, attempt: u32) -> Duration {
        match self.jitter_fixed() {
            0 => self.nominal(attempt),
            _ => self.delay_with(attempt, random_u32()),
        }
    }

    /// The delay for a given random draw: `draw` 0 gives the full delay,
    /// `u32::MAX` the shortest.
    fn delay_with(&self, attempt: u32, draw: u32) -> Duration {
        let full = self.nominal(attempt);
        // Below 2^32 × the nominal delay's nanoseconds (< 2^94): no overflow.
        let cut_fixed = (self.jitter_fixed() * u64::from(draw)) >> 32;
        let cut = (full.as_nanos() * u128::from(cut_fixed)) >> 32;
        full.saturating_sub(from_nanos(cut))
    }

    /// The delay without jitter.
    fn nominal(&self, attempt: u32) -> Duration {
        match self.shape {
            Shape::Constant(d) => d,
            Shape::Exponential { initial, max } => {
                let factor = 1u32
                    .checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX);
                initial.saturating_mul(factor).min(max)
            }
        }
    }

    /// The jitter fraction clamped into 0..=1, in multiples of 2^-32.
    fn jitter_fixed(&self) -> u64 {
        let f = self.jitter.0;
        if f >= 1.0 {
            ONE
        } else if f > 0.0 {
            // In 0..2^32: the cast only drops the fraction below 2^-32.
            (f * ONE as f64) as u64
        } else {
            // Zero, negative or NaN.
            0
        }
    }

    /// Refuses a jitter fraction outside 0..=1, for the builder to report
    /// against the component.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let f = self.jitter.0;
        if (0.0..=1.0).contains(&f) {
            Ok(())
        } else {
            Err(format!(
                "backoff jitter must be a fraction from 0 to 1, got {f}"
            ))
        }
    }
}

/// A duration of `nanos` nanoseconds, which must be at most the
/// nanoseconds of some `Duration`.
fn from_nanos(nanos: u128) -> Duration {
    const PER_SEC: u128 = 1_000_000_000;
    let secs = u64::try_from(nanos / PER_SEC).unwrap_or(u64::MAX);
    // Below 10^9: fits.
    Duration::new(secs, (nanos % PER_SEC) as u32)
}

/// 32 random bits: a randomly seeded SipHash of a counter. No dependency,
/// no lock, and every call differs from the previous ones.
fn random_u32() -> u32 {
    static SEED: OnceLock<RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // The high half; truncation is the point.
    (SEED.get_or_init(RandomState::new).hash_one(n) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The documented bounds, computed without floats: the cut is at most
    /// `fraction × d`, rounded down.
    fn assert_within(b: &Backoff, attempt: u32, d: Duration) {
        let full = b.nominal(attempt);
        assert!(d <= full, "{d:?} > {full:?}");
        let most_cut = (full.as_nanos() * u128::from(b.jitter_fixed())) >> 32;
        assert!(
            (full - d).as_nanos() <= most_cut,
            "{d:?} cut more than the fraction of {full:?}"
        );
    }

    #[test]
    fn no_jitter_is_exact_and_is_the_default() {
        let b = Backoff::exponential(ms(10), ms(1000));
        assert_eq!(b, b.jitter(0.0));
        for n in [0, 1, 2, 7, 8, 40, u32::MAX] {
            assert_eq!(b.delay(n), b.nominal(n));
        }
        assert_eq!(b.delay(1), ms(10));
        assert_eq!(b.delay(40), ms(1000));
    }

    #[test]
    fn a_draw_maps_onto_the_documented_range() {
        let b = Backoff::constant(ms(1000)).jitter(0.5);
        assert_eq!(b.delay_with(1, 0), ms(1000));
        let shortest = b.delay_with(1, u32::MAX);
        assert!(shortest >= ms(500) && shortest < ms(501), "{shortest:?}");
        let half = b.delay_with(1, 1 << 31);
        assert_eq!(half, ms(750));
    }

    #[test]
    fn many_draws_stay_within_bounds_and_spread_over_them() {
        for fraction in [0.1, 0.5, 1.0] {
            let b = Backoff::exponential(ms(100), ms(1000)).jitter(fraction);
            for attempt in [1, 3, 5, 30] {
                let full = b.nominal(attempt).as_secs_f64();
                let draws: Vec<f64> = (0..10_000)
                    .map(|_| {
                        let d = b.delay(attempt);
                        assert_within(&b, attempt, d);
                        d.as_secs_f64() / full
                    })
                    .collect();
                let lowest = 1.0 - fraction;
                let min = draws.iter().copied().fold(f64::MAX, f64::min);
                let max = draws.iter().copied().fold(f64::MIN, f64::max);
                let mean = draws.iter().sum::<f64>() / draws.len() as f64;
                // Even draws: the extremes come within 1 % of the range's
                // ends, and the mean sits in its middle (7 standard errors).
                assert!(min < lowest + fraction * 0.01, "{fraction}: min {min}");
                assert!(max > 1.0 - fraction * 0.01, "{fraction}: max {max}");
                let middle = 1.0 - fraction / 2.0;
                assert!(
                    (mean - middle).abs() < fraction * 0.02,
                    "{fraction}: mean {mean}"
                );
            }
        }
    }

    #[test]
    fn jitter_never_passes_the_maximum() {
        let b = Backoff::exponential(ms(10), ms(50)).jitter(1.0);
        for attempt in 1..=1000 {
            assert!(b.delay(attempt) <= ms(50));
        }
    }

    #[test]
    fn out_of_range_fractions_are_refused_and_clamped() {
        for bad in [
            -0.1,
            1.000_001,
            20.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let b = Backoff::constant(ms(100)).jitter(bad);
            let e = b.validate().unwrap_err();
            assert!(e.contains("from 0 to 1"), "{e}");
            // Clamped: above 1 acts as 1, below 0 and NaN as 0.
            let clamped = if bad > 1.0 { 1.0 } else { 0.0 };
            assert_eq!(b.jitter_fixed(), b.jitter(clamped).jitter_fixed());
            for _ in 0..1000 {
                assert!(b.delay(1) <= ms(100));
            }
        }
        for good in [0.0, -0.0, 0.3, 1.0] {
            assert_eq!(Backoff::constant(ms(1)).jitter(good).validate(), Ok(()));
        }
        // NaN equals itself, so the options holding it stay comparable.
        let nan = Backoff::constant(ms(1)).jitter(f64::NAN);
        assert_eq!(nan, nan);
    }

    #[test]
    fn extreme_delays_do_not_overflow() {
        for b in [
            Backoff::constant(Duration::MAX),
            Backoff::exponential(Duration::MAX, Duration::MAX),
            Backoff::exponential(Duration::from_nanos(1), Duration::MAX),
        ] {
            for fraction in [0.0, 0.5, 1.0] {
                let b = b.jitter(fraction);
                for attempt in [0, 1, 64, u32::MAX] {
                    for draw in [0, 1, 1 << 31, u32::MAX] {
                        assert_within(&b, attempt, b.delay_with(attempt, draw));
                    }
                    assert_within(&b, attempt, b.delay(attempt));
                }
            }
        }
        assert_eq!(
            Backoff::constant(Duration::ZERO).jitter(1.0).delay(1),
            Duration::ZERO
        );
        let b = Backoff::constant(Duration::MAX).jitter(1.0);
        assert_eq!(b.delay_with(1, 0), Duration::MAX);
    }

    #[test]
    fn draws_differ() {
        let first = random_u32();
        assert!((0..100).any(|_| random_u32() != first));
    }
}
