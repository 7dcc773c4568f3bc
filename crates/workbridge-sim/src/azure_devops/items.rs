//! Work items: how one is rendered (fields, identities, `$expand`), and the routes that list,
//! read, create, update and delete them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::data::{FieldSpec, WitType};

#[allow(clippy::wildcard_imports)]
use super::*;

/// The classification node ids of the project's root area and iteration.
pub(crate) const AREA_ID: u64 = 10;
pub(crate) const ITERATION_ID: u64 = 11;

pub(crate) fn field_specs(
    ado: &Ado,
    t: &WitType,
) -> Vec<(String, String, &'static str, bool, Vec<String>)> {
    let mut out: Vec<_> = t
        .fields()
        .map(|(r, n, ty, ro, allowed)| {
            (
                (*r).to_owned(),
                (*n).to_owned(),
                *ty,
                *ro,
                allowed.iter().map(|s| (*s).to_owned()).collect(),
            )
        })
        .collect();
    out.iter_mut().for_each(|f| {
        if f.0 == "System.State" {
            f.4 = t.states.iter().map(|(s, _, _)| (*s).to_owned()).collect();
        }
    });
    for (r, n, ty) in &ado.config.custom_fields {
        out.push((r.clone(), n.clone(), ty, false, Vec::new()));
    }
    out
}

pub(crate) fn field_type(ado: &Ado, name: &str) -> Option<&'static str> {
    ado.config
        .process
        .types()
        .iter()
        .flat_map(|t| t.fields().map(|f: &FieldSpec| (f.0, f.2)))
        .find(|(r, _)| r.eq_ignore_ascii_case(name))
        .map(|(_, ty)| ty)
        .or_else(|| {
            ado.config
                .custom_fields
                .iter()
                .find(|(r, _, _)| r.eq_ignore_ascii_case(name))
                .map(|(_, _, ty)| *ty)
        })
}

pub(crate) fn canonical_field(
    ado: &Ado,
    t: &WitType,
    name: &str,
) -> Option<(String, &'static str, bool, Vec<String>)> {
    // As `field_specs` finds it, without building every field's spec for one lookup.
    if let Some((r, _, ty, ro, allowed)) = t
        .fields()
        .find(|(r, n, ..)| r.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(name))
    {
        let allowed = if *r == "System.State" {
            t.states.iter().map(|(s, _, _)| (*s).to_owned()).collect()
        } else {
            allowed.iter().map(|s| (*s).to_owned()).collect()
        };
        return Some(((*r).to_owned(), *ty, *ro, allowed));
    }
    ado.config
        .custom_fields
        .iter()
        .find(|(r, n, _)| r.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(name))
        .map(|(r, _, ty)| (r.clone(), *ty, false, Vec::new()))
}

pub(crate) fn render_identity(v: &Value, api: &ApiVersion, base: &str) -> Value {
    let g = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    if !api.at_least(5, 0) {
        return Value::String(format!("{} <{}>", g("displayName"), g("uniqueName")));
    }
    let id = g("id");
    json!({
        "displayName": g("displayName"),
        "url": format!("{base}/_apis/Identities/{id}"),
        "_links": {"avatar": {"href": format!("{base}/_apis/GraphProfile/MemberAvatars/aad.{id}")}},
        "id": id,
        "uniqueName": g("uniqueName"),
        "imageUrl": format!("{base}/_apis/GraphProfile/MemberAvatars/aad.{id}"),
        "descriptor": format!("aad.{id}"),
    })
}

/// An identity that is not a field value (`revisedBy` of updates, comment authors): an
/// `IdentityReference` object in every api version; before 5.0 it also carries `name` as
/// `"Display <unique>"`, as the 4.1 recordings show.
pub(crate) fn render_identity_ref(v: &Value, api: &ApiVersion, base: &str) -> Value {
    if api.at_least(5, 0) {
        return render_identity(v, api, base);
    }
    let g = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let id = g("id");
    json!({
        "id": id,
        "name": format!("{} <{}>", g("displayName"), g("uniqueName")),
        "displayName": g("displayName"),
        "uniqueName": g("uniqueName"),
        "url": format!("{base}/_apis/Identities/{id}"),
        "imageUrl": format!("{base}/_api/_common/identityImage?id={id}"),
    })
}

