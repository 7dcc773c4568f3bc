//! Writes on a wire that breaks: ALM's PUT carries no condition, so one that may have reached
//! the server is never sent again — a second copy lands after the first and writes over what
//! came between (and a first copy held on the wire lands after a second).

use std::time::{Duration, Instant};

use workbridge_alm::{AlmConfig, AlmRepository, Format};
use workbridge_core::{ErrorKind, FieldMap, ItemType, Repository, RepositoryExt, WorkItem, Write};
use workbridge_http::{BackoffConfig, RetryConfig};

fn name(i: &WorkItem) -> String {
    i.field("name")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

/// How the wire breaks the sync's PUT.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Held past the client's timeout, then served.
    Held,
    /// Served, and its answer lost.
    ReplyLost,
}

/// QA, who act on what they see, edit the defect once the sync's value shows. Their edit must
/// stand: the sync's write shows once, when its one copy lands, and never again after.
async fn qa_edit_after_the_syncs_stands(format: Format, bulk: bool, fault: Fault) {
    let case = format!("{format:?}, bulk {bulk}, {fault:?}");
    let sim = crate::sim().await;
    let people = crate::repo(&sim, format);
    // The sync's client: a short timeout, and retries far enough apart for QA to act between.
    let sync = AlmRepository::new(
        AlmConfig::builder(sim.url(), "DEFAULT", "Demo")
            .password("qa", "qa")
            .format(format)
            .client_options(
                crate::options()
                    .timeout(Some(Duration::from_millis(300)))
                    .retry(
                        RetryConfig::default().max_retries(3).backoff(
                            BackoffConfig::default()
                                .initial(Duration::from_millis(400))
                                .max(Duration::from_millis(400)),
                        ),
                    ),
            )
            .build(),
    )
    .unwrap();
    let t = ItemType::from("defects");
    let made = people
        .write_many(&[crate::bulk::defect("Invoices print blank")])
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    // The sync's session first, so only the write meets the fault.
    sync.get(&t, &made.id).await.unwrap();
    let path = if bulk { "/defects" } else { "/defects/" };
    let hold = Duration::from_millis(1200);
    match fault {
        Fault::Held => sim.control().delay_next_of("PUT", path, hold),
        Fault::ReplyLost => sim.control().lose_next_reply_of("PUT", path),
    }
    let started = Instant::now();
    let changes = FieldMap::new().with("name", "Invoices print blank (synced)");
    let write = async {
        if bulk {
            sync.write_many(&[Write::Update {
                item_type: t.clone(),
                id: made.id.clone(),
                changes: changes.clone(),
                options: Default::default(),
            }])
            .await
            .and_then(|mut r| r.remove(0))
        } else {
            sync.update(&t, &made.id, &changes, &Default::default())
                .await
        }
    };
    let qa = async {
        let mut edited = false;
        while started.elapsed() < hold + Duration::from_millis(800) {
            let now = people.get(&t, &made.id).await.unwrap();
            if !edited && name(&now) == "Invoices print blank (synced)" {
                people
                    .update(
                        &t,
                        &made.id,
                        &FieldMap::new().with("name", "Invoices print blank on A4"),
                        &Default::default(),
                    )
                    .await
                    .unwrap();
                edited = true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        edited
    };
    let (written, edited) = tokio::join!(write, qa);
    let err = written.expect_err(&format!("{case}: the write's outcome is not known"));
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{case}: {err}");
    assert!(err.maybe_applied(), "{case}: {err}");
    assert!(edited, "{case}: the sync's write landed and QA saw it");
    let now = people.get(&t, &made.id).await.unwrap();
    assert_eq!(
        name(&now),
        "Invoices print blank on A4",
        "{case}: QA's edit after the sync's stands"
    );
}

#[tokio::test]
async fn a_put_held_past_the_timeout_is_not_sent_again() {
    qa_edit_after_the_syncs_stands(Format::Json, false, Fault::Held).await;
    qa_edit_after_the_syncs_stands(Format::Xml, true, Fault::Held).await;
}

#[tokio::test]
async fn a_put_whose_reply_was_lost_is_not_sent_again() {
    qa_edit_after_the_syncs_stands(Format::Xml, false, Fault::ReplyLost).await;
    qa_edit_after_the_syncs_stands(Format::Json, true, Fault::ReplyLost).await;
}
