//! The log line of a failing probe, like the apiserver's, at most one per
//! probe per [`INTERVAL`]: a prober hitting a failing endpoint every second
//! (or an attacker hitting it in a loop) cannot flood the log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::latch::lock;

/// The shortest time between two lines about the same probe.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

/// One slot per probe path: `livez`, `readyz`, `startupz`, `healthz`.
#[derive(Debug, Default)]
pub(crate) struct FailureLog {
    slots: Mutex<[Slot; 4]>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    last: Option<Instant>,
    suppressed: u64,
}

impl FailureLog {
    /// Whether a failure of probe `slot` seen at `now` is logged. `Some`
    /// carries how many failures were left out since the last line.
    pub(crate) fn admit(&self, slot: usize, now: Instant) -> Option<u64> {
        let mut slots = lock(&self.slots);
        let s = slots.get_mut(slot)?;
        match s.last {
            Some(last) if now.saturating_duration_since(last) < INTERVAL => {
                s.suppressed += 1;
                None
            }
            _ => {
                s.last = Some(now);
                Some(std::mem::take(&mut s.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_probe_per_interval_with_the_count_left_out() {
        let log = FailureLog::default();
        let t0 = Instant::now();
        assert_eq!(log.admit(1, t0), Some(0));
        assert_eq!(log.admit(1, t0 + Duration::from_secs(1)), None);
        assert_eq!(log.admit(1, t0 + Duration::from_secs(9)), None);
        // Another probe has its own slot.
        assert_eq!(log.admit(0, t0 + Duration::from_secs(9)), Some(0));
        assert_eq!(log.admit(1, t0 + INTERVAL), Some(2));
        assert_eq!(log.admit(1, t0 + INTERVAL), None);
        // An unknown slot is never logged, never panics.
        assert_eq!(log.admit(99, t0), None);
    }
}
