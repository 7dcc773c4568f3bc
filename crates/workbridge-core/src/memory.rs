//! [`InMemoryRepository`], the reference backend.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use crate::error::{Error, ErrorKind, Result};
use crate::model::{
    AttachmentMeta, Capabilities, ChangeOptions, ChangePage, Comment, CorrelationKey,
    CreateOptions, Cursor, FieldMap, FieldValue, GetOptions, ItemId, ItemType, NewAttachment,
    NewComment, UpdateOptions, Version, WorkItem,
};
use crate::repository::Repository;
use crate::schema::Schema;

/// A clock tests can set and advance; share it with an [`InMemoryRepository`] to control
/// `changed_at` (for instance, to make hundreds of items share one second).
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock(Arc::new(Mutex::new(start)))
    }

    /// The time it shows.
    pub fn now(&self) -> DateTime<Utc> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the time.
    pub fn set(&self, t: DateTime<Utc>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = t;
    }

    /// Moves the time forward.
    pub fn advance(&self, d: Duration) {
        let mut t = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *t += TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
    }
}

#[derive(Debug, Clone)]
enum Clock {
    System,
    Manual(ManualClock),
}

/// Builds an [`InMemoryRepository`].
#[derive(Debug, Clone)]
pub struct InMemoryRepositoryBuilder {
    name: String,
    schemas: Vec<Schema>,
    open_types: bool,
    clock: Clock,
    resolution: Duration,
    default_page_size: usize,
    capabilities: Capabilities,
}

impl InMemoryRepositoryBuilder {
    /// Registers an item type with its schema: writes are validated against it and its
    /// workflow is enforced.
    #[must_use]
    pub fn schema(mut self, schema: Schema) -> Self {
        self.schemas.push(schema);
        self
    }

    /// Whether types without a schema are accepted (with any fields). Default: true.
    #[must_use]
    pub fn open_types(mut self, open: bool) -> Self {
        self.open_types = open;
        self
    }

    /// Uses a manual clock for `changed_at`.
    #[must_use]
    pub fn clock(mut self, clock: ManualClock) -> Self {
        self.clock = Clock::Manual(clock);
        self
    }

    /// The precision of `changed_at` (default 1 ms; real systems use 1 s or 1 ms). Coarser
    /// precision makes items share timestamps, as on ServiceNow and ALM.
    #[must_use]
    pub fn timestamp_precision(mut self, precision: Duration) -> Self {
        self.resolution = precision;
        self
    }

    /// The page size `changes` uses when the caller gives none (default 100).
    #[must_use]
    pub fn default_page_size(mut self, n: usize) -> Self {
        self.default_page_size = n.max(1);
        self
    }

    /// Largest attachment accepted.
    #[must_use]
    pub fn max_attachment_size(mut self, bytes: u64) -> Self {
        self.capabilities.max_attachment_size = Some(bytes);
        self
    }

    /// Builds the repository.
    ///
    /// Its capabilities are all on, except that `schema`, `workflow` and `validates_fields`
    /// are on only when at least one schema is registered (types without a schema accept any
    /// field).
    pub fn build(mut self) -> InMemoryRepository {
        let has_schema = !self.schemas.is_empty();
        self.capabilities.schema = has_schema;
        self.capabilities.validates_fields = has_schema;
        self.capabilities.workflow = self.schemas.iter().any(|s| s.workflow.is_some());
        let schemas = self
            .schemas
            .into_iter()
            .map(|s| (s.item_type.clone(), s))
            .collect();
        InMemoryRepository {
            name: self.name,
            schemas,
            open_types: self.open_types,
            clock: self.clock,
            resolution: self.resolution,
            default_page_size: self.default_page_size,
            capabilities: self.capabilities,
            state: Mutex::new(State::default()),
        }
    }
}

#[derive(Debug, Clone)]
struct Stored {
    item: WorkItem,
    seq: u64,
    correlation: Option<CorrelationKey>,
    comments: Vec<Comment>,
    attachments: Vec<String>,
    /// The item after each of its changes, oldest first: what `revision_after` reads.
    history: Vec<WorkItem>,
}

