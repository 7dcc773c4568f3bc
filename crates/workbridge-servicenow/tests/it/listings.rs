//! Comments and attachments of many records, listed together.

use workbridge_core::{
    CreateOptions, FieldMap, FieldValue, ItemId, ItemType, NewAttachment, NewComment, Repository,
    RepositoryExt, UpdateOptions, Write,
};

/// 150 incidents, some with comments and work notes, some with files: `comments_many` and
/// `attachments_many` give each its own, in order, in one request per 100 records (each
/// record alone would cost a listing, and an existence check after an empty one).
#[tokio::test]
async fn the_comments_and_attachments_of_many_records_are_listed_together() {
    let sim = crate::sim().await;
    let repo = crate::repo(&sim);
    let t = ItemType::from("incident");
    let ids: Vec<ItemId> = (0..150)
        .map(|i| ItemId::from(sim.insert("incident", &[("short_description", &format!("t{i}"))])))
        .collect();
    for (i, id) in ids.iter().enumerate().step_by(7) {
        repo.add_comment(&t, id, &NewComment::public(format!("first on {i}")))
            .await
            .unwrap();
        repo.add_comment(&t, id, &NewComment::internal(format!("note on {i}")))
            .await
            .unwrap();
    }
    for (i, id) in ids.iter().enumerate().step_by(11) {
        repo.upload(
            &t,
            id,
            &NewAttachment::new(format!("f{i}.txt"), "text/plain", "x"),
        )
        .await
        .unwrap();
    }
    let c = sim.control();
    c.reset_requests();
    let comments = repo.comments_many(&t, &ids).await.unwrap();
    let files = repo.attachments_many(&t, &ids).await.unwrap();
    assert_eq!(c.total_requests(), 4, "{:?}", c.requests());
    assert_eq!((comments.len(), files.len()), (150, 150));
    for (i, id) in ids.iter().enumerate() {
        // Each record's lists are what it alone answers.
        assert_eq!(
            comments[i],
            repo.comments(&t, id).await.unwrap(),
            "record {i}"
        );
        assert_eq!(
            files[i],
            repo.attachments(&t, id).await.unwrap(),
            "record {i}"
        );
        let bodies: Vec<&str> = comments[i].iter().map(|c| c.body.as_str()).collect();
        if i % 7 == 0 {
            assert_eq!(bodies, [format!("first on {i}"), format!("note on {i}")]);
        } else {
            assert!(bodies.is_empty());
        }
        assert_eq!(files[i].len(), usize::from(i % 11 == 0), "record {i}");
    }
}

/// Whether any record carries a `correlation_id`: one request for one row.
#[tokio::test]
async fn whether_any_record_carries_a_key_is_one_request() {
    let sim = crate::sim().await;
    let repo = crate::repo(&sim);
    let t = ItemType::from("incident");
    repo.schema(&t).await.unwrap();
    let c = sim.control();
    c.reset_requests();
    assert!(!repo.holds_correlated(&t).await.unwrap());
    assert_eq!(c.total_requests(), 1, "{:?}", c.requests());
    repo.create(
        &t,
        &workbridge_core::FieldMap::new().with("short_description", "keyed"),
        &workbridge_core::CreateOptions::default().correlation("azure-devops:Bug:7"),
    )
    .await
    .unwrap();
    assert!(repo.holds_correlated(&t).await.unwrap());
}

/// A call's chunks go out together, as many at once as the client allows and no more.
#[tokio::test]
async fn a_calls_chunks_are_read_together_within_the_clients_bound() {
    let sim = crate::sim().await;
    let t = ItemType::from("incident");
    let ids: Vec<ItemId> = (0..350)
        .map(|i| ItemId::from(sim.insert("incident", &[("short_description", &format!("t{i}"))])))
        .collect();
    let c = sim.control();
    c.set_faults(workbridge_sim::Faults::none().latency(std::time::Duration::from_millis(30)));
    for (bound, most) in [(1, 1), (3, 3)] {
        let repo = workbridge_servicenow::ServiceNowRepository::new(
            workbridge_servicenow::ServiceNowConfig::builder(sim.url())
                .basic("admin", "admin")
                .client_options(crate::options().max_concurrency(bound))
                .build(),
        )
        .unwrap();
        repo.schema(&t).await.unwrap();
        c.reset_requests();
        let items = repo
            .get_many(&t, &ids, &workbridge_core::GetOptions::default())
            .await
            .unwrap();
        assert!(items.iter().all(Option::is_some));
        // Four chunks of 100 ids (and the callers' names, as a chunk needs them).
        assert!(c.total_requests() >= 4, "{:?}", c.requests());
        assert_eq!(c.most_in_flight(), most, "client bound {bound}");
    }
}

