//! The event log read as intervals, and the order invariants of the
//! dependency graph stated over them.
//!
//! Every user call is an interval of the log, from its `Begin` to its end
//! (`Ok`, `NotReady`, `Fail`, `Panic` or `Dropped`). Events are stamped
//! under the log's lock, so the log's order is the order things happened
//! in; calls of different components may overlap (independent components
//! start and stop concurrently), so the rules compare where one interval
//! ends with where another begins, never neighbours in the log.

use std::collections::HashMap;
use std::time::Duration;

use crate::harness::{Ev, S, What};
use crate::model::Scenario;

/// One user call: where it began in the log, and where and how it ended
/// (`None`: still running when the log was taken).
#[derive(Debug, Clone, Copy)]
pub struct Call {
    pub begin: usize,
    pub end: Option<(usize, End)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `Ok` (for `ready`: `Ok(true)`).
    Ok,
    NotReady,
    Failed,
    Dropped,
}

impl Call {
    fn ended(&self, how: End) -> Option<usize> {
        self.end.filter(|(_, e)| *e == how).map(|(at, _)| at)
    }

    /// Whether it ended before position `at` of the log.
    pub fn over_before(&self, at: usize) -> bool {
        self.end.is_some_and(|(end, _)| end < at)
    }
}

/// One start of a component and every call that followed it until the
/// next start. Calls made before any start land in a life without one.
#[derive(Debug, Default)]
pub struct Life {
    /// The `start` call, and whether shutdown had begun when it was made.
    pub start: Option<(Call, bool)>,
    pub ready: Vec<Call>,
    pub run: Vec<Call>,
    pub stop: Vec<Call>,
    pub close: Vec<Call>,
}

impl Life {
    /// Where `start` returned `Ok`.
    pub fn started(&self) -> Option<usize> {
        self.start.and_then(|(c, _)| c.ended(End::Ok))
    }

    /// Whether `start` was called and returned, one way or another.
    pub fn start_done(&self) -> bool {
        self.start
            .is_some_and(|(c, _)| c.end.is_some_and(|(_, e)| e != End::Dropped))
    }

    /// Where `ready` first returned `Ok(true)`.
    pub fn ready_at(&self) -> Option<usize> {
        self.ready.iter().find_map(|c| c.ended(End::Ok))
    }

    /// Where its first `stop` or `close` began.
    pub fn down_at(&self) -> Option<usize> {
        self.stop.iter().chain(&self.close).map(|c| c.begin).min()
    }

    /// Where its first `stop` or `close` began, if that was for the
    /// shutdown: not for a restart (that one began before shutdown, which
    /// then cancelled the restart).
    pub fn shutdown_down(&self, ev: &[Ev]) -> Option<usize> {
        self.down_at()
            .filter(|&at| matches!(ev[at].what, What::Begin(_, true)))
    }

    fn calls_mut(&mut self, s: S) -> Option<&mut Vec<Call>> {
        match s {
            S::Ready => Some(&mut self.ready),
            S::Run => Some(&mut self.run),
            S::Stop => Some(&mut self.stop),
            S::Close => Some(&mut self.close),
            S::Start | S::Drain | S::Hook => None,
        }
    }

    /// Every call of this life, `start` included.
    pub fn calls(&self) -> impl Iterator<Item = (S, &Call)> {
        fn of(s: S, calls: &[Call]) -> impl Iterator<Item = (S, &Call)> {
            calls.iter().map(move |c| (s, c))
        }
        self.start
            .iter()
            .map(|(c, _)| (S::Start, c))
            .chain(of(S::Ready, &self.ready))
            .chain(of(S::Run, &self.run))
            .chain(of(S::Stop, &self.stop))
            .chain(of(S::Close, &self.close))
    }
}

/// Every component's lives, read from the log.
#[derive(Debug, Default)]
pub struct Timeline<'a> {
    pub lives: HashMap<&'a str, Vec<Life>>,
    /// Every `start` call in log order: where, whose, and whether shutdown
    /// had begun.
    pub starts: Vec<(usize, &'a str, bool)>,
}

static NO_LIVES: Vec<Life> = Vec::new();