#[derive(Debug, Default)]
struct TypeState {
    items: HashMap<ItemId, Stored>,
    /// (changed_at, id) of every item: the change order.
    order: BTreeSet<(DateTime<Utc>, ItemId)>,
    correlation: HashMap<CorrelationKey, ItemId>,
}

#[derive(Debug, Default)]
struct State {
    types: BTreeMap<ItemType, TypeState>,
    next_id: u64,
    next_comment: u64,
    next_attachment: u64,
    seq: u64,
    last_changed_at: Option<DateTime<Utc>>,
    blobs: HashMap<String, (AttachmentMeta, Bytes)>,
}

/// The reference backend: a complete [`Repository`] in memory.
///
/// It does everything the trait describes: optimistic concurrency on `if_version`,
/// correlation keys, comments with visibility, attachments, schema validation and workflow
/// transitions for types registered with a [`Schema`], and a change feed that never skips an
/// item, even when hundreds share one timestamp and items change while the caller pages.
/// `changed_at` never goes backwards. Ids are decimal numbers as strings.
///
/// ```
/// use workbridge_core::{
///     ChangeOptions, CreateOptions, Cursor, FieldMap, InMemoryRepository, ItemType, Repository,
///     RepositoryExt,
/// };
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), workbridge_core::Error> {
/// let repo = InMemoryRepository::new("ops");
/// let incident = ItemType::from("incident");
/// let created = repo
///     .create(&incident, &FieldMap::new().with("short_description", "VPN down"), &CreateOptions::default())
///     .await?;
/// let (changed, _resume_from) =
///     repo.all_changes(&incident, &Cursor::beginning(), &ChangeOptions::default()).await?;
/// assert_eq!(changed[0].id, created.id);
/// # Ok(())
/// # }
/// ```
pub struct InMemoryRepository {
    name: String,
    schemas: HashMap<ItemType, Schema>,
    open_types: bool,
    clock: Clock,
    resolution: Duration,
    default_page_size: usize,
    capabilities: Capabilities,
    state: Mutex<State>,
}

impl fmt::Debug for InMemoryRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryRepository")
            .field("name", &self.name)
            .field("types", &self.schemas.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for InMemoryRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memory:{}", self.name)
    }
}

impl InMemoryRepository {
    /// A repository with default settings, accepting any type and field.
    pub fn new(name: impl Into<String>) -> Self {
        Self::builder(name).build()
    }

    /// A builder.
    pub fn builder(name: impl Into<String>) -> InMemoryRepositoryBuilder {
        InMemoryRepositoryBuilder {
            name: name.into(),
            schemas: Vec::new(),
            open_types: true,
            clock: Clock::System,
            resolution: Duration::from_millis(1),
            default_page_size: 100,
            capabilities: Capabilities::all(),
        }
    }

    /// Number of items of a type.
    pub fn len(&self, item_type: &ItemType) -> usize {
        self.lock()
            .types
            .get(item_type)
            .map_or(0, |t| t.items.len())
    }

    /// Whether there are no items of a type.
    pub fn is_empty(&self, item_type: &ItemType) -> bool {
        self.len(item_type) == 0
    }

    /// Deletes an item (as a user would on the server); returns whether it existed.
    pub fn remove(&self, item_type: &ItemType, id: &ItemId) -> bool {
        let mut st = self.lock();
        let State { types, blobs, .. } = &mut *st;
        let Some(ts) = types.get_mut(item_type) else {
            return false;
        };
        let Some(stored) = ts.items.remove(id) else {
            return false;
        };
        ts.order.remove(&(stored.item.changed_at, id.clone()));
        if let Some(k) = &stored.correlation {
            ts.correlation.remove(k);
        }
        for a in &stored.attachments {
            blobs.remove(a);
        }
        true
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written: every mutation
        // is computed first and applied without fallible steps.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now(&self) -> DateTime<Utc> {
        let t = match &self.clock {
            Clock::System => Utc::now(),
            Clock::Manual(c) => c.now(),
        };
        match TimeDelta::from_std(self.resolution) {
            Ok(r) if !r.is_zero() => t.duration_trunc(r).unwrap_or(t),
            _ => t,
        }
    }

