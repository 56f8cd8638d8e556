//! Run a service's components in order, keep them healthy, and take them
//! down without dropping a request — on any async runtime.
//!
//! # The model
//!
//! A [`Lifecycle`] owns [components](Component), [drainers](Drainer),
//! [health checks](HealthChecker) and stop hooks. Its [`run`](Lifecycle::run)
//! future drives them through these phases:
//!
//! 1. **Launching.** Components start one at a time, in registration order,
//!    unless [dependencies](ComponentOptions::depends_on) say otherwise:
//!    then each starts once the components it depends on are ready, and
//!    those whose dependencies are ready start at once. Each one's
//!    [`run`](Component::run) is polled as soon as its
//!    [`start`](Component::start) succeeded; what comes after it starts only
//!    once [`ready`](Component::ready) returned `Ok(true)` (asked up to the
//!    [`Readiness`] policy's attempts, with backoff and a per-attempt timeout).
//! 2. **Running.** Every component is ready: [`Handle::ready`] resolves.
//!    Shutdown begins when a stop is [requested](Handle::request_shutdown), when
//!    any `run` ends (`Ok`, `Err` or panic), or when a launch step fails. A
//!    component with a [restart policy](Restart) whose `run` fails is
//!    stopped, started and readied again instead, within its budget, while
//!    the rest keeps running.
//! 3. **Lame duck.** Readiness fails at once while every component keeps
//!    serving, for the [lame-duck period](LifecycleBuilder::lame_duck), so
//!    load balancers stop routing here before anything closes. A lifecycle
//!    that never became ready skips it: nothing routes to it.
//! 4. **Draining.** Components stop one at a time in *reverse* launch order
//!    (with dependencies: each once every component that depends on it has
//!    stopped, independent ones at once): the stop signal is set, [`stop`](Component::stop) is called, and the
//!    lifecycle waits for `run` to end. Past its budget, a component is
//!    [closed](Component::close) and its futures are dropped.
//! 5. **Flushing.** [Drainers](Drainer) run in order.
//! 6. **Stopping.** Stop hooks run in reverse registration order.
//!
//! The [guides](docs) say which work belongs in `stop`, a drainer or a stop
//! hook, and how to run the service under Kubernetes, signals and upgrades.
//!
//! Every step is bounded: the whole shutdown by the
//! [shutdown timeout](LifecycleBuilder::shutdown_timeout), each call by its
//! own budget. Errors are recorded and shutdown goes on; `run` returns the
//! first error, with every other one attached, each naming its component and
//! step. A [forced shutdown](Handle::force_shutdown) skips every graceful wait and
//! closes what is left at once, within the
//! [force budget](LifecycleBuilder::force_timeout). Why the shutdown began
//! (a signal, a component, a request, an upgrade) is logged and kept as a
//! [`ShutdownCause`].
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use lameduck::{BoxError, Component, Context, Lifecycle};
//!
//! struct Database;
//! impl Component for Database {
//!     async fn start(&self, _cx: &Context) -> Result<(), BoxError> {
//!         Ok(()) // connect
//!     }
//! }
//!
//! struct Server;
//! impl Component for Server {
//!     async fn run(&self, cx: &Context) -> Result<(), BoxError> {
//!         cx.stop_signal().await; // serve until our turn to stop
//!         Ok(())
//!     }
//! }
//!
//! let lifecycle = Lifecycle::builder()
//!     .shutdown_timeout(Duration::from_secs(5))
//!     .component("database", Database) // starts first, stops last
//!     .component("server", Server)
//!     .build()?;
//!
//! let handle = lifecycle.handle();
//! std::thread::spawn(move || {
//!     futures::executor::block_on(handle.ready());
//!     handle.request_shutdown(None); // e.g. on SIGTERM
//! });
//!
//! let report = futures::executor::block_on(lifecycle.run())?;
//! println!("{report}");
//! # Ok::<(), lameduck::Error>(())
//! ```
//!
//! # Health and probes
//!
//! [Health checks](HealthChecker) belong to Kubernetes [probes](Probe):
//! liveness, readiness (the default) and startup, with
//! [options](CheckOptions) for criticality, timeout, caching, background
//! refresh and flap damping. Built-in checks tie readiness to the
//! lifecycle: `launch` fails until every component is ready, `shutdown`
//! fails from the moment a stop is requested. [`Handle::probes`] answers
//! `/livez`, `/readyz`, `/startupz` and `/healthz` in the Kubernetes
//! apiserver format from any HTTP server, and the [admin server](admin)
//! serves them on loopback for services without one. See the
//! [Kubernetes guide](docs::kubernetes).
//!
//! # Signals and exit codes
//!
//! With the `signals` feature (on by default),
//! [`LifecycleBuilder::signals`] turns the first SIGINT or SIGTERM (Ctrl-C
//! on Windows) into a graceful shutdown — lame duck, drain, flush, stop — and
//! a second one into a forced shutdown; [`exit_code`] maps the outcome to the
//! process exit code (0 clean, 1 error, 130 forced). A signal-driven service:
//!
//! ```no_run
//! # #[cfg(feature = "signals")]
//! use std::time::Duration;
//! # #[cfg(feature = "signals")]
//! use lameduck::{Lifecycle, Signals};
//!
//! # #[cfg(feature = "signals")]
//! fn main() -> std::process::ExitCode {
//!     let lifecycle = Lifecycle::builder()
//!         .lame_duck(Duration::from_secs(3)) // readiness fails, still serving
//!         .signals(Signals::new())            // SIGINT, SIGTERM
//!         // .component("db", db).component("http", http)
//!         .build()
//!         .expect("valid configuration");
//!     lameduck::exit_code(&lifecycle.run_blocking())
//! }
//! # #[cfg(not(feature = "signals"))]
//! # fn main() {}
//! ```
//!
//! The [`signals`] module has the rules: replacing the set, a custom
//! shutdown path, and what becomes of each signal's default action.
//!
//! # Features
//!
//! * `admin` (default): [`admin::AdminServer`], the probes and a lifecycle
//!   snapshot over HTTP on loopback; adds `httparse` and `mio` (one event
//!   loop thread), no runtime.
//! * `http`: `Probes::respond_http` for servers built on the `http` crate.
//! * `tower`: the probes as a `tower::Service`
//!   (`Probes::service`, one call to mount in axum) and
//!   `tower::LameDuckLayer`, which counts requests in flight and sends
//!   `Connection: close` once shutdown begins (module `tower`).
//! * `signals` (default): shutdown on signals through a dedicated thread
//!   (signal-hook); no async runtime involved.
//! * `upgrade` (Unix): zero-downtime upgrades (module `upgrade`): hand the
//!   listening sockets to a new process of the same program on SIGHUP; the
//!   old one drains and exits through its lifecycle.
//! * `systemd` (Unix, implies `upgrade`): the notify protocol and socket
//!   activation (module `systemd`).
//! * `tracing`: the engine's events as `tracing` events with fields
//!   (`component`, `step`, `phase`, `elapsed_ms`, `error`, `cause`), sent to
//!   the thread's tracing subscriber when it has one, else to `log`; and
//!   every call into a part (`start`, `ready`, `run`, `stop`, `close`,
//!   drainers, hooks, checks) inside a span naming it, so events logged in
//!   them carry the component's name.
//!
//! Without `tracing`, the crate logs through `log` (target `lameduck`) with
//! the same fields as key-values. A `tracing-subscriber` installed with
//! `set_global_default` sees none of those records unless
//! `tracing_log::LogTracer` is installed too (`fmt().init()` does it) or
//! feature `tracing` is on.
//!
//! # Runtimes
//!
//! The crate depends on `futures` primitives only and spawns no task unless
//! given a [spawner](LifecycleBuilder::spawner): the same lifecycle runs
//! under tokio, smol, async-std or `futures::executor::block_on`. Timers come
//! from `futures-timer`.
//!
//! Without a spawner, every component's [`run`](Component::run) is polled
//! inside the one [`Lifecycle::run`] future, on one task: a `run` that blocks
//! its thread — a synchronous driver call, a CPU-heavy loop — stalls every
//! other component, an HTTP server's accept loop included. On a
//! multi-threaded runtime, give the lifecycle a spawner so that each `run`
//! gets a task of its own:
//!
//! | runtime | spawner |
//! |---|---|
//! | tokio (multi-thread) | `.spawner(\|t\| { tokio::spawn(t); })` |
//! | async-std | `.spawner(\|t\| { async_std::task::spawn(t); })` |
//! | smol | `.spawner(\|t\| smol::spawn(t).detach())`, with `SMOL_THREADS` ≥ 2 (its global executor runs one thread by default) |
//! | actix (`actix-rt`) | `.spawner(\|t\| { actix_rt::spawn(t); })`: a task per `run`, all on the system's one thread, so move blocking calls to `actix_web::rt::task::spawn_blocking` |
//! | `futures::executor` | none: use threads for blocking work |
//!
//! A spawner is no cure for blocking on a single-threaded runtime (tokio's
//! current-thread, one smol thread, actix's system thread): there, run
//! blocking work with the runtime's `spawn_blocking` / `unblock`. The
//! lifecycle's own steps (`start`, `ready`, `stop`) always run in the
//! lifecycle future.
//!
//! ```
//! # let rt = tokio::runtime::Runtime::new().unwrap();
//! # rt.block_on(async {
//! let lifecycle = lameduck::Lifecycle::builder()
//!     .spawner(|task| {
//!         tokio::spawn(task); // each component's `run` on its own task
//!     })
//!     // .component("worker", worker).component("http", http)
//!     .build()?;
//! # lifecycle.handle().request_shutdown(None);
//! lifecycle.run().await?;
//! # Ok::<(), lameduck::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Comparison
//!
//! `tokio-graceful-shutdown` runs subsystems on tokio with nested shutdown;
//! a stop order is possible by hand (a subsystem awaits another's
//! `finished()` future) but there are no readiness gates, lame duck or
//! health. `tokio-util`'s
//! `CancellationToken` and `TaskTracker` are primitives to build this from.
//! `async-shutdown` gives runtime-agnostic shutdown tokens and nothing more.
//! `lameduck` adds ordered launch with readiness, reverse-order drain with
//! per-step budgets, lame-duck mode, drainers, stop hooks, health
//! aggregation and a timeline report.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![doc(test(attr(deny(warnings))))]

