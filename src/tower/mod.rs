//! Tower integration: the probes as a [`tower_service::Service`], and a
//! layer that counts requests in flight and turns keep-alive off once
//! shutdown begins.
//!
//! * [`ProbesService`] ([`Probes::service`](crate::Probes::service))
//!   answers `/livez`, `/readyz`, `/startupz`, `/healthz` and every
//!   per-check path, on any server that takes a tower service: in axum,
//!   `router.fallback_service(probes.service())`; on hyper 1.x, through
//!   `hyper_util::service::TowerToHyperService`.
//! * [`LameDuckLayer`] counts each request in a [`Tracker`](crate::Tracker)
//!   and, from the moment the lifecycle's shutdown begins, answers HTTP/1.x
//!   requests with `Connection: close`: keep-alive clients open their next
//!   connection elsewhere during the lame-duck period, so that none is left
//!   on the process when it stops accepting.
//!
//! Neither needs a runtime.

mod layer;
mod probes;

pub use layer::{LameDuck, LameDuckLayer, ResponseFuture};
pub use probes::{ProbesFuture, ProbesService};
