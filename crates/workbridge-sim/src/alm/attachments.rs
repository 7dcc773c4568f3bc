//! Attachments of an entity: list, upload (octet-stream or multipart), download, delete.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[allow(clippy::wildcard_imports)]
use super::*;

pub(crate) fn attachment_entity(a: &Attachment) -> Entity {
    let s = |v: String| Some(vec![v]);
    Entity {
        fields: BTreeMap::from([
            ("id".into(), s(a.id.to_string())),
            ("name".into(), s(a.name.clone())),
            ("file-size".into(), s(a.data.len().to_string())),
            ("last-modified".into(), s(a.modified.clone())),
            ("ref-type".into(), s("File".into())),
            ("ref-subtype".into(), s("0".into())),
            ("parent-id".into(), s(a.parent.to_string())),
            (
                "parent-type".into(),
                s(data::entity_type(&a.collection)
                    .map_or("", |t| t.0)
                    .to_owned()),
            ),
            ("description".into(), Some(vec![String::new()])),
        ]),
    }
}

pub(crate) async fn attachments(
    State(alm): State<Arc<Alm>>,
    Path((domain, project, coll, id)): ProjId,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let host = host_of(&headers);
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("multipart/form-data"));
    let multipart = if method == Method::POST && is_multipart {
        multipart_file(&headers, body.clone()).await
    } else {
        None
    };
    let mut st = lock(&alm.st);
    let call = or_answer!(begin(
        &alm,
        &mut st,
        &domain,
        &project,
        &headers,
        raw.as_deref(),
        &method,
        &host,
    ));
    let (kind, _) = or_answer!(known_collection(call.fmt, &coll));
    if st.entities.get(&coll).and_then(|m| m.get(&id)).is_none() {
        return not_found(call.fmt, kind, id);
    }
    if method == Method::POST {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let (name, data) = if ct.starts_with("application/octet-stream") {
            let Some(slug) = headers.get("slug").and_then(|v| v.to_str().ok()) else {
                return qc_error(
                    call.fmt,
                    StatusCode::BAD_REQUEST,
                    "qccore.general-error",
                    "The Slug header with the file name is required",
                );
            };
            (slug.to_owned(), body)
        } else if ct.starts_with("multipart/form-data") {
            match multipart {
                Some(x) => x,
                None => {
                    return qc_error(
                        call.fmt,
                        StatusCode::BAD_REQUEST,
                        "qccore.general-error",
                        "The multipart body has no file part",
                    );
                }
            }
        } else {
            return qc_error(
                call.fmt,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "qccore.general-error",
                "Unsupported media type",
            );
        };
        st.next_attachment += 1;
        let a = Attachment {
            id: st.next_attachment,
            collection: coll.clone(),
            parent: id,
            name,
            data,
            modified: alm.local_now(),
        };
        let e = attachment_entity(&a);
        st.attachments.push(a);
        if let Some(ent) = st.entities.get_mut(&coll).and_then(|m| m.get_mut(&id))
            && coll == "defects"
        {
            ent.fields
                .insert("attachment".into(), Some(vec!["Y".into()]));
        }
        return render_one(call.fmt, StatusCode::CREATED, "attachment", &e);
    }
    let list: Vec<Entity> = st
        .attachments
        .iter()
        .filter(|a| a.collection == coll && a.parent == id)
        .map(attachment_entity)
        .collect();
    match call.fmt {
        Fmt::Json => typed(
            StatusCode::OK,
            json!({"entities": list.iter().map(|e| entity_json("attachment", e, None)).collect::<Vec<_>>(), "TotalResults": list.len()}).to_string(),
            "application/json",
        ),
        _ => typed(
            StatusCode::OK,
            format!("<Entities TotalResults=\"{}\">{}</Entities>", list.len(), list.iter().map(|e| entity_xml("attachment", e, None)).collect::<String>()),
            "application/xml",
        ),
    }
}

/// The file of a multipart upload, read by axum's `Multipart`: its name (the `filename` part,
/// else the file part's own file name) and its bytes; `None` without a file part.
pub(crate) async fn multipart_file(headers: &HeaderMap, body: Bytes) -> Option<(String, Bytes)> {
    use axum::extract::FromRequest as _;
    let mut req = axum::extract::Request::new(Body::from(body));
    *req.headers_mut() = headers.clone();
    let mut parts = axum::extract::Multipart::from_request(req, &())
        .await
        .ok()?;
    let (mut name, mut file) = (None, None);
    while let Ok(Some(part)) = parts.next_field().await {
        match part.name() {
            Some("filename") => name = Some(part.text().await.ok()?),
            Some("file") => {
                let own = part.file_name().map(ToOwned::to_owned);
                file = Some(part.bytes().await.ok()?);
                name = name.or(own);
            }
            _ => {}
        }
    }
    Some((name?, file?))
}

pub(crate) async fn attachment_file(
    State(alm): State<Arc<Alm>>,
    Path((domain, project, coll, id, name)): Path<(String, String, String, u64, String)>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let host = host_of(&headers);
    let mut st = lock(&alm.st);
    let call = or_answer!(begin(
        &alm,
        &mut st,
        &domain,
        &project,
        &headers,
        raw.as_deref(),
        &method,
        &host,
    ));
    let by_id = call.params.get("by-id").is_some_and(|v| v == "true");
    let pos = st.attachments.iter().position(|a| {
        a.collection == coll
            && a.parent == id
            && if by_id {
                a.id.to_string() == name
            } else {
                a.name == name
            }
    });
    let Some(pos) = pos else {
        return qc_error(
            call.fmt,
            StatusCode::NOT_FOUND,
            "qccore.entity-not-found",
            &format!("Attachment '{name}' does not exist"),
        );
    };
    if method == Method::DELETE {
        st.attachments.remove(pos);
        return StatusCode::OK.into_response();
    }
    let mut r = Response::new(Body::from(st.attachments[pos].data.clone()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    r
}
