//! systemd integration against a fake service manager: a datagram socket
//! standing in for `NOTIFY_SOCKET`, and sockets passed as systemd would.
#![cfg(all(target_os = "linux", feature = "systemd"))]

mod support;

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use command_fds::{CommandFdExt, FdMapping};
use support::*;

/// One datagram the fake service manager received: the sender's PID (from
/// `SCM_CREDENTIALS`, as systemd reads it) and its `KEY=VALUE` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Datagram {
    pid: u32,
    lines: Vec<String>,
}

/// Collects every datagram the fake service manager receives, with the
/// sender's PID: the socket gets `SO_PASSCRED`, as systemd's own does.
fn collect(sock: UnixDatagram) -> Receiver<Datagram> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use std::mem::MaybeUninit;
    rustix::net::sockopt::set_socket_passcred(&sock, true).unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        loop {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmCredentials(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let Ok(got) = rustix::net::recvmsg(&sock, &mut iov, &mut control, RecvFlags::empty())
            else {
                break;
            };
            let mut pid = 0;
            for msg in control.drain() {
                if let RecvAncillaryMessage::ScmCredentials(cred) = msg {
                    pid = cred.pid.as_raw_nonzero().get() as u32;
                }
            }
            let msg = String::from_utf8_lossy(&buf[..got.bytes]);
            let lines: Vec<String> = msg.lines().map(str::to_owned).collect();
            if tx.send(Datagram { pid, lines }).is_err() {
                break;
            }
        }
    });
    rx
}

/// The datagrams so far, without the informational `STATUS=` and
/// `WATCHDOG=` lines (datagrams left empty are dropped).
fn protocol(rx: &Receiver<Datagram>, wait: Duration) -> Vec<Datagram> {
    let mut out = Vec::new();
    while let Ok(msg) = rx.recv_timeout(wait) {
        let lines: Vec<String> = msg
            .lines
            .into_iter()
            .filter(|l| !l.starts_with("STATUS=") && !l.starts_with("WATCHDOG="))
            .collect();
        if !lines.is_empty() {
            out.push(Datagram { lines, ..msg });
        }
    }
    out
}

fn notify_sequence(notify_socket: &str, sock: UnixDatagram) {
    let rx = collect(sock);
    let mut server = Server::start_with(&example(), &[], |c| {
        c.env("NOTIFY_SOCKET", notify_socket);
    });
    let old = server.pid();
    let new = server.upgrade();
    // The old process has exited: everything it sent is in the queue.
    let seen = protocol(&rx, Duration::from_millis(300));
    let lines = |d: &Datagram| d.lines.clone();
    assert_eq!(seen.len(), 3, "exactly three notifications: {seen:?}");
    assert!(
        seen.iter().all(|d| d.pid == old),
        "all from {old}: {seen:?}"
    );
    assert_eq!(lines(&seen[0]), ["READY=1"], "{seen:?}");
    assert_eq!(
        seen[1].lines.len(),
        2,
        "RELOADING with MONOTONIC_USEC: {seen:?}"
    );
    assert_eq!(seen[1].lines[0], "RELOADING=1");
    let usec: u64 = seen[1].lines[1]
        .strip_prefix("MONOTONIC_USEC=")
        .expect("MONOTONIC_USEC in the same datagram")
        .parse()
        .unwrap();
    assert!(usec > 0);
    assert_eq!(
        lines(&seen[2]),
        [format!("MAINPID={new}"), "READY=1".into()],
        "{seen:?}"
    );
    // Once the new process is the main one, its own stop is the service's.
    signal(new, rustix::process::Signal::TERM);
    wait_until(Duration::from_secs(15), || !process_exists(new));
    let stop = protocol(&rx, Duration::from_millis(300));
    assert_eq!(stop.len(), 1, "{stop:?}");
    assert_eq!(stop[0].pid, new, "{stop:?}");
    assert_eq!(lines(&stop[0]), ["STOPPING=1"], "{stop:?}");
}

#[test]
fn notify_socket_path_sees_the_hand_over_and_nothing_after_it_from_the_old_pid() {
    let dir = temp_dir("notify-path");
    let path = dir.join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    notify_sequence(path.to_str().unwrap(), sock);
}

#[test]
fn notify_socket_abstract_sees_the_hand_over_and_nothing_after_it_from_the_old_pid() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("lameduck-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&addr).unwrap();
    notify_sequence(&format!("@{name}"), sock);
}