/// Writes asked to answer with some fields get only those (and the record's own: id, version,
/// times) — through the Table API and inside Batch API requests — so that a page of writes
/// does not bring whole records back.
#[tokio::test]
async fn writes_answer_with_the_fields_asked_for() {
    let sim = crate::sim().await;
    let repo = crate::repo(&sim);
    let t = ItemType::from("incident");
    let fields = ["short_description", "priority"];
    let created = repo
        .create(
            &t,
            &FieldMap::new().with("short_description", "Printer"),
            &CreateOptions::default().answer_fields(fields),
        )
        .await
        .unwrap();
    assert!(created.partial);
    assert_eq!(
        created.fields.get("short_description"),
        Some(&"Printer".into())
    );
    assert!(
        created.fields.get("description").is_none(),
        "{:?}",
        created.fields
    );
    let updated = repo
        .update(
            &t,
            &created.id,
            &FieldMap::new().with("short_description", "Printer jams"),
            &UpdateOptions::default()
                .if_version(created.version.clone())
                .answer_fields(fields),
        )
        .await
        .unwrap();
    assert!(updated.partial && updated.fields.get("description").is_none());
    assert_eq!(updated.version.as_str(), "1");
    let many = repo
        .write_many(&[
            Write::Update {
                item_type: t.clone(),
                id: created.id.clone(),
                changes: FieldMap::new().with("priority", FieldValue::Choice("2".into())),
                options: UpdateOptions::default()
                    .if_version(updated.version.clone())
                    .answer_fields(fields),
            },
            Write::Create {
                item_type: t.clone(),
                fields: FieldMap::new().with("short_description", "Scanner"),
                options: CreateOptions::default().answer_fields(fields),
            },
        ])
        .await
        .unwrap();
    for r in many {
        let item = r.unwrap();
        assert!(item.partial, "{item:?}");
        assert!(
            item.fields.get("description").is_none(),
            "{:?}",
            item.fields
        );
        assert!(
            item.fields.get("short_description").is_some(),
            "{:?}",
            item.fields
        );
    }
    // Asked for nothing in particular, a write answers the whole record.
    let whole = repo
        .create(
            &t,
            &FieldMap::new().with("short_description", "Whole"),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    assert!(!whole.partial && whole.fields.get("description").is_some());
}

/// 250 conditional updates in one `write_many`: their versions are read in one Batch API
/// request (three GET sub-requests of 100 ids), then written in three Batch API requests of
/// 100 — four requests, not three reads and three writes. A stale version is refused before
/// anything is written to that record.
#[tokio::test]
async fn the_versions_of_many_updates_are_read_in_one_request() {
    let sim = crate::sim().await;
    let repo = crate::repo(&sim);
    let t = ItemType::from("incident");
    let ids: Vec<String> = (0..250)
        .map(|i| sim.insert("incident", &[("short_description", &format!("t{i}"))]))
        .collect();
    let mut writes: Vec<Write> = ids
        .iter()
        .map(|id| Write::Update {
            item_type: t.clone(),
            id: id.as_str().into(),
            changes: FieldMap::new().with("short_description", "Checked"),
            options: UpdateOptions::default().if_version("0"),
        })
        .collect();
    // The last one was read at a version the record has moved past.
    sim.update("incident", &ids[249], &[("priority", "2")], "ops");
    if let Some(Write::Update { options, .. }) = writes.last_mut() {
        *options = UpdateOptions::default().if_version("0");
    }
    sim.control().reset_requests();
    sim.control().record_exchanges(true);
    let results = repo.write_many(&writes).await.unwrap();
    assert_eq!(
        sim.control().requests_to("POST /api/now/v1/batch"),
        4,
        "{:?}",
        sim.control().requests()
    );
    assert!(
        !sim.control()
            .exchanges()
            .iter()
            .any(|e| e.method == "GET" && e.path.ends_with("/table/incident")),
        "the versions were read one request per 100"
    );
    assert!(results[..249].iter().all(Result::is_ok));
    let e = results[249].as_ref().unwrap_err();
    assert_eq!(e.kind(), workbridge_core::ErrorKind::Conflict, "{e}");
    let last = repo.get(&t, &ids[249].as_str().into()).await.unwrap();
    assert_eq!(last.fields.get("short_description"), Some(&"t249".into()));
}
