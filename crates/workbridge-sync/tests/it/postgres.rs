//! The PostgreSQL store against a real server: `.ci/run` starts one on 127.0.0.1 and names it in
//! `WORKBRIDGE_TEST_POSTGRES` (a libpq connection string to a database where this user may
//! create databases). Each test works in a database of its own.

use std::sync::Arc;

use workbridge_core::{CreateOptions, FieldMap, InMemoryRepository, ItemType, Repository};
use workbridge_mapping::Mapping;
use workbridge_sync::{PostgresStore, StateStore, SyncPair};

/// A fresh database, or `None` when no server is configured.
async fn fresh(name: &str) -> Option<String> {
    let Ok(base) = std::env::var("WORKBRIDGE_TEST_POSTGRES") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide WORKBRIDGE_TEST_POSTGRES"
        );
        return None;
    };
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("the test server is reachable");
    tokio::spawn(conn);
    let db = format!("wb_{name}_{}", std::process::id());
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .await
        .unwrap();
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    Some(format!("{base} dbname={db}"))
}

#[tokio::test]
async fn postgres_store_keeps_the_contract_and_leases() {
    let Some(url) = fresh("contract").await else {
        return;
    };
    let store = PostgresStore::connect(&url).await.unwrap();
    crate::stores::contract(&store).await;
    // A second worker connecting runs no migration twice and sees the same state.
    let other = PostgresStore::connect(&url).await.unwrap();
    assert!(
        other
            .copied(
                "pair",
                workbridge_sync::Copied::Comment,
                workbridge_sync::Side::Left,
                "c1"
            )
            .await
            .unwrap()
    );
    assert!(!format!("{store:?}").contains("password"));
}

#[tokio::test]
async fn two_workers_never_run_one_pair_at_once() {
    let Some(url) = fresh("workers").await else {
        return;
    };
    let mapping = "left = \"incident\"\nright = \"Bug\"\n[create]\nleft_to_right = true\n[[field]]\nleft = \"short_description\"\nright = \"System.Title\"\n";
    let ops = Arc::new(InMemoryRepository::new("ops"));
    let dev = Arc::new(InMemoryRepository::new("dev"));
    for i in 0..20 {
        ops.create(
            &ItemType::new("incident"),
            &FieldMap::new().with("short_description", format!("T{i}")),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    }
    let a = SyncPair::new(
        ops.clone(),
        dev.clone(),
        Mapping::from_toml_str(mapping).unwrap(),
        Arc::new(PostgresStore::connect(&url).await.unwrap()),
    )
    .unwrap()
    .with_id("shared")
    .with_holder("worker-a");
    let b = SyncPair::new(
        ops.clone(),
        dev.clone(),
        Mapping::from_toml_str(mapping).unwrap(),
        Arc::new(PostgresStore::connect(&url).await.unwrap()),
    )
    .unwrap()
    .with_id("shared")
    .with_holder("worker-b");
    let (ra, rb) = tokio::join!(a.run_once(), b.run_once());
    // Whichever ran, together they created each Bug once; one may have found the lease held.
    assert_eq!(ra.created.right + rb.created.right, 20, "a: {ra}\nb: {rb}");
    assert_eq!(dev.len(&ItemType::new("Bug")), 20);
    for r in [&ra, &rb] {
        if let Some(e) = &r.stopped {
            assert_eq!(e.kind(), workbridge_core::ErrorKind::Conflict, "{e}");
        }
    }
    assert_eq!(a.run_once().await.writes() + b.run_once().await.writes(), 0);
}

#[tokio::test]
async fn a_bad_connection_string_is_a_config_error_without_the_password() {
    let e = PostgresStore::connect("host=127.0.0.1 password=hunter2 port=notaport")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), workbridge_core::ErrorKind::Config);
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[tokio::test]
async fn workers_starting_together_on_a_fresh_database_all_migrate() {
    // Each round: a fresh database and eight workers connecting at once. Before the schema
    // table was created under the migration lock, one of them failed with a duplicate key in
    // pg_type_typname_nsp_index.
    for round in 0..4 {
        let Some(url) = fresh(&format!("race{round}")).await else {
            return;
        };
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { PostgresStore::connect(&url).await })
            })
            .collect();
        for w in workers {
            let store = w
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(store.links("pair").await.unwrap().is_empty());
        }
    }
}

#[tokio::test]
async fn a_database_error_says_what_the_server_said() {
    let Some(url) = fresh("detail").await else {
        return;
    };
    let store = PostgresStore::connect(&url).await.unwrap();
    // Break the schema under the store: the error must carry the server's message and code.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute("DROP TABLE workbridge_parked")
        .await
        .unwrap();
    let e = store.parked("pair").await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("workbridge_parked") && text.contains("42P01"),
        "{text}"
    );
}

/// Links stored by the schema before baselines were marked exact (ADR 0022) come back as not
/// exact: their twins are read before their next merge.
#[tokio::test]
async fn links_of_the_previous_schema_are_migrated_as_not_exact() {
    let Some(url) = fresh("previous").await else {
        return;
    };
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "CREATE TABLE workbridge_schema (version INTEGER NOT NULL);
             INSERT INTO workbridge_schema VALUES (3);
             CREATE TABLE workbridge_links (pair TEXT NOT NULL, left_id TEXT NOT NULL, right_id TEXT NOT NULL, link TEXT NOT NULL, PRIMARY KEY (pair, left_id));
             CREATE UNIQUE INDEX workbridge_links_by_right ON workbridge_links (pair, right_id);
             CREATE TABLE workbridge_cursors (pair TEXT NOT NULL, side TEXT NOT NULL, cursor TEXT NOT NULL, PRIMARY KEY (pair, side));
             CREATE TABLE workbridge_parked (pair TEXT NOT NULL, side TEXT NOT NULL, id TEXT NOT NULL, parked TEXT NOT NULL, PRIMARY KEY (pair, side, id));
             CREATE TABLE workbridge_copied (pair TEXT NOT NULL, kind TEXT NOT NULL, side TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (pair, kind, side, id));
             CREATE TABLE workbridge_leases (pair TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL);
             CREATE TABLE workbridge_intents (pair TEXT NOT NULL, side TEXT NOT NULL, id TEXT NOT NULL, intent TEXT NOT NULL, PRIMARY KEY (pair, side, id));
             CREATE TABLE workbridge_comment_origins (copy TEXT PRIMARY KEY, item TEXT NOT NULL, origin TEXT NOT NULL);
             CREATE INDEX workbridge_comment_origins_by_item ON workbridge_comment_origins (item);",
        )
        .await
        .unwrap();
    let link = r#"{"left":"INC1","right":"7","key":"wb:INC1","left_version":"3","right_version":"2","left_baseline":{"short_description":"Printer"},"right_baseline":{"System.Title":"Printer","System.Id":7}}"#;
    client
        .execute(
            "INSERT INTO workbridge_links VALUES ('p', 'INC1', '7', $1)",
            &[&link],
        )
        .await
        .unwrap();
    let store = PostgresStore::connect(&url).await.unwrap();
    let l = store
        .link("p", workbridge_sync::Side::Left, &"INC1".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(l.right_baseline.get("System.Id"), Some(&7.into()));
    assert!(!l.exact(workbridge_sync::Side::Left) && !l.exact(workbridge_sync::Side::Right));
}
