//! Lifecycle benchmarks: lameduck against a hand-written floor and against
//! what users would pick instead, measured in one run, printed as a table of
//! ratios.
//!
//! ```text
//! cargo bench --bench lifecycle            # full run: N = 1,000 / 10,000 / 100,000
//! cargo bench --bench lifecycle -- --quick # small N, a few seconds (CI runs this)
//! cargo bench --bench lifecycle -- --scaling # only the per-item scaling, N = 1k / 10k / 100k
//! cargo bench --bench lifecycle -- --layers  # only the dependency graph's launch and shutdown
//! cargo bench --bench lifecycle -- --stop-latency # only the shutdown latency, 20 times over
//! ```
//!
//! For perf or callgrind, the bench binary (its path printed by `cargo bench
//! --bench lifecycle --no-run`) runs 20 launches and shutdowns of N
//! components (10,000 if N is left out) on `futures::executor` and nothing
//! else: `--profile N` of lameduck, `--profile-floor N` of the named floor,
//! `--profile-safe-floor N` of the safe floor. The peak RSS rows run the
//! same binary as a child: `--rss N` of lameduck, `--rss-floor N` of the
//! named floor, `--rss-safe-floor N` of the safe floor (10,000 if N is left
//! out), each printing bytes per component once built (pushed) and once
//! running; a floor's child also prints the size of one of its futures.
//!
//! Workloads:
//! * launch + shutdown of N no-op components (build, start, ready, run,
//!   stop), under `futures::executor`, smol, and tokio current-thread and
//!   multi-thread;
//! * the floor: a `FuturesUnordered` of N futures and one stop broadcast;
//! * the named floor: the same, but each future owns its `format!` name and
//!   awaits the same steps a component goes through (start, ready, run
//!   alongside until the stop broadcast, stop), without lameduck; compared
//!   in CPU time;
//! * the safe floor: the named floor's futures and steps, scheduled without
//!   `unsafe` anywhere in its scheduling. `FuturesUnordered` keeps each
//!   future inline in its task node and makes its wakers by hand, both with
//!   `unsafe`; an engine that keeps `unsafe` to OS calls must instead box
//!   each future (a `!Unpin` future is pinned in place only with `unsafe`)
//!   and give each one an `Arc` of its own to make its waker from
//!   (`std::task::Wake`). The safe floor does exactly that and nothing more
//!   (`SafeSet`): each waker target holds its future's index and a
//!   "queued" flag, and a wake that finds the flag clear sets it and pushes
//!   the index onto one shared queue (a `Mutex<Vec<usize>>`), waking the
//!   polling task only when it finds the queue empty; the polling task
//!   takes the whole queue at once (swapping it with a spare `Vec`) and
//!   polls only those futures, clearing each one's flag before its poll.
//!   No wake is lost: a wake during or after a poll finds the flag clear
//!   and queues the future again; the polling task registers its waker
//!   before it takes the queue, and a queue found non-empty has not been
//!   taken since the push that filled it, which woke the task. Each waker
//!   is made once, with its future, not at every poll. It is the cheapest
//!   such scheduling this bench's author could write,
//!   not a proven minimum. Compared in CPU time, against the named floor
//!   and lameduck; it checks at every start that it loses no wake;
//! * allocations per component (a counting global allocator in this
//!   binary), lameduck against the named floor and the safe floor;
//! * tokio-graceful-shutdown (N subsystems) and tokio-util
//!   (`CancellationToken` + `TaskTracker`, N tasks);
//! * time from `request_shutdown` to `run` returning, 1,000 idle components;
//! * aggregated health of 100 checks: a probe, uncached and cached, and
//!   `Handle::is_healthy`;
//! * scaling: registering N health checks, prepending N drainers and looking
//!   up N components in a report, per item at each N, with the ratio of the
//!   largest N to the smallest (linear code stays near 1.0), beside a
//!   floor for the look-ups: a std `HashMap` built from the same report;
//! * peak RSS per component, in a child process, of lameduck (built, then
//!   launched and running) beside the named floor and the safe floor (their
//!   futures pushed, then each polled once: every one pending in its run
//!   step, awaiting the stop broadcast, as a running component waits for
//!   its stop), at the same N;
//! * CPU used by 1,000 idle components over a second;
//! * a dependency graph: 100 components in 10 layers of 10 (each depending
//!   on every component of the layer below) whose readiness takes 50 ms and
//!   stop 20 ms: launch and shutdown time against one at a time (`--layers`
//!   alone).

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use futures::future::{FutureExt, Shared, join};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::task::AtomicWaker;
use lameduck::{
    BoxError, CheckOptions, Component, ComponentOptions, Health, HealthChecker, Lifecycle, Probe,
};

/// The system allocator, counting allocations (and reallocations, which
/// may move), so that the bench can report allocations per component.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call forwards to `System` with the caller's arguments
// unchanged; counting adds no requirement.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Noop;
impl Component for Noop {}

struct Fine;
impl HealthChecker for Fine {
    async fn check(&self) -> Health {
        Health::Healthy
    }
}

