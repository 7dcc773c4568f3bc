//! The conformance suite every [`Repository`] implementation must pass.
//!
//! Each `check_*` function tests one behaviour of the [`Repository`] contract against a live
//! repository and returns [`Outcome::Passed`], [`Outcome::Skipped`] (when the repository's
//! [`Capabilities`](workbridge_core::Capabilities) say the behaviour does not apply), or a
//! [`Failure`] saying what was expected and what happened. The checks create their own items,
//! with unique values, so they can run against a shared live instance.
//!
//! Run the whole suite from an integration test with [`conformance_tests!`], which generates
//! one `#[tokio::test]` per check (the calling crate needs `tokio` with `macros` and `rt`):
//!
//! ```
//! # // In a test crate this would be at the top level of `tests/it/main.rs`.
//! mod in_memory {
//!     workbridge_testkit::conformance_tests!(
//!         repo = async { workbridge_core::InMemoryRepository::new("conformance") },
//!         fixture = workbridge_testkit::Fixture::new("incident", "short_description"),
//!     );
//! }
//! ```
//!
//! or call [`run_all`] / [`assert_conformance`] yourself.

#![cfg_attr(docsrs, feature(doc_cfg))]
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{TimeDelta, Utc};
use workbridge_core::{
    ChangeOptions, CorrelationKey, CreateOptions, Cursor, ErrorKind, FieldMap, FieldName,
    FieldValue, GetOptions, ItemId, ItemType, NewAttachment, NewComment, Repository, RepositoryExt,
    UpdateOptions, WorkItem, Write,
};

/// What the suite needs to know about the repository under test.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Fixture {
    /// The item type the checks create items of.
    pub item_type: ItemType,
    /// Fields for a valid create (besides `text_field`, which the checks set).
    pub new_item: FieldMap,
    /// A writable plain-text field the checks set and update.
    pub text_field: FieldName,
    /// Items the paging check creates.
    pub paging_items: usize,
    /// Page size the paging check asks for.
    pub page_size: usize,
    /// A field the item type does not have.
    pub unknown_field: FieldName,
    /// An id no item has.
    pub missing_id: ItemId,
    /// Changes that the workflow must refuse on a new item (a jump to a later state), if the
    /// backend enforces a workflow.
    pub invalid_transition: Option<FieldMap>,
    /// How far before an item's `changed_at` a scan starts, to allow for clock skew between
    /// the server and the watermark (default 2 s).
    pub scan_slack: TimeDelta,
}

impl Fixture {
    /// A fixture for `item_type`, updating `text_field`.
    pub fn new(item_type: impl Into<ItemType>, text_field: impl Into<FieldName>) -> Self {
        Fixture {
            item_type: item_type.into(),
            new_item: FieldMap::new(),
            text_field: text_field.into(),
            paging_items: 25,
            page_size: 7,
            unknown_field: FieldName::from("workbridge_no_such_field"),
            missing_id: ItemId::from("999999999"),
            invalid_transition: None,
            scan_slack: TimeDelta::seconds(2),
        }
    }

    /// Adds a field every created item gets.
    #[must_use]
    pub fn with_field(mut self, name: impl Into<FieldName>, value: impl Into<FieldValue>) -> Self {
        self.new_item.insert(name, value);
        self
    }

    /// Sets the changes the workflow must refuse on a new item.
    #[must_use]
    pub fn with_invalid_transition(mut self, changes: FieldMap) -> Self {
        self.invalid_transition = Some(changes);
        self
    }

    /// Sets how many items the paging check creates, and its page size.
    #[must_use]
    pub fn with_paging(mut self, items: usize, page_size: usize) -> Self {
        self.paging_items = items.max(2);
        self.page_size = page_size.max(1);
        self
    }

    /// Sets an id no item has.
    #[must_use]
    pub fn with_missing_id(mut self, id: impl Into<ItemId>) -> Self {
        self.missing_id = id.into();
        self
    }

    fn fields(&self, text: &str) -> FieldMap {
        let mut f = self.new_item.clone();
        f.insert(self.text_field.clone(), text);
        f
    }
}

/// A check that passed or did not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The behaviour holds.
    Passed,
    /// The behaviour does not apply to this repository, and why.
    Skipped(&'static str),
}

/// A check that failed: which, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The check's name.
    pub check: &'static str,
    /// What was expected and what happened.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.check, self.message)
    }
}

impl std::error::Error for Failure {}

/// The result of one check.
pub type CheckResult = Result<Outcome, Failure>;

macro_rules! ensure {
    ($check:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(Failure { check: $check, message: format!($($fmt)+) });
        }
    };
}

