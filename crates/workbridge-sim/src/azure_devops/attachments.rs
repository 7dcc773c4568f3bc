//! Attachments: upload (simple and chunked) and download.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::json;

#[allow(clippy::wildcard_imports)]
use super::*;

pub(crate) async fn upload(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::POST);
    let name = ctx
        .p
        .get("fileName")
        .cloned()
        .unwrap_or_else(|| "attachment".into());
    if ctx
        .p
        .get("uploadType")
        .is_some_and(|u| u.eq_ignore_ascii_case("chunked"))
    {
        return bad_request(
            "Chunked uploads are not supported by this server; upload the file in one request.",
        );
    }
    if body.len() > 130 * 1024 * 1024 {
        return ado_error(
            StatusCode::BAD_REQUEST,
            "WorkItemAttachmentExceedsMaxSizeException",
            "VS402593: The attachment exceeds the maximum size of 130 MB.",
        );
    }
    let n: u128 = {
        use rand::{Rng, SeedableRng};
        rand::rngs::StdRng::from_os_rng().random()
    };
    let h = format!("{n:032x}");
    let aid = format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    );
    lock(&ado.store)
        .attachments
        .insert(aid.clone(), (name.clone(), body));
    let url = format!(
        "{}/_apis/wit/attachments/{aid}?fileName={}",
        ado.collection_url(),
        url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
    );
    json_response(
        StatusCode::CREATED,
        &json!({"id": aid, "url": url}),
        Some(&ctx.v.raw),
    )
}

pub(crate) async fn download(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (org, project) = org_project(&path);
    let _ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::GET);
    let aid = path
        .iter()
        .find(|(k, _)| k == "aid")
        .map(|(_, v)| v.to_lowercase())
        .unwrap_or_default();
    let Some((name, data)) = lock(&ado.store).attachments.get(&aid).cloned() else {
        return ado_error(
            StatusCode::NOT_FOUND,
            "AttachmentNotFoundException",
            &format!("VS402594: Attachment {aid} does not exist."),
        );
    };
    let mut r = Response::new(Body::from(data));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        name.replace('"', "")
    )) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}