impl<'a> Timeline<'a> {
    /// Reads the calls of the components named `is_component` from `ev`.
    pub fn read(ev: &'a [Ev], is_component: impl Fn(&str) -> bool) -> Self {
        let mut t = Timeline::default();
        for (seq, e) in ev.iter().enumerate() {
            if !is_component(&e.who) {
                continue;
            }
            let who = e.who.as_str();
            let lives = t.lives.entry(who).or_default();
            let (s, end) = match &e.what {
                What::Begin(S::Start, sd) => {
                    t.starts.push((seq, who, *sd));
                    let call = Call {
                        begin: seq,
                        end: None,
                    };
                    lives.push(Life {
                        start: Some((call, *sd)),
                        ..Life::default()
                    });
                    continue;
                }
                What::Begin(s, _) => {
                    if lives.is_empty() {
                        lives.push(Life::default());
                    }
                    let life = lives.last_mut().expect("one life at least");
                    if let Some(calls) = life.calls_mut(*s) {
                        calls.push(Call {
                            begin: seq,
                            end: None,
                        });
                    }
                    continue;
                }
                What::Ok(s) => (*s, End::Ok),
                What::NotReady => (S::Ready, End::NotReady),
                What::Fail(s, _) | What::Panic(s, _) => (*s, End::Failed),
                What::Dropped(s) => (*s, End::Dropped),
                _ => continue,
            };
            // The oldest open call of that kind: a call of an earlier life
            // may end late (a spawned `run` is dropped on its own task).
            let open = lives.iter_mut().find_map(|life| {
                if s == S::Start {
                    life.start
                        .as_mut()
                        .map(|(c, _)| c)
                        .filter(|c| c.end.is_none())
                } else {
                    life.calls_mut(s)?.iter_mut().find(|c| c.end.is_none())
                }
            });
            if let Some(call) = open {
                call.end = Some((seq, end));
            }
        }
        t
    }

    pub fn lives(&self, name: &str) -> &[Life] {
        self.lives.get(name).unwrap_or(&NO_LIVES)
    }

    /// The latest life of a component, if it was ever called.
    pub fn last(&self, name: &str) -> Option<&Life> {
        self.lives(name).last()
    }
}

/// How many times a component may be started: once, plus once per
/// restart its policy allows. With a window that spans the whole run the
/// budget is a total; with a shorter one any number of restarts may fit
/// (the budget is then checked window by window, by `check_restarts`).
pub fn starts_allowed(sc: &Scenario, name: &str) -> usize {
    match sc.spec(name).and_then(|c| c.restart) {
        Some(r) if r.max_restarts() == 0 => 1,
        Some(r) if r.whole_run() => 1 + r.max_restarts() as usize,
        Some(_) => usize::MAX,
        None => 1,
    }
}

/// Where a life ended for a restart: where the last of its `stop` and
/// `close` calls ended (cancelled or not), if every one did.
pub fn life_over(life: &Life) -> Option<usize> {
    let mut end = None;
    for c in life.stop.iter().chain(&life.close) {
        let (at, _) = c.end?;
        end = end.max(Some(at));
    }
    end
}

