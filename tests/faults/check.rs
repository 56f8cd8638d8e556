//! The invariants, checked on the event log of one scenario.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use lameduck::{Error, ErrorKind, Step};

use crate::harness::{Ev, Kind, Outcome, S, What};
use crate::model::{Scenario, SpawnerFault};

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

#[derive(Default)]
struct Calls {
    start_begin: Vec<(usize, bool)>,
    start_ok: Option<usize>,
    start_done: bool,
    ready_begin: usize,
    ready_true: Option<usize>,
    run_begin: usize,
    stop_begin: Vec<usize>,
    close_begin: Vec<usize>,
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
            if let Some(k) = refused {
                if *k != ErrorKind::ShuttingDown {
                    fail("registration-refused", format!("{} refused: {k:?}", e.who));
                }
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

    // Component calls.
    let mut calls: HashMap<&str, Calls> = HashMap::new();
    let mut starts: Vec<(usize, &str, bool)> = Vec::new();
    for (seq, e) in ev.iter().enumerate() {
        if !all_components.contains(e.who.as_str()) {
            continue;
        }
        let c = calls.entry(e.who.as_str()).or_default();
        match &e.what {
            What::Begin(S::Start, sd) => {
                c.start_begin.push((seq, *sd));
                starts.push((seq, e.who.as_str(), *sd));
            }
            What::Ok(S::Start) => {
                c.start_ok = Some(seq);
                c.start_done = true;
            }
            What::Fail(S::Start, _) | What::Panic(S::Start, _) => c.start_done = true,
            What::Begin(S::Ready, _) => c.ready_begin += 1,
            What::Ok(S::Ready) => c.ready_true = Some(seq),
            What::Begin(S::Run, _) => c.run_begin += 1,
            What::Begin(S::Stop, _) => c.stop_begin.push(seq),
            What::Begin(S::Close, _) => c.close_begin.push(seq),
            _ => {}
        }
    }
    let none = Calls::default();
    let calls_of = |name: &str| calls.get(name).unwrap_or(&none);

    for name in &all_components {
        let c = calls_of(name);
        if c.start_begin.len() > 1 {
            fail(
                "start-twice",
                format!("{name} started {} times", c.start_begin.len()),
            );
        }
        if c.start_ok.is_some() {
            if c.stop_begin.is_empty() && c.close_begin.is_empty() {
                fail(
                    "never-stopped",
                    format!("{name} started but neither stopped nor closed"),
                );
            }
            if c.stop_begin.len() > 1 {
                fail(
                    "stopped-twice",
                    format!("{name} stop called {} times", c.stop_begin.len()),
                );
            }
            if c.close_begin.len() > 1 {
                fail(
                    "closed-twice",
                    format!("{name} close called {} times", c.close_begin.len()),
                );
            }
        } else {
            if !c.stop_begin.is_empty() || !c.close_begin.is_empty() {
                fail(
                    "stopped-never-started",
                    format!("{name} stopped or closed but never started"),
                );
            }
            if c.run_begin > 0 || c.ready_begin > 0 {
                fail(
                    "ran-never-started",
                    format!("{name} run or ready called but never started"),
                );
            }
        }
    }

    // Reverse launch order.
    let mut launched: Vec<(usize, &str)> = calls
        .iter()
        .filter_map(|(n, c)| c.start_ok.map(|s| (s, *n)))
        .collect();
    launched.sort();
    let mut stopped: Vec<(usize, &str)> = calls
        .iter()
        .filter(|(_, c)| c.start_ok.is_some())
        .filter_map(|(n, c)| {
            c.stop_begin
                .first()
                .into_iter()
                .chain(c.close_begin.first())
                .min()
                .map(|s| (*s, *n))
        })
        .collect();
    stopped.sort();
    let launch_order: Vec<&str> = launched.iter().map(|(_, n)| *n).collect();
    let stop_order: Vec<&str> = stopped.iter().map(|(_, n)| *n).collect();
    let mut reversed = launch_order.clone();
    reversed.reverse();
    if stop_order != reversed {
        fail(
            "stop-order",
            format!("launched {launch_order:?}, stopped {stop_order:?}"),
        );
    }

    // Launch order and readiness gates.
    for i in 1..starts.len() {
        let (seq, name, _) = starts[i];
        let prev = starts[i - 1].1;
        match calls_of(prev).ready_true {
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
    if !concurrent && !is_subsequence(&order[k..], &dyn_components) {
        fail(
            "dynamic-start-order",
            format!("started {:?}, registered {dyn_components:?}", &order[k..]),
        );
    }

    // No start once shutdown has begun — except when a stop call from
    // another thread was still in flight when the previous launch step
    // ended (the runner may have looked just before that call set the flag).
    for (i, &(seq, name, sd)) in starts.iter().enumerate() {
        if !sd {
            continue;
        }
        let checkpoint = if i == 0 {
            0
        } else {
            calls_of(starts[i - 1].1).ready_true.unwrap_or(0)
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
            if calls_of(name).start_done {
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
        let c = calls_of(&record.name);
        let cancelled = !c.start_begin.is_empty() && !c.start_done;
        let launch_failed = all_errors(out).any(|e| {
            e.component() == Some(&*record.name)
                && (matches!(e.step(), Some(Step::Start | Step::Ready))
                    || matches!(
                        e.kind(),
                        lameduck::ErrorKind::Exited | lameduck::ErrorKind::Dropped
                    ))
        });
        let expected: &[St] = if c.start_ok.is_some() && launch_failed {
            // Its readiness failed (or its run ended before it was ready):
            // the report keeps `Failed` through the drain.
            &[St::Failed]
        } else if c.start_ok.is_some() {
            if c.stop_begin.is_empty() || !c.close_begin.is_empty() {
                &[St::Closed]
            } else {
                &[St::Stopped]
            }
        } else if c.start_begin.is_empty() || cancelled {
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
        if c.start_ok.is_some() && record.stop_at.is_none() {
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

    check_errors(sc, ev, out, &calls, &mut fail);
    check_flush(
        sc,
        ev,
        &dyn_drainers,
        &dyn_hooks,
        concurrent,
        &calls,
        &mut fail,
    );

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
            .filter(|n| calls_of(n).start_begin.is_empty())
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
    calls: &HashMap<&str, Calls>,
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
    for e in ev {
        let (s, msg, panic) = match &e.what {
            What::Fail(s, m) => (*s, m, false),
            What::Panic(s, m) => (*s, m, true),
            _ => continue,
        };
        let found = errs.iter().enumerate().position(|(j, err)| {
            !used[j]
                && err.component() == Some(e.who.as_str())
                && err.step() == Some(s.step())
                && if panic {
                    err.panic_message() == Some(msg.as_str())
                } else {
                    err.kind() == ErrorKind::Failed && own_text(err).contains(msg.as_str())
                }
        });
        match found {
            Some(j) => {
                used[j] = true;
                positions.push((j, e.who.clone(), s));
            }
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
                            format!("request_shutdown({m:?}) returned {r} but its error is missing"),
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
        let Some(calls) = calls.get(c.name.as_str()) else {
            continue;
        };
        let Some(&close) = calls.close_begin.first() else {
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
    calls: &HashMap<&str, Calls>,
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
    let mut force_end = None;
    for (seq, e) in ev.iter().enumerate() {
        match &e.what {
            What::Begin(S::Drain, _) => {
                drained.push(e.who.clone());
                first_drain.get_or_insert(seq);
                last_drain = Some(seq);
                if force_end.is_some() {
                    fail(
                        "drainer-after-force",
                        format!("drainer {} ran after force_shutdown returned", e.who),
                    );
                }
            }
            What::Begin(S::Hook, _) => {
                hooked.push(e.who.clone());
                first_hook.get_or_insert(seq);
            }
            What::ForceEnd(_) => {
                force_end.get_or_insert(seq);
            }
            _ => {}
        }
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
    let last_stop = calls
        .values()
        .flat_map(|c| c.stop_begin.iter().chain(&c.close_begin))
        .max()
        .copied();
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
