//! [`UpgradeComponent`]: the upgrader's place in the lifecycle.

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::channel::mpsc;
use futures::future::{Either, select};
use futures::stream::StreamExt;

use super::builder::Hups;
use super::control::{Control, Reply};
use super::{UpgradeError, UpgradeErrorKind, Upgrader};
use crate::component::Component;
use crate::context::Context;
use crate::error::BoxError;
use crate::latch::lock;
use crate::logging::event;

/// The upgrader as a lifecycle [`Component`], made by
/// [`Upgrader::component`].
///
/// * `start` binds the upgrader to the lifecycle. (SIGHUP is caught from
///   the moment the [`Upgrader`] is built, so one that arrives during launch
///   is refused with a log line rather than killing the process.)
/// * `run` waits until every component is ready, then marks this generation
///   ready (closes unused inherited sockets, writes the PID file, tells the
///   parent) and upgrades on each SIGHUP until shutdown begins. SIGHUPs that
///   arrive while an upgrade is in flight are coalesced into at most one
///   more attempt, which the in-flight rule then refuses. With a
///   [control socket](super::UpgraderBuilder::control_socket) it also
///   upgrades on each client's request and answers it with the result.
/// * `stop` stops listening for SIGHUP and releases this process's
///   duplicates of its listening sockets; unless they were handed to a new
///   generation, it also removes their Unix socket files.
pub struct UpgradeComponent {
    upgrader: Upgrader,
}

impl UpgradeComponent {
    pub(crate) fn new(upgrader: Upgrader) -> Self {
        UpgradeComponent { upgrader }
    }
}

impl Component for UpgradeComponent {
    async fn start(&self, cx: &Context) -> Result<(), BoxError> {
        let inner = &self.upgrader.inner;
        if inner.handle.set(cx.handle().clone()).is_err() {
            return Err("the upgrade component is registered twice".into());
        }
        Ok(())
    }

    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        if !cx.handle().ready().await {
            return Ok(());
        }
        let inner = &self.upgrader.inner;
        let sighup = lock(&inner.sighup).as_ref().map(|s| s.hups.clone());
        // A SIGHUP that arrived during launch was a request made before the
        // lifecycle was ready: refused, not deferred. (Before the PID file
        // names this process: a SIGHUP sent after that is served.)
        if sighup.as_ref().is_some_and(|h| h.take()) {
            event!(target: "lameduck::upgrade", warn, {},
                "upgrade refused: SIGHUP arrived before the lifecycle was ready"
            );
        }
        inner.mark_ready()?;
        let (mut requests, control) = match lock(&inner.control).take() {
            Some(listener) => {
                // Room for one request: the control thread waits for it to
                // be taken before it serves its next client.
                let (tx, rx) = mpsc::channel(0);
                (Some(rx), Some(Control::serve(listener, tx)?))
            }
            None => (None, None),
        };
        loop {
            let next = {
                let sig = std::pin::pin!(hup(sighup.as_deref()));
                let req = std::pin::pin!(recv(requests.as_mut()));
                match select(select(sig, req), cx.shutdown_signal()).await {
                    Either::Left((Either::Left((Some(()), _)), _)) => None,
                    Either::Left((Either::Right((Some(reply), _)), _)) => Some(reply),
                    _ => return Ok(()),
                }
            };
            event!(target: "lameduck::upgrade", info, {},
                "{}: upgrading",
                if next.is_some() { "control socket" } else { "SIGHUP" }
            );
            let result = match select(self.upgrader.upgrade(), cx.shutdown_signal()).await {
                Either::Left((result, _)) => result,
                Either::Right(_) => Err(UpgradeError::new(
                    UpgradeErrorKind::ShuttingDown,
                    "shutdown began during the upgrade",
                )),
            };
            match &result {
                Ok(done) => {
                    event!(target: "lameduck::upgrade", info, {},
                        "upgraded to process {} in {:?}", done.pid, done.elapsed
                    );
                    // The next request must reach the new process.
                    if let Some(c) = &control {
                        c.stop();
                    }
                }
                Err(e) => {
                    event!(target: "lameduck::upgrade", warn, { error = e }, "{e}");
                    // systemd (`Type=notify-reload`) sent that SIGHUP and
                    // waits for RELOADING=1 then READY=1: answer at once
                    // rather than leave it to its timeout. A failed upgrade
                    // has sent both already; shutting down, STOPPING=1 has.
                    #[cfg(feature = "systemd")]
                    if next.is_none()
                        && e.is_refused()
                        && e.kind() != UpgradeErrorKind::ShuttingDown
                    {
                        crate::systemd::notify_reload_refused();
                    }
                }
            }
            let stopping = matches!(&result, Err(e) if e.kind() == UpgradeErrorKind::ShuttingDown);
            if let Some(reply) = next {
                let (written, done) = futures::channel::oneshot::channel();
                if reply.send(Reply { result, written }).is_ok() {
                    // Before a successful upgrade's shutdown can end this
                    // process: the client gets its answer (bounded, in case
                    // it stopped reading).
                    let bound = futures_timer::Delay::new(Duration::from_secs(2));
                    let _ = select(done, bound).await;
                }
            }
            if stopping {
                return Ok(());
            }
        }
    }

    async fn stop(&self, _cx: &Context) -> Result<(), BoxError> {
        if let Some(s) = lock(&self.upgrader.inner.sighup).take() {
            s.close();
        }
        let inner = &self.upgrader.inner;
        let active = std::mem::take(&mut lock(&inner.sockets).active);
        // A final stop: nobody will serve these paths, and a socket file
        // left behind would make the next start fail to bind. After a
        // hand-over they are the new generation's.
        if !inner.handed_over.load(Ordering::Acquire) {
            for path in active.iter().filter_map(|n| n.unix_path()) {
                super::fds::unlink_socket_file(path);
            }
        }
        Ok(())
    }
}

/// The next SIGHUP; pending forever without a SIGHUP listener.
async fn hup(hups: Option<&Hups>) -> Option<()> {
    match hups {
        Some(h) => {
            h.next().await;
            Some(())
        }
        None => futures::future::pending().await,
    }
}

/// The next item of `rx`; pending forever without one (or once it closed).
async fn recv<T>(rx: Option<&mut mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => match rx.next().await {
            Some(v) => Some(v),
            None => futures::future::pending().await,
        },
        None => futures::future::pending().await,
    }
}

impl fmt::Debug for UpgradeComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradeComponent")
            .field("upgrader", &self.upgrader)
            .finish_non_exhaustive()
    }
}