trait Ctx<T> {
    fn ctx(self, check: &'static str, what: &str) -> Result<T, Failure>;
}

impl<T> Ctx<T> for workbridge_core::Result<T> {
    fn ctx(self, check: &'static str, what: &str) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            check,
            message: format!("{what}: unexpected error: {e}"),
        })
    }
}

fn expect_err<T: fmt::Debug>(
    check: &'static str,
    what: &str,
    r: workbridge_core::Result<T>,
    kind: ErrorKind,
) -> Result<workbridge_core::Error, Failure> {
    match r {
        Err(e) if e.kind() == kind => Ok(e),
        Err(e) => Err(Failure {
            check,
            message: format!("{what}: expected a {kind} error, got: {e}"),
        }),
        Ok(v) => Err(Failure {
            check,
            message: format!("{what}: expected a {kind} error, got success: {v:?}"),
        }),
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "workbridge conformance {tag} {}-{n}",
        Utc::now().timestamp_micros()
    )
}

async fn create(
    check: &'static str,
    repo: &dyn Repository,
    fx: &Fixture,
    tag: &str,
) -> Result<WorkItem, Failure> {
    repo.create(
        &fx.item_type,
        &fx.fields(&unique(tag)),
        &CreateOptions::default(),
    )
    .await
    .ctx(check, "create")
}

fn text_of<'a>(item: &'a WorkItem, field: &FieldName) -> Option<&'a str> {
    item.field(field.as_str()).and_then(FieldValue::as_str)
}

/// Scans changes from just before `from` until nothing more is waiting.
async fn scan_all(
    check: &'static str,
    repo: &dyn Repository,
    fx: &Fixture,
    from: &WorkItem,
) -> Result<(Vec<WorkItem>, Cursor), Failure> {
    let start = Cursor::at(from.changed_at - fx.scan_slack, ItemId::default());
    let opts = ChangeOptions::default().page_size(fx.page_size);
    repo.all_changes(&fx.item_type, &start, &opts)
        .await
        .ctx(check, "changes")
}

/// Reading an id that does not exist gives `None` from `get_many` and NotFound from `get`.
pub async fn check_get_missing_is_not_found(repo: &dyn Repository, fx: &Fixture) -> CheckResult {
    const C: &str = "check_get_missing_is_not_found";
    let got = repo
        .get_many(
            &fx.item_type,
            std::slice::from_ref(&fx.missing_id),
            &GetOptions::default(),
        )
        .await
        .ctx(C, "get_many")?;
    ensure!(
        C,
        got.len() == 1 && got[0].is_none(),
        "expected [None], got {got:?}"
    );
    expect_err(
        C,
        "get",
        repo.get(&fx.item_type, &fx.missing_id).await,
        ErrorKind::NotFound,
    )?;
    Ok(Outcome::Passed)
}

/// `create` returns the item as stored, and reading it back gives the same fields and version.
pub async fn check_create_returns_stored_item(repo: &dyn Repository, fx: &Fixture) -> CheckResult {
    const C: &str = "check_create_returns_stored_item";
    let text = unique("create");
    let item = repo
        .create(&fx.item_type, &fx.fields(&text), &CreateOptions::default())
        .await
        .ctx(C, "create")?;
    ensure!(
        C,
        item.item_type == fx.item_type,
        "created item has type {}",
        item.item_type
    );
    ensure!(
        C,
        text_of(&item, &fx.text_field) == Some(text.as_str()),
        "created item's {} is {:?}, expected {text:?}",
        fx.text_field,
        item.field(fx.text_field.as_str())
    );
    let read = repo.get(&fx.item_type, &item.id).await.ctx(C, "get")?;
    ensure!(
        C,
        read.version == item.version,
        "read version {} != created {}",
        read.version,
        item.version
    );
    ensure!(
        C,
        text_of(&read, &fx.text_field) == Some(text.as_str()),
        "read-back {} is {:?}",
        fx.text_field,
        read.field(fx.text_field.as_str())
    );
    Ok(Outcome::Passed)
}

/// A created item appears in `changes` read from just before it.
pub async fn check_created_item_appears_in_changes(
    repo: &dyn Repository,
    fx: &Fixture,
) -> CheckResult {
    const C: &str = "check_created_item_appears_in_changes";
    let item = create(C, repo, fx, "changes").await?;
    let (items, _) = scan_all(C, repo, fx, &item).await?;
    ensure!(
        C,
        items.iter().any(|i| i.id == item.id),
        "item {} not in changes",
        item.id
    );
    for w in items.windows(2) {
        ensure!(
            C,
            w[0].changed_at <= w[1].changed_at,
            "changes not ascending by changed_at: {} then {}",
            w[0].changed_at,
            w[1].changed_at
        );
    }
    Ok(Outcome::Passed)
}

