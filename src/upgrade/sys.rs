//! The one place that turns descriptor numbers into owned descriptors.
//!
//! Descriptors handed over at exec (by the parent generation, or by systemd)
//! arrive as bare numbers. Everything else in the crate works on `OwnedFd` /
//! `BorrowedFd` through safe APIs; only this module may create them from a
//! number, and it does so at most once per number for the whole process.
//! It also holds the one hook that runs between fork and exec.
#![allow(unsafe_code)]

use std::collections::HashSet;
use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// Numbers already taken (adopted), so no number is ever owned twice.
fn taken() -> &'static Mutex<HashSet<RawFd>> {
    static TAKEN: OnceLock<Mutex<HashSet<RawFd>>> = OnceLock::new();
    TAKEN.get_or_init(Default::default)
}

/// Calls `f` with a borrowed view of `raw`, if `raw` is open and not yet
/// adopted. Used to check an inherited descriptor before taking it.
pub(crate) fn inspect<R>(raw: RawFd, f: impl FnOnce(BorrowedFd<'_>) -> R) -> io::Result<R> {
    if raw < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "descriptors 0-2 are stdio, never inherited sockets",
        ));
    }
    let taken = crate::latch::lock(taken());
    if taken.contains(&raw) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "descriptor already adopted",
        ));
    }
    // SAFETY: `raw` was named by the manifest (or LISTEN_FDS) as open at
    // exec, and no `OwnedFd` in this process owns it (checked above, under
    // the lock, which we hold for the whole borrow so nothing adopts and
    // closes it meanwhile). The borrow does not outlive this call. If the
    // number was closed since exec, the calls made through the borrow fail
    // with EBADF; `fcntl(F_GETFD)` below checks that first.
    let fd = unsafe { BorrowedFd::borrow_raw(raw) };
    rustix::io::fcntl_getfd(fd)?;
    Ok(f(fd))
}

/// Takes ownership of `raw`. The caller has checked it with [`inspect`].
pub(crate) fn adopt(raw: RawFd) -> io::Result<OwnedFd> {
    let mut taken = crate::latch::lock(taken());
    if !taken.insert(raw) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "descriptor already adopted",
        ));
    }
    // SAFETY: `raw` is open (checked by `inspect` and again by the fcntl
    // below through a borrow valid for this statement only), it was handed
    // to this process at exec to own, and the `taken` set guarantees this is
    // the only `OwnedFd` ever made from it, so it is closed exactly once.
    let open = rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(raw) });
    if let Err(e) = open {
        taken.remove(&raw);
        return Err(e.into());
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Marks every descriptor from `first` up close-on-exec in the child, after
/// the descriptor mapping (registered before) and right before exec: a
/// descriptor this process inherited without close-on-exec from whoever
/// started it (a shell, a supervisor) is not passed on. Linux ≥ 5.11
/// (`close_range` with `CLOSE_RANGE_CLOEXEC`); elsewhere, and on older
/// kernels, only descriptors already marked close-on-exec are kept back.
#[cfg(target_os = "linux")]
pub(crate) fn cloexec_from(cmd: &mut Command, first: RawFd) {
    use std::os::unix::process::CommandExt;
    let first = first as libc::c_uint;
    let hook = move || {
        // Best effort: an old kernel answers ENOSYS or EINVAL, and the
        // descriptors then stay as they were.
        // SAFETY: a raw system call with integer arguments only; it touches
        // no memory of this process.
        unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
        Ok(())
    };
    // SAFETY: `pre_exec` runs the hook in the forked child, where only
    // async-signal-safe work is allowed: the hook makes one system call,
    // allocates nothing and takes no lock.
    unsafe { cmd.pre_exec(hook) };
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn cloexec_from(_cmd: &mut Command, _first: RawFd) {}

/// Removes `names` from this process's environment, if this process has a
/// single thread (Linux: `/proc/self/task`); returns whether it did. With
/// more than one thread another may read the environment meanwhile (C
/// code's `getenv` takes no lock), so the variables are then left in place.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn remove_env_if_single_threaded(names: &[&str]) -> bool {
    let single = std::fs::read_dir("/proc/self/task").is_ok_and(|d| d.count() == 1);
    if !single {
        return false;
    }
    for name in names {
        // SAFETY: this process has exactly one thread (checked just above),
        // and only this thread could start another: nothing reads or writes
        // the environment concurrently with this call.
        unsafe { std::env::remove_var(name) };
    }
    true
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn remove_env_if_single_threaded(_names: &[&str]) -> bool {
    false
}
