//! The change scan: a backlog beyond the WIQL cap, API-call budget, same-millisecond ties.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use workbridge_azure_devops::ServerVersion;
use workbridge_core::{ChangeOptions, Cursor, ItemType, Repository};
use workbridge_sim::azure_devops::{AzureDevOpsSim, ServerVersion as SimVersion};

/// 25,000 bugs — more than one WIQL query may return — are read completely, with one WIQL
/// query per page plus one to see the end, and ceil(n/200) batch reads: never one request per
/// item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_beyond_the_wiql_cap_is_read_with_a_bounded_number_of_calls() {
    let sim = AzureDevOpsSim::builder()
        .pat("TOKEN")
        .wiql_cap(20_000)
        .spawn()
        .await
        .unwrap();
    let n = 25_000;
    for i in 0..n {
        sim.create("Bug", &[("System.Title", &format!("backlog bug {i}"))]);
    }
    let repo = crate::repo(&sim, ServerVersion::Services, false);
    let t = ItemType::from("Bug");
    sim.control().reset_requests();
    let page = 5_000;
    let opts = ChangeOptions::default().page_size(page);
    let mut cursor = Cursor::beginning();
    let mut seen = HashSet::new();
    loop {
        let p = repo.changes(&t, &cursor, &opts).await.unwrap();
        for i in p.items {
            assert!(seen.insert(i.id.to_string()), "{} read twice", i.id);
        }
        cursor = p.next;
        if !p.has_more {
            break;
        }
    }
    assert_eq!(seen.len(), n);
    let wiql = sim
        .control()
        .requests_to("POST /{org}/{project}/_apis/wit/wiql");
    let batch = sim
        .control()
        .requests_to("POST /{org}/{project}/_apis/wit/workitemsbatch");
    assert_eq!(
        wiql,
        (n / page) as u64 + 1,
        "one WIQL per page and one to see the end"
    );
    assert_eq!(batch, n.div_ceil(200) as u64, "ceil(n/200) batch reads");
    assert_eq!(
        sim.control()
            .requests_to("GET /{org}/_apis/wit/workitems/{id}"),
        0,
        "no per-item reads"
    );
    // A query without a window would have hit the cap.
    let direct = reqwest::Client::new()
        .post(format!(
            "{}/Fabrikam/_apis/wit/wiql?api-version=7.1",
            sim.collection_url()
        ))
        .basic_auth("", Some("TOKEN"))
        .json(&serde_json::json!({"query": "SELECT [System.Id] FROM WorkItems"}))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 400);
    assert!(direct.text().await.unwrap().contains("VS402337"));
}

/// Items sharing one millisecond, updated behind the scan position while it pages: every
/// version is read once, the last one included, before the scan reports its end.
#[tokio::test]
async fn same_millisecond_ties_and_updates_during_the_scan() {
    let sim = crate::sim(SimVersion::Services).await;
    let clock = sim.clock();
    clock.freeze(Utc.with_ymd_and_hms(2027, 4, 1, 8, 0, 0).unwrap());
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(sim.create("Task", &[("System.Title", &format!("early task {i}"))]));
    }
    // The clock moves on one second and stands still again: the live millisecond.
    clock.advance(Duration::from_secs(1));
    for i in 0..60 {
        ids.push(sim.create("Task", &[("System.Title", &format!("tied task {i}"))]));
    }
    let repo = crate::repo(&sim, ServerVersion::Services, true);
    let t = ItemType::from("Task");
    let opts = ChangeOptions::default().page_size(25);
    let mut cursor = Cursor::beginning();
    let mut delivered: Vec<(String, String)> = Vec::new();
    let mut pages = 0;
    loop {
        let p = repo.changes(&t, &cursor, &opts).await.unwrap();
        pages += 1;
        assert!(pages < 100);
        delivered.extend(
            p.items
                .iter()
                .map(|i| (i.id.to_string(), i.version.to_string())),
        );
        cursor = p.next;
        if pages == 4 {
            // The scan stands inside the live millisecond. Two early tasks are updated now: their
            // new ChangedDate is that same millisecond, and their ids sort behind the position.
            sim.update(ids[0], &[("System.Title", "renamed while scanning")]);
            sim.update(ids[1], &[("System.Title", "renamed while scanning")]);
        }
        if !p.has_more {
            break;
        }
    }
    let mut unique = HashSet::new();
    for d in &delivered {
        assert!(unique.insert(d.clone()), "version read twice: {d:?}");
    }
    let last: HashMap<&str, &str> = delivered
        .iter()
        .map(|(i, v)| (i.as_str(), v.as_str()))
        .collect();
    for id in &ids {
        let rev = sim.rev(*id).unwrap().to_string();
        assert_eq!(
            last.get(id.to_string().as_str()).copied(),
            Some(rev.as_str()),
            "task {id}"
        );
    }
    let again = repo.changes(&t, &cursor, &opts).await.unwrap();
    assert!(again.items.is_empty(), "{} read again", again.items.len());
}

/// Items the caller knows at their revs (its own writes) are left out of the scan's WIQL, so
/// they cost no `workitemsbatch` read; one changed since is listed, and so is one known at
/// another rev. The cursor moves past the ones left out: the next scan lists nothing.
#[tokio::test]
async fn known_items_at_their_revs_are_left_out_of_the_scan() {
    use workbridge_core::{ItemId, Version};
    let sim = crate::sim(SimVersion::Services).await;
    let before = sim.count();
    let ids: Vec<u64> = (0..30)
        .map(|i| sim.create("Bug", &[("System.Title", &format!("made by the sync {i}"))]))
        .collect();
    let lone = sim.create("Bug", &[("System.Title", "made by Dev")]);
    // Known at rev 1: all 30; then Dev edits one of them (rev 2); and one is known at a rev
    // it is not at.
    let mut known: Vec<(ItemId, Version)> = ids
        .iter()
        .map(|id| (ItemId::new(id.to_string()), Version::new("1")))
        .collect();
    assert!(sim.update(ids[7], &[("System.Title", "edited by Dev")]));
    known.push((ItemId::new(lone.to_string()), Version::new("5")));
    let repo = crate::repo(&sim, ServerVersion::Services, false);
    let t = ItemType::from("Bug");
    sim.clock().advance(Duration::from_secs(2));
    sim.control().reset_requests();
    let opts = ChangeOptions::default().known(known.clone());
    let p = repo.changes(&t, &Cursor::beginning(), &opts).await.unwrap();
    let listed: HashSet<u64> = p
        .items
        .iter()
        .map(|i| i.id.as_str().parse().unwrap())
        .collect();
    // The Bugs that were there before, the one Dev edited, the one known at another rev.
    assert!(
        listed.contains(&ids[7]) && listed.contains(&lone),
        "{listed:?}"
    );
    assert!(
        ids.iter()
            .enumerate()
            .all(|(n, id)| n == 7 || !listed.contains(id)),
        "{listed:?}"
    );
    assert!(listed.len() <= 2 + before, "{listed:?}");
    assert!(!p.has_more);
    assert_eq!(
        sim.control()
            .requests_to("POST /{org}/{project}/_apis/wit/workitemsbatch"),
        1,
        "the two listed, in one read"
    );
    sim.clock().advance(Duration::from_secs(2));
    let again = repo.changes(&t, &p.next, &opts).await.unwrap();
    assert!(again.items.is_empty(), "{:?}", again.items);
    // Without the hint every item is listed, as before.
    let all = repo
        .changes(&t, &Cursor::beginning(), &ChangeOptions::default())
        .await
        .unwrap();
    assert_eq!(all.items.len(), listed.len() + 29);
}
