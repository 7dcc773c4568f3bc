use std::fmt;
use std::sync::Mutex;

use super::{Around, BoxFut, CallInfo, wrapped_repository};
use crate::error::ErrorKind;
use crate::model::{ItemId, ItemType};
use crate::repository::Operation;

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Call {
    /// The operation.
    pub op: Operation,
    /// The item type, when the operation has one.
    pub item_type: Option<ItemType>,
    /// The item id, when the operation names one item.
    pub item_id: Option<ItemId>,
    /// How many ids or writes it carried (1 for single-item operations).
    pub count: usize,
    /// `None` when it succeeded, else the error kind.
    pub error: Option<ErrorKind>,
}

/// Records every call made to the inner repository, with its outcome: for asserting API-call
/// budgets ("no write was sent") in tests and benches.
pub struct RecordingRepository<R> {
    inner: R,
    log: Mutex<Vec<Call>>,
}

impl<R> RecordingRepository<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        RecordingRepository {
            inner,
            log: Mutex::new(Vec::new()),
        }
    }

    /// Every call so far, in the order they completed.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().clone()
    }

    /// How many calls of `op` were made.
    pub fn count(&self, op: Operation) -> usize {
        self.lock().iter().filter(|c| c.op == op).count()
    }

    /// How many write calls were made.
    pub fn writes(&self) -> usize {
        self.lock().iter().filter(|c| c.op.is_write()).count()
    }

    /// Forgets the calls so far.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The wrapped repository.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Call>> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<R: fmt::Debug> fmt::Debug for RecordingRepository<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingRepository")
            .field("inner", &self.inner)
            .field("calls", &self.lock().len())
            .finish()
    }
}

impl<R: fmt::Display> fmt::Display for RecordingRepository<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)
    }
}

impl<R: Send + Sync> Around for RecordingRepository<R> {
    fn around<'a, T: Send + 'a>(&'a self, call: CallInfo, fut: BoxFut<'a, T>) -> BoxFut<'a, T> {
        Box::pin(async move {
            let result = fut.await;
            self.lock().push(Call {
                op: call.op,
                item_type: call.item_type,
                item_id: call.item_id,
                count: call.count,
                error: result.as_ref().err().map(crate::Error::kind),
            });
            result
        })
    }
}

wrapped_repository!(RecordingRepository);