fn lifecycle(n: usize) -> Lifecycle {
    let mut b = Lifecycle::builder();
    for i in 0..n {
        b = b.component(format!("c{i}"), Noop);
    }
    b.build().expect("valid lifecycle")
}

/// Launch + shutdown of `n` no-op components on the current task.
async fn lameduck_cycle(n: usize) {
    let lc = lifecycle(n);
    let h = lc.handle();
    let (out, ()) = join(lc.run(), async move {
        h.ready().await;
        h.request_shutdown(None);
    })
    .await;
    black_box(out.expect("clean run"));
}

/// The floor: N futures waiting on one broadcast, polled together.
async fn baseline_cycle(n: usize) {
    let (tx, rx) = oneshot::channel::<()>();
    let stop = rx.shared();
    let mut set = FuturesUnordered::new();
    for i in 0..n {
        let stop = stop.clone();
        set.push(async move {
            let _ = stop.await;
            i
        });
    }
    // Poll every future once (they all "start"), then broadcast the stop.
    futures::future::poll_fn(|cx| {
        let _ = set.poll_next_unpin(cx);
        std::task::Poll::Ready(())
    })
    .await;
    drop(tx);
    while let Some(i) = set.next().await {
        black_box(i);
    }
}

/// A step of the named floor: what a no-op `start`, `ready` or `stop`
/// does, opaque to the optimiser.
async fn floor_step(name: &str) -> Result<(), std::io::Error> {
    black_box(name);
    Ok(())
}

/// One component of the named and the safe floor: a future that owns its
/// `format!` name and goes through start, ready, run (until `stop`) and
/// stop. One function, so that both floors and the RSS child measure the
/// same future.
fn floor_component(
    i: usize,
    stop: Shared<oneshot::Receiver<()>>,
) -> impl Future<Output = usize> + Send + 'static {
    let name = format!("c{i}");
    async move {
        floor_step(&name).await.expect("start");
        floor_step(&name).await.expect("ready");
        let _ = stop.await;
        floor_step(&name).await.expect("stop");
        name.len()
    }
}

/// The named floor's set: [`floor_component`] `n` times, in a
/// `FuturesUnordered`.
fn named_floor_set(
    n: usize,
    stop: &Shared<oneshot::Receiver<()>>,
) -> FuturesUnordered<impl Future<Output = usize> + Send + 'static> {
    let set = FuturesUnordered::new();
    for i in 0..n {
        set.push(floor_component(i, stop.clone()));
    }
    set
}

/// The named floor: N futures, each owning its `format!` name, each going
/// through start, ready, run (until one stop broadcast) and stop, polled
/// together; no lameduck. What a hand-written lifecycle with names costs.
async fn named_floor_cycle(n: usize) {
    let (tx, rx) = oneshot::channel::<()>();
    let mut set = named_floor_set(n, &rx.shared());
    futures::future::poll_fn(|cx| {
        let _ = set.poll_next_unpin(cx);
        std::task::Poll::Ready(())
    })
    .await;
    drop(tx);
    while let Some(i) = set.next().await {
        black_box(i);
    }
}

/// A future of the safe floor: boxed on its own, as an engine that keeps
/// `unsafe` out must box each component's future (a `!Unpin` future can be
/// pinned in place only with `unsafe`).
type SafeFuture = Pin<Box<dyn Future<Output = usize> + Send>>;

/// What the safe floor's wakers share: the indices of the futures woken
/// since the set last looked, and the waker of the task polling the set.
struct SafeQueue {
    ready: Mutex<Vec<usize>>,
    outer: AtomicWaker,
}

/// The waker target of one future of the safe floor: an `Arc` of its own,
/// as safe Rust makes a waker only from one (`std::task::Wake`).
struct SafeWake {
    index: usize,
    queued: AtomicBool,
    queue: Arc<SafeQueue>,
}

impl Wake for SafeWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Queued already: the set will poll it, a second entry adds nothing.
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut ready = self.queue.ready.lock().expect("queue lock");
        let first = ready.is_empty();
        ready.push(self.index);
        drop(ready);
        // Only the push that finds the queue empty wakes the set: a
        // non-empty queue has not been taken since the push that filled
        // it, which woke the set after the set's last registration.
        if first {
            self.queue.outer.wake();
        }
    }
}

/// A future of the safe floor and its waker, made once.
struct SafeTask {
    future: SafeFuture,
    wake: Arc<SafeWake>,
    waker: Waker,
}

/// The safe floor's scheduler: the cheapest scheduling without `unsafe`
/// this bench's author could write. Each future boxed, each with its own
/// `Arc` waker target that queues its index once; the set polls only the
/// futures queued since it last looked.
struct SafeSet {
    tasks: Vec<Option<SafeTask>>,
    queue: Arc<SafeQueue>,
    /// The indices taken from the queue, kept to swap with it next time.
    batch: Vec<usize>,
    left: usize,
    done: usize,
}

