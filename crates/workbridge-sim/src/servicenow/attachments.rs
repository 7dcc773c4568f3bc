//! The Attachment API.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Multipart, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[allow(clippy::wildcard_imports)]
use super::*;

fn not_found() -> Response {
    sn_error(
        StatusCode::NOT_FOUND,
        "No Record found",
        Some("Record doesn't exist or ACL restricts the record retrieval"),
    )
}

fn meta_json(sn: &Sn, row: &Row) -> Value {
    let store = lock(&sn.store);
    let meta = store.meta("sys_attachment");
    render(
        sn,
        &store,
        &meta,
        row,
        &ReadOpts {
            display: super::items::Display::False,
            exclude_ref: true,
            fields: None,
        },
    )
}

pub(crate) async fn list(State(sn): State<Arc<Sn>>, RawQuery(raw): RawQuery) -> Response {
    let p = params(raw.as_deref());
    let store = lock(&sn.store);
    let (rows, total, _) = or_answer!(select(&sn, &store, "sys_attachment", &p));
    let meta = store.meta("sys_attachment");
    let o = ReadOpts {
        display: super::items::Display::False,
        exclude_ref: true,
        fields: None,
    };
    let result: Vec<Value> = rows
        .iter()
        .map(|r| render(&sn, &store, &meta, r, &o))
        .collect();
    let mut resp = json_response(StatusCode::OK, &json!({ "result": result }));
    if let Ok(v) = HeaderValue::from_str(&total.to_string()) {
        resp.headers_mut().insert("x-total-count", v);
    }
    resp
}

pub(crate) async fn meta(State(sn): State<Arc<Sn>>, Path(sys_id): Path<String>) -> Response {
    let row = lock(&sn.store)
        .tables
        .get("sys_attachment")
        .and_then(|t| t.get(&sys_id))
        .cloned();
    match row {
        Some(r) => json_response(StatusCode::OK, &json!({"result": meta_json(&sn, &r)})),
        None => not_found(),
    }
}

