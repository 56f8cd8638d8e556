use super::*;
use futures::task::noop_waker;

#[test]
fn every_clone_wakes_and_dropped_waiters_free_their_slot() {
    let s = Latch::new();
    let mut a = s.clone();
    let mut b = s.clone();
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(Pin::new(&mut a).poll(&mut cx).is_pending());
    assert!(Pin::new(&mut b).poll(&mut cx).is_pending());
    drop(a);
    let mut c = s.clone();
    assert!(Pin::new(&mut c).poll(&mut cx).is_pending());
    assert_eq!(c.key, Some(0), "the freed inline slot is reused");
    assert!(s.set());
    assert!(!s.set(), "set only once");
    assert!(Pin::new(&mut b).poll(&mut cx).is_ready());
    assert!(Pin::new(&mut c).poll(&mut cx).is_ready());
    futures::executor::block_on(s.clone());
}

#[test]
fn a_latch_stays_small_whatever_it_watches() {
    // Each component holds several (its cell's, its context's, a
    // waiter's): a flag or a gate, a latch is 32 bytes.
    assert!(std::mem::size_of::<Latch>() <= 32);
}

#[test]
fn set_from_another_thread_wakes_a_blocked_waiter() {
    let s = Latch::new();
    let t = {
        let s = s.clone();
        std::thread::spawn(move || futures::executor::block_on(s))
    };
    std::thread::sleep(std::time::Duration::from_millis(20));
    s.set();
    t.join().unwrap();
}