impl SafeSet {
    fn with_capacity(n: usize) -> Self {
        let queue = Arc::new(SafeQueue {
            ready: Mutex::new(Vec::with_capacity(n)),
            outer: AtomicWaker::new(),
        });
        SafeSet {
            tasks: Vec::with_capacity(n),
            queue,
            batch: Vec::with_capacity(n),
            left: 0,
            done: 0,
        }
    }

    /// Adds a future, queued for its first poll.
    fn push(&mut self, future: impl Future<Output = usize> + Send + 'static) {
        let index = self.tasks.len();
        let wake = Arc::new(SafeWake {
            index,
            queued: AtomicBool::new(true),
            queue: Arc::clone(&self.queue),
        });
        let waker = Waker::from(Arc::clone(&wake));
        self.tasks.push(Some(SafeTask {
            future: Box::pin(future),
            wake,
            waker,
        }));
        self.queue.ready.lock().expect("queue lock").push(index);
        self.left += 1;
    }

    /// Polls every future queued since the last call, once each; ready
    /// with the number of futures that completed once none is left.
    fn poll_queued(&mut self, cx: &mut Context<'_>) -> Poll<usize> {
        // Registered before the queue is taken: a wake after the take
        // reaches this task.
        self.queue.outer.register(cx.waker());
        std::mem::swap(
            &mut *self.queue.ready.lock().expect("queue lock"),
            &mut self.batch,
        );
        for i in self.batch.drain(..) {
            // A wake after completion (a waker kept elsewhere) is stale.
            let Some(task) = &mut self.tasks[i] else {
                continue;
            };
            // Cleared before the poll: a wake during or after it queues
            // the future again.
            task.wake.queued.store(false, Ordering::Release);
            let poll = task
                .future
                .as_mut()
                .poll(&mut Context::from_waker(&task.waker));
            if let Poll::Ready(out) = poll {
                black_box(out);
                self.tasks[i] = None;
                self.left -= 1;
                self.done += 1;
            }
        }
        if self.left == 0 {
            Poll::Ready(self.done)
        } else {
            Poll::Pending
        }
    }
}

/// The safe floor's set: the named floor's futures ([`floor_component`]),
/// each owning its `format!` name and going through start, ready, run
/// (until `stop`) and stop.
fn safe_floor_set(n: usize, stop: &Shared<oneshot::Receiver<()>>) -> SafeSet {
    let mut set = SafeSet::with_capacity(n);
    for i in 0..n {
        set.push(floor_component(i, stop.clone()));
    }
    set
}

/// The safe floor: the named floor's futures and steps, scheduled by
/// [`SafeSet`] instead of `FuturesUnordered`; asserts that every future
/// completed.
async fn safe_floor_cycle(n: usize) {
    let (tx, rx) = oneshot::channel::<()>();
    let mut set = safe_floor_set(n, &rx.shared());
    futures::future::poll_fn(|cx| {
        let _ = set.poll_queued(cx);
        Poll::Ready(())
    })
    .await;
    drop(tx);
    let done = futures::future::poll_fn(|cx| set.poll_queued(cx)).await;
    assert_eq!(done, n, "every future of the safe floor completes");
}

/// The safe floor loses no wake: polled by hand with a waker that counts
/// its wakes, its `n` futures all wait after the first poll, the stop
/// broadcast wakes the set once, and the next poll completes every
/// future. Panics otherwise.
fn check_safe_floor(n: usize) {
    struct Count(AtomicU64);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let wakes = Arc::new(Count(AtomicU64::new(0)));
    let waker = Waker::from(Arc::clone(&wakes));
    let mut cx = Context::from_waker(&waker);
    let (tx, rx) = oneshot::channel::<()>();
    let mut set = safe_floor_set(n, &rx.shared());
    assert!(
        set.poll_queued(&mut cx).is_pending(),
        "all wait for the stop"
    );
    assert_eq!(set.left, n, "none completed before the stop");
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0, "nothing woke yet");
    drop(tx);
    assert_eq!(
        wakes.0.load(Ordering::SeqCst),
        1,
        "the stop wakes the set once"
    );
    assert_eq!(
        set.poll_queued(&mut cx),
        Poll::Ready(n),
        "every future completes"
    );
}

/// Allocations per component of `cycle(n)`, on the current thread.
fn allocations_per<F: Future<Output = ()>>(n: usize, cycle: impl FnOnce(usize) -> F) -> f64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    futures::executor::block_on(cycle(n));
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / n as f64
}

async fn tgs_subsystem(
    h: &mut tokio_graceful_shutdown::SubsystemHandle,
) -> Result<(), std::io::Error> {
    h.on_shutdown_requested().await;
    Ok(())
}

async fn tgs_cycle(n: usize) {
    use tokio_graceful_shutdown::{SubsystemBuilder, SubsystemHandle, Toplevel};
    Toplevel::new(async move |s: &mut SubsystemHandle| {
        for i in 0..n {
            s.start(SubsystemBuilder::new(format!("c{i}"), tgs_subsystem));
        }
        s.request_shutdown();
    })
    .handle_shutdown_requests(Duration::from_secs(30))
    .await
    .expect("clean shutdown");
}

