//! What the engine runs besides the handle's own state: components waiting
//! to be launched, the drainers and the stop hooks.
//!
//! The handle's shared state holds a [`Parts`] without naming its type: the
//! user traits take a [`Context`](crate::Context), which hands out a
//! handle, so a handle that named them would import itself through them.
//! Admission (which adds parts) and the runner (which runs them) reach it
//! through [`Parts::of`].

use crate::restart::Budget;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};

use crate::drain::{Drainers, DynDrainer};
use crate::handle::Shared;
use crate::latch::lock;
use crate::lifecycle::options::Kept;
use crate::lifecycle::task::DynComponent;
use crate::names::Named;

/// A component waiting to be launched.
pub(crate) struct Registration {
    pub(crate) name: Arc<str>,
    pub(crate) component: Box<dyn DynComponent>,
    pub(crate) options: Kept,
    /// Its restart budget, if its policy ever restarts it.
    pub(crate) restart: Option<Box<Budget>>,
}

/// The parts of one lifecycle, as the handle's shared state keeps them.
pub(crate) struct Parts {
    /// Components added while the lifecycle runs, on their way to the
    /// runner.
    pub(crate) register_tx: UnboundedSender<Registration>,
    /// Taken only after the shared state's lock when both are held.
    lists: Mutex<Lists>,
}

/// The drainers and stop hooks, in registration order.
#[derive(Default)]
pub(crate) struct Lists {
    pub(crate) drainers: Drainers,
    pub(crate) hooks: Vec<Named<dyn DynDrainer>>,
}

impl Parts {
    /// New parts, and the receiving end of their registration queue.
    pub(crate) fn new() -> (Self, UnboundedReceiver<Registration>) {
        let (register_tx, rx) = unbounded();
        let parts = Parts {
            register_tx,
            lists: Mutex::new(Lists::default()),
        };
        (parts, rx)
    }

    /// The parts a lifecycle's shared state holds.
    pub(crate) fn of(shared: &Shared) -> &Parts {
        shared
            .parts
            .downcast_ref()
            .expect("a lifecycle's shared state holds its parts")
    }

    pub(crate) fn lists(&self) -> MutexGuard<'_, Lists> {
        lock(&self.lists)
    }
}
