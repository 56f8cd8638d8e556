//! The wakers a latch keeps: one inline, the rest in a slab.

use std::sync::Mutex;
use std::task::Waker;

use super::lock;

/// The wakers of tasks waiting for a latch.
#[derive(Default)]
pub(crate) struct WaitList(pub(super) Mutex<Waiters>);

impl WaitList {
    /// Wakes every waiter registered so far.
    pub(crate) fn wake(&self) {
        self.wake_all_but(None);
    }

    /// Wakes every waiter registered so far, but drops unwoken one of the
    /// same data as `own` (a clone of it): tells whether there was one.
    ///
    /// Compared by data only: `Waker::will_wake` also compares the
    /// vtables, and a clone's vtable may be another copy of the same one
    /// (`futures`' wakers made in different codegen units), which would
    /// wake the task after all. Only the owner's wakers point to its data.
    pub(super) fn wake_all_but(&self, own: Option<&Waker>) -> bool {
        let Waiters { first, rest, .. } = std::mem::take(&mut *lock(&self.0));
        let mut skipped = false;
        // Outside the lock: a waker may run code that polls the latch.
        let mut wake = |w: Waker| match own {
            Some(own) if w.data() == own.data() => skipped = true,
            _ => w.wake(),
        };
        if let Some(w) = first {
            wake(w);
        }
        // Most flags have one waiter at most: nothing more to walk.
        if !rest.is_empty() {
            rest.into_iter().flatten().for_each(wake);
        }
        skipped
    }
}

/// A slab of wakers. Most signals have a single waiter, kept inline so that
/// waiting allocates nothing.
#[derive(Default)]
pub(super) struct Waiters {
    first: Option<Waker>,
    first_taken: bool,
    rest: Vec<Option<Waker>>,
    free: Vec<u32>,
}

impl Waiters {
    pub(super) fn insert(&mut self, waker: Waker) -> u32 {
        if !self.first_taken {
            self.first_taken = true;
            self.first = Some(waker);
            return 0;
        }
        if let Some(i) = self.free.pop() {
            self.rest[i as usize] = Some(waker);
            return i + 1;
        }
        self.rest.push(Some(waker));
        // Each waiter is a live `Latch` of 32 bytes: four billion of them
        // would not fit in memory.
        u32::try_from(self.rest.len()).expect("fewer than 2^32 waiters")
    }

    pub(super) fn slot(&mut self, key: u32) -> &mut Option<Waker> {
        if key == 0 {
            &mut self.first
        } else {
            &mut self.rest[key as usize - 1]
        }
    }

    pub(super) fn remove(&mut self, key: u32) {
        *self.slot(key) = None;
        if key == 0 {
            self.first_taken = false;
        } else {
            self.free.push(key - 1);
        }
    }
}