async fn tokio_util_cycle(n: usize) {
    let token = tokio_util::sync::CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    for _ in 0..n {
        let token = token.clone();
        tracker.spawn(async move { token.cancelled().await });
    }
    tracker.close();
    token.cancel();
    tracker.wait().await;
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Rt {
    Futures,
    Smol,
    TokioCt,
    TokioMt,
}

impl Rt {
    fn name(self) -> &'static str {
        match self {
            Rt::Futures => "futures",
            Rt::Smol => "smol",
            Rt::TokioCt => "tokio-ct",
            Rt::TokioMt => "tokio-mt",
        }
    }

    fn block_on<F>(self, f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Rt::Futures => futures::executor::block_on(f),
            Rt::Smol => smol::block_on(f),
            // One runtime per kind, built once: its construction is not
            // part of what is measured.
            Rt::TokioCt => {
                static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
                RT.get_or_init(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime")
                })
                .block_on(f)
            }
            Rt::TokioMt => {
                static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
                let rt = RT.get_or_init(|| {
                    tokio::runtime::Builder::new_multi_thread()
                        .enable_all()
                        .build()
                        .expect("runtime")
                });
                let task = rt.spawn(f);
                rt.block_on(task).expect("task")
            }
        }
    }
}

/// Median wall time of `f` over repeated runs (at least 3, at least
/// `budget` in total).
fn measure(budget: Duration, mut f: impl FnMut()) -> Duration {
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 3 || (start.elapsed() < budget && times.len() < 50) {
        let t = Instant::now();
        f();
        times.push(t.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

/// CPU time used so far by every thread of this process, exact to the
/// nanosecond (unlike /proc's schedstat, which a running thread updates only
/// at scheduler ticks).
fn process_cpu_now() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    return Some(cpu_clock(rustix::time::ClockId::ProcessCPUTime));
    #[cfg(not(target_os = "linux"))]
    None
}

/// One of the OS's CPU-time clocks.
#[cfg(target_os = "linux")]
fn cpu_clock(id: rustix::time::ClockId) -> Duration {
    let t = rustix::time::clock_gettime(id);
    Duration::new(
        u64::try_from(t.tv_sec).expect("a CPU time is never negative"),
        u32::try_from(t.tv_nsec).expect("nanoseconds below a second"),
    )
}

/// Median CPU time (every thread of the process) of `f` over repeated runs
/// (at least 3, at least `budget` of wall time in total). Falls back to wall
/// time where the process clock is missing.
fn measure_cpu(budget: Duration, mut f: impl FnMut()) -> Duration {
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 3 || (start.elapsed() < budget && times.len() < 50) {
        let (c, t) = (process_cpu_now(), Instant::now());
        f();
        let wall = t.elapsed();
        times.push(match (c, process_cpu_now()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => wall,
        });
    }
    times.sort();
    times[times.len() / 2]
}

fn per(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

fn cycle_row(rt: Rt, n: usize, budget: Duration) -> (f64, f64) {
    let ours = measure(budget, || rt.block_on(lameduck_cycle(n)));
    let floor = measure(budget, || rt.block_on(baseline_cycle(n)));
    (per(ours, n), per(floor, n))
}

/// CPU time per component: lameduck, the named floor and the safe floor,
/// same run.
fn cpu_row(rt: Rt, n: usize, budget: Duration) -> (f64, f64, f64) {
    let ours = measure_cpu(budget, || rt.block_on(lameduck_cycle(n)));
    let floor = measure_cpu(budget, || rt.block_on(named_floor_cycle(n)));
    let safe = measure_cpu(budget, || rt.block_on(safe_floor_cycle(n)));
    (per(ours, n), per(floor, n), per(safe, n))
}

fn stop_latency(rt: Rt, n: usize, budget: Duration) -> Duration {
    let mut samples = Vec::new();
    measure(budget, || {
        let took = rt.block_on(async move {
            let lc = lifecycle(n);
            let h = lc.handle();
            // `join` completes as soon as `run` returns; the stop was
            // requested by then.
            let (out, t0) = join(lc.run(), async move {
                h.ready().await;
                let t0 = Instant::now();
                h.request_shutdown(None);
                t0
            })
            .await;
            // Read before the report `run` returned is dropped: freeing
            // its rows is the caller's, after `run` returned.
            let took = t0.elapsed();
            out.expect("clean run");
            took
        });
        samples.push(took);
    });
    samples.sort();
    samples[samples.len() / 2]
}

fn idle_cpu(n: usize, window: Duration) -> Option<f64> {
    let lc = lifecycle(n);
    let h = lc.handle();
    let runner = std::thread::spawn(move || lc.run_blocking());
    futures::executor::block_on(h.ready());
    let before = process_cpu_now()?;
    std::thread::sleep(window);
    let used = process_cpu_now()? - before;
    h.request_shutdown(None);
    runner.join().expect("runner").expect("clean run");
    Some(used.as_secs_f64() / window.as_secs_f64() * 100.0)
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Child mode: build and launch `n` components, print the peak RSS growth
/// per component in bytes, registered and running.
fn rss_child(n: usize) {
    let base = peak_rss_kib().unwrap_or(0);
    let lc = lifecycle(n);
    let registered = peak_rss_kib().unwrap_or(0);
    let h = lc.handle();
    let runner = std::thread::spawn(move || lc.run_blocking());
    futures::executor::block_on(h.ready());
    let running = peak_rss_kib().unwrap_or(0);
    h.request_shutdown(None);
    runner.join().expect("runner").expect("clean run");
    let per = |kib: u64| (kib.saturating_sub(base) * 1024) as f64 / n as f64;
    println!("{:.0} {:.0}", per(registered), per(running));
}

/// Child mode, as [`rss_child`] for a floor (`safe`: the safe floor, else
/// the named floor): push `n` of its futures, then poll each once, so that
/// every one is running (pending in its run step, awaiting the stop
/// broadcast); print the peak RSS growth per component in bytes, pushed
/// and running, and the size of one future. Then stop them all and check
/// that each completes.
fn rss_floor_child(n: usize, safe: bool) {
    let (tx, rx) = oneshot::channel::<()>();
    let stop = rx.shared();
    let size = std::mem::size_of_val(&floor_component(0, stop.clone()));
    // Polled with a waker that does nothing: the sets wake their futures
    // through wakers of their own, and this poll is not repeated.
    let mut cx = Context::from_waker(Waker::noop());
    let base = peak_rss_kib().unwrap_or(0);
    let per = |kib: u64| (kib.saturating_sub(base) * 1024) as f64 / n as f64;
    let (pushed, running) = if safe {
        let mut set = safe_floor_set(n, &stop);
        let pushed = peak_rss_kib().unwrap_or(0);
        assert!(
            set.poll_queued(&mut cx).is_pending(),
            "all wait for the stop"
        );
        assert_eq!(set.left, n, "none completed before the stop");
        let running = peak_rss_kib().unwrap_or(0);
        drop(tx);
        let done = futures::executor::block_on(futures::future::poll_fn(|cx| set.poll_queued(cx)));
        assert_eq!(done, n, "every future of the safe floor completes");
        (pushed, running)
    } else {
        let mut set = named_floor_set(n, &stop);
        let pushed = peak_rss_kib().unwrap_or(0);
        // One poll of a `FuturesUnordered` polls each future queued once,
        // up to its length, unless two of them wake themselves; these do not.
        assert!(
            set.poll_next_unpin(&mut cx).is_pending(),
            "all wait for the stop"
        );
        assert_eq!(set.len(), n, "none completed before the stop");
        let running = peak_rss_kib().unwrap_or(0);
        drop(tx);
        let done = futures::executor::block_on(set.count());
        assert_eq!(done, n, "every future of the named floor completes");
        (pushed, running)
    };
    println!("{:.0} {:.0} {size}", per(pushed), per(running));
}

/// Runs this binary in `mode` (`--rss`, `--rss-floor`, `--rss-safe-floor`)
/// for `n` components, in a child process so that its peak RSS is its own;
/// the numbers it prints.
fn rss_per_component(mode: &str, n: usize) -> Option<Vec<f64>> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe)
        .args([mode, &n.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    text.split_whitespace().map(|v| v.parse().ok()).collect()
}

/// Registering N health checks, prepending N drainers, and looking up every
/// component of an N-component report by name: ns per item at each N, and
/// the ratio of the largest N's cost per item to the smallest's (1.0: linear).
fn per_item_scaling(sizes: &[usize], budget: Duration) {
    // Each workload times its own part: setup outside the timed section.
    type Workload = (&'static str, fn(usize) -> Box<dyn FnMut() -> Duration>);
    let workloads: [Workload; 4] = [
        ("register N health checks", |n| {
            Box::new(move || {
                let t = thread_time();
                let mut b = Lifecycle::builder();
                for i in 0..n {
                    b = b.health_check(format!("check{i}"), Fine);
                }
                let lc = b.build().expect("valid lifecycle");
                let took = thread_time() - t;
                drop(lc);
                took
            })
        }),
        ("prepend N drainers", |n| {
            Box::new(move || {
                let t = thread_time();
                let mut b = Lifecycle::builder();
                for i in 0..n {
                    b = b.prepend_drainer(
                        format!("drainer{i}"),
                        lameduck::drainer_fn(|_cx| async { Ok::<_, lameduck::BoxError>(()) }),
                    );
                }
                let lc = b.build().expect("valid lifecycle");
                let took = thread_time() - t;
                drop(lc);
                took
            })
        }),
        // The floor: what a caller would write without `component`, a std
        // map from each name to its record, built from the same report.
        ("floor: std HashMap, N look-ups", |n| {
            let lc = lifecycle(n);
            let names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
            Box::new(move || {
                let report = lc.handle().report();
                let t = thread_time();
                let map: std::collections::HashMap<&str, &lameduck::ComponentRecord> =
                    report.components().iter().map(|c| (&*c.name, c)).collect();
                for name in &names {
                    black_box(map.get(name.as_str()).expect("registered"));
                }
                thread_time() - t
            })
        }),
        ("Report::component, N look-ups", |n| {
            let lc = lifecycle(n);
            let names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
            Box::new(move || {
                // A fresh report each time: its first look-up builds the index.
                let report = lc.handle().report();
                let t = thread_time();
                for name in &names {
                    black_box(report.component(name).expect("registered"));
                }
                thread_time() - t
            })
        }),
    ];
    let (first, last) = (sizes[0], sizes[sizes.len() - 1]);
    println!(
        "scaling, ns per item of thread CPU time (fastest run), and the per-item ratio {last}/{first} (1.00: linear):"
    );
    print!("  {:<30}", "");
    for n in sizes {
        print!(" {:>9}", format!("N={n}"));
    }
    println!("  {:>7}", "ratio");
    for (name, make) in workloads {
        let per_item: Vec<f64> = sizes
            .iter()
            .map(|&n| {
                let mut f = make(n);
                per(fastest_of(budget, &mut f), n)
            })
            .collect();
        print!("  {name:<30}");
        for p in &per_item {
            print!(" {p:>9.0}");
        }
        println!("  {:>7.2}", per_item[per_item.len() - 1] / per_item[0]);
    }
}

/// The CPU time this thread has used (where the OS gives it; elsewhere,
/// wall time). On a shared machine a run at N = 100,000 (tens of
/// milliseconds) is nearly always preempted at least once and a run at
/// N = 1,000 rarely, so wall time would charge the largest N for other
/// processes' work; CPU time still counts every cache miss and page fault
/// of this thread's own.
fn thread_time() -> Duration {
    #[cfg(target_os = "linux")]
    {
        cpu_clock(rustix::time::ClockId::ThreadCPUTime)
    }
    #[cfg(not(target_os = "linux"))]
    {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed()
    }
}

/// The fastest of the durations `f` reports (at least 5 runs, at least
/// `budget` in total): on a shared machine the minimum is the run least
/// disturbed by other work, which a ratio between sizes needs.
fn fastest_of(budget: Duration, f: &mut dyn FnMut() -> Duration) -> Duration {
    let mut best = Duration::MAX;
    let mut runs = 0;
    let start = Instant::now();
    while runs < 5 || (start.elapsed() < budget && runs < 50) {
        best = best.min(f());
        runs += 1;
    }
    best
}

/// A component whose readiness check and stop each take a fixed time.
struct Slow {
    ready: Duration,
    stop: Duration,
}

impl Component for Slow {
    async fn ready(&self, _: &lameduck::Context) -> Result<bool, BoxError> {
        futures_timer::Delay::new(self.ready).await;
        Ok(true)
    }

    async fn stop(&self, _: &lameduck::Context) -> Result<(), BoxError> {
        futures_timer::Delay::new(self.stop).await;
        Ok(())
    }
}

/// `layers` layers of `width` [`Slow`] components, each depending on every
/// component of the layer below: how long the launch took (to
/// `Handle::ready`) and the shutdown (from the request to `run` returning).
fn layered_graph(
    layers: usize,
    width: usize,
    ready: Duration,
    stop: Duration,
) -> (Duration, Duration) {
    let mut b = Lifecycle::builder();
    let mut below: Vec<String> = Vec::new();
    for layer in 0..layers {
        let names: Vec<String> = (0..width).map(|i| format!("l{layer}c{i}")).collect();
        for name in &names {
            let deps = ComponentOptions::new().depends_on(below.iter().map(String::as_str));
            b = b.component_with(name.as_str(), Slow { ready, stop }, deps);
        }
        below = names;
    }
    let lc = b.build().expect("valid lifecycle");
    let h = lc.handle();
    let t0 = Instant::now();
    let (out, (launch, asked)) = futures::executor::block_on(join(lc.run(), async move {
        h.ready().await;
        let launch = t0.elapsed();
        h.request_shutdown(None);
        (launch, Instant::now())
    }));
    black_box(out.expect("clean run"));
    (launch, asked.elapsed())
}

fn layers_row() {
    let (layers, width, ready, stop) =
        (10, 10, Duration::from_millis(50), Duration::from_millis(20));
    let (launch, shutdown) = layered_graph(layers, width, ready, stop);
    let n = (layers * width) as u32;
    println!(
        "dependency graph, {layers} layers of {width}, readiness {ready:?} and stop {stop:?} each (futures executor):"
    );
    println!(
        "  launch   {:>7.1} ms  (one layer at a time: {:.0} ms; one component at a time: {:.0} ms)",
        launch.as_secs_f64() * 1e3,
        (ready * layers as u32).as_secs_f64() * 1e3,
        (ready * n).as_secs_f64() * 1e3
    );
    println!(
        "  shutdown {:>7.1} ms  (one layer at a time: {:.0} ms; one component at a time: {:.0} ms)",
        shutdown.as_secs_f64() * 1e3,
        (stop * layers as u32).as_secs_f64() * 1e3,
        (stop * n).as_secs_f64() * 1e3
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // The RSS children: `--rss N` of lameduck, `--rss-floor N` of the named
    // floor, `--rss-safe-floor N` of the safe floor (10,000 unless given).
    type RssChild = fn(usize);
    let children: [(&str, RssChild); 3] = [
        ("--rss", rss_child),
        ("--rss-floor", |n| rss_floor_child(n, false)),
        ("--rss-safe-floor", |n| rss_floor_child(n, true)),
    ];
    for (flag, child) in children {
        if let Some(i) = args.iter().position(|a| a == flag) {
            let n = args
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(10_000);
            child(n);
            return;
        }
    }
    // Profiling modes, for perf or callgrind: 20 cycles of N (10,000 unless
    // given) on `futures::executor`, of lameduck (`--profile N`), the named
    // floor (`--profile-floor N`) or the safe floor (`--profile-safe-floor N`).
    type Cycle = fn(usize) -> Pin<Box<dyn Future<Output = ()>>>;
    let profiles: [(&str, Cycle); 3] = [
        ("--profile", |n| Box::pin(lameduck_cycle(n))),
        ("--profile-floor", |n| Box::pin(named_floor_cycle(n))),
        ("--profile-safe-floor", |n| Box::pin(safe_floor_cycle(n))),
    ];
    for (flag, cycle) in profiles {
        if let Some(i) = args.iter().position(|a| a == flag) {
            let n = args
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(10_000);
            for _ in 0..20 {
                futures::executor::block_on(cycle(n));
            }
            return;
        }
    }
    // The shutdown latency row alone, measured 20 times over (for
    // profilers, and to see its spread): `<bench binary> --stop-latency`.
    if args.iter().any(|a| a == "--stop-latency") {
        let mut medians: Vec<Duration> = (0..20)
            .map(|_| stop_latency(Rt::Futures, 1_000, Duration::from_millis(200)))
            .collect();
        medians.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "request_shutdown -> run() returns, 1,000 idle components (futures; median of 20 medians, range): {:.3} ms ({:.3}-{:.3})",
            ms(medians[10]),
            ms(medians[0]),
            ms(medians[19])
        );
        return;
    }
    if args.iter().any(|a| a == "--layers") {
        layers_row();
        return;
    }
    // Scaling only, at full sizes: `cargo bench --bench lifecycle -- --scaling`.
    if args.iter().any(|a| a == "--scaling") {
        per_item_scaling(&[1_000, 10_000, 100_000], Duration::from_millis(1500));
        return;
    }
    // `cargo bench` passes `--bench`; anything else (`cargo test --benches`,
    // `--quick`) is the quick mode.
    let quick = !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--quick");
    let sizes: &[usize] = if quick {
        &[100, 1_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    let budget = if quick {
        Duration::from_millis(50)
    } else {
        Duration::from_millis(1500)
    };
    let runtimes = [Rt::Futures, Rt::Smol, Rt::TokioCt, Rt::TokioMt];
    check_safe_floor(1_000);

    println!(
        "lameduck benchmarks ({} mode, {} build)",
        if quick { "quick" } else { "full" },
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!();
    println!("launch + shutdown of N no-op components, ns per component (median):");
    println!(
        "{:<9} {:>8} {:>10} {:>10} {:>8} {:>10} {:>8} {:>10} {:>8}",
        "runtime", "N", "lameduck", "floor", "x floor", "tgs", "x tgs", "tok-util", "x util"
    );
    let mut first_cost: Vec<(Rt, f64)> = Vec::new();
    let mut scaling: Vec<(Rt, f64)> = Vec::new();
    for &rt in &runtimes {
        for &n in sizes {
            let (ours, floor) = cycle_row(rt, n, budget);
            let (tgs, util) = if matches!(rt, Rt::TokioCt | Rt::TokioMt) {
                (
                    Some(per(measure(budget, || rt.block_on(tgs_cycle(n))), n)),
                    Some(per(measure(budget, || rt.block_on(tokio_util_cycle(n))), n)),
                )
            } else {
                (None, None)
            };
            let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
            let ratio = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.2}", ours / v));
            println!(
                "{:<9} {:>8} {:>10.0} {:>10.0} {:>8.2} {:>10} {:>8} {:>10} {:>8}",
                rt.name(),
                n,
                ours,
                floor,
                ours / floor,
                opt(tgs),
                ratio(tgs),
                opt(util),
                ratio(util),
            );
            if n == sizes[0] {
                first_cost.push((rt, ours));
            }
            if n == *sizes.last().expect("sizes") {
                let first = first_cost
                    .iter()
                    .find(|(r, _)| *r == rt)
                    .map_or(ours, |c| c.1);
                scaling.push((rt, ours / first));
            }
        }
    }
    println!();
    println!(
        "CPU time per component (median, every thread), lameduck against the named floor (target <= 2.0)"
    );
    println!("and against the safe floor (the named floor scheduled without `unsafe`):");
    println!(
        "{:<9} {:>8} {:>10} {:>12} {:>8} {:>11} {:>13} {:>8}",
        "runtime",
        "N",
        "lameduck",
        "named floor",
        "x named",
        "safe floor",
        "safe x named",
        "x safe"
    );
    let mut cpu_scaling: Vec<f64> = Vec::new();
    for &rt in &runtimes {
        let mut first = None;
        for &n in sizes {
            let (ours, floor, safe) = cpu_row(rt, n, budget);
            let first = *first.get_or_insert(ours);
            if n == *sizes.last().expect("sizes") {
                cpu_scaling.push(ours / first);
            }
            println!(
                "{:<9} {:>8} {:>10.0} {:>12.0} {:>8.2} {:>11.0} {:>13.2} {:>8.2}",
                rt.name(),
                n,
                ours,
                floor,
                ours / floor,
                safe,
                safe / floor,
                ours / safe
            );
        }
    }

    println!();
    let n = if quick { 1_000 } else { 10_000 };
    // Warm up first: one-time allocations (thread-locals, the timer thread)
    // are not per component.
    allocations_per(n, lameduck_cycle);
    allocations_per(n, named_floor_cycle);
    allocations_per(n, safe_floor_cycle);
    let ours = allocations_per(n, lameduck_cycle);
    let floor = allocations_per(n, named_floor_cycle);
    let safe = allocations_per(n, safe_floor_cycle);
    println!(
        "allocations per component (N = {n}, futures executor; target <= 2): lameduck {ours:.2}, named floor {floor:.2}, safe floor {safe:.2}"
    );

    println!();
    println!(
        "cost per component at N = {} relative to N = {} (target <= 1.1):",
        sizes.last().expect("sizes"),
        sizes[0]
    );
    println!("  {:<9} {:>6} {:>6}", "", "wall", "CPU");
    for ((rt, s), cpu) in scaling.iter().zip(&cpu_scaling) {
        println!("  {:<9} {s:>6.2} {cpu:>6.2}", rt.name());
    }

    println!();
    println!("request_shutdown -> run() returns, 1,000 idle components (median):");
    for &rt in &runtimes {
        let d = stop_latency(rt, 1_000, budget);
        println!("  {:<9} {:.3} ms", rt.name(), d.as_secs_f64() * 1e3);
    }

    println!();
    let checks = 100;
    let probe_latency = |options: CheckOptions| {
        let mut b = Lifecycle::builder();
        for i in 0..checks {
            b = b.health_check_with(format!("check{i}"), Fine, options.clone());
        }
        let lc = b.build().expect("valid lifecycle");
        let probes = lc.handle().probes();
        measure(budget, || {
            let report = futures::executor::block_on(probes.check(Probe::Liveness));
            black_box(report);
        })
    };
    let uncached = probe_latency(CheckOptions::new().probes([Probe::Liveness]));
    let cached = probe_latency(
        CheckOptions::new()
            .probes([Probe::Liveness])
            .cache(Duration::from_secs(60)),
    );
    let mut b = Lifecycle::builder();
    for i in 0..checks {
        b = b.health_check(format!("check{i}"), Fine);
    }
    // Kept alive: a dropped lifecycle has stopped, and reports unhealthy.
    let lc = b.build().expect("valid lifecycle");
    let h = lc.handle();
    let healthy = measure(budget, || {
        assert!(futures::executor::block_on(h.is_healthy()));
    });
    println!("aggregated health, {checks} checks (median per query):");
    println!("  probe, uncached   {:.1} us", uncached.as_secs_f64() * 1e6);
    println!("  probe, cached     {:.1} us", cached.as_secs_f64() * 1e6);
    println!("  Handle::is_healthy {:.1} us", healthy.as_secs_f64() * 1e6);

    println!();
    per_item_scaling(sizes, budget);

    println!();
    let n = if quick { 10_000 } else { 100_000 };
    match rss_per_component("--rss", n).as_deref() {
        Some(&[reg, run]) => println!(
            "peak RSS per component (N = {n}; target <= 600 B running): lameduck {reg:.0} B registered, {run:.0} B launched and running"
        ),
        _ => println!("peak RSS per component: not measurable here (no /proc)"),
    }
    for (name, mode) in [
        ("named floor", "--rss-floor"),
        ("safe floor", "--rss-safe-floor"),
    ] {
        if let Some(&[pushed, run, size]) = rss_per_component(mode, n).as_deref() {
            println!(
                "  {name:<11} {pushed:>5.0} B pushed, {run:>5.0} B running (pending in its run step; its future {size:.0} B)"
            );
        }
    }
    let window = if quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(2)
    };
    match idle_cpu(1_000, window) {
        Some(p) => println!("CPU of 1,000 idle components over {window:?}: {p:.3}% of one core"),
        None => println!("idle CPU: not measurable here (no /proc)"),
    }
    println!();
    layers_row();
}