pub(crate) fn render_fields(
    ado: &Ado,
    wi_fields: &BTreeMap<String, Value>,
    history: Option<&Value>,
    api: &ApiVersion,
    only: Option<&[String]>,
) -> Map<String, Value> {
    let base = ado.collection_url();
    let mut out = Map::new();
    let history = history.map(|h| ("System.History".to_owned(), h.clone()));
    for (k, v) in wi_fields.iter().chain(history.iter().map(|(k, v)| (k, v))) {
        if let Some(only) = only
            && !only.iter().any(|o| o.eq_ignore_ascii_case(k))
        {
            continue;
        }
        if v.is_null() || v.as_str() == Some("") {
            continue;
        }
        let rendered = if field_type(ado, k) == Some("identity") {
            render_identity(v, api, &base)
        } else {
            v.clone()
        };
        out.insert(k.clone(), rendered);
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expand {
    None,
    Relations,
    Fields,
    Links,
    All,
}

pub(crate) fn expand_of(p: &HashMap<String, String>) -> Expand {
    expand_named(p.get("$expand").map(String::as_str))
}

/// `$expand` by name or by the number of the `WorkItemExpand` enum (the Node client sends
/// numbers: none 0, relations 1, fields 2, links 3, all 4).
pub(crate) fn expand_named(v: Option<&str>) -> Expand {
    match v.map(str::to_ascii_lowercase).as_deref() {
        Some("relations" | "1") => Expand::Relations,
        Some("fields" | "2") => Expand::Fields,
        Some("links" | "3") => Expand::Links,
        Some("all" | "4") => Expand::All,
        _ => Expand::None,
    }
}

pub(crate) fn render_item(
    ado: &Ado,
    wi: &Wi,
    api: &ApiVersion,
    only: Option<&[String]>,
    expand: Expand,
) -> Value {
    let base = ado.collection_url();
    let history = wi
        .history_rev
        .filter(|r| *r == wi.rev)
        .and_then(|r| wi.revisions.iter().find(|x| x.rev == r))
        .and_then(|r| r.fields.get("System.History"));
    let mut v = json!({
        "id": wi.id,
        "rev": wi.rev,
        "fields": render_fields(ado, &wi.fields, history, api, only),
        "url": format!("{base}/_apis/wit/workItems/{}", wi.id),
    });
    if matches!(expand, Expand::Relations | Expand::All) && !wi.relations.is_empty() {
        v["relations"] = Value::Array(wi.relations.clone());
    }
    if only.is_none() || matches!(expand, Expand::Links | Expand::All) {
        v["_links"] = json!({
            "self": {"href": format!("{base}/_apis/wit/workItems/{}", wi.id)},
            "workItemUpdates": {"href": format!("{base}/_apis/wit/workItems/{}/updates", wi.id)},
            "workItemRevisions": {"href": format!("{base}/_apis/wit/workItems/{}/revisions", wi.id)},
            "workItemComments": {"href": format!("{base}/_apis/wit/workItems/{}/comments", wi.id)},
            "html": {"href": format!("{base}/{}/_workitems/edit/{}", ado.config.project_id, wi.id)},
            "workItemType": {"href": format!("{base}/{}/_apis/wit/workItemTypes/{}", ado.config.project_id, wi.wtype.name)},
            "fields": {"href": format!("{base}/_apis/wit/fields")},
        });
    }
    v
}

pub(crate) fn read_items(
    ado: &Ado,
    ctx: &Ctx,
    ids: &[u64],
    fields: Option<&[String]>,
    as_of: Option<DateTime<Utc>>,
    expand: Expand,
    omit: bool,
) -> Response {
    if ids.len() > 200 {
        return bad_request(&format!(
            "VS403474: You requested {} work items which exceeds the limit of 200",
            ids.len()
        ));
    }
    if fields.is_some() && !matches!(expand, Expand::None) {
        return bad_request("The expand parameter can not be used with the fields parameter.");
    }
    if let Some(f) = fields
        .into_iter()
        .flatten()
        .find(|f| field_type(ado, f).is_none())
    {
        return ado_error(
            StatusCode::BAD_REQUEST,
            "WorkItemTrackingFieldDefinitionNotFoundException",
            &format!("TF51535: Cannot find field {f}."),
        );
    }
    let st = lock(&ado.store);
    let mut value = Vec::new();
    for id in ids {
        let Some(wi) = st.items.get(id) else {
            if omit {
                value.push(Value::Null);
                continue;
            }
            return item_not_found(*id);
        };
        let wi = match as_of {
            Some(t) => {
                let Some(r) = wi.revisions.iter().rev().find(|r| {
                    r.fields
                        .get("System.ChangedDate")
                        .and_then(Value::as_str)
                        .and_then(parse_date)
                        .is_some_and(|c| c <= t)
                }) else {
                    if omit {
                        value.push(Value::Null);
                        continue;
                    }
                    return item_not_found(*id);
                };
                let mut old = wi.clone();
                old.rev = r.rev;
                old.fields = r.fields.clone();
                old.fields.remove("System.History");
                old.relations = r.relations.clone();
                old
            }
            None => wi.clone(),
        };
        value.push(render_item(ado, &wi, &ctx.v, fields, expand));
    }
    ok(&ctx.v, &json!({"count": value.len(), "value": value}))
}

pub(crate) fn parse_ids(s: &str) -> Result<Vec<u64>, String> {
    s.split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| x.trim().parse::<u64>().map_err(|_| x.to_owned()))
        .collect()
}

pub(crate) async fn list_items(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::GET);
    let ids = match parse_ids(ctx.p.get("ids").map_or("", String::as_str)) {
        Ok(ids) if !ids.is_empty() => ids,
        Ok(_) => return bad_request("The ids parameter is required."),
        Err(bad) => return bad_request(&format!("The id {bad} is not a valid work item id.")),
    };
    let fields: Option<Vec<String>> = ctx
        .p
        .get("fields")
        .map(|f| f.split(',').map(|s| s.trim().to_owned()).collect());
    let as_of = ctx.p.get("asOf").and_then(|s| parse_date(s));
    let omit = ctx
        .p
        .get("errorPolicy")
        .is_some_and(|e| e.eq_ignore_ascii_case("omit"));
    read_items(
        &ado,
        &ctx,
        &ids,
        fields.as_deref(),
        as_of,
        expand_of(&ctx.p),
        omit,
    )
}

