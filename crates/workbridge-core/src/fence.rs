//! Write deadlines: a bound on when the requests of a write may still be sent.
//!
//! A sync worker owns a pair only while its lease lasts. A write that is still being sent — or
//! retried — after the lease ran out may land beside the next worker's writes and overwrite
//! newer values with older ones; a system without a conditional write (ServiceNow) cannot refuse
//! it. So the sync kernel runs every remote write [`within`] a deadline short of the lease's
//! expiry, and the HTTP layer of every adapter honours [`deadline`]: no attempt starts after it,
//! no retry waits past it, and each attempt's timeout ends at it.
//!
//! The deadline is carried by the task (a task-local value), so it reaches every request a write
//! makes — the read that checks a version, the write, its retries — without being threaded
//! through the [`Repository`](crate::Repository) methods. Futures spawned onto other tasks do
//! not inherit it.
//!
//! ```
//! use std::time::Duration;
//! use tokio::time::Instant;
//! use workbridge_core::fence;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! assert!(fence::deadline().is_none());
//! let at = Instant::now() + Duration::from_secs(5);
//! let seen = fence::within(at, async { fence::deadline() }).await;
//! assert_eq!(seen, Some(at));
//! # }
//! ```

use std::future::Future;

use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `f` with writes fenced at `deadline`: requests made while polling `f` are not sent
/// after it. An inner deadline replaces an outer one while the inner future runs, unless the
/// outer is earlier.
pub async fn within<F: Future>(at: Instant, f: F) -> F::Output {
    let at = deadline().map_or(at, |outer| outer.min(at));
    DEADLINE.scope(at, f).await
}

/// The deadline of the write being run, if it has one.
pub fn deadline() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_earlier_deadline_wins_when_nested() {
        let now = Instant::now();
        let (near, far) = (now + Duration::from_secs(1), now + Duration::from_secs(60));
        let inner = within(near, within(far, async { deadline() })).await;
        assert_eq!(inner, Some(near));
        let inner = within(far, within(near, async { deadline() })).await;
        assert_eq!(inner, Some(near));
        assert_eq!(deadline(), None);
    }
}
