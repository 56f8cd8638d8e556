//! The invariants, checked on the event log of one scenario.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use lameduck::{Error, ErrorKind, Step};

use crate::harness::{Ev, Kind, Outcome, S, What};
use crate::model::{Action, CompSpec, Scenario, SpawnerFault};
use crate::order::{
    End, Life, Timeline, check_calls, check_graph, check_restarts, life_over, starts_allowed,
};

/// How late `run` may return past the shutdown timeout (a shared, noisy
/// machine; the engine promises "a few milliseconds").
pub const MARGIN: Duration = Duration::from_millis(750);

#[derive(Debug, Clone)]
pub struct Violation {
    pub code: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.code, self.detail)
    }
}

fn is_subsequence(sub: &[String], of: &[String]) -> bool {
    let mut it = of.iter();
    sub.iter().all(|s| it.any(|o| o == s))
}

/// Checks every invariant; returns the breaches found.
pub fn check(sc: &Scenario, out: &Outcome) -> Vec<Violation> {
    let ev: &[Ev] = &out.events;
    let mut v = Vec::new();
    let mut fail = |code: &'static str, detail: String| v.push(Violation { code, detail });
    let concurrent = sc.concurrent_registrations();

    // Breaches seen on the spot.
    for e in ev {
        if let What::Violation(code, d) = &e.what {
            fail(code, format!("{}: {d} (at {:?})", e.who, e.at));
        }
    }

    // Registrations.
    let mut dyn_components = Vec::new();
    let mut dyn_drainers = Vec::new();
    let mut dyn_hooks = Vec::new();
    let mut refused_config: HashSet<&str> = HashSet::new();
    for e in ev {
        if let What::Registered {
            kind,
            ok,
            shutting_down_before,
            refused,
        } = &e.what
        {
            if *ok && *shutting_down_before {
                fail(
                    "registered-after-shutdown",
                    format!("{} accepted although shutdown had begun", e.who),
                );
            }
            // A restart window of zero is a configuration error, and so is
            // a dependency on a component refused for it.
            let zero = |name: &str| {
                sc.spec(name)
                    .and_then(|c| c.restart)
                    .is_some_and(|r| !r.never && r.window_ms == 0)
            };
            let zero_window = zero(&e.who);
            let on_refused = sc
                .spec(&e.who)
                .and_then(|c| c.deps.as_ref())
                .is_some_and(|deps| deps.iter().any(|d| refused_config.contains(d.as_str())));
            if *refused == Some(ErrorKind::Config) {
                refused_config.insert(e.who.as_str());
            }
            if let Some(k) = refused {
                let config = (zero_window || on_refused) && *k == ErrorKind::Config;
                if *k != ErrorKind::ShuttingDown && !config {
                    fail("registration-refused", format!("{} refused: {k:?}", e.who));
                }
            } else if zero_window && !*shutting_down_before {
                fail(
                    "registration-accepted",
                    format!("{} accepted with a zero restart window", e.who),
                );
            }
            if *ok {
                match kind {
                    Kind::Component => dyn_components.push(e.who.clone()),
                    Kind::Drainer { prepend } => dyn_drainers.push((e.who.clone(), *prepend)),
                    Kind::Hook => dyn_hooks.push(e.who.clone()),
                    Kind::Check => {}
                }
            }
        }
    }
    let builder_components: Vec<String> = sc.components.iter().map(|c| c.name.clone()).collect();
    let all_components: HashSet<&str> = builder_components
        .iter()
        .chain(&dyn_components)
        .map(String::as_str)
        .collect();

    // Component calls, as intervals, and the dependencies each was given.
    let t = Timeline::read(ev, |who| all_components.contains(who));
    let deps = dependencies(sc, out, &dyn_components, concurrent, &mut fail);

    for name in &all_components {
        let lives = t.lives(name);
        let starts = lives.iter().filter(|l| l.start.is_some()).count();
        let allowed = starts_allowed(sc, name);
        if starts > allowed {
            fail(
                "start-twice",
                format!("{name} started {starts} times (at most {allowed})"),
            );
        }
        // Every start is stopped (or closed) exactly once.
        for life in lives {
            check_calls(name, life, &mut fail);
            if life.started().is_some() {
                if life.stop.is_empty() && life.close.is_empty() {
                    fail(
                        "never-stopped",
                        format!("{name} started but neither stopped nor closed"),
                    );
                }
                if life.stop.len() > 1 {
                    fail(
                        "stopped-twice",
                        format!("{name} stop called {} times", life.stop.len()),
                    );
                }
                if life.close.len() > 1 {
                    fail(
                        "closed-twice",
                        format!("{name} close called {} times", life.close.len()),
                    );
                }
            } else {
                if !life.stop.is_empty() || !life.close.is_empty() {
                    fail(
                        "stopped-never-started",
                        format!("{name} stopped or closed but never started"),
                    );
                }
                if !life.run.is_empty() || !life.ready.is_empty() {
                    fail(
                        "ran-never-started",
                        format!("{name} run or ready called but never started"),
                    );
                }
            }
        }
    }

    // The graph's order, whatever its shape, and the restarts'.
    let restart_cancelled = |name: &str| {
        t.lives(name)
            .last()
            .is_some_and(|l| restart_granted(out, name, l))
    };
    check_graph(sc, ev, &t, &deps, restart_cancelled, &mut fail);
    check_restarts(sc, ev, &t, &mut fail);
    check_restart_report(sc, out, &t, &mut fail);
    let starts = &t.starts;
    let ready_true = |name: &str| t.last(name).and_then(Life::ready_at);
    // With the default chain, one strict order: launch in registration
    // order, each start after the one before is ready, stop in reverse.
    if !sc.has_graph() {
        check_chain(
            ev,
            &t,
            &builder_components,
            &dyn_components,
            concurrent,
            &restart_cancelled,
            &mut fail,
        );
    }

    // No start once shutdown has begun — except when a stop call from
    // another thread was still in flight when the component could last
    // have been started: when the launch step before it ended (default
    // chain), or when its last dependency became ready.
    for (i, &(seq, name, sd)) in starts.iter().enumerate() {
        if !sd {
            continue;
        }
        let lives = t.lives(name);
        let life = lives
            .iter()
            .position(|l| l.start.is_some_and(|(c, _)| c.begin == seq));
        let checkpoint = if let Some(k) = life.filter(|k| *k > 0) {
            // A restart: launched again once the life before it was over
            // and its backoff passed.
            life_over(&lives[k - 1]).unwrap_or(0)
        } else if !sc.has_graph() {
            // The first start before it, of another component.
            match starts[..i].iter().rev().find(|s| s.1 != name) {
                None => 0,
                Some(before) => ready_true(before.1).unwrap_or(0),
            }
        } else {
            deps.get(name)
                .into_iter()
                .flatten()
                .filter_map(|d| ready_true(d))
                .filter(|r| *r < seq)
                .max()
                .unwrap_or(0)
        };
        let mut open: HashMap<&str, usize> = HashMap::new();
        let mut raced = false;
        for (j, e) in ev.iter().enumerate() {
            match e.what {
                What::RequestBegin(_) | What::ForceBegin => {
                    open.insert(e.who.as_str(), j);
                }
                What::RequestEnd(..) | What::ForceEnd(_) => {
                    let began = open.remove(e.who.as_str()).unwrap_or(j);
                    raced |= began < seq && j > checkpoint;
                }
                _ => {}
            }
        }
        if !raced {
            let done = t
                .lives(name)
                .iter()
                .any(|l| l.start.is_some_and(|(c, _)| c.begin == seq) && l.start_done());
            if done {
                fail(
                    "start-after-shutdown",
                    format!("{name}: start called and completed after shutdown began"),
                );
            } else {
                fail(
                    "start-polled-after-shutdown",
                    format!("{name}: start called (then cancelled) after shutdown began"),
                );
            }
        }
    }

    // The report agrees with what happened to each component.
    for record in out.report.components() {
        use lameduck::ComponentState as St;
        let last = t.last(&record.name);
        let start_ok = last.and_then(Life::started);
        let start_called = last.is_some_and(|l| l.start.is_some());
        let cancelled = start_called && !last.is_some_and(Life::start_done);
        let (stop_called, close_called) = last.map_or((false, false), |l| {
            (!l.stop.is_empty(), !l.close.is_empty())
        });
        // A restart granted, then cancelled by the shutdown: stopped.
        let cancelled_restart = last.is_some_and(|l| restart_granted(out, &record.name, l));
        let launch_failed = all_errors(out).any(|e| {
            e.component() == Some(&*record.name)
                && (matches!(e.step(), Some(Step::Start | Step::Ready))
                    || matches!(
                        e.kind(),
                        lameduck::ErrorKind::Exited | lameduck::ErrorKind::Dropped
                    ))
        });
        let expected: &[St] = if cancelled_restart && close_called {
            // Closed by the restart, or by the drain that stopped it.
            &[St::Stopped, St::Closed]
        } else if cancelled_restart {
            &[St::Stopped]
        } else if start_ok.is_some() && launch_failed {
            // Its readiness failed (or its run ended before it was ready):
            // the report keeps `Failed` through the drain.
            &[St::Failed]
        } else if start_ok.is_some() {
            if !stop_called || close_called {
                &[St::Closed]
            } else {
                &[St::Stopped]
            }
        } else if cancelled && t.lives(&record.name).len() > 1 {
            // A relaunch whose start the shutdown cancelled: the component
            // ran and was stopped before it (or the start timed out).
            &[St::Stopped, St::Failed]
        } else if !start_called || cancelled {
            // Never started, or its start was cancelled by the shutdown (or
            // timed out: then it failed).
            &[St::Pending, St::Failed]
        } else {
            &[St::Failed]
        };
        if !expected.contains(&record.state) {
            fail(
                "report-state",
                format!(
                    "{} is {:?} in the report, expected {expected:?}",
                    record.name, record.state
                ),
            );
        }
        let restart_stop =
            last.is_some_and(|l| l.down_at().is_some() && l.shutdown_down(ev).is_none());
        if start_ok.is_some() && record.stop_at.is_none() && !restart_stop {
            fail(
                "report-state",
                format!("{} has no stop time in the report", record.name),
            );
        }
    }

    // The whole shutdown is bounded.
    let budget = Duration::from_millis(sc.shutdown_timeout_ms);
    match out.shutdown_to_return {
        None => fail("no-shutdown", "the report has no shutdown time".into()),
        Some(d) if d > budget + MARGIN => fail(
            "shutdown-overran",
            format!("run returned {d:?} after shutdown began (timeout {budget:?})"),
        ),
        Some(_) => {}
    }
    // A force is prompt: every remaining close and hook is bounded together
    // by the force budget.
    let at = |f: &dyn Fn(&What) -> bool| ev.iter().find(|e| f(&e.what)).map(|e| e.at);
    let forced_at = at(&|w| matches!(w, What::ForceEnd(true)));
    let returned_at = at(&|w| matches!(w, What::RunReturned));
    if let (Some(forced), Some(returned)) = (forced_at, returned_at) {
        let force_budget = Duration::from_millis(sc.force_timeout_ms);
        let after = returned.saturating_sub(forced);
        if after > force_budget.saturating_add(MARGIN) {
            fail(
                "force-overran",
                format!("run returned {after:?} after the force (budget {force_budget:?})"),
            );
        }
    }

    check_errors(sc, ev, out, &t, &mut fail);
    check_flush(sc, ev, &dyn_drainers, &dyn_hooks, concurrent, &t, &mut fail);

    // Leaks.
    if out.live_calls != 0 {
        let mut live: HashMap<(&str, S), i64> = HashMap::new();
        for e in ev {
            match &e.what {
                What::Begin(s, _) => *live.entry((e.who.as_str(), *s)).or_default() += 1,
                What::Ok(s) | What::Fail(s, _) | What::Panic(s, _) | What::Dropped(s) => {
                    *live.entry((e.who.as_str(), *s)).or_default() -= 1
                }
                What::NotReady => *live.entry((e.who.as_str(), S::Ready)).or_default() -= 1,
                _ => {}
            }
        }
        let live: Vec<_> = live
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, _)| k)
            .collect();
        fail(
            "future-leak",
            format!(
                "{} user futures alive after run returned: {live:?}",
                out.live_calls
            ),
        );
    }
    if out.live_components != 0 || out.live_parts != 0 {
        let pending: Vec<&String> = builder_components
            .iter()
            .chain(&dyn_components)
            .filter(|n| t.lives(n).iter().all(|l| l.start.is_none()))
            .collect();
        let code = if out.live_parts == 0 && out.live_components == pending.len() {
            "pending-registration-leak"
        } else {
            "part-leak"
        };
        fail(
            code,
            format!(
                "{} components and {} other parts alive after run returned (registered, never launched: {pending:?})",
                out.live_components, out.live_parts
            ),
        );
    }
    v
}

