//! Starting the new generation: the pipes, the manifest and the inherited
//! descriptors it is spawned with, and the watch on its parent's end.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

use command_fds::{CommandFdExt, FdMapping};
use futures::channel::oneshot;

use super::Outcome;
use crate::latch::{Latch, lock};
use crate::logging::event;
use crate::upgrade::manifest::{self, Entry, Manifest};
use crate::upgrade::{Inner, UpgradeError, UpgradeErrorKind, sys};

/// Descriptor numbers in the child: readiness pipe, parent pipe, then the
/// listening sockets in order.
const READY_FD: i32 = 3;
const PARENT_FD: i32 = 4;
const FIRST_LISTENER_FD: i32 = 5;

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

pub(super) type Spawned = (Arc<Mutex<Child>>, OwnedFd, oneshot::Receiver<Outcome>);

pub(super) fn spawn(inner: &Inner) -> Result<Spawned, UpgradeError> {
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
    sys::cloexec_from(&mut cmd, first_unnamed);
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
