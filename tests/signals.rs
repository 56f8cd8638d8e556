//! Signals and lame-duck mode, with real processes and real signals.
//!
//! Most tests spawn `examples/02_signals` (built at the start by `cargo
//! build --example 02_signals`), wait for its `ready:` line, send signals
//! with `kill`, and read its log. Talk to it only on 127.0.0.1.
//! In-process tests use signals whose default action is harmless or that
//! no other test uses, one test at a time.
//!
//! Linux only: signal numbers are Linux's, and listener threads are
//! counted in `/proc/self/task`.
#![cfg(all(target_os = "linux", feature = "signals"))]

use std::io::{BufRead, BufReader, ErrorKind as IoErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lameduck::{
    BoxError, Component, Context, FORCED_EXIT_CODE, Lifecycle, ShutdownCause, SignalKind, Signals,
};

const SIGUSR2: i32 = 12;
/// Ignored by default: harmless if it arrives when nobody listens.
const SIGWINCH: i32 = 28;

/// Builds an example once per test binary and returns its path.
fn example(name: &'static str) -> PathBuf {
    static BUILT: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    // target/<profile>/deps/signals-<hash> → target/<profile>/examples/
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.contains(&name) {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--quiet", "--example", name]);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "cargo build --example {name} failed");
        assert!(path.exists(), "{} not found", path.display());
        built.push(name);
    }
    path
}

/// A running example and the lines it printed, stamped on arrival.
struct Service {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    log: Vec<String>,
    port: u16,
}

impl Service {
    /// Starts `02_signals` and waits until it is ready.
    fn spawn(args: &[&str]) -> Service {
        Service::spawn_example("02_signals", args)
    }

    fn spawn_example(name: &'static str, args: &[&str]) -> Service {
        let mut child = Command::new(example(name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("example starts");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let mut s = Service {
            child,
            lines: rx,
            log: Vec::new(),
            port: 0,
        };
        let ready = s.wait_for("ready:", Duration::from_secs(20));
        let port = ready.split("127.0.0.1:").nth(1).unwrap();
        s.port = port.split(' ').next().unwrap().parse().unwrap();
        s
    }

    /// Waits for a line starting with `prefix`; returns it.
    fn wait_for(&mut self, prefix: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((_, line)) => {
                    self.log.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no `{prefix}` line within {timeout:?}; log:\n{:#?}",
                    self.log
                ),
            }
        }
    }

    fn kill(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{signal} failed");
    }

    /// Waits for the process to exit, then collects the rest of its log.
    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let end = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < end,
                "still running after {timeout:?}; log:\n{:#?}",
                self.log
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        while let Ok((_, line)) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.log.push(line);
        }
        status
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The index of the first log line containing `needle`.
    fn line(&self, needle: &str) -> usize {
        self.log
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with `{needle}`; log:\n{:#?}", self.log))
    }

    /// Asserts that the log shows these lines, in this order.
    fn assert_order(&self, needles: &[&str]) {
        let at: Vec<usize> = needles.iter().map(|n| self.line(n)).collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "expected order {needles:?}, log:\n{:#?}",
            self.log
        );
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shutdown the example logs: lame duck, drain in reverse launch
/// order (http was launched after database), flush, stop.
const PHASES: &[&str] = &[
    "lame duck: readiness fails",
    "drain: http stops accepting",
    "drain: http stopped",
    "drain: database closed",
    "flush: outbox sent",
    "stop: logs flushed",
    "exit: clean shutdown",
];

/// Sends an HTTP/1.1 GET and returns the status code.
fn get(port: u16, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    let code = response.split(' ').nth(1).unwrap_or("0");
    Ok(code.parse().unwrap_or(0))
}

#[test]
fn sigterm_exits_zero_after_lame_duck_drain_flush_stop() {
    let lame_duck = Duration::from_millis(300);
    let drain_budget = Duration::from_millis(2000);
    let mut svc = Service::spawn(&[
        "--lame-duck-ms",
        "300",
        "--db-stop-ms",
        "100",
        "--shutdown-timeout-ms",
        "2000",
    ]);
    let sent = Instant::now();
    svc.kill("TERM");
    let status = svc.wait(Duration::from_secs(10));
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(0), "log:\n{:#?}", svc.log);
    assert!(
        took >= lame_duck,
        "lame duck cut short: exited after {took:?}"
    );
    assert!(
        took < lame_duck + drain_budget + Duration::from_secs(1),
        "exit took {took:?}"
    );
    svc.assert_order(PHASES);
    // The log names the signal, not a generic request.
    svc.assert_order(&[
        "shutting down: received SIGTERM",
        "lame duck: readiness fails",
    ]);
    // One event for one signal.
    assert!(
        !svc.log.iter().any(|l| l.contains("received SIGTERM: ")),
        "{:#?}",
        svc.log
    );
}

#[test]
fn second_signal_during_lame_duck_forces() {
    let mut svc = Service::spawn(&["--lame-duck-ms", "10000"]);
    svc.kill("TERM");
    svc.wait_for("lame duck:", Duration::from_secs(5));
    let sent = Instant::now();
    svc.kill("INT");
    let status = svc.wait(Duration::from_secs(8));
    let took = sent.elapsed();
    assert_eq!(
        status.code(),
        Some(i32::from(FORCED_EXIT_CODE)),
        "log:\n{:#?}",
        svc.log
    );
    assert!(took < Duration::from_secs(3), "forced exit took {took:?}");
    svc.line("exit: forced");
    svc.line("received SIGINT again: forcing");
    // Drainers are skipped when forced; stop hooks still run.
    assert!(
        !svc.log.iter().any(|l| l.starts_with("flush:")),
        "{:#?}",
        svc.log
    );
    svc.line("stop: logs flushed");
}

#[test]
fn http_in_flight_requests_complete_lame_duck_serves_then_port_refuses() {
    let mut svc = Service::spawn(&[
        "--lame-duck-ms",
        "800",
        "--db-stop-ms",
        "1500",
        "--shutdown-timeout-ms",
        "8000",
    ]);
    let port = svc.port;
    assert_eq!(get(port, "/readyz").unwrap(), 200);

    // Requests that outlive the lame-duck period: drain must wait for them.
    let slow: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || get(port, "/slow?ms=1500")))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    svc.kill("TERM");
    svc.wait_for("lame duck:", Duration::from_secs(5));

    // Lame duck: readiness fails, requests are still served.
    assert_eq!(get(port, "/readyz").unwrap(), 503);
    assert_eq!(get(port, "/").unwrap(), 200);

    // After http's drain (database still closing), the port refuses.
    svc.wait_for("drain: http stopped", Duration::from_secs(8));
    let refused = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.kind());
    assert_eq!(refused.err(), Some(IoErrorKind::ConnectionRefused));
    assert!(svc.is_running(), "the database should still be closing");

    for request in slow {
        assert_eq!(
            request.join().unwrap().unwrap(),
            200,
            "an in-flight request was cut"
        );
    }
    assert_eq!(svc.wait(Duration::from_secs(10)).code(), Some(0));
    svc.assert_order(PHASES);
}

