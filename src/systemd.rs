//! systemd integration: the notify protocol and socket activation.
//!
//! * [`component`] returns a lifecycle component that sends `READY=1` once
//!   every component is ready, `STATUS=` with the phase, `WATCHDOG=1` every
//!   half `WATCHDOG_USEC` while the [liveness probe](crate::Probe::Liveness)
//!   passes, and `STOPPING=1` the moment shutdown begins.
//! * The watchdog follows the liveness probe only, as the kubelet does:
//!   readiness-only checks (a database outage) never stop the pings, since
//!   a restart would not help. Each check runs within its own
//!   [timeout](crate::CheckOptions::timeout) and the whole round within half
//!   a quarter of the watchdog period; a hanging check counts as failing, and never
//!   delays `STOPPING=1`.
//! * With the [`upgrade`](crate::upgrade) protocol: `RELOADING=1` and
//!   `MONOTONIC_USEC=` in one datagram when an upgrade starts, then
//!   `MAINPID=<new>` and `READY=1` from the old process when the new one is
//!   ready (the new generation does not send `READY=1` itself), or `READY=1`
//!   again when the upgrade failed. After `MAINPID=` the old process sends
//!   nothing more, not even `STOPPING=1` when its own shutdown begins: the
//!   service is then the new process's, and a `STOPPING=1` from the old one
//!   would read as the service stopping.
//! * Socket activation: descriptors passed by systemd (`LISTEN_FDS`,
//!   `LISTEN_PID`, `LISTEN_FDNAMES`) are adopted by the first generation's
//!   [`Upgrader`](crate::upgrade::Upgrader) under their names and handed on
//!   by the upgrade protocol; new generations are started without `LISTEN_*`.
//!
//! `NOTIFY_SOCKET` may be a path or an abstract address (`@name`, Linux).
//! Without `NOTIFY_SOCKET` every notification is a no-op.
//!
//! # Example
//!
//! ```no_run
//! use lameduck::Lifecycle;
//!
//! let lifecycle = Lifecycle::builder()
//!     // .component(…) …
//!     .component("systemd", lameduck::systemd::component())
//!     .build()?;
//! futures::executor::block_on(lifecycle.run())?;
//! # Ok::<(), lameduck::Error>(())
//! ```

use std::ffi::OsString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::{Either, select};
use sd_notify::NotifyState;

use crate::component::Component;
use crate::context::Context;
use crate::error::BoxError;
use crate::handle::Handle;
use crate::health::Probe;
use crate::latch::lock;
use crate::logging::event;

/// Set once this process has sent `MAINPID=` for its successor: from then
/// on systemd treats every datagram from it as the service's (with
/// `NotifyAccess=all`, a `STOPPING=1` would stop the unit and kill the new
/// main process), so it sends nothing more.
static HANDED_OVER: AtomicBool = AtomicBool::new(false);

/// Sends one notification datagram (`KEY=VALUE` lines) to `NOTIFY_SOCKET`.
/// Does nothing when `NOTIFY_SOCKET` is not set, or once this process has
/// handed the service over to a new generation (`MAINPID=`): the service is
/// then the new process's to describe.
///
/// # Errors
///
/// The socket cannot be reached, or an abstract address is used on a
/// platform without them.
pub fn notify(state: &str) -> io::Result<()> {
    if HANDED_OVER.load(Ordering::Acquire) {
        return Ok(());
    }
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(addr) => send(&addr, state.as_bytes()),
        None => Ok(()),
    }
}

fn send(addr: &OsString, msg: &[u8]) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let bytes = addr.as_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        send_abstract(&sock, name, msg)?
    } else {
        sock.send_to(msg, addr)?
    };
    if sent != msg.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "notification truncated",
        ));
    }
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_abstract(sock: &UnixDatagram, name: &[u8], msg: &[u8]) -> io::Result<usize> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    sock.send_to_addr(msg, &addr)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract socket addresses need Linux",
    ))
}

