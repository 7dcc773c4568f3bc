//! What the server says about itself and its process: locations, resource areas, work item
//! types, their states and fields, and the field catalogue.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::data::WitType;

#[allow(clippy::wildcard_imports)]
use super::*;

pub(crate) const LOCATIONS: [(&str, &str, &str, &str, u32, &str); 14] = [
    (
        "19335ae7-22f7-4308-93d8-261f9384b7cf",
        "comments",
        "{project}/_apis/{area}/workItems/{id}/{resource}/{revision}",
        "4.1",
        2,
        "wit",
    ),
    (
        "e81700f7-3be2-46de-8624-2eb35882fcaa",
        "ResourceAreas",
        "_apis/{resource}/{areaId}",
        "3.2",
        1,
        "Location",
    ),
    (
        "bd293ce5-3d25-4192-8e67-e8092e879efb",
        "workItemTypesField",
        "{project}/_apis/{area}/workItemTypes/{type}/fields/{field}",
        "4.1",
        3,
        "wit",
    ),
    (
        "72c7ddf8-2cdc-4f60-90cd-ab71c14a399b",
        "workItems",
        "{project}/_apis/{area}/{resource}/{id}",
        "1.0",
        3,
        "wit",
    ),
    (
        "62d3d110-0047-428c-ad3c-4fe872c91c74",
        "workItems",
        "{project}/_apis/{area}/{resource}/${type}",
        "1.0",
        3,
        "wit",
    ),
    (
        "908509b6-4248-4475-a1cd-829139ba419f",
        "workItemsBatch",
        "{project}/_apis/{area}/{resource}",
        "5.0",
        1,
        "wit",
    ),
    (
        "1a9c53f7-f243-4447-b110-35ef023636e4",
        "wiql",
        "{project}/{team}/_apis/{area}/{resource}",
        "1.0",
        2,
        "wit",
    ),
    (
        "608aac0a-32e1-4493-a863-b9cf4566d257",
        "comments",
        "{project}/_apis/{area}/workItems/{workItemId}/{resource}/{commentId}",
        "5.1",
        4,
        "wit",
    ),
    (
        "e07b5fa4-1499-494d-a496-64b860fd64ff",
        "attachments",
        "{project}/_apis/{area}/{resource}/{id}",
        "1.0",
        3,
        "wit",
    ),
    (
        "6570bf97-d02c-4a91-8d93-3abe9895b1a9",
        "updates",
        "{project}/_apis/{area}/workItems/{id}/{resource}/{updateNumber}",
        "1.0",
        3,
        "wit",
    ),
    (
        "a00c85a5-80fa-4565-99c3-bcd2181434bb",
        "revisions",
        "{project}/_apis/{area}/workItems/{id}/{resource}/{revisionNumber}",
        "1.0",
        3,
        "wit",
    ),
    (
        "7c8d7a76-4a09-43e8-b5df-bd792f4ac6aa",
        "workItemTypes",
        "{project}/_apis/{area}/{resource}/{type}",
        "1.0",
        2,
        "wit",
    ),
    (
        "7c9d7a76-4a09-43e8-b5df-bd792f4ac6aa",
        "workItemTypeStates",
        "{project}/_apis/{area}/workitemtypes/{type}/states",
        "4.1",
        1,
        "wit",
    ),
    (
        "b51fd764-e5c2-4b9b-aaf7-3395cf4bdd94",
        "fields",
        "{project}/_apis/{area}/{resource}/{fieldNameOrRefName}",
        "1.0",
        2,
        "wit",
    ),
];

