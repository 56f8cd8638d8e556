//! Guides: the pages of the `docs/` folder, rendered here so they can be
//! read next to the API.
//!
//! * [`modelling`]: which work goes where — `stop`, a drainer or a stop
//!   hook — and how the Go packages this crate replaces map onto it.
//! * [`kubernetes`]: probes, lame duck and grace periods in a pod.
//! * [`signals`]: signal rules, defaults, exit codes, the Go `Server`
//!   contract.
//! * [`upgrades`]: the upgrade protocol, a systemd unit, upgrades under
//!   Kubernetes.
//! * [`design`]: how the engine works, and the decisions behind its
//!   behaviour.
//!
//! Code in these pages is illustrative (fragments are not compiled); the
//! examples in the crate's `examples/` folder are complete programs.

#[doc = include_str!("../docs/modelling.md")]
pub mod modelling {}

#[doc = include_str!("../docs/kubernetes.md")]
pub mod kubernetes {}

#[doc = include_str!("../docs/signals.md")]
pub mod signals {}

#[doc = include_str!("../docs/upgrades.md")]
pub mod upgrades {}

#[doc = include_str!("../docs/design.md")]
pub mod design {}
