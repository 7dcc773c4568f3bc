use std::sync::Arc;

use workbridge_core::{
    CreateOptions, Cursor, FieldMap, FieldValue, InMemoryRepository, ItemId, ItemType, Repository,
};
use workbridge_mapping::Mapping;
use workbridge_sync::{
    Copied, CreateIntent, Link, MemoryStore, Parked, Side, SqliteStore, StateStore, SyncPair,
};

fn link(l: &str, r: &str) -> Link {
    Link {
        left: ItemId::new(l),
        right: ItemId::new(r),
        key: format!("wb:incident:{l}").into(),
        left_version: Some("1".into()),
        right_version: None,
        left_baseline: FieldMap::new().with("short_description", "x"),
        right_baseline: FieldMap::new(),
        pending: None,
        left_held: false,
        right_held: true,
    }
}

pub(crate) async fn contract(s: &dyn StateStore) {
    let p = "pair";
    intents(s).await;
    batches(s).await;
    // Comment origins are shared by every pair of the store.
    assert!(
        s.comment_origin("sn|incident|1|c9")
            .await
            .unwrap()
            .is_none()
    );
    s.record_comment_origin("ado|Bug|7|c2", "ado|Bug|7", "sn|incident|1|c1")
        .await
        .unwrap();
    s.record_comment_origin("alm|defects|3|c4", "alm|defects|3", "sn|incident|1|c1")
        .await
        .unwrap();
    assert_eq!(
        s.comment_origin("ado|Bug|7|c2").await.unwrap().as_deref(),
        Some("sn|incident|1|c1")
    );
    assert_eq!(
        s.comment_origins_on("alm|defects|3").await.unwrap(),
        ["sn|incident|1|c1"]
    );
    assert!(
        s.comment_origins_on("sn|incident|1")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.link(p, Side::Left, &ItemId::new("a"))
            .await
            .unwrap()
            .is_none()
    );
    s.save_link(p, &link("a", "1")).await.unwrap();
    s.save_link("other", &link("a", "9")).await.unwrap();
    assert_eq!(
        s.link(p, Side::Right, &ItemId::new("1")).await.unwrap(),
        Some(link("a", "1"))
    );
    assert_eq!(
        s.link(p, Side::Left, &ItemId::new("a")).await.unwrap(),
        Some(link("a", "1"))
    );
    assert_eq!(s.links(p).await.unwrap().len(), 1, "pairs are kept apart");
    s.retire_link(p, &link("a", "1")).await.unwrap();
    assert!(
        s.link(p, Side::Right, &ItemId::new("1"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.cursor(p, Side::Left).await.unwrap().is_none());
    let c = Cursor::at(chrono::Utc::now(), ItemId::new("7")).with_token("t");
    s.save_cursor(p, Side::Left, &c).await.unwrap();
    assert_eq!(s.cursor(p, Side::Left).await.unwrap(), Some(c));
    assert!(s.cursor(p, Side::Right).await.unwrap().is_none());
    let parked = Parked {
        side: Side::Right,
        id: ItemId::new("5"),
        error: "bad".into(),
        attempts: 1,
        at: chrono::Utc::now(),
        temporary: false,
    };
    s.park(p, &parked).await.unwrap();
    s.park(p, &parked).await.unwrap();
    assert_eq!(s.parked(p).await.unwrap()[0].attempts, 2);
    s.unpark(p, Side::Right, &ItemId::new("5")).await.unwrap();
    assert!(s.parked(p).await.unwrap().is_empty());
    s.record_copy(p, Copied::Comment, Side::Left, "c1", "c9")
        .await
        .unwrap();
    assert!(
        s.copied(p, Copied::Comment, Side::Left, "c1")
            .await
            .unwrap()
    );
    assert!(
        s.copied(p, Copied::Comment, Side::Right, "c9")
            .await
            .unwrap()
    );
    assert!(
        !s.copied(p, Copied::Attachment, Side::Left, "c1")
            .await
            .unwrap()
    );
}

/// Links read and stored by the page: answers in the order asked (repeats and unknown ids
/// included), a stored link replacing the one that held either id, and the intents of the
/// linked sources gone in the same step.
async fn batches(s: &dyn StateStore) {
    let p = "batch";
    let intent = |id: &str| CreateIntent {
        side: Side::Left,
        source: ItemId::new(id),
        key: format!("wb:incident:{id}").into(),
        source_baseline: FieldMap::new(),
        sent: FieldMap::new(),
        at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        run: "run-1".to_owned(),
    };
    s.save_intents(p, &[intent("b1"), intent("b2"), intent("b3")])
        .await
        .unwrap();
    s.save_link(p, &link("b3", "old")).await.unwrap();
    s.save_links(
        p,
        &[link("b1", "11"), link("b2", "12"), link("b4", "old")],
        &[
            (Side::Left, ItemId::new("b1")),
            (Side::Left, ItemId::new("b2")),
        ],
    )
    .await
    .unwrap();
    let ids = ["b2", "nope", "b1", "b2", "b3", "b4"].map(ItemId::new);
    let got = s.links_of(p, Side::Left, &ids).await.unwrap();
    assert_eq!(
        got,
        [
            Some(link("b2", "12")),
            None,
            Some(link("b1", "11")),
            Some(link("b2", "12")),
            None,
            Some(link("b4", "old")),
        ],
        "b3's link gave its right id to b4's"
    );
    let by_right = s
        .links_of(p, Side::Right, &["12", "old", "13"].map(ItemId::new))
        .await
        .unwrap();
    assert_eq!(
        by_right,
        [Some(link("b2", "12")), Some(link("b4", "old")), None]
    );
    assert!(s.links_of(p, Side::Left, &[]).await.unwrap().is_empty());
    for (id, kept) in [("b1", false), ("b2", false), ("b3", true)] {
        assert_eq!(
            s.intent(p, Side::Left, &ItemId::new(id))
                .await
                .unwrap()
                .is_some(),
            kept,
            "intent of {id}"
        );
    }
    s.save_links(p, &[], &[]).await.unwrap();
}

/// Intents are kept per pair, side and source item, replaced by a newer one, and cleared.
async fn intents(s: &dyn StateStore) {
    let intent = |id: &str, title: &str| CreateIntent {
        side: Side::Left,
        source: ItemId::new(id),
        key: format!("wb:incident:{id}").into(),
        source_baseline: FieldMap::new().with("short_description", title),
        sent: FieldMap::new().with("System.Title", title),
        at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        run: "run-1".to_owned(),
    };
    let a = ItemId::new("ia");
    assert!(s.intent("pair", Side::Left, &a).await.unwrap().is_none());
    s.save_intents("pair", &[intent("ia", "one"), intent("ib", "two")])
        .await
        .unwrap();
    s.save_intents("other", &[intent("ia", "elsewhere")])
        .await
        .unwrap();
    s.save_intents("pair", &[intent("ia", "one, again")])
        .await
        .unwrap();
    assert_eq!(
        s.intent("pair", Side::Left, &a).await.unwrap(),
        Some(intent("ia", "one, again"))
    );
    assert!(s.intent("pair", Side::Right, &a).await.unwrap().is_none());
    s.clear_intent("pair", Side::Left, &a).await.unwrap();
    assert!(s.intent("pair", Side::Left, &a).await.unwrap().is_none());
    assert_eq!(
        s.intent("other", Side::Left, &a).await.unwrap(),
        Some(intent("ia", "elsewhere"))
    );
    assert!(
        s.intent("pair", Side::Left, &ItemId::new("ib"))
            .await
            .unwrap()
            .is_some()
    );
    s.save_intents("pair", &[]).await.unwrap();
}

fn temp_db(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("workbridge-sync-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("state.db")
}

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    contract(&MemoryStore::new()).await;
}

#[tokio::test]
async fn sqlite_store_keeps_the_contract_and_survives_reopening() {
    let path = temp_db("contract");
    contract(&SqliteStore::open(&path).unwrap()).await;
    let again = SqliteStore::open(&path).unwrap();
    assert!(
        again
            .copied("pair", Copied::Comment, Side::Left, "c1")
            .await
            .unwrap(),
        "state persisted"
    );
    assert!(again.cursor("pair", Side::Left).await.unwrap().is_some());
    assert!(format!("{again:?}").contains("state.db"));
}

#[tokio::test]
async fn a_restarted_process_continues_from_the_sqlite_store() {
    let path = temp_db("restart");
    let mapping = "left = \"incident\"\nright = \"Bug\"\n[create]\nleft_to_right = true\n[[field]]\nleft = \"short_description\"\nright = \"System.Title\"\n";
    let ops = Arc::new(InMemoryRepository::new("ops"));
    let dev = Arc::new(InMemoryRepository::new("dev"));
    let t = ops
        .create(
            &ItemType::new("incident"),
            &FieldMap::new().with("short_description", "A"),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    {
        let pair = SyncPair::new(
            ops.clone(),
            dev.clone(),
            Mapping::from_toml_str(mapping).unwrap(),
            Arc::new(SqliteStore::open(&path).unwrap()),
        )
        .unwrap();
        assert_eq!(pair.run_once().await.created.right, 1);
    }
    let pair = SyncPair::new(
        ops.clone(),
        dev.clone(),
        Mapping::from_toml_str(mapping).unwrap(),
        Arc::new(SqliteStore::open(&path).unwrap()),
    )
    .unwrap();
    let r = pair.run_once().await;
    assert_eq!(r.writes(), 0, "{r}");
    assert_eq!(dev.len(&ItemType::new("Bug")), 1);
    assert!(pair.link_of(Side::Left, &t.id).await.unwrap().is_some());
}

#[tokio::test]
async fn a_pair_whose_lease_another_worker_holds_does_not_run() {
    let store = Arc::new(MemoryStore::new());
    let mapping = "left = \"incident\"\nright = \"Bug\"\n[create]\nleft_to_right = true\n[[field]]\nleft = \"short_description\"\nright = \"System.Title\"\n";
    let ops = Arc::new(InMemoryRepository::new("ops"));
    let dev = Arc::new(InMemoryRepository::new("dev"));
    ops.create(
        &ItemType::new("incident"),
        &FieldMap::new().with("short_description", "A"),
        &CreateOptions::default(),
    )
    .await
    .unwrap();
    let pair = SyncPair::new(
        ops.clone(),
        dev.clone(),
        Mapping::from_toml_str(mapping).unwrap(),
        store.clone(),
    )
    .unwrap()
    .with_id("p");
    assert!(
        store
            .acquire_lease("p", "another-worker", std::time::Duration::from_secs(3600))
            .await
            .unwrap()
    );
    let r = pair.run_once().await;
    let e = r.stopped.expect("stopped");
    assert_eq!(e.kind(), workbridge_core::ErrorKind::Conflict);
    assert!(e.is_temporary());
    assert_eq!(dev.len(&ItemType::new("Bug")), 0, "nothing was done");
    store.release_lease("p", "another-worker").await.unwrap();
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    assert_eq!(r.created.right, 1);
    // The round gave its lease up: another worker can take the pair now.
    assert!(
        store
            .acquire_lease("p", "another-worker", std::time::Duration::from_secs(1))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_restarted_worker_takes_its_own_lease_back_at_once() {
    // A process killed mid-round leaves its lease behind (ten minutes by default). The same
    // program started again on the same host holds it under the same name and runs at once;
    // a worker elsewhere still waits.
    let store = Arc::new(MemoryStore::new());
    let mapping = "left = \"incident\"\nright = \"Bug\"\n[create]\nleft_to_right = true\n[[field]]\nleft = \"short_description\"\nright = \"System.Title\"\n";
    let ops = Arc::new(InMemoryRepository::new("ops"));
    let dev = Arc::new(InMemoryRepository::new("dev"));
    ops.create(
        &ItemType::new("incident"),
        &FieldMap::new().with("short_description", "A"),
        &CreateOptions::default(),
    )
    .await
    .unwrap();
    let make = || {
        SyncPair::new(
            ops.clone(),
            dev.clone(),
            Mapping::from_toml_str(mapping).unwrap(),
            store.clone(),
        )
        .unwrap()
        .with_id("p")
    };
    let before_the_crash = make();
    assert!(
        store
            .acquire_lease(
                "p",
                before_the_crash.holder(),
                std::time::Duration::from_secs(600)
            )
            .await
            .unwrap()
    );
    drop(before_the_crash);
    let elsewhere = make().with_holder("another-host/service");
    let r = elsewhere.run_once().await;
    assert_eq!(
        r.stopped.as_ref().map(workbridge_core::Error::kind),
        Some(workbridge_core::ErrorKind::Conflict),
        "{r}"
    );
    let restarted = make();
    let r = restarted.run_once().await;
    assert!(r.is_complete(), "{r}");
    assert_eq!(r.created.right, 1);
}

#[test]
fn a_store_from_a_newer_version_is_refused() {
    let path = temp_db("newer");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let e = SqliteStore::open(&path).unwrap_err();
    assert!(e.message().contains("newer"), "{e}");
}

/// A state file of the schema before pairs were numbered, its links in the tagged form: it is
/// migrated when opened, its links are found by either side, and a link saved again is
/// written in the compact form, its pair by number.
#[tokio::test]
async fn a_store_of_the_previous_schema_is_migrated_and_its_links_read() {
    let path = temp_db("previous-schema");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE links (pair TEXT NOT NULL, left_id TEXT NOT NULL, right_id TEXT NOT NULL, link TEXT NOT NULL, PRIMARY KEY (pair, left_id));
             CREATE UNIQUE INDEX links_by_right ON links (pair, right_id);
             CREATE TABLE cursors (pair TEXT NOT NULL, side TEXT NOT NULL, cursor TEXT NOT NULL, PRIMARY KEY (pair, side));
             CREATE TABLE parked (pair TEXT NOT NULL, side TEXT NOT NULL, id TEXT NOT NULL, parked TEXT NOT NULL, PRIMARY KEY (pair, side, id));
             CREATE TABLE copied (pair TEXT NOT NULL, kind TEXT NOT NULL, side TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (pair, kind, side, id));
             CREATE TABLE leases (pair TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_ms INTEGER NOT NULL);
             CREATE TABLE intents (pair TEXT NOT NULL, side TEXT NOT NULL, id TEXT NOT NULL, intent TEXT NOT NULL, PRIMARY KEY (pair, side, id));
             CREATE TABLE comment_origins (copy TEXT PRIMARY KEY, item TEXT NOT NULL, origin TEXT NOT NULL);
             CREATE INDEX comment_origins_by_item ON comment_origins (item);
             PRAGMA user_version = 4;",
        )
        .unwrap();
        for (pair, left, right) in [("ops↔dev", "INC1", "7"), ("ops↔qa", "INC1", "D9")] {
            let link = format!(
                r#"{{"left":"{left}","right":"{right}","key":"wb:{left}","left_version":"3","right_version":"2","left_baseline":{{"priority":{{"type":"choice","value":"2"}},"short_description":{{"type":"text","value":"Printer"}}}},"right_baseline":{{"System.Title":{{"type":"text","value":"Printer"}},"System.Id":{{"type":"int","value":7}}}}}}"#
            );
            conn.execute(
                "INSERT INTO links VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![pair, left, right, link],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(&path).unwrap();
    let by_left = store
        .link("ops↔dev", Side::Left, &ItemId::from("INC1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_left.right, ItemId::from("7"));
    // Stored before baselines were marked exact: not taken for the items as they are.
    assert!(!by_left.exact(Side::Left) && !by_left.exact(Side::Right));
    assert_eq!(
        by_left.left_baseline.get("priority"),
        Some(&FieldValue::Choice("2".into()))
    );
    assert_eq!(
        by_left.right_baseline.get("System.Id"),
        Some(&FieldValue::Int(7))
    );
    let by_right = store
        .link("ops↔qa", Side::Right, &ItemId::from("D9"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_right.left, ItemId::from("INC1"));
    assert_eq!(store.links("ops↔dev").await.unwrap(), vec![by_left.clone()]);
    store.save_link("ops↔dev", &by_left).await.unwrap();
    assert_eq!(
        store
            .link("ops↔dev", Side::Right, &ItemId::from("7"))
            .await
            .unwrap(),
        Some(by_left)
    );
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (pair, json): (i64, String) = conn
        .query_row(
            "SELECT pair, link FROM links WHERE left_id = 'INC1' AND right_id = '7'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(pair > 0);
    assert!(json.contains(r#""short_description":"Printer""#), "{json}");
    assert!(json.contains(r#""priority":{"choice":"2"}"#), "{json}");
}
