//! The ServiceNow adapter of workbridge: any table as an item type, through the Table,
//! Attachment and Batch APIs.
//!
//! - Values are typed with the instance's own metadata (`sys_dictionary`, `sys_choice`):
//!   integers, booleans, date-times (UTC), choices (their stored values), references, persons.
//! - `changes` reads with a keyset on `(sys_updated_on, sys_id)`, re-reads the last second with
//!   `>=` and de-duplicates by `(sys_id, sys_mod_count)`: an item that shares the watermark
//!   second, or changes while the scan pages, is never lost and never read twice at one version.
//! - `create` writes `correlation_id` / `correlation_display` in the same request;
//!   `update` checks `if_version` against `sys_mod_count` (the Table API has no conditional
//!   write: the check re-reads the record just before the write, and when the write's answer
//!   shows another update in between — `sys_mod_count` grew by more than one — the update is a
//!   conflict after the fact) and enforces the configured workflow, with the fields each
//!   transition requires.
//! - Comments are the journal: `comments` (public) and `work_notes` (internal), read from
//!   `sys_journal_field`.
//! - `write_many` goes through the Batch API.
//!
//! ```
//! use workbridge_core::{CreateOptions, FieldMap, ItemType, Repository, RepositoryExt};
//! use workbridge_http::ClientOptions;
//! use workbridge_servicenow::{ServiceNowConfig, ServiceNowRepository};
//! use workbridge_sim::servicenow::ServiceNowSim;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sim = ServiceNowSim::builder().user("admin", "admin", &["admin"]).spawn().await?;
//! let config = ServiceNowConfig::builder(sim.url())
//!     .basic("admin", "admin")
//!     .client_options(ClientOptions::default().allow_http(true))
//!     .build();
//! let sn = ServiceNowRepository::new(config)?;
//! let incident = ItemType::from("incident");
//! let created = sn
//!     .create(
//!         &incident,
//!         &FieldMap::new().with("short_description", "Invoices print blank").with("category", "software"),
//!         &CreateOptions::default().correlation("ado:Bug:42"),
//!     )
//!     .await?;
//! assert_eq!(created.field("state").map(ToString::to_string).as_deref(), Some("1"));
//! assert!(sn.find_by_correlation(&incident, &"ado:Bug:42".into()).await?.is_some());
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod error;
mod meta;

pub use config::{
    ServiceNowAuth, ServiceNowConfig, ServiceNowConfigBuilder, default_change_workflow,
    default_incident_workflow, default_problem_workflow,
};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};
use tokio::sync::RwLock;
use workbridge_core::{
    AttachmentMeta, Capabilities, ChangeOptions, ChangePage, Comment, CorrelationKey,
    CreateOptions, Cursor, Error, ErrorKind, FieldMap, FieldName, FieldValue, GetOptions, ItemId,
    ItemType, KeysetScan, NewAttachment, NewComment, Person, Repository, Result, Schema,
    TextFormat, UpdateOptions, Version, Visibility, WorkItem, Write,
};
use workbridge_http::header::CONTENT_TYPE;
use workbridge_http::{AuthProvider, BasicAuth, BearerAuth, HttpClient, Method, OAuth2};

use meta::{FieldMeta, SN_TIME, TableMeta, parse_time, read_value, to_field_value, to_wire};

/// Fields every read asks for, whatever projection the caller wants.
const MEMBER_FIELDS: [&str; 4] = [
    "sys_id",
    "sys_mod_count",
    "sys_updated_on",
    "sys_updated_by",
];
const JOURNAL_FIELDS: [&str; 3] = ["comments", "work_notes", "comments_and_work_notes"];

#[derive(Debug, Default)]
struct Users {
    by_id: HashMap<String, Person>,
    by_key: HashMap<String, String>,
}

/// A ServiceNow instance as a [`Repository`]. Any table is an item type (`incident`,
/// `problem`, `change_request`, `u_custom`).
pub struct ServiceNowRepository {
    client: HttpClient,
    config: ServiceNowConfig,
    instance: String,
    meta: RwLock<HashMap<String, Arc<TableMeta>>>,
    users: Mutex<Users>,
    capabilities: Capabilities,
}

impl fmt::Debug for ServiceNowRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceNowRepository")
            .field(
                "instance",
                &workbridge_http::redact_url_text(&self.instance),
            )
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ServiceNowRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "servicenow:{}",
            workbridge_http::redact_url_text(&self.instance)
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Escapes a value for an encoded query (`^` is doubled).
/// The Table API has no conditional write: `update` checks the version with a read just before
/// the PATCH. The PATCH's answer tells whether another write came in between — `sys_mod_count`
/// grows by one per update — and then the write has been applied over it: a [`Conflict`]
/// (`ErrorKind::Conflict`) after the fact, so that the caller reads again and re-plans instead of
/// taking the other write's changes for its own (ADR 0011).
///
/// [`Conflict`]: ErrorKind::Conflict
fn written_in_sequence(
    table: &ItemType,
    id: &ItemId,
    before: &workbridge_core::Version,
    after: WorkItem,
) -> Result<WorkItem> {
    match (
        before.as_str().parse::<u64>(),
        after.version.as_str().parse::<u64>(),
    ) {
        (Ok(b), Ok(a)) if a > b + 1 => Err(Error::conflict(format!(
            "{table} {id} went from sys_mod_count {b} to {a}: another update came between the \
             version check and this write, which was applied over it; read it again"
        ))
        .with_item(table.clone(), id.clone())),
        _ => Ok(after),
    }
}

fn q(v: &str) -> String {
    v.replace('^', "^^")
}