#[test]
fn replaced_set_sigusr1_stops_and_sigterm_keeps_its_default_action() {
    // A lame-duck period, so the service observes it before the drain: with
    // none, its `run` may print only after the drain began.
    let mut usr1 = Service::spawn(&["--signals", "USR1", "--lame-duck-ms", "50"]);
    usr1.kill("USR1");
    assert_eq!(usr1.wait(Duration::from_secs(10)).code(), Some(0));
    usr1.line("shutting down: received SIGUSR1");
    usr1.assert_order(PHASES);

    let mut term = Service::spawn(&["--signals", "USR1", "--lame-duck-ms", "0"]);
    term.kill("TERM");
    let status = term.wait(Duration::from_secs(10));
    assert_eq!(
        status.signal(),
        Some(15),
        "SIGTERM should kill it: {status:?}"
    );
    assert!(
        !term.log.iter().any(|l| l.contains("lame duck")),
        "{:#?}",
        term.log
    );
}

#[test]
fn same_signal_handling_under_tokio_smol_and_futures() {
    let services: Vec<_> = ["tokio", "smol", "futures"]
        .into_iter()
        .map(|rt| {
            (
                rt,
                Service::spawn(&["--runtime", rt, "--lame-duck-ms", "100"]),
            )
        })
        .collect();
    for (rt, mut svc) in services {
        assert!(svc.log[svc.line("ready:")].ends_with(&format!("runtime={rt}")));
        svc.kill("TERM");
        let status = svc.wait(Duration::from_secs(10));
        assert_eq!(status.code(), Some(0), "{rt}: log:\n{:#?}", svc.log);
        svc.assert_order(PHASES);
    }
}

