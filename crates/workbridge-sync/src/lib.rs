//! The workbridge sync kernel: keeps the items of two [`Repository`]s in step through a
//! [`Mapping`], one round at a time.
//!
//! A [`SyncPair`] reads each side's changes since its stored cursor, creates the twin of a new
//! in-scope item (after looking up its correlation key, so a retry never duplicates), merges
//! linked items three ways against the stored baseline (so concurrent edits to different fields
//! both survive and nothing we wrote is written back), copies new comments and attachments
//! once each, parks an item that fails for good and goes on with the rest, stops the round on
//! a temporary failure, and commits each cursor only after everything before it is applied.
//! When to run a round is the caller's choice: see `docs/sync.md` and the examples.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use workbridge_core::{FieldMap, InMemoryRepository, ItemType, Repository, RepositoryExt, CreateOptions};
//! use workbridge_mapping::Mapping;
//! use workbridge_sync::{MemoryStore, SyncPair};
//!
//! let mapping = Mapping::from_toml_str(r#"
//! left = "incident"
//! right = "Bug"
//! [create]
//! left_to_right = true
//! [[field]]
//! left = "short_description"
//! right = "System.Title"
//! "#).unwrap();
//! let ops = Arc::new(InMemoryRepository::new("ops"));
//! let dev = Arc::new(InMemoryRepository::new("dev"));
//! let pair = SyncPair::new(ops.clone(), dev.clone(), mapping, Arc::new(MemoryStore::new())).unwrap();
//!
//! let ticket = ops.create(&ItemType::new("incident"),
//!     &FieldMap::new().with("short_description", "Printer on fire"), &CreateOptions::default()).await.unwrap();
//! let report = pair.run_once().await;
//! assert!(report.is_complete());
//! assert_eq!(report.created.right, 1);
//! let link = pair.link_of(workbridge_sync::Side::Left, &ticket.id).await.unwrap().unwrap();
//! let bug = dev.get(&ItemType::new("Bug"), &link.right).await.unwrap();
//! assert_eq!(bug.field("System.Title").and_then(|v| v.as_str()), Some("Printer on fire"));
//!
//! // A second round finds only our own write: nothing is written back.
//! let again = pair.run_once().await;
//! assert_eq!(again.writes(), 0);
//! # });
//! ```

pub mod plan;
#[cfg(feature = "postgres")]
mod postgres;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::{Index, IndexMut};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex as AsyncMutex;
use workbridge_core::{
    ChangeOptions, CorrelationKey, CreateOptions, Cursor, Error, ErrorKind, FieldMap, FieldName,
    GetOptions, ItemId, ItemType, NewAttachment, NewComment, Repository, Result, Schema,
    TransitionGraph, UpdateOptions, Visibility, WorkItem, Write,
};
use workbridge_mapping::{Direction, Flow, Mapping};

pub use plan::{FieldConflict, PlanInput, SideWrites, SyncPlan, plan, same};
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use store::{Copied, CreateIntent, Link, MemoryStore, Parked, PendingWrite, Side, StateStore};

/// A value for each side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerSide<T> {
    /// The left side's.
    pub left: T,
    /// The right side's.
    pub right: T,
}

impl<T> Index<Side> for PerSide<T> {
    type Output = T;
    fn index(&self, s: Side) -> &T {
        match s {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }
}

impl<T> IndexMut<Side> for PerSide<T> {
    fn index_mut(&mut self, s: Side) -> &mut T {
        match s {
            Side::Left => &mut self.left,
            Side::Right => &mut self.right,
        }
    }
}

/// How a [`SyncPair`] works; the defaults suit most pairs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SyncOptions {
    /// Items per change page (default 100; the adapter caps it to its API's limit).
    pub page_size: usize,
    /// How often a merge is re-read and re-planned after a version conflict (default 3).
    pub conflict_retries: u32,
    /// Whether comments are copied (default true, when both sides support them).
    pub comments: bool,
    /// Whether attachments are copied (default true, when both sides support them).
    pub attachments: bool,
    /// Larger attachments are not copied; each is reported once (default 10 MiB).
    pub max_attachment_size: u64,
    /// Whether an item whose twin is gone, or that left scope, gets a comment saying so
    /// before its link is retired (default true).
    pub twinless_comment: bool,
    /// Whether a linked item that leaves the scope is unlinked (default true). Off, the scope
    /// only decides which items get a twin: a reopened Bug keeps its QA defect.
    pub retire_out_of_scope: bool,
    /// How long the pair's lease lasts without renewal (default 10 minutes); it is renewed
    /// after every page, so it only needs to outlast one page's work. A dead worker's lease
    /// expires after this long.
    pub lease_ttl: Duration,
    /// How long a create another process recorded (its intent) may still land, so no twin is
    /// created for that item meanwhile unless the correlation lookup finds the one it made
    /// (default 5 minutes: more than a request's time budget with its retries). A worker that
    /// died or stalled mid-create can then not cause a duplicate.
    pub foreign_intent_grace: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            page_size: 100,
            conflict_retries: 3,
            comments: true,
            attachments: true,
            max_attachment_size: 10 * 1024 * 1024,
            twinless_comment: true,
            retire_out_of_scope: true,
            lease_ttl: Duration::from_secs(600),
            foreign_intent_grace: Duration::from_secs(300),
        }
    }
}

impl SyncOptions {
    /// Sets [`SyncOptions::page_size`].
    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = n.max(1);
        self
    }
    /// Sets [`SyncOptions::conflict_retries`].
    pub fn conflict_retries(mut self, n: u32) -> Self {
        self.conflict_retries = n;
        self
    }
    /// Sets [`SyncOptions::comments`].
    pub fn comments(mut self, on: bool) -> Self {
        self.comments = on;
        self
    }
    /// Sets [`SyncOptions::attachments`].
    pub fn attachments(mut self, on: bool) -> Self {
        self.attachments = on;
        self
    }
    /// Sets [`SyncOptions::max_attachment_size`].
    pub fn max_attachment_size(mut self, bytes: u64) -> Self {
        self.max_attachment_size = bytes;
        self
    }
    /// Sets [`SyncOptions::lease_ttl`].
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }
    /// Sets [`SyncOptions::foreign_intent_grace`].
    pub fn foreign_intent_grace(mut self, d: Duration) -> Self {
        self.foreign_intent_grace = d;
        self
    }
    /// Sets [`SyncOptions::retire_out_of_scope`].
    pub fn retire_out_of_scope(mut self, on: bool) -> Self {
        self.retire_out_of_scope = on;
        self
    }
    /// Sets [`SyncOptions::twinless_comment`].
    pub fn twinless_comment(mut self, on: bool) -> Self {
        self.twinless_comment = on;
        self
    }
}

/// What one round did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct SyncReport {
    /// Changed items read from each side.
    pub read: PerSide<usize>,
    /// Items created on each side.
    pub created: PerSide<usize>,
    /// Existing twins found by correlation key instead of created (a retry after a lost reply
    /// or a crash).
    pub relinked: PerSide<usize>,
    /// Items updated on each side.
    pub updated: PerSide<usize>,
    /// Items skipped on each side because they were at the version we last wrote or read.
    pub echoes: PerSide<usize>,
    /// Linked items read that needed no write.
    pub unchanged: PerSide<usize>,
    /// Unlinked items left alone: out of scope, or the spec does not create from this side.
    pub ignored: PerSide<usize>,
    /// Same-field conflicts left for a person (the `error` policy).
    pub conflicts: Vec<FieldConflict>,
    /// Items parked this round, with their errors.
    pub parked: Vec<Parked>,
    /// Parked items that synced this round and were released.
    pub unparked: usize,
    /// Comments copied to each side.
    pub comments_copied: PerSide<usize>,
    /// Attachments copied to each side.
    pub attachments_copied: PerSide<usize>,
    /// Attachments not copied (over the size cap), by source side.
    pub attachments_skipped: PerSide<usize>,
    /// Links retired because an item was deleted or left scope.
    pub twinless: usize,
    /// Repository calls made on each side (adapters may batch several HTTP requests into one
    /// call, or need several for one).
    pub calls: PerSide<usize>,
    /// The cursors committed.
    pub cursors: PerSide<Option<Cursor>>,
    /// The temporary failure that stopped the round, if one did; the next round resumes.
    pub stopped: Option<Error>,
}

impl SyncReport {
    /// Whether the round went through every change (parked items do not make it incomplete).
    pub fn is_complete(&self) -> bool {
        self.stopped.is_none()
    }

    /// Items created or updated on either side.
    pub fn writes(&self) -> usize {
        self.created.left + self.created.right + self.updated.left + self.updated.right
    }

