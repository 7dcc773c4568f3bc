//! What the kernel remembers between rounds, and where: [`StateStore`], [`MemoryStore`],
//! [`SqliteStore`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use workbridge_core::{CorrelationKey, Cursor, FieldMap, ItemId, Result, Version, WorkItem};

/// One side of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Side {
    /// The left repository.
    Left,
    /// The right repository.
    Right,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }

    /// `left` or `right`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A linked pair of items, with what each side looked like after the last sync (the baseline
/// of the three-way merge).
///
/// Its serde form is what the stores write: field maps in a compact JSON form (plain text,
/// integers, booleans and nulls bare, other kinds as `{"choice":"2"}`), read back in that form
/// or in [`FieldValue`](workbridge_core::FieldValue)'s own tagged one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// The left item.
    pub left: ItemId,
    /// The right item.
    pub right: ItemId,
    /// The correlation key written into the item that was created.
    pub key: CorrelationKey,
    /// The left item's version after the last sync.
    pub left_version: Option<Version>,
    /// The right item's version after the last sync.
    pub right_version: Option<Version>,
    /// The left item's mapped fields after the last sync.
    #[serde(with = "crate::stored")]
    pub left_baseline: FieldMap,
    /// The right item's mapped fields after the last sync.
    #[serde(with = "crate::stored")]
    pub right_baseline: FieldMap,
    /// A write sent (or about to be sent) to one side whose outcome the link does not know yet:
    /// recorded before it is sent, so that the next round can tell whether it landed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingWrite>,
    /// The left baseline is not the left item's spec fields exactly as they were at
    /// `left_version`: a field is held back (an unresolved conflict's old value, kept so that
    /// the conflict is seen again), a write's outcome was learnt into it, or the link was
    /// stored before there was this mark (the store's migration sets it). False — the baseline
    /// is the item as a merge read it, wrote it or knew it — a change on the right is merged
    /// against it without reading the left item, written on the condition that the item is
    /// still at that version (ADR 0022). Stored only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub left_held: bool,
    /// The right baseline is not the right item as it was at `right_version` (see
    /// `left_held`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub right_held: bool,
}

/// A write to one side of a link, recorded before it is sent (ADR 0012). If the side holds
/// these values when the pair is merged next, the write landed — though its reply was lost or
/// the process died before it could store the link — and the baselines advance as if the link
/// had been stored after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingWrite {
    /// The side written.
    pub side: Side,
    /// The fields sent, with the values sent.
    #[serde(with = "crate::stored")]
    pub fields: FieldMap,
    /// The other side's baseline once the write landed: the fields the write was mapped from
    /// take the values they were read with.
    #[serde(with = "crate::stored")]
    pub other_baseline: FieldMap,
    /// The version the write was made against (its `if_version`). With the side's history
    /// (ADR 0014), the change `writes` after it tells whether the write landed though the item
    /// changed again since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Version>,
    /// How many updates the write takes (a workflow walk takes one per step).
    #[serde(default = "one_write")]
    pub writes: u32,
    /// The updates of a write of several steps (a workflow walk), in order: when the side holds
    /// what the first steps wrote but not the rest, those steps landed and the walk goes on from
    /// there. Empty for a write of one update.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<FieldMap>,
    /// When the write was handed to the side, while it may be in flight: recorded before it is
    /// sent, and cleared when a definite answer says it did not land (or it was never sent). A
    /// write that timed out, lost its answer or outlived its process may still land — a proxy
    /// or a busy server applies it late — so until the item shows it landed, or
    /// `SyncOptions::in_flight_grace` is over, it is not sent again (ADR 0019).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<DateTime<Utc>>,
}

fn one_write() -> u32 {
    1
}

impl Link {
    /// The item on `side`.
    pub fn id(&self, side: Side) -> &ItemId {
        match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }

    /// The version on `side`.
    pub fn version(&self, side: Side) -> Option<&Version> {
        match side {
            Side::Left => self.left_version.as_ref(),
            Side::Right => self.right_version.as_ref(),
        }
    }

    /// The baseline on `side`.
    pub fn baseline(&self, side: Side) -> &FieldMap {
        match side {
            Side::Left => &self.left_baseline,
            Side::Right => &self.right_baseline,
        }
    }

    /// Whether `item` is `side` as the link last left it — the sync's own write coming back —
    /// so that nothing is to merge. Never while a write of the link has no known outcome: then
    /// the pair is merged again, which learns or retries it (ADR 0012).
    pub fn is_echo(&self, side: Side, item: &WorkItem) -> bool {
        self.pending.is_none() && self.version(side) == Some(&item.version)
    }

