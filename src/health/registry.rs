//! Registered checks and how one is run: timeout, one shared run in flight,
//! caching, flap damping, background refresh.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, Either, FutureExt, Shared, select};
use futures::stream::{FuturesUnordered, StreamExt};
use futures_timer::Delay;

use super::check::{DynHealthChecker, Health, run_check};
use super::failure_log::FailureLog;
use super::options::CheckOptions;
use super::within::within;
use crate::error::Error;
use crate::latch::{Latch, lock};
use crate::logging::{event, in_span};
use crate::names::{NameIndex, validate_name};

/// Names the library's own checks use; user checks may not take them.
const RESERVED: [&str; 3] = ["ping", "launch", "shutdown"];

/// One result: the health reported (after flap damping) and how long the
/// run took.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) health: Health,
    pub(crate) took: Duration,
}

type SharedRun = Shared<BoxFuture<'static, Outcome>>;

/// A registered check.
pub(crate) struct Entry {
    pub(crate) name: Arc<str>,
    checker: Arc<dyn DynHealthChecker>,
    pub(crate) options: CheckOptions,
    /// Allocated on the first run: a registered check that never runs
    /// costs only its registration.
    state: OnceLock<Box<Mutex<EntryState>>>,
}

#[derive(Default)]
struct EntryState {
    last: Option<(Instant, Outcome)>,
    inflight: Option<(Instant, SharedRun)>,
    fails: u32,
    passes: u32,
}

