//! Exact requests (wiremock), error bodies, malformed responses.

use std::sync::Arc;

use serde_json::{Value, json};
use wiremock::matchers::{body_json, body_string, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};
use workbridge_core::{
    ChangeOptions, CreateOptions, Cursor, ErrorKind, FieldMap, FieldValue, ItemType, NewAttachment,
    NewComment, Person, Repository, RepositoryExt, UpdateOptions, Write,
};
use workbridge_http::RetryConfig;
use workbridge_servicenow::{ServiceNowConfig, ServiceNowRepository};

fn repo_at(uri: &str) -> ServiceNowRepository {
    let options = crate::options().retry(RetryConfig::disabled());
    ServiceNowRepository::new(
        ServiceNowConfig::builder(uri)
            .basic("admin", "admin")
            .client_options(options)
            .build(),
    )
    .unwrap()
}

fn sv(v: &str) -> Value {
    json!({"display_value": v, "value": v})
}

fn record(id: &str, mod_count: &str) -> Value {
    json!({
        "sys_id": sv(id), "sys_mod_count": sv(mod_count), "sys_updated_on": sv("2026-01-02 03:04:05"),
        "sys_updated_by": sv("admin"), "short_description": sv("Mail down"), "state": {"display_value": "New", "value": "1"},
        "assigned_to": {"display_value": "", "value": ""}, "comments": {"display_value": "", "value": ""}
    })
}

