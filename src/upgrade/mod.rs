//! Zero-downtime upgrades: hand the listening sockets to a new process of
//! the same program, and let the old one drain and exit.
//!
//! # The protocol
//!
//! 1. The program asks its [`Upgrader`] for its listening sockets by name
//!    and address ([`listen_tcp`](Upgrader::listen_tcp),
//!    [`listen_unix`](Upgrader::listen_unix)). In the first generation they
//!    are bound; in a later one they are the parent's very sockets, passed on
//!    fixed descriptor numbers and described by a versioned manifest in the
//!    `LAMEDUCK_UPGRADE` environment variable. Each inherited descriptor is
//!    checked (a listening stream socket bound to the address the manifest
//!    names) before it is adopted; every adopted or new descriptor is
//!    close-on-exec and non-blocking.
//! 2. The [upgrade component](Upgrader::component), registered with the
//!    lifecycle, waits until every component is ready. Then it closes the
//!    inherited sockets nobody asked for, writes the PID file (temporary file
//!    + rename), and tells the parent, if any, that this generation is ready.
//! 3. On SIGHUP, or on a call to [`upgrade`](Upgrader::upgrade), the process
//!    starts the executable resolved when the upgrader was built (not
//!    `argv[0]`), with the original arguments and working directory, passing
//!    only the descriptors the manifest names. It waits up to the
//!    [grace period](UpgraderBuilder::grace_period) for the new process to
//!    say it is ready.
//! 4. Ready: the old lifecycle begins its shutdown (lame duck, drain, …) by
//!    itself, and `upgrade` returns the new PID. The new process sees its
//!    parent exit through [`parent_exited`](Upgrader::parent_exited).
//!    Not ready (it exited, crashed, or hung past the grace period): it is
//!    killed and reaped, the PID file is restored, the error comes back, the
//!    old process keeps serving, and the next upgrade may start.
//!
//! Only one upgrade runs at a time. An upgrade is refused with a typed error
//! ([`UpgradeErrorKind`]) before the lifecycle is ready, while another is in
//! flight, while this process's own parent has not exited yet, and after
//! shutdown began.
//!
//! # Example
//!
//! ```no_run
//! use lameduck::Lifecycle;
//! use lameduck::upgrade::Upgrader;
//!
//! let upgrader = Upgrader::builder().pid_file("/run/app.pid").build()?;
//! let listener = upgrader.listen_tcp("http", "127.0.0.1:8080".parse()?)?;
//! let lifecycle = Lifecycle::builder()
//!     // .component("http", serve(listener)) …
//!     .component("upgrade", upgrader.component())
//!     .build()?;
//! # drop(listener);
//! futures::executor::block_on(lifecycle.run())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod component;
mod error;
mod fds;
mod manifest;
mod parent;
mod pidfile;
mod sys;

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::handle::Handle;
use crate::signal::{Signal, lock};

pub use component::UpgradeComponent;
pub use error::{UpgradeError, UpgradeErrorKind};
pub use parent::{Upgrade, Upgraded};

use fds::Sockets;
use manifest::Manifest;

/// Hands listening sockets to a new generation of this program. Cheap to
/// clone; every clone is the same upgrader.
///
/// Build one early in `main`, before any other code may open descriptors,
/// so inherited descriptors are adopted before anything else can reuse their
/// numbers. See the [module docs](self) for the protocol.
#[derive(Clone)]
pub struct Upgrader {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) exe: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) cwd: PathBuf,
    pub(crate) grace: Duration,
    pub(crate) pid_file: Option<PathBuf>,
    pub(crate) sighup: bool,
    pub(crate) sockets: Mutex<Sockets>,
    pub(crate) handle: OnceLock<Handle>,
    pub(crate) in_flight: AtomicBool,
    /// Set once this generation told its parent it is ready.
    pub(crate) readied: AtomicBool,
    /// Write end of the readiness pipe, while the parent waits on it.
    ready_pipe: Mutex<Option<OwnedFd>>,
    pub(crate) parent_exited: Signal,
    pub(crate) is_child: bool,
}

/// Builds an [`Upgrader`].
#[derive(Debug, Clone)]
pub struct UpgraderBuilder {
    grace: Duration,
    pid_file: Option<PathBuf>,
    sighup: bool,
    exe: Option<PathBuf>,
    args: Option<Vec<OsString>>,
}

impl Upgrader {
    /// A builder with the defaults: grace period one minute, no PID file,
    /// SIGHUP triggers an upgrade.
    pub fn builder() -> UpgraderBuilder {
        UpgraderBuilder {
            grace: Duration::from_secs(60),
            pid_file: None,
            sighup: true,
            exe: None,
            args: None,
        }
    }

    /// A listening TCP socket named `name`: the parent's, if it passed one
    /// under that name bound to `addr` (port 0 matches any port on the same
    /// IP), otherwise a new one bound to `addr`. Non-blocking and
    /// close-on-exec.
    ///
    /// # Errors
    ///
    /// Binding fails, or `name` is already in use in this process.
    pub fn listen_tcp(&self, name: &str, addr: SocketAddr) -> io::Result<TcpListener> {
        lock(&self.inner.sockets).listen_tcp(name, addr)
    }

