//! The scenario model: a seeded RNG and random lifecycles built from it.
//!
//! A [`Scenario`] is plain data, generated from a seed alone, so a seed
//! always describes the same scenario (timing, of course, still varies).

use std::fmt;

/// splitmix64: tiny, fast, good enough to drive a fault generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len() as u64 - 1) as usize]
    }
}

/// What one user call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Returns `Ok` at once.
    Ok,
    /// Returns `Ok` after this many milliseconds.
    Sleep(u64),
    /// Returns `Err`.
    Fail,
    /// Panics.
    Panic,
    /// Never returns.
    Hang,
}

impl fmt::Display for Act {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Act::Ok => f.write_str("ok"),
            Act::Sleep(ms) => write!(f, "ok after {ms}ms"),
            Act::Fail => f.write_str("FAIL"),
            Act::Panic => f.write_str("PANIC"),
            Act::Hang => f.write_str("HANG"),
        }
    }
}

/// How a component's `run` behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSpec {
    /// Waits for the stop signal first; otherwise ends after `delay_ms` (or
    /// at the stop signal, whichever comes first).
    pub until_stop: bool,
    pub delay_ms: u64,
    /// What it does then (`Hang` ignores the stop signal entirely).
    pub then: Act,
}

#[derive(Debug, Clone)]
pub struct CompSpec {
    pub name: String,
    pub start: Act,
    pub start_timeout_ms: u64,
    /// `Ok(false)` answers before the final one.
    pub not_ready: u32,
    /// The final readiness answer (`Ok`/`Sleep` mean `Ok(true)`).
    pub ready: Act,
    pub attempts: u32,
    /// Backoff: constant (`exp == false`) or exponential up to 10 ms.
    pub backoff_ms: u64,
    pub backoff_exp: bool,
    pub attempt_timeout_ms: u64,
    pub run: RunSpec,
    pub stop: Act,
    /// `Some(0)` means "close at once".
    pub stop_timeout_ms: Option<u64>,
    pub close: Act,
    pub close_timeout_ms: u64,
    /// Given to `ComponentOptions::depends_on` (an empty list: no
    /// dependency); `None` keeps the default, the component registered
    /// just before.
    pub deps: Option<Vec<String>>,
    /// Given to `ComponentOptions::restart`; `None` keeps the default
    /// (`Restart::never()`).
    pub restart: Option<RestartSpec>,
    /// The first lives' `run`s: each ends this way (`Fail` or `Panic`)
    /// after `flaky_ms`, unless asked to stop first; later lives follow
    /// `run`.
    pub flaky: Vec<Act>,
    pub flaky_ms: u64,
}

/// A restart policy: `Restart::on_failure().limit(max, window)` with a
/// backoff, or `Restart::never()` when `never`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartSpec {
    pub never: bool,
    pub max: u32,
    /// `u64::MAX` stands for `Duration::MAX` (a lifetime total); 0 is a
    /// configuration error, drawn only for components registered while
    /// running, which must then be refused.
    pub window_ms: u64,
    /// Constant, or exponential from `backoff_ms` up to 4 times it.
    pub backoff_ms: u64,
    pub backoff_exp: bool,
    pub jitter: f64,
}

impl RestartSpec {
    /// The most restarts it allows (0 for `never`).
    pub fn max_restarts(&self) -> u32 {
        if self.never { 0 } else { self.max }
    }

    /// Whether every restart of a scenario falls within one window: the
    /// budget is then a total, and each restart's backoff attempt is its
    /// number.
    pub fn whole_run(&self) -> bool {
        self.window_ms >= 10_000
    }

    /// The nominal backoff before restart number `attempt` within the
    /// window (from 1), before jitter.
    pub fn nominal_ms(&self, attempt: u32) -> u64 {
        if self.backoff_exp {
            let factor = 1u64 << attempt.saturating_sub(1).min(20);
            self.backoff_ms
                .saturating_mul(factor)
                .min(self.backoff_ms * 4)
        } else {
            self.backoff_ms
        }
    }
}