    /// `Err` with the stopping error, when the round stopped.
    ///
    /// # Errors
    /// The temporary failure that stopped the round.
    pub fn into_result(self) -> Result<SyncReport> {
        match self.stopped {
            Some(e) => Err(e),
            None => Ok(self),
        }
    }
}

impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = |x: &PerSide<usize>| format!("{}/{}", x.left, x.right);
        write!(
            f,
            "read {} · created {} · relinked {} · updated {} · echoes {} · unchanged {} · ignored {} · \
             comments {} · attachments {} (skipped {}) · conflicts {} · parked {} · twinless {} · calls {}",
            p(&self.read),
            p(&self.created),
            p(&self.relinked),
            p(&self.updated),
            p(&self.echoes),
            p(&self.unchanged),
            p(&self.ignored),
            p(&self.comments_copied),
            p(&self.attachments_copied),
            p(&self.attachments_skipped),
            self.conflicts.len(),
            self.parked.len(),
            self.twinless,
            p(&self.calls),
        )?;
        if let Some(e) = &self.stopped {
            write!(f, " · stopped: {e}")?;
        }
        Ok(())
    }
}

/// Keeps the items of two repositories in step: see the crate docs.
pub struct SyncPair {
    id: String,
    repos: PerSide<Arc<dyn Repository>>,
    types: PerSide<ItemType>,
    /// The mapping, with labels resolved to names once the schemas are read.
    mapping: std::sync::RwLock<Arc<Mapping>>,
    store: Arc<dyn StateStore>,
    options: SyncOptions,
    workflows: AsyncMutex<Option<PerSide<Option<TransitionGraph>>>>,
    round: AsyncMutex<()>,
    holder: String,
    /// Items whose twin this process tried to create without learning the outcome (a timeout,
    /// a lost reply): their intents hold them as another process's do (ADR 0010).
    uncertain: std::sync::Mutex<HashSet<(Side, ItemId)>>,
    /// When the lease this job holds runs out, as of its last renewal; `None` between jobs.
    lease_until: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// What a page's batched lookup and create did for one unlinked item.
enum Ready {
    Found(WorkItem),
    Created(Result<WorkItem>),
}

enum Job {
    Round,
    Reconcile,
    Replay,
    Link(ItemId, ItemId),
}

/// This process, as named in the create intents it records: a later process (a restart, or
/// another worker) knows the intent is not its own.
fn process_run() -> &'static str {
    static RUN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}-{t:x}", std::process::id())
    })
}

/// The default lease holder: this host and program, stable across restarts. A process that
/// was killed mid-round and started again takes its own lease back at once instead of waiting
/// for it to expire; another host (or another program) still waits. Two processes of one
/// program on one host running the same pair must name themselves with
/// [`SyncPair::with_holder`].
fn default_holder() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    let program = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "workbridge".to_owned());
    format!("{host}/{program}")
}

impl fmt::Debug for SyncPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncPair")
            .field("id", &self.id)
            .field("left", &format_args!("{}", self.repos.left))
            .field("right", &format_args!("{}", self.repos.right))
            .field("types", &self.types)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// What happened to one changed item.
enum Outcome {
    Echo,
    Ignored,
    Done,
}

fn direction_from(side: Side) -> Direction {
    match side {
        Side::Left => Direction::LeftToRight,
        Side::Right => Direction::RightToLeft,
    }
}

impl SyncPair {
    /// A pair syncing the mapping's `left`/`right` item types between `left` and `right`, with
    /// its state in `store`. The pair id (the key of its state) is made from the systems and
    /// types; see [`SyncPair::with_id`].
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the mapping does not name both item types (use
    /// [`SyncPair::with_types`]).
    pub fn new(
        left: Arc<dyn Repository>,
        right: Arc<dyn Repository>,
        mapping: Mapping,
        store: Arc<dyn StateStore>,
    ) -> Result<Self> {
        let (Some(lt), Some(rt)) = (mapping.left_type(), mapping.right_type()) else {
            return Err(Error::config(
                "the mapping names no left and right item types: set `left` and `right` at its top, or call SyncPair::with_types",
            ));
        };
        Ok(Self::with_types(
            left,
            right,
            ItemType::new(lt),
            ItemType::new(rt),
            mapping,
            store,
        ))
    }

    /// A pair of explicit item types.
    pub fn with_types(
        left: Arc<dyn Repository>,
        right: Arc<dyn Repository>,
        left_type: ItemType,
        right_type: ItemType,
        mapping: Mapping,
        store: Arc<dyn StateStore>,
    ) -> Self {
        let id = format!("{left}/{left_type}<->{right}/{right_type}");
        SyncPair {
            id,
            repos: PerSide { left, right },
            types: PerSide {
                left: left_type,
                right: right_type,
            },
            mapping: std::sync::RwLock::new(Arc::new(mapping)),
            store,
            options: SyncOptions::default(),
            workflows: AsyncMutex::new(None),
            round: AsyncMutex::new(()),
            holder: default_holder(),
            uncertain: std::sync::Mutex::new(HashSet::new()),
            lease_until: std::sync::Mutex::new(None),
        }
    }

    /// Sets the pair id: the key of its state in the store. Keep it stable across restarts.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Names this worker in the pair's lease (default: host and program, so a restarted
    /// process takes its lease back at once). Give each worker its own name when several run
    /// one pair from the same host and program.
    pub fn with_holder(mut self, holder: impl Into<String>) -> Self {
        self.holder = holder.into();
        self
    }

    /// The name this worker holds the pair's lease under.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Sets the options.
    pub fn with_options(mut self, options: SyncOptions) -> Self {
        self.options = options;
        self
    }

    /// The pair id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The mapping (after the first round, with the fields it names by label named as the
    /// schemas call them).
    pub fn mapping(&self) -> Arc<Mapping> {
        self.mapping
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The link of an item, by either side.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn link_of(&self, side: Side, id: &ItemId) -> Result<Option<Link>> {
        self.store.link(&self.id, side, id).await
    }

    /// Every link of the pair.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn links(&self) -> Result<Vec<Link>> {
        self.store.links(&self.id).await
    }

    /// The parked items.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn parked(&self) -> Result<Vec<Parked>> {
        self.store.parked(&self.id).await
    }

    /// One round: both sides' changes since their cursors, applied. Never panics and never
    /// returns early on an item's failure: see [`SyncReport::stopped`] and
    /// [`SyncReport::parked`]. Rounds of one pair do not overlap (a second call waits).
    pub async fn run_once(&self) -> SyncReport {
        self.leased(Job::Round).await
    }

    /// Compares every linked pair, whether or not the change feeds show a change (catches
    /// edits that do not move timestamps, and deleted items), and applies what differs.
    pub async fn reconcile(&self) -> SyncReport {
        self.leased(Job::Reconcile).await
    }

    /// Tries the parked items again (each read afresh); those that sync are released.
    pub async fn replay(&self) -> SyncReport {
        self.leased(Job::Replay).await
    }

    /// Links two items that already exist — found by the application, through a shared key or
    /// a reference field — and merges them at once. With no baseline yet, every mapped field
    /// counts as changed on both sides, and each rule's conflict policy decides (`newest` by
    /// default). An item already linked to another loses that link.
    pub async fn link_existing(&self, left: &ItemId, right: &ItemId) -> SyncReport {
        self.leased(Job::Link(left.clone(), right.clone())).await
    }

    async fn link_inner(&self, left: &ItemId, right: &ItemId, round: &mut Round) -> Result<()> {
        round.report.calls.left += 1;
        round.report.calls.right += 1;
        let l = self.read_one(Side::Left, left).await?;
        let r = self.read_one(Side::Right, right).await?;
        round.report.read.left += 1;
        round.report.read.right += 1;
        if let Some(old) = self.store.link(&self.id, Side::Left, left).await? {
            self.store.retire_link(&self.id, &old).await?;
        }
        let link = Link {
            left: left.clone(),
            right: right.clone(),
            key: self.key_for(Side::Left, left),
            left_version: None,
            right_version: None,
            left_baseline: FieldMap::new(),
            right_baseline: FieldMap::new(),
            pending: None,
        };
        self.store.save_link(&self.id, &link).await?;
        let result = self.merge(link, Side::Left, l, r, round).await;
        self.settle(Side::Left, left, result, round).await
    }

