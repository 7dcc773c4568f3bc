//! What every request and answer shares: api-version negotiation, the request prelude, the
//! WrappedException error bodies, JSON answers and dates.

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

#[allow(clippy::wildcard_imports)]
use super::*;

/// The WrappedException error body.
pub(crate) fn ado_error(status: StatusCode, type_key: &str, message: &str) -> Response {
    ado_error_with(
        status,
        type_key,
        "Microsoft.TeamFoundation.WorkItemTracking.Server",
        message,
        3200,
        None,
    )
}

pub(crate) fn ado_error_with(
    status: StatusCode,
    type_key: &str,
    namespace: &str,
    message: &str,
    event_id: u32,
    custom: Option<Value>,
) -> Response {
    let mut body = json!({
        "$id": "1",
        "innerException": null,
        "message": message,
        "typeName": format!("{namespace}.{type_key}, {namespace}"),
        "typeKey": type_key,
        "errorCode": 0,
        "eventId": event_id,
    });
    if let Some(c) = custom {
        body["customProperties"] = c;
    }
    json_response(status, &body, None)
}

pub(crate) fn json_response(
    status: StatusCode,
    body: &Value,
    api_version: Option<&str>,
) -> Response {
    let mut r = (status, body.to_string()).into_response();
    let ct = match api_version {
        Some(v) => format!("application/json; charset=utf-8; api-version={v}"),
        None => "application/json; charset=utf-8".to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&ct) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

pub(crate) fn fault_body(status: u16) -> (String, &'static str) {
    let (key, message) = match status {
        429 => (
            "RequestBlockedException",
            "TF400733: The request has been canceled: Request was blocked due to exceeding usage of resource 'WorkItemTrackingResource' in namespace 'User'.",
        ),
        503 => (
            "ServiceUnavailableException",
            "TF400898: An Internal Error Occurred. Activity Id: 00000000-0000-0000-0000-000000000000.",
        ),
        _ => (
            "VssServiceException",
            "TF400898: An Internal Error Occurred.",
        ),
    };
    (
        json!({"$id": "1", "innerException": null, "message": message, "typeName": format!("Microsoft.VisualStudio.Services.WebApi.{key}, Microsoft.VisualStudio.Services.WebApi"), "typeKey": key, "errorCode": 0, "eventId": 3000}).to_string(),
        "application/json; charset=utf-8",
    )
}

/// A parsed api-version.
#[derive(Debug, Clone)]
pub(crate) struct ApiVersion {
    pub(crate) major: u32,
    pub(crate) minor: u32,
    pub(crate) preview: bool,
    pub(crate) raw: String,
}

impl ApiVersion {
    pub(crate) fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

pub(crate) struct Ctx {
    pub(crate) v: ApiVersion,
    pub(crate) p: HashMap<String, String>,
}

pub(crate) fn params(raw: Option<&str>) -> HashMap<String, String> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    })
    .unwrap_or_default()
}

