//! What the runner and a component's future tell each other through the
//! cell: commands in, how calls ended out.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use futures::future::{Aborted, BoxFuture};

use crate::component::CallResult;
use crate::context::Context;
use crate::error::Error;
use crate::lifecycle::options::Kept;
use crate::phase::Step;

/// Puts a component's `run` on a task of the user's executor.
#[derive(Clone)]
pub(crate) struct Spawner(pub(crate) Arc<dyn Fn(BoxFuture<'static, ()>) + Send + Sync>);

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Spawner")
    }
}

/// What the runner tells a component's future to do.
pub(crate) enum Cmd {
    /// Launch the component: call `start` (within the context's deadline,
    /// counted from `t0`), put `run` in flight once it returned (polled by
    /// the component's future, or on a task of its own through the
    /// spawner the future holds, with `busy`, the flag that tells whether
    /// that task is inside a poll of it), then ask `ready` as the component's readiness policy
    /// says, attempt after attempt. Only the end of the whole launch is
    /// reported. The budgets (the readiness policy) come with the command,
    /// a pointer shared with the runner's slot (none for the defaults),
    /// rather than as a field of the component's future. The future keeps
    /// the command once the launch ended, for its context (see `Stop`).
    Launch(Launch),
    /// Stop the component: call `stop`, then wait for `run` to end. Its
    /// end reads `Ok` once both are done, or `stop`'s error at once (the
    /// runner then waits for `run` itself). Its budget is the runner's,
    /// which gives up on it when it overruns; its deadline (the context's
    /// that `stop` is given) comes with it. The rest of that context is
    /// the one of the component's last launch (or close), which its
    /// future keeps: the same name, stop latch and handle. The deadline
    /// is given as its offset from the lifecycle's epoch, which most stops
    /// pass without the cell's lock.
    Stop(Option<Duration>),
    /// Call `close`, bounded by the context's deadline (a budget counted
    /// from `t0`).
    Close { cx: Context, t0: Instant },
    /// Drop the call in flight (it timed out, or the runner gave up on it).
    Abandon,
}

impl Cmd {
    /// The context the command's call is given, if it has one.
    pub(crate) fn context(&mut self) -> Option<&mut Context> {
        match self {
            Cmd::Launch(plan) => Some(&mut plan.cx),
            Cmd::Close { cx, .. } => Some(cx),
            Cmd::Stop(_) | Cmd::Abandon => None,
        }
    }
}

/// What a launch is given: its context (whose deadline is `start`'s),
/// the instant `start` was issued, the flag of a spawned `run` and the
/// budgets. One struct, so that the launch's future keeps one reference
/// to it, not one per field.
pub(crate) struct Launch {
    pub(crate) cx: Context,
    pub(crate) t0: Instant,
    pub(crate) busy: Option<Arc<AtomicBool>>,
    pub(crate) budgets: Kept,
}

/// How a call ended.
pub(crate) enum Done {
    Unit(CallResult<()>),
    Launch(Launched),
}

/// How a launch ended.
pub(crate) struct Launched {
    /// How long `start` took, if it returned `Ok`.
    pub(crate) start_took: Option<Duration>,
    /// The readiness attempts made (the one in flight included).
    pub(crate) attempts: u32,
    /// When the component was ready, or the step its launch failed in and
    /// why.
    pub(crate) end: Result<Instant, (Step, Error)>,
}

/// How a component's `run` ended.
pub(crate) enum RunExit {
    /// It returned (or panicked: caught into an error).
    Done(CallResult<()>),
    /// The lifecycle aborted it.
    Aborted,
    /// The executor dropped its task before it finished.
    Dropped,
}

/// What a `run` on its own task sends back.
pub(crate) type SpawnedOutput = Result<CallResult<()>, Aborted>;