pub(crate) fn org_project(path: &[(String, String)]) -> (String, Option<String>) {
    let get = |k: &str| path.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    (get("org").unwrap_or_default(), get("project"))
}

pub(crate) async fn get_item(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::GET);
    let Some(id) = path
        .iter()
        .find(|(k, _)| k == "id")
        .and_then(|(_, v)| v.parse::<u64>().ok())
    else {
        return bad_request("The work item id is not valid.");
    };
    let fields: Option<Vec<String>> = ctx
        .p
        .get("fields")
        .map(|f| f.split(',').map(|s| s.trim().to_owned()).collect());
    let resp = read_items(
        &ado,
        &ctx,
        &[id],
        fields.as_deref(),
        ctx.p.get("asOf").and_then(|s| parse_date(s)),
        expand_of(&ctx.p),
        false,
    );
    if resp.status() != StatusCode::OK {
        return resp;
    }
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    ok(&ctx.v, &v["value"][0])
}

pub(crate) fn patch_flags(p: &HashMap<String, String>) -> PatchFlags {
    let flag = |k: &str| p.get(k).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    PatchFlags {
        validate_only: flag("validateOnly"),
        bypass_rules: flag("bypassRules"),
    }
}

pub(crate) fn patch_body(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Value>, Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ct.starts_with("application/json-patch+json") {
        let mut r = ado_error_with(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "VssRequestContentTypeNotSupportedException",
            "Microsoft.VisualStudio.Services.WebApi",
            &format!(
                "The request indicated a Content-Type of \"{ct}\" for method type \"PATCH\" which is not supported. Valid content types for this method are: application/json-patch+json."
            ),
            3000,
            None,
        );
        *r.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return Err(r);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(a)) => Ok(a),
        _ => Err(bad_request(
            "You must pass a valid patch document in the body of the request.",
        )),
    }
}