/// Checks organization, project and api-version; returns the parameters.
pub(crate) fn prelude(
    ado: &Ado,
    org: &str,
    project: Option<&str>,
    raw: Option<&str>,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Ctx, Response> {
    if !org.eq_ignore_ascii_case(&ado.config.organization) {
        return Err(ado_error_with(
            StatusCode::NOT_FOUND,
            "HostNotFoundException",
            "Microsoft.VisualStudio.Services.WebApi",
            &format!(
                "TF400813: The resource cannot be found: the organization or collection {org} does not exist."
            ),
            3000,
            None,
        ));
    }
    if let Some(p) = project
        && !p.eq_ignore_ascii_case(&ado.config.project)
        && p != ado.config.project_id
    {
        return Err(ado_error_with(
            StatusCode::NOT_FOUND,
            "ProjectDoesNotExistWithNameException",
            "Microsoft.TeamFoundation.Core.WebApi",
            &format!(
                "TF200016: The following project does not exist: {p}. Verify that the name of the project is correct and that the project exists on the specified Azure DevOps Server."
            ),
            3000,
            None,
        ));
    }
    let p = params(raw);
    let from_accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| {
            a.split(';').find_map(|part| {
                part.trim()
                    .strip_prefix("api-version=")
                    .map(ToOwned::to_owned)
            })
        });
    let Some(raw_v) = p.get("api-version").cloned().or(from_accept) else {
        return Err(ado_error_with(
            StatusCode::BAD_REQUEST,
            "VssVersionNotSpecifiedException",
            "Microsoft.VisualStudio.Services.WebApi",
            &format!(
                "No api-version was supplied for the \"{method}\" request. The version must be supplied either as part of the Accept header (e.g. \"application/json; api-version=1.0\") or as a query parameter (e.g. '?api-version=1.0')."
            ),
            3000,
            None,
        ));
    };
    let (num, preview) = match raw_v.split_once('-') {
        Some((n, rest)) => (n.to_owned(), rest.starts_with("preview")),
        None => (raw_v.clone(), false),
    };
    let mut parts = num.split('.');
    let major: Option<u32> = parts.next().and_then(|x| x.parse().ok());
    let minor: u32 = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let Some(major) = major else {
        return Err(ado_error_with(
            StatusCode::BAD_REQUEST,
            "VssInvalidApiVersionException",
            "Microsoft.VisualStudio.Services.WebApi",
            &format!("The api-version '{raw_v}' is not valid."),
            3000,
            None,
        ));
    };
    let (max_major, max_minor) = ado.config.server.max_api();
    if (major, minor) > (max_major, max_minor) {
        return Err(ado_error_with(
            StatusCode::BAD_REQUEST,
            "VssVersionOutOfRangeException",
            "Microsoft.VisualStudio.Services.WebApi",
            &format!(
                "The requested REST API version of {major}.{minor} is out of range for this server. The latest REST API version this server supports is {max_major}.{max_minor}."
            ),
            3000,
            None,
        ));
    }
    Ok(Ctx {
        v: ApiVersion {
            major,
            minor,
            preview,
            raw: raw_v,
        },
        p,
    })
}

pub(crate) fn preview_required(v: &ApiVersion) -> Option<Response> {
    (!v.preview).then(|| {
        ado_error_with(
            StatusCode::BAD_REQUEST,
            "VssInvalidPreviewVersionException",
            "Microsoft.VisualStudio.Services.WebApi",
            &format!("The requested version \"{}.{}\" of the resource is under preview. The -preview flag must be supplied in the api-version for such requests. For example: \"{}.{}-preview\"", v.major, v.minor, v.major, v.minor),
            3000,
            None,
        )
    })
}

pub(crate) fn not_registered(ado: &Ado, location: &str) -> Response {
    ado_error_with(
        StatusCode::NOT_FOUND,
        "VssResourceNotFoundException",
        "Microsoft.VisualStudio.Services.WebApi",
        &format!(
            "API resource location {location} is not registered on {}.",
            ado.collection_url()
        ),
        3000,
        None,
    )
}

pub(crate) fn item_not_found(id: u64) -> Response {
    ado_error(
        StatusCode::NOT_FOUND,
        "WorkItemUnauthorizedAccessException",
        &format!(
            "TF401232: Work item {id} does not exist, or you do not have permissions to read it."
        ),
    )
}

pub(crate) fn bad_request(message: &str) -> Response {
    ado_error_with(
        StatusCode::BAD_REQUEST,
        "ArgumentException",
        "System",
        message,
        3000,
        None,
    )
}

pub(crate) fn ok(v: &ApiVersion, body: &Value) -> Response {
    json_response(StatusCode::OK, body, Some(&v.raw))
}

pub(crate) fn fmt_date(t: DateTime<Utc>) -> String {
    let ms = t.timestamp_subsec_millis();
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    if ms == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{ms:03}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

pub(crate) fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub(crate) fn page<T: Clone>(all: &[T], p: &HashMap<String, String>) -> Vec<T> {
    let skip: usize = p.get("$skip").and_then(|v| v.parse().ok()).unwrap_or(0);
    let top: usize = p.get("$top").and_then(|v| v.parse().ok()).unwrap_or(200);
    all.iter().skip(skip).take(top).cloned().collect()
}

/// The one entry a `…/{n}` route asks for, or 404.
pub(crate) fn single(v: &ApiVersion, value: Vec<Value>, what: &str) -> Response {
    match value.into_iter().next() {
        Some(x) => ok(v, &x),
        None => ado_error(
            StatusCode::NOT_FOUND,
            "WorkItemRevisionNotFoundException",
            &format!("TF401353: The {what} requested for the work item does not exist."),
        ),
    }
}
