use serde_json::{Value, json};
use workbridge_sim::azure_devops::{AzureDevOpsSim, Process, ServerVersion};

async fn sim() -> AzureDevOpsSim {
    AzureDevOpsSim::builder()
        .pat("TOKEN")
        .seed_items(3)
        .spawn()
        .await
        .unwrap()
}

fn c() -> reqwest::Client {
    reqwest::Client::new()
}

async fn send(rb: reqwest::RequestBuilder) -> (u16, Value) {
    let r = rb
        .basic_auth("", Some("TOKEN"))
        .header("X-TFS-FedAuthRedirect", "Suppress")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn discovery_and_api_versions() {
    let sim = sim().await;
    let (s, v) = send(c().request(
        reqwest::Method::OPTIONS,
        format!("{}/_apis", sim.collection_url()),
    ))
    .await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"72c7ddf8-2cdc-4f60-90cd-ab71c14a399b")
            && ids.contains(&"1a9c53f7-f243-4447-b110-35ef023636e4")
    );
    let (s, v) = send(c().get(format!(
        "{}/Fabrikam/_apis/wit/workitems?ids=1",
        sim.collection_url()
    )))
    .await;
    assert_eq!(s, 400);
    assert_eq!(v["typeKey"], "VssVersionNotSpecifiedException");
    // The version may come in the Accept header.
    let (s, _) = send(
        c().get(format!(
            "{}/Fabrikam/_apis/wit/workitems?ids=1",
            sim.collection_url()
        ))
        .header("Accept", "application/json;api-version=7.1"),
    )
    .await;
    assert_eq!(s, 200);
    let old = AzureDevOpsSim::builder()
        .pat("TOKEN")
        .server_version(ServerVersion::Server2020)
        .spawn()
        .await
        .unwrap();
    let (s, v) = send(c().get(format!(
        "{}/Fabrikam/_apis/wit/fields?api-version=7.2",
        old.collection_url()
    )))
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["message"],
        "The requested REST API version of 7.2 is out of range for this server. The latest REST API version this server supports is 6.1."
    );
    // Routes are case-insensitive; unknown projects and items get their real errors.
    let (s, _) = send(c().get(format!(
        "{}/Fabrikam/_apis/WIT/WorkItems/1?api-version=7.1",
        sim.collection_url()
    )))
    .await;
    assert_eq!(s, 200);
    let (s, v) = send(c().get(format!(
        "{}/Nope/_apis/wit/fields?api-version=7.1",
        sim.collection_url()
    )))
    .await;
    assert_eq!(
        (s, v["typeKey"].as_str()),
        (404, Some("ProjectDoesNotExistWithNameException"))
    );
    let (s, v) = send(c().get(format!(
        "{}/_apis/wit/workitems/999?api-version=7.1",
        sim.collection_url()
    )))
    .await;
    assert_eq!(s, 404);
    assert_eq!(
        v["message"],
        "TF401232: Work item 999 does not exist, or you do not have permissions to read it."
    );
}

#[tokio::test]
async fn reads_limits_envelopes_and_identities() {
    let sim = sim().await;
    let base = sim.collection_url();
    let ids: Vec<String> = (1..=201).map(|i| i.to_string()).collect();
    let (s, v) = send(c().get(format!(
        "{base}/_apis/wit/workitems?ids={}&api-version=7.1",
        ids.join(",")
    )))
    .await;
    assert_eq!(s, 400);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("VS403474: You requested 201 work items")
    );
    let (s, v) = send(c().get(format!(
        "{base}/_apis/wit/workitems?ids=1,999,2&errorPolicy=omit&api-version=7.1"
    )))
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["count"], 3);
    assert!(v["value"][1].is_null());
    let who = &v["value"][0]["fields"]["System.AssignedTo"];
    assert!(
        who["displayName"].is_string() && who["uniqueName"].is_string(),
        "{who}"
    );
    let (_, v) = send(c().get(format!("{base}/_apis/wit/workitems?ids=1&api-version=4.1"))).await;
    assert!(
        v["value"][0]["fields"]["System.AssignedTo"]
            .as_str()
            .unwrap()
            .contains(" <"),
        "strings before 5.0"
    );
    let (s, v) = send(
        c().post(format!(
            "{base}/Fabrikam/_apis/wit/workitemsbatch?api-version=7.1"
        ))
        .json(&json!({"ids": [2, 1], "fields": ["System.Title"]})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["value"][0]["id"], 2);
    assert_eq!(v["value"][0]["fields"].as_object().unwrap().len(), 1);
    let changed = v["value"][0]["fields"]["System.Title"].as_str().unwrap();
    assert!(!changed.is_empty());
}

