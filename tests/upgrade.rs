//! Zero-downtime upgrades with real processes on loopback.
//!
//! Most tests run the `04_upgrade` example (built on first use) and drive it
//! with SIGHUP; the in-process ones make this test binary the parent
//! generation and the example its child.
#![cfg(all(unix, feature = "upgrade"))]

mod support;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lameduck::Lifecycle;
use lameduck::upgrade::{UpgradeErrorKind, Upgrader};
use support::*;

#[test]
fn zero_downtime_across_20_upgrades() {
    let mut server = Server::start(&[]);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, ok, addr) = (stop.clone(), ok.clone(), server.addr);
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                let mut pids = HashSet::new();
                while !stop.load(Ordering::Relaxed) {
                    match http_get(addr, "/") {
                        Ok(body) => {
                            pids.insert(pid_of(&body));
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => failures.push(e.to_string()),
                    }
                }
                (failures, pids)
            })
        })
        .collect();

    let mut generations = vec![server.pid()];
    for i in 0..20 {
        if i == 10 {
            // A slow request accepted by the old process completes across
            // the upgrade, answered by the old process.
            let addr = server.addr;
            let slow = std::thread::spawn(move || http_get(addr, "/slow"));
            std::thread::sleep(Duration::from_millis(300));
            let old = server.pid();
            generations.push(server.upgrade());
            let body = slow
                .join()
                .unwrap()
                .expect("slow request across an upgrade");
            assert_eq!(
                pid_of(&body),
                old,
                "the slow request is answered by the old process"
            );
        } else {
            generations.push(server.upgrade());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let mut seen = HashSet::new();
    for c in clients {
        let (failures, pids) = c.join().unwrap();
        assert!(failures.is_empty(), "failed requests: {failures:?}");
        seen.extend(pids);
    }
    let unique: HashSet<_> = generations.iter().collect();
    assert_eq!(unique.len(), 21, "21 distinct generations");
    assert!(
        seen.len() >= 10,
        "responses show the PID changing: {seen:?}"
    );
    assert!(seen.contains(generations.last().unwrap()));
    assert!(ok.load(Ordering::Relaxed) > 100);
}

/// Keep-alive clients that retry nothing, under continuous load across 50
/// upgrades: no request fails. A server that closes idle keep-alive
/// connections when it drains loses the requests clients send on them at
/// that moment (golang/go#23829); 04_upgrade's keep-alive mode closes a
/// connection only right after an answer that says `Connection: close`.
#[test]
fn keep_alive_clients_lose_nothing_across_50_upgrades() {
    const UPGRADES: usize = 50;
    let began = Instant::now();
    let mut server = Server::start(&["DEMO_KEEP_ALIVE=1"]);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, addr) = (stop.clone(), server.addr);
            std::thread::spawn(move || {
                let mut client = KeepAliveClient::new(addr);
                let (mut ok, mut reused, mut closes) = (0, 0, 0);
                let mut failures = Vec::new();
                let mut pids = HashSet::new();
                while !stop.load(Ordering::Relaxed) && failures.len() < 10 {
                    match client.get("/") {
                        Ok(answer) => {
                            pids.insert(pid_of(&answer.body));
                            ok += 1;
                            reused += usize::from(answer.reused);
                            closes += usize::from(answer.close);
                        }
                        Err(e) => failures.push(e.to_string()),
                    }
                }
                (ok, reused, closes, failures, pids)
            })
        })
        .collect();

    let mut generations = vec![server.pid()];
    let mut slowest = Duration::ZERO;
    for _ in 0..UPGRADES {
        let old = server.pid();
        let t = Instant::now();
        let new = server.upgrade();
        slowest = slowest.max(t.elapsed());
        assert_ne!(new, old, "the upgrade moved the PID");
        generations.push(new);
    }
    // The newest generation serves the clients for a moment.
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);

    let (mut ok, mut reused, mut closes) = (0, 0, 0);
    let mut failures = Vec::new();
    let mut seen = HashSet::new();
    for c in clients {
        let (o, r, c, f, pids) = c.join().unwrap();
        (ok, reused, closes) = (ok + o, reused + r, closes + c);
        failures.extend(f);
        seen.extend(pids);
    }
    let took = began.elapsed();
    eprintln!(
        "keep-alive: {ok} requests ({reused} on a reused connection, {closes} \
         answered with Connection: close) from {} generations, {} failed, \
         {UPGRADES} upgrades in {took:.1?} (slowest {slowest:.0?})",
        seen.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    let unique: HashSet<_> = generations.iter().collect();
    assert_eq!(unique.len(), UPGRADES + 1, "every upgrade moved the PID");
    // Connections were kept: most requests reused one, and each
    // generation's clients were sent away with `Connection: close`.
    assert!(ok > 10 * UPGRADES, "only {ok} requests");
    assert!(
        reused * 2 > ok,
        "{reused} of {ok} requests reused a connection"
    );
    assert!(closes >= UPGRADES, "{closes} Connection: close answers");
    assert!(seen.len() > UPGRADES / 2, "answers came from {seen:?}");
    assert!(seen.contains(generations.last().unwrap()));
    // No old generation waited for an idle keep-alive connection to time
    // out (9 s): each closed once its clients had been answered.
    assert!(
        slowest < Duration::from_secs(5),
        "an upgrade took {slowest:?}"
    );
}