/// `update` changes the named field, leaves the others alone, and gives a new version.
pub async fn check_update_changes_only_named_fields(
    repo: &dyn Repository,
    fx: &Fixture,
) -> CheckResult {
    const C: &str = "check_update_changes_only_named_fields";
    let item = create(C, repo, fx, "update").await?;
    let text = unique("updated");
    let updated = repo
        .set_field(
            &fx.item_type,
            &item.id,
            fx.text_field.clone(),
            text.as_str(),
        )
        .await
        .ctx(C, "update")?;
    ensure!(
        C,
        updated.version != item.version,
        "version did not change on update"
    );
    ensure!(
        C,
        text_of(&updated, &fx.text_field) == Some(text.as_str()),
        "update not applied"
    );
    let read = repo.get(&fx.item_type, &item.id).await.ctx(C, "get")?;
    for (name, value) in fx.new_item.iter() {
        ensure!(
            C,
            read.field(name.as_str()) == item.field(name.as_str()),
            "field {name} changed from {:?} to {:?} (was set to {value:?})",
            item.field(name.as_str()),
            read.field(name.as_str())
        );
    }
    ensure!(
        C,
        read.changed_at >= item.changed_at,
        "changed_at went backwards"
    );
    Ok(Outcome::Passed)
}

/// Updating with a stale `if_version` fails with Conflict and writes nothing.
pub async fn check_stale_version_is_conflict(repo: &dyn Repository, fx: &Fixture) -> CheckResult {
    const C: &str = "check_stale_version_is_conflict";
    if !repo.capabilities().optimistic_concurrency {
        return Ok(Outcome::Skipped("no optimistic concurrency"));
    }
    let item = create(C, repo, fx, "conflict").await?;
    let first = unique("first");
    repo.update(
        &fx.item_type,
        &item.id,
        &FieldMap::new().with(fx.text_field.clone(), first.as_str()),
        &UpdateOptions::default().if_version(item.version.clone()),
    )
    .await
    .ctx(C, "update at the current version")?;
    let r = repo
        .update(
            &fx.item_type,
            &item.id,
            &FieldMap::new().with(fx.text_field.clone(), unique("second")),
            &UpdateOptions::default().if_version(item.version.clone()),
        )
        .await;
    expect_err(C, "update at a stale version", r, ErrorKind::Conflict)?;
    let read = repo.get(&fx.item_type, &item.id).await.ctx(C, "get")?;
    ensure!(
        C,
        text_of(&read, &fx.text_field) == Some(first.as_str()),
        "the stale write was applied: {:?}",
        read.field(fx.text_field.as_str())
    );
    Ok(Outcome::Passed)
}

/// Updating an item that does not exist fails with NotFound.
pub async fn check_update_missing_is_not_found(repo: &dyn Repository, fx: &Fixture) -> CheckResult {
    const C: &str = "check_update_missing_is_not_found";
    let r = repo
        .set_field(&fx.item_type, &fx.missing_id, fx.text_field.clone(), "x")
        .await;
    expect_err(C, "update of a missing item", r, ErrorKind::NotFound)?;
    Ok(Outcome::Passed)
}

/// Paging `changes` in small pages while items change returns every item, and each changed item
/// at its latest version, nothing skipped.
pub async fn check_changes_complete_while_items_change(
    repo: &dyn Repository,
    fx: &Fixture,
) -> CheckResult {
    const C: &str = "check_changes_complete_while_items_change";
    let mut created = Vec::new();
    for _ in 0..fx.paging_items {
        created.push(create(C, repo, fx, "paging").await?);
    }
    let opts = ChangeOptions::default().page_size(fx.page_size);
    let mut cursor = Cursor::at(created[0].changed_at - fx.scan_slack, ItemId::default());
    let mut seen: std::collections::HashMap<ItemId, WorkItem> = Default::default();
    let mut touched: Vec<WorkItem> = Vec::new();
    let mut pages = 0usize;
    loop {
        let page = repo
            .changes(&fx.item_type, &cursor, &opts)
            .await
            .ctx(C, "changes")?;
        pages += 1;
        ensure!(
            C,
            pages < 10_000,
            "changes never reports the end of the scan"
        );
        ensure!(
            C,
            page.items.len() <= fx.page_size,
            "page of {} items, asked for at most {}",
            page.items.len(),
            fx.page_size
        );
        for item in page.items {
            seen.insert(item.id.clone(), item);
        }
        cursor = page.next;
        if pages == 1 {
            // Change one item already read and the last created (not yet read).
            let read_one = created
                .iter()
                .find(|c| seen.contains_key(&c.id))
                .unwrap_or(&created[0]);
            for target in [read_one.id.clone(), created[created.len() - 1].id.clone()] {
                let w = repo
                    .set_field(
                        &fx.item_type,
                        &target,
                        fx.text_field.clone(),
                        unique("during scan"),
                    )
                    .await
                    .ctx(C, "update during the scan")?;
                touched.push(w);
            }
        }
        if !page.has_more {
            break;
        }
    }
    for c in &created {
        ensure!(
            C,
            seen.contains_key(&c.id),
            "item {} was never returned",
            c.id
        );
    }
    for t in &touched {
        let got = &seen[&t.id];
        ensure!(
            C,
            got.version == t.version,
            "item {} changed during the scan was last returned at version {}, not {}",
            t.id,
            got.version,
            t.version
        );
    }
    Ok(Outcome::Passed)
}

