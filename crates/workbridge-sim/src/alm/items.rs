//! Entities: their JSON and XML forms, the write rules (required fields, lists, workflow,
//! locks, check-out) and the collection and entity routes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDateTime;
use serde_json::{Value, json};

use super::data::FieldSpec;

#[allow(clippy::wildcard_imports)]
use super::*;

pub(crate) fn entity_json(kind: &str, e: &Entity, only: Option<&[String]>) -> Value {
    let fields: Vec<Value> = e
        .fields
        .iter()
        .filter(|(k, _)| only.is_none_or(|o| o.iter().any(|f| f == *k) || *k == "id"))
        .map(|(k, v)| {
            let values: Vec<Value> = match v {
                None => Vec::new(),
                Some(vals) => vals
                    .iter()
                    .map(|x| {
                        if x.is_empty() {
                            json!({})
                        } else {
                            json!({"value": x})
                        }
                    })
                    .collect(),
            };
            json!({"Name": k, "values": values})
        })
        .collect();
    json!({"Fields": fields, "Type": kind, "children-count": 0})
}

pub(crate) fn entity_xml(kind: &str, e: &Entity, only: Option<&[String]>) -> String {
    let mut s =
        format!("<Entity Type=\"{kind}\"><ChildrenCount><Value>0</Value></ChildrenCount><Fields>");
    for (k, v) in e
        .fields
        .iter()
        .filter(|(k, _)| only.is_none_or(|o| o.iter().any(|f| f == *k) || *k == "id"))
    {
        match v {
            None => s.push_str(&format!("<Field Name=\"{k}\"/>")),
            Some(vals) => {
                s.push_str(&format!("<Field Name=\"{k}\">"));
                for x in vals {
                    s.push_str(&format!("<Value>{}</Value>", xml_escape(x)));
                }
                s.push_str("</Field>");
            }
        }
    }
    s.push_str("</Fields><RelatedEntities/></Entity>");
    s
}

pub(crate) fn render_one(fmt: Fmt, status: StatusCode, kind: &str, e: &Entity) -> Response {
    match fmt {
        Fmt::Json => typed(
            status,
            entity_json(kind, e, None).to_string(),
            "application/json",
        ),
        _ => typed(
            status,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>{}",
                entity_xml(kind, e, None)
            ),
            "application/xml",
        ),
    }
}

/// Reads an entity body (JSON or XML) into (field, values) pairs.
pub(crate) fn parse_entity(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, Stored)>, String> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if ct.contains("json") {
        let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        return json_fields(v.get("entity").unwrap_or(&v));
    }
    if ct.contains("xml") {
        let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
        return xml_fields(text);
    }
    Err(format!("unsupported Content-Type {ct}"))
}

