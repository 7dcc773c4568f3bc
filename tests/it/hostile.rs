//! Hostile servers: every operation of every adapter, answered with malformed and surprising
//! bodies — truncated JSON, wrong types, an HTML page with 200, JSON under the wrong content
//! type, a redirect to another host, garbage announced as gzip, an answer slower than the
//! timeout. Each must end in a typed error naming the operation and the system (and the item,
//! where there is one), within a bounded time, never a panic, a hang or a silent success.

use std::sync::Arc;
use std::time::Duration;

use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};
use workbridge::{
    ChangeOptions, CreateOptions, Cursor, FieldMap, ItemId, ItemType, NewAttachment, NewComment,
    Repository, UpdateOptions, Write,
};
use workbridge_alm::{AlmConfig, AlmRepository};
use workbridge_azure_devops::{AzureDevOpsConfig, AzureDevOpsRepository};
use workbridge_http::{ClientOptions, RetryConfig};
use workbridge_servicenow::{ServiceNowConfig, ServiceNowRepository};

#[derive(Clone, Copy, Debug)]
enum Hostile {
    TruncatedJson,
    WrongTypes,
    HtmlWith200,
    WrongContentType,
    RedirectElsewhere,
    GarbageGzip,
    Slow,
}

const ALL: [Hostile; 7] = [
    Hostile::TruncatedJson,
    Hostile::WrongTypes,
    Hostile::HtmlWith200,
    Hostile::WrongContentType,
    Hostile::RedirectElsewhere,
    Hostile::GarbageGzip,
    Hostile::Slow,
];

struct Answer {
    how: Hostile,
    elsewhere: String,
}

impl Respond for Answer {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        match self.how {
            Hostile::TruncatedJson => ResponseTemplate::new(200)
                .insert_header("content-type", "application/json")
                .set_body_string(r#"{"result": [{"sys_id": "a1", "value": [{"id": 4"#),
            Hostile::WrongTypes => ResponseTemplate::new(200)
                .insert_header("content-type", "application/json")
                .set_body_string(
                    r#"{"result": 5, "value": "seven", "count": "n", "Fields": 3, "entities": true, "id": [], "workItems": 1, "comments": "x", "TotalResults": "many"}"#,
                ),
            Hostile::HtmlWith200 => ResponseTemplate::new(200)
                .insert_header("content-type", "text/html")
                .set_body_string("<html><body><h1>Sign in</h1><form></form></body></html>"),
            Hostile::WrongContentType => ResponseTemplate::new(200)
                .insert_header("content-type", "text/plain")
                .set_body_string("all good"),
            Hostile::RedirectElsewhere => ResponseTemplate::new(307)
                .insert_header("location", format!("{}/elsewhere", self.elsewhere).as_str()),
            Hostile::GarbageGzip => ResponseTemplate::new(200)
                .insert_header("content-type", "application/json")
                .insert_header("content-encoding", "gzip")
                .set_body_bytes(b"\x1f\x8b\x08\x00 this is not gzip at all".to_vec()),
            Hostile::Slow => ResponseTemplate::new(200)
                .insert_header("content-type", "application/json")
                .set_body_string("{}")
                .set_delay(Duration::from_secs(3)),
        }
    }
}

fn options() -> ClientOptions {
    ClientOptions::default()
        .allow_http(true)
        .retry(RetryConfig::disabled())
        .timeout(Some(Duration::from_millis(500)))
}