async fn mock_metadata(server: &MockServer) {
    let dict = json!({"result": [
        {"name": "task", "element": "short_description", "column_label": "Short description", "internal_type": "string", "reference": "", "mandatory": "false", "read_only": "false"},
        {"name": "task", "element": "state", "column_label": "State", "internal_type": "integer", "reference": "", "mandatory": "false", "read_only": "false"},
        {"name": "task", "element": "assigned_to", "column_label": "Assigned to", "internal_type": "reference", "reference": "sys_user", "mandatory": "false", "read_only": "false"},
        {"name": "task", "element": "comments", "column_label": "Additional comments", "internal_type": "journal_input", "reference": "", "mandatory": "false", "read_only": "false"},
        {"name": "task", "element": "work_notes", "column_label": "Work notes", "internal_type": "journal_input", "reference": "", "mandatory": "false", "read_only": "false"},
        {"name": "incident", "element": "close_code", "column_label": "Resolution code", "internal_type": "string", "reference": "", "mandatory": "false", "read_only": "false"},
        {"name": "incident", "element": "close_notes", "column_label": "Resolution notes", "internal_type": "string", "reference": "", "mandatory": "false", "read_only": "false"}
    ]});
    let choices = json!({"result": [
        {"name": "incident", "element": "state", "value": "1", "label": "New", "sequence": "1", "inactive": "false"},
        {"name": "incident", "element": "state", "value": "2", "label": "In Progress", "sequence": "2", "inactive": "false"},
        {"name": "incident", "element": "state", "value": "6", "label": "Resolved", "sequence": "3", "inactive": "false"}
    ]});
    Mock::given(method("GET"))
        .and(path("/api/now/table/sys_dictionary"))
        .and(query_param(
            "sysparm_query",
            "nameINtask,incident^elementISNOTEMPTY",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(dict))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/now/table/sys_choice"))
        .and(query_param(
            "sysparm_query",
            "nameINtask,incident^inactive=false^language=en",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(choices))
        .mount(server)
        .await;
}

#[tokio::test]
async fn changes_sends_the_keyset_query() {
    let server = MockServer::start().await;
    mock_metadata(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/now/table/incident"))
        .and(query_param(
            "sysparm_query",
            "sys_updated_on>=2026-01-02 03:00:00^ORDERBYsys_updated_on^ORDERBYsys_id",
        ))
        .and(query_param("sysparm_limit", "2"))
        .and(query_param("sysparm_display_value", "all"))
        .and(query_param("sysparm_exclude_reference_link", "true"))
        .and(query_param("sysparm_suppress_pagination_header", "true"))
        .and(query_param("sysparm_no_count", "true"))
        .and(header("authorization", "Basic YWRtaW46YWRtaW4="))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"result": [record("a1", "0"), record("b2", "3")]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/now/table/incident"))
        .and(query_param(
            "sysparm_query",
            "sys_updated_on=2026-01-02 03:04:05^sys_id>b2^NQsys_updated_on>2026-01-02 03:04:05^ORDERBYsys_updated_on^ORDERBYsys_id",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": []})))
        .expect(1)
        .mount(&server)
        .await;
    let repo = repo_at(&server.uri());
    let t = ItemType::from("incident");
    let start = Cursor::at(
        chrono::DateTime::parse_from_rfc3339("2026-01-02T03:00:00Z")
            .unwrap()
            .into(),
        "".into(),
    );
    let page = repo
        .changes(&t, &start, &ChangeOptions::default().page_size(2))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    assert!(page.has_more);
    assert_eq!(page.items[1].version.as_str(), "3");
    assert_eq!(
        page.items[0].field("state"),
        Some(&FieldValue::Choice("1".into()))
    );
    assert_eq!(page.items[0].field("assigned_to"), Some(&FieldValue::Null));
    assert!(
        page.items[0].field("comments").is_none(),
        "journal fields are not values"
    );
    let _ = repo
        .changes(&t, &page.next, &ChangeOptions::default().page_size(2))
        .await
        .unwrap();
}

#[tokio::test]
async fn create_sends_typed_values_and_the_correlation_in_one_request() {
    let server = MockServer::start().await;
    mock_metadata(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/now/table/sys_user"))
        .and(query_param("sysparm_query", "user_name=beth.anglin"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"result": [{"sys_id": "u1"}]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/now/table/incident"))
        .and(query_param("sysparm_display_value", "all"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "short_description": "Mail down", "state": "1", "assigned_to": "u1",
            "correlation_id": "ado:Bug:7", "correlation_display": "workbridge"
        })))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"result": record("n1", "0")})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/now/table/sys_user"))
        .and(query_param("sysparm_query", "sys_idINu1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": []})))
        .mount(&server)
        .await;
    let repo = repo_at(&server.uri());
    let fields = FieldMap::new()
        .with("short_description", "Mail down")
        .with("state", FieldValue::Choice("1".into()))
        .with("assigned_to", Person::login("beth.anglin"));
    let item = repo
        .create(
            &"incident".into(),
            &fields,
            &CreateOptions::default().correlation("ado:Bug:7"),
        )
        .await
        .unwrap();
    assert_eq!(item.id.as_str(), "n1");
}

#[tokio::test]
async fn update_with_if_version_reads_then_patches() {
    let server = MockServer::start().await;
    mock_metadata(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/now/table/incident"))
        .and(query_param("sysparm_query", "sys_idINa1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"result": [record("a1", "4")]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/api/now/table/incident/a1"))
        .and(body_json(json!({"short_description": "Mail down for EU"})))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"result": record("a1", "5")})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let repo = repo_at(&server.uri());
    let t = ItemType::from("incident");
    let changes = FieldMap::new().with("short_description", "Mail down for EU");
    let e = repo
        .update(
            &t,
            &"a1".into(),
            &changes,
            &UpdateOptions::default().if_version("3"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let ok = repo
        .update(
            &t,
            &"a1".into(),
            &changes,
            &UpdateOptions::default().if_version("4"),
        )
        .await
        .unwrap();
    assert_eq!(ok.version.as_str(), "5");
    // A transition the workflow forbids, or one missing its required fields, is refused before any write.
    let e = repo
        .set_field(&t, &"a1".into(), "state", FieldValue::Choice("6".into()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidTransition);
    assert!(e.to_string().contains("close_code"), "{e}");
}

#[tokio::test]
async fn comments_attachments_and_batch_requests() {
    let server = MockServer::start().await;
    mock_metadata(&server).await;
    Mock::given(method("PATCH"))
        .and(path("/api/now/table/incident/a1"))
        .and(body_json(json!({"work_notes": "Fixed in build 4.2"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": {"sys_id": "a1"}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/now/table/sys_journal_field"))
        .and(query_param("sysparm_query", "element_id=a1^elementINwork_notes^ORDERBYsys_created_on"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": [
            {"sys_id": "j1", "element": "work_notes", "value": "Fixed in build 4.2", "sys_created_on": "2026-01-02 03:04:05", "sys_created_by": "admin"}
        ]})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/now/attachment/file"))
        .and(query_param("table_name", "incident"))
        .and(query_param("table_sys_id", "a1"))
        .and(query_param("file_name", "trace.log"))
        .and(header("content-type", "text/plain"))
        .and(body_string("boom"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"result": {
            "sys_id": "att1", "file_name": "trace.log", "table_name": "incident", "table_sys_id": "a1",
            "content_type": "text/plain", "size_bytes": "4", "sys_created_on": "2026-01-02 03:04:05",
            "download_link": "http://127.0.0.1/api/now/attachment/att1/file"
        }})))
        .expect(1)
        .mount(&server)
        .await;
    let repo = repo_at(&server.uri());
    let t = ItemType::from("incident");
    let c = repo
        .add_comment(
            &t,
            &"a1".into(),
            &NewComment::internal("Fixed in build 4.2"),
        )
        .await
        .unwrap();
    assert_eq!(
        (c.id.as_str(), c.visibility),
        ("j1", workbridge_core::Visibility::Internal)
    );
    let a = repo
        .upload(
            &t,
            &"a1".into(),
            &NewAttachment::new("trace.log", "text/plain", "boom"),
        )
        .await
        .unwrap();
    assert_eq!((a.id.as_str(), a.size), ("att1", Some(4)));

    let seen: Arc<std::sync::Mutex<Option<Value>>> = Arc::default();
    let seen2 = seen.clone();
    Mock::given(method("POST"))
        .and(path("/api/now/v1/batch"))
        .respond_with(move |req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            *seen2.lock().unwrap() = Some(body.clone());
            let b64 = |v: Value| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(v.to_string())
            };
            ResponseTemplate::new(200).set_body_json(json!({
                "batch_request_id": body["batch_request_id"],
                "serviced_requests": [
                    {"id": "w0", "status_code": 200, "status_text": "OK", "body": b64(json!({"result": record("a1", "6")})), "headers": [], "execution_time": 3},
                    {"id": "w1", "status_code": 404, "status_text": "Not Found", "body": b64(json!({"error": {"message": "No Record found", "detail": "Record doesn't exist or ACL restricts the record retrieval"}, "status": "failure"})), "headers": [], "execution_time": 1}
                ],
                "unserviced_requests": []
            }))
        })
        .mount(&server)
        .await;
    let results = repo
        .write_many(&[
            Write::update(
                "incident",
                "a1",
                FieldMap::new().with("short_description", "x"),
            ),
            Write::update(
                "incident",
                "zz",
                FieldMap::new().with("short_description", "y"),
            ),
        ])
        .await
        .unwrap();
    assert_eq!(results[0].as_ref().unwrap().version.as_str(), "6");
    assert_eq!(results[1].as_ref().unwrap_err().kind(), ErrorKind::NotFound);
    let sent = seen.lock().unwrap().clone().unwrap();
    let r0 = &sent["rest_requests"][0];
    assert_eq!(r0["method"], "PATCH");
    assert_eq!(
        r0["url"],
        "/api/now/table/incident/a1?sysparm_display_value=all&sysparm_exclude_reference_link=true"
    );
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(r0["body"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&decoded).unwrap(),
        json!({"short_description": "x"})
    );
}

#[tokio::test]
async fn malformed_responses_are_protocol_errors_naming_the_path() {
    let cases: [(&str, &str); 7] = [
        (
            r#"{"result":[{"sys_id":"a1","sys_mod_count":"0","sys_updated_on":"2026-01"#,
            "",
        ),
        (r#"{"records":[]}"#, "result"),
        (r#"{"result":{"sys_id":"a1"}}"#, "result"),
        (r#"{"result":["not a record"]}"#, "result[0]"),
        (
            r#"{"result":[{"sys_id":"a1","sys_mod_count":"0","sys_updated_on":"yesterday","sys_updated_by":"x"}]}"#,
            "result[0].sys_updated_on",
        ),
        (
            r#"{"result":[{"sys_id":"a1","sys_mod_count":["0"],"sys_updated_on":"2026-01-02 03:04:05"}]}"#,
            "result[0].sys_mod_count",
        ),
        (
            r#"{"result":[{"sys_id":"a1","sys_mod_count":"0","sys_updated_on":"2026-01-02 03:04:05","assigned_to":["u1"]}]}"#,
            "result[0].assigned_to",
        ),
    ];
    for (body, path_expected) in cases {
        let server = MockServer::start().await;
        mock_metadata(&server).await;
        Mock::given(method("GET"))
            .and(path("/api/now/table/incident"))
            .respond_with(ResponseTemplate::new(200).set_body_string(body))
            .mount(&server)
            .await;
        let repo = repo_at(&server.uri());
        let e = repo
            .changes(
                &"incident".into(),
                &Cursor::beginning(),
                &ChangeOptions::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{body}: {e}");
        if !path_expected.is_empty() {
            assert_eq!(
                e.context().path.as_deref(),
                Some(path_expected),
                "{body}: {e}"
            );
        }
    }
    // A hibernating instance answers 200 with an HTML page.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("<html><body>Your instance is hibernating</body></html>"),
        )
        .mount(&server)
        .await;
    let e = repo_at(&server.uri())
        .schema(&"incident".into())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol);
}

#[tokio::test]
async fn error_bodies_from_the_simulator_are_typed() {
    let sim = crate::sim().await;
    let repo = crate::repo(&sim);
    // Invalid table.
    let e = repo.schema(&"incidentx".into()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("Invalid table incidentx"), "{e}");
    // No record.
    let e = repo
        .set_field(
            &"incident".into(),
            &"0123456789abcdef0123456789abcdef".into(),
            "short_description",
            "x",
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    // Write ACL.
    let viewer = ServiceNowRepository::new(
        ServiceNowConfig::builder(sim.url())
            .basic("viewer", "viewer")
            .client_options(crate::options())
            .build(),
    )
    .unwrap();
    let e = viewer
        .create(
            &"incident".into(),
            &FieldMap::new().with("short_description", "x"),
            &CreateOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert!(e.to_string().contains("ACL Exception"), "{e}");
    // Wrong password.
    let wrong = ServiceNowRepository::new(
        ServiceNowConfig::builder(sim.url())
            .basic("admin", "nope")
            .client_options(crate::options())
            .build(),
    )
    .unwrap();
    let e = wrong.schema(&"incident".into()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert!(!format!("{e:?}").contains("nope"));
    // OAuth: a wrong client secret is refused; the right one works.
    let bad_oauth = ServiceNowRepository::new(
        ServiceNowConfig::builder(sim.url())
            .oauth("workbridge", "wrong", "admin", "admin")
            .client_options(crate::options())
            .build(),
    )
    .unwrap();
    let e = bad_oauth.schema(&"incident".into()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    let oauth = ServiceNowRepository::new(
        ServiceNowConfig::builder(sim.url())
            .oauth("workbridge", "workbridge-secret", "admin", "admin")
            .client_options(crate::options())
            .build(),
    )
    .unwrap();
    oauth.schema(&"incident".into()).await.unwrap();
    // 429 with Retry-After, after the retries are spent.
    let no_retry = ServiceNowRepository::new(
        ServiceNowConfig::builder(sim.url())
            .basic("admin", "admin")
            .client_options(crate::options().retry(RetryConfig::disabled()))
            .build(),
    )
    .unwrap();
    sim.control().fail_next(1, 429, Some(17));
    let e = no_retry.schema(&"problem".into()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(17)));
    // A transient 503 is retried transparently.
    sim.control().fail_next(2, 503, None);
    repo.schema(&"change_request".into()).await.unwrap();
    // The data policy: resolving without resolution fields is refused by the server too.
    let t = ItemType::from("incident");
    let item = repo
        .create(
            &t,
            &FieldMap::new().with("short_description", "x"),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    let no_wf = ServiceNowRepository::new(
        ServiceNowConfig::builder(sim.url())
            .basic("admin", "admin")
            .client_options(crate::options())
            .workflow("incident", None)
            .build(),
    )
    .unwrap();
    let e = no_wf
        .set_field(&t, &item.id, "state", FieldValue::Choice("6".into()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("Data Policy Exception"), "{e}");
    // With the fields the transition requires, it goes through.
    let resolved = repo
        .update(
            &t,
            &item.id,
            &FieldMap::new()
                .with("state", FieldValue::Choice("6".into()))
                .with("close_code", FieldValue::Choice("Solution provided".into()))
                .with("close_notes", "Restarted the mail relay"),
            &UpdateOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        resolved.field("state"),
        Some(&FieldValue::Choice("6".into()))
    );
}

#[tokio::test]
async fn values_round_trip_typed_through_the_simulator() {
    let sim = crate::sim().await;
    let repo = crate::repo(&sim);
    let t = ItemType::from("incident");
    let schema = repo.schema(&t).await.unwrap();
    assert_eq!(
        schema.get("state").unwrap().allowed_values,
        ["1", "2", "3", "6", "7", "8"]
    );
    assert_eq!(
        schema.get("priority").unwrap().kind,
        workbridge_core::FieldKind::Choice
    );
    assert_eq!(
        schema.get("assigned_to").unwrap().kind,
        workbridge_core::FieldKind::Person
    );
    assert!(schema.get("number").unwrap().read_only);
    assert!(schema.workflow.is_some());
    let item = repo
        .create(
            &t,
            &FieldMap::new()
                .with("short_description", "Typed")
                .with("assigned_to", Person::email("beth.anglin@example.com"))
                .with("u_escalate_to_dev", true)
                .with("reopen_count", 2i64),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    let FieldValue::Person(p) = item.field("assigned_to").unwrap() else {
        panic!("{:?}", item.field("assigned_to"))
    };
    assert_eq!(p.login.as_deref(), Some("beth.anglin"));
    assert_eq!(p.display_name.as_deref(), Some("Beth Anglin"));
    assert_eq!(
        item.field("u_escalate_to_dev"),
        Some(&FieldValue::Bool(true))
    );
    assert_eq!(item.field("reopen_count"), Some(&FieldValue::Int(2)));
    assert!(matches!(
        item.field("opened_at"),
        Some(FieldValue::DateTime(_))
    ));
    let Some(FieldValue::Text(number)) = item.field("number") else {
        panic!()
    };
    assert!(number.starts_with("INC00"), "{number}");
    let e = repo
        .create(
            &t,
            &FieldMap::new().with("assigned_to", Person::login("nobody.here")),
            &CreateOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.field().map(|f| f.as_str())),
        (ErrorKind::InvalidInput, Some("assigned_to"))
    );
    // A batch of writes goes out as one Batch API request.
    sim.control().reset_requests();
    let writes: Vec<Write> = (0..5)
        .map(|i| {
            Write::create(
                "incident",
                FieldMap::new().with("short_description", format!("batch {i}")),
            )
        })
        .collect();
    let results = repo.write_many(&writes).await.unwrap();
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(sim.control().requests_to("POST /api/now/v1/batch"), 1);
    assert_eq!(sim.control().requests_to("POST /api/now/table/{table}"), 0);
}

#[tokio::test]
async fn correlation_keys_are_looked_up_in_one_query() {
    let sim = crate::sim().await;
    let repo = crate::repo(&sim);
    let incident = workbridge_core::ItemType::from("incident");
    let mut keys = Vec::new();
    for i in 0..3 {
        let key = workbridge_core::CorrelationKey::new(format!("wb:bug:{i}"));
        repo.create(
            &incident,
            &workbridge_core::FieldMap::new().with("short_description", format!("T{i}")),
            &workbridge_core::CreateOptions::default().correlation(key.clone()),
        )
        .await
        .unwrap();
        keys.push(key);
    }
    keys.insert(1, workbridge_core::CorrelationKey::new("wb:bug:absent"));
    sim.control().reset_requests();
    let found = repo
        .find_many_by_correlation(&incident, &keys)
        .await
        .unwrap();
    assert_eq!(
        sim.control().total_requests(),
        1,
        "{:?}",
        sim.control().requests()
    );
    let titles: Vec<Option<String>> = found
        .iter()
        .map(|f| {
            f.as_ref()
                .and_then(|i| i.field("short_description"))
                .map(ToString::to_string)
        })
        .collect();
    assert_eq!(
        titles,
        [
            Some("T0".into()),
            None,
            Some("T1".into()),
            Some("T2".into())
        ]
    );
}

/// The Table API has no conditional write: when the PATCH's answer shows that another update came
/// between the version check and the write (`sys_mod_count` 4 → 6), the write is reported as a
/// conflict, by `update` and by `write_many`.
#[tokio::test]
async fn a_write_landing_over_a_concurrent_update_is_a_conflict() {
    use base64::Engine as _;
    let server = MockServer::start().await;
    mock_metadata(&server).await;
    Mock::given(method("GET"))
        .and(path("/api/now/table/incident"))
        .and(query_param("sysparm_query", "sys_idINa1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"result": [record("a1", "4")]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/api/now/table/incident/a1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"result": record("a1", "6")})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/now/v1/batch"))
        .respond_with(move |req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            let answer = base64::engine::general_purpose::STANDARD
                .encode(json!({"result": record("a1", "6")}).to_string());
            ResponseTemplate::new(200).set_body_json(json!({
                "batch_request_id": body["batch_request_id"],
                "serviced_requests": [
                    {"id": "w0", "status_code": 200, "status_text": "OK", "body": answer, "headers": [], "execution_time": 3}
                ],
                "unserviced_requests": []
            }))
        })
        .mount(&server)
        .await;
    let repo = repo_at(&server.uri());
    let t = ItemType::from("incident");
    let changes = FieldMap::new().with("short_description", "Mail down for EU");
    let checked = UpdateOptions::default().if_version("4");
    let e = repo
        .update(&t, &"a1".into(), &changes, &checked)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("sys_mod_count 4 to 6"), "{e}");
    assert_eq!(e.operation(), Some("update"));
    assert_eq!(e.context().item_id.as_ref().map(|i| i.as_str()), Some("a1"));

    let results = repo
        .write_many(&[Write::Update {
            item_type: t.clone(),
            id: "a1".into(),
            changes,
            options: checked,
        }])
        .await
        .unwrap();
    let e = results[0].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("sys_mod_count 4 to 6"), "{e}");
}

/// With `VersionCheck::AfterWrite` an update reads nothing before it writes: the version the
/// caller read is checked on the answer. One above it is this write alone; more is another
/// update in between, a conflict after the fact (the write applied). The adapter says so: it
/// declares no optimistic concurrency.
#[tokio::test]
async fn checked_after_the_write_an_update_costs_its_write_alone() {
    use base64::Engine as _;
    let server = MockServer::start().await;
    mock_metadata(&server).await;
    // No read of the versions may be made.
    Mock::given(method("GET"))
        .and(path("/api/now/table/incident"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/api/now/table/incident/a1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"result": record("a1", "5")})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/now/v1/batch"))
        .respond_with(move |req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            let b64 = |r: Value| {
                base64::engine::general_purpose::STANDARD.encode(json!({ "result": r }).to_string())
            };
            ResponseTemplate::new(200).set_body_json(json!({
                "batch_request_id": body["batch_request_id"],
                "serviced_requests": [
                    {"id": "w0", "status_code": 200, "status_text": "OK", "body": b64(record("a1", "5")), "headers": [], "execution_time": 3},
                    {"id": "w1", "status_code": 200, "status_text": "OK", "body": b64(record("b2", "9")), "headers": [], "execution_time": 3}
                ],
                "unserviced_requests": []
            }))
        })
        .expect(1)
        .mount(&server)
        .await;
    let repo = ServiceNowRepository::new(
        ServiceNowConfig::builder(server.uri())
            .basic("admin", "admin")
            .client_options(crate::options().retry(RetryConfig::disabled()))
            .version_check(workbridge_servicenow::VersionCheck::AfterWrite)
            .build(),
    )
    .unwrap();
    assert!(!repo.capabilities().optimistic_concurrency);
    let t = ItemType::from("incident");
    let changes = FieldMap::new().with("short_description", "Mail down for EU");
    let ok = repo
        .update(
            &t,
            &"a1".into(),
            &changes,
            &UpdateOptions::default().if_version("4"),
        )
        .await
        .unwrap();
    assert_eq!(ok.version.as_str(), "5");
    let results = repo
        .write_many(&[
            Write::Update {
                item_type: t.clone(),
                id: "a1".into(),
                changes: changes.clone(),
                options: UpdateOptions::default().if_version("4"),
            },
            Write::Update {
                item_type: t.clone(),
                id: "b2".into(),
                changes,
                options: UpdateOptions::default().if_version("7"),
            },
        ])
        .await
        .unwrap();
    assert_eq!(results[0].as_ref().unwrap().version.as_str(), "5");
    let e = results[1].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("sys_mod_count 7 to 9"), "{e}");
    assert_eq!(e.context().item_id.as_ref().map(|i| i.as_str()), Some("b2"));
}

/// An authentication provider of the integrator's own signs the requests; its `Debug` is the
/// provider's (which redacts).
#[tokio::test]
async fn a_provider_of_ones_own_signs_in() {
    let sim = crate::sim().await;
    let config = ServiceNowConfig::builder(sim.url())
        .auth_provider(Arc::new(workbridge_http::BasicAuth::new("admin", "admin")))
        .client_options(crate::options())
        .build();
    let shown = format!("{config:?}");
    assert!(
        shown.contains("Custom") && !shown.contains("\"admin\", \"admin\""),
        "{shown}"
    );
    let repo = ServiceNowRepository::new(config).unwrap();
    let page = repo
        .changes(
            &workbridge_core::ItemType::from("incident"),
            &workbridge_core::Cursor::beginning(),
            &Default::default(),
        )
        .await
        .unwrap();
    assert!(!page.items.is_empty());
}
