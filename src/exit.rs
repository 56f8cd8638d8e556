//! The outcome of a lifecycle as a process exit code.

use std::process::ExitCode;

use crate::error::Error;
use crate::report::Report;

/// The exit code [`exit_code`] gives a forced shutdown: 130, the status
/// shells give a program interrupted by Ctrl-C (128 + SIGINT).
pub const FORCED_EXIT_CODE: u8 = 130;

/// Maps the outcome of [`Lifecycle::run`](crate::Lifecycle::run) to the
/// process exit code, by this convention:
///
/// | outcome | code |
/// |---|---|
/// | `Ok`: a clean shutdown, such as after SIGTERM or SIGINT | 0 |
/// | the shutdown was forced (a second signal, [`Handle::force_shutdown`](crate::Handle::force_shutdown)): the primary error or any attached one is [`Forced`](crate::ErrorKind::Forced) | [`FORCED_EXIT_CODE`] (130) |
/// | any other error | 1 |
///
/// A forced shutdown wins over other errors: graceful waits were skipped,
/// which is what an operator most needs to see. The error itself is not
/// printed; log it before returning the code.
///
/// # Examples
///
/// ```
/// use std::process::ExitCode;
/// use lameduck::Lifecycle;
///
/// fn main() -> ExitCode {
///     let lifecycle = Lifecycle::builder().build().unwrap();
///     lifecycle.handle().request_shutdown(None);
///     let outcome = lifecycle.run_blocking();
///     if let Err(e) = &outcome {
///         eprintln!("error: {e}");
///     }
///     assert_eq!(lameduck::exit_code(&outcome), ExitCode::SUCCESS);
///     lameduck::exit_code(&outcome)
/// }
/// ```
pub fn exit_code(outcome: &Result<Report, Error>) -> ExitCode {
    match outcome {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) if e.is_forced() || e.others().iter().any(Error::is_forced) => {
            ExitCode::from(FORCED_EXIT_CODE)
        }
        Err(_) => ExitCode::FAILURE,
    }
}