/// A keep-alive connection idle when its generation hands over is not
/// closed under the client: its next request is answered by the old
/// generation, with `Connection: close`, and then the connection closes.
#[test]
fn idle_keep_alive_connection_gets_its_next_answer_from_the_old_process() {
    let mut server = Server::start(&["DEMO_KEEP_ALIVE=1"]);
    let mut client = KeepAliveClient::new(server.addr);
    let first = client.get("/").unwrap();
    assert!(!first.close, "kept alive: {first:?}");
    let old = server.hand_over();
    assert_eq!(pid_of(&first.body), old);
    let new = server.pid();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        process_exists(old),
        "the old process keeps the idle connection for its next request"
    );

    let second = client.get("/").unwrap();
    assert!(second.reused, "same connection: {second:?}");
    assert_eq!(pid_of(&second.body), old, "answered by the old process");
    assert!(second.close, "told to reconnect: {second:?}");
    wait_until(Duration::from_secs(3), || !process_exists(old));

    let third = client.get("/").unwrap();
    assert!(!third.reused && !third.close, "{third:?}");
    assert_eq!(pid_of(&third.body), new, "the new process answers");
}

/// A keep-alive connection that stays idle through the hand-over holds the
/// old process only until nine tenths of its shutdown timeout: then it is
/// closed, and the old process still exits cleanly, within the timeout.
#[test]
fn idle_keep_alive_connection_is_closed_before_the_shutdown_timeout() {
    let mut server = Server::start(&["DEMO_KEEP_ALIVE=1", "DEMO_SHUTDOWN_MS=2000"]);
    let mut client = KeepAliveClient::new(server.addr);
    assert!(!client.get("/").unwrap().close);
    let began = Instant::now();
    let old = server.hand_over();
    let exit = server
        .wait_line(
            |l| l.starts_with(&format!("exit pid={old} ")),
            Duration::from_secs(10),
        )
        .expect("the old process exits");
    let took = began.elapsed();
    assert_eq!(
        exit,
        format!("exit pid={old} ok=true"),
        "its shutdown finished within the timeout"
    );
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(5),
        "the idle connection was closed after {took:?}"
    );
    // The one request this server can lose: sent on a connection idle for
    // the whole shutdown, after the server gave up on it.
    assert!(client.get("/").is_err(), "the connection was closed");
    let next = client.get("/").unwrap();
    assert_eq!(pid_of(&next.body), server.pid(), "the new process answers");
}

#[test]
fn same_socket_throughout() {
    let dir = temp_dir("same-socket");
    let path = dir.join("s.sock");
    let unix_arg = format!("DEMO_UNIX={}", path.display());
    let mut server = Server::start(&[&unix_arg]);
    let sock = |server: &Server| {
        let tcp = http_get(server.addr, "/sock").unwrap();
        let unix = unix_get(&path, "/sock").unwrap();
        (field(&tcp, "tcp"), field(&unix, "unix_ino"), pid_of(&unix))
    };
    let (tcp0, ino0, pid0) = sock(&server);
    assert_eq!(tcp0, server.addr.to_string());
    for _ in 0..3 {
        let pid = server.upgrade();
        assert_descriptor_flags(pid);
        let (tcp, ino, pid) = sock(&server);
        assert_ne!(pid, pid0);
        assert_eq!(tcp, tcp0, "same TCP address");
        assert_eq!(ino, ino0, "same Unix socket inode");
    }
}