#[tokio::test]
async fn json_patch_rules_and_history() {
    let sim = sim().await;
    let base = sim.collection_url();
    let patch = |ops: Value| {
        c().patch(format!("{base}/_apis/wit/workitems/1?api-version=7.1"))
            .header("Content-Type", "application/json-patch+json")
            .body(ops.to_string())
    };
    let (s, v) = send(patch(json!([{"op": "test", "path": "/rev", "value": 9}, {"op": "add", "path": "/fields/System.Title", "value": "x"}]))).await;
    assert_eq!(
        (s, v["typeKey"].as_str()),
        (412, Some("TestPatchOperationFailedException"))
    );
    let (s, v) = send(patch(json!([{"op": "add", "path": "/fields/System.Title", "value": "a"}, {"op": "replace", "path": "/fields/System.Title", "value": "b"}]))).await;
    assert_eq!(s, 400);
    assert!(
        v["message"].as_str().unwrap().starts_with("VS403691"),
        "{v}"
    );
    let (s, v) = send(patch(
        json!([{"op": "add", "path": "/fields/Custom.Foo", "value": "a"}]),
    ))
    .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (400, Some("TF51535: Cannot find field Custom.Foo."))
    );
    let (s, v) = send(patch(
        json!([{"op": "add", "path": "/fields/System.Title", "value": ""}]),
    ))
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["customProperties"]["RuleValidationErrors"][0]["fieldReferenceName"],
        "System.Title"
    );
    let (s, _) = send(
        c().patch(format!("{base}/_apis/wit/workitems/1?api-version=7.1"))
            .header("Content-Type", "application/json")
            .body("[]"),
    )
    .await;
    assert_eq!(s, 415);
    let (s, v) = send(patch(json!([{"op": "test", "path": "/rev", "value": 1}, {"op": "add", "path": "/fields/System.State", "value": "Active"}, {"op": "add", "path": "/fields/System.History", "value": "Starting work"}]))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["rev"], 2);
    assert_eq!(v["fields"]["System.History"], "Starting work");
    let (_, v) = send(c().get(format!(
        "{base}/_apis/wit/workitems/1/updates?api-version=7.1"
    )))
    .await;
    let last = &v["value"][1];
    assert_eq!(
        last["fields"]["System.State"],
        json!({"oldValue": "New", "newValue": "Active"})
    );
    assert_eq!(last["revisedDate"], "9999-01-01T00:00:00Z");
    let (_, v) = send(c().get(format!(
        "{base}/Fabrikam/_apis/wit/workitems/1/comments?api-version=7.1-preview.4&order=asc"
    )))
    .await;
    assert_eq!(v["comments"][0]["text"], "Starting work");
    assert!(v["comments"][0].get("id").is_some() && v["comments"][0]["mentions"].is_array());
    let (s, v) = send(c().get(format!(
        "{base}/Fabrikam/_apis/wit/workitems/1/comments?api-version=7.1"
    )))
    .await;
    assert_eq!(
        (s, v["typeKey"].as_str()),
        (400, Some("VssInvalidPreviewVersionException"))
    );
    // Invalid transition (Agile User Story: New cannot go straight to Resolved).
    let (_, story) = send(
        c().post(format!(
            "{base}/Fabrikam/_apis/wit/workitems/$User%20Story?api-version=7.1"
        ))
        .header("Content-Type", "application/json-patch+json")
        .body(json!([{"op": "add", "path": "/fields/System.Title", "value": "s"}]).to_string()),
    )
    .await;
    let id = story["id"].as_u64().unwrap();
    let (s, v) = send(
        c().patch(format!("{base}/_apis/wit/workitems/{id}?api-version=7.1"))
            .header("Content-Type", "application/json-patch+json")
            .body(
                json!([{"op": "add", "path": "/fields/System.State", "value": "Resolved"}])
                    .to_string(),
            ),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["customProperties"]["RuleValidationErrors"][0]["fieldReferenceName"],
        "System.State"
    );
    // validateOnly changes nothing; bypassRules lets a migration set the dates.
    let (s, _) = send(
        c().patch(format!(
            "{base}/_apis/wit/workitems/{id}?api-version=7.1&validateOnly=true"
        ))
        .header("Content-Type", "application/json-patch+json")
        .body(json!([{"op": "add", "path": "/fields/System.Title", "value": "v"}]).to_string()),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(sim.rev(id), Some(1));
    let (s, v) = send(c().patch(format!("{base}/_apis/wit/workitems/{id}?api-version=7.1&bypassRules=true")).header("Content-Type", "application/json-patch+json").body(json!([{"op": "add", "path": "/fields/System.CreatedDate", "value": "2020-01-01T00:00:00Z"}]).to_string())).await;
    assert_eq!(
        (s, v["fields"]["System.CreatedDate"].as_str()),
        (200, Some("2020-01-01T00:00:00Z"))
    );
}