    /// Whether `side`'s baseline is its item exactly as it was at the stored version.
    pub fn exact(&self, side: Side) -> bool {
        match side {
            Side::Left => !self.left_held,
            Side::Right => !self.right_held,
        }
    }

    /// Marks whether `side`'s baseline is its item exactly as it was at the stored version.
    pub(crate) fn set_exact(&mut self, side: Side, exact: bool) {
        match side {
            Side::Left => self.left_held = !exact,
            Side::Right => self.right_held = !exact,
        }
    }

    /// Replaces one side's baseline, leaving its version; the baseline is no longer taken for
    /// the item as it is at that version.
    pub(crate) fn set_baseline(&mut self, side: Side, baseline: FieldMap) {
        match side {
            Side::Left => self.left_baseline = baseline,
            Side::Right => self.right_baseline = baseline,
        }
        self.set_exact(side, false);
    }

    pub(crate) fn set(&mut self, side: Side, version: Version, baseline: FieldMap) {
        match side {
            Side::Left => self.left_version = Some(version),
            Side::Right => self.right_version = Some(version),
        }
        self.set_baseline(side, baseline);
    }
}

/// A twin about to be created, recorded before the create is sent and cleared once the link is
/// stored. If the reply is lost (or the process dies) between the two, the next round finds the
/// twin by its correlation key and links it with these baselines: the source as it was mapped
/// and the twin as it was sent, so edits made on either side since are merged, not overwritten.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateIntent {
    /// The side of the source item.
    pub side: Side,
    /// The source item.
    pub source: ItemId,
    /// The correlation key the twin is created with.
    pub key: CorrelationKey,
    /// The source's baseline: its fields as mapped for the create.
    #[serde(with = "crate::stored")]
    pub source_baseline: FieldMap,
    /// The fields sent for the twin.
    #[serde(with = "crate::stored")]
    pub sent: FieldMap,
    /// When the create was about to be sent.
    pub at: DateTime<Utc>,
    /// The process that sent it (empty in intents written before this was kept).
    #[serde(default)]
    pub run: String,
}

/// An item set aside after a permanent failure, with its error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parked {
    /// The side it lives on.
    pub side: Side,
    /// The item.
    pub id: ItemId,
    /// The error, as text.
    pub error: String,
    /// How many times it failed.
    pub attempts: u32,
    /// When it last failed.
    pub at: DateTime<Utc>,
    /// Whether the failure concerns the item for a while only (another client holds its lock,
    /// its version keeps moving): the kernel tries it again in later rounds on its own. Others
    /// wait for [`SyncPair::replay`](crate::SyncPair::replay) once their cause is fixed.
    #[serde(default)]
    pub temporary: bool,
}

/// Copied comments and attachments are remembered by kind and id, on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Copied {
    /// A comment.
    Comment,
    /// An attachment.
    Attachment,
}

impl Copied {
    /// Its name in the SQL stores.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Copied::Comment => "comment",
            Copied::Attachment => "attachment",
        }
    }
}

