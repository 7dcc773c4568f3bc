//! The workbridge sync kernel: keeps the items of two [`Repository`]s in step through a
//! [`Mapping`], one round at a time.
//!
//! A [`SyncPair`] reads each side's changes since its stored cursor, creates the twin of a new
//! in-scope item (after looking up its correlation key, so a retry never duplicates), merges
//! linked items three ways against the stored baseline (so concurrent edits to different fields
//! both survive and nothing we wrote is written back), copies new comments and attachments
//! once each, parks an item that fails for good and goes on with the rest, stops the round on
//! a temporary failure, and commits each cursor only after everything before it is applied.
//! When to run a round is the caller's choice: see [the sync guide](https://github.com/workbridge/workbridge/blob/main/docs/sync.md) and the examples.
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

#![cfg_attr(docsrs, feature(doc_cfg))]
mod builder;
mod extras;
mod merge;
mod observer;
mod options;
mod pass;
pub mod plan;
#[cfg(feature = "postgres")]
mod postgres;
mod report;
pub mod store;
mod stored;
mod twinless;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::{Index, IndexMut};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex as AsyncMutex;
use workbridge_core::{
    ChangeOptions, CorrelationKey, CreateOptions, Cursor, Error, ErrorKind, FieldMap, FieldName,
    GetOptions, ItemId, ItemType, NewAttachment, NewComment, Repository, Result, Schema,
    TransitionGraph, UpdateOptions, Version, Visibility, WorkItem, Write,
};
use workbridge_mapping::{Direction, Flow, Mapping};

pub use builder::SyncPairBuilder;
pub use observer::{ItemDone, ItemOutcome, Observer, PageDone};
pub use options::{SyncOptions, TwinLookup};
pub use plan::{FieldConflict, PlanInput, SideWrites, SyncPlan, plan, same};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PostgresStore;
pub use report::{PerSide, SyncReport};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use store::SqliteStore;
pub use store::{Copied, CreateIntent, Link, MemoryStore, Parked, PendingWrite, Side, StateStore};

/// A job's hold on its pair's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lease {
    /// Not taken yet in this job.
    NotTaken,
    /// Held until then, as of the last renewal.
    Until(tokio::time::Instant),
    /// It ran out during the job: not taken again before the next job (ADR 0010).
    Lapsed,
}

/// Keeps the items of two repositories in step: see the crate docs.
pub struct SyncPair {
    id: String,
    repos: PerSide<Arc<dyn Repository>>,
    types: PerSide<ItemType>,
    /// The mapping, with labels resolved to names once the schemas are read, and its fields.
    spec: std::sync::RwLock<Arc<Spec>>,
    store: Arc<dyn StateStore>,
    options: SyncOptions,
    workflows: AsyncMutex<Option<PerSide<Option<TransitionGraph>>>>,
    round: AsyncMutex<()>,
    holder: String,
    /// Items whose twin this process tried to create without learning the outcome (a timeout,
    /// a lost reply): their intents hold them as another process's do (ADR 0010).
    uncertain: std::sync::Mutex<HashSet<(Side, ItemId)>>,
    /// The lease of the job running: when it runs out, as of its last renewal.
    lease: std::sync::Mutex<Lease>,
    /// Items this process wrote, at the versions its writes left, not yet scanned: the side's
    /// next pass asks its backend to leave them out (`ChangeOptions::known`) while they are
    /// still at those versions and their links say so (ADR 0022).
    own_writes: std::sync::Mutex<PerSide<OwnWrites>>,
    /// Jobs run so far by this process: the number of the `round` tracing span.
    jobs: std::sync::atomic::AtomicU64,
    /// Told of each page and item ([`SyncPair::with_observer`]).
    observer: Option<Arc<dyn Observer>>,
}

/// A side's items this process wrote: the version each write left, and when it changed.
type OwnWrites = HashMap<ItemId, (Version, chrono::DateTime<Utc>)>;

/// Most writes of one side remembered for its next scan to leave out; beyond them, the
/// scan lists and reads them as echoes.
const OWN_WRITES_KEPT: usize = 10_000;

enum Job {
    Round,
    Reconcile,
    Replay,
    Link(ItemId, ItemId),
}