    fn check_type(&self, t: &ItemType) -> Result<Option<&Schema>> {
        match self.schemas.get(t) {
            Some(s) => Ok(Some(s)),
            None if self.open_types => Ok(None),
            None => Err(Error::new(
                ErrorKind::NotFound,
                format!("no item type `{t}` in this repository"),
            )
            .with_item_type(t.clone())),
        }
    }

    fn err(&self, op: &'static str) -> impl Fn(Error) -> Error + '_ {
        move |e| e.with_operation(op).with_system(self)
    }

    fn project(item: &WorkItem, fields: Option<&Vec<crate::FieldName>>) -> WorkItem {
        match fields {
            None => item.clone(),
            Some(names) => {
                let mut out = item.clone();
                out.fields = item
                    .fields
                    .iter()
                    .filter(|(k, _)| names.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                out.partial = true;
                out
            }
        }
    }

    /// Moves an item to a new (changed_at, seq), keeping `changed_at` monotonic.
    fn touch(&self, st: &mut State, t: &ItemType, id: &ItemId) {
        let now = self.now();
        let at = st.last_changed_at.map_or(now, |last| last.max(now));
        st.last_changed_at = Some(at);
        st.seq += 1;
        let seq = st.seq;
        if let Some(ts) = st.types.get_mut(t)
            && let Some(s) = ts.items.get_mut(id)
        {
            ts.order.remove(&(s.item.changed_at, id.clone()));
            s.item.changed_at = at;
            s.seq = seq;
            ts.order.insert((at, id.clone()));
            s.history.push(s.item.clone());
        }
    }

    fn stored_mut<'a>(st: &'a mut State, t: &ItemType, id: &ItemId) -> Result<&'a mut Stored> {
        st.types
            .get_mut(t)
            .and_then(|ts| ts.items.get_mut(id))
            .ok_or_else(|| Error::not_found(t, id))
    }

    fn bump_version(item: &mut WorkItem) {
        let n: u64 = item.version.as_str().parse().unwrap_or(0);
        item.version = Version::new((n + 1).to_string());
    }

    fn do_create(&self, t: &ItemType, fields: &FieldMap, o: &CreateOptions) -> Result<WorkItem> {
        let schema = self.check_type(t)?;
        let mut fields = fields.clone();
        if let Some(s) = schema {
            if let Some(wf) = &s.workflow
                && !wf.initial.is_empty()
            {
                match fields
                    .get(wf.state_field.as_str())
                    .and_then(FieldValue::as_str)
                {
                    None => {
                        fields.insert(
                            wf.state_field.clone(),
                            FieldValue::Choice(wf.initial[0].clone()),
                        );
                    }
                    Some(state) if !wf.initial.iter().any(|i| i == state) => {
                        return Err(Error::invalid_input(
                            wf.state_field.clone(),
                            state,
                            format!("a new item must start in one of: {}", wf.initial.join(", ")),
                        ));
                    }
                    Some(_) => {}
                }
            }
            s.check_write(&fields, true)?;
            fields = s.normalize(&fields);
        }
        let mut st = self.lock();
        st.next_id += 1;
        let id = ItemId::new(st.next_id.to_string());
        // Placed at the very beginning of the order; `touch` moves it to its real position.
        let item = WorkItem::new(
            id.clone(),
            t.clone(),
            Version::new("1"),
            DateTime::<Utc>::MIN_UTC,
            fields,
        );
        let ts = st.types.entry(t.clone()).or_default();
        if let Some(k) = &o.correlation {
            ts.correlation
                .entry(k.clone())
                .or_insert_with(|| id.clone());
        }
        ts.items.insert(
            id.clone(),
            Stored {
                item,
                seq: 0,
                correlation: o.correlation.clone(),
                comments: Vec::new(),
                attachments: Vec::new(),
                history: Vec::new(),
            },
        );
        ts.order.insert((DateTime::<Utc>::MIN_UTC, id.clone()));
        self.touch(&mut st, t, &id);
        Ok(Self::stored_mut(&mut st, t, &id)?.item.clone())
    }