/// Where a pair's state lives. Every method is one atomic step: a crash between two calls
/// leaves a consistent state (at worst an item is processed again, which the kernel makes
/// harmless).
#[async_trait]
pub trait StateStore: fmt::Debug + Send + Sync {
    /// The link of an item, by either side.
    async fn link(&self, pair: &str, side: Side, id: &ItemId) -> Result<Option<Link>>;
    /// Creates or replaces a link.
    async fn save_link(&self, pair: &str, link: &Link) -> Result<()>;
    /// The links of several items of one side, in the order asked. A store that can should
    /// answer in one step; the default asks for each in turn.
    async fn links_of(&self, pair: &str, side: Side, ids: &[ItemId]) -> Result<Vec<Option<Link>>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.link(pair, side, id).await?);
        }
        Ok(out)
    }
    /// Creates or replaces several links, then forgets the create intents of `done` (sources
    /// whose links are among them). A store that can should do it in one step; the default
    /// stores each link in turn and then clears the intents, so a crash between two steps
    /// leaves at worst an intent whose link is stored (which the kernel reads as linked).
    async fn save_links(&self, pair: &str, links: &[Link], done: &[(Side, ItemId)]) -> Result<()> {
        for link in links {
            self.save_link(pair, link).await?;
        }
        for (side, id) in done {
            self.clear_intent(pair, *side, id).await?;
        }
        Ok(())
    }
    /// Removes a link.
    async fn retire_link(&self, pair: &str, link: &Link) -> Result<()>;
    /// Every link of a pair.
    async fn links(&self, pair: &str) -> Result<Vec<Link>>;
    /// A side's change cursor.
    async fn cursor(&self, pair: &str, side: Side) -> Result<Option<Cursor>>;
    /// Stores a side's change cursor.
    async fn save_cursor(&self, pair: &str, side: Side, cursor: &Cursor) -> Result<()>;
    /// Parks an item (or counts one more failure).
    async fn park(&self, pair: &str, parked: &Parked) -> Result<()>;
    /// Unparks an item.
    async fn unpark(&self, pair: &str, side: Side, id: &ItemId) -> Result<()>;
    /// The parked items.
    async fn parked(&self, pair: &str) -> Result<Vec<Parked>>;
    /// Whether a comment or attachment was copied (from or to this side). The kernel passes
    /// ids qualified by their item (`system|type|item|id`): ALM numbers each defect's comments
    /// from one, so a bare id is not unique within a pair.
    async fn copied(&self, pair: &str, kind: Copied, side: Side, id: &str) -> Result<bool>;
    /// Records a copy: the source on `side` and the copy on the other side.
    async fn record_copy(
        &self,
        pair: &str,
        kind: Copied,
        side: Side,
        source: &str,
        copy: &str,
    ) -> Result<()>;
    /// Takes, or renews, the pair's lease for `holder` until `ttl` from now: `false` when another
    /// holder's lease has not expired. Two workers never run one pair at once; a dead worker's
    /// lease runs out.
    async fn acquire_lease(
        &self,
        pair: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool>;
    /// Gives the lease up, if `holder` has it.
    async fn release_lease(&self, pair: &str, holder: &str) -> Result<()>;
    /// Records that twins are about to be created (one step for all of them). A store that
    /// keeps no intents (the default) makes a twin found after a lost reply merge from empty
    /// baselines, settled by the conflict policy.
    async fn save_intents(&self, pair: &str, intents: &[CreateIntent]) -> Result<()> {
        let _ = (pair, intents);
        Ok(())
    }
    /// The intent recorded for a source item, if any.
    async fn intent(
        &self,
        pair: &str,
        side: Side,
        source: &ItemId,
    ) -> Result<Option<CreateIntent>> {
        let _ = (pair, side, source);
        Ok(None)
    }
    /// Forgets the intent of a source item (its link is stored, or its create failed).
    async fn clear_intent(&self, pair: &str, side: Side, source: &ItemId) -> Result<()> {
        let _ = (pair, side, source);
        Ok(())
    }
    /// The comment a copied comment was first written as, across every pair sharing this
    /// store: `at` and the answer are comment keys (`system|type|item|comment`). `None` for a
    /// comment no pair copied (it is its own origin). A store that keeps no origins (the
    /// default) leaves each pair to its own copy table.
    async fn comment_origin(&self, at: &str) -> Result<Option<String>> {
        let _ = at;
        Ok(None)
    }
    /// Records that the comment `copy` on `item` (an item key, `system|type|item`) is a copy of
    /// the comment `origin`.
    async fn record_comment_origin(&self, copy: &str, item: &str, origin: &str) -> Result<()> {
        let _ = (copy, item, origin);
        Ok(())
    }
    /// The origins of the copies already on `item`, whichever pair wrote them.
    async fn comment_origins_on(&self, item: &str) -> Result<Vec<String>> {
        let _ = item;
        Ok(Vec::new())
    }
}

