//! The incident-escalation scenario end to end: ServiceNow and Azure DevOps simulators, the
//! documented spec, the sync kernel with its SQLite store. Every synced field is asserted.

use std::sync::Arc;

use workbridge::sync::{MemoryStore, Side, SqliteStore, SyncOptions, SyncPair};
use workbridge::{FieldMap, FieldValue, NewComment, Repository, RepositoryExt, Visibility, Write};

use crate::common::{bug, incident, s, sides, sims, software_ticket, spec, temp_db};

#[tokio::test]
async fn incident_escalation_end_to_end() {
    let sims = sims().await;
    let sys = sides(&sims, 3);
    let store = Arc::new(SqliteStore::open(temp_db("escalation")).unwrap());
    let pair = SyncPair::new(
        sys.sn.clone(),
        sys.ado.clone(),
        spec("incident_escalation.toml"),
        store,
    )
    .unwrap();

    let ticket = sys
        .sn
        .create(
            &incident(),
            &FieldMap::new()
                .with("short_description", "Invoices print blank")
                .with("description", "Since Monday.\nAll printers in Lyon.")
                .with("category", FieldValue::Choice("software".into()))
                .with("priority", FieldValue::Choice("2".into())),
            &Default::default(),
        )
        .await
        .unwrap();
    let hardware = sys
        .sn
        .create(
            &incident(),
            &FieldMap::new()
                .with("short_description", "Broken chair")
                .with("category", FieldValue::Choice("hardware".into())),
            &Default::default(),
        )
        .await
        .unwrap();
    let number = s(&ticket, "number");

    // Round 1: one Bug, carrying the ticket.
    let r1 = pair.run_once().await;
    assert!(r1.is_complete(), "{r1}");
    assert_eq!(r1.created.right, 1, "{r1}");
    assert!(
        pair.link_of(Side::Left, &hardware.id)
            .await
            .unwrap()
            .is_none(),
        "out of scope"
    );
    let link = pair.link_of(Side::Left, &ticket.id).await.unwrap().unwrap();
    let b = sys.ado.get(&bug(), &link.right).await.unwrap();
    assert_eq!(
        s(&b, "System.Title"),
        format!("{number}: Invoices print blank")
    );
    assert_eq!(
        b.field("Microsoft.VSTS.TCM.ReproSteps"),
        Some(&FieldValue::Html(
            "Since Monday.<br>All printers in Lyon.".into()
        ))
    );
    assert_eq!(s(&b, "Microsoft.VSTS.Common.Priority"), "2");
    assert_eq!(s(&b, "Microsoft.VSTS.Common.Severity"), "2 - High");
    assert_eq!(s(&b, "Custom.ServiceNowTicket"), number);
    assert_eq!(s(&b, "System.State"), "New");
    let t = sys.sn.get(&incident(), &ticket.id).await.unwrap();
    assert_eq!(s(&t, "u_dev_status"), "New");
    assert_eq!(
        s(&t, "description"),
        "Since Monday.\nAll printers in Lyon.",
        "the text came back unmangled"
    );

    // Dev start work and ask a question; Ops talk to the customer and keep a private note.
    sys.ado
        .update(
            &bug(),
            &b.id,
            &FieldMap::new().with("System.State", "Active"),
            &Default::default(),
        )
        .await
        .unwrap();
    sys.ado
        .add_comment(
            &bug(),
            &b.id,
            &NewComment::public("Which printer driver version?"),
        )
        .await
        .unwrap();
    sys.sn
        .add_comment(
            &incident(),
            &ticket.id,
            &NewComment::public("Customer: it started after the update"),
        )
        .await
        .unwrap();
    sys.sn
        .add_comment(
            &incident(),
            &ticket.id,
            &NewComment::internal("VIP account, keep an eye"),
        )
        .await
        .unwrap();

    let r2 = pair.run_once().await;
    assert!(r2.is_complete(), "{r2}");
    let t = sys.sn.get(&incident(), &ticket.id).await.unwrap();
    assert_eq!(s(&t, "u_dev_status"), "In development");
    let notes = sys.sn.comments(&incident(), &ticket.id).await.unwrap();
    let dev_question = notes
        .iter()
        .find(|c| c.body.contains("driver version"))
        .expect("Dev's comment on the ticket");
    assert_eq!(
        dev_question.visibility,
        Visibility::Internal,
        "Dev discussion goes to work notes"
    );
    let on_bug = sys.ado.comments(&bug(), &b.id).await.unwrap();
    assert!(on_bug.iter().any(|c| c.body.contains("after the update")));
    assert!(
        !on_bug.iter().any(|c| c.body.contains("VIP")),
        "work notes stay in ServiceNow"
    );

    // Ops raise the priority; Dev resolve the Bug.
    sys.sn
        .update(
            &incident(),
            &ticket.id,
            &FieldMap::new().with("priority", FieldValue::Choice("1".into())),
            &Default::default(),
        )
        .await
        .unwrap();
    sys.ado
        .update(
            &bug(),
            &b.id,
            &FieldMap::new().with("System.State", "Resolved"),
            &Default::default(),
        )
        .await
        .unwrap();
    let r3 = pair.run_once().await;
    assert!(r3.is_complete(), "{r3}");
    assert!(r3.parked.is_empty(), "{:?}", r3.parked);
    let b = sys.ado.get(&bug(), &b.id).await.unwrap();
    assert_eq!(s(&b, "Microsoft.VSTS.Common.Priority"), "1");
    assert_eq!(
        s(&b, "System.State"),
        "Resolved",
        "Ops' edit did not undo Dev's"
    );
    let t = sys.sn.get(&incident(), &ticket.id).await.unwrap();
    assert_eq!(s(&t, "u_dev_status"), "Fixed, awaiting release");
    assert_eq!(s(&t, "state"), "6");
    assert_eq!(s(&t, "close_code"), "Solution provided");
    assert_eq!(
        s(&t, "close_notes"),
        format!(
            "Fixed by development in Azure DevOps bug {}: {number}: Invoices print blank",
            b.id
        )
    );

    // Converged: no more writes.
    let r4 = pair.run_once().await;
    assert_eq!(r4.writes(), 0, "{r4}");

    // QA's verification fails: the Bug is reopened, and the ticket follows it back.
    sys.ado
        .update(
            &bug(),
            &b.id,
            &FieldMap::new().with("System.State", "Active"),
            &Default::default(),
        )
        .await
        .unwrap();
    let r5 = pair.run_once().await;
    assert!(r5.is_complete() && r5.parked.is_empty(), "{r5}");
    let t = sys.sn.get(&incident(), &ticket.id).await.unwrap();
    assert_eq!(s(&t, "state"), "2", "the reopen reached the ticket");
    assert_eq!(s(&t, "u_dev_status"), "In development");
    let r6 = pair.run_once().await;
    assert_eq!(r6.writes(), 0, "{r6}");
    assert_eq!(r4.comments_copied.left + r4.comments_copied.right, 0);
    let (all, _) = sys
        .ado
        .all_changes(&bug(), &Default::default(), &Default::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
}

#[tokio::test]
async fn an_initial_sync_creates_bugs_in_batches() {
    let sims = sims().await;
    let sys = sides(&sims, 3);
    escalated_tickets(&*sys.sn, 120).await;
    let pair = SyncPair::new(
        sys.sn.clone(),
        sys.ado.clone(),
        spec("incident_escalation.toml"),
        Arc::new(MemoryStore::new()),
    )
    .unwrap();
    sims.ado.control().reset_requests();
    sims.sn.control().reset_requests();
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    assert_eq!(r.created.right, 120);
    // Each new Bug's state flows back to its ticket: the page's 120 conditional updates go
    // out together — one Batch API request reading their versions, then Batch API requests
    // of the adapter's write_batch (100) — instead of a read and a PATCH per ticket (240
    // requests).
    let sn = sims.sn.control();
    assert_eq!(
        sn.requests_to("PATCH /api/now/table/{table}/{sys_id}"),
        0,
        "{:?}",
        sn.requests()
    );
    assert_eq!(
        sn.requests_to("POST /api/now/v1/batch"),
        1 + 120u64.div_ceil(100),
        "{:?}",
        sn.requests()
    );
    // The tickets' comments and attachments are listed for the page at once (journal and
    // Attachment API queries per 100 tickets), not per ticket with an existence check after
    // each empty list (480 requests).
    assert_eq!(
        sn.requests_to("GET /api/now/table/{table}/{sys_id}"),
        0,
        "{:?}",
        sn.requests()
    );
    assert!(sn.total_requests() <= 12, "{:?}", sn.requests());
    // One $batch of creates, instead of a lookup and a create per Bug (240 requests). Keys in
    // tags cannot be asked for by prefix, so this first round looks the new tickets up, 50
    // keys per WIQL query, beside the Bugs' change scan (with a correlation field: one query
    // asks whether any Bug carries a key, `sync_scale`).
    assert_eq!(
        sims.ado
            .control()
            .requests_to("POST /{org}/{project}/_apis/wit/wiql"),
        1 + 120u64.div_ceil(50),
        "{:?}",
        sims.ado.control().requests()
    );
    let requests = sims.ado.control().total_requests();
    assert!(
        requests <= 20,
        "{requests} Azure DevOps requests for 120 Bugs"
    );
    // The Bugs' change scan reads none of the 120 it sees the sync made: its WIQL leaves them
    // out at the revs the creates left (one `workitemsbatch` before).
    assert_eq!(
        sims.ado
            .control()
            .requests_to("POST /{org}/{project}/_apis/wit/workitemsbatch")
            + sims
                .ado
                .control()
                .requests_to("POST /{org}/_apis/wit/workitemsbatch"),
        0,
        "{:?}",
        sims.ado.control().requests()
    );
    // The page's 120 creates in one `$batch`: the target takes 200 at once.
    assert_eq!(
        sims.ado
            .control()
            .requests_to("PATCH /{org}/_apis/wit/$batch"),
        1,
        "{:?}",
        sims.ado.control().requests()
    );
    assert_eq!(pair.run_once().await.writes(), 0);
    // Once the servers are past the second the tickets and Bugs were written in, an idle round
    // costs one change read per side, however many items share that second (and on ServiceNow
    // the read of the attachment feed, for files attached to unchanged tickets).
    for clock in [sims.sn.clock(), sims.ado.clock()] {
        clock.advance(std::time::Duration::from_secs(2));
    }
    assert_eq!(pair.run_once().await.writes(), 0);
    sims.sn.control().reset_requests();
    sims.ado.control().reset_requests();
    let idle = pair.run_once().await;
    assert!(idle.is_complete(), "{idle}");
    assert_eq!(
        sims.sn.control().total_requests(),
        2,
        "{:?}",
        sims.sn.control().requests()
    );
    assert_eq!(
        sims.ado.control().total_requests(),
        1,
        "{:?}",
        sims.ado.control().requests()
    );
}

/// One ticket edited costs three requests end to end: the tickets' change page, the Bug's
/// PATCH (on the rev its link knows: no read of the Bug first, ADR 0022) and the Bugs' change
/// query, which leaves the sync's own write out (no read of the echo).
#[tokio::test]
async fn one_edited_ticket_costs_three_requests_end_to_end() {
    let sims = sims().await;
    let sys = sides(&sims, 0);
    let pair = SyncPair::new(
        sys.sn.clone(),
        sys.ado.clone(),
        spec("incident_escalation.toml"),
        Arc::new(MemoryStore::new()),
    )
    .unwrap()
    .with_options(SyncOptions::default().comments(false).attachments(false));
    let ticket = software_ticket(&sys.sn, "Reports time out").await;
    assert!(pair.run_once().await.is_complete());
    while pair.run_once().await.writes() > 0 {}
    for clock in [sims.sn.clock(), sims.ado.clock()] {
        clock.advance(std::time::Duration::from_secs(2));
    }
    pair.run_once().await;
    sys.sn
        .update(
            &incident(),
            &ticket.id,
            &FieldMap::new().with("short_description", "Reports time out after 30 s"),
            &Default::default(),
        )
        .await
        .unwrap();
    sims.sn.control().reset_requests();
    sims.ado.control().reset_requests();
    let r = pair.run_once().await;
    assert!(r.is_complete() && r.updated.right == 1, "{r}");
    let (sn, ado) = (sims.sn.control(), sims.ado.control());
    assert_eq!(sn.total_requests(), 1, "{:?}", sn.requests());
    assert_eq!(ado.total_requests(), 2, "{:?}", ado.requests());
    let link = pair.link_of(Side::Left, &ticket.id).await.unwrap().unwrap();
    assert_eq!(
        s(
            &sys.ado.get(&bug(), &link.right).await.unwrap(),
            "System.Title"
        ),
        "INC0010001: Reports time out after 30 s"
    );
    // And the round after is idle: one request a side.
    for clock in [sims.sn.clock(), sims.ado.clock()] {
        clock.advance(std::time::Duration::from_secs(2));
    }
    sims.sn.control().reset_requests();
    sims.ado.control().reset_requests();
    assert_eq!(pair.run_once().await.writes(), 0);
    assert_eq!(sims.sn.control().total_requests(), 1);
    assert_eq!(
        sims.ado.control().total_requests(),
        1,
        "{:?}",
        sims.ado.control().requests()
    );
}

#[tokio::test]
async fn ticket_and_bug_states_move_together_both_ways() {
    let sims = sims().await;
    let sys = sides(&sims, 0);
    let pair = SyncPair::new(
        sys.sn.clone(),
        sys.ado.clone(),
        spec("state_sync.toml"),
        Arc::new(MemoryStore::new()),
    )
    .unwrap();
    let ticket = software_ticket(&sys.sn, "Checkout times out").await;
    let r = pair.run_once().await;
    assert!(r.is_complete() && r.created.right == 1, "{r}");
    let link = pair.link_of(Side::Left, &ticket.id).await.unwrap().unwrap();
    let bug_state = || async {
        s(
            &sys.ado.get(&bug(), &link.right).await.unwrap(),
            "System.State",
        )
    };
    let ticket_state = || async { s(&sys.sn.get(&incident(), &ticket.id).await.unwrap(), "state") };
    assert_eq!(bug_state().await, "New");
    let steps: [(&str, &str, &str); 5] = [
        // (who moves, to what, what the other side must show)
        ("ops", "2", "Active"),
        ("dev", "Resolved", "6"),
        ("ops", "2", "Active"), // Ops reopen the ticket: the Bug is active again
        ("ops", "6", "Resolved"),
        ("ops", "7", "Closed"),
    ];
    for (who, to, expect) in steps {
        if who == "ops" {
            sys.sn
                .update(
                    &incident(),
                    &ticket.id,
                    &if to == "7" || to == "6" {
                        FieldMap::new()
                            .with("state", FieldValue::Choice(to.into()))
                            .with("close_code", "Solution provided")
                            .with("close_notes", "done")
                    } else {
                        FieldMap::new().with("state", FieldValue::Choice(to.into()))
                    },
                    &Default::default(),
                )
                .await
                .unwrap_or_else(|e| panic!("ops to {to}: {e}"));
        } else {
            sys.ado
                .update(
                    &bug(),
                    &link.right,
                    &FieldMap::new().with("System.State", to),
                    &Default::default(),
                )
                .await
                .unwrap();
        }
        let r = pair.run_once().await;
        assert!(r.is_complete() && r.parked.is_empty(), "{who} to {to}: {r}");
        let seen = if who == "ops" {
            bug_state().await
        } else {
            ticket_state().await
        };
        assert_eq!(seen, expect, "{who} moved to {to}");
        let quiet = pair.run_once().await;
        assert_eq!(quiet.writes(), 0, "after {who} to {to}: {quiet}");
    }
    let t = sys.sn.get(&incident(), &ticket.id).await.unwrap();
    assert_eq!(s(&t, "state"), "7");
}

/// A page's write-backs, in several requests, go out together: as many at once as the bound
/// allows (the kernel's `SyncOptions::concurrency` for its calls, the client's
/// `max_concurrency` for a call's Batch API requests), not one after the other (wall time is
/// requests × latency ÷ the bound, not requests × latency).
#[tokio::test]
async fn a_pages_write_requests_go_out_together_within_the_bound() {
    let sims = sims().await;
    let sys = sides(&sims, 3);
    escalated_tickets(&*sys.sn, 60).await;
    let sn = Arc::new(
        workbridge_servicenow::ServiceNowRepository::new(
            workbridge_servicenow::ServiceNowConfig::builder(sims.sn.url())
                .basic("admin", "admin")
                .write_batch(10)
                .client_options(
                    workbridge_http::ClientOptions::default()
                        .allow_http(true)
                        .max_concurrency(3),
                )
                .build(),
        )
        .unwrap(),
    );
    let pair = SyncPair::new(
        sn,
        sys.ado.clone(),
        spec("incident_escalation.toml"),
        Arc::new(MemoryStore::new()),
    )
    .unwrap()
    .with_options(
        workbridge::sync::SyncOptions::default()
            .concurrency(3)
            .comments(false)
            .attachments(false),
    );
    let c = sims.sn.control();
    c.set_faults(workbridge_sim::Faults::none().latency(std::time::Duration::from_millis(20)));
    c.reset_requests();
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    assert_eq!(
        c.requests_to("POST /api/now/v1/batch"),
        6,
        "{:?}",
        c.requests()
    );
    assert_eq!(c.most_in_flight(), 3);
}

/// `n` tickets of category `software`, written in one `write_many`.
async fn escalated_tickets(sn: &dyn Repository, n: usize) {
    let writes: Vec<Write> = (0..n)
        .map(|i| {
            Write::create(
                incident(),
                FieldMap::new()
                    .with("short_description", format!("Defect {i}"))
                    .with("category", FieldValue::Choice("software".into())),
            )
        })
        .collect();
    for r in sn.write_many(&writes).await.unwrap() {
        r.unwrap();
    }
}

/// The kernel reads only what the spec names: every change scan and twin read of ServiceNow
/// asks for the spec's fields (`sysparm_fields`) and every `workitemsbatch` of Azure DevOps
/// names its fields, so pages, twins and baselines do not carry whole records (a ticket's
/// `work_notes`, a Bug's history) through a backfill.
#[tokio::test]
async fn the_kernel_reads_only_the_fields_the_spec_names() {
    let sims = sims().await;
    let sys = sides(&sims, 3);
    escalated_tickets(&*sys.sn, 30).await;
    // The Bugs read before each merge (merged unread, as their links know them, otherwise).
    let pair = SyncPair::new(
        sys.sn.clone(),
        sys.ado.clone(),
        spec("incident_escalation.toml"),
        Arc::new(MemoryStore::new()),
    )
    .unwrap()
    .with_options(SyncOptions::default().read_twins_first(true));
    pair.run_once().await;
    // Ops edit every ticket: the next round reads the tickets and their Bugs.
    for t in sys
        .sn
        .changes(&incident(), &Default::default(), &Default::default())
        .await
        .unwrap()
        .items
    {
        sys.sn
            .update(
                &incident(),
                &t.id,
                &FieldMap::new().with("short_description", "Edited"),
                &Default::default(),
            )
            .await
            .unwrap();
    }
    sims.sn.control().record_exchanges(true);
    sims.ado.control().record_exchanges(true);
    let r = pair.run_once().await;
    assert!(r.is_complete() && r.updated.right >= 30, "{r}");
    let scans: Vec<String> = sims
        .sn
        .control()
        .exchanges()
        .into_iter()
        .filter(|e| e.method == "GET" && e.path.ends_with("/table/incident"))
        .map(|e| e.query.unwrap_or_default())
        .collect();
    assert!(!scans.is_empty());
    for q in &scans {
        let fields = q
            .split('&')
            .find_map(|p| p.strip_prefix("sysparm_fields="))
            .unwrap_or_else(|| panic!("a read of whole records: {q}"));
        let fields = fields.replace("%2C", ",");
        assert!(fields.contains("short_description"), "{fields}");
        assert!(!fields.contains("work_notes"), "{fields}");
    }
    let reads: Vec<serde_json::Value> = sims
        .ado
        .control()
        .exchanges()
        .into_iter()
        .filter(|e| e.path.ends_with("/workitemsbatch"))
        .map(|e| serde_json::from_slice::<serde_json::Value>(&e.request_body).unwrap())
        // The adapter's own listing of attachments reads relations, which the API gives only
        // with whole items.
        .filter(|b| b.get("$expand").is_none())
        .collect();
    assert!(!reads.is_empty());
    for body in &reads {
        let fields = body["fields"]
            .as_array()
            .unwrap_or_else(|| panic!("whole Bugs: {body}"));
        assert!(!fields.iter().any(|f| f == "System.History"), "{body}");
    }
    assert!(
        reads.iter().any(|b| b["fields"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "System.Title"))),
        "{reads:?}"
    );
}

