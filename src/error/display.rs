//! How an error reads: `{}` on one line (counting the errors recorded
//! after it), `{:#}` with its sources and each later error on a line of
//! its own.

use std::fmt;

use super::{Error, ErrorKind};

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.inner;
        if let Some(name) = &i.component {
            write!(f, "`{name}` ")?;
        }
        let step = i.step.map(|s| s.to_string());
        let step = step.as_deref().unwrap_or("lifecycle");
        match i.kind {
            ErrorKind::Failed => write!(f, "failed in {step}")?,
            ErrorKind::Panicked => write!(f, "panicked in {step}")?,
            ErrorKind::TimedOut => {
                write!(f, "timed out in {step}")?;
                if let Some(b) = i.budget {
                    write!(f, " after {b:?}")?;
                }
            }
            ErrorKind::NotReady => write!(f, "not ready")?,
            ErrorKind::Exited => write!(f, "run ended before the component was ready")?,
            ErrorKind::Requested => write!(f, "shutdown requested with an error")?,
            ErrorKind::ShuttingDown => write!(f, "refused: the lifecycle is shutting down")?,
            ErrorKind::Config => write!(f, "invalid configuration")?,
            ErrorKind::Forced => write!(f, "shutdown forced: graceful waits skipped")?,
            ErrorKind::Dropped => {
                write!(f, "lost in {step}: its task was dropped by the executor")?
            }
        }
        if let Some(d) = &i.detail {
            write!(f, ": {d}")?;
        }
        if let Some(n) = &i.note {
            write!(f, " ({n})")?;
        }
        if f.alternate() {
            write_sources(f, self)?;
            for other in &i.others {
                writeln!(f)?;
                write!(f, "{other}")?;
                write_sources(f, other)?;
            }
        } else if !i.others.is_empty() {
            write!(f, " (and {} more)", i.others.len())?;
        }
        Ok(())
    }
}

/// Appends an error's chain of sources, each after `: `.
fn write_sources(f: &mut fmt::Formatter<'_>, error: &Error) -> fmt::Result {
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        write!(f, ": {s}")?;
        source = s.source();
    }
    Ok(())
}
