//! Login flows and XSRF on the wire (wiremock), session expiry, locks, labels, time zones.

use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::json;
use wiremock::matchers::{body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};
use workbridge_alm::{AlmConfig, AlmRepository, Format, LoginFlow};
use workbridge_core::{
    ChangeOptions, CreateOptions, Cursor, ErrorKind, FieldMap, FieldValue, ItemType, Person,
    Repository, RepositoryExt, UpdateOptions,
};
use workbridge_sim::alm::AlmSim;

const P: &str = "/qcbin/rest/domains/DEFAULT/projects/Demo";

fn fields_json() -> serde_json::Value {
    json!({"Fields": {"Field": [
        {"name": "id", "label": "Defect ID", "type": "Number", "required": false, "editable": false},
        {"name": "name", "label": "Summary", "type": "String", "required": true, "editable": true},
        {"name": "last-modified", "label": "Modified", "type": "DateTime", "required": false, "editable": false},
        {"name": "ver-stamp", "label": "Version Stamp", "type": "Number", "required": false, "editable": false}
    ]}})
}

fn defect(id: u64, name: &str) -> serde_json::Value {
    json!({"Fields": [
        {"Name": "id", "values": [{"value": id.to_string()}]},
        {"Name": "name", "values": [{"value": name}]},
        {"Name": "last-modified", "values": [{"value": "2026-11-27 01:00:00"}]},
        {"Name": "ver-stamp", "values": [{"value": "3"}]}
    ], "Type": "defect"})
}

