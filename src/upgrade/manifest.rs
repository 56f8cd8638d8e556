//! The versioned manifest passed to a new generation in an environment
//! variable: which descriptor numbers carry what.
//!
//! ```text
//! lameduck-upgrade/1;pid=1234;ready=3;parent=4;listener=5,http,tcp:127.0.0.1:8080
//! ```
//!
//! Entries are separated by `;`, fields by `,`; names and addresses are
//! percent-encoded outside a small safe set. A reader refuses any other
//! version, so a manifest from a newer library never gets half-understood.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// The environment variable that carries the manifest.
pub(crate) const ENV: &str = "LAMEDUCK_UPGRADE";
const MAGIC: &str = "lameduck-upgrade/1";

/// Where a listening socket is bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
    /// A Linux abstract-namespace Unix socket (no leading NUL).
    Abstract(Vec<u8>),
}

impl Addr {
    fn encode(&self) -> String {
        match self {
            Addr::Tcp(a) => format!("tcp:{}", escape(a.to_string().as_bytes())),
            Addr::Unix(p) => format!("unix:{}", escape(p.as_os_str().as_bytes())),
            Addr::Abstract(n) => format!("abstract:{}", escape(n)),
        }
    }

    fn decode(s: &str) -> Option<Addr> {
        let (kind, rest) = s.split_once(':')?;
        let bytes = unescape(rest)?;
        match kind {
            "tcp" => String::from_utf8(bytes).ok()?.parse().ok().map(Addr::Tcp),
            "unix" => Some(Addr::Unix(OsString::from_vec(bytes).into())),
            "abstract" => Some(Addr::Abstract(bytes)),
            _ => None,
        }
    }
}

/// One listening socket in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) fd: RawFd,
    pub(crate) name: String,
    pub(crate) addr: Addr,
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Manifest {
    /// The parent generation's PID: the manifest is for its direct child
    /// only (like `LISTEN_PID`), never for a process that child starts.
    pub(crate) pid: Option<u32>,
    /// Write end of the readiness pipe: the child writes one byte when ready.
    pub(crate) ready: Option<RawFd>,
    /// Read end of the parent pipe: end-of-file once the parent has exited.
    pub(crate) parent: Option<RawFd>,
    pub(crate) listeners: Vec<Entry>,
}

impl Manifest {
    pub(crate) fn encode(&self) -> String {
        let mut out = String::from(MAGIC);
        if let Some(pid) = self.pid {
            out.push_str(&format!(";pid={pid}"));
        }
        if let Some(fd) = self.ready {
            out.push_str(&format!(";ready={fd}"));
        }
        if let Some(fd) = self.parent {
            out.push_str(&format!(";parent={fd}"));
        }
        for e in &self.listeners {
            out.push_str(&format!(
                ";listener={},{},{}",
                e.fd,
                escape(e.name.as_bytes()),
                e.addr.encode()
            ));
        }
        out
    }

    /// Parses a manifest, or says why it cannot.
    pub(crate) fn decode(s: &str) -> Result<Manifest, String> {
        let mut parts = s.split(';');
        match parts.next() {
            Some(MAGIC) => {}
            Some(other) => return Err(format!("unsupported manifest version {other:?}")),
            None => return Err("empty manifest".into()),
        }
        let mut m = Manifest::default();
        for part in parts {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("malformed entry {part:?}"))?;
            let fd = |v: &str| {
                v.parse::<RawFd>()
                    .ok()
                    .filter(|fd| *fd > 2)
                    .ok_or_else(|| format!("bad descriptor in {part:?}"))
            };
            match key {
                "pid" => {
                    m.pid = Some(
                        value
                            .parse()
                            .map_err(|_| format!("bad parent PID in {part:?}"))?,
                    )
                }
                "ready" => m.ready = Some(fd(value)?),
                "parent" => m.parent = Some(fd(value)?),
                "listener" => {
                    let mut f = value.splitn(3, ',');
                    let (Some(n), Some(name), Some(addr)) = (f.next(), f.next(), f.next()) else {
                        return Err(format!("malformed listener {part:?}"));
                    };
                    let name = unescape(name)
                        .and_then(|b| String::from_utf8(b).ok())
                        .ok_or_else(|| format!("bad name in {part:?}"))?;
                    let addr =
                        Addr::decode(addr).ok_or_else(|| format!("bad address in {part:?}"))?;
                    m.listeners.push(Entry {
                        fd: fd(n)?,
                        name,
                        addr,
                    });
                }
                // Unknown keys within the same version are ignored, so a
                // minor addition does not break an older reader.
                _ => {}
            }
        }
        Ok(m)
    }
}

fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._-/:[]@".contains(&b)
}

fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if is_plain(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = Manifest {
            pid: Some(1234),
            ready: Some(3),
            parent: Some(4),
            listeners: vec![
                Entry {
                    fd: 5,
                    name: "http;x,y=%".into(),
                    addr: Addr::Tcp("[::1]:8080".parse().unwrap()),
                },
                Entry {
                    fd: 6,
                    name: "admin".into(),
                    addr: Addr::Unix("/tmp/a b;c.sock".into()),
                },
                Entry {
                    fd: 7,
                    name: "abs".into(),
                    addr: Addr::Abstract(b"\x00\xffname".to_vec()),
                },
            ],
        };
        let s = m.encode();
        assert!(s.starts_with("lameduck-upgrade/1;pid=1234;ready=3;parent=4;listener=5,"));
        assert_eq!(Manifest::decode(&s).unwrap(), m);
    }

    #[test]
    fn refuses_other_versions_and_garbage() {
        assert!(Manifest::decode("lameduck-upgrade/2;ready=3").is_err());
        assert!(Manifest::decode("lameduck-upgrade/1;ready=1").is_err());
        assert!(Manifest::decode("lameduck-upgrade/1;pid=x").is_err());
        assert!(Manifest::decode("lameduck-upgrade/1;listener=5,a").is_err());
        assert!(Manifest::decode("lameduck-upgrade/1;listener=5,a,udp:x").is_err());
        assert!(Manifest::decode("lameduck-upgrade/1;listener=5,a,tcp:%zz").is_err());
        assert_eq!(
            Manifest::decode("lameduck-upgrade/1;future=1").unwrap(),
            Manifest::default()
        );
    }
}