/// A cursor stored (as JSON) at the end of a scan resumes it: a later change is returned.
pub async fn check_changes_resume_from_stored_cursor(
    repo: &dyn Repository,
    fx: &Fixture,
) -> CheckResult {
    const C: &str = "check_changes_resume_from_stored_cursor";
    let item = create(C, repo, fx, "resume").await?;
    let (_, cursor) = scan_all(C, repo, fx, &item).await?;
    let json = serde_json::to_string(&cursor).map_err(|e| Failure {
        check: C,
        message: format!("cursor does not serialize: {e}"),
    })?;
    let cursor: Cursor = serde_json::from_str(&json).map_err(|e| Failure {
        check: C,
        message: format!("cursor does not deserialize from {json}: {e}"),
    })?;
    let updated = repo
        .set_field(
            &fx.item_type,
            &item.id,
            fx.text_field.clone(),
            unique("later"),
        )
        .await
        .ctx(C, "update")?;
    let (items, _) = repo
        .all_changes(&fx.item_type, &cursor, &ChangeOptions::default())
        .await
        .ctx(C, "changes from the stored cursor")?;
    ensure!(
        C,
        items
            .iter()
            .any(|i| i.id == updated.id && i.version == updated.version),
        "the change made after the scan was not returned from the stored cursor"
    );
    Ok(Outcome::Passed)
}

/// `get_many` answers one entry per id, in order, with `None` for a missing id.
pub async fn check_get_many_keeps_order(repo: &dyn Repository, fx: &Fixture) -> CheckResult {
    const C: &str = "check_get_many_keeps_order";
    let a = create(C, repo, fx, "a").await?;
    let b = create(C, repo, fx, "b").await?;
    let ids = [b.id.clone(), fx.missing_id.clone(), a.id.clone()];
    let got = repo
        .get_many(&fx.item_type, &ids, &GetOptions::default())
        .await
        .ctx(C, "get_many")?;
    let got_ids: Vec<Option<&ItemId>> = got.iter().map(|i| i.as_ref().map(|i| &i.id)).collect();
    ensure!(
        C,
        got_ids == [Some(&b.id), None, Some(&a.id)],
        "expected [{}, None, {}], got {got_ids:?}",
        b.id,
        a.id
    );
    Ok(Outcome::Passed)
}

/// A `fields` projection returns the asked field and marks the item partial.
pub async fn check_projection_is_partial(repo: &dyn Repository, fx: &Fixture) -> CheckResult {
    const C: &str = "check_projection_is_partial";
    let item = create(C, repo, fx, "projection").await?;
    let got = repo
        .get_many(
            &fx.item_type,
            std::slice::from_ref(&item.id),
            &GetOptions::default().fields([fx.text_field.clone()]),
        )
        .await
        .ctx(C, "get_many with fields")?;
    let Some(Some(got)) = got.into_iter().next() else {
        return Err(Failure {
            check: C,
            message: "item not returned".into(),
        });
    };
    ensure!(C, got.partial, "projected item not marked partial");
    ensure!(
        C,
        got.field(fx.text_field.as_str()) == item.field(fx.text_field.as_str()),
        "projected {} is {:?}",
        fx.text_field,
        got.field(fx.text_field.as_str())
    );
    Ok(Outcome::Passed)
}

