//! The simulators' clock: real time shifted, or frozen.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

#[allow(clippy::wildcard_imports)]
use super::*;

/// The simulator's clock: the real time shifted by an offset, or frozen. Freezing it makes
/// every write share one timestamp, as happens on a busy real server.
#[derive(Debug, Clone, Default)]
pub struct SimClock(Arc<Mutex<ClockState>>);

#[derive(Debug, Default)]
pub(crate) struct ClockState {
    pub(crate) frozen: Option<DateTime<Utc>>,
    pub(crate) offset: TimeDelta,
}

impl SimClock {
    /// The time now.
    pub fn now(&self) -> DateTime<Utc> {
        let s = lock(&self.0);
        s.frozen.unwrap_or_else(|| Utc::now() + s.offset)
    }

    /// Stops the clock at `t`.
    pub fn freeze(&self, t: DateTime<Utc>) {
        lock(&self.0).frozen = Some(t);
    }

    /// Stops the clock where it is.
    pub fn freeze_now(&self) {
        let now = self.now();
        self.freeze(now);
    }

    /// Lets the clock run again, from where it stood.
    pub fn unfreeze(&self) {
        let mut s = lock(&self.0);
        if let Some(f) = s.frozen.take() {
            s.offset = f - Utc::now();
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        let d = TimeDelta::from_std(d).unwrap_or(TimeDelta::zero());
        let mut s = lock(&self.0);
        match &mut s.frozen {
            Some(f) => *f += d,
            None => s.offset += d,
        }
    }
}