impl fmt::Display for RestartSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.never {
            return f.write_str("restart never");
        }
        let window = match self.window_ms {
            u64::MAX => "ever".to_string(),
            ms => format!("{ms}ms"),
        };
        write!(
            f,
            "restart on failure: {} within {window}, backoff {}ms{} jitter {}",
            self.max,
            self.backoff_ms,
            if self.backoff_exp { " exp" } else { "" },
            self.jitter
        )
    }
}

#[derive(Debug, Clone)]
pub struct DrainSpec {
    pub name: String,
    pub act: Act,
    pub prepend: bool,
}

#[derive(Debug, Clone)]
pub struct HookSpec {
    pub name: String,
    pub act: Act,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    Healthy,
    Degraded,
    Unhealthy,
    Panic,
    Sleep(u64),
}

#[derive(Debug, Clone)]
pub struct CheckSpec {
    pub name: String,
    pub kind: CheckKind,
}

/// Something a helper thread does to the lifecycle, through its handle.
#[derive(Debug, Clone)]
pub enum Action {
    /// `request_shutdown`, with an error message or not.
    Stop(Option<String>),
    Force,
    AddComponent(Box<CompSpec>),
    AddDrainer(DrainSpec),
    AddCheck(CheckSpec),
    AddHook(HookSpec),
    /// `is_ready`, `is_healthy`, `report`, checked against shutdown.
    Probe,
}

/// What the spawner does with the tasks it is handed (spawner scenarios).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnerFault {
    None,
    /// Drops every n-th task instead of spawning it, as a runtime shutting
    /// down does.
    DropEvery(u64),
    /// Holds each task this many milliseconds before it is first polled.
    Delay(u64),
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub shutdown_timeout_ms: u64,
    pub lame_duck_ms: u64,
    pub components: Vec<CompSpec>,
    pub drainers: Vec<DrainSpec>,
    pub hooks: Vec<HookSpec>,
    pub checks: Vec<CheckSpec>,
    /// One list of timed actions (ms after `run` starts) per helper thread.
    pub threads: Vec<Vec<(u64, Action)>>,
    /// Each `run` on its own task of the runtime (`LifecycleBuilder::spawner`);
    /// chosen by the runtime's driver, not by the seed.
    pub spawner: bool,
    /// The force budget (`LifecycleBuilder::force_timeout`).
    pub force_timeout_ms: u64,
    /// Every part's `Drop` reads the lifecycle through a handle.
    pub reentrant_drops: bool,
    pub spawner_fault: SpawnerFault,
}

struct Gen {
    rng: Rng,
    /// Probability that a call misbehaves (fails, panics or hangs).
    fault: f64,
}

impl Gen {
    fn act(&mut self) -> Act {
        if self.rng.chance(self.fault) {
            self.rng.pick(&[Act::Fail, Act::Panic, Act::Hang])
        } else if self.rng.chance(0.5) {
            Act::Ok
        } else {
            Act::Sleep(self.rng.range(0, 20))
        }
    }

    fn component(&mut self, name: String) -> CompSpec {
        let attempts = self.rng.range(1, 4) as u32;
        let run_then = if self.rng.chance(self.fault) {
            self.rng.pick(&[Act::Fail, Act::Panic, Act::Hang])
        } else {
            Act::Ok
        };
        let until_stop = !self.rng.chance(self.fault.max(0.02));
        CompSpec {
            name,
            start: self.act(),
            start_timeout_ms: self.rng.range(5, 50),
            not_ready: if self.rng.chance(0.6) {
                0
            } else {
                self.rng.range(0, attempts as u64) as u32
            },
            ready: self.act(),
            attempts,
            backoff_ms: self.rng.range(0, 5),
            backoff_exp: self.rng.chance(0.5),
            attempt_timeout_ms: self.rng.range(5, 30),
            run: RunSpec {
                until_stop,
                delay_ms: self.rng.range(0, 20),
                then: run_then,
            },
            stop: self.act(),
            stop_timeout_ms: if self.rng.chance(0.05) {
                Some(0)
            } else if self.rng.chance(0.05) {
                None
            } else {
                Some(self.rng.range(5, 50))
            },
            close: self.act(),
            close_timeout_ms: self.rng.range(5, 50),
            deps: None,
            restart: None,
            flaky: Vec::new(),
            flaky_ms: 0,
        }
    }

