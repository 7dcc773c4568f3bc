//! Records: the Table API's routes (list, read, create, update, delete), how a record is
//! rendered (display values, reference links, the reader's time zone) and how a write is checked
//! (ACLs, data policies) and applied.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{NaiveDateTime, TimeDelta};
use serde_json::{Map, Value, json};

use super::query::compare;
#[allow(clippy::wildcard_imports)]
use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Display {
    False,
    True,
    All,
}

/// How records are rendered: `sysparm_display_value`, `sysparm_exclude_reference_link`,
/// `sysparm_fields`.
#[derive(Debug, Clone)]
pub(crate) struct ReadOpts {
    pub(crate) display: Display,
    pub(crate) exclude_ref: bool,
    pub(crate) fields: Option<Vec<String>>,
}

impl ReadOpts {
    pub(crate) fn from(p: &[(String, String)]) -> Self {
        let display = match param(p, "sysparm_display_value").map(str::to_ascii_lowercase) {
            Some(v) if v == "true" => Display::True,
            Some(v) if v == "all" => Display::All,
            _ => Display::False,
        };
        ReadOpts {
            display,
            exclude_ref: flag(p, "sysparm_exclude_reference_link"),
            fields: param(p, "sysparm_fields")
                .filter(|f| !f.is_empty())
                .map(|f| f.split(',').map(|s| s.trim().to_owned()).collect()),
        }
    }
}

/// Renders a stored record as the Table API returns it.
pub(crate) fn render(sn: &Sn, store: &Store, meta: &Meta, row: &Row, o: &ReadOpts) -> Value {
    let mut out = Map::new();
    let sys_id = row.get("sys_id").cloned().unwrap_or_default();
    let names: Vec<String> = match &o.fields {
        Some(f) => f.clone(),
        None => row.keys().cloned().collect(),
    };
    for name in names {
        let (value, info) = match name.split_once('.') {
            // Dot-walked field: follow the reference.
            Some((head, tail)) => {
                let target = meta.get(head).and_then(|i| i.reference.clone());
                let v = target
                    .as_deref()
                    .and_then(|t| store.tables.get(t))
                    .and_then(|t| t.get(row.get(head).map_or("", String::as_str)))
                    .and_then(|r| r.get(tail).cloned());
                match v {
                    Some(v) => (v, None),
                    None => continue,
                }
            }
            None => match row.get(&name) {
                Some(v) => (v.clone(), meta.get(&name)),
                None => continue,
            },
        };
        let link = info
            .and_then(|i| i.reference.as_ref())
            .filter(|_| !value.is_empty())
            .map(|t| format!("{}/api/now/table/{t}/{value}", sn.base()));
        let display = || -> String {
            let Some(info) = info else {
                return value.clone();
            };
            if info.is_journal() {
                let elements: &[&str] = match name.as_str() {
                    "comments" => &["comments"],
                    "work_notes" => &["work_notes"],
                    _ => &["comments", "work_notes"],
                };
                return store.journal_display(&sys_id, elements, sn.config.display_offset);
            }
            if let Some(t) = &info.reference {
                return store.display_of(t, &value).unwrap_or_default();
            }
            if let Some((_, label)) = info.choices.iter().find(|(v, _)| *v == value) {
                return label.clone();
            }
            match info.internal_type.as_str() {
                "glide_date_time" => shift(&value, sn.config.display_offset),
                "integer" => group_digits(&value),
                _ => value.clone(),
            }
        };
        let rendered = match o.display {
            Display::False => match link {
                Some(l) if !o.exclude_ref => json!({"link": l, "value": value}),
                _ => Value::String(value.clone()),
            },
            Display::True => match link {
                Some(l) if !o.exclude_ref => json!({"display_value": display(), "link": l}),
                _ => Value::String(display()),
            },
            Display::All => {
                let mut m = json!({"display_value": display(), "value": value});
                if let Some(l) = link
                    && !o.exclude_ref
                {
                    m["link"] = Value::String(l);
                }
                m
            }
        };
        out.insert(name, rendered);
    }
    Value::Object(out)
}

