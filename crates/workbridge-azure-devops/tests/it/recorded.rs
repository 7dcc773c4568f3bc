//! Microsoft's own recorded responses, replayed through the adapter.
//!
//! The `httpExamples` of `MicrosoftDocs/vsts-rest-api-specs` (MIT) are request/response pairs
//! recorded from Azure DevOps. This module serves them from a loopback mock and reads them
//! through [`AzureDevOpsRepository`]: every recorded payload must parse into the right typed
//! values. The recordings are read from a checkout of that repository named by
//! `WORKBRIDGE_VSTS_SPECS`, or from `shared/vendor/vsts-rest-api-specs` beside the project;
//! with neither, the replay says so and checks nothing (`WORKBRIDGE_REQUIRE_RECORDED=1` turns
//! that into a failure). The tests at the top of the module need no checkout: they hold the
//! shapes those recordings showed (identities typed `string` with `isIdentity`, server-filled
//! fields marked `alwaysRequired`, identity strings before 5.0).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};
use workbridge_azure_devops::{AzureDevOpsConfig, AzureDevOpsRepository, ServerVersion};
use workbridge_core::{
    ChangeOptions, CreateOptions, Cursor, FieldKind, FieldMap, FieldValue, ItemId, ItemType,
    NewAttachment, NewComment, Repository, UpdateOptions, Version,
};
use workbridge_http::RetryConfig;

fn repo_at(uri: &str, server: ServerVersion) -> AzureDevOpsRepository {
    AzureDevOpsRepository::new(
        AzureDevOpsConfig::builder(format!("{uri}/fabrikam"), "Fabrikam-Fiber-Git")
            .pat("TOKEN")
            .server_version(server)
            .client_options(crate::options().retry(RetryConfig::disabled()))
            .build(),
    )
    .expect("the adapter builds")
}

fn person(v: Option<&FieldValue>) -> (Option<String>, Option<String>) {
    match v {
        Some(FieldValue::Person(p)) => (p.display_name.clone(), p.email.clone()),
        other => panic!("expected a person, found {other:?}"),
    }
}

fn jamal() -> (Option<String>, Option<String>) {
    (
        Some("Jamal Hartnett".to_owned()),
        Some("fabrikamfiber4@hotmail.com".to_owned()),
    )
}

/// Serves one JSON body for every request, with `name` set to the type in the path (the
/// recordings have one work item type's metadata; the items are of several types).
struct TypeNamed(Value);