    fn check(&mut self, name: String) -> CheckSpec {
        let kind = match self.rng.range(0, 9) {
            0..=4 => CheckKind::Healthy,
            5 => CheckKind::Degraded,
            6 => CheckKind::Unhealthy,
            7 => CheckKind::Panic,
            _ => CheckKind::Sleep(self.rng.range(0, 5)),
        };
        CheckSpec { name, kind }
    }
}

impl Scenario {
    /// The scenario for `seed`.
    pub fn generate(seed: u64) -> Scenario {
        let mut rng = Rng::new(seed);
        let fault = rng.pick(&[0.0, 0.02, 0.1, 0.3]);
        let mut g = Gen { rng, fault };
        let n = if g.rng.chance(0.25) {
            g.rng.range(1, 30)
        } else {
            g.rng.range(1, 6)
        };
        let components = (0..n).map(|i| g.component(format!("c{i}"))).collect();
        let drainers = (0..g.rng.range(0, 4))
            .map(|i| DrainSpec {
                name: format!("dr{i}"),
                act: g.act(),
                prepend: g.rng.chance(0.3),
            })
            .collect();
        let hooks = (0..g.rng.range(0, 3))
            .map(|i| HookSpec {
                name: format!("h{i}"),
                act: g.act(),
            })
            .collect();
        let checks = (0..g.rng.range(0, 2))
            .map(|i| g.check(format!("k{i}")))
            .collect();

        let nthreads = g.rng.range(1, 3) as usize;
        let mut threads: Vec<Vec<(u64, Action)>> = vec![Vec::new(); nthreads];
        // Registrations all come from thread 0, so their order is known.
        for i in 0..g.rng.range(0, 5) {
            let at = g.rng.range(0, 120);
            let action = match g.rng.range(0, 3) {
                0 => Action::AddComponent(Box::new(g.component(format!("x{i}")))),
                1 => Action::AddDrainer(DrainSpec {
                    name: format!("xdr{i}"),
                    act: g.act(),
                    prepend: g.rng.chance(0.5),
                }),
                2 => Action::AddCheck(g.check(format!("xk{i}"))),
                _ => Action::AddHook(HookSpec {
                    name: format!("xh{i}"),
                    act: g.act(),
                }),
            };
            threads[0].push((at, action));
        }
        // At least one stop request, so every scenario ends.
        let first_stop = if g.rng.chance(0.1) {
            0
        } else {
            g.rng.range(0, 150)
        };
        let mut stops = vec![(first_stop, g.stop_action(0))];
        for k in 1..=g.rng.range(0, 2) {
            stops.push((g.rng.range(0, 150), g.stop_action(k)));
        }
        if g.rng.chance(0.15) {
            stops.push((first_stop + g.rng.range(0, 50), Action::Force));
        }
        for _ in 0..g.rng.range(0, 4) {
            stops.push((g.rng.range(0, 200), Action::Probe));
        }
        for s in stops {
            let t = g.rng.range(0, nthreads as u64 - 1) as usize;
            threads[t].push(s);
        }
        for t in &mut threads {
            t.sort_by_key(|(at, _)| *at);
        }
        let mut sc = Scenario {
            seed,
            shutdown_timeout_ms: g.rng.range(50, 300),
            lame_duck_ms: if g.rng.chance(0.7) {
                0
            } else {
                g.rng.range(1, 20)
            },
            components,
            drainers,
            hooks,
            checks,
            threads,
            spawner: false,
            force_timeout_ms: 1000,
            reentrant_drops: false,
            spawner_fault: SpawnerFault::None,
        };
        sc.add_later_faults(first_stop);
        sc.add_graph();
        sc.add_restarts();
        sc
    }

