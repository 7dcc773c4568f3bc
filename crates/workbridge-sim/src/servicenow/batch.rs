//! The Batch API: several REST requests in one, bodies in base64.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;

#[allow(clippy::wildcard_imports)]
use super::*;

/// A string, or a number read as its decimal text (instances accept a numeric
/// `batch_request_id` and echo it as a string).
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "batch_request_id must be a string, found {other}"
            )));
        }
    })
}

fn required_string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    string_or_number(d)?.ok_or_else(|| serde::de::Error::custom("id is required"))
}

#[derive(Deserialize)]
struct BatchRequest {
    #[serde(default, deserialize_with = "string_or_number")]
    batch_request_id: Option<String>,
    #[serde(default)]
    rest_requests: Vec<RestRequest>,
}

#[derive(Deserialize)]
struct RestRequest {
    #[serde(deserialize_with = "required_string_or_number")]
    id: String,
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    exclude_response_headers: bool,
}

#[derive(Deserialize)]
struct NameValue {
    name: String,
    value: String,
}

/// Largest decoded body of one request, as `glide.rest.batch.max.inputSize` allows by default.
const MAX_ITEM_INPUT: usize = 5 * 1024 * 1024;

pub(crate) async fn batch(
    State(sn): State<Arc<Sn>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Ok(req) = serde_json::from_slice::<BatchRequest>(&body) else {
        return sn_error(
            StatusCode::BAD_REQUEST,
            "Exception while reading request",
            Some("The payload is not valid JSON."),
        );
    };
    let Some(router) = sn.router.get().cloned() else {
        return sn_error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", None);
    };
    let auth = headers.get(header::AUTHORIZATION).cloned();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut serviced = Vec::new();
    let mut unserviced = Vec::new();
    for r in req.rest_requests {
        let started = Instant::now();
        let body = match r.body.as_deref().map(|b| b64.decode(b)) {
            None => Vec::new(),
            Some(Ok(b)) if b.len() <= MAX_ITEM_INPUT => b,
            Some(Ok(_)) => {
                unserviced.push(Value::String(r.id));
                continue;
            }
            Some(Err(_)) => {
                serviced.push(json!({
                    "id": r.id, "status_code": 400, "status_text": "Bad Request",
                    "headers": [], "body": "", "execution_time": 0,
                    "error_message": "The body is not valid base64",
                }));
                continue;
            }
        };
        let path = if r.url.starts_with('/') {
            r.url.clone()
        } else {
            format!("/{}", r.url)
        };
        let mut builder = Request::builder().method(r.method.as_str()).uri(path);
        for h in &r.headers {
            builder = builder.header(h.name.as_str(), h.value.as_str());
        }
        if let Some(a) = &auth {
            builder = builder.header(header::AUTHORIZATION, a.clone());
        }
        let Ok(sub) = builder.body(Body::from(body)) else {
            serviced.push(json!({
                "id": r.id, "status_code": 400, "status_text": "Bad Request",
                "headers": [], "body": "", "execution_time": 0,
                "error_message": "The request cannot be built",
            }));
            continue;
        };
        let resp: Response = match router.clone().oneshot(sub).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
        let status = resp.status();
        let resp_headers: Vec<Value> = if r.exclude_response_headers {
            Vec::new()
        } else {
            resp.headers()
                .iter()
                .map(|(k, v)| json!({"name": k.as_str(), "value": v.to_str().unwrap_or_default()}))
                .collect()
        };
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        serviced.push(json!({
            "id": r.id,
            "status_code": status.as_u16(),
            "status_text": status.canonical_reason().unwrap_or(""),
            "headers": resp_headers,
            "body": b64.encode(&bytes),
            "execution_time": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }));
    }
    json_response(
        StatusCode::OK,
        &json!({
            "batch_request_id": req.batch_request_id,
            "serviced_requests": serviced,
            "unserviced_requests": unserviced,
        }),
    )
}