/// The restart rules, over each component's lives:
///
/// * A component is stopped (or closed) before shutdown began only to be
///   restarted: its policy allows restarts and that life's `run` had
///   failed. So a dependent is never stopped for its dependency's restart,
///   and it keeps its one life.
/// * A new life begins only after the life before it ended for a restart:
///   its `run` failed or panicked and every `stop` or `close` of it ended
///   — and no earlier than the backoff delay after that (less its jitter,
///   and a millisecond for the clock).
pub fn check_restarts(
    sc: &Scenario,
    ev: &[Ev],
    t: &Timeline<'_>,
    fail: &mut impl FnMut(&'static str, String),
) {
    for (&name, lives) in &t.lives {
        let policy = sc.spec(name).and_then(|c| c.restart);
        let may_restart = policy.is_some_and(|r| r.max_restarts() > 0);
        for (k, life) in lives.iter().enumerate() {
            let failed_at = life.run.iter().find_map(|c| c.ended(End::Failed));
            for (s, c) in life.calls() {
                let for_shutdown = match ev[c.begin].what {
                    What::Begin(_, sd) => sd,
                    _ => true,
                };
                if !matches!(s, S::Stop | S::Close) || for_shutdown {
                    continue;
                }
                if !may_restart || failed_at.is_none_or(|f| f > c.begin) {
                    fail(
                        "stopped-while-running",
                        format!(
                            "{name} {s:?} began before shutdown, but not for a restart after its run failed"
                        ),
                    );
                }
            }
            let Some(next) = lives.get(k + 1) else {
                continue;
            };
            let Some((start, _)) = next.start else {
                continue;
            };
            let over = life_over(life);
            let ended = failed_at.is_some_and(|f| f < start.begin)
                && life.down_at().is_some()
                && over.is_some_and(|o| o < start.begin);
            if !ended {
                fail(
                    "restart-before-stopped",
                    format!(
                        "{name} life {} began before life {} failed and was stopped",
                        k + 2,
                        k + 1
                    ),
                );
                continue;
            }
            let (Some(r), Some(over)) = (policy, over) else {
                continue;
            };
            // The attempt number is the restarts within the window; known
            // when the window spans the run, else at least the first.
            let attempt = if r.whole_run() { k as u32 + 1 } else { 1 };
            let nominal = Duration::from_millis(r.nominal_ms(attempt));
            let least = nominal
                .mul_f64(1.0 - r.jitter)
                .saturating_sub(Duration::from_millis(1));
            let waited = ev[start.begin].at.saturating_sub(ev[over].at);
            if waited < least {
                fail(
                    "restart-backoff",
                    format!(
                        "{name} life {} began {waited:?} after life {} stopped; backoff {nominal:?}, jitter {}",
                        k + 2,
                        k + 1,
                        r.jitter
                    ),
                );
            }
        }
    }
}

/// The graph's order rules, for components whose dependencies are `deps`.
///
/// * A component's `start` never begins before each of its dependencies
///   was ready (its `ready` returned `Ok(true)`) and while it was not
///   stopping.
/// * A component is never stopped for shutdown (its last life's first
///   `stop` or `close` begins) while a component depending on it is still
///   busy: each dependent that
///   started must be stopped already, with every call it began over —
///   `run` included, unless it runs on its own task, where a cancelled
///   `run` is dropped later on that task. After a forced shutdown, whose
///   closes run concurrently, each dependent must at least have been
///   stopped or closed first.
/// * A dependent's `start` in flight is over (returned, or cancelled by the
///   shutdown) before its dependency stops.
///
/// `restart_cancelled(name)`: the engine granted a restart after the last
/// life's `run` failed, and the shutdown cancelled it. That life's first
/// stop may then be the restart's, issued before the shutdown began though
/// it began after (a restart does not wait for dependents), or the drain's:
/// the log cannot tell which, so the second and third rules pass over it.
pub fn check_graph(
    sc: &Scenario,
    ev: &[Ev],
    t: &Timeline<'_>,
    deps: &HashMap<&str, Vec<String>>,
    restart_cancelled: impl Fn(&str) -> bool,
    fail: &mut impl FnMut(&'static str, String),
) {
    let forced_at = ev.iter().position(|e| matches!(e.what, What::ForceBegin));
    for (&name, lives) in &t.lives {
        let Some(deps) = deps.get(name) else {
            continue;
        };
        for life in lives {
            let Some((start, _)) = life.start else {
                continue;
            };
            for dep in deps {
                let gate = t.lives(dep).iter().any(|d| {
                    d.ready_at().is_some_and(|r| r < start.begin)
                        && d.down_at().is_none_or(|down| down > start.begin)
                });
                if !gate {
                    fail(
                        "start-before-dependency-ready",
                        format!("{name} started while its dependency {dep} was not ready"),
                    );
                }
            }
        }
    }
    // Dependents of each component.
    let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
    for (&name, ds) in deps {
        for d in ds {
            dependents.entry(d.as_str()).or_default().push(name);
        }
    }
    for (&name, lives) in &t.lives {
        let Some(ds) = dependents.get(name) else {
            continue;
        };
        // The stop at shutdown: that of its last life. A life before it
        // ended in a restart, which its dependents are meant to outlive.
        let Some(down) = lives.last().and_then(|l| l.shutdown_down(ev)) else {
            continue;
        };
        if restart_cancelled(name) {
            continue;
        }
        let forced = forced_at.is_some_and(|f| f < down);
        for &dependent in ds {
            for life in t.lives(dependent) {
                let Some((start, _)) = life.start else {
                    continue;
                };
                if start.begin > down {
                    // Started after: the first rule's business.
                    continue;
                }
                if !start.over_before(down) {
                    fail(
                        "stop-before-dependent",
                        format!(
                            "{name} stopped while {dependent}, which depends on it, was starting"
                        ),
                    );
                    continue;
                }
                if life.started().is_none() {
                    continue;
                }
                let stopped_first = life.down_at().is_some_and(|d| d < down);
                let busy = !stopped_first
                    || !forced
                        && life.calls().any(|(s, c)| {
                            c.begin < down && !c.over_before(down) && !(s == S::Run && sc.spawner)
                        });
                if busy {
                    fail(
                        "stop-before-dependent",
                        format!(
                            "{name} stopped while {dependent}, which depends on it, was still busy{}",
                            if forced { " (forced)" } else { "" }
                        ),
                    );
                }
            }
        }
    }
}

/// Whether each call of a life comes in its place: `ready` and `run` only
/// once `start` returned `Ok`, `stop` and `close` only after that too.
pub fn check_calls(name: &str, life: &Life, fail: &mut impl FnMut(&'static str, String)) {
    let Some(started) = life.started() else {
        return;
    };
    for (s, c) in life.calls() {
        if s != S::Start && c.begin < started {
            fail(
                "call-before-started",
                format!("{name} {s:?} began before its start returned"),
            );
        }
    }
}
