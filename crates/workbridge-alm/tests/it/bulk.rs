//! Bulk creates: one collection POST for many defects, each with its own result.

use chrono::NaiveDate;
use workbridge_alm::Format;
use workbridge_core::{
    Cursor, ErrorKind, FieldMap, FieldValue, ItemType, Person, Repository, RepositoryExt, WorkItem,
    Write,
};

const COLLECTION: &str = "POST /qcbin/rest/domains/{domain}/projects/{project}/{collection}";

pub(crate) fn defect(name: &str) -> Write {
    Write::create(
        ItemType::from("defects"),
        FieldMap::new()
            .with("name", name)
            .with("severity", "2-Medium")
            .with("detected-by", Person::login("qa"))
            .with("creation-time", day()),
    )
}

fn day() -> FieldValue {
    FieldValue::Date(NaiveDate::from_ymd_opt(2026, 6, 1).unwrap())
}

/// The names of every defect.
async fn names(r: &workbridge_alm::AlmRepository) -> Vec<String> {
    let page = r
        .changes(
            &ItemType::from("defects"),
            &Cursor::beginning(),
            &Default::default(),
        )
        .await
        .unwrap();
    page.items
        .iter()
        .filter_map(|i| i.field("name").and_then(|v| v.as_str()).map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn many_defects_are_created_in_one_request_in_json_and_xml() {
    for format in [Format::Json, Format::Xml] {
        let sim = crate::sim().await;
        let r = crate::repo(&sim, format);
        let writes: Vec<Write> = (0..150).map(|i| defect(&format!("Bulk {i}"))).collect();
        // The schema first, so only the writes are counted.
        r.schema(&ItemType::from("defects")).await.unwrap();
        sim.control().reset_requests();
        let results = r.write_many(&writes).await.unwrap();
        assert_eq!(results.len(), 150);
        for (i, res) in results.iter().enumerate() {
            let item = res.as_ref().unwrap();
            assert_eq!(
                item.field("name").and_then(|v| v.as_str()),
                Some(format!("Bulk {i}").as_str()),
                "{format:?}: results in the order sent"
            );
        }
        assert_eq!(
            sim.control().requests_to(COLLECTION),
            1,
            "{format:?}: {:?}",
            sim.control().requests()
        );
    }
}

#[tokio::test]
async fn a_partial_failure_gives_each_entity_its_result() {
    for format in [Format::Json, Format::Xml] {
        let sim = crate::sim().await;
        let r = crate::repo(&sim, format);
        r.schema(&ItemType::from("defects")).await.unwrap();
        let bad = Write::create(
            ItemType::from("defects"),
            // No severity: a required field missing, which the server refuses.
            FieldMap::new()
                .with("name", "Incomplete")
                .with("detected-by", Person::login("qa"))
                .with("creation-time", day()),
        );
        sim.control().reset_requests();
        let results = r
            .write_many(&[defect("First"), bad.clone(), defect("Third")])
            .await
            .unwrap();
        assert!(
            results[0].is_ok() && results[2].is_ok(),
            "{format:?}: {results:?}"
        );
        let e = results[1].as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{format:?}: {e}");
        assert!(e.to_string().contains("write_many"), "{e}");
        // Every entity failing is an answer too (500 with each entity's error), not a request
        // to send again.
        let results = r.write_many(&[bad.clone(), bad]).await.unwrap();
        assert!(
            results.iter().all(Result::is_err),
            "{format:?}: {results:?}"
        );
        assert_eq!(
            sim.control().requests_to(COLLECTION),
            2,
            "{format:?}: {:?}",
            sim.control().requests()
        );
        let names = names(&r).await;
        assert!(names.iter().any(|n| n == "First") && names.iter().any(|n| n == "Third"));
        assert!(!names.iter().any(|n| n == "Incomplete"), "{names:?}");
    }
}

#[tokio::test]
async fn updates_go_out_in_one_request_each_checked_against_its_version() {
    for format in [Format::Json, Format::Xml] {
        let sim = crate::sim().await;
        let r = crate::repo(&sim, format);
        let t = ItemType::from("defects");
        let made: Vec<_> = r
            .write_many(&(0..3).map(|i| defect(&format!("D{i}"))).collect::<Vec<_>>())
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let update = |i: usize, version: &workbridge_core::Version| Write::Update {
            item_type: t.clone(),
            id: made[i].id.clone(),
            changes: FieldMap::new().with("name", format!("D{i}, edited")),
            options: workbridge_core::UpdateOptions::default().if_version(version.clone()),
        };
        let stale = workbridge_core::Version::new("0");
        sim.control().reset_requests();
        let results = r
            .write_many(&[
                update(0, &made[0].version),
                update(1, &stale),
                update(2, &made[2].version),
            ])
            .await
            .unwrap();
        assert_eq!(
            results[0]
                .as_ref()
                .unwrap()
                .field("name")
                .and_then(|v| v.as_str()),
            Some("D0, edited"),
            "{format:?}"
        );
        assert_eq!(results[1].as_ref().unwrap_err().kind(), ErrorKind::Conflict);
        assert!(results[2].is_ok(), "{format:?}: {results:?}");
        assert_eq!(
            sim.control()
                .requests_to("PUT /qcbin/rest/domains/{domain}/projects/{project}/{collection}"),
            1,
            "{format:?}: {:?}",
            sim.control().requests()
        );
        // No per-entity lock, read or write.
        assert_eq!(
            sim.control().total_requests(),
            2,
            "{:?}",
            sim.control().requests()
        );
        let d1 = r.get(&t, &made[1].id).await.unwrap();
        assert_eq!(d1.field("name").and_then(|v| v.as_str()), Some("D1"));
    }
}

/// Reads asked for some fields ask ALM for them (`fields=`, with id, version and time), in the
/// change scan and in `get_many`, and the items carry only those.
#[tokio::test]
async fn reads_ask_alm_for_the_fields_wanted() {
    let sim = crate::sim().await;
    let repo = crate::repo(&sim, Format::Json);
    let t = ItemType::from("defects");
    let made = repo
        .write_many(&[defect("Printer"), defect("Scanner")])
        .await
        .unwrap();
    let ids: Vec<_> = made.into_iter().map(|r| r.unwrap().id).collect();
    sim.control().record_exchanges(true);
    let page = repo
        .changes(
            &t,
            &Cursor::beginning(),
            &workbridge_core::ChangeOptions::default().fields(["name", "status"]),
        )
        .await
        .unwrap();
    let got = repo
        .get_many(
            &t,
            &ids,
            &workbridge_core::GetOptions::default().fields(["name"]),
        )
        .await
        .unwrap();
    for item in page.items.iter().chain(got.iter().flatten()) {
        assert!(item.partial);
        assert!(item.fields.get("severity").is_none(), "{:?}", item.fields);
        assert!(item.fields.get("name").is_some(), "{:?}", item.fields);
    }
    let asked: Vec<String> = sim
        .control()
        .exchanges()
        .into_iter()
        .filter(|e| e.method == "GET" && e.path.ends_with("/defects"))
        .map(|e| e.query.unwrap_or_default())
        .collect();
    assert!(!asked.is_empty());
    for q in &asked {
        assert!(
            q.contains("fields=id%2Cver-stamp%2Clast-modified%2Cname")
                || q.contains("fields=id,ver-stamp,last-modified,name"),
            "{q}"
        );
    }
}

/// Defects created together have consecutive ids: reading them back (the versions a bulk
/// update checks, a pass's twins) takes one request per page of them, not one per hundred.
#[tokio::test]
async fn consecutive_ids_are_read_in_one_request() {
    let sim = crate::sim().await;
    let r = crate::repo(&sim, Format::Json);
    let t = ItemType::from("defects");
    let made: Vec<_> = r
        .write_many(
            &(0..250)
                .map(|i| defect(&format!("D{i}")))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().id)
        .collect();
    // Every other one, then all of them, with an unknown id among them.
    let mut asked: Vec<_> = made.iter().step_by(2).cloned().collect();
    asked.push(workbridge_core::ItemId::from("999999"));
    sim.control().reset_requests();
    let got = r.get_many(&t, &asked, &Default::default()).await.unwrap();
    assert_eq!(got.len(), asked.len());
    assert!(got[..asked.len() - 1].iter().all(Option::is_some));
    assert!(got[asked.len() - 1].is_none());
    let scattered = sim.control().total_requests();
    sim.control().reset_requests();
    let all = r.get_many(&t, &made, &Default::default()).await.unwrap();
    assert_eq!(
        sim.control().total_requests(),
        1,
        "{:?}",
        sim.control().requests()
    );
    for (id, item) in made.iter().zip(&all) {
        assert_eq!(item.as_ref().map(|i| &i.id), Some(id));
    }
    // 126 scattered ids still go out in a few requests, each within its length.
    assert!((1..=3).contains(&scattered), "{scattered}");
}

/// Whether any defect holds a key the sync wrote takes one query, and a key written by
/// something else (no `wb:` prefix) does not count.
#[tokio::test]
async fn holds_correlated_asks_once_for_a_key_the_sync_wrote() {
    let sim = crate::sim().await;
    let r = crate::repo(&sim, Format::Json);
    let t = ItemType::from("defects");
    assert!(!r.holds_correlated(&t).await.unwrap());
    let keyed = |key: &str, name: &str| {
        let Write::Create {
            item_type, fields, ..
        } = defect(name)
        else {
            unreachable!()
        };
        Write::Create {
            item_type,
            fields,
            options: workbridge_core::CreateOptions::default().correlation(key),
        }
    };
    r.write_many(&[keyed("INC0010001", "Theirs")])
        .await
        .unwrap();
    sim.control().reset_requests();
    assert!(!r.holds_correlated(&t).await.unwrap());
    assert_eq!(sim.control().total_requests(), 1);
    r.write_many(&[keyed("wb:incident:46d44", "Ours")])
        .await
        .unwrap();
    assert!(r.holds_correlated(&t).await.unwrap());
}

/// A lone update through `write_many` (what the sync sends for one edited item) costs two
/// requests — its version read and the PUT — and is still refused when its version is stale.
#[tokio::test]
async fn a_lone_update_is_a_version_read_and_a_put() {
    let sim = crate::sim().await;
    let r = crate::repo(&sim, Format::Xml);
    let t = ItemType::from("defects");
    let made = r
        .write_many(&[defect("Lone")])
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let update = |version: &str| Write::Update {
        item_type: t.clone(),
        id: made.id.clone(),
        changes: FieldMap::new().with("name", format!("Lone at {version}")),
        options: workbridge_core::UpdateOptions::default()
            .if_version(workbridge_core::Version::new(version)),
    };
    sim.control().reset_requests();
    let done = r
        .write_many(&[update(made.version.as_str())])
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(
        sim.control().total_requests(),
        2,
        "{:?}",
        sim.control().requests()
    );
    assert_ne!(done.version, made.version);
    let stale = r
        .write_many(&[update(made.version.as_str())])
        .await
        .unwrap();
    assert_eq!(stale[0].as_ref().unwrap_err().kind(), ErrorKind::Conflict);
    let now = r.get(&t, &made.id).await.unwrap();
    assert_eq!(
        now.field("name").and_then(|v| v.as_str()),
        Some(format!("Lone at {}", made.version).as_str())
    );
}

/// With `VersionCheck::AfterWrite` a bulk update reads nothing first: one PUT, each answer's
/// `ver-stamp` checked against the caller's version — a stale one answers `Conflict` after the
/// fact — and a state change still read for the workflow's check.
#[tokio::test]
async fn after_write_updates_read_nothing_first() {
    let sim = crate::sim().await;
    let r = workbridge_alm::AlmRepository::new(
        workbridge_alm::AlmConfig::builder(sim.url(), "DEFAULT", "Demo")
            .password("qa", "qa")
            .version_check(workbridge_alm::VersionCheck::AfterWrite)
            .client_options(crate::options())
            .build(),
    )
    .unwrap();
    assert!(!r.capabilities().optimistic_concurrency);
    let t = ItemType::from("defects");
    let made: Vec<_> = r
        .write_many(&[defect("A"), defect("B")])
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let rename = |i: usize, version: &workbridge_core::Version, name: &str| Write::Update {
        item_type: t.clone(),
        id: made[i].id.clone(),
        changes: FieldMap::new().with("name", name),
        options: workbridge_core::UpdateOptions::default().if_version(version.clone()),
    };
    sim.control().reset_requests();
    let results = r
        .write_many(&[
            rename(0, &made[0].version, "A2"),
            rename(1, &workbridge_core::Version::new("0"), "B2"),
        ])
        .await
        .unwrap();
    assert_eq!(
        sim.control().total_requests(),
        1,
        "{:?}",
        sim.control().requests()
    );
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(results[1].as_ref().unwrap_err().kind(), ErrorKind::Conflict);
    // Applied all the same: the caller reads again and merges.
    let b = r.get(&t, &made[1].id).await.unwrap();
    assert_eq!(b.field("name").and_then(|v| v.as_str()), Some("B2"));
    // A state change is read for the workflow: New → Closed is refused before it is sent.
    sim.control().reset_requests();
    let closed = r
        .write_many(&[Write::Update {
            item_type: t.clone(),
            id: made[0].id.clone(),
            changes: FieldMap::new().with("status", "Closed"),
            options: Default::default(),
        }])
        .await
        .unwrap();
    assert_eq!(
        closed[0].as_ref().unwrap_err().kind(),
        ErrorKind::InvalidTransition,
        "{closed:?}"
    );
    assert_eq!(
        sim.control()
            .requests_to("PUT /qcbin/rest/domains/{domain}/projects/{project}/{collection}"),
        0
    );
}

/// Updates that follow the caller's own writes (a create, then a walk's steps) are checked on
/// the entity those writes were answered with (`UpdateOptions::answered`): no version read
/// before the bulk PUT, the workflow still checked on that state, and an answer at another
/// version than the update expects is not taken for the entity as it is.
#[tokio::test]
async fn updates_after_the_callers_own_writes_are_checked_on_their_answers() {
    let sim = crate::sim().await;
    let r = crate::repo(&sim, Format::Json);
    let t = ItemType::from("defects");
    let made: Vec<WorkItem> = r
        .write_many(&[defect("A"), defect("B"), defect("C")])
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let step = |item: &WorkItem, to: &str| Write::Update {
        item_type: t.clone(),
        id: item.id.clone(),
        changes: FieldMap::new().with("status", to),
        options: workbridge_core::UpdateOptions::default()
            .if_version(item.version.clone())
            .answered(item.clone()),
    };
    sim.control().reset_requests();
    let open: Vec<WorkItem> = r
        .write_many(&[step(&made[0], "Open"), step(&made[1], "Open")])
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        sim.control().total_requests(),
        1,
        "one bulk PUT, nothing read first: {:?}",
        sim.control().requests()
    );
    // The next step follows the answers just given.
    sim.control().reset_requests();
    let fixed = r
        .write_many(&[step(&open[0], "Fixed"), step(&open[1], "Fixed")])
        .await
        .unwrap();
    assert!(fixed.iter().all(Result::is_ok), "{fixed:?}");
    assert_eq!(sim.control().total_requests(), 1);
    // The workflow is checked on the answered state: New → Closed is refused unsent.
    sim.control().reset_requests();
    let closed = r.write_many(&[step(&made[2], "Closed")]).await.unwrap();
    assert_eq!(
        closed[0].as_ref().unwrap_err().kind(),
        ErrorKind::InvalidTransition,
        "{closed:?}"
    );
    assert_eq!(sim.control().total_requests(), 0);
    // An answer at another version than the update expects is no witness: read first.
    sim.control().reset_requests();
    let mismatched = Write::Update {
        item_type: t.clone(),
        id: made[2].id.clone(),
        changes: FieldMap::new().with("status", "Open"),
        options: workbridge_core::UpdateOptions::default()
            .if_version(workbridge_core::Version::new("99"))
            .answered(made[2].clone()),
    };
    let refused = r.write_many(&[mismatched]).await.unwrap();
    assert_eq!(refused[0].as_ref().unwrap_err().kind(), ErrorKind::Conflict);
    // Read, refused, nothing sent.
    assert_eq!(
        sim.control().total_requests(),
        1,
        "{:?}",
        sim.control().requests()
    );
    let c = r.get(&t, &made[2].id).await.unwrap();
    assert_eq!(c.field("status").and_then(|v| v.as_str()), Some("New"));
}

/// The sync's own writes, a page of them or more, are left out of the change scan; those
/// changed since it wrote them are listed all the same (ADR 0023).
#[tokio::test]
async fn the_syncs_own_writes_are_left_out_of_the_scan_unless_changed_since() {
    let sim = crate::sim().await;
    let r = crate::repo(&sim, Format::Json);
    let t = ItemType::from("defects");
    let writes: Vec<Write> = (0..30).map(|i| defect(&format!("Known {i}"))).collect();
    let made: Vec<WorkItem> = r
        .write_many(&writes)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut known: Vec<(workbridge_core::ItemId, workbridge_core::Version)> = made
        .iter()
        .map(|m| (m.id.clone(), m.version.clone()))
        .collect();
    // Another client edits one after the sync wrote it; the sync writes another again.
    let edited = r
        .update(
            &t,
            &made[5].id,
            &FieldMap::new().with("name", "Edited in ALM"),
            &Default::default(),
        )
        .await
        .unwrap();
    let rewritten = r
        .update(
            &t,
            &made[6].id,
            &FieldMap::new().with("name", "Written again by the sync"),
            &Default::default(),
        )
        .await
        .unwrap();
    known[6].1 = rewritten.version.clone();
    let opts = workbridge_core::ChangeOptions::default()
        .page_size(10)
        .known(known.clone());
    sim.control().reset_requests();
    let mut cursor = Cursor::beginning();
    let mut listed = Vec::new();
    let mut pages = 0;
    loop {
        let page = r.changes(&t, &cursor, &opts).await.unwrap();
        pages += 1;
        listed.extend(page.items.iter().map(|i| (i.id.clone(), i.version.clone())));
        cursor = page.next;
        if !page.has_more || pages > 10 {
            break;
        }
    }
    let ours: Vec<_> = listed
        .iter()
        .filter(|(id, _)| made.iter().any(|m| m.id == *id))
        .collect();
    assert!(
        ours.iter()
            .all(|(id, v)| *id == edited.id && *v == edited.version),
        "only the one edited since: {ours:?}"
    );
    assert!(!ours.is_empty(), "the edited one is listed: {listed:?}");
    // The four seeded defects are listed as ever.
    assert_eq!(
        listed
            .iter()
            .filter(|(id, _)| made.iter().all(|m| m.id != *id))
            .count(),
        4,
        "{listed:?}"
    );
    // A page, and one read for each version the writes left: not 30 rows read back.
    assert!(
        sim.control().total_requests() <= 3 * pages,
        "{pages} pages: {:?}",
        sim.control().requests()
    );
    // Fewer than a page of them: read back as ever.
    let few = workbridge_core::ChangeOptions::default()
        .page_size(100)
        .known(known);
    let page = r.changes(&t, &Cursor::beginning(), &few).await.unwrap();
    assert_eq!(page.items.len(), 34, "{:?}", page.items.len());
}