async fn project_mocks(server: &MockServer, xsrf: &str) {
    Mock::given(method("GET")).and(path("/qcbin/rest/server/time")).respond_with(ResponseTemplate::new(200).set_body_string(
        "<ServerTime><TimeInMillis>1795737600000</TimeInMillis><DateTime>2026-11-27 01:00:00</DateTime></ServerTime>",
    ))
    .mount(server)
    .await;
    Mock::given(method("GET"))
        .and(path(format!("{P}/customization/entities/defect/fields")))
        .respond_with(ResponseTemplate::new(200).set_body_json(fields_json()))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{P}/customization/used-lists")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"lists": []})))
        .mount(server)
        .await;
    // Writes carry the XSRF header and the session cookies.
    Mock::given(method("POST"))
        .and(path(format!("{P}/defects")))
        .and(header("x-xsrf-token", xsrf))
        .and(header("content-type", "application/json"))
        .and(body_string(
            r#"{"Fields":[{"Name":"name","values":[{"value":"Login fails"}]}],"Type":"defect"}"#,
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(defect(7, "Login fails")))
        .expect(1)
        .mount(server)
        .await;
}

fn repo(
    server: &MockServer,
    f: impl FnOnce(workbridge_alm::AlmConfigBuilder) -> workbridge_alm::AlmConfigBuilder,
) -> AlmRepository {
    let b = AlmConfig::builder(server.uri(), "DEFAULT", "Demo").client_options(crate::options());
    AlmRepository::new(f(b).build()).unwrap()
}

async fn create(r: &AlmRepository) -> workbridge_core::WorkItem {
    r.create(
        &ItemType::from("defects"),
        &FieldMap::new().with("name", "Login fails"),
        &CreateOptions::default(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn alm_authenticate_then_site_session_then_xsrf_on_writes() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/qcbin/authentication-point/alm-authenticate"))
        .and(header("content-type", "application/xml"))
        .and(body_string(
            "<alm-authentication><user>qa</user><password>p&amp;w</password></alm-authentication>",
        ))
        .respond_with(
            ResponseTemplate::new(201).append_header("Set-Cookie", "LWSSO_COOKIE_KEY=lw1; Path=/"),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/qcbin/rest/site-session"))
        .and(header("cookie", "LWSSO_COOKIE_KEY=lw1"))
        .respond_with(
            ResponseTemplate::new(201)
                .append_header("Set-Cookie", "QCSession=qs1; Path=/")
                .append_header("Set-Cookie", "ALM_USER=qa; Path=/")
                .append_header("Set-Cookie", "XSRF-TOKEN=x1; Path=/"),
        )
        .expect(1)
        .mount(&server)
        .await;
    project_mocks(&server, "x1").await;
    let r = repo(&server, |b| b.password("qa", "p&w"));
    let item = create(&r).await;
    assert_eq!(item.id.as_str(), "7");
    // 01:00 server time at 00:00 UTC: the server runs one hour ahead.
    assert_eq!(
        item.changed_at,
        Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap()
    );
    let sent = server.received_requests().await.unwrap();
    let post = sent
        .iter()
        .find(|r| r.url.path() == format!("{P}/defects"))
        .unwrap();
    let cookie = post.headers.get("cookie").unwrap().to_str().unwrap();
    assert!(
        cookie.contains("LWSSO_COOKIE_KEY=lw1") && cookie.contains("QCSession=qs1"),
        "{cookie}"
    );
}

#[tokio::test]
async fn basic_authenticate_flow() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/qcbin/authentication-point/authenticate"))
        .and(header("authorization", "Basic cWE6cXE="))
        .respond_with(
            ResponseTemplate::new(200).append_header("Set-Cookie", "LWSSO_COOKIE_KEY=lw2; Path=/"),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/qcbin/rest/site-session"))
        .respond_with(
            ResponseTemplate::new(201)
                .append_header("Set-Cookie", "QCSession=qs2")
                .append_header("Set-Cookie", "XSRF-TOKEN=x2"),
        )
        .mount(&server)
        .await;
    project_mocks(&server, "x2").await;
    create(&repo(&server, |b| {
        b.password("qa", "qq").login_flow(LoginFlow::Basic)
    }))
    .await;
}

#[tokio::test]
async fn api_key_login_sets_every_cookie_in_one_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/qcbin/rest/oauth2/login"))
        .and(body_string(
            r#"{"clientId":"oauth2-ci@corp","secret":"key-secret"}"#,
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .append_header("Set-Cookie", "LWSSO_COOKIE_KEY=lw3")
                .append_header("Set-Cookie", "QCSession=qs3")
                .append_header("Set-Cookie", "XSRF-TOKEN=x3"),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/qcbin/rest/site-session"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    project_mocks(&server, "x3").await;
    create(&repo(&server, |b| {
        b.api_key("oauth2-ci@corp", "key-secret")
    }))
    .await;
}

#[tokio::test]
async fn refused_login_is_unauthenticated_without_the_password() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/qcbin/authentication-point/alm-authenticate"))
        .respond_with(ResponseTemplate::new(401).insert_header("WWW-Authenticate", "ALMAUTH"))
        .mount(&server)
        .await;
    let r = repo(&server, |b| b.password("qa", "hunter2"));
    let e = r.schema(&ItemType::from("defects")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert!(!format!("{e} {e:?} {r:?}").contains("hunter2"));
}

#[tokio::test]
async fn an_expired_session_is_renewed_once_transparently() {
    let sim = AlmSim::builder()
        .user("qa", "qa")
        .session_idle_timeout(Duration::from_secs(60))
        .seed_items(2)
        .spawn()
        .await
        .unwrap();
    let r = crate::repo(&sim, Format::Json);
    let t = ItemType::from("defects");
    r.get_opt(&t, &"1".into()).await.unwrap().unwrap();
    sim.clock().advance(Duration::from_secs(3600));
    sim.control().reset_requests();
    // The session expired on the server: one 401, one new login, and the call goes through.
    assert!(r.get_opt(&t, &"2".into()).await.unwrap().is_some());
    assert_eq!(
        sim.control().requests_to("POST /qcbin/rest/site-session"),
        1
    );
    // Logout ends the session; replaying its cookies is refused.
    r.close().await.unwrap();
}

#[tokio::test]
async fn xsrf_is_required_from_version_16() {
    let sim = crate::sim().await;
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    http.post(format!(
        "{}/qcbin/authentication-point/alm-authenticate",
        sim.url()
    ))
    .header("Content-Type", "application/xml")
    .body("<alm-authentication><user>qa</user><password>qa</password></alm-authentication>")
    .send()
    .await
    .unwrap();
    http.post(format!("{}/qcbin/rest/site-session", sim.url()))
        .send()
        .await
        .unwrap();
    let r = http
        .put(format!("{}{P}/defects/1", sim.url()))
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .body(r#"{"Fields":[{"Name":"name","values":[{"value":"x"}]}],"Type":"defect"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["Title"],
        "Unauthorized request. For more details see XSRF Token section in REST API documentation."
    );
    // After logout the same cookies are refused with the real 500.
    http.post(format!("{}/qcbin/authentication-point/logout", sim.url()))
        .send()
        .await
        .unwrap();
    let r = http
        .get(format!("{}{P}/defects/1", sim.url()))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["Title"],
        "TokenId is invalid because it has logged out"
    );
}

#[tokio::test]
async fn a_foreign_lock_is_a_conflict_and_labels_address_fields() {
    let sim = crate::sim().await;
    let r = crate::repo(&sim, Format::Json);
    let t = ItemType::from("defects");
    let fields = FieldMap::new()
        .with("Summary", "Label addressed")
        .with("Severity", FieldValue::Choice("3-High".into()))
        .with("Detected By", Person::login("qa"))
        .with(
            "Detected on Date",
            FieldValue::Date(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()),
        )
        .with("Component", FieldValue::Choice("Checkout".into()));
    let d = r
        .create(
            &t,
            &fields,
            &CreateOptions::default().correlation("INC0010099"),
        )
        .await
        .unwrap();
    assert_eq!(
        d.field("user-01"),
        Some(&FieldValue::Choice("Checkout".into()))
    );
    assert_eq!(
        d.field("user-02"),
        Some(&FieldValue::Text("INC0010099".into()))
    );
    let e = r
        .set_field(&t, &d.id, "Component", FieldValue::Choice("Space".into()))
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.field().map(|f| f.as_str()), e.value()),
        (ErrorKind::InvalidInput, Some("user-01"), Some("Space"))
    );
    let id: u64 = d.id.as_str().parse().unwrap();
    sim.lock_as_other_user("defects", id, "jdoe");
    let e = r
        .set_field(&t, &d.id, "name", "while locked")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("jdoe"), "{e}");
    sim.release_locks();
    let ok = r
        .update(
            &t,
            &d.id,
            &FieldMap::new().with("name", "after unlock"),
            &UpdateOptions::default().if_version(d.version.clone()),
        )
        .await
        .unwrap();
    assert_eq!(ok.version.as_str(), "2");
    // The transition the workflow refuses names from and to; comments append to the memo.
    let e = r
        .set_field(&t, &d.id, "status", FieldValue::Choice("Closed".into()))
        .await
        .unwrap_err();
    assert_eq!(
        (
            e.context().from_state.as_deref(),
            e.context().to_state.as_deref()
        ),
        (Some("New"), Some("Closed"))
    );
    r.add_comment(
        &t,
        &d.id,
        &workbridge_core::NewComment::public("QA: reproduced on build 42"),
    )
    .await
    .unwrap();
    r.add_comment(
        &t,
        &d.id,
        &workbridge_core::NewComment::public("QA: <fixed> & verified"),
    )
    .await
    .unwrap();
    let memo = sim.field("defects", id, "dev-comments").unwrap()[0].clone();
    assert!(
        memo.starts_with("<html><body>") && memo.ends_with("</body></html>"),
        "{memo}"
    );
    assert_eq!(
        memo.matches("________________________________________")
            .count(),
        2
    );
    let comments = r.comments(&t, &d.id).await.unwrap();
    assert_eq!(
        comments.iter().map(|c| c.body.as_str()).collect::<Vec<_>>(),
        ["QA: reproduced on build 42", "QA: <fixed> & verified"]
    );
    assert_eq!(
        comments[0].author.as_ref().unwrap().login.as_deref(),
        Some("qa")
    );
}

#[tokio::test]
async fn last_modified_is_server_local_time_and_ties_are_not_lost() {
    let sim = AlmSim::builder()
        .user("qa", "qa")
        .time_zone_offset_minutes(-420)
        .spawn()
        .await
        .unwrap();
    let clock = sim.clock();
    clock.freeze(Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap());
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            sim.create(
                "defects",
                &[
                    ("name", &format!("tied {i}")),
                    ("severity", "1-Low"),
                    ("detected-by", "qa"),
                    ("creation-time", "2026-06-01"),
                ],
            )
            .unwrap(),
        );
    }
    assert_eq!(
        sim.field("defects", ids[0], "last-modified").unwrap()[0],
        "2026-06-01 05:00:00",
        "stored in UTC-7"
    );
    let r = crate::repo(&sim, Format::Xml);
    let t = ItemType::from("defects");
    let opts = ChangeOptions::default().page_size(9);
    let mut cursor = Cursor::beginning();
    let mut seen = std::collections::HashMap::new();
    let mut pages = 0;
    loop {
        let p = r.changes(&t, &cursor, &opts).await.unwrap();
        pages += 1;
        assert!(pages < 50);
        for i in &p.items {
            assert_eq!(
                i.changed_at,
                Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap(),
                "converted back to UTC"
            );
            assert!(
                seen.insert((i.id.to_string(), i.version.to_string()), ())
                    .is_none(),
                "read twice"
            );
        }
        cursor = p.next;
        if pages == 2 {
            // Same second, behind the scan position.
            sim.update("defects", ids[0], &[("priority", "2-Medium")], "jdoe");
        }
        if !p.has_more {
            break;
        }
    }
    assert!(
        seen.contains_key(&(ids[0].to_string(), "2".to_owned())),
        "the update behind the position was read"
    );
    assert_eq!(
        seen.keys()
            .map(|(i, _)| i.clone())
            .collect::<std::collections::HashSet<_>>()
            .len(),
        40
    );
}

