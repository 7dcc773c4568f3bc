use std::fmt;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::{Around, BoxFut, CallInfo, wrapped_repository};
use crate::error::{Error, ErrorKind};

/// Adds latency to every call of the inner repository, and optionally limits how many calls
/// run at once: a stand-in for a remote system in benches and tests.
pub struct ThrottledRepository<R> {
    inner: R,
    latency: Duration,
    limit: Option<Semaphore>,
}

impl<R> ThrottledRepository<R> {
    /// Wraps `inner`, delaying every call by `latency`.
    pub fn new(inner: R, latency: Duration) -> Self {
        ThrottledRepository {
            inner,
            latency,
            limit: None,
        }
    }

    /// Lets at most `n` calls run at once (at least one); the others wait their turn.
    #[must_use]
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.limit = Some(Semaphore::new(n.max(1)));
        self
    }

    /// The wrapped repository.
    pub fn inner(&self) -> &R {
        &self.inner
    }
}

impl<R: fmt::Debug> fmt::Debug for ThrottledRepository<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottledRepository")
            .field("inner", &self.inner)
            .field("latency", &self.latency)
            .finish_non_exhaustive()
    }
}

impl<R: fmt::Display> fmt::Display for ThrottledRepository<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)
    }
}

impl<R: Send + Sync> Around for ThrottledRepository<R> {
    fn around<'a, T: Send + 'a>(&'a self, call: CallInfo, fut: BoxFut<'a, T>) -> BoxFut<'a, T> {
        Box::pin(async move {
            let _permit = match &self.limit {
                Some(s) => Some(s.acquire().await.map_err(|_| {
                    Error::new(ErrorKind::Unavailable, "the repository is shutting down")
                        .with_operation(call.op.as_str())
                })?),
                None => None,
            };
            tokio::time::sleep(self.latency).await;
            fut.await
        })
    }
}

wrapped_repository!(ThrottledRepository);