#[tokio::test]
async fn wiql_precision_attachments_batch_and_processes() {
    let sim = sim().await;
    let base = sim.collection_url();
    let q = |text: &str, extra: &str| {
        c().post(format!(
            "{base}/Fabrikam/_apis/wit/wiql?api-version=7.1{extra}"
        ))
        .json(&json!({"query": text}))
    };
    let (s, v) = send(q(
        "SELECT [System.Id] FROM WorkItems WHERE [System.ChangedDate] >= '2020-01-01T10:00:00Z'",
        "",
    ))
    .await;
    assert_eq!(s, 400);
    assert!(v["message"].as_str().unwrap().starts_with(
        "You cannot supply a time with the date when running a query using date precision."
    ));
    let (s, v) = send(q("SELECT [System.Id], [System.Title] FROM WorkItems WHERE [System.ChangedDate] >= '2020-01-01T10:00:00Z' AND [System.State] IN ('New', 'Active') ORDER BY [System.Id] DESC", "&timePrecision=true&$top=2")).await;
    assert_eq!(s, 200);
    assert_eq!(v["workItems"].as_array().unwrap().len(), 2);
    assert_eq!(v["workItems"][0]["id"], 3);
    assert_eq!(v["columns"].as_array().unwrap().len(), 2);
    let (s, v) = send(q(
        "SELECT [System.Id] FROM WorkItems WHERE [System.Nope] = 1",
        "",
    ))
    .await;
    assert_eq!((s, v["typeKey"].as_str()), (400, Some("QueryException")));
    let (s, _) = send(q("SELECT [System.Id] FROM WorkItems WHERE [System.AssignedTo] = @me OR [System.AreaPath] UNDER @project", "")).await;
    assert_eq!(s, 200);
    // Attachments: upload, link, download.
    let (s, a) = send(
        c().post(format!(
            "{base}/Fabrikam/_apis/wit/attachments?fileName=log.txt&api-version=7.1"
        ))
        .header("Content-Type", "application/octet-stream")
        .body("hello"),
    )
    .await;
    assert_eq!(s, 201);
    let url = a["url"].as_str().unwrap();
    let (s, v) = send(c().patch(format!("{base}/_apis/wit/workitems/1?api-version=7.1&$expand=relations")).header("Content-Type", "application/json-patch+json").body(json!([{"op": "add", "path": "/relations/-", "value": {"rel": "AttachedFile", "url": url, "attributes": {"comment": "log"}}}]).to_string())).await;
    assert_eq!(s, 200);
    let rel = &v["relations"][0];
    assert_eq!(rel["attributes"]["name"], "log.txt");
    assert!(!rel["url"].as_str().unwrap().contains('?'));
    let bytes = c()
        .get(format!("{url}&api-version=7.1"))
        .basic_auth("", Some("TOKEN"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"hello");
    // $batch: bodies are JSON strings, failures do not stop the rest.
    let (s, v) = send(c().patch(format!("{base}/_apis/wit/$batch?api-version=7.1")).json(&json!([
        {"method": "PATCH", "uri": "/_apis/wit/workitems/2?api-version=7.1", "headers": {"Content-Type": "application/json-patch+json"}, "body": [{"op": "add", "path": "/fields/System.Title", "value": "batched"}]},
        {"method": "PATCH", "uri": "/_apis/wit/workitems/999?api-version=7.1", "headers": {"Content-Type": "application/json-patch+json"}, "body": [{"op": "add", "path": "/fields/System.Title", "value": "x"}]}
    ]))).await;
    assert_eq!(s, 200);
    assert_eq!(v["value"][0]["code"], 200);
    assert!(v["value"][0]["body"].is_string());
    assert_eq!(v["value"][1]["code"], 404);
    // Other processes.
    let scrum = AzureDevOpsSim::builder()
        .pat("TOKEN")
        .process(Process::Scrum)
        .spawn()
        .await
        .unwrap();
    let (_, v) = send(c().get(format!(
        "{}/Fabrikam/_apis/wit/workitemtypes/Product%20Backlog%20Item/states?api-version=7.1",
        scrum.collection_url()
    )))
    .await;
    let states: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["New", "Approved", "Committed", "Done", "Removed"]);
}