/// An item created with a correlation key is found by it; an unknown key finds nothing.
pub async fn check_correlation_finds_created_item(
    repo: &dyn Repository,
    fx: &Fixture,
) -> CheckResult {
    const C: &str = "check_correlation_finds_created_item";
    if !repo.capabilities().correlation {
        return Ok(Outcome::Skipped("no correlation keys"));
    }
    let key = unique("key").replace(' ', "-");
    let item = repo
        .create(
            &fx.item_type,
            &fx.fields(&unique("correlated")),
            &CreateOptions::default().correlation(key.as_str()),
        )
        .await
        .ctx(C, "create with correlation")?;
    let found = repo
        .find_by_correlation(&fx.item_type, &key.as_str().into())
        .await
        .ctx(C, "find_by_correlation")?;
    ensure!(
        C,
        found.as_ref().map(|f| &f.id) == Some(&item.id),
        "expected {}, found {:?}",
        item.id,
        found.map(|f| f.id)
    );
    let none = repo
        .find_by_correlation(&fx.item_type, &unique("absent").replace(' ', "-").into())
        .await
        .ctx(C, "find_by_correlation of an unknown key")?;
    ensure!(
        C,
        none.is_none(),
        "an unknown key found {:?}",
        none.map(|f| f.id)
    );
    // The batched lookup answers key by key, in order, duplicates included.
    let absent: CorrelationKey = unique("absent").replace(' ', "-").into();
    let keys = [key.as_str().into(), absent, key.as_str().into()];
    let many = repo
        .find_many_by_correlation(&fx.item_type, &keys)
        .await
        .ctx(C, "find_many_by_correlation")?;
    let ids: Vec<Option<&ItemId>> = many.iter().map(|f| f.as_ref().map(|f| &f.id)).collect();
    ensure!(
        C,
        ids == [Some(&item.id), None, Some(&item.id)],
        "find_many_by_correlation answered {ids:?} for [{}, an unknown key, {}]",
        item.id,
        item.id
    );
    Ok(Outcome::Passed)
}

/// Comments come back oldest first, with their bodies, visibility and stable ids.
pub async fn check_comments_keep_order_and_visibility(
    repo: &dyn Repository,
    fx: &Fixture,
) -> CheckResult {
    const C: &str = "check_comments_keep_order_and_visibility";
    if !repo.capabilities().comments {
        return Ok(Outcome::Skipped("no comments"));
    }
    let item = create(C, repo, fx, "comments").await?;
    let mut wanted = vec![NewComment::public(unique("public one"))];
    if repo.capabilities().internal_comments {
        wanted.push(NewComment::internal(unique("internal")));
    }
    wanted.push(NewComment::public(unique("public two")));
    let mut added = Vec::new();
    for c in &wanted {
        added.push(
            repo.add_comment(&fx.item_type, &item.id, c)
                .await
                .ctx(C, "add_comment")?,
        );
    }
    let got = repo
        .comments(&fx.item_type, &item.id)
        .await
        .ctx(C, "comments")?;
    ensure!(
        C,
        got.len() == wanted.len(),
        "expected {} comments, got {}",
        wanted.len(),
        got.len()
    );
    for ((g, w), a) in got.iter().zip(&wanted).zip(&added) {
        ensure!(
            C,
            g.body.contains(w.body.as_str()),
            "comment {:?} where {:?} was expected",
            g.body,
            w.body
        );
        ensure!(
            C,
            g.visibility == w.visibility,
            "comment {:?} has visibility {:?}, expected {:?}",
            g.body,
            g.visibility,
            w.visibility
        );
        ensure!(C, g.id == a.id, "comment id {} read back as {}", a.id, g.id);
    }
    if !repo.capabilities().internal_comments {
        let r = repo
            .add_comment(&fx.item_type, &item.id, &NewComment::internal("x"))
            .await;
        expect_err(C, "internal comment", r, ErrorKind::Unsupported)?;
    }
    let again = repo
        .comments(&fx.item_type, &item.id)
        .await
        .ctx(C, "comments")?;
    ensure!(
        C,
        again.iter().map(|c| &c.id).eq(got.iter().map(|c| &c.id)),
        "comment ids changed between reads"
    );
    Ok(Outcome::Passed)
}

/// An uploaded attachment is listed and downloads byte for byte, binary content included.
pub async fn check_attachments_round_trip(repo: &dyn Repository, fx: &Fixture) -> CheckResult {
    const C: &str = "check_attachments_round_trip";
    if !repo.capabilities().attachments {
        return Ok(Outcome::Skipped("no attachments"));
    }
    let item = create(C, repo, fx, "attachments").await?;
    let data: Vec<u8> = (0..=255u8)
        .chain([0, 0, 0xff, b'\r', b'\n'])
        .cycle()
        .take(5000)
        .collect();
    let meta = repo
        .upload(
            &fx.item_type,
            &item.id,
            &NewAttachment::new("trace log.bin", "application/octet-stream", data.clone()),
        )
        .await
        .ctx(C, "upload")?;
    ensure!(
        C,
        meta.file_name == "trace log.bin",
        "stored file name {:?}",
        meta.file_name
    );
    let listed = repo
        .attachments(&fx.item_type, &item.id)
        .await
        .ctx(C, "attachments")?;
    ensure!(
        C,
        listed.iter().any(|m| m.id == meta.id),
        "attachment {} not listed",
        meta.id
    );
    let got = repo.download(&meta).await.ctx(C, "download")?;
    ensure!(
        C,
        got == data,
        "downloaded {} bytes differ from the 5000 uploaded",
        got.len()
    );
    Ok(Outcome::Passed)
}

