//! Comments (the 7.x comments API, preview versions included), and the `System.History`
//! entries older servers keep them in.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

#[allow(clippy::wildcard_imports)]
use super::*;

pub(crate) fn render_comment(ado: &Ado, id: u64, c: &CommentRec, v: &ApiVersion) -> Value {
    let base = ado.collection_url();
    json!({
        "mentions": [],
        "workItemId": id,
        "id": c.id,
        "version": c.version,
        "text": c.text,
        "format": c.format,
        "createdBy": render_identity(&c.by.stored(), v, &base),
        "createdDate": fmt_date(c.at),
        "modifiedBy": render_identity(&c.by.stored(), v, &base),
        "modifiedDate": fmt_date(c.modified_at),
        "isDeleted": c.deleted,
        "url": format!("{base}/{}/_apis/wit/workItems/{id}/comments/{}", ado.config.project_id, c.id),
    })
}

/// Whether a request is for the revision-based, read-only comments of TFS 2018 and Azure
/// DevOps Server 2019.0 (api 4.1 to 5.0).
pub(crate) fn revision_comments(ado: &Ado, v: &ApiVersion) -> bool {
    ado.config.server >= super::ServerVersion::Tfs2018 && v.at_least(4, 1) && !v.at_least(5, 1)
}

/// A revision-based comment: its author is an `IdentityReference`, as the 4.1 recordings show.
pub(crate) fn revision_comment(base: &str, id: u64, c: &CommentRec, v: &ApiVersion) -> Value {
    json!({"revision": c.rev, "text": c.text, "revisedBy": render_identity_ref(&c.by.stored(), v, base), "revisedDate": fmt_date(c.at), "url": format!("{base}/_apis/wit/workItems/{id}/comments/{}", c.rev)})
}

pub(crate) fn comments_available(ado: &Ado, v: &ApiVersion) -> Option<Response> {
    if ado.config.server < super::ServerVersion::Server2019 || !v.at_least(5, 1) {
        return Some(not_registered(ado, "608aac0a-32e1-4493-a863-b9cf4566d257"));
    }
    preview_required(v)
}

pub(crate) async fn list_comments(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::GET);
    let (id, wi) = or_answer!(find_item(&ado, &path));
    if revision_comments(&ado, &ctx.v) {
        // The revision-based, read-only comments of TFS 2018 and Azure DevOps Server 2019.0.
        if let Some(r) = preview_required(&ctx.v) {
            return r;
        }
        let base = ado.collection_url();
        let from: u64 = ctx
            .p
            .get("fromRevision")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let list: Vec<Value> = wi
            .comments
            .iter()
            .filter(|c| c.rev >= from)
            .map(|c| revision_comment(&base, id, c, &ctx.v))
            .collect();
        return ok(
            &ctx.v,
            &json!({"totalCount": list.len(), "fromRevisionCount": list.len(), "count": list.len(), "comments": list}),
        );
    }
    if let Some(r) = comments_available(&ado, &ctx.v) {
        return r;
    }
    let include_deleted = ctx.p.get("includeDeleted").is_some_and(|v| v == "true");
    let mut all: Vec<&CommentRec> = wi
        .comments
        .iter()
        .filter(|c| include_deleted || !c.deleted)
        .collect();
    if let Some(ids) = ctx.p.get("ids") {
        let wanted: Vec<u64> = parse_ids(ids).unwrap_or_default();
        all.retain(|c| wanted.contains(&c.id));
    }
    if !ctx
        .p
        .get("order")
        .is_some_and(|o| o.eq_ignore_ascii_case("asc"))
    {
        all.reverse();
    }
    let top: usize = ctx
        .p
        .get("$top")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
        .clamp(1, 200);
    let start: usize = ctx
        .p
        .get("continuationToken")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let slice: Vec<Value> = all
        .iter()
        .skip(start)
        .take(top)
        .map(|c| render_comment(&ado, id, c, &ctx.v))
        .collect();
    let mut body = json!({"totalCount": all.len(), "count": slice.len(), "comments": slice});
    if start + top < all.len() {
        let next = (start + top).to_string();
        body["continuationToken"] = Value::String(next.clone());
        body["nextPage"] = Value::String(format!(
            "{}/{}/_apis/wit/workItems/{id}/comments?continuationToken={next}",
            ado.collection_url(),
            ado.config.project_id
        ));
    }
    ok(&ctx.v, &body)
}

