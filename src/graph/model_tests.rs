//! The graph against a brute-force model, over random graphs and random
//! event sequences (fixed seeds).

use std::collections::{BTreeSet, HashMap, HashSet};

use super::*;

/// SplitMix64: a fixed seed gives a fixed scenario.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n.max(1))) as u32
    }

    fn pick(&mut self, from: &[u32]) -> Option<u32> {
        (!from.is_empty()).then(|| from[self.below(from.len() as u32) as usize])
    }
}

/// Every answer recomputed from the dependency lists and states alone.
#[derive(Default)]
struct Model {
    deps: Vec<Vec<u32>>,
    state: Vec<State>,
    /// Taken to stop, not reported stopped yet.
    taken: HashSet<u32>,
    shutting_down: bool,
}

impl Model {
    fn may_start(&self) -> Vec<u32> {
        let ready = |d: &u32| self.state[*d as usize] == State::Ready;
        (0..self.deps.len() as u32)
            .filter(|&i| !self.shutting_down && self.state[i as usize] == State::Waiting)
            .filter(|&i| self.deps[i as usize].iter().all(ready))
            .collect()
    }

    /// Once shutting down, a started node none of whose dependents holds
    /// it is to stop.
    fn settle(&mut self) {
        if !self.shutting_down {
            return;
        }
        for i in 0..self.deps.len() {
            let free = (0..self.deps.len()).all(|j| {
                !self.deps[j].contains(&(i as u32))
                    || matches!(self.state[j], State::Waiting | State::Stopped)
            });
            if free && matches!(self.state[i], State::Started | State::Ready) {
                self.state[i] = State::Stopping;
            }
        }
    }

    fn in_state(&self, s: State) -> Vec<u32> {
        (0..self.state.len() as u32)
            .filter(|&i| self.state[i as usize] == s)
            .collect()
    }

    /// Whether the nodes from `first` on hold a cycle: peel off nodes whose
    /// dependencies in that range are all peeled, until none is left.
    fn has_cycle(deps: &[Vec<u32>], first: usize) -> bool {
        let mut left: HashSet<usize> = (first..deps.len()).collect();
        loop {
            let free: Vec<usize> = left
                .iter()
                .copied()
                .filter(|&i| deps[i].iter().all(|&d| !left.contains(&(d as usize))))
                .collect();
            if free.is_empty() {
                return !left.is_empty();
            }
            for i in free {
                left.remove(&i);
            }
        }
    }
}

fn check(g: &Graph, m: &Model) {
    for i in 0..g.len() {
        assert_eq!(g.state(i), m.state[i as usize], "state of {i}");
        assert_eq!(
            g.dependencies(i).collect::<Vec<_>>(),
            m.deps[i as usize],
            "deps of {i}"
        );
    }
    // Queues may hold stale entries, which are skipped: the live ones are
    // exactly what the model allows.
    let live = |i: &u32| g.live[*i as usize];
    let queued: BTreeSet<u32> = (g.startable.iter())
        .filter(|i| live(i).state == State::Waiting && live(i).unready_deps == 0)
        .copied()
        .collect();
    assert_eq!(queued, m.may_start().into_iter().collect(), "may start");
    let queued: Vec<u32> = (g.stoppable.iter())
        .filter(|i| live(i).state == State::Stopping)
        .copied()
        .collect();
    let mut sorted = queued.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), queued.len(), "queued to stop twice");
    let mut to_stop: Vec<u32> = m.in_state(State::Stopping);
    to_stop.retain(|i| !m.taken.contains(i));
    assert_eq!(sorted, to_stop, "may stop");
}

