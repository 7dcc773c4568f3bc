//! Seeded random edits on both sides, with faults injected into both simulators (503s, dropped
//! connections, and replies lost after the write was applied) and the sync process dropped and
//! rebuilt from its SQLite store at random points. Once edits and faults
//! stop, the systems converge with no duplicate and no lost update.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use workbridge::sync::{Side, SqliteStore, SyncOptions, SyncPair};
use workbridge::{FieldMap, FieldValue, ItemId, Repository, RepositoryExt};
use workbridge_sim::Faults;

use crate::common::{Sides, bug, incident, s, sides, sims, spec, temp_db};

fn pair(kernel: &Sides, db: &std::path::Path) -> SyncPair {
    SyncPair::new(
        kernel.sn.clone(),
        kernel.ado.clone(),
        spec("incident_escalation.toml"),
        Arc::new(SqliteStore::open(db).unwrap()),
    )
    .unwrap()
    .with_id("escalation")
    // A write whose outcome a fault hid holds its item this long (ADR 0011, 0019); the
    // simulators here never deliver a write late, so a short grace only keeps the test fast.
    .with_options(SyncOptions::default().in_flight_grace(Duration::from_millis(300)))
}

/// Runs one seed; answers how many twins were relinked (found by key after a lost reply).
async fn scenario(seed: u64) -> usize {
    let mut rng = StdRng::seed_from_u64(seed);
    let all = sims().await;
    let (sn_sim, ado_sim) = (&all.sn, &all.ado);
    let db = temp_db(&format!("random-{seed}"));
    // The kernel does not retry, so faults reach it.
    let users = sides(&all, 2);
    let kernel = sides(&all, 0);
    let mut sync = pair(&kernel, &db);
    let faults = |seed| {
        Faults::none()
            .error_rate(503, 0.06)
            .drop_connections(0.03)
            .lose_replies(0.04)
            .seed(seed)
    };
    sn_sim.control().set_faults(faults(seed));
    ado_sim.control().set_faults(faults(seed + 1));

    // What the users last wrote: the truth the systems must converge to.
    let mut tickets: Vec<ItemId> = Vec::new();
    let mut title: BTreeMap<ItemId, String> = BTreeMap::new();
    let mut priority: BTreeMap<ItemId, String> = BTreeMap::new();
    let mut dev_state: BTreeMap<ItemId, String> = BTreeMap::new();
    let (mut rebuilt, mut stopped, mut relinked) = (0, 0, 0);
    for step in 0..45 {
        let action = rng.random_range(0..100);
        // Faults hit the kernel's calls, not the users' edits (whose lost replies would make
        // the expected values unknowable).
        let user_edit = action < 60;
        if user_edit {
            sn_sim.control().set_faults(Faults::none());
            ado_sim.control().set_faults(Faults::none());
        }
        match action {
            0..20 => {
                let short = format!("Defect {step}");
                let p = rng.random_range(1..=4).to_string();
                let t = users
                    .sn
                    .create(
                        &incident(),
                        &FieldMap::new()
                            .with("short_description", short.as_str())
                            .with("category", FieldValue::Choice("software".into()))
                            .with("priority", FieldValue::Choice(p.clone())),
                        &Default::default(),
                    )
                    .await
                    .unwrap();
                title.insert(t.id.clone(), short);
                priority.insert(t.id.clone(), p);
                tickets.push(t.id);
            }
            20..40 if !tickets.is_empty() => {
                let id = tickets[rng.random_range(0..tickets.len())].clone();
                if rng.random_bool(0.5) {
                    let short = format!("Defect edited at {step}");
                    users
                        .sn
                        .update(
                            &incident(),
                            &id,
                            &FieldMap::new().with("short_description", short.as_str()),
                            &Default::default(),
                        )
                        .await
                        .unwrap();
                    title.insert(id, short);
                } else {
                    let p = rng.random_range(1..=4).to_string();
                    users
                        .sn
                        .update(
                            &incident(),
                            &id,
                            &FieldMap::new().with("priority", FieldValue::Choice(p.clone())),
                            &Default::default(),
                        )
                        .await
                        .unwrap();
                    priority.insert(id, p);
                }
            }
            40..60 if !tickets.is_empty() => {
                let id = &tickets[rng.random_range(0..tickets.len())];
                if let Some(link) = sync.link_of(Side::Left, id).await.unwrap() {
                    let b = users.ado.get(&bug(), &link.right).await.unwrap();
                    let next = match s(&b, "System.State").as_str() {
                        "New" => "Active",
                        "Active" => "Resolved",
                        _ => "Active",
                    };
                    users
                        .ado
                        .update(
                            &bug(),
                            &b.id,
                            &FieldMap::new().with("System.State", next),
                            &Default::default(),
                        )
                        .await
                        .unwrap();
                    dev_state.insert(id.clone(), next.to_owned());
                }
            }
            60..70 => {
                drop(sync);
                sync = pair(&kernel, &db);
                rebuilt += 1;
            }
            _ => {
                let r = sync.run_once().await;
                stopped += usize::from(!r.is_complete());
                relinked += r.relinked.right;
                // Only waits: a write whose outcome a fault hid holds its item, parked, until
                // the item shows it or the grace is over (ADR 0019).
                assert!(
                    r.parked
                        .iter()
                        .all(|p| p.temporary && p.error.contains("may still land")),
                    "seed {seed}: {:?}",
                    r.parked
                );
            }
        }
        if user_edit {
            sn_sim.control().set_faults(faults(seed + step));
            ado_sim.control().set_faults(faults(seed + step + 1000));
        }
        sn_sim.clock().advance(Duration::from_secs(1));
        ado_sim.clock().advance(Duration::from_secs(1));
    }

    // Edits and faults stop: rounds until one writes nothing.
    sn_sim.control().set_faults(Faults::none());
    ado_sim.control().set_faults(Faults::none());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut quiet = false;
    for _ in 0..8 {
        let r = sync.run_once().await;
        assert!(r.is_complete(), "seed {seed}: {r}");
        assert!(r.parked.is_empty(), "seed {seed}: {:?}", r.parked);
        if r.writes() == 0 {
            quiet = true;
            break;
        }
    }
    assert!(quiet, "seed {seed}: no convergence");
    let check = sync.reconcile().await;
    assert_eq!(
        check.writes(),
        0,
        "seed {seed}: a full comparison finds nothing to do: {check}"
    );

    // No duplicate: one Bug per ticket, each naming its own ticket.
    let (bugs, _) = users
        .ado
        .all_changes(&bug(), &Default::default(), &Default::default())
        .await
        .unwrap();
    assert_eq!(bugs.len(), tickets.len(), "seed {seed}: one Bug per ticket");
    let mut numbers: Vec<String> = bugs
        .iter()
        .map(|b| s(b, "Custom.ServiceNowTicket"))
        .collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), tickets.len(), "seed {seed}");

    // No lost update: each side's last edit is on both sides.
    let status = |st: &str| match st {
        "New" => "New",
        "Active" => "In development",
        "Resolved" => "Fixed, awaiting release",
        other => panic!("{other}"),
    };
    for id in &tickets {
        let t = users.sn.get(&incident(), id).await.unwrap();
        let link = sync.link_of(Side::Left, id).await.unwrap().expect("linked");
        let b = users.ado.get(&bug(), &link.right).await.unwrap();
        assert_eq!(
            s(&b, "System.Title"),
            format!("{}: {}", s(&t, "number"), title[id]),
            "seed {seed}"
        );
        assert_eq!(s(&t, "priority"), priority[id], "seed {seed}");
        assert_eq!(
            s(&b, "Microsoft.VSTS.Common.Priority"),
            priority[id],
            "seed {seed}"
        );
        let state = dev_state.get(id).map_or("New", String::as_str);
        assert_eq!(s(&b, "System.State"), state, "seed {seed}");
        assert_eq!(s(&t, "u_dev_status"), status(state), "seed {seed}");
        if dev_state.get(id).is_some_and(|st| st == "Resolved") {
            assert_eq!(s(&t, "state"), "6", "seed {seed}");
        }
    }
    // Every seed must exercise the fault paths, or the test proves little.
    assert!(stopped > 0, "seed {seed}: no round was stopped by a fault");
    assert!(rebuilt > 0, "seed {seed}: the process was never rebuilt");
    relinked
}

#[tokio::test]
async fn random_edits_faults_and_restarts_converge_without_duplicates_or_lost_updates() {
    // 60 more seeds passed when this was written; seed 204 once caught defaults passing for
    // unchanged values on a relinked pair.
    // WORKBRIDGE_RANDOM_SEEDS=N runs N more seeds after these (the long run).
    let more: u64 = std::env::var("WORKBRIDGE_RANDOM_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut relinked = 0;
    for seed in [11, 23, 42, 100, 101, 102, 204, 231]
        .into_iter()
        .chain(1000..1000 + more)
    {
        relinked += scenario(seed).await;
    }
    // Replies lost after a create was applied must have been met and healed.
    assert!(relinked > 0, "no lost create reply was exercised");
}