    fn do_update(
        &self,
        t: &ItemType,
        id: &ItemId,
        changes: &FieldMap,
        o: &UpdateOptions,
    ) -> Result<WorkItem> {
        let schema = self.check_type(t)?;
        let normalized;
        let changes = match schema {
            Some(s) => {
                s.check_write(changes, false)?;
                normalized = s.normalize(changes);
                &normalized
            }
            None => changes,
        };
        let mut st = self.lock();
        let stored = Self::stored_mut(&mut st, t, id)?;
        if let Some(expected) = &o.if_version
            && expected != &stored.item.version
        {
            return Err(Error::conflict(format!(
                "{t} {id} is at version {}, not {expected}",
                stored.item.version
            ))
            .with_item(t.clone(), id.clone()));
        }
        let mut after = stored.item.fields.clone();
        after.merge(changes);
        if let Some(wf) = schema.and_then(|s| s.workflow.as_ref())
            && let Some(to) = changes.get(wf.state_field.as_str())
        {
            let from = stored
                .item
                .fields
                .get(wf.state_field.as_str())
                .and_then(FieldValue::as_str)
                .unwrap_or_default();
            let to = to.as_str().unwrap_or_default();
            wf.check(from, to, &after)
                .map_err(|e| e.with_item(t.clone(), id.clone()))?;
        }
        let after: FieldMap = after
            .into_iter()
            .filter(|(_, v)| *v != FieldValue::Null)
            .collect();
        stored.item.fields = after;
        Self::bump_version(&mut stored.item);
        self.touch(&mut st, t, id);
        Ok(Self::stored_mut(&mut st, t, id)?.item.clone())
    }

    fn do_revision_after(
        &self,
        t: &ItemType,
        id: &ItemId,
        version: &Version,
        n: u32,
    ) -> Result<Option<WorkItem>> {
        self.check_type(t)?;
        if !self.capabilities.history {
            return Err(Error::unsupported(
                "revision_after",
                "this in-memory repository keeps no history",
            ));
        }
        let st = self.lock();
        let stored = st
            .types
            .get(t)
            .and_then(|ts| ts.items.get(id))
            .ok_or_else(|| Error::not_found(t, id))?;
        let at = stored.history.iter().position(|i| &i.version == version);
        Ok(at.and_then(|i| stored.history.get(i + n as usize)).cloned())
    }

    fn do_changes(&self, t: &ItemType, since: &Cursor, o: &ChangeOptions) -> Result<ChangePage> {
        self.check_type(t)?;
        let limit = o
            .page_size
            .unwrap_or(self.default_page_size)
            .clamp(1, self.capabilities.max_page_size);
        let high: u64 = match since.token() {
            None => 0,
            Some(tok) => tok.parse().map_err(|_| {
                Error::invalid_input("cursor", tok, "not a cursor of this in-memory repository")
            })?,
        };
        let st = self.lock();
        let Some(ts) = st.types.get(t) else {
            return Ok(ChangePage::new(
                Vec::new(),
                since.clone().with_token(st.seq.to_string()),
                false,
            ));
        };
        let mut keys: Vec<&(DateTime<Utc>, ItemId)> = Vec::new();
        let keyset = match since.position() {
            None => ts.order.range::<(DateTime<Utc>, ItemId), _>(..),
            Some((at, id)) => {
                let pos = (*at, id.clone());
                // Items written after the previous page was read whose key sorts at or behind
                // the position: only possible for ties on `at`, since `changed_at` is monotonic.
                let tie_start = (*at, ItemId::new(""));
                keys.extend(
                    ts.order
                        .range((Bound::Included(tie_start), Bound::Included(pos.clone())))
                        .filter(|(_, i)| ts.items.get(i).is_some_and(|s| s.seq > high)),
                );
                ts.order.range((Bound::Excluded(pos), Bound::Unbounded))
            }
        };
        let late = keys.len();
        keys.extend(keyset.take(limit + 1));
        let has_more = keys.len() > limit;
        keys.truncate(limit);
        // When every late item fits in the page, everything up to the old position is covered:
        // the position never moves back, so unchanged items are not read again.
        let floor = since
            .position()
            .filter(|_| keys.len() >= late)
            .map(|(at, id)| (*at, id.clone()));
        let items: Vec<WorkItem> = keys
            .iter()
            .filter_map(|(_, id)| ts.items.get(id))
            .map(|s| Self::project(&s.item, o.fields.as_ref()))
            .collect();
        let last = keys.last().map(|k| (*k).clone());
        let next = match last.into_iter().chain(floor).max() {
            Some((at, id)) => Cursor::at(at, id),
            None => Cursor::beginning(),
        }
        .with_token(st.seq.to_string());
        Ok(ChangePage::new(items, next, has_more))
    }