fn invalid_table(table: &str) -> Response {
    sn_error(
        StatusCode::BAD_REQUEST,
        &format!("Invalid table {table}"),
        None,
    )
}

fn no_record() -> Response {
    sn_error(
        StatusCode::NOT_FOUND,
        "No Record found",
        Some("Record doesn't exist or ACL restricts the record retrieval"),
    )
}

fn check_accept(headers: &HeaderMap) -> Option<Response> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    let ok = accept.split(',').any(|a| {
        let a = a.trim();
        a.starts_with("application/json")
            || a.starts_with("*/*")
            || a.starts_with("application/*")
            || a.is_empty()
    });
    (!ok).then(|| {
        sn_error(
            StatusCode::NOT_ACCEPTABLE,
            "Requested response format is not supported",
            None,
        )
    })
}

fn known_field(store: &Store, meta: &Meta, table: &str, field: &str) -> bool {
    match field.split_once('.') {
        Some((head, tail)) => meta
            .get(head)
            .and_then(|i| i.reference.clone())
            .is_some_and(|t| known_field(store, &store.meta(&t), &t, tail)),
        None => {
            meta.fields.contains_key(field)
                || field.starts_with("sys_")
                || store
                    .tables
                    .get(table)
                    .and_then(|t| t.rows().next())
                    .is_some_and(|r| r.contains_key(field))
        }
    }
}

fn field_value(store: &Store, meta: &Meta, row: &Row, field: &str) -> String {
    match field.split_once('.') {
        Some((head, tail)) => meta
            .get(head)
            .and_then(|i| i.reference.clone())
            .and_then(|t| {
                store
                    .tables
                    .get(&t)
                    .and_then(|tt| tt.get(row.get(head).map_or("", String::as_str)))
                    .cloned()
            })
            .and_then(|r| r.get(tail).cloned())
            .unwrap_or_default(),
        None => row.get(field).cloned().unwrap_or_default(),
    }
}

fn numeric(meta: &Meta, field: &str) -> bool {
    field == "sys_mod_count" || meta.get(field).is_some_and(FieldInfo::is_numeric)
}