/// The ServiceNow write-backs of a backfill (each new Bug's state onto its ticket) cost their
/// Batch API requests alone when versions are checked on the answers
/// (`VersionCheck::AfterWrite`); checked before (the default), one read of the versions per
/// `read_batch` tickets comes first.
#[tokio::test]
async fn checked_after_the_write_the_write_backs_read_no_versions() {
    use workbridge::servicenow::VersionCheck;
    let mut batches = Vec::new();
    for check in [VersionCheck::ReadBefore, VersionCheck::AfterWrite] {
        let sims = sims().await;
        let sys = crate::common::sides_checked(&sims, 3, check);
        escalated_tickets(&*sys.sn, 120).await;
        let pair = SyncPair::new(
            sys.sn.clone(),
            sys.ado.clone(),
            spec("incident_escalation.toml"),
            Arc::new(MemoryStore::new()),
        )
        .unwrap();
        sims.sn.control().record_exchanges(true);
        let r = pair.run_once().await;
        assert!(r.is_complete() && r.created.right == 120, "{r}");
        // Reads by id of the tickets, alone or as sub-requests of Batch API requests; and
        // the PATCHes among those sub-requests.
        let (mut reads, mut patches) = (0, 0);
        for e in sims.sn.control().exchanges() {
            if e.method == "GET"
                && e.path.ends_with("/table/incident")
                && e.query.as_deref().is_some_and(|q| q.contains("sys_idIN"))
            {
                reads += 1;
            }
            if e.path.ends_with("/v1/batch") {
                let body: serde_json::Value = serde_json::from_slice(&e.request_body).unwrap();
                for r in body["rest_requests"].as_array().unwrap() {
                    let url = r["url"].as_str().unwrap_or_default();
                    match r["method"].as_str() {
                        Some("GET") if url.contains("sys_idIN") => reads += 1,
                        Some("PATCH") => patches += 1,
                        _ => {}
                    }
                }
            }
        }
        let requests = sims.sn.control().requests();
        if check == VersionCheck::AfterWrite {
            assert_eq!(reads, 0, "{requests:?}");
        } else {
            assert!(reads >= 2, "{requests:?}");
        }
        batches.push(patches);
        let t = sys
            .sn
            .changes(&incident(), &Default::default(), &Default::default())
            .await
            .unwrap();
        assert!(
            t.items
                .iter()
                .filter(|i| s(i, "u_dev_status") == "New")
                .count()
                >= 120,
            "{check:?}: the write-backs did not land"
        );
    }
    assert_eq!(batches[0], batches[1], "the same writes either way");
    assert!(batches[0] >= 120);
}