/// `OPTIONS {org}/_apis[/{area}]` and `OPTIONS /_apis`: the resource locations the simulator
/// serves, all of them or one area's (the Node client asks per area, e.g. `_apis/Location`,
/// `_apis/wit`). Route templates are the real servers'.
pub(crate) async fn locations(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
) -> Response {
    let (org, _) = org_project(&path);
    let area = path
        .iter()
        .find(|(k, _)| k == "area")
        .map(|(_, v)| v.to_ascii_lowercase());
    if !org.is_empty() && !org.eq_ignore_ascii_case(&ado.config.organization) {
        let uri = format!("/{org}/_apis").parse().unwrap_or_default();
        return unknown_route(Method::OPTIONS, uri).await;
    }
    let (ma, mi) = ado.config.server.max_api();
    let max = format!("{ma}.{mi}");
    let value: Vec<Value> = LOCATIONS
        .iter()
        .filter(|(_, _, _, min, _, _)| {
            let (a, b) = min.split_once('.').map_or((0, 0), |(a, b)| {
                (a.parse().unwrap_or(0), b.parse().unwrap_or(0))
            });
            (a, b) <= (ma, mi)
        })
        .filter(|(_, _, _, _, _, a)| area.as_ref().is_none_or(|x| x.eq_ignore_ascii_case(a)))
        .map(|(id, resource, route, min, rv, area)| {
            json!({"id": id, "area": area, "resourceName": resource, "routeTemplate": route, "resourceVersion": rv, "minVersion": min, "maxVersion": max, "releasedVersion": max})
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"count": value.len(), "value": value}),
        None,
    )
}

/// The WIT resource area (`5264459e-…`).
pub(crate) const WIT_AREA: &str = "5264459e-e5e0-4bd8-b118-0985e68a4ec5";

/// `GET {org}/_apis/resourceAreas[/{areaId}]`: Services names the WIT area's URL; on-premises
/// servers answer an empty collection (clients then use the collection URL), as the
/// Microsoft clients expect.
pub(crate) async fn resource_areas(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
) -> Response {
    let url = ado.collection_url();
    let wanted = path
        .iter()
        .find(|(k, _)| k == "aid")
        .map(|(_, v)| v.to_ascii_lowercase());
    let area = json!({"id": WIT_AREA, "name": "wit", "locationUrl": url});
    if let Some(aid) = wanted {
        return if aid == WIT_AREA {
            json_response(StatusCode::OK, &area, None)
        } else {
            ado_error(
                StatusCode::NOT_FOUND,
                "ResourceAreaNotFoundException",
                &format!("The resource area {aid} was not found."),
            )
        };
    }
    let value: Vec<Value> = if ado.config.server == super::ServerVersion::Services {
        vec![area]
    } else {
        Vec::new()
    };
    json_response(
        StatusCode::OK,
        &json!({"count": value.len(), "value": value}),
        None,
    )
}

pub(crate) fn type_json(ado: &Ado, t: &WitType, v: &ApiVersion) -> Value {
    let base = ado.collection_url();
    let fields: Vec<Value> = field_specs(ado, t)
        .iter()
        .map(|(r, n, _, _, _)| {
            json!({"referenceName": r, "name": n, "alwaysRequired": t.always_required(r), "url": format!("{base}/_apis/wit/fields/{r}")})
        })
        .collect();
    let mut transitions = Map::new();
    transitions.insert(
        String::new(),
        json!([{"to": t.initial_state(), "actions": null}]),
    );
    for (s, _, _) in t.states {
        let to: Vec<Value> = t
            .transitions
            .iter()
            .filter(|(f, _, _)| f == s)
            .map(|(_, to, _)| json!({"to": to, "actions": null}))
            .collect();
        transitions.insert((*s).to_owned(), Value::Array(to));
    }
    let mut ty = json!({
        "name": t.name, "referenceName": t.reference, "description": "", "color": t.color,
        "icon": {"id": "icon_insect", "url": format!("{base}/_apis/wit/workItemIcons/icon_insect")},
        "isDisabled": false,
        "fields": fields, "fieldInstances": fields,
        "transitions": transitions,
        "url": format!("{base}/{}/_apis/wit/workItemTypes/{}", ado.config.project_id, t.name),
    });
    // A type lists its states from api 5.0 on.
    if v.at_least(5, 0) {
        ty["states"] = json!(
            t.states
                .iter()
                .map(|(n, c, cat)| json!({"name": n, "color": c, "category": cat}))
                .collect::<Vec<_>>()
        );
    }
    ty
}

pub(crate) async fn types(
    State(ado): State<Arc<Ado>>,
    Path((org, project)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let ctx = pre!(ado, org, Some(project.as_str()), raw, headers, Method::GET);
    let value: Vec<Value> = ado
        .config
        .process
        .types()
        .iter()
        .map(|t| type_json(&ado, t, &ctx.v))
        .collect();
    ok(&ctx.v, &json!({"count": value.len(), "value": value}))
}

pub(crate) fn type_or_404(ado: &Ado, name: &str) -> Result<&'static WitType, Response> {
    ado.wit_type(name).ok_or_else(|| {
        ado_error(
            StatusCode::NOT_FOUND,
            "WorkItemTypeNotFoundException",
            &format!("TF401326: Invalid work item type {name}."),
        )
    })
}