#[test]
fn watchdog_pings_at_half_the_period() {
    let dir = temp_dir("watchdog");
    let path = dir.join("notify");
    let rx = collect(UnixDatagram::bind(&path).unwrap());
    let _server = Server::start_with(&example(), &[], |c| {
        c.env("NOTIFY_SOCKET", &path).env("WATCHDOG_USEC", "200000");
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut pings = 0;
    while std::time::Instant::now() < deadline {
        if let Ok(msg) = rx.recv_timeout(Duration::from_millis(50)) {
            pings += msg.lines.iter().filter(|l| *l == "WATCHDOG=1").count();
        }
    }
    // Every 100 ms for 2 s: about 20; a loaded machine may skip a few.
    assert!((5..=25).contains(&pings), "{pings} pings");
}

fn socket_inode(fd: impl AsFd) -> u64 {
    let owned = fd.as_fd().try_clone_to_owned().unwrap();
    std::fs::File::from(owned).metadata().unwrap().ino()
}

/// Socket inodes among a process's open descriptors.
fn socket_inodes_of(pid: u32) -> Vec<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let link = std::fs::read_link(e.path()).ok()?;
            let s = link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?;
            s.parse().ok()
        })
        .collect()
}

fn environ_of(pid: u32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap()).into()
}

#[test]
fn socket_activation_round_trip_with_named_descriptors() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let ino = socket_inode(&listener);
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_ino = socket_inode(&other);
    let exe = example();
    // `$$` is the shell's PID, which `exec` keeps: LISTEN_PID names the
    // example's own process, as systemd would set it.
    let script = format!(
        "LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=metrics:http exec '{}' \"$@\"",
        exe.display()
    );
    let sh = Path::new("/bin/sh");
    let mut server = Server::start_with(sh, &[], |c| {
        let args: Vec<_> = c
            .get_args()
            .filter(|a| !a.to_string_lossy().starts_with("DEMO_ADDR="))
            .map(|a| a.to_owned())
            .collect();
        let mut cmd = Command::new(sh);
        cmd.arg("-c").arg(&script).arg("sh").args(&args);
        // Server::start_with spawns `c`: rebuild it as the shell command.
        *c = cmd;
        c.arg(format!("DEMO_ADDR={addr}"))
            .current_dir(std::env::temp_dir())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LAMEDUCK_UPGRADE");
        c.fd_mappings(vec![
            FdMapping {
                parent_fd: OwnedFd::from(other.try_clone().unwrap()),
                child_fd: 3,
            },
            FdMapping {
                parent_fd: OwnedFd::from(listener.try_clone().unwrap()),
                child_fd: 4,
            },
        ])
        .unwrap();
    });
    let first = server.pid();
    assert!(
        socket_inodes_of(first).contains(&ino),
        "the activated socket is adopted"
    );
    assert!(
        !socket_inodes_of(first).contains(&other_ino),
        "the socket nobody asked for is closed when ready"
    );
    assert_eq!(pid_of(&http_get(addr, "/").unwrap()), first);

    let second = server.upgrade();
    assert!(
        socket_inodes_of(second).contains(&ino),
        "handed on by the upgrade"
    );
    assert!(!socket_inodes_of(second).contains(&other_ino));
    assert_eq!(pid_of(&http_get(addr, "/").unwrap()), second);
    let env = environ_of(second);
    assert!(
        !env.contains("LISTEN_FDS="),
        "LISTEN_* never reach children"
    );
    assert!(!env.contains("LISTEN_PID="));
    assert!(!env.contains("LISTEN_FDNAMES="));
}

/// Set in a copy of this test binary started by [`watchdog_child`]: the
/// scenario it runs in-process, with `NOTIFY_SOCKET` set by the parent.
const CHILD: &str = "LAMEDUCK_SYSTEMD_CHILD";