    fn do_add_comment(&self, t: &ItemType, id: &ItemId, c: &NewComment) -> Result<Comment> {
        self.check_type(t)?;
        if c.body.trim().is_empty() {
            return Err(Error::invalid_input(
                "comment",
                "",
                "a comment needs a body",
            ));
        }
        let mut st = self.lock();
        st.next_comment += 1;
        let cid = format!("c{}", st.next_comment);
        let now = self.now();
        let stored = Self::stored_mut(&mut st, t, id)?;
        let mut comment = Comment::new(cid, now, c.body.clone(), c.format, c.visibility);
        comment.author = c.author.clone();
        stored.comments.push(comment.clone());
        Self::bump_version(&mut stored.item);
        self.touch(&mut st, t, id);
        Ok(comment)
    }

    fn do_upload(&self, t: &ItemType, id: &ItemId, a: &NewAttachment) -> Result<AttachmentMeta> {
        self.check_type(t)?;
        let size = a.data.len() as u64;
        if let Some(max) = self.capabilities.max_attachment_size
            && size > max
        {
            return Err(Error::invalid_input(
                "attachment",
                &a.file_name,
                format!("{size} bytes is over the limit of {max} bytes"),
            ));
        }
        let mut st = self.lock();
        st.next_attachment += 1;
        let aid = format!("a{}", st.next_attachment);
        let now = self.now();
        let stored = Self::stored_mut(&mut st, t, id)?;
        stored.attachments.push(aid.clone());
        Self::bump_version(&mut stored.item);
        let mut meta = AttachmentMeta::new(aid.clone(), t.clone(), id.clone(), a.file_name.clone());
        meta.content_type = Some(a.content_type.clone());
        meta.size = Some(size);
        meta.created_at = Some(now);
        st.blobs.insert(aid, (meta.clone(), a.data.clone()));
        self.touch(&mut st, t, id);
        Ok(meta)
    }
}

