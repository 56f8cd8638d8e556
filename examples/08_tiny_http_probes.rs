//! The probes in a server that is not tokio: `tiny_http`, a blocking,
//! thread-based server. The responder needs no HTTP crate and no runtime:
//! each request is answered with `futures::executor::block_on`.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example 08_tiny_http_probes
//! ```
//!
//! It starts, asks its own probes a few questions, stops, and exits 0.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use lameduck::{BoxError, Health, Lifecycle, ProbeRequest, check_fn};

fn fetch(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out.get(9..12).unwrap_or("???").to_owned();
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok(format!("{status}\n{body}"))
}

fn main() -> Result<(), BoxError> {
    let lifecycle = Lifecycle::builder()
        .health_check("disk", check_fn(|| async { Health::Healthy }))
        .build()?;
    let handle = lifecycle.handle();
    let probes = handle.probes();

    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0")?);
    let addr = server.server_addr().to_ip().ok_or("not an IP address")?;
    let serving = {
        let server = server.clone();
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                let accept = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("accept"))
                    .map(|h| h.value.as_str().to_owned())
                    .unwrap_or_default();
                let method = request.method().as_str().to_owned();
                let req = ProbeRequest::new(&method, request.url()).accept(&accept);
                let (status, headers, body) =
                    futures::executor::block_on(probes.respond(req)).into_parts();
                let mut response = tiny_http::Response::from_string(body).with_status_code(status);
                for (name, value) in headers {
                    if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
                    {
                        response.add_header(h);
                    }
                }
                let _ = request.respond(response);
            }
        })
    };

    let runner = std::thread::spawn(move || lifecycle.run_blocking());
    futures::executor::block_on(handle.ready());
    println!("GET /readyz?verbose:\n{}", fetch(addr, "/readyz?verbose")?);
    println!("GET /livez:\n{}\n", fetch(addr, "/livez")?);
    handle.request_shutdown(None);
    println!("stopping, GET /readyz:\n{}", fetch(addr, "/readyz")?);
    runner.join().map_err(|_| "lifecycle thread panicked")??;
    server.unblock();
    serving.join().map_err(|_| "server thread panicked")?;
    Ok(())
}

/// `println!`, but once the reader of stdout is gone
/// (`cargo run --example 08_tiny_http_probes | head -1`) it prints nothing more
/// instead of panicking.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        match writeln!(std::io::stdout(), $($arg)*) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            written => written.expect("printing to stdout"),
        }
    }};
}
use println;
