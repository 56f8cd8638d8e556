use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures::task::{ArcWake, waker};

use super::*;
use crate::cause::ShutdownCause;

const PHASES: [Phase; 8] = [
    Phase::Created,
    Phase::Launching,
    Phase::Running,
    Phase::LameDuck,
    Phase::Draining,
    Phase::Flushing,
    Phase::Stopping,
    Phase::Stopped,
];

fn transitions() -> Vec<Transition> {
    let mut all = vec![
        Transition::Launch,
        Transition::Ready,
        Transition::Shutdown,
        Transition::Force,
        Transition::Stop,
    ];
    all.extend(PHASES.map(Transition::Advance));
    all
}

/// Every state reachable from the initial one, by any sequence of
/// transitions.
fn reachable() -> HashSet<State> {
    let mut seen = HashSet::from([State::INITIAL]);
    let mut queue = VecDeque::from([State::INITIAL]);
    while let Some(state) = queue.pop_front() {
        for t in transitions() {
            if let Some(next) = state.after(t) {
                if seen.insert(next) {
                    queue.push_back(next);
                }
            }
        }
    }
    seen
}

#[test]
fn only_consistent_states_are_reachable() {
    let states = reachable();
    // Live: created, launching, running, and the four shutdown phases with
    // or without a completed launch and a force (3 + 4 * 2 * 2); each also
    // stopped.
    assert_eq!(states.len(), 2 * (3 + 4 * 2 * 2), "{states:#?}");
    for s in &states {
        assert_ne!(s.reached(), Phase::Stopped, "{s:?}: stopping is a mark");
        assert!(
            !s.is_forced() || s.is_shutting_down(),
            "{s:?}: forced without a shutdown"
        );
        assert!(
            !s.was_ready() || s.reached() >= Phase::Running,
            "{s:?}: ready before launch"
        );
        assert_eq!(
            s.reached() == Phase::Running,
            s.was_ready() && !s.is_shutting_down(),
            "{s:?}"
        );
        assert_eq!(
            s.is_over(),
            s.is_shutting_down() || s.phase() == Phase::Stopped
        );
    }
}

#[test]
fn phases_only_move_forward_and_gates_stay_open() {
    for from in reachable() {
        for t in transitions() {
            let Some(to) = from.after(t) else { continue };
            assert!(to.phase() >= from.phase(), "{from:?} -{t:?}-> {to:?}");
            for gate in GATES {
                assert!(
                    !from.is_open(gate) || to.is_open(gate),
                    "{from:?} -{t:?}-> {to:?} closed {gate:?}"
                );
            }
            assert_ne!(to, from, "{t:?} from {from:?} changes nothing yet is legal");
        }
    }
}

#[test]
fn illegal_transitions_are_refused_and_change_nothing() {
    let m = PhaseMachine::new();
    assert!(
        m.apply(Transition::Ready).is_none(),
        "ready before the launch"
    );
    assert!(
        m.apply(Transition::Force).is_none(),
        "forced before shutdown"
    );
    assert!(
        m.apply(Transition::Advance(Phase::Draining)).is_none(),
        "drain before shutdown"
    );
    assert_eq!(m.state(), State::INITIAL);
    m.wake(m.apply(Transition::Launch));
    m.wake(m.begin_shutdown(ShutdownCause::Forced));
    // The race the launch loses: once shutdown began, it never completes.
    assert!(m.apply(Transition::Ready).is_none());
    assert!(m.apply(Transition::Launch).is_none());
    assert!(
        m.begin_shutdown(ShutdownCause::Forced).is_none(),
        "shutdown begins once"
    );
    m.wake(m.apply(Transition::Advance(Phase::Flushing)));
    assert!(
        m.apply(Transition::Advance(Phase::Draining)).is_none(),
        "backwards"
    );
    assert!(
        m.apply(Transition::Advance(Phase::Stopped)).is_none(),
        "stopping is `Stop`"
    );
    m.wake(m.apply(Transition::Stop));
    let stopped = m.state();
    for t in transitions() {
        assert!(m.apply(t).is_none(), "{t:?} after the stop");
    }
    assert_eq!(m.state(), stopped);
    assert_eq!(stopped.phase(), Phase::Stopped);
    assert!(stopped.is_shutting_down() && !stopped.was_ready() && !stopped.is_forced());
}

#[test]
fn a_lifecycle_stopped_unrun_never_began_shutting_down() {
    let m = PhaseMachine::new();
    m.wake(m.apply(Transition::Stop));
    let s = m.state();
    assert_eq!(s.phase(), Phase::Stopped);
    assert!(!s.is_shutting_down() && s.is_over());
    assert_eq!(m.shutdown_at(), None);
    assert_eq!(m.cause(), None);
    assert!(m.apply(Transition::Force).is_none());
    // A request still lands, for the handle's answers and the report; the
    // phase stays `Stopped`.
    m.wake(m.begin_shutdown(ShutdownCause::Forced));
    let s = m.state();
    assert_eq!(s.phase(), Phase::Stopped);
    assert!(s.is_shutting_down() && !s.is_forced());
    assert!(m.shutdown_at().is_some());
    assert_eq!(m.cause(), Some(ShutdownCause::Forced));
    assert!(m.begin_shutdown(ShutdownCause::Forced).is_none(), "once");
    assert!(m.apply(Transition::Advance(Phase::Draining)).is_none());
}

