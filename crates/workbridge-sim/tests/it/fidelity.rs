//! What the vendors' own clients (Microsoft's Python and Node clients for Azure DevOps,
//! ServiceNow's pysnc, pysnow) need of the simulators, held on the wire: discovery at every
//! level, optional route segments, single revisions, values as clients spell them, TLS.

use serde_json::{Value, json};
use workbridge_sim::Tls;
use workbridge_sim::alm::{AlmSim, AlmVersion};
use workbridge_sim::azure_devops::{AzureDevOpsSim, ServerVersion};
use workbridge_sim::servicenow::ServiceNowSim;

async fn ado(server: ServerVersion) -> AzureDevOpsSim {
    AzureDevOpsSim::builder()
        .pat("TOKEN")
        .server_version(server)
        .seed_items(3)
        .spawn()
        .await
        .unwrap()
}

async fn send(rb: reqwest::RequestBuilder) -> (u16, Value) {
    let r = rb.basic_auth("", Some("TOKEN")).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn ids(v: &Value) -> Vec<String> {
    v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn azure_devops_location_discovery_at_every_level() {
    let sim = ado(ServerVersion::Services).await;
    let c = reqwest::Client::new();
    let base = sim.collection_url();
    let root = base.rsplit_once('/').unwrap().0.to_owned();
    let options = |u: String| c.request(reqwest::Method::OPTIONS, u);
    // Organization level, with and without a trailing slash: every resource served, the
    // resource areas and the type fields included.
    for u in [format!("{base}/_apis"), format!("{base}/_apis/")] {
        let (s, v) = send(options(u)).await;
        assert_eq!(s, 200);
        let all = ids(&v);
        for id in [
            "e81700f7-3be2-46de-8624-2eb35882fcaa",
            "bd293ce5-3d25-4192-8e67-e8092e879efb",
            "72c7ddf8-2cdc-4f60-90cd-ab71c14a399b",
            "608aac0a-32e1-4493-a863-b9cf4566d257",
            "6570bf97-d02c-4a91-8d93-3abe9895b1a9",
        ] {
            assert!(all.iter().any(|x| x == id), "{id} missing from {all:?}");
        }
    }
    // Area level, as the Node client asks (case-insensitive).
    let (s, v) = send(options(format!("{base}/_apis/Location"))).await;
    assert_eq!(s, 200);
    assert_eq!(ids(&v), ["e81700f7-3be2-46de-8624-2eb35882fcaa"]);
    let (_, v) = send(options(format!("{base}/_apis/wit"))).await;
    assert!(ids(&v).len() > 10);
    // Deployment level.
    let (s, v) = send(options(format!("{root}/_apis"))).await;
    assert_eq!(s, 200);
    assert!(!ids(&v).is_empty());
    // Services names the WIT area; one area by id too.
    let (s, v) = send(c.get(format!(
        "{base}/_apis/resourceAreas?api-version=7.1-preview.1"
    )))
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["value"][0]["locationUrl"], json!(base));
    let (s, v) = send(c.get(format!(
        "{base}/_apis/resourceAreas/5264459e-e5e0-4bd8-b118-0985e68a4ec5?api-version=7.1-preview.1"
    )))
    .await;
    assert_eq!((s, v["name"].as_str()), (200, Some("wit")));
    // On-premises servers answer an empty collection.
    let onprem = ado(ServerVersion::Server2022).await;
    let (s, v) = send(c.get(format!(
        "{}/_apis/resourceAreas?api-version=7.0-preview.1",
        onprem.collection_url()
    )))
    .await;
    assert_eq!((s, v["count"].as_u64()), (200, Some(0)));
}

#[tokio::test]
async fn azure_devops_optional_segments_single_entries_and_numeric_expand() {
    let sim = ado(ServerVersion::Services).await;
    let c = reqwest::Client::new();
    let base = sim.collection_url();
    let p = sim.project();
    let (s, created) = send(
        c.post(format!(
            "{base}/{p}/_apis/wit/workitems/$Bug?api-version=7.1"
        ))
        .header("Content-Type", "application/json-patch+json")
        .body(r#"[{"op":"add","path":"/fields/System.Title","value":"only a title"}]"#),
    )
    .await;
    assert_eq!(s, 200, "{created}");
    // The server fills what the type marks alwaysRequired.
    for f in [
        "System.State",
        "System.AreaId",
        "System.IterationId",
        "Microsoft.VSTS.Common.ValueArea",
    ] {
        assert!(
            created["fields"].get(f).is_some(),
            "{f} not filled: {created}"
        );
    }
    let id = created["id"].as_u64().unwrap();
    let (s, _) = send(
        c.patch(format!("{base}/_apis/wit/workitems/{id}?api-version=7.1"))
            .header("Content-Type", "application/json-patch+json")
            .body(r#"[{"op":"add","path":"/fields/System.Title","value":"renamed"}]"#),
    )
    .await;
    assert_eq!(s, 200);
    let query =
        json!({"query": format!("SELECT [System.Id] FROM WorkItems WHERE [System.Id] = {id}")});
    for route in [
        format!("{base}/_apis/wit/wiql"),
        format!("{base}/{p}/_apis/wit/wiql"),
        format!("{base}/{p}/{p}%20Team/_apis/wit/wiql"),
    ] {
        let (s, v) = send(c.post(format!("{route}?api-version=7.1")).json(&query)).await;
        assert_eq!(s, 200, "{route}: {v}");
        assert_eq!(v["workItems"][0]["id"], json!(id), "{route}");
    }
    let (s, v) = send(c.get(format!(
        "{base}/{p}/_apis/wit/workItems/{id}/updates/2?api-version=7.1"
    )))
    .await;
    assert_eq!((s, v["rev"].as_u64()), (200, Some(2)), "{v}");
    assert_eq!(v["fields"]["System.Title"]["newValue"], "renamed");
    let (s, v) = send(c.get(format!(
        "{base}/_apis/wit/workItems/{id}/revisions/1?api-version=7.1"
    )))
    .await;
    assert_eq!(
        (s, v["fields"]["System.Title"].as_str()),
        (200, Some("only a title"))
    );
    let (s, _) = send(c.get(format!(
        "{base}/_apis/wit/workItems/{id}/revisions/9?api-version=7.1"
    )))
    .await;
    assert_eq!(s, 404);
    let (s, v) = send(c.get(format!(
        "{base}/_apis/wit/fields/System.AssignedTo?api-version=7.1"
    )))
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        (v["type"].as_str(), v["isIdentity"].as_bool()),
        (Some("string"), Some(true))
    );
    let (s, v) = send(c.get(format!(
        "{base}/{p}/_apis/wit/fields/No.Such?api-version=7.1"
    )))
    .await;
    assert_eq!(
        (s, v["typeKey"].as_str()),
        (
            404,
            Some("WorkItemTrackingFieldDefinitionNotFoundException")
        )
    );
    // $expand as the enum's number: 1 is relations.
    let (s, _) = send(
        c.patch(format!("{base}/_apis/wit/workitems/{id}?api-version=7.1"))
            .header("Content-Type", "application/json-patch+json")
            .body(r#"[{"op":"add","path":"/relations/-","value":{"rel":"Hyperlink","url":"https://example.com/x"}}]"#),
    )
    .await;
    assert_eq!(s, 200);
    let (_, v) = send(c.get(format!("{base}/_apis/wit/workitems/{id}?api-version=7.1"))).await;
    assert!(v.get("relations").is_none(), "{v}");
    let (s, v) = send(c.get(format!(
        "{base}/_apis/wit/workitems/{id}?$expand=1&api-version=7.1"
    )))
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["relations"][0]["rel"], "Hyperlink", "{v}");
    let (_, v) = send(c.get(format!(
        "{base}/_apis/wit/workitems/{id}?$expand=4&api-version=7.1"
    )))
    .await;
    assert!(v.get("_links").is_some(), "$expand=4 is all: {v}");
    // An unknown path is quoted as the client sent it.
    let (s, v) = send(c.get(format!("{base}/_apis/Wit/NoSuchThing?api-version=7.1"))).await;
    assert_eq!(s, 404);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("/_apis/Wit/NoSuchThing"),
        "{v}"
    );
}

#[tokio::test]
async fn tfs2018_revised_by_is_an_identity_reference() {
    let sim = ado(ServerVersion::Tfs2018).await;
    let c = reqwest::Client::new();
    let base = sim.collection_url();
    let p = sim.project();
    let (_, created) = send(
        c.post(format!("{base}/{p}/_apis/wit/workitems/$Bug?api-version=4.1"))
            .header("Content-Type", "application/json-patch+json")
            .body(r#"[{"op":"add","path":"/fields/System.Title","value":"t"},{"op":"add","path":"/fields/System.History","value":"note"}]"#),
    )
    .await;
    let id = created["id"].as_u64().unwrap();
    // Field values are strings before 5.0 …
    assert!(created["fields"]["System.CreatedBy"].is_string());
    let (_, v) = send(c.get(format!(
        "{base}/_apis/wit/workItems/{id}/updates?api-version=4.1"
    )))
    .await;
    // … but revisedBy is an IdentityReference with `name` "Display <unique>".
    let by = &v["value"][0]["revisedBy"];
    assert!(by.is_object(), "{by}");
    assert!(by["name"].as_str().unwrap().contains('<'), "{by}");
    let (s, v) = send(c.get(format!(
        "{base}/{p}/_apis/wit/workItems/{id}/comments/1?api-version=4.1-preview.2"
    )))
    .await;
    assert_eq!((s, v["text"].as_str()), (200, Some("note")), "{v}");
    assert!(v["revisedBy"].is_object());
}

#[tokio::test]
async fn servicenow_over_tls_with_client_spellings() {
    let sim = ServiceNowSim::builder()
        .user("admin", "admin", &["admin"])
        .seed_items(12)
        .tls(Tls::self_signed())
        .spawn()
        .await
        .unwrap();
    assert!(sim.url().starts_with("https://localhost:"), "{}", sim.url());
    let cert = sim
        .certificate()
        .expect("a TLS simulator has a certificate");
    assert_eq!(std::fs::read_to_string(&cert.path).unwrap(), cert.pem);
    // A client that does not trust the certificate is refused, and says it was the certificate.
    let e = reqwest::get(format!("{}/api/now/table/incident", sim.url()))
        .await
        .unwrap_err();
    assert!(
        format!("{e:?}").to_lowercase().contains("certificate"),
        "{e:?}"
    );
    let c = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let get = |q: &str| {
        c.get(format!("{}/api/now/table/incident?{q}", sim.url()))
            .basic_auth("admin", Some("admin"))
            .send()
    };
    // Python's True is read as true.
    let r = get("sysparm_limit=2&sysparm_display_value=True&sysparm_exclude_reference_link=True&sysparm_suppress_pagination_header=True").await.unwrap();
    assert!(r.headers().get("link").is_none());
    let v: Value = r.json().await.unwrap();
    assert!(
        !v["result"][0]["urgency"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_digit()),
        "{v}"
    );
    assert!(v["result"][0]["caller_id"].is_string(), "{v}");
    let r = get("sysparm_limit=2").await.unwrap();
    assert!(r.headers().get("link").is_some());
    // Versioned attachment paths.
    let sys_id = r.json::<Value>().await.unwrap()["result"][0]["sys_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c
        .post(format!(
            "{}/api/now/v1/attachment/file?table_name=incident&table_sys_id={sys_id}&file_name=a.txt",
            sim.url()
        ))
        .basic_auth("admin", Some("admin"))
        .header("Content-Type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c
        .get(format!(
            "{}/api/now/v1/attachment?sysparm_query=table_sys_id={sys_id}",
            sim.url()
        ))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"][0]["file_name"], "a.txt");
    // A numeric batch id is accepted and echoed as a string.
    let r = c
        .post(format!("{}/api/now/v1/batch", sim.url()))
        .basic_auth("admin", Some("admin"))
        .json(&json!({"batch_request_id": 7, "rest_requests": [
            {"id": 11, "method": "GET", "url": format!("/api/now/table/incident/{sys_id}"), "headers": []}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["batch_request_id"], "7");
    assert_eq!(v["serviced_requests"][0]["id"], "11");
}

#[tokio::test]
async fn alm_domains_projects_entity_types_and_exceptions_only() {
    let sim = AlmSim::builder()
        .user("qa", "qa")
        .seed_items(2)
        .version(AlmVersion::V12_60)
        .spawn()
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let u = sim.url();
    let r = http
        .post(format!("{u}/qcbin/authentication-point/alm-authenticate"))
        .header("Content-Type", "application/xml")
        .body("<alm-authentication><user>qa</user><password>qa</password></alm-authentication>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    http.post(format!("{u}/qcbin/rest/site-session"))
        .send()
        .await
        .unwrap();
    let text = |path: &str, accept: &'static str| {
        let req = http.get(format!("{u}{path}")).header("Accept", accept);
        async move {
            let r = req.send().await.unwrap();
            let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
            (r.status().as_u16(), ct, r.text().await.unwrap())
        }
    };
    let (s, _, body) = text(
        "/qcbin/rest/domains?include-projects-info=y",
        "application/xml",
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        body.contains(r#"<Domain Name="DEFAULT">"#) && body.contains(r#"<Project Name="Demo"/>"#),
        "{body}"
    );
    let (s, _, body) = text("/qcbin/rest/domains/DEFAULT/projects", "application/json").await;
    assert_eq!(s, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["Projects"]["Project"][0]["Name"],
        "Demo"
    );
    let (s, _, body) = text(
        "/qcbin/rest/domains/DEFAULT/projects/Demo/customization/entities",
        "application/xml",
    )
    .await;
    assert_eq!(s, 200);
    assert!(body.contains(r#"<Type Name="defect"/>"#), "{body}");
    // A path the framework cannot parse is an ALM exception, never text/plain.
    let (s, ct, body) = text(
        "/qcbin/rest/domains/DEFAULT/projects/Demo/defects/abc",
        "application/xml",
    )
    .await;
    assert_eq!(s, 404);
    assert!(
        ct.starts_with("application/xml") && body.contains("<QCRestException>"),
        "{ct}: {body}"
    );
}