/// Whether the report keeps the failure of `life`'s `run`: a restart was
/// granted after it.
fn restart_granted(out: &Outcome, name: &str, life: &Life) -> bool {
    let Some(record) = out.report.component(name) else {
        return false;
    };
    let Some(msg) = life.run.iter().find_map(|c| match c.end {
        Some((at, End::Failed)) => match &out.events[at].what {
            What::Fail(_, m) | What::Panic(_, m) => Some(m),
            _ => None,
        },
        _ => None,
    }) else {
        return false;
    };
    record
        .failures()
        .iter()
        .any(|f| f.error.contains(msg.as_str()))
}

/// The report's word on restarts: its count is the number of lives less
/// one, plus one when the shutdown cancelled a restart granted last; it
/// keeps each failure restarted after, in order; restarts never exceed
/// the budget in any window (read from the failures' own stamps, on the
/// engine's clock); and a failure that exhausted the budget ends the
/// lifecycle with an error that names the component and says so.
fn check_restart_report(
    sc: &Scenario,
    out: &Outcome,
    t: &Timeline<'_>,
    fail: &mut impl FnMut(&'static str, String),
) {
    for record in out.report.components() {
        let name = &*record.name;
        let lives = t.lives(name);
        let failures = record.failures();
        // Every restart is counted; only the latest failures are kept.
        if (record.restarts() as usize).min(lameduck::KEPT_FAILURES) != failures.len() {
            fail(
                "report-restarts",
                format!(
                    "{name}: {} restarts but {} failures kept",
                    record.restarts(),
                    failures.len()
                ),
            );
        }
        let cancelled = lives.last().is_some_and(|l| restart_granted(out, name, l));
        let want = lives.len().saturating_sub(1) + usize::from(cancelled);
        if record.restarts() as usize != want {
            fail(
                "report-restarts",
                format!(
                    "{name}: {} restarts, {} lives{}",
                    record.restarts(),
                    lives.len(),
                    if cancelled {
                        " (the last restart cancelled)"
                    } else {
                        ""
                    }
                ),
            );
        }
        // Each life but the last ended in the failure kept for it, but for
        // those older than the latest `KEPT_FAILURES`.
        let dropped = (record.restarts() as usize).saturating_sub(lameduck::KEPT_FAILURES);
        for (k, life) in lives
            .iter()
            .enumerate()
            .take(lives.len().saturating_sub(1))
            .skip(dropped)
        {
            if !restart_granted(out, name, life) {
                fail(
                    "report-failure-lost",
                    format!("{name}: the failure that ended life {} is not kept", k + 1),
                );
            }
        }
        if record
            .ready_at
            .is_some_and(|r| record.start_at.is_none_or(|s| r < s))
        {
            fail(
                "report-stale-stamps",
                format!(
                    "{name}: ready at {:?}, before its latest start at {:?}",
                    record.ready_at, record.start_at
                ),
            );
        }
        let Some(policy) = sc.spec(name).and_then(|c| c.restart) else {
            if !failures.is_empty() {
                fail("restart-without-policy", format!("{name} restarted"));
            }
            continue;
        };
        let max = policy.max_restarts() as usize;
        let window = match policy.window_ms {
            u64::MAX => Duration::MAX,
            ms => Duration::from_millis(ms),
        };
        let within = |at: Duration, before: &[lameduck::RunFailure]| {
            before
                .iter()
                .filter(|f| at.saturating_sub(f.at) < window)
                .count()
        };
        for (j, f) in failures.iter().enumerate() {
            if within(f.at, &failures[..j]) >= max {
                fail(
                    "restart-over-budget",
                    format!(
                        "{name}: restart {} at {:?} although {max} were within {window:?}",
                        j + 1,
                        f.at
                    ),
                );
            }
        }
        // A ready component's failure within the budget, before anything
        // else began the shutdown (it is the cause): restarted, not shut
        // down for. Counted at the `run`'s end as the engine stamped it,
        // no later than the engine's own count.
        let failed_cause = matches!(
            out.report.shutdown_cause(),
            Some(lameduck::ShutdownCause::RunEnded { component, end })
                if **component == *name
                    && matches!(end, lameduck::RunEnd::Failed | lameduck::RunEnd::Panicked)
        );
        if failed_cause && max > 0 {
            let at = record.run_ended_at.unwrap_or_default();
            let n = within(at, failures);
            if n < max {
                fail(
                    "restart-refused",
                    format!(
                        "{name}: shut down on a failure with {n} of {max} restarts within {window:?}"
                    ),
                );
            }
        }
        // The failure that gave up.
        let exhausted = all_errors(out).find(|e| {
            e.component() == Some(name)
                && e.step() == Some(Step::Run)
                && own_text(e).contains("restart budget exhausted")
        });
        if let Some(e) = exhausted {
            let at = record.run_ended_at.unwrap_or_default();
            if within(at, failures) < max {
                fail(
                    "restart-gave-up-early",
                    format!(
                        "{name}: {e} with {} restarts within the window",
                        within(at, failures)
                    ),
                );
            }
            if !matches!(e.kind(), ErrorKind::Failed | ErrorKind::Panicked) {
                fail("restart-gave-up-early", format!("{name}: {e}"));
            }
        }
    }
}

/// One error's message and its sources, without the errors attached to it.
fn own_text(e: &Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The primary error and every one attached to it.
fn all_errors(out: &Outcome) -> impl Iterator<Item = &Error> {
    let primary = out.result.as_ref().err();
    primary
        .into_iter()
        .chain(primary.into_iter().flat_map(|e| e.others()))
}

fn check_errors(
    sc: &Scenario,
    ev: &[Ev],
    out: &Outcome,
    t: &Timeline<'_>,
    fail: &mut impl FnMut(&'static str, String),
) {
    let errs: Vec<&Error> = all_errors(out).collect();
    for e in &errs {
        let named = e.component().is_some() && e.step().is_some();
        match e.kind() {
            ErrorKind::Failed
            | ErrorKind::Panicked
            | ErrorKind::NotReady
            | ErrorKind::Exited
            | ErrorKind::TimedOut
                if !named =>
            {
                fail("error-unnamed", format!("{e}"))
            }
            ErrorKind::TimedOut if e.budget().is_none() => {
                fail("error-unnamed", format!("timeout without budget: {e}"))
            }
            ErrorKind::Requested if e.step() != Some(Step::Request) => {
                fail("error-unnamed", format!("{e}"))
            }
            // The lifecycle-wide one, or a drainer or hook it interrupted.
            ErrorKind::Forced
                if !(e.component().is_none() && e.step() == Some(Step::Shutdown)
                    || e.component().is_some()
                        && matches!(e.step(), Some(Step::Drain | Step::Hook))) =>
            {
                fail("error-unnamed", format!("{e}"))
            }
            ErrorKind::ShuttingDown | ErrorKind::Config => fail("bad-error-kind", format!("{e}")),
            // Only a spawner that drops tasks may cause it, for a `run`.
            ErrorKind::Dropped
                if !(sc.spawner
                    && matches!(sc.spawner_fault, SpawnerFault::DropEvery(_))
                    && e.component().is_some()
                    && e.step() == Some(Step::Run)) =>
            {
                fail("bad-error-kind", format!("{e}"))
            }
            _ => {}
        }
        if !e.others().is_empty() && !std::ptr::eq(*e, errs[0]) {
            fail("nested-others", format!("{e}"));
        }
    }

    // Every injected failure is recorded once, in the order it happened.
    let mut used = vec![false; errs.len()];
    let mut positions = Vec::new();
    // Whether the latest call of each kind began once shutdown had.
    let mut for_shutdown: HashMap<(&str, S), bool> = HashMap::new();
    let mut restart_stops = Vec::new();
    // Whether `err` is the injected failure of `who`'s call `s`.
    let injected = |err: &Error, who: &str, s: S, msg: &str, panic: bool| {
        err.component() == Some(who)
            && err.step() == Some(s.step())
            && if panic {
                // The panic's own message, whatever the engine notes
                // beside it (a spent restart budget).
                err.panic_message() == Some(msg)
            } else {
                err.kind() == ErrorKind::Failed && own_text(err).contains(msg)
            }
    };
    for e in ev {
        if let What::Begin(s, sd) = e.what {
            for_shutdown.insert((e.who.as_str(), s), sd);
        }
        let (s, msg, panic) = match &e.what {
            What::Fail(s, m) => (*s, m, false),
            What::Panic(s, m) => (*s, m, true),
            _ => continue,
        };
        // A failure its component was restarted after is kept in the
        // report, not in the errors.
        let kept = out
            .report
            .component(&e.who)
            .is_some_and(|r| r.failures().iter().any(|f| f.error.contains(msg.as_str())));
        if s == S::Run && kept {
            continue;
        }
        // The stop or close of a restart that began before any shutdown:
        // logged while the restart goes on, returned if the shutdown began
        // before its end was read (the component is not started again).
        // Which one is a race the user cannot see; if returned, it is
        // recorded when read, which may be after later failures. Matched
        // last, so that it takes no error of a later call of the same
        // kind (whose message is the same).
        let restart_stop = matches!(s, S::Stop | S::Close)
            && for_shutdown.get(&(e.who.as_str(), s)) == Some(&false)
            && sc.spec(&e.who).is_some_and(|c| c.restart.is_some());
        if restart_stop {
            restart_stops.push((e.who.as_str(), s, msg, panic));
            continue;
        }
        let found = errs
            .iter()
            .enumerate()
            .position(|(j, err)| !used[j] && injected(err, &e.who, s, msg, panic));
        match found {
            Some(j) => {
                used[j] = true;
                positions.push((j, e.who.clone(), s));
            }
            // One of the failures older than the latest `KEPT_FAILURES`
            // its component was restarted after: counted, not kept.
            None if s == S::Run
                && out
                    .report
                    .component(&e.who)
                    .is_some_and(|r| r.restarts() as usize > lameduck::KEPT_FAILURES) => {}
            None => fail(
                "failure-lost",
                format!(
                    "{} {s:?} {} but no such error was returned",
                    e.who,
                    if panic { "panicked" } else { "failed" }
                ),
            ),
        }
    }
    for (who, s, msg, panic) in restart_stops {
        let found = errs
            .iter()
            .enumerate()
            .position(|(j, err)| !used[j] && injected(err, who, s, msg, panic));
        if let Some(j) = found {
            used[j] = true;
        }
    }
    // A spawned `run` ends on another thread, and the runner learns of it
    // later: its failures may be recorded after later ones.
    if sc.spawner {
        positions.retain(|(_, _, s)| *s != S::Run);
    }
    if positions.windows(2).any(|w| w[0].0 > w[1].0) {
        fail(
            "error-order",
            format!("injected failures out of order in the errors: {positions:?}"),
        );
    }

    // Stop requests with an error.
    let mut began = 0;
    let mut pending: HashMap<&str, Option<&String>> = HashMap::new();
    for e in ev {
        match &e.what {
            What::RequestBegin(m) => {
                pending.insert(e.who.as_str(), m.as_ref());
            }
            What::RequestEnd(r, stopped) => {
                let msg = pending.remove(e.who.as_str()).flatten();
                if *r {
                    began += 1;
                }
                if let Some(m) = msg {
                    // Every request's error is in the result: the first as the
                    // primary, later ones attached. Only a request that came
                    // once `run` had returned may miss it.
                    let j = errs.iter().enumerate().position(|(j, err)| {
                        !used[j]
                            && err.kind() == ErrorKind::Requested
                            && own_text(err).contains(m.as_str())
                    });
                    match j {
                        Some(j) => used[j] = true,
                        None if *r || !*stopped => fail(
                            "request-error-lost",
                            format!(
                                "request_shutdown({m:?}) returned {r} but its error is missing"
                            ),
                        ),
                        None => {}
                    }
                }
            }
            _ => {}
        }
    }
    if began > 1 {
        fail(
            "two-requests-began",
            format!("{began} request_shutdown calls returned true"),
        );
    }
    let forced_errors = errs
        .iter()
        .filter(|e| e.kind() == ErrorKind::Forced && e.component().is_none())
        .count();
    let forced_true = ev.iter().any(|e| matches!(e.what, What::ForceEnd(true)));
    if forced_errors > 1 || (forced_errors == 1 && !forced_true) {
        fail(
            "forced-unexplained",
            format!("{forced_errors} forced errors"),
        );
    }
    for (j, e) in errs.iter().enumerate() {
        if !used[j]
            && matches!(
                e.kind(),
                ErrorKind::Failed | ErrorKind::Panicked | ErrorKind::Requested
            )
        {
            fail("unexpected-error", format!("{e}"));
        }
    }
    // The primary error is the first one recorded; which of an injected
    // failure and a concurrent stop request is recorded first is a race, so
    // only the order of the failures the runner itself records is checked
    // (`error-order` above).

    // A stop that overran its budget is recorded as a timeout naming the
    // component and the step.
    for c in &sc.components {
        // The shutdown's close: that of the last life, unless its stop
        // was for a restart (closes of a restart are not errors).
        let Some(last) = t.last(&c.name) else {
            continue;
        };
        if restart_granted(out, &c.name, last) {
            continue;
        }
        let Some(close) = last.close.first().map(|c| c.begin) else {
            continue;
        };
        let forced = ev[..close]
            .iter()
            .any(|e| matches!(e.what, What::ForceBegin));
        if forced || c.stop_timeout_ms == Some(0) {
            continue;
        }
        let recorded = errs.iter().any(|e| {
            e.kind() == ErrorKind::TimedOut
                && e.component() == Some(c.name.as_str())
                && e.step() == Some(Step::Stop)
        });
        if !recorded {
            fail(
                "stop-timeout-unrecorded",
                format!("{} was closed but no stop timeout was recorded", c.name),
            );
        }
    }
}

fn check_flush(
    sc: &Scenario,
    ev: &[Ev],
    dyn_drainers: &[(String, bool)],
    dyn_hooks: &[String],
    concurrent: bool,
    t: &Timeline<'_>,
    fail: &mut impl FnMut(&'static str, String),
) {
    let mut expected: Vec<String> = Vec::new();
    for (name, prepend) in sc
        .drainers
        .iter()
        .map(|d| (&d.name, d.prepend))
        .chain(dyn_drainers.iter().map(|(n, p)| (n, *p)))
    {
        if prepend {
            expected.insert(0, name.clone());
        } else {
            expected.push(name.clone());
        }
    }
    let mut expected_hooks: Vec<String> = sc
        .hooks
        .iter()
        .map(|h| h.name.clone())
        .chain(dyn_hooks.iter().cloned())
        .collect();
    expected_hooks.reverse();

    let mut drained = Vec::new();
    let mut hooked = Vec::new();
    let mut first_drain = None;
    let mut last_drain = None;
    let mut first_hook = None;
    for (seq, e) in ev.iter().enumerate() {
        match &e.what {
            What::Begin(S::Drain, _) => {
                drained.push(e.who.clone());
                first_drain.get_or_insert(seq);
                last_drain = Some(seq);
            }
            What::Begin(S::Hook, _) => {
                hooked.push(e.who.clone());
                first_hook.get_or_insert(seq);
            }
            _ => {}
        }
    }
    for name in drainers_after_force(ev) {
        fail(
            "drainer-after-force",
            format!("drainer {name} ran after force_shutdown returned"),
        );
    }
    let forced = ev.iter().any(|e| matches!(e.what, What::ForceBegin));
    let unique: HashSet<&String> = drained.iter().collect();
    if unique.len() != drained.len() {
        fail("drain-twice", format!("drainers ran {drained:?}"));
    }
    if concurrent {
        let want: HashSet<&String> = expected.iter().collect();
        if !forced && unique != want {
            fail(
                "drainer-skipped",
                format!("ran {drained:?}, registered {expected:?}"),
            );
        }
        let got: HashSet<&String> = hooked.iter().collect();
        let want: HashSet<&String> = expected_hooks.iter().collect();
        if got != want || hooked.len() != expected_hooks.len() {
            fail(
                "hook-order",
                format!("hooks ran {hooked:?}, expected {expected_hooks:?}"),
            );
        }
    } else {
        if !is_subsequence(&drained, &expected) {
            fail(
                "drain-order",
                format!("ran {drained:?}, expected {expected:?}"),
            );
        } else if !forced && drained != expected {
            fail(
                "drainer-skipped",
                format!("ran {drained:?}, expected {expected:?}"),
            );
        }
        if hooked != expected_hooks {
            fail(
                "hook-order",
                format!("hooks ran {hooked:?}, expected {expected_hooks:?}"),
            );
        }
    }
    let last_stop = t
        .lives
        .values()
        .flatten()
        .flat_map(|l| l.stop.iter().chain(&l.close))
        .map(|c| c.begin)
        .max();
    if let (Some(s), Some(d)) = (last_stop, first_drain) {
        if s > d {
            fail(
                "phase-order",
                "a component was stopped after the flush began".into(),
            );
        }
    }
    if let Some(h) = first_hook {
        if last_drain.is_some_and(|d| d > h) || last_stop.is_some_and(|s| s > h) {
            fail(
                "phase-order",
                "a drainer or component ran after the stop hooks began".into(),
            );
        }
    }
}

/// The default chain's strict order: builder components launch in
/// registration order, then those registered while running in theirs;
/// each starts only once the one started before it is ready; components
/// stop in exact reverse launch order.
fn check_chain(
    ev: &[Ev],
    t: &Timeline<'_>,
    builder_components: &[String],
    dyn_components: &[String],
    concurrent: bool,
    restart_cancelled: &dyn Fn(&str) -> bool,
    fail: &mut impl FnMut(&'static str, String),
) {
    // A restart launches a component again, but not in the chain's order:
    // the chain is that of first launches, and its stops are those of the
    // last lives (a life before ended in a restart).
    let first_start = |lives: &[Life]| {
        lives
            .iter()
            .find(|l| l.start.is_some())
            .map(|l| l.started())
    };
    // A restart cancelled by the shutdown after its stop: no stop of the
    // shutdown's own. So may be one whose stop began after the shutdown
    // did, though issued before it (see `check_graph`).
    let restart_stopped = |name: &str, lives: &[Life]| {
        restart_cancelled(name)
            || lives
                .last()
                .is_some_and(|l| l.down_at().is_some() && l.shutdown_down(ev).is_none())
    };
    let mut launched: Vec<(usize, &str)> = t
        .lives
        .iter()
        .filter(|(n, lives)| !restart_stopped(n, lives))
        .filter(|(_, lives)| lives.last().and_then(Life::started).is_some())
        .filter_map(|(n, lives)| first_start(lives).flatten().map(|s| (s, *n)))
        .collect();
    launched.sort();
    let mut stopped: Vec<(usize, &str)> = t
        .lives
        .iter()
        .filter(|(n, lives)| first_start(lives).flatten().is_some() && !restart_stopped(n, lives))
        .filter_map(|(n, lives)| {
            lives
                .last()
                .and_then(|l| l.shutdown_down(ev))
                .map(|s| (s, *n))
        })
        .collect();
    stopped.sort();
    let launch_order: Vec<&str> = launched.iter().map(|(_, n)| *n).collect();
    let stop_order: Vec<&str> = stopped.iter().map(|(_, n)| *n).collect();
    let mut reversed = launch_order.clone();
    reversed.reverse();
    // Without the restart's stop, the chain may be cut in two, whose parts
    // stop in any order: `check_graph` still holds each link.
    // So may a restart whose new start was cancelled by the shutdown.
    let cut = t.lives.iter().any(|(n, lives)| {
        restart_stopped(n, lives)
            || lives.len() > 1 && lives.last().and_then(Life::started).is_none()
    });
    if stop_order != reversed && !cut {
        fail(
            "stop-order",
            format!("launched {launch_order:?}, stopped {stop_order:?}"),
        );
    }

    // Launch order and readiness gates, over first launches.
    let mut seen = HashSet::new();
    let starts: Vec<_> = t.starts.iter().filter(|s| seen.insert(s.1)).collect();
    for i in 1..starts.len() {
        let (seq, name, _) = *starts[i];
        let prev = starts[i - 1].1;
        match t.lives(prev).iter().find_map(Life::ready_at) {
            Some(r) if r < seq => {}
            _ => fail(
                "start-before-ready",
                format!("{name} started before its predecessor {prev} was ready"),
            ),
        }
    }
    let order: Vec<String> = starts.iter().map(|(_, n, _)| n.to_string()).collect();
    let k = order
        .iter()
        .filter(|n| builder_components.contains(n))
        .count();
    if order[..k] != builder_components[..k] || (order.len() > k && k < builder_components.len()) {
        fail("start-order", format!("start order {order:?}"));
    }
    if !concurrent && !is_subsequence(&order[k..], dyn_components) {
        fail(
            "dynamic-start-order",
            format!("started {:?}, registered {dyn_components:?}", &order[k..]),
        );
    }
}

/// Each component's dependencies, as the model gave them: the names given
/// to `depends_on`, each once, or else the component registered just
/// before it (none for the first). Checks that the report lists the same.
/// When several threads register, the order of their components is not
/// known: a component registered while running that keeps the default
/// then takes the report's word.
fn dependencies<'a>(
    sc: &'a Scenario,
    out: &Outcome,
    dyn_components: &'a [String],
    concurrent: bool,
    fail: &mut impl FnMut(&'static str, String),
) -> HashMap<&'a str, Vec<String>> {
    let dyn_specs: HashMap<&str, &CompSpec> = sc
        .threads
        .iter()
        .flatten()
        .filter_map(|(_, a)| match a {
            Action::AddComponent(c) => Some((c.name.as_str(), &**c)),
            _ => None,
        })
        .collect();
    let specs = sc.components.iter().chain(
        dyn_components
            .iter()
            .filter_map(|n| dyn_specs.get(n.as_str()).copied()),
    );
    let mut deps: HashMap<&str, Vec<String>> = HashMap::new();
    let mut before: Option<&str> = None;
    let mut unknown = Vec::new();
    for (i, c) in specs.enumerate() {
        let list = match &c.deps {
            Some(names) => {
                let mut once: Vec<String> = Vec::new();
                for n in names {
                    if !once.contains(n) {
                        once.push(n.clone());
                    }
                }
                once
            }
            None if concurrent && i >= sc.components.len() => {
                unknown.push(c.name.as_str());
                continue;
            }
            None => before.map(String::from).into_iter().collect(),
        };
        deps.insert(c.name.as_str(), list);
        before = Some(c.name.as_str());
    }
    for record in out.report.components() {
        let listed: Vec<String> = record
            .dependencies()
            .iter()
            .map(|d| d.to_string())
            .collect();
        match unknown.iter().find(|n| **n == &*record.name) {
            Some(n) => {
                deps.insert(n, listed);
            }
            None => match deps.get(&*record.name) {
                Some(want) if *want == listed => {}
                want => fail(
                    "report-dependencies",
                    format!(
                        "{}: the report lists dependencies {listed:?}, given {want:?}",
                        record.name
                    ),
                ),
            },
        }
    }
    deps
}

/// The drainers that began once `force_shutdown` had returned. The runner
/// reads the force flag, then calls the drainer: a force that returned
/// after the runner's last step (the last user call to end) may fall in
/// between, and one drainer may then begin, once.
pub fn drainers_after_force(ev: &[Ev]) -> Vec<&str> {
    let mut late = Vec::new();
    let mut force_end = None;
    let mut last_end = 0;
    let mut raced = false;
    for (seq, e) in ev.iter().enumerate() {
        match &e.what {
            What::Begin(S::Drain, _) => match force_end {
                Some(end) if end > last_end && !raced => raced = true,
                Some(_) => late.push(e.who.as_str()),
                None => {}
            },
            What::Ok(_) | What::NotReady | What::Fail(..) | What::Panic(..) | What::Dropped(_) => {
                last_end = seq;
            }
            What::ForceEnd(_) => {
                force_end.get_or_insert(seq);
            }
            _ => {}
        }
    }
    late
}