#[tokio::test]
async fn correlation_keys_are_looked_up_in_one_query() {
    let sim = crate::sim().await;
    let repo = crate::repo(&sim, workbridge_alm::Format::Json);
    let defects = workbridge_core::ItemType::from("defects");
    let mut keys = Vec::new();
    for i in 0..3 {
        let key = workbridge_core::CorrelationKey::new(format!("INC00{i}"));
        repo.create(
            &defects,
            &workbridge_core::FieldMap::new()
                .with("name", format!("D{i}"))
                .with(
                    "severity",
                    workbridge_core::FieldValue::Choice("2-Medium".into()),
                )
                .with("detected-by", workbridge_core::Person::login("qa"))
                .with(
                    "creation-time",
                    workbridge_core::FieldValue::Date(NaiveDate::from_ymd_opt(2026, 1, 5).unwrap()),
                ),
            &workbridge_core::CreateOptions::default().correlation(key.clone()),
        )
        .await
        .unwrap();
        keys.push(key);
    }
    keys.insert(0, workbridge_core::CorrelationKey::new("INC-absent"));
    sim.control().reset_requests();
    let found = repo
        .find_many_by_correlation(&defects, &keys)
        .await
        .unwrap();
    assert_eq!(
        sim.control().total_requests(),
        1,
        "{:?}",
        sim.control().requests()
    );
    let names: Vec<Option<String>> = found
        .iter()
        .map(|f| {
            f.as_ref()
                .and_then(|i| i.field("name"))
                .map(ToString::to_string)
        })
        .collect();
    assert_eq!(
        names,
        [
            None,
            Some("D0".into()),
            Some("D1".into()),
            Some("D2".into())
        ]
    );
}

