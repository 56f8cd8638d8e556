//! Registered checks and how one is run: timeout, one shared run in flight,
//! caching, flap damping, background refresh.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, Either, FutureExt, Shared, select};
use futures::stream::{FuturesUnordered, StreamExt};
use futures_timer::Delay;

use super::check::{DynHealthChecker, Health, run_check};
use super::failure_log::FailureLog;
use super::options::CheckOptions;
use super::within::within;
use crate::latch::{Latch, lock};
use crate::logging::{event, in_span};

/// Names the library's own checks use; user checks may not take them.
pub(crate) const RESERVED: [&str; 3] = ["ping", "launch", "shutdown"];

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
    state: Mutex<EntryState>,
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
            state: Mutex::new(EntryState::default()),
        }
    }

    /// The user's checker, to run it raw (no timeout, cache or damping).
    pub(crate) fn checker(&self) -> Arc<dyn DynHealthChecker> {
        self.checker.clone()
    }

    /// The check's current result, as a probe sees it.
    pub(crate) async fn evaluate(self: &Arc<Self>, background: bool) -> Outcome {
        let opts = &self.options;
        if let (Some(interval), true) = (opts.interval, background) {
            let st = lock(&self.state);
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
            let mut st = lock(&self.state);
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
        let mut st = lock(&self.state);
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
    entries: Mutex<Entries>,
    drivers: AtomicUsize,
    /// When each probe's failure was last logged.
    pub(crate) failure_log: FailureLog,
}

/// The checks in registration order, and their names for a constant-time
/// duplicate test.
#[derive(Default)]
struct Entries {
    list: Vec<Arc<Entry>>,
    names: HashSet<Arc<str>>,
}

impl Registry {
    /// Adds a check, unless one of that name exists: then the entry is
    /// handed back, for the caller to drop outside its locks.
    pub(crate) fn try_push(&self, entry: Arc<Entry>) -> Result<(), Arc<Entry>> {
        let mut entries = lock(&self.entries);
        if !entries.names.insert(entry.name.clone()) {
            return Err(entry);
        }
        entries.list.push(entry);
        Ok(())
    }

    /// Makes room for `n` more checks.
    pub(crate) fn reserve(&self, n: usize) {
        let mut entries = lock(&self.entries);
        entries.list.reserve(n);
        entries.names.reserve(n);
    }

    pub(crate) fn entries(&self) -> Vec<Arc<Entry>> {
        lock(&self.entries).list.clone()
    }

    /// Removes every check: the lifecycle has stopped, and nothing a user
    /// registered may outlive it. The caller drops them, outside any lock.
    pub(crate) fn take(&self) -> Vec<Arc<Entry>> {
        let mut entries = lock(&self.entries);
        entries.names.clear();
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
                        let mut st = lock(&e.state);
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