/// Selects, orders and pages the rows of a table by the list parameters.
pub(crate) fn select(
    sn: &Sn,
    store: &Store,
    table: &str,
    p: &[(String, String)],
) -> Result<(Vec<Row>, usize, usize), Response> {
    let meta = store.meta(table);
    let mut q = match param(p, "sysparm_query") {
        Some(q) if !q.is_empty() => query::parse(q).map_err(|term| {
            sn_error(
                StatusCode::BAD_REQUEST,
                &format!("Invalid query term: {term}"),
                None,
            )
        })?,
        _ => query::Query::default(),
    };
    let dropped = q.drop_unknown(|f| known_field(store, &meta, table, f));
    if dropped && sn.config.invalid_query_returns_no_rows {
        return Ok((Vec::new(), 0, 0));
    }
    let Some(t) = store.tables.get(table) else {
        return Err(invalid_table(table));
    };
    let offset: i64 = param(p, "sysparm_offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if offset < 0 {
        return Err(sn_error(
            StatusCode::BAD_REQUEST,
            &format!("offset is {offset}"),
            Some("Negative offset is not supported"),
        ));
    }
    let limit = param(p, "sysparm_limit")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(sn.config.default_limit);
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let get = |r: &Row, f: &str| field_value(store, &meta, r, f);
    let keep = |r: &Row| {
        q.groups.iter().all(Vec::is_empty) || q.matches(&|f| get(r, f), &|f| numeric(&meta, f))
    };
    let order = |keys: &[(String, bool)], a: &Row, b: &Row| {
        for (f, desc) in keys {
            let o = compare(&get(a, f), &get(b, f), numeric(&meta, f));
            let o = if *desc { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    };
    // Without a count (`sysparm_no_count` and no pagination header) a page needs only its rows.
    let counted = !(flag(p, "sysparm_no_count") && flag(p, "sysparm_suppress_pagination_header"));
    let first = q
        .order
        .first()
        .filter(|(f, desc)| !desc && !numeric(&meta, f) && store::INDEXED.contains(&f.as_str()));
    let (rows, total) = if let Some((field, values)) = q.equalities() {
        let mut rows: Vec<&Row> = t
            .with_values(field, &values)
            .into_iter()
            .filter(|r| keep(r))
            .collect();
        rows.sort_by(|a, b| order(&q.order, a, b));
        let total = rows.len();
        (rows, total)
    } else if let Some((field, _)) = first
        && let Some(ordered) = t.ordered_by(field, q.lower_bound(field))
    {
        // Rows in the index's order: each run of one value sorted by the other keys, up to the
        // page's end (or, when counted, to the end).
        let (upper, want) = (q.upper_bound(field), offset.saturating_add(limit));
        let mut rows: Vec<&Row> = Vec::new();
        let (mut current, mut run) = (None, 0);
        for (v, r) in ordered {
            if upper.is_some_and(|u| v > u) {
                break;
            }
            if current != Some(v) {
                rows[run..].sort_by(|a, b| order(&q.order[1..], a, b));
                if !counted && rows.len() >= want {
                    break;
                }
                (current, run) = (Some(v), rows.len());
            }
            if keep(r) {
                rows.push(r);
            }
        }
        rows[run..].sort_by(|a, b| order(&q.order[1..], a, b));
        let total = rows.len();
        (rows, total)
    } else {
        let mut rows: Vec<&Row> = t.rows().filter(|r| keep(r)).collect();
        if !q.order.is_empty() {
            rows.sort_by(|a, b| order(&q.order, a, b));
        }
        let total = rows.len();
        (rows, total)
    };
    let page = rows.into_iter().skip(offset).take(limit).cloned().collect();
    Ok((page, total, limit))
}

fn link_header(
    sn: &Sn,
    path: &str,
    p: &[(String, String)],
    offset: usize,
    limit: usize,
    total: usize,
) -> String {
    let url_for = |off: i64| {
        let mut u = url::Url::parse(&format!("{}{path}", sn.base())).unwrap_or_else(|_| {
            url::Url::parse("http://127.0.0.1/").unwrap_or_else(|_| unreachable!("static URL"))
        });
        {
            let mut q = u.query_pairs_mut();
            for (k, v) in p
                .iter()
                .filter(|(k, _)| k != "sysparm_offset" && k != "sysparm_limit")
            {
                q.append_pair(k, v);
            }
            q.append_pair("sysparm_limit", &limit.to_string());
            q.append_pair("sysparm_offset", &off.to_string());
        }
        u.to_string()
    };
    let off = i64::try_from(offset).unwrap_or(i64::MAX);
    let lim = i64::try_from(limit).unwrap_or(i64::MAX);
    let tot = i64::try_from(total).unwrap_or(i64::MAX);
    let last = if tot == 0 { 0 } else { ((tot - 1) / lim) * lim };
    let mut links = vec![format!("<{}>;rel=\"first\"", url_for(0))];
    if off > 0 || sn.config.prev_link_on_first_page {
        links.push(format!(
            "<{}>;rel=\"prev\"",
            url_for(if off > 0 { (off - lim).max(0) } else { -1 })
        ));
    }
    if off + lim < tot {
        links.push(format!("<{}>;rel=\"next\"", url_for(off + lim)));
    }
    links.push(format!("<{}>;rel=\"last\"", url_for(last)));
    links.join(",")
}

pub(crate) async fn list(
    State(sn): State<Arc<Sn>>,
    Path(table): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    if let Some(r) = check_accept(&headers) {
        return r;
    }
    let p = params(raw.as_deref());
    let store = lock(&sn.store);
    if !store.tables.contains_key(&table) {
        return invalid_table(&table);
    }
    let (rows, total, limit) = or_answer!(select(&sn, &store, &table, &p));
    let meta = store.meta(&table);
    let o = ReadOpts::from(&p);
    let result: Vec<Value> = rows
        .iter()
        .map(|r| render(&sn, &store, &meta, r, &o))
        .collect();
    let mut resp = json_response(StatusCode::OK, &json!({ "result": result }));
    if !flag(&p, "sysparm_no_count")
        && let Ok(v) = HeaderValue::from_str(&total.to_string())
    {
        resp.headers_mut().insert("x-total-count", v);
    }
    if !flag(&p, "sysparm_suppress_pagination_header") {
        let offset = param(&p, "sysparm_offset")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let link = link_header(&sn, uri.path(), &p, offset, limit, total);
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    resp
}

pub(crate) async fn get_one(
    State(sn): State<Arc<Sn>>,
    Path((table, sys_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = check_accept(&headers) {
        return r;
    }
    let p = params(raw.as_deref());
    let store = lock(&sn.store);
    let Some(t) = store.tables.get(&table) else {
        return invalid_table(&table);
    };
    let Some(row) = t.get(&sys_id) else {
        return no_record();
    };
    let meta = store.meta(&table);
    json_response(
        StatusCode::OK,
        &json!({"result": render(&sn, &store, &meta, row, &ReadOpts::from(&p))}),
    )
}

fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ct.starts_with("application/json") {
        return Err(sn_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Requested request body format is not supported",
            None,
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        // Several records in one body: only the first is processed.
        Ok(Value::Array(mut a)) if !a.is_empty() => match a.swap_remove(0) {
            Value::Object(m) => Ok(m),
            _ => Err(sn_error(
                StatusCode::BAD_REQUEST,
                "Exception while reading request",
                Some("The payload is not valid JSON."),
            )),
        },
        _ => Err(sn_error(
            StatusCode::BAD_REQUEST,
            "Exception while reading request",
            Some("The payload is not valid JSON."),
        )),
    }
}

fn as_stored(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Object(m) => m.get("value").map(as_stored).unwrap_or_default(),
        Value::Array(a) => a.iter().map(as_stored).collect::<Vec<_>>().join(","),
    }
}

/// Writes a record as the Table API does; returns it as stored.
pub(crate) fn write(
    sn: &Sn,
    store: &mut Store,
    table: &str,
    existing: Option<&str>,
    body: &Map<String, Value>,
    user: &str,
) -> Result<Row, (StatusCode, String, Option<String>)> {
    let meta = store.meta(table);
    let now = now_str(sn);
    let mut journal: Vec<(String, String)> = Vec::new();
    let mut changes: Vec<(String, String)> = Vec::new();
    for (k, v) in body {
        let value = as_stored(v);
        let info = meta.get(k);
        if info.is_some_and(FieldInfo::is_journal) {
            if !value.is_empty() && (k == "comments" || k == "work_notes") {
                journal.push((k.clone(), value));
            }
            continue;
        }
        if k.starts_with("sys_") || k == "number" {
            continue;
        }
        let known = info.is_some()
            || store
                .tables
                .get(table)
                .and_then(|t| t.rows().next())
                .is_some_and(|r| r.contains_key(k));
        if !known {
            // Unknown fields are silently ignored, as on real instances.
            continue;
        }
        let value = match info.and_then(|i| i.reference.clone()) {
            Some(target) if !value.is_empty() => {
                let exists = store
                    .tables
                    .get(&target)
                    .is_some_and(|t| t.get(&value).is_some());
                if exists {
                    value
                } else {
                    // A display value given for a reference is looked up.
                    store
                        .tables
                        .get(&target)
                        .and_then(|t| {
                            t.rows().find(|r| {
                                ["name", "number", "user_name"]
                                    .iter()
                                    .any(|f| r.get(*f).is_some_and(|x| *x == value))
                            })
                        })
                        .and_then(|r| r.get("sys_id").cloned())
                        .unwrap_or(value)
                }
            }
            _ => value,
        };
        changes.push((k.clone(), value));
    }
    let mut row = match existing {
        Some(id) => store
            .tables
            .get(table)
            .and_then(|t| t.get(id))
            .cloned()
            .ok_or((
                StatusCode::NOT_FOUND,
                "No Record found".to_owned(),
                Some("Record doesn't exist or ACL restricts the record retrieval".to_owned()),
            ))?,
        None => {
            let mut r = Row::new();
            for (name, info) in &meta.fields {
                if !name.starts_with("sys_") && info.internal_type != "journal_list" {
                    r.insert(name.clone(), String::new());
                }
            }
            r
        }
    };
    for (k, v) in changes {
        row.insert(k, v);
    }
    if sn.config.data_policy && table == "incident" {
        let state = row.get("state").map_or("", String::as_str);
        if state == "6" || state == "7" {
            let missing: Vec<&str> = [
                ("close_code", "Resolution code"),
                ("close_notes", "Resolution notes"),
            ]
            .iter()
            .filter(|(f, _)| row.get(*f).is_none_or(String::is_empty))
            .map(|(_, l)| *l)
            .collect();
            if !missing.is_empty() {
                return Err((
                    StatusCode::FORBIDDEN,
                    "Operation Failed".to_owned(),
                    Some(format!(
                        "Data Policy Exception: \n The following fields are mandatory: {}",
                        missing.join(", ")
                    )),
                ));
            }
        }
    }
    let user_id = store
        .find("sys_user", "user_name", user)
        .and_then(|r| r.get("sys_id").cloned())
        .unwrap_or_default();
    let sys_id = match existing {
        Some(id) => {
            let count: u64 = row
                .get("sys_mod_count")
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            row.insert("sys_mod_count".into(), (count + 1).to_string());
            id.to_owned()
        }
        None => {
            let id = store.new_sys_id();
            row.insert("sys_id".into(), id.clone());
            row.insert("sys_created_on".into(), now.clone());
            row.insert("sys_created_by".into(), user.to_owned());
            row.insert("sys_mod_count".into(), "0".into());
            row.insert("sys_class_name".into(), table.to_owned());
            if let Some(n) = store.next_number(table) {
                row.insert("number".into(), n);
            }
            if data::parent_of(table).is_some() {
                if row.get("state").is_none_or(String::is_empty)
                    && let Some(s) = data::initial_state(table)
                {
                    row.insert("state".into(), s.to_owned());
                }
                for (f, d) in [
                    ("priority", "5"),
                    ("impact", "3"),
                    ("urgency", "3"),
                    ("active", "true"),
                    ("reassignment_count", "0"),
                ] {
                    if row.get(f).is_none_or(String::is_empty) {
                        row.insert(f.into(), d.into());
                    }
                }
                row.insert("opened_at".into(), now.clone());
                row.insert("opened_by".into(), user_id);
                row.insert("business_duration".into(), String::new());
            }
            id
        }
    };
    if data::parent_of(table).is_some() {
        for j in ["comments", "work_notes", "comments_and_work_notes"] {
            row.insert(j.into(), String::new());
        }
        let closed = matches!(
            (table, row.get("state").map(String::as_str)),
            ("incident", Some("7" | "8"))
                | ("problem", Some("107"))
                | ("change_request", Some("3" | "4"))
        );
        row.insert("active".into(), (!closed).to_string());
    }
    row.insert("sys_updated_on".into(), now.clone());
    row.insert("sys_updated_by".into(), user.to_owned());
    let t = store.tables.entry(table.to_owned()).or_default();
    match existing {
        Some(id) => {
            t.replace(id, row.clone());
        }
        None => t.insert(row.clone()),
    }
    for (element, value) in journal {
        let entry = Row::from([
            ("element".into(), element),
            ("element_id".into(), sys_id.clone()),
            ("name".into(), table.to_owned()),
            ("value".into(), value),
        ]);
        let jid = store.new_sys_id();
        let mut entry = entry;
        entry.insert("sys_id".into(), jid);
        entry.insert("sys_created_on".into(), now.clone());
        entry.insert("sys_created_by".into(), user.to_owned());
        entry.insert("sys_updated_on".into(), now.clone());
        entry.insert("sys_updated_by".into(), user.to_owned());
        entry.insert("sys_mod_count".into(), "0".into());
        store
            .tables
            .entry("sys_journal_field".into())
            .or_default()
            .insert(entry);
    }
    Ok(row)
}

fn write_response(
    sn: &Sn,
    table: &str,
    existing: Option<&str>,
    body: &Map<String, Value>,
    caller: &Caller,
    p: &[(String, String)],
) -> Response {
    if !caller.0.can_write() {
        return sn_error(
            StatusCode::FORBIDDEN,
            "Operation Failed",
            Some("ACL Exception Update Failed due to security constraints"),
        );
    }
    let mut store = lock(&sn.store);
    if !store.tables.contains_key(table) {
        return invalid_table(table);
    }
    match write(sn, &mut store, table, existing, body, &caller.0.user_name) {
        Ok(row) => {
            let meta = store.meta(table);
            let rendered = render(sn, &store, &meta, &row, &ReadOpts::from(p));
            let status = if existing.is_some() {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            let mut resp = json_response(status, &json!({ "result": rendered }));
            if existing.is_none()
                && let Some(id) = row.get("sys_id")
                && let Ok(v) =
                    HeaderValue::from_str(&format!("{}/api/now/table/{table}/{id}", sn.base()))
            {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp
        }
        Err((status, message, detail)) => sn_error(status, &message, detail.as_deref()),
    }
}

pub(crate) async fn create(
    State(sn): State<Arc<Sn>>,
    Path(table): Path<String>,
    RawQuery(raw): RawQuery,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = check_accept(&headers) {
        return r;
    }
    let p = params(raw.as_deref());
    match parse_body(&headers, &body) {
        Ok(m) => write_response(&sn, &table, None, &m, &caller, &p),
        Err(r) => r,
    }
}

pub(crate) async fn update(
    State(sn): State<Arc<Sn>>,
    Path((table, sys_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = check_accept(&headers) {
        return r;
    }
    let p = params(raw.as_deref());
    {
        let store = lock(&sn.store);
        match store.tables.get(&table) {
            None => return invalid_table(&table),
            Some(t) if t.get(&sys_id).is_none() => return no_record(),
            Some(_) => {}
        }
    }
    match parse_body(&headers, &body) {
        Ok(m) => write_response(&sn, &table, Some(&sys_id), &m, &caller, &p),
        Err(r) => r,
    }
}

pub(crate) async fn delete(
    State(sn): State<Arc<Sn>>,
    Path((table, sys_id)): Path<(String, String)>,
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
    let Some(t) = store.tables.get_mut(&table) else {
        return invalid_table(&table);
    };
    match t.remove(&sys_id) {
        Some(_) => empty_response(StatusCode::NO_CONTENT),
        None => no_record(),
    }
}

/// A stored UTC date-time shown in a time zone `offset` from UTC.
pub(crate) fn shift(value: &str, offset: TimeDelta) -> String {
    match NaiveDateTime::parse_from_str(value, SN_TIME) {
        Ok(t) => (t + offset).format(SN_TIME).to_string(),
        Err(_) => value.to_owned(),
    }
}

/// Groups the digits of an integer the way display values do (`102,197`).
pub(crate) fn group_digits(value: &str) -> String {
    let Ok(n) = value.parse::<i64>() else {
        return value.to_owned();
    };
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}