fn lease_until(ttl: std::time::Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

#[derive(Debug, Default)]
struct Mem {
    links: BTreeMap<(String, ItemId), Link>,
    /// The left id of each right id's link.
    rights: BTreeMap<(String, ItemId), ItemId>,
    cursors: BTreeMap<(String, Side), Cursor>,
    parked: BTreeMap<(String, Side, ItemId), Parked>,
    copied: BTreeSet<(String, Copied, Side, String)>,
    leases: BTreeMap<String, (String, DateTime<Utc>)>,
    intents: BTreeMap<(String, Side, ItemId), CreateIntent>,
    /// Copy key → (item key, origin key).
    origins: BTreeMap<String, (String, String)>,
}

/// State in memory: for tests, and for loops that can afford to start over.
#[derive(Debug, Default)]
pub struct MemoryStore(Mutex<Mem>);

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mem> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn link(&self, pair: &str, side: Side, id: &ItemId) -> Result<Option<Link>> {
        let m = self.lock();
        let key = (pair.to_owned(), id.clone());
        Ok(match side {
            Side::Left => m.links.get(&key).cloned(),
            Side::Right => m
                .rights
                .get(&key)
                .and_then(|l| m.links.get(&(pair.to_owned(), l.clone())))
                .cloned(),
        })
    }
    async fn save_link(&self, pair: &str, link: &Link) -> Result<()> {
        let mut m = self.lock();
        // A link holding either id goes first, as in the other stores.
        let by_left = (pair.to_owned(), link.left.clone());
        if let Some(old) = m.links.remove(&by_left) {
            m.rights.remove(&(pair.to_owned(), old.right));
        }
        let by_right = (pair.to_owned(), link.right.clone());
        if let Some(old_left) = m.rights.remove(&by_right) {
            m.links.remove(&(pair.to_owned(), old_left));
        }
        m.rights.insert(by_right, link.left.clone());
        m.links.insert(by_left, link.clone());
        Ok(())
    }
    async fn retire_link(&self, pair: &str, link: &Link) -> Result<()> {
        let mut m = self.lock();
        if let Some(old) = m.links.remove(&(pair.to_owned(), link.left.clone())) {
            m.rights.remove(&(pair.to_owned(), old.right));
        }
        Ok(())
    }
    async fn links(&self, pair: &str) -> Result<Vec<Link>> {
        Ok(self
            .lock()
            .links
            .iter()
            .filter(|((p, _), _)| p == pair)
            .map(|(_, l)| l.clone())
            .collect())
    }
    async fn cursor(&self, pair: &str, side: Side) -> Result<Option<Cursor>> {
        Ok(self.lock().cursors.get(&(pair.to_owned(), side)).cloned())
    }
    async fn save_cursor(&self, pair: &str, side: Side, cursor: &Cursor) -> Result<()> {
        self.lock()
            .cursors
            .insert((pair.to_owned(), side), cursor.clone());
        Ok(())
    }
    async fn park(&self, pair: &str, parked: &Parked) -> Result<()> {
        let mut m = self.lock();
        let key = (pair.to_owned(), parked.side, parked.id.clone());
        let attempts = m.parked.get(&key).map_or(0, |p| p.attempts) + 1;
        m.parked.insert(
            key,
            Parked {
                attempts,
                ..parked.clone()
            },
        );
        Ok(())
    }
    async fn unpark(&self, pair: &str, side: Side, id: &ItemId) -> Result<()> {
        self.lock()
            .parked
            .remove(&(pair.to_owned(), side, id.clone()));
        Ok(())
    }
    async fn parked(&self, pair: &str) -> Result<Vec<Parked>> {
        Ok(self
            .lock()
            .parked
            .iter()
            .filter(|((p, ..), _)| p == pair)
            .map(|(_, v)| v.clone())
            .collect())
    }
    async fn copied(&self, pair: &str, kind: Copied, side: Side, id: &str) -> Result<bool> {
        Ok(self
            .lock()
            .copied
            .contains(&(pair.to_owned(), kind, side, id.to_owned())))
    }
    async fn record_copy(
        &self,
        pair: &str,
        kind: Copied,
        side: Side,
        source: &str,
        copy: &str,
    ) -> Result<()> {
        let mut m = self.lock();
        m.copied
            .insert((pair.to_owned(), kind, side, source.to_owned()));
        m.copied
            .insert((pair.to_owned(), kind, side.other(), copy.to_owned()));
        Ok(())
    }
    async fn acquire_lease(
        &self,
        pair: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        let mut m = self.lock();
        let now = Utc::now();
        match m.leases.get(pair) {
            Some((h, until)) if h != holder && *until > now => Ok(false),
            _ => {
                m.leases
                    .insert(pair.to_owned(), (holder.to_owned(), lease_until(ttl)));
                Ok(true)
            }
        }
    }
    async fn release_lease(&self, pair: &str, holder: &str) -> Result<()> {
        let mut m = self.lock();
        if m.leases.get(pair).is_some_and(|(h, _)| h == holder) {
            m.leases.remove(pair);
        }
        Ok(())
    }
    async fn save_intents(&self, pair: &str, intents: &[CreateIntent]) -> Result<()> {
        let mut m = self.lock();
        for i in intents {
            m.intents
                .insert((pair.to_owned(), i.side, i.source.clone()), i.clone());
        }
        Ok(())
    }
    async fn intent(
        &self,
        pair: &str,
        side: Side,
        source: &ItemId,
    ) -> Result<Option<CreateIntent>> {
        Ok(self
            .lock()
            .intents
            .get(&(pair.to_owned(), side, source.clone()))
            .cloned())
    }
    async fn clear_intent(&self, pair: &str, side: Side, source: &ItemId) -> Result<()> {
        self.lock()
            .intents
            .remove(&(pair.to_owned(), side, source.clone()));
        Ok(())
    }
    async fn comment_origin(&self, at: &str) -> Result<Option<String>> {
        Ok(self.lock().origins.get(at).map(|(_, o)| o.clone()))
    }
    async fn record_comment_origin(&self, copy: &str, item: &str, origin: &str) -> Result<()> {
        self.lock()
            .origins
            .insert(copy.to_owned(), (item.to_owned(), origin.to_owned()));
        Ok(())
    }
    async fn comment_origins_on(&self, item: &str) -> Result<Vec<String>> {
        Ok(self
            .lock()
            .origins
            .values()
            .filter(|(i, _)| i == item)
            .map(|(_, o)| o.clone())
            .collect())
    }
}

