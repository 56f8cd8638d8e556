//! A small admin HTTP server for services without a web framework: the
//! probes (`/livez`, `/readyz`, `/startupz`, `/healthz` and their per-check
//! paths) and a JSON lifecycle snapshot (`/debug/lifecycle`), on loopback.
//!
//! # The model
//!
//! [`AdminServer`] is a [`Component`]: register it *first*, so it starts
//! before anything else (probes answer during the launch) and stops last
//! (they answer through the lame duck and the drain).
//!
//! * It binds `127.0.0.1` unless given another address: probe reasons and
//!   the lifecycle snapshot are for operators, not the internet.
//! * Sockets are handled on plain threads with blocking I/O, one per
//!   connection up to [`AdminOptions::max_connections`]; requests are
//!   parsed with `httparse`. Checks themselves run inside the component's
//!   `run` future, so they run on *your* runtime (a tokio-based check works
//!   under tokio) and no runtime crate is needed here. Threads rather than a
//!   reactor (`async-io`, `mio`): no runtime crate in the dependency tree, no
//!   second event loop, and an admin endpoint's load is a few probes a
//!   second.
//! * Every connection is bounded: the request must arrive within
//!   [`header_timeout`](AdminOptions::header_timeout) and fit in
//!   [`max_request_bytes`](AdminOptions::max_request_bytes); a malformed
//!   request gets `400`, an oversized one `431`, a slow one `408`, and a
//!   connection over the limit `503`. One request per connection
//!   (`Connection: close`), as the kubelet probes.
//! * It also drives the background health checks (those registered with an
//!   [interval](crate::CheckOptions::interval)).
//!
//! # Examples
//!
//! ```
//! use lameduck::Lifecycle;
//! use lameduck::admin::AdminServer;
//!
//! let admin = AdminServer::loopback(0)?; // port 0: any free port
//! println!("probes on http://{}/readyz", admin.local_addr());
//! let lifecycle = Lifecycle::builder()
//!     .component("admin", admin) // first: starts first, stops last
//!     .build()?;
//! # lifecycle.handle().request_stop(None);
//! # lifecycle.run_blocking()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod conn;

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use futures::future::{FutureExt, poll_fn};
use futures::stream::{FuturesUnordered, StreamExt};

use crate::component::Component;
use crate::context::Context;
use crate::error::BoxError;
use crate::signal::lock;

use conn::Job;

/// Limits and behaviour of the [`AdminServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminOptions {
    pub(crate) max_connections: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) max_request_bytes: usize,
    pub(crate) show_reasons: bool,
    pub(crate) failure_status: u16,
}

impl Default for AdminOptions {
    fn default() -> Self {
        AdminOptions {
            max_connections: 64,
            header_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(10),
            max_request_bytes: 8 * 1024,
            show_reasons: false,
            failure_status: crate::health::DEFAULT_FAILURE_STATUS,
        }
    }
}

impl AdminOptions {
    /// The defaults: 64 connections, 5 s to read a request, 5 s to write the
    /// response, 10 s for the checks to answer, 8 KiB per request, reasons
    /// withheld, 503 on failure.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connections handled at once; more get `503` and are closed at once.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Time allowed from the connection to the end of the request's headers.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// Time allowed to write the response.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Time allowed for the checks to answer once the request is read (the
    /// checks have their own, shorter, timeouts).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The largest request accepted (request line and headers); larger gets
    /// `431`.
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes.max(64);
        self
    }

    /// Shows failure reasons in probe responses (see
    /// [`Probes::show_reasons`](crate::Probes::show_reasons)). Default off.
    pub fn show_reasons(mut self, show: bool) -> Self {
        self.show_reasons = show;
        self
    }

    /// The status of a failing probe: 503 (default) or 500.
    pub fn failure_status(mut self, status: u16) -> Self {
        self.failure_status = status;
        self
    }
}

/// State shared by the component, its acceptor thread and its connections.
struct Inner {
    addr: SocketAddr,
    options: AdminOptions,
    stopping: AtomicBool,
    active: AtomicUsize,
}

