//! [`Shared`]: the state the runner and every handle hold, and the one
//! place shutdown begins.

use std::any::Any;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::cause::ShutdownCause;
use crate::error::Error;
use crate::graph::Graph;
use crate::health::registry::Registry;
use crate::latch::{Latch, lock};
use crate::lifecycle::watchdog::Watchdog;
use crate::logging::{event, opt};
use crate::machine::{Change, Gate, PhaseMachine, Transition};
use crate::phase::Phase;
use crate::report::Records;

pub(crate) use crate::names::{NameIndex, validate_name};

/// State shared by the runner and every [`Handle`](super::Handle).
pub(crate) struct Shared {
    /// Where the lifecycle is: the one record of its phase, of whether
    /// shutdown began, the launch completed, the shutdown was forced and
    /// `run` is over, and of when each happened.
    pub(crate) machine: Arc<PhaseMachine>,
    /// Gates of `machine`, to wait on: views of its state that store
    /// nothing. Shutdown has begun.
    pub(crate) shutdown: Latch,
    /// The shutdown was forced.
    pub(crate) force: Latch,
    /// The launch completed.
    pub(crate) ready: Latch,
    /// `run` is over.
    pub(crate) stopped: Latch,
    pub(crate) epoch: Instant,
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
    /// Each component's position in `records`, which is its node in
    /// `graph`: components are recorded, and linked, in launch order.
    pub(crate) component_index: NameIndex,
    pub(crate) graph: Graph,
    pub(crate) hook_names: HashSet<Arc<str>>,
    pub(crate) records: Records,
}

impl Shared {
    pub(crate) fn new(parts: Box<dyn Any + Send + Sync>) -> Self {
        let machine = Arc::new(PhaseMachine::new());
        Shared {
            shutdown: machine.latch(Gate::Shutdown),
            force: machine.latch(Gate::Forced),
            ready: machine.latch(Gate::Ready),
            stopped: machine.latch(Gate::Stopped),
            machine,
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
            parts,
            watchdog: Mutex::new(None),
            health: Arc::new(Registry::default()),
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        self.machine.state().phase()
    }

    /// Moves the phase forward to `Launching`, or on through the shutdown;
    /// a move the phase machine does not allow from where it is changes
    /// nothing. Shutdown itself begins with [`Shared::begin_shutdown`], the
    /// launch completes with [`Shared::mark_ready`], and `run` ends with
    /// [`Shared::stop`].
    pub(crate) fn set_phase(&self, phase: Phase) {
        let transition = match phase {
            Phase::Launching => Transition::Launch,
            phase => Transition::Advance(phase),
        };
        let change = self.machine.apply(transition);
        log_phase(change);
        self.machine.wake(change);
    }

    /// When shutdown began, if it has.
    pub(crate) fn shutdown_at(&self) -> Option<Instant> {
        self.machine.shutdown_at()
    }

    /// Whether every component admitted so far is ready: the launch
    /// completed, and no component added since is still launching.
    pub(crate) fn is_launched(&self) -> bool {
        self.machine.is_launched()
    }

    /// Marks every component ready, unless shutdown has begun: the phase
    /// machine allows one or the other, never both.
    pub(crate) fn mark_ready(&self) -> bool {
        let change = self.machine.apply(Transition::Ready);
        // Wakers and the logger may call back into a handle: the machine
        // holds no lock by now.
        self.machine.wake(change);
        log_phase(change);
        change.is_some()
    }

    /// Marks `run` over. The phase is `Stopped` at once, so nothing more
    /// is admitted; the `stopped` waiters are woken by the returned change,
    /// which the caller passes to [`PhaseMachine::wake`] once it has let go
    /// of the parts.
    pub(crate) fn stop(&self) -> Option<Change> {
        let change = self.machine.apply(Transition::Stop);
        log_phase(change);
        change
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
        let change = {
            let mut st = lock(&self.state);
            // Under the state lock: a registration racing with us either
            // lands before the shutdown or is refused.
            let change = self.machine.begin_shutdown(cause);
            match (change, error) {
                (Some(_), Some(e)) => st.errors.push(e),
                // A later request's error is attached to the result, never
                // lost; once the result is out there is nothing to attach
                // it to.
                (None, Some(e)) if !self.machine.state().is_stopped() => st.errors.push(e),
                _ => {}
            }
            change
        };
        if change.is_none() {
            return false;
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
        self.machine.wake(change);
        if let Some(w) = lock(&self.watchdog).as_ref() {
            w.arm();
        }
        true
    }

    /// Refuses a part once shutdown has begun. Taking the state (locked)
    /// shows the caller holds the lock shutdown begins under.
    pub(super) fn refuse_if_shutting_down(&self, _locked: &State) -> Result<(), Error> {
        // A lifecycle can stop without a shutdown: its `run` future dropped,
        // or the lifecycle dropped unrun. Nothing would call the part then.
        if self.machine.state().is_over() {
            Err(Error::shutting_down())
        } else {
            Ok(())
        }
    }
}

fn log_phase(change: Option<Change>) {
    if let Some(Change { from, to }) = change {
        let (old, new) = (from.phase(), to.phase());
        if old != new {
            event!(info, { phase = new }, "phase: {old} -> {new}");
        }
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
