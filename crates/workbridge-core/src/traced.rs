//! One `Repository` method of a backend as the outside sees it: a span around its requests,
//! and an error that names it.

use std::fmt;
use std::future::Future;

use tracing::Instrument as _;

use crate::error::Result;
use crate::model::{ItemId, ItemType};
use crate::repository::Operation;

/// Runs `call`, the body of one [`Repository`](crate::Repository) method of `system`, the way
/// every adapter's trait impl does:
///
/// - inside a DEBUG span `repository` with the fields `system`, `operation` and, where the
///   method has them, `item_type` and `item_id` — so each HTTP event below it can be tied to
///   the method and the item it served;
/// - its error, if any, names the operation (replacing one an inner call set: a method built
///   from others, comments read through a `get`, names itself), and the system, item type and
///   id unless an inner call set them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use workbridge_core::{Error, ErrorKind, ItemId, ItemType, Operation, traced};
/// let t = ItemType::from("Bug");
/// let id = ItemId::from("7");
/// let r: workbridge_core::Result<()> = traced(Operation::Comments, &"Azure DevOps fabrikam", Some(&t), Some(&id), async {
///     Err(Error::new(ErrorKind::Unavailable, "down").with_operation("get_many"))
/// })
/// .await;
/// let e = r.unwrap_err();
/// assert_eq!(e.operation(), Some("comments"));
/// assert_eq!(e.context().system.as_deref(), Some("Azure DevOps fabrikam"));
/// assert_eq!(e.context().item_id.as_ref(), Some(&id));
/// # }
/// ```
///
/// # Errors
/// The error of `call`, with its context completed.
pub async fn traced<T>(
    operation: Operation,
    system: &(dyn fmt::Display + Sync),
    item_type: Option<&ItemType>,
    item_id: Option<&ItemId>,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    let span = tracing::debug_span!(
        "repository",
        system = %system,
        operation = operation.as_str(),
        item_type = item_type.map(ItemType::as_str),
        item_id = item_id.map(ItemId::as_str),
    );
    call.instrument(span).await.map_err(|e| {
        e.in_operation(operation.as_str())
            .or_item(item_type, item_id)
            .with_system(system)
    })
}

/// Implements [`Repository`](crate::Repository) for a backend whose methods are inherent
/// `async fn`s with the trait's signatures: each trait method named calls its target through
/// [`traced`] (span and error context), `capabilities` returns the type's `capabilities` field,
/// and the methods not named keep the trait's defaults. The adapters' `lib.rs` is this one
/// call; a connector of your own can use it too.
///
/// ```
/// use workbridge_core::*;
///
/// #[derive(Debug)]
/// struct Acme {
///     capabilities: Capabilities,
/// }
///
/// impl std::fmt::Display for Acme {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("acme")
///     }
/// }
///
/// impl Acme {
///     async fn nothing<T>(&self) -> Result<T> {
///         Err(Error::new(ErrorKind::Unavailable, "down"))
///     }
///     async fn do_schema(&self, _: &ItemType) -> Result<Schema> { self.nothing().await }
///     async fn scan(&self, _: &ItemType, _: &Cursor, _: &ChangeOptions) -> Result<ChangePage> { self.nothing().await }
///     async fn do_get_many(&self, _: &ItemType, _: &[ItemId], _: &GetOptions) -> Result<Vec<Option<WorkItem>>> { self.nothing().await }
///     async fn do_create(&self, _: &ItemType, _: &FieldMap, _: &CreateOptions) -> Result<WorkItem> { self.nothing().await }
///     async fn do_update(&self, _: &ItemType, _: &ItemId, _: &FieldMap, _: &UpdateOptions) -> Result<WorkItem> { self.nothing().await }
///     async fn do_find(&self, _: &ItemType, _: &CorrelationKey) -> Result<Option<WorkItem>> { self.nothing().await }
///     async fn do_comments(&self, _: &ItemType, _: &ItemId) -> Result<Vec<Comment>> { self.nothing().await }
///     async fn do_add_comment(&self, _: &ItemType, _: &ItemId, _: &NewComment) -> Result<Comment> { self.nothing().await }
///     async fn do_attachments(&self, _: &ItemType, _: &ItemId) -> Result<Vec<AttachmentMeta>> { self.nothing().await }
///     async fn do_download(&self, _: &AttachmentMeta) -> Result<Bytes> { self.nothing().await }
///     async fn do_upload(&self, _: &ItemType, _: &ItemId, _: &NewAttachment) -> Result<AttachmentMeta> { self.nothing().await }
/// }
///
/// workbridge_core::traced_repository!(Acme {
///     schema => do_schema,
///     changes => scan,
///     get_many => do_get_many,
///     create => do_create,
///     update => do_update,
///     find_by_correlation => do_find,
///     comments => do_comments,
///     add_comment => do_add_comment,
///     attachments => do_attachments,
///     download => do_download,
///     upload => do_upload,
/// });
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let acme = Acme { capabilities: Capabilities::default() };
/// let e = acme.get(&ItemType::from("Bug"), &ItemId::from("7")).await.unwrap_err();
/// assert_eq!(e.operation(), Some("get_many"));
/// assert_eq!(e.context().system.as_deref(), Some("acme"));
/// # }
/// ```
#[macro_export]
macro_rules! traced_repository {
    ($ty:ty { $($method:ident => $target:ident),* $(,)? }) => {
        $crate::__traced_repository!(@munch $ty; []; $($method => $target,)*);
    };
}

