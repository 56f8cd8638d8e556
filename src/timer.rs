//! Timers that accept any `Duration`: one too long for the clock never
//! fires, where adding it to an `Instant` would panic.

use std::future::{Pending, pending};
use std::time::{Duration, Instant};

use futures::future::Either;
use futures_timer::Delay;

/// Waits longer than any budget a service would set: such a wait is
/// treated as "never", well before `Instant` arithmetic could overflow.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A future that resolves after `d`, or never if `d` is too long for the
/// clock.
pub(crate) fn sleep(d: Duration) -> Either<Delay, Pending<()>> {
    if d >= NEVER {
        Either::Right(pending())
    } else {
        Either::Left(Delay::new(d))
    }
}

/// `from + d`, or `None` if `d` is too long for the clock (never).
pub(crate) fn after(from: Instant, d: Duration) -> Option<Instant> {
    if d >= NEVER {
        None
    } else {
        from.checked_add(d)
    }
}