impl Respond for TypeNamed {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut body = self.0.clone();
        if let Some(name) = req.url.path_segments().and_then(|mut s| s.next_back()) {
            let name = percent_decode(name);
            body["name"] = json!(name);
        }
        ResponseTemplate::new(200).set_body_json(body)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mounts metadata: the organization's field list, one type (served under every name) and
/// that type's field list.
async fn mount_metadata(server: &MockServer, fields: Value, ty: Value, type_fields: Value) {
    Mock::given(method("GET"))
        .and(path_regex(r"^/fabrikam/[^/]+/_apis/wit/fields$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fields))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(
            r"^/fabrikam/[^/]+/_apis/wit/workitemtypes/[^/]+/fields$",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(type_fields))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(
            r"^/fabrikam/[^/]+/_apis/wit/workitemtypes/[^/]+$",
        ))
        .respond_with(TypeNamed(ty))
        .mount(server)
        .await;
}

// ---- shapes seen in the recordings, held without a checkout -------------------------------

fn identity_object() -> Value {
    json!({
        "displayName": "Jamal Hartnett",
        "url": "https://vssps.example/_apis/Identities/d291b0c4",
        "_links": {"avatar": {"href": "https://example/_apis/GraphProfile/MemberAvatars/aad.x"}},
        "id": "d291b0c4-a05c-4ea6-8df1-4b41d5f39eff",
        "uniqueName": "fabrikamfiber4@hotmail.com",
        "imageUrl": "https://example/_api/_common/identityImage?id=d291b0c4",
        "descriptor": "aad.x"
    })
}

fn shaped_fields() -> Value {
    json!({"count": 8, "value": [
        {"name": "Title", "referenceName": "System.Title", "type": "string", "readOnly": false},
        {"name": "State", "referenceName": "System.State", "type": "string", "readOnly": false},
        {"name": "Area ID", "referenceName": "System.AreaId", "type": "integer"},
        {"name": "Iteration ID", "referenceName": "System.IterationId", "type": "integer"},
        {"name": "Area Path", "referenceName": "System.AreaPath", "type": "treePath", "readOnly": true},
        {"name": "Changed Date", "referenceName": "System.ChangedDate", "type": "dateTime", "readOnly": true},
        {"name": "Changed By", "referenceName": "System.ChangedBy", "type": "string", "isIdentity": true},
        {"name": "Assigned To", "referenceName": "System.AssignedTo", "type": "string", "isIdentity": true},
        {"name": "Value Area", "referenceName": "Microsoft.VSTS.Common.ValueArea", "type": "string"}
    ]})
}

fn shaped_type() -> Value {
    let f = |r: &str, req: bool| json!({"referenceName": r, "name": r, "alwaysRequired": req});
    json!({"name": "Bug", "fieldInstances": [
        f("System.Title", true), f("System.State", true), f("System.AreaId", true),
        f("System.IterationId", true), f("System.AreaPath", false), f("System.ChangedDate", false),
        f("System.ChangedBy", false), f("System.AssignedTo", false),
        f("Microsoft.VSTS.Common.ValueArea", true)
    ], "transitions": {"": [{"to": "New", "actions": null}], "New": [{"to": "Active", "actions": null}]}})
}

fn shaped_type_fields() -> Value {
    json!({"count": 3, "value": [
        {"referenceName": "System.State", "alwaysRequired": true, "defaultValue": "New", "allowedValues": ["Active", "New"]},
        {"referenceName": "Microsoft.VSTS.Common.ValueArea", "alwaysRequired": true, "defaultValue": "Business", "allowedValues": ["Architectural", "Business"]},
        {"referenceName": "System.AssignedTo", "alwaysRequired": false, "defaultValue": null, "allowedValues": [identity_object()]}
    ]})
}

fn shaped_item(identity: &Value) -> Value {
    json!({"id": 299, "rev": 7, "fields": {
        "System.WorkItemType": "Bug", "System.State": "New", "System.Title": "t",
        "System.AreaPath": "Fabrikam", "System.AreaId": 10,
        "System.ChangedDate": "2014-12-29T20:49:28.74Z",
        "System.ChangedBy": identity, "System.AssignedTo": identity
    }, "url": "https://example/_apis/wit/workItems/299"})
}

#[tokio::test]
async fn identities_typed_string_with_is_identity_read_as_people_in_both_eras() {
    for (server_version, identity) in [
        (ServerVersion::Services, identity_object()),
        (
            ServerVersion::Tfs2018,
            json!("Jamal Hartnett <fabrikamfiber4@hotmail.com>"),
        ),
    ] {
        let server = MockServer::start().await;
        mount_metadata(
            &server,
            shaped_fields(),
            shaped_type(),
            shaped_type_fields(),
        )
        .await;
        let item = shaped_item(&identity);
        Mock::given(method("POST"))
            .and(path(
                "/fabrikam/Fabrikam-Fiber-Git/_apis/wit/workitemsbatch",
            ))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"count": 1, "value": [item]})),
            )
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/fabrikam/Fabrikam-Fiber-Git/_apis/wit/workitems"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"count": 1, "value": [item]})),
            )
            .mount(&server)
            .await;
        let repo = repo_at(&server.uri(), server_version);
        let t = ItemType::from("Bug");
        let schema = repo.schema(&t).await.unwrap();
        assert_eq!(
            schema.get("System.AssignedTo").unwrap().kind,
            FieldKind::Person
        );
        let got = repo
            .get_many(&t, &[ItemId::new("299")], &Default::default())
            .await
            .unwrap();
        let got = got[0].as_ref().expect("the item is read");
        assert_eq!(person(got.field("System.AssignedTo")), jamal());
        assert_eq!(person(got.field("System.ChangedBy")), jamal());
        assert_eq!(
            got.changed_by.as_ref().and_then(|p| p.email.as_deref()),
            Some("fabrikamfiber4@hotmail.com")
        );
    }
}