/// A JSON entity's (field, values) pairs.
fn json_fields(v: &Value) -> Result<Vec<(String, Stored)>, String> {
    let fields = v
        .get("Fields")
        .and_then(Value::as_array)
        .ok_or("the entity has no Fields")?;
    fields
        .iter()
        .map(|f| {
            let name = f
                .get("Name")
                .and_then(Value::as_str)
                .ok_or("a field without Name")?
                .to_owned();
            let values: Vec<String> = f
                .get("values")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|x| {
                            x.get("value")
                                .map(|v| {
                                    v.as_str().map_or_else(|| v.to_string(), ToOwned::to_owned)
                                })
                                .unwrap_or_default()
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok((
                name,
                if values.is_empty() {
                    None
                } else {
                    Some(values)
                },
            ))
        })
        .collect()
}

/// An XML entity's (field, values) pairs: every `Field` in `text`.
fn xml_fields(text: &str) -> Result<Vec<(String, Stored)>, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut out: Vec<(String, Stored)> = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    let mut in_value = false;
    let mut value = String::new();
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) | Event::Empty(e) if e.name().0 == "Field" => {
                let name = e
                    .try_get_attribute("Name")
                    .map_err(|x| x.to_string())?
                    .and_then(|a| {
                        a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .ok()
                            .map(|v| v.into_owned())
                    })
                    .ok_or("a Field without Name")?;
                if let Some((n, v)) = current.take() {
                    out.push((n, if v.is_empty() { None } else { Some(v) }));
                }
                current = Some((name, Vec::new()));
            }
            Event::Start(e) if e.name().0 == "Value" => {
                in_value = true;
                value.clear();
            }
            Event::Empty(e) if e.name().0 == "Value" => {
                if let Some((_, v)) = current.as_mut() {
                    v.push(String::new());
                }
            }
            Event::Text(t) if in_value => {
                value.push_str(&t.into_inner());
            }
            Event::GeneralRef(r) if in_value => {
                match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => value.push(c),
                    None => match r.into_inner().as_ref() {
                        "lt" => value.push('<'),
                        "gt" => value.push('>'),
                        "amp" => value.push('&'),
                        "quot" => value.push('"'),
                        "apos" => value.push('\''),
                        other => value.push_str(&format!("&{other};")),
                    },
                }
            }
            Event::End(e) if e.name().0 == "Value" => {
                in_value = false;
                if let Some((_, v)) = current.as_mut() {
                    v.push(std::mem::take(&mut value));
                }
            }
            Event::End(e) if e.name().0 == "Field" => {
                if let Some((n, v)) = current.take() {
                    out.push((n, if v.is_empty() { None } else { Some(v) }));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some((n, v)) = current.take() {
        out.push((n, if v.is_empty() { None } else { Some(v) }));
    }
    Ok(out)
}

/// The most entities one bulk request may carry (the site parameter `REST_API_MAX_BULK_SIZE`,
/// 2,000 by default).
pub(crate) const MAX_BULK_SIZE: usize = 2000;

/// Whether the body is a collection of entities (`Content-Type: …;type=collection`): a bulk
/// write.
fn is_collection_body(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.replace(' ', "").contains(";type=collection"))
}

/// Reads a collection body (JSON `{"entities": [...]}` as a collection GET answers, or XML
/// `<Entities><Entity>…</Entity>…</Entities>`) into each entity's fields.
pub(crate) fn parse_entities(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<Vec<(String, Stored)>>, String> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if ct.contains("json") {
        let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let list = v
            .get("entities")
            .or_else(|| v.get("Entities"))
            .and_then(Value::as_array)
            .ok_or("the collection has no entities array")?;
        return list.iter().map(json_fields).collect();
    }
    if ct.contains("xml") {
        let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("<Entity ").or_else(|| rest.find("<Entity>")) {
            let tail = &rest[start..];
            let end = tail
                .find("</Entity>")
                .ok_or("an Entity element without its end")?
                + "</Entity>".len();
            out.push(xml_fields(&tail[..end])?);
            rest = &tail[end..];
        }
        return Ok(out);
    }
    Err(format!("unsupported Content-Type {ct}"))
}

