//! Exact requests, error bodies, malformed responses, and server-version differences.

use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};
use workbridge_azure_devops::{AzureDevOpsConfig, AzureDevOpsRepository, ServerVersion};
use workbridge_core::{
    ChangeOptions, CreateOptions, Cursor, ErrorKind, FieldMap, FieldValue, ItemType, Person,
    Repository, RepositoryExt, UpdateOptions, Write,
};
use workbridge_http::RetryConfig;
use workbridge_sim::azure_devops::ServerVersion as SimVersion;

fn repo_at(uri: &str, server: ServerVersion) -> AzureDevOpsRepository {
    AzureDevOpsRepository::new(
        AzureDevOpsConfig::builder(format!("{uri}/fabrikam"), "Fabrikam")
            .pat("TOKEN")
            .server_version(server)
            .client_options(crate::options().retry(RetryConfig::disabled()))
            .build(),
    )
    .unwrap()
}

/// Metadata in the shapes Microsoft's recorded 4.1 and 7.1 responses have: identities are
/// `"type": "string"` with `"isIdentity": true`; the type's instances carry `alwaysRequired`
/// (also for fields the server fills) but no allowed values; the type's field list carries
/// `defaultValue` and, with `$expand=allowedValues`, the allowed values.
async fn mock_metadata(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/fabrikam/Fabrikam/_apis/wit/fields"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"count": 5, "value": [
                {"name": "Title", "referenceName": "System.Title", "type": "string", "readOnly": false},
                {"name": "State", "referenceName": "System.State", "type": "string", "readOnly": false},
                {"name": "Area ID", "referenceName": "System.AreaId", "type": "integer"},
                {"name": "Changed Date", "referenceName": "System.ChangedDate", "type": "dateTime", "readOnly": true},
                {"name": "Assigned To", "referenceName": "System.AssignedTo", "type": "string", "readOnly": false, "isIdentity": true}
            ]})),
        )
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fabrikam/Fabrikam/_apis/wit/workitemtypes/Bug"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "name": "Bug",
            "fieldInstances": [
                {"referenceName": "System.Title", "name": "Title", "alwaysRequired": true},
                {"referenceName": "System.State", "name": "State", "alwaysRequired": true},
                {"referenceName": "System.AreaId", "name": "Area ID", "alwaysRequired": true},
                {"referenceName": "System.ChangedDate", "name": "Changed Date", "alwaysRequired": false},
                {"referenceName": "System.AssignedTo", "name": "Assigned To", "alwaysRequired": false}
            ],
            "transitions": {"": [{"to": "New"}], "New": [{"to": "Active"}], "Active": [{"to": "New"}]}
        })))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fabrikam/Fabrikam/_apis/wit/workitemtypes/Bug/fields"))
        .and(query_param("$expand", "allowedValues"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"count": 5, "value": [
            {"referenceName": "System.Title", "alwaysRequired": true, "defaultValue": null, "allowedValues": []},
            {"referenceName": "System.State", "alwaysRequired": true, "defaultValue": "New", "allowedValues": ["Active", "New"]},
            {"referenceName": "System.AreaId", "alwaysRequired": true, "defaultValue": null, "allowedValues": []},
            {"referenceName": "System.ChangedDate", "alwaysRequired": false, "defaultValue": null, "allowedValues": []},
            {"referenceName": "System.AssignedTo", "alwaysRequired": false, "defaultValue": null,
             "allowedValues": [{"displayName": "Jamal Hartnett", "id": "d291", "uniqueName": "fabrikamfiber4@hotmail.com"}]}
        ]})))
        .mount(server)
        .await;
}

fn item(id: u64, rev: u64) -> Value {
    json!({"id": id, "rev": rev, "fields": {"System.Title": "t", "System.State": "New", "System.WorkItemType": "Bug",
        "System.ChangedDate": "2026-01-02T03:04:05.12Z",
        "System.AssignedTo": {"displayName": "Jamal Hartnett", "uniqueName": "fabrikamfiber4@hotmail.com", "id": "d291"}},
        "url": "x"})
}

