//! Measures the admin server: latency (p50, p99) of `GET /readyz?verbose`
//! with 20 registered checks, one request per connection as the kubelet
//! sends them, then the requests per second it sustains with several
//! clients. Not a test: numbers depend on the machine.
//!
//! Run it with:
//!
//! ```text
//! cargo run --release --example 07_admin_bench -- [--requests 2000] [--clients 4] [--seconds 3]
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lameduck::admin::AdminServer;
use lameduck::{BoxError, Health, Lifecycle, check_fn};

fn readyz(addr: SocketAddr) -> std::io::Result<bool> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.write_all(b"GET /readyz?verbose HTTP/1.1\r\nHost: bench\r\n\r\n")?;
    let mut out = Vec::with_capacity(1024);
    s.read_to_end(&mut out)?;
    Ok(out.starts_with(b"HTTP/1.1 200 "))
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), BoxError> {
    let (requests, clients, seconds) = (
        arg("--requests", 2000),
        arg("--clients", 4),
        arg("--seconds", 3),
    );
    let admin = AdminServer::loopback(0)?;
    let addr = admin.local_addr();
    let mut builder = Lifecycle::builder().component("admin", admin);
    for i in 0..20 {
        builder = builder.health_check(
            format!("check-{i:02}"),
            check_fn(|| async { Health::Healthy }),
        );
    }
    let lifecycle = builder.build()?;
    let handle = lifecycle.handle();
    let runner = std::thread::spawn(move || lifecycle.run_blocking());
    futures::executor::block_on(handle.ready());

    // Warm up, then latency from one client.
    for _ in 0..100 {
        assert!(readyz(addr)?);
    }
    let mut lat = Vec::with_capacity(requests as usize);
    for _ in 0..requests {
        let t0 = Instant::now();
        assert!(readyz(addr)?, "probe failed");
        lat.push(t0.elapsed());
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "GET /readyz?verbose, 20 checks, {requests} sequential requests: p50 {:?}, p99 {:?}, max {:?}",
        pct(0.50),
        pct(0.99),
        lat[lat.len() - 1]
    );

    // Throughput from several clients.
    let done = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (done, ok, failed) = (done.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    match readyz(addr) {
                        Ok(true) => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    done.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().map_err(|_| "client panicked")?;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "{clients} clients for {elapsed:.1} s: {:.0} requests/s ({ok} ok, {failed} failed)",
        ok as f64 / elapsed
    );

    handle.request_stop(None);
    runner.join().map_err(|_| "lifecycle panicked")??;
    Ok(())
}
