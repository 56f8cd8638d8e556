//! A future bounded by a timeout, without a timer when none is needed.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use futures::future::FutureExt;

/// `fut`'s output, or `None` once `timeout` has passed.
///
/// A future ready at its first poll (most checks: a flag, a cached value)
/// never arms a timer: each timer wakes the timer thread twice (armed, then
/// dropped), which cost more than the rest of an uncached probe. A timeout
/// too large for the clock (`Duration::MAX`) means no timeout.
pub(crate) async fn within<F: Future>(timeout: Duration, fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut timer = None;
    poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        let timer = timer.get_or_insert_with(|| crate::timer::sleep(timeout));
        if timer.poll_unpin(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures_timer::Delay;
    use std::time::Instant;

    #[test]
    fn ready_pending_and_unbounded() {
        assert_eq!(block_on(within(Duration::ZERO, async { 7 })), Some(7));
        let t0 = Instant::now();
        let never = futures::future::pending::<()>();
        assert_eq!(block_on(within(Duration::from_millis(50), never)), None);
        assert!(t0.elapsed() >= Duration::from_millis(50));
        assert!(t0.elapsed() < Duration::from_secs(2));
        let late = async {
            Delay::new(Duration::from_millis(20)).await;
            3
        };
        assert_eq!(block_on(within(Duration::MAX, late)), Some(3));
    }
}
