//! What the server says about itself and the project: its time, domains and projects,
//! customization entities and fields, used lists and users.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::data::FieldSpec;

#[allow(clippy::wildcard_imports)]
use super::*;

pub(crate) async fn server_time(
    State(alm): State<Arc<Alm>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let now = alm.control.clock.now();
    let local = alm.local_now();
    match wants(&headers, raw.as_deref()) {
        Fmt::Json => typed(
            StatusCode::OK,
            json!({"ServerTime": {"TimeInMillis": now.timestamp_millis(), "DateTime": local}})
                .to_string(),
            "application/json",
        ),
        _ => typed(
            StatusCode::OK,
            format!(
                "<ServerTime><TimeInMillis>{}</TimeInMillis><DateTime>{local}</DateTime></ServerTime>",
                now.timestamp_millis()
            ),
            "application/xml",
        ),
    }
}

pub(crate) async fn customization_fields(
    State(alm): State<Arc<Alm>>,
    Path((domain, project, entity)): Proj,
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
    let Some((_, specs)) = data::collection_of(&entity).and_then(data::entity_type) else {
        return qc_error(
            call.fmt,
            StatusCode::NOT_FOUND,
            "qccore.entity-not-found",
            &format!("Unknown entity type {entity}"),
        );
    };
    let required: Option<bool> = call.params.get("required").map(|v| v == "true");
    let fields: Vec<&FieldSpec> = specs
        .iter()
        .filter(|f| required.is_none_or(|r| f.3 == r))
        .collect();
    let list_id = |l: Option<&str>| {
        l.and_then(|n| data::LISTS.iter().find(|(x, ..)| *x == n))
            .map(|(_, id, ..)| *id)
    };
    match call.fmt {
        Fmt::Json => {
            let v: Vec<Value> = fields
                .iter()
                .map(|(n, label, ty, req, editable, list, history)| {
                    let mut f = json!({
                        "name": n, "label": label, "physicalName": format!("X_{}", n.to_uppercase().replace('-', "_")), "type": ty,
                        "size": if *ty == "Memo" { -1 } else { 255 }, "required": req, "editable": editable, "system": !n.starts_with("user-"),
                        "active": true, "filterable": true, "history": history, "supportsMultivalue": false, "visible": true,
                    });
                    if let Some(id) = list_id(*list) {
                        f["listId"] = json!(id);
                    }
                    f
                })
                .collect();
            typed(
                StatusCode::OK,
                json!({"Fields": {"Field": v}}).to_string(),
                "application/json",
            )
        }
        _ => {
            let mut s = String::from("<Fields>");
            for (n, label, ty, req, editable, list, history) in fields {
                s.push_str(&format!("<Field PhysicalName=\"X_{}\" Name=\"{n}\" Label=\"{}\"><Size>{}</Size><Type>{ty}</Type>", n.to_uppercase().replace('-', "_"), xml_escape(label), if *ty == "Memo" { -1 } else { 255 }));
                if let Some(id) = list_id(*list) {
                    s.push_str(&format!("<List-Id>{id}</List-Id>"));
                }
                s.push_str(&format!("<Required>{req}</Required><Editable>{editable}</Editable><History>{history}</History></Field>"));
            }
            s.push_str("</Fields>");
            typed(StatusCode::OK, s, "application/xml")
        }
    }
}

pub(crate) async fn used_lists(
    State(alm): State<Arc<Alm>>,
    Path((domain, project)): Path<(String, String)>,
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
    let lists: Vec<_> = data::LISTS
        .iter()
        .filter(|(n, id, ..)| {
            call.params.get("name").is_none_or(|x| x == n)
                && call.params.get("id").is_none_or(|x| *x == id.to_string())
        })
        .collect();
    match call.fmt {
        Fmt::Json => typed(
            StatusCode::OK,
            json!({"lists": lists.iter().map(|(n, id, logical, items)| json!({"Name": n, "Id": id, "LogicalName": logical, "Items": items.iter().map(|i| json!({"logicalName": format!("{logical}.{}", i.to_lowercase().replace(' ', "-")), "value": i})).collect::<Vec<_>>()})).collect::<Vec<_>>()}).to_string(),
            "application/json",
        ),
        _ => {
            let mut s = String::from("<Lists>");
            for (n, id, logical, items) in lists {
                s.push_str(&format!("<List><Name>{}</Name><Id>{id}</Id><LogicalName>{logical}</LogicalName><Items>", xml_escape(n)));
                for i in *items {
                    s.push_str(&format!("<Item value=\"{}\"/>", xml_escape(i)));
                }
                s.push_str("</Items></List>");
            }
            s.push_str("</Lists>");
            typed(StatusCode::OK, s, "application/xml")
        }
    }
}