pub(crate) async fn create_item(
    State(ado): State<Arc<Ado>>,
    Path((org, project, wtype)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = pre!(ado, org, Some(project.as_str()), raw, headers, Method::POST);
    create_inner(&ado, &ctx, &wtype, &headers, &body)
}

pub(crate) fn create_inner(
    ado: &Ado,
    ctx: &Ctx,
    wtype: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let Some(name) = wtype.strip_prefix('$') else {
        return ado_error_with(
            StatusCode::NOT_FOUND,
            "VssResourceNotFoundException",
            "Microsoft.VisualStudio.Services.WebApi",
            "The work item type must be given as $Type.",
            3000,
            None,
        );
    };
    let Some(t) = ado.wit_type(name) else {
        return ado_error(
            StatusCode::NOT_FOUND,
            "WorkItemTypeNotFoundException",
            &format!("TF401326: Invalid work item type {name}."),
        );
    };
    let ops = or_answer!(patch_body(headers, body));
    let flags = patch_flags(&ctx.p);
    let me = ado.config.me.clone();
    let mut st = lock(&ado.store);
    match apply(ado, &mut st, t, None, &ops, flags, &me) {
        Ok(_) if flags.validate_only => ok(&ctx.v, &json!({"id": 0, "rev": 0, "fields": {}})),
        Ok(id) => ok(
            &ctx.v,
            &render_item(ado, &st.items[&id], &ctx.v, None, expand_of(&ctx.p)),
        ),
        Err(e) => e.response(None),
    }
}

pub(crate) async fn update_item(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::PATCH);
    let raw_id = path
        .iter()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    if raw_id.starts_with('$') && project.is_some() {
        // `$batch` creates with PATCH on workitems/$Type.
        return create_inner(&ado, &ctx, &raw_id, &headers, &body);
    }
    let Ok(id) = raw_id.parse::<u64>() else {
        return bad_request("The work item id is not valid.");
    };
    let ops = or_answer!(patch_body(&headers, &body));
    let flags = patch_flags(&ctx.p);
    let me = ado.config.me.clone();
    let mut st = lock(&ado.store);
    let Some(t) = st.items.get(&id).map(|w| w.wtype) else {
        return item_not_found(id);
    };
    match apply(&ado, &mut st, t, Some(id), &ops, flags, &me) {
        Ok(_) => ok(
            &ctx.v,
            &render_item(&ado, &st.items[&id], &ctx.v, None, expand_of(&ctx.p)),
        ),
        Err(e) => e.response(Some(id)),
    }
}

pub(crate) async fn delete_item(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::DELETE);
    let Some(id) = path
        .iter()
        .find(|(k, _)| k == "id")
        .and_then(|(_, v)| v.parse::<u64>().ok())
    else {
        return bad_request("The work item id is not valid.");
    };
    let mut st = lock(&ado.store);
    let Some(wi) = st.remove(id) else {
        return item_not_found(id);
    };
    let base = ado.collection_url();
    let mut v1 = ctx.v.clone();
    v1.major = 4;
    ok(
        &ctx.v,
        &json!({
            "id": id, "type": wi.wtype.name,
            "name": wi.fields.get("System.Title").cloned().unwrap_or(Value::Null),
            "project": ado.config.project,
            "deletedDate": ado.now().format("%-m/%-d/%Y %-I:%M:%S %p").to_string(),
            "deletedBy": format!("{} <{}>", ado.config.me.display, ado.config.me.unique),
            "code": 200,
            "url": format!("{base}/_apis/wit/recyclebin/{id}"),
            "resource": render_item(&ado, &wi, &v1, None, Expand::None),
        }),
    )
}

pub(crate) fn find_item(ado: &Ado, path: &[(String, String)]) -> Result<(u64, Wi), Response> {
    let id = path
        .iter()
        .find(|(k, _)| k == "id")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .ok_or_else(|| bad_request("The work item id is not valid."))?;
    lock(&ado.store)
        .items
        .get(&id)
        .cloned()
        .map(|w| (id, w))
        .ok_or_else(|| item_not_found(id))
}
