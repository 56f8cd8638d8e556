//! [`UpgradeError`]: why an upgrade was refused or failed.

use std::fmt;
use std::io;
use std::time::Duration;

/// What went wrong with an upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpgradeErrorKind {
    /// Refused: the lifecycle is not running yet (not every component is
    /// ready), or the upgrader's component was never registered.
    NotReady,
    /// Refused: another upgrade is in flight.
    InProgress,
    /// Refused: this process was itself started by an upgrade and its
    /// parent has not exited yet.
    ParentAlive,
    /// Refused: shutdown has begun (or an upgrade already succeeded).
    ShuttingDown,
    /// The new process could not be started.
    Spawn,
    /// The new process exited (or closed its readiness pipe) before it was
    /// ready.
    ChildExited,
    /// The new process was not ready within the grace period; it was killed.
    Timeout,
    /// Setting up the hand-over failed (pipes, descriptors, environment).
    Io,
    /// The manifest inherited from the parent could not be read.
    Manifest,
}

impl UpgradeErrorKind {
    /// Every kind: keep in step with the enum (the control socket's answers
    /// name kinds by their `Debug` text).
    const ALL: [UpgradeErrorKind; 9] = [
        Self::NotReady,
        Self::InProgress,
        Self::ParentAlive,
        Self::ShuttingDown,
        Self::Spawn,
        Self::ChildExited,
        Self::Timeout,
        Self::Io,
        Self::Manifest,
    ];

    /// The kind whose `Debug` text is `name`; `Io` for a name this version
    /// does not know (an answer from a newer server).
    pub(crate) fn named(name: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|k| format!("{k:?}") == name)
            .unwrap_or(Self::Io)
    }
}

/// Why an upgrade was refused or failed.
///
/// Refusals ([`is_refused`](UpgradeError::is_refused)) come back at once and
/// change nothing. Failures mean a new process was started and is gone
/// again: the current process keeps serving and the next upgrade may start.
#[derive(Debug)]
pub struct UpgradeError {
    kind: UpgradeErrorKind,
    message: String,
    source: Option<io::Error>,
}

impl UpgradeError {
    pub(crate) fn new(kind: UpgradeErrorKind, message: impl Into<String>) -> Self {
        UpgradeError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn io(kind: UpgradeErrorKind, message: &str, source: io::Error) -> Self {
        UpgradeError {
            kind,
            message: message.into(),
            source: Some(source),
        }
    }

    pub(crate) fn timeout(grace: Duration) -> Self {
        UpgradeError::new(
            UpgradeErrorKind::Timeout,
            format!("new process not ready within the grace period of {grace:?}; killed"),
        )
    }

    /// The message without the "upgrade refused/failed" prefix, with the
    /// source's.
    pub(crate) fn detail(&self) -> String {
        match &self.source {
            Some(e) => format!("{}: {e}", self.message),
            None => self.message.clone(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> UpgradeErrorKind {
        self.kind
    }

    /// Whether the upgrade was refused before anything started (not ready,
    /// in progress, parent alive, shutting down).
    pub fn is_refused(&self) -> bool {
        matches!(
            self.kind,
            UpgradeErrorKind::NotReady
                | UpgradeErrorKind::InProgress
                | UpgradeErrorKind::ParentAlive
                | UpgradeErrorKind::ShuttingDown
        )
    }
}

impl fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("upgrade ")?;
        f.write_str(if self.is_refused() {
            "refused: "
        } else {
            "failed: "
        })?;
        f.write_str(&self.message)?;
        if let Some(e) = &self.source {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for UpgradeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}
