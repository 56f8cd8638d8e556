//! [`Shared`]: the state the runner and every handle hold, and the one
//! place shutdown begins.

use std::any::Any;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::cause::ShutdownCause;
use crate::error::Error;
use crate::graph::Graph;
use crate::health::registry::Registry;
use crate::latch::{Latch, lock};
use crate::lifecycle::watchdog::Watchdog;
use crate::logging::{event, opt};
use crate::phase::Phase;
use crate::report::ComponentRecord;

pub(crate) use crate::names::{NameIndex, validate_name};

/// State shared by the runner and every [`Handle`](super::Handle).
pub(crate) struct Shared {
    pub(crate) shutdown: Latch,
    pub(crate) force: Latch,
    pub(crate) ready: Latch,
    /// Components admitted and not yet ready: one added while running
    /// keeps the `launch` check failing until it is ready.
    pub(crate) launching: AtomicUsize,
    pub(crate) stopped: Latch,
    pub(crate) epoch: Instant,
    phase: AtomicU8,
    pub(crate) state: Mutex<State>,
    /// The engine's parts (components waiting to be launched, drainers,
    /// stop hooks), held without naming their type: see
    /// `lifecycle::parts`.
    pub(crate) parts: Box<dyn Any + Send + Sync>,
    pub(crate) watchdog: Mutex<Option<Watchdog>>,
    pub(crate) health: Arc<Registry>,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) errors: Vec<Error>,
    pub(crate) shutdown_at: Option<Instant>,
    /// Set with `shutdown_at`, by the same call.
    pub(crate) cause: Option<ShutdownCause>,
    /// Each component's position in `records`, which is its node in
    /// `graph`: components are recorded, and linked, in launch order.
    pub(crate) component_index: NameIndex,
    pub(crate) graph: Graph,
    pub(crate) hook_names: HashSet<Arc<str>>,
    pub(crate) records: Vec<ComponentRecord>,
}

impl Shared {
    pub(crate) fn new(parts: Box<dyn Any + Send + Sync>) -> Self {
        Shared {
            shutdown: Latch::new(),
            force: Latch::new(),
            ready: Latch::new(),
            launching: AtomicUsize::new(0),
            stopped: Latch::new(),
            epoch: Instant::now(),
            phase: AtomicU8::new(Phase::Created as u8),
            state: Mutex::new(State::default()),
            parts,
            watchdog: Mutex::new(None),
            health: Arc::new(Registry::default()),
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Moves the phase forward; phases never go back.
    pub(crate) fn set_phase(&self, phase: Phase) {
        let old = self.advance(phase);
        log_phase(old, phase);
    }

    /// Moves the phase forward without logging; returns the phase before.
    fn advance(&self, phase: Phase) -> Phase {
        Phase::from_u8(self.phase.fetch_max(phase as u8, Ordering::AcqRel))
    }

    /// Whether every component admitted so far is ready: the launch
    /// completed, and no component added since is still launching.
    pub(crate) fn is_launched(&self) -> bool {
        self.ready.is_set() && self.launching.load(Ordering::Acquire) == 0
    }

    /// Marks every component ready, unless shutdown has begun. The flag is
    /// raised under the state lock, so it cannot interleave with
    /// `begin_shutdown`; as there, wakers and the logger run after the lock
    /// is released, since either may call back into a handle.
    pub(crate) fn mark_ready(&self) -> bool {
        let old = {
            let st = lock(&self.state);
            if st.shutdown_at.is_some() {
                return false;
            }
            // The phase first: whoever sees the lifecycle ready sees it
            // running.
            let old = self.advance(Phase::Running);
            self.ready.raise();
            old
        };
        self.ready.wake();
        log_phase(old, Phase::Running);
        true
    }

    /// Records an error, keeping the order in which errors happened.
    pub(crate) fn record(&self, error: Error) {
        let text = format!("{error:#}");
        event!(
            warn,
            {
                component = error.component().unwrap_or_default(),
                step = opt(error.step()),
                phase = opt(error.phase()),
                error = text,
            },
            "{text}"
        );
        lock(&self.state).errors.push(error);
    }

    /// Begins shutdown for `cause`. Returns `true` if this call began it;
    /// otherwise the first cause stays.
    pub(crate) fn begin_shutdown(&self, error: Option<Error>, cause: ShutdownCause) -> bool {
        let cause_text = cause.to_string();
        let error_text = error.as_ref().map(|e| format!("{e:#}"));
        {
            let mut st = lock(&self.state);
            if st.shutdown_at.is_some() {
                // A later request's error is attached to the result, never
                // lost; once the result is out there is nothing to attach it
                // to.
                if let Some(e) = error {
                    if self.phase() < Phase::Stopped {
                        st.errors.push(e);
                    }
                }
                return false;
            }
            st.shutdown_at = Some(Instant::now());
            st.cause = Some(cause);
            if let Some(e) = error {
                st.errors.push(e);
            }
            // All under the lock: a registration racing with us either lands
            // before the shutdown or is refused, and whoever sees
            // `shutdown_at` set also sees the shutdown signal set (readiness
            // fails, the launch stops) — never one without the other.
            self.advance(Phase::LameDuck);
            self.shutdown.raise();
        }
        // The logger and wakers run outside the lock: either may call back
        // into a handle. The cause is logged before anyone is woken, so the
        // log names it before any of its effects.
        if let Some(e) = error_text {
            event!(warn, { phase = Phase::LameDuck, error = e }, "{e}");
        }
        event!(
            info,
            { phase = Phase::LameDuck, cause = cause_text },
            "shutting down: {cause_text}"
        );
        self.shutdown.wake();
        if let Some(w) = lock(&self.watchdog).as_ref() {
            w.arm();
        }
        true
    }

    pub(super) fn refuse_if_shutting_down(&self, st: &State) -> Result<(), Error> {
        // A lifecycle can stop without a shutdown: its `run` future dropped,
        // or the lifecycle dropped unrun. Nothing would call the part then.
        if st.shutdown_at.is_some() || self.phase() == Phase::Stopped {
            Err(Error::shutting_down())
        } else {
            Ok(())
        }
    }
}

fn log_phase(old: Phase, new: Phase) {
    if old < new {
        event!(info, { phase = new }, "phase: {old} -> {new}");
    }
}

/// Registers a name in a namespace, refusing invalid names and duplicates.
pub(crate) fn claim(
    names: &mut HashSet<Arc<str>>,
    name: &Arc<str>,
    what: &str,
) -> Result<(), Error> {
    validate_name(name, what)?;
    if names.insert(name.clone()) {
        Ok(())
    } else {
        Err(Error::config(format!("duplicate {what} name")).with_component(name))
    }
}
