//! [`UpgraderBuilder`]: resolving the program, adopting what a parent
//! generation (or socket activation) passed, and catching SIGHUP.

use std::ffi::OsString;
use std::io;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::Duration;

use futures::future::poll_fn;
use futures::task::AtomicWaker;

use super::fds::{self, Sockets};
use super::manifest::{self, Manifest};
use super::{Inner, UpgradeError, UpgradeErrorKind, Upgrader, control, parent, sys};
use crate::latch::Latch;
use crate::logging::event;

/// The control socket: inherited, or bound anew over a stale file that
/// nobody listens on (left by a crash).
fn bind_control(sockets: &mut Sockets, path: &Path) -> io::Result<UnixListener> {
    match sockets.listen_unix(control::NAME, path) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            match std::os::unix::net::UnixStream::connect(path) {
                Err(c) if c.kind() == io::ErrorKind::ConnectionRefused => {
                    event!(target: "lameduck::upgrade", info, {},
                        "replacing stale control socket {}", path.display()
                    );
                    fds::unlink_socket_file(path);
                    sockets.listen_unix(control::NAME, path)
                }
                _ => Err(e),
            }
        }
        other => other,
    }
}

/// A thread that raises a flag the component waits on at each SIGHUP.
pub(crate) struct Sighup {
    handle: signal_hook::iterator::Handle,
    pub(crate) hups: Arc<Hups>,
}

/// SIGHUPs not yet served, coalesced into one: a flag, and the waker of the
/// task waiting for it.
#[derive(Default)]
pub(crate) struct Hups {
    raised: AtomicBool,
    waker: AtomicWaker,
}

impl Hups {
    fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether a SIGHUP came since the last call; clears it.
    pub(crate) fn take(&self) -> bool {
        self.raised.swap(false, Ordering::AcqRel)
    }