pub(crate) async fn download(State(sn): State<Arc<Sn>>, Path(sys_id): Path<String>) -> Response {
    let (row, data) = {
        let store = lock(&sn.store);
        let row = store
            .tables
            .get("sys_attachment")
            .and_then(|t| t.get(&sys_id))
            .cloned();
        (row, store.blobs.get(&sys_id).cloned())
    };
    let (Some(row), Some(data)) = (row, data) else {
        return not_found();
    };
    let meta = meta_json(&sn, &row).to_string();
    let mut resp = Response::new(Body::from(data));
    let h = resp.headers_mut();
    let ct = row
        .get("content_type")
        .cloned()
        .unwrap_or_else(|| "application/octet-stream".into());
    if let Ok(v) = HeaderValue::from_str(&ct) {
        h.insert(header::CONTENT_TYPE, v);
    }
    let name = row
        .get("file_name")
        .cloned()
        .unwrap_or_default()
        .replace('"', "");
    if let Ok(v) = HeaderValue::from_str(&format!("attachment;filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&meta) {
        h.insert("x-attachment-metadata", v);
    }
    resp
}

fn store_attachment(
    sn: &Sn,
    caller: &Caller,
    table: &str,
    table_sys_id: &str,
    file_name: &str,
    content_type: &str,
    data: Bytes,
) -> Response {
    if !caller.0.can_write() {
        return sn_error(
            StatusCode::FORBIDDEN,
            "Operation Failed",
            Some("ACL Exception Insert Failed due to security constraints"),
        );
    }
    if data.len() > sn.config.max_attachment_bytes {
        return sn_error(
            StatusCode::BAD_REQUEST,
            "Failed to create the attachment. File part might be too large",
            Some(&format!(
                "the file exceeds the maximum size of {} bytes",
                sn.config.max_attachment_bytes
            )),
        );
    }
    let now = now_str(sn);
    let mut store = lock(&sn.store);
    let exists = store
        .tables
        .get(table)
        .is_some_and(|t| t.get(table_sys_id).is_some());
    if !exists {
        return sn_error(
            StatusCode::NOT_FOUND,
            "Record doesn't exist or ACL restricts the record retrieval",
            None,
        );
    }
    let id = store.new_sys_id();
    let hash = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let row = Row::from([
        ("sys_id".into(), id.clone()),
        ("file_name".into(), file_name.to_owned()),
        ("content_type".into(), content_type.to_owned()),
        ("size_bytes".into(), data.len().to_string()),
        ("size_compressed".into(), data.len().to_string()),
        ("compressed".into(), "true".into()),
        ("table_name".into(), table.to_owned()),
        ("table_sys_id".into(), table_sys_id.to_owned()),
        (
            "download_link".into(),
            format!("{}/api/now/attachment/{id}/file", sn.base()),
        ),
        ("hash".into(), hash),
        ("state".into(), "available".into()),
        ("chunk_size_bytes".into(), "700000".into()),
        ("average_image_color".into(), String::new()),
        ("image_width".into(), String::new()),
        ("image_height".into(), String::new()),
        ("sys_tags".into(), String::new()),
        ("sys_created_on".into(), now.clone()),
        ("sys_created_by".into(), caller.0.user_name.clone()),
        ("sys_updated_on".into(), now),
        ("sys_updated_by".into(), caller.0.user_name.clone()),
        ("sys_mod_count".into(), "0".into()),
    ]);
    store.blobs.insert(id.clone(), data);
    store
        .tables
        .entry("sys_attachment".into())
        .or_default()
        .insert(row.clone());
    drop(store);
    let mut resp = json_response(StatusCode::CREATED, &json!({"result": meta_json(sn, &row)}));
    if let Ok(v) = HeaderValue::from_str(&format!("{}/api/now/attachment/{id}", sn.base())) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

pub(crate) async fn upload_raw(
    State(sn): State<Arc<Sn>>,
    RawQuery(raw): RawQuery,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = param_map(&params(raw.as_deref()));
    for required in ["table_name", "table_sys_id", "file_name"] {
        if p.get(required).is_none_or(String::is_empty) {
            return sn_error(
                StatusCode::BAD_REQUEST,
                &format!("Missing parameter: {required}"),
                None,
            );
        }
    }
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return sn_error(
            StatusCode::BAD_REQUEST,
            "Content-Type header is mandatory",
            None,
        );
    };
    store_attachment(
        &sn,
        &caller,
        &p["table_name"],
        &p["table_sys_id"],
        &p["file_name"],
        ct,
        body,
    )
}

pub(crate) async fn upload_multipart(
    State(sn): State<Arc<Sn>>,
    Extension(caller): Extension<Caller>,
    mut multipart: Multipart,
) -> Response {
    let (mut table, mut table_sys_id) = (String::new(), String::new());
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return sn_error(
                    StatusCode::BAD_REQUEST,
                    "Failed to read the multipart body",
                    Some(&e.to_string()),
                );
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        if let Some(file_name) = field.file_name().map(ToOwned::to_owned) {
            if table.is_empty() || table_sys_id.is_empty() {
                return sn_error(
                    StatusCode::BAD_REQUEST,
                    "Failed to create the attachment. table_name and table_sys_id must precede the file part",
                    None,
                );
            }
            let ct = field
                .content_type()
                .unwrap_or("application/octet-stream")
                .to_owned();
            let data = match field.bytes().await {
                Ok(d) => d,
                Err(e) => {
                    return sn_error(
                        StatusCode::BAD_REQUEST,
                        "Failed to read the file part",
                        Some(&e.to_string()),
                    );
                }
            };
            return store_attachment(&sn, &caller, &table, &table_sys_id, &file_name, &ct, data);
        }
        let text = field.text().await.unwrap_or_default();
        match name.as_str() {
            "table_name" => table = text,
            "table_sys_id" => table_sys_id = text,
            _ => {}
        }
    }
    sn_error(
        StatusCode::BAD_REQUEST,
        "Failed to create the attachment. No file part",
        None,
    )
}

pub(crate) async fn delete(
    State(sn): State<Arc<Sn>>,
    Path(sys_id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if !caller.0.can_write() {
        return sn_error(
            StatusCode::FORBIDDEN,
            "Operation Failed",
            Some("ACL Exception Delete Failed due to security constraints"),
        );
    }
    let mut store = lock(&sn.store);
    let removed = store
        .tables
        .get_mut("sys_attachment")
        .and_then(|t| t.remove(&sys_id))
        .is_some();
    store.blobs.remove(&sys_id);
    if removed {
        empty_response(StatusCode::NO_CONTENT)
    } else {
        not_found()
    }
}