#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub mod admin;
mod cause;
pub mod component;
mod context;
pub mod docs;
mod drain;
mod error;
mod exit;
// Dependency order of components: the builder orders the launch by it; the
// engine schedules by it next.
#[cfg_attr(not(test), allow(dead_code))]
mod graph;
mod handle;
mod health;
mod latch;
mod lifecycle;
mod logging;
mod machine;
mod names;
mod phase;
mod report;
mod restart;
#[cfg(feature = "signals")]
#[cfg_attr(docsrs, doc(cfg(feature = "signals")))]
pub mod signals;
#[cfg(all(unix, feature = "systemd"))]
#[cfg_attr(docsrs, doc(cfg(all(unix, feature = "systemd"))))]
pub mod systemd;
mod timer;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;
pub mod tracker;
#[cfg(all(unix, feature = "upgrade"))]
#[cfg_attr(docsrs, doc(cfg(all(unix, feature = "upgrade"))))]
pub mod upgrade;

pub use cause::{RunEnd, ShutdownCause};
pub use component::Component;
pub use context::Context;
pub use drain::{Drainer, FnDrainer, drainer_fn};
pub use error::{BoxError, Error, ErrorKind, Errors};
pub use exit::{FORCED_EXIT_CODE, exit_code};
pub use handle::{Handle, Ready};
pub use health::{
    CheckOptions, CheckResult, CheckStatus, DEFAULT_CHECK_TIMEOUT, FnCheck, Health, HealthChecker,
    HealthMonitor, Probe, ProbeReport, ProbeRequest, ProbeResponse, Probes, check_fn,
};
pub use latch::Latch;
pub use lifecycle::{Backoff, ComponentOptions, Lifecycle, LifecycleBuilder, Readiness, Run};
pub use phase::{Phase, Step};
pub use report::{ComponentRecord, ComponentState, KEPT_FAILURES, Report, RunFailure};
pub use restart::Restart;

/// The former name of [`Latch`], easy to confuse with
/// `Signals` (the OS signals that start a shutdown).
#[deprecated(since = "0.1.0", note = "renamed to `Latch`")]
pub type Signal = Latch;
pub use tracker::Tracker;

#[cfg(feature = "signals")]
pub use signals::{Listener, SignalKind, Signals};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
