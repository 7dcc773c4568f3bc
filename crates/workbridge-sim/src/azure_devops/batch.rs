//! Batches: `workitemsbatch` reads and the `$batch` of work item writes.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use tower::ServiceExt;

#[allow(clippy::wildcard_imports)]
use super::*;

pub(crate) async fn batch_get(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::POST);
    if !ctx.v.at_least(5, 0) || ado.config.server < super::ServerVersion::Server2019 {
        return not_registered(&ado, "908509b6-4248-4475-a1cd-829139ba419f");
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("The request body is not valid JSON.");
    };
    let ids: Vec<u64> = req
        .get("ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    if ids.is_empty() {
        return bad_request("The ids of the request are required.");
    }
    let fields: Option<Vec<String>> = req.get("fields").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(ToOwned::to_owned)
            .collect()
    });
    let as_of = req.get("asOf").and_then(Value::as_str).and_then(parse_date);
    let expand_raw = req.get("$expand").map(|e| match e {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let expand = expand_named(expand_raw.as_deref());
    let omit = req
        .get("errorPolicy")
        .and_then(Value::as_str)
        .is_some_and(|e| e.eq_ignore_ascii_case("omit"));
    read_items(&ado, &ctx, &ids, fields.as_deref(), as_of, expand, omit)
}

pub(crate) async fn batch_write(
    State(ado): State<Arc<Ado>>,
    Path(org): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = pre!(ado, org, None, raw, headers, Method::PATCH);
    let Ok(Value::Array(requests)) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("The batch body must be an array of requests.");
    };
    if requests.len() > 200 {
        return bad_request(&format!(
            "VS403474: You requested {} work items which exceeds the limit of 200",
            requests.len()
        ));
    }
    let Some(router) = ado.router.get().cloned() else {
        return bad_request("The server is starting.");
    };
    let auth = headers.get(header::AUTHORIZATION).cloned();
    let mut value = Vec::new();
    for r in requests {
        let method = r
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("PATCH")
            .to_uppercase();
        let uri = r.get("uri").and_then(Value::as_str).unwrap_or_default();
        let uri = if uri.starts_with(&format!("/{}", ado.config.organization)) {
            uri.to_owned()
        } else {
            format!("/{}{uri}", ado.config.organization)
        };
        let lowered = match uri.find("/_apis") {
            Some(pos) => format!("{}{}", &uri[..pos], {
                let rest = &uri[pos..];
                match rest.split_once('?') {
                    Some((p, q)) => format!("{}?{q}", p.to_lowercase()),
                    None => rest.to_lowercase(),
                }
            }),
            None => uri.clone(),
        };
        let mut b = axum::http::Request::builder()
            .method(method.as_str())
            .uri(lowered);
        if let Some(h) = r.get("headers").and_then(Value::as_object) {
            for (k, v) in h {
                if let Some(v) = v.as_str() {
                    b = b.header(k.as_str(), v);
                }
            }
        }
        if let Some(a) = &auth {
            b = b.header(header::AUTHORIZATION, a.clone());
        }
        let sub_body = r
            .get("body")
            .map(|v| {
                if let Value::String(s) = v {
                    s.clone()
                } else {
                    v.to_string()
                }
            })
            .unwrap_or_default();
        let Ok(sub) = b.body(Body::from(sub_body)) else {
            value.push(json!({"code": 400, "headers": {}, "body": "{\"message\":\"The request is not valid.\"}"}));
            continue;
        };
        let resp: Response = match router.clone().oneshot(sub).await {
            Ok(x) => x,
            Err(never) => match never {},
        };
        let code = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        value.push(json!({"code": code, "headers": {"Content-Type": "application/json; charset=utf-8"}, "body": String::from_utf8_lossy(&bytes)}));
    }
    ok(&ctx.v, &json!({"count": value.len(), "value": value}))
}