#[tokio::test]
async fn changes_sends_windowed_wiql_then_one_batch_read() {
    let server = MockServer::start().await;
    mock_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path("/fabrikam/Fabrikam/_apis/wit/wiql"))
        .and(query_param("api-version", "7.1"))
        .and(query_param("timePrecision", "true"))
        .and(query_param("$top", "2"))
        .and(header("x-tfs-fedauthredirect", "Suppress"))
        .and(header("authorization", "Basic OlRPS0VO"))
        .and(body_json(json!({"query": "SELECT [System.Id] FROM WorkItems WHERE [System.TeamProject] = @project AND [System.WorkItemType] = 'Bug' AND [System.ChangedDate] >= '2026-01-02T03:00:00.000Z' ORDER BY [System.ChangedDate] ASC, [System.Id] ASC"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"queryType": "flat", "asOf": "2026-01-02T04:00:00Z", "workItems": [{"id": 8, "url": "u"}, {"id": 5, "url": "u"}]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/fabrikam/Fabrikam/_apis/wit/workitemsbatch"))
        .and(body_json(
            json!({"ids": [8, 5], "errorPolicy": "omit", "asOf": "2026-01-02T04:00:00.000Z"}),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"count": 2, "value": [item(5, 2), item(8, 1)]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let repo = repo_at(&server.uri(), ServerVersion::Services);
    let since = Cursor::at(
        chrono::DateTime::parse_from_rfc3339("2026-01-02T03:00:00Z")
            .unwrap()
            .into(),
        "".into(),
    );
    let page = repo
        .changes(
            &"Bug".into(),
            &since,
            &ChangeOptions::default().page_size(2),
        )
        .await
        .unwrap();
    let ids: Vec<&str> = page.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["8", "5"], "items come in the query's order");
    assert!(page.has_more);
    let FieldValue::Person(p) = page.items[0].field("System.AssignedTo").unwrap() else {
        panic!()
    };
    assert_eq!(
        (p.display_name.as_deref(), p.email.as_deref()),
        (Some("Jamal Hartnett"), Some("fabrikamfiber4@hotmail.com"))
    );
}

#[tokio::test]
async fn a_203_sign_in_page_is_unauthenticated() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(203)
                .set_body_string("<html>Sign In</html>")
                .insert_header("content-type", "text/html"),
        )
        .mount(&server)
        .await;
    let e = repo_at(&server.uri(), ServerVersion::Services)
        .schema(&"Bug".into())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert_eq!(e.context().http_status, Some(203));
    // The simulator answers 203 to a client that does not suppress the redirect, 401 to one that does.
    let sim = crate::sim(SimVersion::Services).await;
    let url = format!(
        "{}/Fabrikam/_apis/wit/fields?api-version=7.1",
        sim.collection_url()
    );
    let r = reqwest::Client::new()
        .get(&url)
        .basic_auth("", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 203);
    let r = reqwest::Client::new()
        .get(&url)
        .basic_auth("", Some("wrong"))
        .header("X-TFS-FedAuthRedirect", "Suppress")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("TF400813"));
    let bad = AzureDevOpsRepository::new(
        AzureDevOpsConfig::builder(sim.collection_url(), "Fabrikam")
            .pat("wrong")
            .client_options(crate::options())
            .build(),
    )
    .unwrap();
    let e = bad.schema(&"Bug".into()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert!(
        !format!("{e:?} {bad:?}").contains("wrong"),
        "the PAT never shows"
    );
}

#[tokio::test]
async fn malformed_responses_are_protocol_errors_naming_the_path() {
    let cases: [(Value, &str); 5] = [
        (
            json!({"count": 1, "value": [{"rev": 1, "fields": {}}]}),
            "value[0].id",
        ),
        (
            json!({"count": 1, "value": [{"id": 5, "fields": {}}]}),
            "value[0].rev",
        ),
        (
            json!({"count": 1, "value": [{"id": 5, "rev": 1, "fields": {"System.ChangedDate": "yesterday"}}]}),
            "value[0].fields.System.ChangedDate",
        ),
        (
            json!({"count": 1, "value": [{"id": 5, "rev": 1, "fields": {"System.ChangedDate": "2026-01-02T03:04:05Z", "System.AssignedTo": 7}}]}),
            "value[0].fields.System.AssignedTo",
        ),
        (json!({"items": []}), "value"),
    ];
    for (body, expected) in cases {
        let server = MockServer::start().await;
        mock_metadata(&server).await;
        Mock::given(method("POST"))
            .and(path("/fabrikam/Fabrikam/_apis/wit/workitemsbatch"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body.clone()))
            .mount(&server)
            .await;
        let e = repo_at(&server.uri(), ServerVersion::Services)
            .get_many(&"Bug".into(), &["5".into()], &Default::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{body}: {e}");
        assert_eq!(e.context().path.as_deref(), Some(expected), "{body}: {e}");
    }
    let server = MockServer::start().await;
    mock_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path("/fabrikam/Fabrikam/_apis/wit/wiql"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string("{\"workItems\": [{\"id\": \"x\"}]"),
        )
        .mount(&server)
        .await;
    let e = repo_at(&server.uri(), ServerVersion::Services)
        .changes(
            &"Bug".into(),
            &Cursor::beginning(),
            &ChangeOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol);
}

#[tokio::test]
async fn stale_revision_412_and_errors_from_the_simulator() {
    let sim = crate::sim(SimVersion::Services).await;
    let repo = crate::repo(&sim, ServerVersion::Services, true);
    let t = ItemType::from("Bug");
    let bug = repo
        .create(
            &t,
            &FieldMap::new().with("System.Title", "412 test"),
            &CreateOptions::default(),
        )
        .await
        .unwrap();
    repo.set_field(&t, &bug.id, "System.Title", "moved on")
        .await
        .unwrap();
    let e = repo
        .update(
            &t,
            &bug.id,
            &FieldMap::new().with("System.Title", "stale"),
            &UpdateOptions::default().if_version(bug.version.clone()),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.context().http_status),
        (ErrorKind::Conflict, Some(412))
    );
    assert!(e.to_string().contains("VS403351"), "{e}");
    // Client-side checks name the field and value before anything is sent.
    let e = repo
        .set_field(
            &t,
            &bug.id,
            "Microsoft.VSTS.Common.Severity",
            "9 - Apocalyptic",
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.value()),
        (ErrorKind::InvalidInput, Some("9 - Apocalyptic"))
    );
    let e = repo
        .set_field(
            &t,
            &bug.id,
            "System.CreatedDate",
            FieldValue::DateTime(chrono::Utc::now()),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
    let e = repo
        .create(&t, &FieldMap::new(), &CreateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.field().map(|f| f.as_str()), Some("System.Title"));
    // The server's own rules: a person it does not know.
    let e = repo
        .set_field(
            &t,
            &bug.id,
            "System.AssignedTo",
            Person::email("nobody@nowhere.example"),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.field().map(|f| f.as_str())),
        (ErrorKind::InvalidInput, Some("System.AssignedTo"))
    );
    // A known person round-trips as a person.
    let item = repo
        .set_field(
            &t,
            &bug.id,
            "System.AssignedTo",
            Person::email("fabrikamfiber16@hotmail.com"),
        )
        .await
        .unwrap();
    let FieldValue::Person(p) = item.field("System.AssignedTo").unwrap() else {
        panic!()
    };
    assert_eq!(p.display_name.as_deref(), Some("Norman Paulk"));
    // An unknown type.
    let e = repo.schema(&"Epic".into()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    // State change with the server-chosen reason, and its side effects.
    let active = repo
        .set_field(
            &t,
            &bug.id,
            "System.State",
            FieldValue::Choice("Active".into()),
        )
        .await
        .unwrap();
    assert_eq!(
        active.field("System.Reason"),
        Some(&FieldValue::Text("Approved".into()))
    );
    assert!(
        active
            .field("Microsoft.VSTS.Common.ActivatedDate")
            .is_some()
    );
    // write_many: one $batch request.
    sim.control().reset_requests();
    let writes: Vec<Write> = (0..5)
        .map(|i| {
            Write::create(
                "Bug",
                FieldMap::new().with("System.Title", format!("batched {i}")),
            )
        })
        .collect();
    let results = repo.write_many(&writes).await.unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(
        sim.control().requests_to("POST /{org}/_apis/wit/$batch")
            + sim.control().requests_to("PATCH /{org}/_apis/wit/$batch"),
        1
    );
}

#[tokio::test]
async fn older_servers_use_their_own_api_versions_and_shapes() {
    // TFS 2017: api 3.0, identities as strings, no batch read, no Comments API.
    let sim = crate::sim(SimVersion::Tfs2017).await;
    let repo = crate::repo(&sim, ServerVersion::Tfs2017, false);
    let t = ItemType::from("Bug");
    let bug = repo
        .create(
            &t,
            &FieldMap::new().with("System.Title", "old server").with(
                "System.AssignedTo",
                Person::email("fabrikamfiber3@hotmail.com"),
            ),
            &CreateOptions::default().correlation("INC0010042"),
        )
        .await
        .unwrap();
    let FieldValue::Person(p) = bug.field("System.AssignedTo").unwrap() else {
        panic!()
    };
    assert_eq!(
        (p.display_name.as_deref(), p.email.as_deref()),
        (Some("Chuck Reinhart"), Some("fabrikamfiber3@hotmail.com"))
    );
    assert!(
        bug.field("System.Tags")
            .unwrap()
            .to_string()
            .contains("workbridge:INC0010042")
    );
    repo.add_comment(
        &t,
        &bug.id,
        &workbridge_core::NewComment::public("seen on TFS"),
    )
    .await
    .unwrap();
    let comments = repo.comments(&t, &bug.id).await.unwrap();
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0].body, "seen on TFS");
    assert_eq!(
        sim.control()
            .requests_to("POST /{org}/{project}/_apis/wit/workitemsbatch"),
        0
    );
    // A client that asks for more than the server supports gets the real error, as Config.
    let too_new = crate::repo(&sim, ServerVersion::Services, false);
    let e = too_new.schema(&t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(
        e.to_string().contains("out of range for this server"),
        "{e}"
    );
}

#[tokio::test]
async fn comment_and_attachment_errors_name_operation_system_and_item() {
    let server = MockServer::start().await;
    mock_metadata(&server).await;
    Mock::given(method("GET"))
        .and(path("/fabrikam/Fabrikam/_apis/wit/workItems/42/comments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"oops": 1})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/fabrikam/Fabrikam/_apis/wit/workItems/42/comments"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>sign in</html>"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/fabrikam/_apis/wit/workitems/42"))
        .respond_with(ResponseTemplate::new(500).set_body_string("garbage"))
        .mount(&server)
        .await;
    let repo = repo_at(&server.uri(), ServerVersion::Services);
    let t = ItemType::from("Bug");
    let id = workbridge_core::ItemId::new("42");
    let errors = [
        ("comments", repo.comments(&t, &id).await.unwrap_err()),
        (
            "add_comment",
            repo.add_comment(&t, &id, &workbridge_core::NewComment::public("x"))
                .await
                .unwrap_err(),
        ),
        ("attachments", repo.attachments(&t, &id).await.unwrap_err()),
    ];
    for (op, e) in errors {
        assert_eq!(e.operation(), Some(op), "{e}");
        assert_eq!(e.context().item_id.as_ref(), Some(&id), "{op}: {e}");
        assert!(
            e.context()
                .system
                .as_deref()
                .is_some_and(|s| s.starts_with("azure-devops:")),
            "{op}: {e}"
        );
    }
}

#[derive(Debug)]
struct Vault(std::sync::atomic::AtomicUsize);

#[workbridge_core::async_trait]
impl workbridge_http::TokenSource for Vault {
    async fn token(
        &self,
    ) -> workbridge_core::Result<(workbridge_http::SecretString, Option<std::time::Duration>)> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(("TOKEN".into(), Some(std::time::Duration::from_secs(3600))))
    }
}

