//! An answer's bytes on the wire: status line, headers and body, written by
//! the loop or by the checks' side alike.

use crate::health::ProbeResponse;

/// The answer on the wire. `head`: no body; `keep_alive`: the connection
/// stays open.
pub(super) fn response_bytes(resp: &ProbeResponse, head: bool, keep_alive: bool) -> Vec<u8> {
    use std::fmt::Write as _;
    let body = if head { "" } else { resp.body() };
    // One allocation: the head is rarely over 200 bytes.
    let mut out = String::with_capacity(256 + body.len());
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        resp.status(),
        reason(resp.status())
    );
    for (name, value) in resp.headers() {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    if !head {
        let _ = write!(out, "Content-Length: {}\r\n", body.len());
    }
    out.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    out.push_str(body);
    out.into_bytes()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        s if (400..500).contains(&s) => "Client Error",
        s if (500..600).contains(&s) => "Server Error",
        _ => "Unknown",
    }
}