    /// Runs a job under the pair's lease: in this process, jobs of one pair queue; across
    /// processes sharing a store, a job finding the lease held stops at once with a temporary
    /// [`ErrorKind::Conflict`].
    async fn leased(&self, job: Job) -> SyncReport {
        let _one_at_a_time = self.round.lock().await;
        let mut round = Round {
            report: SyncReport::default(),
            parked: HashSet::new(),
            fresh: None,
        };
        // A new job: its lease is taken afresh.
        *self
            .lease_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        // The schemas (workflows, and the names of fields the spec gives by label) are read
        // before anything is mapped.
        let ready = match self.renew_lease().await {
            Ok(_) => self.workflows().await.map(|_| ()),
            Err(e) => Err(e),
        };
        let result = match ready {
            Ok(()) => match job {
                Job::Round => self.round_inner(&mut round).await,
                Job::Reconcile => self.reconcile_inner(&mut round).await,
                Job::Replay => self.replay_inner(&mut round).await,
                Job::Link(l, r) => self.link_inner(&l, &r, &mut round).await,
            },
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(pair = %self.id, error = %e, "stopped; the next run resumes from the last committed cursor");
            round.report.stopped = Some(e);
        }
        if let Err(e) = self.store.release_lease(&self.id, &self.holder).await {
            tracing::warn!(pair = %self.id, error = %e, "the lease could not be released; it expires on its own");
        }
        tracing::info!(pair = %self.id, report = %round.report, "done");
        round.report
    }