    /// A listening Unix stream socket named `name` at `path`: the parent's,
    /// if it passed one under that name at that path, otherwise a new one.
    /// Non-blocking and close-on-exec. A new socket is never bound over an
    /// existing file: remove a stale one first.
    ///
    /// # Errors
    ///
    /// As [`listen_tcp`](Upgrader::listen_tcp).
    pub fn listen_unix(&self, name: &str, path: impl AsRef<Path>) -> io::Result<UnixListener> {
        lock(&self.inner.sockets).listen_unix(name, path.as_ref())
    }

    /// The names of inherited sockets not asked for yet (they are closed
    /// when this generation becomes ready).
    pub fn inherited_names(&self) -> Vec<String> {
        lock(&self.inner.sockets)
            .inherited
            .iter()
            .map(|n| n.name.clone())
            .collect()
    }

    /// Whether this generation is ready: every component of its lifecycle
    /// was ready, and the [component](Upgrader::component) then closed the
    /// unused inherited sockets, wrote the PID file and told the parent.
    pub fn is_ready(&self) -> bool {
        self.inner.readied.load(Ordering::Acquire)
    }

    /// Whether this process was started by an upgrade.
    pub fn is_upgraded(&self) -> bool {
        self.inner.is_child
    }

    /// Resolves once this process's parent generation has exited (at once in
    /// a first generation).
    pub fn parent_exited(&self) -> Signal {
        self.inner.parent_exited.clone()
    }

    /// The component that ties the upgrader to a lifecycle: register it with
    /// the lifecycle (any position). It marks this generation ready once
    /// every component is, listens for SIGHUP if enabled, and stops
    /// listening when shutdown begins.
    pub fn component(&self) -> UpgradeComponent {
        UpgradeComponent::new(self.clone())
    }
}

impl Inner {
    /// This generation is ready: close unused inherited sockets, write the
    /// PID file, tell the parent.
    pub(crate) fn mark_ready(&self) -> io::Result<()> {
        let unused = std::mem::take(&mut lock(&self.sockets).inherited);
        for n in &unused {
            log::info!(target: "lameduck::upgrade", "closing unused inherited socket {:?}", n.name);
        }
        drop(unused);
        if let Some(path) = &self.pid_file {
            pidfile::write(path, std::process::id())?;
        }
        if let Some(fd) = lock(&self.ready_pipe).take() {
            // A parent that died meanwhile cannot be told; this generation
            // is then the only one serving and carries on.
            let mut f = std::fs::File::from(fd);
            if let Err(e) = io::Write::write_all(&mut f, b"R") {
                log::warn!(target: "lameduck::upgrade", "telling the parent we are ready: {e}");
            }
        }
        self.readied.store(true, Ordering::Release);
        Ok(())
    }
}

impl UpgraderBuilder {
    /// How long a new process has to become ready (default one minute).
    /// Zero gives it no time: the upgrade fails unless the new process is
    /// ready at once. A period too long for the clock, such as
    /// [`Duration::MAX`], waits for the new process however long it takes
    /// (or until the lifecycle shuts down).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Where to write this process's PID once it is ready.
    pub fn pid_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.pid_file = Some(path.into());
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

        let mut sockets = Sockets::default();
        let mut ready_pipe = None;
        let parent_exited = Signal::new();
        let manifest = match std::env::var(manifest::ENV) {
            Ok(s) => Some(
                Manifest::decode(&s)
                    .map_err(|m| UpgradeError::new(UpgradeErrorKind::Manifest, m))?,
            ),
            Err(_) => None,
        };
        let is_child = manifest.is_some();
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
                for (fd, name) in crate::systemd::listen_fds() {
                    match fds::adopt_activated(fd, name.clone()) {
                        Ok(named) => sockets.inherited.push(named),
                        Err(e) => log::warn!(
                            target: "lameduck::upgrade",
                            "socket-activated descriptor {fd} ({name}) not adopted: {e}"
                        ),
                    }
                }
            }
        }
        Ok(Upgrader {
            inner: Arc::new(Inner {
                exe,
                args,
                cwd,
                grace: self.grace,
                pid_file: self.pid_file,
                sighup: self.sighup,
                sockets: Mutex::new(sockets),
                handle: OnceLock::new(),
                in_flight: AtomicBool::new(false),
                readied: AtomicBool::new(false),
                ready_pipe: Mutex::new(ready_pipe),
                parent_exited,
                is_child,
            }),
        })
    }
}

impl fmt::Debug for Upgrader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgrader")
            .field("exe", &self.inner.exe)
            .field("grace", &self.inner.grace)
            .field("pid_file", &self.inner.pid_file)
            .field("is_upgraded", &self.inner.is_child)
            .finish_non_exhaustive()
    }
}