#[tokio::test]
async fn throttling_answers_tf400733_with_retry_after() {
    let sim = sim().await;
    sim.control().fail_next(1, 429, Some(30));
    let r = c()
        .get(format!(
            "{}/_apis/wit/workitems/1?api-version=7.1",
            sim.collection_url()
        ))
        .basic_auth("", Some("TOKEN"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "30");
    let v: Value = r.json().await.unwrap();
    assert!(v["message"].as_str().unwrap().starts_with("TF400733"));
}

#[tokio::test]
async fn each_revision_has_a_later_changed_date_even_within_a_millisecond() {
    use chrono::TimeZone;
    let sim = sim().await;
    let base = sim.collection_url();
    let clock = sim.clock();
    let t0 = chrono::Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    clock.freeze(t0 + chrono::TimeDelta::microseconds(200));
    let edit = |title: &'static str| {
        c().patch(format!("{base}/_apis/wit/workitems/1?api-version=7.1"))
            .header("Content-Type", "application/json-patch+json")
            .body(
                json!([{"op": "add", "path": "/fields/System.Title", "value": title}]).to_string(),
            )
    };
    assert_eq!(send(edit("one")).await.0, 200);
    // 600 µs later: the same millisecond as answered.
    clock.advance(std::time::Duration::from_micros(600));
    assert_eq!(send(edit("two")).await.0, 200);
    let (_, v) = send(c().get(format!(
        "{base}/_apis/wit/workitems/1/updates?api-version=7.1"
    )))
    .await;
    let dates: Vec<chrono::DateTime<chrono::Utc>> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            u["fields"]["System.ChangedDate"]["newValue"]
                .as_str()
                .unwrap_or_else(|| panic!("an update without its ChangedDate: {u}"))
                .parse()
                .unwrap()
        })
        .collect();
    assert!(dates.windows(2).all(|w| w[0] < w[1]), "{dates:?}");
}

/// The change scan's query, answered through the ChangedDate index (a lower bound, `$top`),
/// gives what the same question answered by a full scan gives: the items from the bound on,
/// in (ChangedDate, Id) order, the first `$top` of them.
#[tokio::test]
async fn the_change_scan_by_the_index_answers_as_a_full_scan_would() {
    let sim = sim().await;
    let base = sim.collection_url();
    sim.clock().freeze_now();
    let mut ids = Vec::new();
    for i in 0..40 {
        if i % 8 == 0 {
            sim.clock().advance(std::time::Duration::from_secs(1));
        }
        ids.push(sim.create("Bug", &[("System.Title", &format!("b{i}"))]));
    }
    sim.clock().advance(std::time::Duration::from_secs(1));
    for id in ids.iter().step_by(7) {
        assert!(sim.update(*id, &[("System.Title", "moved")]));
    }
    let wiql = |text: String, top: Option<usize>| {
        let url = format!(
            "{base}/Fabrikam/_apis/wit/wiql?api-version=7.1&timePrecision=true{}",
            top.map(|n| format!("&$top={n}")).unwrap_or_default()
        );
        async move {
            let (s, v) = send(c().post(url).json(&json!({ "query": text }))).await;
            assert_eq!(s, 200, "{v}");
            v["workItems"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["id"].as_u64().unwrap())
                .collect::<Vec<u64>>()
        }
    };
    let order = "ORDER BY [System.ChangedDate] ASC, [System.Id] ASC";
    // No bound on ChangedDate: every item is looked at.
    let all = wiql(
        format!("SELECT [System.Id] FROM WorkItems WHERE [System.Id] > 0 {order}"),
        None,
    )
    .await;
    let list = all.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let (_, v) = send(c().get(format!(
        "{base}/Fabrikam/_apis/wit/workitems?ids={list}&fields=System.ChangedDate&api-version=7.1"
    )))
    .await;
    let dates: Vec<String> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            w["fields"]["System.ChangedDate"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(dates.len(), all.len());
    for from in dates.iter().step_by(5) {
        for top in [1, 6, 100] {
            let got = wiql(
                format!(
                    "SELECT [System.Id] FROM WorkItems WHERE [System.ChangedDate] >= '{from}' {order}"
                ),
                Some(top),
            )
            .await;
            let want: Vec<u64> = all
                .iter()
                .zip(&dates)
                // As times: the text of two times need not sort as they do ("…01.12Z" is
                // after "…01.1Z").
                .filter(|(_, d)| {
                    d.parse::<chrono::DateTime<chrono::Utc>>().unwrap()
                        >= from.parse::<chrono::DateTime<chrono::Utc>>().unwrap()
                })
                .map(|(i, _)| *i)
                .take(top)
                .collect();
            assert_eq!(got, want, "from {from}, top {top}");
        }
    }
}