#[tokio::test]
async fn a_title_alone_creates_though_the_type_marks_server_filled_fields_required() {
    let server = MockServer::start().await;
    mount_metadata(
        &server,
        shaped_fields(),
        shaped_type(),
        shaped_type_fields(),
    )
    .await;
    Mock::given(method("POST"))
        .and(path(
            "/fabrikam/Fabrikam-Fiber-Git/_apis/wit/workitems/$Bug",
        ))
        .and(wiremock::matchers::body_json(
            json!([{"op": "add", "path": "/fields/System.Title", "value": "only a title"}]),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(shaped_item(&identity_object())))
        .expect(1)
        .mount(&server)
        .await;
    let repo = repo_at(&server.uri(), ServerVersion::Services);
    let t = ItemType::from("Bug");
    let schema = repo.schema(&t).await.unwrap();
    let required: Vec<&str> = schema
        .fields
        .values()
        .filter(|f| f.required)
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(required, ["System.Title"]);
    // Tree paths are listed read-only but are written by path.
    assert!(!schema.get("System.AreaPath").unwrap().read_only);
    assert_eq!(
        schema.get("System.State").unwrap().allowed_values,
        ["Active", "New"]
    );
    repo.create(
        &t,
        &FieldMap::new().with("System.Title", "only a title"),
        &CreateOptions::default(),
    )
    .await
    .expect("the server fills state, area, iteration and value area");
}

// ---- the recordings themselves --------------------------------------------------------------

#[allow(clippy::print_stderr)]
/// The `specification/wit` folder of a checkout of `vsts-rest-api-specs`, if one is at hand.
pub(crate) fn recordings() -> Option<PathBuf> {
    let from_env = std::env::var_os("WORKBRIDGE_VSTS_SPECS").map(PathBuf::from);
    let beside =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vendor/vsts-rest-api-specs");
    let found = from_env
        .into_iter()
        .chain([beside])
        .map(|p| p.join("specification/wit"))
        .find(|p| p.is_dir());
    if found.is_none() {
        assert!(
            std::env::var_os("WORKBRIDGE_REQUIRE_RECORDED").is_none(),
            "WORKBRIDGE_REQUIRE_RECORDED is set but no checkout of vsts-rest-api-specs was found"
        );
        eprintln!(
            "no checkout of vsts-rest-api-specs (set WORKBRIDGE_VSTS_SPECS): recorded replay not run"
        );
    }
    found
}

/// One recorded example: its parameters and the body of its first response.
struct Example {
    params: Value,
    body: Value,
}

fn example(root: &Path, version: &str, file: &str) -> Example {
    let p = root.join(version).join("httpExamples").join(file);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let v: Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let body = v["responses"]
        .as_object()
        .and_then(|r| r.values().next())
        .map(|r| r["body"].clone())
        .unwrap_or(Value::Null);
    Example {
        params: v["parameters"].clone(),
        body,
    }
}

async fn recorded_metadata(server: &MockServer, root: &Path, version: &str) {
    mount_metadata(
        server,
        example(root, version, "fields/GET__wit_fields.json").body,
        example(
            root,
            version,
            "workItemTypes/GET__wit_workItemTypes_Bug.json",
        )
        .body,
        example(
            root,
            version,
            "workItemTypesField/GET__workItemType_fields_expand.json",
        )
        .body,
    )
    .await;
}

/// Reads a recorded work item list through `get_many` and `changes` and checks every field of
/// every item has the typed value its metadata gives it.
async fn replay_reads(root: &Path, version: &str, server_version: ServerVersion) {
    let server = MockServer::start().await;
    recorded_metadata(&server, root, version).await;
    let list = example(root, version, "workItems/GET__wit_WorkItems_ids-_ids_.json");
    for p in [
        r"^/fabrikam/[^/]+/_apis/wit/workitemsbatch$",
        r"^/fabrikam/_apis/wit/workitemsbatch$",
    ] {
        Mock::given(method("POST"))
            .and(path_regex(p))
            .respond_with(ResponseTemplate::new(200).set_body_json(list.body.clone()))
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path_regex(r"^/fabrikam/([^/]+/)?_apis/wit/workitems$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list.body.clone()))
        .mount(&server)
        .await;
    let mut wiql = example(root, version, "wiql/GET__wit_get_id_workitems.json").body;
    // The scan asks for items of one type; keep the recorded ids of the listed items.
    let listed: Vec<Value> = list.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| json!({"id": i["id"], "url": i["url"]}))
        .collect();
    wiql["workItems"] = json!(listed);
    Mock::given(method("POST"))
        .and(path_regex(r"^/fabrikam/[^/]+/_apis/wit/wiql$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(wiql))
        .mount(&server)
        .await;
    let repo = repo_at(&server.uri(), server_version);
    let ids: Vec<ItemId> = list.params["ids"]
        .as_str()
        .unwrap()
        .split(',')
        .map(ItemId::new)
        .collect();
    let mut read = 0;
    for recorded in list.body["value"].as_array().unwrap() {
        let t = ItemType::from(recorded["fields"]["System.WorkItemType"].as_str().unwrap());
        let got = repo
            .get_many(&t, &ids, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("{version} get_many {t}: {e}"));
        let id = recorded["id"].to_string();
        let item = got
            .iter()
            .flatten()
            .find(|i| i.id.as_str() == id)
            .unwrap_or_else(|| panic!("{version}: item {id} of type {t} was not read"));
        check_typed(version, item, recorded);
        read += 1;
        let page = repo
            .changes(&t, &Cursor::beginning(), &ChangeOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{version} changes {t}: {e}"));
        assert!(
            page.items.iter().any(|i| i.id.as_str() == id),
            "{version}: changes of {t} misses item {id}"
        );
    }
    assert_eq!(read, list.body["value"].as_array().unwrap().len());
}

/// Every recorded field is there, with the value kind the recordings imply.
fn check_typed(version: &str, item: &workbridge_core::WorkItem, recorded: &Value) {
    for (k, raw) in recorded["fields"].as_object().unwrap() {
        if k == "System.History" {
            continue;
        }
        let got = item
            .field(k)
            .unwrap_or_else(|| panic!("{version} item {}: field {k} missing", item.id));
        let ok = match (got, raw) {
            (FieldValue::Person(p), Value::Object(o)) => {
                p.display_name.as_deref() == o.get("displayName").and_then(Value::as_str)
                    && p.login.as_deref() == o.get("uniqueName").and_then(Value::as_str)
            }
            (FieldValue::Person(p), Value::String(s)) => {
                let (name, unique) = s.rsplit_once('<').expect("an identity string");
                p.display_name.as_deref() == Some(name.trim())
                    && p.email.as_deref() == Some(unique.trim_end_matches('>').trim())
            }
            (FieldValue::DateTime(t), Value::String(s)) => {
                chrono::DateTime::parse_from_rfc3339(s).is_ok_and(|r| r == *t)
            }
            (FieldValue::Html(h), Value::String(s)) => h == s,
            (_, Value::String(s)) => got.as_str() == Some(s.as_str()),
            (FieldValue::Int(i), Value::Number(n)) => Some(*i) == n.as_i64(),
            (FieldValue::Float(f), Value::Number(n)) => Some(*f) == n.as_f64(),
            (FieldValue::Choice(c), Value::Number(n)) => *c == n.to_string(),
            _ => false,
        };
        // Identities and dates are typed whatever the field's name.
        if k.ends_with("By") || k == "System.AssignedTo" {
            assert!(
                matches!(got, FieldValue::Person(_)),
                "{version} {k}: {got:?}"
            );
        }
        if k.ends_with("Date") {
            assert!(
                matches!(got, FieldValue::DateTime(_)),
                "{version} {k}: {got:?}"
            );
        }
        assert!(
            ok,
            "{version} item {}: {k} = {raw} read as {got:?}",
            item.id
        );
    }
}

#[tokio::test]
async fn recorded_work_items_read_as_typed_values() {
    let Some(root) = recordings() else { return };
    replay_reads(&root, "7.1", ServerVersion::Services).await;
    replay_reads(&root, "4.1", ServerVersion::Tfs2018).await;
}

#[tokio::test]
async fn recorded_writes_comments_and_attachments_parse() {
    let Some(root) = recordings() else { return };
    let v = "7.1";
    let server = MockServer::start().await;
    recorded_metadata(&server, &root, v).await;
    let created = example(&root, v, "workItems/POST__wit_workitems_create.json");
    Mock::given(method("POST"))
        .and(path_regex(r"^/fabrikam/[^/]+/_apis/wit/workitems/\$Task$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(created.body.clone()))
        .mount(&server)
        .await;
    let updated = example(&root, v, "workItems/PATCH__wit_workitems__taskId_3.json");
    Mock::given(method("PATCH"))
        .and(path_regex(r"^/fabrikam/([^/]+/)?_apis/wit/workitems/299$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(updated.body.clone()))
        .mount(&server)
        .await;
    let comments = example(
        &root,
        v,
        "comments/GET__wit_workitems__issueId__comments_1.json",
    );
    let mut list = comments.body.clone();
    list.as_object_mut().unwrap().remove("continuationToken");
    list.as_object_mut().unwrap().remove("nextPage");
    Mock::given(method("GET"))
        .and(path_regex(
            r"^/fabrikam/[^/]+/_apis/wit/workItems/299/comments$",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(list.clone()))
        .mount(&server)
        .await;
    let added = example(
        &root,
        v,
        "comments/POST__wit_workitems__taskId__comments_create.json",
    );
    Mock::given(method("POST"))
        .and(path_regex(
            r"^/fabrikam/[^/]+/_apis/wit/workItems/299/comments$",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(added.body.clone()))
        .mount(&server)
        .await;
    let uploaded = example(
        &root,
        v,
        "attachments/POST__wit_attachments_fileName-_textFile_.json",
    );
    Mock::given(method("POST"))
        .and(path_regex(r"^/fabrikam/([^/]+/)?_apis/wit/attachments$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(uploaded.body.clone()))
        .mount(&server)
        .await;
    let repo = repo_at(&server.uri(), ServerVersion::Services);
    let task = ItemType::from("Task");

    let item = repo
        .create(
            &task,
            &FieldMap::new().with("System.Title", "Sample task"),
            &CreateOptions::default(),
        )
        .await
        .expect("the recorded create parses");
    check_typed(v, &item, &created.body);

    let item = repo
        .update(
            &task,
            &ItemId::new("299"),
            &FieldMap::new().with(
                "System.Title",
                "JavaScript implementation for Microsoft Account",
            ),
            &UpdateOptions::default().if_version(Version::new("2")),
        )
        .await
        .expect("the recorded update parses");
    check_typed(v, &item, &updated.body);

    let got = repo
        .comments(&task, &ItemId::new("299"))
        .await
        .expect("the recorded comment list parses");
    let recorded = list["comments"].as_array().unwrap();
    assert_eq!(got.len(), recorded.len());
    for (c, r) in got.iter().zip(recorded) {
        let rid = r.get("id").or_else(|| r.get("commentId")).unwrap();
        assert_eq!(c.id, rid.to_string());
        assert_eq!(c.body, r["text"].as_str().unwrap());
        assert_eq!(
            c.author.as_ref().and_then(|p| p.display_name.as_deref()),
            Some("Jamal Hartnett")
        );
    }
    let c = repo
        .add_comment(
            &task,
            &ItemId::new("299"),
            &NewComment::public("Moving to the right area path"),
        )
        .await
        .expect("the recorded comment create parses");
    let rid = added
        .body
        .get("id")
        .or_else(|| added.body.get("commentId"))
        .unwrap();
    assert_eq!(c.id, rid.to_string());

    // Upload: the recorded relation patch links the attachment reference its request names
    // (the server drops `?fileName=` from the relation's url).
    let linked = example(&root, v, "workItems/PATCH__wit_workitems__taskId_6.json");
    let reference = linked.params["body"][2]["value"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let aid = reference
        .rsplit('/')
        .next()
        .and_then(|s| s.split('?').next())
        .unwrap()
        .to_owned();
    server.reset().await;
    recorded_metadata(&server, &root, v).await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/fabrikam/([^/]+/)?_apis/wit/attachments$"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"id": aid, "url": reference})),
        )
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path_regex(r"^/fabrikam/([^/]+/)?_apis/wit/workitems/299$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(linked.body.clone()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/fabrikam/([^/]+/)?_apis/wit/workitems/299$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(linked.body.clone()))
        .mount(&server)
        .await;
    let meta = repo
        .upload(
            &task,
            &ItemId::new("299"),
            &NewAttachment::new("Spec.txt", "text/plain", "the spec"),
        )
        .await
        .expect("the recorded upload and relation parse");
    assert_eq!(
        (meta.id.as_str(), meta.file_name.as_str()),
        (aid.as_str(), "Spec.txt")
    );
}

/// A work item's revision list, as recorded, tells the kernel whether a write whose answer was
/// lost landed (ADR 0014): the revision right after the one the write was made against is read
/// with `$top=1&$skip=rev`, typed like any read.
#[tokio::test]
async fn the_recorded_revision_list_reads_the_revision_after_a_version() {
    let Some(root) = recordings() else { return };
    for (v, server_version) in [
        ("7.1", ServerVersion::Services),
        ("4.1", ServerVersion::Tfs2018),
    ] {
        let server = MockServer::start().await;
        recorded_metadata(&server, &root, v).await;
        let paged = example(
            &root,
            v,
            "revisions/GET__list_workitem_revisions_paged.json",
        );
        // Recorded with `$top=2&$skip=1`: the list starts at rev 2.
        assert_eq!(paged.body["value"][0]["rev"], 2, "{v}");
        Mock::given(method("GET"))
            .and(path_regex(
                r"^/fabrikam/([^/]+/)?_apis/wit/workitems/1/revisions$",
            ))
            .and(wiremock::matchers::query_param("$skip", "1"))
            .and(wiremock::matchers::query_param("$top", "1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(paged.body.clone()))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path_regex(
                r"^/fabrikam/([^/]+/)?_apis/wit/workitems/1/revisions$",
            ))
            .and(wiremock::matchers::query_param("$skip", "9"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"count": 0, "value": []})),
            )
            .mount(&server)
            .await;
        let repo = repo_at(&server.uri(), server_version);
        let bug = ItemType::from("Bug");
        let rev2 = repo
            .revision_after(&bug, &ItemId::new("1"), &Version::new("1"), 1)
            .await
            .unwrap_or_else(|e| panic!("{v}: {e}"))
            .expect("rev 2 is recorded");
        assert_eq!(rev2.version.as_str(), "2");
        check_typed(v, &rev2, &paged.body["value"][0]);
        let none = repo
            .revision_after(&bug, &ItemId::new("1"), &Version::new("5"), 5)
            .await
            .unwrap_or_else(|e| panic!("{v}: {e}"));
        assert!(none.is_none(), "{v}: no rev 10");
        // An answer for another rev than asked for is not taken for it.
        Mock::given(method("GET"))
            .and(path_regex(
                r"^/fabrikam/([^/]+/)?_apis/wit/workitems/1/revisions$",
            ))
            .and(wiremock::matchers::query_param("$skip", "2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(paged.body.clone()))
            .mount(&server)
            .await;
        let e = repo
            .revision_after(&bug, &ItemId::new("1"), &Version::new("2"), 1)
            .await
            .expect_err("rev 2 is not rev 3");
        assert_eq!(e.kind(), workbridge_core::ErrorKind::Protocol, "{v}: {e}");
        assert_eq!(e.operation(), Some("revision_after"));
        assert!(e.to_string().contains("rev 3"), "{e}");
    }
}
