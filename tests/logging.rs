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

    let request = find(&lines, "shutting down: ");
    assert_eq!(request.message, "shutting down: `api` finished running");
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
