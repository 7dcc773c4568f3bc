//! The [`Repository`] trait every backend implements, and [`RepositoryExt`].

use std::fmt::{Debug, Display};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::error::{Error, ErrorKind, Result};
use crate::model::{
    AttachmentMeta, Capabilities, ChangeOptions, ChangePage, Comment, CorrelationKey,
    CreateOptions, Cursor, FieldMap, FieldName, FieldValue, GetOptions, ItemId, ItemType,
    NewAttachment, NewComment, UpdateOptions, Version, WorkItem, Write,
};
use crate::schema::Schema;

/// The operations of [`Repository`], for logs, fault rules and call accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Operation {
    /// [`Repository::schema`].
    Schema,
    /// [`Repository::changes`].
    Changes,
    /// [`Repository::get_many`].
    GetMany,
    /// [`Repository::create`].
    Create,
    /// [`Repository::update`].
    Update,
    /// [`Repository::find_by_correlation`].
    FindByCorrelation,
    /// [`Repository::find_many_by_correlation`].
    FindManyByCorrelation,
    /// [`Repository::comments`].
    Comments,
    /// [`Repository::add_comment`].
    AddComment,
    /// [`Repository::attachments`].
    Attachments,
    /// [`Repository::download`].
    Download,
    /// [`Repository::upload`].
    Upload,
    /// [`Repository::write_many`].
    WriteMany,
    /// [`Repository::revision_after`].
    RevisionAfter,
    /// [`Repository::attachments_since`].
    AttachmentsSince,
    /// [`Repository::comments_many`].
    CommentsMany,
    /// [`Repository::attachments_many`].
    AttachmentsMany,
    /// [`Repository::holds_correlated`].
    HoldsCorrelated,
    /// [`Repository::written_since`].
    WrittenSince,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 19] = [
        Operation::Schema,
        Operation::Changes,
        Operation::GetMany,
        Operation::Create,
        Operation::Update,
        Operation::FindByCorrelation,
        Operation::FindManyByCorrelation,
        Operation::Comments,
        Operation::AddComment,
        Operation::Attachments,
        Operation::Download,
        Operation::Upload,
        Operation::WriteMany,
        Operation::RevisionAfter,
        Operation::AttachmentsSince,
        Operation::CommentsMany,
        Operation::AttachmentsMany,
        Operation::HoldsCorrelated,
        Operation::WrittenSince,
    ];

    /// The method name (`create`, `get_many`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Schema => "schema",
            Operation::Changes => "changes",
            Operation::GetMany => "get_many",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::FindByCorrelation => "find_by_correlation",
            Operation::FindManyByCorrelation => "find_many_by_correlation",
            Operation::Comments => "comments",
            Operation::AddComment => "add_comment",
            Operation::Attachments => "attachments",
            Operation::Download => "download",
            Operation::Upload => "upload",
            Operation::WriteMany => "write_many",
            Operation::RevisionAfter => "revision_after",
            Operation::AttachmentsSince => "attachments_since",
            Operation::CommentsMany => "comments_many",
            Operation::AttachmentsMany => "attachments_many",
            Operation::HoldsCorrelated => "holds_correlated",
            Operation::WrittenSince => "written_since",
        }
    }

    /// Whether the operation changes data.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Operation::Create
                | Operation::Update
                | Operation::AddComment
                | Operation::Upload
                | Operation::WriteMany
        )
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A store of work items: one system (a ServiceNow instance, an Azure DevOps project, an ALM
/// project), or the in-memory reference backend.
///
/// Object safe; used as `Arc<dyn Repository>`. Every method's contract is written under
/// `# Behavior`, and the conformance suite (`workbridge-testkit`) checks it on every backend.
/// `Display` names the system for messages (`servicenow:https://acme.service-now.com`).
///
/// Every error names its operation; temporary errors ([`Error::is_temporary`]) may be retried
/// unchanged, the others may not.
#[async_trait]
pub trait Repository: Debug + Display + Send + Sync + 'static {
    /// What this backend can do.
    ///
    /// # Behavior
    /// Constant for the life of the value. Operations it marks unsupported fail with
    /// [`ErrorKind::Unsupported`] and change nothing.
    fn capabilities(&self) -> &Capabilities;

    /// The fields and workflow of an item type.
    ///
    /// # Behavior
    /// Unknown type → [`ErrorKind::NotFound`]. Adapters cache the metadata; a fresh call after
    /// the cache is refreshed reflects server changes.
    async fn schema(&self, item_type: &ItemType) -> Result<Schema>;

    /// Items changed at or after `since`, ascending by `(changed_at, id)`.
    ///
    /// # Behavior
    /// - At least once: an item may appear again (on a later page or call), but no change is
    ///   ever skipped: an item that changes while the caller pages appears again later, and
    ///   items that share a timestamp are all returned, whatever the page size.
    /// - `page.next` continues the scan; when `has_more` is false it is the place to resume
    ///   from later (persist it; it serializes with serde).
    /// - Each item is returned at its current version.
    /// - Unknown type → [`ErrorKind::NotFound`].
    async fn changes(
        &self,
        item_type: &ItemType,
        since: &Cursor,
        options: &ChangeOptions,
    ) -> Result<ChangePage>;

    /// Reads items by id, batching requests up to the API's limit.
    ///
    /// # Behavior
    /// Returns one entry per requested id, in the same order; `None` for an id that does not
    /// exist (a missing id is not an error). Duplicated ids give duplicated entries.
    async fn get_many(
        &self,
        item_type: &ItemType,
        ids: &[ItemId],
        options: &GetOptions,
    ) -> Result<Vec<Option<WorkItem>>>;

    /// Creates an item.
    ///
    /// # Behavior
    /// Returns the item as stored (with server-assigned fields). `options.correlation` is
    /// recorded in the same request, so [`Repository::find_by_correlation`] finds the item even
    /// when the reply is lost. A value the target rejects → [`ErrorKind::InvalidInput`] naming
    /// the field and value; nothing is created.
    async fn create(
        &self,
        item_type: &ItemType,
        fields: &FieldMap,
        options: &CreateOptions,
    ) -> Result<WorkItem>;

    /// Changes some fields of an item.
    ///
    /// # Behavior
    /// Fields not named are left alone; `FieldValue::Null` clears a field. Returns the item as
    /// stored afterwards, with a new version. With `options.if_version`, a stale version →
    /// [`ErrorKind::Conflict`] and nothing is written (where the API can tell: see
    /// [`Capabilities::optimistic_concurrency`]). An adapter that checks the version with a read
    /// before the write, because the API has no conditional write, also answers
    /// [`ErrorKind::Conflict`] when the write's answer shows that another change came in
    /// between — then the write *was* applied; read the item again. Missing item →
    /// [`ErrorKind::NotFound`]. Requests are not sent after the task's write deadline
    /// ([`fence`](crate::fence)), if it has one.
    /// A state change the workflow forbids → [`ErrorKind::InvalidTransition`] naming from and
    /// to; a rejected value → [`ErrorKind::InvalidInput`] naming field and value.
    async fn update(
        &self,
        item_type: &ItemType,
        id: &ItemId,
        changes: &FieldMap,
        options: &UpdateOptions,
    ) -> Result<WorkItem>;

    /// Finds the item created with this correlation key.
    ///
    /// # Behavior
    /// `None` when no item carries the key.
    async fn find_by_correlation(
        &self,
        item_type: &ItemType,
        key: &CorrelationKey,
    ) -> Result<Option<WorkItem>>;

    /// Finds the items created with these correlation keys: one entry per key, in order.
    ///
    /// # Behavior
    /// Each entry is what [`Repository::find_by_correlation`] returns for its key. Adapters
    /// answer in as few requests as the API allows; the default asks key by key.
    async fn find_many_by_correlation(
        &self,
        item_type: &ItemType,
        keys: &[CorrelationKey],
    ) -> Result<Vec<Option<WorkItem>>> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.find_by_correlation(item_type, k).await?);
        }
        Ok(out)
    }

    /// The comments on an item, oldest first.
    ///
    /// # Behavior
    /// Each comment keeps its id across calls. Missing item → [`ErrorKind::NotFound`].
    async fn comments(&self, item_type: &ItemType, id: &ItemId) -> Result<Vec<Comment>>;

    /// Adds a comment.
    ///
    /// # Behavior
    /// Returns the comment as stored; it is the last one [`Repository::comments`] returns.
    /// Internal visibility where unsupported → [`ErrorKind::Unsupported`].
    async fn add_comment(
        &self,
        item_type: &ItemType,
        id: &ItemId,
        comment: &NewComment,
    ) -> Result<Comment>;

    /// The attachments of an item.
    ///
    /// # Behavior
    /// Missing item → [`ErrorKind::NotFound`].
    async fn attachments(&self, item_type: &ItemType, id: &ItemId) -> Result<Vec<AttachmentMeta>>;

    /// The content of an attachment, byte for byte as uploaded.
    ///
    /// # Behavior
    /// Missing attachment → [`ErrorKind::NotFound`].
    async fn download(&self, attachment: &AttachmentMeta) -> Result<Bytes>;

    /// Attaches a file to an item.
    ///
    /// # Behavior
    /// Returns the stored metadata; over [`Capabilities::max_attachment_size`] →
    /// [`ErrorKind::InvalidInput`].
    async fn upload(
        &self,
        item_type: &ItemType,
        id: &ItemId,
        attachment: &NewAttachment,
    ) -> Result<AttachmentMeta>;

    /// Performs many writes in as few requests as the API allows.
    ///
    /// # Behavior
    /// One result per write, in order; one write failing does not stop the others. The outer
    /// error is for a failure of the whole request (nothing was applied, or it is unknown
    /// what was). The default implementation performs the writes one by one.
    async fn write_many(&self, writes: &[Write]) -> Result<Vec<Result<WorkItem>>> {
        let mut out = Vec::with_capacity(writes.len());
        for w in writes {
            out.push(match w {
                Write::Create {
                    item_type,
                    fields,
                    options,
                } => self.create(item_type, fields, options).await,
                Write::Update {
                    item_type,
                    id,
                    changes,
                    options,
                } => self.update(item_type, id, changes, options).await,
            });
        }
        Ok(out)
    }

    /// The item as it stood `n` changes after `version` (`n` ≥ 1): the item's own history,
    /// which tells whether a write whose answer was lost landed, though the item has changed
    /// since (ADR 0014).
    ///
    /// # Behavior
    /// `None` when the item has had fewer than `n` changes since `version`. The fields are as
    /// [`Repository::get_many`] reads them. Backends that keep no history
    /// ([`Capabilities::history`] false) answer [`ErrorKind::Unsupported`], which the default
    /// does. Missing item → [`ErrorKind::NotFound`].
    async fn revision_after(
        &self,
        item_type: &ItemType,
        id: &ItemId,
        version: &Version,
        n: u32,
    ) -> Result<Option<WorkItem>> {
        let _ = (item_type, id, version, n);
        Err(Error::unsupported(
            "revision_after",
            format!("{self} keeps no item history"),
        ))
    }

    /// Whether the item's audit trail shows each of `fields` set to its value by a change made
    /// at or after `since`: for backends whose history cannot be read by version but records
    /// which field changed to what, and when (ALM's audits). It tells whether a write whose
    /// answer was lost landed though the item has since been set back to the values before it
    /// (ADR 0025).
    ///
    /// # Behavior
    /// `Some(true)` when, for every field, a change at or after `since` set it to the value
    /// given; `Some(false)` when the trail records every one of these fields and at least one
    /// was not so set; `None` when it cannot tell — a field it does not record, or no trail at
    /// all (the default). Missing item → [`ErrorKind::NotFound`].
    async fn written_since(
        &self,
        item_type: &ItemType,
        id: &ItemId,
        fields: &FieldMap,
        since: DateTime<Utc>,
    ) -> Result<Option<bool>> {
        let _ = (item_type, id, fields, since);
        Ok(None)
    }

    /// The comments of many items, each list oldest first, in the order of `ids`: what a sync
    /// lists for a page of items at once.
    ///
    /// # Behavior
    /// One list per id, in order, each as [`Repository::comments`] gives it. The caller has just
    /// read the items: an item that is gone may answer an empty list rather than
    /// [`ErrorKind::NotFound`]. The default lists them one by one; adapters whose API can list
    /// the comments of many items in one request do so.
    async fn comments_many(
        &self,
        item_type: &ItemType,
        ids: &[ItemId],
    ) -> Result<Vec<Vec<Comment>>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.comments(item_type, id).await?);
        }
        Ok(out)
    }

    /// The attachments of many items, in the order of `ids`: what a sync lists for a page of
    /// items at once.
    ///
    /// # Behavior
    /// One list per id, in order, each as [`Repository::attachments`] gives it. The caller has
    /// just read the items: an item that is gone may answer an empty list rather than
    /// [`ErrorKind::NotFound`]. The default lists them one by one.
    async fn attachments_many(
        &self,
        item_type: &ItemType,
        ids: &[ItemId],
    ) -> Result<Vec<Vec<AttachmentMeta>>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.attachments(item_type, id).await?);
        }
        Ok(out)
    }

    /// Whether any item of `item_type` carries a correlation key: a sync about to create the
    /// twins of a backlog asks once, and looks the twins up only if some may exist (a store
    /// lost or started afresh beside twins made before).
    ///
    /// # Behavior
    /// `false` only when no item carries one; an adapter that cannot tell answers `true`, as
    /// the default does where [`Capabilities::correlation`] holds.
    async fn holds_correlated(&self, item_type: &ItemType) -> Result<bool> {
        let _ = item_type;
        Ok(self.capabilities().correlation)
    }

    /// Attachments added to items of `item_type` at or after `since`, oldest first, at most
    /// `limit`: on a system where attaching a file leaves the item itself unchanged (ServiceNow,
    /// ALM), [`Repository::changes`] never shows it, and this does (ADR 0016).
    ///
    /// # Behavior
    /// Every attachment created at or after `since` (at the system's precision), oldest first,
    /// each with `created_at`; a caller that asks again from the newest `created_at` it saw
    /// misses none. Backends whose `changes` already shows an item when a file is attached
    /// (Azure DevOps: a new revision) answer [`ErrorKind::Unsupported`], as the default does.
    async fn attachments_since(
        &self,
        item_type: &ItemType,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AttachmentMeta>> {
        let _ = (item_type, since, limit);
        Err(Error::unsupported(
            "attachments_since",
            format!("{self} shows an item in `changes` when a file is attached"),
        ))
    }
}