/// A second signal forces under every runtime too.
#[test]
fn forced_under_tokio_and_smol() {
    for rt in ["tokio", "smol"] {
        let mut svc = Service::spawn(&["--runtime", rt, "--lame-duck-ms", "10000"]);
        svc.kill("TERM");
        svc.wait_for("lame duck:", Duration::from_secs(5));
        svc.kill("TERM");
        let status = svc.wait(Duration::from_secs(5));
        assert_eq!(status.code(), Some(i32::from(FORCED_EXIT_CODE)), "{rt}");
    }
}

#[test]
fn axum_in_flight_request_completes_within_the_period() {
    let mut svc = Service::spawn_example(
        "06_axum_lameduck",
        &["--lame-duck-ms", "200", "--period-ms", "5000"],
    );
    let port = svc.port;
    let slow = std::thread::spawn(move || get(port, "/slow/1000"));
    std::thread::sleep(Duration::from_millis(100));
    svc.kill("TERM");
    svc.wait_for("lame duck:", Duration::from_secs(5));
    assert_eq!(get(port, "/readyz").unwrap(), 503);
    assert_eq!(get(port, "/").unwrap(), 200);
    assert_eq!(slow.join().unwrap().unwrap(), 200);
    assert_eq!(svc.wait(Duration::from_secs(10)).code(), Some(0));
    svc.line("period expired: false");
}

#[test]
fn axum_period_expires_then_close_and_the_error_says_so() {
    let mut svc = Service::spawn_example(
        "06_axum_lameduck",
        &["--lame-duck-ms", "0", "--period-ms", "300"],
    );
    let port = svc.port;
    let slow = std::thread::spawn(move || get(port, "/slow/20000"));
    std::thread::sleep(Duration::from_millis(100));
    let sent = Instant::now();
    svc.kill("TERM");
    assert_eq!(svc.wait(Duration::from_secs(10)).code(), Some(1));
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "{:?}",
        sent.elapsed()
    );
    svc.assert_order(&["period expired, closing", "timed out in stop after 300ms"]);
    svc.line("period expired: true");
    // The request was cut: no 200.
    assert_ne!(slow.join().unwrap().unwrap_or(0), 200);
}

// ---- the main demo: examples/03_service --serve ---------------------------

/// Starts `03_service --serve` on loopback; returns it and its admin port.
fn service_demo(extra: &[&str]) -> (Service, u16) {
    let mut args = vec![
        "--serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--admin-port",
        "0",
    ];
    args.extend_from_slice(extra);
    let svc = Service::spawn_example("03_service", &args);
    let ready = svc.log.last().unwrap();
    let admin = ready.split("admin=http://127.0.0.1:").nth(1).unwrap();
    let admin = admin.trim().parse().unwrap();
    (svc, admin)
}

#[test]
fn service_demo_sigterm_under_requests_lame_duck_drain_exit_zero() {
    let lame_duck = Duration::from_millis(1000);
    let (mut svc, admin) = service_demo(&["--lame-duck-ms", "1000"]);
    let port = svc.port;
    assert_eq!(get(admin, "/readyz").unwrap(), 200);

    // A few clients keep ordering through the signal and into the lame-duck
    // period (they stop well before it ends: after it, the port closes),
    // and one slow order is still in flight when the drain begins.
    let ordering = Arc::new(AtomicBool::new(true));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let ordering = ordering.clone();
            std::thread::spawn(move || {
                let mut codes = Vec::new();
                let end = Instant::now() + Duration::from_secs(10);
                while ordering.load(Ordering::SeqCst) && Instant::now() < end {
                    codes.push(get(port, "/order").map_err(|e| e.kind()));
                }
                codes
            })
        })
        .collect();
    let slow = std::thread::spawn(move || get(port, "/order?ms=2000"));
    std::thread::sleep(Duration::from_millis(200));
    let sent = Instant::now();
    svc.kill("TERM");
    svc.wait_for("[lameduck] shutting down", Duration::from_secs(5));
    // Lame duck: readiness fails at once, liveness passes, orders go on.
    assert_eq!(get(admin, "/readyz").unwrap(), 500);
    assert_eq!(get(admin, "/livez").unwrap(), 200);
    assert_eq!(get(port, "/order").unwrap(), 200);
    std::thread::sleep(Duration::from_millis(100));
    ordering.store(false, Ordering::SeqCst);

    let status = svc.wait(Duration::from_secs(15));
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(0), "log:\n{:#?}", svc.log);
    assert!(
        took >= lame_duck,
        "lame duck cut short: exit after {took:?}"
    );
    assert!(took < Duration::from_secs(8), "exit took {took:?}");
    for client in clients {
        let codes = client.join().unwrap();
        assert!(!codes.is_empty());
        assert!(codes.iter().all(|c| *c == Ok(200)), "{codes:?}");
    }
    assert_eq!(slow.join().unwrap().unwrap(), 200, "the slow order was cut");
    svc.assert_order(&[
        "[lameduck] shutting down: received SIGTERM",
        "[lameduck] phase: lame duck -> draining",
        "public: in-flight requests finished",
        "[lameduck] stopped `public`",
        "[lameduck] phase: draining -> flushing",
        "queue: flushed",
        "[lameduck] phase: stopping -> stopped",
        "shutdown began at",
    ]);
    let table = &svc.log[svc.line("shutdown began at")];
    assert!(table.ends_with("(received SIGTERM)"), "{table}");
}