#[tokio::test]
async fn comment_and_attachment_errors_name_operation_system_and_item() {
    let sim = crate::sim().await;
    let repo = crate::repo(&sim, Format::Json);
    let t = ItemType::from("defects");
    let id = workbridge_core::ItemId::new("999999");
    let errors = [
        ("comments", repo.comments(&t, &id).await.unwrap_err()),
        (
            "add_comment",
            repo.add_comment(&t, &id, &workbridge_core::NewComment::public("x"))
                .await
                .unwrap_err(),
        ),
        ("attachments", repo.attachments(&t, &id).await.unwrap_err()),
        (
            "upload",
            repo.upload(
                &t,
                &id,
                &workbridge_core::NewAttachment::new("a.txt", "text/plain", "x"),
            )
            .await
            .unwrap_err(),
        ),
    ];
    for (op, e) in errors {
        assert_eq!(e.kind(), ErrorKind::NotFound, "{op}: {e}");
        assert_eq!(e.operation(), Some(op), "{e}");
        assert_eq!(e.context().item_id.as_ref(), Some(&id), "{op}: {e}");
        assert!(
            e.context()
                .system
                .as_deref()
                .is_some_and(|s| s.starts_with("alm:")),
            "{op}: {e}"
        );
    }
}

/// Once the server is past the last second a pass read, a quiet poll is one request however
/// many defects share that second — the same-second query's page carries the server's time
/// too (before, it carried none, so the scan took it for the current second and read it again
/// in every idle round). A later change is still found.
#[tokio::test]
async fn a_quiet_poll_after_a_crowded_second_is_one_request() {
    let sim = AlmSim::builder().user("qa", "qa").spawn().await.unwrap();
    let clock = sim.clock();
    clock.freeze(Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap());
    let mut ids = Vec::new();
    for i in 0..45 {
        ids.push(
            sim.create(
                "defects",
                &[
                    ("name", &format!("tied {i}")),
                    ("severity", "1-Low"),
                    ("detected-by", "qa"),
                    ("creation-time", "2026-06-01"),
                ],
            )
            .unwrap(),
        );
    }
    let r = crate::repo(&sim, Format::Json);
    let t = ItemType::from("defects");
    let opts = ChangeOptions::default().page_size(10);
    let drain = async |mut cursor: Cursor| {
        let mut found = Vec::new();
        for _ in 0..50 {
            let page = r.changes(&t, &cursor, &opts).await.unwrap();
            found.extend(page.items.iter().map(|i| i.id.to_string()));
            cursor = page.next;
            if !page.has_more {
                return (cursor, found);
            }
        }
        panic!("the scan does not end");
    };
    let (cursor, found) = drain(Cursor::beginning()).await;
    assert_eq!(found.len(), 45);
    clock.advance(std::time::Duration::from_secs(2));
    sim.control().reset_requests();
    let (cursor, found) = drain(cursor).await;
    assert!(found.is_empty(), "{found:?}");
    // The pass after the second ended reads it once more (the first ended inside it): five
    // pages of ten and the last, and, as its first page cannot know it was read after that
    // second (only the answers before it say when the read came), the re-check of that page's
    // second: twice, not in every round.
    assert!(
        sim.control().total_requests() <= 12,
        "{:?}",
        sim.control().requests()
    );
    sim.control().reset_requests();
    let (cursor, found) = drain(cursor).await;
    assert!(found.is_empty());
    assert_eq!(
        sim.control().total_requests(),
        1,
        "{:?}",
        sim.control().requests()
    );
    clock.advance(std::time::Duration::from_secs(1));
    r.update(
        &t,
        &ids[3].to_string().into(),
        &FieldMap::new().with("severity", "3-High"),
        &Default::default(),
    )
    .await
    .unwrap();
    let (_, found) = drain(cursor).await;
    assert_eq!(found, [ids[3].to_string()]);
}

