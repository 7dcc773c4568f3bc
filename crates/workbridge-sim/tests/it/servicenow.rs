use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use workbridge_sim::Faults;
use workbridge_sim::servicenow::ServiceNowSim;

async fn sim() -> ServiceNowSim {
    ServiceNowSim::builder()
        .user("admin", "admin", &["admin"])
        .user("viewer", "viewer", &["snc_read_only"])
        .user("nobody", "nobody", &[])
        .oauth_client("cid", "csecret")
        .seed_items(25)
        .spawn()
        .await
        .unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get(sim: &ServiceNowSim, path: &str) -> reqwest::Response {
    http()
        .get(format!("{}{path}", sim.url()))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn list_paging_headers_are_exact() {
    let sim = sim().await;
    let r = get(
        &sim,
        "/api/now/table/incident?sysparm_limit=10&sysparm_offset=0&sysparm_fields=number",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-total-count"], "25");
    assert_eq!(
        r.headers()["content-type"],
        "application/json;charset=UTF-8"
    );
    let link = r.headers()["link"].to_str().unwrap().to_owned();
    let rels: Vec<&str> = link
        .split(',')
        .map(|l| l.rsplit(";rel=").next().unwrap())
        .collect();
    assert_eq!(rels, ["\"first\"", "\"prev\"", "\"next\"", "\"last\""]);
    assert!(link.contains("sysparm_offset=-1>;rel=\"prev\""), "{link}");
    assert!(link.contains("sysparm_offset=10>;rel=\"next\""), "{link}");
    assert!(link.contains("sysparm_offset=20>;rel=\"last\""), "{link}");
    assert!(
        link.contains("sysparm_fields=number"),
        "parameters are echoed: {link}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["result"].as_array().unwrap().len(), 10);
    // The last page has no next; beyond the end is an empty result.
    let r = get(
        &sim,
        "/api/now/table/incident?sysparm_limit=10&sysparm_offset=20",
    )
    .await;
    assert!(
        !r.headers()["link"]
            .to_str()
            .unwrap()
            .contains("rel=\"next\"")
    );
    assert_eq!(
        r.json::<Value>().await.unwrap()["result"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let r = get(&sim, "/api/now/table/incident?sysparm_offset=100").await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"result": []}));
    let r = get(
        &sim,
        "/api/now/table/incident?sysparm_suppress_pagination_header=true&sysparm_no_count=true",
    )
    .await;
    assert!(r.headers().get("link").is_none() && r.headers().get("x-total-count").is_none());
    let r = get(&sim, "/api/now/table/incident?sysparm_offset=-9").await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": {"message": "offset is -9", "detail": "Negative offset is not supported"}, "status": "failure"})
    );
}

#[tokio::test]
async fn values_are_strings_references_objects_and_empty_is_empty_string() {
    let sim = sim().await;
    let id = sim.insert(
        "incident",
        &[("short_description", "x"), ("caller_id", "abel.tuter")],
    );
    let rec: Value = get(&sim, &format!("/api/now/table/incident/{id}"))
        .await
        .json()
        .await
        .unwrap();
    let r = &rec["result"];
    assert_eq!(r["sys_mod_count"], "0");
    assert_eq!(r["priority"], "5");
    assert_eq!(r["active"], "true");
    assert_eq!(r["assigned_to"], "");
    assert_eq!(r["comments"], "");
    assert!(r["number"].as_str().unwrap().starts_with("INC00100"));
    let caller = &r["caller_id"];
    assert_eq!(
        caller["link"],
        format!(
            "{}/api/now/table/sys_user/{}",
            sim.url(),
            caller["value"].as_str().unwrap()
        )
    );
    assert_eq!(caller["value"].as_str().unwrap().len(), 32);
    let when = r["sys_updated_on"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(when, "%Y-%m-%d %H:%M:%S").is_ok(),
        "{when}"
    );
    // Display values: labels and names; `all` gives both.
    let rec: Value = get(
        &sim,
        &format!("/api/now/table/incident/{id}?sysparm_display_value=true"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(rec["result"]["state"], "New");
    assert_eq!(rec["result"]["priority"], "5 - Planning");
    assert_eq!(rec["result"]["caller_id"]["display_value"], "Abel Tuter");
    assert!(rec["result"]["caller_id"].get("value").is_none());
    let rec: Value = get(&sim, &format!("/api/now/table/incident/{id}?sysparm_display_value=all&sysparm_exclude_reference_link=true"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        rec["result"]["state"],
        json!({"display_value": "New", "value": "1"})
    );
    assert_eq!(rec["result"]["caller_id"]["display_value"], "Abel Tuter");
    assert!(rec["result"]["caller_id"].get("link").is_none());
    let rec: Value = get(
        &sim,
        &format!("/api/now/table/incident/{id}?sysparm_exclude_reference_link=true"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(rec["result"]["caller_id"].is_string());
}

#[tokio::test]
async fn encoded_queries_filter_and_order() {
    let sim = sim().await;
    for (n, p) in [("q1", "1"), ("q2", "2"), ("q3", "3")] {
        sim.insert(
            "incident",
            &[
                ("short_description", &format!("query {n}")),
                ("priority", p),
                ("category", "network"),
            ],
        );
    }
    let r: Value = get(&sim, "/api/now/table/incident?sysparm_query=short_descriptionSTARTSWITHquery^priority>=2^ORDERBYDESCpriority&sysparm_fields=short_description")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = r["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["short_description"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["query q3", "query q2"]);
    // An unknown field is silently ignored: the rest still applies.
    let r: Value = get(
        &sim,
        "/api/now/table/incident?sysparm_query=no_such_field=1^short_descriptionLIKEquery q",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["result"].as_array().unwrap().len(), 3);
    let r: Value = get(&sim, "/api/now/table/incident?sysparm_query=short_description=query q1^ORshort_description=query q3^NQpriority=2^short_descriptionSTARTSWITHquery&sysparm_fields=priority")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["result"].as_array().unwrap().len(), 3);
    let r: Value = get(&sim, "/api/now/table/incident?sysparm_query=caller_id.user_nameISNOTEMPTY^short_descriptionSTARTSWITHquery").await.json().await.unwrap();
    assert_eq!(
        r["result"].as_array().unwrap().len(),
        0,
        "dot-walked condition on an empty reference"
    );
    let strict = ServiceNowSim::builder()
        .user("admin", "admin", &["admin"])
        .invalid_query_returns_no_rows(true)
        .seed_items(3)
        .spawn()
        .await
        .unwrap();
    let r: Value = get(
        &strict,
        "/api/now/table/incident?sysparm_query=no_such_field=1",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["result"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn writes_status_codes_and_journal() {
    let sim = sim().await;
    let c = http();
    let r = c
        .post(format!("{}/api/now/table/incident", sim.url()))
        .basic_auth("admin", Some("admin"))
        .json(&json!({"short_description": "Journal test", "u_unknown": "ignored", "work_notes": "first note"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["result"]["sys_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let loc = format!("{}/api/now/table/incident/{id}", sim.url());
    let r = c
        .patch(&loc)
        .basic_auth("admin", Some("admin"))
        .json(&json!({"comments": "hello customer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["result"]["comments"], "",
        "journal fields read back empty"
    );
    assert_eq!(
        body["result"]["sys_mod_count"], "1",
        "journal-only updates count"
    );
    assert!(body["result"].get("u_unknown").is_none());
    let j: Value = get(
        &sim,
        &format!(
            "/api/now/table/sys_journal_field?sysparm_query=element_id={id}^ORDERBYsys_created_on"
        ),
    )
    .await
    .json()
    .await
    .unwrap();
    let entries = j["result"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        (entries[0]["element"].as_str(), entries[0]["value"].as_str()),
        (Some("work_notes"), Some("first note"))
    );
    assert_eq!(entries[1]["sys_created_by"], "admin");
    let d: Value = get(&sim, &format!("/api/now/table/incident/{id}?sysparm_display_value=true&sysparm_fields=comments,work_notes")).await.json().await.unwrap();
    let comments = d["result"]["comments"].as_str().unwrap();
    assert!(
        comments.ends_with(" - System Administrator (Additional comments)\nhello customer\n\n"),
        "{comments:?}"
    );
    assert!(
        d["result"]["work_notes"]
            .as_str()
            .unwrap()
            .contains("(Work notes)\nfirst note")
    );
    // PUT is a partial update too.
    let r = c
        .put(&loc)
        .basic_auth("admin", Some("admin"))
        .json(&json!({"priority": "2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["result"]["short_description"],
        "Journal test"
    );
    // Data policy.
    let r = c
        .patch(&loc)
        .basic_auth("admin", Some("admin"))
        .json(&json!({"state": "6"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["message"], "Operation Failed");
    assert!(
        e["error"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("Data Policy Exception")
    );
    // Content type and accept.
    let r = c
        .patch(&loc)
        .basic_auth("admin", Some("admin"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = c
        .get(&loc)
        .basic_auth("admin", Some("admin"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);
    // Delete, then 404 with the real body.
    let r = c
        .delete(&loc)
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c
        .get(&loc)
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": {"message": "No Record found", "detail": "Record doesn't exist or ACL restricts the record retrieval"}, "status": "failure"})
    );
    let r = get(&sim, "/api/now/table/incidentx").await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": {"message": "Invalid table incidentx", "detail": null}, "status": "failure"})
    );
}

#[tokio::test]
async fn authentication_and_roles() {
    let sim = sim().await;
    let c = http();
    let url = format!("{}/api/now/table/incident?sysparm_limit=1", sim.url());
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"}, "status": "failure"})
    );
    assert_eq!(
        c.get(&url)
            .basic_auth("admin", Some("bad"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.get(&url)
            .basic_auth("nobody", Some("nobody"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        c.get(&url)
            .basic_auth("viewer", Some("viewer"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = c
        .post(format!("{}/api/now/table/incident", sim.url()))
        .basic_auth("viewer", Some("viewer"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["detail"],
        "ACL Exception Update Failed due to security constraints"
    );

    // OAuth: password grant, bearer use, refresh grant, expiry, failures.
    let token_url = format!("{}/oauth_token.do", sim.url());
    let t: Value = c
        .post(&token_url)
        .form(&[
            ("grant_type", "password"),
            ("client_id", "cid"),
            ("client_secret", "csecret"),
            ("username", "admin"),
            ("password", "admin"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 1799);
    assert_eq!(t["scope"], "useraccount");
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(
        c.get(&url)
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r: Value = c
        .post(&token_url)
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "cid"),
            ("client_secret", "csecret"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["access_token"].is_string() && r.get("refresh_token").is_none());
    sim.clock().advance(Duration::from_secs(1801));
    assert_eq!(
        c.get(&url)
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "expired token"
    );
    let r = c
        .post(&token_url)
        .form(&[
            ("grant_type", "password"),
            ("client_id", "cid"),
            ("client_secret", "wrong"),
            ("username", "admin"),
            ("password", "admin"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error_description": "access_denied", "error": "server_error"})
    );
}

#[tokio::test]
async fn attachments_raw_multipart_download_delete() {
    let sim = sim().await;
    let c = http();
    let id = sim.insert("incident", &[("short_description", "with files")]);
    let data: Vec<u8> = (0..=255u8).collect();
    let r = c
        .post(format!(
            "{}/api/now/attachment/file?table_name=incident&table_sys_id={id}&file_name=bytes.bin",
            sim.url()
        ))
        .basic_auth("admin", Some("admin"))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let meta: Value = r.json().await.unwrap();
    let aid = meta["result"]["sys_id"].as_str().unwrap().to_owned();
    assert_eq!(meta["result"]["size_bytes"], "256");
    assert_eq!(meta["result"]["state"], "available");
    assert_eq!(meta["result"]["hash"].as_str().unwrap().len(), 64);
    let r = get(&sim, &format!("/api/now/attachment/{aid}/file")).await;
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert!(r.headers().contains_key("x-attachment-metadata"));
    assert_eq!(r.bytes().await.unwrap().to_vec(), data);
    let form = reqwest::multipart::Form::new()
        .text("table_name", "incident")
        .text("table_sys_id", id.clone())
        .part(
            "uploadFile",
            reqwest::multipart::Part::bytes(b"hello".to_vec())
                .file_name("hello.txt")
                .mime_str("text/plain")
                .unwrap(),
        );
    let r = c
        .post(format!("{}/api/now/attachment/upload", sim.url()))
        .basic_auth("admin", Some("admin"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = get(
        &sim,
        &format!("/api/now/attachment?sysparm_query=table_sys_id={id}"),
    )
    .await;
    assert_eq!(r.headers()["x-total-count"], "2");
    let r = c
        .post(format!(
            "{}/api/now/attachment/file?table_name=incident&file_name=x",
            sim.url()
        ))
        .basic_auth("admin", Some("admin"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(format!(
            "{}/api/now/attachment/file?table_name=incident&table_sys_id=nope&file_name=x",
            sim.url()
        ))
        .basic_auth("admin", Some("admin"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .delete(format!("{}/api/now/attachment/{aid}", sim.url()))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        get(&sim, &format!("/api/now/attachment/{aid}"))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn batch_api_runs_each_request_with_its_own_status() {
    let sim = sim().await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let id = sim.insert("incident", &[("short_description", "batched")]);
    let req = json!({
        "batch_request_id": "b1",
        "rest_requests": [
            {"id": "r1", "method": "PATCH", "url": format!("/api/now/table/incident/{id}"),
             "headers": [{"name": "Content-Type", "value": "application/json"}, {"name": "Accept", "value": "application/json"}],
             "body": b64.encode(json!({"priority": "1"}).to_string()), "exclude_response_headers": true},
            {"id": "r2", "method": "GET", "url": "/api/now/table/incident/0000",
             "headers": [{"name": "Accept", "value": "application/json"}]}
        ]
    });
    sim.control().reset_requests();
    let r: Value = http()
        .post(format!("{}/api/now/v1/batch", sim.url()))
        .basic_auth("admin", Some("admin"))
        .json(&req)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["batch_request_id"], "b1");
    assert_eq!(r["unserviced_requests"], json!([]));
    let s = r["serviced_requests"].as_array().unwrap();
    assert_eq!(
        (
            s[0]["id"].as_str(),
            s[0]["status_code"].as_u64(),
            s[0]["status_text"].as_str()
        ),
        (Some("r1"), Some(200), Some("OK"))
    );
    let body: Value =
        serde_json::from_slice(&b64.decode(s[0]["body"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(body["result"]["priority"], "1");
    assert_eq!(s[0]["headers"], json!([]));
    assert_eq!(s[1]["status_code"], 404);
    assert!(!s[1]["headers"].as_array().unwrap().is_empty());
    assert_eq!(sim.record("incident", &id).unwrap()["priority"], "1");
    assert_eq!(
        sim.control().total_requests(),
        1,
        "sub-requests are not HTTP requests"
    );
}

#[tokio::test]
async fn faults_are_injected_and_counted() {
    let sim = sim().await;
    sim.control().fail_next(1, 429, Some(7));
    let r = get(&sim, "/api/now/table/incident?sysparm_limit=1").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "failure");
    sim.control().drop_next(1);
    let r = http()
        .get(format!(
            "{}/api/now/table/incident?sysparm_limit=1",
            sim.url()
        ))
        .basic_auth("admin", Some("admin"))
        .send()
        .await;
    let dropped = match r {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(dropped, "the connection was dropped mid-answer");
    assert_eq!(
        get(&sim, "/api/now/table/incident?sysparm_limit=1")
            .await
            .status(),
        200
    );
    assert_eq!(sim.control().requests_to("GET /api/now/table/{table}"), 3);
    sim.control()
        .set_faults(Faults::none().error_rate(503, 1.0));
    assert_eq!(get(&sim, "/api/now/table/incident").await.status(), 503);
    sim.control().set_faults(Faults::none());
    let r = get(&sim, "/api/now/nothing/here").await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["message"],
        "Requested URI does not represent any resource"
    );
    // Dates come from the simulator's clock.
    sim.clock().freeze(
        chrono::DateTime::parse_from_rfc3339("2030-05-06T07:08:09Z")
            .unwrap()
            .into(),
    );
    let r = get(&sim, "/api/now/table/incident?sysparm_limit=1").await;
    assert_eq!(r.headers()["date"], "Mon, 06 May 2030 07:08:09 GMT");
}

/// The rows a query must return, worked out here from a full unordered listing.
fn expected(all: &[Value], keep: impl Fn(&Value) -> bool, limit: usize) -> Vec<String> {
    let mut rows: Vec<&Value> = all.iter().filter(|r| keep(r)).collect();
    rows.sort_by_key(|r| {
        (
            r["sys_updated_on"].as_str().unwrap().to_owned(),
            r["sys_id"].as_str().unwrap().to_owned(),
        )
    });
    rows.iter()
        .take(limit)
        .map(|r| r["sys_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn indexed_queries_answer_as_a_full_scan_would() {
    let sim = sim().await;
    sim.clock().freeze_now();
    let mut ids = Vec::new();
    for i in 0..90 {
        if i % 30 == 0 {
            sim.clock().advance(Duration::from_secs(1));
        }
        let corr = format!("k{}", i % 7);
        ids.push(sim.insert(
            "incident",
            &[
                ("short_description", &format!("row {i}")),
                ("correlation_id", &corr),
            ],
        ));
    }
    // Some rows move to a later second, leaving their place in the index.
    sim.clock().advance(Duration::from_secs(1));
    for id in ids.iter().step_by(11) {
        assert!(sim.update("incident", id, &[("short_description", "moved")], "admin"));
    }
    let all: Value = get(&sim, "/api/now/table/incident?sysparm_limit=10000")
        .await
        .json()
        .await
        .unwrap();
    let all = all["result"].as_array().unwrap().clone();
    let page = |query: String, limit: usize| {
        let sim = &sim;
        async move {
            let mut out = Vec::new();
            for counted in [false, true] {
                let extra = if counted {
                    ""
                } else {
                    "&sysparm_no_count=true&sysparm_suppress_pagination_header=true"
                };
                let r: Value = get(
                    sim,
                    &format!(
                        "/api/now/table/incident?sysparm_query={query}&sysparm_limit={limit}{extra}"
                    ),
                )
                .await
                .json()
                .await
                .unwrap();
                let got: Vec<String> = r["result"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["sys_id"].as_str().unwrap().to_owned())
                    .collect();
                out.push(got);
            }
            assert_eq!(out[0], out[1], "counted or not, one page: {query}");
            out.remove(0)
        }
    };
    let field = |r: &Value, f: &str| r[f].as_str().unwrap_or_default().to_owned();
    // A keyset scan, page by page, reads every row once in the cursor's order.
    let mut seen = Vec::new();
    let mut query = "ORDERBYsys_updated_on^ORDERBYsys_id".to_owned();
    loop {
        let got = page(query.clone(), 13).await;
        let Some(last) = got.last() else { break };
        let row = all.iter().find(|r| field(r, "sys_id") == *last).unwrap();
        let (t, id) = (field(row, "sys_updated_on"), field(row, "sys_id"));
        query = format!(
            "sys_updated_on={t}^sys_id>{id}^NQsys_updated_on>{t}^ORDERBYsys_updated_on^ORDERBYsys_id"
        );
        seen.extend(got);
    }
    assert_eq!(seen, expected(&all, |_| true, usize::MAX));
    // From a second on, and within a window.
    let second = field(&all[40], "sys_updated_on");
    let got = page(
        format!("sys_updated_on>={second}^ORDERBYsys_updated_on^ORDERBYsys_id"),
        1000,
    )
    .await;
    assert_eq!(
        got,
        expected(&all, |r| field(r, "sys_updated_on") >= second, 1000)
    );
    let got = page(
        format!("sys_updated_on<{second}^ORDERBYsys_updated_on^ORDERBYsys_id"),
        1000,
    )
    .await;
    assert_eq!(
        got,
        expected(&all, |r| field(r, "sys_updated_on") < second, 1000)
    );
    // By ids and by correlation keys, with another condition.
    let some = format!("{},{},{}", ids[3], ids[44], ids[89]);
    let got = page(
        format!("sys_idIN{some}^ORDERBYsys_updated_on^ORDERBYsys_id"),
        1000,
    )
    .await;
    assert_eq!(
        got,
        expected(&all, |r| some.contains(&field(r, "sys_id")), 1000)
    );
    let got = page(
        "correlation_idINk1,k5^short_description!=moved^ORDERBYsys_updated_on^ORDERBYsys_id".into(),
        1000,
    )
    .await;
    let want = expected(
        &all,
        |r| {
            ["k1", "k5"].contains(&field(r, "correlation_id").as_str())
                && field(r, "short_description") != "moved"
        },
        1000,
    );
    assert_eq!(got, want);
    assert!(!want.is_empty());
}
