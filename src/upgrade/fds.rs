//! Listening sockets: checking and adopting inherited ones, binding new
//! ones, and the set handed on to the next generation.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, OFlags};
use rustix::io::FdFlags;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketType, sockopt};

use super::manifest::{Addr, Entry};
use super::sys;
use crate::logging::event;

/// A socket known by name and address.
#[derive(Debug)]
pub(crate) struct Named {
    pub(crate) name: String,
    pub(crate) addr: Addr,
    pub(crate) fd: OwnedFd,
    /// Passed by socket activation (its name and address were set by the
    /// socket unit, not by this program).
    pub(crate) activated: bool,
}

/// This process's sockets.
#[derive(Debug, Default)]
pub(crate) struct Sockets {
    /// Inherited, checked and adopted, not yet asked for.
    pub(crate) inherited: Vec<Named>,
    /// In use here; duplicates of these go to the next generation.
    pub(crate) active: Vec<Named>,
    /// What socket activation passed, for error messages.
    pub(crate) activated: Vec<String>,
}

/// The names systemd gives sockets without `FileDescriptorName=`: `unknown`
/// (no `LISTEN_FDNAMES`, as `systemd-socket-activate` without `--fdname`)
/// or the socket unit's name.
fn is_unnamed(name: &str) -> bool {
    name.is_empty() || name == "unknown" || name.ends_with(".socket")
}

/// Whether an inherited socket bound to `have` serves a request for `want`:
/// the same address; any port when `want` asks for port 0; or the same port
/// on a wildcard, where `[::]` (`ListenStream=8080`, dual-stack) and
/// `0.0.0.0` stand for each other.
fn tcp_matches(have: &SocketAddr, want: &SocketAddr) -> bool {
    if have == want || (want.port() == 0 && have.ip() == want.ip()) {
        return true;
    }
    have.port() == want.port() && have.ip().is_unspecified() && want.ip().is_unspecified()
}

/// What a program asks for.
#[derive(Clone, Copy)]
enum Want<'a> {
    Tcp(SocketAddr),
    Unix(&'a Path),
}

impl Want<'_> {
    fn matches(&self, a: &Addr) -> bool {
        match (self, a) {
            (Want::Tcp(want), Addr::Tcp(have)) => tcp_matches(have, want),
            (Want::Unix(want), Addr::Unix(have)) => have == want,
            _ => false,
        }
    }

    fn same_kind(&self, a: &Addr) -> bool {
        matches!(
            (self, a),
            (Want::Tcp(_), Addr::Tcp(_)) | (Want::Unix(_), Addr::Unix(_))
        )
    }
}

/// The address a socket is bound to.
pub(crate) fn addr_of(fd: BorrowedFd<'_>) -> io::Result<Addr> {
    let any = rustix::net::getsockname(fd)?;
    let family = any.address_family();
    if family == AddressFamily::INET || family == AddressFamily::INET6 {
        return SocketAddr::try_from(any)
            .map(Addr::Tcp)
            .map_err(|_| invalid("not an inet address"));
    }
    if family == AddressFamily::UNIX {
        let unix = SocketAddrUnix::try_from(any).map_err(|_| invalid("not a unix address"))?;
        if let Some(p) = unix.path_bytes() {
            return Ok(Addr::Unix(PathBuf::from(std::ffi::OsStr::from_bytes(p))));
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(n) = unix.abstract_name() {
            return Ok(Addr::Abstract(n.to_vec()));
        }
        return Err(invalid("unnamed unix socket"));
    }
    Err(invalid("unsupported address family"))
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Checks that `fd` is a listening stream socket and returns its address.
fn check_listening(fd: BorrowedFd<'_>) -> io::Result<Addr> {
    let st = rustix::fs::fstat(fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Socket {
        return Err(invalid("not a socket"));
    }
    if sockopt::socket_type(fd)? != SocketType::STREAM {
        return Err(invalid("not a stream socket"));
    }
    // Apple platforms do not implement SO_ACCEPTCONN.
    #[cfg(not(target_vendor = "apple"))]
    if !sockopt::socket_acceptconn(fd)? {
        return Err(invalid("not listening"));
    }
    addr_of(fd)
}

/// Makes an adopted or new descriptor close-on-exec and non-blocking.
pub(crate) fn prepare(fd: &OwnedFd) -> io::Result<()> {
    rustix::io::fcntl_setfd(fd, FdFlags::CLOEXEC)?;
    let fl = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, fl | OFlags::NONBLOCK)?;
    Ok(())
}

/// Checks a manifest entry against the descriptor it names and adopts it.
pub(crate) fn adopt_entry(e: &Entry) -> io::Result<Named> {
    let got = sys::inspect(e.fd, check_listening)??;
    if got != e.addr {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bound to {got:?}, manifest says {:?}", e.addr),
        ));
    }
    adopt_checked(e.fd, e.name.clone(), got)
}

/// Checks and adopts a socket-activated descriptor (its address comes from
/// the socket itself).
#[cfg(feature = "systemd")]
pub(crate) fn adopt_activated(fd: RawFd, name: String) -> io::Result<Named> {
    let addr = sys::inspect(fd, check_listening)??;
    let mut named = adopt_checked(fd, name, addr)?;
    named.activated = true;
    Ok(named)
}

