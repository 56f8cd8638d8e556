//! The control socket: whoever asks for an upgrade learns its result.
//!
//! A client connects to the Unix socket, writes `upgrade` and a newline, and
//! reads one line back: `ok <pid>` with the new process's PID, or
//! `error <kind> <message>` (the kind is an [`UpgradeErrorKind`] variant
//! name). The socket is handed to each new generation like any listener.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::future::poll_fn;

use super::{UpgradeError, UpgradeErrorKind, Upgraded};
use crate::logging::event;

/// The name the control socket is handed on under.
pub(crate) const NAME: &str = "lameduck-control";

/// One request from a client: where to send the result.
pub(crate) type Request = oneshot::Sender<Reply>;

/// The result for a client, and a signal the thread fires once the answer
/// is written (so a process that exits right after a successful upgrade
/// does not take the answer with it).
pub(crate) struct Reply {
    pub(crate) result: Result<Upgraded, UpgradeError>,
    pub(crate) written: oneshot::Sender<()>,
}

/// The thread that accepts clients, from the component's start until
/// shutdown begins or an upgrade succeeds.
pub(crate) struct Control {
    stop: Arc<AtomicBool>,
}

impl Control {
    /// Serves `listener` on a thread; each request goes to `requests`.
    pub(crate) fn serve(
        listener: UnixListener,
        mut requests: mpsc::Sender<Request>,
    ) -> io::Result<Control> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("lameduck-control".into())
            .spawn(move || accept_loop(&listener, &mut requests, &stopped))?;
        Ok(Control { stop })
    }

    /// Stops accepting (within a poll period).
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How often the thread looks at its stop flag while no client comes.
const POLL: Duration = Duration::from_millis(100);

fn accept_loop(listener: &UnixListener, requests: &mut mpsc::Sender<Request>, stop: &AtomicBool) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: POLL.as_nanos() as _,
    };
    while !stop.load(Ordering::Acquire) {
        // The listening socket is non-blocking (its flag is shared with the
        // other generation's copy): wait for a client with poll.
        let mut fds = [PollFd::new(listener, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                event!(target: "lameduck::upgrade", warn, { error = e }, "control socket: {e}");
                std::thread::sleep(POLL);
                continue;
            }
        }
        if stop.load(Ordering::Acquire) {
            break;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = answer(stream, requests, stop) {
                    event!(target: "lameduck::upgrade", warn, { error = e }, "control socket client: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                event!(target: "lameduck::upgrade", warn, { error = e }, "control socket: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

fn answer(
    stream: UnixStream,
    requests: &mut mpsc::Sender<Request>,
    stop: &AtomicBool,
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(&stream).take_line(&mut line)?;
    let reply = match line.trim() {
        "upgrade" => {
            let (tx, rx) = oneshot::channel();
            // Waits for room, then queues; fails once the component has
            // stopped listening.
            let sent = futures::executor::block_on(poll_fn(|cx| requests.poll_ready(cx)))
                .and_then(|()| requests.start_send(tx));
            let reply = match sent {
                Ok(()) => futures::executor::block_on(rx).ok(),
                Err(_) => None,
            };
            let Some(Reply { result, written }) = reply else {
                let refused = Err(UpgradeError::new(
                    UpgradeErrorKind::ShuttingDown,
                    "shutdown has begun",
                ));
                return (&stream).write_all(encode(&refused).as_bytes());
            };
            if result.is_ok() {
                // The service is the new process's now: the next client
                // must reach it, not this one.
                stop.store(true, Ordering::Release);
            }
            let sent = (&stream).write_all(encode(&result).as_bytes());
            let _ = written.send(());
            return sent;
        }
        other => format!("error Io unknown command {other:?}\n"),
    };
    (&stream).write_all(reply.as_bytes())
}

trait TakeLine {
    fn take_line(self, line: &mut String) -> io::Result<()>;
}

impl<R: BufRead> TakeLine for R {
    /// One line of at most 64 bytes.
    fn take_line(self, line: &mut String) -> io::Result<()> {
        io::Read::take(self, 64).read_line(line).map(drop)
    }
}

fn encode(result: &Result<Upgraded, UpgradeError>) -> String {
    match result {
        Ok(done) => format!("ok {}\n", done.pid),
        Err(e) => format!("error {:?} {}\n", e.kind(), one_line(&e.detail())),
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// Asks the process serving the control socket at `path` for an upgrade and
/// waits for its result: the new process's PID.
///
/// This is the client side of
/// [`UpgraderBuilder::control_socket`](super::UpgraderBuilder::control_socket),
/// for a program's "reload" command (systemd's `ExecReload=`): exit non-zero
/// when it fails, and `systemctl reload` fails with it.
///
/// Blocks until the answer comes: at once for a refusal, otherwise when the
/// new process is ready or has failed (at most the server's
/// [grace period](super::UpgraderBuilder::grace_period) and a moment).
///
/// # Errors
///
/// The upgrade was refused or failed (the error's [kind](UpgradeError::kind)
/// and message are the server's), or the socket could not be reached
/// ([`Io`](UpgradeErrorKind::Io)).
///
/// # Examples
///
/// ```no_run
/// match lameduck::upgrade::request_upgrade("/run/app/control.sock") {
///     Ok(pid) => println!("upgraded: new process {pid}"),
///     Err(e) => {
///         eprintln!("{e}");
///         std::process::exit(1);
///     }
/// }
/// ```
pub fn request_upgrade(path: impl AsRef<Path>) -> Result<u32, UpgradeError> {
    let path = path.as_ref();
    let io_err = |what: &str, e| {
        UpgradeError::io(
            UpgradeErrorKind::Io,
            &format!("{what} {}", path.display()),
            e,
        )
    };
    let mut stream = UnixStream::connect(path).map_err(|e| io_err("connecting to", e))?;
    stream
        .write_all(b"upgrade\n")
        .map_err(|e| io_err("writing to", e))?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(|e| io_err("reading from", e))?;
    let line = line.trim_end();
    if let Some(pid) = line.strip_prefix("ok ") {
        return pid
            .parse()
            .map_err(|_| UpgradeError::new(UpgradeErrorKind::Io, format!("bad answer {line:?}")));
    }
    match line.strip_prefix("error ").and_then(|r| r.split_once(' ')) {
        Some((kind, message)) => Err(UpgradeError::new(UpgradeErrorKind::named(kind), message)),
        None if line.is_empty() => Err(UpgradeError::new(
            UpgradeErrorKind::Io,
            format!("{} closed without an answer", path.display()),
        )),
        None => Err(UpgradeError::new(
            UpgradeErrorKind::Io,
            format!("bad answer {line:?}"),
        )),
    }
}
