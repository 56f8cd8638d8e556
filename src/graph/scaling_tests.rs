//! The work the graph does, counted in loop steps, up to 100,000 nodes.

use std::collections::HashMap;

use super::*;

/// The shapes of the scaling check.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// The default chain, registered in one batch.
    Chain,
    /// The default chain, one component at a time (registration while
    /// running).
    ChainOneByOne,
    /// Each names the one before, one at a time.
    NamedOneByOne,
    /// All depend on the first, one at a time.
    Star,
    /// Layers of 10, each component depending on the whole layer before.
    Layers,
    /// Each names the one after it (a forward chain: the deepest search).
    Forward,
}

/// Builds `n` nodes of `shape`, launches and stops them all; the loop
/// iterations taken and the edges.
fn work(shape: Shape, n: u32) -> (u64, u64) {
    let names: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
    let index: HashMap<&str, u32> = names.iter().map(|s| &s[..]).zip(0..).collect();
    let lookup = |s: &str| index.get(s).copied();
    let name_at = |i: u32| &names[i as usize][..];
    let mut g = Graph::default();
    for i in 0..n {
        let deps: Option<Vec<&str>> = match shape {
            Shape::Chain | Shape::ChainOneByOne => None,
            Shape::NamedOneByOne => Some(i.checked_sub(1).map(name_at).into_iter().collect()),
            Shape::Star => Some(if i == 0 { vec![] } else { vec![name_at(0)] }),
            Shape::Layers => {
                let layer = i / 10 * 10;
                Some((layer.saturating_sub(10)..layer).map(name_at).collect())
            }
            Shape::Forward => Some((i + 1 < n).then(|| name_at(i + 1)).into_iter().collect()),
        };
        g.add(deps.as_deref());
        if matches!(
            shape,
            Shape::ChainOneByOne | Shape::NamedOneByOne | Shape::Star
        ) {
            g.link(lookup, name_at).unwrap();
        }
    }
    g.link(lookup, name_at).unwrap();
    while let Some(x) = g.next_startable() {
        g.set_ready(x);
    }
    g.begin_shutdown();
    while let Some(x) = g.next_stoppable() {
        g.set_stopped(x);
    }
    for i in 0..n {
        assert_eq!(g.state(i), State::Stopped, "{shape:?}: {i}");
    }
    let edges = (0..n).map(|i| u64::from(g.dep_count(i))).sum();
    (g.steps.get(), edges)
}

#[test]
fn work_is_linear_in_nodes_and_edges_up_to_100k() {
    for shape in [
        Shape::Chain,
        Shape::ChainOneByOne,
        Shape::NamedOneByOne,
        Shape::Star,
        Shape::Layers,
        Shape::Forward,
    ] {
        // Growing tenfold at a time, so that quadratic work fails at 10k
        // instead of running for minutes at 100k.
        let mut before: Option<(u64, u64)> = None;
        for n in [1_000, 10_000, 100_000] {
            let (steps, edges) = work(shape, n);
            let size = u64::from(n) + edges;
            // Shown with `--nocapture`.
            println!(
                "{shape:?} n={n}: {edges} edges, {steps} steps, {:.2} per node + edge",
                steps as f64 / size as f64
            );
            // Each node and edge is visited a bounded number of times...
            assert!(
                steps <= 8 * size,
                "{shape:?}: {steps} steps for {size} at {n}"
            );
            // ...so ten times the graph is ten times the work.
            if let Some((steps_before, size_before)) = before {
                let ratio = steps as f64 / steps_before as f64;
                let grown = size as f64 / size_before as f64;
                assert!(
                    ratio <= grown * 1.05,
                    "{shape:?}: x{ratio:.2} work for x{grown:.2} at {n}"
                );
            }
            before = Some((steps, size));
        }
    }
}
