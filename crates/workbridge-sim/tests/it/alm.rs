use serde_json::Value;
use workbridge_sim::alm::{AlmSim, AlmVersion};

const P: &str = "/qcbin/rest/domains/DEFAULT/projects/Demo";

async fn signed_in(sim: &AlmSim) -> reqwest::Client {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let r = http
        .post(format!(
            "{}/qcbin/authentication-point/alm-authenticate",
            sim.url()
        ))
        .header("Content-Type", "application/xml")
        .body("<alm-authentication><user>qa</user><password>qa</password></alm-authentication>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .post(format!("{}/qcbin/rest/site-session", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    http
}

#[tokio::test]
async fn sessions_encodings_and_errors() {
    let sim = AlmSim::builder()
        .user("qa", "qa")
        .seed_items(3)
        .version(AlmVersion::V12_60)
        .spawn()
        .await
        .unwrap();
    let r = reqwest::get(format!("{}/qcbin/rest/is-authenticated", sim.url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("LWSSO realm=")
    );
    let http = signed_in(&sim).await;
    let r = http
        .get(format!("{}/qcbin/rest/is-authenticated", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.text().await.unwrap(),
        "<AuthenticationInfo><Username>qa</Username></AuthenticationInfo>"
    );
    // 12.60: writes need no XSRF header.
    let r = http
        .put(format!("{}{P}/defects/1", sim.url()))
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .body(r#"{"Fields":[{"Name":"description","values":[{"value":""}]},{"Name":"closing-date","values":[]}],"Type":"defect"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let field = |n: &str| {
        v["Fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["Name"] == n)
            .unwrap()["values"]
            .clone()
    };
    assert_eq!(
        field("description"),
        serde_json::json!([{}]),
        "empty string"
    );
    assert_eq!(field("closing-date"), serde_json::json!([]), "null");
    assert_eq!(field("ver-stamp"), serde_json::json!([{"value": "2"}]));
    let xml = http
        .get(format!("{}{P}/defects/1", sim.url()))
        .header("Accept", "application/xml")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        xml.contains("<Field Name=\"description\"><Value></Value></Field>")
            && xml.contains("<Field Name=\"closing-date\"/>"),
        "{xml}"
    );
    // Queries, order, paging.
    let get = |q: &str| {
        http.get(format!("{}{P}/defects?{q}", sim.url()))
            .header("Accept", "application/json")
            .send()
    };
    let v: Value = get("query=%7Bid%5B%3E1%20AND%20NOT%203%5D%7D&order-by=%7Bid%5BDESC%5D%7D")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["TotalResults"], 1);
    let v: Value = get("page-size=2&start-index=2")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            v["TotalResults"].as_u64(),
            v["entities"].as_array().unwrap().len()
        ),
        (Some(3), 2)
    );
    let r = get("order-by=%7Btype-id,id%7D").await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["Id"],
        "qccore.invalid-query-value"
    );
    let r = get("page-size=-1").await.unwrap();
    assert_eq!(r.status(), 404);
    let r = get("query=%7Bnope%5B1%5D%7D").await.unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["Id"],
        "qccore.invalid-filter-expression"
    );
    // Without Accept, an error is an HTML page; with XML Accept, a QCRestException.
    let r = http
        .get(format!("{}{P}/defects/999", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("<html>"));
    let r = http
        .get(format!("{}{P}/defects/999", sim.url()))
        .header("Accept", "application/xml")
        .send()
        .await
        .unwrap();
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<QCRestException><Id>qccore.entity-not-found</Id>")
    );
    // Audits record history-enabled fields.
    http.put(format!("{}{P}/defects/2", sim.url()))
        .header("Content-Type", "application/json")
        .body(r#"{"Fields":[{"Name":"status","values":[{"value":"Open"}]}],"Type":"defect"}"#)
        .send()
        .await
        .unwrap();
    let v: Value = http
        .get(format!("{}{P}/defects/2/audits", sim.url()))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["Audits"]["Audit"]["Properties"]["Property"]["NewValue"], "Open",
        "single elements collapse to objects"
    );
    // Metadata.
    let v: Value = http
        .get(format!(
            "{}{P}/customization/entities/defect/fields?required=true",
            sim.url()
        ))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = v["Fields"]["Field"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["name", "severity", "detected-by", "creation-time"]);
    let v: Value = http
        .get(format!(
            "{}{P}/customization/used-lists?name=Bug%20Status",
            sim.url()
        ))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["lists"][0]["Items"].as_array().unwrap().len(), 6);
    // Attachments with Slug.
    let r = http
        .post(format!("{}{P}/defects/1/attachments", sim.url()))
        .header("Content-Type", "application/octet-stream")
        .header("Slug", "log.txt")
        .header("Accept", "application/json")
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let bytes = http
        .get(format!("{}{P}/defects/1/attachments/log.txt", sim.url()))
        .header("Accept", "application/octet-stream")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"data");
    // Multipart, as ALM's own clients send it: the name in a `filename` part, the bytes in
    // `file` (whose own file name the `filename` part overrides); a body without a file part
    // is refused.
    let form = reqwest::multipart::Form::new()
        .text("filename", "trace; final.log")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"line 1\r\n--not a boundary\r\n".to_vec())
                .file_name("upload.bin"),
        );
    let r = http
        .post(format!("{}{P}/defects/1/attachments", sim.url()))
        .header("Accept", "application/json")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let bytes = http
        .get(format!(
            "{}{P}/defects/1/attachments/trace%3B%20final.log",
            sim.url()
        ))
        .header("Accept", "application/octet-stream")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"line 1\r\n--not a boundary\r\n");
    let form = reqwest::multipart::Form::new().text("filename", "empty.log");
    let r = http
        .post(format!("{}{P}/defects/1/attachments", sim.url()))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// A client that dies holding a lock blocks the entity only as long as its session lives: the
/// server ends idle sessions on its own, and their locks with them.
#[tokio::test]
async fn a_dead_sessions_lock_goes_with_the_session() {
    let sim = AlmSim::builder()
        .user("qa", "qa")
        .seed_items(3)
        .version(AlmVersion::V12_60)
        .session_idle_timeout(std::time::Duration::from_secs(600))
        .spawn()
        .await
        .unwrap();
    let (dead, next) = (signed_in(&sim).await, signed_in(&sim).await);
    let lock = |http: reqwest::Client| {
        let url = format!("{}{P}/defects/1/lock", sim.url());
        async move { http.post(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(lock(dead.clone()).await, 200);
    assert_eq!(lock(next.clone()).await, 403, "locked by the other session");
    // The first client is gone; once its session has been idle past the timeout the lock is
    // free — while the second client, still active, keeps its own session.
    sim.clock().advance(std::time::Duration::from_secs(400));
    assert_eq!(lock(next.clone()).await, 403);
    sim.clock().advance(std::time::Duration::from_secs(300));
    assert_eq!(lock(next).await, 200);
}