impl ServiceNowRepository {
    /// Connects (lazily: no request is sent until the first call).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a missing credential or an invalid or refused URL.
    pub fn new(config: ServiceNowConfig) -> Result<Self> {
        let instance = config.instance.trim_end_matches('/').to_owned();
        let auth: Arc<dyn AuthProvider> = match &config.auth {
            None => {
                return Err(Error::config(
                    "ServiceNowConfig has no credentials: call basic(), oauth() or bearer()",
                ));
            }
            Some(ServiceNowAuth::Basic { user, password }) => {
                Arc::new(BasicAuth::new(user.clone(), password.expose_secret()))
            }
            Some(ServiceNowAuth::Bearer(token)) => Arc::new(BearerAuth::new(token.expose_secret())),
            Some(ServiceNowAuth::OAuth {
                client_id,
                client_secret,
                user,
                password,
            }) => {
                let url = url::Url::parse(&format!("{instance}/oauth_token.do"))
                    .map_err(|e| Error::config(format!("invalid instance URL: {e}")))?;
                config.client.check_url(&url)?;
                Arc::new(OAuth2::password(
                    url,
                    client_id.clone(),
                    client_secret.expose_secret(),
                    user.clone(),
                    password.expose_secret(),
                ))
            }
        };
        let client = HttpClient::builder(instance.clone())
            .options(config.client.clone())
            .auth(auth)
            .error_parser(Arc::new(error::parse_error))
            .system(format!(
                "servicenow:{}",
                workbridge_http::redact_url_text(&instance)
            ))
            .build()?;
        let mut capabilities = Capabilities::all();
        capabilities.max_batch_read = config.read_batch;
        capabilities.max_page_size = 10_000;
        capabilities.max_attachment_size = None;
        // `sys_audit` rows are not documented to carry the update count they made.
        capabilities.history = false;
        Ok(ServiceNowRepository {
            client,
            config,
            instance,
            meta: RwLock::new(HashMap::new()),
            users: Mutex::new(Users::default()),
            capabilities,
        })
    }

    /// The HTTP client (for `requests_sent` and closing).
    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    /// Forgets the cached table metadata; the next call reads it again.
    pub async fn refresh_metadata(&self) {
        self.meta.write().await.clear();
        *lock(&self.users) = Users::default();
    }

    async fn get_json(
        &self,
        op: &'static str,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<(Value, workbridge_http::HttpResponse)> {
        let resp = self
            .client
            .get(path)
            .query(params)
            .operation(op)
            .send()
            .await?;
        let body: Value = resp
            .json()
            .map_err(|e| e.with_operation(op).with_system(self))?;
        Ok((body, resp))
    }

    /// The `result` array of a list response.
    fn result_array(body: Value, op: &'static str) -> Result<Vec<Value>> {
        match body {
            Value::Object(mut m) => match m.remove("result") {
                Some(Value::Array(a)) => Ok(a),
                Some(_) => Err(Error::protocol("result", "expected an array").with_operation(op)),
                None => {
                    Err(Error::protocol("result", "the response has no `result`")
                        .with_operation(op))
                }
            },
            _ => Err(Error::protocol("", "the response is not a JSON object").with_operation(op)),
        }
    }

    fn result_object(body: Value, op: &'static str) -> Result<Value> {
        match body {
            Value::Object(mut m) => match m.remove("result") {
                Some(v @ Value::Object(_)) => Ok(v),
                Some(_) => Err(Error::protocol("result", "expected an object").with_operation(op)),
                None => {
                    Err(Error::protocol("result", "the response has no `result`")
                        .with_operation(op))
                }
            },
            _ => Err(Error::protocol("", "the response is not a JSON object").with_operation(op)),
        }
    }

    async fn list(
        &self,
        op: &'static str,
        table: &str,
        query: &str,
        limit: usize,
        fields: Option<&[String]>,
        display_all: bool,
    ) -> Result<(Vec<Value>, workbridge_http::HttpResponse)> {
        let mut params = vec![
            ("sysparm_query", query.to_owned()),
            ("sysparm_limit", limit.to_string()),
            ("sysparm_exclude_reference_link", "true".to_owned()),
            ("sysparm_suppress_pagination_header", "true".to_owned()),
            ("sysparm_no_count", "true".to_owned()),
        ];
        if display_all {
            params.push(("sysparm_display_value", "all".to_owned()));
        }
        if let Some(f) = fields {
            params.push(("sysparm_fields", f.join(",")));
        }
        let (body, resp) = self
            .get_json(op, &format!("api/now/table/{table}"), &params)
            .await?;
        Ok((Self::result_array(body, op)?, resp))
    }

    async fn table_meta(&self, table: &ItemType) -> Result<Arc<TableMeta>> {
        if let Some(m) = self.meta.read().await.get(table.as_str()) {
            return Ok(m.clone());
        }
        let mut chain: Vec<String> = self
            .config
            .parents
            .get(table.as_str())
            .cloned()
            .unwrap_or_default();
        chain.push(table.to_string());
        let names = chain.join(",");
        let (dictionary, _) = self
            .list(
                "schema",
                "sys_dictionary",
                &format!("nameIN{names}^elementISNOTEMPTY"),
                10_000,
                Some(
                    &[
                        "name",
                        "element",
                        "column_label",
                        "internal_type",
                        "reference",
                        "mandatory",
                        "read_only",
                    ]
                    .map(String::from),
                ),
                false,
            )
            .await?;
        if !dictionary
            .iter()
            .any(|r| r.get("name").and_then(Value::as_str) == Some(table.as_str()))
        {
            // No dictionary entries of its own: make sure the table exists (else 400 Invalid table).
            self.list(
                "schema",
                table.as_str(),
                "",
                1,
                Some(&["sys_id".to_owned()]),
                false,
            )
            .await
            .map_err(|e| e.with_item_type(table.clone()))?;
        }
        let (choices, _) = self
            .list(
                "schema",
                "sys_choice",
                &format!("nameIN{names}^inactive=false^language=en"),
                10_000,
                Some(
                    &["name", "element", "value", "label", "sequence", "inactive"]
                        .map(String::from),
                ),
                false,
            )
            .await?;
        let meta = Arc::new(
            TableMeta::from_rows(&chain, &dictionary, &choices)
                .map_err(|e| e.with_operation("schema").with_system(self))?,
        );
        self.meta
            .write()
            .await
            .insert(table.to_string(), meta.clone());
        Ok(meta)
    }