/// Every descriptor above stdio is close-on-exec (so none leaks into a
/// child beyond those the manifest names), and every listening socket is
/// non-blocking.
fn assert_descriptor_flags(pid: u32) {
    const O_NONBLOCK: u32 = 0o4000;
    const O_CLOEXEC: u32 = 0o2000000;
    let mut listeners = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let fd: u32 = entry.file_name().to_string_lossy().parse().unwrap();
        let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")) else {
            continue; // closed meanwhile
        };
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
            .unwrap();
        if fd > 2 {
            assert!(
                flags & O_CLOEXEC != 0,
                "descriptor {fd} of {pid} is inherited by children"
            );
        }
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"));
        if (fd == 5 || fd == 6) && is_socket {
            listeners += 1;
            assert!(
                flags & O_NONBLOCK != 0,
                "listener {fd} of {pid} is blocking"
            );
        }
    }
    assert_eq!(listeners, 2, "both listeners on their fixed descriptors");
}

#[test]
fn refused_while_the_parent_is_still_draining() {
    let mut server = Server::start(&[]);
    let addr = server.addr;
    let old = server.pid();
    let slow = std::thread::spawn(move || http_get(addr, "/slow"));
    std::thread::sleep(Duration::from_millis(300));
    // Not `server.upgrade()`: the old process is kept alive by the slow
    // request, so do not wait for it to exit.
    signal(old, rustix::process::Signal::HUP);
    wait_until(Duration::from_secs(10), || {
        server.try_pid().is_some_and(|p| p != old)
    });
    let new = server.pid();
    assert!(process_exists(old), "the old process is still draining");
    server.drain_lines();
    signal(new, rustix::process::Signal::HUP);
    let refused = server
        .wait_line(|l| l.contains("upgrade refused"), Duration::from_secs(2))
        .expect("refused");
    assert!(refused.contains(&format!("[{new}]")), "{refused}");
    assert!(
        refused.contains("parent generation has not exited"),
        "{refused}"
    );
    assert_eq!(pid_of(&slow.join().unwrap().unwrap()), old);
    wait_until(Duration::from_secs(10), || !process_exists(old));
    assert_ne!(
        server.upgrade(),
        new,
        "once the parent is gone, upgrades proceed"
    );
}

#[test]
fn crash_during_init_is_harmless() {
    let dir = temp_dir("crash");
    let fail = dir.join("fail");
    let fail_arg = format!("DEMO_FAIL_FILE={}", fail.display());
    let mut server = Server::start(&[&fail_arg, "DEMO_GRACE_MS=800"]);
    let old = server.pid();
    let fds_before = field(&http_get(server.addr, "/fds").unwrap(), "fds");

    for mode in ["exit1", "panic", "sigkill", "hang"] {
        std::fs::write(&fail, if mode == "sigkill" { "hang" } else { mode }).unwrap();
        server.drain_lines();
        let sent = Instant::now();
        signal(old, rustix::process::Signal::HUP);
        let child = server
            .wait_line(
                |l| l.contains("started new process"),
                Duration::from_secs(5),
            )
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u32>().unwrap())
            .expect("a new process is started");
        let from = if mode == "sigkill" {
            std::thread::sleep(Duration::from_millis(200));
            signal(child, rustix::process::Signal::KILL);
            Instant::now()
        } else {
            sent
        };
        let failed = server
            .wait_line(|l| l.contains("upgrade failed"), Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{mode}: no failure reported"));
        let took = from.elapsed();
        let budget = if mode == "hang" {
            assert!(
                took >= Duration::from_millis(800),
                "{mode}: before the grace period"
            );
            Duration::from_millis(1800)
        } else {
            Duration::from_secs(1)
        };
        assert!(took < budget, "{mode}: error after {took:?}: {failed}");
        assert!(
            failed.contains(&format!("[{old}]")),
            "reported by the old process"
        );
        // No zombie: the failed child was reaped by the old process.
        wait_until(Duration::from_secs(2), || !process_exists(child));
        assert!(
            children_of(old).is_empty(),
            "{mode}: children left: {:?}",
            children_of(old)
        );
        // The old process still serves and still owns the PID file.
        assert_eq!(pid_of(&http_get(server.addr, "/").unwrap()), old, "{mode}");
        assert_eq!(server.pid(), old, "{mode}: PID file restored");
    }
    assert_eq!(
        field(&http_get(server.addr, "/fds").unwrap(), "fds"),
        fds_before,
        "failed upgrades leak no descriptor in the old process"
    );
    std::fs::remove_file(&fail).unwrap();
    let new = server.upgrade();
    assert_ne!(new, old, "the next upgrade succeeds");
}