impl Job {
    fn name(&self) -> &'static str {
        match self {
            Job::Round => "run_once",
            Job::Reconcile => "reconcile",
            Job::Replay => "replay",
            Job::Link(..) => "link_existing",
        }
    }
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
    /// A merge planned, to be applied (with the rest of its page's).
    Merge(Box<merge::MergeJob>),
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
            spec: std::sync::RwLock::new(Arc::new(Spec::new(mapping))),
            store,
            options: SyncOptions::default(),
            workflows: AsyncMutex::new(None),
            round: AsyncMutex::new(()),
            holder: default_holder(),
            uncertain: std::sync::Mutex::new(HashSet::new()),
            own_writes: std::sync::Mutex::new(PerSide::default()),
            jobs: std::sync::atomic::AtomicU64::new(0),
            observer: None,
            lease: std::sync::Mutex::new(Lease::NotTaken),
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

    /// Tells `observer` of each page applied and each item's outcome; it may end a job
    /// between pages ([`Observer::page`]).
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
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
        self.spec().mapping.clone()
    }

    /// The mapping as resolved, with its fields.
    pub(crate) fn spec(&self) -> Arc<Spec> {
        self.spec
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The fields of `side` the spec reads or writes (labels resolved): what the kernel asks
    /// each read of that side for, so that pages, twins and baselines carry nothing else.
    pub(crate) fn reads(&self, side: Side) -> Vec<FieldName> {
        self.spec().fields[side].iter().cloned().collect()
    }

    /// A read of `side`'s items as the kernel asks for it: the spec's fields only.
    pub(crate) fn read_options(&self, side: Side) -> GetOptions {
        GetOptions::default().fields(self.reads(side))
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
            left_held: false,
            right_held: false,
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
        // Every event of the job — the kernel's, each adapter's requests — within one span
        // naming the pair, the job and its number in this process.
        let n = self.jobs.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let span = tracing::info_span!("round", pair = %self.id, job = job.name(), n);
        tracing::Instrument::instrument(self.leased_inner(job), span).await
    }

    async fn leased_inner(&self, job: Job) -> SyncReport {
        let mut round = Round {
            report: SyncReport::default(),
            parked: HashSet::new(),
            listed: extras::Listed::default(),
            first: PerSide::default(),
            correlated: PerSide::default(),
            fresh: None,
        };
        // A new job: its lease is taken afresh.
        *self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Lease::NotTaken;
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
        // Once lapsed, lapsed for the rest of the job: whatever it would store now — links as it
        // read them before, a cursor past them — may be older than what another worker stored
        // meanwhile, under a lease the store would grant again.
        let lapsed = {
            let mut lease = self
                .lease
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Lease::Until(t) = *lease
                && asked >= t
            {
                *lease = Lease::Lapsed;
            }
            *lease == Lease::Lapsed
        };
        if lapsed {
            return Err(self.lapsed());
        }
        if self
            .store
            .acquire_lease(&self.id, &self.holder, self.options.lease_ttl)
            .await?
        {
            let mut lease = self
                .lease
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *lease == Lease::Lapsed {
                // Another renewal of this job found it lapsed meanwhile.
                return Err(self.lapsed());
            }
            *lease = Lease::Until(asked + self.options.lease_ttl);
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

    /// The error of a job whose lease ran out.
    fn lapsed(&self) -> Error {
        Error::new(
            ErrorKind::Conflict,
            format!(
                "the lease of pair {} ran out during this run; it stops, and the next run reads afresh",
                self.id
            ),
        )
        .with_operation(LEASE)
        .with_temporary(true)
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
            if round.report.interrupted {
                return Ok(());
            }
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
            .take(self.batch())
            .collect();
        self.retry_parked(again, round).await
    }

    /// How many links a step over stored links takes at once (parked items retried, links
    /// reconciled): the page size when set, else what both sides read in one request.
    fn batch(&self) -> usize {
        self.options
            .page_size
            .unwrap_or_else(|| {
                self.repos
                    .left
                    .capabilities()
                    .max_batch_read
                    .min(self.repos.right.capabilities().max_batch_read)
            })
            .max(1)
    }

    async fn reconcile_inner(&self, round: &mut Round) -> Result<()> {
        let links = self.store.links(&self.id).await?;
        let mut batch = merge::Batch::default();
        for chunk in links.chunks(self.batch()) {
            let mut items = PerSide::<Vec<Option<WorkItem>>>::default();
            for side in [Side::Left, Side::Right] {
                let ids: Vec<ItemId> = chunk.iter().map(|l| l.id(side).clone()).collect();
                round.report.calls[side] += 1;
                items[side] = self.repos[side]
                    .get_many(&self.types[side], &ids, &self.read_options(side))
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
                batch
                    .take(self, Side::Left, &link.left, result, round)
                    .await?;
            }
            self.run_merges(&mut batch, round).await?;
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
                    &self.read_options(p.side),
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
        self.read_if_there(side, id)
            .await?
            .ok_or_else(|| Error::not_found(&self.types[side], id))
    }

    /// One item of `side` as the kernel reads it (the spec's fields), `None` when it is gone.
    pub(crate) async fn read_if_there(&self, side: Side, id: &ItemId) -> Result<Option<WorkItem>> {
        Ok(self.repos[side]
            .get_many(
                &self.types[side],
                std::slice::from_ref(id),
                &self.read_options(side),
            )
            .await?
            .pop()
            .flatten())
    }

    async fn workflows(&self) -> Result<PerSide<Option<TransitionGraph>>> {
        let mut cached = self.workflows.lock().await;
        if let Some(w) = cached.as_ref() {
            return Ok(w.clone());
        }
        let mut schemas: PerSide<Option<Schema>> = PerSide::default();
        for side in [Side::Left, Side::Right] {
            if self.repos[side].capabilities().workflow {
                schemas[side] = Some(self.repos[side].schema(&self.types[side]).await?);
            }
        }
        let out = self.learn_schemas(&schemas);
        *cached = Some(out.clone());
        Ok(out)
    }

    /// Takes in the sides' schemas: a field the spec names by label is read back under its
    /// name (ALM user fields); the workflows of the sides that enforce them are returned.
    fn learn_schemas(&self, schemas: &PerSide<Option<Schema>>) -> PerSide<Option<TransitionGraph>> {
        let resolved = self
            .mapping()
            .resolve_labels(schemas.left.as_ref(), schemas.right.as_ref());
        *self
            .spec
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(Spec::new(resolved));
        let mut out = PerSide::default();
        for side in [Side::Left, Side::Right] {
            if self.repos[side].capabilities().workflow {
                out[side] = schemas[side].as_ref().and_then(|s| s.workflow.clone());
            }
        }
        out
    }
}

/// A pair's mapping and the fields of each side it reads or writes ([`Mapping::fields`]),
/// worked out once per mapping rather than for every item.
pub(crate) struct Spec {
    mapping: Arc<Mapping>,
    pub(crate) fields: PerSide<std::collections::BTreeSet<FieldName>>,
}

impl Spec {
    fn new(mapping: Mapping) -> Self {
        let (left, right) = mapping.fields();
        Spec {
            mapping: Arc::new(mapping),
            fields: PerSide { left, right },
        }
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
            Some("create" | "update" | "add_comment" | "upload" | "write_many")
        )
}

/// A duration as a person reads it in a message: "0.3 s", "12 s".
fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} s", d.as_secs())
    }
}