fn adopt_checked(raw: RawFd, name: String, addr: Addr) -> io::Result<Named> {
    let fd = sys::adopt(raw)?;
    prepare(&fd)?;
    Ok(Named {
        name,
        addr,
        fd,
        activated: false,
    })
}

impl Sockets {
    /// The inherited socket for `name` and `want`, in this order: same name
    /// and a matching address; the same name (a parent generation passes on
    /// a socket under the name it was asked for, whatever address socket
    /// activation gave it); then, among socket-activated ones only (their
    /// names and addresses come from the socket unit): a matching address;
    /// the only unnamed one of the right kind.
    fn claim(&mut self, name: &str, want: Want<'_>) -> io::Result<Option<OwnedFd>> {
        if self.active.iter().any(|n| n.name == name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("a listener named {name:?} is already in use"),
            ));
        }
        let inherited = &self.inherited;
        let find = |f: &dyn Fn(&Named) -> bool| inherited.iter().position(f);
        let found = find(&|n| n.name == name && want.matches(&n.addr))
            .or_else(|| find(&|n| n.name == name && want.same_kind(&n.addr)))
            .or_else(|| find(&|n| n.activated && want.matches(&n.addr)))
            .or_else(|| {
                let unnamed: Vec<usize> = (0..inherited.len())
                    .filter(|&i| {
                        let n = &inherited[i];
                        n.activated && is_unnamed(&n.name) && want.same_kind(&n.addr)
                    })
                    .collect();
                match unnamed[..] {
                    [only] => Some(only),
                    _ => None,
                }
            });
        Ok(found.map(|i| {
            let n = self.inherited.remove(i);
            if n.activated {
                event!(target: "lameduck::upgrade", info, {},
                    "{name:?}: adopted socket-activated {:?} bound to {:?}", n.name, n.addr
                );
            }
            n.fd
        }))
    }

    /// A bind that failed: under socket activation, say what was passed,
    /// since the socket was most likely meant to be one of those.
    fn bind_failed(&self, what: String, e: io::Error) -> io::Error {
        if self.activated.is_empty() {
            return e;
        }
        io::Error::new(
            e.kind(),
            format!(
                "{what}: {e}; no socket-activated descriptor matched (passed: {})",
                self.activated.join(", ")
            ),
        )
    }

    fn activate(&mut self, name: &str, fd: &OwnedFd) -> io::Result<()> {
        prepare(fd)?;
        let addr = addr_of(fd.as_fd())?;
        self.active.push(Named {
            name: name.to_owned(),
            addr,
            fd: fd.try_clone()?,
            activated: false,
        });
        Ok(())
    }

    pub(crate) fn listen_tcp(&mut self, name: &str, addr: SocketAddr) -> io::Result<TcpListener> {
        let fd = match self.claim(name, Want::Tcp(addr))? {
            Some(fd) => fd,
            None => OwnedFd::from(
                TcpListener::bind(addr)
                    .map_err(|e| self.bind_failed(format!("binding {name:?} to {addr}"), e))?,
            ),
        };
        self.activate(name, &fd)?;
        Ok(TcpListener::from(fd))
    }

    pub(crate) fn listen_unix(&mut self, name: &str, path: &Path) -> io::Result<UnixListener> {
        let fd = match self.claim(name, Want::Unix(path))? {
            Some(fd) => fd,
            None => OwnedFd::from(UnixListener::bind(path).map_err(|e| {
                self.bind_failed(format!("binding {name:?} to {}", path.display()), e)
            })?),
        };
        self.activate(name, &fd)?;
        Ok(UnixListener::from(fd))
    }
}

impl Named {
    /// The path of a Unix socket bound in the file system.
    pub(crate) fn unix_path(&self) -> Option<&Path> {
        match &self.addr {
            Addr::Unix(p) => Some(p),
            _ => None,
        }
    }
}

/// Removes the socket file at `path`, as tableflip does: only if it is a
/// socket (never a regular file someone put there), and quietly if it is
/// already gone. Errors are logged: nothing is left to do about them.
pub(crate) fn unlink_socket_file(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match std::fs::remove_file(path) {
            Ok(()) => event!(target: "lameduck::upgrade", info, {},
                "removed socket file {}", path.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => event!(target: "lameduck::upgrade", warn, { error = e },
                "removing socket file {}: {e}", path.display()
            ),
        },
        Ok(_) => event!(target: "lameduck::upgrade", warn, {},
            "not removing {}: no longer a socket", path.display()
        ),
        Err(_) => {}
    }
}

/// Checks that an inherited descriptor is a pipe and adopts it,
/// close-on-exec (it stays blocking: a thread waits on it).
pub(crate) fn adopt_pipe(raw: RawFd) -> io::Result<OwnedFd> {
    let kind = sys::inspect(raw, |fd| rustix::fs::fstat(fd).map(|st| st.st_mode))??;
    if FileType::from_raw_mode(kind) != FileType::Fifo {
        return Err(invalid("not a pipe"));
    }
    let fd = sys::adopt(raw)?;
    rustix::io::fcntl_setfd(&fd, FdFlags::CLOEXEC)?;
    Ok(fd)
}