    fn record_to_item(
        &self,
        table: &ItemType,
        meta: &TableMeta,
        rec: &Value,
        path: &str,
        partial: bool,
    ) -> Result<WorkItem> {
        let Some(obj) = rec.as_object() else {
            return Err(Error::protocol(path, "a record is not a JSON object"));
        };
        let member = |k: &str| -> Result<String> {
            let p = format!("{path}.{k}");
            let raw = obj
                .get(k)
                .ok_or_else(|| Error::protocol(&p, format!("the record has no `{k}`")))?;
            Ok(read_value(raw, &p)?.0)
        };
        let id = member("sys_id")?;
        if id.is_empty() {
            return Err(Error::protocol(format!("{path}.sys_id"), "empty sys_id"));
        }
        let version = member("sys_mod_count")?;
        let changed_at = parse_time(
            &member("sys_updated_on")?,
            &format!("{path}.sys_updated_on"),
        )?;
        let changed_by = member("sys_updated_by")
            .ok()
            .filter(|s| !s.is_empty())
            .map(Person::login);
        let mut fields = FieldMap::new();
        for (k, raw) in obj {
            if MEMBER_FIELDS.contains(&k.as_str()) || JOURNAL_FIELDS.contains(&k.as_str()) {
                continue;
            }
            let m = meta.get(k);
            if m.is_some_and(FieldMeta::is_journal) {
                continue;
            }
            let p = format!("{path}.{k}");
            let (value, display) = read_value(raw, &p)?;
            fields.insert(
                k.as_str(),
                to_field_value(m, &value, display.as_deref(), &p)?,
            );
        }
        let mut item = WorkItem::new(
            ItemId::new(id.clone()),
            table.clone(),
            Version::new(version),
            changed_at,
            fields,
        );
        item.changed_by = changed_by;
        item.url = url::Url::parse(&format!(
            "{}/nav_to.do?uri={table}.do?sys_id={id}",
            self.instance
        ))
        .ok();
        item.partial = partial;
        Ok(item)
    }

    /// Fills login and email of the persons in `items` from `sys_user`, in one request per
    /// batch of unknown users.
    async fn resolve_persons(&self, items: &mut [WorkItem]) -> Result<()> {
        let unknown: Vec<String> = {
            let users = lock(&self.users);
            let mut ids: Vec<String> = items
                .iter()
                .flat_map(|i| i.fields.iter())
                .filter_map(|(_, v)| match v {
                    FieldValue::Person(p) => p.id.clone(),
                    _ => None,
                })
                .filter(|id| !users.by_id.contains_key(id))
                .collect();
            ids.sort();
            ids.dedup();
            ids
        };
        for chunk in unknown.chunks(self.config.read_batch) {
            let (rows, _) = self
                .list(
                    "get_many",
                    "sys_user",
                    &format!("sys_idIN{}", chunk.join(",")),
                    chunk.len(),
                    Some(&["sys_id", "user_name", "email", "name"].map(String::from)),
                    false,
                )
                .await?;
            let mut users = lock(&self.users);
            for r in rows {
                let s = |k: &str| {
                    r.get(k)
                        .and_then(Value::as_str)
                        .filter(|v| !v.is_empty())
                        .map(ToOwned::to_owned)
                };
                let Some(id) = s("sys_id") else { continue };
                let p = Person {
                    login: s("user_name"),
                    email: s("email"),
                    display_name: s("name"),
                    id: Some(id.clone()),
                };
                if let Some(l) = &p.login {
                    users.by_key.insert(format!("login:{l}"), id.clone());
                }
                if let Some(e) = &p.email {
                    users
                        .by_key
                        .insert(format!("email:{}", e.to_lowercase()), id.clone());
                }
                users.by_id.insert(id, p);
            }
        }
        let users = lock(&self.users);
        for item in items.iter_mut() {
            let names: Vec<FieldName> = item.fields.names().cloned().collect();
            for n in names {
                if let Some(FieldValue::Person(p)) = item.fields.get(n.as_str())
                    && let Some(full) = p.id.as_ref().and_then(|id| users.by_id.get(id))
                {
                    let full = full.clone();
                    item.fields.insert(n, FieldValue::Person(full));
                }
            }
        }
        Ok(())
    }

    /// The sys_id of a person, looked up by login, then email.
    async fn person_id(&self, field: &FieldName, p: &Person) -> Result<String> {
        if let Some(id) = &p.id {
            return Ok(id.clone());
        }
        let keys: Vec<(String, &str, String)> = [
            p.login
                .as_ref()
                .map(|l| (format!("login:{l}"), "user_name", l.clone())),
            p.email
                .as_ref()
                .map(|e| (format!("email:{}", e.to_lowercase()), "email", e.clone())),
        ]
        .into_iter()
        .flatten()
        .collect();
        for (key, column, value) in keys {
            if let Some(id) = lock(&self.users).by_key.get(&key) {
                return Ok(id.clone());
            }
            let (rows, _) = self
                .list(
                    "update",
                    "sys_user",
                    &format!("{column}={}", q(&value)),
                    1,
                    Some(&["sys_id".to_owned()]),
                    false,
                )
                .await?;
            if let Some(id) = rows
                .first()
                .and_then(|r| r.get("sys_id"))
                .and_then(Value::as_str)
            {
                lock(&self.users).by_key.insert(key, id.to_owned());
                return Ok(id.to_owned());
            }
        }
        Err(Error::invalid_input(
            field.clone(),
            p,
            "no sys_user has this login or email",
        ))
    }