/// Runs every operation against a server answering `how`; returns the failures to report.
async fn every_operation(repo: &dyn Repository, t: &str, how: Hostile) -> Vec<String> {
    let t = ItemType::from(t);
    let id = ItemId::new("42");
    let mut problems = Vec::new();
    macro_rules! op {
        ($name:literal, $item:expr, $call:expr) => {{
            match tokio::time::timeout(Duration::from_secs(10), $call).await {
                Err(_) => problems.push(format!("{how:?} {}: hung", $name)),
                Ok(Ok(v)) => problems.push(format!("{how:?} {}: succeeded with {v:?}", $name)),
                Ok(Err(e)) => {
                    if e.operation().is_none() {
                        problems.push(format!("{how:?} {}: no operation in `{e}`", $name));
                    }
                    if e.context().system.is_none() {
                        problems.push(format!("{how:?} {}: no system in `{e}`", $name));
                    }
                    if $item && e.context().item_id.is_none() {
                        problems.push(format!("{how:?} {}: no item in `{e}`", $name));
                    }
                }
            }
        }};
    }
    op!("schema", false, repo.schema(&t));
    op!(
        "changes",
        false,
        repo.changes(&t, &Cursor::beginning(), &ChangeOptions::default())
    );
    op!(
        "get_many",
        false,
        repo.get_many(&t, std::slice::from_ref(&id), &Default::default())
    );
    op!(
        "create",
        false,
        repo.create(
            &t,
            &FieldMap::new().with("short_description", "x"),
            &CreateOptions::default()
        )
    );
    op!(
        "update",
        true,
        repo.update(
            &t,
            &id,
            &FieldMap::new().with("short_description", "x"),
            &UpdateOptions::default()
        )
    );
    op!(
        "find_by_correlation",
        false,
        repo.find_by_correlation(&t, &"wb:x:1".into())
    );
    op!("comments", true, repo.comments(&t, &id));
    op!(
        "add_comment",
        true,
        repo.add_comment(&t, &id, &NewComment::public("x"))
    );
    op!("attachments", true, repo.attachments(&t, &id));
    op!(
        "upload",
        true,
        repo.upload(&t, &id, &NewAttachment::new("a.txt", "text/plain", "x"))
    );
    op!("write_many", false, async {
        let results = repo
            .write_many(&[Write::create(
                t.clone(),
                FieldMap::new().with("short_description", "x"),
            )])
            .await?;
        // A batch that ran may answer per item: each item must have failed, typed.
        match results.into_iter().next() {
            Some(Err(e)) => Err(e),
            Some(Ok(v)) => Ok(vec![v]),
            None => Ok(Vec::new()),
        }
    });
    problems
}

async fn hostile(how: Hostile) -> (MockServer, MockServer) {
    let elsewhere = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&elsewhere)
        .await;
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(Answer {
            how,
            elsewhere: elsewhere.uri(),
        })
        .mount(&server)
        .await;
    (server, elsewhere)
}

#[tokio::test]
async fn every_adapter_answers_hostile_servers_with_typed_errors() {
    let mut problems = Vec::new();
    for how in ALL {
        let (server, elsewhere) = hostile(how).await;
        let sn: Arc<dyn Repository> = Arc::new(
            ServiceNowRepository::new(
                ServiceNowConfig::builder(server.uri())
                    .basic("admin", "admin")
                    .client_options(options())
                    .build(),
            )
            .unwrap(),
        );
        let ado: Arc<dyn Repository> = Arc::new(
            AzureDevOpsRepository::new(
                AzureDevOpsConfig::builder(format!("{}/fabrikam", server.uri()), "Fabrikam")
                    .pat("TOKEN")
                    .client_options(options())
                    .build(),
            )
            .unwrap(),
        );
        let alm: Arc<dyn Repository> = Arc::new(
            AlmRepository::new(
                AlmConfig::builder(format!("{}/qcbin", server.uri()), "DEFAULT", "Demo")
                    .password("qa", "qa")
                    .client_options(options())
                    .build(),
            )
            .unwrap(),
        );
        for (repo, t) in [(&sn, "incident"), (&ado, "Bug"), (&alm, "defects")] {
            for p in every_operation(repo.as_ref(), t, how).await {
                problems.push(format!("{repo}: {p}"));
            }
        }
        assert!(
            elsewhere.received_requests().await.unwrap().is_empty(),
            "{how:?}: a redirect reached another host"
        );
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