#[test]
fn service_demo_second_signal_forces_exit_130() {
    let (mut svc, _) = service_demo(&["--lame-duck-ms", "10000"]);
    svc.kill("TERM");
    svc.wait_for("[lameduck] shutting down", Duration::from_secs(5));
    let sent = Instant::now();
    svc.kill("INT");
    let status = svc.wait(Duration::from_secs(8));
    assert_eq!(
        status.code(),
        Some(i32::from(FORCED_EXIT_CODE)),
        "{:#?}",
        svc.log
    );
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "{:?}",
        sent.elapsed()
    );
    svc.line("received SIGINT again: forcing");
}

/// Opens a connection, sends `head`, then (if `trickle`) one more byte
/// every 50 ms, the way a slowloris client holds a connection open. Returns
/// how long the server took to close it, or `None` if it was still open
/// after 5 s.
fn closed_after(port: u16, head: &[u8], trickle: bool) -> Option<Duration> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let start = Instant::now();
    s.write_all(head).unwrap();
    let mut buf = [0u8; 512];
    while start.elapsed() < Duration::from_secs(5) {
        if trickle && s.write_all(b"x").is_err() {
            return Some(start.elapsed());
        }
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), IoErrorKind::WouldBlock | IoErrorKind::TimedOut) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[test]
fn service_demo_disconnects_clients_that_never_finish_their_headers() {
    let timeout = Duration::from_millis(300);
    let (mut svc, _) = service_demo(&["--header-read-timeout-ms", "300", "--lame-duck-ms", "100"]);
    let port = svc.port;
    let cases: [(&str, &[u8], bool); 3] = [
        ("silent", b"", false),
        ("half a header", b"GET / HTTP/1.1\r\nHost: x\r\n", false),
        ("slowloris", b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ", true),
    ];
    for (what, head, trickle) in cases {
        let took = closed_after(port, head, trickle);
        let took = took.unwrap_or_else(|| panic!("{what}: still connected after 5 s"));
        assert!(
            took >= timeout - Duration::from_millis(20) && took < Duration::from_secs(3),
            "{what}: closed after {took:?}"
        );
    }
    // A client that does finish its headers is served.
    assert_eq!(get(port, "/").unwrap(), 200);
    svc.kill("TERM");
    assert_eq!(svc.wait(Duration::from_secs(15)).code(), Some(0));
}

// ---- in-process ----------------------------------------------------------

/// In-process tests share the process's signal dispositions and count its
/// threads: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // The previous test's listener may still be on its way out.
    eventually("earlier listeners exit", || listener_threads() == 0);
    guard
}

fn raise(signal: i32) {
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(std::process::id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// How many `lameduck-signal` threads this process has.
fn listener_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "lameduck-signal")
        .count()
}

