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
//! * [`examples`]: the source of every numbered example, each a complete
//!   program (`cargo run --example NAME`).
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

/// The numbered examples of the `examples/` folder, each a complete
/// program: `cargo run --example 01_quickstart` (some need a feature, named
/// in the example's opening note).
pub mod examples {
    macro_rules! example {
        ($module:ident, $file:literal, $summary:literal) => {
            #[doc = $summary]
            #[doc = ""]
            #[doc = concat!("`examples/", $file, "`:")]
            #[doc = ""]
            #[doc = "```rust,ignore"]
            #[doc = include_str!(concat!("../examples/", $file))]
            #[doc = "```"]
            pub mod $module {}
        };
    }

    example!(
        quickstart,
        "01_quickstart.rs",
        "Three components, a readiness gate, a stop request, the timeline."
    );
    example!(
        signals,
        "02_signals.rs",
        "A service run until SIGINT/SIGTERM, logging each phase, exit code."
    );
    example!(
        service,
        "03_service.rs",
        "The main demo: admin probes, public server, worker, drainer."
    );
    example!(
        upgrade,
        "04_upgrade.rs",
        "An HTTP server answering with its PID; `kill -HUP` upgrades it."
    );
    example!(
        axum_probes,
        "05_axum_probes.rs",
        "The probes mounted in axum with one call (feature `tower`)."
    );
    example!(
        axum_lameduck,
        "06_axum_lameduck.rs",
        "Go's `lameduck.Server` contract with axum: graceful, then close."
    );
    example!(
        admin_bench,
        "07_admin_bench.rs",
        "Latency and throughput of the admin server."
    );
    example!(
        tiny_http_probes,
        "08_tiny_http_probes.rs",
        "The probes in a non-tokio server (tiny_http)."
    );
}
