//! The parent's side of an upgrade: start the new generation, wait for it
//! to be ready within the grace period, and clean up when it is not.

use std::fmt;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::process::{Child, ExitStatus};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::FusedFuture;

use super::{Inner, UpgradeError, UpgradeErrorKind, Upgrader, pidfile};
use crate::latch::{Latch, lock};
use crate::logging::event;

mod spawn;

use spawn::spawn;
pub(crate) use spawn::watch_parent;

/// A successful upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Upgraded {
    /// The new process's PID.
    pub pid: u32,
    /// From the start of the upgrade to the new process saying it is ready.
    pub elapsed: Duration,
}

/// The future returned by [`Upgrader::upgrade`].
///
/// # Cancel safety
///
/// Dropping it before it resolves kills and reaps the new process (if one
/// was started) and restores the PID file, as a failed upgrade would.
#[must_use = "futures do nothing unless polled"]
pub struct Upgrade {
    inner: Pin<Box<dyn Future<Output = Result<Upgraded, UpgradeError>> + Send>>,
}

impl fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgrade").finish_non_exhaustive()
    }
}

impl Future for Upgrade {
    type Output = Result<Upgraded, UpgradeError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

enum Outcome {
    Ready,
    Exited(std::io::Result<ExitStatus>),
}

/// Write ends of parent pipes of successful upgrades: kept open for the
/// rest of this process's life, so the child sees end-of-file exactly when
/// this process exits.
fn keep_until_exit(fd: OwnedFd) {
    static KEEP: OnceLock<Mutex<Vec<OwnedFd>>> = OnceLock::new();
    lock(KEEP.get_or_init(Default::default)).push(fd);
}

/// Resets the in-flight flag and, unless the upgrade succeeded, kills the
/// child and restores the PID file.
struct Attempt {
    inner: Arc<Inner>,
    child: Option<Arc<Mutex<Child>>>,
    /// Whether anything changed that a failure must undo.
    begun: bool,
    succeeded: bool,
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.succeeded {
            return;
        }
        if self.begun {
            self.undo();
        }
        self.inner.in_flight.store(false, Ordering::Release);
    }
}

impl Attempt {
    fn undo(&self) {
        if let Some(child) = &self.child {
            // Reaped by the waiting thread, which sees end-of-file.
            let _ = lock(child).kill();
        }
        if let Some(path) = &self.inner.pid_file {
            if let Err(e) = pidfile::write(path, std::process::id()) {
                event!(target: "lameduck::upgrade", warn, { error = e }, "restoring the PID file: {e}");
            }
        }
        #[cfg(feature = "systemd")]
        if !self
            .inner
            .handle
            .get()
            .is_some_and(|h| h.is_shutting_down())
        {
            crate::systemd::notify_reload_failed();
        }
    }
}

impl Upgrader {
    /// Starts a new generation and waits for it to be ready.
    ///
    /// On success the lifecycle this upgrader's [component](Upgrader::component)
    /// belongs to begins its shutdown, and the new PID is returned.
    ///
    /// # Errors
    ///
    /// Refused at once (see [`UpgradeError::is_refused`]) before the
    /// lifecycle is ready, while another upgrade is in flight, while this
    /// process's parent has not exited, and after shutdown began. Failed when
    /// the new process cannot be started, exits before it is ready, or is
    /// not ready within the grace period; it is then killed and reaped.
    ///
    /// # Cancel safety
    ///
    /// See [`Upgrade`].
    pub fn upgrade(&self) -> Upgrade {
        let inner = self.inner.clone();
        Upgrade {
            inner: Box::pin(async move { run(inner).await }),
        }
    }
}

fn refuse(kind: UpgradeErrorKind, msg: &str) -> UpgradeError {
    UpgradeError::new(kind, msg)
}

fn check(inner: &Inner) -> Result<(), UpgradeError> {
    let Some(handle) = inner.handle.get() else {
        return Err(refuse(
            UpgradeErrorKind::NotReady,
            "the upgrade component is not registered with a running lifecycle",
        ));
    };
    if handle.is_shutting_down() {
        return Err(refuse(UpgradeErrorKind::ShuttingDown, "shutdown has begun"));
    }
    if !handle.is_ready() || !inner.readied.load(Ordering::Acquire) {
        return Err(refuse(
            UpgradeErrorKind::NotReady,
            "the lifecycle is not ready yet",
        ));
    }
    if !inner.parent_exited.is_set() {
        return Err(refuse(
            UpgradeErrorKind::ParentAlive,
            "the parent generation has not exited yet",
        ));
    }
    Ok(())
}

