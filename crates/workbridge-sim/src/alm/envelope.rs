//! What every request and answer shares: JSON or XML as the client asks, the QC exception
//! bodies (framework rejections included), and the prelude of a project route (session,
//! XSRF, domain and project).

use std::collections::HashMap;

use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[allow(clippy::wildcard_imports)]
use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fmt {
    Json,
    Xml,
    Html,
}

pub(crate) fn wants(headers: &HeaderMap, raw: Option<&str>) -> Fmt {
    if raw
        .is_some_and(|q| q.contains("alt=application/json") || q.contains("alt=application%2Fjson"))
    {
        return Fmt::Json;
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.contains("application/json") {
        Fmt::Json
    } else if accept.contains("application/xml") || accept.contains("text/xml") {
        Fmt::Xml
    } else {
        Fmt::Html
    }
}

pub(crate) fn xml_escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

pub(crate) fn qc_error(fmt: Fmt, status: StatusCode, id: &str, title: &str) -> Response {
    let (body, ct) = match fmt {
        Fmt::Json => (
            json!({"Id": id, "Title": title, "ExceptionProperties": null, "StackTrace": null})
                .to_string(),
            "application/json",
        ),
        Fmt::Xml => (
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><QCRestException><Id>{}</Id><Title>{}</Title><StackTrace>{}</StackTrace></QCRestException>",
                xml_escape(id),
                xml_escape(title),
                xml_escape(id)
            ),
            "application/xml",
        ),
        Fmt::Html => (
            format!(
                "<html><head><title>ALM Error</title></head><body><h1>Application Lifecycle Management</h1><p>{}</p><p>{}</p><pre>at com.hp.qc.rest.{}</pre></body></html>",
                xml_escape(title),
                xml_escape(id),
                xml_escape(id)
            ),
            "text/html",
        ),
    };
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

pub(crate) fn fault_body(status: u16) -> (String, &'static str) {
    let title = match status {
        503 => "Service Unavailable",
        429 => "Too Many Requests",
        _ => "General server error",
    };
    (json!({"Id": "qccore.general-error", "Title": title, "ExceptionProperties": null, "StackTrace": null}).to_string(), "application/json")
}

pub(crate) fn typed(status: StatusCode, body: String, ct: &'static str) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

pub(crate) type QcErr = (StatusCode, &'static str, String);

pub(crate) fn host_of(headers: &HeaderMap) -> String {
    format!(
        "http://{}",
        headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost")
    )
}

pub(crate) struct Call {
    pub(crate) fmt: Fmt,
    pub(crate) params: HashMap<String, String>,
    pub(crate) session: String,
    pub(crate) user: String,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn begin(
    alm: &Alm,
    st: &mut State_,
    domain: &str,
    project: &str,
    headers: &HeaderMap,
    raw: Option<&str>,
    method: &Method,
    host: &str,
) -> Result<Call, Response> {
    let (session, user) = session_of(alm, st, headers, raw, method, host)?;
    let fmt = wants(headers, raw);
    if !domain.eq_ignore_ascii_case(&alm.config.domain)
        || !project.eq_ignore_ascii_case(&alm.config.project)
    {
        return Err(qc_error(
            fmt,
            StatusCode::NOT_FOUND,
            "qccore.entity-not-found",
            &format!("Project '{domain}/{project}' does not exist"),
        ));
    }
    let params = raw
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    Ok(Call {
        fmt,
        params,
        session,
        user,
    })
}

/// The entity type of a collection, or the 404 ALM answers for an unknown one.
pub(crate) fn known_collection(
    fmt: Fmt,
    coll: &str,
) -> Result<(&'static str, &'static [data::FieldSpec]), Response> {
    data::entity_type(coll).ok_or_else(|| {
        qc_error(
            fmt,
            StatusCode::NOT_FOUND,
            "qccore.entity-not-found",
            &format!("Unknown entity collection {coll}"),
        )
    })
}

pub(crate) fn not_found(fmt: Fmt, kind: &str, id: u64) -> Response {
    qc_error(
        fmt,
        StatusCode::NOT_FOUND,
        "qccore.entity-not-found",
        &format!("Failed to get entity: {kind} with id {id} does not exist"),
    )
}

pub(crate) fn err(fmt: Fmt, e: &QcErr) -> Response {
    qc_error(fmt, e.0, e.1, &e.2)
}

pub(crate) type Proj = Path<(String, String, String)>;
pub(crate) type ProjId = Path<(String, String, String, u64)>;

/// ALM answers every REST failure as an ALM exception: a path the framework cannot parse (a
/// non-numeric entity id) is one too, not a text/plain framework message.
pub(crate) async fn alm_rejections(
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let fmt = wants(&headers, raw.as_deref());
    let r = next.run(req).await;
    let plain = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/plain"));
    if plain && r.status().is_client_error() {
        let status = r.status();
        return qc_error(
            fmt,
            if status == StatusCode::BAD_REQUEST {
                StatusCode::NOT_FOUND
            } else {
                status
            },
            "qccore.general-error",
            "The requested resource does not exist",
        );
    }
    r
}