#[test]
fn no_descriptor_leak_after_20_upgrades() {
    let mut server = Server::start(&[]);
    // A new generation closes its parent pipe a moment after the parent
    // exits (a thread sees end-of-file): count once the number is steady.
    let fds = |server: &Server| {
        let count = || -> u32 {
            field(&http_get(server.addr, "/fds").unwrap(), "fds")
                .parse()
                .unwrap()
        };
        let mut last = count();
        for _ in 0..60 {
            std::thread::sleep(Duration::from_millis(50));
            let now = count();
            if now == last {
                return now;
            }
            last = now;
        }
        last
    };
    // The first generation may hold descriptors its launcher leaked into it
    // (this test harness's, a shell's); they are not passed on. Count from
    // the second generation.
    let launched = fds(&server);
    server.upgrade();
    let before = fds(&server);
    assert!(before <= launched);
    for _ in 0..20 {
        server.upgrade();
    }
    let after = fds(&server);
    assert_eq!(after, before, "open descriptors after 20 upgrades");
}

#[test]
fn pid_file_is_never_empty_or_partial() {
    let mut server = Server::start(&[]);
    let path = server.pid_file.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut reads, mut bad) = (0u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match std::fs::read_to_string(&path) {
                    Ok(s) if s.ends_with('\n') && s.trim().parse::<u32>().is_ok() => {}
                    other => bad.push(format!("{other:?}")),
                }
                reads += 1;
            }
            (reads, bad)
        })
    };
    for _ in 0..20 {
        server.upgrade();
    }
    stop.store(true, Ordering::Relaxed);
    let (reads, bad) = reader.join().unwrap();
    assert!(bad.is_empty(), "bad reads: {:?}", &bad[..bad.len().min(5)]);
    assert!(reads > 1000, "only {reads} reads");
}

