//! JSON Patch: the operations of a work item create or update, checked against the process
//! (read-only fields, allowed values, state transitions, rules) and applied as one revision.

use std::collections::{BTreeMap, HashSet};

use axum::http::StatusCode;
use axum::response::Response;
use chrono::TimeDelta;
use serde_json::{Map, Value, json};

use super::data::WitType;

#[allow(clippy::wildcard_imports)]
use super::*;

/// Query flags of a create or update.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PatchFlags {
    pub(crate) validate_only: bool,
    pub(crate) bypass_rules: bool,
}

/// Why a patch was refused.
#[derive(Debug)]
pub(crate) enum PatchError {
    Rule(String, String, &'static str),
    TestFailed(String),
    UnknownField(String),
    Twice(String),
    Invalid(String),
    NotFound(u64),
}

impl PatchError {
    pub(crate) fn response(&self, id: Option<u64>) -> Response {
        match self {
            PatchError::Rule(reference, name, code) => {
                let message = format!("TF401320: Rule Error for field {name}. Error code: {code}.");
                ado_error_with(
                    StatusCode::BAD_REQUEST,
                    "RuleValidationException",
                    "Microsoft.TeamFoundation.WorkItemTracking.Server",
                    &message,
                    3200,
                    Some(
                        json!({"RuleValidationErrors": [{"fieldReferenceName": reference, "fieldStatusFlags": code.to_lowercase(), "errorMessage": message}]}),
                    ),
                )
            }
            PatchError::TestFailed(message) => ado_error(
                StatusCode::PRECONDITION_FAILED,
                "TestPatchOperationFailedException",
                message,
            ),
            PatchError::UnknownField(f) => ado_error(
                StatusCode::BAD_REQUEST,
                "WorkItemTrackingFieldDefinitionNotFoundException",
                &format!("TF51535: Cannot find field {f}."),
            ),
            PatchError::Twice(f) => ado_error(
                StatusCode::BAD_REQUEST,
                "RuleValidationException",
                &format!(
                    "VS403691: Update to work item {} had two or more updates for field with reference name '{f}'. A field cannot be updated more than once in the same update.",
                    id.map_or("-1".to_owned(), |i| i.to_string())
                ),
            ),
            PatchError::Invalid(m) => {
                ado_error(StatusCode::BAD_REQUEST, "PatchOperationFailedException", m)
            }
            PatchError::NotFound(id) => item_not_found(*id),
        }
    }
}

pub(crate) const READ_ONLY_WITH_BYPASS: [&str; 4] = [
    "System.CreatedDate",
    "System.ChangedDate",
    "System.CreatedBy",
    "System.ChangedBy",
];

pub(crate) fn value_for(
    ado: &Ado,
    reference: &str,
    name: &str,
    ty: &str,
    v: &Value,
) -> Result<Value, PatchError> {
    let rule = |code| PatchError::Rule(reference.to_owned(), name.to_owned(), code);
    Ok(match ty {
        "integer" => match v {
            Value::Number(n) if n.is_i64() => v.clone(),
            Value::String(s) if s.trim().is_empty() => Value::Null,
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map(|n| json!(n))
                .map_err(|_| rule("InvalidType"))?,
            Value::Null => Value::Null,
            _ => return Err(rule("InvalidType")),
        },
        "double" => match v {
            Value::Number(_) | Value::Null => v.clone(),
            Value::String(s) if s.trim().is_empty() => Value::Null,
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .map(|n| json!(n))
                .map_err(|_| rule("InvalidType"))?,
            _ => return Err(rule("InvalidType")),
        },
        "dateTime" => match v {
            Value::String(s) if s.is_empty() => Value::Null,
            Value::String(s) => {
                Value::String(fmt_date(parse_date(s).ok_or_else(|| rule("InvalidType"))?))
            }
            Value::Null => Value::Null,
            _ => return Err(rule("InvalidType")),
        },
        "identity" => {
            let text = match v {
                Value::String(s) if s.trim().is_empty() => return Ok(Value::Null),
                Value::String(s) => s.clone(),
                Value::Object(m) => m
                    .get("uniqueName")
                    .or_else(|| m.get("displayName"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                Value::Null => return Ok(Value::Null),
                _ => return Err(rule("InvalidType")),
            };
            ado.identity(&text).map(|i| i.stored()).ok_or_else(|| {
                rule("HasValues, LimitedToValues, AllowsOldValue, InvalidListValue")
            })?
        }
        _ => match v {
            Value::String(_) | Value::Null => v.clone(),
            Value::Number(n) => Value::String(n.to_string()),
            Value::Bool(b) => Value::String(b.to_string()),
            _ => return Err(rule("InvalidType")),
        },
    })
}

fn scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

pub(crate) fn json_eq(a: Option<&Value>, b: &Value) -> bool {
    match (a, b) {
        (None, Value::Null) => true,
        (Some(x), y) => {
            x == y
                || x.as_str().is_some_and(|s| Some(s) == y.as_str())
                // A number or flag against its text (objects and arrays are equal only as
                // values).
                || (scalar(x) && scalar(y)
                    && x.to_string().trim_matches('"') == y.to_string().trim_matches('"'))
        }
        _ => false,
    }
}

/// Applies a JSON Patch document: creates (`id` None) or updates a work item, atomically.
/// Returns the id.
pub(crate) fn apply(
    ado: &Ado,
    st: &mut Store,
    t: &'static WitType,
    id: Option<u64>,
    ops: &[Value],
    flags: PatchFlags,
    by: &Identity,
) -> Result<u64, PatchError> {
    let existing = match id {
        Some(i) => Some(st.items.get(&i).cloned().ok_or(PatchError::NotFound(i))?),
        None => None,
    };
    let mut fields: BTreeMap<String, Value> = existing
        .as_ref()
        .map(|w| w.fields.clone())
        .unwrap_or_default();
    let mut relations: Vec<Value> = existing
        .as_ref()
        .map(|w| w.relations.clone())
        .unwrap_or_default();
    let mut set: HashSet<String> = HashSet::new();
    let mut history: Option<String> = None;
    let mut added = Vec::new();
    let mut removed = Vec::new();
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        if path.eq_ignore_ascii_case("/rev") {
            if kind == "test" {
                let current = existing.as_ref().map_or(0, |w| w.rev);
                let wanted = value
                    .as_u64()
                    .or_else(|| value.as_str().and_then(|s| s.parse().ok()));
                if wanted != Some(current) {
                    return Err(PatchError::TestFailed(format!(
                        "VS403351: Test Operation for path /rev failed, value {current} was not equal to test value {}.",
                        value.to_string().trim_matches('"')
                    )));
                }
                continue;
            }
            return Err(PatchError::Invalid(
                "TF401349: /rev can only be tested.".into(),
            ));
        }
        if let Some(name) = path.strip_prefix("/fields/") {
            let Some((reference, ty, ro, allowed)) = canonical_field(ado, t, name) else {
                return Err(PatchError::UnknownField(name.to_owned()));
            };
            let display = t
                .fields()
                .find(|f| f.0 == reference)
                .map_or(reference.clone(), |f| f.1.to_owned());
            if kind == "test" {
                if !json_eq(fields.get(&reference), &value) {
                    return Err(PatchError::TestFailed(format!(
                        "VS403351: Test Operation for path {path} failed."
                    )));
                }
                continue;
            }
            if !set.insert(reference.clone()) {
                return Err(PatchError::Twice(reference));
            }
            let writable_with_bypass =
                flags.bypass_rules && READ_ONLY_WITH_BYPASS.contains(&reference.as_str());
            if ro && !writable_with_bypass {
                return Err(PatchError::Rule(reference, display, "ReadOnly"));
            }
            match kind.as_str() {
                "add" | "replace" => {
                    let v = value_for(ado, &reference, &display, ty, &value)?;
                    if !flags.bypass_rules && !allowed.is_empty() && !v.is_null() {
                        let text = v
                            .as_str()
                            .map(ToOwned::to_owned)
                            .unwrap_or_else(|| v.to_string());
                        match allowed.iter().find(|a| a.eq_ignore_ascii_case(&text)) {
                            Some(canon) if ty == "string" => {
                                fields.insert(reference, Value::String(canon.clone()));
                                continue;
                            }
                            Some(_) => {}
                            None => {
                                return Err(PatchError::Rule(
                                    reference,
                                    display,
                                    "HasValues, LimitedToValues, InvalidListValue",
                                ));
                            }
                        }
                    }
                    if reference == "System.History" {
                        history = v.as_str().filter(|s| !s.is_empty()).map(ToOwned::to_owned);
                        continue;
                    }
                    fields.insert(reference, v);
                }
                "remove" => {
                    fields.remove(&reference);
                }
                other => {
                    return Err(PatchError::Invalid(format!(
                        "TF401349: The operation {other} is not supported on {path}."
                    )));
                }
            }
            continue;
        }
        if path == "/relations/-" && kind == "add" {
            let rel = value
                .get("rel")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let url = value
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if rel.is_empty() || url.is_empty() {
                return Err(PatchError::Invalid(
                    "TF401349: A relation needs rel and url.".into(),
                ));
            }
            let mut relation = json!({"rel": rel, "url": url, "attributes": value.get("attributes").cloned().unwrap_or(json!({}))});
            if rel == "AttachedFile" {
                let aid = url
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .to_lowercase();
                let Some((name, data)) = st.attachments.get(&aid) else {
                    return Err(PatchError::Invalid(format!(
                        "TF401349: The attachment {aid} does not exist."
                    )));
                };
                let now = fmt_date(ado.now());
                relation["url"] =
                    Value::String(url.split('?').next().unwrap_or_default().to_owned());
                let attrs = relation["attributes"]
                    .as_object_mut()
                    .map(std::mem::take)
                    .unwrap_or_default();
                let mut attrs = attrs;
                attrs.insert("authorizedDate".into(), Value::String(now.clone()));
                attrs.insert("id".into(), json!(relations.len() + 1));
                attrs.insert("resourceCreatedDate".into(), Value::String(now.clone()));
                attrs.insert("resourceModifiedDate".into(), Value::String(now));
                attrs.insert(
                    "revisedDate".into(),
                    Value::String("9999-01-01T00:00:00Z".into()),
                );
                attrs.insert("resourceSize".into(), json!(data.len()));
                attrs.insert("name".into(), Value::String(name.clone()));
                relation["attributes"] = Value::Object(attrs);
            }
            added.push(relation.clone());
            relations.push(relation);
            continue;
        }
        if let Some(index) = path.strip_prefix("/relations/") {
            let i: usize = index
                .split('/')
                .next()
                .and_then(|x| x.parse().ok())
                .ok_or_else(|| PatchError::Invalid(format!("TF401349: Invalid path {path}.")))?;
            if i >= relations.len() {
                return Err(PatchError::Invalid(format!(
                    "TF401349: There is no relation at index {i}."
                )));
            }
            if kind == "remove" {
                removed.push(relations.remove(i));
                continue;
            }
            if let Some(attr) = index.split_once("/attributes/").map(|(_, a)| a) {
                relations[i]["attributes"][attr] = value;
                continue;
            }
            return Err(PatchError::Invalid(format!(
                "TF401349: The operation {kind} is not supported on {path}."
            )));
        }
        return Err(PatchError::Invalid(format!(
            "TF401349: The path {path} is not supported."
        )));
    }
    // Stored to the millisecond, as answered: two revisions within one millisecond would
    // otherwise share a ChangedDate, which the service never lets happen ("dates must be
    // increasing with each revision").
    let now_raw = chrono::DurationRound::duration_trunc(ado.now(), TimeDelta::milliseconds(1))
        .unwrap_or_else(|_| ado.now());
    let prev = existing.as_ref().map(|w| w.changed_at);
    let now = match prev {
        Some(p) if now_raw <= p => p + TimeDelta::milliseconds(1),
        _ => now_raw,
    };
    let now_s = fmt_date(now);
    let who = by.stored();
    // Rules.
    if !flags.bypass_rules {
        let title_empty = fields
            .get("System.Title")
            .and_then(Value::as_str)
            .is_none_or(|s| s.trim().is_empty());
        if title_empty {
            return Err(PatchError::Rule(
                "System.Title".into(),
                "Title".into(),
                "Required, InvalidEmpty",
            ));
        }
        let old_state = existing
            .as_ref()
            .and_then(|w| w.fields.get("System.State"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let requested = fields
            .get("System.State")
            .and_then(Value::as_str)
            .map(ToOwned::to_owned);
        let new_state = match requested {
            None if existing.is_none() => t.initial_state().to_owned(),
            None => old_state.clone(),
            Some(s) => t
                .state_named(&s)
                .ok_or_else(|| {
                    PatchError::Rule(
                        "System.State".into(),
                        "State".into(),
                        "HasValues, LimitedToValues, InvalidListValue",
                    )
                })?
                .to_owned(),
        };
        fields.insert("System.State".into(), Value::String(new_state.clone()));
        if new_state != old_state {
            let reasons = match t.reasons(&old_state, &new_state) {
                Some(r) => r,
                None if ado.config.enforce_transitions => {
                    return Err(PatchError::Rule(
                        "System.State".into(),
                        "State".into(),
                        "HasValues, LimitedToValues, AllowsOldValue, InvalidListValue",
                    ));
                }
                None => &["Moved"][..],
            };
            let reason = match fields
                .get("System.Reason")
                .and_then(Value::as_str)
                .filter(|_| set.contains("System.Reason"))
            {
                Some(r) => (*reasons
                    .iter()
                    .find(|x| x.eq_ignore_ascii_case(r))
                    .ok_or_else(|| {
                        PatchError::Rule(
                            "System.Reason".into(),
                            "Reason".into(),
                            "HasValues, LimitedToValues, InvalidListValue",
                        )
                    })?)
                .to_owned(),
                None => reasons[0].to_owned(),
            };
            fields.insert("System.Reason".into(), Value::String(reason.clone()));
            fields.insert(
                "Microsoft.VSTS.Common.StateChangeDate".into(),
                Value::String(now_s.clone()),
            );
            match t.category(&new_state) {
                "InProgress" => {
                    fields.insert(
                        "Microsoft.VSTS.Common.ActivatedDate".into(),
                        Value::String(now_s.clone()),
                    );
                    fields.insert("Microsoft.VSTS.Common.ActivatedBy".into(), who.clone());
                }
                "Resolved"
                    if t.fields()
                        .any(|f| f.0 == "Microsoft.VSTS.Common.ResolvedDate") =>
                {
                    fields.insert(
                        "Microsoft.VSTS.Common.ResolvedDate".into(),
                        Value::String(now_s.clone()),
                    );
                    fields.insert("Microsoft.VSTS.Common.ResolvedBy".into(), who.clone());
                    if t.fields()
                        .any(|f| f.0 == "Microsoft.VSTS.Common.ResolvedReason")
                    {
                        fields.insert(
                            "Microsoft.VSTS.Common.ResolvedReason".into(),
                            Value::String(reason),
                        );
                    }
                }
                "Completed" => {
                    fields.insert(
                        "Microsoft.VSTS.Common.ClosedDate".into(),
                        Value::String(now_s.clone()),
                    );
                    fields.insert("Microsoft.VSTS.Common.ClosedBy".into(), who.clone());
                }
                _ => {}
            }
            if t.category(&new_state) != "Completed" {
                fields.remove("Microsoft.VSTS.Common.ClosedDate");
                fields.remove("Microsoft.VSTS.Common.ClosedBy");
            }
            if matches!(t.category(&new_state), "InProgress" | "Proposed") {
                fields.remove("Microsoft.VSTS.Common.ResolvedDate");
                fields.remove("Microsoft.VSTS.Common.ResolvedBy");
                fields.remove("Microsoft.VSTS.Common.ResolvedReason");
            }
        }
    }
    if flags.validate_only {
        return Ok(id.unwrap_or(0));
    }
    let id = match id {
        Some(i) => i,
        None => {
            st.next_id += 1;
            st.next_id
        }
    };
    let rev = existing.as_ref().map_or(1, |w| w.rev + 1);
    if existing.is_none() {
        let defaults: [(&str, Value); 8] = [
            ("System.AreaId", json!(AREA_ID)),
            ("System.IterationId", json!(ITERATION_ID)),
            ("System.AreaPath", Value::String(ado.config.project.clone())),
            (
                "System.IterationPath",
                Value::String(ado.config.project.clone()),
            ),
            ("System.CreatedDate", Value::String(now_s.clone())),
            ("System.CreatedBy", who.clone()),
            ("System.CommentCount", json!(0)),
            ("Microsoft.VSTS.Common.Priority", json!(2)),
        ];
        for (k, v) in defaults {
            if t.fields().any(|f| f.0 == k) || k.starts_with("System.") {
                fields.entry(k.to_owned()).or_insert(v);
            }
        }
        if t.fields().any(|f| f.0 == "Microsoft.VSTS.Common.Severity") {
            fields
                .entry("Microsoft.VSTS.Common.Severity".into())
                .or_insert(json!("3 - Medium"));
        }
        if t.fields().any(|f| f.0 == "Microsoft.VSTS.Common.ValueArea") {
            fields
                .entry("Microsoft.VSTS.Common.ValueArea".into())
                .or_insert(json!("Business"));
        }
        if flags.bypass_rules {
            fields
                .entry("System.State".into())
                .or_insert(json!(t.initial_state()));
            fields
                .entry("System.Reason".into())
                .or_insert(json!(t.initial_reasons[0]));
        }
    }
    fields.insert("System.Id".into(), json!(id));
    fields.insert("System.Rev".into(), json!(rev));
    fields.insert(
        "System.TeamProject".into(),
        Value::String(ado.config.project.clone()),
    );
    fields.insert(
        "System.WorkItemType".into(),
        Value::String(t.name.to_owned()),
    );
    if !(flags.bypass_rules && set.contains("System.ChangedDate")) {
        fields.insert("System.ChangedDate".into(), Value::String(now_s));
    }
    if !(flags.bypass_rules && set.contains("System.ChangedBy")) {
        fields.insert("System.ChangedBy".into(), who);
    }
    let changed_at = fields
        .get("System.ChangedDate")
        .and_then(Value::as_str)
        .and_then(parse_date)
        .unwrap_or(now);
    let mut wi = existing.unwrap_or(Wi {
        id,
        rev: 0,
        wtype: t,
        fields: BTreeMap::new(),
        relations: Vec::new(),
        revisions: Vec::new(),
        updates: Vec::new(),
        comments: Vec::new(),
        history_rev: None,
        changed_at,
    });
    if let Some(text) = &history {
        st.next_comment += 1;
        wi.comments.push(CommentRec {
            id: st.next_comment,
            text: text.clone(),
            format: "html",
            by: by.clone(),
            at: now,
            modified_at: now,
            version: 1,
            deleted: false,
            rev,
        });
        let count = wi.comments.iter().filter(|c| !c.deleted).count();
        fields.insert("System.CommentCount".into(), json!(count));
        wi.history_rev = Some(rev);
    }
    let mut diff = Map::new();
    for (k, v) in &fields {
        let old = wi.fields.get(k);
        if old != Some(v) {
            let mut d = Map::new();
            if let Some(o) = old {
                d.insert("oldValue".into(), o.clone());
            }
            d.insert("newValue".into(), v.clone());
            diff.insert(k.clone(), Value::Object(d));
        }
    }
    for (k, o) in &wi.fields {
        if !fields.contains_key(k) {
            diff.insert(k.clone(), json!({"oldValue": o}));
        }
    }
    if let Some(text) = &history {
        diff.insert("System.History".into(), json!({"newValue": text}));
    }
    wi.rev = rev;
    wi.fields = fields;
    wi.relations = relations;
    wi.changed_at = changed_at;
    let mut snapshot = wi.fields.clone();
    if let Some(text) = &history {
        snapshot.insert("System.History".into(), Value::String(text.clone()));
    }
    wi.revisions.push(Revision {
        rev,
        fields: snapshot,
        relations: wi.relations.clone(),
    });
    wi.updates.push(UpdateRec {
        rev,
        by: by.clone(),
        at: now,
        fields: diff,
        added,
        removed,
    });
    st.put(wi);
    Ok(id)
}