/// `write_many` returns one result per write, in order; a failing write does not stop the others.
pub async fn check_write_many_reports_each_write(
    repo: &dyn Repository,
    fx: &Fixture,
) -> CheckResult {
    const C: &str = "check_write_many_reports_each_write";
    let item = create(C, repo, fx, "batch").await?;
    let text = unique("batched");
    let writes = [
        Write::update(
            fx.item_type.clone(),
            item.id.clone(),
            FieldMap::new().with(fx.text_field.clone(), text.as_str()),
        ),
        Write::update(
            fx.item_type.clone(),
            fx.missing_id.clone(),
            FieldMap::new().with(fx.text_field.clone(), "x"),
        ),
        Write::create(fx.item_type.clone(), fx.fields(&unique("batch created"))),
    ];
    let results = repo.write_many(&writes).await.ctx(C, "write_many")?;
    ensure!(
        C,
        results.len() == 3,
        "expected 3 results, got {}",
        results.len()
    );
    ensure!(
        C,
        results[0].is_ok(),
        "first write failed: {:?}",
        results[0]
    );
    match &results[1] {
        Err(e) => ensure!(
            C,
            e.kind() == ErrorKind::NotFound,
            "second write: expected not found, got {e}"
        ),
        Ok(v) => ensure!(C, false, "update of a missing item succeeded: {v:?}"),
    }
    ensure!(
        C,
        results[2].is_ok(),
        "third write failed: {:?}",
        results[2]
    );
    let read = repo.get(&fx.item_type, &item.id).await.ctx(C, "get")?;
    ensure!(
        C,
        text_of(&read, &fx.text_field) == Some(text.as_str()),
        "first write not applied"
    );
    Ok(Outcome::Passed)
}

/// Writing a field the type does not have fails with InvalidInput naming that field.
pub async fn check_unknown_field_is_invalid_input(
    repo: &dyn Repository,
    fx: &Fixture,
) -> CheckResult {
    const C: &str = "check_unknown_field_is_invalid_input";
    if !repo.capabilities().validates_fields {
        return Ok(Outcome::Skipped("the backend does not validate fields"));
    }
    let item = create(C, repo, fx, "unknown field").await?;
    let r = repo
        .set_field(&fx.item_type, &item.id, fx.unknown_field.clone(), "x")
        .await;
    let e = expect_err(C, "update of an unknown field", r, ErrorKind::InvalidInput)?;
    ensure!(
        C,
        e.field() == Some(&fx.unknown_field),
        "error names field {:?}: {e}",
        e.field()
    );
    let mut bad = fx.fields(&unique("bad create"));
    bad.insert(fx.unknown_field.clone(), "x");
    let r = repo
        .create(&fx.item_type, &bad, &CreateOptions::default())
        .await;
    let e = expect_err(
        C,
        "create with an unknown field",
        r,
        ErrorKind::InvalidInput,
    )?;
    ensure!(
        C,
        e.field() == Some(&fx.unknown_field),
        "error names field {:?}: {e}",
        e.field()
    );
    Ok(Outcome::Passed)
}

/// A state change the workflow forbids fails with InvalidTransition and changes nothing.
pub async fn check_invalid_transition_is_refused(
    repo: &dyn Repository,
    fx: &Fixture,
) -> CheckResult {
    const C: &str = "check_invalid_transition_is_refused";
    let Some(changes) = &fx.invalid_transition else {
        return Ok(Outcome::Skipped("the fixture names no invalid transition"));
    };
    if !repo.capabilities().workflow {
        return Ok(Outcome::Skipped("no workflow"));
    }
    let item = create(C, repo, fx, "transition").await?;
    let r = repo
        .update(&fx.item_type, &item.id, changes, &UpdateOptions::default())
        .await;
    let e = expect_err(C, "forbidden transition", r, ErrorKind::InvalidTransition)?;
    ensure!(
        C,
        e.context().from_state.is_some() && e.context().to_state.is_some(),
        "error does not name from and to: {e}"
    );
    let read = repo.get(&fx.item_type, &item.id).await.ctx(C, "get")?;
    ensure!(
        C,
        read.version == item.version,
        "the refused write changed the item"
    );
    Ok(Outcome::Passed)
}

