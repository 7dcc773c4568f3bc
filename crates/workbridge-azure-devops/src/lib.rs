//! The Azure DevOps / TFS adapter of workbridge: work items of any type (Bug, Task, User
//! Story, ...) in one project, on Azure DevOps Services, Azure DevOps Server or TFS 2015+.
//!
//! - `changes` runs WIQL with `timePrecision=true` and a keyset on `(ChangedDate, Id)`, `$top`
//!   per page (so a backlog beyond the 20,000-result cap is read in windows), then reads the
//!   items 200 at a time with `workitemsbatch` — never one request per item — as of the
//!   query's time, so the order it pages in is the order it read.
//! - `update` sends JSON Patch with `test /rev` for `if_version` (412 → Conflict).
//! - Identity fields become [`Person`]s (objects on 5.0+, `"Name <email>"` strings before).
//! - Comments use the Comments API where the server has it, `System.History` before.
//! - Correlation keys live in a configured field, or in a `workbridge:{key}` tag.
//! - `write_many` goes through `$batch`.
//!
//! ```
//! use workbridge_core::{CreateOptions, FieldMap, ItemType, Repository};
//! use workbridge_azure_devops::{AzureDevOpsConfig, AzureDevOpsRepository};
//! use workbridge_http::ClientOptions;
//! use workbridge_sim::azure_devops::AzureDevOpsSim;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sim = AzureDevOpsSim::builder().pat("TOKEN").spawn().await?;
//! let config = AzureDevOpsConfig::builder(sim.collection_url(), "Fabrikam")
//!     .pat("TOKEN")
//!     .client_options(ClientOptions::default().allow_http(true))
//!     .build();
//! let ado = AzureDevOpsRepository::new(config)?;
//! let bug = ado
//!     .create(&ItemType::from("Bug"), &FieldMap::new().with("System.Title", "Invoices print blank"), &CreateOptions::default().correlation("INC0010001"))
//!     .await?;
//! assert_eq!(bug.field("System.State").map(ToString::to_string).as_deref(), Some("New"));
//! assert_eq!(ado.find_by_correlation(&ItemType::from("Bug"), &"INC0010001".into()).await?.unwrap().id, bug.id);
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod error;

pub use config::{AzureDevOpsAuth, AzureDevOpsConfig, AzureDevOpsConfigBuilder, ServerVersion};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::sync::RwLock;
use workbridge_core::{
    AttachmentMeta, Capabilities, ChangeOptions, ChangePage, Comment, CorrelationKey,
    CreateOptions, Cursor, Error, ErrorKind, FieldDef, FieldKind, FieldMap, FieldName, FieldValue,
    GetOptions, ItemId, ItemType, KeysetScan, NewAttachment, NewComment, Person, Repository,
    Result, Schema, TextFormat, TransitionGraph, UpdateOptions, Version, Visibility, WorkItem,
    Write,
};
use workbridge_http::header::HeaderName;
use workbridge_http::{
    AuthProvider, BasicAuth, BearerAuth, HttpClient, HttpResponse, Method, StatusCode,
};

const BATCH: usize = 200;
const MEMBER_FIELDS: [&str; 5] = [
    "System.Id",
    "System.Rev",
    "System.ChangedDate",
    "System.ChangedBy",
    "System.WorkItemType",
];

#[derive(Debug, Clone)]
struct FieldMeta {
    name: String,
    ty: String,
    identity: bool,
    read_only: bool,
    required: bool,
    allowed: Vec<String>,
}

impl FieldMeta {
    fn kind(&self) -> FieldKind {
        if self.identity {
            return FieldKind::Person;
        }
        if !self.allowed.is_empty() {
            return FieldKind::Choice;
        }
        match self.ty.as_str() {
            "integer" => FieldKind::Int,
            "double" => FieldKind::Float,
            "dateTime" => FieldKind::DateTime,
            "boolean" => FieldKind::Bool,
            "html" | "history" => FieldKind::Html,
            _ => FieldKind::Text,
        }
    }
}

/// One entry of the organization's field list.
#[derive(Debug, Clone)]
struct FieldInfo {
    ty: String,
    read_only: bool,
    identity: bool,
}

/// Fields a work item type may mark `alwaysRequired` that the server fills in itself on create
/// (the initial state and its reason, the project's root area and iteration and their ids), so
/// a caller is never asked for them.
const SERVER_FILLED: [&str; 6] = [
    "System.State",
    "System.Reason",
    "System.AreaId",
    "System.IterationId",
    "System.AreaPath",
    "System.IterationPath",
];

#[derive(Debug)]
struct TypeMeta {
    name: String,
    fields: BTreeMap<String, FieldMeta>,
    graph: TransitionGraph,
}

/// Field reference name → what the field list says of it.
type FieldTypes = HashMap<String, FieldInfo>;

/// A JSON string holding an ISO 8601 date-time, in UTC.
fn date_time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Percent-encodes one path segment.
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A WIQL string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn parse_person(v: &Value) -> Option<Person> {
    match v {
        Value::Object(m) => {
            let s = |k: &str| {
                m.get(k)
                    .and_then(Value::as_str)
                    .filter(|x| !x.is_empty())
                    .map(ToOwned::to_owned)
            };
            let unique = s("uniqueName");
            Some(Person {
                email: unique.clone().filter(|u| u.contains('@')),
                login: unique,
                display_name: s("displayName"),
                id: s("id"),
            })
        }
        Value::String(text) => {
            let (display, unique) = match text.rsplit_once('<') {
                Some((d, u)) => (
                    d.trim().to_owned(),
                    u.trim_end_matches('>').trim().to_owned(),
                ),
                None => (text.clone(), String::new()),
            };
            Some(Person {
                email: Some(unique.clone()).filter(|u| u.contains('@')),
                login: Some(unique).filter(|u| !u.is_empty()),
                display_name: Some(display).filter(|d| !d.is_empty()),
                id: None,
            })
        }
        _ => None,
    }
}

