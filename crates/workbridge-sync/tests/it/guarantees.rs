use std::sync::Arc;

use workbridge_core::wrappers::{FaultRepository, FaultRule, RecordingRepository};
use workbridge_core::{
    CreateOptions, ErrorKind, FieldDef, FieldKind, FieldMap, InMemoryRepository, ItemId, ItemType,
    ManualClock, NewAttachment, NewComment, Operation, Repository, RepositoryExt, Schema,
    TransitionGraph, Visibility, WorkItem,
};
use workbridge_mapping::Mapping;
use workbridge_sync::{MemoryStore, Side, StateStore, SyncOptions, SyncPair, TwinLookup};

const SPEC: &str = r#"
left = "incident"
right = "Bug"

[scope]
left = { field = "category", equals = "software" }

[create]
left_to_right = true

[comments]
to_left = "internal"
to_right = "public"

[[field]]
left = "short_description"
right = "System.Title"

[[field]]
left = "description"
right = "Description"

[[field]]
left = "priority"
right = "Priority"
conflict = "left-wins"

[[field]]
left = "impact"
right = "Impact"
conflict = "error"

[[field]]
left = "u_dev_status"
right = "System.State"
direction = "right-to-left"

[state]
left = "state"
right = "System.State"
direction = "right-to-left"
map = { Resolved = "6" }

[state.supply_left."6"]
close_code = "Solution provided"
close_notes = "Fixed in bug {System.Id}"
"#;

fn incident() -> ItemType {
    ItemType::new("incident")
}
fn bug() -> ItemType {
    ItemType::new("Bug")
}

fn clock() -> ManualClock {
    ManualClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-01-05T09:00:00Z")
            .unwrap()
            .to_utc(),
    )
}

/// A Bug type with a workflow New → Active → Resolved → Closed.
fn bug_repo(clock: &ManualClock) -> InMemoryRepository {
    InMemoryRepository::builder("dev")
        .clock(clock.clone())
        .schema(
            Schema::new("Bug")
                .field(FieldDef::new("System.Title", FieldKind::Text))
                .field(FieldDef::new("Description", FieldKind::Text))
                .field(FieldDef::new("Priority", FieldKind::Text).allowed(["1", "2", "3", "4"]))
                .field(FieldDef::new("Impact", FieldKind::Text))
                .field(FieldDef::new("System.Id", FieldKind::Text))
                .field(
                    FieldDef::new("System.State", FieldKind::Choice)
                        .allowed(["New", "Active", "Resolved", "Closed"]),
                )
                .workflow(
                    TransitionGraph::new("System.State")
                        .initial("New")
                        .transition("New", "Active")
                        .transition("Active", "Resolved")
                        .transition("Resolved", "Closed")
                        .transition("Resolved", "Active"),
                ),
        )
        .build()
}

/// Ops and Dev in memory, on one manual clock.
fn backends() -> (
    ManualClock,
    Arc<InMemoryRepository>,
    Arc<InMemoryRepository>,
) {
    let clock = clock();
    let ops = Arc::new(
        InMemoryRepository::builder("ops")
            .clock(clock.clone())
            .build(),
    );
    let dev = Arc::new(bug_repo(&clock));
    (clock, ops, dev)
}

/// A pair over `ops` and `dev` with the test spec and a fresh memory store.
fn pair_of(ops: Arc<dyn Repository>, dev: Arc<dyn Repository>) -> SyncPair {
    SyncPair::new(
        ops,
        dev,
        Mapping::from_toml_str(SPEC).unwrap(),
        Arc::new(MemoryStore::new()),
    )
    .unwrap()
}

struct World {
    clock: ManualClock,
    ops: Arc<InMemoryRepository>,
    dev: Arc<InMemoryRepository>,
    pair: SyncPair,
}

fn world() -> World {
    let (clock, ops, dev) = backends();
    let pair = pair_of(ops.clone(), dev.clone());
    World {
        clock,
        ops,
        dev,
        pair,
    }
}

impl World {
    async fn ticket(&self, fields: FieldMap) -> WorkItem {
        self.tick();
        self.ops
            .create(&incident(), &fields, &CreateOptions::default())
            .await
            .unwrap()
    }
    fn tick(&self) {
        self.clock.advance(std::time::Duration::from_secs(1));
    }
    async fn twin(&self, ticket: &ItemId) -> WorkItem {
        let link = self
            .pair
            .link_of(Side::Left, ticket)
            .await
            .unwrap()
            .expect("linked");
        self.dev.get(&bug(), &link.right).await.unwrap()
    }
    async fn edit(&self, repo: &InMemoryRepository, t: &ItemType, id: &ItemId, f: FieldMap) {
        self.tick();
        repo.update(t, id, &f, &Default::default()).await.unwrap();
    }
}

fn software(title: &str) -> FieldMap {
    FieldMap::new()
        .with("category", "software")
        .with("short_description", title)
        .with("priority", "2")
}

fn text<'a>(item: &'a WorkItem, f: &str) -> Option<&'a str> {
    item.field(f).and_then(|v| v.as_str())
}

