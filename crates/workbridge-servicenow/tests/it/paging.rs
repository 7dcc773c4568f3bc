//! The change scan under ties and concurrent updates.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use workbridge_core::{ChangeOptions, Cursor, ItemType, Repository};

/// 2,500 incidents: 2,200 spread ten to a second, then 300 sharing the second the server is
/// still in. The scan pages by 100 while users update records already read (some sorting
/// behind the scan position in the same second) and records not yet read. Every record is
/// returned at its final version, and no version is returned twice.
#[tokio::test]
async fn every_version_is_read_exactly_once_under_ties_and_updates() {
    let sim = crate::sim().await;
    let clock = sim.clock();
    let t0 = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
    clock.freeze(t0);
    let mut ids = Vec::new();
    for i in 0..2200 {
        if i % 10 == 0 {
            clock.advance(Duration::from_secs(1));
        }
        ids.push(sim.insert(
            "incident",
            &[("short_description", &format!("backlog {i}"))],
        ));
    }
    clock.advance(Duration::from_secs(60));
    let mut tied = Vec::new();
    for i in 0..300 {
        tied.push(sim.insert("incident", &[("short_description", &format!("tied {i}"))]));
    }
    ids.extend(tied.iter().cloned());
    // The simulator seeded 5 incidents of its own before the clock was frozen.
    let repo = crate::repo(&sim);
    let t = ItemType::from("incident");
    let opts = ChangeOptions::default().page_size(100);
    let mut cursor = Cursor::beginning();
    let mut delivered: Vec<(String, String)> = Vec::new();
    let mut pages = 0;
    loop {
        let page = repo.changes(&t, &cursor, &opts).await.unwrap();
        pages += 1;
        assert!(pages < 200, "the scan does not end");
        let mut ids_in_page: Vec<String> = Vec::new();
        for item in &page.items {
            delivered.push((item.id.to_string(), item.version.to_string()));
            ids_in_page.push(item.id.to_string());
        }
        cursor = page.next;
        match pages {
            // Backlog: one record already read, one not yet read.
            3 => {
                sim.update("incident", &ids[10], &[("priority", "2")], "beth.anglin");
                sim.update("incident", &ids[2000], &[("priority", "2")], "beth.anglin");
            }
            // Inside the tied second, now the live edge: records behind the position.
            24..=27 => {
                let behind = ids_in_page.first().cloned().unwrap_or_default();
                sim.update("incident", &behind, &[("urgency", "1")], "david.loo");
                sim.update("incident", &tied[0], &[("impact", "1")], "david.loo");
            }
            _ => {}
        }
        if !page.has_more {
            break;
        }
    }
    let mut unique = HashSet::new();
    for d in &delivered {
        assert!(unique.insert(d.clone()), "version delivered twice: {d:?}");
    }
    let last_version: HashMap<&str, &str> = delivered
        .iter()
        .map(|(i, v)| (i.as_str(), v.as_str()))
        .collect();
    for id in &ids {
        let stored = sim.record("incident", id).unwrap()["sys_mod_count"].clone();
        assert_eq!(
            last_version.get(id.as_str()).copied(),
            Some(stored.as_str()),
            "record {id} not read at its final version"
        );
    }
    // Nothing more to read, and nothing read again.
    let again = repo.changes(&t, &cursor, &opts).await.unwrap();
    assert!(
        again.items.is_empty(),
        "{} items read again",
        again.items.len()
    );
    // A later change is found from the stored cursor.
    clock.advance(Duration::from_secs(5));
    sim.update("incident", &ids[0], &[("priority", "1")], "abel.tuter");
    let mut found = Vec::new();
    let mut c = again.next;
    loop {
        let page = repo.changes(&t, &c, &opts).await.unwrap();
        found.extend(page.items.into_iter().map(|i| i.id.to_string()));
        c = page.next;
        if !page.has_more {
            break;
        }
    }
    assert_eq!(found, [ids[0].clone()]);
}