fn to_field_value(meta: Option<&FieldMeta>, v: &Value, path: &str) -> Result<FieldValue> {
    if v.is_null() {
        return Ok(FieldValue::Null);
    }
    let bad = |what: &str| Error::protocol(path, format!("expected {what}, found {v}"));
    let kind = meta.map(FieldMeta::kind);
    Ok(match (kind, v) {
        (Some(FieldKind::Person), _) | (None, Value::Object(_)) => {
            FieldValue::Person(parse_person(v).ok_or_else(|| bad("an identity"))?)
        }
        (Some(FieldKind::Int), Value::Number(n)) => {
            FieldValue::Int(n.as_i64().ok_or_else(|| bad("an integer"))?)
        }
        (Some(FieldKind::Int), Value::String(s)) => {
            FieldValue::Int(s.parse().map_err(|_| bad("an integer"))?)
        }
        (Some(FieldKind::Float), Value::Number(n)) => {
            FieldValue::Float(n.as_f64().ok_or_else(|| bad("a number"))?)
        }
        (Some(FieldKind::Bool), Value::Bool(b)) => FieldValue::Bool(*b),
        (Some(FieldKind::DateTime), Value::String(s)) => FieldValue::DateTime(
            DateTime::parse_from_rfc3339(s)
                .map_err(|_| bad("an ISO 8601 date-time"))?
                .with_timezone(&Utc),
        ),
        (Some(FieldKind::Choice), Value::String(s)) => FieldValue::Choice(s.clone()),
        (Some(FieldKind::Choice), Value::Number(n)) => FieldValue::Choice(n.to_string()),
        (Some(FieldKind::Html), Value::String(s)) => FieldValue::Html(s.clone()),
        (Some(FieldKind::Text) | None, Value::String(s)) => FieldValue::Text(s.clone()),
        (Some(FieldKind::Text), Value::Number(n)) => FieldValue::Text(n.to_string()),
        (None, Value::Number(n)) => n.as_i64().map_or_else(
            || FieldValue::Float(n.as_f64().unwrap_or_default()),
            FieldValue::Int,
        ),
        (None, Value::Bool(b)) => FieldValue::Bool(*b),
        (Some(k), _) => return Err(bad(&format!("a {k:?} value"))),
        (None, _) => return Err(bad("a scalar")),
    })
}

/// Parses the organization's field list. A field is a person when the list says
/// `isIdentity` (real servers say `"type": "string"` for identities) or, on servers that have
/// the type, `"type": "identity"`. Tree paths are listed read-only but are written by path.
fn parse_field_list(body: &Value) -> Result<FieldTypes> {
    let list = body
        .get("value")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::protocol("value", "the field list has no value array"))?;
    let mut map = HashMap::new();
    for (i, f) in list.iter().enumerate() {
        let r = f
            .get("referenceName")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::protocol(format!("value[{i}].referenceName"), "missing"))?;
        let ty = f
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("string")
            .to_owned();
        let identity = f
            .get("isIdentity")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || ty == "identity";
        let read_only =
            f.get("readOnly").and_then(Value::as_bool).unwrap_or(false) && ty != "treePath";
        map.insert(
            r.to_owned(),
            FieldInfo {
                ty,
                read_only,
                identity,
            },
        );
    }
    Ok(map)
}

/// A work item type's fields from the type (names, `alwaysRequired`) and, where the server
/// has it, the type's field list (`defaultValue`, `allowedValues`). A field is required of the
/// caller only when the type says `alwaysRequired`, it is writable, it has no default and the
/// server does not fill it in itself. Without the type's field list (servers before 4.1) the
/// defaults are unknown, so only the title is demanded and the server's rule error names any
/// other field it misses.
fn type_fields(
    ty: &Value,
    details: Option<&Value>,
    ftypes: &FieldTypes,
) -> Result<BTreeMap<String, FieldMeta>> {
    let instances = ty
        .get("fieldInstances")
        .or_else(|| ty.get("fields"))
        .and_then(Value::as_array)
        .ok_or_else(|| Error::protocol("fieldInstances", "the work item type lists no fields"))?;
    let detail: HashMap<&str, &Value> = details
        .and_then(|d| d.get("value"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| Some((f.get("referenceName")?.as_str()?, f)))
        .collect();
    let mut fields = BTreeMap::new();
    for (i, f) in instances.iter().enumerate() {
        let r = f
            .get("referenceName")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::protocol(format!("fieldInstances[{i}].referenceName"), "missing")
            })?;
        let info = ftypes.get(r).cloned().unwrap_or(FieldInfo {
            ty: "string".into(),
            read_only: false,
            identity: false,
        });
        let d = detail.get(r).copied();
        let pick = |k: &str| d.and_then(|d| d.get(k)).or_else(|| f.get(k));
        // Identities list people as objects; only plain values make a choice list.
        let allowed = if info.identity {
            Vec::new()
        } else {
            pick("allowedValues")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| match v {
                            Value::String(s) => Some(s.clone()),
                            Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let has_default = pick("defaultValue").is_some_and(|v| !v.is_null());
        let always = pick("alwaysRequired")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        fields.insert(
            r.to_owned(),
            FieldMeta {
                name: f
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or(r)
                    .to_owned(),
                required: always
                    && !info.read_only
                    && !has_default
                    && !SERVER_FILLED.contains(&r)
                    && (details.is_some() || r == "System.Title"),
                ty: info.ty,
                identity: info.identity,
                read_only: info.read_only,
                allowed,
            },
        );
    }
    Ok(fields)
}

/// The JSON a field is written with; `None` for a value that clears the field.
fn to_wire(meta: &FieldMeta, name: &FieldName, v: &FieldValue) -> Result<Option<Value>> {
    Ok(Some(match v {
        FieldValue::Null => return Ok(None),
        FieldValue::Bool(b) => json!(b),
        FieldValue::Int(i) => json!(i),
        FieldValue::Float(x) => json!(x),
        FieldValue::Choice(s) if meta.ty == "integer" && !meta.identity => {
            json!(s.parse::<i64>().map_err(|_| Error::invalid_input(
                name.clone(),
                s,
                "the field holds integers"
            ))?)
        }
        FieldValue::Text(s) | FieldValue::Html(s) | FieldValue::Choice(s) => json!(s),
        FieldValue::Date(d) => json!(d.format("%Y-%m-%dT00:00:00Z").to_string()),
        FieldValue::DateTime(t) => json!(fmt_time(*t)),
        FieldValue::Person(p) => {
            let unique = p.email.clone().or_else(|| p.login.clone());
            json!(match (&p.display_name, unique) {
                (Some(d), Some(u)) => format!("{d} <{u}>"),
                (None, Some(u)) => u,
                (Some(d), None) => d.clone(),
                (None, None) =>
                    return Err(Error::invalid_input(
                        name.clone(),
                        p,
                        "a person needs a login, an email or a name"
                    )),
            })
        }
        FieldValue::MultiChoice(v) => json!(v.join("; ")),
        FieldValue::Reference(r) => json!(r.id),
        FieldValue::Url(u) => json!(u.as_str()),
    }))
}

/// An Azure DevOps project (Services or on-premises collection) as a [`Repository`]; item
/// types are work item types (`Bug`, `User Story`).
pub struct AzureDevOpsRepository {
    client: HttpClient,
    config: AzureDevOpsConfig,
    types: RwLock<HashMap<String, Arc<TypeMeta>>>,
    field_types: RwLock<Option<Arc<FieldTypes>>>,
    capabilities: Capabilities,
}

impl fmt::Debug for AzureDevOpsRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureDevOpsRepository")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for AzureDevOpsRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "azure-devops:{}/{}",
            workbridge_http::redact_url_text(self.config.organization_url.trim_end_matches('/')),
            self.config.project
        )
    }
}