#[tokio::test]
async fn an_in_scope_ticket_becomes_one_bug_whose_state_shows_on_the_ticket() {
    let w = world();
    let t = w.ticket(software("Checkout fails")).await;
    let out_of_scope = w
        .ticket(
            FieldMap::new()
                .with("category", "hardware")
                .with("short_description", "Printer"),
        )
        .await;
    let r = w.pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    assert_eq!(r.created.right, 1);
    assert_eq!(r.ignored.left, 1);
    let twin = w.twin(&t.id).await;
    assert_eq!(text(&twin, "System.Title"), Some("Checkout fails"));
    assert_eq!(text(&twin, "Priority"), Some("2"));
    assert!(
        w.pair
            .link_of(Side::Left, &out_of_scope.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(w.dev.len(&bug()), 1);
    // The new Bug's state shows on the ticket in the same round; nothing else is written back.
    let t2 = w.ops.get(&incident(), &t.id).await.unwrap();
    assert_eq!(r.updated.left, 1);
    let mut expected = t.fields.clone();
    expected.insert(
        "u_dev_status",
        workbridge_core::FieldValue::Choice("New".into()),
    );
    assert_eq!(t2.fields, expected);
}

#[tokio::test]
async fn no_echo_write_and_no_noop_write_across_rounds() {
    let clock = clock();
    let ops = Arc::new(RecordingRepository::new(
        InMemoryRepository::builder("ops")
            .clock(clock.clone())
            .build(),
    ));
    let dev = Arc::new(RecordingRepository::new(bug_repo(&clock)));
    let pair = pair_of(ops.clone(), dev.clone());
    clock.advance(std::time::Duration::from_secs(1));
    let t = ops
        .create(
            &incident(),
            &software("Slow search"),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        pair.run_once().await.writes(),
        2,
        "the Bug, and its state on the ticket"
    );
    ops.clear();
    dev.clear();
    for _ in 0..3 {
        let r = pair.run_once().await;
        assert_eq!(r.writes(), 0, "{r}");
    }
    assert_eq!(
        ops.writes() + dev.writes(),
        0,
        "no write reached either system"
    );
    // A change to a field no rule reads is no change.
    clock.advance(std::time::Duration::from_secs(1));
    ops.update(
        &incident(),
        &t.id,
        &FieldMap::new().with("u_internal_code", "X1"),
        &Default::default(),
    )
    .await
    .unwrap();
    let r = pair.run_once().await;
    assert_eq!(r.writes(), 0, "{r}");
    assert_eq!(ops.writes(), 1, "only the edit itself");
    assert_eq!(dev.writes(), 0);
    assert_eq!(dev.count(Operation::Update), 0);
}

#[tokio::test]
async fn concurrent_edits_to_different_fields_both_survive() {
    let w = world();
    let t = w.ticket(software("Login loop")).await;
    w.pair.run_once().await;
    let b = w.twin(&t.id).await;
    w.edit(
        &w.ops,
        &incident(),
        &t.id,
        FieldMap::new().with("short_description", "Login loop on SSO"),
    )
    .await;
    w.edit(
        &w.dev,
        &bug(),
        &b.id,
        FieldMap::new().with("Description", "Repro: log in twice"),
    )
    .await;
    let r = w.pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    let (t2, b2) = (
        w.ops.get(&incident(), &t.id).await.unwrap(),
        w.twin(&t.id).await,
    );
    assert_eq!(text(&b2, "System.Title"), Some("Login loop on SSO"));
    assert_eq!(text(&b2, "Description"), Some("Repro: log in twice"));
    assert_eq!(text(&t2, "short_description"), Some("Login loop on SSO"));
    assert_eq!(text(&t2, "description"), Some("Repro: log in twice"));
    // Converged: another round writes nothing.
    assert_eq!(w.pair.run_once().await.writes(), 0);
}

/// Three synced tickets over a recording Dev backend.
async fn three_synced(
    unchecked: bool,
) -> (
    ManualClock,
    Arc<InMemoryRepository>,
    Arc<InMemoryRepository>,
    Arc<RecordingRepository<Arc<dyn Repository>>>,
    SyncPair,
    Vec<(ItemId, ItemId)>,
) {
    let (clock, ops, dev) = backends();
    let inner: Arc<dyn Repository> = if unchecked {
        Arc::new(Quirky::unchecked(dev.clone()))
    } else {
        dev.clone()
    };
    let rec = Arc::new(RecordingRepository::new(inner));
    let pair = pair_of(ops.clone(), rec.clone());
    let mut pairs = Vec::new();
    for n in 0..3 {
        clock.advance(std::time::Duration::from_secs(1));
        let t = ops
            .create(
                &incident(),
                &software(&format!("Ticket {n}")),
                &CreateOptions::default(),
            )
            .await
            .unwrap();
        pairs.push(t.id);
    }
    assert!(pair.run_once().await.is_complete());
    let mut out = Vec::new();
    for t in pairs {
        let b = pair.link_of(Side::Left, &t).await.unwrap().unwrap().right;
        out.push((t, b));
    }
    rec.clear();
    (clock, ops, dev, rec, pair, out)
}

#[tokio::test]
async fn an_edit_is_merged_against_the_twin_its_link_knows_without_reading_it() {
    let (clock, ops, dev, rec, pair, items) = three_synced(false).await;
    clock.advance(std::time::Duration::from_secs(1));
    for (t, _) in &items {
        ops.update(
            &incident(),
            t,
            &FieldMap::new().with("short_description", "Edited by Ops"),
            &Default::default(),
        )
        .await
        .unwrap();
    }
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    assert_eq!(r.updated.right, 3, "{r}");
    assert_eq!(
        rec.count(Operation::GetMany),
        0,
        "no Bug read: {:?}",
        rec.calls()
    );
    for (_, b) in &items {
        let b = dev.get(&bug(), b).await.unwrap();
        assert_eq!(text(&b, "System.Title"), Some("Edited by Ops"));
    }
    // The Bugs' own scan sees the sync's writes as echoes: converged.
    assert_eq!(pair.run_once().await.writes(), 0);
}

#[tokio::test]
async fn twins_changed_since_their_links_knew_them_are_read_together_and_merged() {
    let (clock, ops, dev, rec, pair, items) = three_synced(false).await;
    clock.advance(std::time::Duration::from_secs(1));
    for (t, b) in &items {
        ops.update(
            &incident(),
            t,
            &FieldMap::new()
                .with("short_description", "Edited by Ops")
                .with("priority", "1"),
            &Default::default(),
        )
        .await
        .unwrap();
        dev.update(
            &bug(),
            b,
            &FieldMap::new()
                .with("Description", "Dev's repro")
                .with("Priority", "4"),
            &Default::default(),
        )
        .await
        .unwrap();
    }
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    // The refused writes' Bugs are read in one request, not one each.
    assert_eq!(rec.count(Operation::GetMany), 1, "{:?}", rec.calls());
    for (t, b) in &items {
        let (t2, b2) = (
            ops.get(&incident(), t).await.unwrap(),
            dev.get(&bug(), b).await.unwrap(),
        );
        // Nothing lost on either side; Priority is left-wins.
        assert_eq!(text(&b2, "System.Title"), Some("Edited by Ops"));
        assert_eq!(text(&b2, "Description"), Some("Dev's repro"));
        assert_eq!(text(&t2, "description"), Some("Dev's repro"));
        assert_eq!(text(&b2, "Priority"), Some("1"));
        assert_eq!(text(&t2, "priority"), Some("1"));
    }
    assert_eq!(pair.run_once().await.writes(), 0);
}

#[tokio::test]
async fn a_target_that_does_not_check_versions_first_is_read_before_the_merge() {
    let (clock, ops, dev, rec, pair, items) = three_synced(true).await;
    clock.advance(std::time::Duration::from_secs(1));
    let (t, b) = &items[0];
    ops.update(
        &incident(),
        t,
        &FieldMap::new().with("priority", "1"),
        &Default::default(),
    )
    .await
    .unwrap();
    dev.update(
        &bug(),
        b,
        &FieldMap::new().with("Description", "Dev's repro"),
        &Default::default(),
    )
    .await
    .unwrap();
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    assert_eq!(rec.count(Operation::GetMany), 1, "{:?}", rec.calls());
    let t2 = ops.get(&incident(), t).await.unwrap();
    assert_eq!(text(&t2, "description"), Some("Dev's repro"));
    assert_eq!(
        text(&dev.get(&bug(), b).await.unwrap(), "Priority"),
        Some("1")
    );
}

#[tokio::test]
async fn a_twin_deleted_since_its_link_knew_it_gets_the_twinless_treatment() {
    let (clock, ops, dev, _rec, pair, items) = three_synced(false).await;
    let (t, b) = &items[1];
    assert!(dev.remove(&bug(), b));
    clock.advance(std::time::Duration::from_secs(1));
    ops.update(
        &incident(),
        t,
        &FieldMap::new().with("short_description", "Edited after the Bug went"),
        &Default::default(),
    )
    .await
    .unwrap();
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    assert_eq!(r.twinless, 1, "{r}");
    assert!(pair.link_of(Side::Left, t).await.unwrap().is_none());
    let notes = ops.comments(&incident(), t).await.unwrap();
    assert!(
        notes
            .iter()
            .any(|c| c.body.contains(b.as_str()) && c.body.contains("deleted")),
        "{notes:?}"
    );
    assert_eq!(dev.len(&bug()), 2, "no Bug made again");
}

#[tokio::test]
async fn an_unresolved_conflict_is_not_settled_by_a_later_edit() {
    let w = world();
    let t = w.ticket(software("Crash").with("impact", "2")).await;
    w.pair.run_once().await;
    let b = w.twin(&t.id).await;
    w.edit(
        &w.ops,
        &incident(),
        &t.id,
        FieldMap::new().with("impact", "1"),
    )
    .await;
    w.edit(&w.dev, &bug(), &b.id, FieldMap::new().with("Impact", "3"))
        .await;
    let r = w.pair.run_once().await;
    assert!(r.conflicts.iter().any(|c| c.field.as_str() == "Impact"));
    // Ops edits another field: the Bug is read as it is, the conflict is still one, and Dev's
    // value is not written over (the link's baseline holds Impact back: it is not the Bug as
    // it is).
    w.edit(
        &w.ops,
        &incident(),
        &t.id,
        FieldMap::new().with("short_description", "Crash on save"),
    )
    .await;
    let r = w.pair.run_once().await;
    let b2 = w.twin(&t.id).await;
    assert_eq!(text(&b2, "System.Title"), Some("Crash on save"));
    assert_eq!(text(&b2, "Impact"), Some("3"), "{r}");
    assert!(
        r.conflicts.iter().any(|c| c.field.as_str() == "Impact"),
        "{:?}",
        r.conflicts
    );
}

#[tokio::test]
async fn same_field_conflicts_follow_the_policy() {
    let w = world();
    let t = w.ticket(software("Crash").with("impact", "2")).await;
    w.pair.run_once().await;
    let b = w.twin(&t.id).await;
    // Priority is left-wins, even though Dev edited last.
    w.edit(
        &w.ops,
        &incident(),
        &t.id,
        FieldMap::new().with("priority", "1").with("impact", "1"),
    )
    .await;
    w.edit(
        &w.dev,
        &bug(),
        &b.id,
        FieldMap::new().with("Priority", "4").with("Impact", "3"),
    )
    .await;
    let r = w.pair.run_once().await;
    let (t2, b2) = (
        w.ops.get(&incident(), &t.id).await.unwrap(),
        w.twin(&t.id).await,
    );
    assert_eq!(text(&t2, "priority"), Some("1"));
    assert_eq!(text(&b2, "Priority"), Some("1"));
    // Impact is `error`: both keep their value and the conflict is reported, naming the field.
    assert_eq!(text(&t2, "impact"), Some("1"));
    assert_eq!(text(&b2, "Impact"), Some("3"));
    assert!(
        r.conflicts
            .iter()
            .any(|c| c.field.as_str() == "Impact" && c.side == Side::Right),
        "{:?}",
        r.conflicts
    );
    // Still a conflict at the next comparison, until someone makes them agree.
    let again = w.pair.reconcile().await;
    assert!(
        again.conflicts.iter().any(|c| c.field.as_str() == "Impact"),
        "{again}"
    );
    w.edit(&w.dev, &bug(), &b.id, FieldMap::new().with("Impact", "1"))
        .await;
    let settled = w.pair.run_once().await;
    assert!(settled.conflicts.is_empty(), "{:?}", settled.conflicts);
    assert!(w.pair.reconcile().await.conflicts.is_empty());
}

#[tokio::test]
async fn newest_wins_by_default() {
    let w = world();
    let t = w.ticket(software("Timeout")).await;
    w.pair.run_once().await;
    let b = w.twin(&t.id).await;
    w.edit(
        &w.ops,
        &incident(),
        &t.id,
        FieldMap::new().with("short_description", "Timeout (ops)"),
    )
    .await;
    w.edit(
        &w.dev,
        &bug(),
        &b.id,
        FieldMap::new().with("System.Title", "Timeout (dev)"),
    )
    .await;
    w.pair.run_once().await;
    let (t2, b2) = (
        w.ops.get(&incident(), &t.id).await.unwrap(),
        w.twin(&t.id).await,
    );
    assert_eq!(text(&t2, "short_description"), Some("Timeout (dev)"));
    assert_eq!(text(&b2, "System.Title"), Some("Timeout (dev)"));
}

#[tokio::test]
async fn a_lost_create_reply_never_duplicates() {
    let (clock, ops, dev_inner) = backends();
    let dev = Arc::new(
        FaultRepository::new(dev_inner.clone(), 7).with_rule(
            FaultRule::new(ErrorKind::Unavailable)
                .on([Operation::Create])
                .nth(1)
                .reply_lost(),
        ),
    );
    let pair = pair_of(ops.clone(), dev);
    clock.advance(std::time::Duration::from_secs(1));
    let t = ops
        .create(
            &incident(),
            &software("Lost reply"),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    let first = pair.run_once().await;
    assert!(
        first.stopped.as_ref().is_some_and(|e| e.is_temporary()),
        "{first}"
    );
    assert_eq!(dev_inner.len(&bug()), 1, "the create did happen");
    assert!(
        first.cursors.left.is_none(),
        "the cursor did not pass the item"
    );
    let second = pair.run_once().await;
    assert!(second.is_complete(), "{second}");
    assert_eq!(second.relinked.right, 1);
    assert_eq!(second.created.right, 0);
    assert_eq!(dev_inner.len(&bug()), 1, "no duplicate");
    assert!(pair.link_of(Side::Left, &t.id).await.unwrap().is_some());
}

#[tokio::test]
async fn a_crash_between_create_and_link_never_duplicates_and_catches_up() {
    let (clock, ops, dev) = backends();
    let store = Arc::new(MemoryStore::new());
    let pair = SyncPair::new(
        ops.clone(),
        dev.clone(),
        Mapping::from_toml_str(SPEC).unwrap(),
        store.clone(),
    )
    .unwrap();
    clock.advance(std::time::Duration::from_secs(1));
    let t = ops
        .create(
            &incident(),
            &software("Crash window (draft)"),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    // What a crashed process left: its intent, the bug it created with the key, and no link.
    let key = workbridge_core::CorrelationKey::new(format!("wb:incident:{}", t.id));
    let sent = FieldMap::new()
        .with("System.Title", "Crash window (draft)")
        .with("Priority", "2");
    store
        .save_intents(
            pair.id(),
            &[workbridge_sync::CreateIntent {
                side: Side::Left,
                source: t.id.clone(),
                key: key.clone(),
                source_baseline: t.fields.clone(),
                sent: sent.clone(),
                at: chrono::Utc::now(),
                run: "the-crashed-process".to_owned(),
            }],
        )
        .await
        .unwrap();
    dev.create(
        &bug(),
        &sent,
        &CreateOptions::default().correlation(key.as_str()),
    )
    .await
    .unwrap();
    // Ops renamed the ticket after the crash.
    clock.advance(std::time::Duration::from_secs(1));
    ops.update(
        &incident(),
        &t.id,
        &FieldMap::new().with("short_description", "Crash window"),
        &Default::default(),
    )
    .await
    .unwrap();
    let r = pair.run_once().await;
    assert_eq!((r.created.right, r.relinked.right), (0, 1), "{r}");
    assert_eq!(dev.len(&bug()), 1);
    let link = pair.link_of(Side::Left, &t.id).await.unwrap().unwrap();
    let twin = dev.get(&bug(), &link.right).await.unwrap();
    assert_eq!(text(&twin, "System.Title"), Some("Crash window"));
    assert!(
        store
            .intent(pair.id(), Side::Left, &t.id)
            .await
            .unwrap()
            .is_none(),
        "the intent is cleared with the link"
    );
}

#[tokio::test]
async fn a_relinked_twin_keeps_the_edits_made_after_a_lost_create_reply() {
    // The create's reply is lost; before the next round Dev edits the Bug. Relinking must merge
    // (Dev's edit stays and flows back), not revert the Bug to the ticket's values.
    let (clock, ops, dev_inner) = backends();
    let dev = Arc::new(
        FaultRepository::new(dev_inner.clone(), 7).with_rule(
            FaultRule::new(ErrorKind::Unavailable)
                .on([Operation::WriteMany, Operation::Create])
                .nth(1)
                .reply_lost(),
        ),
    );
    let pair = pair_of(ops.clone(), dev);
    clock.advance(std::time::Duration::from_secs(1));
    let t = ops
        .create(
            &incident(),
            &software("Printer on fire"),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    let first = pair.run_once().await;
    assert!(first.stopped.is_some(), "{first}");
    let (bugs, _) = dev_inner
        .all_changes(
            &bug(),
            &workbridge_core::Cursor::beginning(),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(bugs.len(), 1, "the create did happen");
    clock.advance(std::time::Duration::from_secs(1));
    dev_inner
        .update(
            &bug(),
            &bugs[0].id,
            &FieldMap::new()
                .with("System.Title", "Printer on fire: driver 5.0")
                .with("Description", "repro: print a page"),
            &Default::default(),
        )
        .await
        .unwrap();
    let second = pair.run_once().await;
    assert!(second.is_complete(), "{second}");
    assert_eq!(
        (second.relinked.right, second.created.right),
        (1, 0),
        "{second}"
    );
    let twin = dev_inner.get(&bug(), &bugs[0].id).await.unwrap();
    assert_eq!(
        text(&twin, "System.Title"),
        Some("Printer on fire: driver 5.0")
    );
    assert_eq!(text(&twin, "Description"), Some("repro: print a page"));
    let ticket = ops.get(&incident(), &t.id).await.unwrap();
    assert_eq!(
        text(&ticket, "short_description"),
        Some("Printer on fire: driver 5.0")
    );
    assert_eq!(text(&ticket, "description"), Some("repro: print a page"));
}

#[tokio::test]
async fn a_twin_found_without_an_intent_merges_by_the_conflict_policy() {
    // A Bug someone else created with the key, edited after the ticket: without an intent
    // neither side is the baseline, and the default policy (newest) keeps the newer value.
    let w = world();
    let t = w.ticket(software("Ticket title")).await;
    w.tick();
    w.dev
        .create(
            &bug(),
            &FieldMap::new().with("System.Title", "Bug title, newer"),
            &CreateOptions::default().correlation(format!("wb:incident:{}", t.id)),
        )
        .await
        .unwrap();
    let r = w.pair.run_once().await;
    assert_eq!((r.created.right, r.relinked.right), (0, 1), "{r}");
    assert_eq!(
        text(&w.twin(&t.id).await, "System.Title"),
        Some("Bug title, newer")
    );
    let ticket = w.ops.get(&incident(), &t.id).await.unwrap();
    assert_eq!(text(&ticket, "short_description"), Some("Bug title, newer"));
}

#[tokio::test]
async fn a_transient_failure_stops_the_round_and_the_next_resumes_without_loss() {
    let (clock, ops, dev_inner) = backends();
    // The third write to dev fails with a timeout.
    let dev = Arc::new(
        FaultRepository::new(dev_inner.clone(), 1).with_rule(
            // The second page's batched create times out.
            FaultRule::new(ErrorKind::Unavailable)
                .on([Operation::WriteMany])
                .nth(2),
        ),
    );
    let store = Arc::new(MemoryStore::new());
    let pair = SyncPair::new(
        ops.clone(),
        dev,
        Mapping::from_toml_str(SPEC).unwrap(),
        store.clone(),
    )
    .unwrap()
    .with_options(SyncOptions::default().page_size(2));
    let mut ids = Vec::new();
    for i in 0..5 {
        clock.advance(std::time::Duration::from_secs(1));
        ids.push(
            ops.create(
                &incident(),
                &software(&format!("T{i}")),
                &CreateOptions::default(),
            )
            .await
            .unwrap()
            .id,
        );
    }
    let first = pair.run_once().await;
    assert!(first.stopped.is_some());
    assert_eq!(first.created.right, 2);
    let second = pair.run_once().await;
    assert!(second.is_complete(), "{second}");
    assert_eq!(second.created.right, 3);
    assert_eq!(dev_inner.len(&bug()), 5);
    for id in &ids {
        assert!(pair.link_of(Side::Left, id).await.unwrap().is_some());
    }
    let cursor = store.cursor(pair.id(), Side::Left).await.unwrap().unwrap();
    assert!(cursor.changed_at().is_some());
}

#[tokio::test]
async fn a_rejected_value_parks_that_item_and_the_others_flow() {
    let w = world();
    let bad = w
        .ticket(software("Bad priority").with("priority", "9"))
        .await;
    let good = w.ticket(software("Fine")).await;
    let r = w.pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    assert_eq!(r.created.right, 1);
    assert_eq!(r.parked.len(), 1);
    assert_eq!(r.parked[0].id, bad.id);
    assert!(
        r.parked[0].error.contains("Priority") && r.parked[0].error.contains('9'),
        "{}",
        r.parked[0].error
    );
    assert!(
        w.pair
            .link_of(Side::Left, &good.id)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(w.pair.parked().await.unwrap().len(), 1);
    // Fixed at the source: it flows and is released.
    w.edit(
        &w.ops,
        &incident(),
        &bad.id,
        FieldMap::new().with("priority", "3"),
    )
    .await;
    let r2 = w.pair.run_once().await;
    assert_eq!((r2.created.right, r2.unparked), (1, 1), "{r2}");
    assert!(w.pair.parked().await.unwrap().is_empty());
}

#[tokio::test]
async fn replay_retries_parked_items() {
    let w = world();
    let bad = w.ticket(software("Bad").with("priority", "9")).await;
    w.pair.run_once().await;
    assert_eq!(w.pair.parked().await.unwrap().len(), 1);
    // Still failing: stays parked, its attempts counted.
    let r = w.pair.replay().await;
    assert_eq!(r.parked.len(), 1);
    assert_eq!(w.pair.parked().await.unwrap()[0].attempts, 2);
    // Fixed without a change-feed event reaching the pair (cursor already past): replay does it.
    w.ops
        .update(
            &incident(),
            &bad.id,
            &FieldMap::new().with("priority", "2"),
            &Default::default(),
        )
        .await
        .unwrap();
    let r = w.pair.replay().await;
    assert_eq!((r.created.right, r.unparked), (1, 1), "{r}");
}

#[tokio::test]
async fn dev_resolution_walks_the_ticket_workflow_with_required_fields() {
    let w = world();
    let t = w.ticket(software("Resolve me")).await;
    w.pair.run_once().await;
    let b = w.twin(&t.id).await;
    w.edit(
        &w.dev,
        &bug(),
        &b.id,
        FieldMap::new().with("System.State", "Active"),
    )
    .await;
    w.pair.run_once().await;
    assert_eq!(
        text(
            &w.ops.get(&incident(), &t.id).await.unwrap(),
            "u_dev_status"
        ),
        Some("Active")
    );
    w.edit(
        &w.dev,
        &bug(),
        &b.id,
        FieldMap::new().with("System.State", "Resolved"),
    )
    .await;
    let r = w.pair.run_once().await;
    assert!(r.parked.is_empty(), "{:?}", r.parked);
    let t2 = w.ops.get(&incident(), &t.id).await.unwrap();
    assert_eq!(text(&t2, "state"), Some("6"));
    assert_eq!(text(&t2, "close_code"), Some("Solution provided"));
    assert_eq!(text(&t2, "u_dev_status"), Some("Resolved"));
    assert_eq!(w.pair.run_once().await.writes(), 0);
}

#[tokio::test]
async fn comments_are_copied_once_with_private_public_routing() {
    let w = world();
    let t = w.ticket(software("Comments")).await;
    w.pair.run_once().await;
    let b = w.twin(&t.id).await;
    w.tick();
    w.ops
        .add_comment(
            &incident(),
            &t.id,
            &NewComment::public("Customer says it fails on Mondays"),
        )
        .await
        .unwrap();
    w.ops
        .add_comment(
            &incident(),
            &t.id,
            &NewComment::internal("Ops only: VIP customer"),
        )
        .await
        .unwrap();
    w.dev
        .add_comment(
            &bug(),
            &b.id,
            &NewComment::public("Found the race in the scheduler"),
        )
        .await
        .unwrap();
    w.edit(
        &w.ops,
        &incident(),
        &t.id,
        FieldMap::new().with("description", "see comments"),
    )
    .await;
    let r = w.pair.run_once().await;
    assert_eq!(
        (r.comments_copied.right, r.comments_copied.left),
        (1, 1),
        "{r}"
    );
    let bug_comments = w.dev.comments(&bug(), &b.id).await.unwrap();
    assert!(bug_comments.iter().any(|c| c.body.contains("Mondays")));
    assert!(
        !bug_comments.iter().any(|c| c.body.contains("VIP")),
        "work notes stay in ServiceNow"
    );
    let ticket_comments = w.ops.comments(&incident(), &t.id).await.unwrap();
    let copied = ticket_comments
        .iter()
        .find(|c| c.body.contains("race"))
        .expect("copied to the ticket");
    assert_eq!(
        copied.visibility,
        Visibility::Internal,
        "Dev discussion lands in work notes"
    );
    // More rounds, and a full comparison, copy nothing again (not even the copies back).
    w.edit(
        &w.dev,
        &bug(),
        &b.id,
        FieldMap::new().with("Description", "more"),
    )
    .await;
    for r in [w.pair.run_once().await, w.pair.reconcile().await] {
        assert_eq!(r.comments_copied.left + r.comments_copied.right, 0, "{r}");
    }
    assert_eq!(w.dev.comments(&bug(), &b.id).await.unwrap().len(), 2);
    assert_eq!(w.ops.comments(&incident(), &t.id).await.unwrap().len(), 3);
}

#[tokio::test]
async fn attachments_are_copied_once_under_the_size_cap() {
    let (clock, ops, dev) = backends();
    let opts = SyncOptions::default().max_attachment_size(1024);
    let pair = pair_of(ops.clone(), dev.clone()).with_options(opts);
    clock.advance(std::time::Duration::from_secs(1));
    let t = ops
        .create(&incident(), &software("Logs"), &CreateOptions::default())
        .await
        .unwrap();
    ops.upload(
        &incident(),
        &t.id,
        &NewAttachment::new("app.log", "text/plain", vec![b'x'; 100]),
    )
    .await
    .unwrap();
    ops.upload(
        &incident(),
        &t.id,
        &NewAttachment::new("dump.bin", "application/octet-stream", vec![0u8; 4096]),
    )
    .await
    .unwrap();
    let r = pair.run_once().await;
    assert_eq!(
        (r.attachments_copied.right, r.attachments_skipped.left),
        (1, 1),
        "{r}"
    );
    let link = pair.link_of(Side::Left, &t.id).await.unwrap().unwrap();
    let on_bug = dev.attachments(&bug(), &link.right).await.unwrap();
    assert_eq!(on_bug.len(), 1);
    assert_eq!(on_bug[0].file_name, "app.log");
    assert_eq!(dev.download(&on_bug[0]).await.unwrap().len(), 100);
    let again = pair.reconcile().await;
    assert_eq!(
        again.attachments_copied.left + again.attachments_copied.right,
        0,
        "{again}"
    );
    assert_eq!(
        ops.attachments(&incident(), &t.id).await.unwrap().len(),
        2,
        "the copy is not copied back"
    );
}

#[tokio::test]
async fn a_deleted_twin_gets_the_twinless_treatment() {
    let w = world();
    let t = w.ticket(software("Will be deleted")).await;
    w.pair.run_once().await;
    let b = w.twin(&t.id).await;
    assert!(w.dev.remove(&bug(), &b.id));
    let r = w.pair.reconcile().await;
    assert_eq!(r.twinless, 1, "{r}");
    assert!(w.pair.link_of(Side::Left, &t.id).await.unwrap().is_none());
    let notes = w.ops.comments(&incident(), &t.id).await.unwrap();
    assert!(
        notes
            .iter()
            .any(|c| c.body.contains(b.id.as_str()) && c.body.contains("deleted")),
        "{notes:?}"
    );
}

#[tokio::test]
async fn a_ticket_leaving_scope_is_unlinked_with_a_note_on_the_bug() {
    let w = world();
    let t = w.ticket(software("Misfiled")).await;
    w.pair.run_once().await;
    let b = w.twin(&t.id).await;
    w.edit(
        &w.ops,
        &incident(),
        &t.id,
        FieldMap::new()
            .with("category", "hardware")
            .with("short_description", "Misfiled (hardware)"),
    )
    .await;
    let r = w.pair.run_once().await;
    assert_eq!(r.twinless, 1, "{r}");
    let b2 = w.dev.get(&bug(), &b.id).await.unwrap();
    assert_eq!(
        text(&b2, "System.Title"),
        Some("Misfiled"),
        "no field flows once out of scope"
    );
    assert!(
        w.dev
            .comments(&bug(), &b.id)
            .await
            .unwrap()
            .iter()
            .any(|c| c.body.contains("left the sync scope"))
    );
    assert!(w.pair.link_of(Side::Right, &b.id).await.unwrap().is_none());
}

#[tokio::test]
async fn dry_run_plans_without_writing() {
    let w = world();
    let t = w.ticket(software("Plan me")).await;
    w.pair.run_once().await;
    w.edit(
        &w.ops,
        &incident(),
        &t.id,
        FieldMap::new().with("short_description", "Planned"),
    )
    .await;
    let before = w.twin(&t.id).await;
    let p = w.pair.plan_for(Side::Left, &t.id).await.unwrap();
    assert_eq!(
        p.right.fields.get("System.Title").and_then(|v| v.as_str()),
        Some("Planned")
    );
    assert!(p.left.is_empty());
    assert_eq!(w.twin(&t.id).await.version, before.version);
}

#[tokio::test]
async fn a_mapping_without_types_is_a_config_error() {
    let m = Mapping::from_toml_str("[[field]]\nleft = \"a\"\nright = \"b\"\n").unwrap();
    let e = SyncPair::new(
        Arc::new(InMemoryRepository::new("a")),
        Arc::new(InMemoryRepository::new("b")),
        m,
        Arc::new(MemoryStore::new()),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
}

#[tokio::test]
async fn expired_credentials_stop_the_round_instead_of_parking_everything() {
    let clock = clock();
    let ops = Arc::new(
        InMemoryRepository::builder("ops")
            .clock(clock.clone())
            .build(),
    );
    let dev = Arc::new(
        FaultRepository::new(Arc::new(bug_repo(&clock)), 3).with_rule(
            FaultRule::new(ErrorKind::Unauthenticated)
                .on([Operation::Create, Operation::WriteMany]),
        ),
    );
    let pair = pair_of(ops.clone(), dev);
    for i in 0..3 {
        clock.advance(std::time::Duration::from_secs(1));
        ops.create(
            &incident(),
            &software(&format!("T{i}")),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    }
    let r = pair.run_once().await;
    assert_eq!(
        r.stopped.as_ref().map(workbridge_core::Error::kind),
        Some(ErrorKind::Unauthenticated),
        "{r}"
    );
    assert!(r.parked.is_empty());
    assert!(pair.parked().await.unwrap().is_empty());
}

#[tokio::test]
async fn existing_items_are_linked_and_merged_by_policy() {
    let w = world();
    let t = w.ticket(software("Old title")).await;
    w.tick();
    let b = w
        .dev
        .create(
            &bug(),
            &FieldMap::new()
                .with("System.Title", "Newer title")
                .with("Priority", "4"),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    let r = w.pair.link_existing(&t.id, &b.id).await;
    assert!(r.is_complete(), "{r}");
    let (t2, b2) = (
        w.ops.get(&incident(), &t.id).await.unwrap(),
        w.dev.get(&bug(), &b.id).await.unwrap(),
    );
    assert_eq!(
        text(&t2, "short_description"),
        Some("Newer title"),
        "newest wins"
    );
    assert_eq!(text(&b2, "Priority"), Some("2"), "priority is left-wins");
    assert_eq!(text(&t2, "u_dev_status"), Some("New"));
    assert_eq!(
        w.pair
            .link_of(Side::Right, &b.id)
            .await
            .unwrap()
            .unwrap()
            .left,
        t.id
    );
    assert_eq!(w.pair.run_once().await.writes(), 0);
}

#[tokio::test]
async fn scope_can_decide_creation_only() {
    let (clock, ops, dev) = backends();
    let pair = pair_of(ops.clone(), dev.clone())
        .with_options(SyncOptions::default().retire_out_of_scope(false));
    clock.advance(std::time::Duration::from_secs(1));
    let t = ops
        .create(
            &incident(),
            &software("Stays linked"),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    pair.run_once().await;
    clock.advance(std::time::Duration::from_secs(1));
    ops.update(
        &incident(),
        &t.id,
        &FieldMap::new()
            .with("category", "hardware")
            .with("short_description", "Still flows"),
        &Default::default(),
    )
    .await
    .unwrap();
    let r = pair.run_once().await;
    assert_eq!(r.twinless, 0, "{r}");
    let link = pair.link_of(Side::Left, &t.id).await.unwrap().unwrap();
    assert_eq!(
        text(&dev.get(&bug(), &link.right).await.unwrap(), "System.Title"),
        Some("Still flows")
    );
}

/// A backend with a quirk: batched reads that drop their last entry (a malformed answer), or
/// capabilities of its own (a target that does not check versions before writing).
#[derive(Debug)]
struct Quirky {
    inner: Arc<InMemoryRepository>,
    short_reads: bool,
    caps: workbridge_core::Capabilities,
}

impl Quirky {
    fn short_reads(inner: Arc<InMemoryRepository>) -> Self {
        let caps = inner.capabilities().clone();
        Quirky {
            inner,
            short_reads: true,
            caps,
        }
    }
    fn unchecked(inner: Arc<InMemoryRepository>) -> Self {
        let mut caps = inner.capabilities().clone();
        caps.optimistic_concurrency = false;
        Quirky {
            inner,
            short_reads: false,
            caps,
        }
    }
}

impl std::fmt::Display for Quirky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "quirky")
    }
}

#[workbridge_core::async_trait]
impl Repository for Quirky {
    fn capabilities(&self) -> &workbridge_core::Capabilities {
        &self.caps
    }
    async fn schema(&self, t: &ItemType) -> workbridge_core::Result<Schema> {
        self.inner.schema(t).await
    }
    async fn changes(
        &self,
        t: &ItemType,
        c: &workbridge_core::Cursor,
        o: &workbridge_core::ChangeOptions,
    ) -> workbridge_core::Result<workbridge_core::ChangePage> {
        self.inner.changes(t, c, o).await
    }
    async fn get_many(
        &self,
        t: &ItemType,
        ids: &[ItemId],
        o: &workbridge_core::GetOptions,
    ) -> workbridge_core::Result<Vec<Option<WorkItem>>> {
        let mut v = self.inner.get_many(t, ids, o).await?;
        if self.short_reads {
            v.pop();
        }
        Ok(v)
    }
    async fn create(
        &self,
        t: &ItemType,
        f: &FieldMap,
        o: &CreateOptions,
    ) -> workbridge_core::Result<WorkItem> {
        self.inner.create(t, f, o).await
    }
    async fn update(
        &self,
        t: &ItemType,
        id: &ItemId,
        c: &FieldMap,
        o: &workbridge_core::UpdateOptions,
    ) -> workbridge_core::Result<WorkItem> {
        self.inner.update(t, id, c, o).await
    }
    async fn find_by_correlation(
        &self,
        t: &ItemType,
        k: &workbridge_core::CorrelationKey,
    ) -> workbridge_core::Result<Option<WorkItem>> {
        self.inner.find_by_correlation(t, k).await
    }
    async fn comments(
        &self,
        t: &ItemType,
        id: &ItemId,
    ) -> workbridge_core::Result<Vec<workbridge_core::Comment>> {
        self.inner.comments(t, id).await
    }
    async fn add_comment(
        &self,
        t: &ItemType,
        id: &ItemId,
        c: &NewComment,
    ) -> workbridge_core::Result<workbridge_core::Comment> {
        self.inner.add_comment(t, id, c).await
    }
    async fn attachments(
        &self,
        t: &ItemType,
        id: &ItemId,
    ) -> workbridge_core::Result<Vec<workbridge_core::AttachmentMeta>> {
        self.inner.attachments(t, id).await
    }
    async fn download(
        &self,
        a: &workbridge_core::AttachmentMeta,
    ) -> workbridge_core::Result<workbridge_core::Bytes> {
        self.inner.download(a).await
    }
    async fn upload(
        &self,
        t: &ItemType,
        id: &ItemId,
        a: &NewAttachment,
    ) -> workbridge_core::Result<workbridge_core::AttachmentMeta> {
        self.inner.upload(t, id, a).await
    }
}

#[tokio::test]
async fn a_short_batched_read_is_refused_and_unlinks_nothing() {
    let (clock, ops, dev) = backends();
    let store = Arc::new(MemoryStore::new());
    let good = SyncPair::new(
        ops.clone(),
        dev.clone(),
        Mapping::from_toml_str(SPEC).unwrap(),
        store.clone(),
    )
    .unwrap()
    .with_id("p");
    clock.advance(std::time::Duration::from_secs(1));
    let t = ops
        .create(&incident(), &software("Linked"), &CreateOptions::default())
        .await
        .unwrap();
    good.run_once().await;
    clock.advance(std::time::Duration::from_secs(1));
    ops.update(
        &incident(),
        &t.id,
        &FieldMap::new().with("short_description", "Edited"),
        &Default::default(),
    )
    .await
    .unwrap();
    // The twin is read before the merge (it would be merged unread, as its link knows it,
    // otherwise; a short read of twins whose writes were refused is the next test's).
    let broken = SyncPair::new(
        ops.clone(),
        Arc::new(Quirky::short_reads(dev.clone())),
        Mapping::from_toml_str(SPEC).unwrap(),
        store.clone(),
    )
    .unwrap()
    .with_id("p")
    .with_options(SyncOptions::default().read_twins_first(true));
    let r = broken.run_once().await;
    let e = r.stopped.as_ref().expect("stopped");
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert!(e.message().contains("1 ids"), "{e}");
    assert_eq!(r.twinless, 0);
    assert!(
        broken.link_of(Side::Left, &t.id).await.unwrap().is_some(),
        "the link survives"
    );
    // With a sound backend the edit still flows: nothing was lost.
    assert_eq!(good.run_once().await.updated.right, 1);
    let link = good.link_of(Side::Left, &t.id).await.unwrap().unwrap();
    assert_eq!(
        text(&dev.get(&bug(), &link.right).await.unwrap(), "System.Title"),
        Some("Edited")
    );
}

#[tokio::test]
async fn a_short_read_of_twins_whose_writes_were_refused_unlinks_nothing() {
    let (clock, ops, dev) = backends();
    let store = Arc::new(MemoryStore::new());
    let spec = || Mapping::from_toml_str(SPEC).unwrap();
    let good = SyncPair::new(ops.clone(), dev.clone(), spec(), store.clone())
        .unwrap()
        .with_id("p");
    clock.advance(std::time::Duration::from_secs(1));
    let t = ops
        .create(&incident(), &software("Linked"), &CreateOptions::default())
        .await
        .unwrap();
    good.run_once().await;
    let b = good
        .link_of(Side::Left, &t.id)
        .await
        .unwrap()
        .unwrap()
        .right;
    // Both edited: the write against the Bug as the link knows it is refused, and the Bugs so
    // refused are read — by a backend that answers one short.
    clock.advance(std::time::Duration::from_secs(1));
    ops.update(
        &incident(),
        &t.id,
        &FieldMap::new().with("short_description", "Edited"),
        &Default::default(),
    )
    .await
    .unwrap();
    dev.update(
        &bug(),
        &b,
        &FieldMap::new().with("Description", "Dev's note"),
        &Default::default(),
    )
    .await
    .unwrap();
    let broken = SyncPair::new(
        ops.clone(),
        Arc::new(Quirky::short_reads(dev.clone())),
        spec(),
        store.clone(),
    )
    .unwrap()
    .with_id("p");
    let r = broken.run_once().await;
    let e = r.stopped.as_ref().expect("stopped");
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert_eq!(r.twinless, 0);
    assert!(broken.link_of(Side::Left, &t.id).await.unwrap().is_some());
    // Both edits flow with a sound backend.
    let r = good.run_once().await;
    assert!(r.is_complete(), "{r}");
    let (t2, b2) = (
        ops.get(&incident(), &t.id).await.unwrap(),
        dev.get(&bug(), &b).await.unwrap(),
    );
    assert_eq!(text(&b2, "System.Title"), Some("Edited"));
    assert_eq!(text(&b2, "Description"), Some("Dev's note"));
    assert_eq!(text(&t2, "description"), Some("Dev's note"));
}

#[tokio::test]
async fn a_lost_batch_reply_never_duplicates() {
    let (clock, ops, dev_inner) = backends();
    let dev = Arc::new(
        FaultRepository::new(dev_inner.clone(), 5).with_rule(
            FaultRule::new(ErrorKind::Unavailable)
                .on([Operation::WriteMany])
                .nth(1)
                .reply_lost(),
        ),
    );
    let pair = pair_of(ops.clone(), dev);
    for i in 0..6 {
        clock.advance(std::time::Duration::from_secs(1));
        ops.create(
            &incident(),
            &software(&format!("Batch {i}")),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    }
    let first = pair.run_once().await;
    assert!(first.stopped.is_some(), "{first}");
    assert_eq!(dev_inner.len(&bug()), 6, "the batch did run");
    let second = pair.run_once().await;
    assert!(second.is_complete(), "{second}");
    assert_eq!(
        (second.relinked.right, second.created.right),
        (6, 0),
        "{second}"
    );
    assert_eq!(dev_inner.len(&bug()), 6, "no duplicate");
}

#[test]
fn without_a_baseline_a_value_equal_to_the_default_still_flows() {
    // A relinked pair (its link lost after a create) has no source baseline; mapping an empty
    // item yields the rule's default, which must not pass for "unchanged".
    let m = Mapping::from_toml_str(
        "[[field]]\nleft = \"priority\"\nright = \"Priority\"\nmap = { \"1\" = \"1\", \"3\" = \"3\", \"4\" = \"4\" }\nfallback = \"default\"\ndefault = \"3\"\n",
    )
    .unwrap();
    let at = chrono::Utc::now();
    let left = WorkItem::new(
        ItemId::new("t1"),
        incident(),
        "5".into(),
        at,
        FieldMap::new().with("priority", "3"),
    );
    let right = WorkItem::new(
        ItemId::new("7"),
        bug(),
        "2".into(),
        at,
        FieldMap::new().with("Priority", "4"),
    );
    let p = workbridge_sync::plan(
        &m,
        workbridge_sync::PlanInput {
            left: &left,
            right: &right,
            left_baseline: &FieldMap::new(),
            right_baseline: &right.fields,
            left_workflow: None,
            right_workflow: None,
        },
    );
    assert_eq!(
        p.right.fields.get("Priority").and_then(|v| v.as_str()),
        Some("3")
    );
    assert!(p.left.is_empty());
}

#[tokio::test]
async fn supplied_fields_quote_the_twin_as_this_round_leaves_it() {
    // Ops rename the ticket in the same round Dev resolve the Bug: the close note quotes the
    // Bug's title as the round leaves it (the new name), not as it was read.
    let spec = r#"
left = "incident"
right = "Bug"
[create]
left_to_right = true
[[field]]
left = "short_description"
right = "System.Title"
[state]
left = "state"
right = "System.State"
direction = "right-to-left"
map = { Resolved = "6" }
[state.supply_left."6"]
close_notes = "Fixed: {System.Title}"
"#;
    let (clock, ops, dev) = backends();
    let pair = SyncPair::new(
        ops.clone(),
        dev.clone(),
        Mapping::from_toml_str(spec).unwrap(),
        Arc::new(MemoryStore::new()),
    )
    .unwrap();
    clock.advance(std::time::Duration::from_secs(1));
    let t = ops
        .create(
            &incident(),
            &FieldMap::new().with("short_description", "Old name"),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    assert!(pair.run_once().await.is_complete());
    let link = pair.link_of(Side::Left, &t.id).await.unwrap().unwrap();
    clock.advance(std::time::Duration::from_secs(1));
    ops.update(
        &incident(),
        &t.id,
        &FieldMap::new().with("short_description", "New name"),
        &Default::default(),
    )
    .await
    .unwrap();
    for s in ["Active", "Resolved"] {
        dev.update(
            &bug(),
            &link.right,
            &FieldMap::new().with("System.State", s),
            &Default::default(),
        )
        .await
        .unwrap();
    }
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    let ticket = ops.get(&incident(), &t.id).await.unwrap();
    let b = dev.get(&bug(), &link.right).await.unwrap();
    assert_eq!(text(&b, "System.Title"), Some("New name"));
    assert_eq!(text(&ticket, "close_notes"), Some("Fixed: New name"));
    assert_eq!(text(&ticket, "state"), Some("6"));
}

#[tokio::test]
async fn a_comment_reaches_each_item_once_across_three_pairs() {
    // Ops (a), Dev (b), QA (c): a→b and b→c create twins, a↔c links the ticket to QA's item.
    // Every pair copies comments both ways and they share one store: a comment must reach each
    // item exactly once, whichever path gets there first, and never come back.
    let clock = clock();
    let repo = |name: &str| {
        Arc::new(
            InMemoryRepository::builder(name)
                .clock(clock.clone())
                .build(),
        )
    };
    let (a, b, c) = (repo("ops"), repo("dev"), repo("qa"));
    let spec = |l: &str, r: &str, create: bool| {
        Mapping::from_toml_str(&format!(
            "left = \"{l}\"\nright = \"{r}\"\n[create]\nleft_to_right = {create}\n[comments]\nto_left = \"public\"\nto_right = \"public\"\n[[field]]\nleft = \"title\"\nright = \"title\"\n"
        ))
        .unwrap()
    };
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let ab = SyncPair::new(
        a.clone(),
        b.clone(),
        spec("ticket", "bug", true),
        store.clone(),
    )
    .unwrap();
    let bc = SyncPair::new(
        b.clone(),
        c.clone(),
        spec("bug", "defect", true),
        store.clone(),
    )
    .unwrap();
    let ac = SyncPair::new(
        a.clone(),
        c.clone(),
        spec("ticket", "defect", false),
        store.clone(),
    )
    .unwrap();
    let t = ItemType::new("ticket");
    clock.advance(std::time::Duration::from_secs(1));
    let ticket = a
        .create(
            &t,
            &FieldMap::new().with("title", "Printer on fire"),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    assert!(ab.run_once().await.is_complete());
    let bug_id = ab
        .link_of(Side::Left, &ticket.id)
        .await
        .unwrap()
        .unwrap()
        .right;
    assert!(bc.run_once().await.is_complete());
    let defect_id = bc
        .link_of(Side::Left, &bug_id)
        .await
        .unwrap()
        .unwrap()
        .right;
    let linked = ac.link_existing(&ticket.id, &defect_id).await;
    assert!(linked.is_complete(), "{linked}");
    let rounds = || async {
        for _ in 0..3 {
            for p in [&ab, &bc, &ac] {
                clock.advance(std::time::Duration::from_secs(1));
                let r = p.run_once().await;
                assert!(r.is_complete(), "{r}");
            }
        }
    };
    let count = |repo: Arc<InMemoryRepository>,
                 ty: &'static str,
                 id: ItemId,
                 needle: &'static str| async move {
        repo.comments(&ItemType::new(ty), &id)
            .await
            .unwrap()
            .iter()
            .filter(|c| c.body.contains(needle))
            .count()
    };
    a.add_comment(&t, &ticket.id, &NewComment::public("Customer: it smokes"))
        .await
        .unwrap();
    rounds().await;
    b.add_comment(
        &ItemType::new("bug"),
        &bug_id,
        &NewComment::public("Driver 5.1 fixed."),
    )
    .await
    .unwrap();
    rounds().await;
    for (needle, want) in [
        ("Customer: it smokes", [1, 1, 1]),
        ("Driver 5.1 fixed.", [1, 1, 1]),
    ] {
        let got = [
            count(a.clone(), "ticket", ticket.id.clone(), needle).await,
            count(b.clone(), "bug", bug_id.clone(), needle).await,
            count(c.clone(), "defect", defect_id.clone(), needle).await,
        ];
        assert_eq!(got, want, "`{needle}` on ticket, bug, defect");
    }
}

#[tokio::test]
async fn a_field_named_by_its_label_is_read_back_under_its_name() {
    // QA's tool shows a user field as "Azure DevOps Bug"; its name is user-03. A spec naming
    // the label must read QA's edits back, not see the field as missing.
    let clock = clock();
    let dev = Arc::new(bug_repo(&clock));
    let qa = Arc::new(
        InMemoryRepository::builder("qa")
            .clock(clock.clone())
            .schema(
                Schema::new("defect")
                    .field(FieldDef::new("name", FieldKind::Text))
                    .field(FieldDef::new("user-03", FieldKind::Text).label("Azure DevOps Bug"))
                    .field(FieldDef::new("status", FieldKind::Choice).allowed(["New", "Open"]))
                    .workflow(
                        TransitionGraph::new("status")
                            .initial("New")
                            .transition("New", "Open"),
                    ),
            )
            .build(),
    );
    let spec = r#"
left = "Bug"
right = "defect"
[create]
left_to_right = true
[[field]]
left = "System.Title"
right = "name"
[[field]]
left = "Description"
right = "Azure DevOps Bug"
"#;
    let pair = SyncPair::new(
        dev.clone(),
        qa.clone(),
        Mapping::from_toml_str(spec).unwrap(),
        Arc::new(MemoryStore::new()),
    )
    .unwrap();
    clock.advance(std::time::Duration::from_secs(1));
    let b = dev
        .create(
            &bug(),
            &FieldMap::new()
                .with("System.Title", "Login fails")
                .with("Description", "seen on 5.0"),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    let r = pair.run_once().await;
    assert!(r.is_complete() && r.parked.is_empty(), "{r}");
    let link = pair.link_of(Side::Left, &b.id).await.unwrap().unwrap();
    let defect_type = ItemType::new("defect");
    let d = qa.get(&defect_type, &link.right).await.unwrap();
    assert_eq!(
        text(&d, "user-03"),
        Some("seen on 5.0"),
        "written under its name"
    );
    clock.advance(std::time::Duration::from_secs(1));
    qa.update(
        &defect_type,
        &link.right,
        &FieldMap::new().with("user-03", "seen on 5.0 and 5.1"),
        &Default::default(),
    )
    .await
    .unwrap();
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    let b = dev.get(&bug(), &b.id).await.unwrap();
    assert_eq!(text(&b, "Description"), Some("seen on 5.0 and 5.1"));
    assert_eq!(pair.run_once().await.writes(), 0, "converged");
}

#[tokio::test]
async fn no_twin_is_created_while_another_process_create_may_still_land() {
    // Another worker recorded its intent and was stalled (or killed) mid-create. Until the
    // grace is over this worker creates nothing for that ticket, unless it finds the twin the
    // other one made — then it links that one: never a duplicate.
    let (clock, ops, dev) = backends();
    let store = Arc::new(MemoryStore::new());
    let make = |grace: u64| {
        SyncPair::new(
            ops.clone(),
            dev.clone(),
            Mapping::from_toml_str(SPEC).unwrap(),
            store.clone(),
        )
        .unwrap()
        .with_options(SyncOptions::default().in_flight_grace(std::time::Duration::from_secs(grace)))
    };
    let pair = make(300);
    clock.advance(std::time::Duration::from_secs(1));
    let t = ops
        .create(
            &incident(),
            &software("Stalled create"),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    let key = workbridge_core::CorrelationKey::new(format!("wb:incident:{}", t.id));
    let sent = FieldMap::new().with("System.Title", "Stalled create");
    store
        .save_intents(
            pair.id(),
            &[workbridge_sync::CreateIntent {
                side: Side::Left,
                source: t.id.clone(),
                key: key.clone(),
                source_baseline: t.fields.clone(),
                sent: sent.clone(),
                at: chrono::Utc::now(),
                run: "another-process".to_owned(),
            }],
        )
        .await
        .unwrap();
    let r = pair.run_once().await;
    // The ticket waits, parked (it is tried again each round); the round goes on.
    assert!(r.stopped.is_none(), "{r}");
    assert!(
        matches!(&r.parked[..], [p] if p.id == t.id && p.temporary && p.error.contains("may still land")),
        "deferred: {r}"
    );
    assert_eq!(dev.len(&bug()), 0, "nothing created meanwhile");
    // The other worker's create lands: this one links it instead of creating a second.
    dev.create(
        &bug(),
        &sent,
        &CreateOptions::default().correlation(key.as_str()),
    )
    .await
    .unwrap();
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    assert_eq!((r.created.right, r.relinked.right), (0, 1), "{r}");
    assert_eq!(dev.len(&bug()), 1);
}

#[tokio::test]
async fn after_the_grace_a_foreign_intent_no_longer_holds_the_create() {
    let (clock, ops, dev) = backends();
    let store = Arc::new(MemoryStore::new());
    let pair = SyncPair::new(
        ops.clone(),
        dev.clone(),
        Mapping::from_toml_str(SPEC).unwrap(),
        store.clone(),
    )
    .unwrap()
    .with_options(SyncOptions::default().in_flight_grace(std::time::Duration::ZERO));
    clock.advance(std::time::Duration::from_secs(1));
    let t = ops
        .create(
            &incident(),
            &software("Never sent"),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    store
        .save_intents(
            pair.id(),
            &[workbridge_sync::CreateIntent {
                side: Side::Left,
                source: t.id.clone(),
                key: format!("wb:incident:{}", t.id).into(),
                source_baseline: t.fields.clone(),
                sent: FieldMap::new(),
                at: chrono::Utc::now() - chrono::TimeDelta::seconds(10),
                run: "a-dead-process".to_owned(),
            }],
        )
        .await
        .unwrap();
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    assert_eq!(r.created.right, 1);
}

/// Ops edit the titles of `n` linked tickets: the round after writes them to the Bugs.
async fn linked_tickets_edited(
    clock: &ManualClock,
    ops: &InMemoryRepository,
    pair: &SyncPair,
    n: usize,
) -> Vec<ItemId> {
    let mut ids = Vec::new();
    for i in 0..n {
        clock.advance(std::time::Duration::from_secs(1));
        let t = ops
            .create(
                &incident(),
                &software(&format!("Ticket {i}")),
                &CreateOptions::default(),
            )
            .await
            .unwrap();
        ids.push(t.id);
    }
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    for (i, id) in ids.iter().enumerate() {
        clock.advance(std::time::Duration::from_secs(1));
        ops.update(
            &incident(),
            id,
            &FieldMap::new().with("short_description", format!("Ticket {i}, edited")),
            &Default::default(),
        )
        .await
        .unwrap();
    }
    ids
}

#[tokio::test]
async fn a_page_of_updates_goes_out_in_one_write_many() {
    let (clock, ops, dev_inner) = backends();
    let dev = Arc::new(RecordingRepository::new(dev_inner.clone()));
    let pair = pair_of(ops.clone(), dev.clone());
    let ids = linked_tickets_edited(&clock, &ops, &pair, 5).await;
    dev.clear();
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    assert_eq!(r.updated.right, 5, "{r}");
    assert_eq!(
        (
            dev.count(Operation::WriteMany),
            dev.count(Operation::Update)
        ),
        (1, 0),
        "{:?}",
        dev.calls()
    );
    for (i, id) in ids.iter().enumerate() {
        let link = pair.link_of(Side::Left, id).await.unwrap().unwrap();
        let b = dev_inner.get(&bug(), &link.right).await.unwrap();
        assert_eq!(
            text(&b, "System.Title").map(str::to_owned),
            Some(format!("Ticket {i}, edited"))
        );
    }
    assert_eq!(pair.run_once().await.writes(), 0);
}

#[tokio::test]
async fn a_conflict_answering_a_batch_of_updates_is_read_again_and_replanned() {
    let (clock, ops, dev_inner) = backends();
    let dev = Arc::new(
        FaultRepository::new(dev_inner.clone(), 5).with_rule(
            // The first write_many makes the Bugs; the second carries the edits.
            FaultRule::new(ErrorKind::Conflict)
                .on([Operation::WriteMany])
                .nth(2),
        ),
    );
    let pair = pair_of(ops.clone(), dev.clone());
    let ids = linked_tickets_edited(&clock, &ops, &pair, 4).await;
    let r = pair.run_once().await;
    assert_eq!(
        dev.injected(),
        1,
        "the batch of edits was answered with a conflict"
    );
    assert!(r.is_complete() && r.parked.is_empty(), "{r}");
    assert_eq!(r.updated.right, 4, "{r}");
    for id in &ids {
        let link = pair.link_of(Side::Left, id).await.unwrap().unwrap();
        let b = dev_inner.get(&bug(), &link.right).await.unwrap();
        assert!(text(&b, "System.Title").unwrap().ends_with(", edited"));
    }
    assert_eq!(pair.run_once().await.writes(), 0);
}

#[tokio::test]
async fn a_lost_reply_to_a_batch_of_updates_writes_nothing_twice() {
    let (clock, ops, dev_inner) = backends();
    let dev = Arc::new(
        FaultRepository::new(dev_inner.clone(), 5).with_rule(
            FaultRule::new(ErrorKind::Unavailable)
                .on([Operation::WriteMany])
                .nth(2)
                .reply_lost(),
        ),
    );
    let pair = pair_of(ops.clone(), dev);
    let ids = linked_tickets_edited(&clock, &ops, &pair, 4).await;
    let revs = |ids: Vec<ItemId>| {
        let (pair, dev) = (&pair, &dev_inner);
        async move {
            let mut out = Vec::new();
            for id in &ids {
                let link = pair.link_of(Side::Left, id).await.unwrap().unwrap();
                out.push(dev.get(&bug(), &link.right).await.unwrap().version);
            }
            out
        }
    };
    let first = pair.run_once().await;
    assert!(first.stopped.is_some(), "{first}");
    let landed = revs(ids.clone()).await;
    // The next round learns from the pending records that the writes landed: it writes none
    // of them again, and the ticket side takes nothing back.
    let second = pair.run_once().await;
    assert!(second.is_complete(), "{second}");
    assert_eq!(second.writes(), 0, "{second}");
    assert_eq!(revs(ids).await, landed);
}

/// A page of updates to the Bugs whose request fails, with `held` as one that may still land
/// (a timeout, a lost answer) or as one refused outright; `grace` for writes in flight. The
/// four tickets' ids, and the Bugs' backend.
async fn a_failed_batch_of_updates(
    held: bool,
    grace: std::time::Duration,
) -> (SyncPair, Arc<InMemoryRepository>, Vec<ItemId>) {
    let (clock, ops, dev_inner) = backends();
    let mut rule = FaultRule::new(ErrorKind::Unavailable)
        .on([Operation::WriteMany])
        .nth(2);
    if held {
        rule = rule.in_flight();
    }
    let dev = Arc::new(FaultRepository::new(dev_inner.clone(), 5).with_rule(rule));
    let pair =
        pair_of(ops.clone(), dev).with_options(SyncOptions::default().in_flight_grace(grace));
    let ids = linked_tickets_edited(&clock, &ops, &pair, 4).await;
    let first = pair.run_once().await;
    assert!(first.stopped.is_some(), "{first}");
    (pair, dev_inner, ids)
}

/// The Bugs' titles as the backend holds them.
async fn titles(pair: &SyncPair, dev: &InMemoryRepository, ids: &[ItemId]) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        let link = pair.link_of(Side::Left, id).await.unwrap().unwrap();
        let b = dev.get(&bug(), &link.right).await.unwrap();
        out.push(text(&b, "System.Title").unwrap_or_default().to_owned());
    }
    out
}

/// Updates held on their way may still land: not sent again — a late first send would land
/// over whatever the second brought, newer edits among it — until the items show them or the
/// grace is over; then they are sent again.
#[tokio::test]
async fn updates_that_may_still_land_are_not_sent_again_within_the_grace() {
    let grace = std::time::Duration::from_millis(300);
    let (pair, dev, ids) = a_failed_batch_of_updates(true, grace).await;
    let waiting = pair.run_once().await;
    assert_eq!(waiting.updated.right, 0, "{waiting}");
    assert_eq!(waiting.parked.len(), 4, "each waits, parked: {waiting}");
    assert!(
        waiting
            .parked
            .iter()
            .all(|p| p.temporary && p.error.contains("may still land")),
        "{waiting}"
    );
    assert!(
        titles(&pair, &dev, &ids)
            .await
            .iter()
            .all(|t| !t.ends_with("edited"))
    );
    tokio::time::sleep(grace + std::time::Duration::from_millis(50)).await;
    let after = pair.run_once().await;
    assert_eq!(after.updated.right, 4, "{after}");
    assert!(
        titles(&pair, &dev, &ids)
            .await
            .iter()
            .all(|t| t.ends_with("edited")),
        "{after}"
    );
    assert_eq!(pair.run_once().await.writes(), 0);
}

/// Updates refused with a definite answer did not land: they are sent again at once.
#[tokio::test]
async fn updates_refused_outright_are_sent_again_at_once() {
    let (pair, dev, ids) =
        a_failed_batch_of_updates(false, std::time::Duration::from_secs(3600)).await;
    let again = pair.run_once().await;
    assert!(again.is_complete(), "{again}");
    assert_eq!(again.updated.right, 4, "{again}");
    assert!(
        titles(&pair, &dev, &ids)
            .await
            .iter()
            .all(|t| t.ends_with("edited")),
        "{again}"
    );
}

/// A ticket with a file, and a pair whose first upload to Dev is held on its way: the client
/// gives up, the request may still be delivered (the test delivers it, or not).
async fn a_held_upload(
    grace: std::time::Duration,
) -> (Arc<InMemoryRepository>, SyncPair, ItemId, NewAttachment) {
    let (clock, ops, dev_inner) = backends();
    let dev = Arc::new(
        FaultRepository::new(dev_inner.clone(), 5).with_rule(
            FaultRule::new(ErrorKind::Unavailable)
                .on([Operation::Upload])
                .nth(1)
                .in_flight(),
        ),
    );
    let pair =
        pair_of(ops.clone(), dev).with_options(SyncOptions::default().in_flight_grace(grace));
    clock.advance(std::time::Duration::from_secs(1));
    let t = ops
        .create(&incident(), &software("Logs"), &CreateOptions::default())
        .await
        .unwrap();
    let file = NewAttachment::new("app.log", "text/plain", vec![b'x'; 100]);
    ops.upload(&incident(), &t.id, &file).await.unwrap();
    let first = pair.run_once().await;
    assert!(first.stopped.is_some(), "{first}");
    (dev_inner, pair, t.id, file)
}

/// An upload held on its way must not be sent again while it may land: once it does, it is
/// adopted.
#[tokio::test]
async fn an_upload_that_may_still_land_is_not_sent_twice() {
    let (dev, pair, ticket, file) = a_held_upload(std::time::Duration::from_secs(3600)).await;
    let link = pair.link_of(Side::Left, &ticket).await.unwrap().unwrap();
    // Not landed yet: the next round waits rather than upload it a second time — the item
    // parked, the round going on.
    let waiting = pair.run_once().await;
    assert!(waiting.stopped.is_none(), "{waiting}");
    assert!(
        !waiting.parked.is_empty()
            && waiting
                .parked
                .iter()
                .all(|p| p.temporary && p.error.contains("may still land")),
        "{waiting}"
    );
    assert!(
        dev.attachments(&bug(), &link.right)
            .await
            .unwrap()
            .is_empty()
    );
    // The held request is delivered: the copy is adopted, not made twice.
    dev.upload(&bug(), &link.right, &file).await.unwrap();
    let done = pair.run_once().await;
    assert!(done.is_complete(), "{done}");
    assert_eq!(dev.attachments(&bug(), &link.right).await.unwrap().len(), 1);
    assert_eq!(pair.run_once().await.writes(), 0);
}

/// One that never lands is sent again once the grace is over.
#[tokio::test]
async fn an_upload_that_never_landed_is_sent_again_after_the_grace() {
    let (dev, pair, ticket, _) = a_held_upload(std::time::Duration::ZERO).await;
    let again = pair.run_once().await;
    assert!(again.is_complete(), "{again}");
    let link = pair.link_of(Side::Left, &ticket).await.unwrap().unwrap();
    assert_eq!(dev.attachments(&bug(), &link.right).await.unwrap().len(), 1);
}

/// A ticket with a public note, and a pair whose first copy of a comment to the Bug is held on
/// its way (it fails as one that may still land); after the first round.
async fn a_held_comment_copy(
    grace: std::time::Duration,
) -> (
    Arc<InMemoryRepository>,
    Arc<InMemoryRepository>,
    SyncPair,
    ItemId,
    NewComment,
) {
    let (clock, ops, dev_inner) = backends();
    let dev = Arc::new(
        FaultRepository::new(dev_inner.clone(), 5).with_rule(
            FaultRule::new(ErrorKind::Unavailable)
                .on([Operation::AddComment])
                .nth(1)
                .in_flight(),
        ),
    );
    let pair =
        pair_of(ops.clone(), dev).with_options(SyncOptions::default().in_flight_grace(grace));
    clock.advance(std::time::Duration::from_secs(1));
    let t = ops
        .create(&incident(), &software("Printer"), &CreateOptions::default())
        .await
        .unwrap();
    let note = NewComment::public("Checked on the second printer");
    ops.add_comment(&incident(), &t.id, &note).await.unwrap();
    let first = pair.run_once().await;
    assert!(
        first.stopped.is_some() || !first.parked.is_empty(),
        "{first}"
    );
    (ops, dev_inner, pair, t.id, note)
}

/// A comment copy held on its way must not be sent again while it may land: once it does, it
/// is adopted. Sent again, and the held one delivered after, the note stood twice on the Bug —
/// and from there on the other pairs' items (the soak's wire proxy held one).
#[tokio::test]
async fn a_comment_copy_that_may_still_land_is_not_sent_twice() {
    let (ops, dev, pair, ticket, note) =
        a_held_comment_copy(std::time::Duration::from_secs(3600)).await;
    let link = pair.link_of(Side::Left, &ticket).await.unwrap().unwrap();
    let waiting = pair.run_once().await;
    assert!(
        dev.comments(&bug(), &link.right).await.unwrap().is_empty(),
        "not sent again while it may land: {waiting}"
    );
    // The held request is delivered: the copy is adopted, not made twice.
    dev.add_comment(&bug(), &link.right, &note).await.unwrap();
    let done = pair.run_once().await;
    assert!(done.is_complete(), "{done}");
    assert_eq!(dev.comments(&bug(), &link.right).await.unwrap().len(), 1);
    assert_eq!(ops.comments(&incident(), &ticket).await.unwrap().len(), 1);
    assert_eq!(pair.run_once().await.writes(), 0);
}

/// One that never lands is sent again once the grace is over.
#[tokio::test]
async fn a_comment_copy_that_never_landed_is_sent_again_after_the_grace() {
    let (_, dev, pair, ticket, _) = a_held_comment_copy(std::time::Duration::ZERO).await;
    let again = pair.run_once().await;
    assert!(again.is_complete(), "{again}");
    let link = pair.link_of(Side::Left, &ticket).await.unwrap().unwrap();
    assert_eq!(dev.comments(&bug(), &link.right).await.unwrap().len(), 1);
    assert_eq!(pair.run_once().await.writes(), 0);
}

/// A backlog synced with a store started afresh, while its twins were made before (by a store
/// since lost): each is found by its key and linked, none created twice — also when the first
/// round stops after its first page and the next one goes on from its cursor.
#[tokio::test]
async fn a_store_started_afresh_beside_twins_made_before_links_them() {
    let (clock, ops, dev_inner) = backends();
    clock.advance(std::time::Duration::from_secs(1));
    let mut tickets = Vec::new();
    for i in 0..6 {
        clock.advance(std::time::Duration::from_secs(1));
        let t = ops
            .create(
                &incident(),
                &software(&format!("Backlog {i}")),
                &CreateOptions::default(),
            )
            .await
            .unwrap();
        tickets.push(t.id);
    }
    let before = pair_of(ops.clone(), dev_inner.clone());
    assert_eq!(before.run_once().await.created.right, 6);
    // The store is lost: a new one, and a round that stops after its first page (the second
    // page's read fails, read ahead and again in turn).
    let dev = Arc::new(RecordingRepository::new(dev_inner.clone()));
    let fail = |n| {
        FaultRule::new(ErrorKind::Unavailable)
            .on([Operation::Changes])
            .nth(n)
    };
    let ops_faulty = Arc::new(
        FaultRepository::new(ops.clone(), 3)
            .with_rule(fail(2))
            .with_rule(fail(3)),
    );
    let pair = pair_of(ops_faulty, dev.clone()).with_options(
        SyncOptions::default()
            .page_size(2)
            .comments(false)
            .attachments(false),
    );
    let first = pair.run_once().await;
    assert!(first.stopped.is_some(), "{first}");
    assert_eq!(
        (first.created.right, first.relinked.right),
        (0, 2),
        "{first}"
    );
    let second = pair.run_once().await;
    assert!(second.is_complete(), "{second}");
    assert_eq!(
        (second.created.right, second.relinked.right),
        (0, 4),
        "{second}"
    );
    assert_eq!(dev_inner.len(&bug()), 6, "no duplicate");
    for t in &tickets {
        assert!(pair.link_of(Side::Left, t).await.unwrap().is_some());
    }
    // Caught up: a new ticket is new, and is not looked up.
    dev.clear();
    clock.advance(std::time::Duration::from_secs(1));
    ops.create(&incident(), &software("New"), &CreateOptions::default())
        .await
        .unwrap();
    let r = pair.run_once().await;
    assert_eq!(r.created.right, 1, "{r}");
    assert_eq!(dev.count(Operation::FindManyByCorrelation), 0);
    assert_eq!(dev.count(Operation::FindByCorrelation), 0);
}

/// A backfill beside a target holding no correlated items asks that once and looks up no
/// twin (a create whose reply is lost is looked up: `a_lost_create_reply_never_duplicates`).
#[tokio::test]
async fn a_backfill_looks_up_twins_only_where_one_may_exist() {
    let (clock, ops, dev_inner) = backends();
    for i in 0..5 {
        clock.advance(std::time::Duration::from_secs(1));
        ops.create(
            &incident(),
            &software(&format!("Backlog {i}")),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    }
    let dev = Arc::new(RecordingRepository::new(dev_inner.clone()));
    let pair = pair_of(ops.clone(), dev.clone());
    let r = pair.run_once().await;
    assert_eq!(r.created.right, 5, "{r}");
    assert_eq!(dev.count(Operation::HoldsCorrelated), 1);
    assert_eq!(dev.count(Operation::FindManyByCorrelation), 0);
    assert_eq!(dev.count(Operation::FindByCorrelation), 0);
    // With lookups before every create, the same backfill looks the page up.
    let (clock, ops, dev_inner) = backends();
    clock.advance(std::time::Duration::from_secs(1));
    ops.create(&incident(), &software("Backlog"), &CreateOptions::default())
        .await
        .unwrap();
    let dev = Arc::new(RecordingRepository::new(dev_inner));
    let pair = pair_of(ops, dev.clone())
        .with_options(SyncOptions::default().twin_lookup(TwinLookup::Always));
    assert_eq!(pair.run_once().await.created.right, 1);
    assert_eq!(dev.count(Operation::HoldsCorrelated), 0);
    assert_eq!(
        dev.count(Operation::FindManyByCorrelation) + dev.count(Operation::FindByCorrelation),
        1
    );
}

/// A link keeps, per side, only the fields the spec reads or writes: a ticket's other fields
/// are not in its baseline, an edit to one of them is no change, and an edit to a mapped one
/// still flows.
#[tokio::test]
async fn a_link_keeps_only_the_fields_the_spec_reads_or_writes() {
    let (clock, ops, dev) = backends();
    let store = Arc::new(MemoryStore::new());
    let pair = SyncPair::new(
        ops.clone(),
        dev.clone(),
        Mapping::from_toml_str(SPEC).unwrap(),
        store.clone(),
    )
    .unwrap();
    clock.advance(std::time::Duration::from_secs(1));
    let t = ops
        .create(
            &incident(),
            &software("Compact").with("u_notes_for_ops", "long text no rule reads"),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(pair.run_once().await.created.right, 1);
    let link = pair.link_of(Side::Left, &t.id).await.unwrap().unwrap();
    assert!(link.baseline(Side::Left).get("u_notes_for_ops").is_none());
    assert!(link.baseline(Side::Left).get("short_description").is_some());
    assert!(link.baseline(Side::Right).get("System.Title").is_some());
    clock.advance(std::time::Duration::from_secs(1));
    ops.update(
        &incident(),
        &t.id,
        &FieldMap::new().with("u_notes_for_ops", "edited"),
        &Default::default(),
    )
    .await
    .unwrap();
    let r = pair.run_once().await;
    assert_eq!(r.writes(), 0, "{r}");
    clock.advance(std::time::Duration::from_secs(1));
    ops.update(
        &incident(),
        &t.id,
        &FieldMap::new().with("short_description", "Compact, renamed"),
        &Default::default(),
    )
    .await
    .unwrap();
    let r = pair.run_once().await;
    assert_eq!(r.updated.right, 1, "{r}");
    let twin = dev.get(&bug(), &link.right).await.unwrap();
    assert_eq!(text(&twin, "System.Title"), Some("Compact, renamed"));
}

/// A page larger than `chunk_size` is read once and worked on a chunk at a time: every ticket
/// gets its Bug, the creates go out one `write_many` per chunk, and the next round has nothing
/// left to do.
#[tokio::test]
async fn a_page_is_worked_on_a_chunk_at_a_time() {
    let (clock, ops_inner, dev_inner) = backends();
    let ops = Arc::new(RecordingRepository::new(ops_inner.clone()));
    let dev = Arc::new(RecordingRepository::new(dev_inner.clone()));
    let pair = pair_of(ops.clone(), dev.clone()).with_options(
        SyncOptions::default()
            .page_size(100)
            .chunk_size(7)
            .comments(false)
            .attachments(false),
    );
    let mut ids = Vec::new();
    for i in 0..30 {
        clock.advance(std::time::Duration::from_secs(1));
        let t = ops_inner
            .create(
                &incident(),
                &software(&format!("Ticket {i}")),
                &CreateOptions::default(),
            )
            .await
            .unwrap();
        ids.push(t.id);
    }
    ops.clear();
    dev.clear();
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    assert_eq!(r.created.right, 30, "{r}");
    // One page read of the tickets (and the read that finds nothing after it).
    assert!(ops.count(Operation::Changes) <= 3, "{:?}", ops.calls());
    assert_eq!(
        dev.count(Operation::WriteMany),
        30usize.div_ceil(7),
        "{:?}",
        dev.calls()
    );
    for id in &ids {
        assert!(pair.link_of(Side::Left, id).await.unwrap().is_some());
    }
    clock.advance(std::time::Duration::from_secs(2));
    let again = pair.run_once().await;
    assert!(again.is_complete() && again.writes() == 0, "{again}");
}

#[tokio::test]
async fn a_built_pair_with_a_misspelt_field_fails_before_any_round() {
    let (_clock, ops, dev) = backends();
    let typo = SPEC.replace("right = \"Description\"", "right = \"Descripton\"");
    let e = SyncPair::builder()
        .left(ops.clone())
        .right(dev.clone())
        .mapping(Mapping::from_toml_str(&typo).unwrap())
        .store(Arc::new(MemoryStore::new()))
        .build()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("Descripton"), "{e}");
    assert_eq!(e.field().map(|f| f.as_str()), Some("Descripton"), "{e:?}");
}

#[tokio::test]
async fn a_built_pair_with_its_sides_swapped_fails_before_any_round() {
    let (_clock, ops, dev) = backends();
    let e = SyncPair::builder()
        .left(dev.clone())
        .right(ops.clone())
        .mapping(Mapping::from_toml_str(SPEC).unwrap())
        .store(Arc::new(MemoryStore::new()))
        .build()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("incident"), "{e}");
    // Named the other way round, the spec's types disagree with the builder's.
    let e = SyncPair::builder()
        .left(ops)
        .right(dev)
        .left_type("Bug")
        .mapping(Mapping::from_toml_str(SPEC).unwrap())
        .store(Arc::new(MemoryStore::new()))
        .build()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(
        e.to_string().contains("`Bug`") && e.to_string().contains("`incident`"),
        "{e}"
    );
}

#[tokio::test]
async fn the_builder_names_what_is_missing() {
    let (_clock, ops, dev) = backends();
    let e = SyncPair::builder()
        .left(ops)
        .right(dev)
        .mapping(Mapping::from_toml_str(SPEC).unwrap())
        .build()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains(".store"), "{e}");
}

#[tokio::test]
async fn a_built_pair_runs_with_the_names_and_options_it_was_given() {
    let (clock, ops, dev) = backends();
    let pair = SyncPair::builder()
        .left(ops.clone())
        .right(dev.clone())
        .mapping(Mapping::from_toml_str(SPEC).unwrap())
        .store(Arc::new(MemoryStore::new()))
        .id("ops-dev")
        .holder("worker-1")
        .options(SyncOptions::default().comments(false))
        .build()
        .await
        .unwrap();
    assert_eq!((pair.id(), pair.holder()), ("ops-dev", "worker-1"));
    clock.advance(std::time::Duration::from_secs(1));
    ops.create(&incident(), &software("Built"), &CreateOptions::default())
        .await
        .unwrap();
    let r = pair.run_once().await;
    assert!(r.is_complete() && r.created.right == 1, "{r}");
    // The Bug's workflow was read while building: the new Bug's state reaches the ticket.
    assert_eq!(r.updated.left, 1, "{r}");
}

/// Counts what the observer is told, and ends the job after `stop_after` pages.
#[derive(Default)]
struct Watcher {
    pages: std::sync::Mutex<Vec<workbridge_sync::PageDone>>,
    items: std::sync::Mutex<Vec<workbridge_sync::ItemDone>>,
    stop_after: Option<usize>,
}

impl workbridge_sync::Observer for Watcher {
    fn page(&self, page: &workbridge_sync::PageDone) -> std::ops::ControlFlow<()> {
        let mut pages = self.pages.lock().unwrap();
        pages.push(page.clone());
        if self.stop_after.is_some_and(|n| pages.len() >= n) {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    }
    fn item(&self, item: &workbridge_sync::ItemDone) {
        self.items.lock().unwrap().push(item.clone());
    }
}

#[tokio::test]
async fn an_observer_sees_each_page_and_item_and_can_end_the_round_between_pages() {
    use workbridge_sync::ItemOutcome;
    let (clock, ops, dev) = backends();
    let mut tickets = Vec::new();
    for n in 0..5 {
        clock.advance(std::time::Duration::from_secs(1));
        tickets.push(
            ops.create(
                &incident(),
                &software(&format!("Ticket {n}")),
                &CreateOptions::default(),
            )
            .await
            .unwrap()
            .id,
        );
    }
    clock.advance(std::time::Duration::from_secs(1));
    let out_of_scope = ops
        .create(
            &incident(),
            &FieldMap::new().with("category", "hardware"),
            &CreateOptions::default(),
        )
        .await
        .unwrap()
        .id;
    let store = Arc::new(MemoryStore::new());
    let stopping = Arc::new(Watcher {
        stop_after: Some(1),
        ..Watcher::default()
    });
    let pair = SyncPair::new(
        ops.clone(),
        dev.clone(),
        Mapping::from_toml_str(SPEC).unwrap(),
        store.clone(),
    )
    .unwrap()
    .with_id("p")
    .with_options(SyncOptions::default().page_size(2))
    .with_observer(stopping.clone());
    // Ended after the first page of two tickets: those two have Bugs, the rest wait.
    let r = pair.run_once().await;
    assert!(
        r.interrupted && !r.is_complete() && r.stopped.is_none(),
        "{r}"
    );
    assert!(r.to_string().contains("ended between pages"), "{r}");
    assert_eq!(r.created.right, 2, "{r}");
    assert_eq!(dev.len(&bug()), 2);
    {
        let pages = stopping.pages.lock().unwrap();
        assert_eq!(pages.len(), 1);
        assert_eq!(
            (pages[0].side, pages[0].items, pages[0].more),
            (Side::Left, 2, true)
        );
    }
    // The next round resumes from the committed cursor: every ticket once, nothing twice.
    let watching = Arc::new(Watcher::default());
    let pair = SyncPair::new(
        ops.clone(),
        dev.clone(),
        Mapping::from_toml_str(SPEC).unwrap(),
        store.clone(),
    )
    .unwrap()
    .with_id("p")
    .with_options(SyncOptions::default().page_size(2))
    .with_observer(watching.clone());
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    assert_eq!(dev.len(&bug()), 5, "no duplicate, none missing");
    let items = watching.items.lock().unwrap();
    assert!(
        items
            .iter()
            .any(|i| i.id == out_of_scope && i.outcome == ItemOutcome::Ignored)
    );
    for t in &tickets[2..] {
        assert!(
            items
                .iter()
                .any(|i| i.side == Side::Left && &i.id == t && i.outcome == ItemOutcome::Synced),
            "{items:?}"
        );
    }
    let pages = watching.pages.lock().unwrap();
    assert!(pages.iter().any(|p| p.side == Side::Right), "{pages:?}");
    assert!(pages.last().is_some_and(|p| !p.more));
}

/// A memory store that counts the steps the kernel asks of it.
#[derive(Debug, Default)]
struct CountingStore {
    inner: Arc<MemoryStore>,
    link_saves: std::sync::atomic::AtomicUsize,
    batch_saves: std::sync::atomic::AtomicUsize,
    leases: std::sync::atomic::AtomicUsize,
    /// When set, the next `links_of` by that side's ids reads the links, then stalls this long
    /// before answering: a worker paused (a held request, a busy machine) between reading and
    /// acting.
    stall_links: std::sync::Mutex<Option<(Side, std::time::Duration)>>,
    /// Told when a stall begins.
    stalled: tokio::sync::Notify,
}

impl CountingStore {
    /// Counts the steps asked of a store other workers share.
    fn over(inner: Arc<MemoryStore>) -> Self {
        CountingStore {
            inner,
            ..Default::default()
        }
    }
    fn counts(&self) -> (usize, usize, usize) {
        use std::sync::atomic::Ordering::SeqCst;
        (
            self.link_saves.load(SeqCst),
            self.batch_saves.load(SeqCst),
            self.leases.load(SeqCst),
        )
    }
    fn reset(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.link_saves.store(0, SeqCst);
        self.batch_saves.store(0, SeqCst);
        self.leases.store(0, SeqCst);
    }
}

type R<T> = workbridge_core::Result<T>;

#[async_trait::async_trait]
impl StateStore for CountingStore {
    async fn link(&self, p: &str, s: Side, id: &ItemId) -> R<Option<workbridge_sync::Link>> {
        self.inner.link(p, s, id).await
    }
    async fn save_link(&self, p: &str, l: &workbridge_sync::Link) -> R<()> {
        self.link_saves
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.save_link(p, l).await
    }
    async fn links_of(
        &self,
        p: &str,
        s: Side,
        ids: &[ItemId],
    ) -> R<Vec<Option<workbridge_sync::Link>>> {
        let links = self.inner.links_of(p, s, ids).await;
        let stall = {
            let mut at = self.stall_links.lock().unwrap();
            at.filter(|(side, _)| *side == s).and_then(|_| at.take())
        };
        if let Some((_, d)) = stall {
            self.stalled.notify_one();
            tokio::time::sleep(d).await;
        }
        links
    }
    async fn save_links(
        &self,
        p: &str,
        links: &[workbridge_sync::Link],
        done: &[(Side, ItemId)],
    ) -> R<()> {
        self.batch_saves
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.save_links(p, links, done).await
    }
    async fn retire_link(&self, p: &str, l: &workbridge_sync::Link) -> R<()> {
        self.inner.retire_link(p, l).await
    }
    async fn links(&self, p: &str) -> R<Vec<workbridge_sync::Link>> {
        self.inner.links(p).await
    }
    async fn cursor(&self, p: &str, s: Side) -> R<Option<workbridge_core::Cursor>> {
        self.inner.cursor(p, s).await
    }
    async fn save_cursor(&self, p: &str, s: Side, c: &workbridge_core::Cursor) -> R<()> {
        self.inner.save_cursor(p, s, c).await
    }
    async fn park(&self, p: &str, x: &workbridge_sync::Parked) -> R<()> {
        self.inner.park(p, x).await
    }
    async fn unpark(&self, p: &str, s: Side, id: &ItemId) -> R<()> {
        self.inner.unpark(p, s, id).await
    }
    async fn parked(&self, p: &str) -> R<Vec<workbridge_sync::Parked>> {
        self.inner.parked(p).await
    }
    async fn copied(&self, p: &str, k: workbridge_sync::Copied, s: Side, id: &str) -> R<bool> {
        self.inner.copied(p, k, s, id).await
    }
    async fn record_copy(
        &self,
        p: &str,
        k: workbridge_sync::Copied,
        s: Side,
        a: &str,
        b: &str,
    ) -> R<()> {
        self.inner.record_copy(p, k, s, a, b).await
    }
    async fn acquire_lease(&self, p: &str, h: &str, ttl: std::time::Duration) -> R<bool> {
        self.leases
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.acquire_lease(p, h, ttl).await
    }
    async fn release_lease(&self, p: &str, h: &str) -> R<()> {
        self.inner.release_lease(p, h).await
    }
    async fn save_intents(&self, p: &str, i: &[workbridge_sync::CreateIntent]) -> R<()> {
        self.inner.save_intents(p, i).await
    }
    async fn intent(
        &self,
        p: &str,
        s: Side,
        id: &ItemId,
    ) -> R<Option<workbridge_sync::CreateIntent>> {
        self.inner.intent(p, s, id).await
    }
    async fn clear_intent(&self, p: &str, s: Side, id: &ItemId) -> R<()> {
        self.inner.clear_intent(p, s, id).await
    }
}

/// A page of edits costs the store a fixed number of steps, not a transaction (and a lease
/// renewal) per item: the merged links are stored together.
#[tokio::test]
async fn a_page_of_merges_stores_its_links_in_one_step() {
    let (clock, ops, dev) = backends();
    let store = Arc::new(CountingStore::default());
    let pair = SyncPair::new(
        ops.clone(),
        dev.clone(),
        Mapping::from_toml_str(SPEC).unwrap(),
        store.clone(),
    )
    .unwrap();
    let mut tickets = Vec::new();
    for n in 0..40 {
        clock.advance(std::time::Duration::from_secs(1));
        let t = ops
            .create(
                &incident(),
                &software(&format!("Ticket {n}")),
                &CreateOptions::default(),
            )
            .await
            .unwrap();
        tickets.push(t.id);
    }
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    assert_eq!(r.created.right, 40, "{r}");
    assert_eq!(store.counts().0, 0, "no link stored on its own");
    clock.advance(std::time::Duration::from_secs(1));
    for t in &tickets {
        ops.update(
            &incident(),
            t,
            &FieldMap::new().with("short_description", "Edited by Ops"),
            &Default::default(),
        )
        .await
        .unwrap();
    }
    store.reset();
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    assert_eq!(r.updated.right, 40, "{r}");
    let (single, batches, leases) = store.counts();
    assert_eq!(single, 0, "no link stored on its own");
    // The pending writes, then the merged links.
    assert!(batches <= 3, "{batches} batch saves");
    assert!(leases <= 10, "{leases} lease renewals for 40 merges");
    for t in &tickets {
        let link = pair.link_of(Side::Left, t).await.unwrap().unwrap();
        let b = dev.get(&bug(), &link.right).await.unwrap();
        assert_eq!(text(&b, "System.Title"), Some("Edited by Ops"));
    }
    assert_eq!(pair.run_once().await.writes(), 0);
}

/// Worker A reads a Bug's resolution and the links of its page, then stalls past its lease;
/// worker B takes the pair, writes the resolution to the ticket and stores the link. A, back,
/// finds its lease gone and writes nothing — but it stored the links as it had read them, under
/// the lease it took again, over B's: the link said the ticket did not show the resolution.
/// The next round took the resolution on the ticket for the ticket's own and the Bug's known
/// state for current, and Dev's reopening never reached the ticket (two workers on PostgreSQL:
/// "Bug Active, ticket says Fixed"). A job whose lease ran out stores nothing more.
#[tokio::test]
async fn a_worker_whose_lease_ran_out_does_not_store_what_it_read_before() {
    let (clock, ops, dev) = backends();
    let shared = Arc::new(MemoryStore::new());
    let a_store = Arc::new(CountingStore::over(shared.clone()));
    let options = SyncOptions::default()
        .lease_ttl(std::time::Duration::from_millis(300))
        .comments(false)
        .attachments(false);
    let worker = |store: Arc<dyn StateStore>, holder: &str| {
        SyncPair::new(
            ops.clone(),
            dev.clone(),
            Mapping::from_toml_str(SPEC).unwrap(),
            store,
        )
        .unwrap()
        .with_holder(holder)
        .with_options(options.clone())
    };
    let a = Arc::new(worker(a_store.clone(), "worker-a"));
    let b = worker(shared.clone(), "worker-b");
    clock.advance(std::time::Duration::from_secs(1));
    let t = ops
        .create(
            &incident(),
            &software("Checkout fails"),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    assert!(a.run_once().await.is_complete());
    let bug_id = a.link_of(Side::Left, &t.id).await.unwrap().unwrap().right;
    let move_bug = |state: &'static str| {
        let (clock, dev, bug_id) = (clock.clone(), dev.clone(), bug_id.clone());
        async move {
            clock.advance(std::time::Duration::from_secs(1));
            dev.update(
                &bug(),
                &bug_id,
                &FieldMap::new().with("System.State", state),
                &Default::default(),
            )
            .await
            .unwrap();
        }
    };
    move_bug("Active").await;
    assert!(a.run_once().await.is_complete());
    move_bug("Resolved").await;
    // A stalls after reading the links of the Bugs' page; B runs meanwhile.
    *a_store.stall_links.lock().unwrap() =
        Some((Side::Right, std::time::Duration::from_millis(800)));
    let a_round = tokio::spawn({
        let a = a.clone();
        async move { a.run_once().await }
    });
    a_store.stalled.notified().await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let rb = b.run_once().await;
    assert!(rb.is_complete(), "worker B: {rb}");
    assert_eq!(
        rb.updated.left, 1,
        "B wrote the resolution to the ticket: {rb}"
    );
    let ra = a_round.await.unwrap();
    assert!(!ra.is_complete(), "worker A stopped: {ra}");
    assert_eq!(ra.writes(), 0, "worker A wrote nothing: {ra}");
    let ticket = ops.get(&incident(), &t.id).await.unwrap();
    let link = b.link_of(Side::Left, &t.id).await.unwrap().unwrap();
    assert_eq!(
        link.left_version.as_ref(),
        Some(&ticket.version),
        "the link knows the ticket as B wrote it"
    );
    // Dev reopens the Bug: the ticket follows.
    move_bug("Active").await;
    for _ in 0..2 {
        assert!(b.run_once().await.is_complete());
    }
    let ticket = ops.get(&incident(), &t.id).await.unwrap();
    assert_eq!(text(&ticket, "u_dev_status"), Some("Active"));
}

/// Edits a ticket once, when the first page is done: by then the next page, which holds the
/// ticket as it was, has been read ahead.
struct EditAfterFirstPage {
    ops: Arc<InMemoryRepository>,
    clock: ManualClock,
    ticket: ItemId,
    done: std::sync::atomic::AtomicBool,
}

impl workbridge_sync::Observer for EditAfterFirstPage {
    fn page(&self, _: &workbridge_sync::PageDone) -> std::ops::ControlFlow<()> {
        if !self.done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.clock.advance(std::time::Duration::from_secs(1));
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(self.ops.update(
                    &incident(),
                    &self.ticket,
                    &FieldMap::new().with("short_description", "Edited while read ahead"),
                    &Default::default(),
                ))
            })
            .unwrap();
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// A page read ahead holds an item as it was before an edit made while the page before was
/// worked on: the item is merged from that page, and the edit — later in the scan — reaches
/// the twin all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_made_after_its_page_was_read_ahead_still_reaches_the_twin() {
    let (clock, ops, dev) = backends();
    let mut tickets = Vec::new();
    for n in 0..6 {
        clock.advance(std::time::Duration::from_secs(1));
        tickets.push(
            ops.create(
                &incident(),
                &software(&format!("Ticket {n}")),
                &CreateOptions::default(),
            )
            .await
            .unwrap()
            .id,
        );
    }
    let pair = pair_of(ops.clone(), dev.clone())
        .with_options(
            SyncOptions::default()
                .page_size(2)
                .comments(false)
                .attachments(false),
        )
        .with_observer(Arc::new(EditAfterFirstPage {
            ops: ops.clone(),
            clock: clock.clone(),
            ticket: tickets[3].clone(),
            done: std::sync::atomic::AtomicBool::new(false),
        }));
    for _ in 0..2 {
        assert!(pair.run_once().await.is_complete());
    }
    let link = pair
        .link_of(Side::Left, &tickets[3])
        .await
        .unwrap()
        .unwrap();
    let bug_item = dev.get(&bug(), &link.right).await.unwrap();
    assert_eq!(
        text(&bug_item, "System.Title"),
        Some("Edited while read ahead")
    );
    assert_eq!(dev.len(&bug()), 6, "no duplicate");
    assert_eq!(pair.run_once().await.writes(), 0);
}
