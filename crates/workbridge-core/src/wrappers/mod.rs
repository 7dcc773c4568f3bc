//! Wrappers that add behaviour around any [`Repository`](crate::Repository): faults, latency,
//! call recording.
//!
//! Each implements `Repository` itself, so they stack. Stack them in this order, outermost
//! first, so that each sees what it should:
//!
//! ```text
//! RecordingRepository      records every call the caller made, faults included
//!   └ FaultRepository      fails some calls, before or after the backend ran them
//!       └ ThrottledRepository   adds latency and a concurrency limit to what reaches the backend
//!           └ the backend (InMemoryRepository, an adapter)
//! ```
//!
//! ```
//! use std::time::Duration;
//! use workbridge_core::{ErrorKind, InMemoryRepository, Operation};
//! use workbridge_core::wrappers::{FaultRepository, FaultRule, RecordingRepository, ThrottledRepository};
//!
//! let backend = ThrottledRepository::new(InMemoryRepository::new("dev"), Duration::from_millis(5));
//! let faulty = FaultRepository::new(backend, 7)
//!     .with_rule(FaultRule::new(ErrorKind::Unavailable).on([Operation::Create]).ratio(0.1).reply_lost());
//! let repo = RecordingRepository::new(faulty);
//! assert_eq!(repo.calls().len(), 0);
//! ```

mod fault;
mod recording;
mod throttled;

pub use fault::{FaultRepository, FaultRule};
pub use recording::{Call, RecordingRepository};
pub use throttled::ThrottledRepository;

use std::future::Future;
use std::pin::Pin;

use crate::error::Result;
use crate::model::{ItemId, ItemType};
use crate::repository::Operation;

pub(crate) type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// What a wrapper learns of a call before it runs.
#[derive(Debug, Clone)]
pub(crate) struct CallInfo {
    pub(crate) op: Operation,
    pub(crate) item_type: Option<ItemType>,
    pub(crate) item_id: Option<ItemId>,
    pub(crate) count: usize,
}

/// A wrapper runs each call of its inner repository through `around`.
pub(crate) trait Around: Send + Sync {
    fn around<'a, T: Send + 'a>(&'a self, call: CallInfo, fut: BoxFut<'a, T>) -> BoxFut<'a, T>;
}

