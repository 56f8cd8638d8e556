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
//! * One thread runs an event loop over non-blocking sockets (`mio`),
//!   whatever the number of clients; requests are parsed with `httparse`.
//!   Checks themselves run inside the component's `run` future, so they run
//!   on *your* runtime (a tokio-based check works under tokio) and no
//!   runtime crate is needed here. A runtime that is stuck fails the
//!   probes (`503` once the response timeout passes). A probe's answer is
//!   written from there too, without blocking, as soon as the checks are
//!   done. With
//!   [`answer_from_background`](AdminOptions::answer_from_background), a
//!   probe whose checks all refresh in the background is answered by the
//!   event loop from their results, as long as your runtime keeps polling
//!   the component (a heartbeat under a second old).
//! * Probes are answered whatever other clients do. Every connection has a
//!   deadline for its headers, its body and its answer; at most
//!   [`max_connections`](AdminOptions::max_connections) are open, and a
//!   newcomer over the limit takes the place of the oldest connection that
//!   has not sent a complete request, so idle or half-sent connections
//!   (slowloris) cannot lock a prober out. A malformed request gets `400`,
//!   an oversized one `431`, a slow one `408`, and a newcomer that finds
//!   every connection busy `503`. Every answer is read-then-closed: our
//!   side is shut, what the client still sends is read for a moment, so the
//!   close never turns into a reset that destroys the answer.
//! * One request per connection (`Connection: close`), as the kubelet
//!   probes, unless [`keep_alive`](AdminOptions::keep_alive) is set.
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
//! # lifecycle.handle().request_shutdown(None);
//! # lifecycle.run_blocking()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod conn;
mod event_loop;
mod options;
mod shared;
mod wire;

pub use options::AdminOptions;

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use futures::channel::mpsc::{UnboundedReceiver, unbounded};
use futures::future::{FutureExt, poll_fn};
use futures::stream::{FuturesUnordered, StreamExt};

use crate::component::Component;
use crate::context::Context;
use crate::error::BoxError;
use crate::health::Probes;
use crate::latch::lock;
use crate::logging::event;

use event_loop::{EventLoop, WAKER};
use shared::{BEAT, Job, Shared};

/// The admin HTTP server: a [`Component`] serving the probes and
/// `/debug/lifecycle`. See the [module documentation](self).
pub struct AdminServer {
    addr: SocketAddr,
    options: AdminOptions,
    listener: Mutex<Option<mio::net::TcpListener>>,
    shared: Mutex<Option<Arc<Shared>>>,
    jobs: Mutex<Option<UnboundedReceiver<Job>>>,
}

impl AdminServer {
    /// Binds `127.0.0.1:port` (port 0: any free port).
    ///
    /// # Errors
    ///
    /// The error from binding the socket.
    pub fn loopback(port: u16) -> io::Result<Self> {
        Self::bind((std::net::Ipv4Addr::LOCALHOST, port))
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
    /// [`io::ErrorKind::InvalidInput`] for a zero timeout (see
    /// [`AdminOptions`]), or the error from resolving or binding the
    /// address.
    pub fn bind_with(addr: impl ToSocketAddrs, options: AdminOptions) -> io::Result<Self> {
        options.validate()?;
        let listener = bind_listener(addr)?;
        let addr = listener.local_addr()?;
        Ok(AdminServer {
            addr,
            options,
            listener: Mutex::new(Some(listener)),
            shared: Mutex::new(None),
            jobs: Mutex::new(None),
        })
    }

    /// The address bound (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting (the port closes at once) and lets the event loop
    /// finish the connections it has.
    fn shut(&self) {
        if let Some(shared) = lock(&self.shared).as_ref() {
            shared.stop();
        }
        // Never started: closing the socket is all there is to do.
        lock(&self.listener).take();
    }
}

/// The accept queue asked of the kernel (capped by `net.core.somaxconn`).
const BACKLOG: i32 = 1024;

/// Binds the first address that can be bound, with a [`BACKLOG`] of 1024
/// where the standard library asks for 128: a burst of new connections (an
/// attacker's, a load test's) overflows the kernel's accept queue later, so
/// a prober's connection is less often dropped to wait a second for a SYN
/// retransmission.
fn bind_listener(addr: impl ToSocketAddrs) -> io::Result<mio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut last = None;
    for addr in addr.to_socket_addrs()? {
        let bound = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .and_then(|socket| {
                // As the standard library: quick rebinding after a restart
                // on Unix; on Windows the option would allow hijacking.
                #[cfg(not(windows))]
                socket.set_reuse_address(true)?;
                socket.bind(&addr.into())?;
                socket.listen(BACKLOG)?;
                socket.set_nonblocking(true)?;
                Ok(socket)
            });
        match bound {
            Ok(socket) => {
                return Ok(mio::net::TcpListener::from_std(
                    std::net::TcpListener::from(socket),
                ));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        )
    }))
}

