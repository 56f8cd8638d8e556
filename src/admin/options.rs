//! [`AdminOptions`]: the admin server's limits, and what each means at its
//! extremes.

use std::io;
use std::time::{Duration, Instant};

use crate::health::DEFAULT_FAILURE_STATUS;

/// The smallest and largest request accepted, whatever is asked for.
const REQUEST_BYTES: (usize, usize) = (64, 1024 * 1024);

/// Limits and behaviour of the [`AdminServer`](super::AdminServer).
///
/// Every timeout is a deadline per connection, on the server's clock: a
/// client cannot extend it by sending a byte at a time. `Duration::MAX` (or
/// any timeout too large to add to the clock) means *no deadline*; zero is
/// refused by [`AdminServer::bind_with`](super::AdminServer::bind_with),
/// except for [`keep_alive`](AdminOptions::keep_alive), where zero turns
/// keep-alive off.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lameduck::admin::{AdminOptions, AdminServer};
///
/// let options = AdminOptions::new()
///     .max_connections(1024)
///     .header_timeout(Duration::from_secs(2))
///     .keep_alive(Duration::from_secs(30));
/// let admin = AdminServer::bind_with("127.0.0.1:0", options)?;
/// # let _ = admin;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminOptions {
    pub(crate) max_connections: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) body_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) keep_alive: Duration,
    pub(crate) max_request_bytes: usize,
    pub(crate) show_reasons: bool,
    pub(crate) failure_status: u16,
    pub(crate) from_background: bool,
}

impl Default for AdminOptions {
    fn default() -> Self {
        AdminOptions {
            max_connections: 256,
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(10),
            keep_alive: Duration::ZERO,
            max_request_bytes: 8 * 1024,
            show_reasons: false,
            failure_status: DEFAULT_FAILURE_STATUS,
            from_background: false,
        }
    }
}

impl AdminOptions {
    /// The defaults: 256 connections, 5 s for a request's headers, 5 s for
    /// its body, 5 s to write the response, 10 s for the checks to answer,
    /// no keep-alive, 8 KiB per request, reasons withheld, 500 on failure,
    /// every probe answered on your runtime.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Connections open at once (default 256). A newcomer over the limit
    /// takes the place of the oldest connection that has not sent a
    /// complete request (then of the oldest idle keep-alive connection), so
    /// idle or slow clients never lock a prober out; only when every
    /// connection is busy with a request does the newcomer get `503` (read
    /// before closing, never a reset).
    ///
    /// The server holds at most twice this many sockets (answered
    /// connections linger briefly until the client has read its answer).
    /// Zero is taken as one; `usize::MAX` leaves the limit to the process's
    /// file descriptors.
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Time allowed from the connection to the end of the request's
    /// headers (on a keep-alive connection, from the first byte of the next
    /// request); then `408`. Default 5 s.
    #[must_use]
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// Time allowed, after the headers, for a body announced by
    /// `Content-Length`; then `408`. Default 5 s. Probes have no body; this
    /// bounds clients that announce one and never send it.
    #[must_use]
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// Time allowed to write the response; then the connection is closed.
    /// Default 5 s.
    #[must_use]
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Time allowed for the checks to answer once the request is read (the
    /// checks have their own, shorter, timeouts); then `503`. Default 10 s.
    #[must_use]
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Keeps connections open between requests (HTTP/1.1 unless the client
    /// sends `Connection: close`; HTTP/1.0 with `Connection: keep-alive`),
    /// closing one that stays idle this long. Default zero: off, every
    /// answer carries `Connection: close`, as the kubelet probes.
    #[must_use]
    pub fn keep_alive(mut self, idle: Duration) -> Self {
        self.keep_alive = idle;
        self
    }

    /// The largest request accepted (request line, headers and body);
    /// larger gets `431` (headers) or `413` (body). Default 8 KiB; values
    /// are kept between 64 bytes and 1 MiB.
    #[must_use]
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes.clamp(REQUEST_BYTES.0, REQUEST_BYTES.1);
        self
    }

    /// Shows failure reasons in probe responses (see
    /// [`Probes::show_reasons`](crate::Probes::show_reasons)). Default off.
    #[must_use]
    pub fn show_reasons(mut self, show: bool) -> Self {
        self.show_reasons = show;
        self
    }

    /// The status of a failing probe: 500 (default, the apiserver's) or any
    /// other status from 400 to 599; see
    /// [`Probes::failure_status`](crate::Probes::failure_status).
    #[must_use]
    pub fn failure_status(mut self, status: u16) -> Self {
        self.failure_status = status;
        self
    }

    /// Answers a probe on the event loop's thread, from the checks' latest
    /// results, when it would run no check: every check it selects is
    /// built in (`ping`, `launch`, `shutdown`: state the lifecycle keeps)
    /// or refreshed in the background (registered with an
    /// [interval](crate::CheckOptions::interval)). Default off: every
    /// request goes to the component's `run` future on your runtime, one
    /// thread wake-up per request.
    ///
    /// The answer is the same either way: a probe of background checks
    /// reads their latest results wherever it is computed. What changes is
    /// how a stuck runtime shows. Off, a probe fails with `503` once
    /// [`response_timeout`](AdminOptions::response_timeout) passes. On, the
    /// `run` future (on your runtime) beats every 250 ms, and the loop
    /// answers from the results only while the last beat is under a second
    /// old; after that, requests go to the runtime as when off, and fail
    /// the same way. A refresher that stops refreshing fails the probe on
    /// its own: each result counts as failed once older than twice its
    /// interval plus its timeout.
    ///
    /// A probe with a check that runs on demand (no interval) always goes
    /// to the runtime: user checks never run on the loop's thread.
    #[must_use]
    pub fn answer_from_background(mut self, enabled: bool) -> Self {
        self.from_background = enabled;
        self
    }

    /// Refuses the values that would make every request fail.
    pub(crate) fn validate(&self) -> io::Result<()> {
        for (name, value) in [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
            ("write_timeout", self.write_timeout),
            ("response_timeout", self.response_timeout),
        ] {
            if value.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "admin server: {name} is zero, so every connection would time out; \
                         use Duration::MAX for no deadline"
                    ),
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn keep_alive_enabled(&self) -> bool {
        !self.keep_alive.is_zero()
    }
}

/// `now + timeout`, or no deadline when that is past the clock's range.
pub(crate) fn deadline(now: Instant, timeout: Duration) -> Option<Instant> {
    now.checked_add(timeout)
}
