//! The spawner: with it, a component that blocks its thread does not stall
//! another component's accept loop; without it, every `run` shares the
//! lifecycle's task, and the accept loop waits for the blocking call.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::pin::pin;
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use futures::future::{Either, select};
use futures::io::AsyncWriteExt;
use lameduck::component::Handoff;
use lameduck::{BoxError, Component, Context, Error, Lifecycle, LifecycleBuilder, Report, Run};
use smol::Async;

/// How long the worker blocks its thread.
const BLOCK: Duration = Duration::from_millis(1000);
/// Between a stalled answer (about `BLOCK`) and a prompt one (a few ms).
const STALLED: Duration = Duration::from_millis(500);

/// An accept loop on loopback answering `ok\n` to every connection. The
/// listener is `async-io`'s, whose reactor works under any runtime.
#[derive(Default)]
struct Server {
    listener: Handoff<Async<TcpListener>>,
}

impl Component for Server {
    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        let listener = self.listener.take()?;
        let mut stop = cx.stop_signal();
        loop {
            match select(pin!(listener.accept()), &mut stop).await {
                Either::Left((Ok((mut conn, _)), _)) => conn.write_all(b"ok\n").await?,
                Either::Left((Err(e), _)) => return Err(e.into()),
                Either::Right(_) => return Ok(()),
            }
        }
    }
}

/// Blocks its thread for [`BLOCK`] once told to, like a synchronous
/// database driver or a CPU-bound job would.
struct Worker {
    go: async_channel::Receiver<()>,
    blocking: Mutex<mpsc::Sender<()>>,
}

impl Component for Worker {
    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        let _ = self.go.recv().await;
        let _ = self.blocking.lock().unwrap().send(());
        std::thread::sleep(BLOCK);
        cx.stop_signal().await;
        Ok(())
    }
}

fn get(addr: SocketAddr) -> Duration {
    let t0 = Instant::now();
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("answer");
    assert_eq!(answer, "ok\n");
    t0.elapsed()
}

/// Runs the server and the worker, and returns how long a request took
/// while the worker blocked its thread. `start` puts the lifecycle on the
/// runtime and returns a closure that waits for it to end.
fn latency_while_blocked<W>(
    configure: impl FnOnce(LifecycleBuilder) -> LifecycleBuilder,
    start: impl FnOnce(Run) -> W,
) -> Duration
where
    W: FnOnce() -> Result<Report, Error>,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::default();
    server.listener.put(Async::new(listener).unwrap());
    let (go, go_rx) = async_channel::bounded(1);
    let (blocking_tx, blocking) = mpsc::channel();
    let lifecycle = configure(Lifecycle::builder())
        .shutdown_timeout(Duration::from_secs(10))
        .component("http", server)
        .component(
            "worker",
            Worker {
                go: go_rx,
                blocking: Mutex::new(blocking_tx),
            },
        )
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    let wait = start(lifecycle.run());
    futures::executor::block_on(handle.ready());
    assert!(get(addr) < STALLED, "serves before the worker blocks");
    go.send_blocking(()).unwrap();
    blocking
        .recv_timeout(Duration::from_secs(10))
        .expect("the worker blocks");
    let took = get(addr);
    eprintln!("a request while the worker blocked its thread took {took:?}");
    handle.request_shutdown(None);
    wait().expect("clean stop");
    took
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn tokio_with_spawner_a_blocking_component_does_not_stall_the_accept_loop() {
    let rt = tokio_runtime();
    let took = latency_while_blocked(
        |b| {
            b.spawner(|task| {
                tokio::spawn(task);
            })
        },
        |run| {
            let run = rt.spawn(run);
            || rt.block_on(run).unwrap()
        },
    );
    assert!(
        took < STALLED,
        "answered in {took:?} while the worker blocked"
    );
}

#[test]
fn tokio_without_spawner_a_blocking_component_stalls_the_accept_loop() {
    let rt = tokio_runtime();
    let took = latency_while_blocked(
        |b| b,
        |run| {
            let run = rt.spawn(run);
            || rt.block_on(run).unwrap()
        },
    );
    assert!(
        took >= STALLED,
        "answered in {took:?}: every run shares the lifecycle's task"
    );
}

#[test]
fn async_std_with_spawner_a_blocking_component_does_not_stall_the_accept_loop() {
    let took = latency_while_blocked(
        |b| {
            b.spawner(|task| {
                async_std::task::spawn(task);
            })
        },
        |run| {
            let run = async_std::task::spawn(run);
            || async_std::task::block_on(run)
        },
    );
    assert!(
        took < STALLED,
        "answered in {took:?} while the worker blocked"
    );
}