/// A bulk create (`POST`) or update (`PUT`, each entity naming its `id`): every entity is
/// written on its own, under the same rules as one at a time (a lock another session holds
/// fails that entity); all written → 200 and the collection, some → 409, none → 500, both
/// with a `BulkEntry` per entity, in the order sent.
#[allow(clippy::too_many_arguments)]
fn bulk_write(
    alm: &Alm,
    st: &mut State_,
    call: &Call,
    coll: &str,
    kind: &str,
    update: bool,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let entities = match parse_entities(headers, body) {
        Ok(e) => e,
        Err(m) => {
            return qc_error(
                call.fmt,
                StatusCode::BAD_REQUEST,
                "qccore.general-error",
                &format!("Failed to read the entities: {m}"),
            );
        }
    };
    if entities.len() > MAX_BULK_SIZE {
        return qc_error(
            call.fmt,
            StatusCode::BAD_REQUEST,
            "qccore.general-error",
            &format!(
                "The bulk operation holds {} entities; REST_API_MAX_BULK_SIZE is {MAX_BULK_SIZE}",
                entities.len()
            ),
        );
    }
    let results: Vec<Result<u64, QcErr>> = entities
        .into_iter()
        .map(|mut fields| {
            let id = if update {
                let pos = fields.iter().position(|(n, _)| n == "id");
                let id = pos
                    .map(|p| fields.remove(p).1)
                    .and_then(|v| v.and_then(|v| v.first().and_then(|x| x.parse::<u64>().ok())))
                    .ok_or((
                        StatusCode::BAD_REQUEST,
                        "qccore.general-error",
                        "Failed to update entity: the entity has no id".to_owned(),
                    ))?;
                Some(id)
            } else {
                None
            };
            write_entity(alm, st, coll, id, fields, &call.user, Some(&call.session))
        })
        .collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let entity = |id: &u64| &st.entities[coll][id];
    if ok == results.len() {
        return match call.fmt {
            Fmt::Json => typed(
                StatusCode::OK,
                json!({"entities": results.iter().flatten().map(|id| entity_json(kind, entity(id), None)).collect::<Vec<_>>(), "TotalResults": ok}).to_string(),
                "application/json",
            ),
            _ => {
                let mut s = format!("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><Entities TotalResults=\"{ok}\">");
                for id in results.iter().flatten() {
                    s.push_str(&entity_xml(kind, entity(id), None));
                }
                s.push_str("</Entities>");
                typed(StatusCode::OK, s, "application/xml")
            }
        };
    }
    let status = if ok == 0 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::CONFLICT
    };
    let title = format!(
        "{} of {} operations failed",
        results.len() - ok,
        results.len()
    );
    match call.fmt {
        Fmt::Json => {
            let entries: Vec<Value> = results
                .iter()
                .map(|r| match r {
                    Ok(id) => json!({"Succeeded": true, "EntityId": id, "EntityType": kind, "Entity": entity_json(kind, entity(id), None)}),
                    Err((_, eid, t)) => json!({"Succeeded": false, "EntityType": kind, "Exception": {"Id": eid, "Title": t}}),
                })
                .collect();
            typed(
                status,
                json!({"Id": "qccore.bulk-operation-failed", "Title": title, "ExceptionProperties": null, "StackTrace": null, "BulkOperationResponse": {"BulkEntries": entries}}).to_string(),
                "application/json",
            )
        }
        _ => {
            let mut s = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><QCRestException><Id>qccore.bulk-operation-failed</Id><Title>{}</Title><BulkOperationResponse><BulkEntries>",
                xml_escape(&title)
            );
            for r in &results {
                match r {
                    Ok(id) => s.push_str(&format!(
                        "<BulkEntry Succeeded=\"true\" EntityId=\"{id}\" EntityType=\"{kind}\">{}</BulkEntry>",
                        entity_xml(kind, entity(id), None)
                    )),
                    Err((_, eid, t)) => s.push_str(&format!(
                        "<BulkEntry Succeeded=\"false\" EntityType=\"{kind}\"><Exception><Id>{eid}</Id><Title>{}</Title></Exception></BulkEntry>",
                        xml_escape(t)
                    )),
                }
            }
            s.push_str("</BulkEntries></BulkOperationResponse></QCRestException>");
            typed(status, s, "application/xml")
        }
    }
}

pub(crate) fn sanitize(html: &str) -> String {
    let mut out = html.to_owned();
    while let Some(start) = out.to_lowercase().find("<script") {
        let end = out.to_lowercase()[start..]
            .find("</script>")
            .map_or(out.len(), |e| start + e + "</script>".len());
        out.replace_range(start..end, "");
    }
    out
}

pub(crate) fn list_items(name: &str) -> &'static [&'static str] {
    data::LISTS
        .iter()
        .find(|(n, ..)| *n == name)
        .map_or(&[], |(.., items)| items)
}