/// The schema describes the fields the fixture writes.
pub async fn check_schema_describes_fields(repo: &dyn Repository, fx: &Fixture) -> CheckResult {
    const C: &str = "check_schema_describes_fields";
    if !repo.capabilities().schema {
        return Ok(Outcome::Skipped("no schema"));
    }
    let schema = repo.schema(&fx.item_type).await.ctx(C, "schema")?;
    ensure!(
        C,
        schema.item_type == fx.item_type,
        "schema of {} for {}",
        schema.item_type,
        fx.item_type
    );
    for name in std::iter::once(&fx.text_field).chain(fx.new_item.names()) {
        ensure!(
            C,
            schema.get(name.as_str()).is_some(),
            "schema lacks field {name}"
        );
    }
    let r = repo
        .schema(&ItemType::from("workbridge_no_such_type"))
        .await;
    expect_err(C, "schema of an unknown type", r, ErrorKind::NotFound)?;
    Ok(Outcome::Passed)
}

/// Operations the capabilities mark unsupported fail with Unsupported.
pub async fn check_unsupported_is_typed(repo: &dyn Repository, fx: &Fixture) -> CheckResult {
    const C: &str = "check_unsupported_is_typed";
    let caps = repo.capabilities().clone();
    if caps.comments && caps.attachments && caps.correlation {
        return Ok(Outcome::Skipped("every optional operation is supported"));
    }
    let item = create(C, repo, fx, "unsupported").await?;
    if !caps.comments {
        let r = repo.comments(&fx.item_type, &item.id).await;
        expect_err(C, "comments", r, ErrorKind::Unsupported)?;
        let r = repo
            .add_comment(&fx.item_type, &item.id, &NewComment::public("x"))
            .await;
        expect_err(C, "add_comment", r, ErrorKind::Unsupported)?;
    }
    if !caps.attachments {
        let r = repo.attachments(&fx.item_type, &item.id).await;
        expect_err(C, "attachments", r, ErrorKind::Unsupported)?;
        let r = repo
            .upload(
                &fx.item_type,
                &item.id,
                &NewAttachment::new("a.txt", "text/plain", "x"),
            )
            .await;
        expect_err(C, "upload", r, ErrorKind::Unsupported)?;
    }
    if !caps.correlation {
        let r = repo.find_by_correlation(&fx.item_type, &"k".into()).await;
        expect_err(C, "find_by_correlation", r, ErrorKind::Unsupported)?;
    }
    Ok(Outcome::Passed)
}

/// With [`Capabilities::history`](workbridge_core::Capabilities::history), `revision_after`
/// reads each change made after a version, and `None` past the last one; without it, the
/// operation is unsupported.
pub async fn check_history_tells_each_change(repo: &dyn Repository, fx: &Fixture) -> CheckResult {
    const C: &str = "check_history_tells_each_change";
    let item = create(C, repo, fx, "history").await?;
    if !repo.capabilities().history {
        let r = repo
            .revision_after(&fx.item_type, &item.id, &item.version, 1)
            .await;
        expect_err(C, "revision_after", r, ErrorKind::Unsupported)?;
        return Ok(Outcome::Skipped("no history"));
    }
    let (first, second) = (unique("first"), unique("second"));
    for text in [&first, &second] {
        repo.set_field(
            &fx.item_type,
            &item.id,
            fx.text_field.clone(),
            text.as_str(),
        )
        .await
        .ctx(C, "update")?;
    }
    let one = repo
        .revision_after(&fx.item_type, &item.id, &item.version, 1)
        .await
        .ctx(C, "revision_after 1")?;
    let two = repo
        .revision_after(&fx.item_type, &item.id, &item.version, 2)
        .await
        .ctx(C, "revision_after 2")?;
    let three = repo
        .revision_after(&fx.item_type, &item.id, &item.version, 3)
        .await
        .ctx(C, "revision_after 3")?;
    let text = |r: &Option<WorkItem>| {
        r.as_ref()
            .and_then(|i| text_of(i, &fx.text_field).map(str::to_owned))
    };
    ensure!(
        C,
        text(&one).as_deref() == Some(first.as_str()),
        "the first change reads {:?}",
        text(&one)
    );
    ensure!(
        C,
        text(&two).as_deref() == Some(second.as_str()),
        "the second change reads {:?}",
        text(&two)
    );
    ensure!(
        C,
        three.is_none(),
        "a third change that was not made reads {three:?}"
    );
    let now = repo.get(&fx.item_type, &item.id).await.ctx(C, "get")?;
    ensure!(
        C,
        two.as_ref().is_some_and(|t| t.version == now.version),
        "the last change's version is not the item's"
    );
    Ok(Outcome::Passed)
}

