//! An entity's history: audits, and the versions of version-controlled entities
//! (check-out, check-in, undo).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[allow(clippy::wildcard_imports)]
use super::*;

pub(crate) async fn versions(
    State(alm): State<Arc<Alm>>,
    Path((domain, project, coll, id, action)): Path<(String, String, String, u64, String)>,
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
    if !alm.config.version_control || coll == "defects" {
        return qc_error(
            call.fmt,
            StatusCode::FORBIDDEN,
            "qccore.operation-forbidden",
            "The entity is not version-controlled",
        );
    }
    let key = (coll, id);
    let holder = st.checked_out.get(&key).cloned();
    match action.as_str() {
        "check-out" => match holder {
            Some(h) if h != call.session => qc_error(
                call.fmt,
                StatusCode::FORBIDDEN,
                "qccore.check-out-failure",
                "The entity is checked out by another user",
            ),
            _ => {
                st.checked_out.insert(key, call.session);
                StatusCode::OK.into_response()
            }
        },
        "check-in" | "undo-check-out" => {
            if holder.as_deref() != Some(call.session.as_str()) {
                let id = if action == "check-in" {
                    "qccore.check-in-failure"
                } else {
                    "qccore.undo-check-out-failure"
                };
                return qc_error(
                    call.fmt,
                    StatusCode::FORBIDDEN,
                    id,
                    "The entity is not checked out by you",
                );
            }
            st.checked_out.remove(&key);
            StatusCode::OK.into_response()
        }
        _ => qc_error(
            call.fmt,
            StatusCode::NOT_FOUND,
            "qccore.general-error",
            "Unknown version operation",
        ),
    }
}

pub(crate) async fn audits(
    State(alm): State<Arc<Alm>>,
    Path((domain, project, coll, id)): ProjId,
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
    let kind = data::entity_type(&coll).map_or("", |t| t.0);
    let list: Vec<&Audit> = st
        .audits
        .iter()
        .filter(|a| a.parent_type == kind && a.parent == id)
        .collect();
    match call.fmt {
        Fmt::Json => {
            let audit_json = |a: &Audit| {
                let props: Vec<Value> = a.props.iter().map(|(n, l, o, nv)| json!({"Name": n, "Label": l, "OldValue": o, "NewValue": nv})).collect();
                // JSON collapses single-element arrays to objects, as the real server does.
                let props = if props.len() == 1 {
                    props[0].clone()
                } else {
                    Value::Array(props)
                };
                json!({"Id": a.id, "Action": "UPDATE", "ParentId": a.parent, "ParentType": a.parent_type, "Time": a.time, "User": a.user, "Properties": {"Property": props}})
            };
            let audits: Vec<Value> = list.iter().map(|a| audit_json(a)).collect();
            let audits = if audits.len() == 1 {
                audits[0].clone()
            } else {
                Value::Array(audits)
            };
            typed(
                StatusCode::OK,
                json!({"Audits": {"Audit": audits, "TotalResults": list.len()}}).to_string(),
                "application/json",
            )
        }
        _ => {
            let mut s = format!("<Audits TotalResults=\"{}\">", list.len());
            for a in list {
                s.push_str(&format!("<Audit><Id>{}</Id><Action>UPDATE</Action><ParentId>{}</ParentId><ParentType>{}</ParentType><Time>{}</Time><User>{}</User><Properties>", a.id, a.parent, a.parent_type, a.time, xml_escape(&a.user)));
                for (n, l, o, nv) in &a.props {
                    s.push_str(&format!("<Property Label=\"{}\" Name=\"{n}\"><NewValue>{}</NewValue><OldValue>{}</OldValue></Property>", xml_escape(l), xml_escape(nv), xml_escape(o)));
                }
                s.push_str("</Properties></Audit>");
            }
            s.push_str("</Audits>");
            typed(StatusCode::OK, s, "application/xml")
        }
    }
}