impl Component for AdminServer {
    async fn start(&self, cx: &Context) -> Result<(), BoxError> {
        let listener = lock(&self.listener)
            .take()
            .ok_or("the admin server was already started")?;
        let poll = mio::Poll::new()?;
        let shared = Arc::new(Shared::new(mio::Waker::new(poll.registry(), WAKER)?));
        let (tx, rx) = unbounded();
        let background = self
            .options
            .from_background
            .then(|| probes(cx, &self.options));
        let event_loop = EventLoop::new(
            poll,
            listener,
            shared.clone(),
            tx,
            background,
            self.options.clone(),
        )?;
        std::thread::Builder::new()
            .name("lameduck-admin".into())
            .spawn(move || event_loop.run())?;
        *lock(&self.jobs) = Some(rx);
        *lock(&self.shared) = Some(shared);
        event!(target: "lameduck", info, {}, "admin server listening on http://{}", self.addr);
        Ok(())
    }

    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        let Some(mut jobs) = lock(&self.jobs).take() else {
            return Ok(());
        };
        let probes = probes(cx, &self.options);
        let registry = cx.handle().shared.health.clone();
        let mut monitor = Box::pin(registry.drive(cx.stop_signal()).fuse());
        let mut stop = cx.stop_signal();
        let mut inflight = FuturesUnordered::new();
        let mut closed = false;
        // Once stopped, the event loop takes no new request (one still being
        // read gets 503), finishes its answers within a short grace and
        // ends, which closes the queue; then `run` ends.
        let mut stopped = false;
        let shared = lock(&self.shared).clone();
        // The heartbeat that lets the loop answer for this runtime (see
        // `AdminOptions::answer_from_background`).
        let mut beat = self
            .options
            .from_background
            .then(|| futures_timer::Delay::new(BEAT));
        poll_fn(|task| {
            if let (Some(timer), Some(shared)) = (&mut beat, &shared) {
                shared.beat();
                if timer.poll_unpin(task).is_ready() {
                    timer.reset(BEAT);
                    let _ = timer.poll_unpin(task);
                }
            }
            let _ = monitor.poll_unpin(task);
            if !stopped && stop.poll_unpin(task).is_ready() {
                stopped = true;
                self.shut();
            }
            while !closed {
                match jobs.poll_next_unpin(task) {
                    Poll::Ready(Some(job)) => inflight.push(job.answer(&probes)),
                    Poll::Ready(None) => closed = true,
                    Poll::Pending => break,
                }
            }
            while let Poll::Ready(Some(())) = inflight.poll_next_unpin(task) {}
            // The loop has ended: every connection is closed, so an answer
            // still being computed has no one to go to.
            if closed {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        // The loop also ends if polling the sockets fails: then the probes
        // are gone, which must not pass for a clean stop.
        let asked = lock(&self.shared)
            .as_ref()
            .is_some_and(|s| s.stopping.load(Ordering::Acquire));
        if asked {
            Ok(())
        } else {
            Err("the admin server's event loop failed (see the log)".into())
        }
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

/// The probes as the server answers them.
fn probes(cx: &Context, options: &AdminOptions) -> Probes {
    cx.handle()
        .probes()
        .show_reasons(options.show_reasons)
        .failure_status(options.failure_status)
        .debug_lifecycle(true)
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.shut();
    }
}

impl fmt::Debug for AdminServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let open = lock(&self.shared)
            .as_ref()
            .map_or(0, |s| s.open.load(Ordering::Relaxed));
        f.debug_struct("AdminServer")
            .field("addr", &self.addr)
            .field("options", &self.options)
            .field("open_connections", &open)
            .finish()
    }
}