    /// Restart policies and `run`s that fail a few times, drawn from their
    /// own stream: in half the scenarios, some components (builder's and
    /// registered while running) get a policy — never, or on failure with
    /// 0 to 5 restarts within a window from 1 ms to the whole run, a
    /// backoff from none to 30 ms, with or without jitter — and some a
    /// `run` that fails or panics in its first lives, then recovers (or
    /// fails for good, by its own spec).
    fn add_restarts(&mut self) {
        let mut x = Rng::new(self.seed ^ 0x0005_7a47_f00d);
        if x.chance(0.5) {
            return;
        }
        let p_policy = x.pick(&[0.3, 0.6, 1.0]);
        let p_flaky: f64 = x.pick(&[0.3, 0.6, 1.0]);
        let dynamic = self.threads[0].iter_mut().filter_map(|(_, a)| match a {
            Action::AddComponent(c) => Some(&mut **c),
            _ => None,
        });
        let mut builder = true;
        let n = self.components.len();
        for (i, c) in self.components.iter_mut().chain(dynamic).enumerate() {
            if i == n {
                builder = false;
            }
            if x.chance(p_policy) {
                c.restart = Some(restart_spec(&mut x, !builder));
            }
            // Most components that may restart fail a few times, mostly
            // once ready (a `run` that fails before is a launch failure).
            let restarts = c.restart.is_some_and(|r| r.max_restarts() > 0);
            if x.chance(if restarts { p_flaky.max(0.8) } else { p_flaky }) {
                c.flaky = (0..x.range(1, 5))
                    .map(|_| x.pick(&[Act::Fail, Act::Panic]))
                    .collect();
                c.flaky_ms = if x.chance(0.1) { 0 } else { x.range(5, 40) };
            }
        }
    }

    /// The spec of the component named `name`, registered by the builder
    /// or while running.
    pub fn spec(&self, name: &str) -> Option<&CompSpec> {
        let dynamic = self.threads.iter().flatten().filter_map(|(_, a)| match a {
            Action::AddComponent(c) => Some(&**c),
            _ => None,
        });
        self.components
            .iter()
            .chain(dynamic)
            .find(|c| c.name == name)
    }

    /// Dependency graphs, drawn from their own stream like the later
    /// faults: some scenarios keep the default chain, the others name
    /// dependencies — among components registered earlier, so the graph
    /// is acyclic by construction — in one of a few shapes; components
    /// registered while running then name earlier ones too, running or not.
    fn add_graph(&mut self) {
        let mut x = Rng::new(self.seed ^ 0x0006_7a9f_0d09);
        let shape = match x.range(0, 9) {
            0..=3 => return,
            4 | 5 => Shape::Random,
            6 => Shape::Layers(x.range(2, 6) as usize),
            7 => Shape::Diamonds,
            _ => Shape::Independent,
        };
        let mut names: Vec<String> = Vec::new();
        for (i, c) in self.components.iter_mut().enumerate() {
            c.deps = shape.deps(&mut x, i, &names);
            names.push(c.name.clone());
        }
        // Half of them also register components early, while the launch
        // is under way or just done: admitted, they name running ones.
        if x.chance(0.5) {
            let mut g = Gen {
                rng: Rng::new(x.next_u64()),
                fault: x.pick(&[0.0, 0.02, 0.1]),
            };
            for i in 0..x.range(1, 3) {
                let at = x.range(0, 60);
                let c = g.component(format!("y{i}"));
                self.threads[0].push((at, Action::AddComponent(Box::new(c))));
            }
            self.threads[0].sort_by_key(|(at, _)| *at);
        }
        for (_, action) in &mut self.threads[0] {
            if let Action::AddComponent(c) = action {
                c.deps = if x.chance(0.2) {
                    None
                } else {
                    Some(random_deps(&mut x, &names))
                };
                names.push(c.name.clone());
            }
        }
    }