fn message(states: &[NotifyState<'_>]) -> String {
    let mut msg = String::new();
    for s in states {
        msg.push_str(&s.to_string());
        msg.push('\n');
    }
    msg
}

fn notify_states(states: &[NotifyState<'_>]) {
    if let Err(e) = notify(&message(states)) {
        event!(target: "lameduck::systemd", warn, { error = e }, "notify: {e}");
    }
}

/// Whether a [`Notifier`] runs in this process, and whether it has sent
/// `READY=1` (or had nothing to send: an upgraded generation was announced
/// by its parent). Under one lock, so `READY=1` goes out once and before
/// any `RELOADING=1`.
static READY: Mutex<Ready> = Mutex::new(Ready {
    notifier: false,
    sent: false,
});

struct Ready {
    notifier: bool,
    sent: bool,
}

/// Sends the first `READY=1`, once, if a [`Notifier`] runs here. An upgrade
/// can begin the moment the lifecycle is ready, before the notifier's `run`
/// is polled again: systemd must see the service ready before it reloads.
fn announce_ready() {
    let mut ready = lock(&READY);
    if ready.notifier && !ready.sent {
        ready.sent = true;
        if !is_upgraded() {
            notify_states(&[NotifyState::Ready]);
        }
    }
}

pub(crate) fn notify_reloading() {
    announce_ready();
    let mut states = vec![NotifyState::Reloading];
    match NotifyState::monotonic_usec_now() {
        Ok(now) => states.push(now),
        Err(e) => event!(target: "lameduck::systemd", warn, { error = e }, "monotonic clock: {e}"),
    }
    states.push(NotifyState::Status("upgrading"));
    notify_states(&states);
}

/// The last datagram this process sends: the service is the new process's.
pub(crate) fn notify_main_pid(pid: u32) {
    notify_states(&[
        NotifyState::MainPid(pid),
        NotifyState::Ready,
        NotifyState::Status("handed over to the new process"),
    ]);
    HANDED_OVER.store(true, Ordering::Release);
}

/// A reload systemd asked for (SIGHUP) that was refused: it still gets its
/// RELOADING=1 … READY=1 pair, so it never waits for a timeout.
pub(crate) fn notify_reload_refused() {
    notify_reloading();
    notify_states(&[
        NotifyState::Ready,
        NotifyState::Status("upgrade refused; running"),
    ]);
}

pub(crate) fn notify_reload_failed() {
    notify_states(&[
        NotifyState::Ready,
        NotifyState::Status("upgrade failed; running"),
    ]);
}

/// Socket-activated descriptors for this process, with their names;
/// empty when `LISTEN_PID` is not this process.
pub(crate) fn listen_fds() -> Vec<(RawFd, String)> {
    match sd_notify::listen_fds_with_names() {
        Ok(fds) => fds.collect(),
        Err(e) => {
            event!(target: "lameduck::systemd", warn, { error = e }, "socket activation: {e}");
            Vec::new()
        }
    }
}

/// Set when an upgrader of this process adopted a parent generation's
/// hand-over.
static UPGRADED: AtomicBool = AtomicBool::new(false);

/// Records that this process was started by an upgrade.
#[cfg(feature = "upgrade")]
pub(crate) fn mark_upgraded() {
    UPGRADED.store(true, Ordering::Release);
}

/// Whether this process was started by an upgrade (its parent announces it
/// with `MAINPID=`, and the watchdog belongs to it regardless of
/// `WATCHDOG_PID`), as far as an upgrader built so far could tell.
fn is_upgraded() -> bool {
    UPGRADED.load(Ordering::Acquire)
}

/// The watchdog period for this process, if systemd asked for one.
fn watchdog_period() -> Option<Duration> {
    if is_upgraded() {
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        return Some(Duration::from_micros(usec)).filter(|d| !d.is_zero());
    }
    sd_notify::watchdog_enabled().filter(|d| !d.is_zero())
}

/// The liveness probe's verdict, each check within its own timeout and the
/// whole round within `bound` (past it: failing); `None` once shutdown
/// begins, so `STOPPING=1` never waits for a check.
async fn liveness(handle: &Handle, bound: Duration, cx: &Context) -> Option<bool> {
    let check = std::pin::pin!(handle.probes().check(Probe::Liveness));
    let bounded = select(
        check,
        futures_timer::Delay::new(bound.max(Duration::from_millis(1))),
    );
    match select(bounded, cx.shutdown_signal()).await {
        Either::Left((Either::Left((report, _)), _)) => Some(report.is_passing()),
        Either::Left((Either::Right(_), _)) => {
            event!(target: "lameduck::systemd", warn, {},
                "liveness probe still running after {bound:?}: counted as failing"
            );
            Some(false)
        }
        Either::Right(_) => None,
    }
}

/// Pings every half `period` while the liveness probe passes, until shutdown
/// begins. A round's check is bounded by a quarter period, so two pings are
/// never more than three quarters of a period apart.
async fn watchdog(handle: &Handle, period: Duration, cx: &Context) {
    loop {
        let tick = futures_timer::Delay::new(period / 2);
        match liveness(handle, period / 4, cx).await {
            Some(true) => notify_states(&[NotifyState::Watchdog]),
            Some(false) => event!(target: "lameduck::systemd", warn, {},
                "liveness probe failing: no watchdog ping"
            ),
            None => return,
        }
        if let Either::Right(_) = select(tick, cx.shutdown_signal()).await {
            return;
        }
    }
}

/// The systemd notifier as a lifecycle component. See the
/// [module docs](self).
pub fn component() -> Notifier {
    Notifier { _private: () }
}

/// The component returned by [`component`].
#[derive(Debug)]
pub struct Notifier {
    _private: (),
}

impl Component for Notifier {
    async fn start(&self, _cx: &Context) -> Result<(), BoxError> {
        lock(&READY).notifier = true;
        notify_states(&[NotifyState::Status("launching")]);
        Ok(())
    }

    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        let handle = cx.handle().clone();
        if handle.ready().await {
            announce_ready();
            notify_states(&[NotifyState::Status("running")]);
            match watchdog_period() {
                Some(period) => watchdog(&handle, period, cx).await,
                None => cx.shutdown_signal().await,
            }
        }
        notify_states(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
        Ok(())
    }
}