pub(crate) async fn add_comment(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::POST);
    if let Some(r) = comments_available(&ado, &ctx.v) {
        return r;
    }
    let (id, wi) = or_answer!(find_item(&ado, &path));
    let Some(text) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("text").and_then(Value::as_str).map(ToOwned::to_owned))
    else {
        return bad_request("The comment text is required.");
    };
    if text.trim().is_empty() {
        return bad_request("The comment text is required.");
    }
    let format = if ctx
        .p
        .get("format")
        .is_some_and(|f| f.eq_ignore_ascii_case("markdown"))
    {
        "markdown"
    } else {
        "html"
    };
    let me = ado.config.me.clone();
    let mut st = lock(&ado.store);
    // A comment is a new revision with the text as its history.
    let ops = [json!({"op": "add", "path": "/fields/System.History", "value": text})];
    if let Err(e) = apply(
        &ado,
        &mut st,
        wi.wtype,
        Some(id),
        &ops,
        PatchFlags {
            bypass_rules: true,
            ..PatchFlags::default()
        },
        &me,
    ) {
        return e.response(Some(id));
    }
    let Some(c) = st.items.get_mut(&id).and_then(|w| w.comments.last_mut()) else {
        return bad_request("The comment could not be added.");
    };
    c.format = format;
    let c = c.clone();
    ok(&ctx.v, &render_comment(&ado, id, &c, &ctx.v))
}

pub(crate) fn comment_id(path: &[(String, String)]) -> Option<u64> {
    path.iter()
        .find(|(k, _)| k == "cid")
        .and_then(|(_, v)| v.parse().ok())
}

pub(crate) fn comment_not_found(cid: u64) -> Response {
    ado_error(
        StatusCode::NOT_FOUND,
        "CommentNotFoundException",
        &format!("TF401264: Comment {cid} does not exist."),
    )
}

pub(crate) async fn get_comment(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::GET);
    if revision_comments(&ado, &ctx.v) {
        // `comments/{revision}`: the comment made in that revision.
        if let Some(r) = preview_required(&ctx.v) {
            return r;
        }
        let (id, wi) = or_answer!(find_item(&ado, &path));
        let rev = comment_id(&path).unwrap_or(0);
        return match wi.comments.iter().find(|c| c.rev == rev) {
            Some(c) => ok(
                &ctx.v,
                &revision_comment(&ado.collection_url(), id, c, &ctx.v),
            ),
            None => comment_not_found(rev),
        };
    }
    if let Some(r) = comments_available(&ado, &ctx.v) {
        return r;
    }
    let (id, wi) = or_answer!(find_item(&ado, &path));
    let cid = comment_id(&path).unwrap_or(0);
    match wi.comments.iter().find(|c| c.id == cid && !c.deleted) {
        Some(c) => ok(&ctx.v, &render_comment(&ado, id, c, &ctx.v)),
        None => comment_not_found(cid),
    }
}

pub(crate) async fn update_comment(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::PATCH);
    if let Some(r) = comments_available(&ado, &ctx.v) {
        return r;
    }
    let Some(text) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("text").and_then(Value::as_str).map(ToOwned::to_owned))
    else {
        return bad_request("The comment text is required.");
    };
    let (id, _) = or_answer!(find_item(&ado, &path));
    let cid = comment_id(&path).unwrap_or(0);
    let now = ado.now();
    let mut st = lock(&ado.store);
    let Some(c) = st
        .items
        .get_mut(&id)
        .and_then(|w| w.comments.iter_mut().find(|c| c.id == cid && !c.deleted))
    else {
        return comment_not_found(cid);
    };
    c.text = text;
    c.version += 1;
    c.modified_at = now;
    let c = c.clone();
    ok(&ctx.v, &render_comment(&ado, id, &c, &ctx.v))
}

pub(crate) async fn delete_comment(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::DELETE);
    if let Some(r) = comments_available(&ado, &ctx.v) {
        return r;
    }
    let (id, _) = or_answer!(find_item(&ado, &path));
    let cid = comment_id(&path).unwrap_or(0);
    let mut st = lock(&ado.store);
    let Some(w) = st.items.get_mut(&id) else {
        return item_not_found(id);
    };
    let Some(c) = w.comments.iter_mut().find(|c| c.id == cid && !c.deleted) else {
        return comment_not_found(cid);
    };
    c.deleted = true;
    let count = w.comments.iter().filter(|c| !c.deleted).count();
    w.fields.insert("System.CommentCount".into(), json!(count));
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::OK;
    r
}
