//! Writes are fenced by the lease (ADR 0011): a worker whose write is still being retried when
//! its lease runs out does not send it, so it cannot land beside the next worker's writes —
//! ServiceNow has no conditional write that would refuse it.

use std::sync::Arc;
use std::time::Duration;

use workbridge::servicenow::VersionCheck;
use workbridge::sync::{
    Copied, CreateIntent, Link, Parked, Side, SqliteStore, StateStore, SyncOptions, SyncPair,
};
use workbridge::{FieldMap, ItemId, Repository, RepositoryExt};

use crate::common::{
    Sides, bug, incident, move_bug, s, sides, sides_checked, sims, software_ticket, spec, temp_db,
};

/// The escalation pair on a fresh SQLite store, and a software ticket it has linked to a Bug.
async fn linked_ticket(
    sys: &Sides,
    db: &str,
    options: SyncOptions,
) -> (SyncPair, workbridge::WorkItem, workbridge::sync::Link) {
    let pair = SyncPair::new(
        sys.sn.clone(),
        sys.ado.clone(),
        spec("incident_escalation.toml"),
        Arc::new(SqliteStore::open(temp_db(db)).unwrap()),
    )
    .unwrap()
    .with_options(options);
    let ticket = software_ticket(&sys.sn, "Invoices print blank").await;
    assert!(pair.run_once().await.is_complete());
    let link = pair.link_of(Side::Left, &ticket.id).await.unwrap().unwrap();
    (pair, ticket, link)
}

#[tokio::test]
async fn a_worker_retrying_past_its_lease_does_not_overwrite_the_next_worker() {
    let sims = sims().await;
    let store = Arc::new(SqliteStore::open(temp_db("fencing")).unwrap());
    let options = SyncOptions::default()
        .lease_ttl(Duration::from_secs(1))
        .comments(false)
        .attachments(false);
    // Two workers, each with its own clients (two processes in a deployment).
    let (a_sides, b_sides) = (sides(&sims, 3), sides(&sims, 3));
    let (a, b) = two_workers(&a_sides, &b_sides, &store, &options);
    let sn = a_sides.sn.clone();
    let ado = a_sides.ado.clone();

    let ticket = software_ticket(&sn, "Invoices print blank").await;
    let r = a.run_once().await;
    assert!(r.is_complete() && r.created.right == 1, "{r}");
    let link = a.link_of(Side::Left, &ticket.id).await.unwrap().unwrap();
    let dev = |state: &'static str| move_bug(&ado, &link.right, state);

    // Dev activates the Bug. Worker A reads it and writes the dev status to the ticket; the
    // PATCH is answered 503 with `Retry-After: 2`, so A's client would send it again in 2 s —
    // after A's 1 s lease has run out.
    dev("Active").await;
    sims.sn.control().fail_next_of("PATCH", 1, 503, Some(2));
    let started = tokio::time::Instant::now();
    let a_round = tokio::spawn(async move { a.run_once().await });
    // Meanwhile Dev resolves the Bug, and once A's lease has expired worker B takes the pair
    // and writes the newer dev status.
    tokio::time::sleep(Duration::from_millis(300)).await;
    dev("Resolved").await;
    tokio::time::sleep_until(started + Duration::from_millis(1300)).await;
    let rb = b.run_once().await;
    assert!(rb.is_complete(), "worker B: {rb}");
    assert_eq!(
        s(
            &sn.get(&incident(), &ticket.id).await.unwrap(),
            "u_dev_status"
        ),
        "Fixed, awaiting release"
    );

    // A's round ends without sending its stale write again: it stopped at the write's deadline.
    let ra = a_round.await.unwrap();
    tokio::time::sleep_until(started + Duration::from_millis(2500)).await;
    assert_eq!(
        s(
            &sn.get(&incident(), &ticket.id).await.unwrap(),
            "u_dev_status"
        ),
        "Fixed, awaiting release",
        "a stale write of worker A landed after worker B's: {ra}"
    );
    let stopped = ra
        .stopped
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(stopped.contains("deadline"), "worker A: {ra}");
    // And the next round of either worker has nothing to repair.
    let again = b.run_once().await;
    assert!(again.is_complete() && again.writes() == 0, "{again}");
}

