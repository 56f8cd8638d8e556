//! The hard-exit watchdog. Each scenario runs in a child process: the test
//! re-runs this binary with `--exact <child test>` and an environment
//! variable that makes the child test run the scenario.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use lameduck::{ComponentOptions, Lifecycle};

const SCENARIO: &str = "LAMEDUCK_WATCHDOG_SCENARIO";
const EXIT_CODE: i32 = 42;

/// Runs the child test `name` with `scenario`; returns its exit code and
/// how long it took. Kills it and panics after `limit`.
fn run_child(name: &str, scenario: &str, limit: Duration) -> (Option<i32>, Duration, String) {
    let exe = std::env::current_exe().unwrap();
    let t0 = Instant::now();
    let mut child = Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(SCENARIO, scenario)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let took = t0.elapsed();
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut stderr);
            }
            return (status.code(), took, stderr);
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child `{name}` still running after {limit:?}");
        }
        std::thread::sleep(ms(10));
    }
}

/// The child side. Does nothing unless the scenario variable is set.
#[test]
fn watchdog_child() {
    let Ok(scenario) = std::env::var(SCENARIO) else {
        return;
    };
    let log = Log::new();
    match scenario.as_str() {
        // `stop` blocks its thread: no future-based timeout can end it
        "blocked" => {
            let lc = Lifecycle::builder()
                .shutdown_timeout(ms(100))
                .watchdog(ms(300), EXIT_CODE)
                .component_with(
                    "stuck",
                    probe(&log, "stuck").stop(Act::Block(Duration::from_secs(60))),
                    ComponentOptions::new().stop_timeout(ms(50)),
                )
                .build()
                .unwrap();
            stop_when_ready(&lc.handle());
            let _ = lc.run_blocking();
            panic!("run returned: the watchdog did not fire");
        }
        // runs longer than the watchdog timeout before shutdown, then shuts
        // down in time: the watchdog must neither fire early nor late
        "in-time" => {
            let lc = Lifecycle::builder()
                .shutdown_timeout(ms(100))
                .watchdog(ms(300), EXIT_CODE)
                .component("a", probe(&log, "a"))
                .build()
                .unwrap();
            let h = lc.handle();
            after(ms(400), move || {
                h.request_shutdown(None);
            });
            lc.run_blocking().unwrap();
            std::thread::sleep(ms(500));
        }
        // a lifecycle dropped without being run: a later stop request on a
        // surviving handle has nothing to watch
        "never-run" => {
            let lc = Lifecycle::builder()
                .watchdog(ms(50), EXIT_CODE)
                .component("a", probe(&log, "a"))
                .build()
                .unwrap();
            let h = lc.handle();
            drop(lc);
            h.request_shutdown(None);
            std::thread::sleep(ms(300));
            drop(h);
        }
        other => panic!("unknown scenario {other}"),
    }
}

#[test]
fn watchdog_exits_with_its_code_when_stop_blocks_the_thread() {
    let (code, took, stderr) = run_child("watchdog_child", "blocked", Duration::from_secs(10));
    assert_eq!(code, Some(EXIT_CODE), "stderr: {stderr}");
    assert!(took >= ms(300) && took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn watchdog_is_disarmed_when_shutdown_finishes_in_time() {
    let (code, took, stderr) = run_child("watchdog_child", "in-time", Duration::from_secs(10));
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert!(took >= ms(900), "{took:?}");
}

#[test]
fn regression_watchdog_killed_the_process_after_its_lifecycle_was_dropped_unrun() {
    let (code, _, stderr) = run_child("watchdog_child", "never-run", Duration::from_secs(10));
    assert_eq!(code, Some(0), "stderr: {stderr}");
}
