//! The restart budget: its rules, its edges, and a brute-force model.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A budget and a clock starting at `t0`.
struct Clock {
    budget: Budget,
    t0: Instant,
}

impl Clock {
    fn new(policy: Restart) -> Self {
        Clock {
            budget: Budget::new(policy),
            t0: Instant::now(),
        }
    }

    /// A failure `at` after the start.
    fn fail(&mut self, at: Duration) -> Verdict {
        self.budget.on_failure(self.t0 + at)
    }

    fn restarts(&mut self, at: Duration) -> bool {
        matches!(self.fail(at), Verdict::Restart { .. })
    }
}

#[test]
fn never_is_the_default_and_gives_up_at_the_first_failure() {
    assert_eq!(Restart::default(), Restart::never());
    assert!(Restart::never().is_never());
    assert!(!Restart::on_failure().is_never());
    let mut c = Clock::new(Restart::default());
    assert_eq!(c.fail(ms(0)), Verdict::Exhausted);
    assert_eq!(c.budget.restarts(), 0);
    // A limit of zero is the same policy.
    assert!(Restart::on_failure().limit(0, secs(1)).is_never());
    let mut c = Clock::new(Restart::on_failure().limit(0, Duration::MAX));
    assert_eq!(c.fail(ms(0)), Verdict::Exhausted);
}

#[test]
fn on_failure_defaults_are_five_within_ten_seconds_from_100_ms() {
    let p = Restart::on_failure();
    assert_eq!((p.max_restarts(), p.window()), (5, secs(10)));
    let mut c = Clock::new(p);
    let delays: Vec<Verdict> = (0..6).map(|_| c.fail(ms(0))).collect();
    let expected: Vec<Verdict> = [100, 200, 400, 800, 1600]
        .iter()
        .zip(1..)
        .map(|(&d, attempt)| Verdict::Restart {
            after: ms(d),
            attempt,
        })
        .chain([Verdict::Exhausted])
        .collect();
    assert_eq!(delays, expected);
    assert_eq!(c.budget.restarts(), 5);
}

#[test]
fn more_than_max_within_the_window_gives_up_and_old_ones_expire() {
    let mut c = Clock::new(Restart::on_failure().limit(2, secs(10)));
    assert!(c.restarts(secs(0)));
    assert!(c.restarts(secs(1)));
    // A third within 10 s of both: no.
    assert_eq!(c.fail(ms(9_999)), Verdict::Exhausted);

    let mut c = Clock::new(Restart::on_failure().limit(2, secs(10)));
    assert!(c.restarts(secs(0)));
    assert!(c.restarts(secs(1)));
    // Exactly a window after the first, it no longer counts.
    assert!(c.restarts(secs(10)));
    assert_eq!(c.fail(ms(10_999)), Verdict::Exhausted);
    assert!(c.restarts(secs(11)));
    assert_eq!(c.budget.restarts(), 4);
}

#[test]
fn the_backoff_grows_with_restarts_in_the_window_and_starts_over_after_a_quiet_one() {
    let p = Restart::on_failure()
        .limit(10, secs(10))
        .backoff(Backoff::exponential(ms(100), secs(1)));
    assert_eq!(p.backoff_policy(), Backoff::exponential(ms(100), secs(1)));
    let mut c = Clock::new(p);
    let after = |v| match v {
        Verdict::Restart { after, .. } => after,
        Verdict::Exhausted => panic!("exhausted"),
    };
    assert_eq!(after(c.fail(secs(0))), ms(100));
    assert_eq!(after(c.fail(secs(1))), ms(200));
    assert_eq!(after(c.fail(secs(2))), ms(400));
    // Ran quietly for a whole window: from the first delay again.
    assert_eq!(after(c.fail(secs(30))), ms(100));
    assert_eq!(
        c.fail(secs(31)),
        Verdict::Restart {
            after: ms(200),
            attempt: 2
        }
    );
}