    /// Whether any component names its dependencies: otherwise the graph
    /// is the default chain, and launch and stop follow one strict order.
    pub fn has_graph(&self) -> bool {
        let dynamic = self.threads.iter().flatten().filter_map(|(_, a)| match a {
            Action::AddComponent(c) => Some(&**c),
            _ => None,
        });
        self.components
            .iter()
            .chain(dynamic)
            .any(|c| c.deps.is_some())
    }

    /// Faults added after the first generator: drawn from their own stream,
    /// so every older seed still describes the scenario it described.
    fn add_later_faults(&mut self, first_stop: u64) {
        let mut x = Rng::new(self.seed ^ 0x005e_ed0f_0011);
        self.force_timeout_ms = x.pick(&[0, 5, 20, 100, 1000]);
        self.reentrant_drops = x.chance(0.3);
        self.spawner_fault = match x.range(0, 9) {
            0 => SpawnerFault::DropEvery(x.range(1, 4)),
            1 | 2 => SpawnerFault::Delay(x.range(1, 20)),
            _ => SpawnerFault::None,
        };
        // Closes that hang under a force: the force budget must bound them
        // all together.
        if x.chance(0.1) {
            for c in &mut self.components {
                c.close = Act::Hang;
                c.close_timeout_ms = 5_000;
            }
            self.shutdown_timeout_ms = 5_000;
            let t = x.range(0, self.threads.len() as u64 - 1) as usize;
            self.threads[t].push((first_stop + x.range(0, 40), Action::Force));
            self.threads[t].sort_by_key(|(at, _)| *at);
        }
        // Extreme durations: budgets too long for the clock mean "none".
        if x.chance(0.1) {
            for c in &mut self.components {
                if x.chance(0.5) {
                    c.close_timeout_ms = u64::MAX;
                    c.start_timeout_ms = u64::MAX;
                    c.attempt_timeout_ms = u64::MAX;
                }
            }
            if x.chance(0.5) {
                self.lame_duck_ms = u64::MAX;
            }
            if x.chance(0.3) {
                self.force_timeout_ms = u64::MAX;
            }
        }
    }

    /// A stress scenario: 16 threads hammering the handle (shutdown requests,
    /// probes, reports, registrations) during launch and during shutdown.
    pub fn stress(seed: u64) -> Scenario {
        let mut rng = Rng::new(seed);
        let fault = 0.02;
        let mut g = Gen {
            rng: Rng::new(!seed),
            fault,
        };
        let components = (0..12)
            .map(|i| {
                let mut c = g.component(format!("c{i}"));
                // Slow launch, so the threads land during it.
                c.start = Act::Sleep(g.rng.range(1, 6));
                c
            })
            .collect();
        let mut threads = Vec::new();
        for t in 0..16 {
            let mut actions = Vec::new();
            for i in 0..40 {
                let at = rng.range(0, 250);
                let action = match rng.range(0, 9) {
                    0 => Action::AddComponent(Box::new(g.component(format!("t{t}c{i}")))),
                    1 => Action::AddDrainer(DrainSpec {
                        name: format!("t{t}dr{i}"),
                        act: g.act(),
                        prepend: rng.chance(0.5),
                    }),
                    2 => Action::AddCheck(g.check(format!("t{t}k{i}"))),
                    3 => Action::AddHook(HookSpec {
                        name: format!("t{t}h{i}"),
                        act: g.act(),
                    }),
                    4 if at > 60 => Action::Stop(rng.chance(0.5).then(|| format!("t{t} stop {i}"))),
                    _ => Action::Probe,
                };
                actions.push((at, action));
            }
            if t == 15 {
                actions.push((200, Action::Force));
            }
            actions.sort_by_key(|(at, _)| *at);
            threads.push(actions);
        }
        let mut sc = Scenario {
            seed,
            shutdown_timeout_ms: 300,
            lame_duck_ms: 10,
            components,
            drainers: (0..3)
                .map(|i| DrainSpec {
                    name: format!("dr{i}"),
                    act: Act::Sleep(1),
                    prepend: false,
                })
                .collect(),
            hooks: vec![HookSpec {
                name: "h0".into(),
                act: Act::Ok,
            }],
            checks: vec![CheckSpec {
                name: "k0".into(),
                kind: CheckKind::Healthy,
            }],
            threads,
            spawner: false,
            force_timeout_ms: 1000,
            reentrant_drops: rng.chance(0.5),
            spawner_fault: SpawnerFault::None,
        };
        sc.add_stress_graph();
        sc
    }