/// Whether an error concerns every item, not the one it came with — an outage, credentials
/// problems, a lost lease: the round stops (nothing more is sent), rather than parking them all.
/// A write conflict that outlasted the retries (another client holds the item's lock)
/// concerns its item.
fn stops_the_round(e: &Error) -> bool {
    (e.is_temporary() && !item_conflict(e))
        || matches!(e.kind(), ErrorKind::Unauthenticated | ErrorKind::Config)
}

/// A `get_many` answer of the wrong length would make items look deleted: refuse it.
fn check_len(repo: &dyn Repository, asked: usize, got: usize) -> Result<()> {
    check_answers(&repo.to_string(), "get_many", asked, got)
}

/// One answer per id asked, or a temporary error naming who answered wrong (a repository, the
/// state store): nothing is treated as deleted or unlinked for a short answer.
fn check_answers(from: &str, operation: &'static str, asked: usize, got: usize) -> Result<()> {
    if asked == got {
        Ok(())
    } else {
        Err(Error::protocol(
            operation,
            format!("{from} returned {got} entries for {asked} ids; nothing is treated as deleted or unlinked"),
        )
        .with_temporary(true))
    }
}

struct Round {
    report: SyncReport,
    parked: HashSet<(Side, ItemId)>,
    /// Comments and attachments listed for a page's merges at once.
    listed: extras::Listed,
    /// Per side: whether its pass began without a cursor (its first round), and then whether
    /// the other side holds items with correlation keys (asked once).
    first: PerSide<bool>,
    correlated: PerSide<Option<bool>>,
    /// A twin created a moment ago, which has no comments or attachments of its own to list.
    fresh: Option<(Side, ItemId)>,
}