#[test]
fn transitions_stamp_when_each_phase_began_and_keep_the_first_cause() {
    let m = PhaseMachine::new();
    m.wake(m.apply(Transition::Launch));
    m.wake(m.apply(Transition::Ready));
    let cause = ShutdownCause::Requested { with_error: false };
    m.wake(m.begin_shutdown(cause.clone()));
    m.wake(m.apply(Transition::Force));
    assert!(m.begin_shutdown(ShutdownCause::Forced).is_none());
    let (state, moments) = m.snapshot();
    assert_eq!(state.phase(), Phase::LameDuck);
    assert!(state.was_ready() && state.is_forced());
    assert_eq!(moments.cause(), Some(&cause));
    let at = |p| {
        moments
            .entered(p)
            .unwrap_or_else(|| panic!("{p} not stamped"))
    };
    assert!(at(Phase::Launching) <= at(Phase::Running));
    assert!(at(Phase::Running) <= at(Phase::LameDuck));
    assert_eq!(moments.shutdown_at(), Some(at(Phase::LameDuck)));
    assert_eq!(moments.entered(Phase::Draining), None);
}

struct Count(AtomicUsize);

impl ArcWake for Count {
    fn wake_by_ref(this: &Arc<Self>) {
        this.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls a latch with a waker that counts its wakes.
fn wait(latch: &mut Latch) -> (Arc<Count>, bool) {
    let count = Arc::new(Count(AtomicUsize::new(0)));
    let w = waker(count.clone());
    let ready = Pin::new(latch).poll(&mut Context::from_waker(&w)) == Poll::Ready(());
    (count, ready)
}

#[test]
fn a_transition_wakes_the_waiters_of_the_gates_it_opens_only() {
    let m = Arc::new(PhaseMachine::new());
    let mut shutdown = m.latch(Gate::Shutdown);
    let mut ready = m.latch(Gate::Ready);
    let mut stopped = m.latch(Gate::Stopped);
    let (on_shutdown, done) = wait(&mut shutdown);
    assert!(!done);
    let (on_ready, done) = wait(&mut ready);
    assert!(!done);
    let (on_stopped, done) = wait(&mut stopped);
    assert!(!done);

    m.wake(m.apply(Transition::Launch));
    assert_eq!(
        on_shutdown.0.load(Ordering::SeqCst),
        0,
        "launching opens no gate"
    );
    let change = m.begin_shutdown(ShutdownCause::Forced);
    assert!(shutdown.is_set(), "the state is the flag, before any wake");
    assert_eq!(
        on_shutdown.0.load(Ordering::SeqCst),
        0,
        "woken by `wake`, after locks"
    );
    m.wake(change);
    assert_eq!(on_shutdown.0.load(Ordering::SeqCst), 1);
    assert_eq!(
        on_ready.0.load(Ordering::SeqCst),
        0,
        "the launch never completed"
    );
    assert_eq!(on_stopped.0.load(Ordering::SeqCst), 0);
    assert!(wait(&mut shutdown).1);
    assert!(!ready.is_set());

    m.wake(m.apply(Transition::Stop));
    assert_eq!(on_stopped.0.load(Ordering::SeqCst), 1);
    assert_eq!(on_shutdown.0.load(Ordering::SeqCst), 1, "woken once");
    assert!(wait(&mut stopped).1);
    assert!(
        m.latch(Gate::Stopped).is_set(),
        "a fresh view sees the state"
    );
}

#[test]
fn a_transition_on_another_thread_wakes_a_blocked_waiter() {
    let m = Arc::new(PhaseMachine::new());
    let ready = m.latch(Gate::Ready);
    let t = std::thread::spawn(move || futures::executor::block_on(ready));
    std::thread::sleep(std::time::Duration::from_millis(20));
    m.wake(m.apply(Transition::Launch));
    m.wake(m.apply(Transition::Ready));
    t.join().unwrap();
}

#[test]
fn a_component_not_yet_ready_holds_the_launch_back() {
    let m = PhaseMachine::new();
    m.admit();
    m.wake(m.apply(Transition::Launch));
    m.wake(m.apply(Transition::Ready));
    assert!(!m.is_launched() && !m.is_ready());
    m.settle();
    assert!(m.is_launched() && m.is_ready());
    m.admit(); // added while running
    assert!(!m.is_launched() && !m.is_ready());
    m.settle();
    assert!(m.is_ready());
    m.wake(m.begin_shutdown(ShutdownCause::Forced));
    assert!(m.is_launched(), "the launch stays complete");
    assert!(!m.is_ready(), "but shutting down is not ready");
}