impl AzureDevOpsRepository {
    /// Connects (lazily: no request is sent until the first call).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a missing credential or an invalid or refused URL.
    pub fn new(config: AzureDevOpsConfig) -> Result<Self> {
        let auth: Arc<dyn AuthProvider> = match &config.auth {
            None => {
                return Err(Error::config(
                    "AzureDevOpsConfig has no credentials: call pat() or bearer()",
                ));
            }
            Some(AzureDevOpsAuth::Pat(p)) => Arc::new(BasicAuth::pat(p.expose_secret())),
            Some(AzureDevOpsAuth::Bearer(t)) => Arc::new(BearerAuth::new(t.expose_secret())),
        };
        let client = HttpClient::builder(config.organization_url.clone())
            .options(config.client.clone())
            .auth(auth)
            .error_parser(Arc::new(error::parse_error))
            .system(format!(
                "azure-devops:{}/{}",
                workbridge_http::redact_url_text(config.organization_url.trim_end_matches('/')),
                config.project
            ))
            .build()?;
        let mut capabilities = Capabilities::all();
        capabilities.internal_comments = false;
        capabilities.max_batch_read = BATCH;
        capabilities.max_page_size = 19_999;
        capabilities.max_attachment_size = Some(130 * 1024 * 1024);
        Ok(AzureDevOpsRepository {
            client,
            config,
            types: RwLock::new(HashMap::new()),
            field_types: RwLock::new(None),
            capabilities,
        })
    }

    /// The HTTP client (for `requests_sent`).
    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    /// Forgets the cached work item type metadata.
    pub async fn refresh_metadata(&self) {
        self.types.write().await.clear();
        *self.field_types.write().await = None;
    }

    fn project_path(&self, rest: &str) -> String {
        format!("{}/_apis/wit/{rest}", seg(&self.config.project))
    }

    async fn call(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        version: &str,
        query: &[(&str, String)],
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<HttpResponse> {
        let mut rb = self
            .client
            .request(method, path)
            .query(&[("api-version", version)])
            .query(query)
            .header(HeaderName::from_static("x-tfs-fedauthredirect"), "Suppress")
            .operation(op);
        if let Some((b, ct)) = body {
            rb = rb.body(b, ct);
        }
        let resp = rb.send().await?;
        if resp.status == StatusCode::NON_AUTHORITATIVE_INFORMATION {
            return Err(Error::new(
                ErrorKind::Unauthenticated,
                "the server answered 203 with a sign-in page: the credentials were refused",
            )
            .with_http_status(203)
            .with_operation(op)
            .with_system(self));
        }
        Ok(resp)
    }

    async fn call_json(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<Value> {
        let resp = self
            .call(op, method, path, self.config.server.api(), query, body)
            .await?;
        resp.json()
            .map_err(|e| e.with_operation(op).with_system(self))
    }

    async fn field_types(&self) -> Result<Arc<FieldTypes>> {
        if let Some(f) = self.field_types.read().await.clone() {
            return Ok(f);
        }
        let body = self
            .call_json(
                "schema",
                Method::GET,
                &self.project_path("fields"),
                &[],
                None,
            )
            .await?;
        let map = Arc::new(parse_field_list(&body)?);
        *self.field_types.write().await = Some(map.clone());
        Ok(map)
    }

    async fn type_meta(&self, t: &ItemType) -> Result<Arc<TypeMeta>> {
        let key = t.as_str().to_lowercase();
        if let Some(m) = self.types.read().await.get(&key) {
            return Ok(m.clone());
        }
        let ftypes = self.field_types().await?;
        let type_path = format!("workitemtypes/{}", seg(t.as_str()));
        let body = self
            .call_json(
                "schema",
                Method::GET,
                &self.project_path(&type_path),
                &[],
                None,
            )
            .await
            .map_err(|e| e.with_item_type(t.clone()))?;
        // The type's own field list with defaults and allowed values (api 4.1 and later; the
        // type itself carries neither on real servers).
        let details = if self.config.server.has_type_field_details() {
            let body = self
                .call(
                    "schema",
                    Method::GET,
                    &self.project_path(&format!("{type_path}/fields")),
                    self.config.server.api(),
                    &[("$expand", "allowedValues".to_owned())],
                    None,
                )
                .await
                .and_then(|r| r.json::<Value>())
                .map_err(|e| e.with_item_type(t.clone()))?;
            Some(body)
        } else {
            None
        };
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(t.as_str())
            .to_owned();
        let fields = type_fields(&body, details.as_ref(), &ftypes)?;
        let mut graph = TransitionGraph::new("System.State");
        if let Some(tr) = body.get("transitions").and_then(Value::as_object) {
            for (from, tos) in tr {
                for to in tos
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.get("to").and_then(Value::as_str))
                {
                    graph = if from.is_empty() {
                        graph.initial(to)
                    } else {
                        graph.transition(from.as_str(), to)
                    };
                }
            }
        }
        if let Some(states) = body.get("states").and_then(Value::as_array) {
            for s in states
                .iter()
                .filter_map(|s| s.get("name").and_then(Value::as_str))
            {
                graph.states.insert(s.to_owned());
            }
        }
        let meta = Arc::new(TypeMeta {
            name,
            fields,
            graph,
        });
        self.types.write().await.insert(key, meta.clone());
        Ok(meta)
    }

    fn item_from(&self, meta: Option<&TypeMeta>, v: &Value, path: &str) -> Result<WorkItem> {
        let id = v.get("id").and_then(Value::as_u64).ok_or_else(|| {
            Error::protocol(format!("{path}.id"), "a work item without a numeric id")
        })?;
        let rev = v.get("rev").and_then(Value::as_u64).ok_or_else(|| {
            Error::protocol(format!("{path}.rev"), "a work item without a numeric rev")
        })?;
        let fields_json = v.get("fields").and_then(Value::as_object).ok_or_else(|| {
            Error::protocol(format!("{path}.fields"), "a work item without fields")
        })?;
        let changed = fields_json
            .get("System.ChangedDate")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::protocol(format!("{path}.fields.System.ChangedDate"), "missing")
            })?;
        let changed_at = DateTime::parse_from_rfc3339(changed)
            .map_err(|_| {
                Error::protocol(
                    format!("{path}.fields.System.ChangedDate"),
                    format!("`{changed}` is not an ISO 8601 date-time"),
                )
            })?
            .with_timezone(&Utc);
        let wtype = fields_json
            .get("System.WorkItemType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut fields = FieldMap::new();
        for (k, raw) in fields_json {
            if k == "System.History" {
                continue;
            }
            let m = meta.and_then(|m| m.fields.get(k));
            fields.insert(
                k.as_str(),
                to_field_value(m, raw, &format!("{path}.fields.{k}"))?,
            );
        }
        let mut item = WorkItem::new(
            ItemId::new(id.to_string()),
            ItemType::from(wtype),
            Version::new(rev.to_string()),
            changed_at,
            fields,
        );
        item.changed_by = fields_json.get("System.ChangedBy").and_then(parse_person);
        item.url = v
            .pointer("/_links/html/href")
            .and_then(Value::as_str)
            .and_then(|u| url::Url::parse(u).ok());
        Ok(item)
    }

