//! How long a launch and a shutdown take in virtual time: independent
//! nodes start and stop together, a chain one at a time.

use super::*;

/// Launches then stops `g` in virtual time, every start-to-ready and
/// every stop taking `step` ms, as many at once as the graph allows; the
/// instants launch and shutdown end.
fn simulate(g: &mut Graph, step: u64) -> (u64, u64) {
    // (when, node), soonest first.
    let mut events = std::collections::BinaryHeap::new();
    let mut now = 0;
    loop {
        while let Some(n) = g.next_startable() {
            events.push(std::cmp::Reverse((now + step, n)));
        }
        let Some(std::cmp::Reverse((at, n))) = events.pop() else {
            break;
        };
        now = at;
        g.set_ready(n);
    }
    let launched = now;
    g.begin_shutdown();
    loop {
        while let Some(n) = g.next_stoppable() {
            events.push(std::cmp::Reverse((now + step, n)));
        }
        let Some(std::cmp::Reverse((at, n))) = events.pop() else {
            break;
        };
        now = at;
        g.set_stopped(n);
    }
    (launched, now - launched)
}

#[test]
fn ten_layers_of_ten_take_ten_steps_each_way_and_a_chain_a_hundred() {
    let names: Vec<String> = (0..100).map(|i| format!("n{i}")).collect();
    let lookup = |s: &str| s[1..].parse().ok();
    let name_at = |i: u32| &names[i as usize][..];

    let mut layers = Graph::default();
    for i in 0..100u32 {
        let layer = i / 10 * 10;
        let deps: Vec<&str> = (layer.saturating_sub(10)..layer).map(name_at).collect();
        layers.add(Some(&deps));
    }
    layers.link(lookup, name_at).unwrap();
    assert_eq!(simulate(&mut layers, 50), (500, 500));

    let mut chain = Graph::default();
    for _ in 0..100 {
        chain.add::<&str>(None);
    }
    chain.link(lookup, name_at).unwrap();
    assert_eq!(simulate(&mut chain, 50), (5000, 5000));
}
