//! The parent's side of an upgrade: start the new generation, wait for it
//! to be ready within the grace period, and clean up when it is not.

use std::fmt;
use std::future::Future;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use command_fds::{CommandFdExt, FdMapping};
use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::FusedFuture;

use super::manifest::{self, Entry, Manifest};
use super::{Inner, UpgradeError, UpgradeErrorKind, Upgrader, pidfile};
use crate::latch::{Latch, lock};
use crate::logging::event;

/// Descriptor numbers in the child: readiness pipe, parent pipe, then the
/// listening sockets in order.
const READY_FD: i32 = 3;
const PARENT_FD: i32 = 4;
const FIRST_LISTENER_FD: i32 = 5;

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
        Some(h) => h.stopping(),
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

/// A pipe whose both ends are close-on-exec.
fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(not(any(
        target_vendor = "apple",
        target_os = "aix",
        target_os = "haiku",
        target_os = "nto"
    )))]
    {
        Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
    }
    // No pipe2 here: set the flag right after (a fork in between could leak
    // the pipe into an unrelated child, which only delays its end-of-file).
    #[cfg(any(
        target_vendor = "apple",
        target_os = "aix",
        target_os = "haiku",
        target_os = "nto"
    ))]
    {
        let (r, w) = rustix::pipe::pipe()?;
        rustix::io::fcntl_setfd(&r, rustix::io::FdFlags::CLOEXEC)?;
        rustix::io::fcntl_setfd(&w, rustix::io::FdFlags::CLOEXEC)?;
        Ok((r, w))
    }
}

type Spawned = (Arc<Mutex<Child>>, OwnedFd, oneshot::Receiver<Outcome>);

fn spawn(inner: &Inner) -> Result<Spawned, UpgradeError> {
    let io = |what, e: std::io::Error| UpgradeError::io(UpgradeErrorKind::Io, what, e);
    let (ready_r, ready_w) = cloexec_pipe().map_err(|e| io("readiness pipe", e))?;
    let (parent_r, parent_w) = cloexec_pipe().map_err(|e| io("parent pipe", e))?;

    let mut manifest = Manifest {
        pid: Some(std::process::id()),
        ready: Some(READY_FD),
        parent: Some(PARENT_FD),
        listeners: Vec::new(),
    };
    let mut mappings = vec![
        FdMapping {
            parent_fd: ready_w,
            child_fd: READY_FD,
        },
        FdMapping {
            parent_fd: parent_r,
            child_fd: PARENT_FD,
        },
    ];
    for (n, named) in (FIRST_LISTENER_FD..).zip(lock(&inner.sockets).active.iter()) {
        mappings.push(FdMapping {
            parent_fd: named
                .fd
                .try_clone()
                .map_err(|e| io("duplicating a socket", e))?,
            child_fd: n,
        });
        manifest.listeners.push(Entry {
            fd: n,
            name: named.name.clone(),
            addr: named.addr.clone(),
        });
    }

    let mut cmd = Command::new(&inner.exe);
    cmd.args(&inner.args)
        .current_dir(&inner.cwd)
        .env(manifest::ENV, manifest.encode())
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES");
    let first_unnamed = FIRST_LISTENER_FD + manifest.listeners.len() as i32;
    cmd.fd_mappings(mappings).map_err(|e| {
        io(
            "descriptor mapping",
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        )
    })?;
    super::sys::cloexec_from(&mut cmd, first_unnamed);
    let child = cmd.spawn().map_err(|e| {
        UpgradeError::io(
            UpgradeErrorKind::Spawn,
            &format!("starting {}", inner.exe.display()),
            e,
        )
    })?;
    // Closes our copies of the child's ends: end-of-file on the readiness
    // pipe then means the child is gone.
    drop(cmd);

    let child = Arc::new(Mutex::new(child));
    let (tx, rx) = oneshot::channel();
    let waited = child.clone();
    let waiter = std::thread::Builder::new()
        .name("lameduck-upgrade".into())
        .spawn(move || {
            let mut pipe = std::fs::File::from(ready_r);
            let mut byte = [0u8; 1];
            let read = loop {
                match pipe.read(&mut byte) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            };
            let outcome = if matches!(read, Ok(1)) {
                Outcome::Ready
            } else {
                let mut c = lock(&waited);
                let _ = c.kill();
                Outcome::Exited(c.wait())
            };
            let _ = tx.send(outcome);
        });
    if let Err(e) = waiter {
        let mut c = lock(&child);
        let _ = c.kill();
        let _ = c.wait();
        return Err(io("starting the waiting thread", e));
    }
    Ok((child, parent_w, rx))
}

/// In a child generation: a thread that waits for end-of-file on the parent
/// pipe and then sets `exited`.
pub(crate) fn watch_parent(fd: OwnedFd, exited: Latch) {
    let spawned = std::thread::Builder::new()
        .name("lameduck-parent".into())
        .spawn({
            let exited = exited.clone();
            move || {
                let mut pipe = std::fs::File::from(fd);
                let mut buf = [0u8; 16];
                loop {
                    match pipe.read(&mut buf) {
                        Ok(0) => break,
                        Err(e) if e.kind() != std::io::ErrorKind::Interrupted => break,
                        _ => {}
                    }
                }
                exited.set();
            }
        });
    if let Err(e) = spawned {
        event!(target: "lameduck::upgrade", warn, { error = e }, "cannot watch the parent: {e}");
        exited.set();
    }
}
