//! One item another client holds does not hold up the others: a defect locked in HP ALM is
//! parked for the round and tried again by the next ones on its own, until the lock is gone.

use std::sync::Arc;

use workbridge::sync::{MemoryStore, SyncOptions, SyncPair};
use workbridge::{CorrelationKey, FieldMap, ItemId, ItemType, Repository, RepositoryExt};
use workbridge_alm::{AlmConfig, AlmRepository};
use workbridge_http::ClientOptions;
use workbridge_sim::alm::AlmSim;

use crate::common::{bug, move_bug, s, sides, sims, spec};

fn defect() -> ItemType {
    ItemType::from("defects")
}

#[tokio::test]
async fn a_defect_locked_by_another_client_waits_alone_and_syncs_once_free() {
    let sims = sims().await;
    let ado = sides(&sims, 0).ado;
    let alm_sim = AlmSim::builder().user("qa", "qa").spawn().await.unwrap();
    let alm = Arc::new(
        AlmRepository::new(
            AlmConfig::builder(alm_sim.url(), "DEFAULT", "Demo")
                .password("qa", "qa")
                .correlation_field("Sync Key")
                .client_options(ClientOptions::default().allow_http(true))
                .build(),
        )
        .unwrap(),
    );
    let pair = SyncPair::new(
        ado.clone(),
        alm.clone(),
        spec("qa_verification.toml"),
        Arc::new(MemoryStore::new()),
    )
    .unwrap()
    .with_options(SyncOptions::default().comments(false).attachments(false));
    let mut bugs = Vec::new();
    for title in ["Invoices print blank", "Checkout times out"] {
        let b = ado
            .create(
                &bug(),
                &FieldMap::new().with("System.Title", title),
                &Default::default(),
            )
            .await
            .unwrap();
        move_bug(&ado, &b.id, "Active").await;
        move_bug(&ado, &b.id, "Resolved").await;
        bugs.push(b.id);
    }
    let r = pair.run_once().await;
    assert!(r.is_complete() && r.created.right == 2, "{r}");
    let defect_of = |b: &ItemId| {
        let (alm, key) = (alm.clone(), CorrelationKey::new(format!("wb:Bug:{b}")));
        async move {
            alm.find_by_correlation(&defect(), &key)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let (d0, d1) = (defect_of(&bugs[0]).await, defect_of(&bugs[1]).await);

    // Dev rename both Bugs; another client holds the first defect's lock.
    for (b, title) in bugs
        .iter()
        .zip(["Invoices print blank in Lyon", "Checkout times out at 9"])
    {
        ado.update(
            &bug(),
            b,
            &FieldMap::new().with("System.Title", title),
            &Default::default(),
        )
        .await
        .unwrap();
    }
    alm_sim.lock_as_other_user("defects", d0.id.as_str().parse().unwrap(), "jdoe");
    let r = pair.run_once().await;
    assert!(r.is_complete(), "the other defect is not held up: {r}");
    assert_eq!(r.parked.len(), 1, "{r}");
    assert!(r.parked[0].temporary, "{:?}", r.parked[0]);
    assert_eq!(
        s(&alm.get(&defect(), &d1.id).await.unwrap(), "name"),
        "Checkout times out at 9"
    );

    // The lock goes; the next round takes the parked defect without being asked.
    alm_sim.release_locks();
    let r = pair.run_once().await;
    assert!(r.is_complete() && r.unparked == 1, "{r}");
    assert_eq!(
        s(&alm.get(&defect(), &d0.id).await.unwrap(), "name"),
        "Invoices print blank in Lyon"
    );
    assert!(pair.parked().await.unwrap().is_empty());
    assert_eq!(pair.run_once().await.writes(), 0);
}