/// Adds a random batch; checks the verdict against the model's.
fn add_batch(rng: &mut Rng, g: &mut Graph, m: &mut Model, index: &mut HashMap<String, u32>) {
    let first = g.len();
    let size = if first == 0 || rng.below(4) == 0 {
        1 + rng.below(8)
    } else {
        1
    };
    let mut specs: Vec<Option<Vec<String>>> = Vec::new();
    for k in first..first + size {
        let spec = match rng.below(20) {
            0..=5 => None,
            6..=8 => Some(Vec::new()),
            _ => Some(
                (0..1 + rng.below(4))
                    .map(|_| match rng.below(40) {
                        0 => "unknown".to_owned(),
                        1..=27 if k > 0 => format!("n{}", rng.below(k)),
                        _ => format!("n{}", rng.below(first + size)),
                    })
                    .collect(),
            ),
        };
        assert_eq!(g.add(spec.as_deref()), k);
        index.insert(format!("n{k}"), k);
        specs.push(spec);
    }
    let names: Vec<String> = (0..first + size).map(|i| format!("n{i}")).collect();
    let verdict = g.link(|n| index.get(n).copied(), |i| &names[i as usize]);

    // The model's verdict: the first unknown name, else a cycle, else fine.
    let mut deps = m.deps.clone();
    let mut unknown = None;
    for (k, spec) in (first..).zip(&specs) {
        let mut list = Vec::new();
        match spec {
            None => list.extend(k.checked_sub(1)),
            Some(names) => {
                for name in names {
                    match index.get(name) {
                        Some(&d) if !list.contains(&d) => list.push(d),
                        Some(_) => {}
                        None => unknown = unknown.or(Some(k)),
                    }
                }
            }
        }
        deps.push(list);
    }
    match verdict {
        Ok(()) => {
            assert!(unknown.is_none() && !Model::has_cycle(&deps, first as usize));
            m.deps = deps;
            m.state.resize(m.deps.len(), State::Waiting);
        }
        Err(e) => {
            assert!(e.is_config());
            let text = e.to_string();
            if let Some(k) = unknown {
                assert!(text.contains("unknown component \"unknown\""), "{text}");
                assert_eq!(e.component(), Some(&names[k as usize][..]));
            } else {
                assert!(Model::has_cycle(&deps, first as usize), "{text}");
                let (_, cycle) = text.split_once("dependency cycle: ").expect(&text);
                let cycle: Vec<u32> = cycle
                    .split(" -> ")
                    .map(|n| n[1..].parse().unwrap())
                    .collect();
                let (last, nodes) = cycle.split_last().unwrap();
                assert_eq!(cycle[0], *last, "{text}");
                assert_eq!(
                    nodes.iter().collect::<HashSet<_>>().len(),
                    nodes.len(),
                    "{text}"
                );
                assert_eq!(nodes.iter().min(), Some(&cycle[0]), "{text}");
                for w in cycle.windows(2) {
                    assert!(deps[w[0] as usize].contains(&w[1]), "{text}");
                }
                assert_eq!(e.component(), Some(&names[cycle[0] as usize][..]));
            }
            assert_eq!(g.len(), first, "a refused batch changes nothing");
            for k in first..first + size {
                index.remove(&format!("n{k}"));
            }
        }
    }
}

fn scenario(seed: u64) {
    let mut rng = Rng(seed);
    let mut g = Graph::default();
    let mut m = Model::default();
    let mut index = HashMap::new();
    for _ in 0..40 + rng.below(160) {
        let shutting = m.shutting_down;
        match rng.below(100) {
            0..=21 => add_batch(&mut rng, &mut g, &mut m, &mut index),
            22..=41 => {
                let may = m.may_start();
                match g.next_startable() {
                    Some(n) => {
                        assert!(may.contains(&n), "{n} started before its dependencies");
                        m.state[n as usize] = State::Started;
                    }
                    None => assert!(may.is_empty()),
                }
            }
            // Reports on any node, in any state: those that do not apply
            // change nothing.
            42..=61 => {
                let n = rng.below(g.len());
                if n < g.len() {
                    g.set_ready(n);
                    if m.state[n as usize] == State::Started {
                        m.state[n as usize] = State::Ready;
                    }
                }
            }
            62..=67 => {
                let n = rng.below(g.len());
                if n < g.len() {
                    g.set_unready(n);
                    if m.state[n as usize] == State::Ready {
                        m.state[n as usize] = State::Started;
                    }
                }
            }
            // A start that failed, or a stray report.
            68..=71 => {
                let n = rng.below(g.len());
                if n < g.len() {
                    g.set_stopped(n);
                    if m.state[n as usize].holds() {
                        m.state[n as usize] = State::Stopped;
                        m.taken.remove(&n);
                    }
                }
            }
            72..=74 => {
                g.begin_shutdown();
                m.shutting_down = true;
            }
            75..=87 if shutting => {
                if let Some(n) = g.next_stoppable() {
                    assert_eq!(m.state[n as usize], State::Stopping);
                    assert!(m.taken.insert(n), "{n} taken twice");
                }
            }
            88..=99 if shutting => {
                let taken: Vec<u32> = m.taken.iter().copied().collect();
                if let Some(n) = rng.pick(&taken) {
                    g.set_stopped(n);
                    m.taken.remove(&n);
                    m.state[n as usize] = State::Stopped;
                }
            }
            _ => {}
        }
        m.settle();
        check(&g, &m);
    }
    // Wind down: every started node is taken to stop exactly once.
    if !m.shutting_down {
        g.begin_shutdown();
        m.shutting_down = true;
        m.settle();
    }
    loop {
        while let Some(n) = g.next_stoppable() {
            assert!(m.taken.insert(n), "{n} taken twice");
        }
        let Some(&n) = m.taken.iter().min() else {
            break;
        };
        g.set_stopped(n);
        m.taken.remove(&n);
        m.state[n as usize] = State::Stopped;
        m.settle();
        check(&g, &m);
    }
    for s in [State::Started, State::Ready, State::Stopping] {
        assert!(m.in_state(s).is_empty(), "seed {seed}: left {s:?}");
    }
}

#[test]
fn matches_a_brute_force_model_over_random_graphs() {
    for seed in 0..400 {
        scenario(seed);
    }
}