#[test]
fn replaced_binary_is_the_one_that_runs() {
    let dir = temp_dir("replaced");
    let exe = dir.join("server");
    std::fs::copy(example(), &exe).unwrap();
    let mut server = Server::start_exe(&exe, &[]);
    assert!(!http_get(server.addr, "/").unwrap().contains("tag="));
    // A new release lands at the same path (rename over the running one).
    let next = dir.join("server.new");
    std::fs::write(
        &next,
        format!(
            "#!/bin/sh\nexec '{}' DEMO_TAG=v2 \"$@\"\n",
            example().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&next, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::rename(&next, &exe).unwrap();
    server.upgrade();
    let body = http_get(server.addr, "/").unwrap();
    assert!(body.contains("tag=v2"), "the new binary runs: {body}");
}

#[test]
fn child_checks_each_descriptor_before_adopting_it() {
    use command_fds::{CommandFdExt, FdMapping};
    use std::os::fd::OwnedFd;
    let real = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let claimed = free_addr();
    let not_listening = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let cases: Vec<(String, OwnedFd)> = vec![
        // Bound elsewhere than the manifest says.
        (
            format!("tcp:{claimed}"),
            OwnedFd::from(real.try_clone().unwrap()),
        ),
        // Not a stream socket.
        (
            format!("tcp:{}", not_listening.local_addr().unwrap()),
            OwnedFd::from(not_listening),
        ),
        // Not a socket at all.
        (
            format!("tcp:{claimed}"),
            OwnedFd::from(std::fs::File::open(example()).unwrap()),
        ),
    ];
    for (addr, fd) in cases {
        let out = std::process::Command::new(example())
            .arg(format!("DEMO_ADDR={claimed}"))
            .arg("DEMO_QUIET=1")
            .env(
                "LAMEDUCK_UPGRADE",
                format!(
                    "lameduck-upgrade/1;pid={};listener=5,http,{addr}",
                    std::process::id()
                ),
            )
            .fd_mappings(vec![FdMapping {
                parent_fd: fd,
                child_fd: 5,
            }])
            .unwrap()
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{addr}: adopted a descriptor that does not match"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("kind: Manifest") && err.contains("on descriptor 5"),
            "{err}"
        );
    }
    // A manifest of another version is refused whole.
    let out = std::process::Command::new(example())
        .env("LAMEDUCK_UPGRADE", "lameduck-upgrade/2;ready=3")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported manifest version"));
}

/// A parent generation inside this test process, with the example as child.
struct InProcess {
    upgrader: Upgrader,
    lifecycle: Option<Lifecycle>,
    handle: lameduck::Handle,
    addr: std::net::SocketAddr,
    _listener: std::net::TcpListener,
}

impl InProcess {
    fn new(init_ms: u64) -> Self {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let upgrader = Upgrader::builder()
            .executable(example())
            .args([
                format!("DEMO_ADDR={addr}"),
                format!("DEMO_INIT_MS={init_ms}"),
                "DEMO_QUIET=1".into(),
            ])
            .sighup(false)
            .grace_period(Duration::from_secs(20))
            .build()
            .unwrap();
        let listener = upgrader.listen_tcp("http", addr).unwrap();
        let lifecycle = Lifecycle::builder()
            .component("upgrade", upgrader.component())
            .build()
            .unwrap();
        InProcess {
            upgrader,
            handle: lifecycle.handle(),
            lifecycle: Some(lifecycle),
            addr,
            _listener: listener,
        }
    }

    /// Waits until an upgrade would not be refused as "not ready".
    async fn ready(&self) {
        assert!(self.handle.ready().await);
        // The upgrade component marks the generation ready just after.
        for _ in 0..200 {
            futures_timer::Delay::new(Duration::from_millis(5)).await;
            if self.upgrader.is_ready() {
                return;
            }
        }
        panic!("never ready");
    }
}

#[test]
fn concurrent_upgrade_calls_start_exactly_one_child() {
    let mut p = InProcess::new(500);
    let lifecycle = p.lifecycle.take().unwrap();
    let handle = lifecycle.handle();
    let runner = std::thread::spawn(move || futures::executor::block_on(lifecycle.run()));
    futures::executor::block_on(async {
        p.ready().await;
        let start = Instant::now();
        let calls = (0..100).map(|_| {
            let up = p.upgrader.clone();
            async move {
                let r = up.upgrade().await;
                (r, start.elapsed())
            }
        });
        let results = futures::future::join_all(calls).await;
        let ok: Vec<_> = results.iter().filter(|(r, _)| r.is_ok()).collect();
        assert_eq!(ok.len(), 1, "exactly one upgrade succeeds");
        let child = ok[0].0.as_ref().unwrap().pid;
        let done_at = ok[0].1;
        assert!(
            done_at >= Duration::from_millis(450),
            "the child took its init time"
        );
        for (r, at) in &results {
            if let Err(e) = r {
                assert_eq!(e.kind(), UpgradeErrorKind::InProgress, "{e}");
                assert!(e.is_refused());
                assert!(*at < done_at, "refused at once, not after the upgrade");
            }
        }
        let kids = children_of(std::process::id());
        assert_eq!(
            kids.iter().filter(|k| **k == child).count(),
            1,
            "one child: {kids:?}"
        );
        assert_eq!(pid_of(&http_get(p.addr, "/").unwrap()), child);
        signal(child, rustix::process::Signal::KILL);
    });
    assert!(
        handle.is_shutting_down(),
        "success begins the old lifecycle's shutdown"
    );
    runner.join().unwrap().unwrap();
}

#[test]
fn refusals_before_ready_and_after_shutdown() {
    let mut p = InProcess::new(0);
    let not_bound = futures::executor::block_on(p.upgrader.upgrade()).unwrap_err();
    assert_eq!(not_bound.kind(), UpgradeErrorKind::NotReady);
    let lifecycle = p.lifecycle.take().unwrap();
    let handle = lifecycle.handle();
    let runner = std::thread::spawn(move || futures::executor::block_on(lifecycle.run()));
    futures::executor::block_on(p.ready());
    handle.request_shutdown(None);
    let late = futures::executor::block_on(p.upgrader.upgrade()).unwrap_err();
    assert_eq!(late.kind(), UpgradeErrorKind::ShuttingDown, "{late}");
    runner.join().unwrap().unwrap();
}

#[test]
fn shutdown_during_an_upgrade_kills_the_new_process() {
    let mut p = InProcess::new(1000);
    let lifecycle = p.lifecycle.take().unwrap();
    let handle = lifecycle.handle();
    let runner = std::thread::spawn(move || futures::executor::block_on(lifecycle.run()));
    futures::executor::block_on(p.ready());
    let stopper = {
        let handle = handle.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            handle.request_shutdown(None);
        })
    };
    let start = Instant::now();
    let err = futures::executor::block_on(p.upgrader.upgrade()).unwrap_err();
    assert_eq!(err.kind(), UpgradeErrorKind::ShuttingDown, "{err}");
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "aborted before the child's init ended"
    );
    let kids: Vec<_> = children_of(std::process::id())
        .into_iter()
        .filter(|k| {
            std::fs::read(format!("/proc/{k}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c).contains(&format!("DEMO_ADDR={}", p.addr))
            })
        })
        .collect();
    assert!(
        kids.iter().all(|k| !process_exists(*k)),
        "killed and reaped: {kids:?}"
    );
    stopper.join().unwrap();
    runner.join().unwrap().unwrap();
}

