//! [`LameDuckLayer`]: requests in flight, and `Connection: close` once
//! shutdown begins.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{CONNECTION, HeaderValue};

use crate::handle::Handle;
use crate::latch::Latch;
use crate::tracker::{RequestGuard, Tracker};

/// A tower layer for HTTP services that counts every request in flight in
/// a [`Tracker`] and, from the moment the lifecycle's shutdown begins,
/// adds `Connection: close` to every HTTP/1.x response.
///
/// During the lame-duck period the process still serves, but readiness
/// fails so that load balancers send new connections elsewhere. A
/// keep-alive client would keep reusing its open connection until the
/// server stops accepting and closes it — and a request sent at that moment
/// fails (the race Go's `net/http` is known for, golang/go#23829). With this
/// layer, each such client gets its answer with `Connection: close`, and its
/// next request opens a new connection, which the load balancer routes away.
/// The server (hyper, axum) closes the connection after writing that
/// response.
///
/// The request counts from the call until the response head is ready; a
/// streamed body may outlive it. HTTP/2 and HTTP/3 responses are left
/// untouched: connection headers are not allowed there (the server's
/// graceful shutdown sends `GOAWAY`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lameduck::tower::LameDuckLayer;
///
/// let lifecycle = lameduck::Lifecycle::builder()
///     .lame_duck(Duration::from_secs(5))
///     .build()?;
/// let lame_duck = LameDuckLayer::new(&lifecycle.handle());
/// let tracker = lame_duck.tracker().clone(); // for the server's `stop`
/// let app: axum::Router = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "hello" }))
///     .layer(lame_duck);
/// # let _ = (app, tracker);
/// # Ok::<(), lameduck::Error>(())
/// ```
#[derive(Clone)]
pub struct LameDuckLayer {
    tracker: Tracker,
    shutdown: Latch,
}

impl LameDuckLayer {
    /// A layer with a new tracker, following `handle`'s lifecycle.
    #[must_use]
    pub fn new(handle: &Handle) -> Self {
        LameDuckLayer::with_tracker(handle, Tracker::new())
    }

    /// A layer counting into `tracker`, following `handle`'s lifecycle.
    #[must_use]
    pub fn with_tracker(handle: &Handle, tracker: Tracker) -> Self {
        LameDuckLayer {
            tracker,
            shutdown: handle.shutting_down(),
        }
    }

    /// The tracker the requests are counted in.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }
}

impl fmt::Debug for LameDuckLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LameDuckLayer")
            .field("tracker", &self.tracker)
            .field("shutting_down", &self.shutdown.is_set())
            .finish()
    }
}

impl<S> tower_layer::Layer<S> for LameDuckLayer {
    type Service = LameDuck<S>;

    fn layer(&self, inner: S) -> LameDuck<S> {
        LameDuck {
            inner,
            tracker: self.tracker.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

/// The service made by [`LameDuckLayer`].
#[derive(Clone)]
pub struct LameDuck<S> {
    inner: S,
    tracker: Tracker,
    shutdown: Latch,
}

impl<S: fmt::Debug> fmt::Debug for LameDuck<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LameDuck")
            .field("inner", &self.inner)
            .field("tracker", &self.tracker)
            .finish()
    }
}

impl<S, B, RB> tower_service::Service<http::Request<B>> for LameDuck<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>>,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let guard = self.tracker.request();
        let http1 = request.version() <= http::Version::HTTP_11;
        ResponseFuture {
            future: Box::pin(self.inner.call(request)),
            guard: Some(guard),
            close: http1.then(|| self.shutdown.clone()),
        }
    }
}

/// The response future of [`LameDuck`].
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<F> {
    future: Pin<Box<F>>,
    guard: Option<RequestGuard>,
    /// The shutdown signal, for HTTP/1.x requests only.
    close: Option<Latch>,
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut out = std::task::ready!(self.future.as_mut().poll(cx));
        if let (Ok(response), Some(shutdown)) = (&mut out, &self.close) {
            if shutdown.is_set() {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
        }
        self.guard = None;
        Poll::Ready(out)
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("done", &self.guard.is_none())
            .finish_non_exhaustive()
    }
}