/// A service runs through a daylight-saving change: the server moves from UTC-7 to UTC-8 and
/// stores times by the new offset. The adapter reads the offset again once the one it holds is
/// older than `offset_refresh`, so a defect written after the change reads back at the time it
/// was written, not an hour off; before the refresh it still uses the old one.
#[tokio::test]
async fn the_servers_offset_is_read_again_after_a_daylight_saving_change() {
    let sim = AlmSim::builder()
        .user("qa", "qa")
        .time_zone_offset_minutes(-420)
        .spawn()
        .await
        .unwrap();
    let clock = sim.clock();
    clock.freeze(Utc.with_ymd_and_hms(2026, 11, 1, 8, 30, 0).unwrap());
    let r = AlmRepository::new(
        AlmConfig::builder(sim.url(), "DEFAULT", "Demo")
            .password("qa", "qa")
            .offset_refresh(Duration::from_millis(300))
            .client_options(crate::options())
            .build(),
    )
    .unwrap();
    let t = ItemType::from("defects");
    let make = |name: &str| {
        FieldMap::new()
            .with("name", name)
            .with("severity", "1-Low")
            .with("detected-by", Person::login("qa"))
            .with(
                "creation-time",
                FieldValue::Date(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()),
            )
    };
    let before = r
        .create(&t, &make("before"), &Default::default())
        .await
        .unwrap();
    assert_eq!(before.changed_at, clock.now());
    // 09:00 UTC: clocks go back an hour.
    clock.freeze(Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0).unwrap());
    sim.set_time_zone_offset_minutes(-480);
    sim.control().reset_requests();
    let soon = r
        .create(&t, &make("soon after"), &Default::default())
        .await
        .unwrap();
    assert_eq!(
        sim.control().requests_to("GET /qcbin/rest/server/time"),
        0,
        "the offset is still fresh"
    );
    assert_eq!(soon.changed_at, clock.now() - chrono::TimeDelta::hours(1));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = r
        .create(&t, &make("after"), &Default::default())
        .await
        .unwrap();
    assert_eq!(sim.control().requests_to("GET /qcbin/rest/server/time"), 1);
    assert_eq!(after.changed_at, clock.now(), "read with the new offset");
}