pub(crate) async fn one_type(
    State(ado): State<Arc<Ado>>,
    Path((org, project, wtype)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let ctx = pre!(ado, org, Some(project.as_str()), raw, headers, Method::GET);
    match type_or_404(&ado, &wtype) {
        Ok(t) => ok(&ctx.v, &type_json(&ado, t, &ctx.v)),
        Err(r) => r,
    }
}

pub(crate) async fn states(
    State(ado): State<Arc<Ado>>,
    Path((org, project, wtype)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let ctx = pre!(ado, org, Some(project.as_str()), raw, headers, Method::GET);
    let t = or_answer!(type_or_404(&ado, &wtype));
    let value: Vec<Value> = t
        .states
        .iter()
        .map(|(n, c, cat)| json!({"name": n, "color": c, "category": cat}))
        .collect();
    ok(&ctx.v, &json!({"count": value.len(), "value": value}))
}

/// A field as the organization's field list shows it. Real servers report identity fields as
/// `"type": "string"` with `"isIdentity": true`, and tree paths as read-only (they are written
/// by path all the same), as Microsoft's recorded responses for 4.1 and 7.1 show.
/// `isQueryable` and `canSortBy` arrived with api 5.0.
pub(crate) fn field_json(
    ado: &Ado,
    v: &ApiVersion,
    (r, n, ty, ro, allowed): (&str, &str, &str, bool, &[String]),
) -> Value {
    let base = ado.collection_url();
    let identity = ty == "identity";
    let mut f = json!({
        "name": n, "referenceName": r, "type": if identity { "string" } else { ty },
        "readOnly": ro || ty == "treePath", "usage": "workItem",
        "isIdentity": identity, "isPicklist": !allowed.is_empty() && !identity,
        "isPicklistSuggested": false,
        "url": format!("{base}/_apis/wit/fields/{r}"),
    });
    if v.at_least(5, 0) {
        f["isQueryable"] = json!(true);
        f["canSortBy"] = json!(true);
    }
    f
}

pub(crate) async fn type_fields(
    State(ado): State<Arc<Ado>>,
    Path((org, project, wtype)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let ctx = pre!(ado, org, Some(project.as_str()), raw, headers, Method::GET);
    let t = or_answer!(type_or_404(&ado, &wtype));
    let expand = ctx
        .p
        .get("$expand")
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    let with_allowed = matches!(expand.as_str(), "allowedvalues" | "all" | "1" | "3");
    let base = ado.collection_url();
    let value: Vec<Value> = field_specs(&ado, t)
        .iter()
        .map(|(r, n, _, _, allowed)| {
            let mut f = json!({
                "alwaysRequired": t.always_required(r),
                "defaultValue": t.default_value(r),
                "referenceName": r, "name": n,
                "url": format!("{base}/_apis/wit/fields/{r}"),
            });
            if with_allowed {
                f["allowedValues"] = json!(allowed);
            }
            f
        })
        .collect();
    ok(&ctx.v, &json!({"count": value.len(), "value": value}))
}

pub(crate) async fn fields(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::GET);
    let one = path
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.to_ascii_lowercase());
    let mut seen = HashSet::new();
    let mut value = Vec::new();
    for t in ado.config.process.types() {
        for (r, n, ty, ro, a) in field_specs(&ado, t) {
            let wanted = one
                .as_ref()
                .is_none_or(|o| *o == r.to_ascii_lowercase() || *o == n.to_ascii_lowercase());
            if wanted && seen.insert(r.clone()) {
                value.push(field_json(&ado, &ctx.v, (&r, &n, ty, ro, &a)));
            }
        }
    }
    if let Some(name) = one {
        return match value.into_iter().next() {
            Some(f) => ok(&ctx.v, &f),
            None => ado_error(
                StatusCode::NOT_FOUND,
                "WorkItemTrackingFieldDefinitionNotFoundException",
                &format!("TF51535: Cannot find field {name}."),
            ),
        };
    }
    ok(&ctx.v, &json!({"count": value.len(), "value": value}))
}
