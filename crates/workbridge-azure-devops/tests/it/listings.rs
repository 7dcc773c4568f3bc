//! Comments and attachments of many work items, listed together; whether any carries a key.

use workbridge_azure_devops::ServerVersion as Server;
use workbridge_core::{
    CreateOptions, FieldMap, ItemId, ItemType, NewAttachment, NewComment, Repository, Write,
};
use workbridge_sim::azure_devops::ServerVersion;

/// 250 Bugs, some with comments, some with files: `attachments_many` reads the relations of
/// 200 at a time, `comments_many` the comment counts of 200 at a time and then only the
/// comments of the Bugs that have any; each list is what the Bug alone answers. Before the
/// comments API (TFS 2018), each Bug's comments are its history, read one by one.
#[tokio::test]
async fn the_comments_and_attachments_of_many_bugs_are_listed_together() {
    for (sim_version, version) in [
        (ServerVersion::Services, Server::Services),
        (ServerVersion::Tfs2018, Server::Tfs2018),
    ] {
        let sim = crate::sim(sim_version).await;
        let repo = crate::repo(&sim, version, false);
        let t = ItemType::from("Bug");
        let writes: Vec<Write> = (0..250)
            .map(|i| {
                Write::create(
                    t.clone(),
                    FieldMap::new().with("System.Title", format!("b{i}")),
                )
            })
            .collect();
        let mut ids: Vec<ItemId> = Vec::new();
        for chunk in writes.chunks(100) {
            for r in repo.write_many(chunk).await.unwrap() {
                ids.push(r.unwrap().id);
            }
        }
        for (i, id) in ids.iter().enumerate().step_by(9) {
            repo.add_comment(&t, id, &NewComment::public(format!("on {i}")))
                .await
                .unwrap();
        }
        for (i, id) in ids.iter().enumerate().step_by(13) {
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
        let files = repo.attachments_many(&t, &ids).await.unwrap();
        let batches = if version == Server::Services { 2 } else { 0 };
        assert_eq!(c.total_requests(), 2, "{version:?}: {:?}", c.requests());
        c.reset_requests();
        let comments = repo.comments_many(&t, &ids).await.unwrap();
        let with_comments = ids.len().div_ceil(9) as u64;
        let expected = if version == Server::Services {
            batches + with_comments
        } else {
            ids.len() as u64
        };
        assert_eq!(
            c.total_requests(),
            expected,
            "{version:?}: {:?}",
            c.requests()
        );
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(files[i], repo.attachments(&t, id).await.unwrap(), "Bug {i}");
            assert_eq!(files[i].len(), usize::from(i % 13 == 0), "Bug {i}");
            assert_eq!(comments[i], repo.comments(&t, id).await.unwrap(), "Bug {i}");
            let bodies: Vec<&str> = comments[i].iter().map(|c| c.body.as_str()).collect();
            if i % 9 == 0 {
                assert_eq!(bodies.len(), 1, "Bug {i}: {bodies:?}");
                assert!(
                    bodies[0].contains(&format!("on {i}")),
                    "Bug {i}: {bodies:?}"
                );
            } else {
                assert!(bodies.is_empty(), "Bug {i}: {bodies:?}");
            }
        }
    }
}

/// With a correlation field, one WIQL query for one id tells whether any Bug carries a key;
/// with keys in tags (no prefix query), the adapter cannot tell and says so.
#[tokio::test]
async fn whether_any_bug_carries_a_key_is_one_query() {
    let sim = crate::sim(ServerVersion::Services).await;
    let t = ItemType::from("Bug");
    let keyed = crate::repo(&sim, Server::Services, true);
    let c = sim.control();
    keyed.schema(&t).await.unwrap();
    c.reset_requests();
    assert!(!keyed.holds_correlated(&t).await.unwrap());
    assert_eq!(c.total_requests(), 1, "{:?}", c.requests());
    keyed
        .create(
            &t,
            &FieldMap::new().with("System.Title", "keyed"),
            &CreateOptions::default().correlation("servicenow:incident:1"),
        )
        .await
        .unwrap();
    assert!(keyed.holds_correlated(&t).await.unwrap());
    let tagged = crate::repo(&sim, Server::Services, false);
    c.reset_requests();
    assert!(tagged.holds_correlated(&t).await.unwrap());
    assert_eq!(c.total_requests(), 0);
}