pub(crate) async fn users(
    State(alm): State<Arc<Alm>>,
    Path((domain, project)): Path<(String, String)>,
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
    let list: Vec<Value> = alm.config.users.iter().map(|(n, _, full)| json!({"Name": n, "FullName": full, "email": format!("{n}@example.com")})).collect();
    match call.fmt {
        Fmt::Json => typed(
            StatusCode::OK,
            json!({"users": list}).to_string(),
            "application/json",
        ),
        _ => typed(
            StatusCode::OK,
            format!(
                "<Users>{}</Users>",
                alm.config
                    .users
                    .iter()
                    .map(|(n, _, f)| format!(
                        "<User Name=\"{n}\" FullName=\"{}\"><email>{n}@example.com</email></User>",
                        xml_escape(f)
                    ))
                    .collect::<String>()
            ),
            "application/xml",
        ),
    }
}

/// `GET /qcbin/rest/domains[?include-projects-info=y]` and
/// `GET /qcbin/rest/domains/{domain}/projects`: the domains and projects the user may open.
pub(crate) async fn domains(
    State(alm): State<Arc<Alm>>,
    path: Path<Vec<(String, String)>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let host = host_of(&headers);
    let fmt = wants(&headers, raw.as_deref());
    {
        let mut st = lock(&alm.st);
        if let Err(r) = session_of(&alm, &mut st, &headers, raw.as_deref(), &method, &host) {
            return r;
        }
    }
    let domain = &alm.config.domain;
    let project = &alm.config.project;
    let asked = path
        .iter()
        .find(|(k, _)| k == "domain")
        .map(|(_, v)| v.clone());
    let with_projects = raw
        .as_deref()
        .is_some_and(|q| q.contains("include-projects-info=y"));
    if let Some(d) = &asked
        && !d.eq_ignore_ascii_case(domain)
    {
        return qc_error(
            fmt,
            StatusCode::NOT_FOUND,
            "qccore.entity-not-found",
            &format!("Domain '{d}' does not exist"),
        );
    }
    let (body, ct) = match (fmt, asked.is_some()) {
        (Fmt::Json, true) => (
            json!({"Projects": {"Project": [{"Name": project}]}}).to_string(),
            "application/json",
        ),
        (Fmt::Json, false) => {
            let mut d = json!({"Name": domain});
            if with_projects {
                d["Projects"] = json!({"Project": [{"Name": project}]});
            }
            (
                json!({"Domains": {"Domain": [d]}}).to_string(),
                "application/json",
            )
        }
        (_, true) => (
            format!(
                "<Projects><Project Name=\"{}\"/></Projects>",
                xml_escape(project)
            ),
            "application/xml",
        ),
        (_, false) => {
            let inner = if with_projects {
                format!(
                    "<Projects><Project Name=\"{}\"/></Projects>",
                    xml_escape(project)
                )
            } else {
                String::new()
            };
            (
                format!(
                    "<Domains><Domain Name=\"{}\">{inner}</Domain></Domains>",
                    xml_escape(domain)
                ),
                "application/xml",
            )
        }
    };
    typed(StatusCode::OK, body, ct)
}

/// `GET …/customization/entities`: the entity types the project has.
pub(crate) async fn customization_entities(
    State(alm): State<Arc<Alm>>,
    Path((domain, project)): Path<(String, String)>,
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
    let names = ["defect", "requirement", "test"];
    match call.fmt {
        Fmt::Json => typed(
            StatusCode::OK,
            json!({"Types": {"Type": names.iter().map(|n| json!({"Name": n})).collect::<Vec<_>>()}}).to_string(),
            "application/json",
        ),
        _ => typed(
            StatusCode::OK,
            format!(
                "<Types>{}</Types>",
                names.iter().map(|n| format!("<Type Name=\"{n}\"/>")).collect::<String>()
            ),
            "application/xml",
        ),
    }
}