#[test]
fn jitter_applies_to_restart_delays() {
    let p = Restart::on_failure()
        .limit(u32::MAX, secs(1))
        .backoff(Backoff::constant(secs(1)).jitter(0.5));
    let mut c = Clock::new(p);
    let delays: Vec<Duration> = (0..1000)
        .map(|i| match c.fail(secs(i)) {
            Verdict::Restart { after, .. } => after,
            Verdict::Exhausted => panic!("exhausted"),
        })
        .collect();
    assert!(delays.iter().all(|d| (ms(500)..=secs(1)).contains(d)));
    assert!(delays.iter().any(|d| *d != delays[0]), "no jitter");
}

#[test]
fn a_zero_window_and_a_bad_jitter_are_refused() {
    let e = Restart::on_failure()
        .limit(3, Duration::ZERO)
        .validate()
        .unwrap_err();
    assert!(e.contains("window must not be zero"), "{e}");
    let e = Restart::on_failure()
        .backoff(Backoff::constant(ms(1)).jitter(2.0))
        .validate()
        .unwrap_err();
    assert!(e.contains("restart backoff jitter"), "{e}");
    for ok in [
        Restart::never(),
        Restart::on_failure(),
        Restart::on_failure().limit(u32::MAX, Duration::MAX),
        Restart::on_failure().limit(0, Duration::from_nanos(1)),
    ] {
        assert_eq!(ok.validate(), Ok(()));
    }
}

#[test]
fn maximum_values_never_overflow() {
    // A lifetime budget: the window never ends.
    let mut c = Clock::new(Restart::on_failure().limit(1, Duration::MAX));
    assert!(c.restarts(secs(0)));
    let far = Duration::from_secs(100 * 365 * 24 * 3600);
    assert_eq!(c.fail(far), Verdict::Exhausted);

    // Practically unlimited: no overflow in counts, attempts or delays.
    let p = Restart::on_failure()
        .limit(u32::MAX, Duration::MAX)
        .backoff(Backoff::exponential(Duration::MAX, Duration::MAX));
    let mut c = Clock::new(p);
    for i in 0..10_000 {
        assert_eq!(
            c.fail(ms(i)),
            Verdict::Restart {
                after: Duration::MAX,
                attempt: i as u32 + 1
            }
        );
    }
    assert_eq!(c.budget.restarts(), 10_000);

    // A tiny window with a huge count: only the last instant is kept.
    let mut c = Clock::new(Restart::on_failure().limit(u32::MAX, Duration::from_nanos(1)));
    for i in 0..10_000 {
        assert!(c.restarts(ms(i)));
        assert_eq!(c.budget.recent.len(), 1);
    }
}

#[test]
fn instants_going_backwards_do_not_panic() {
    let mut c = Clock::new(Restart::on_failure().limit(2, secs(10)));
    assert!(c.restarts(secs(100)));
    assert!(c.restarts(secs(5)));
    assert_eq!(c.fail(secs(0)), Verdict::Exhausted);
}

/// SplitMix64, for fixed random sequences.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn matches_a_brute_force_count_over_random_failures() {
    for seed in 0..500 {
        let mut rng = seed;
        let max = (next(&mut rng) % 6) as u32;
        let window = ms(1 + next(&mut rng) % 50);
        let mut c = Clock::new(Restart::on_failure().limit(max, window));
        // Every restart granted, kept whole: the model recounts from it.
        let mut granted: Vec<Duration> = Vec::new();
        let mut now = Duration::ZERO;
        for _ in 0..200 {
            now += ms(next(&mut rng) % 20);
            let within = granted.iter().filter(|&&t| now - t < window).count();
            let verdict = c.fail(now);
            if within < max as usize {
                let attempt = within as u32 + 1;
                let after = Restart::on_failure().backoff_policy().delay(attempt);
                assert_eq!(verdict, Verdict::Restart { after, attempt }, "seed {seed}");
                granted.push(now);
            } else {
                assert_eq!(verdict, Verdict::Exhausted, "seed {seed}");
            }
            assert!(c.budget.recent.len() <= max as usize);
        }
        assert_eq!(c.budget.restarts(), granted.len() as u64);
    }
}
