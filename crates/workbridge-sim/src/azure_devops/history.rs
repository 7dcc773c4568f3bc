//! A work item's history: its updates and revisions.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde_json::{Value, json};

#[allow(clippy::wildcard_imports)]
use super::*;

pub(crate) async fn updates(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::GET);
    let (id, wi) = or_answer!(find_item(&ado, &path));
    let base = ado.collection_url();
    let one = path.iter().find(|(k, _)| k == "n").map(|(_, v)| v.clone());
    // Update ids are positions in the whole list, whatever `$skip` says.
    let numbered: Vec<(usize, UpdateRec)> = wi.updates.iter().cloned().enumerate().collect();
    let entries = if one.is_some() {
        numbered
    } else {
        page(&numbered, &ctx.p)
    };
    let value: Vec<Value> = entries
        .iter()
        .filter(|(i, _)| one.as_ref().is_none_or(|n| *n == (i + 1).to_string()))
        .map(|(i, u)| {
            let mut fields = u.fields.clone();
            for (k, v) in fields.iter_mut() {
                if field_type(&ado, k) == Some("identity") {
                    for side in ["oldValue", "newValue"] {
                        if let Some(x) = v.get(side).cloned() {
                            v[side] = render_identity(&x, &ctx.v, &base);
                        }
                    }
                }
            }
            let mut o = json!({
                "id": i + 1, "workItemId": id, "rev": u.rev,
                "revisedBy": render_identity_ref(&u.by.stored(), &ctx.v, &base),
                "revisedDate": if u.rev == wi.rev { "9999-01-01T00:00:00Z".to_owned() } else { fmt_date(u.at) },
                "fields": fields,
                "url": format!("{base}/_apis/wit/workItems/{id}/updates/{}", i + 1),
            });
            if !u.added.is_empty() || !u.removed.is_empty() {
                o["relations"] = json!({"added": u.added, "removed": u.removed});
            }
            o
        })
        .collect();
    if one.is_some() {
        return single(&ctx.v, value, "update");
    }
    ok(&ctx.v, &json!({"count": value.len(), "value": value}))
}

pub(crate) async fn revisions(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::GET);
    let (id, wi) = or_answer!(find_item(&ado, &path));
    let base = ado.collection_url();
    let one = path.iter().find(|(k, _)| k == "n").map(|(_, v)| v.clone());
    let entries = if one.is_some() {
        wi.revisions
    } else {
        page(&wi.revisions, &ctx.p)
    };
    let value: Vec<Value> = entries
        .iter()
        .filter(|r| one.as_ref().is_none_or(|n| *n == r.rev.to_string()))
        .map(|r| {
            json!({"id": id, "rev": r.rev, "fields": render_fields(&ado, &r.fields, None, &ctx.v, None), "url": format!("{base}/_apis/wit/workItems/{id}/revisions/{}", r.rev)})
        })
        .collect();
    if one.is_some() {
        return single(&ctx.v, value, "revision");
    }
    ok(&ctx.v, &json!({"count": value.len(), "value": value}))
}