/// Implements `Repository` for a wrapper `$ty<R>` with an `inner: R` field and an `Around` impl.
macro_rules! wrapped_repository {
    ($ty:ident) => {
        #[async_trait::async_trait]
        impl<R: $crate::Repository> $crate::Repository for $ty<R> {
            fn capabilities(&self) -> &$crate::Capabilities {
                self.inner.capabilities()
            }
            async fn schema(&self, t: &$crate::ItemType) -> $crate::Result<$crate::Schema> {
                let c = $crate::wrappers::call($crate::Operation::Schema, Some(t), None, 1);
                self.around(c, Box::pin(self.inner.schema(t))).await
            }
            async fn changes(
                &self,
                t: &$crate::ItemType,
                since: &$crate::Cursor,
                o: &$crate::ChangeOptions,
            ) -> $crate::Result<$crate::ChangePage> {
                let c = $crate::wrappers::call($crate::Operation::Changes, Some(t), None, 1);
                self.around(c, Box::pin(self.inner.changes(t, since, o)))
                    .await
            }
            async fn get_many(
                &self,
                t: &$crate::ItemType,
                ids: &[$crate::ItemId],
                o: &$crate::GetOptions,
            ) -> $crate::Result<Vec<Option<$crate::WorkItem>>> {
                let c =
                    $crate::wrappers::call($crate::Operation::GetMany, Some(t), None, ids.len());
                self.around(c, Box::pin(self.inner.get_many(t, ids, o)))
                    .await
            }
            async fn create(
                &self,
                t: &$crate::ItemType,
                f: &$crate::FieldMap,
                o: &$crate::CreateOptions,
            ) -> $crate::Result<$crate::WorkItem> {
                let c = $crate::wrappers::call($crate::Operation::Create, Some(t), None, 1);
                self.around(c, Box::pin(self.inner.create(t, f, o))).await
            }
            async fn update(
                &self,
                t: &$crate::ItemType,
                id: &$crate::ItemId,
                ch: &$crate::FieldMap,
                o: &$crate::UpdateOptions,
            ) -> $crate::Result<$crate::WorkItem> {
                let c = $crate::wrappers::call($crate::Operation::Update, Some(t), Some(id), 1);
                self.around(c, Box::pin(self.inner.update(t, id, ch, o)))
                    .await
            }
            async fn find_by_correlation(
                &self,
                t: &$crate::ItemType,
                k: &$crate::CorrelationKey,
            ) -> $crate::Result<Option<$crate::WorkItem>> {
                let c =
                    $crate::wrappers::call($crate::Operation::FindByCorrelation, Some(t), None, 1);
                self.around(c, Box::pin(self.inner.find_by_correlation(t, k)))
                    .await
            }
            async fn find_many_by_correlation(
                &self,
                t: &$crate::ItemType,
                k: &[$crate::CorrelationKey],
            ) -> $crate::Result<Vec<Option<$crate::WorkItem>>> {
                let c = $crate::wrappers::call(
                    $crate::Operation::FindManyByCorrelation,
                    Some(t),
                    None,
                    k.len(),
                );
                self.around(c, Box::pin(self.inner.find_many_by_correlation(t, k)))
                    .await
            }
            async fn comments(
                &self,
                t: &$crate::ItemType,
                id: &$crate::ItemId,
            ) -> $crate::Result<Vec<$crate::Comment>> {
                let c = $crate::wrappers::call($crate::Operation::Comments, Some(t), Some(id), 1);
                self.around(c, Box::pin(self.inner.comments(t, id))).await
            }
            async fn add_comment(
                &self,
                t: &$crate::ItemType,
                id: &$crate::ItemId,
                cm: &$crate::NewComment,
            ) -> $crate::Result<$crate::Comment> {
                let c = $crate::wrappers::call($crate::Operation::AddComment, Some(t), Some(id), 1);
                self.around(c, Box::pin(self.inner.add_comment(t, id, cm)))
                    .await
            }
            async fn attachments(
                &self,
                t: &$crate::ItemType,
                id: &$crate::ItemId,
            ) -> $crate::Result<Vec<$crate::AttachmentMeta>> {
                let c =
                    $crate::wrappers::call($crate::Operation::Attachments, Some(t), Some(id), 1);
                self.around(c, Box::pin(self.inner.attachments(t, id)))
                    .await
            }
            async fn download(&self, a: &$crate::AttachmentMeta) -> $crate::Result<bytes::Bytes> {
                let c = $crate::wrappers::call(
                    $crate::Operation::Download,
                    Some(&a.item_type),
                    Some(&a.item_id),
                    1,
                );
                self.around(c, Box::pin(self.inner.download(a))).await
            }
            async fn upload(
                &self,
                t: &$crate::ItemType,
                id: &$crate::ItemId,
                a: &$crate::NewAttachment,
            ) -> $crate::Result<$crate::AttachmentMeta> {
                let c = $crate::wrappers::call($crate::Operation::Upload, Some(t), Some(id), 1);
                self.around(c, Box::pin(self.inner.upload(t, id, a))).await
            }
            async fn write_many(
                &self,
                w: &[$crate::Write],
            ) -> $crate::Result<Vec<$crate::Result<$crate::WorkItem>>> {
                let c = $crate::wrappers::call($crate::Operation::WriteMany, None, None, w.len());
                self.around(c, Box::pin(self.inner.write_many(w))).await
            }
            async fn revision_after(
                &self,
                t: &$crate::ItemType,
                id: &$crate::ItemId,
                v: &$crate::Version,
                n: u32,
            ) -> $crate::Result<Option<$crate::WorkItem>> {
                let c =
                    $crate::wrappers::call($crate::Operation::RevisionAfter, Some(t), Some(id), 1);
                self.around(c, Box::pin(self.inner.revision_after(t, id, v, n)))
                    .await
            }
            async fn written_since(
                &self,
                t: &$crate::ItemType,
                id: &$crate::ItemId,
                f: &$crate::FieldMap,
                since: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Option<bool>> {
                let c =
                    $crate::wrappers::call($crate::Operation::WrittenSince, Some(t), Some(id), 1);
                self.around(c, Box::pin(self.inner.written_since(t, id, f, since)))
                    .await
            }
            async fn attachments_since(
                &self,
                t: &$crate::ItemType,
                since: chrono::DateTime<chrono::Utc>,
                limit: usize,
            ) -> $crate::Result<Vec<$crate::AttachmentMeta>> {
                let c =
                    $crate::wrappers::call($crate::Operation::AttachmentsSince, Some(t), None, 1);
                self.around(c, Box::pin(self.inner.attachments_since(t, since, limit)))
                    .await
            }
            async fn comments_many(
                &self,
                t: &$crate::ItemType,
                ids: &[$crate::ItemId],
            ) -> $crate::Result<Vec<Vec<$crate::Comment>>> {
                let c = $crate::wrappers::call(
                    $crate::Operation::CommentsMany,
                    Some(t),
                    None,
                    ids.len(),
                );
                self.around(c, Box::pin(self.inner.comments_many(t, ids)))
                    .await
            }
            async fn holds_correlated(&self, t: &$crate::ItemType) -> $crate::Result<bool> {
                let c =
                    $crate::wrappers::call($crate::Operation::HoldsCorrelated, Some(t), None, 1);
                self.around(c, Box::pin(self.inner.holds_correlated(t)))
                    .await
            }
            async fn attachments_many(
                &self,
                t: &$crate::ItemType,
                ids: &[$crate::ItemId],
            ) -> $crate::Result<Vec<Vec<$crate::AttachmentMeta>>> {
                let c = $crate::wrappers::call(
                    $crate::Operation::AttachmentsMany,
                    Some(t),
                    None,
                    ids.len(),
                );
                self.around(c, Box::pin(self.inner.attachments_many(t, ids)))
                    .await
            }
        }
    };
}
pub(crate) use wrapped_repository;

pub(crate) fn call(
    op: Operation,
    item_type: Option<&ItemType>,
    item_id: Option<&ItemId>,
    count: usize,
) -> CallInfo {
    CallInfo {
        op,
        item_type: item_type.cloned(),
        item_id: item_id.cloned(),
        count,
    }
}