    /// Renews the pair's lease; the answer is the deadline of the writes it covers: four fifths
    /// of the TTL from the moment the renewal was asked for (ADR 0011).
    ///
    /// A lease that ran out since the job's last renewal is not taken again within the job,
    /// though the store may grant it: another worker may have held it meanwhile and acted on the
    /// same items, and what this job read before is stale (a file it was about to copy that the
    /// other worker copied meanwhile). The job stops; the next reads afresh.
    async fn renew_lease(&self) -> Result<tokio::time::Instant> {
        let asked = tokio::time::Instant::now();
        let lapsed = {
            let mut until = self
                .lease_until
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let lapsed = until.is_some_and(|t| asked >= t);
            if lapsed {
                *until = None;
            }
            lapsed
        };
        if lapsed {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "the lease of pair {} ran out during this run; it stops, and the next run reads afresh",
                    self.id
                ),
            )
            .with_operation(LEASE)
            .with_temporary(true));
        }
        if self
            .store
            .acquire_lease(&self.id, &self.holder, self.options.lease_ttl)
            .await?
        {
            *self
                .lease_until
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(asked + self.options.lease_ttl);
            Ok(asked + self.options.lease_ttl.mul_f64(0.8))
        } else {
            Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "pair {} is being synced by another worker (its lease is held)",
                    self.id
                ),
            )
            .with_operation(LEASE)
            .with_temporary(true))
        }
    }

    /// Runs one remote write under the pair's lease: the lease is renewed first (a worker that
    /// outlived it stops before writing, ADR 0010) and the write's requests are fenced at the
    /// renewal's deadline, so none is sent or retried when another worker may hold the pair
    /// (ADR 0011).
    async fn fenced<T>(&self, write: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        let deadline = self.renew_lease().await?;
        workbridge_core::fence::within(deadline, write).await
    }

    async fn round_inner(&self, round: &mut Round) -> Result<()> {
        round.parked = self
            .store
            .parked(&self.id)
            .await?
            .into_iter()
            .map(|p| (p.side, p.id))
            .collect();
        for side in [Side::Left, Side::Right] {
            self.pass(side, round).await?;
        }
        if self.options.attachments {
            for side in [Side::Left, Side::Right] {
                self.attachment_feed(side, round).await?;
            }
        }
        // Items parked for a while only are tried again, those parked this round excepted.
        let again: Vec<Parked> = self
            .store
            .parked(&self.id)
            .await?
            .into_iter()
            .filter(|p| {
                p.temporary
                    && !round
                        .report
                        .parked
                        .iter()
                        .any(|q| q.side == p.side && q.id == p.id)
            })
            .take(self.options.page_size)
            .collect();
        self.retry_parked(again, round).await
    }

    /// Files attached on `side` since the last round, where attaching one leaves the item
    /// unchanged (ServiceNow, ALM: `changes` does not show it), copied for each linked item
    /// (ADR 0016). The feed's position is stored like a cursor, under `{pair}/attachments`,
    /// with the ids already seen at its newest second.
    async fn attachment_feed(&self, side: Side, round: &mut Round) -> Result<()> {
        const LIMIT: usize = 200;
        let other = side.other();
        if !(self.repos[side].capabilities().attachments
            && self.repos[other].capabilities().attachments)
        {
            return Ok(());
        }
        let key = format!("{}/attachments", self.id);
        let stored = self.store.cursor(&key, side).await?;
        // The first round starts a little in the past: files attached before it are copied
        // with their item's first merge.
        let since = stored
            .as_ref()
            .and_then(Cursor::changed_at)
            .unwrap_or_else(|| Utc::now() - chrono::TimeDelta::minutes(5));
        let seen: HashSet<&str> = stored
            .as_ref()
            .and_then(Cursor::token)
            .map(|t| t.split(',').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        round.report.calls[side] += 1;
        let list = match self.repos[side]
            .attachments_since(&self.types[side], since, LIMIT)
            .await
        {
            Err(e) if e.kind() == ErrorKind::Unsupported => return Ok(()),
            r => r?,
        };
        let mut items: Vec<&ItemId> = Vec::new();
        for a in list.iter().filter(|a| !seen.contains(a.id.as_str())) {
            if !items.contains(&&a.item_id) {
                items.push(&a.item_id);
            }
        }
        for id in items {
            // An unlinked item's files are copied when it is linked: its first merge.
            if let Some(link) = self.store.link(&self.id, side, id).await? {
                self.copy_attachments(&link, side, &mut round.report)
                    .await?;
            }
        }
        let newest = list.iter().filter_map(|a| a.created_at).max();
        let next = match newest {
            Some(t) if t <= since && list.len() >= LIMIT => {
                // More files in one second than one request reads: go on past it.
                tracing::warn!(pair = %self.id, side = %side, at = %t, "more than {LIMIT} files attached in one second; the feed moves on past it");
                Cursor::at(t + chrono::TimeDelta::seconds(1), ItemId::new(""))
            }
            Some(t) => {
                let ids: Vec<&str> = list
                    .iter()
                    .filter(|a| a.created_at == Some(t))
                    .map(|a| a.id.as_str())
                    .collect();
                Cursor::at(t, ItemId::new("")).with_token(ids.join(","))
            }
            None => match stored {
                Some(c) => c,
                None => Cursor::at(since, ItemId::new("")),
            },
        };
        self.store.save_cursor(&key, side, &next).await
    }

    async fn reconcile_inner(&self, round: &mut Round) -> Result<()> {
        let links = self.store.links(&self.id).await?;
        for chunk in links.chunks(self.options.page_size.max(1)) {
            let mut items = PerSide::<Vec<Option<WorkItem>>>::default();
            for side in [Side::Left, Side::Right] {
                let ids: Vec<ItemId> = chunk.iter().map(|l| l.id(side).clone()).collect();
                round.report.calls[side] += 1;
                items[side] = self.repos[side]
                    .get_many(&self.types[side], &ids, &GetOptions::default())
                    .await?;
                check_len(&*self.repos[side], ids.len(), items[side].len())?;
            }
            for (i, link) in chunk.iter().enumerate() {
                let (l, r) = (
                    items.left.get(i).cloned().flatten(),
                    items.right.get(i).cloned().flatten(),
                );
                let result = match (l, r) {
                    (Some(l), Some(r)) => {
                        round.report.read.left += 1;
                        round.report.read.right += 1;
                        self.merge(link.clone(), Side::Left, l, r, round).await
                    }
                    (Some(l), None) => {
                        self.twinless(link, Side::Left, &l, "was deleted", round)
                            .await
                    }
                    (None, Some(r)) => {
                        self.twinless(link, Side::Right, &r, "was deleted", round)
                            .await
                    }
                    (None, None) => {
                        round.report.twinless += 1;
                        self.store
                            .retire_link(&self.id, link)
                            .await
                            .map(|()| Outcome::Done)
                    }
                };
                self.settle(Side::Left, &link.left, result, round).await?;
            }
        }
        Ok(())
    }

    async fn replay_inner(&self, round: &mut Round) -> Result<()> {
        let parked = self.store.parked(&self.id).await?;
        round.parked = parked.iter().map(|p| (p.side, p.id.clone())).collect();
        self.retry_parked(parked, round).await
    }

    /// Reads each parked item afresh and syncs it: those that sync are released.
    async fn retry_parked(&self, parked: Vec<Parked>, round: &mut Round) -> Result<()> {
        for p in parked {
            round.report.calls[p.side] += 1;
            let got = self.repos[p.side]
                .get_many(
                    &self.types[p.side],
                    std::slice::from_ref(&p.id),
                    &GetOptions::default(),
                )
                .await;
            let item = match got {
                Ok(mut v) => v.pop().flatten(),
                Err(e) if e.is_temporary() => return Err(e),
                Err(e) => {
                    round.report.parked.push(p.clone());
                    tracing::warn!(pair = %self.id, error = %e, "a parked item cannot be read");
                    continue;
                }
            };
            let Some(item) = item else {
                // Gone: nothing left to sync.
                self.store.unpark(&self.id, p.side, &p.id).await?;
                round.report.unparked += 1;
                continue;
            };
            round.report.read[p.side] += 1;
            let result = self.item(p.side, item, true, round).await;
            self.settle(p.side, &p.id, result, round).await?;
        }
        Ok(())
    }

    /// Plans the merge of one linked pair as it stands, writing nothing: a dry run.
    ///
    /// # Errors
    /// When the item is not linked, either item cannot be read, or the store fails.
    pub async fn plan_for(&self, side: Side, id: &ItemId) -> Result<SyncPlan> {
        let link = self.store.link(&self.id, side, id).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("{side} item {id} is not linked in pair {}", self.id),
            )
        })?;
        let wf = self.workflows().await?;
        let l = self.read_one(Side::Left, &link.left).await?;
        let r = self.read_one(Side::Right, &link.right).await?;
        Ok(plan(
            &self.mapping(),
            PlanInput {
                left: &l,
                right: &r,
                left_baseline: &link.left_baseline,
                right_baseline: &link.right_baseline,
                left_workflow: wf.left.as_ref(),
                right_workflow: wf.right.as_ref(),
            },
        ))
    }

    async fn read_one(&self, side: Side, id: &ItemId) -> Result<WorkItem> {
        let mut v = self.repos[side]
            .get_many(
                &self.types[side],
                std::slice::from_ref(id),
                &GetOptions::default(),
            )
            .await?;
        v.pop()
            .flatten()
            .ok_or_else(|| Error::not_found(&self.types[side], id))
    }

    async fn workflows(&self) -> Result<PerSide<Option<TransitionGraph>>> {
        let mut cached = self.workflows.lock().await;
        if let Some(w) = cached.as_ref() {
            return Ok(w.clone());
        }
        let mut out = PerSide::default();
        let mut schemas: PerSide<Option<Schema>> = PerSide::default();
        for side in [Side::Left, Side::Right] {
            if self.repos[side].capabilities().workflow {
                let schema: Schema = self.repos[side].schema(&self.types[side]).await?;
                out[side] = schema.workflow.clone();
                schemas[side] = Some(schema);
            }
        }
        // A field the spec names by label is read back under its name (ALM user fields).
        let resolved = self
            .mapping()
            .resolve_labels(schemas.left.as_ref(), schemas.right.as_ref());
        *self
            .mapping
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(resolved);
        *cached = Some(out.clone());
        Ok(out)
    }

    /// One side's changes, page by page; the cursor is committed after each page is applied.
    async fn pass(&self, side: Side, round: &mut Round) -> Result<()> {
        let repo = &self.repos[side];
        let ty = &self.types[side];
        let mut cursor = self.store.cursor(&self.id, side).await?.unwrap_or_default();
        let opts = ChangeOptions::default().page_size(self.options.page_size);
        loop {
            round.report.calls[side] += 1;
            let page = repo.changes(ty, &cursor, &opts).await?;
            round.report.read[side] += page.items.len();
            // Links of the page, and their twins in one batched read.
            let mut links = Vec::with_capacity(page.items.len());
            for item in &page.items {
                links.push(self.store.link(&self.id, side, &item.id).await?);
            }
            let twin_ids: Vec<ItemId> = page
                .items
                .iter()
                .zip(&links)
                .filter_map(|(item, l)| {
                    l.as_ref()
                        .filter(|l| !l.is_echo(side, item))
                        .map(|l| l.id(side.other()).clone())
                })
                .collect();
            let mut twins: HashMap<ItemId, Option<WorkItem>> = HashMap::new();
            if !twin_ids.is_empty() {
                round.report.calls[side.other()] += 1;
                let got = self.repos[side.other()]
                    .get_many(&self.types[side.other()], &twin_ids, &GetOptions::default())
                    .await?;
                check_len(&*self.repos[side.other()], twin_ids.len(), got.len())?;
                twins.extend(twin_ids.into_iter().zip(got));
            }
            // The page's new items: their twins looked up and created in batches (an item
            // listed twice is prepared once).
            let mut fresh: Vec<&WorkItem> = Vec::new();
            let mut fresh_ids = HashSet::new();
            for (item, link) in page.items.iter().zip(&links) {
                if link.is_none()
                    && self.wants_twin(side, item)
                    && fresh_ids.insert(item.id.clone())
                {
                    fresh.push(item);
                }
            }
            let mut ready = if fresh.len() > 1 {
                self.prepare_twins(side, &fresh, round).await?
            } else {
                HashMap::new()
            };
            let mut seen = HashSet::new();
            for (item, mut link) in page.items.into_iter().zip(links) {
                let id = item.id.clone();
                if !seen.insert(id.clone()) {
                    // Listed again in this page: what the first pass linked counts.
                    link = self.store.link(&self.id, side, &id).await?;
                }
                let twin = match &link {
                    Some(l) if !l.is_echo(side, &item) => {
                        let tid = l.id(side.other());
                        // Prefetched for the page, once; read afresh if needed again.
                        match twins.remove(tid) {
                            Some(t) => t,
                            None => {
                                round.report.calls[side.other()] += 1;
                                self.repos[side.other()]
                                    .get_many(
                                        &self.types[side.other()],
                                        std::slice::from_ref(tid),
                                        &GetOptions::default(),
                                    )
                                    .await?
                                    .pop()
                                    .flatten()
                            }
                        }
                    }
                    _ => None,
                };
                let result = match link {
                    Some(link) if link.is_echo(side, &item) => Ok(Outcome::Echo),
                    Some(link) => match twin {
                        Some(t) => {
                            let (l, r) = match side {
                                Side::Left => (item, t),
                                Side::Right => (t, item),
                            };
                            self.merge(link, side, l, r, round).await
                        }
                        None => {
                            self.twinless(&link, side, &item, "was deleted", round)
                                .await
                        }
                    },
                    None => {
                        let prepared = ready.remove(&id);
                        self.unlinked(side, item, prepared, round).await
                    }
                };
                self.settle(side, &id, result, round).await?;
            }
            self.renew_lease().await?;
            self.store.save_cursor(&self.id, side, &page.next).await?;
            self.renew_lease().await?;
            round.report.cursors[side] = Some(page.next.clone());
            cursor = page.next;
            if !page.has_more {
                return Ok(());
            }
        }
    }

    /// Books an item's outcome: temporary errors stop the round, permanent ones park the item.
    async fn settle(
        &self,
        side: Side,
        id: &ItemId,
        result: Result<Outcome>,
        round: &mut Round,
    ) -> Result<()> {
        match result {
            Ok(o) => {
                match o {
                    Outcome::Echo => round.report.echoes[side] += 1,
                    Outcome::Ignored => round.report.ignored[side] += 1,
                    Outcome::Done => {}
                }
                if round.parked.remove(&(side, id.clone())) {
                    self.store.unpark(&self.id, side, id).await?;
                    round.report.unparked += 1;
                }
                Ok(())
            }
            // Outages, credentials problems and a lost lease concern every item: stop, do not
            // park them all. A write conflict that outlasted the retries (another client holds
            // the item's lock) concerns this item: it is parked and tried again next round.
            Err(e)
                if (e.is_temporary() && !item_conflict(&e))
                    || matches!(e.kind(), ErrorKind::Unauthenticated | ErrorKind::Config) =>
            {
                Err(e)
            }
            Err(e) => {
                tracing::warn!(pair = %self.id, %side, item = %id, error = %e, "item parked; the others go on");
                let p = Parked {
                    side,
                    id: id.clone(),
                    error: e.to_string(),
                    attempts: 1,
                    at: Utc::now(),
                    temporary: e.is_temporary(),
                };
                self.store.park(&self.id, &p).await?;
                round.parked.insert((side, id.clone()));
                round.report.parked.push(p);
                Ok(())
            }
        }
    }

    fn key_for(&self, side: Side, id: &ItemId) -> CorrelationKey {
        CorrelationKey::new(format!("wb:{}:{}", self.types[side], id))
    }

    /// An item with no link (or a parked one being replayed): create or find its twin.
    async fn item(
        &self,
        side: Side,
        item: WorkItem,
        replay: bool,
        round: &mut Round,
    ) -> Result<Outcome> {
        if replay && let Some(link) = self.store.link(&self.id, side, &item.id).await? {
            round.report.calls[side.other()] += 1;
            let twin = self.repos[side.other()]
                .get_many(
                    &self.types[side.other()],
                    std::slice::from_ref(link.id(side.other())),
                    &GetOptions::default(),
                )
                .await?
                .pop()
                .flatten();
            return match twin {
                Some(t) => {
                    let (l, r) = match side {
                        Side::Left => (item, t),
                        Side::Right => (t, item),
                    };
                    self.merge(link, side, l, r, round).await
                }
                None => {
                    self.twinless(&link, side, &item, "was deleted", round)
                        .await
                }
            };
        }
        self.unlinked(side, item, None, round).await
    }

    /// Whether an unlinked item of `side` gets a twin.
    fn wants_twin(&self, side: Side, item: &WorkItem) -> bool {
        let d = direction_from(side);
        self.mapping().in_scope(d, &item.fields) && self.mapping().may_create(d)
    }

    /// The create options of a twin: the correlation key where the target keeps one. Without
    /// correlation support, the stored link is the only guard against a second create after a
    /// lost reply: see docs/sync.md.
    fn create_options(&self, other: Side, key: &CorrelationKey) -> CreateOptions {
        if self.repos[other].capabilities().correlation {
            CreateOptions::default().correlation(key.clone())
        } else {
            CreateOptions::default()
        }
    }

    /// Looks up, then creates, the twins of a page's unlinked items in as few requests as the
    /// target allows: one batched correlation lookup, then `write_many`.
    async fn prepare_twins(
        &self,
        side: Side,
        items: &[&WorkItem],
        round: &mut Round,
    ) -> Result<HashMap<ItemId, Ready>> {
        let other = side.other();
        let d = direction_from(side);
        let mut ready = HashMap::new();
        let keys: Vec<CorrelationKey> = items.iter().map(|i| self.key_for(side, &i.id)).collect();
        let found = if self.repos[other].capabilities().correlation {
            round.report.calls[other] += 1;
            let found = self.repos[other]
                .find_many_by_correlation(&self.types[other], &keys)
                .await?;
            check_len(&*self.repos[other], keys.len(), found.len())?;
            found
        } else {
            vec![None; keys.len()]
        };
        let mut writes = Vec::new();
        let mut owners = Vec::new();
        let mut intents = Vec::new();
        for ((item, key), twin) in items.iter().zip(&keys).zip(found) {
            if let Some(t) = twin {
                ready.insert(item.id.clone(), Ready::Found(t));
                continue;
            }
            self.check_foreign_intent(side, &item.id).await?;
            let mapped = self.mapping().map_for_create(d, &item.fields);
            if let Some(e) = mapped.errors.into_iter().next() {
                ready.insert(item.id.clone(), Ready::Created(Err(e)));
                continue;
            }
            intents.push(self.intent_for(side, item, key, &mapped.fields));
            writes.push(Write::Create {
                item_type: self.types[other].clone(),
                fields: mapped.fields,
                options: self.create_options(other, key),
            });
            owners.push(item.id.clone());
        }
        // Before anything is sent: a lost reply or a crash from here on leaves the intent, and
        // the twin found later is merged from these baselines.
        self.store.save_intents(&self.id, &intents).await?;
        for (chunk, ids) in writes.chunks(100).zip(owners.chunks(100)) {
            round.report.calls[other] += 1;
            // Still ours? A worker that outlived its lease stops before writing (ADR 0010).
            let results = self.fenced(self.repos[other].write_many(chunk)).await;
            self.note_creates(side, ids, &results);
            let results = results?;
            if results.len() != chunk.len() {
                return Err(Error::protocol(
                    "write_many",
                    format!(
                        "{} answered {} results for {} creates",
                        self.repos[other],
                        results.len(),
                        chunk.len()
                    ),
                )
                .with_temporary(true));
            }
            for (id, r) in ids.iter().zip(results) {
                self.note_creates(side, std::slice::from_ref(id), &r);
                ready.insert(id.clone(), Ready::Created(r));
            }
        }
        Ok(ready)
    }

    /// An item with no link: find or create its twin (or take what the page's batch did), link
    /// them and merge.
    async fn unlinked(
        &self,
        side: Side,
        item: WorkItem,
        ready: Option<Ready>,
        round: &mut Round,
    ) -> Result<Outcome> {
        let d = direction_from(side);
        if !self.wants_twin(side, &item) {
            return Ok(Outcome::Ignored);
        }
        let other = side.other();
        let key = self.key_for(side, &item.id);
        let (found, created) = match ready {
            Some(Ready::Found(t)) => (Some(t), None),
            Some(Ready::Created(r)) => (None, Some(r)),
            None => {
                round.report.calls[other] += 1;
                let found = if self.repos[other].capabilities().correlation {
                    self.repos[other]
                        .find_by_correlation(&self.types[other], &key)
                        .await?
                } else {
                    None
                };
                (found, None)
            }
        };
        // The baselines of the link: for a twin created now, the source as mapped and the twin
        // as created; for one found after a lost reply, what the intent recorded when it was
        // sent (so edits made since on either side merge), or nothing at all when no intent is
        // left (both sides' values are then news, and the conflict policy settles differences).
        let (twin, baseline, twin_baseline) = match found {
            Some(t) => {
                round.report.relinked[other] += 1;
                let intent = self.store.intent(&self.id, side, &item.id).await?;
                if intent.is_none()
                    && let Some(link) = self.store.link(&self.id, side, &item.id).await?
                    && link.id(other) == &t.id
                {
                    // No intent, but a link now: the worker before this one stored it (and then
                    // dropped the intent) while this one was looking the twin up. Its link
                    // holds the baselines; merge from it, not from nothing.
                    tracing::info!(pair = %self.id, from = %item.id, to = %t.id, "twin linked meanwhile by another worker");
                    let (l, r) = match side {
                        Side::Left => (item, t),
                        Side::Right => (t, item),
                    };
                    return self.merge(link, side, l, r, round).await;
                }
                tracing::info!(pair = %self.id, from = %item.id, to = %t.id, intent = intent.is_some(), "twin found by its correlation key: relinked");
                match intent {
                    Some(i) => {
                        let twin_base = self.fresh_twin_baseline(d, &i.sent);
                        (t, i.source_baseline, twin_base)
                    }
                    None => (t, FieldMap::new(), FieldMap::new()),
                }
            }
            None => {
                let created = match created {
                    Some(r) => r?,
                    None => {
                        let mapped = self.mapping().map_for_create(d, &item.fields);
                        if let Some(e) = mapped.errors.into_iter().next() {
                            return Err(e);
                        }
                        self.check_foreign_intent(side, &item.id).await?;
                        let intent = self.intent_for(side, &item, &key, &mapped.fields);
                        self.store.save_intents(&self.id, &[intent]).await?;
                        round.report.calls[other] += 1;
                        let r = self
                            .fenced(self.repos[other].create(
                                &self.types[other],
                                &mapped.fields,
                                &self.create_options(other, &key),
                            ))
                            .await;
                        self.note_creates(side, std::slice::from_ref(&item.id), &r);
                        r?
                    }
                };
                round.report.created[other] += 1;
                round.fresh = Some((other, created.id.clone()));
                tracing::info!(pair = %self.id, from = %item.id, to = %created.id, "twin created");
                let base = self.source_baseline(d, &item.fields);
                let twin_base = self.fresh_twin_baseline(d, &created.fields);
                (created, base, twin_base)
            }
        };
        let mut link = Link {
            left: ItemId::new(""),
            right: ItemId::new(""),
            key,
            left_version: None,
            right_version: None,
            left_baseline: FieldMap::new(),
            right_baseline: FieldMap::new(),
            pending: None,
        };
        match side {
            Side::Left => {
                link.left = item.id.clone();
                link.right = twin.id.clone();
            }
            Side::Right => {
                link.left = twin.id.clone();
                link.right = item.id.clone();
            }
        }
        // The source baseline is the item as it was mapped; the twin's is as created. The
        // source's version stays unset so the merge below always runs (state, comments).
        link.set(other, twin.version.clone(), twin_baseline);
        match side {
            Side::Left => link.left_baseline = baseline,
            Side::Right => link.right_baseline = baseline,
        }
        // Still ours? A worker that outlived its lease must not store the link and drop the
        // intent while the next worker, which found no link, is looking the twin up: that one
        // would then find neither and merge from empty baselines (two workers lost a title so).
        // Stopped here, the intent stays for the next worker.
        self.renew_lease().await?;
        self.store.save_link(&self.id, &link).await?;
        self.store.clear_intent(&self.id, side, &item.id).await?;
        let (l, r) = match side {
            Side::Left => (item, twin),
            Side::Right => (twin, item),
        };
        self.merge(link, side, l, r, round).await
    }

    /// The source's baseline when its twin is created: the fields just mapped, less the state,
    /// so the merge walks the new twin's workflow to the mapped state.
    fn source_baseline(&self, d: Direction, fields: &FieldMap) -> FieldMap {
        let mut base = fields.clone();
        if let Some((sf, _)) = self.mapping().state().and_then(|s| s.fields(d)) {
            base.remove(sf.as_str());
        }
        base
    }

    /// The intent recorded before creating the twin of `item` with `sent`.
    fn intent_for(
        &self,
        side: Side,
        item: &WorkItem,
        key: &CorrelationKey,
        sent: &FieldMap,
    ) -> CreateIntent {
        CreateIntent {
            side,
            source: item.id.clone(),
            key: key.clone(),
            source_baseline: self.source_baseline(direction_from(side), &item.fields),
            sent: sent.clone(),
            at: Utc::now(),
            run: process_run().to_owned(),
        }
    }

    fn uncertain_lock(&self) -> std::sync::MutexGuard<'_, HashSet<(Side, ItemId)>> {
        self.uncertain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers whether creates of twins for `items` ended without a known outcome (a
    /// timeout, a lost reply: [`Error::maybe_applied`]).
    fn note_creates<T>(&self, side: Side, items: &[ItemId], result: &Result<T>) {
        let mut u = self.uncertain_lock();
        for id in items {
            match result {
                Err(e) if e.maybe_applied() => u.insert((side, id.clone())),
                _ => u.remove(&(side, id.clone())),
            };
        }
    }

    /// Refuses to create a twin for `item` while another process's create for it may still
    /// land: a temporary error, so the cursor stays before the item and a later round (once the
    /// twin is found by its key, or the grace is over) takes it.
    async fn check_foreign_intent(&self, side: Side, item: &ItemId) -> Result<()> {
        let Some(i) = self.store.intent(&self.id, side, item).await? else {
            return Ok(());
        };
        let own = i.run == process_run();
        if own && !self.uncertain_lock().contains(&(side, item.clone())) {
            return Ok(());
        }
        let age = (Utc::now() - i.at).to_std().unwrap_or_default();
        if age >= self.options.foreign_intent_grace {
            return Ok(());
        }
        let who = if own {
            "this process, without learning the outcome,".to_owned()
        } else {
            format!("another process (run {})", i.run)
        };
        Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "{side} item {item}: {who} began creating its twin {} s ago and that create may still land; it is taken again after {} s",
                age.as_secs(),
                self.options.foreign_intent_grace.as_secs()
            ),
        )
        .with_temporary(true))
    }

    /// The baseline of a twin just created from the source side of `d`: its fields, less
    /// those that only flow back (and the state that flows back), so their first values reach
    /// the source in the same round (a new Bug's `New` state shows on the ticket at once).
    fn fresh_twin_baseline(&self, d: Direction, fields: &FieldMap) -> FieldMap {
        let back = d.reverse();
        let only_back = match back {
            Direction::LeftToRight => Flow::LeftToRight,
            Direction::RightToLeft => Flow::RightToLeft,
        };
        let mut base = fields.clone();
        let mapping = self.mapping();
        for r in mapping.rules().iter().filter(|r| r.flow() == only_back) {
            if let Some(f) = r.source_field(back) {
                base.remove(f.as_str());
            }
        }
        // A state that flows only back: the twin's first state is news for the source. One that
        // flows both ways was just set from the source (or is the workflow's initial state the
        // forward walk starts from): not news, or it would conflict with that walk.
        if let Some(state) = self.mapping().state()
            && state.fields(d).is_none()
            && let Some((sf, _)) = state.fields(back)
        {
            base.remove(sf.as_str());
        }
        base
    }

    /// The three-way merge of a linked pair, applied with `if_version`; on a version conflict
    /// both items are read again and the merge planned again (bounded).
    async fn merge(
        &self,
        mut link: Link,
        from: Side,
        mut left: WorkItem,
        mut right: WorkItem,
        round: &mut Round,
    ) -> Result<Outcome> {
        let source = match from {
            Side::Left => &left,
            Side::Right => &right,
        };
        if self.options.retire_out_of_scope
            && !self
                .mapping()
                .in_scope(direction_from(from), &source.fields)
            && self.mapping().may_create(direction_from(from))
        {
            // It left the scope that made it sync.
            let source = source.clone();
            return self
                .twinless(&link, from, &source, "left the sync scope", round)
                .await;
        }
        let wf = self.workflows().await?;
        let mut attempt = 0;
        let (mut errors, mut conflicts);
        loop {
            // A write whose outcome the link does not know — of an earlier round, or of this
            // merge when its answer was a conflict after the fact: did it land?
            if let Some(pw) = link.pending.take() {
                let written = match pw.side {
                    Side::Left => &left,
                    Side::Right => &right,
                };
                let landed = self.landed(&pw, written, round).await?;
                tracing::debug!(pair = %self.id, side = %pw.side, item = %written.id, landed = landed.is_some(), "a write without a known outcome");
                if let Some(values) = landed {
                    learn_landed(&mut link, &pw, &values);
                }
            }
            let p = plan(
                &self.mapping(),
                PlanInput {
                    left: &left,
                    right: &right,
                    left_baseline: &link.left_baseline,
                    right_baseline: &link.right_baseline,
                    left_workflow: wf.left.as_ref(),
                    right_workflow: wf.right.as_ref(),
                },
            );
            tracing::debug!(
                pair = %self.id, left = %link.left, right = %link.right,
                left_version = %left.version, right_version = %right.version,
                to_left = ?p.left.updates(), to_right = ?p.right.updates(),
                keep_left = ?p.left.keep_baseline, keep_right = ?p.right.keep_baseline,
                errors = p.errors.len(), "merge planned"
            );
            errors = p.errors.clone();
            conflicts = p.conflicts.clone();
            match self
                .apply(&p, &mut left, &mut right, &mut link, round)
                .await
            {
                Ok(()) => {
                    for (side, w) in [(Side::Left, &p.left), (Side::Right, &p.right)] {
                        let item = if side == Side::Left { &left } else { &right };
                        let mut base = item.fields.clone();
                        for f in &w.keep_baseline {
                            copy_field(&mut base, link.baseline(side), f);
                        }
                        link.set(side, item.version.clone(), base);
                    }
                    break;
                }
                Err(e)
                    if e.kind() == ErrorKind::Conflict
                        && e.operation() != Some(LEASE)
                        && attempt < self.options.conflict_retries =>
                {
                    attempt += 1;
                    tracing::debug!(pair = %self.id, attempt, "version conflict: reading both items again");
                    left = self.read_one(Side::Left, &link.left).await?;
                    right = self.read_one(Side::Right, &link.right).await?;
                    round.report.calls.left += 1;
                    round.report.calls.right += 1;
                }
                Err(e) => {
                    // What landed, and the write whose outcome is unknown, go to the store; the
                    // next round's merge starts from them.
                    self.renew_lease().await?;
                    self.store.save_link(&self.id, &link).await?;
                    return Err(e);
                }
            }
        }
        round.report.conflicts.extend(conflicts);
        let fresh = round
            .fresh
            .take()
            .filter(|(side, id)| link.id(*side) == id)
            .map(|(side, _)| side);
        // Comments and attachments before the link is stored: stored first, a copy that then
        // failed left both items at the versions the link knew, and the next round took them
        // for echoes and never copied it. Until this save the store holds the link as it was
        // before (older versions) or with a pending write: neither is an echo.
        if let Err(e) = self.copy_extras(&link, fresh, &mut round.report).await {
            link.left_version = None;
            link.right_version = None;
            self.renew_lease().await?;
            self.store.save_link(&self.id, &link).await?;
            return Err(e);
        }
        self.renew_lease().await?;
        self.store.save_link(&self.id, &link).await?;
        if let Some(e) = errors.into_iter().next() {
            // The rest was applied; the item is parked with what could not be.
            return Err(e.with_temporary(false));
        }
        Ok(Outcome::Done)
    }

    /// The other side's baseline once `done`'s writes of `p` landed: the fields those writes were
    /// mapped from take the values they were read with; everything else keeps its old baseline
    /// — in particular what is still to be written to the other side, and its sources.
    fn other_baseline_after(
        &self,
        link: &Link,
        done: Side,
        written: &FieldMap,
        other_item: &WorkItem,
    ) -> FieldMap {
        // Writes to `done` flow from the other side.
        let d = direction_from(done.other());
        let mapping = self.mapping();
        let mut sources: Vec<&FieldName> = mapping
            .rules()
            .iter()
            .filter(|r| r.target(d).is_some_and(|t| written.contains(t.as_str())))
            .filter_map(|r| r.source_field(d))
            .collect();
        if let Some((src, tgt)) = mapping.state().and_then(|s| s.fields(d))
            && written.contains(tgt.as_str())
        {
            sources.push(src);
        }
        let mut base = link.baseline(done.other()).clone();
        for f in sources {
            copy_field(&mut base, &other_item.fields, f);
        }
        base
    }

    /// Whether a write whose outcome the link does not know landed, and the values it left
    /// (ADR 0012, 0014). The item holding the values sent says it did. Otherwise, if the item
    /// changed since the version the write was made against and its side keeps a history, the
    /// change the write would have made tells: it may have landed and been changed again since
    /// (a QA verdict after the sync's own write), which the values alone cannot tell from a
    /// write that never landed.
    async fn landed(
        &self,
        pw: &PendingWrite,
        written: &WorkItem,
        round: &mut Round,
    ) -> Result<Option<FieldMap>> {
        let holds = |fields: &FieldMap| {
            pw.fields
                .iter()
                .all(|(f, v)| same(fields.get(f.as_str()), Some(v)))
        };
        if holds(&written.fields) {
            return Ok(Some(written.fields.clone()));
        }
        let repo = &self.repos[pw.side];
        let Some(at) = pw.at.as_ref().filter(|at| **at != written.version) else {
            return Ok(None); // unchanged since: it did not land
        };
        if !repo.capabilities().history {
            return Ok(None);
        }
        round.report.calls[pw.side] += 1;
        let then = repo
            .revision_after(&self.types[pw.side], &written.id, at, pw.writes.max(1))
            .await?;
        Ok(then.filter(|t| holds(&t.fields)).map(|t| t.fields))
    }

    /// Applies a plan's writes, left side first. Before a side is written the link is stored
    /// with that write as pending (ADR 0012); once it landed the link learns it: that side's
    /// written fields and the other side's fields they came from advance, so a failure writing
    /// the other side leaves a link that neither takes our own writes for news nor misses what
    /// changes on the other side meanwhile.
    async fn apply(
        &self,
        p: &SyncPlan,
        left: &mut WorkItem,
        right: &mut WorkItem,
        link: &mut Link,
        round: &mut Round,
    ) -> Result<()> {
        for side in [Side::Left, Side::Right] {
            let (item, other) = match side {
                Side::Left => (&mut *left, &*right),
                Side::Right => (&mut *right, &*left),
            };
            let updates = p.side(side).updates();
            if updates.is_empty() {
                round.report.unchanged[side] += 1;
                continue;
            }
            let mut sent = FieldMap::new();
            for u in &updates {
                sent.merge(u);
            }
            let pending = PendingWrite {
                side,
                other_baseline: self.other_baseline_after(link, side, &sent, other),
                fields: sent,
                at: Some(item.version.clone()),
                writes: u32::try_from(updates.len()).unwrap_or(u32::MAX),
            };
            link.pending = Some(pending.clone());
            // One renewal covers the pending record and the first write; a transition's further
            // steps renew again.
            let mut deadline = Some(self.renew_lease().await?);
            self.store.save_link(&self.id, link).await?;
            for changes in updates {
                round.report.calls[side] += 1;
                let checked = UpdateOptions::default().if_version(item.version.clone());
                let write =
                    self.repos[side].update(&self.types[side], &item.id, &changes, &checked);
                *item = match deadline.take() {
                    Some(at) => workbridge_core::fence::within(at, write).await?,
                    None => self.fenced(write).await?,
                };
            }
            // Landed: the link learns it (in memory; it is stored with the next pending write,
            // on failure, or at the end of the merge).
            link.pending = None;
            learn_landed(link, &pending, &item.fields);
            link.set(side, item.version.clone(), link.baseline(side).clone());
            round.report.updated[side] += 1;
        }
        Ok(())
    }

    /// New comments and attachments of either item, copied once each.
    async fn copy_extras(
        &self,
        link: &Link,
        fresh: Option<Side>,
        report: &mut SyncReport,
    ) -> Result<()> {
        for side in [Side::Left, Side::Right]
            .into_iter()
            .filter(|s| Some(*s) != fresh)
        {
            let (src, dst) = (&self.repos[side], &self.repos[side.other()]);
            let (sc, dc) = (src.capabilities(), dst.capabilities());
            if self.options.comments && sc.comments && dc.comments {
                self.copy_comments(link, side, report).await?;
            }
            if self.options.attachments && sc.attachments && dc.attachments {
                self.copy_attachments(link, side, report).await?;
            }
        }
        Ok(())
    }

    /// The key of an item across pairs: its system, type and id.
    fn item_key(&self, side: Side, id: &ItemId) -> String {
        format!("{}|{}|{}", self.repos[side], self.types[side], id)
    }

    async fn copy_comments(&self, link: &Link, side: Side, report: &mut SyncReport) -> Result<()> {
        let other = side.other();
        let mapping = self.mapping();
        let routing = mapping.comments();
        let visibility = match other {
            Side::Left => routing.to_left,
            Side::Right => routing.to_right,
        };
        if visibility == Visibility::Internal && !self.repos[other].capabilities().internal_comments
        {
            return Ok(()); // never downgrade a private routing to public
        }
        report.calls[side] += 1;
        let comments = self.repos[side]
            .comments(&self.types[side], link.id(side))
            .await?;
        // Across every pair sharing the store, a comment reaches an item once: not back where
        // it was first written, and not again by another path (three systems, three pairs).
        let target = self.item_key(other, link.id(other));
        let mut on_target: Option<Vec<String>> = None;
        // The target's comments that no copy record claims, read once before the first copy.
        let mut unclaimed: Option<Vec<Unclaimed>> = None;
        for c in comments {
            if c.visibility == Visibility::Internal && !routing.copy_internal {
                continue;
            }
            // Keyed by item: ALM numbers each defect's comments from one.
            let here = format!("{}|{}", self.item_key(side, link.id(side)), c.id);
            if self
                .store
                .copied(&self.id, Copied::Comment, side, &here)
                .await?
            {
                continue;
            }
            let origin = self
                .store
                .comment_origin(&here)
                .await?
                .unwrap_or_else(|| here.clone());
            let origins = match &mut on_target {
                Some(o) => o,
                None => on_target.insert(self.store.comment_origins_on(&target).await?),
            };
            if origin.starts_with(&format!("{target}|")) || origins.contains(&origin) {
                // Already there: remember it for this pair, copy nothing.
                tracing::debug!(pair = %self.id, side = %side, item = %link.id(side), comment = %c.id, %origin, "comment already on the other item");
                self.store
                    .record_copy(&self.id, Copied::Comment, side, &here, "")
                    .await?;
                continue;
            }
            let mut new = NewComment::public(self.attributed(side, &c)).with_format(c.format);
            new.visibility = visibility;
            // A copy whose answer was lost, or whose process was killed before recording it,
            // is on the target already, unclaimed: adopt it rather than write it twice.
            let claimable = match &mut unclaimed {
                Some(u) => u,
                None => unclaimed.insert(self.unclaimed_comments(link, other, report).await?),
            };
            // Or this comment is itself such a copy, made the other way: the words of an
            // unclaimed comment over there as its copy here would read. Copied on as news, it
            // would come back to its own item.
            let own = comment_text(&c.body, c.format);
            if let Some(pos) = claimable.iter().position(|u| u.as_copy == own) {
                let from = claimable.swap_remove(pos);
                let there = format!("{target}|{}", from.id);
                tracing::debug!(pair = %self.id, side = %side, item = %link.id(side), comment = %c.id, source = %from.id, "a copy made the other way found here, adopted");
                self.store
                    .record_copy(&self.id, Copied::Comment, other, &there, &here)
                    .await?;
                self.store
                    .record_comment_origin(&here, &self.item_key(side, link.id(side)), &there)
                    .await?;
                continue;
            }
            let text = comment_text(&new.body, new.format);
            if let Some(pos) = claimable.iter().position(|u| u.text == text) {
                let id = claimable.swap_remove(pos).id;
                let there = format!("{target}|{id}");
                tracing::debug!(pair = %self.id, side = %side, item = %link.id(side), comment = %c.id, copy = %id, %origin, "an earlier copy found on the other item, adopted");
                self.store
                    .record_copy(&self.id, Copied::Comment, side, &here, &there)
                    .await?;
                self.store
                    .record_comment_origin(&there, &target, &origin)
                    .await?;
                origins.push(origin);
                continue;
            }
            report.calls[other] += 1;
            let copy = self
                .fenced(self.repos[other].add_comment(&self.types[other], link.id(other), &new))
                .await?;
            let there = format!("{target}|{}", copy.id);
            self.store
                .record_copy(&self.id, Copied::Comment, side, &here, &there)
                .await?;
            self.store
                .record_comment_origin(&there, &target, &origin)
                .await?;
            tracing::debug!(pair = %self.id, side = %side, item = %link.id(side), comment = %c.id, copy = %copy.id, %origin, "comment copied");
            origins.push(origin);
            report.comments_copied[other] += 1;
        }
        Ok(())
    }

    /// A comment of `side` as its copy on the other side reads: headed with its author and
    /// the system's kind ("Ana Lopez (azure-devops):"), not its address.
    fn attributed(&self, side: Side, c: &workbridge_core::Comment) -> String {
        let Some(who) = c
            .author
            .as_ref()
            .and_then(|a| a.display_name.clone().or_else(|| a.login.clone()))
        else {
            return c.body.clone();
        };
        let system = self.repos[side].to_string();
        let system = system.split(':').next().unwrap_or_default();
        match c.format {
            workbridge_core::TextFormat::Html => {
                format!("<p><b>{}</b> ({system}):</p>{}", escape(&who), c.body)
            }
            _ => format!("{who} ({system}):\n{}", c.body),
        }
    }

    /// The comments on `side`'s item that neither a copy record nor an origin record claims,
    /// with their text as `comment_text` gives it.
    async fn unclaimed_comments(
        &self,
        link: &Link,
        side: Side,
        report: &mut SyncReport,
    ) -> Result<Vec<Unclaimed>> {
        report.calls[side] += 1;
        let here = self.item_key(side, link.id(side));
        let mut out = Vec::new();
        for c in self.repos[side]
            .comments(&self.types[side], link.id(side))
            .await?
        {
            let key = format!("{here}|{}", c.id);
            if self.store.comment_origin(&key).await?.is_none()
                && !self
                    .store
                    .copied(&self.id, Copied::Comment, side, &key)
                    .await?
            {
                let as_copy = comment_text(&self.attributed(side, &c), c.format);
                out.push(Unclaimed {
                    text: comment_text(&c.body, c.format),
                    as_copy,
                    id: c.id,
                });
            }
        }
        Ok(out)
    }

    async fn copy_attachments(
        &self,
        link: &Link,
        side: Side,
        report: &mut SyncReport,
    ) -> Result<()> {
        let other = side.other();
        report.calls[side] += 1;
        let list = self.repos[side]
            .attachments(&self.types[side], link.id(side))
            .await?;
        let cap = self.repos[other]
            .capabilities()
            .max_attachment_size
            .map_or(self.options.max_attachment_size, |m| {
                m.min(self.options.max_attachment_size)
            });
        let (src, dst) = (
            self.item_key(side, link.id(side)),
            self.item_key(other, link.id(other)),
        );
        // The target's attachments that no copy record claims, listed before the first upload.
        let mut unclaimed: Option<Vec<workbridge_core::AttachmentMeta>> = None;
        for a in list {
            // Keyed by item, like comments: an id need not be unique beyond its item.
            let here = format!("{src}|{}", a.id);
            if self
                .store
                .copied(&self.id, Copied::Attachment, side, &here)
                .await?
            {
                continue;
            }
            // Too large: reported once, and remembered so it is not downloaded again.
            let skip = |report: &mut SyncReport| {
                report.attachments_skipped[side] += 1;
                tracing::warn!(pair = %self.id, attachment = %a.file_name, cap, "attachment over the size cap not copied");
            };
            if a.size.is_some_and(|s| s > cap) {
                skip(report);
                self.store
                    .record_copy(&self.id, Copied::Attachment, side, &here, "")
                    .await?;
                continue;
            }
            report.calls[side] += 1;
            let data = self.repos[side].download(&a).await?;
            if data.len() as u64 > cap {
                skip(report);
                self.store
                    .record_copy(&self.id, Copied::Attachment, side, &here, "")
                    .await?;
                continue;
            }
            // An upload whose answer was lost, or whose process was killed before recording
            // it, is on the target already: the same name and the same bytes, unclaimed.
            let claimable = match &mut unclaimed {
                Some(u) => u,
                None => {
                    report.calls[other] += 1;
                    let mut free = Vec::new();
                    for t in self.repos[other]
                        .attachments(&self.types[other], link.id(other))
                        .await?
                    {
                        let key = format!("{dst}|{}", t.id);
                        if !self
                            .store
                            .copied(&self.id, Copied::Attachment, other, &key)
                            .await?
                        {
                            free.push(t);
                        }
                    }
                    unclaimed.insert(free)
                }
            };
            let mut adopted = None;
            for (i, t) in claimable.iter().enumerate() {
                if t.file_name != a.file_name || t.size.is_some_and(|n| n != data.len() as u64) {
                    continue;
                }
                report.calls[other] += 1;
                if self.repos[other].download(t).await? == data {
                    adopted = Some(i);
                    break;
                }
            }
            if let Some(i) = adopted {
                let t = claimable.swap_remove(i);
                tracing::debug!(pair = %self.id, side = %side, item = %link.id(side), attachment = %a.id, copy = %t.id, "an earlier upload found on the other item, adopted");
                self.store
                    .record_copy(
                        &self.id,
                        Copied::Attachment,
                        side,
                        &here,
                        &format!("{dst}|{}", t.id),
                    )
                    .await?;
                continue;
            }
            let content_type = a
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".to_owned());
            report.calls[other] += 1;
            let copy = self
                .fenced(self.repos[other].upload(
                    &self.types[other],
                    link.id(other),
                    &NewAttachment::new(a.file_name.clone(), content_type, data),
                ))
                .await?;
            self.store
                .record_copy(
                    &self.id,
                    Copied::Attachment,
                    side,
                    &here,
                    &format!("{dst}|{}", copy.id),
                )
                .await?;
            report.attachments_copied[other] += 1;
        }
        Ok(())
    }

    /// The item on `side` has lost its twin (deleted, or itself out of scope): say so on the
    /// surviving item and retire the link.
    async fn twinless(
        &self,
        link: &Link,
        side: Side,
        item: &WorkItem,
        why: &str,
        round: &mut Round,
    ) -> Result<Outcome> {
        if self.options.twinless_comment && self.repos[side].capabilities().comments {
            let (who, gone) = if why == "was deleted" {
                (side, side.other())
            } else {
                (side.other(), side)
            };
            let text = format!(
                "workbridge: {} item {} {why}; this item is no longer synchronized with it.",
                self.repos[gone],
                link.id(gone)
            );
            let visibility = if self.repos[who].capabilities().internal_comments {
                Visibility::Internal
            } else {
                Visibility::Public
            };
            round.report.calls[who] += 1;
            let target = if who == side { &item.id } else { link.id(who) };
            let mut note = NewComment::public(text);
            note.visibility = visibility;
            match self
                .fenced(self.repos[who].add_comment(&self.types[who], target, &note))
                .await
            {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        self.store.retire_link(&self.id, link).await?;
        round.report.twinless += 1;
        tracing::info!(pair = %self.id, left = %link.left, right = %link.right, why, "link retired");
        Ok(Outcome::Done)
    }
}

/// The operation named by the error of a lease another worker holds.
const LEASE: &str = "lease";

/// A conflict writing one item that outlasted the retries — another client holds its lock, or
/// its version keeps moving — as opposed to the pair's lease.
fn item_conflict(e: &Error) -> bool {
    e.kind() == ErrorKind::Conflict
        && matches!(
            e.operation(),
            Some("update" | "add_comment" | "upload" | "write_many")
        )
}

/// Sets `f` in `to` to its value in `from`, or removes it when `from` has none.
fn copy_field(to: &mut FieldMap, from: &FieldMap, f: &FieldName) {
    match from.get(f.as_str()) {
        Some(v) => to.insert(f.clone(), v.clone()),
        None => to.remove(f.as_str()),
    };
}

/// The link after `w` landed on `item`: the written fields take the values `item` holds, the
/// other side's baseline is the one the write recorded.
fn learn_landed(link: &mut Link, w: &PendingWrite, landed: &FieldMap) {
    let mut base = link.baseline(w.side).clone();
    for f in w.fields.names() {
        copy_field(&mut base, landed, f);
    }
    link.set_baseline(w.side, base);
    link.set_baseline(w.side.other(), w.other_baseline.clone());
}

/// A `get_many` answer of the wrong length would make items look deleted: refuse it.
fn check_len(repo: &dyn Repository, asked: usize, got: usize) -> Result<()> {
    if asked == got {
        Ok(())
    } else {
        Err(Error::protocol(
            "get_many",
            format!("{repo} returned {got} entries for {asked} ids; nothing is treated as deleted"),
        )
        .with_temporary(true))
    }
}

/// A comment on an item that no copy record or origin record claims.
struct Unclaimed {
    id: String,
    /// Its words.
    text: String,
    /// Its words as its copy on the other side would read.
    as_copy: String,
}

/// A comment's words, whatever markup the system stored it in: how a copy is recognised.
fn comment_text(body: &str, format: workbridge_core::TextFormat) -> String {
    let text = match format {
        workbridge_core::TextFormat::Html => workbridge_mapping::transform::html_to_text(body),
        _ => body.to_owned(),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

struct Round {
    report: SyncReport,
    parked: HashSet<(Side, ItemId)>,
    /// A twin created a moment ago, which has no comments or attachments of its own to list.
    fresh: Option<(Side, ItemId)>,
}