    /// Checks and encodes the fields of a write.
    async fn body_of(
        &self,
        table: &ItemType,
        meta: &TableMeta,
        fields: &FieldMap,
    ) -> Result<Map<String, Value>> {
        let mut body = Map::new();
        for (name, value) in fields {
            meta::check_write(table, meta, name, value)?;
            let wire = match value {
                FieldValue::Person(p) => self.person_id(name, p).await?,
                other => to_wire(name, other)?,
            };
            body.insert(name.to_string(), Value::String(wire));
        }
        Ok(body)
    }

    fn workflow(&self, table: &ItemType) -> Option<&workbridge_core::TransitionGraph> {
        self.config.workflows.get(table.as_str())
    }

    fn check_initial_state(&self, table: &ItemType, fields: &FieldMap) -> Result<()> {
        if let Some(wf) = self.workflow(table)
            && !wf.initial.is_empty()
            && let Some(state) = fields
                .get(wf.state_field.as_str())
                .and_then(FieldValue::as_str)
            && !wf.initial.iter().any(|s| s == state)
        {
            return Err(Error::invalid_input(
                wf.state_field.clone(),
                state,
                format!(
                    "a new {table} must start in one of: {}",
                    wf.initial.join(", ")
                ),
            ));
        }
        Ok(())
    }

    fn read_params(fields: Option<&[String]>) -> Vec<(&'static str, String)> {
        let mut p = vec![
            ("sysparm_display_value", "all".to_owned()),
            ("sysparm_exclude_reference_link", "true".to_owned()),
        ];
        if let Some(f) = fields {
            p.push(("sysparm_fields", f.join(",")));
        }
        p
    }

    fn projection(fields: Option<&Vec<FieldName>>) -> Option<Vec<String>> {
        fields.map(|f| {
            MEMBER_FIELDS
                .iter()
                .map(|s| (*s).to_owned())
                .chain(f.iter().map(ToString::to_string))
                .collect()
        })
    }

    async fn one_item(
        &self,
        op: &'static str,
        table: &ItemType,
        meta: &TableMeta,
        resp: workbridge_http::HttpResponse,
    ) -> Result<WorkItem> {
        let body: Value = resp.json().map_err(|e| e.with_operation(op))?;
        let rec = Self::result_object(body, op)?;
        let mut items = vec![
            self.record_to_item(table, meta, &rec, "result", false)
                .map_err(|e| e.with_operation(op))?,
        ];
        self.resolve_persons(&mut items).await?;
        Ok(items.remove(0))
    }