macro_rules! forward_repository {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<R: Repository + ?Sized> Repository for $ty {
            fn capabilities(&self) -> &Capabilities {
                (**self).capabilities()
            }
            async fn schema(&self, t: &ItemType) -> Result<Schema> {
                (**self).schema(t).await
            }
            async fn changes(&self, t: &ItemType, since: &Cursor, o: &ChangeOptions) -> Result<ChangePage> {
                (**self).changes(t, since, o).await
            }
            async fn get_many(&self, t: &ItemType, ids: &[ItemId], o: &GetOptions) -> Result<Vec<Option<WorkItem>>> {
                (**self).get_many(t, ids, o).await
            }
            async fn create(&self, t: &ItemType, f: &FieldMap, o: &CreateOptions) -> Result<WorkItem> {
                (**self).create(t, f, o).await
            }
            async fn update(&self, t: &ItemType, id: &ItemId, c: &FieldMap, o: &UpdateOptions) -> Result<WorkItem> {
                (**self).update(t, id, c, o).await
            }
            async fn find_by_correlation(&self, t: &ItemType, k: &CorrelationKey) -> Result<Option<WorkItem>> {
                (**self).find_by_correlation(t, k).await
            }
            async fn find_many_by_correlation(&self, t: &ItemType, k: &[CorrelationKey]) -> Result<Vec<Option<WorkItem>>> {
                (**self).find_many_by_correlation(t, k).await
            }
            async fn comments(&self, t: &ItemType, id: &ItemId) -> Result<Vec<Comment>> {
                (**self).comments(t, id).await
            }
            async fn add_comment(&self, t: &ItemType, id: &ItemId, c: &NewComment) -> Result<Comment> {
                (**self).add_comment(t, id, c).await
            }
            async fn attachments(&self, t: &ItemType, id: &ItemId) -> Result<Vec<AttachmentMeta>> {
                (**self).attachments(t, id).await
            }
            async fn download(&self, a: &AttachmentMeta) -> Result<Bytes> {
                (**self).download(a).await
            }
            async fn upload(&self, t: &ItemType, id: &ItemId, a: &NewAttachment) -> Result<AttachmentMeta> {
                (**self).upload(t, id, a).await
            }
            async fn write_many(&self, w: &[Write]) -> Result<Vec<Result<WorkItem>>> {
                (**self).write_many(w).await
            }
            async fn revision_after(&self, t: &ItemType, id: &ItemId, v: &Version, n: u32) -> Result<Option<WorkItem>> {
                (**self).revision_after(t, id, v, n).await
            }
            async fn written_since(&self, t: &ItemType, id: &ItemId, f: &FieldMap, since: DateTime<Utc>) -> Result<Option<bool>> {
                (**self).written_since(t, id, f, since).await
            }
            async fn attachments_since(&self, t: &ItemType, since: DateTime<Utc>, limit: usize) -> Result<Vec<AttachmentMeta>> {
                (**self).attachments_since(t, since, limit).await
            }
            async fn comments_many(&self, t: &ItemType, ids: &[ItemId]) -> Result<Vec<Vec<Comment>>> {
                (**self).comments_many(t, ids).await
            }
            async fn holds_correlated(&self, t: &ItemType) -> Result<bool> {
                (**self).holds_correlated(t).await
            }
            async fn attachments_many(&self, t: &ItemType, ids: &[ItemId]) -> Result<Vec<Vec<AttachmentMeta>>> {
                (**self).attachments_many(t, ids).await
            }
        }
    )*};
}