/// Runs one in-process upgrade with the lifecycle and the call on `block_on`.
fn upgrade_under(block_on: impl Fn(std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>)) {
    let mut p = InProcess::new(0);
    let lifecycle = p.lifecycle.take().unwrap();
    let up = p.upgrader.clone();
    let addr = p.addr;
    block_on(Box::pin(async move {
        let run = lifecycle.run();
        let drive = async {
            p.ready().await;
            let done = up.upgrade().await.expect("upgrade");
            assert_eq!(pid_of(&http_get(addr, "/").unwrap()), done.pid);
            signal(done.pid, rustix::process::Signal::KILL);
            done.pid
        };
        let (report, pid) = futures::future::join(run, drive).await;
        let report = report.expect("the old lifecycle stops cleanly after the upgrade");
        // The hand-over is the cause, not a generic stop request.
        assert_eq!(
            report.shutdown_cause(),
            Some(&lameduck::ShutdownCause::Upgraded { pid })
        );
    }));
}

#[test]
fn upgrade_api_under_futures_executor() {
    upgrade_under(futures::executor::block_on);
}

#[test]
fn upgrade_api_under_tokio() {
    upgrade_under(|f| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    });
}

#[test]
fn upgrade_api_under_smol() {
    upgrade_under(smol::block_on);
}

fn field(body: &str, name: &str) -> String {
    body.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} in {body:?}"))
        .to_owned()
}

fn unix_get(path: &std::path::Path, target: &str) -> std::io::Result<String> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    body_of(&out)
}