    /// Rounds 2 and 3 of every four name dependencies (one on each
    /// runtime): the builder's components in layers of three, and every
    /// component registered while running a few of them.
    fn add_stress_graph(&mut self) {
        if self.seed % 4 < 2 {
            return;
        }
        let mut x = Rng::new(self.seed ^ 0x0006_7a9f_0d09);
        let names: Vec<String> = self.components.iter().map(|c| c.name.clone()).collect();
        for (i, c) in self.components.iter_mut().enumerate() {
            c.deps = Shape::Layers(3).deps(&mut x, i, &names);
        }
        for (_, action) in self.threads.iter_mut().flatten() {
            if let Action::AddComponent(c) = action {
                c.deps = Some(random_deps(&mut x, &names));
            }
        }
    }

    /// Whether more than one thread registers parts (their relative order is
    /// then unknown).
    pub fn concurrent_registrations(&self) -> bool {
        self.threads
            .iter()
            .filter(|t| t.iter().any(|(_, a)| a.is_registration()))
            .count()
            > 1
    }
}

/// How a graph scenario's builder components name their dependencies.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// A few earlier components each, some keeping the default.
    Random,
    /// Layers this wide, each depending on the layer before.
    Layers(usize),
    /// Diamonds in a row: a top, two sides on it, a bottom on both; the
    /// next top on the last bottom.
    Diamonds,
    /// No dependencies at all: one wide layer.
    Independent,
}

impl Shape {
    /// The dependencies of component `i`, the names before it in `names`.
    fn deps(self, x: &mut Rng, i: usize, names: &[String]) -> Option<Vec<String>> {
        let at = |k: usize| names[k].clone();
        match self {
            Shape::Random if x.chance(0.2) => None,
            Shape::Random => Some(random_deps(x, names)),
            Shape::Layers(width) => {
                let layer = i / width;
                let before = layer.saturating_sub(1) * width..layer * width;
                let mut deps: Vec<String> = before.map(at).collect();
                // Now and then only part of the layer before.
                if deps.len() > 1 && x.chance(0.3) {
                    deps.truncate(x.range(1, deps.len() as u64 - 1) as usize);
                }
                Some(deps)
            }
            Shape::Diamonds => Some(match i % 4 {
                0 if i == 0 => Vec::new(),
                0 | 1 => vec![at(i - 1)],
                2 => vec![at(i - 2)],
                _ => vec![at(i - 2), at(i - 1)],
            }),
            Shape::Independent => Some(Vec::new()),
        }
    }
}

/// A restart policy; a zero window (a configuration error) only if
/// `may_refuse`.
fn restart_spec(x: &mut Rng, may_refuse: bool) -> RestartSpec {
    let window_ms = if may_refuse && x.chance(0.1) {
        0
    } else {
        x.pick(&[1, 5, 30, 100, 10_000, u64::MAX])
    };
    RestartSpec {
        never: x.chance(0.15),
        max: x.pick(&[0, 1, 1, 2, 3, 5]),
        window_ms,
        backoff_ms: x.pick(&[0, 0, 1, 3, 10, 30]),
        backoff_exp: x.chance(0.4),
        jitter: x.pick(&[0.0, 0.0, 0.25, 0.5, 1.0]),
    }
}

/// Up to three of `names`, now and then one named twice (it counts once).
fn random_deps(x: &mut Rng, names: &[String]) -> Vec<String> {
    let mut deps = Vec::new();
    if names.is_empty() {
        return deps;
    }
    for _ in 0..x.range(0, 3) {
        deps.push(names[x.range(0, names.len() as u64 - 1) as usize].clone());
    }
    if !deps.is_empty() && x.chance(0.1) {
        deps.push(deps[0].clone());
    }
    deps
}