/// A log buffer for a test's tracing subscriber.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every event of a round — the kernel's, each adapter's requests — carries the round's span
/// (pair, job, its number in the process) and its pass's (side), and an item's lookup and
/// create the item's: an HTTP answer in the log is tied to its pair, round, side and item.
#[tokio::test]
async fn a_rounds_requests_are_logged_within_its_spans() {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let sims = sims().await;
    let sys = sides(&sims, 0);
    let pair = SyncPair::builder()
        .left(sys.sn.clone())
        .right(sys.ado.clone())
        .mapping(spec("incident_escalation.toml"))
        .store(Arc::new(MemoryStore::new()))
        .id("esc")
        .build()
        .await
        .unwrap();
    let ticket = software_ticket(&sys.sn, "Spans").await;
    assert!(pair.run_once().await.is_complete());
    assert!(pair.run_once().await.is_complete());
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let answered: Vec<&str> = text.lines().filter(|l| l.contains("answered")).collect();
    assert!(
        answered.iter().any(|l| l.contains("round{pair=esc")
            && l.contains("n=1")
            && l.contains("pass{side=left}")),
        "{text}"
    );
    assert!(
        answered
            .iter()
            .any(|l| l.contains("n=2") && l.contains("pass{side=right}")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains(&format!("item{{id={}}}", ticket.id)) && l.contains("twin created")),
        "{text}"
    );
}
