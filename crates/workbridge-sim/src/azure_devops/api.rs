//! The Work Item Tracking routes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use super::process::{FieldSpec, WitType};
use super::wiql;
use super::{
    Ado, CommentRec, Identity, Revision, Store, UpdateRec, Wi, ado_error, ado_error_with,
    json_response, lock,
};

/// A parsed api-version.
#[derive(Debug, Clone)]
pub(crate) struct ApiVersion {
    major: u32,
    minor: u32,
    preview: bool,
    raw: String,
}

impl ApiVersion {
    fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

pub(crate) struct Ctx {
    v: ApiVersion,
    p: HashMap<String, String>,
}

fn params(raw: Option<&str>) -> HashMap<String, String> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    })
    .unwrap_or_default()
}

/// Checks organization, project and api-version; returns the parameters.
fn prelude(
    ado: &Ado,
    org: &str,
    project: Option<&str>,
    raw: Option<&str>,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Ctx, Response> {
    if !org.eq_ignore_ascii_case(&ado.config.organization) {
        return Err(ado_error_with(
            StatusCode::NOT_FOUND,
            "HostNotFoundException",
            "Microsoft.VisualStudio.Services.WebApi",
            &format!(
                "TF400813: The resource cannot be found: the organization or collection {org} does not exist."
            ),
            3000,
            None,
        ));
    }
    if let Some(p) = project
        && !p.eq_ignore_ascii_case(&ado.config.project)
        && p != ado.config.project_id
    {
        return Err(ado_error_with(
            StatusCode::NOT_FOUND,
            "ProjectDoesNotExistWithNameException",
            "Microsoft.TeamFoundation.Core.WebApi",
            &format!(
                "TF200016: The following project does not exist: {p}. Verify that the name of the project is correct and that the project exists on the specified Azure DevOps Server."
            ),
            3000,
            None,
        ));
    }
    let p = params(raw);
    let from_accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| {
            a.split(';').find_map(|part| {
                part.trim()
                    .strip_prefix("api-version=")
                    .map(ToOwned::to_owned)
            })
        });
    let Some(raw_v) = p.get("api-version").cloned().or(from_accept) else {
        return Err(ado_error_with(
            StatusCode::BAD_REQUEST,
            "VssVersionNotSpecifiedException",
            "Microsoft.VisualStudio.Services.WebApi",
            &format!(
                "No api-version was supplied for the \"{method}\" request. The version must be supplied either as part of the Accept header (e.g. \"application/json; api-version=1.0\") or as a query parameter (e.g. '?api-version=1.0')."
            ),
            3000,
            None,
        ));
    };
    let (num, preview) = match raw_v.split_once('-') {
        Some((n, rest)) => (n.to_owned(), rest.starts_with("preview")),
        None => (raw_v.clone(), false),
    };
    let mut parts = num.split('.');
    let major: Option<u32> = parts.next().and_then(|x| x.parse().ok());
    let minor: u32 = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let Some(major) = major else {
        return Err(ado_error_with(
            StatusCode::BAD_REQUEST,
            "VssInvalidApiVersionException",
            "Microsoft.VisualStudio.Services.WebApi",
            &format!("The api-version '{raw_v}' is not valid."),
            3000,
            None,
        ));
    };
    let (max_major, max_minor) = ado.config.server.max_api();
    if (major, minor) > (max_major, max_minor) {
        return Err(ado_error_with(
            StatusCode::BAD_REQUEST,
            "VssVersionOutOfRangeException",
            "Microsoft.VisualStudio.Services.WebApi",
            &format!(
                "The requested REST API version of {major}.{minor} is out of range for this server. The latest REST API version this server supports is {max_major}.{max_minor}."
            ),
            3000,
            None,
        ));
    }
    Ok(Ctx {
        v: ApiVersion {
            major,
            minor,
            preview,
            raw: raw_v,
        },
        p,
    })
}

fn preview_required(v: &ApiVersion) -> Option<Response> {
    (!v.preview).then(|| {
        ado_error_with(
            StatusCode::BAD_REQUEST,
            "VssInvalidPreviewVersionException",
            "Microsoft.VisualStudio.Services.WebApi",
            &format!("The requested version \"{}.{}\" of the resource is under preview. The -preview flag must be supplied in the api-version for such requests. For example: \"{}.{}-preview\"", v.major, v.minor, v.major, v.minor),
            3000,
            None,
        )
    })
}