impl Entry {
    pub(crate) fn new(
        name: Arc<str>,
        checker: Arc<dyn DynHealthChecker>,
        options: CheckOptions,
    ) -> Self {
        Entry {
            name,
            checker,
            options,
            state: OnceLock::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, EntryState> {
        lock(self.state.get_or_init(Box::default))
    }

    /// A check as registered, or a `Config` error for an invalid or
    /// reserved name or invalid options.
    pub(crate) fn checked(
        name: Arc<str>,
        checker: Arc<dyn DynHealthChecker>,
        options: CheckOptions,
    ) -> Result<Arc<Self>, Error> {
        validate_name(&name, "health check")?;
        options.validate(&name)?;
        if RESERVED.contains(&&*name) {
            return Err(Error::config("name of a built-in health check").with_component(&name));
        }
        Ok(Arc::new(Entry::new(name, checker, options)))
    }

    /// The user's checker, to run it raw (no timeout, cache or damping).
    pub(crate) fn checker(&self) -> Arc<dyn DynHealthChecker> {
        self.checker.clone()
    }

    /// The check's current result, as a probe sees it.
    pub(crate) async fn evaluate(self: &Arc<Self>, background: bool) -> Outcome {
        let opts = &self.options;
        if let (Some(interval), true) = (opts.interval, background) {
            let st = self.state();
            return match &st.last {
                None => Outcome {
                    health: Health::Unhealthy("no result yet".into()),
                    took: Duration::ZERO,
                },
                Some((at, o)) => {
                    let age = at.elapsed();
                    if age > interval.saturating_mul(2).saturating_add(opts.timeout) {
                        Outcome {
                            health: Health::Unhealthy(format!(
                                "stale: last result {} ago",
                                human(age)
                            )),
                            took: o.took,
                        }
                    } else {
                        o.clone()
                    }
                }
            };
        }
        let ttl = opts.interval.unwrap_or(opts.cache);
        let run = {
            let mut st = self.state();
            if let Some((at, o)) = &st.last {
                if !ttl.is_zero() && at.elapsed() < ttl {
                    return o.clone();
                }
            }
            self.shared_run(&mut st)
        };
        run.await
    }

    /// The run in flight, or a new one. A run nobody polled for longer than
    /// its budget would time out on its first poll; it is replaced.
    fn shared_run(self: &Arc<Self>, st: &mut EntryState) -> SharedRun {
        if let Some((started, run)) = &st.inflight {
            if started.elapsed() <= self.options.timeout {
                return run.clone();
            }
        }
        let run = self.clone().run_once().boxed().shared();
        st.inflight = Some((Instant::now(), run.clone()));
        run
    }

    /// Runs the check once within its timeout and records the result.
    async fn run_once(self: Arc<Self>) -> Outcome {
        let t0 = Instant::now();
        let timeout = self.options.timeout;
        let raw = within(
            timeout,
            in_span(run_check(self.checker.clone()), &self.name, "check"),
        )
        .await
        .unwrap_or_else(|| Health::Unhealthy(format!("timed out after {}", human(timeout))));
        let took = t0.elapsed();
        if let Some(reason) = raw.reason() {
            let name = &self.name;
            event!(debug, { component = name, error = reason }, "health check `{name}`: {reason}");
        }
        self.observe(raw, took)
    }

    /// Applies flap damping to a raw result and stores it.
    fn observe(&self, raw: Health, took: Duration) -> Outcome {
        let opts = &self.options;
        let mut st = self.state();
        if raw.is_passing() {
            st.passes = st.passes.saturating_add(1);
            st.fails = 0;
        } else {
            st.fails = st.fails.saturating_add(1);
            st.passes = 0;
        }
        let was_passing = st.last.as_ref().map(|(_, o)| o.health.is_passing());
        let health = match (was_passing, raw) {
            (Some(true), Health::Unhealthy(r)) if st.fails < opts.fail_after => {
                Health::Degraded(format!(
                    "{r} (failure {} of {} before failing)",
                    st.fails, opts.fail_after
                ))
            }
            (Some(false), h) if h.is_passing() && st.passes < opts.pass_after => {
                Health::Unhealthy(format!(
                    "recovering: {} of {} passing runs",
                    st.passes, opts.pass_after
                ))
            }
            (_, h) => h,
        };
        // A damped result keeps the streak's direction: what was reported
        // passing stays passing until the threshold.
        let outcome = Outcome { health, took };
        st.last = Some((Instant::now(), outcome.clone()));
        st.inflight = None;
        outcome
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Every registered check, and whether a background driver runs.
#[derive(Default)]
pub(crate) struct Registry {
    entries: Mutex<Checks>,
    drivers: AtomicUsize,
    /// When each probe's failure was last logged.
    pub(crate) failure_log: FailureLog,
}

/// Checks in registration order, with a name index for a constant-time
/// duplicate test. The builder fills one without a lock; the registry
/// holds one behind its lock.
#[derive(Default)]
pub(crate) struct Checks {
    list: Vec<Arc<Entry>>,
    index: NameIndex,
}

impl Checks {
    /// Adds a check, unless one of that name exists (or the list holds
    /// `u32::MAX` checks): then the entry is handed back.
    pub(crate) fn try_push(&mut self, entry: Arc<Entry>) -> Result<(), Arc<Entry>> {
        let Ok(at) = u32::try_from(self.list.len()) else {
            return Err(entry);
        };
        let list = &self.list;
        if self
            .index
            .insert(&entry.name, at, |i| &list[i as usize].name)
            .is_err()
        {
            return Err(entry);
        }
        self.list.push(entry);
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }
}

impl Registry {
    /// Adds a check, unless one of that name exists: then the entry is
    /// handed back, for the caller to drop outside its locks.
    pub(crate) fn try_push(&self, entry: Arc<Entry>) -> Result<(), Arc<Entry>> {
        lock(&self.entries).try_push(entry)
    }

    /// Takes the checks a builder registered, before anything else could.
    pub(crate) fn install(&self, checks: Checks) {
        let old = std::mem::replace(&mut *lock(&self.entries), checks);
        debug_assert!(old.list.is_empty());
    }

    pub(crate) fn entries(&self) -> Vec<Arc<Entry>> {
        lock(&self.entries).list.clone()
    }

    /// Removes every check: the lifecycle has stopped, and nothing a user
    /// registered may outlive it. The caller drops them, outside any lock.
    pub(crate) fn take(&self) -> Vec<Arc<Entry>> {
        let mut entries = lock(&self.entries);
        entries.index.clear();
        std::mem::take(&mut entries.list)
    }

    /// Whether background checks are being refreshed by a driver.
    pub(crate) fn has_driver(&self) -> bool {
        self.drivers.load(Ordering::Acquire) > 0
    }

    /// Refreshes every check that has an interval, until `stop` is set.
    /// Several drivers may run; each refresh still runs once (shared run).
    pub(crate) async fn drive(self: Arc<Self>, stop: Latch) {
        self.drivers.fetch_add(1, Ordering::AcqRel);
        let _guard = DriverGuard(&self.drivers);
        // When each check is next due; `None`: never again (an interval too
        // long for the clock).
        let mut due: HashMap<Arc<str>, Option<Instant>> = HashMap::new();
        let mut running = FuturesUnordered::new();
        let mut stop = stop;
        loop {
            let now = Instant::now();
            let mut next = now + Duration::from_millis(250);
            for e in self.entries() {
                let Some(interval) = e.options.interval else {
                    continue;
                };
                let at = due.entry(e.name.clone()).or_insert(Some(now));
                if at.is_some_and(|at| at <= now) {
                    *at = crate::timer::after(now, interval);
                    let run = {
                        let mut st = e.state();
                        e.shared_run(&mut st)
                    };
                    running.push(run);
                }
                if let Some(at) = *at {
                    next = next.min(at);
                }
            }
            let wait = Delay::new(next.saturating_duration_since(Instant::now()));
            let step = async {
                if running.is_empty() {
                    wait.await;
                } else {
                    let _ = select(running.next(), wait).await;
                }
            };
            futures::pin_mut!(step);
            if let Either::Left(_) = select(&mut stop, step).await {
                return;
            }
        }
    }
}

struct DriverGuard<'a>(&'a AtomicUsize);

impl Drop for DriverGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A duration as people write it: `500ms`, `1.5s`, `2s`.
pub(crate) fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        if d.as_micros() % 1000 == 0 {
            format!("{ms}ms")
        } else {
            format!("{:.1}ms", d.as_secs_f64() * 1000.0)
        }
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
