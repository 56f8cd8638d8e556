//! Runners that drive one scenario to its end on each runtime the crate
//! supports.

use std::future::Future;

pub fn block_on<F: Future<Output = ()>>(scenario: fn() -> F) {
    futures::executor::block_on(scenario());
}

pub fn tokio_current_thread<F: Future<Output = ()>>(scenario: fn() -> F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenario());
}

/// Spawned, so the lifecycle really runs on (and may move between) workers.
pub fn tokio_multi_thread<F: Future<Output = ()> + Send + 'static>(scenario: fn() -> F) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(rt.spawn(scenario())).unwrap();
}

pub fn smol<F: Future<Output = ()>>(scenario: fn() -> F) {
    smol::block_on(scenario());
}

pub fn async_std<F: Future<Output = ()>>(scenario: fn() -> F) {
    async_std::task::block_on(scenario());
}

/// One `#[test]` per runtime for each scenario named: for a scenario
/// `scenarios::x` of the calling file (a `fn() -> impl Future<Output = ()>`),
/// a module `x` with the tests `x::block_on`, `x::tokio_current_thread`,
/// `x::tokio_multi_thread` and `x::smol`.
#[allow(unused_macros)] // as the rest of `common`: not every test file uses it
macro_rules! on_every_runtime {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[test]
                fn block_on() {
                    $crate::common::runtimes::block_on(super::scenarios::$scenario);
                }
                #[test]
                fn tokio_current_thread() {
                    $crate::common::runtimes::tokio_current_thread(super::scenarios::$scenario);
                }
                #[test]
                fn tokio_multi_thread() {
                    $crate::common::runtimes::tokio_multi_thread(super::scenarios::$scenario);
                }
                #[test]
                fn smol() {
                    $crate::common::runtimes::smol(super::scenarios::$scenario);
                }
            }
        )*
    };
}

#[allow(unused_imports)]
pub(crate) use on_every_runtime;