impl Action {
    pub fn is_registration(&self) -> bool {
        matches!(
            self,
            Action::AddComponent(_)
                | Action::AddDrainer(_)
                | Action::AddCheck(_)
                | Action::AddHook(_)
        )
    }
}

impl Gen {
    fn stop_action(&mut self, k: u64) -> Action {
        if self.rng.chance(0.4) {
            Action::Stop(Some(format!("stop request #{k}")))
        } else {
            Action::Stop(None)
        }
    }
}

impl fmt::Display for CompSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stop_to = match self.stop_timeout_ms {
            Some(ms) => format!("{ms}ms"),
            None => "none".into(),
        };
        write!(
            f,
            "{}: start {} (timeout {}ms); ready: {}x not-ready then {} ({} attempts, backoff {}ms{}, attempt timeout {}ms); run: {} {}ms then {}; stop {} (timeout {}); close {} (timeout {}ms)",
            self.name,
            self.start,
            self.start_timeout_ms,
            self.not_ready,
            self.ready,
            self.attempts,
            self.backoff_ms,
            if self.backoff_exp { " exp" } else { "" },
            self.attempt_timeout_ms,
            if self.run.until_stop {
                "at stop signal +"
            } else {
                "after"
            },
            self.run.delay_ms,
            self.run.then,
            self.stop,
            stop_to,
            self.close,
            self.close_timeout_ms,
        )?;
        if let Some(deps) = &self.deps {
            write!(f, "; depends on {deps:?}")?;
        }
        if let Some(r) = &self.restart {
            write!(f, "; {r}")?;
        }
        if !self.flaky.is_empty() {
            let lives: Vec<String> = self.flaky.iter().map(Act::to_string).collect();
            write!(
                f,
                "; first runs {} after {}ms",
                lives.join(", "),
                self.flaky_ms
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Stop(None) => f.write_str("request_shutdown(None)"),
            Action::Stop(Some(m)) => write!(f, "request_shutdown(Some({m:?}))"),
            Action::Force => f.write_str("force_shutdown()"),
            Action::AddComponent(c) => write!(f, "add_component {c}"),
            Action::AddDrainer(d) => write!(
                f,
                "{} {}: {}",
                if d.prepend {
                    "prepend_drainer"
                } else {
                    "add_drainer"
                },
                d.name,
                d.act
            ),
            Action::AddCheck(c) => write!(f, "add_health_check {}: {:?}", c.name, c.kind),
            Action::AddHook(h) => write!(f, "add_stop_hook {}: {}", h.name, h.act),
            Action::Probe => f.write_str("probe is_ready/is_healthy/report"),
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "scenario seed={:#x}: shutdown timeout {}ms, lame duck {}ms, force budget {}ms{}{}",
            self.seed,
            self.shutdown_timeout_ms,
            self.lame_duck_ms,
            self.force_timeout_ms,
            if self.spawner {
                format!(
                    ", each run on its own task (spawner, {:?})",
                    self.spawner_fault
                )
            } else {
                String::new()
            },
            if self.reentrant_drops {
                ", every Drop reads the handle"
            } else {
                ""
            }
        )?;
        for c in &self.components {
            writeln!(f, "  component {c}")?;
        }
        for d in &self.drainers {
            writeln!(
                f,
                "  {} {}: {}",
                if d.prepend {
                    "prepended drainer"
                } else {
                    "drainer"
                },
                d.name,
                d.act
            )?;
        }
        for h in &self.hooks {
            writeln!(f, "  stop hook {}: {}", h.name, h.act)?;
        }
        for c in &self.checks {
            writeln!(f, "  health check {}: {:?}", c.name, c.kind)?;
        }
        for (i, t) in self.threads.iter().enumerate() {
            for (at, a) in t {
                writeln!(f, "  thread {i} at {at}ms: {a}")?;
            }
        }
        Ok(())
    }
}