#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::{
        Copied, CreateIntent, Cursor, ItemId, Link, Mutex, Parked, Result, Side, StateStore, Utc,
        async_trait, fmt, lease_until,
    };
    use rusqlite::{Connection, OptionalExtension, params};
    use workbridge_core::{Error, ErrorKind};

    fn db_err(e: rusqlite::Error) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            format!("the SQLite state store failed: {e}"),
        )
        .with_temporary(false)
        .with_source(e)
    }

    fn json_err(e: &serde_json::Error) -> Error {
        Error::new(
            ErrorKind::Protocol,
            format!("a stored value cannot be read: {e}"),
        )
    }

    /// The migrations, in order; `PRAGMA user_version` says how many ran.
    const MIGRATIONS: &[&str] = &[
        "CREATE TABLE links (pair TEXT NOT NULL, left_id TEXT NOT NULL, right_id TEXT NOT NULL, link TEXT NOT NULL, PRIMARY KEY (pair, left_id));
         CREATE UNIQUE INDEX links_by_right ON links (pair, right_id);
         CREATE TABLE cursors (pair TEXT NOT NULL, side TEXT NOT NULL, cursor TEXT NOT NULL, PRIMARY KEY (pair, side));
         CREATE TABLE parked (pair TEXT NOT NULL, side TEXT NOT NULL, id TEXT NOT NULL, parked TEXT NOT NULL, PRIMARY KEY (pair, side, id));
         CREATE TABLE copied (pair TEXT NOT NULL, kind TEXT NOT NULL, side TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (pair, kind, side, id));",
        "CREATE TABLE leases (pair TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_ms INTEGER NOT NULL);",
        "CREATE TABLE intents (pair TEXT NOT NULL, side TEXT NOT NULL, id TEXT NOT NULL, intent TEXT NOT NULL, PRIMARY KEY (pair, side, id));",
        "CREATE TABLE comment_origins (copy TEXT PRIMARY KEY, item TEXT NOT NULL, origin TEXT NOT NULL);
         CREATE INDEX comment_origins_by_item ON comment_origins (item);",
        // A link row names its pair by number: the name is stored once, not in every row and
        // in both indexes over them.
        "CREATE TABLE pair_ids (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
         INSERT INTO pair_ids (name) SELECT DISTINCT pair FROM links;
         CREATE TABLE links_numbered (pair INTEGER NOT NULL REFERENCES pair_ids (id), left_id TEXT NOT NULL, right_id TEXT NOT NULL, link TEXT NOT NULL, PRIMARY KEY (pair, left_id));
         INSERT INTO links_numbered SELECT p.id, l.left_id, l.right_id, l.link FROM links l JOIN pair_ids p ON p.name = l.pair;
         DROP TABLE links;
         ALTER TABLE links_numbered RENAME TO links;
         CREATE UNIQUE INDEX links_by_right ON links (pair, right_id);",
        // Links stored before baselines were marked exact or not (ADR 0022) are taken as not
        // exact: their twins are read before the next merge, which marks them.
        r#"UPDATE links SET link = substr(link, 1, length(link) - 1) || ',"left_held":true,"right_held":true}' WHERE link LIKE '%}';"#,
    ];

    /// State in a SQLite file (WAL mode, migrations, one transaction per step): the default
    /// store for a single process.
    pub struct SqliteStore {
        conn: Mutex<Connection>,
        path: String,
    }

    impl fmt::Debug for SqliteStore {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("SqliteStore")
                .field("path", &self.path)
                .finish()
        }
    }

    impl SqliteStore {
        /// Opens (creating and migrating as needed) the store at `path`; `:memory:` for a
        /// private in-memory database.
        ///
        /// # Errors
        /// When the file cannot be opened or migrated.
        pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self> {
            let p = path.as_ref();
            let mut conn = Connection::open(p).map_err(db_err)?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(db_err)?;
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(db_err)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(db_err)?;
            // Every statement of the store stays prepared.
            conn.set_prepared_statement_cache_capacity(64);
            let version: usize = conn
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .map_err(db_err)?;
            if version > MIGRATIONS.len() {
                return Err(Error::config(format!(
                    "the state store {} was written by a newer workbridge (schema {version})",
                    p.display()
                )));
            }
            for (i, m) in MIGRATIONS.iter().enumerate().skip(version) {
                let tx = conn.transaction().map_err(db_err)?;
                tx.execute_batch(m).map_err(db_err)?;
                tx.pragma_update(None, "user_version", i + 1)
                    .map_err(db_err)?;
                tx.commit().map_err(db_err)?;
            }
            Ok(SqliteStore {
                conn: Mutex::new(conn),
                path: p.display().to_string(),
            })
        }

        fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
            let mut c = self
                .conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut c).map_err(db_err)
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(s: Option<String>) -> Result<Option<T>> {
        s.map(|s| serde_json::from_str(&s).map_err(|e| json_err(&e)))
            .transpose()
    }

    /// Forgets a source item's create intent.
    const CLEAR_INTENT: &str = "DELETE FROM intents WHERE pair = ?1 AND side = ?2 AND id = ?3";

    /// One statement, prepared once per connection.
    fn exec(c: &Connection, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<usize> {
        c.prepare_cached(sql)?.execute(p)
    }

    /// One row of one statement, prepared once per connection.
    fn row<T>(
        c: &Connection,
        sql: &str,
        p: impl rusqlite::Params,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        c.prepare_cached(sql)?.query_row(p, f)
    }

    /// The stored link of an item, by either side, as JSON.
    fn get_link(
        c: &Connection,
        pair: &str,
        side: Side,
        id: &ItemId,
    ) -> rusqlite::Result<Option<String>> {
        let sql = match side {
            Side::Left => {
                "SELECT link FROM links WHERE pair = (SELECT id FROM pair_ids WHERE name = ?1) AND left_id = ?2"
            }
            Side::Right => {
                "SELECT link FROM links WHERE pair = (SELECT id FROM pair_ids WHERE name = ?1) AND right_id = ?2"
            }
        };
        row(c, sql, params![pair, id.as_str()], |r| r.get(0)).optional()
    }

    #[async_trait]
    impl StateStore for SqliteStore {
        async fn link(&self, pair: &str, side: Side, id: &ItemId) -> Result<Option<Link>> {
            let raw = self.with(|c| get_link(c, pair, side, id))?;
            decode(raw)
        }
        async fn links_of(
            &self,
            pair: &str,
            side: Side,
            ids: &[ItemId],
        ) -> Result<Vec<Option<Link>>> {
            let raw: Vec<Option<String>> = self.with(|c| {
                let tx = c.transaction()?;
                let rows = ids
                    .iter()
                    .map(|id| get_link(&tx, pair, side, id))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                tx.commit()?;
                Ok(rows)
            })?;
            raw.into_iter().map(decode).collect()
        }
        async fn save_link(&self, pair: &str, link: &Link) -> Result<()> {
            self.save_links(pair, std::slice::from_ref(link), &[]).await
        }
        async fn save_links(
            &self,
            pair: &str,
            links: &[Link],
            done: &[(Side, ItemId)],
        ) -> Result<()> {
            let rows = links
                .iter()
                .map(|l| serde_json::to_string(l).map_err(|e| json_err(&e)))
                .collect::<Result<Vec<_>>>()?;
            self.with(|c| {
                let tx = c.transaction()?;
                exec(
                    &tx,
                    "INSERT OR IGNORE INTO pair_ids (name) VALUES (?1)",
                    params![pair],
                )?;
                for (link, json) in links.iter().zip(&rows) {
                    // Two deletes, each by its index (an `OR` of the two scans the table).
                    for (sql, id) in [
                        (
                            "DELETE FROM links WHERE pair = (SELECT id FROM pair_ids WHERE name = ?1) AND left_id = ?2",
                            &link.left,
                        ),
                        (
                            "DELETE FROM links WHERE pair = (SELECT id FROM pair_ids WHERE name = ?1) AND right_id = ?2",
                            &link.right,
                        ),
                    ] {
                        exec(&tx, sql, params![pair, id.as_str()])?;
                    }
                    exec(
                        &tx,
                        "INSERT INTO links (pair, left_id, right_id, link) VALUES ((SELECT id FROM pair_ids WHERE name = ?1), ?2, ?3, ?4)",
                        params![pair, link.left.as_str(), link.right.as_str(), json],
                    )?;
                }
                for (side, id) in done {
                    exec(
                        &tx,
                        CLEAR_INTENT,
                        params![pair, side.as_str(), id.as_str()],
                    )?;
                }
                tx.commit()
            })
        }
        async fn retire_link(&self, pair: &str, link: &Link) -> Result<()> {
            self.with(|c| {
                exec(c,
                    "DELETE FROM links WHERE pair = (SELECT id FROM pair_ids WHERE name = ?1) AND left_id = ?2",
                    params![pair, link.left.as_str()],
                )
                .map(|_| ())
            })
        }
        async fn links(&self, pair: &str) -> Result<Vec<Link>> {
            let rows: Vec<String> = self.with(|c| {
                let mut st =
                    c.prepare_cached(
                    "SELECT link FROM links WHERE pair = (SELECT id FROM pair_ids WHERE name = ?1) ORDER BY left_id",
                )?;
                st.query_map(params![pair], |r| r.get(0))?.collect()
            })?;
            rows.into_iter()
                .map(|s| serde_json::from_str(&s).map_err(|e| json_err(&e)))
                .collect()
        }
        async fn cursor(&self, pair: &str, side: Side) -> Result<Option<Cursor>> {
            let raw: Option<String> = self.with(|c| {
                row(
                    c,
                    "SELECT cursor FROM cursors WHERE pair = ?1 AND side = ?2",
                    params![pair, side.as_str()],
                    |r| r.get(0),
                )
                .optional()
            })?;
            decode(raw)
        }
        async fn save_cursor(&self, pair: &str, side: Side, cursor: &Cursor) -> Result<()> {
            let json = serde_json::to_string(cursor).map_err(|e| json_err(&e))?;
            self.with(|c| {
                exec(
                    c,
                    "INSERT OR REPLACE INTO cursors (pair, side, cursor) VALUES (?1, ?2, ?3)",
                    params![pair, side.as_str(), json],
                )
                .map(|_| ())
            })
        }
        async fn park(&self, pair: &str, parked: &Parked) -> Result<()> {
            let previous: Option<Parked> = decode(self.with(|c| {
                row(
                    c,
                    "SELECT parked FROM parked WHERE pair = ?1 AND side = ?2 AND id = ?3",
                    params![pair, parked.side.as_str(), parked.id.as_str()],
                    |r| r.get(0),
                )
                .optional()
            })?)?;
            let p = Parked {
                attempts: previous.map_or(0, |p| p.attempts) + 1,
                ..parked.clone()
            };
            let json = serde_json::to_string(&p).map_err(|e| json_err(&e))?;
            self.with(|c| exec(c, "INSERT OR REPLACE INTO parked (pair, side, id, parked) VALUES (?1, ?2, ?3, ?4)", params![pair, p.side.as_str(), p.id.as_str(), json]).map(|_| ()))
        }
        async fn unpark(&self, pair: &str, side: Side, id: &ItemId) -> Result<()> {
            self.with(|c| {
                exec(
                    c,
                    "DELETE FROM parked WHERE pair = ?1 AND side = ?2 AND id = ?3",
                    params![pair, side.as_str(), id.as_str()],
                )
                .map(|_| ())
            })
        }
        async fn parked(&self, pair: &str) -> Result<Vec<Parked>> {
            let rows: Vec<String> = self.with(|c| {
                let mut st = c.prepare_cached(
                    "SELECT parked FROM parked WHERE pair = ?1 ORDER BY side, id",
                )?;
                st.query_map(params![pair], |r| r.get(0))?.collect()
            })?;
            rows.into_iter()
                .map(|s| serde_json::from_str(&s).map_err(|e| json_err(&e)))
                .collect()
        }
        async fn copied(&self, pair: &str, kind: Copied, side: Side, id: &str) -> Result<bool> {
            self.with(|c| {
                row(
                    c,
                    "SELECT 1 FROM copied WHERE pair = ?1 AND kind = ?2 AND side = ?3 AND id = ?4",
                    params![pair, kind.as_str(), side.as_str(), id],
                    |_| Ok(()),
                )
                .optional()
                .map(|x| x.is_some())
            })
        }
        async fn record_copy(
            &self,
            pair: &str,
            kind: Copied,
            side: Side,
            source: &str,
            copy: &str,
        ) -> Result<()> {
            self.with(|c| {
                let tx = c.transaction()?;
                exec(
                    &tx,
                    "INSERT OR IGNORE INTO copied (pair, kind, side, id) VALUES (?1, ?2, ?3, ?4)",
                    params![pair, kind.as_str(), side.as_str(), source],
                )?;
                exec(
                    &tx,
                    "INSERT OR IGNORE INTO copied (pair, kind, side, id) VALUES (?1, ?2, ?3, ?4)",
                    params![pair, kind.as_str(), side.other().as_str(), copy],
                )?;
                tx.commit()
            })
        }
        async fn acquire_lease(
            &self,
            pair: &str,
            holder: &str,
            ttl: std::time::Duration,
        ) -> Result<bool> {
            let (now, until) = (
                Utc::now().timestamp_millis(),
                lease_until(ttl).timestamp_millis(),
            );
            // One statement: take a free or expired lease, or renew our own.
            self.with(|c| {
                row(c,
                    "INSERT INTO leases (pair, holder, expires_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (pair) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms
                     WHERE leases.holder = excluded.holder OR leases.expires_ms <= ?4
                     RETURNING holder",
                    params![pair, holder, until, now],
                    |_| Ok(()),
                )
                .optional()
                .map(|r| r.is_some())
            })
        }
        async fn release_lease(&self, pair: &str, holder: &str) -> Result<()> {
            self.with(|c| {
                exec(
                    c,
                    "DELETE FROM leases WHERE pair = ?1 AND holder = ?2",
                    params![pair, holder],
                )
                .map(|_| ())
            })
        }
        async fn save_intents(&self, pair: &str, intents: &[CreateIntent]) -> Result<()> {
            let rows = intents
                .iter()
                .map(|i| {
                    serde_json::to_string(i)
                        .map(|j| (i.side.as_str(), i.source.as_str().to_owned(), j))
                        .map_err(|e| json_err(&e))
                })
                .collect::<Result<Vec<_>>>()?;
            self.with(|c| {
                let tx = c.transaction()?;
                for (side, id, json) in &rows {
                    exec(&tx,
                        "INSERT OR REPLACE INTO intents (pair, side, id, intent) VALUES (?1, ?2, ?3, ?4)",
                        params![pair, side, id, json],
                    )?;
                }
                tx.commit()
            })
        }
        async fn intent(
            &self,
            pair: &str,
            side: Side,
            source: &ItemId,
        ) -> Result<Option<CreateIntent>> {
            decode(self.with(|c| {
                row(
                    c,
                    "SELECT intent FROM intents WHERE pair = ?1 AND side = ?2 AND id = ?3",
                    params![pair, side.as_str(), source.as_str()],
                    |r| r.get(0),
                )
                .optional()
            })?)
        }
        async fn clear_intent(&self, pair: &str, side: Side, source: &ItemId) -> Result<()> {
            self.with(|c| {
                exec(
                    c,
                    CLEAR_INTENT,
                    params![pair, side.as_str(), source.as_str()],
                )
                .map(|_| ())
            })
        }
        async fn comment_origin(&self, at: &str) -> Result<Option<String>> {
            self.with(|c| {
                row(
                    c,
                    "SELECT origin FROM comment_origins WHERE copy = ?1",
                    params![at],
                    |r| r.get(0),
                )
                .optional()
            })
        }
        async fn record_comment_origin(&self, copy: &str, item: &str, origin: &str) -> Result<()> {
            self.with(|c| {
                exec(c,
                    "INSERT OR REPLACE INTO comment_origins (copy, item, origin) VALUES (?1, ?2, ?3)",
                    params![copy, item, origin],
                )
                .map(|_| ())
            })
        }
        async fn comment_origins_on(&self, item: &str) -> Result<Vec<String>> {
            self.with(|c| {
                let mut st =
                    c.prepare_cached("SELECT origin FROM comment_origins WHERE item = ?1")?;
                st.query_map(params![item], |r| r.get(0))?.collect()
            })
        }
    }
}