fn not_registered(ado: &Ado, location: &str) -> Response {
    ado_error_with(
        StatusCode::NOT_FOUND,
        "VssResourceNotFoundException",
        "Microsoft.VisualStudio.Services.WebApi",
        &format!(
            "API resource location {location} is not registered on {}.",
            ado.collection_url()
        ),
        3000,
        None,
    )
}

fn item_not_found(id: u64) -> Response {
    ado_error(
        StatusCode::NOT_FOUND,
        "WorkItemUnauthorizedAccessException",
        &format!(
            "TF401232: Work item {id} does not exist, or you do not have permissions to read it."
        ),
    )
}

fn bad_request(message: &str) -> Response {
    ado_error_with(
        StatusCode::BAD_REQUEST,
        "ArgumentException",
        "System",
        message,
        3000,
        None,
    )
}

fn ok(v: &ApiVersion, body: &Value) -> Response {
    json_response(StatusCode::OK, body, Some(&v.raw))
}

pub(crate) fn fmt_date(t: DateTime<Utc>) -> String {
    let ms = t.timestamp_subsec_millis();
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    if ms == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{ms:03}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

// ---------------------------------------------------------------------------------------------
// Fields

/// The classification node ids of the project's root area and iteration.
const AREA_ID: u64 = 10;
const ITERATION_ID: u64 = 11;

fn field_specs(ado: &Ado, t: &WitType) -> Vec<(String, String, &'static str, bool, Vec<String>)> {
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

fn field_type(ado: &Ado, name: &str) -> Option<&'static str> {
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

fn canonical_field(
    ado: &Ado,
    t: &WitType,
    name: &str,
) -> Option<(String, &'static str, bool, Vec<String>)> {
    field_specs(ado, t)
        .into_iter()
        .find(|(r, n, ..)| r.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(name))
        .map(|(r, _, ty, ro, allowed)| (r, ty, ro, allowed))
}

fn render_identity(v: &Value, api: &ApiVersion, base: &str) -> Value {
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
fn render_identity_ref(v: &Value, api: &ApiVersion, base: &str) -> Value {
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

fn render_fields(
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
enum Expand {
    None,
    Relations,
    Fields,
    Links,
    All,
}

fn expand_of(p: &HashMap<String, String>) -> Expand {
    expand_named(p.get("$expand").map(String::as_str))
}

/// `$expand` by name or by the number of the `WorkItemExpand` enum (the Node client sends
/// numbers: none 0, relations 1, fields 2, links 3, all 4).
fn expand_named(v: Option<&str>) -> Expand {
    match v.map(str::to_ascii_lowercase).as_deref() {
        Some("relations" | "1") => Expand::Relations,
        Some("fields" | "2") => Expand::Fields,
        Some("links" | "3") => Expand::Links,
        Some("all" | "4") => Expand::All,
        _ => Expand::None,
    }
}

fn render_item(
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

// ---------------------------------------------------------------------------------------------
// JSON Patch

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

const READ_ONLY_WITH_BYPASS: [&str; 4] = [
    "System.CreatedDate",
    "System.ChangedDate",
    "System.CreatedBy",
    "System.ChangedBy",
];

fn value_for(
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

fn json_eq(a: Option<&Value>, b: &Value) -> bool {
    match (a, b) {
        (None, Value::Null) => true,
        (Some(x), y) => {
            x == y
                || x.as_str().is_some_and(|s| Some(s) == y.as_str())
                || x.to_string().trim_matches('"') == y.to_string().trim_matches('"')
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
    let now_raw = ado.now();
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
    st.items.insert(id, wi);
    Ok(id)
}

// ---------------------------------------------------------------------------------------------
// Handlers

macro_rules! pre {
    ($ado:expr, $org:expr, $project:expr, $raw:expr, $headers:expr, $method:expr) => {
        match prelude(&$ado, &$org, $project, $raw.as_deref(), &$headers, &$method) {
            Ok(c) => c,
            Err(r) => return r,
        }
    };
}

/// The fallback: 404 naming the path as the client sent it (before case folding).
pub(crate) async fn unknown_fallback(
    method: Method,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Response {
    unknown_route(method, uri).await
}

pub(crate) async fn unknown_route(method: Method, uri: axum::http::Uri) -> Response {
    let _ = method;
    ado_error_with(
        StatusCode::NOT_FOUND,
        "VssResourceNotFoundException",
        "Microsoft.VisualStudio.Services.WebApi",
        &format!(
            "The controller for path '{}' was not found or does not implement IController.",
            uri.path()
        ),
        3000,
        None,
    )
}

const LOCATIONS: [(&str, &str, &str, &str, u32, &str); 14] = [
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
const WIT_AREA: &str = "5264459e-e5e0-4bd8-b118-0985e68a4ec5";

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

fn text_forms(v: &Value) -> Vec<String> {
    match v {
        Value::Object(m) => {
            let g = |k: &str| {
                m.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_lowercase()
            };
            vec![
                g("displayName"),
                g("uniqueName"),
                format!("{} <{}>", g("displayName"), g("uniqueName")),
            ]
        }
        Value::String(s) => vec![s.to_lowercase()],
        other => vec![other.to_string().to_lowercase()],
    }
}

pub(crate) async fn wiql(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Project and team are optional route segments; a team narrows nothing here.
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::POST);
    let Some(text) = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.get("query")
            .and_then(Value::as_str)
            .map(ToOwned::to_owned)
    }) else {
        return bad_request("The request body must be a WIQL object: {\"query\": \"SELECT ...\"}.");
    };
    if text.len() > 32 * 1024 {
        return bad_request(
            "TF51006: The query is too long: a WIQL query is limited to 32K characters.",
        );
    }
    let q = match wiql::parse(&text) {
        Ok(q) => q,
        Err(at) => {
            return ado_error(
                StatusCode::BAD_REQUEST,
                "SyntaxException",
                &format!(
                    "TF51006: The query statement is not valid. The error is caused by «{at}»."
                ),
            );
        }
    };
    let mut named = q.fields.clone();
    if let Some(f) = &q.filter {
        f.fields(&mut named);
    }
    named.extend(q.order.iter().map(|(f, _)| f.clone()));
    if let Some(bad) = named.iter().find(|f| field_type(&ado, f).is_none()) {
        return ado_error(
            StatusCode::BAD_REQUEST,
            "QueryException",
            &format!(
                "TF51005: The query references a field that does not exist. The error is caused by «{bad}»."
            ),
        );
    }
    let time_precision = ctx
        .p
        .get("timePrecision")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let top: Option<usize> = ctx.p.get("$top").and_then(|v| v.parse().ok());
    let now = ado.now();
    let me = vec![
        ado.config.me.display.clone(),
        ado.config.me.unique.clone(),
        format!("{} <{}>", ado.config.me.display, ado.config.me.unique),
    ];
    let ectx = wiql::Ctx {
        project: &ado.config.project,
        me: &me,
        today: now.date_naive(),
        time_precision,
    };
    let st = lock(&ado.store);
    let get_val = |wi: &Wi, f: &str| -> wiql::Val {
        let key = wi
            .fields
            .keys()
            .find(|k| k.eq_ignore_ascii_case(f))
            .cloned();
        match key.and_then(|k| wi.fields.get(&k)) {
            None | Some(Value::Null) => wiql::Val::Empty,
            Some(v) => match field_type(&ado, f) {
                Some("dateTime") => v
                    .as_str()
                    .and_then(parse_date)
                    .map_or(wiql::Val::Empty, wiql::Val::Time),
                Some("integer" | "double") => v.as_f64().map_or(wiql::Val::Empty, wiql::Val::Num),
                _ => wiql::Val::Text(text_forms(v)),
            },
        }
    };
    let mut hits: Vec<&Wi> = Vec::new();
    for wi in st.items.values() {
        let keep = match &q.filter {
            None => true,
            Some(e) => match e.eval(&|f| get_val(wi, f), &ectx) {
                Ok(b) => b,
                Err(e) if e.starts_with("DATEPRECISION:") => {
                    return ado_error(
                        StatusCode::BAD_REQUEST,
                        "QueryException",
                        &format!(
                            "You cannot supply a time with the date when running a query using date precision. The error is caused by «{}».",
                            e.trim_start_matches("DATEPRECISION:")
                        ),
                    );
                }
                Err(at) => {
                    return ado_error(
                        StatusCode::BAD_REQUEST,
                        "QueryException",
                        &format!(
                            "TF51006: The query statement is not valid. The error is caused by «{at}»."
                        ),
                    );
                }
            },
        };
        if keep {
            hits.push(wi);
        }
    }
    let cmp_val = |a: &wiql::Val, b: &wiql::Val| -> std::cmp::Ordering {
        use wiql::Val::{Empty, Num, Text, Time};
        match (a, b) {
            (Num(x), Num(y)) => x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal),
            (Time(x), Time(y)) => x.cmp(y),
            (Text(x), Text(y)) => x.first().cmp(&y.first()),
            (Empty, Empty) => std::cmp::Ordering::Equal,
            (Empty, _) => std::cmp::Ordering::Less,
            (_, Empty) => std::cmp::Ordering::Greater,
            _ => std::cmp::Ordering::Equal,
        }
    };
    hits.sort_by(|a, b| {
        for (f, desc) in &q.order {
            let o = cmp_val(&get_val(a, f), &get_val(b, f));
            let o = if *desc { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        a.id.cmp(&b.id)
    });
    if top.is_none() && hits.len() > ado.config.wiql_cap {
        return ado_error(
            StatusCode::BAD_REQUEST,
            "WorkItemTrackingQueryResultSizeLimitExceededException",
            &format!(
                "VS402337: The number of work items returned exceeds the size limit of {}. Change the query to return fewer items.",
                ado.config.wiql_cap
            ),
        );
    }
    if let Some(n) = top {
        hits.truncate(n);
    }
    let base = ado.collection_url();
    let col = |f: &str| json!({"referenceName": f, "name": f.rsplit('.').next().unwrap_or(f), "url": format!("{base}/_apis/wit/fields/{f}")});
    let body = json!({
        "queryType": "flat",
        "queryResultType": "workItem",
        // A real server's clock is never behind a ChangedDate it wrote; a frozen test clock can be.
        "asOf": fmt_date(st.items.values().map(|w| w.changed_at).max().map_or(now, |m| m.max(now))),
        "columns": q.fields.iter().map(|f| col(f)).collect::<Vec<_>>(),
        "sortColumns": q.order.iter().map(|(f, d)| json!({"field": col(f), "descending": d})).collect::<Vec<_>>(),
        "workItems": hits.iter().map(|w| json!({"id": w.id, "url": format!("{base}/_apis/wit/workItems/{}", w.id)})).collect::<Vec<_>>(),
    });
    ok(&ctx.v, &body)
}

fn read_items(
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

fn parse_ids(s: &str) -> Result<Vec<u64>, String> {
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

fn org_project(path: &[(String, String)]) -> (String, Option<String>) {
    let get = |k: &str| path.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    (get("org").unwrap_or_default(), get("project"))
}

pub(crate) async fn batch_get(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::POST);
    if !ctx.v.at_least(5, 0) || ado.config.server < super::ServerVersion::Server2019 {
        return not_registered(&ado, "908509b6-4248-4475-a1cd-829139ba419f");
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("The request body is not valid JSON.");
    };
    let ids: Vec<u64> = req
        .get("ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    if ids.is_empty() {
        return bad_request("The ids of the request are required.");
    }
    let fields: Option<Vec<String>> = req.get("fields").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(ToOwned::to_owned)
            .collect()
    });
    let as_of = req.get("asOf").and_then(Value::as_str).and_then(parse_date);
    let expand_raw = req.get("$expand").map(|e| match e {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let expand = expand_named(expand_raw.as_deref());
    let omit = req
        .get("errorPolicy")
        .and_then(Value::as_str)
        .is_some_and(|e| e.eq_ignore_ascii_case("omit"));
    read_items(&ado, &ctx, &ids, fields.as_deref(), as_of, expand, omit)
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

fn patch_flags(p: &HashMap<String, String>) -> PatchFlags {
    let flag = |k: &str| p.get(k).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    PatchFlags {
        validate_only: flag("validateOnly"),
        bypass_rules: flag("bypassRules"),
    }
}

fn patch_body(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Value>, Response> {
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

fn create_inner(ado: &Ado, ctx: &Ctx, wtype: &str, headers: &HeaderMap, body: &[u8]) -> Response {
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
    let ops = match patch_body(headers, body) {
        Ok(o) => o,
        Err(r) => return r,
    };
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
    let ops = match patch_body(&headers, &body) {
        Ok(o) => o,
        Err(r) => return r,
    };
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
    let Some(wi) = st.items.remove(&id) else {
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

fn find_item(ado: &Ado, path: &[(String, String)]) -> Result<(u64, Wi), Response> {
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

fn page<T: Clone>(all: &[T], p: &HashMap<String, String>) -> Vec<T> {
    let skip: usize = p.get("$skip").and_then(|v| v.parse().ok()).unwrap_or(0);
    let top: usize = p.get("$top").and_then(|v| v.parse().ok()).unwrap_or(200);
    all.iter().skip(skip).take(top).cloned().collect()
}

pub(crate) async fn updates(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::GET);
    let (id, wi) = match find_item(&ado, &path) {
        Ok(x) => x,
        Err(r) => return r,
    };
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

/// The one entry a `…/{n}` route asks for, or 404.
fn single(v: &ApiVersion, value: Vec<Value>, what: &str) -> Response {
    match value.into_iter().next() {
        Some(x) => ok(v, &x),
        None => ado_error(
            StatusCode::NOT_FOUND,
            "WorkItemRevisionNotFoundException",
            &format!("TF401353: The {what} requested for the work item does not exist."),
        ),
    }
}

pub(crate) async fn revisions(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::GET);
    let (id, wi) = match find_item(&ado, &path) {
        Ok(x) => x,
        Err(r) => return r,
    };
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

fn render_comment(ado: &Ado, id: u64, c: &CommentRec, v: &ApiVersion) -> Value {
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
fn revision_comments(ado: &Ado, v: &ApiVersion) -> bool {
    ado.config.server >= super::ServerVersion::Tfs2018 && v.at_least(4, 1) && !v.at_least(5, 1)
}

/// A revision-based comment: its author is an `IdentityReference`, as the 4.1 recordings show.
fn revision_comment(base: &str, id: u64, c: &CommentRec, v: &ApiVersion) -> Value {
    json!({"revision": c.rev, "text": c.text, "revisedBy": render_identity_ref(&c.by.stored(), v, base), "revisedDate": fmt_date(c.at), "url": format!("{base}/_apis/wit/workItems/{id}/comments/{}", c.rev)})
}

fn comments_available(ado: &Ado, v: &ApiVersion) -> Option<Response> {
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
    let (id, wi) = match find_item(&ado, &path) {
        Ok(x) => x,
        Err(r) => return r,
    };
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
    let (id, wi) = match find_item(&ado, &path) {
        Ok(x) => x,
        Err(r) => return r,
    };
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

fn comment_id(path: &[(String, String)]) -> Option<u64> {
    path.iter()
        .find(|(k, _)| k == "cid")
        .and_then(|(_, v)| v.parse().ok())
}

fn comment_not_found(cid: u64) -> Response {
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
        let (id, wi) = match find_item(&ado, &path) {
            Ok(x) => x,
            Err(r) => return r,
        };
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
    let (id, wi) = match find_item(&ado, &path) {
        Ok(x) => x,
        Err(r) => return r,
    };
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
    let (id, _) = match find_item(&ado, &path) {
        Ok(x) => x,
        Err(r) => return r,
    };
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
    let (id, _) = match find_item(&ado, &path) {
        Ok(x) => x,
        Err(r) => return r,
    };
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

pub(crate) async fn upload(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::POST);
    let name = ctx
        .p
        .get("fileName")
        .cloned()
        .unwrap_or_else(|| "attachment".into());
    if ctx
        .p
        .get("uploadType")
        .is_some_and(|u| u.eq_ignore_ascii_case("chunked"))
    {
        return bad_request(
            "Chunked uploads are not supported by this server; upload the file in one request.",
        );
    }
    if body.len() > 130 * 1024 * 1024 {
        return ado_error(
            StatusCode::BAD_REQUEST,
            "WorkItemAttachmentExceedsMaxSizeException",
            "VS402593: The attachment exceeds the maximum size of 130 MB.",
        );
    }
    let n: u128 = {
        use rand::{Rng, SeedableRng};
        rand::rngs::StdRng::from_os_rng().random()
    };
    let h = format!("{n:032x}");
    let aid = format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    );
    lock(&ado.store)
        .attachments
        .insert(aid.clone(), (name.clone(), body));
    let url = format!(
        "{}/_apis/wit/attachments/{aid}?fileName={}",
        ado.collection_url(),
        url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
    );
    json_response(
        StatusCode::CREATED,
        &json!({"id": aid, "url": url}),
        Some(&ctx.v.raw),
    )
}

pub(crate) async fn download(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (org, project) = org_project(&path);
    let _ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::GET);
    let aid = path
        .iter()
        .find(|(k, _)| k == "aid")
        .map(|(_, v)| v.to_lowercase())
        .unwrap_or_default();
    let Some((name, data)) = lock(&ado.store).attachments.get(&aid).cloned() else {
        return ado_error(
            StatusCode::NOT_FOUND,
            "AttachmentNotFoundException",
            &format!("VS402594: Attachment {aid} does not exist."),
        );
    };
    let mut r = Response::new(Body::from(data));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        name.replace('"', "")
    )) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

pub(crate) async fn batch_write(
    State(ado): State<Arc<Ado>>,
    Path(org): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = pre!(ado, org, None, raw, headers, Method::PATCH);
    let Ok(Value::Array(requests)) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("The batch body must be an array of requests.");
    };
    if requests.len() > 200 {
        return bad_request(&format!(
            "VS403474: You requested {} work items which exceeds the limit of 200",
            requests.len()
        ));
    }
    let Some(router) = ado.router.get().cloned() else {
        return bad_request("The server is starting.");
    };
    let auth = headers.get(header::AUTHORIZATION).cloned();
    let mut value = Vec::new();
    for r in requests {
        let method = r
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("PATCH")
            .to_uppercase();
        let uri = r.get("uri").and_then(Value::as_str).unwrap_or_default();
        let uri = if uri.starts_with(&format!("/{}", ado.config.organization)) {
            uri.to_owned()
        } else {
            format!("/{}{uri}", ado.config.organization)
        };
        let lowered = match uri.find("/_apis") {
            Some(pos) => format!("{}{}", &uri[..pos], {
                let rest = &uri[pos..];
                match rest.split_once('?') {
                    Some((p, q)) => format!("{}?{q}", p.to_lowercase()),
                    None => rest.to_lowercase(),
                }
            }),
            None => uri.clone(),
        };
        let mut b = axum::http::Request::builder()
            .method(method.as_str())
            .uri(lowered);
        if let Some(h) = r.get("headers").and_then(Value::as_object) {
            for (k, v) in h {
                if let Some(v) = v.as_str() {
                    b = b.header(k.as_str(), v);
                }
            }
        }
        if let Some(a) = &auth {
            b = b.header(header::AUTHORIZATION, a.clone());
        }
        let sub_body = r
            .get("body")
            .map(|v| {
                if let Value::String(s) = v {
                    s.clone()
                } else {
                    v.to_string()
                }
            })
            .unwrap_or_default();
        let Ok(sub) = b.body(Body::from(sub_body)) else {
            value.push(json!({"code": 400, "headers": {}, "body": "{\"message\":\"The request is not valid.\"}"}));
            continue;
        };
        let resp: Response = match router.clone().oneshot(sub).await {
            Ok(x) => x,
            Err(never) => match never {},
        };
        let code = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        value.push(json!({"code": code, "headers": {"Content-Type": "application/json; charset=utf-8"}, "body": String::from_utf8_lossy(&bytes)}));
    }
    ok(&ctx.v, &json!({"count": value.len(), "value": value}))
}

fn type_json(ado: &Ado, t: &WitType, v: &ApiVersion) -> Value {
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

fn type_or_404(ado: &Ado, name: &str) -> Result<&'static WitType, Response> {
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
    let t = match type_or_404(&ado, &wtype) {
        Ok(t) => t,
        Err(r) => return r,
    };
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
fn field_json(
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
    let t = match type_or_404(&ado, &wtype) {
        Ok(t) => t,
        Err(r) => return r,
    };
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