fn eventually(what: &str, cond: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(3);
    while !cond() {
        assert!(Instant::now() < end, "{what}: not within 3 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn listener_thread_exits_when_the_lifecycle_stops() {
    let _serial = serial();
    let lifecycle = Lifecycle::builder()
        .signals(Signals::only([SignalKind::from_raw(SIGWINCH)]))
        .build()
        .unwrap();
    eventually("listener thread starts", || listener_threads() == 1);
    let handle = lifecycle.handle();
    std::thread::spawn(move || {
        futures::executor::block_on(handle.ready());
        raise(SIGWINCH);
    });
    futures::executor::block_on(lifecycle.run()).unwrap();
    eventually("listener thread exits", || listener_threads() == 0);
}

#[test]
fn listener_of_a_lifecycle_dropped_unrun_exits_on_the_next_signal() {
    let _serial = serial();
    let lifecycle = Lifecycle::builder()
        .signals(Signals::only([SignalKind::from_raw(SIGWINCH)]))
        .build()
        .unwrap();
    eventually("listener thread starts", || listener_threads() == 1);
    drop(lifecycle);
    raise(SIGWINCH); // default action: ignored
    eventually("listener thread exits", || listener_threads() == 0);
}

#[test]
fn dropping_a_listener_stops_it() {
    let _serial = serial();
    let lifecycle = Lifecycle::builder().build().unwrap();
    let listener = Signals::only([SignalKind::from_raw(SIGWINCH)])
        .listen(&lifecycle.handle())
        .unwrap();
    eventually("listener thread starts", || listener_threads() == 1);
    drop(listener); // joins the thread
    assert_eq!(listener_threads(), 0);
    raise(SIGWINCH);
    std::thread::sleep(Duration::from_millis(100));
    assert!(!lifecycle.handle().is_shutting_down());
}

#[test]
fn custom_on_signal_replaces_the_default_path() {
    let _serial = serial();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let lifecycle = Lifecycle::builder()
        .signals(
            Signals::only([SignalKind::from_raw(SIGWINCH)]).on_signal(move |kind, handle| {
                let mut seen = seen2.lock().unwrap();
                seen.push(kind);
                // Stop on the second signal only, and gracefully.
                if seen.len() == 2 {
                    handle.request_shutdown(Some("second SIGWINCH".into()));
                }
            }),
        )
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    let after_first = std::thread::spawn(move || {
        futures::executor::block_on(handle.ready());
        raise(SIGWINCH);
        std::thread::sleep(Duration::from_millis(200));
        let stopping = handle.is_shutting_down();
        raise(SIGWINCH);
        stopping
    });
    let err = futures::executor::block_on(lifecycle.run()).unwrap_err();
    assert!(!after_first.join().unwrap(), "the first signal stopped it");
    assert!(err.is_requested(), "{err}");
    assert!(!err.is_forced());
    assert_eq!(*seen.lock().unwrap(), [SignalKind::from_raw(SIGWINCH); 2]);
}

#[test]
fn the_signal_is_the_recorded_cause_and_a_second_one_keeps_it() {
    let _serial = serial();
    let winch = SignalKind::from_raw(SIGWINCH);
    let lifecycle = Lifecycle::builder()
        .lame_duck(Duration::from_secs(30))
        .signals(Signals::only([winch]))
        .component("stubborn", Stubborn)
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    let watcher = handle.clone();
    let raiser = std::thread::spawn(move || {
        futures::executor::block_on(watcher.ready());
        raise(SIGWINCH);
        futures::executor::block_on(watcher.shutting_down());
        let first = watcher.shutdown_cause();
        raise(SIGWINCH);
        first
    });
    let err = futures::executor::block_on(lifecycle.run()).unwrap_err();
    assert!(err.is_forced(), "{err}");
    assert_eq!(raiser.join().unwrap(), Some(ShutdownCause::Signal(winch)));
    assert_eq!(handle.shutdown_cause(), Some(ShutdownCause::Signal(winch)));
    assert_eq!(
        handle.report().shutdown_cause(),
        Some(&ShutdownCause::Signal(winch))
    );
}

/// A component that never stops by itself.
struct Stubborn;
impl Component for Stubborn {
    async fn run(&self, _cx: &Context) -> Result<(), BoxError> {
        futures::future::pending().await
    }
}

/// A logger that stalls the thread logging the `Forced` error, which
/// widens the window between the force flag and the recorded error.
struct SlowForcedLog;

impl log::Log for SlowForcedLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if record
            .args()
            .to_string()
            .starts_with("shutdown forced: graceful")
        {
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    fn flush(&self) {}
}

fn slow_forced_log() {
    static LOG: SlowForcedLog = SlowForcedLog;
    if log::set_logger(&LOG).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}

#[test]
fn engine_force_stop_records_forced_before_run_returns() {
    slow_forced_log();
    let lifecycle = Lifecycle::builder()
        .lame_duck(Duration::from_secs(30))
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    std::thread::spawn(move || {
        // Ready first: a lifecycle that never became ready skips the lame duck.
        futures::executor::block_on(handle.ready());
        handle.request_shutdown(None);
        std::thread::sleep(Duration::from_millis(100));
        handle.force_shutdown();
    });
    let outcome = lifecycle.run_blocking();
    assert!(outcome.is_err(), "a forced shutdown returned Ok");
}

#[test]
fn second_signal_forces_in_process_with_forced_error_and_code() {
    let _serial = serial();
    // The signals path records `Forced` before it sets the flag, so even a
    // stalled logger cannot make `run` return before the error is in.
    slow_forced_log();
    let lifecycle = Lifecycle::builder()
        .lame_duck(Duration::from_secs(30))
        .signals(Signals::only([SignalKind::from_raw(SIGWINCH)]))
        .component("stubborn", Stubborn)
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    std::thread::spawn(move || {
        futures::executor::block_on(handle.ready());
        raise(SIGWINCH);
        futures::executor::block_on(handle.shutting_down());
        raise(SIGWINCH);
    });
    let started = Instant::now();
    let outcome = futures::executor::block_on(lifecycle.run());
    assert!(started.elapsed() < Duration::from_secs(10), "not forced");
    let err = outcome.as_ref().unwrap_err();
    assert!(err.is_forced(), "{err}");
    assert!(err.to_string().contains("forced"), "{err}");
    assert_eq!(
        lameduck::exit_code(&outcome),
        std::process::ExitCode::from(FORCED_EXIT_CODE)
    );
}

#[test]
fn signals_that_cannot_be_caught_are_config_errors() {
    for raw in [9, 19, 0, 500] {
        let err = Lifecycle::builder()
            .signals(Signals::only([SignalKind::from_raw(raw)]))
            .build()
            .unwrap_err();
        assert!(err.is_config(), "{raw}: {err}");
    }
}

#[test]
fn exit_codes() {
    use std::process::ExitCode;
    let ok = Lifecycle::builder().build().unwrap();
    ok.handle().request_shutdown(None);
    assert_eq!(lameduck::exit_code(&ok.run_blocking()), ExitCode::SUCCESS);

    let failed = Lifecycle::builder().build().unwrap();
    failed.handle().request_shutdown(Some("boom".into()));
    assert_eq!(
        lameduck::exit_code(&failed.run_blocking()),
        ExitCode::FAILURE
    );

    // An error first, then a force: forced wins.
    let both = Lifecycle::builder().build().unwrap();
    both.handle().request_shutdown(Some("boom".into()));
    both.handle().force_shutdown();
    let outcome = both.run_blocking();
    assert!(!outcome.as_ref().unwrap_err().is_forced());
    assert_eq!(lameduck::exit_code(&outcome), ExitCode::from(130));
}

/// Run by `default_action_comes_back_once_no_lifecycle_listens` in a child
/// process: SIGUSR2 stops the lifecycle, then — nobody listening any more —
/// kills the process.
#[test]
#[ignore = "helper: run in a child process by another test"]
fn child_default_action_comes_back() {
    if std::env::var_os("LAMEDUCK_SIGNALS_CHILD").is_none() {
        return;
    }
    let lifecycle = Lifecycle::builder()
        .signals(Signals::only([SignalKind::from_raw(SIGUSR2)]))
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    std::thread::spawn(move || {
        futures::executor::block_on(handle.ready());
        raise(SIGUSR2);
    });
    lifecycle.run_blocking().unwrap();
    println!("child: stopped by SIGUSR2");
    raise(SIGUSR2);
    std::thread::sleep(Duration::from_secs(5));
    println!("child: survived");
}

#[test]
fn default_action_comes_back_once_no_lifecycle_listens() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_default_action_comes_back",
            "--ignored",
            "--nocapture",
        ])
        .env("LAMEDUCK_SIGNALS_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("child: stopped by SIGUSR2"), "{stdout}");
    assert!(!stdout.contains("child: survived"), "{stdout}");
    assert_eq!(out.status.signal(), Some(SIGUSR2), "{:?}", out.status);
}

/// Prints the time from SIGTERM to exit with a zero lame-duck period,
/// median of 10 runs. A measurement, not a test: run it with
/// `cargo test --test signals -- --ignored measure --nocapture`.
#[test]
#[ignore = "measurement"]
fn measure_sigterm_to_exit() {
    let mut times: Vec<Duration> = (0..10)
        .map(|_| {
            let mut svc = Service::spawn(&["--lame-duck-ms", "0"]);
            // Includes starting `kill` (about a millisecond).
            let sent = Instant::now();
            svc.kill("TERM");
            let status = svc.child.wait().unwrap();
            let took = sent.elapsed();
            assert_eq!(status.code(), Some(0));
            took
        })
        .collect();
    times.sort();
    println!(
        "SIGTERM to exit, zero lame duck: median {:?} (min {:?}, max {:?})",
        (times[4] + times[5]) / 2,
        times[0],
        times[9]
    );
}
