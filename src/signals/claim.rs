//! Which signals are taken over, process-wide, and giving their default
//! actions back.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::SignalKind;
use crate::error::Error;
use crate::latch::lock;

/// Which signals some listener has taken over, process-wide, and the
/// switch that gives each its default action back once none listens.
struct Taken {
    listeners: usize,
    restore_default: Arc<AtomicBool>,
}

static TAKEN: Mutex<BTreeMap<c_int, Taken>> = Mutex::new(BTreeMap::new());

/// One listener's claim on its signals: while it is held, their default
/// action is off. Released once, by whoever gets there first (the
/// lifecycle stopping, the listener thread ending, or drop).
pub(super) struct Claim {
    kinds: Vec<SignalKind>,
    released: AtomicBool,
}

impl Claim {
    pub(super) fn take(kinds: &[SignalKind]) -> Result<Arc<Claim>, Error> {
        let mut claim = Claim {
            kinds: Vec::with_capacity(kinds.len()),
            released: AtomicBool::new(false),
        };
        let mut taken = lock(&TAKEN);
        for kind in kinds {
            let entry = match taken.entry(kind.0) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(v) => {
                    let flag = Arc::new(AtomicBool::new(false));
                    // Registered once per signal for the life of the
                    // process; it acts only while the flag is set.
                    if let Err(e) =
                        signal_hook::flag::register_conditional_default(kind.0, flag.clone())
                    {
                        drop(taken); // `claim` gives back what it took
                        return Err(Error::config(format!("cannot listen for {kind}: {e}")));
                    }
                    v.insert(Taken {
                        listeners: 0,
                        restore_default: flag,
                    })
                }
            };
            entry.listeners += 1;
            entry.restore_default.store(false, Ordering::SeqCst);
            claim.kinds.push(*kind);
        }
        Ok(Arc::new(claim))
    }

    /// Ends the claim; a signal no listener holds any more gets its default
    /// action back. Returns those signals (none if already released).
    pub(super) fn release(&self) -> Vec<SignalKind> {
        if self.released.swap(true, Ordering::SeqCst) {
            return Vec::new();
        }
        let mut taken = lock(&TAKEN);
        let mut freed = Vec::new();
        for kind in &self.kinds {
            if let Some(t) = taken.get_mut(&kind.0) {
                t.listeners = t.listeners.saturating_sub(1);
                if t.listeners == 0 {
                    t.restore_default.store(true, Ordering::SeqCst);
                    freed.push(*kind);
                }
            }
        }
        freed
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.release();
    }
}
