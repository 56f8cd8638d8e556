//! The admin server's sockets: the accept loop and one bounded request per
//! connection, parsed by `httparse`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use futures::future::{Either, select};
use futures_timer::Delay;

use super::Inner;
use crate::health::{ProbeRequest, ProbeResponse, Probes};

const MAX_HEADERS: usize = 32;

/// A parsed request waiting for the checks, and where to send the answer.
pub(super) struct Job {
    method: String,
    target: String,
    accept: String,
    reply: oneshot::Sender<ProbeResponse>,
}

impl Job {
    pub(super) fn answer(self, probes: &Probes) -> impl Future<Output = ()> + Send + 'static {
        let fut =
            probes.respond(ProbeRequest::new(&self.method, &self.target).accept(&self.accept));
        let reply = self.reply;
        async move {
            let _ = reply.send(fut.await);
        }
    }
}

/// Counts a connection for as long as its thread lives.
struct Slot(Arc<Inner>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(super) fn accept_loop(
    listener: TcpListener,
    inner: Arc<Inner>,
    jobs: async_channel::Sender<Job>,
) {
    for conn in listener.incoming() {
        if inner.stopping.load(Ordering::Acquire) {
            break;
        }
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors, or a connection reset before accept:
                // back off a little instead of spinning.
                log::warn!(target: "lameduck", "admin server: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let max = inner.options.max_connections;
        if inner.active.fetch_add(1, Ordering::AcqRel) >= max {
            inner.active.fetch_sub(1, Ordering::AcqRel);
            reject(stream);
            continue;
        }
        let slot = Slot(inner.clone());
        let jobs = jobs.clone();
        let spawned = std::thread::Builder::new()
            .name("lameduck-admin-conn".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                let inner = slot.0.clone();
                if let Err(e) = serve(stream, &inner, &jobs) {
                    log::debug!(target: "lameduck", "admin server: connection: {e}");
                }
                drop(slot);
            });
        if let Err(e) = spawned {
            // The closure, its slot and its stream were dropped with it.
            log::warn!(target: "lameduck", "admin server: cannot spawn a thread: {e}");
        }
    }
    log::debug!(target: "lameduck", "admin server: no longer accepting");
}

/// Over the connection limit: a short answer, never a wait.
fn reject(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let resp = ProbeResponse::bad_request(503, "503 too many connections");
    let _ = write_response(&mut stream, &resp, false);
}

fn serve(
    mut stream: TcpStream,
    inner: &Inner,
    jobs: &async_channel::Sender<Job>,
) -> io::Result<()> {
    let opts = &inner.options;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(opts.write_timeout))?;
    let deadline = Instant::now() + opts.header_timeout;
    let mut buf = vec![0u8; opts.max_request_bytes];
    let mut len = 0;
    let job = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return finish(
                stream,
                &ProbeResponse::bad_request(408, "408 request timeout"),
            );
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Ok(()),
            Ok(n) => len += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return finish(
                    stream,
                    &ProbeResponse::bad_request(408, "408 request timeout"),
                );
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                let accept = req
                    .headers
                    .iter()
                    .filter(|h| h.name.eq_ignore_ascii_case("accept"))
                    .filter_map(|h| std::str::from_utf8(h.value).ok())
                    .collect::<Vec<_>>()
                    .join(",");
                let (tx, rx) = oneshot::channel();
                let job = Job {
                    method: req.method.unwrap_or("GET").to_owned(),
                    target: req.path.unwrap_or("/").to_owned(),
                    accept,
                    reply: tx,
                };
                break (job, rx);
            }
            Ok(httparse::Status::Partial) if len == buf.len() => {
                return finish(
                    stream,
                    &ProbeResponse::bad_request(431, "431 request header fields too large"),
                );
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return finish(
                    stream,
                    &ProbeResponse::bad_request(431, "431 request header fields too large"),
                );
            }
            Err(_) => return finish(stream, &ProbeResponse::bad_request(400, "400 bad request")),
        }
    };
    let (job, rx) = job;
    let head = job.method == "HEAD";
    if jobs.try_send(job).is_err() {
        return finish(
            stream,
            &ProbeResponse::bad_request(503, "503 shutting down"),
        );
    }
    let answer = futures::executor::block_on(select(rx, Delay::new(opts.response_timeout)));
    let resp = match answer {
        Either::Left((Ok(resp), _)) => resp,
        Either::Left((Err(_), _)) => ProbeResponse::bad_request(503, "503 shutting down"),
        Either::Right(_) => ProbeResponse::bad_request(503, "503 checks did not answer in time"),
    };
    write_response(&mut stream, &resp, head)?;
    linger(stream);
    Ok(())
}

/// Answers an error and closes.
fn finish(mut stream: TcpStream, resp: &ProbeResponse) -> io::Result<()> {
    write_response(&mut stream, resp, false)?;
    linger(stream);
    Ok(())
}

fn write_response(stream: &mut TcpStream, resp: &ProbeResponse, head: bool) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status(), reason(resp.status()));
    for (name, value) in resp.headers() {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    if !head {
        out.push_str(&format!("Content-Length: {}\r\n", resp.body().len()));
    }
    out.push_str("Connection: close\r\n\r\n");
    out.push_str(resp.body());
    stream.write_all(out.as_bytes())?;
    stream.flush()
}

/// Closes our side, then reads what the client still sends for a moment,
/// so that unread input does not turn the close into a reset that could
/// destroy the response before the client read it.
fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let deadline = Instant::now() + Duration::from_millis(200);
    let mut sink = [0u8; 4096];
    let mut total = 0usize;
    while Instant::now() < deadline && total < 256 * 1024 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}
