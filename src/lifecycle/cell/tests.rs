use super::*;
use std::future::Future;
use std::pin::Pin;
use std::task::Context as TaskContext;

fn stop_deadline(cmd: Option<Cmd>) -> Option<Duration> {
    match cmd {
        Some(Cmd::Stop(deadline)) => deadline,
        Some(_) => panic!("another command than a stop"),
        None => panic!("no command"),
    }
}

/// A stop passes its deadline exactly, with or without the lock, and
/// the latest command put is the one taken.
#[test]
fn a_stop_command_keeps_its_deadline_and_its_place() {
    let cell = Cell::new(0, Arc::new(ReadyQueue::default()));
    let d = Duration::new(12, 345_678_901);
    for deadline in [Some(d), None, Some(Duration::ZERO), Some(Duration::MAX)] {
        cell.put_stop(deadline);
        assert_eq!(stop_deadline(cell.take_cmd()), deadline);
        assert!(cell.take_cmd().is_none());
    }
    // A command put after a stop replaces it, and the reverse.
    cell.put_stop(Some(d));
    cell.put_cmd(Cmd::Abandon);
    assert!(matches!(cell.take_cmd(), Some(Cmd::Abandon)));
    assert!(cell.take_cmd().is_none());
    cell.put_cmd(Cmd::Abandon);
    cell.put_stop(Some(d));
    assert_eq!(stop_deadline(cell.take_cmd()), Some(d));
    assert!(cell.take_cmd().is_none());
}

#[test]
fn clearing_a_cell_frees_the_wakers_that_hold_it() {
    let cell = Arc::new(Cell::new(0, Arc::new(ReadyQueue::default())));
    let waker = futures::task::waker(cell.clone());
    let mut stop = Latch::hosted(cell.clone());
    // As a component's `run` does: waits on its stop latch, and
    // watches for its abort, with its cell's waker.
    let mut cx = TaskContext::from_waker(&waker);
    assert!(Pin::new(&mut stop).poll(&mut cx).is_pending());
    stop.on_abort(&waker);
    drop((waker, stop));
    assert!(
        Arc::strong_count(&cell) > 1,
        "the latch's wakers hold the cell"
    );
    cell.clear();
    assert_eq!(
        Arc::strong_count(&cell),
        1,
        "a cycle through the stop latch"
    );
}