/// Every check, by name, in the order [`run_all`] runs them.
pub const CHECKS: [&str; 19] = [
    "check_get_missing_is_not_found",
    "check_create_returns_stored_item",
    "check_created_item_appears_in_changes",
    "check_update_changes_only_named_fields",
    "check_stale_version_is_conflict",
    "check_update_missing_is_not_found",
    "check_changes_complete_while_items_change",
    "check_changes_resume_from_stored_cursor",
    "check_get_many_keeps_order",
    "check_projection_is_partial",
    "check_correlation_finds_created_item",
    "check_comments_keep_order_and_visibility",
    "check_attachments_round_trip",
    "check_write_many_reports_each_write",
    "check_unknown_field_is_invalid_input",
    "check_invalid_transition_is_refused",
    "check_schema_describes_fields",
    "check_unsupported_is_typed",
    "check_history_tells_each_change",
];

/// Runs every check in turn and returns each one's name and result.
pub async fn run_all(repo: &dyn Repository, fx: &Fixture) -> Vec<(&'static str, CheckResult)> {
    vec![
        (CHECKS[0], check_get_missing_is_not_found(repo, fx).await),
        (CHECKS[1], check_create_returns_stored_item(repo, fx).await),
        (
            CHECKS[2],
            check_created_item_appears_in_changes(repo, fx).await,
        ),
        (
            CHECKS[3],
            check_update_changes_only_named_fields(repo, fx).await,
        ),
        (CHECKS[4], check_stale_version_is_conflict(repo, fx).await),
        (CHECKS[5], check_update_missing_is_not_found(repo, fx).await),
        (
            CHECKS[6],
            check_changes_complete_while_items_change(repo, fx).await,
        ),
        (
            CHECKS[7],
            check_changes_resume_from_stored_cursor(repo, fx).await,
        ),
        (CHECKS[8], check_get_many_keeps_order(repo, fx).await),
        (CHECKS[9], check_projection_is_partial(repo, fx).await),
        (
            CHECKS[10],
            check_correlation_finds_created_item(repo, fx).await,
        ),
        (
            CHECKS[11],
            check_comments_keep_order_and_visibility(repo, fx).await,
        ),
        (CHECKS[12], check_attachments_round_trip(repo, fx).await),
        (
            CHECKS[13],
            check_write_many_reports_each_write(repo, fx).await,
        ),
        (
            CHECKS[14],
            check_unknown_field_is_invalid_input(repo, fx).await,
        ),
        (
            CHECKS[15],
            check_invalid_transition_is_refused(repo, fx).await,
        ),
        (CHECKS[16], check_schema_describes_fields(repo, fx).await),
        (CHECKS[17], check_unsupported_is_typed(repo, fx).await),
        (CHECKS[18], check_history_tells_each_change(repo, fx).await),
    ]
}

/// Runs every check and panics listing the failures, if any. Returns the skipped checks.
///
/// # Panics
/// When a check fails.
pub async fn assert_conformance(repo: &dyn Repository, fx: &Fixture) -> Vec<&'static str> {
    let results = run_all(repo, fx).await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err().map(ToString::to_string))
        .collect();
    assert!(
        failures.is_empty(),
        "{repo} fails conformance:\n{}",
        failures.join("\n")
    );
    results
        .into_iter()
        .filter(|(_, r)| matches!(r, Ok(Outcome::Skipped(_))))
        .map(|(n, _)| n)
        .collect()
}

/// Generates one `#[tokio::test]` per conformance check.
///
/// `repo` is an async expression evaluated afresh for each test, giving something that
/// implements [`Repository`]; `fixture` is a [`Fixture`] expression. A skipped check passes.
#[macro_export]
macro_rules! conformance_tests {
    (repo = $repo:expr, fixture = $fixture:expr $(,)?) => {
        $crate::conformance_tests!(@each ($repo) ($fixture)
            check_get_missing_is_not_found,
            check_create_returns_stored_item,
            check_created_item_appears_in_changes,
            check_update_changes_only_named_fields,
            check_stale_version_is_conflict,
            check_update_missing_is_not_found,
            check_changes_complete_while_items_change,
            check_changes_resume_from_stored_cursor,
            check_get_many_keeps_order,
            check_projection_is_partial,
            check_correlation_finds_created_item,
            check_comments_keep_order_and_visibility,
            check_attachments_round_trip,
            check_write_many_reports_each_write,
            check_unknown_field_is_invalid_input,
            check_invalid_transition_is_refused,
            check_schema_describes_fields,
            check_unsupported_is_typed,
            check_history_tells_each_change
        );
    };
    (@each ($repo:expr) ($fixture:expr) $($check:ident),*) => {
        $(
            #[tokio::test]
            async fn $check() {
                let repo = $repo.await;
                let fixture: $crate::Fixture = $fixture;
                if let Err(failure) = $crate::$check(&repo, &fixture).await {
                    panic!("{failure}");
                }
            }
        )*
    };
}