/// ServiceNow has no conditional write; an Ops edit that lands between the adapter's version
/// check and its PATCH shows in the PATCH's answer (`sys_mod_count` grew by two). The write is
/// reported as a conflict after the fact, so the kernel reads again and the Ops edit flows to
/// the Bug, instead of being taken into the baseline as if the sync had written it.
#[tokio::test]
async fn an_ops_edit_between_check_and_write_is_not_taken_for_the_syncs_own() {
    ops_edit_between_read_and_write(VersionCheck::ReadBefore).await;
}

/// The same with the version checked on the write's answer alone (no read before it): the
/// edit lands between the kernel's read of the ticket and its PATCH, and still flows.
#[tokio::test]
async fn checked_after_the_write_an_ops_edit_in_between_still_flows() {
    ops_edit_between_read_and_write(VersionCheck::AfterWrite).await;
}

async fn ops_edit_between_read_and_write(check: VersionCheck) {
    let sims = sims().await;
    let sys = sides_checked(&sims, 3, check);
    let pair = SyncPair::new(
        sys.sn.clone(),
        sys.ado.clone(),
        spec("incident_escalation.toml"),
        Arc::new(SqliteStore::open(temp_db("interleaved")).unwrap()),
    )
    .unwrap();
    let ticket = software_ticket(&sys.sn, "Invoices print blank").await;
    let number = s(&ticket, "number");
    assert!(pair.run_once().await.is_complete());
    let link = pair.link_of(Side::Left, &ticket.id).await.unwrap().unwrap();
    move_bug(&sys.ado, &link.right, "Active").await;

    // Every ServiceNow answer now takes 400 ms; the moment the sync's PATCH of the ticket
    // arrives (it is counted before it is handled), Ops rename the ticket in the UI.
    let control = sims.sn.control();
    control.set_faults(workbridge_sim::Faults::none().latency(Duration::from_millis(400)));
    let patches = || {
        control
            .requests()
            .iter()
            .filter(|(route, _)| route.starts_with("PATCH "))
            .map(|(_, n)| *n)
            .sum::<u64>()
    };
    let before = patches();
    let round = tokio::spawn(async move { pair.run_once().await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while patches() == before {
        assert!(tokio::time::Instant::now() < deadline, "no PATCH was sent");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(sims.sn.update(
        "incident",
        ticket.id.as_str(),
        &[("short_description", "Invoices print blank in Lyon")],
        "ops"
    ));
    let r = round.await.unwrap();
    control.set_faults(workbridge_sim::Faults::none());
    assert!(r.is_complete(), "{r}");

    let b = sys.ado.get(&bug(), &link.right).await.unwrap();
    assert_eq!(
        s(&b, "System.Title"),
        format!("{number}: Invoices print blank in Lyon"),
        "the Ops edit was lost: {r}"
    );
    let t = sys.sn.get(&incident(), &ticket.id).await.unwrap();
    assert_eq!(s(&t, "u_dev_status"), "In development");
    assert_eq!(s(&t, "short_description"), "Invoices print blank in Lyon");
}

/// A create held on the wire past the client's timeout lands after the worker gave up on it.
/// The same process must not create the twin again while that create may still land: its intent
/// holds the item for the grace, and the late twin is then found by its key and linked.
#[tokio::test]
async fn a_create_that_lands_after_its_timeout_is_not_made_twice() {
    let sims = sims().await;
    let options = workbridge_http::ClientOptions::default()
        .allow_http(true)
        .timeout(Some(Duration::from_millis(700)))
        .retry(workbridge_http::RetryConfig::disabled());
    let sn = Arc::new(
        workbridge_servicenow::ServiceNowRepository::new(
            workbridge_servicenow::ServiceNowConfig::builder(sims.sn.url())
                .basic("admin", "admin")
                .client_options(options.clone())
                .build(),
        )
        .unwrap(),
    );
    let ado = Arc::new(
        workbridge_azure_devops::AzureDevOpsRepository::new(
            workbridge_azure_devops::AzureDevOpsConfig::builder(
                sims.ado.collection_url(),
                "Fabrikam",
            )
            .pat("TOKEN")
            .client_options(options)
            .build(),
        )
        .unwrap(),
    );
    let pair = SyncPair::new(
        sn.clone(),
        ado.clone(),
        spec("incident_escalation.toml"),
        Arc::new(SqliteStore::open(temp_db("late-create")).unwrap()),
    )
    .unwrap()
    .with_options(
        SyncOptions::default()
            .in_flight_grace(Duration::from_secs(3))
            .comments(false)
            .attachments(false),
    );
    let ticket = software_ticket(&sn, "Invoices print blank").await;
    let number = s(&ticket, "number");
    // The Bug's create (`POST …/workitems/$Bug`) is held 1.5 s; the client gives up at 0.7 s.
    sims.ado
        .control()
        .delay_next_of("POST", "/workitems/", Duration::from_millis(1500));
    let first = pair.run_once().await;
    assert!(first.stopped.is_some(), "the create timed out: {first}");
    // At once, before the held create lands: no second create.
    let again = pair.run_once().await;
    assert_eq!(again.created.right, 0, "{again}");
    // The item waits, parked; the round goes on with the others.
    assert!(again.stopped.is_none(), "{again}");
    assert!(
        again
            .parked
            .iter()
            .any(|p| p.temporary && p.id == ticket.id && p.error.contains("may still land")),
        "{again}"
    );
    // After the grace the late Bug is found by its key and linked.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    let bugs = ado
        .all_changes(&bug(), &Default::default(), &Default::default())
        .await
        .unwrap()
        .0;
    let twins: Vec<_> = bugs
        .iter()
        .filter(|b| s(b, "Custom.ServiceNowTicket") == number)
        .collect();
    assert_eq!(twins.len(), 1, "{r}");
    let link = pair.link_of(Side::Left, &ticket.id).await.unwrap().unwrap();
    assert_eq!(link.right, twins[0].id);
}

/// A round whose ticket write landed but whose Bug write did not: the link must learn what
/// landed. Before, it kept the old baselines, so when Dev moved the Bug back to the state of the
/// old baseline the change looked like no change, and the ticket kept the dev status the sync
/// itself had written from the intermediate state (the soak's wire faults found it).
#[tokio::test]
async fn when_only_one_side_of_a_merge_landed_the_next_round_still_sees_the_other() {
    let sims = sims().await;
    let sys = sides(&sims, 0);
    // The Bug is read before the merge, so that the round plans both writes at once (merged
    // unread, as its link knows it, the Bug's write would be refused first and then read).
    let (pair, ticket, link) = linked_ticket(
        &sys,
        "one-side-landed",
        SyncOptions::default()
            .comments(false)
            .attachments(false)
            .read_twins_first(true),
    )
    .await;
    let number = s(&ticket, "number");
    let dev = |state: &'static str| move_bug(&sys.ado, &link.right, state);
    dev("Active").await;
    assert!(pair.run_once().await.is_complete());

    // Dev resolves the Bug while Ops rename the ticket; the round writes the ticket (dev status)
    // and then fails writing the Bug's title.
    dev("Resolved").await;
    sys.sn
        .update(
            &incident(),
            &ticket.id,
            &FieldMap::new().with("short_description", "Invoices print blank in Lyon"),
            &Default::default(),
        )
        .await
        .unwrap();
    sims.ado.control().fail_next_of("PATCH", 1, 503, None);
    let r = pair.run_once().await;
    assert!(r.stopped.is_some(), "the Bug write failed: {r}");
    let t = sys.sn.get(&incident(), &ticket.id).await.unwrap();
    assert_eq!(s(&t, "u_dev_status"), "Fixed, awaiting release");

    // Dev reopens the Bug: back to the state the old baseline had.
    dev("Active").await;
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    let t = sys.sn.get(&incident(), &ticket.id).await.unwrap();
    assert_eq!(s(&t, "u_dev_status"), "In development", "{r}");
    let b = sys.ado.get(&bug(), &link.right).await.unwrap();
    assert_eq!(
        s(&b, "System.Title"),
        format!("{number}: Invoices print blank in Lyon")
    );
    assert_eq!(pair.run_once().await.writes(), 0);
}

/// A ticket write whose reply was lost did land. Dev then moves the Bug back to the state of the
/// old baseline: without knowing its write landed, the kernel saw no change on the Bug and the
/// ticket kept the dev status written from the state in between. The write is recorded before
/// it is sent (ADR 0012); the next merge finds it landed and learns it.
#[tokio::test]
async fn a_write_whose_reply_was_lost_is_learnt_by_the_next_round() {
    let sims = sims().await;
    let sys = sides(&sims, 0);
    let (pair, ticket, link) = linked_ticket(
        &sys,
        "lost-write-reply",
        SyncOptions::default().comments(false).attachments(false),
    )
    .await;
    move_bug(&sys.ado, &link.right, "Active").await;
    assert!(pair.run_once().await.is_complete());

    move_bug(&sys.ado, &link.right, "Resolved").await;
    sims.sn
        .control()
        .lose_next_reply_of("PATCH", "/api/now/table/incident/");
    let r = pair.run_once().await;
    assert!(r.stopped.is_some(), "the reply was lost: {r}");
    let t = sys.sn.get(&incident(), &ticket.id).await.unwrap();
    assert_eq!(s(&t, "u_dev_status"), "Fixed, awaiting release");

    move_bug(&sys.ado, &link.right, "Active").await;
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    let t = sys.sn.get(&incident(), &ticket.id).await.unwrap();
    assert_eq!(s(&t, "u_dev_status"), "In development", "{r}");
    let quiet = pair.run_once().await;
    assert_eq!(quiet.writes(), 0, "{quiet}");
}

/// A merge whose ticket write landed and whose Bug write failed leaves both items at the
/// versions the link knows. Before, the next round took both for the sync's own echoes and the
/// Bug write was never tried again (the long soak lost a priority so): a link with a pending
/// write is merged again whatever the versions say.
#[tokio::test]
async fn a_pending_write_is_retried_though_both_sides_look_like_echoes() {
    let sims = sims().await;
    let sys = sides(&sims, 0);
    let db = temp_db("pending-echo");
    let pair = || {
        SyncPair::new(
            sys.sn.clone(),
            sys.ado.clone(),
            spec("incident_escalation.toml"),
            Arc::new(SqliteStore::open(&db).unwrap()),
        )
        .unwrap()
        .with_options(SyncOptions::default().comments(false).attachments(false))
    };
    let ticket = software_ticket(&sys.sn, "Invoices print blank").await;
    let number = s(&ticket, "number");
    // The Bug's create lands but its reply is lost: no link, an intent.
    sims.ado.control().lose_next_reply_of("POST", "/workitems/");
    let r = pair().run_once().await;
    assert!(r.stopped.is_some(), "{r}");
    let bug_id = sys
        .ado
        .all_changes(&bug(), &Default::default(), &Default::default())
        .await
        .unwrap()
        .0
        .into_iter()
        .find(|b| s(b, "Custom.ServiceNowTicket") == number)
        .unwrap()
        .id;
    // Dev resolve it; the next round's right pass passes it by (no link yet, no creates back).
    move_bug(&sys.ado, &bug_id, "Active").await;
    move_bug(&sys.ado, &bug_id, "Resolved").await;
    // Ops raise the priority; the round relinks, writes the ticket, and fails on the Bug.
    sys.sn
        .update(
            &incident(),
            &ticket.id,
            &FieldMap::new().with("priority", workbridge::FieldValue::Choice("1".into())),
            &Default::default(),
        )
        .await
        .unwrap();
    sims.ado.control().fail_next_of("PATCH", 1, 503, None);
    let r = pair().run_once().await;
    assert_eq!(r.relinked.right, 1, "{r}");
    assert!(r.stopped.is_some(), "{r}");
    let t = sys.sn.get(&incident(), &ticket.id).await.unwrap();
    assert_eq!(s(&t, "u_dev_status"), "Fixed, awaiting release");

    let r = pair().run_once().await;
    assert!(r.is_complete(), "{r}");
    let b = sys.ado.get(&bug(), &bug_id).await.unwrap();
    assert_eq!(s(&b, "Microsoft.VSTS.Common.Priority"), "1", "{r}");
    assert_eq!(pair().run_once().await.writes(), 0);
}

/// Dev's comment is copied to the ticket; the PATCH lands but its reply is lost. Before, the
/// next round copied it again: the ticket showed Dev's comment twice, and in the soak, the
/// second copy, claimed by no record, travelled on as a new comment. The next round now finds
/// the unclaimed copy on the ticket and adopts it.
#[tokio::test]
async fn a_comment_copy_whose_reply_was_lost_is_not_copied_twice() {
    let sims = sims().await;
    let sys = sides(&sims, 0);
    let (pair, ticket, link) = linked_ticket(
        &sys,
        "lost-comment-reply",
        SyncOptions::default().attachments(false),
    )
    .await;
    sys.ado
        .add_comment(
            &bug(),
            &link.right,
            &workbridge::NewComment::public("Driver 5.1 fixes it."),
        )
        .await
        .unwrap();
    sims.sn
        .control()
        .lose_next_reply_of("PATCH", "/api/now/table/incident/");
    let r = pair.run_once().await;
    assert!(r.stopped.is_some(), "the reply was lost: {r}");
    for _ in 0..2 {
        let r = pair.run_once().await;
        assert!(r.is_complete(), "{r}");
    }
    let copies = sys
        .sn
        .comments(&incident(), &ticket.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.body.contains("Driver 5.1 fixes it."))
        .count();
    assert_eq!(copies, 1);
    assert_eq!(pair.run_once().await.writes(), 0);
}

/// Dev's attachment is uploaded to the ticket; the upload lands but its reply is lost. Before,
/// the next round uploaded it again. Now the round finds a file of that name and those bytes on
/// the ticket, claimed by no copy record, and adopts it.
#[tokio::test]
async fn an_upload_whose_reply_was_lost_is_not_made_twice() {
    let sims = sims().await;
    let sys = sides(&sims, 0);
    let (pair, ticket, link) = linked_ticket(
        &sys,
        "lost-upload-reply",
        SyncOptions::default().comments(false),
    )
    .await;
    attach_trace(&sys, &link).await;
    sims.sn
        .control()
        .lose_next_reply_of("POST", "/api/now/attachment/file");
    let r = pair.run_once().await;
    assert!(r.stopped.is_some(), "the reply was lost: {r}");
    for _ in 0..2 {
        let r = pair.run_once().await;
        assert!(r.is_complete(), "{r}");
    }
    assert_eq!(traces_on(&sys, &ticket).await, 1);
    assert_eq!(pair.run_once().await.writes(), 0);
}

/// An attachment's upload to the ticket fails (ServiceNow answers 503). Before, the link was
/// stored before the copy: the next round found both items at the versions the link knew, took
/// them for echoes, and never tried the upload again — the file was lost. The link is now
/// stored after the copies, and after a failed copy without versions.
#[tokio::test]
async fn an_upload_that_failed_is_made_by_a_later_round() {
    let sims = sims().await;
    let sys = sides(&sims, 0);
    let (pair, ticket, link) = linked_ticket(
        &sys,
        "failed-upload",
        SyncOptions::default().comments(false),
    )
    .await;
    attach_trace(&sys, &link).await;
    sims.sn.control().fail_next_of("POST", 5, 503, None);
    let r = pair.run_once().await;
    assert!(r.stopped.is_some(), "the upload failed: {r}");
    let mut rounds = 0;
    while !pair.run_once().await.is_complete() {
        rounds += 1;
        assert!(rounds < 5, "ServiceNow answers again");
    }
    assert_eq!(traces_on(&sys, &ticket).await, 1);
    assert_eq!(pair.run_once().await.writes(), 0);
}

/// Dev attach `trace.log` to the linked Bug.
async fn attach_trace(sys: &Sides, link: &workbridge::sync::Link) {
    sys.ado
        .upload(
            &bug(),
            &link.right,
            &workbridge::NewAttachment::new("trace.log", "text/plain", "spooler: page 1 blank"),
        )
        .await
        .unwrap();
}

/// How many files named `trace.log` the ticket has.
async fn traces_on(sys: &Sides, ticket: &workbridge::WorkItem) -> usize {
    sys.sn
        .attachments(&incident(), &ticket.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.file_name == "trace.log")
        .count()
}

/// Ops attach a screenshot to a linked ticket and change nothing else. ServiceNow stores the
/// file as a `sys_attachment` row and leaves the ticket's `sys_updated_on` alone, so `changes`
/// never showed the ticket and the file never reached the Bug (the soak lost Ops' files so).
/// The attachment feed (ADR 0016) finds it.
#[tokio::test]
async fn a_file_attached_to_an_unchanged_ticket_reaches_the_bug() {
    let sims = sims().await;
    let sys = sides(&sims, 0);
    let (pair, ticket, link) = linked_ticket(
        &sys,
        "attachment-feed",
        SyncOptions::default().comments(false),
    )
    .await;
    let before = sys.sn.get(&incident(), &ticket.id).await.unwrap();
    sys.sn
        .upload(
            &incident(),
            &ticket.id,
            &workbridge::NewAttachment::new("screen.png", "image/png", vec![137u8, 80, 78, 71]),
        )
        .await
        .unwrap();
    let after = sys.sn.get(&incident(), &ticket.id).await.unwrap();
    assert_eq!(
        after.version, before.version,
        "attaching leaves the ticket alone"
    );
    let r = pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    assert_eq!(r.attachments_copied.right, 1, "{r}");
    let on_bug = sys.ado.attachments(&bug(), &link.right).await.unwrap();
    assert_eq!(
        on_bug
            .iter()
            .filter(|a| a.file_name == "screen.png")
            .count(),
        1
    );
    let quiet = pair.run_once().await;
    assert_eq!(quiet.writes(), 0, "{quiet}");
}

/// A store whose next `save_link`, once armed, waits before it is made: a worker stalled
/// between creating a twin and storing its link.
#[derive(Debug)]
struct StalledLinks {
    inner: SqliteStore,
    stall: std::sync::Mutex<Option<Duration>>,
}

#[async_trait::async_trait]
impl StateStore for StalledLinks {
    async fn link(&self, p: &str, s: Side, id: &ItemId) -> workbridge::Result<Option<Link>> {
        self.inner.link(p, s, id).await
    }
    async fn save_link(&self, p: &str, l: &Link) -> workbridge::Result<()> {
        let stall = self.stall.lock().unwrap().take();
        if let Some(d) = stall {
            tokio::time::sleep(d).await;
        }
        self.inner.save_link(p, l).await
    }
    async fn retire_link(&self, p: &str, l: &Link) -> workbridge::Result<()> {
        self.inner.retire_link(p, l).await
    }
    async fn links(&self, p: &str) -> workbridge::Result<Vec<Link>> {
        self.inner.links(p).await
    }
    async fn cursor(&self, p: &str, s: Side) -> workbridge::Result<Option<workbridge::Cursor>> {
        self.inner.cursor(p, s).await
    }
    async fn save_cursor(
        &self,
        p: &str,
        s: Side,
        c: &workbridge::Cursor,
    ) -> workbridge::Result<()> {
        self.inner.save_cursor(p, s, c).await
    }
    async fn park(&self, p: &str, x: &Parked) -> workbridge::Result<()> {
        self.inner.park(p, x).await
    }
    async fn unpark(&self, p: &str, s: Side, id: &ItemId) -> workbridge::Result<()> {
        self.inner.unpark(p, s, id).await
    }
    async fn parked(&self, p: &str) -> workbridge::Result<Vec<Parked>> {
        self.inner.parked(p).await
    }
    async fn copied(&self, p: &str, k: Copied, s: Side, id: &str) -> workbridge::Result<bool> {
        self.inner.copied(p, k, s, id).await
    }
    async fn record_copy(
        &self,
        p: &str,
        k: Copied,
        s: Side,
        a: &str,
        b: &str,
    ) -> workbridge::Result<()> {
        self.inner.record_copy(p, k, s, a, b).await
    }
    async fn acquire_lease(&self, p: &str, h: &str, ttl: Duration) -> workbridge::Result<bool> {
        self.inner.acquire_lease(p, h, ttl).await
    }
    async fn release_lease(&self, p: &str, h: &str) -> workbridge::Result<()> {
        self.inner.release_lease(p, h).await
    }
    async fn save_intents(&self, p: &str, i: &[CreateIntent]) -> workbridge::Result<()> {
        self.inner.save_intents(p, i).await
    }
    async fn intent(
        &self,
        p: &str,
        s: Side,
        id: &ItemId,
    ) -> workbridge::Result<Option<CreateIntent>> {
        self.inner.intent(p, s, id).await
    }
    async fn clear_intent(&self, p: &str, s: Side, id: &ItemId) -> workbridge::Result<()> {
        self.inner.clear_intent(p, s, id).await
    }
}

/// Worker A reads a ticket, Ops rename it while A creates its Bug (with the old title), and A
/// stalls before storing the link — past its lease. Worker B takes over, finds no link, looks
/// the Bug up by its key, and meanwhile A stores the link and drops the intent. B then found
/// neither intent nor link and merged from empty baselines: the Bug, created after the rename,
/// won the title by `newest`, and the rename was lost (two workers on PostgreSQL lost a title
/// so). B now reads the link again when it finds no intent, and merges from A's baselines.
#[tokio::test]
async fn a_link_stored_late_by_the_worker_before_is_merged_from() {
    let sims = sims().await;
    let store = Arc::new(StalledLinks {
        inner: SqliteStore::open(temp_db("stalled-link")).unwrap(),
        stall: std::sync::Mutex::new(None),
    });
    let options = SyncOptions::default()
        .lease_ttl(Duration::from_secs(1))
        .comments(false)
        .attachments(false);
    let (a_sides, b_sides) = (sides(&sims, 0), sides(&sims, 0));
    let (a, b) = two_workers(&a_sides, &b_sides, &store, &options);
    let sn = a_sides.sn.clone();
    let ticket = software_ticket(&sn, "Invoices print blank").await;
    let number = s(&ticket, "number");

    // A's Bug create is held 400 ms on the wire; Ops rename the ticket meanwhile.
    sims.ado
        .control()
        .delay_next_of("PATCH", "$batch", Duration::from_millis(400));
    *store.stall.lock().unwrap() = Some(Duration::from_millis(1800));
    let started = tokio::time::Instant::now();
    let a_round = tokio::spawn(async move { a.run_once().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    sn.update(
        &incident(),
        &ticket.id,
        &FieldMap::new().with("short_description", "Invoices print blank in Lyon"),
        &Default::default(),
    )
    .await
    .unwrap();
    // Once A's lease has run out, B takes the pair; its lookup of the Bug is held long enough
    // for A to store its link meanwhile.
    tokio::time::sleep_until(started + Duration::from_millis(1500)).await;
    sims.ado
        .control()
        .delay_next_of("POST", "wiql", Duration::from_millis(1200));
    let rb = b.run_once().await;
    let ra = a_round.await.unwrap();
    let mut rounds = 0;
    while !b.run_once().await.is_complete() {
        rounds += 1;
        assert!(rounds < 5, "worker B settles");
    }
    let link = b.link_of(Side::Left, &ticket.id).await.unwrap().unwrap();
    let bug_now = b_sides.ado.get(&bug(), &link.right).await.unwrap();
    assert_eq!(
        s(&bug_now, "System.Title"),
        format!("{number}: Invoices print blank in Lyon"),
        "worker A: {ra}; worker B: {rb}"
    );
}

/// Worker A is copying Ops' file to the Bug when its lease runs out (its listing of the Bug's
/// attachments is held on the wire); worker B takes the pair, copies the file and lets the pair
/// go. A's listing then comes back and A renewed the lease — free again — and uploaded the file
/// a second time, on what it had read before B's copy (two workers on PostgreSQL showed a file
/// twice). A lease that ran out is not taken again within the run: A stops instead.
#[tokio::test]
async fn a_worker_whose_lease_ran_out_mid_run_does_not_act_on_what_it_read_before() {
    let sims = sims().await;
    let store = Arc::new(SqliteStore::open(temp_db("lapsed-lease")).unwrap());
    let options = SyncOptions::default()
        .lease_ttl(Duration::from_secs(1))
        .comments(false);
    let (a_sides, b_sides) = (sides(&sims, 0), sides(&sims, 0));
    let (a, b) = two_workers(&a_sides, &b_sides, &store, &options);
    let ticket = software_ticket(&a_sides.sn, "Invoices print blank").await;
    assert!(a.run_once().await.is_complete());
    let link = a.link_of(Side::Left, &ticket.id).await.unwrap().unwrap();
    a_sides
        .sn
        .upload(
            &incident(),
            &ticket.id,
            &workbridge::NewAttachment::new("screen.png", "image/png", vec![1u8, 2, 3]),
        )
        .await
        .unwrap();
    // A's listing of the Bug's attachments (before its upload) is held past its lease.
    sims.ado.control().delay_next_of(
        "GET",
        &format!("/workitems/{}", link.right),
        Duration::from_millis(1600),
    );
    let started = tokio::time::Instant::now();
    let a_round = tokio::spawn(async move { a.run_once().await });
    tokio::time::sleep_until(started + Duration::from_millis(1150)).await;
    let rb = b.run_once().await;
    assert!(rb.is_complete(), "worker B: {rb}");
    let ra = a_round.await.unwrap();
    let copies = b_sides
        .ado
        .attachments(&bug(), &link.right)
        .await
        .unwrap()
        .into_iter()
        .filter(|f| f.file_name == "screen.png")
        .count();
    assert_eq!(copies, 1, "worker A: {ra}; worker B: {rb}");
}

/// Two workers on one store, each with its own clients (two processes in a deployment).
fn two_workers<S: StateStore + 'static>(
    a: &Sides,
    b: &Sides,
    store: &Arc<S>,
    options: &SyncOptions,
) -> (SyncPair, SyncPair) {
    let worker = |sides: &Sides, holder: &str| {
        SyncPair::new(
            sides.sn.clone(),
            sides.ado.clone(),
            spec("incident_escalation.toml"),
            store.clone(),
        )
        .unwrap()
        .with_holder(holder)
        .with_options(options.clone())
    };
    (worker(a, "worker-a"), worker(b, "worker-b"))
}
