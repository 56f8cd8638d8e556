//! Helpers for the process tests: build and run the `04_upgrade` example,
//! talk HTTP to it, watch processes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// The example binary, built once per test binary with the features these
/// tests need.
pub fn example() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let status = Command::new(env!("CARGO"))
                .current_dir(root)
                .args(["build", "--example", "04_upgrade", "--features", "systemd"])
                .status()
                .expect("cargo build");
            assert!(status.success(), "building the example failed");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target"));
            target.join("debug").join("examples").join("04_upgrade")
        })
        .clone()
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lameduck-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The first generation of the example, and whatever came after it.
pub struct Server {
    pub first: Child,
    pub addr: SocketAddr,
    pub pid_file: PathBuf,
    pub dir: PathBuf,
    lines: Receiver<String>,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        Server::start_exe(&example(), args)
    }

    pub fn start_exe(exe: &Path, args: &[&str]) -> Server {
        Server::start_with(exe, args, |_| {})
    }

    pub fn start_with(exe: &Path, args: &[&str], cmd: impl FnOnce(&mut Command)) -> Server {
        let dir = temp_dir(&format!("server-{}", free_addr().port()));
        let addr = free_addr();
        let pid_file = dir.join("pid");
        let mut c = Command::new(exe);
        c.arg(format!("DEMO_ADDR={addr}"))
            .arg(format!("DEMO_PID_FILE={}", pid_file.display()))
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .env_remove("LAMEDUCK_UPGRADE")
            .env_remove("NOTIFY_SOCKET")
            .env("RUST_BACKTRACE", "0");
        cmd(&mut c);
        let mut first = c.spawn().expect("start the example");
        let out = first.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("LAMEDUCK_TEST_VERBOSE").is_some() {
                    eprintln!("{line}");
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let server = Server {
            first,
            addr,
            pid_file,
            dir,
            lines,
        };
        server
            .wait_line(|l| l.starts_with("ready pid="), Duration::from_secs(20))
            .expect("the example never became ready");
        wait_until(Duration::from_secs(5), || server.try_pid().is_some());
        server
    }

    pub fn try_pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The PID in the PID file.
    pub fn pid(&self) -> u32 {
        self.try_pid().expect("PID file")
    }

    /// Discards the output so far.
    pub fn drain_lines(&self) {
        while self.lines.try_recv().is_ok() {}
    }

    /// The next output line that matches, within `timeout`.
    pub fn wait_line(&self, f: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if f(&l) => return Some(l),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// SIGHUP to the current generation; waits for the new one to own the
    /// PID file and the old one to exit. Returns the new PID.
    pub fn upgrade(&mut self) -> u32 {
        let old = self.hand_over();
        wait_until(Duration::from_secs(15), || !process_exists(old));
        if old == self.first.id() {
            let _ = self.first.wait();
        }
        self.pid()
    }

    /// SIGHUP to the current generation; waits for the new one to own the
    /// PID file, not for the old one to exit. Returns the old PID.
    pub fn hand_over(&mut self) -> u32 {
        let old = self.pid();
        // A generation refuses an upgrade until it has seen its own parent
        // exit, which may lag the parent's exit by a moment: send again when
        // refused, as an operator would.
        let deadline = Instant::now() + Duration::from_secs(10);
        'sent: loop {
            assert!(Instant::now() < deadline, "no upgrade of {old} within 10s");
            self.drain_lines();
            signal(old, rustix::process::Signal::HUP);
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until {
                if self.try_pid().is_some_and(|p| p != old) {
                    break 'sent;
                }
                if let Ok(line) = self.lines.try_recv() {
                    if line.contains("upgrade refused") {
                        std::thread::sleep(Duration::from_millis(10));
                        continue 'sent;
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        old
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(pid) = self.try_pid() {
            signal(pid, rustix::process::Signal::KILL);
        }
        let _ = self.first.kill();
        let _ = self.first.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn signal(pid: u32, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("pid");
    let _ = rustix::process::kill_process(pid, sig);
}

/// Whether `pid` is alive (a zombie counts as gone).
pub fn process_exists(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Every process (zombies included) whose parent is `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// One request on a new connection; the body.
pub fn http_get(addr: SocketAddr, target: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    body_of(&out)
}

pub fn body_of(response: &str) -> std::io::Result<String> {
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_owned()),
        _ => Err(std::io::Error::other(format!("bad response: {response:?}"))),
    }
}

pub fn pid_of(body: &str) -> u32 {
    body.split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {body:?}"))
}

/// An HTTP/1.1 client that keeps its connection for the next request and
/// retries nothing, like a browser or `net/http`'s transport without their
/// retries: it reconnects only after an answer that said
/// `Connection: close` and a clean close of that connection. A refused
/// connection, a reset, or an end of stream before the whole answer fails
/// the request.
pub struct KeepAliveClient {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

/// One answer of a [`KeepAliveClient`].
#[derive(Debug)]
pub struct Answer {
    pub body: String,
    /// The answer said `Connection: close` (and the server then closed).
    pub close: bool,
    /// The request went on a connection that had answered before.
    pub reused: bool,
}

impl KeepAliveClient {
    pub fn new(addr: SocketAddr) -> Self {
        KeepAliveClient { addr, conn: None }
    }

    pub fn get(&mut self, target: &str) -> std::io::Result<Answer> {
        let reused = self.conn.is_some();
        let answer = self.exchange(target);
        if !matches!(answer, Ok((_, false))) {
            self.conn = None;
        }
        let (body, close) = answer?;
        Ok(Answer {
            body,
            close,
            reused,
        })
    }

    fn exchange(&mut self, target: &str) -> std::io::Result<(String, bool)> {
        let fail = |what: &str| std::io::Error::other(format!("{what} (GET {target})"));
        if self.conn.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.set_nodelay(true)?;
            self.conn = Some(BufReader::new(s));
        }
        let conn = self.conn.as_mut().unwrap();
        let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        conn.get_mut().write_all(request.as_bytes())?;
        let mut status = String::new();
        if conn.read_line(&mut status)? == 0 {
            return Err(fail("closed before the answer"));
        }
        if !status.starts_with("HTTP/1.1 200 ") {
            return Err(fail(&format!("status line {status:?}")));
        }
        let (mut len, mut close) = (None, false);
        loop {
            let mut line = String::new();
            if conn.read_line(&mut line)? == 0 {
                return Err(fail("closed in the middle of the head"));
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(fail(&format!("header {line:?}")));
            };
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => len = value.trim().parse::<usize>().ok(),
                "connection" => close |= value.trim().eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut body = vec![0; len.ok_or_else(|| fail("no Content-Length"))?];
        conn.read_exact(&mut body)?;
        let body = String::from_utf8(body).map_err(|_| fail("body not UTF-8"))?;
        if close {
            // The server announced the close: it must now close cleanly,
            // not send more and not reset.
            let mut rest = Vec::new();
            conn.read_to_end(&mut rest)?;
            if !rest.is_empty() {
                return Err(fail("bytes after a Connection: close answer"));
            }
        }
        Ok((body, close))
    }
}