async fn run(inner: Arc<Inner>) -> Result<Upgraded, UpgradeError> {
    check(&inner)?;
    if inner.in_flight.swap(true, Ordering::AcqRel) {
        return Err(refuse(
            UpgradeErrorKind::InProgress,
            "another upgrade is in flight",
        ));
    }
    let mut attempt = Attempt {
        inner: inner.clone(),
        child: None,
        begun: false,
        succeeded: false,
    };
    // Shutdown may have begun between the check and the flag.
    check(&inner)?;
    attempt.begun = true;
    let started = Instant::now();
    #[cfg(feature = "systemd")]
    crate::systemd::notify_reloading();

    let (child, parent_pipe, outcome) = spawn(&inner)?;
    let pid = lock(&child).id();
    attempt.child = Some(child.clone());
    event!(target: "lameduck::upgrade", info, {}, "started new process {pid}");

    let stopping = match inner.handle.get() {
        Some(h) => h.shutting_down(),
        None => Latch::new(),
    };
    let mut outcome = outcome.fuse();
    let mut grace = crate::timer::sleep(inner.grace);
    let mut stopping = stopping;
    // In this order: the child's outcome wins over a grace or a stop that
    // end at the same poll.
    let mut stopped_first = false;
    let waited = std::future::poll_fn(|cx| {
        if let Poll::Ready(o) = outcome.poll_unpin(cx) {
            return Poll::Ready(Some(o));
        }
        if grace.poll_unpin(cx).is_ready() {
            return Poll::Ready(None);
        }
        if stopping.poll_unpin(cx).is_ready() {
            stopped_first = true;
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await;
    let result = match waited {
        Some(Ok(Outcome::Ready)) if inner.handle.get().is_some_and(|h| h.is_shutting_down()) => {
            abort(&child, &mut outcome).await;
            Err(stopped_meanwhile())
        }
        Some(Ok(Outcome::Ready)) => Ok(()),
        Some(Ok(Outcome::Exited(status))) => Err(exited(pid, status)),
        Some(Err(_)) => Err(UpgradeError::new(
            UpgradeErrorKind::ChildExited,
            format!("lost track of new process {pid}"),
        )),
        None => {
            abort(&child, &mut outcome).await;
            if stopped_first {
                Err(stopped_meanwhile())
            } else {
                Err(UpgradeError::timeout(inner.grace))
            }
        }
    };
    result?;
    attempt.succeeded = true;
    inner.handed_over.store(true, Ordering::Release);
    keep_until_exit(parent_pipe);
    let elapsed = started.elapsed();
    event!(target: "lameduck::upgrade", info, {}, "new process {pid} ready after {elapsed:?}");
    #[cfg(feature = "systemd")]
    crate::systemd::notify_main_pid(pid);
    if let Some(handle) = inner.handle.get() {
        handle
            .shared
            .begin_shutdown(None, crate::ShutdownCause::Upgraded { pid });
    }
    Ok(Upgraded { pid, elapsed })
}

/// Kills the new process and waits until it is reaped.
async fn abort(
    child: &Mutex<Child>,
    outcome: &mut futures::future::Fuse<oneshot::Receiver<Outcome>>,
) {
    let _ = lock(child).kill();
    if outcome.is_terminated() {
        // The waiting thread is gone (the child had said it was ready):
        // reap here; after SIGKILL this returns at once.
        let _ = lock(child).wait();
    } else {
        // The waiting thread reaps it on end-of-file.
        let _ = outcome.await;
    }
}

fn stopped_meanwhile() -> UpgradeError {
    UpgradeError::new(
        UpgradeErrorKind::ShuttingDown,
        "shutdown began while the new process was starting; it was killed",
    )
}

fn exited(pid: u32, status: std::io::Result<ExitStatus>) -> UpgradeError {
    let msg = match status {
        Ok(s) => format!("new process {pid} exited before it was ready ({s})"),
        Err(e) => format!("new process {pid} exited before it was ready (status unknown: {e})"),
    };
    UpgradeError::new(UpgradeErrorKind::ChildExited, msg)
}