#[async_trait]
impl Repository for InMemoryRepository {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn schema(&self, t: &ItemType) -> Result<Schema> {
        self.check_type(t)
            .and_then(|s| {
                s.cloned().ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotFound,
                        format!("no schema is registered for `{t}`"),
                    )
                    .with_item_type(t.clone())
                })
            })
            .map_err(self.err("schema"))
    }

    async fn changes(&self, t: &ItemType, since: &Cursor, o: &ChangeOptions) -> Result<ChangePage> {
        self.do_changes(t, since, o).map_err(self.err("changes"))
    }

    async fn get_many(
        &self,
        t: &ItemType,
        ids: &[ItemId],
        o: &GetOptions,
    ) -> Result<Vec<Option<WorkItem>>> {
        self.check_type(t).map_err(self.err("get_many"))?;
        let st = self.lock();
        let ts = st.types.get(t);
        Ok(ids
            .iter()
            .map(|id| {
                ts.and_then(|ts| ts.items.get(id))
                    .map(|s| Self::project(&s.item, o.fields.as_ref()))
            })
            .collect())
    }

    async fn create(&self, t: &ItemType, f: &FieldMap, o: &CreateOptions) -> Result<WorkItem> {
        self.do_create(t, f, o)
            .map_err(|e| e.with_item_type(t.clone()))
            .map_err(self.err("create"))
    }

    async fn update(
        &self,
        t: &ItemType,
        id: &ItemId,
        c: &FieldMap,
        o: &UpdateOptions,
    ) -> Result<WorkItem> {
        self.do_update(t, id, c, o)
            .map_err(|e| {
                if e.context().item_id.is_none() {
                    e.with_item(t.clone(), id.clone())
                } else {
                    e
                }
            })
            .map_err(self.err("update"))
    }

    async fn find_by_correlation(
        &self,
        t: &ItemType,
        key: &CorrelationKey,
    ) -> Result<Option<WorkItem>> {
        self.check_type(t)
            .map_err(self.err("find_by_correlation"))?;
        let st = self.lock();
        Ok(st.types.get(t).and_then(|ts| {
            ts.correlation
                .get(key)
                .and_then(|id| ts.items.get(id))
                .map(|s| s.item.clone())
        }))
    }

    async fn holds_correlated(&self, t: &ItemType) -> Result<bool> {
        self.check_type(t).map_err(self.err("holds_correlated"))?;
        let st = self.lock();
        Ok(st
            .types
            .get(t)
            .is_some_and(|ts| ts.correlation.values().any(|id| ts.items.contains_key(id))))
    }

    async fn revision_after(
        &self,
        t: &ItemType,
        id: &ItemId,
        version: &Version,
        n: u32,
    ) -> Result<Option<WorkItem>> {
        self.do_revision_after(t, id, version, n)
            .map_err(self.err("revision_after"))
    }

    async fn comments(&self, t: &ItemType, id: &ItemId) -> Result<Vec<Comment>> {
        self.check_type(t).map_err(self.err("comments"))?;
        let mut st = self.lock();
        Self::stored_mut(&mut st, t, id)
            .map(|s| s.comments.clone())
            .map_err(self.err("comments"))
    }

    async fn add_comment(&self, t: &ItemType, id: &ItemId, c: &NewComment) -> Result<Comment> {
        self.do_add_comment(t, id, c)
            .map_err(self.err("add_comment"))
    }

    async fn attachments(&self, t: &ItemType, id: &ItemId) -> Result<Vec<AttachmentMeta>> {
        self.check_type(t).map_err(self.err("attachments"))?;
        let mut st = self.lock();
        let ids = Self::stored_mut(&mut st, t, id)
            .map(|s| s.attachments.clone())
            .map_err(self.err("attachments"))?;
        Ok(ids
            .iter()
            .filter_map(|a| st.blobs.get(a).map(|(m, _)| m.clone()))
            .collect())
    }

    async fn download(&self, a: &AttachmentMeta) -> Result<Bytes> {
        let st = self.lock();
        st.blobs
            .get(&a.id)
            .filter(|(m, _)| m.item_id == a.item_id && m.item_type == a.item_type)
            .map(|(_, b)| b.clone())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("attachment {} ({}) does not exist", a.id, a.file_name),
                )
                .with_item(a.item_type.clone(), a.item_id.clone())
            })
            .map_err(self.err("download"))
    }

    async fn upload(&self, t: &ItemType, id: &ItemId, a: &NewAttachment) -> Result<AttachmentMeta> {
        self.do_upload(t, id, a).map_err(self.err("upload"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FieldDef, FieldKind, RepositoryExt, TransitionGraph};
    use chrono::TimeZone;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn ties_and_updates_during_paging_are_never_skipped() {
        rt().block_on(async {
            let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap());
            let repo = InMemoryRepository::builder("t")
                .clock(clock.clone())
                .timestamp_precision(Duration::from_secs(1))
                .build();
            let t = ItemType::from("incident");
            let mut ids = Vec::new();
            for i in 0..300 {
                let item = repo
                    .create(
                        &t,
                        &FieldMap::new().with("n", i as i64),
                        &CreateOptions::default(),
                    )
                    .await
                    .unwrap();
                ids.push(item.id);
            }
            let opts = ChangeOptions::default().page_size(40);
            let mut cursor = Cursor::beginning();
            let mut seen: HashMap<ItemId, Vec<String>> = HashMap::new();
            let mut round = 0;
            loop {
                let page = repo.changes(&t, &cursor, &opts).await.unwrap();
                for w in page.items.windows(2) {
                    assert!(w[0].position() < w[1].position(), "page out of order");
                }
                for it in &page.items {
                    seen.entry(it.id.clone())
                        .or_default()
                        .push(it.version.to_string());
                }
                cursor = page.next;
                // While paging, in the same second, update an item that was already read and
                // sorts behind the cursor.
                if round < 5 {
                    repo.set_field(&t, &ids[round], "n", -1i64).await.unwrap();
                }
                round += 1;
                if !page.has_more && round > 5 {
                    break;
                }
            }
            assert_eq!(seen.len(), 300);
            for id in &ids[..5] {
                assert_eq!(seen[id].last().map(String::as_str), Some("2"), "item {id}");
            }
        });
    }

    #[test]
    fn resumed_scans_return_only_what_changed() {
        rt().block_on(async {
            let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap());
            let repo = InMemoryRepository::builder("t").clock(clock).build();
            let t = ItemType::from("incident");
            for _ in 0..10 {
                repo.create(&t, &FieldMap::new(), &CreateOptions::default())
                    .await
                    .unwrap();
            }
            let opts = ChangeOptions::default();
            let (all, cursor) = repo
                .all_changes(&t, &Cursor::beginning(), &opts)
                .await
                .unwrap();
            assert_eq!(all.len(), 10);
            let (none, cursor) = repo.all_changes(&t, &cursor, &opts).await.unwrap();
            assert!(none.is_empty());
            // Same instant, id sorting behind the cursor: returned, and only it.
            repo.set_field(&t, &ItemId::from("2"), "x", 1i64)
                .await
                .unwrap();
            let (again, cursor) = repo.all_changes(&t, &cursor, &opts).await.unwrap();
            assert_eq!(
                again.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
                ["2"]
            );
            let (none, _) = repo.all_changes(&t, &cursor, &opts).await.unwrap();
            assert!(none.is_empty(), "{none:?}");
        });
    }

    #[test]
    fn workflow_and_schema_enforced() {
        rt().block_on(async {
            let schema = Schema::new("Bug")
                .field(FieldDef::new("title", FieldKind::Text).required())
                .field(FieldDef::new("state", FieldKind::Choice))
                .field(FieldDef::new("reason", FieldKind::Text))
                .workflow(
                    TransitionGraph::new("state")
                        .initial("New")
                        .transition("New", "Active")
                        .transition("Active", "Resolved")
                        .require("Active", "Resolved", ["reason"]),
                );
            let repo = InMemoryRepository::builder("dev").schema(schema).build();
            let t = ItemType::from("Bug");
            let bug = repo
                .create(
                    &t,
                    &FieldMap::new().with("title", "x"),
                    &CreateOptions::default(),
                )
                .await
                .unwrap();
            assert_eq!(bug.field("state"), Some(&FieldValue::Choice("New".into())));
            let e = repo
                .set_field(&t, &bug.id, "state", "Resolved")
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidTransition);
            assert_eq!(e.context().item_id.as_ref(), Some(&bug.id));
            repo.set_field(&t, &bug.id, "state", "Active")
                .await
                .unwrap();
            let e = repo
                .set_field(&t, &bug.id, "state", "Resolved")
                .await
                .unwrap_err();
            assert!(e.to_string().contains("requires reason"), "{e}");
            let after = repo.get(&t, &bug.id).await.unwrap();
            assert_eq!(
                after.field("state"),
                Some(&FieldValue::Choice("Active".into()))
            );
            let e = repo
                .create(
                    &t,
                    &FieldMap::new().with("title", "y").with("state", "Active"),
                    &CreateOptions::default(),
                )
                .await
                .unwrap_err();
            assert_eq!(e.field().map(|f| f.as_str()), Some("state"));
            assert_eq!(repo.len(&t), 1);
        });
    }

    #[test]
    fn removed_items_disappear() {
        rt().block_on(async {
            let repo = InMemoryRepository::new("x");
            let t = ItemType::from("incident");
            let a = repo
                .create(
                    &t,
                    &FieldMap::new(),
                    &CreateOptions::default().correlation("k"),
                )
                .await
                .unwrap();
            assert!(repo.remove(&t, &a.id));
            assert!(repo.get_opt(&t, &a.id).await.unwrap().is_none());
            assert!(
                repo.find_by_correlation(&t, &"k".into())
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(!repo.remove(&t, &a.id));
        });
    }

    #[test]
    fn bad_cursor_token_is_invalid_input() {
        rt().block_on(async {
            let repo = InMemoryRepository::new("x");
            let c = Cursor::beginning().with_token("garbage");
            let e = repo
                .changes(&"incident".into(), &c, &ChangeOptions::default())
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert_eq!(e.value(), Some("garbage"));
        });
    }
}