    async fn exists(&self, op: &'static str, table: &ItemType, id: &ItemId) -> Result<()> {
        self.client
            .get(&format!("api/now/table/{table}/{id}"))
            .query(&[("sysparm_fields", "sys_id")])
            .operation(op)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| e.with_item(table.clone(), id.clone()))
    }

    async fn journal(&self, id: &ItemId, elements: &str) -> Result<Vec<Comment>> {
        let (rows, _) = self
            .list(
                "comments",
                "sys_journal_field",
                &format!(
                    "element_id={}^elementIN{elements}^ORDERBYsys_created_on",
                    q(id.as_str())
                ),
                10_000,
                Some(
                    &[
                        "sys_id",
                        "element",
                        "value",
                        "sys_created_on",
                        "sys_created_by",
                    ]
                    .map(String::from),
                ),
                false,
            )
            .await?;
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                let path = format!("result[{i}]");
                let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
                let at = parse_time(s("sys_created_on"), &format!("{path}.sys_created_on"))?;
                let visibility = match s("element") {
                    "work_notes" => Visibility::Internal,
                    _ => Visibility::Public,
                };
                let raw = s("value");
                let (body, format) = match raw
                    .strip_prefix("[code]")
                    .and_then(|b| b.strip_suffix("[/code]"))
                {
                    Some(html) => (html.to_owned(), TextFormat::Html),
                    None => (raw.to_owned(), TextFormat::Plain),
                };
                let mut c = Comment::new(s("sys_id"), at, body, format, visibility);
                c.author = Some(s("sys_created_by"))
                    .filter(|a| !a.is_empty())
                    .map(Person::login);
                Ok(c)
            })
            .collect::<Result<Vec<_>>>()
            .map_err(|e| e.with_operation("comments").with_system(self))
    }

    fn attachment_meta(&self, r: &Value, path: &str) -> Result<AttachmentMeta> {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
        if s("sys_id").is_empty() {
            return Err(Error::protocol(
                format!("{path}.sys_id"),
                "an attachment without sys_id",
            ));
        }
        let mut m = AttachmentMeta::new(
            s("sys_id"),
            ItemType::from(s("table_name")),
            ItemId::from(s("table_sys_id")),
            s("file_name"),
        );
        m.content_type = Some(s("content_type").to_owned()).filter(|c| !c.is_empty());
        m.size = s("size_bytes").parse().ok();
        m.created_at = parse_time(s("sys_created_on"), &format!("{path}.sys_created_on")).ok();
        m.url = url::Url::parse(s("download_link")).ok();
        Ok(m)
    }

    async fn scan(
        &self,
        table: &ItemType,
        since: &Cursor,
        opts: &ChangeOptions,
    ) -> Result<ChangePage> {
        let meta = self.table_meta(table).await?;
        let mut scan = KeysetScan::resume(since, TimeDelta::seconds(1))?;
        let limit = opts
            .page_size
            .unwrap_or(self.config.page_size)
            .clamp(1, 10_000);
        let sq = scan.query();
        let fmt = |t: DateTime<Utc>| t.format(SN_TIME).to_string();
        let upper = sq
            .upper
            .map(|b| format!("^sys_updated_on<={}", fmt(b)))
            .unwrap_or_default();
        let mut query = match (&sq.after, sq.lower) {
            (Some((t, id)), _) => {
                let t = fmt(*t);
                format!(
                    "sys_updated_on={t}^sys_id>{}^NQsys_updated_on>{t}{upper}",
                    q(id.as_str())
                )
            }
            (None, Some(from)) => format!("sys_updated_on>={}{upper}", fmt(from)),
            (None, None) => String::new(),
        };
        if !query.is_empty() {
            query.push('^');
        }
        query.push_str("ORDERBYsys_updated_on^ORDERBYsys_id");
        let projection = Self::projection(opts.fields.as_ref());
        let (rows, resp) = self
            .list(
                "changes",
                table.as_str(),
                &query,
                limit,
                projection.as_deref(),
                true,
            )
            .await?;
        let server_now = resp
            .header("date")
            .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
            .map(|d| d.with_timezone(&Utc));
        let parsed = rows
            .iter()
            .enumerate()
            .map(|(i, rec)| {
                self.record_to_item(
                    table,
                    &meta,
                    rec,
                    &format!("result[{i}]"),
                    projection.is_some(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let full = parsed.len() >= limit;
        let mut items = scan.absorb(parsed, full, server_now);
        self.resolve_persons(&mut items).await?;
        Ok(ChangePage::new(items, scan.cursor()?, scan.has_more()))
    }

    /// A Batch API round for `requests` (id → (method, url, body)); retries unserviced ones up
    /// to three times. Returns id → (status, body).
    async fn batch(
        &self,
        requests: Vec<(String, &'static str, String, Option<Value>)>,
    ) -> Result<HashMap<String, (u16, Vec<u8>)>> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut pending = requests;
        let mut out = HashMap::new();
        for _ in 0..3 {
            if pending.is_empty() {
                break;
            }
            let rest: Vec<Value> = pending
                .iter()
                .map(|(id, method, url, body)| {
                    let mut r = json!({
                        "id": id, "method": method, "url": url,
                        "headers": [{"name": "Content-Type", "value": "application/json"}, {"name": "Accept", "value": "application/json"}],
                        "exclude_response_headers": true,
                    });
                    if let Some(b) = body {
                        r["body"] = Value::String(b64.encode(b.to_string()));
                    }
                    r
                })
                .collect();
            let batch_id = format!("workbridge-{}", Utc::now().timestamp_micros());
            let resp = self
                .client
                .post("api/now/v1/batch")
                .json(&json!({"batch_request_id": batch_id, "rest_requests": rest}))
                .operation("write_many")
                .send()
                .await?;
            let body: Value = resp
                .json()
                .map_err(|e| e.with_operation("write_many").with_system(self))?;
            let serviced = body
                .get("serviced_requests")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    Error::protocol(
                        "serviced_requests",
                        "the batch response has no serviced_requests",
                    )
                    .with_operation("write_many")
                })?;
            for (i, s) in serviced.iter().enumerate() {
                let path = format!("serviced_requests[{i}]");
                let id = s
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::protocol(format!("{path}.id"), "missing id"))?;
                let status = s
                    .get("status_code")
                    .and_then(Value::as_u64)
                    .and_then(|c| u16::try_from(c).ok())
                    .ok_or_else(|| {
                        Error::protocol(format!("{path}.status_code"), "missing status code")
                    })?;
                let decoded = match s.get("body").and_then(Value::as_str) {
                    Some(b) => b64.decode(b).map_err(|_| {
                        Error::protocol(format!("{path}.body"), "the body is not base64")
                    })?,
                    None => Vec::new(),
                };
                out.insert(id.to_owned(), (status, decoded));
            }
            pending.retain(|(id, ..)| !out.contains_key(id));
        }
        Ok(out)
    }

    async fn prepare(
        &self,
        w: &Write,
        i: usize,
        versions: &HashMap<(ItemType, ItemId), Option<WorkItem>>,
    ) -> Result<(String, &'static str, String, Option<Value>, ItemType)> {
        let params = "sysparm_display_value=all&sysparm_exclude_reference_link=true";
        match w {
            Write::Create {
                item_type,
                fields,
                options,
            } => {
                let meta = self.table_meta(item_type).await?;
                self.check_initial_state(item_type, fields)?;
                let mut body = self.body_of(item_type, &meta, fields).await?;
                if let Some(k) = &options.correlation {
                    body.insert("correlation_id".into(), Value::String(k.to_string()));
                    body.insert(
                        "correlation_display".into(),
                        Value::String(self.config.correlation_display.clone()),
                    );
                }
                Ok((
                    format!("w{i}"),
                    "POST",
                    format!("/api/now/table/{item_type}?{params}"),
                    Some(Value::Object(body)),
                    item_type.clone(),
                ))
            }
            Write::Update {
                item_type,
                id,
                changes,
                options,
            } => {
                let meta = self.table_meta(item_type).await?;
                let current = versions
                    .get(&(item_type.clone(), id.clone()))
                    .cloned()
                    .flatten();
                if let Some(cur) = &current {
                    self.check_update(item_type, id, cur, changes, options)?;
                } else if versions.contains_key(&(item_type.clone(), id.clone())) {
                    return Err(Error::not_found(item_type, id));
                }
                let body = self.body_of(item_type, &meta, changes).await?;
                Ok((
                    format!("w{i}"),
                    "PATCH",
                    format!("/api/now/table/{item_type}/{id}?{params}"),
                    Some(Value::Object(body)),
                    item_type.clone(),
                ))
            }
            _ => Err(Error::unsupported("write_many", "unknown write")),
        }
    }

    fn check_update(
        &self,
        table: &ItemType,
        id: &ItemId,
        current: &WorkItem,
        changes: &FieldMap,
        o: &UpdateOptions,
    ) -> Result<()> {
        if let Some(expected) = &o.if_version
            && *expected != current.version
        {
            return Err(Error::conflict(format!(
                "{table} {id} is at sys_mod_count {}, not {expected}",
                current.version
            ))
            .with_item(table.clone(), id.clone()));
        }
        if let Some(wf) = self.workflow(table)
            && let Some(to) = changes.get(wf.state_field.as_str())
        {
            let from = current
                .field(wf.state_field.as_str())
                .map(ToString::to_string)
                .unwrap_or_default();
            let mut after = current.fields.clone();
            after.merge(changes);
            wf.check(&from, &to.to_string(), &after)
                .map_err(|e| e.with_item(table.clone(), id.clone()))?;
        }
        Ok(())
    }

    fn needs_current(&self, table: &ItemType, changes: &FieldMap, o: &UpdateOptions) -> bool {
        o.if_version.is_some()
            || self
                .workflow(table)
                .is_some_and(|wf| changes.contains(wf.state_field.as_str()))
    }
}