forward_repository!(Arc<R>, Box<R>);

/// Conveniences over [`Repository`], implemented once for every repository.
#[async_trait]
pub trait RepositoryExt: Repository {
    /// Reads one item.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when it does not exist.
    async fn get(&self, item_type: &ItemType, id: &ItemId) -> Result<WorkItem> {
        self.get_opt(item_type, id)
            .await?
            .ok_or_else(|| Error::not_found(item_type, id).with_operation("get"))
    }

    /// Reads one item, `None` when it does not exist.
    async fn get_opt(&self, item_type: &ItemType, id: &ItemId) -> Result<Option<WorkItem>> {
        let mut items = self
            .get_many(item_type, std::slice::from_ref(id), &GetOptions::default())
            .await?;
        match items.pop() {
            Some(item) if items.is_empty() => Ok(item),
            _ => Err(Error::new(
                ErrorKind::Protocol,
                "get_many returned a number of entries other than the number of ids",
            )
            .with_operation("get")),
        }
    }

    /// Sets one field of an item.
    async fn set_field(
        &self,
        item_type: &ItemType,
        id: &ItemId,
        field: impl Into<FieldName> + Send,
        value: impl Into<FieldValue> + Send,
    ) -> Result<WorkItem> {
        let changes = FieldMap::new().with(field, value);
        self.update(item_type, id, &changes, &UpdateOptions::default())
            .await
    }

    /// Reads every change since `since`, page by page, until no more are waiting. Returns the
    /// items (at least once each) and the cursor to resume from.
    async fn all_changes(
        &self,
        item_type: &ItemType,
        since: &Cursor,
        options: &ChangeOptions,
    ) -> Result<(Vec<WorkItem>, Cursor)> {
        let mut cursor = since.clone();
        let mut items = Vec::new();
        loop {
            let page = self.changes(item_type, &cursor, options).await?;
            items.extend(page.items);
            cursor = page.next;
            if !page.has_more {
                return Ok((items, cursor));
            }
        }
    }
}

impl<R: Repository + ?Sized> RepositoryExt for R {}
