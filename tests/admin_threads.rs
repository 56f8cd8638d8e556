//! The admin server's thread count stays the same whatever the number of
//! clients, and it survives running out of file descriptors. Alone in its
//! own test binary so that no other test's threads come and go while it
//! counts (`/proc/self/task`, so Linux only), and no other test's sockets
//! while it runs out of descriptors.
#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::executor::block_on;
use lameduck::Lifecycle;
use lameduck::admin::{AdminOptions, AdminServer};

/// Warnings about failed `accept`s.
static ACCEPT_FAILED: AtomicUsize = AtomicUsize::new(0);

struct Count;

impl log::Log for Count {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.target() == "lameduck"
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.args().to_string().contains("accept failed") {
            ACCEPT_FAILED.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn flush(&self) {}
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn probe(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(b"GET /livez HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn two_thousand_connections_add_no_thread_and_running_out_of_descriptors_is_survived() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    log::set_logger(&Count).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    let limit = getrlimit(Resource::Nofile);
    let wanted = 6000;
    if limit.current.is_some_and(|c| c < wanted) {
        let raised = limit.maximum.map_or(wanted, |m| m.min(wanted));
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(raised),
                maximum: limit.maximum,
            },
        );
    }
    let files = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    assert!(
        files >= wanted,
        "needs {wanted} open files, the limit is {files}"
    );

    // Room for all of them: no eviction, every socket really held.
    let admin =
        AdminServer::bind_with("127.0.0.1:0", AdminOptions::new().max_connections(2500)).unwrap();
    let addr = admin.local_addr();
    let lifecycle = Lifecycle::builder()
        .component("admin", admin)
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    let runner = std::thread::spawn(move || lifecycle.run_blocking());
    assert!(block_on(handle.ready()));
    assert!(probe(addr).starts_with("HTTP/1.1 200 OK\r\n"));
    let before = threads();

    let mut held = Vec::new();
    for i in 0..2000 {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
        if i % 2 == 0 {
            s.write_all(b"GET /livez HTTP/1.1\r\n").unwrap();
        }
        held.push(s);
    }
    // Every one of them accepted (the server answers a probe made after
    // them all), and not one thread more.
    let answer = probe(addr);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let during = threads();
    // The half-sent ones can still finish and are answered.
    for s in held.iter_mut().step_by(2).take(50) {
        s.write_all(b"\r\n").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    }
    eprintln!("threads: {before} before, {during} with 2,000 connections open");
    assert_eq!(during, before);
    drop(held);

    // Out of descriptors: the server cannot accept, backs off, and serves
    // again once descriptors are free.
    std::thread::sleep(Duration::from_millis(700)); // answered sockets closed
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let tight = Rlimit {
        current: Some(open + 10),
        maximum: getrlimit(Resource::Nofile).maximum,
    };
    setrlimit(Resource::Nofile, tight).unwrap();
    let crowd: Vec<TcpStream> = (0..40)
        .map_while(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok())
        .collect();
    // Twenty retries' worth of time out of descriptors.
    std::thread::sleep(Duration::from_millis(200));
    let opened = crowd.len();
    drop(crowd);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(files),
            maximum: getrlimit(Resource::Nofile).maximum,
        },
    )
    .unwrap();
    let answer = probe(addr);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    // Said once, not once per retry.
    assert_eq!(ACCEPT_FAILED.load(Ordering::SeqCst), 1);
    eprintln!("descriptors exhausted after {opened} client sockets; served again after");
    handle.request_shutdown(None);
    runner.join().unwrap().unwrap();
}