/// Every way to sign in reaches the server: a PAT, a user and password (basic authentication
/// on Azure DevOps Server / TFS), tokens from a source (Entra ID), a provider of one's own;
/// a wrong password is `Unauthenticated`, and no config's `Debug` shows a secret.
#[tokio::test]
async fn each_way_to_sign_in_reaches_the_server() {
    let sim = crate::sim(SimVersion::Services).await;
    let vault = std::sync::Arc::new(Vault(std::sync::atomic::AtomicUsize::new(0)));
    let base = || {
        AzureDevOpsConfig::builder(sim.collection_url(), sim.project())
            .client_options(crate::options().retry(RetryConfig::disabled()))
    };
    let configs = [
        base().pat("TOKEN"),
        base().basic("FABRIKAM\\svc-sync", "TOKEN"),
        base().token_source(vault.clone()),
        base().auth_provider(std::sync::Arc::new(workbridge_http::BasicAuth::pat(
            "TOKEN",
        ))),
    ];
    for c in configs {
        let config = c.build();
        assert!(!format!("{config:?}").contains("TOKEN"), "{config:?}");
        let repo = AzureDevOpsRepository::new(config).unwrap();
        let schema = repo.schema(&ItemType::from("Bug")).await.unwrap();
        assert!(!schema.fields.is_empty());
    }
    assert_eq!(
        vault.0.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one token, reused"
    );
    let wrong =
        AzureDevOpsRepository::new(base().basic("FABRIKAM\\svc-sync", "nope").build()).unwrap();
    let e = wrong.schema(&ItemType::from("Bug")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(!e.to_string().contains("nope"), "{e}");
}