    /// Reads items by id, 200 per request, as of a time if given; `None` for missing ids.
    async fn read_many(
        &self,
        meta: Option<&TypeMeta>,
        ids: &[u64],
        fields: Option<&[String]>,
        as_of: Option<&str>,
    ) -> Result<HashMap<u64, WorkItem>> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(BATCH) {
            let body = if self.config.server.has_batch_read() {
                let mut req = json!({"ids": chunk, "errorPolicy": "omit"});
                if let Some(f) = fields {
                    req["fields"] = json!(f);
                }
                if let Some(t) = as_of {
                    req["asOf"] = json!(t);
                }
                self.call_json(
                    "get_many",
                    Method::POST,
                    &self.project_path("workitemsbatch"),
                    &[],
                    Some((
                        serde_json::to_vec(&req).unwrap_or_default(),
                        "application/json",
                    )),
                )
                .await?
            } else {
                let mut q = vec![
                    (
                        "ids",
                        chunk
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                    ("errorPolicy", "omit".to_owned()),
                ];
                if let Some(f) = fields {
                    q.push(("fields", f.join(",")));
                }
                if let Some(t) = as_of {
                    q.push(("asOf", t.to_owned()));
                }
                self.call_json(
                    "get_many",
                    Method::GET,
                    &self.project_path("workitems"),
                    &q,
                    None,
                )
                .await?
            };
            let list = body
                .get("value")
                .and_then(Value::as_array)
                .ok_or_else(|| Error::protocol("value", "the work item list has no value array"))?;
            for (i, v) in list.iter().enumerate() {
                if v.is_null() {
                    continue;
                }
                let item = self.item_from(meta, v, &format!("value[{i}]"))?;
                let id: u64 = item.id.as_str().parse().unwrap_or_default();
                out.insert(id, item);
            }
        }
        Ok(out)
    }

    async fn wiql(
        &self,
        op: &'static str,
        query: &str,
        top: usize,
    ) -> Result<(Vec<u64>, Option<DateTime<Utc>>)> {
        let body = serde_json::to_vec(&json!({ "query": query })).unwrap_or_default();
        let v = self
            .call_json(
                op,
                Method::POST,
                &self.project_path("wiql"),
                &[("timePrecision", "true".into()), ("$top", top.to_string())],
                Some((body, "application/json")),
            )
            .await?;
        let items = v
            .get("workItems")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::protocol("workItems", "the query result has no workItems"))?;
        let ids = items
            .iter()
            .enumerate()
            .map(|(i, w)| {
                w.get("id")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| Error::protocol(format!("workItems[{i}].id"), "missing"))
            })
            .collect::<Result<Vec<_>>>()?;
        let as_of = v.get("asOf").and_then(date_time);
        Ok((ids, as_of))
    }

    fn type_clause(&self, meta: &TypeMeta) -> String {
        format!(
            "[System.TeamProject] = @project AND [System.WorkItemType] = {}",
            lit(&meta.name)
        )
    }

    fn check_fields(&self, t: &ItemType, meta: &TypeMeta, fields: &FieldMap) -> Result<Vec<Value>> {
        let mut ops = Vec::new();
        for (name, value) in fields {
            let Some(m) = meta.fields.get(name.as_str()) else {
                return Err(Error::invalid_input(
                    name.clone(),
                    value,
                    format!("{t} has no field `{name}`"),
                ));
            };
            if m.read_only {
                return Err(Error::invalid_input(
                    name.clone(),
                    value,
                    "the field is read-only",
                ));
            }
            FieldDef::new(name.clone(), m.kind())
                .allowed(m.allowed.clone())
                .check(value)?;
            match to_wire(m, name, value)? {
                Some(v) => {
                    ops.push(json!({"op": "add", "path": format!("/fields/{name}"), "value": v}));
                }
                None => ops.push(json!({"op": "remove", "path": format!("/fields/{name}")})),
            }
        }
        Ok(ops)
    }

    fn correlation_ops(&self, fields: &FieldMap, key: &CorrelationKey) -> Vec<Value> {
        match &self.config.correlation_field {
            Some(f) => {
                vec![json!({"op": "add", "path": format!("/fields/{f}"), "value": key.as_str()})]
            }
            None => {
                let tag = format!("workbridge:{}", key.as_str().replace(';', "_"));
                let tags = match fields
                    .get("System.Tags")
                    .and_then(FieldValue::as_str)
                    .filter(|s| !s.is_empty())
                {
                    Some(existing) => format!("{existing}; {tag}"),
                    None => tag,
                };
                vec![json!({"op": "add", "path": "/fields/System.Tags", "value": tags})]
            }
        }
    }

    fn create_ops(
        &self,
        t: &ItemType,
        meta: &TypeMeta,
        fields: &FieldMap,
        opts: &CreateOptions,
    ) -> Result<Vec<Value>> {
        let mut ops = self.check_fields(t, meta, fields)?;
        if let Some(k) = &opts.correlation {
            ops.retain(|o| {
                !(self.config.correlation_field.is_none() && o["path"] == "/fields/System.Tags")
            });
            ops.extend(self.correlation_ops(fields, k));
        }
        if let Some(required) = meta
            .fields
            .iter()
            .find(|(n, m)| m.required && !fields.contains(n.as_str()))
        {
            return Err(Error::invalid_input(
                required.0.as_str(),
                "null",
                "the field is required",
            ));
        }
        Ok(ops)
    }

    fn update_ops(
        &self,
        t: &ItemType,
        meta: &TypeMeta,
        changes: &FieldMap,
        opts: &UpdateOptions,
    ) -> Result<Vec<Value>> {
        let mut ops = Vec::new();
        if let Some(v) = &opts.if_version {
            let rev: u64 = v.as_str().parse().map_err(|_| {
                Error::invalid_input("if_version", v, "an Azure DevOps revision is a number")
            })?;
            ops.push(json!({"op": "test", "path": "/rev", "value": rev}));
        }
        ops.extend(self.check_fields(t, meta, changes)?);
        Ok(ops)
    }

    async fn finish_write(
        &self,
        op: &'static str,
        t: &ItemType,
        id: Option<&ItemId>,
        changes: &FieldMap,
        r: Result<Value>,
    ) -> Result<WorkItem> {
        let meta = self.type_meta(t).await?;
        match r {
            Ok(v) => self
                .item_from(Some(&meta), &v, "")
                .map_err(|e| e.with_operation(op)),
            Err(e)
                if e.kind() == ErrorKind::InvalidInput
                    && e.field().is_some_and(|f| f.as_str() == "System.State") =>
            {
                let to = changes
                    .get("System.State")
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let from = match id {
                    Some(id) => self
                        .get_many(t, std::slice::from_ref(id), &GetOptions::default())
                        .await?
                        .pop()
                        .flatten()
                        .and_then(|i| i.field("System.State").map(ToString::to_string))
                        .unwrap_or_default(),
                    None => String::new(),
                };
                Err(Error::invalid_transition(from, to, e.message().to_owned())
                    .with_operation(op)
                    .with_system(self))
            }
            Err(e) => Err(e),
        }
    }

    async fn scan(&self, t: &ItemType, since: &Cursor, opts: &ChangeOptions) -> Result<ChangePage> {
        let meta = self.type_meta(t).await?;
        let mut scan = KeysetScan::resume(since, TimeDelta::milliseconds(1))?;
        let limit = opts
            .page_size
            .unwrap_or(self.config.page_size)
            .clamp(1, 19_999);
        let q = scan.query();
        let mut cond = self.type_clause(&meta);
        match (&q.after, q.lower) {
            (Some((at, id)), _) => {
                let at = lit(&fmt_time(*at));
                let id: u64 = id.as_str().parse().unwrap_or(0);
                cond.push_str(&format!(" AND ([System.ChangedDate] > {at} OR ([System.ChangedDate] = {at} AND [System.Id] > {id}))"));
            }
            (None, Some(from)) => cond.push_str(&format!(
                " AND [System.ChangedDate] >= {}",
                lit(&fmt_time(from))
            )),
            (None, None) => {}
        }
        if let Some(upper) = q.upper {
            cond.push_str(&format!(
                " AND [System.ChangedDate] <= {}",
                lit(&fmt_time(upper))
            ));
        }
        let query = format!(
            "SELECT [System.Id] FROM WorkItems WHERE {cond} ORDER BY [System.ChangedDate] ASC, [System.Id] ASC"
        );
        let (ids, as_of) = self.wiql("changes", &query, limit).await?;
        let fields: Option<Vec<String>> = opts.fields.as_ref().map(|f| {
            MEMBER_FIELDS
                .iter()
                .map(|s| (*s).to_owned())
                .chain(f.iter().map(ToString::to_string))
                .collect()
        });
        let as_of_s = as_of.map(fmt_time);
        let mut found = self
            .read_many(Some(&meta), &ids, fields.as_deref(), as_of_s.as_deref())
            .await?;
        let rows: Vec<WorkItem> = ids
            .iter()
            .filter_map(|id| found.remove(id))
            .map(|mut i| {
                i.partial = fields.is_some();
                i
            })
            .collect();
        let items = scan.absorb(rows, ids.len() >= limit, as_of);
        Ok(ChangePage::new(items, scan.cursor()?, scan.has_more()))
    }
}