/// Parses a `Debug`-printed duration such as `3.6ms`, `850.2µs` or `1.2s`.
fn parse_duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (value, unit) = text.split_at(split);
    let value: f64 = value.parse().ok()?;
    Some(match unit {
        "ns" => value / 1e6,
        "µs" => value / 1e3,
        "ms" => value,
        "s" => value * 1e3,
        _ => return None,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Time from SIGHUP to the new process being ready, and the library's share
/// of it (the new process's own init subtracted), over 20 upgrades of the
/// debug-built example. Prints the medians; asserts nothing about speed.
#[test]
#[ignore = "measurement: cargo test --features systemd --test upgrade -- --ignored measure --nocapture"]
fn measure_sighup_to_ready() {
    let server = Server::start(&[]);
    let (mut hup_to_pid_file, mut to_ready, mut overhead) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..20 {
        let old = server.pid();
        server.drain_lines();
        let t0 = Instant::now();
        signal(old, rustix::process::Signal::HUP);
        wait_until(Duration::from_secs(10), || {
            server.try_pid().is_some_and(|p| p != old)
        });
        hup_to_pid_file.push(t0.elapsed().as_secs_f64() * 1e3);
        let new = server.pid();
        // The new process prints its own init time; the old one logs how
        // long the upgrade took until the new one said it was ready.
        let (mut init, mut total) = (None, None);
        while init.is_none() || total.is_none() {
            let Some(line) = server.wait_line(
                |l| {
                    l.contains(&format!("ready pid={new} "))
                        || l.contains(&format!("new process {new} ready after "))
                },
                Duration::from_secs(5),
            ) else {
                break;
            };
            if let Some(rest) = line.split("init_ms=").nth(1) {
                init = rest.trim().parse::<f64>().ok();
            } else if let Some(rest) = line.split("ready after ").nth(1) {
                total = parse_duration_ms(rest.trim());
            }
        }
        if let (Some(init), Some(total)) = (init, total) {
            to_ready.push(total);
            overhead.push(total - init);
        }
        wait_until(Duration::from_secs(15), || !process_exists(old));
        // A new generation accepts an upgrade once it has seen its parent go.
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!to_ready.is_empty(), "no upgrade timings were logged");
    println!(
        "SIGHUP -> PID file names the new process: median {:.2} ms\n\
         upgrade start -> new process ready: median {:.2} ms ({} upgrades)\n\
         library overhead (new process's own init subtracted): median {:.2} ms",
        median(hup_to_pid_file),
        median(to_ready.clone()),
        to_ready.len(),
        median(overhead),
    );
}

#[test]
fn unix_socket_file_is_removed_on_a_final_stop_and_kept_across_upgrades() {
    let dir = temp_dir("unix-final-stop");
    let path = dir.join("s.sock");
    let unix_arg = format!("DEMO_UNIX={}", path.display());
    for round in 0..2 {
        let mut server = Server::start(&[&unix_arg]);
        let pid = server.upgrade();
        assert!(path.exists(), "round {round}: the new generation owns it");
        assert_eq!(pid_of(&unix_get(&path, "/").unwrap()), pid);
        signal(pid, rustix::process::Signal::TERM);
        wait_until(Duration::from_secs(15), || !process_exists(pid));
        assert!(
            !path.exists(),
            "round {round}: removed on the final stop, so the next start can bind"
        );
    }
}

#[test]
fn unused_inherited_unix_socket_file_is_removed() {
    let dir = temp_dir("unix-unused");
    let path = dir.join("unused.sock");
    let mut p = InProcess::new(0);
    // The child (the example, without DEMO_UNIX) never asks for it.
    let _unix = p.upgrader.listen_unix("unused", &path).unwrap();
    let lifecycle = p.lifecycle.take().unwrap();
    let runner = std::thread::spawn(move || futures::executor::block_on(lifecycle.run()));
    let child = futures::executor::block_on(async {
        p.ready().await;
        p.upgrader.upgrade().await.expect("upgrade").pid
    });
    let removed = !path.exists();
    signal(child, rustix::process::Signal::KILL);
    runner.join().unwrap().unwrap();
    assert!(
        removed,
        "the child closed and removed the socket nobody asked for"
    );
}

#[test]
fn sighup_during_launch_is_refused_not_fatal() {
    use std::io::BufRead;
    let addr = free_addr();
    let mut child = std::process::Command::new(example())
        .arg(format!("DEMO_ADDR={addr}"))
        .arg("DEMO_INIT_MS=1500")
        .env_remove("LAMEDUCK_UPGRADE")
        .env_remove("NOTIFY_SOCKET")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    signal(pid, rustix::process::Signal::HUP);
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = |lines: &[String], what: &str| lines.iter().any(|l| l.contains(what));
    while Instant::now() < deadline
        && process_exists(pid)
        && !(seen(&lines, "refused") && seen(&lines, "ready pid="))
    {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push(l);
        }
    }
    let alive = process_exists(pid);
    let _ = child.kill();
    let _ = child.wait();
    assert!(alive, "the early SIGHUP killed the process: {lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("upgrade refused")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("ready pid=")),
        "{lines:?}"
    );
}

#[test]
fn hand_over_variable_is_gone_after_reading() {
    let mut server = Server::start(&[]);
    server.upgrade();
    let body = http_get(server.addr, "/env").unwrap();
    assert!(body.contains("upgrade_env=absent"), "{body}");
}

#[test]
fn a_manifest_for_another_process_is_ignored() {
    // As a grandchild would see it: a manifest naming a parent that is not
    // this process's, with descriptors that are not there.
    let addr = free_addr();
    let out = std::process::Command::new(example())
        .arg(format!("DEMO_ADDR={addr}"))
        .arg("DEMO_QUIET=1")
        .env(
            "LAMEDUCK_UPGRADE",
            "lameduck-upgrade/1;pid=1;ready=3;parent=4;listener=5,http,tcp:127.0.0.1:1",
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = out.id();
    let served = (0..500).find_map(|_| {
        std::thread::sleep(Duration::from_millis(20));
        http_get(addr, "/env").ok()
    });
    signal(pid, rustix::process::Signal::KILL);
    let out = out.wait_with_output().unwrap();
    let body =
        served.unwrap_or_else(|| panic!("never served: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(pid_of(&body), pid);
    assert!(body.contains("upgrade_env=absent"), "{body}");
}

#[test]
fn relative_pid_file_stays_in_the_start_directory() {
    let dir = temp_dir("relative-pid");
    let elsewhere = format!("DEMO_CHDIR={}", dir.display());
    let mut server = Server::start_with(&example(), &[&elsewhere], |c| {
        let args: Vec<_> = c
            .get_args()
            .map(|a| match a.to_str() {
                Some(s) if s.starts_with("DEMO_PID_FILE=") => "DEMO_PID_FILE=pid".into(),
                _ => a.to_owned(),
            })
            .collect();
        let mut cmd = std::process::Command::new(c.get_program());
        cmd.args(args)
            .current_dir(c.get_current_dir().unwrap())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .env_remove("LAMEDUCK_UPGRADE")
            .env_remove("NOTIFY_SOCKET");
        *c = cmd;
    });
    let first = server.pid();
    let second = server.upgrade();
    assert_ne!(first, second);
    assert!(!dir.join("pid").exists(), "written after the chdir");
}

#[test]
fn idle_connection_does_not_hold_the_old_process() {
    let mut server = Server::start(&[]);
    let old = server.pid();
    // Connected, accepted, never sends a request.
    let mut idle = std::net::TcpStream::connect(server.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    server.upgrade();
    let took = start.elapsed();
    // The lifecycle's shutdown timeout is 10 s: an idle connection counted
    // as in flight would keep the old process that long.
    assert!(
        took < Duration::from_secs(4),
        "old {old} took {took:?} to exit"
    );
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    assert!(
        matches!(idle.read(&mut buf), Ok(0) | Err(_)),
        "the idle connection was closed"
    );
    // And the next upgrade is not refused meanwhile.
    let again = Instant::now();
    server.upgrade();
    assert!(again.elapsed() < Duration::from_secs(4));
}

/// `04_upgrade reload` against the control socket: (exit success, output).
fn reload(control: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new(example())
        .arg("reload")
        .arg(format!("DEMO_CONTROL={}", control.display()))
        .env_remove("LAMEDUCK_UPGRADE")
        .env("DEMO_QUIET", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `reload`, repeated (within 15 s) while the answer is the refusal of a
/// generation whose parent it has not yet seen exit.
fn reload_once_the_parent_is_gone(control: &std::path::Path) -> (bool, String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (ok, text) = reload(control);
        if ok || !text.contains("has not exited yet") || Instant::now() > deadline {
            return (ok, text);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn control_socket_tells_the_initiator_the_result() {
    let dir = temp_dir("control");
    let control = dir.join("control.sock");
    let fail = dir.join("fail");
    let server = Server::start(&[
        &format!("DEMO_CONTROL={}", control.display()),
        &format!("DEMO_FAIL_FILE={}", fail.display()),
    ]);
    // Success: the answer names the new process, which owns the PID file.
    let old = server.pid();
    let (ok, text) = reload(&control);
    assert!(ok, "{text}");
    let new: u32 = text
        .trim()
        .strip_prefix("upgraded pid=")
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(new, old);
    assert_eq!(server.pid(), new);
    wait_until(Duration::from_secs(15), || !process_exists(old));

    // The new process crashes during init: the initiator learns it. The
    // new generation refuses upgrades until it has seen its parent's end
    // (its watcher may lag the process table by a moment): retry those.
    std::fs::write(&fail, "exit1").unwrap();
    let (ok, text) = reload_once_the_parent_is_gone(&control);
    assert!(!ok, "{text}");
    assert!(
        text.contains("upgrade failed") && text.contains("exited"),
        "{text}"
    );
    assert_eq!(server.pid(), new, "still serving");

    // Refused while the previous generation is still draining.
    std::fs::remove_file(&fail).unwrap();
    let addr = server.addr;
    let slow = std::thread::spawn(move || http_get(addr, "/slow"));
    std::thread::sleep(Duration::from_millis(300));
    let (ok, text) = reload(&control);
    assert!(ok, "{text}");
    let (ok, text) = reload(&control);
    assert!(!ok, "{text}");
    assert!(text.contains("upgrade refused"), "{text}");
    slow.join().unwrap().unwrap();
}

#[test]
fn control_socket_file_is_removed_on_a_final_stop_and_a_stale_one_replaced() {
    let dir = temp_dir("control-stale");
    let control = dir.join("control.sock");
    // A stale socket file nobody listens on, as a crash leaves it.
    drop(std::os::unix::net::UnixListener::bind(&control).unwrap());
    let server = Server::start(&[&format!("DEMO_CONTROL={}", control.display())]);
    let pid = server.pid();
    signal(pid, rustix::process::Signal::TERM);
    wait_until(Duration::from_secs(15), || !process_exists(pid));
    assert!(!control.exists());
    let (ok, text) = reload(&control);
    assert!(!ok, "{text}");
}