/// A scan from a stored cursor, in a second shared by many records, reports no duplicates and
/// returns to "nothing new" while the clock stands still.
#[tokio::test]
async fn a_frozen_second_with_more_rows_than_a_page_terminates() {
    let sim = crate::sim().await;
    sim.clock()
        .freeze(Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap());
    for i in 0..250 {
        sim.insert("incident", &[("short_description", &format!("n{i}"))]);
    }
    let repo = crate::repo(&sim);
    let t = ItemType::from("incident");
    let opts = ChangeOptions::default().page_size(60);
    let mut cursor = Cursor::beginning();
    let mut seen = HashSet::new();
    for _round in 0..3 {
        let mut calls = 0;
        loop {
            let page = repo.changes(&t, &cursor, &opts).await.unwrap();
            calls += 1;
            assert!(calls < 50);
            for i in page.items {
                assert!(
                    seen.insert((i.id.to_string(), i.version.to_string())),
                    "duplicate"
                );
            }
            cursor = page.next;
            if !page.has_more {
                break;
            }
        }
    }
    assert_eq!(seen.len(), 255);
}

/// Once the server is past the last second a pass read, a quiet poll is one request, however
/// many records share that second — before, every idle round read the whole second again
/// (29 requests a round in the measured backfill). A later change is still found.
#[tokio::test]
async fn a_quiet_poll_after_a_crowded_second_is_one_request() {
    let sim = crate::sim().await;
    let clock = sim.clock();
    // After the simulator's own seeded incidents, so the crowded second is the last one.
    clock.freeze(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap());
    let mut ids = Vec::new();
    for i in 0..250 {
        ids.push(sim.insert("incident", &[("short_description", &format!("n{i}"))]));
    }
    let repo = crate::repo(&sim);
    let t = ItemType::from("incident");
    let opts = ChangeOptions::default().page_size(100);
    let drain = async |mut cursor: Cursor| {
        let mut found = Vec::new();
        for _ in 0..50 {
            let page = repo.changes(&t, &cursor, &opts).await.unwrap();
            found.extend(page.items.iter().map(|i| i.id.to_string()));
            cursor = page.next;
            if !page.has_more {
                return (cursor, found);
            }
        }
        panic!("the scan does not end");
    };
    let (cursor, found) = drain(Cursor::beginning()).await;
    assert_eq!(found.len(), 255, "the 250 and the 5 seeded");
    // The second is past: the pass that sees so moves on, and the next poll is one request.
    clock.advance(Duration::from_secs(2));
    let (cursor, found) = drain(cursor).await;
    assert!(found.is_empty(), "{found:?}");
    sim.control().reset_requests();
    let (cursor, found) = drain(cursor).await;
    assert!(found.is_empty());
    assert_eq!(
        sim.control().total_requests(),
        1,
        "{:?}",
        sim.control().requests()
    );
    clock.advance(Duration::from_secs(1));
    sim.update("incident", &ids[7], &[("priority", "1")], "abel.tuter");
    let (_, found) = drain(cursor).await;
    assert_eq!(found, [ids[7].clone()]);
}

/// A first pass over a backlog of past seconds: each page is judged by the server's time
/// known before it was requested, so the scan keeps only the ids of the second it is in —
/// not every row of the pass, which its cursor (stored after every page) would carry — and
/// it does not read the backlog a second time.
#[tokio::test]
async fn a_backlog_pass_keeps_its_cursor_small_and_reads_each_row_once() {
    let sim = crate::sim().await;
    let clock = sim.clock();
    clock.freeze(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap());
    for i in 0..600 {
        // Two records a second.
        if i % 2 == 0 {
            clock.advance(Duration::from_secs(1));
        }
        sim.insert("incident", &[("short_description", &format!("n{i}"))]);
    }
    // Served later: the backlog is in the past.
    clock.advance(Duration::from_secs(3600));
    let repo = crate::repo(&sim);
    let t = ItemType::from("incident");
    let opts = ChangeOptions::default().page_size(100);
    sim.control().reset_requests();
    let mut cursor = Cursor::beginning();
    let mut found = 0;
    let mut largest = 0;
    for _ in 0..50 {
        let page = repo.changes(&t, &cursor, &opts).await.unwrap();
        found += page.items.len();
        cursor = page.next;
        largest = largest.max(cursor.token().map_or(0, str::len));
        if !page.has_more {
            break;
        }
    }
    assert_eq!(found, 605, "the 600 and the 5 seeded");
    assert!(
        largest < 1_000,
        "the cursor carried {largest} bytes: the ids of the whole pass"
    );
    let scans = sim
        .control()
        .requests()
        .get("GET /api/now/table/{table}")
        .copied()
        .unwrap_or(0);
    // Seven pages of at most 100 (the last one short), and the schema reads: no re-read.
    assert!(scans <= 7 + 3, "{:?}", sim.control().requests());
}
