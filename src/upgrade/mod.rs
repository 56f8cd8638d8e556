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

mod builder;
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
use crate::latch::{Latch, lock};
use crate::logging::event;

use builder::Sighup;
pub use builder::UpgraderBuilder;
pub use component::UpgradeComponent;
pub use control::request_upgrade;
pub use error::{UpgradeError, UpgradeErrorKind};
pub use parent::{Upgrade, Upgraded};

use fds::Sockets;

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
    pub(crate) parent_exited: Latch,
    pub(crate) is_child: bool,
}

impl Upgrader {
    /// A builder with the defaults: grace period one minute, no PID file,
    /// SIGHUP triggers an upgrade.
    pub fn builder() -> UpgraderBuilder {
        UpgraderBuilder::new()
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
    pub fn parent_exited(&self) -> Latch {
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
            event!(target: "lameduck::upgrade", info, {}, "closing unused inherited socket {:?}", n.name);
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
                event!(target: "lameduck::upgrade", warn, { error = e }, "telling the parent we are ready: {e}");
            }
        }
        self.readied.store(true, Ordering::Release);
        Ok(())
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
