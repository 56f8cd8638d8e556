//! The engine's log records carry their facts as fields: `log` key-values
//! by default, and with feature `tracing` tracing events, with every user
//! call inside a span naming its component.

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::thread::ThreadId;

use common::*;
use lameduck::Lifecycle;

/// One `lameduck` record: its level, message and key-values.
#[derive(Debug, Clone)]
struct Line {
    level: log::Level,
    message: String,
    kv: BTreeMap<String, String>,
}

impl Line {
    fn get(&self, key: &str) -> &str {
        self.kv.get(key).map_or("<absent>", String::as_str)
    }
}

/// Every `lameduck` record, with the thread that logged it: tests run in
/// parallel, and each reads only its own thread's records.
struct Capture(Mutex<Vec<(ThreadId, Line)>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl<'kvs> log::kv::VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        self.0.insert(key.to_string(), value.to_string());
        Ok(())
    }
}

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.target() == "lameduck"
    }
    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let mut kv = BTreeMap::new();
        r.key_values().visit(&mut Fields(&mut kv)).unwrap();
        let line = Line {
            level: r.level(),
            message: r.args().to_string(),
            kv,
        };
        let me = std::thread::current().id();
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((me, line));
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

/// Runs `lc` on this thread (so its records are this thread's) and returns
/// the records it logged.
fn records_of(lc: Lifecycle) -> Vec<Line> {
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(log::LevelFilter::Debug);
    let _ = futures::executor::block_on(lc.run());
    let me = std::thread::current().id();
    let mut lines = CAPTURE.0.lock().unwrap_or_else(|e| e.into_inner());
    let (mine, others) = std::mem::take(&mut *lines)
        .into_iter()
        .partition::<Vec<_>, _>(|(t, _)| *t == me);
    *lines = others;
    mine.into_iter().map(|(_, l)| l).collect()
}

fn find<'a>(lines: &'a [Line], prefix: &str) -> &'a Line {
    lines
        .iter()
        .find(|l| l.message.starts_with(prefix))
        .unwrap_or_else(|| panic!("no record starting {prefix:?} in {lines:#?}"))
}

#[test]
fn component_steps_carry_component_step_and_elapsed() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("db", probe(&log, "db").run(Act::UntilStop))
        .component("api", probe(&log, "api").run(Act::After(ms(20), &Act::Ok)))
        .build()
        .unwrap();
    let lines = records_of(lc);

    for (prefix, step) in [
        ("started `db` in ", "start"),
        ("`db` ready after ", "ready"),
        ("stopped `db` in ", "stop"),
    ] {
        let line = find(&lines, prefix);
        assert_eq!(line.level, log::Level::Info, "{line:?}");
        assert_eq!(line.get("component"), "db", "{line:?}");
        assert_eq!(line.get("step"), step, "{line:?}");
        let elapsed: u64 = line
            .get("elapsed_ms")
            .parse()
            .expect("elapsed_ms is a number");
        assert!(elapsed < 10_000, "{line:?}");
    }

    let request = find(&lines, "shutdown requested: ");
    assert_eq!(
        request.message,
        "shutdown requested: `api` finished running"
    );
    assert_eq!(request.get("cause"), "`api` finished running");
    assert_eq!(request.get("phase"), "lame duck");

    let phase = find(&lines, "phase: lame duck -> draining");
    assert_eq!(phase.get("phase"), "draining");
}

#[test]
fn an_error_carries_its_component_step_phase_and_text() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("x", probe(&log, "x").start(Act::Fail))
        .build()
        .unwrap();
    let lines = records_of(lc);

    let error = lines
        .iter()
        .find(|l| l.level == log::Level::Warn && l.kv.contains_key("error"))
        .unwrap_or_else(|| panic!("no error record in {lines:#?}"));
    assert_eq!(error.get("component"), "x", "{error:?}");
    assert_eq!(error.get("step"), "start", "{error:?}");
    assert_eq!(error.get("phase"), "launching", "{error:?}");
    assert!(error.get("error").contains("start x failed"), "{error:?}");
    assert_eq!(
        error.get("error"),
        error.message,
        "the field is the message's text"
    );
}

/// With feature `tracing` and a subscriber on the thread, events go to it
/// (not to `log`), and a user's event inside `run` sits in a span naming
/// the component.
#[cfg(feature = "tracing")]
mod tracing_events {
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
}