#[async_trait]
impl Repository for AzureDevOpsRepository {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn schema(&self, t: &ItemType) -> Result<Schema> {
        let meta = self
            .type_meta(t)
            .await
            .map_err(|e| e.with_operation("schema").with_system(self))?;
        let mut s = Schema::new(t.clone());
        for (r, m) in &meta.fields {
            let mut d = FieldDef::new(r.as_str(), m.kind())
                .label(m.name.clone())
                .allowed(m.allowed.clone());
            if m.required {
                d = d.required();
            }
            if m.read_only {
                d = d.read_only();
            }
            s = s.field(d);
        }
        Ok(s.workflow(meta.graph.clone()))
    }

    async fn changes(
        &self,
        t: &ItemType,
        since: &Cursor,
        opts: &ChangeOptions,
    ) -> Result<ChangePage> {
        self.scan(t, since, opts).await.map_err(|e| {
            e.with_operation("changes")
                .with_item_type(t.clone())
                .with_system(self)
        })
    }

    async fn get_many(
        &self,
        t: &ItemType,
        ids: &[ItemId],
        opts: &GetOptions,
    ) -> Result<Vec<Option<WorkItem>>> {
        let meta = self
            .type_meta(t)
            .await
            .map_err(|e| e.with_operation("get_many").with_system(self))?;
        let mut numeric: Vec<u64> = ids.iter().filter_map(|i| i.as_str().parse().ok()).collect();
        numeric.sort_unstable();
        numeric.dedup();
        let fields: Option<Vec<String>> = opts.fields.as_ref().map(|f| {
            MEMBER_FIELDS
                .iter()
                .map(|s| (*s).to_owned())
                .chain(f.iter().map(ToString::to_string))
                .collect()
        });
        let found = self
            .read_many(Some(&meta), &numeric, fields.as_deref(), None)
            .await
            .map_err(|e| e.with_operation("get_many").with_system(self))?;
        Ok(ids
            .iter()
            .map(|id| {
                id.as_str()
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| found.get(&n))
                    .filter(|i| i.item_type.as_str().eq_ignore_ascii_case(&meta.name))
                    .cloned()
                    .map(|mut i| {
                        i.partial = fields.is_some();
                        i
                    })
            })
            .collect())
    }

    async fn create(
        &self,
        t: &ItemType,
        fields: &FieldMap,
        opts: &CreateOptions,
    ) -> Result<WorkItem> {
        let run = async {
            let meta = self.type_meta(t).await?;
            let ops = self.create_ops(t, &meta, fields, opts)?;
            let r = self
                .call_json(
                    "create",
                    Method::POST,
                    &self.project_path(&format!("workitems/${}", seg(&meta.name))),
                    &[],
                    Some((
                        serde_json::to_vec(&ops).unwrap_or_default(),
                        "application/json-patch+json",
                    )),
                )
                .await;
            self.finish_write("create", t, None, fields, r).await
        };
        run.await.map_err(|e| {
            e.with_operation("create")
                .with_item_type(t.clone())
                .with_system(self)
        })
    }

    async fn update(
        &self,
        t: &ItemType,
        id: &ItemId,
        changes: &FieldMap,
        opts: &UpdateOptions,
    ) -> Result<WorkItem> {
        let run = async {
            let meta = self.type_meta(t).await?;
            let ops = self.update_ops(t, &meta, changes, opts)?;
            let n: u64 = id.as_str().parse().map_err(|_| Error::not_found(t, id))?;
            let r = self
                .call_json(
                    "update",
                    Method::PATCH,
                    &format!("_apis/wit/workitems/{n}"),
                    &[],
                    Some((
                        serde_json::to_vec(&ops).unwrap_or_default(),
                        "application/json-patch+json",
                    )),
                )
                .await;
            self.finish_write("update", t, Some(id), changes, r).await
        };
        run.await.map_err(|e| {
            let e = e.with_operation("update").with_system(self);
            if e.context().item_id.is_none() {
                e.with_item(t.clone(), id.clone())
            } else {
                e
            }
        })
    }

    async fn revision_after(
        &self,
        t: &ItemType,
        id: &ItemId,
        version: &Version,
        n: u32,
    ) -> Result<Option<WorkItem>> {
        const OP: &str = "revision_after";
        let run = async {
            let meta = self.type_meta(t).await?;
            let num: u64 = id.as_str().parse().map_err(|_| Error::not_found(t, id))?;
            let rev: u64 = version.as_str().parse().map_err(|_| {
                Error::invalid_input("version", version.as_str(), "a work item rev is a number")
            })?;
            // Revisions are numbered from 1: rev r is the list's entry r - 1.
            let want = rev + u64::from(n.max(1));
            let body = self
                .call_json(
                    OP,
                    Method::GET,
                    // Collection-level: TFS 2018 has no project-scoped route for revisions.
                    &format!("_apis/wit/workitems/{num}/revisions"),
                    &[("$top", "1".to_owned()), ("$skip", (want - 1).to_string())],
                    None,
                )
                .await?;
            let list = body
                .get("value")
                .and_then(Value::as_array)
                .ok_or_else(|| Error::protocol("value", "the revision list has no value array"))?;
            let Some(v) = list.first() else {
                return Ok(None);
            };
            let item = self.item_from(Some(&meta), v, "value[0]")?;
            if item.version.as_str() != want.to_string() {
                return Err(Error::protocol(
                    "value[0].rev",
                    format!(
                        "asked for rev {want}, the server answered rev {}",
                        item.version
                    ),
                ));
            }
            Ok(Some(item))
        };
        run.await.map_err(|e| {
            let e = e.with_operation(OP).with_system(self);
            if e.context().item_id.is_none() {
                e.with_item(t.clone(), id.clone())
            } else {
                e
            }
        })
    }

    async fn find_by_correlation(
        &self,
        t: &ItemType,
        key: &CorrelationKey,
    ) -> Result<Option<WorkItem>> {
        let meta = self
            .type_meta(t)
            .await
            .map_err(|e| e.with_operation("find_by_correlation").with_system(self))?;
        let cond = match &self.config.correlation_field {
            Some(f) => format!("[{f}] = {}", lit(key.as_str())),
            None => format!(
                "[System.Tags] CONTAINS {}",
                lit(&format!("workbridge:{}", key.as_str().replace(';', "_")))
            ),
        };
        let query = format!(
            "SELECT [System.Id] FROM WorkItems WHERE {} AND {cond} ORDER BY [System.Id] ASC",
            self.type_clause(&meta)
        );
        let (ids, _) = self.wiql("find_by_correlation", &query, 1).await?;
        let Some(first) = ids.first() else {
            return Ok(None);
        };
        let mut found = self.read_many(Some(&meta), &[*first], None, None).await?;
        Ok(found.remove(first))
    }

    async fn find_many_by_correlation(
        &self,
        t: &ItemType,
        keys: &[CorrelationKey],
    ) -> Result<Vec<Option<WorkItem>>> {
        const OP: &str = "find_many_by_correlation";
        let meta = self.type_meta(t).await.map_err(|e| e.with_operation(OP))?;
        let tag_of = |k: &CorrelationKey| format!("workbridge:{}", k.as_str().replace(';', "_"));
        let carries = |item: &WorkItem, k: &CorrelationKey| match &self.config.correlation_field {
            Some(f) => item.field(f).is_some_and(|v| v.to_string() == k.as_str()),
            None => item.field("System.Tags").is_some_and(|v| {
                let tag = tag_of(k);
                v.to_string()
                    .split(';')
                    .any(|t| t.trim().eq_ignore_ascii_case(&tag))
            }),
        };
        let mut found: HashMap<&str, WorkItem> = HashMap::new();
        // One WIQL query per 50 keys (far inside the query-length limit), one batched read.
        for chunk in keys.chunks(50) {
            let conds: Vec<String> = chunk
                .iter()
                .map(|k| match &self.config.correlation_field {
                    Some(f) => format!("[{f}] = {}", lit(k.as_str())),
                    None => format!("[System.Tags] CONTAINS {}", lit(&tag_of(k))),
                })
                .collect();
            let query = format!(
                "SELECT [System.Id] FROM WorkItems WHERE {} AND ({}) ORDER BY [System.Id] ASC",
                self.type_clause(&meta),
                conds.join(" OR ")
            );
            let (ids, _) = self.wiql(OP, &query, 1000).await?;
            if ids.is_empty() {
                continue;
            }
            let items = self.read_many(Some(&meta), &ids, None, None).await?;
            // Lowest id first, as find_by_correlation answers.
            for id in &ids {
                let Some(item) = items.get(id) else { continue };
                for k in chunk {
                    if !found.contains_key(k.as_str()) && carries(item, k) {
                        found.insert(k.as_str(), item.clone());
                    }
                }
            }
        }
        Ok(keys
            .iter()
            .map(|k| found.get(k.as_str()).cloned())
            .collect())
    }

    async fn comments(&self, t: &ItemType, id: &ItemId) -> Result<Vec<Comment>> {
        let run = async move {
            let n: u64 = id.as_str().parse().map_err(|_| Error::not_found(t, id))?;
            match self.config.server.comments_api() {
                Some(version) => {
                    let mut out = Vec::new();
                    let mut token: Option<String> = None;
                    loop {
                        let mut q = vec![("order", "asc".to_owned()), ("$top", "200".to_owned())];
                        if let Some(tk) = &token {
                            q.push(("continuationToken", tk.clone()));
                        }
                        let resp = self
                            .call(
                                "comments",
                                Method::GET,
                                &self.project_path(&format!("workItems/{n}/comments")),
                                version,
                                &q,
                                None,
                            )
                            .await?;
                        let v: Value = resp
                            .json()
                            .map_err(|e| e.with_operation("comments").with_system(self))?;
                        let list =
                            v.get("comments").and_then(Value::as_array).ok_or_else(|| {
                                Error::protocol("comments", "the comment list has no comments")
                            })?;
                        for (i, c) in list.iter().enumerate() {
                            let path = format!("comments[{i}]");
                            let cid = c
                                .get("id")
                                .or_else(|| c.get("commentId"))
                                .and_then(Value::as_u64)
                                .ok_or_else(|| Error::protocol(format!("{path}.id"), "missing"))?;
                            let at = c.get("createdDate").and_then(date_time).ok_or_else(|| {
                                Error::protocol(
                                    format!("{path}.createdDate"),
                                    "missing or not a date-time",
                                )
                            })?;
                            let format =
                                if c.get("format").and_then(Value::as_str) == Some("markdown") {
                                    TextFormat::Plain
                                } else {
                                    TextFormat::Html
                                };
                            let mut comment = Comment::new(
                                cid.to_string(),
                                at,
                                c.get("text").and_then(Value::as_str).unwrap_or_default(),
                                format,
                                Visibility::Public,
                            );
                            comment.author = c.get("createdBy").and_then(parse_person);
                            out.push(comment);
                        }
                        token = v
                            .get("continuationToken")
                            .and_then(Value::as_str)
                            .filter(|s| !s.is_empty())
                            .map(ToOwned::to_owned);
                        if token.is_none() {
                            return Ok(out);
                        }
                    }
                }
                None => {
                    let v = self
                        .call_json(
                            "comments",
                            Method::GET,
                            // Collection level: before 5.0 updates have no project route.
                            &format!("_apis/wit/workItems/{n}/updates"),
                            &[],
                            None,
                        )
                        .await?;
                    let list = v
                        .get("value")
                        .and_then(Value::as_array)
                        .ok_or_else(|| Error::protocol("value", "the update list has no value"))?;
                    let mut out = Vec::new();
                    for (i, u) in list.iter().enumerate() {
                        let Some(text) = u
                            .pointer("/fields/System.History/newValue")
                            .and_then(Value::as_str)
                        else {
                            continue;
                        };
                        let rev = u.get("rev").and_then(Value::as_u64).unwrap_or(0);
                        let at = u
                            .pointer("/fields/System.ChangedDate/newValue")
                            .and_then(date_time)
                            .ok_or_else(|| {
                                Error::protocol(
                                    format!("value[{i}].fields.System.ChangedDate"),
                                    "missing",
                                )
                            })?;
                        let mut c = Comment::new(
                            format!("rev{rev}"),
                            at,
                            text,
                            TextFormat::Html,
                            Visibility::Public,
                        );
                        c.author = u.get("revisedBy").and_then(parse_person);
                        out.push(c);
                    }
                    Ok(out)
                }
            }
        };
        run.await
            .map_err(|e: Error| e.for_item("comments", t, id, self))
    }

    async fn add_comment(&self, t: &ItemType, id: &ItemId, c: &NewComment) -> Result<Comment> {
        let run = async move {
            if c.visibility == Visibility::Internal {
                return Err(Error::unsupported(
                    "add_comment",
                    "Azure DevOps comments have no internal visibility",
                ));
            }
            if c.body.trim().is_empty() {
                return Err(
                    Error::invalid_input("comment", "", "a comment needs a body")
                        .with_operation("add_comment"),
                );
            }
            let n: u64 = id.as_str().parse().map_err(|_| Error::not_found(t, id))?;
            let html = match c.format {
                TextFormat::Html => c.body.clone(),
                _ => c
                    .body
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
                    .replace('\n', "<br>"),
            };
            match self.config.server.comments_api() {
                Some(version) => {
                    let body = serde_json::to_vec(&json!({ "text": html })).unwrap_or_default();
                    let resp = self
                        .call(
                            "add_comment",
                            Method::POST,
                            &self.project_path(&format!("workItems/{n}/comments")),
                            version,
                            &[],
                            Some((body, "application/json")),
                        )
                        .await
                        .map_err(|e| e.with_item(t.clone(), id.clone()))?;
                    let v: Value = resp
                        .json()
                        .map_err(|e| e.with_operation("add_comment").with_system(self))?;
                    let cid = v
                        .get("id")
                        .or_else(|| v.get("commentId"))
                        .and_then(Value::as_u64)
                        .ok_or_else(|| Error::protocol("id", "the new comment has no id"))?;
                    let at = v
                        .get("createdDate")
                        .and_then(date_time)
                        .unwrap_or_else(Utc::now);
                    let mut comment = Comment::new(
                        cid.to_string(),
                        at,
                        html,
                        TextFormat::Html,
                        Visibility::Public,
                    );
                    comment.author = v.get("createdBy").and_then(parse_person);
                    Ok(comment)
                }
                None => {
                    let ops =
                        json!([{"op": "add", "path": "/fields/System.History", "value": html}]);
                    let v = self
                        .call_json(
                            "add_comment",
                            Method::PATCH,
                            &format!("_apis/wit/workitems/{n}"),
                            &[],
                            Some((ops.to_string().into_bytes(), "application/json-patch+json")),
                        )
                        .await
                        .map_err(|e| e.with_item(t.clone(), id.clone()))?;
                    let item = self.item_from(None, &v, "")?;
                    Ok(Comment::new(
                        format!("rev{}", item.version),
                        item.changed_at,
                        html,
                        TextFormat::Html,
                        Visibility::Public,
                    ))
                }
            }
        };
        run.await
            .map_err(|e: Error| e.for_item("add_comment", t, id, self))
    }

    async fn attachments(&self, t: &ItemType, id: &ItemId) -> Result<Vec<AttachmentMeta>> {
        let run = async move {
            let n: u64 = id.as_str().parse().map_err(|_| Error::not_found(t, id))?;
            let v = self
                .call_json(
                    "attachments",
                    Method::GET,
                    &format!("_apis/wit/workitems/{n}"),
                    &[("$expand", "relations".into())],
                    None,
                )
                .await
                .map_err(|e| e.with_item(t.clone(), id.clone()))?;
            // A work item it must be; with no relations it has no attachments, but relations
            // that are not a list are a payload we cannot read.
            if v.get("id").and_then(Value::as_u64).is_none() {
                return Err(Error::protocol("id", "the answer is not a work item"));
            }
            let relations = match v.get("relations") {
                None | Some(Value::Null) => &[][..],
                Some(Value::Array(a)) => a.as_slice(),
                Some(other) => {
                    return Err(Error::protocol(
                        "relations",
                        format!("expected a list of relations, found {other}"),
                    ));
                }
            };
            let mut out = Vec::new();
            for r in relations {
                if r.get("rel").and_then(Value::as_str) != Some("AttachedFile") {
                    continue;
                }
                let url = r.get("url").and_then(Value::as_str).unwrap_or_default();
                let aid = url
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .split('?')
                    .next()
                    .unwrap_or_default();
                let a = r.get("attributes");
                let name = a
                    .and_then(|a| a.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or(aid);
                let mut m = AttachmentMeta::new(aid, t.clone(), id.clone(), name);
                m.size = a
                    .and_then(|a| a.get("resourceSize"))
                    .and_then(Value::as_u64);
                m.created_at = a
                    .and_then(|a| a.get("resourceCreatedDate"))
                    .and_then(date_time);
                m.url = url::Url::parse(url).ok();
                out.push(m);
            }
            Ok(out)
        };
        run.await
            .map_err(|e: Error| e.for_item("attachments", t, id, self))
    }

    async fn download(&self, a: &AttachmentMeta) -> Result<Bytes> {
        let run = async move {
            let resp = self
                .call(
                    "download",
                    Method::GET,
                    &format!("_apis/wit/attachments/{}", seg(&a.id)),
                    self.config.server.api(),
                    &[
                        ("fileName", a.file_name.clone()),
                        ("download", "true".into()),
                    ],
                    None,
                )
                .await?;
            Ok(resp.body)
        };
        run.await
            .map_err(|e: Error| e.for_item("download", &a.item_type, &a.item_id, self))
    }

    async fn upload(&self, t: &ItemType, id: &ItemId, a: &NewAttachment) -> Result<AttachmentMeta> {
        let run = async move {
            if let Some(max) = self.capabilities.max_attachment_size
                && a.data.len() as u64 > max
            {
                return Err(Error::invalid_input(
                    "attachment",
                    &a.file_name,
                    format!("{} bytes is over the limit of {max} bytes", a.data.len()),
                ));
            }
            let n: u64 = id.as_str().parse().map_err(|_| Error::not_found(t, id))?;
            let v = self
                .call_json(
                    "upload",
                    Method::POST,
                    &self.project_path("attachments"),
                    &[("fileName", a.file_name.clone())],
                    Some((a.data.to_vec(), "application/octet-stream")),
                )
                .await?;
            let url = v
                .get("url")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::protocol("url", "the attachment reference has no url"))?;
            let ops = json!([{"op": "add", "path": "/relations/-", "value": {"rel": "AttachedFile", "url": url, "attributes": {"comment": ""}}}]);
            self.call_json(
                "upload",
                Method::PATCH,
                &format!("_apis/wit/workitems/{n}"),
                &[],
                Some((ops.to_string().into_bytes(), "application/json-patch+json")),
            )
            .await
            .map_err(|e| e.with_item(t.clone(), id.clone()))?;
            let aid = v.get("id").and_then(Value::as_str).unwrap_or_default();
            self.attachments(t, id)
                .await?
                .into_iter()
                .find(|m| m.id.eq_ignore_ascii_case(aid))
                .ok_or_else(|| {
                    Error::protocol(
                        "relations",
                        "the attachment is not among the item's relations after linking it",
                    )
                })
        };
        run.await
            .map_err(|e: Error| e.for_item("upload", t, id, self))
    }

    async fn write_many(&self, writes: &[Write]) -> Result<Vec<Result<WorkItem>>> {
        let api = self.config.server.api();
        let mut results: Vec<Option<Result<WorkItem>>> = Vec::with_capacity(writes.len());
        let mut requests: Vec<(usize, ItemType, Value)> = Vec::new();
        for (i, w) in writes.iter().enumerate() {
            let prepared = match w {
                Write::Create { item_type, fields, options } => match self.type_meta(item_type).await {
                    Ok(meta) => self.create_ops(item_type, &meta, fields, options).map(|ops| {
                        (item_type.clone(), json!({"method": "PATCH", "uri": format!("/{}/_apis/wit/workitems/${}?api-version={api}", seg(&self.config.project), seg(&meta.name)), "headers": {"Content-Type": "application/json-patch+json"}, "body": ops}))
                    }),
                    Err(e) => Err(e),
                },
                Write::Update { item_type, id, changes, options } => match self.type_meta(item_type).await {
                    Ok(meta) => self.update_ops(item_type, &meta, changes, options).map(|ops| {
                        (item_type.clone(), json!({"method": "PATCH", "uri": format!("/_apis/wit/workitems/{}?api-version={api}", seg(id.as_str())), "headers": {"Content-Type": "application/json-patch+json"}, "body": ops}))
                    }),
                    Err(e) => Err(e),
                },
                _ => Err(Error::unsupported("write_many", "unknown write")),
            };
            match prepared {
                Ok((t, req)) => {
                    requests.push((i, t, req));
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e.with_operation("write_many").with_system(self)))),
            }
        }
        for chunk in requests.chunks(BATCH) {
            let body: Vec<&Value> = chunk.iter().map(|(_, _, r)| r).collect();
            let v = self
                .call_json(
                    "write_many",
                    Method::PATCH,
                    "_apis/wit/$batch",
                    &[],
                    Some((
                        serde_json::to_vec(&body).unwrap_or_default(),
                        "application/json",
                    )),
                )
                .await?;
            let list = v
                .get("value")
                .and_then(Value::as_array)
                .ok_or_else(|| Error::protocol("value", "the batch response has no value"))?;
            for (k, (i, t, _)) in chunk.iter().enumerate() {
                let r = match list.get(k) {
                    None => Err(Error::protocol(
                        format!("value[{k}]"),
                        "the batch response has fewer answers than requests",
                    )),
                    Some(answer) => {
                        let code = answer
                            .get("code")
                            .and_then(Value::as_u64)
                            .and_then(|c| u16::try_from(c).ok())
                            .unwrap_or(500);
                        let text = answer
                            .get("body")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        if (200..300).contains(&code) {
                            let meta = self.type_meta(t).await?;
                            serde_json::from_str::<Value>(text)
                                .map_err(|_| {
                                    Error::protocol(format!("value[{k}].body"), "not JSON")
                                })
                                .and_then(|v| {
                                    self.item_from(Some(&meta), &v, &format!("value[{k}].body"))
                                })
                        } else {
                            Err(error::parse_error(
                                StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY),
                                &workbridge_http::header::HeaderMap::new(),
                                text.as_bytes(),
                            ))
                        }
                    }
                };
                results[*i] = Some(r.map_err(|e| e.with_operation("write_many").with_system(self)));
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(Error::new(ErrorKind::Unexpected, "write not processed")))
            })
            .collect())
    }
}
