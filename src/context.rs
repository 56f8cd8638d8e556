//! What every user method is given.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::BoxError;
use crate::handle::Handle;
use crate::latch::Latch;

/// The context handed to every [`Component`](crate::Component),
/// [`Drainer`](crate::Drainer) and stop-hook call.
///
/// It names the part being called, carries its stop signal and the
/// lifecycle's shutdown signal, tells the deadline of the current call, and
/// can request a stop of the whole lifecycle.
///
/// # Examples
///
/// ```
/// use lameduck::{Component, Context, BoxError};
///
/// struct Ticker;
/// impl Component for Ticker {
///     async fn run(&self, cx: &Context) -> Result<(), BoxError> {
///         log::info!("{} running", cx.name());
///         cx.stop_signal().await;
///         log::info!("{} asked to stop", cx.name());
///         Ok(())
///     }
/// }
/// # let lifecycle = lameduck::Lifecycle::builder().component("ticker", Ticker).build().unwrap();
/// # lifecycle.handle().request_shutdown(None);
/// # futures::executor::block_on(lifecycle.run()).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Context {
    pub(crate) name: Arc<str>,
    pub(crate) stop: Latch,
    pub(crate) handle: Handle,
    pub(crate) deadline: Option<Instant>,
}

impl Context {
    /// The name the part was registered under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Resolves when this part must stop.
    ///
    /// For a component, that is when its turn in the drain phase comes (just
    /// before [`Component::stop`](crate::Component::stop) is called). For a
    /// drainer or stop hook, it is when the shutdown is forced.
    pub fn stop_signal(&self) -> Latch {
        self.stop.clone()
    }

    /// Resolves as soon as the lifecycle's shutdown is requested (the start
    /// of lame-duck mode), long before this part's own turn to stop.
    pub fn shutdown_signal(&self) -> Latch {
        self.handle.shared.shutdown.clone()
    }

    /// Whether the lifecycle's shutdown has been requested.
    pub fn is_shutting_down(&self) -> bool {
        self.handle.is_shutting_down()
    }

    /// The instant the current call will be cancelled, if it has a budget.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The time left before the current call is cancelled, if it has a
    /// budget. Zero once the deadline has passed.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Requests a stop of the whole lifecycle, optionally with an error.
    /// See [`Handle::request_shutdown`].
    pub fn request_shutdown(&self, error: Option<BoxError>) -> bool {
        self.handle.request_shutdown(error)
    }

    /// A handle on the lifecycle this part belongs to.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}