/// The methods of [`traced_repository!`], one at a time.
#[doc(hidden)]
#[macro_export]
macro_rules! __traced_repository {
    (@munch $ty:ty; [$($acc:tt)*];) => {
        /// Each method is one call into the module of its concern, through
        /// [`traced`](workbridge_core::traced): a span around its requests, and its error
        /// naming the operation, the system and the item.
        #[$crate::async_trait]
        impl $crate::Repository for $ty {
            fn capabilities(&self) -> &$crate::Capabilities {
                &self.capabilities
            }
            $($acc)*
        }
    };
    (@munch $ty:ty; [$($acc:tt)*]; schema => $f:ident, $($rest:tt)*) => {
        $crate::__traced_repository!(@munch $ty; [$($acc)*
            async fn schema(&self, t: &$crate::ItemType) -> $crate::Result<$crate::Schema> {
                $crate::traced($crate::Operation::Schema, self, Some(t), None, self.$f(t)).await
            }
        ]; $($rest)*);
    };
    (@munch $ty:ty; [$($acc:tt)*]; changes => $f:ident, $($rest:tt)*) => {
        $crate::__traced_repository!(@munch $ty; [$($acc)*
            async fn changes(
                &self,
                t: &$crate::ItemType,
                since: &$crate::Cursor,
                o: &$crate::ChangeOptions,
            ) -> $crate::Result<$crate::ChangePage> {
                $crate::traced($crate::Operation::Changes, self, Some(t), None, self.$f(t, since, o)).await
            }
        ]; $($rest)*);
    };
    (@munch $ty:ty; [$($acc:tt)*]; get_many => $f:ident, $($rest:tt)*) => {
        $crate::__traced_repository!(@munch $ty; [$($acc)*
            async fn get_many(
                &self,
                t: &$crate::ItemType,
                ids: &[$crate::ItemId],
                o: &$crate::GetOptions,
            ) -> $crate::Result<Vec<Option<$crate::WorkItem>>> {
                $crate::traced($crate::Operation::GetMany, self, Some(t), None, self.$f(t, ids, o)).await
            }
        ]; $($rest)*);
    };
    (@munch $ty:ty; [$($acc:tt)*]; create => $f:ident, $($rest:tt)*) => {
        $crate::__traced_repository!(@munch $ty; [$($acc)*
            async fn create(
                &self,
                t: &$crate::ItemType,
                fields: &$crate::FieldMap,
                o: &$crate::CreateOptions,
            ) -> $crate::Result<$crate::WorkItem> {
                $crate::traced($crate::Operation::Create, self, Some(t), None, self.$f(t, fields, o)).await
            }
        ]; $($rest)*);
    };
    (@munch $ty:ty; [$($acc:tt)*]; update => $f:ident, $($rest:tt)*) => {
        $crate::__traced_repository!(@munch $ty; [$($acc)*
            async fn update(
                &self,
                t: &$crate::ItemType,
                id: &$crate::ItemId,
                changes: &$crate::FieldMap,
                o: &$crate::UpdateOptions,
            ) -> $crate::Result<$crate::WorkItem> {
                $crate::traced($crate::Operation::Update, self, Some(t), Some(id), self.$f(t, id, changes, o)).await
            }
        ]; $($rest)*);
    };
    (@munch $ty:ty; [$($acc:tt)*]; revision_after => $f:ident, $($rest:tt)*) => {
        $crate::__traced_repository!(@munch $ty; [$($acc)*
            async fn revision_after(
                &self,
                t: &$crate::ItemType,
                id: &$crate::ItemId,
                version: &$crate::Version,
                n: u32,
            ) -> $crate::Result<Option<$crate::WorkItem>> {
                $crate::traced($crate::Operation::RevisionAfter, self, Some(t), Some(id), self.$f(t, id, version, n)).await
            }
        ]; $($rest)*);
    };
    (@munch $ty:ty; [$($acc:tt)*]; written_since => $f:ident, $($rest:tt)*) => {
        $crate::__traced_repository!(@munch $ty; [$($acc)*
            async fn written_since(
                &self,
                t: &$crate::ItemType,
                id: &$crate::ItemId,
                fields: &$crate::FieldMap,
                since: $crate::__chrono::DateTime<$crate::__chrono::Utc>,
            ) -> $crate::Result<Option<bool>> {
                $crate::traced($crate::Operation::WrittenSince, self, Some(t), Some(id), self.$f(t, id, fields, since)).await
            }
        ]; $($rest)*);
    };
    (@munch $ty:ty; [$($acc:tt)*]; find_by_correlation => $f:ident, $($rest:tt)*) => {
        $crate::__traced_repository!(@munch $ty; [$($acc)*
            async fn find_by_correlation(
                &self,
                t: &$crate::ItemType,
                key: &$crate::CorrelationKey,
            ) -> $crate::Result<Option<$crate::WorkItem>> {
                $crate::traced($crate::Operation::FindByCorrelation, self, Some(t), None, self.$f(t, key)).await
            }
        ]; $($rest)*);
    };
    (@munch $ty:ty; [$($acc:tt)*]; find_many_by_correlation => $f:ident, $($rest:tt)*) => {
        $crate::__traced_repository!(@munch $ty; [$($acc)*
            async fn find_many_by_correlation(
                &self,
                t: &$crate::ItemType,
                keys: &[$crate::CorrelationKey],
            ) -> $crate::Result<Vec<Option<$crate::WorkItem>>> {
                $crate::traced($crate::Operation::FindManyByCorrelation, self, Some(t), None, self.$f(t, keys)).await
            }
        ]; $($rest)*);
    };
    (@munch $ty:ty; [$($acc:tt)*]; comments => $f:ident, $($rest:tt)*) => {
        $crate::__traced_repository!(@munch $ty; [$($acc)*
            async fn comments(
                &self,
                t: &$crate::ItemType,
                id: &$crate::ItemId,
            ) -> $crate::Result<Vec<$crate::Comment>> {
                $crate::traced($crate::Operation::Comments, self, Some(t), Some(id), self.$f(t, id)).await
            }
        ]; $($rest)*);
    };
    (@munch $ty:ty; [$($acc:tt)*]; add_comment => $f:ident, $($rest:tt)*) => {
        $crate::__traced_repository!(@munch $ty; [$($acc)*
            async fn add_comment(
                &self,
                t: &$crate::ItemType,
                id: &$crate::ItemId,
                c: &$crate::NewComment,
            ) -> $crate::Result<$crate::Comment> {
                $crate::traced($crate::Operation::AddComment, self, Some(t), Some(id), self.$f(t, id, c)).await
            }
        ]; $($rest)*);
    };
    (@munch $ty:ty; [$($acc:tt)*]; attachments => $f:ident, $($rest:tt)*) => {
        $crate::__traced_repository!(@munch $ty; [$($acc)*
            async fn attachments(
                &self,
                t: &$crate::ItemType,
                id: &$crate::ItemId,
            ) -> $crate::Result<Vec<$crate::AttachmentMeta>> {
                $crate::traced($crate::Operation::Attachments, self, Some(t), Some(id), self.$f(t, id)).await
            }
        ]; $($rest)*);
    };
    (@munch $ty:ty; [$($acc:tt)*]; attachments_since => $f:ident, $($rest:tt)*) => {
        $crate::__traced_repository!(@munch $ty; [$($acc)*
            async fn attachments_since(
                &self,
                t: &$crate::ItemType,
                since: $crate::__chrono::DateTime<$crate::__chrono::Utc>,
                limit: usize,
            ) -> $crate::Result<Vec<$crate::AttachmentMeta>> {
                $crate::traced($crate::Operation::AttachmentsSince, self, Some(t), None, self.$f(t, since, limit)).await
            }
        ]; $($rest)*);
    };
    (@munch $ty:ty; [$($acc:tt)*]; comments_many => $f:ident, $($rest:tt)*) => {
        $crate::__traced_repository!(@munch $ty; [$($acc)*
            async fn comments_many(
                &self,
                t: &$crate::ItemType,
                ids: &[$crate::ItemId],
            ) -> $crate::Result<Vec<Vec<$crate::Comment>>> {
                $crate::traced($crate::Operation::CommentsMany, self, Some(t), None, self.$f(t, ids)).await
            }
        ]; $($rest)*);
    };
    (@munch $ty:ty; [$($acc:tt)*]; attachments_many => $f:ident, $($rest:tt)*) => {
        $crate::__traced_repository!(@munch $ty; [$($acc)*
            async fn attachments_many(
                &self,
                t: &$crate::ItemType,
                ids: &[$crate::ItemId],
            ) -> $crate::Result<Vec<Vec<$crate::AttachmentMeta>>> {
                $crate::traced($crate::Operation::AttachmentsMany, self, Some(t), None, self.$f(t, ids)).await
            }
        ]; $($rest)*);
    };
    (@munch $ty:ty; [$($acc:tt)*]; holds_correlated => $f:ident, $($rest:tt)*) => {
        $crate::__traced_repository!(@munch $ty; [$($acc)*
            async fn holds_correlated(&self, t: &$crate::ItemType) -> $crate::Result<bool> {
                $crate::traced($crate::Operation::HoldsCorrelated, self, Some(t), None, self.$f(t)).await
            }
        ]; $($rest)*);
    };
    (@munch $ty:ty; [$($acc:tt)*]; download => $f:ident, $($rest:tt)*) => {
        $crate::__traced_repository!(@munch $ty; [$($acc)*
            async fn download(&self, a: &$crate::AttachmentMeta) -> $crate::Result<$crate::Bytes> {
                $crate::traced($crate::Operation::Download, self, Some(&a.item_type), Some(&a.item_id), self.$f(a)).await
            }
        ]; $($rest)*);
    };
    (@munch $ty:ty; [$($acc:tt)*]; upload => $f:ident, $($rest:tt)*) => {
        $crate::__traced_repository!(@munch $ty; [$($acc)*
            async fn upload(
                &self,
                t: &$crate::ItemType,
                id: &$crate::ItemId,
                a: &$crate::NewAttachment,
            ) -> $crate::Result<$crate::AttachmentMeta> {
                $crate::traced($crate::Operation::Upload, self, Some(t), Some(id), self.$f(t, id, a)).await
            }
        ]; $($rest)*);
    };
    (@munch $ty:ty; [$($acc:tt)*]; write_many => $f:ident, $($rest:tt)*) => {
        $crate::__traced_repository!(@munch $ty; [$($acc)*
            async fn write_many(
                &self,
                writes: &[$crate::Write],
            ) -> $crate::Result<Vec<$crate::Result<$crate::WorkItem>>> {
                $crate::traced($crate::Operation::WriteMany, self, None, None, self.$f(writes)).await
            }
        ]; $($rest)*);
    };
}