/// Runs a lifecycle with the systemd component and one health check for
/// 1.5 s, then stops it. Returns whether this process is that child.
fn run_child_scenario() -> bool {
    use lameduck::{CheckOptions, Health, Lifecycle, Probe, check_fn};
    let Ok(scenario) = std::env::var(CHILD) else {
        return false;
    };
    let builder = Lifecycle::builder().component("systemd", lameduck::systemd::component());
    let builder = match scenario.as_str() {
        // A readiness-only dependency is down: not the watchdog's business.
        "readiness-down" => builder.health_check_with(
            "database",
            check_fn(|| async { Health::Unhealthy("connection refused".into()) }),
            CheckOptions::new().probes([Probe::Readiness]),
        ),
        // A liveness check that never answers: failing after its timeout.
        "liveness-hangs" => builder.health_check_with(
            "stuck",
            check_fn(futures::future::pending::<Health>),
            CheckOptions::new()
                .probes([Probe::Liveness])
                .timeout(Duration::from_millis(50)),
        ),
        other => panic!("unknown scenario {other}"),
    };
    let lifecycle = builder
        .shutdown_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        handle.request_shutdown(None);
    });
    lifecycle.run_blocking().unwrap();
    true
}

/// Runs `test` again in a child copy of this binary with `scenario`, a
/// 200 ms watchdog and a recording `NOTIFY_SOCKET`; returns every datagram.
fn watchdog_child(test: &str, scenario: &str) -> Vec<Datagram> {
    let dir = temp_dir(&format!("watchdog-{scenario}"));
    let path = dir.join("notify");
    let rx = collect(UnixDatagram::bind(&path).unwrap());
    let started = std::time::Instant::now();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--test-threads=1", "--quiet"])
        .env(CHILD, scenario)
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{scenario}: {status}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{scenario}: the child took {:?}",
        started.elapsed()
    );
    let mut out = Vec::new();
    while let Ok(d) = rx.recv_timeout(Duration::from_millis(200)) {
        out.push(d);
    }
    out
}

fn count(seen: &[Datagram], line: &str) -> usize {
    seen.iter()
        .flat_map(|d| &d.lines)
        .filter(|l| *l == line)
        .count()
}

#[test]
fn watchdog_ignores_a_failing_readiness_only_check() {
    if run_child_scenario() {
        return;
    }
    let seen = watchdog_child(
        "watchdog_ignores_a_failing_readiness_only_check",
        "readiness-down",
    );
    // Every 100 ms for 1.5 s: about 15; a loaded machine may skip a few.
    let pings = count(&seen, "WATCHDOG=1");
    assert!(pings >= 5, "{pings} pings: {seen:?}");
    assert_eq!(count(&seen, "STOPPING=1"), 1, "{seen:?}");
}

#[test]
fn watchdog_stops_on_a_hanging_liveness_check_and_never_hangs_itself() {
    if run_child_scenario() {
        return;
    }
    let seen = watchdog_child(
        "watchdog_stops_on_a_hanging_liveness_check_and_never_hangs_itself",
        "liveness-hangs",
    );
    assert_eq!(count(&seen, "WATCHDOG=1"), 0, "{seen:?}");
    assert_eq!(count(&seen, "READY=1"), 1, "{seen:?}");
    assert_eq!(
        count(&seen, "STOPPING=1"),
        1,
        "STOPPING=1 still sent: {seen:?}"
    );
}

/// The example started as systemd would with socket activation: `fds` on
/// descriptors 3…, `LISTEN_FDNAMES` set when `names` is. Returns the child
/// and its output so far once it is ready, or exited.
fn start_activated(
    fds: Vec<OwnedFd>,
    names: Option<&str>,
    demo_addr: &str,
) -> (std::process::Child, Vec<String>) {
    use std::io::BufRead;
    let n = fds.len();
    let names = names
        .map(|n| format!("LISTEN_FDNAMES={n} "))
        .unwrap_or_default();
    // `$$` is the shell's PID, which `exec` keeps: LISTEN_PID names the
    // example's own process, as systemd would set it.
    let script = format!(
        "LISTEN_PID=$$ LISTEN_FDS={n} {names}exec '{}' DEMO_ADDR={demo_addr}",
        example().display()
    );
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .current_dir(std::env::temp_dir())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LAMEDUCK_UPGRADE")
        .env_remove("LISTEN_FDNAMES");
    let mappings = fds
        .into_iter()
        .enumerate()
        .map(|(i, fd)| FdMapping {
            parent_fd: fd,
            child_fd: 3 + i as i32,
        })
        .collect();
    cmd.fd_mappings(mappings).unwrap();
    let mut child = cmd.spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut lines = Vec::new();
    for line in out.by_ref().map_while(Result::ok) {
        let ready = line.starts_with("ready pid=");
        lines.push(line);
        if ready {
            break;
        }
    }
    // Keep reading: a closed pipe would make the example's next log line
    // fail (Rust ignores SIGPIPE, so printing panics), ending its lifecycle
    // and resetting the connections queued on its listener. The thread ends
    // at the example's exit.
    std::thread::spawn(move || out.for_each(drop));
    (child, lines)
}

