//! The graph's rules, case by case.

use std::collections::HashMap;

use super::*;
use crate::error::Error;

/// A graph with the names that go with it, as the engine will keep them.
#[derive(Default)]
struct Named {
    graph: Graph,
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Named {
    /// Adds one batch and links it; on error the names go too.
    fn batch(&mut self, parts: &[(&str, Option<&[&str]>)]) -> Result<Vec<u32>, Error> {
        let before = self.names.len();
        let mut added = Vec::new();
        for &(name, deps) in parts {
            added.push(self.graph.add(deps));
            self.index.insert(name.to_owned(), self.names.len() as u32);
            self.names.push(name.to_owned());
        }
        let (index, names) = (&self.index, &self.names);
        let linked = self
            .graph
            .link(|n| index.get(n).copied(), |i| &names[i as usize]);
        if linked.is_err() {
            for name in self.names.drain(before..) {
                self.index.remove(&name);
            }
        }
        linked.map(|()| added)
    }

    fn id(&self, name: &str) -> u32 {
        self.index[name]
    }

    fn name(&self, node: u32) -> &str {
        &self.names[node as usize]
    }

    /// Every node that may start now, by name, sorted.
    fn startable(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(n) = self.graph.next_startable() {
            out.push(self.name(n).to_owned());
        }
        out.sort();
        out
    }

    /// Every node that may stop now, by name, sorted.
    fn stoppable(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(n) = self.graph.next_stoppable() {
            out.push(self.name(n).to_owned());
        }
        out.sort();
        out
    }

    fn ready(&mut self, name: &str) {
        self.graph.set_ready(self.id(name));
    }

    fn stopped(&mut self, name: &str) {
        self.graph.set_stopped(self.id(name));
    }
}

fn v(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

const NONE: Option<&[&str]> = Some(&[]);

#[test]
fn the_default_graph_is_registration_order() {
    let mut g = Named::default();
    g.batch(&[("a", None), ("b", None), ("c", None)]).unwrap();
    assert_eq!(g.startable(), v(&["a"]));
    g.ready("a");
    assert_eq!(g.startable(), v(&["b"]));
    g.ready("b");
    assert_eq!(g.startable(), v(&["c"]));
    g.ready("c");
    assert!(g.startable().is_empty());
    assert_eq!(g.graph.dependencies(2).collect::<Vec<_>>(), [1]);
    assert_eq!(g.graph.dependencies(0).count(), 0);

    g.graph.begin_shutdown();
    assert_eq!(g.stoppable(), v(&["c"]));
    g.stopped("c");
    assert_eq!(g.stoppable(), v(&["b"]));
    g.stopped("b");
    assert_eq!(g.stoppable(), v(&["a"]));
    g.stopped("a");
    assert!(g.stoppable().is_empty());
    // The chain took no edge cell.
    assert!(g.graph.links.is_empty() && g.graph.deps.is_empty());
}

#[test]
fn an_empty_list_means_no_dependency() {
    let mut g = Named::default();
    g.batch(&[("a", NONE), ("b", NONE), ("c", NONE)]).unwrap();
    assert_eq!(g.startable(), v(&["a", "b", "c"]));
    g.graph.begin_shutdown();
    assert_eq!(g.stoppable(), v(&["a", "b", "c"]));
}

#[test]
fn a_diamond_starts_and_stops_in_layers() {
    let mut g = Named::default();
    g.batch(&[
        ("db", NONE),
        ("cache", Some(&["db"])),
        ("queue", Some(&["db"])),
        ("api", Some(&["cache", "queue"])),
    ])
    .unwrap();
    assert_eq!(g.startable(), v(&["db"]));
    g.ready("db");
    assert_eq!(g.startable(), v(&["cache", "queue"]));
    g.ready("queue");
    assert!(g.startable().is_empty(), "api waits for cache");
    g.ready("cache");
    assert_eq!(g.startable(), v(&["api"]));
    g.ready("api");
    assert_eq!(
        g.graph.dependencies(g.id("api")).collect::<Vec<_>>(),
        [g.id("cache"), g.id("queue")]
    );

    g.graph.begin_shutdown();
    assert_eq!(g.stoppable(), v(&["api"]));
    g.stopped("api");
    assert_eq!(g.stoppable(), v(&["cache", "queue"]));
    g.stopped("cache");
    assert!(g.stoppable().is_empty(), "db waits for queue");
    g.stopped("queue");
    assert_eq!(g.stoppable(), v(&["db"]));
}

#[test]
fn names_may_point_forward_within_a_batch_and_repeat() {
    let mut g = Named::default();
    g.batch(&[("api", Some(&["db", "db"])), ("db", NONE)])
        .unwrap();
    assert_eq!(g.graph.dependencies(0).collect::<Vec<_>>(), [1]);
    assert_eq!(g.startable(), v(&["db"]));
    g.ready("db");
    assert_eq!(g.startable(), v(&["api"]));

    // Past the pairwise comparison too.
    let mut g = Named::default();
    let names: Vec<String> = (0..40).map(|i| format!("n{i}")).collect();
    let mut parts: Vec<(&str, Option<&[&str]>)> = names.iter().map(|n| (&n[..], NONE)).collect();
    let deps: Vec<&str> = (0..100).map(|i| &names[i % 20][..]).collect();
    parts.push(("top", Some(&deps)));
    g.batch(&parts).unwrap();
    assert_eq!(
        g.graph.dependencies(40).collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );
}

#[test]
fn an_unknown_name_is_a_config_error_naming_both_and_changes_nothing() {
    let mut g = Named::default();
    g.batch(&[("a", None)]).unwrap();
    let err = g
        .batch(&[("b", None), ("c", Some(&["a", "nope"]))])
        .unwrap_err();
    assert!(err.is_config());
    assert_eq!(err.component(), Some("c"));
    assert!(
        err.to_string().contains("unknown component \"nope\""),
        "{err}"
    );
    assert_eq!(g.graph.len(), 1);
    assert!(g.graph.deps.is_empty());
    // The graph is as before: the same names link now.
    g.batch(&[("b", None), ("c", Some(&["a"]))]).unwrap();
    assert_eq!(g.startable(), v(&["a"]));
    g.ready("a");
    assert_eq!(g.startable(), v(&["b", "c"]));
}

#[test]
fn a_cycle_is_a_config_error_naming_the_whole_cycle() {
    let mut g = Named::default();
    let err = g
        .batch(&[
            ("x", NONE),
            ("a", Some(&["b"])),
            ("b", Some(&["x", "c"])),
            ("c", Some(&["a"])),
        ])
        .unwrap_err();
    assert!(err.is_config());
    assert_eq!(err.component(), Some("a"));
    assert!(
        err.to_string()
            .ends_with("dependency cycle: a -> b -> c -> a"),
        "{err}"
    );
    assert_eq!(g.graph.len(), 0);

    // Entered from elsewhere, the cycle is still told from its earliest node.
    let err = g
        .batch(&[
            ("top", Some(&["q"])),
            ("p", Some(&["q"])),
            ("q", Some(&["p"])),
        ])
        .unwrap_err();
    assert!(
        err.to_string().ends_with("dependency cycle: p -> q -> p"),
        "{err}"
    );

    let err = g.batch(&[("me", Some(&["me"]))]).unwrap_err();
    assert_eq!(err.component(), Some("me"));
    assert!(
        err.to_string().ends_with("dependency cycle: me -> me"),
        "{err}"
    );
}

#[test]
fn a_component_added_while_running_depends_on_registered_ones() {
    let mut g = Named::default();
    g.batch(&[("a", None), ("b", None)]).unwrap();
    assert_eq!(g.startable(), v(&["a"]));
    g.ready("a");
    // `b` is started, not ready: by default `late` waits for it.
    assert_eq!(g.startable(), v(&["b"]));
    g.batch(&[("late", None)]).unwrap();
    assert!(g.startable().is_empty());
    // On a ready one: at once.
    g.batch(&[("side", Some(&["a"]))]).unwrap();
    assert_eq!(g.startable(), v(&["side"]));
    g.ready("b");
    assert_eq!(g.startable(), v(&["late"]));
    // Its own name is a cycle; an unknown one an error.
    assert!(g.batch(&[("self", Some(&["self"]))]).is_err());
    assert!(g.batch(&[("z", Some(&["later"]))]).is_err());
    assert_eq!(g.graph.len(), 4);
}

#[test]
fn a_restart_holds_back_dependents_not_yet_started() {
    let mut g = Named::default();
    g.batch(&[("db", NONE), ("api", Some(&["db"]))]).unwrap();
    assert_eq!(g.startable(), v(&["db"]));
    g.ready("db");
    assert_eq!(g.startable(), v(&["api"]));
    g.ready("api");
    g.batch(&[("a", Some(&["db"])), ("b", Some(&["db"]))])
        .unwrap();
    // `db` restarts before `a` and `b` were taken: they wait again.
    g.graph.set_unready(g.id("db"));
    assert!(g.startable().is_empty());
    assert_eq!(
        g.graph.state(g.id("api")),
        State::Ready,
        "api keeps running"
    );
    g.batch(&[("c", Some(&["db"]))]).unwrap();
    assert!(g.startable().is_empty());
    g.ready("db");
    assert_eq!(g.startable(), v(&["a", "b", "c"]));
}

#[test]
fn a_failed_start_releases_its_dependencies() {
    let mut g = Named::default();
    g.batch(&[
        ("db", NONE),
        ("api", Some(&["db"])),
        ("web", Some(&["api"])),
    ])
    .unwrap();
    assert_eq!(g.startable(), v(&["db"]));
    g.ready("db");
    assert_eq!(g.startable(), v(&["api"]));
    g.stopped("api"); // its start failed
    g.graph.begin_shutdown();
    // `web` never started: nothing waits for it.
    assert_eq!(g.stoppable(), v(&["db"]));
    assert_eq!(g.graph.state(g.id("web")), State::Waiting);
}

#[test]
fn shutdown_during_launch_starts_nothing_more() {
    let mut g = Named::default();
    g.batch(&[("a", NONE), ("b", NONE), ("c", Some(&["a"]))])
        .unwrap();
    assert_eq!(g.graph.next_startable(), Some(0));
    g.graph.begin_shutdown();
    // `b` was queued, not taken: never started.
    assert_eq!(g.graph.next_startable(), None);
    assert_eq!(g.stoppable(), v(&["a"]));
    g.stopped("a");
    assert_eq!(g.graph.next_startable(), None, "`c` stays unstarted");
    assert_eq!(g.graph.state(1), State::Waiting);
    assert_eq!(g.graph.state(2), State::Waiting);
    // Linked after shutdown began: never queued.
    g.batch(&[("late", NONE)]).unwrap();
    assert_eq!(g.graph.next_startable(), None);
}

#[test]
fn an_empty_graph_answers_nothing() {
    let mut g = Named::default();
    g.batch(&[]).unwrap();
    assert_eq!(g.graph.next_startable(), None);
    g.graph.begin_shutdown();
    assert_eq!(g.graph.next_stoppable(), None);
}

#[test]
fn a_lookup_past_the_nodes_counts_as_unknown() {
    let mut g = Graph::default();
    g.add(Some(&["stale"]));
    let err = g.link(|_| Some(7), |_| "a").unwrap_err();
    assert!(
        err.to_string().contains("unknown component \"stale\""),
        "{err}"
    );
    assert_eq!(g.len(), 0);
}

#[test]
fn removing_the_last_node_undoes_its_admission() {
    let mut g = Named::default();
    g.batch(&[("a", NONE), ("b", NONE)]).unwrap();
    g.batch(&[("late", Some(&["b", "a", "b"]))]).unwrap();
    g.graph.remove_last();
    g.names.pop();
    g.index.remove("late");
    assert_eq!(g.graph.len(), 2);
    assert_eq!(g.startable(), v(&["a", "b"]));
    // Neither keeps a dependent: a node added now is linked afresh.
    g.batch(&[("again", Some(&["a"]))]).unwrap();
    g.ready("b");
    assert!(g.startable().is_empty());
    g.ready("a");
    assert_eq!(g.startable(), v(&["again"]));
    // A node without dependencies, queued to start, leaves the queue.
    g.batch(&[("free", NONE)]).unwrap();
    g.graph.remove_last();
    assert!(g.graph.next_startable().is_none());
    assert_eq!(g.graph.len(), 3);
}
