//! The wrappers' own behaviour.

use std::time::Duration;

use workbridge_core::wrappers::{
    FaultRepository, FaultRule, RecordingRepository, ThrottledRepository,
};
use workbridge_core::{
    CreateOptions, ErrorKind, FieldMap, InMemoryRepository, ItemType, Operation, Repository,
    RepositoryExt,
};

fn t() -> ItemType {
    ItemType::from("incident")
}

async fn create(
    repo: &dyn Repository,
    key: &str,
) -> workbridge_core::Result<workbridge_core::WorkItem> {
    repo.create(
        &t(),
        &FieldMap::new().with("title", key),
        &CreateOptions::default().correlation(key),
    )
    .await
}

#[tokio::test]
async fn reply_lost_performs_the_write_then_fails() {
    let repo = FaultRepository::new(InMemoryRepository::new("x"), 1).with_rule(
        FaultRule::new(ErrorKind::Unavailable)
            .on([Operation::Create])
            .nth(1)
            .reply_lost(),
    );
    let e = create(&repo, "k1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.is_temporary());
    assert_eq!(e.operation(), Some("create"));
    // The write happened: a careful caller finds it by correlation instead of creating again.
    let found = repo.find_by_correlation(&t(), &"k1".into()).await.unwrap();
    assert!(found.is_some());
    assert_eq!(repo.inner().len(&t()), 1);
    // Only the first create was failed.
    create(&repo, "k2").await.unwrap();
    assert_eq!(repo.injected(), 1);
}

#[tokio::test]
async fn failing_before_the_call_changes_nothing() {
    let repo = FaultRepository::new(InMemoryRepository::new("x"), 1).with_rule(
        FaultRule::new(ErrorKind::RateLimited)
            .on_writes()
            .retry_after(Duration::from_secs(7)),
    );
    let e = create(&repo, "k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(repo.inner().len(&t()), 0);
    // Reads still pass.
    assert!(repo.get_opt(&t(), &"1".into()).await.unwrap().is_none());
}

#[tokio::test]
async fn ratio_faults_repeat_with_the_seed() {
    async fn outcomes(seed: u64) -> Vec<bool> {
        let repo = FaultRepository::new(InMemoryRepository::new("x"), seed)
            .with_rule(FaultRule::new(ErrorKind::Unavailable).ratio(0.3));
        let mut v = Vec::new();
        for i in 0..200 {
            v.push(create(&repo, &format!("k{i}")).await.is_ok());
        }
        v
    }
    let a = outcomes(42).await;
    assert_eq!(a, outcomes(42).await, "same seed, same faults");
    assert_ne!(a, outcomes(43).await, "another seed, other faults");
    let failed = a.iter().filter(|ok| !**ok).count();
    assert!(
        (30..=90).contains(&failed),
        "about 30% of 200 fail, got {failed}"
    );
}

#[tokio::test]
async fn permanent_override() {
    let repo = FaultRepository::new(InMemoryRepository::new("x"), 1)
        .with_rule(FaultRule::new(ErrorKind::Unavailable).temporary(false));
    assert!(!create(&repo, "k").await.unwrap_err().is_temporary());
}

#[tokio::test]
async fn recording_logs_operations_ids_and_outcomes() {
    let repo = RecordingRepository::new(InMemoryRepository::new("x"));
    let item = create(&repo, "k").await.unwrap();
    repo.set_field(&t(), &item.id, "title", "new")
        .await
        .unwrap();
    let _ = repo.set_field(&t(), &"nope".into(), "title", "new").await;
    let calls = repo.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].op, Operation::Create);
    assert_eq!(calls[1].item_id.as_ref(), Some(&item.id));
    assert_eq!(calls[2].error, Some(ErrorKind::NotFound));
    assert_eq!(repo.writes(), 3);
    assert_eq!(repo.count(Operation::Update), 2);
    repo.clear();
    assert!(repo.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn throttled_adds_latency_and_limits_concurrency() {
    let repo = ThrottledRepository::new(InMemoryRepository::new("x"), Duration::from_millis(100))
        .max_concurrency(1);
    let start = tokio::time::Instant::now();
    let (a, b) = tokio::join!(create(&repo, "a"), create(&repo, "b"));
    a.unwrap();
    b.unwrap();
    // One at a time: two calls of 100 ms each.
    assert_eq!(start.elapsed(), Duration::from_millis(200));
}

#[test]
fn display_of_wrappers_names_the_backend() {
    let repo = RecordingRepository::new(FaultRepository::new(InMemoryRepository::new("ops"), 1));
    assert_eq!(repo.to_string(), "memory:ops");
    assert!(format!("{repo:?}").contains("RecordingRepository"));
}

/// A wrapper passes a batched correlation lookup through as one call: wrapped, an adapter keeps
/// answering many keys in one request instead of one request per key.
#[tokio::test]
async fn a_batched_correlation_lookup_stays_one_call_through_the_wrappers() {
    let inner = std::sync::Arc::new(RecordingRepository::new(InMemoryRepository::new("x")));
    let stack = RecordingRepository::new(FaultRepository::new(
        ThrottledRepository::new(inner.clone(), Duration::from_millis(0)),
        1,
    ));
    let keys: Vec<workbridge_core::CorrelationKey> =
        ["a", "b", "c"].iter().map(|k| (*k).into()).collect();
    let found = stack.find_many_by_correlation(&t(), &keys).await.unwrap();
    assert_eq!(found.len(), 3);
    assert_eq!(inner.count(Operation::FindManyByCorrelation), 1);
    assert_eq!(inner.count(Operation::FindByCorrelation), 0);
    let outer = stack.calls();
    assert_eq!(outer.len(), 1);
    assert_eq!(outer[0].count, 3);
}