#[async_trait]
impl Repository for ServiceNowRepository {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn schema(&self, table: &ItemType) -> Result<Schema> {
        let meta = self
            .table_meta(table)
            .await
            .map_err(|e| e.with_operation("schema").with_system(self))?;
        Ok(meta.schema(table, self.workflow(table)))
    }

    async fn changes(
        &self,
        table: &ItemType,
        since: &Cursor,
        opts: &ChangeOptions,
    ) -> Result<ChangePage> {
        self.scan(table, since, opts).await.map_err(|e| {
            e.with_operation("changes")
                .with_item_type(table.clone())
                .with_system(self)
        })
    }

    async fn get_many(
        &self,
        table: &ItemType,
        ids: &[ItemId],
        opts: &GetOptions,
    ) -> Result<Vec<Option<WorkItem>>> {
        let meta = self
            .table_meta(table)
            .await
            .map_err(|e| e.with_operation("get_many").with_system(self))?;
        let projection = Self::projection(opts.fields.as_ref());
        let mut unique: Vec<&ItemId> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        let mut found: HashMap<ItemId, WorkItem> = HashMap::new();
        for chunk in unique.chunks(self.config.read_batch) {
            let list = chunk
                .iter()
                .map(|i| q(i.as_str()))
                .collect::<Vec<_>>()
                .join(",");
            let (rows, _) = self
                .list(
                    "get_many",
                    table.as_str(),
                    &format!("sys_idIN{list}"),
                    chunk.len(),
                    projection.as_deref(),
                    true,
                )
                .await?;
            let mut items = rows
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    self.record_to_item(
                        table,
                        &meta,
                        r,
                        &format!("result[{i}]"),
                        projection.is_some(),
                    )
                })
                .collect::<Result<Vec<_>>>()
                .map_err(|e| e.with_operation("get_many").with_system(self))?;
            self.resolve_persons(&mut items).await?;
            found.extend(items.into_iter().map(|i| (i.id.clone(), i)));
        }
        Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
    }

    async fn create(
        &self,
        table: &ItemType,
        fields: &FieldMap,
        opts: &CreateOptions,
    ) -> Result<WorkItem> {
        let run = async {
            let meta = self.table_meta(table).await?;
            self.check_initial_state(table, fields)?;
            let mut body = self.body_of(table, &meta, fields).await?;
            if let Some(k) = &opts.correlation {
                body.insert("correlation_id".into(), Value::String(k.to_string()));
                body.insert(
                    "correlation_display".into(),
                    Value::String(self.config.correlation_display.clone()),
                );
            }
            let resp = self
                .client
                .post(&format!("api/now/table/{table}"))
                .query(&Self::read_params(None))
                .json(&body)
                .operation("create")
                .send()
                .await?;
            self.one_item("create", table, &meta, resp).await
        };
        run.await.map_err(|e| {
            e.with_operation("create")
                .with_item_type(table.clone())
                .with_system(self)
        })
    }

    async fn update(
        &self,
        table: &ItemType,
        id: &ItemId,
        changes: &FieldMap,
        opts: &UpdateOptions,
    ) -> Result<WorkItem> {
        let run = async {
            let meta = self.table_meta(table).await?;
            let body = self.body_of(table, &meta, changes).await?;
            let mut checked = None;
            if self.needs_current(table, changes, opts) {
                let current = self
                    .get_many(table, std::slice::from_ref(id), &GetOptions::default())
                    .await?
                    .pop()
                    .flatten()
                    .ok_or_else(|| Error::not_found(table, id))?;
                self.check_update(table, id, &current, changes, opts)?;
                checked = Some(current.version);
            }
            let resp = self
                .client
                .request(Method::PATCH, &format!("api/now/table/{table}/{id}"))
                .query(&Self::read_params(None))
                .json(&body)
                .operation("update")
                .send()
                .await?;
            let item = self.one_item("update", table, &meta, resp).await?;
            match &checked {
                Some(before) => written_in_sequence(table, id, before, item),
                None => Ok(item),
            }
        };
        run.await.map_err(|e| {
            let e = e.with_operation("update").with_system(self);
            if e.context().item_id.is_none() {
                e.with_item(table.clone(), id.clone())
            } else {
                e
            }
        })
    }

    async fn find_by_correlation(
        &self,
        table: &ItemType,
        key: &CorrelationKey,
    ) -> Result<Option<WorkItem>> {
        let meta = self
            .table_meta(table)
            .await
            .map_err(|e| e.with_operation("find_by_correlation").with_system(self))?;
        let (rows, _) = self
            .list(
                "find_by_correlation",
                table.as_str(),
                &format!("correlation_id={}^ORDERBYsys_created_on", q(key.as_str())),
                1,
                None,
                true,
            )
            .await?;
        let mut items = rows
            .iter()
            .map(|r| self.record_to_item(table, &meta, r, "result[0]", false))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| e.with_operation("find_by_correlation").with_system(self))?;
        self.resolve_persons(&mut items).await?;
        Ok(items.pop())
    }

    async fn find_many_by_correlation(
        &self,
        table: &ItemType,
        keys: &[CorrelationKey],
    ) -> Result<Vec<Option<WorkItem>>> {
        const OP: &str = "find_many_by_correlation";
        const LIMIT: usize = 1000;
        let meta = self
            .table_meta(table)
            .await
            .map_err(|e| e.with_operation(OP))?;
        let mut found: HashMap<String, WorkItem> = HashMap::new();
        let mut one_by_one: Vec<&CorrelationKey> = Vec::new();
        // A key holding a comma cannot ride in an `IN` list: it is looked up on its own.
        let mut listable: Vec<&CorrelationKey> = Vec::new();
        for k in keys {
            if k.as_str().contains(',') {
                one_by_one.push(k);
            } else if !listable.contains(&k) {
                listable.push(k);
            }
        }
        for chunk in listable.chunks(50) {
            let list: Vec<String> = chunk.iter().map(|k| q(k.as_str())).collect();
            let query = format!("correlation_idIN{}^ORDERBYsys_created_on", list.join(","));
            let (rows, _) = self
                .list(OP, table.as_str(), &query, LIMIT, None, true)
                .await?;
            let mut items = Vec::new();
            for (i, row) in rows.iter().enumerate() {
                let path = format!("result[{i}]");
                let key = match row.get("correlation_id") {
                    Some(v) => read_value(v, &format!("{path}.correlation_id"))?.0,
                    None => continue,
                };
                // Oldest first, as find_by_correlation answers.
                if !found.contains_key(&key) && !items.iter().any(|(k, _)| k == &key) {
                    let item = self
                        .record_to_item(table, &meta, row, &path, false)
                        .map_err(|e| e.with_operation(OP))?;
                    items.push((key, item));
                }
            }
            let (ks, mut its): (Vec<String>, Vec<WorkItem>) = items.into_iter().unzip();
            self.resolve_persons(&mut its).await?;
            found.extend(ks.into_iter().zip(its));
            if rows.len() >= LIMIT {
                // Duplicates filled the page: what it did not reach is asked key by key.
                one_by_one.extend(
                    chunk
                        .iter()
                        .copied()
                        .filter(|k| !found.contains_key(k.as_str())),
                );
            }
        }
        for k in one_by_one {
            if let Some(item) = self.find_by_correlation(table, k).await? {
                found.insert(k.as_str().to_owned(), item);
            }
        }
        Ok(keys
            .iter()
            .map(|k| found.get(k.as_str()).cloned())
            .collect())
    }

    async fn comments(&self, table: &ItemType, id: &ItemId) -> Result<Vec<Comment>> {
        let run = async move {
            let comments = self.journal(id, "comments,work_notes").await?;
            if comments.is_empty() {
                self.exists("comments", table, id).await?;
            }
            Ok(comments)
        };
        run.await
            .map_err(|e: Error| e.for_item("comments", table, id, self))
    }

    async fn add_comment(&self, table: &ItemType, id: &ItemId, c: &NewComment) -> Result<Comment> {
        let run = async move {
            if c.body.trim().is_empty() {
                return Err(
                    Error::invalid_input("comment", "", "a comment needs a body")
                        .with_operation("add_comment"),
                );
            }
            let element = match c.visibility {
                Visibility::Internal => "work_notes",
                _ => "comments",
            };
            let value = match c.format {
                TextFormat::Html => format!("[code]{}[/code]", c.body),
                _ => c.body.clone(),
            };
            self.client
                .request(Method::PATCH, &format!("api/now/table/{table}/{id}"))
                .query(&[("sysparm_fields", "sys_id")])
                .json(&json!({ element: value }))
                .operation("add_comment")
                .send()
                .await
                .map_err(|e| e.with_item(table.clone(), id.clone()))?;
            let entries = self.journal(id, element).await?;
            entries
                .into_iter()
                .rev()
                .find(|e| e.body == c.body)
                .ok_or_else(|| {
                    Error::protocol(
                        "result",
                        "the new journal entry was not found after writing it",
                    )
                    .with_operation("add_comment")
                })
        };
        run.await
            .map_err(|e: Error| e.for_item("add_comment", table, id, self))
    }

    async fn attachments(&self, table: &ItemType, id: &ItemId) -> Result<Vec<AttachmentMeta>> {
        let run = async move {
            let (body, _) = self
                .get_json(
                    "attachments",
                    "api/now/attachment",
                    &[(
                        "sysparm_query",
                        format!(
                            "table_name={}^table_sys_id={}^ORDERBYsys_created_on",
                            q(table.as_str()),
                            q(id.as_str())
                        ),
                    )],
                )
                .await?;
            let rows = Self::result_array(body, "attachments")?;
            if rows.is_empty() {
                self.exists("attachments", table, id).await?;
            }
            rows.iter()
                .enumerate()
                .map(|(i, r)| self.attachment_meta(r, &format!("result[{i}]")))
                .collect::<Result<Vec<_>>>()
        };
        run.await
            .map_err(|e: Error| e.for_item("attachments", table, id, self))
    }

    async fn attachments_since(
        &self,
        table: &ItemType,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AttachmentMeta>> {
        // A file attached to a record is a `sys_attachment` row: the record's `sys_updated_on`
        // does not move, so `changes` does not show it.
        let run = async move {
            let (body, _) = self
                .get_json(
                    "attachments_since",
                    "api/now/attachment",
                    &[
                        (
                            "sysparm_query",
                            format!(
                                "table_name={}^sys_created_on>={}^ORDERBYsys_created_on^ORDERBYsys_id",
                                q(table.as_str()),
                                since.format(SN_TIME)
                            ),
                        ),
                        ("sysparm_limit", limit.max(1).to_string()),
                    ],
                )
                .await?;
            let rows = Self::result_array(body, "attachments_since")?;
            rows.iter()
                .enumerate()
                .map(|(i, r)| {
                    let m = self.attachment_meta(r, &format!("result[{i}]"))?;
                    if m.created_at.is_none() {
                        return Err(Error::protocol(
                            format!("result[{i}].sys_created_on"),
                            "an attachment without a creation time",
                        ));
                    }
                    Ok(m)
                })
                .collect::<Result<Vec<_>>>()
        };
        run.await.map_err(|e: Error| {
            e.with_operation("attachments_since")
                .with_item_type(table.clone())
                .with_system(self)
        })
    }

    async fn download(&self, a: &AttachmentMeta) -> Result<Bytes> {
        let run = async move {
            let resp = self
                .client
                .get(&format!("api/now/attachment/{}/file", a.id))
                .operation("download")
                .send()
                .await?;
            Ok(resp.body)
        };
        run.await
            .map_err(|e: Error| e.for_item("download", &a.item_type, &a.item_id, self))
    }

    async fn upload(
        &self,
        table: &ItemType,
        id: &ItemId,
        a: &NewAttachment,
    ) -> Result<AttachmentMeta> {
        let run = async move {
            let resp = self
                .client
                .post("api/now/attachment/file")
                .query(&[
                    ("table_name", table.as_str()),
                    ("table_sys_id", id.as_str()),
                    ("file_name", a.file_name.as_str()),
                ])
                .body(a.data.clone(), &a.content_type)
                .header(CONTENT_TYPE, &a.content_type)
                .operation("upload")
                .send()
                .await
                .map_err(|e| e.with_item(table.clone(), id.clone()))?;
            let body: Value = resp
                .json()
                .map_err(|e| e.with_operation("upload").with_system(self))?;
            self.attachment_meta(&Self::result_object(body, "upload")?, "result")
        };
        run.await
            .map_err(|e: Error| e.for_item("upload", table, id, self))
    }

    async fn write_many(&self, writes: &[Write]) -> Result<Vec<Result<WorkItem>>> {
        // Current versions for updates that need a check, one read per table.
        let mut by_table: BTreeMap<ItemType, Vec<ItemId>> = BTreeMap::new();
        for w in writes {
            if let Write::Update {
                item_type,
                id,
                changes,
                options,
            } = w
                && self.needs_current(item_type, changes, options)
            {
                by_table
                    .entry(item_type.clone())
                    .or_default()
                    .push(id.clone());
            }
        }
        let mut versions: HashMap<(ItemType, ItemId), Option<WorkItem>> = HashMap::new();
        for (t, ids) in by_table {
            let got = self.get_many(&t, &ids, &GetOptions::default()).await?;
            versions.extend(
                ids.into_iter()
                    .zip(got)
                    .map(|(id, item)| ((t.clone(), id), item)),
            );
        }
        let mut results: Vec<Option<Result<WorkItem>>> = Vec::with_capacity(writes.len());
        let mut requests = Vec::new();
        for (i, w) in writes.iter().enumerate() {
            match self.prepare(w, i, &versions).await {
                Ok((id, method, url, body, t)) => {
                    requests.push((id, method, url, body, t, i));
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e.with_operation("write_many").with_system(self)))),
            }
        }
        for chunk in requests.chunks(self.config.write_batch) {
            let answers = self
                .batch(
                    chunk
                        .iter()
                        .map(|(id, m, u, b, _, _)| (id.clone(), *m, u.clone(), b.clone()))
                        .collect(),
                )
                .await?;
            for (id, _, _, _, t, i) in chunk {
                let r = match answers.get(id) {
                    None => Err(Error::new(
                        ErrorKind::Unavailable,
                        "the Batch API did not service this request after 3 tries",
                    )),
                    Some((status, body)) if (200..300).contains(status) => {
                        let meta = self.table_meta(t).await?;
                        serde_json::from_slice::<Value>(body)
                            .map_err(|_| {
                                Error::protocol("body", "the batched response is not JSON")
                            })
                            .and_then(|v| Self::result_object(v, "write_many"))
                            .and_then(|rec| self.record_to_item(t, &meta, &rec, "result", false))
                    }
                    Some((status, body)) => Err(error::parse_error(
                        workbridge_http::StatusCode::from_u16(*status)
                            .unwrap_or(workbridge_http::StatusCode::BAD_GATEWAY),
                        &workbridge_http::header::HeaderMap::new(),
                        body,
                    )),
                };
                let r = match (r, &writes[*i]) {
                    (Ok(item), Write::Update { item_type, id, .. }) => {
                        match versions.get(&(item_type.clone(), id.clone())) {
                            Some(Some(before)) => {
                                written_in_sequence(item_type, id, &before.version, item)
                            }
                            _ => Ok(item),
                        }
                    }
                    (r, _) => r,
                };
                results[*i] = Some(r.map_err(|e| e.with_operation("write_many").with_system(self)));
            }
        }
        let mut out: Vec<Result<WorkItem>> = results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(Error::new(ErrorKind::Unexpected, "write not processed")))
            })
            .collect();
        let mut ok: Vec<WorkItem> = out
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect();
        self.resolve_persons(&mut ok).await?;
        let mut ok = ok.into_iter();
        for r in &mut out {
            if r.is_ok()
                && let Some(item) = ok.next()
            {
                *r = Ok(item);
            }
        }
        Ok(out)
    }
}