/// A login of the integrator's own (here the documented alm-authenticate and site-session,
/// counted), wrapped in `CookieSession`, in place of the adapter's: every request carries its
/// session, and a refused login is the provider's error.
#[derive(Debug)]
struct OwnLogin {
    qcbin: String,
    password: &'static str,
    logins: std::sync::atomic::AtomicUsize,
}

#[workbridge_core::async_trait]
impl workbridge_http::SessionLogin for OwnLogin {
    async fn login(
        &self,
        client: &reqwest::Client,
    ) -> workbridge_core::Result<workbridge_http::Session> {
        self.logins
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let q = &self.qcbin;
        let auth = client
            .post(format!("{q}/authentication-point/alm-authenticate"))
            .header("Content-Type", "application/xml")
            .body(format!(
                "<alm-authentication><user>qa</user><password>{}</password></alm-authentication>",
                self.password
            ))
            .send()
            .await
            .map_err(|e| workbridge_core::Error::new(ErrorKind::Unavailable, e.to_string()))?;
        if !auth.status().is_success() {
            return Err(workbridge_core::Error::new(
                ErrorKind::Unauthenticated,
                format!("the SSO gateway refused the login ({})", auth.status()),
            ));
        }
        let mut session = workbridge_http::Session::new().with_set_cookies(auth.headers());
        let cookie = session
            .cookie_value("LWSSO_COOKIE_KEY")
            .map(|v| format!("LWSSO_COOKIE_KEY={v}"))
            .unwrap_or_default();
        let site = client
            .post(format!("{q}/rest/site-session"))
            .header("Cookie", cookie)
            .send()
            .await
            .map_err(|e| workbridge_core::Error::new(ErrorKind::Unavailable, e.to_string()))?;
        session = session.with_set_cookies(site.headers());
        Ok(session)
    }
}

#[tokio::test]
async fn a_custom_auth_provider_signs_in_in_place_of_the_adapters_login() {
    let sim = crate::sim().await;
    for (password, ok) in [("qa", true), ("wrong", false)] {
        let login = std::sync::Arc::new(OwnLogin {
            qcbin: format!("{}/qcbin", sim.url().trim_end_matches("/qcbin")),
            password,
            logins: std::sync::atomic::AtomicUsize::new(0),
        });
        let r = AlmRepository::new(
            AlmConfig::builder(sim.url(), "DEFAULT", "Demo")
                .auth_provider(std::sync::Arc::new(workbridge_http::CookieSession::new(
                    login.clone(),
                )))
                .client_options(crate::options())
                .build(),
        )
        .unwrap();
        let t = ItemType::from("defects");
        let read = r.schema(&t).await;
        assert_eq!(read.is_ok(), ok, "{password}: {read:?}");
        if !ok {
            assert_eq!(read.unwrap_err().kind(), ErrorKind::Unauthenticated);
        }
        assert!(
            login.logins.load(std::sync::atomic::Ordering::SeqCst) >= 1,
            "its own login ran"
        );
        assert!(format!("{r:?}").contains("Custom"), "{r:?}");
    }
}