fn stop(mut child: std::process::Child) -> String {
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn activation_dual_stack_wildcard_serves_a_request_for_ipv4_any() {
    // `ListenStream=PORT`: `[::]:PORT`, dual-stack, no FileDescriptorName.
    let Ok(v6) = std::net::TcpListener::bind("[::]:0") else {
        eprintln!("skipped: no IPv6 on this machine");
        return;
    };
    let port = v6.local_addr().unwrap().port();
    let ino = socket_inode(&v6);
    let (child, lines) = start_activated(vec![OwnedFd::from(v6)], None, &format!("0.0.0.0:{port}"));
    let pid = child.id();
    let adopted = socket_inodes_of(pid).contains(&ino);
    let served = http_get(([127, 0, 0, 1], port).into(), "/");
    let err = stop(child);
    assert!(adopted, "{lines:?} {err}");
    assert_eq!(pid_of(&served.unwrap()), pid);
}

#[test]
fn activation_matches_by_name_then_address_then_the_only_unnamed_socket() {
    let cases: [(&str, Option<&str>, bool); 3] = [
        // Named differently from what the program asks for, bound elsewhere:
        // the name wins.
        ("elsewhere", Some("http"), true),
        // Another name, same address: the address wins.
        ("same", Some("web"), false),
        // No names at all, a single socket: that one.
        ("elsewhere", None, true),
    ];
    for (bound, names, other_addr) in cases {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ino = socket_inode(&l);
        let have = l.local_addr().unwrap();
        let asked = if other_addr { free_addr() } else { have };
        let (child, lines) = start_activated(vec![OwnedFd::from(l)], names, &asked.to_string());
        let adopted = socket_inodes_of(child.id()).contains(&ino);
        let pid = child.id();
        let served = http_get(have, "/");
        let err = stop(child);
        assert!(adopted, "{bound} {names:?}: {lines:?} {err}");
        assert_eq!(pid_of(&served.unwrap()), pid);
    }
}

#[test]
fn activation_that_matches_nothing_fails_listing_what_was_passed() {
    let passed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let asked = taken.local_addr().unwrap();
    // Two named sockets, neither called "http" nor at the address asked for,
    // which something else holds: the bind fails and says what was passed.
    let (child, lines) = start_activated(
        vec![OwnedFd::from(passed), OwnedFd::from(other)],
        Some("metrics:admin"),
        &asked.to_string(),
    );
    let err = stop(child);
    assert!(
        !lines.iter().any(|l| l.starts_with("ready pid=")),
        "{lines:?}"
    );
    assert!(
        err.contains("no socket-activated descriptor matched"),
        "{err}"
    );
    assert!(err.contains("metrics=") && err.contains("admin="), "{err}");
}

/// The example under Debian's `systemd-socket-activate`, which binds
/// `listen`, waits for the first connection and then execs the example in
/// its own process with `LISTEN_*` set.
struct Activated {
    child: std::process::Child,
}

impl Activated {
    fn start(listen: &[String], fdnames: Option<&str>, demo_addr: &str) -> Activated {
        let mut cmd = Command::new("systemd-socket-activate");
        for l in listen {
            cmd.arg("-l").arg(l);
        }
        if let Some(n) = fdnames {
            cmd.arg(format!("--fdname={n}"));
        }
        cmd.arg("--")
            .arg(example())
            .arg(format!("DEMO_ADDR={demo_addr}"))
            .arg("DEMO_QUIET=1")
            .current_dir(std::env::temp_dir())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LAMEDUCK_UPGRADE");
        let child = cmd.spawn().expect("systemd-socket-activate");
        Activated { child }
    }

    /// The first request (its connection starts the program); retried while
    /// `systemd-socket-activate` has not bound yet.
    fn first_get(&self, addr: std::net::SocketAddr, target: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            match http_get(addr, target) {
                Ok(body) => return body,
                Err(e) if std::time::Instant::now() > deadline => panic!("{addr}: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Activated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn local(port: u16) -> std::net::SocketAddr {
    ([127, 0, 0, 1], port).into()
}

#[test]
#[ignore = "needs systemd-socket-activate (Debian package systemd): run by .ci/run"]
fn socket_activate_named_descriptor_is_adopted_by_name() {
    let port = free_addr().port();
    let a = Activated::start(
        &[format!("127.0.0.1:{port}")],
        Some("http"),
        &free_addr().to_string(),
    );
    let body = a.first_get(local(port), "/");
    assert_eq!(pid_of(&body), a.child.id(), "the activated socket serves");
}

#[test]
#[ignore = "needs systemd-socket-activate (Debian package systemd): run by .ci/run"]
fn socket_activate_single_unnamed_descriptor_is_adopted() {
    let port = free_addr().port();
    let a = Activated::start(
        &[format!("127.0.0.1:{port}")],
        None,
        &free_addr().to_string(),
    );
    let body = a.first_get(local(port), "/");
    assert_eq!(pid_of(&body), a.child.id());
}

#[test]
#[ignore = "needs systemd-socket-activate (Debian package systemd): run by .ci/run"]
fn socket_activate_two_sockets_the_unused_one_is_closed() {
    let (metrics, http) = (free_addr().port(), free_addr().port());
    let a = Activated::start(
        &[format!("127.0.0.1:{metrics}"), format!("127.0.0.1:{http}")],
        Some("metrics:http"),
        &free_addr().to_string(),
    );
    let body = a.first_get(local(http), "/");
    assert_eq!(pid_of(&body), a.child.id());
    wait_until(Duration::from_secs(5), || {
        !socket_inodes_of(a.child.id()).is_empty()
            && std::net::TcpStream::connect(local(metrics)).is_err()
    });
}

#[test]
#[ignore = "needs systemd-socket-activate (Debian package systemd): run by .ci/run"]
fn socket_activate_port_only_is_dual_stack_and_serves_a_request_for_ipv4_any() {
    let port = free_addr().port();
    // `-l PORT` binds `[::]:PORT`, as `ListenStream=PORT` does.
    let a = Activated::start(&[port.to_string()], None, &format!("0.0.0.0:{port}"));
    let body = a.first_get(local(port), "/");
    assert_eq!(pid_of(&body), a.child.id());
    if let Ok(body) = http_get(([0u16, 0, 0, 0, 0, 0, 0, 1], port).into(), "/") {
        assert_eq!(pid_of(&body), a.child.id(), "IPv6 too");
    }
}

#[test]
#[ignore = "needs systemd-socket-activate (Debian package systemd): run by .ci/run"]
fn socket_activate_leaves_no_listen_variables_for_children() {
    let port = free_addr().port();
    let a = Activated::start(
        &[format!("127.0.0.1:{port}")],
        Some("http"),
        &free_addr().to_string(),
    );
    let first = a.first_get(local(port), "/env");
    let pid = pid_of(&first);
    assert!(first.contains("listen_env=absent"), "{first}");
    // An upgraded generation gets the socket, and no LISTEN_* either.
    signal(pid, rustix::process::Signal::HUP);
    let mut second = String::new();
    wait_until(Duration::from_secs(15), || {
        second = http_get(local(port), "/env").unwrap_or_default();
        !second.is_empty() && pid_of(&second) != pid
    });
    assert!(second.contains("listen_env=absent"), "{second}");
    assert!(second.contains("upgrade_env=absent"), "{second}");
    let new = pid_of(&second);
    signal(new, rustix::process::Signal::KILL);
}

/// Everything received so far (within `wait` of the last datagram).
fn all(rx: &Receiver<Datagram>, wait: Duration) -> Vec<Datagram> {
    let mut out = Vec::new();
    while let Ok(d) = rx.recv_timeout(wait) {
        out.push(d);
    }
    out
}

/// The datagrams without `STATUS=` and `WATCHDOG=` lines, as (pid, lines).
fn essential(seen: &[Datagram]) -> Vec<(u32, Vec<String>)> {
    seen.iter()
        .map(|d| {
            let lines: Vec<String> = d
                .lines
                .iter()
                .filter(|l| !l.starts_with("STATUS=") && !l.starts_with("WATCHDOG="))
                .map(|l| {
                    // The clock value differs each time: keep the key.
                    if l.starts_with("MONOTONIC_USEC=") {
                        "MONOTONIC_USEC".to_owned()
                    } else {
                        l.clone()
                    }
                })
                .collect();
            (d.pid, lines)
        })
        .filter(|(_, l)| !l.is_empty())
        .collect()
}

fn s(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| l.to_string()).collect()
}

#[test]
fn notify_whole_sequence_with_sender_pids() {
    let dir = temp_dir("notify-whole");
    let path = dir.join("notify");
    let fail = dir.join("fail");
    let rx = collect(UnixDatagram::bind(&path).unwrap());
    let fail_arg = format!("DEMO_FAIL_FILE={}", fail.display());
    let server = Server::start_with(&example(), &[&fail_arg], |c| {
        c.env("NOTIFY_SOCKET", &path).env("WATCHDOG_USEC", "200000");
    });
    let a = server.pid();
    std::thread::sleep(Duration::from_millis(500));
    let launch = all(&rx, Duration::from_millis(10));
    assert_eq!(essential(&launch), [(a, s(&["READY=1"]))], "{launch:?}");
    assert!(
        count(&launch, "WATCHDOG=1") >= 2,
        "watchdog from {a}: {launch:?}"
    );

    // Upgrade, with a slow request keeping the old process a while.
    let addr = server.addr;
    let slow = std::thread::spawn(move || http_get(addr, "/slow"));
    std::thread::sleep(Duration::from_millis(200));
    signal(a, rustix::process::Signal::HUP);
    wait_until(Duration::from_secs(10), || {
        server.try_pid().is_some_and(|p| p != a)
    });
    let b = server.pid();
    // Refused by the new process while its parent drains.
    std::thread::sleep(Duration::from_millis(100));
    assert!(process_exists(a), "the old process is still draining");
    signal(b, rustix::process::Signal::HUP);
    slow.join().unwrap().unwrap();
    wait_until(Duration::from_secs(15), || !process_exists(a));
    // A failed upgrade: the new process exits during init.
    std::fs::write(&fail, "exit1").unwrap();
    // The new process sees its parent's exit a moment after it happens:
    // until then it refuses (each refusal answered RELOADING=1, READY=1).
    let failed = (0..20).any(|_| {
        server.drain_lines();
        signal(b, rustix::process::Signal::HUP);
        server
            .wait_line(
                |l| l.contains("upgrade failed") || l.contains("upgrade refused"),
                Duration::from_secs(10),
            )
            .is_some_and(|l| l.contains("upgrade failed"))
    });
    assert!(failed, "the upgrade failed");
    std::thread::sleep(Duration::from_millis(300));
    // Stop.
    signal(b, rustix::process::Signal::TERM);
    wait_until(Duration::from_secs(15), || !process_exists(b));
    let rest = all(&rx, Duration::from_millis(300));
    let got = essential(&rest);
    let reload_pair = [
        (b, s(&["RELOADING=1", "MONOTONIC_USEC"])),
        (b, s(&["READY=1"])),
    ];
    let handover = [
        (a, s(&["RELOADING=1", "MONOTONIC_USEC"])),
        (a, vec![format!("MAINPID={b}"), "READY=1".into()]),
    ];
    assert!(got.len() >= 7 && got.len() % 2 == 1, "{got:?}");
    assert_eq!(got[..2], handover, "{rest:?}");
    // The refusal, any refusals while the parent's exit was not yet seen,
    // and the failed upgrade: each a RELOADING=1 then READY=1 from the new
    // main process.
    for pair in got[2..got.len() - 1].chunks(2) {
        assert_eq!(pair, reload_pair, "{got:?}");
    }
    assert_eq!(got[got.len() - 1], (b, s(&["STOPPING=1"])), "{got:?}");
    let after_handover = rest
        .iter()
        .skip_while(|d| !d.lines.iter().any(|l| l.starts_with("MAINPID=")))
        .skip(1);
    assert!(
        after_handover.clone().all(|d| d.pid != a),
        "nothing from {a} after MAINPID=: {rest:?}"
    );
    assert!(
        after_handover
            .filter(|d| d.pid == b)
            .any(|d| d.lines.iter().any(|l| l == "WATCHDOG=1")),
        "the new main process pings the watchdog: {rest:?}"
    );
}
