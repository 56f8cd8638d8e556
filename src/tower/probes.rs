//! [`ProbesService`]: the probe responder as a tower service.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;

use crate::health::Probes;

/// The [probes](Probes) as a [`tower_service::Service`] over
/// `http::Request<B>` (the body is not read), answering `/livez`,
/// `/readyz`, `/startupz`, `/healthz`, their per-check paths
/// (`/readyz/db`) and, if enabled, `/debug/lifecycle`, exactly as
/// [`Probes::respond`]; any other path gets `404`. Made by
/// [`Probes::service`].
///
/// # Examples
///
/// Mount it in axum with one call:
///
/// ```
/// let lifecycle = lameduck::Lifecycle::builder().build()?;
/// let app: axum::Router = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "hello" }))
///     .fallback_service(lifecycle.handle().probes().service());
/// # let _ = app;
/// # Ok::<(), lameduck::Error>(())
/// ```
///
/// Or call it directly:
///
/// ```
/// use tower_service::Service;
///
/// let lifecycle = lameduck::Lifecycle::builder().build().unwrap();
/// let mut probes = lifecycle.handle().probes().service();
/// let req = http::Request::get("/livez/ping").body(()).unwrap();
/// let resp = futures::executor::block_on(probes.call(req)).unwrap();
/// assert_eq!((resp.status().as_u16(), resp.body().as_str()), (200, "ok"));
/// ```
#[derive(Clone)]
pub struct ProbesService {
    probes: Probes,
}

impl Probes {
    /// These probes as a tower service; see [`ProbesService`].
    #[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
    #[must_use]
    pub fn service(&self) -> ProbesService {
        ProbesService {
            probes: self.clone(),
        }
    }
}

impl<B> tower_service::Service<http::Request<B>> for ProbesService {
    type Response = http::Response<String>;
    type Error = Infallible;
    type Future = ProbesFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> ProbesFuture {
        // Only the head matters; dropping the body here keeps the future
        // free of `B`.
        let mut head = http::Request::new(());
        *head.method_mut() = request.method().clone();
        *head.uri_mut() = request.uri().clone();
        if let Some(accept) = request.headers().get(http::header::ACCEPT) {
            head.headers_mut()
                .insert(http::header::ACCEPT, accept.clone());
        }
        let fut = self.probes.respond_http(&head);
        ProbesFuture(Box::pin(async move { Ok(fut.await) }))
    }
}

impl fmt::Debug for ProbesService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbesService")
            .field("probes", &self.probes)
            .finish()
    }
}

/// The response future of [`ProbesService`].
#[must_use = "futures do nothing unless polled"]
pub struct ProbesFuture(BoxFuture<'static, Result<http::Response<String>, Infallible>>);

impl Future for ProbesFuture {
    type Output = Result<http::Response<String>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl fmt::Debug for ProbesFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbesFuture").finish_non_exhaustive()
    }
}
