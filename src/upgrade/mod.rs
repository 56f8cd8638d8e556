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
mod control;
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
pub use control::request_upgrade;
pub use error::{UpgradeError, UpgradeErrorKind};
pub use parent::{Upgrade, Upgraded};

use fds::Sockets;
use manifest::Manifest;

/// Hands listening sockets to a new generation of this program. Cheap to
/// clone; every clone is the same upgrader.
///
/// Build one early in `main`, before any other code may open descriptors,
/// so inherited descriptors are adopted before anything else can reuse their
/// numbers, and before any thread starts: the hand-over variables
/// (`LAMEDUCK_UPGRADE`, and `LISTEN_*` with the `systemd` feature) are then
/// removed from the environment, so no process this one starts takes them
/// for its own. (With other threads running they stay, and the manifest's
/// parent PID still keeps any other process from using it.) See the
/// [module docs](self) for the protocol.
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
    /// The SIGHUP listener, from `build` until the component stops.
    pub(crate) sighup: Mutex<Option<Sighup>>,
    pub(crate) sockets: Mutex<Sockets>,
    pub(crate) handle: OnceLock<Handle>,
    pub(crate) in_flight: AtomicBool,
    /// Set once an upgrade succeeded: the sockets are the new process's.
    pub(crate) handed_over: AtomicBool,
    /// The control socket, until the component serves it.
    pub(crate) control: Mutex<Option<UnixListener>>,
    /// Set once this generation told its parent it is ready.
    pub(crate) readied: AtomicBool,
    /// Write end of the readiness pipe, while the parent waits on it.
    ready_pipe: Mutex<Option<OwnedFd>>,
    pub(crate) parent_exited: Signal,
    pub(crate) is_child: bool,
}

/// The control socket: inherited, or bound anew over a stale file that
/// nobody listens on (left by a crash).
fn bind_control(sockets: &mut Sockets, path: &Path) -> io::Result<UnixListener> {
    match sockets.listen_unix(control::NAME, path) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            match std::os::unix::net::UnixStream::connect(path) {
                Err(c) if c.kind() == io::ErrorKind::ConnectionRefused => {
                    log::info!(
                        target: "lameduck::upgrade",
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

/// Set when an [`Upgrader`] of this process adopted a parent generation's
/// manifest.
static UPGRADED: AtomicBool = AtomicBool::new(false);

/// Whether this process was started by an upgrade (as far as an
/// [`Upgrader`] built so far could tell).
#[cfg(feature = "systemd")]
pub(crate) fn process_is_upgraded() -> bool {
    UPGRADED.load(Ordering::Acquire)
}

/// A thread that forwards SIGHUP to a channel the component reads.
pub(crate) struct Sighup {
    handle: signal_hook::iterator::Handle,
    pub(crate) rx: async_channel::Receiver<()>,
}

impl Sighup {
    fn listen() -> io::Result<Sighup> {
        let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
        let handle = signals.handle();
        let (tx, rx) = async_channel::bounded(1);
        std::thread::Builder::new()
            .name("lameduck-sighup".into())
            .spawn(move || {
                for _ in signals.forever() {
                    let _ = tx.try_send(());
                }
            })?;
        Ok(Sighup { handle, rx })
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
            control: None,
        }
    }

    /// A listening TCP socket named `name`: the parent's, if it passed one
    /// under that name bound to `addr` (port 0 matches any port on the same
    /// IP, and the wildcards `0.0.0.0` and `[::]` match each other on the
    /// same port), otherwise a new one bound to `addr`. Non-blocking and
    /// close-on-exec.
    ///
    /// Sockets passed by systemd socket activation (feature `systemd`) are
    /// matched more loosely, since the socket unit chose their names and
    /// addresses: by name (`FileDescriptorName=`) first, then by address as
    /// above (`ListenStream=8080` binds `[::]:8080`, which serves a request
    /// for `0.0.0.0:8080`), then the only unnamed one.
    ///
    /// # Errors
    ///
    /// Binding fails (under socket activation the error lists the sockets
    /// that were passed), or `name` is already in use in this process.
    pub fn listen_tcp(&self, name: &str, addr: SocketAddr) -> io::Result<TcpListener> {
        lock(&self.inner.sockets).listen_tcp(name, addr)
    }

    /// A listening Unix stream socket named `name` at `path`: the parent's,
    /// if it passed one under that name at that path, otherwise a new one.
    /// Non-blocking and close-on-exec. A new socket is never bound over an
    /// existing file: remove a stale one first.
    ///
    /// The socket file is removed when the lifecycle stops for good (its
    /// [component](Upgrader::component) stops without having handed the
    /// socket to a new generation), so the next start can bind it again.
    ///
    /// # Errors
    ///
    /// As [`listen_tcp`](Upgrader::listen_tcp).
    pub fn listen_unix(&self, name: &str, path: impl AsRef<Path>) -> io::Result<UnixListener> {
        lock(&self.inner.sockets).listen_unix(name, path.as_ref())
    }

    /// The names of inherited sockets not asked for yet (they are closed
    /// when this generation becomes ready, and their Unix socket files
    /// removed).
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
            // Nobody serves it any more: a client would wait on a queue
            // that is never accepted, and a later bind would fail.
            if let Some(path) = n.unix_path() {
                fds::unlink_socket_file(path);
            }
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
    /// [`request_upgrade`] is the client (for a "reload" command, systemd's
    /// `ExecReload=`). A relative path is resolved against the working
    /// directory when [`build`](Self::build) is called.
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
        let parent_exited = Signal::new();
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
                log::warn!(
                    target: "lameduck::upgrade",
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
            log::debug!(
                target: "lameduck::upgrade",
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
                        Err(e) => log::warn!(
                            target: "lameduck::upgrade",
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
        if is_child {
            UPGRADED.store(true, Ordering::Release);
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