pub(crate) fn write_entity(
    alm: &Alm,
    st: &mut State_,
    collection: &str,
    id: Option<u64>,
    body: Vec<(String, Stored)>,
    user: &str,
    session: Option<&str>,
) -> Result<u64, QcErr> {
    let (kind, specs) = data::entity_type(collection).ok_or((
        StatusCode::NOT_FOUND,
        "qccore.entity-not-found",
        format!("Unknown entity collection {collection}"),
    ))?;
    let spec = |n: &str| -> Option<&FieldSpec> { specs.iter().find(|f| f.0 == n) };
    let existing = match id {
        Some(i) => Some(
            st.entities
                .get(collection)
                .and_then(|m| m.get(&i))
                .cloned()
                .ok_or((
                    StatusCode::NOT_FOUND,
                    "qccore.entity-not-found",
                    format!("Failed to update entity: {kind} with id {i} does not exist"),
                ))?,
        ),
        None => None,
    };
    if let Some(i) = id {
        if let Some(holder) = st.locks.get(&(collection.to_owned(), i))
            && Some(holder.as_str()) != session
        {
            let who = st
                .sessions
                .get(holder)
                .map_or("unknown", |s| s.user.as_str());
            return Err((
                StatusCode::FORBIDDEN,
                "qccore.lock-failure",
                format!("Failed to update entity: The entity is locked by user '{who}'"),
            ));
        }
        if alm.config.version_control
            && collection != "defects"
            && session.is_some()
            && st
                .checked_out
                .get(&(collection.to_owned(), i))
                .map(String::as_str)
                != session
        {
            return Err((
                StatusCode::FORBIDDEN,
                "qccore.operation-forbidden",
                "Failed to update entity: the entity is not checked out".into(),
            ));
        }
    }
    let mut fields = existing
        .as_ref()
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut changed: Vec<(String, String, String, String)> = Vec::new();
    for (name, values) in body {
        let Some(f) = spec(&name) else {
            return Err((
                StatusCode::BAD_REQUEST,
                "qccore.unknown-field-name",
                format!("Failed to update entity: unknown field name '{name}'"),
            ));
        };
        if !f.4 {
            if existing.is_none() && name == "id" {
                continue;
            }
            return Err((
                StatusCode::FORBIDDEN,
                "qccore.operation-forbidden",
                format!("Failed to update entity: field '{name}' is read-only"),
            ));
        }
        for v in values.iter().flatten().filter(|v| !v.is_empty()) {
            let ok = match f.2 {
                "Number" => v.parse::<i64>().is_ok(),
                "Date" => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok(),
                "DateTime" => NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S").is_ok(),
                _ => true,
            };
            if !ok {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "qccore.invalid-value-type-for-field",
                    format!(
                        "Failed to update entity: the value '{v}' is not valid for the {} field '{name}'",
                        f.2
                    ),
                ));
            }
            if let Some(list) = f.5
                && !list_items(list).contains(&v.as_str())
            {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "qccore.invalid-list-field-value",
                    format!(
                        "Failed to update entity: the value '{v}' of field '{name}' is not in the list '{list}'"
                    ),
                ));
            }
            if f.2 == "UsersList" && !alm.config.users.iter().any(|(u, ..)| u == v) {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "qccore.invalid-list-field-value",
                    format!(
                        "Failed to update entity: '{v}' is not a user of the project (field '{name}')"
                    ),
                ));
            }
        }
        let values = if f.2 == "Memo" {
            values.map(|vs| vs.iter().map(|v| sanitize(v)).collect())
        } else {
            values
        };
        let old = fields
            .get(&name)
            .cloned()
            .flatten()
            .map(|v| v.join(";"))
            .unwrap_or_default();
        let new = values.clone().map(|v| v.join(";")).unwrap_or_default();
        if f.6 && old != new {
            changed.push((name.clone(), f.1.to_owned(), old, new));
        }
        fields.insert(name, values);
    }
    if collection == "defects" {
        let old = existing
            .as_ref()
            .and_then(|e| e.fields.get("status").cloned().flatten())
            .and_then(|v| v.first().cloned());
        let new = fields
            .get("status")
            .cloned()
            .flatten()
            .and_then(|v| v.first().cloned());
        match (&old, &new) {
            (None, None) => {
                fields.insert("status".into(), Some(vec!["New".into()]));
            }
            (None, Some(s)) if alm.config.enforce_transitions && s != "New" => {
                return Err((
                    StatusCode::FORBIDDEN,
                    "qccore.operation-forbidden",
                    format!("The workflow does not allow a new defect in status '{s}'"),
                ));
            }
            (Some(a), Some(b))
                if a != b
                    && alm.config.enforce_transitions
                    && !data::DEFECT_TRANSITIONS.contains(&(a.as_str(), b.as_str())) =>
            {
                return Err((
                    StatusCode::FORBIDDEN,
                    "qccore.operation-forbidden",
                    format!("The workflow does not allow changing the status from '{a}' to '{b}'"),
                ));
            }
            _ => {}
        }
    }
    if existing.is_none() {
        for f in specs.iter().filter(|f| f.3) {
            if fields
                .get(f.0)
                .cloned()
                .flatten()
                .is_none_or(|v| v.iter().all(String::is_empty))
            {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "qccore.required-field-missing",
                    format!(
                        "Failed to create entity: the required field '{}' is missing",
                        f.0
                    ),
                ));
            }
        }
    }
    let id = match id {
        Some(i) => i,
        None => {
            let n = st.next_id.entry(collection.to_owned()).or_insert(0);
            *n += 1;
            *n
        }
    };
    for f in specs {
        fields.entry(f.0.to_owned()).or_insert(None);
    }
    let ver: u64 = existing
        .as_ref()
        .and_then(|e| e.fields.get("ver-stamp").cloned().flatten())
        .and_then(|v| v.first().and_then(|x| x.parse().ok()))
        .unwrap_or(0);
    fields.insert("id".into(), Some(vec![id.to_string()]));
    fields.insert("ver-stamp".into(), Some(vec![(ver + 1).to_string()]));
    fields.insert("last-modified".into(), Some(vec![alm.local_now()]));
    if collection == "defects" {
        let has = st
            .attachments
            .iter()
            .any(|a| a.collection == collection && a.parent == id);
        fields.insert("attachment".into(), has.then(|| vec!["Y".to_owned()]));
    }
    if existing.is_some() && !changed.is_empty() {
        st.next_audit += 1;
        let audit = Audit {
            id: st.next_audit,
            parent_type: kind,
            parent: id,
            time: alm.local_now(),
            user: user.to_owned(),
            props: changed,
        };
        st.audits.push(audit);
    }
    st.entities
        .entry(collection.to_owned())
        .or_default()
        .insert(id, Entity { fields });
    Ok(id)
}

