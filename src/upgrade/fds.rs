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

/// A socket known by name and address.
#[derive(Debug)]
pub(crate) struct Named {
    pub(crate) name: String,
    pub(crate) addr: Addr,
    pub(crate) fd: OwnedFd,
}

/// This process's sockets.
#[derive(Debug, Default)]
pub(crate) struct Sockets {
    /// Inherited, checked and adopted, not yet asked for.
    pub(crate) inherited: Vec<Named>,
    /// In use here; duplicates of these go to the next generation.
    pub(crate) active: Vec<Named>,
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
    adopt_checked(fd, name, addr)
}

fn adopt_checked(raw: RawFd, name: String, addr: Addr) -> io::Result<Named> {
    let fd = sys::adopt(raw)?;
    prepare(&fd)?;
    Ok(Named { name, addr, fd })
}

impl Sockets {
    fn claim(
        &mut self,
        name: &str,
        matches: impl Fn(&Addr) -> bool,
    ) -> io::Result<Option<OwnedFd>> {
        if self.active.iter().any(|n| n.name == name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("a listener named {name:?} is already in use"),
            ));
        }
        let found = self
            .inherited
            .iter()
            .position(|n| n.name == name && matches(&n.addr));
        Ok(found.map(|i| self.inherited.remove(i).fd))
    }

    fn activate(&mut self, name: &str, fd: &OwnedFd) -> io::Result<()> {
        prepare(fd)?;
        let addr = addr_of(fd.as_fd())?;
        self.active.push(Named {
            name: name.to_owned(),
            addr,
            fd: fd.try_clone()?,
        });
        Ok(())
    }

    pub(crate) fn listen_tcp(&mut self, name: &str, addr: SocketAddr) -> io::Result<TcpListener> {
        let wanted = |a: &Addr| match a {
            Addr::Tcp(have) => *have == addr || (addr.port() == 0 && have.ip() == addr.ip()),
            _ => false,
        };
        let fd = match self.claim(name, wanted)? {
            Some(fd) => fd,
            None => OwnedFd::from(TcpListener::bind(addr)?),
        };
        self.activate(name, &fd)?;
        Ok(TcpListener::from(fd))
    }

    pub(crate) fn listen_unix(&mut self, name: &str, path: &Path) -> io::Result<UnixListener> {
        let wanted = |a: &Addr| matches!(a, Addr::Unix(have) if have == path);
        let fd = match self.claim(name, wanted)? {
            Some(fd) => fd,
            None => OwnedFd::from(UnixListener::bind(path)?),
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
            Ok(()) => log::info!(
                target: "lameduck::upgrade",
                "removed socket file {}", path.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::warn!(
                target: "lameduck::upgrade",
                "removing socket file {}: {e}", path.display()
            ),
        },
        Ok(_) => log::warn!(
            target: "lameduck::upgrade",
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