    /// Waits for a SIGHUP not yet taken, and takes it.
    pub(crate) async fn next(&self) {
        poll_fn(|cx| {
            if self.take() {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // One raised between the test and the registration.
            if self.take() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

impl Sighup {
    fn listen() -> io::Result<Sighup> {
        let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
        let handle = signals.handle();
        let hups = Arc::new(Hups::default());
        let raised = hups.clone();
        std::thread::Builder::new()
            .name("lameduck-sighup".into())
            .spawn(move || {
                for _ in signals.forever() {
                    raised.raise();
                }
            })?;
        Ok(Sighup { handle, hups })
    }

    /// Stops listening (the handler stays installed, and ignores SIGHUP).
    pub(crate) fn close(self) {
        self.handle.close();
    }
}

/// Builds an [`Upgrader`].
#[derive(Debug, Clone)]
pub struct UpgraderBuilder {
    grace: Duration,
    pid_file: Option<PathBuf>,
    sighup: bool,
    exe: Option<PathBuf>,
    args: Option<Vec<OsString>>,
    control: Option<PathBuf>,
}

impl UpgraderBuilder {
    pub(super) fn new() -> Self {
        UpgraderBuilder {
            grace: Duration::from_secs(60),
            pid_file: None,
            sighup: true,
            exe: None,
            args: None,
            control: None,
        }
    }

    /// How long a new process has to become ready (default one minute).
    /// Zero gives it no time: the upgrade fails unless the new process is
    /// ready at once. A period too long for the clock, such as
    /// [`Duration::MAX`], waits for the new process however long it takes
    /// (or until the lifecycle shuts down).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Where to write this process's PID once it is ready. A relative path
    /// is resolved against the working directory when [`build`](Self::build)
    /// is called.
    pub fn pid_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.pid_file = Some(path.into());
        self
    }

    /// Also accept upgrade requests on a Unix socket at `path`, and answer
    /// each with the result: the new PID, or why it was refused or failed.
    /// [`request_upgrade`](super::request_upgrade) is the client (for a
    /// "reload" command, systemd's `ExecReload=`). A relative path is
    /// resolved against the working directory when [`build`](Self::build)
    /// is called.
    ///
    /// The socket is bound by the first generation (replacing a stale
    /// socket file nobody listens on), handed to each new one like the
    /// listeners, and removed on a final stop. Protect it with the
    /// directory's permissions: whoever can connect can upgrade.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use lameduck::upgrade::{Upgrader, request_upgrade};
    ///
    /// if std::env::args().nth(1).as_deref() == Some("reload") {
    ///     let pid = request_upgrade("/run/app/control.sock")?;
    ///     println!("upgraded: new process {pid}");
    ///     return Ok(());
    /// }
    /// let upgrader = Upgrader::builder()
    ///     .control_socket("/run/app/control.sock")
    ///     .build()?;
    /// # drop(upgrader);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn control_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.control = Some(path.into());
        self
    }

    /// Whether SIGHUP triggers an upgrade (default `true`).
    pub fn sighup(mut self, enabled: bool) -> Self {
        self.sighup = enabled;
        self
    }

    /// The program a new generation runs. Defaults to this process's own
    /// executable, resolved when [`build`](Self::build) is called (so a
    /// binary replaced on disk at the same path is the one that runs).
    pub fn executable(mut self, path: impl Into<PathBuf>) -> Self {
        self.exe = Some(path.into());
        self
    }

    /// The arguments of a new generation (without the program name).
    /// Defaults to this process's own.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Builds the upgrader: resolves the executable, the arguments and the
    /// working directory, and adopts the sockets inherited from a parent
    /// generation (or, with the `systemd` feature, from socket activation).
    ///
    /// # Errors
    ///
    /// A [`Manifest`](UpgradeErrorKind::Manifest) error when the inherited
    /// manifest cannot be read or a descriptor it names fails its check;
    /// an [`Io`](UpgradeErrorKind::Io) error when the executable or working
    /// directory cannot be resolved.
    pub fn build(self) -> Result<Upgrader, UpgradeError> {
        let io_err = |what, e| UpgradeError::io(UpgradeErrorKind::Io, what, e);
        let exe = match self.exe {
            Some(p) => p,
            None => std::env::current_exe().map_err(|e| io_err("resolving the executable", e))?,
        };
        let args = self
            .args
            .unwrap_or_else(|| std::env::args_os().skip(1).collect());
        let cwd =
            std::env::current_dir().map_err(|e| io_err("resolving the working directory", e))?;
        // A relative PID file names a file in the start directory, whatever
        // the program does with its working directory later.
        let pid_file = self.pid_file.map(|p| cwd.join(p));

        let mut sockets = Sockets::default();
        let mut ready_pipe = None;
        let parent_exited = Latch::new();
        let manifest = match std::env::var(manifest::ENV) {
            Ok(s) => Some(
                Manifest::decode(&s)
                    .map_err(|m| UpgradeError::new(UpgradeErrorKind::Manifest, m))?,
            ),
            Err(_) => None,
        };
        // Like LISTEN_PID: a manifest is for the parent generation's own
        // child, never for a process that child starts later.
        let parent = rustix::process::getppid().map(|p| p.as_raw_nonzero().get() as u32);
        let manifest = manifest.filter(|m| {
            let ours = m.pid.is_some() && m.pid == parent;
            if !ours {
                event!(target: "lameduck::upgrade", warn, {},
                    "ignoring {}: it names parent {:?}, ours is {:?}",
                    manifest::ENV, m.pid, parent
                );
            }
            ours
        });
        let is_child = manifest.is_some();
        #[cfg(feature = "systemd")]
        let activated = if is_child {
            Vec::new()
        } else {
            crate::systemd::listen_fds()
        };
        // Read once; a process this one starts must not see them (it would
        // take them for its own). Left in place only when another thread
        // could be reading the environment; the PID binding then keeps
        // children from using them.
        #[cfg(feature = "systemd")]
        let read = [manifest::ENV, "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];
        #[cfg(not(feature = "systemd"))]
        let read = [manifest::ENV];
        if !sys::remove_env_if_single_threaded(&read) {
            event!(target: "lameduck::upgrade", debug, {},
                "hand-over variables left in the environment: other threads are running"
            );
        }
        match manifest {
            Some(m) => {
                for e in &m.listeners {
                    let named = fds::adopt_entry(e).map_err(|err| {
                        UpgradeError::io(
                            UpgradeErrorKind::Manifest,
                            &format!("inherited socket {:?} on descriptor {}", e.name, e.fd),
                            err,
                        )
                    })?;
                    sockets.inherited.push(named);
                }
                let pipe = |fd| {
                    fds::adopt_pipe(fd).map_err(|err| {
                        UpgradeError::io(UpgradeErrorKind::Manifest, "inherited pipe", err)
                    })
                };
                if let Some(fd) = m.ready {
                    ready_pipe = Some(pipe(fd)?);
                }
                match m.parent {
                    Some(fd) => parent::watch_parent(pipe(fd)?, parent_exited.clone()),
                    None => {
                        parent_exited.set();
                    }
                }
            }
            None => {
                parent_exited.set();
                #[cfg(feature = "systemd")]
                for (fd, name) in activated {
                    match fds::adopt_activated(fd, name.clone()) {
                        Ok(named) => {
                            sockets
                                .activated
                                .push(format!("{name}={:?} (fd {fd})", named.addr));
                            sockets.inherited.push(named);
                        }
                        Err(e) => event!(target: "lameduck::upgrade", warn, { error = e },
                            "socket-activated descriptor {fd} ({name}) not adopted: {e}"
                        ),
                    }
                }
            }
        }
        // Caught from now on: a SIGHUP during launch (before the component
        // starts) must be refused, not kill the process.
        let sighup = if self.sighup {
            Some(Sighup::listen().map_err(|e| io_err("listening for SIGHUP", e))?)
        } else {
            None
        };
        let control = match self.control.map(|p| cwd.join(p)) {
            Some(path) => Some(
                bind_control(&mut sockets, &path)
                    .map_err(|e| io_err("binding the control socket", e))?,
            ),
            None => None,
        };
        #[cfg(feature = "systemd")]
        if is_child {
            crate::systemd::mark_upgraded();
        }
        Ok(Upgrader {
            inner: Arc::new(Inner {
                exe,
                args,
                cwd,
                grace: self.grace,
                pid_file,
                sighup: Mutex::new(sighup),
                sockets: Mutex::new(sockets),
                handle: OnceLock::new(),
                in_flight: AtomicBool::new(false),
                handed_over: AtomicBool::new(false),
                readied: AtomicBool::new(false),
                control: Mutex::new(control),
                ready_pipe: Mutex::new(ready_pipe),
                parent_exited,
                is_child,
            }),
        })
    }
}