/// The admin HTTP server: a [`Component`] serving the probes and
/// `/debug/lifecycle`. See the [module documentation](self).
pub struct AdminServer {
    inner: Arc<Inner>,
    listener: Mutex<Option<TcpListener>>,
    jobs: Mutex<Option<async_channel::Receiver<Job>>>,
}

impl AdminServer {
    /// Binds `127.0.0.1:port` (port 0: any free port).
    ///
    /// # Errors
    ///
    /// The error from binding the socket.
    pub fn loopback(port: u16) -> io::Result<Self> {
        Self::bind((Ipv4Addr::LOCALHOST, port))
    }

    /// Binds the given address, with default [`AdminOptions`]. Pass a public
    /// address only if the endpoint must be reached from outside the host.
    ///
    /// # Errors
    ///
    /// The error from resolving or binding the address.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Self::bind_with(addr, AdminOptions::default())
    }

    /// Binds the given address with options.
    ///
    /// # Errors
    ///
    /// The error from resolving or binding the address.
    pub fn bind_with(addr: impl ToSocketAddrs, options: AdminOptions) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        Ok(AdminServer {
            inner: Arc::new(Inner {
                addr,
                options,
                stopping: AtomicBool::new(false),
                active: AtomicUsize::new(0),
            }),
            listener: Mutex::new(Some(listener)),
            jobs: Mutex::new(None),
        })
    }

    /// The address bound (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Stops accepting: sets the flag, then wakes the blocking `accept`.
    fn shut(&self) {
        if self.inner.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut wake = self.inner.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_millis(200));
    }
}

impl Component for AdminServer {
    async fn start(&self, _cx: &Context) -> Result<(), BoxError> {
        let listener = lock(&self.listener)
            .take()
            .ok_or("the admin server was already started")?;
        let (tx, rx) = async_channel::unbounded();
        *lock(&self.jobs) = Some(rx);
        let inner = self.inner.clone();
        std::thread::Builder::new()
            .name("lameduck-admin".into())
            .spawn(move || conn::accept_loop(listener, inner, tx))?;
        log::info!(target: "lameduck", "admin server listening on http://{}", self.inner.addr);
        Ok(())
    }

    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        let Some(jobs) = lock(&self.jobs).take() else {
            return Ok(());
        };
        let opts = &self.inner.options;
        let probes = cx
            .handle()
            .probes()
            .show_reasons(opts.show_reasons)
            .failure_status(opts.failure_status)
            .debug_lifecycle(true);
        let registry = cx.handle().shared.health.clone();
        let mut monitor = Box::pin(registry.drive(cx.stop_signal()).fuse());
        let mut stop = cx.stop_signal();
        let mut jobs = Box::pin(jobs);
        let mut inflight = FuturesUnordered::new();
        let mut closed = false;
        // Once stopped, no new request is taken (a connection still reading
        // its request answers 503 by itself); what was queued is answered,
        // then `run` ends.
        poll_fn(|task| {
            let _ = monitor.poll_unpin(task);
            if stop.poll_unpin(task).is_ready() {
                jobs.close();
            }
            while !closed {
                match jobs.poll_next_unpin(task) {
                    Poll::Ready(Some(job)) => inflight.push(job.answer(&probes)),
                    Poll::Ready(None) => closed = true,
                    Poll::Pending => break,
                }
            }
            while let Poll::Ready(Some(())) = inflight.poll_next_unpin(task) {}
            if closed && inflight.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        Ok(())
    }

    async fn stop(&self, _cx: &Context) -> Result<(), BoxError> {
        self.shut();
        Ok(())
    }

    async fn close(&self, _cx: &Context) -> Result<(), BoxError> {
        self.shut();
        Ok(())
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.shut();
    }
}

impl fmt::Debug for AdminServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminServer")
            .field("addr", &self.inner.addr)
            .field("options", &self.inner.options)
            .field("active", &self.inner.active.load(Ordering::Relaxed))
            .finish()
    }
}
