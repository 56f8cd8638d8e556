//! With feature `tracing` and a subscriber on the thread, the engine's
//! events go to it (not to `log`), and a user's event inside `run` sits in
//! a span naming the component.
//!
//! A test binary of its own: tracing caches, per call site, whether any
//! subscriber wants it, and a lifecycle running on another test's thread
//! without a subscriber can register the span's call site at the moment
//! this test installs its own, leaving the span disabled for it.
#![cfg(feature = "tracing")]

use std::sync::{Arc, Mutex};

use lameduck::{BoxError, Component, Context, Lifecycle};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// The `component` field of a span, kept in its extensions.
struct SpanComponent(String);

/// A field visitor keeping `message` and `component`.
#[derive(Default)]
struct Seen {
    message: String,
    component: String,
}

impl Visit for Seen {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "component" {
            self.component = value.to_string();
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "component" => self.component = format!("{value:?}"),
            _ => {}
        }
    }
}

/// An event: its message, its own `component` field, and the
/// `component` of the innermost span that has one.
#[derive(Clone, Debug)]
struct Recorded {
    message: String,
    component: String,
    span: Option<String>,
}

#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Recorded>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Events {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let mut seen = Seen::default();
        attrs.record(&mut seen);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanComponent(seen.component));
        }
    }
    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        let mut seen = Seen::default();
        event.record(&mut seen);
        let span = ctx.event_scope(event).and_then(|mut scope| {
            scope.find_map(|s| s.extensions().get::<SpanComponent>().map(|c| c.0.clone()))
        });
        self.0.lock().unwrap().push(Recorded {
            message: seen.message,
            component: seen.component,
            span,
        });
    }
}

struct Worker;

impl Component for Worker {
    async fn run(&self, _cx: &Context) -> Result<(), BoxError> {
        tracing::info!("working");
        Ok(())
    }
}

#[test]
fn a_user_event_inside_run_carries_the_component_span() {
    let events = Events::default();
    let subscriber = tracing_subscriber::registry().with(events.clone());
    let lc = Lifecycle::builder()
        .component("worker", Worker)
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let _ = futures::executor::block_on(lc.run());
    });
    let events = events.0.lock().unwrap().clone();

    let user = events
        .iter()
        .find(|e| e.message == "working")
        .unwrap_or_else(|| panic!("no user event in {events:#?}"));
    assert_eq!(user.span.as_deref(), Some("worker"), "{user:?}");

    let started = events
        .iter()
        .find(|e| e.message.starts_with("started `worker` in "))
        .unwrap_or_else(|| panic!("the engine's events did not reach tracing: {events:#?}"));
    assert_eq!(started.component, "worker", "the event's own field");
}