pub(crate) async fn collection(
    State(alm): State<Arc<Alm>>,
    Path((domain, project, coll)): Proj,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
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
    // The project-level attachments collection: every entity's attachments, read only here.
    let attachments = coll == "attachments" && method == Method::GET;
    let (kind, specs) = if attachments {
        ("attachment", data::ATTACHMENT_FIELDS)
    } else {
        or_answer!(known_collection(call.fmt, &coll))
    };
    if (method == Method::POST || method == Method::PUT) && is_collection_body(&headers) {
        let update = method == Method::PUT;
        return bulk_write(&alm, &mut st, &call, &coll, kind, update, &headers, &body);
    }
    if method == Method::PUT {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    if method == Method::POST {
        let fields = match parse_entity(&headers, &body) {
            Ok(f) => f,
            Err(m) => {
                return qc_error(
                    call.fmt,
                    StatusCode::BAD_REQUEST,
                    "qccore.general-error",
                    &format!("Failed to read the entity: {m}"),
                );
            }
        };
        return match write_entity(
            &alm,
            &mut st,
            &coll,
            None,
            fields,
            &call.user,
            Some(&call.session),
        ) {
            Ok(id) => render_one(
                call.fmt,
                StatusCode::CREATED,
                kind,
                &st.entities[&coll][&id],
            ),
            Err(e) => err(call.fmt, &e),
        };
    }
    // GET: query, fields, order-by, paging.
    let filter = match call.params.get("query").filter(|q| !q.trim().is_empty()) {
        Some(q) => match query::parse(q) {
            Ok(f) => f,
            Err(m) => {
                return qc_error(
                    call.fmt,
                    StatusCode::NOT_FOUND,
                    "qccore.invalid-filter-expression",
                    &format!("Invalid filter expression {q}: {m}"),
                );
            }
        },
        None => Vec::new(),
    };
    for (f, _) in &filter {
        if !specs.iter().any(|s| s.0 == f) {
            return qc_error(
                call.fmt,
                StatusCode::NOT_FOUND,
                "qccore.invalid-filter-expression",
                &format!("Invalid filter expression: not existing field: {f}"),
            );
        }
    }
    let mut order: Vec<(String, bool)> = Vec::new();
    if let Some(o) = call.params.get("order-by") {
        let inner = o.trim().trim_start_matches('{').trim_end_matches('}');
        for part in inner.split(';').filter(|p| !p.trim().is_empty()) {
            let (name, dir) = match part.split_once('[') {
                Some((n, d)) => (
                    n.trim().to_owned(),
                    d.trim_end_matches(']').trim().eq_ignore_ascii_case("desc"),
                ),
                None => (part.trim().to_owned(), false),
            };
            if !specs.iter().any(|s| s.0 == name) {
                return qc_error(
                    call.fmt,
                    StatusCode::NOT_FOUND,
                    "qccore.invalid-query-value",
                    &format!(
                        "Invalid \"order-by\" parameter value, not existing field: \"{name}\""
                    ),
                );
            }
            order.push((name, dir));
        }
    }
    let page_size = match call.params.get("page-size").map(String::as_str) {
        None => 100,
        Some("max") => 2000,
        Some(p) => match p.parse::<i64>() {
            Ok(n) if (0..=2000).contains(&n) => usize::try_from(n).unwrap_or(100),
            Ok(n) if n > 2000 => 2000,
            _ => {
                return qc_error(
                    call.fmt,
                    StatusCode::NOT_FOUND,
                    "qccore.invalid-query-value",
                    "Page size values can be either integer between 0 and 2,000 or \"max\".",
                );
            }
        },
    };
    let start: usize = call
        .params
        .get("start-index")
        .and_then(|s| s.parse().ok())
        .filter(|s| *s >= 1)
        .unwrap_or(1);
    let only: Option<Vec<String>> = call
        .params
        .get("fields")
        .map(|f| f.split(',').map(|s| s.trim().to_owned()).collect());
    let empty = BTreeMap::new();
    let listed: BTreeMap<u64, Entity> = if attachments {
        st.attachments
            .iter()
            .map(|a| (a.id, attachment_entity(a)))
            .collect()
    } else {
        BTreeMap::new()
    };
    let all = if attachments {
        &listed
    } else {
        st.entities.get(&coll).unwrap_or(&empty)
    };
    let get = |e: &Entity, f: &str| -> Vec<String> {
        e.fields.get(f).cloned().flatten().unwrap_or_default()
    };
    let mut rows: Vec<&Entity> = all
        .values()
        .filter(|e| filter.iter().all(|(f, expr)| expr.matches(&get(e, f))))
        .collect();
    let num = |v: &[String]| v.first().and_then(|x| x.parse::<f64>().ok());
    rows.sort_by(|a, b| {
        for (f, desc) in order
            .iter()
            .chain(std::iter::once(&("id".to_owned(), false)))
        {
            let (x, y) = (get(a, f), get(b, f));
            let o = match (num(&x), num(&y)) {
                (Some(p), Some(q)) => p.partial_cmp(&q).unwrap_or(std::cmp::Ordering::Equal),
                _ => x.cmp(&y),
            };
            let o = if *desc { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    let total = rows.len();
    let page: Vec<&Entity> = rows.into_iter().skip(start - 1).take(page_size).collect();
    match call.fmt {
        Fmt::Json => typed(
            StatusCode::OK,
            json!({"entities": page.iter().map(|e| entity_json(kind, e, only.as_deref())).collect::<Vec<_>>(), "TotalResults": total}).to_string(),
            "application/json",
        ),
        _ => {
            let mut s = format!("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><Entities TotalResults=\"{total}\">");
            for e in page {
                s.push_str(&entity_xml(kind, e, only.as_deref()));
            }
            s.push_str("</Entities>");
            typed(StatusCode::OK, s, "application/xml")
        }
    }
}

pub(crate) async fn entity(
    State(alm): State<Arc<Alm>>,
    Path((domain, project, coll, id)): ProjId,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
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
    let (kind, _) = or_answer!(known_collection(call.fmt, &coll));
    if st.entities.get(&coll).and_then(|m| m.get(&id)).is_none() {
        return not_found(call.fmt, kind, id);
    }
    match method {
        Method::GET => render_one(call.fmt, StatusCode::OK, kind, &st.entities[&coll][&id]),
        Method::PUT => {
            let fields = match parse_entity(&headers, &body) {
                Ok(f) => f,
                Err(m) => {
                    return qc_error(
                        call.fmt,
                        StatusCode::BAD_REQUEST,
                        "qccore.general-error",
                        &format!("Failed to read the entity: {m}"),
                    );
                }
            };
            match write_entity(
                &alm,
                &mut st,
                &coll,
                Some(id),
                fields,
                &call.user,
                Some(&call.session),
            ) {
                Ok(_) => render_one(call.fmt, StatusCode::OK, kind, &st.entities[&coll][&id]),
                Err(e) => err(call.fmt, &e),
            }
        }
        Method::DELETE => {
            if let Some(holder) = st.locks.get(&(coll.clone(), id))
                && *holder != call.session
            {
                return qc_error(
                    call.fmt,
                    StatusCode::FORBIDDEN,
                    "qccore.lock-failure",
                    "Failed to delete entity: The entity is locked by another user",
                );
            }
            if let Some(m) = st.entities.get_mut(&coll) {
                m.remove(&id);
            }
            StatusCode::OK.into_response()
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

pub(crate) async fn entity_lock(
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
    let (kind, _) = or_answer!(known_collection(call.fmt, &coll));
    if st.entities.get(&coll).and_then(|m| m.get(&id)).is_none() {
        return not_found(call.fmt, kind, id);
    }
    let key = (coll.clone(), id);
    let holder = st.locks.get(&key).cloned();
    let holder_user = holder
        .as_ref()
        .and_then(|h| st.sessions.get(h))
        .map(|s| s.user.clone());
    match method {
        Method::GET => {
            let status = match &holder {
                None => "UNLOCKED",
                Some(h) if *h == call.session => "LOCKED_BY_ME",
                Some(_) => "LOCKED_BY_OTHER",
            };
            match call.fmt {
                Fmt::Json => typed(
                    StatusCode::OK,
                    json!({"LockStatus": status, "LockUser": holder_user}).to_string(),
                    "application/json",
                ),
                _ => typed(
                    StatusCode::OK,
                    format!(
                        "<LockStatus><LockStatus>{status}</LockStatus><LockUser>{}</LockUser></LockStatus>",
                        holder_user.unwrap_or_default()
                    ),
                    "application/xml",
                ),
            }
        }
        Method::POST => match holder {
            Some(h) if h != call.session => qc_error(
                call.fmt,
                StatusCode::FORBIDDEN,
                "qccore.lock-failure",
                &format!(
                    "Failed to lock entity: The entity is locked by user '{}'",
                    holder_user.unwrap_or_default()
                ),
            ),
            _ => {
                st.locks.insert(key, call.session.clone());
                render_one(call.fmt, StatusCode::OK, kind, &st.entities[&coll][&id])
            }
        },
        Method::DELETE => {
            if holder.as_deref() == Some(call.session.as_str()) {
                st.locks.remove(&key);
            }
            StatusCode::OK.into_response()
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}
