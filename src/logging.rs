//! The engine's log events. Each is one line at its call site: a message
//! (its text is stable, users match on it) and fields (`component`, `step`,
//! `phase`, `elapsed_ms`, `error`, `cause`).
//!
//! Without feature `tracing` an event is a `log` record with the fields as
//! key-values. With it, an event goes to the tracing subscriber when the
//! current thread has one, else to `log`: never both, so a `LogTracer`
//! installed beside a subscriber does not double the lines.

use std::fmt;
use std::future::Future;

/// Logs one engine event at `$level` (`error`, `warn`, `info`, `debug`),
/// target `lameduck` unless given:
/// `event!(info, { component = name }, "started `{name}`")`. Every field
/// value is recorded through its `Display`.
macro_rules! event {
    ($level:ident, $($rest:tt)+) => {
        $crate::logging::event!(target: "lameduck", $level, $($rest)+)
    };
    (target: $target:literal, $level:ident, { $($key:ident = $value:expr),* $(,)? }, $($arg:tt)+) => {{
        #[cfg(feature = "tracing")]
        if !$crate::logging::dropped_by_both($crate::logging::tracing_level!($level), $crate::logging::log_level!($level)) {
            if $crate::logging::to_tracing() {
                ::tracing::event!(
                    target: $target,
                    $crate::logging::tracing_level!($level),
                    { $($key = %$value),* },
                    $($arg)+
                );
            } else {
                $crate::logging::event!(@log $target, $level, { $($key = $value),* }, $($arg)+);
            }
        }
        #[cfg(not(feature = "tracing"))]
        $crate::logging::event!(@log $target, $level, { $($key = $value),* }, $($arg)+);
    }};
    (@log $target:literal, $level:ident, { }, $($arg:tt)+) => {
        ::log::log!(target: $target, $crate::logging::log_level!($level), $($arg)+)
    };
    (@log $target:literal, $level:ident, { $($key:ident = $value:expr),+ }, $($arg:tt)+) => {
        ::log::log!(
            target: $target,
            $crate::logging::log_level!($level),
            $($key = ::log::kv::Value::from_display(&$value)),+;
            $($arg)+
        )
    };
}

macro_rules! log_level {
    (error) => {
        ::log::Level::Error
    };
    (warn) => {
        ::log::Level::Warn
    };
    (info) => {
        ::log::Level::Info
    };
    (debug) => {
        ::log::Level::Debug
    };
}

#[cfg(feature = "tracing")]
macro_rules! tracing_level {
    (error) => {
        ::tracing::Level::ERROR
    };
    (warn) => {
        ::tracing::Level::WARN
    };
    (info) => {
        ::tracing::Level::INFO
    };
    (debug) => {
        ::tracing::Level::DEBUG
    };
}

pub(crate) use {event, log_level};

#[cfg(feature = "tracing")]
pub(crate) use tracing_level;

/// Whether an event at this level would be dropped wherever it went: no
/// tracing subscriber enables the level (tracing's own first check, one
/// load) and `log`'s maximum level is below it (`log!`'s own first check).
/// Then the event is skipped before [`to_tracing`] looks the subscriber up
/// (most of an event's cost when neither is set); otherwise it goes where
/// it went before, so what a subscriber or a logger sees is unchanged.
#[cfg(feature = "tracing")]
#[inline]
pub(crate) fn dropped_by_both(tracing: tracing::Level, log: log::Level) -> bool {
    use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
    (tracing > STATIC_MAX_LEVEL || tracing > LevelFilter::current())
        && (log > log::STATIC_MAX_LEVEL || log > log::max_level())
}

/// Whether this thread's events go to a tracing subscriber.
#[cfg(feature = "tracing")]
pub(crate) fn to_tracing() -> bool {
    tracing::dispatcher::get_default(|d| !d.is::<tracing::subscriber::NoSubscriber>())
}

/// A user call (`start`, `run`, a check, …) inside a span naming its part,
/// so the user's own events inside it carry the name. Without feature
/// `tracing`, the call itself.
#[cfg(feature = "tracing")]
pub(crate) fn in_span<F: Future>(
    fut: F,
    name: &str,
    step: &'static str,
) -> tracing::instrument::Instrumented<F> {
    use tracing::Instrument;
    fut.instrument(tracing::info_span!(target: "lameduck", "lameduck", component = name, step))
}

/// A user call (`start`, `run`, a check, …) inside a span naming its part,
/// so the user's own events inside it carry the name. Without feature
/// `tracing`, the call itself.
#[cfg(not(feature = "tracing"))]
pub(crate) fn in_span<F: Future>(fut: F, _name: &str, _step: &'static str) -> F {
    fut
}

/// A user call made inside its span, and kept there: as [`in_span`], with
/// the call's making in the span too.
#[cfg(feature = "tracing")]
pub(crate) fn made_in_span<F: Future>(
    name: &str,
    step: &'static str,
    make: impl FnOnce() -> F,
) -> tracing::instrument::Instrumented<F> {
    use tracing::Instrument;
    let span = tracing::info_span!(target: "lameduck", "lameduck", component = name, step);
    let fut = span.in_scope(make);
    fut.instrument(span)
}

/// A user call made inside its span, and kept there: as [`in_span`], with
/// the call's making in the span too.
#[cfg(not(feature = "tracing"))]
pub(crate) fn made_in_span<F: Future>(
    _name: &str,
    _step: &'static str,
    make: impl FnOnce() -> F,
) -> F {
    make()
}

/// Milliseconds, the unit of every `elapsed_ms` field.
pub(crate) fn ms(d: std::time::Duration) -> u128 {
    d.as_millis()
}

/// An optional field: empty when absent.
pub(crate) fn opt<T: fmt::Display>(value: Option<T>) -> impl fmt::Display {
    Opt(value)
}

struct Opt<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for Opt<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => Ok(()),
        }
    }
}
