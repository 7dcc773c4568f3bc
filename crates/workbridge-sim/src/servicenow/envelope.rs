//! What every request and answer shares: the error body, JSON and empty answers, the
//! instance's time, and the query-string parameters.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[allow(clippy::wildcard_imports)]
use super::*;

/// The standard error envelope.
pub(crate) fn sn_error(status: StatusCode, message: &str, detail: Option<&str>) -> Response {
    let body = json!({"error": {"message": message, "detail": detail}, "status": "failure"});
    json_response(status, &body)
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r.headers_mut()
        .insert("x-is-logged-in", HeaderValue::from_static("true"));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache,no-store,must-revalidate,max-age=-1"),
    );
    r
}

pub(crate) fn fault_body(status: u16) -> (String, &'static str) {
    let message = match status {
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Operation Failed",
    };
    (
        json!({"error": {"message": message, "detail": null}, "status": "failure"}).to_string(),
        "application/json;charset=UTF-8",
    )
}

pub(crate) fn now_str(sn: &Sn) -> String {
    fmt_time(sn.now())
}

pub(crate) fn empty_response(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

pub(crate) fn params(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    })
    .unwrap_or_default()
}

pub(crate) fn param<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str())
}

/// A boolean parameter: instances read `true`, `True` and `TRUE` alike (Python clients send
/// `True`).
pub(crate) fn flag(p: &[(String, String)], k: &str) -> bool {
    param(p, k).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Parameters by name (last wins), for handlers that need a map.
pub(crate) fn param_map(p: &[(String, String)]) -> HashMap<String, String> {
    p.iter().cloned().collect()
}
