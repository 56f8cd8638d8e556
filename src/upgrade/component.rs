//! [`UpgradeComponent`]: the upgrader's place in the lifecycle.

use std::fmt;
use std::sync::atomic::Ordering;

use futures::future::{Either, select};

use super::Upgrader;
use crate::component::Component;
use crate::context::Context;
use crate::error::BoxError;
use crate::signal::lock;

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
///   more attempt, which the in-flight rule then refuses.
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
        self.upgrader.inner.mark_ready()?;
        let rx = lock(&self.upgrader.inner.sighup)
            .as_ref()
            .map(|s| s.rx.clone());
        let Some(rx) = rx else {
            cx.shutdown_signal().await;
            return Ok(());
        };
        // A SIGHUP that arrived during launch was a request made before the
        // lifecycle was ready: refused, not deferred.
        while rx.try_recv().is_ok() {
            log::warn!(
                target: "lameduck::upgrade",
                "upgrade refused: SIGHUP arrived before the lifecycle was ready"
            );
        }
        loop {
            match select(std::pin::pin!(rx.recv()), cx.shutdown_signal()).await {
                Either::Left((Ok(()), _)) => {}
                _ => return Ok(()),
            }
            log::info!(target: "lameduck::upgrade", "SIGHUP: upgrading");
            match select(self.upgrader.upgrade(), cx.shutdown_signal()).await {
                Either::Left((Ok(done), _)) => log::info!(
                    target: "lameduck::upgrade",
                    "upgraded to process {} in {:?}", done.pid, done.elapsed
                ),
                Either::Left((Err(e), _)) => {
                    log::warn!(target: "lameduck::upgrade", "{e}");
                    // systemd (`Type=notify-reload`) sent that SIGHUP and
                    // waits for RELOADING=1 then READY=1: answer at once
                    // rather than leave it to its timeout. A failed upgrade
                    // has sent both already; shutting down, STOPPING=1 has.
                    #[cfg(feature = "systemd")]
                    if e.is_refused() && e.kind() != super::UpgradeErrorKind::ShuttingDown {
                        crate::systemd::notify_reload_refused();
                    }
                }
                Either::Right(_) => return Ok(()),
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

impl fmt::Debug for UpgradeComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradeComponent")
            .field("upgrader", &self.upgrader)
            .finish_non_exhaustive()
    }
}
