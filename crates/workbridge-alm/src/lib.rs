//! The HP ALM / Quality Center adapter of workbridge: defects, requirements and tests of one
//! project, over the REST Core API, in JSON or XML.
//!
//! - Sessions: login (`alm-authenticate`, basic `authenticate`, or an API key), site session,
//!   the `X-XSRF-TOKEN` header on writes, one transparent re-login when the session expired,
//!   logout on [`AlmRepository::close`].
//! - Values are typed with the project's customization metadata; custom `user-NN` fields can
//!   be named by their label; list-backed fields are checked against their lists.
//! - `changes` reads `last-modified` (the database server's local time, converted with the
//!   detected offset) with a keyset on `(last-modified, id)` built from two queries, because
//!   the query grammar cannot OR across fields.
//! - `update` locks the entity, checks `ver-stamp` against `if_version`, writes, and unlocks;
//!   version-controlled collections use check-out / check-in.
//! - Comments are the entries of the `dev-comments` memo, appended without touching the rest.
//!
//! ```
//! use workbridge_alm::{AlmConfig, AlmRepository};
//! use workbridge_core::{CreateOptions, FieldMap, ItemType, Repository};
//! use workbridge_http::ClientOptions;
//! use workbridge_sim::alm::AlmSim;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sim = AlmSim::builder().user("qa", "qa").spawn().await?;
//! let config = AlmConfig::builder(sim.url(), "DEFAULT", "Demo")
//!     .password("qa", "qa")
//!     .correlation_field("ServiceNow Ticket")
//!     .client_options(ClientOptions::default().allow_http(true))
//!     .build();
//! let alm = AlmRepository::new(config)?;
//! let defects = ItemType::from("defects");
//! let fields = FieldMap::new()
//!     .with("name", "Invoices print blank")
//!     .with("severity", workbridge_core::FieldValue::Choice("3-High".into()))
//!     .with("detected-by", workbridge_core::Person::login("qa"))
//!     .with("creation-time", workbridge_core::FieldValue::Date(chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()));
//! let d = alm.create(&defects, &fields, &CreateOptions::default().correlation("INC0010001")).await?;
//! assert_eq!(alm.find_by_correlation(&defects, &"INC0010001".into()).await?.unwrap().id, d.id);
//! alm.close().await?;
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod codec;
mod config;
mod error;
mod session;

pub use codec::Format;
pub use config::{AlmAuth, AlmConfig, AlmConfigBuilder, LoginFlow, default_defect_workflow};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use tokio::sync::{OnceCell, RwLock};
use workbridge_core::{
    AttachmentMeta, Capabilities, ChangeOptions, ChangePage, Comment, CorrelationKey,
    CreateOptions, Cursor, Error, ErrorKind, FieldDef, FieldKind, FieldMap, FieldValue, GetOptions,
    ItemId, ItemType, KeysetScan, NewAttachment, NewComment, Person, Reference, Repository, Result,
    Schema, TextFormat, UpdateOptions, Version, Visibility, WorkItem,
};
use workbridge_http::header::{ACCEPT, CONTENT_TYPE, HeaderName};
use workbridge_http::{CookieSession, HttpClient, HttpResponse, Method};

use codec::{Entity, Values, encode, parse_collection, parse_entity, xml_text};

const ALM_TIME: &str = "%Y-%m-%d %H:%M:%S";
const SEPARATOR: &str = "________________________________________";

#[derive(Debug, Clone)]
struct FieldMeta {
    label: String,
    ty: String,
    required: bool,
    editable: bool,
    allowed: Vec<String>,
}

impl FieldMeta {
    fn kind(&self) -> FieldKind {
        match self.ty.as_str() {
            "Memo" => FieldKind::Html,
            "Number" => FieldKind::Int,
            "Date" => FieldKind::Date,
            "DateTime" => FieldKind::DateTime,
            "LookupList" => FieldKind::Choice,
            "UsersList" => FieldKind::Person,
            "Reference" => FieldKind::Reference,
            _ => FieldKind::Text,
        }
    }
}

type Meta = BTreeMap<String, FieldMeta>;

/// An ALM project as a [`Repository`]; item types are collections (`defects`,
/// `requirements`, `tests`).
pub struct AlmRepository {
    client: HttpClient,
    config: AlmConfig,
    project_path: String,
    offset: OnceCell<TimeDelta>,
    meta: RwLock<HashMap<String, Arc<Meta>>>,
    capabilities: Capabilities,
}

impl fmt::Debug for AlmRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlmRepository")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for AlmRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "alm:{}/{}/{}",
            workbridge_http::redact_url_text(self.config.url.trim_end_matches('/')),
            self.config.domain,
            self.config.project
        )
    }
}

/// An `attachment` entity as metadata of an attachment of `id`.
fn attachment_meta(e: &Entity, t: &ItemType, id: ItemId, offset: TimeDelta) -> AttachmentMeta {
    let one = |f: &str| {
        e.fields
            .get(f)
            .cloned()
            .flatten()
            .and_then(|v| v.into_iter().next())
            .unwrap_or_default()
    };
    let mut m = AttachmentMeta::new(one("id"), t.clone(), id, one("name"));
    m.size = one("file-size").parse().ok();
    m.created_at = NaiveDateTime::parse_from_str(&one("last-modified"), ALM_TIME)
        .ok()
        .map(|d| d.and_utc() - offset);
    m
}

fn entity_type(collection: &str) -> String {
    match collection {
        "defects" => "defect".into(),
        "requirements" => "requirement".into(),
        "tests" => "test".into(),
        "runs" => "run".into(),
        "test-sets" => "test-set".into(),
        other => other.trim_end_matches('s').to_owned(),
    }
}

fn comment_field(collection: &str) -> Option<&'static str> {
    match collection {
        "defects" => Some("dev-comments"),
        "requirements" => Some("comments"),
        _ => None,
    }
}

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

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text of an HTML fragment: tags dropped, `<br>` and block ends as new lines, entities decoded.
fn html_text(html: &str) -> String {
    let mut out = String::new();
    let mut tag = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                tag.clear();
            }
            '>' if in_tag => {
                in_tag = false;
                let t = tag.trim().to_ascii_lowercase();
                if t.starts_with("br") || t == "/div" || t == "/p" {
                    out.push('\n');
                }
            }
            c if in_tag => tag.push(c),
            c => out.push(c),
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// The entries of a comments memo: (signature name, login, date, text).
fn parse_comments(memo: &str) -> Vec<(String, String, String, String)> {
    let lower = memo.to_ascii_lowercase();
    let is_html = ["<html", "<body", "<div", "<br", "<p>", "<font", "&lt;"]
        .iter()
        .any(|m| lower.contains(m));
    let text = if is_html {
        html_text(memo)
    } else {
        memo.to_owned()
    };
    let mut out = Vec::new();
    for chunk in text.split(SEPARATOR).skip(1) {
        let chunk = chunk.trim_start_matches(['\n', ' ', '\r']);
        let (sig, body) = match chunk.split_once(':') {
            Some((s, b)) if s.contains('<') && s.contains('>') => (s.trim(), b),
            _ => ("", chunk),
        };
        let (name, rest) = sig.split_once('<').unwrap_or(("", sig));
        let (login, date) = rest.split_once('>').unwrap_or((rest, ""));
        out.push((
            name.trim().to_owned(),
            login.trim().to_owned(),
            date.trim().trim_start_matches(',').trim().to_owned(),
            body.trim().to_owned(),
        ));
    }
    out
}

fn parse_comment_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%m/%d/%Y"))
        .ok()
}

impl AlmRepository {
    /// Connects (lazily: the login happens with the first call).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a missing credential or an invalid or refused URL.
    pub fn new(config: AlmConfig) -> Result<Self> {
        let base = config
            .url
            .trim_end_matches('/')
            .trim_end_matches("/qcbin")
            .to_owned();
        let qcbin = format!("{base}/qcbin");
        let auth = config.auth.clone().ok_or_else(|| {
            Error::config("AlmConfig has no credentials: call password() or api_key()")
        })?;
        let login = Arc::new(session::AlmLogin {
            qcbin: qcbin.clone(),
            auth,
            flow: config.login,
        });
        let client = HttpClient::builder(qcbin)
            .options(config.client.clone())
            .auth(Arc::new(CookieSession::new(login)))
            .error_parser(Arc::new(error::parse_error))
            .system(format!(
                "alm:{}/{}/{}",
                workbridge_http::redact_url_text(&base),
                config.domain,
                config.project
            ))
            .build()?;
        let mut capabilities = Capabilities::all();
        capabilities.internal_comments = false;
        capabilities.batch_writes = false;
        capabilities.correlation = config.correlation_field.is_some();
        capabilities.max_page_size = 2000;
        capabilities.max_batch_read = 100;
        // Audits carry no ver-stamp: a change cannot be told by the version it made.
        capabilities.history = false;
        Ok(AlmRepository {
            project_path: format!(
                "rest/domains/{}/projects/{}",
                seg(&config.domain),
                seg(&config.project)
            ),
            client,
            config,
            offset: OnceCell::new(),
            meta: RwLock::new(HashMap::new()),
            capabilities,
        })
    }

    /// Ends the session: deletes the site session and logs out.
    ///
    /// # Errors
    /// What the logout request gave.
    pub async fn close(&self) -> Result<()> {
        self.client.close().await
    }

    /// The HTTP client (for `requests_sent`).
    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    async fn call(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse> {
        let media = self.config.format.media();
        let mut rb = self
            .client
            .request(method, path)
            .query(query)
            .header(ACCEPT, media)
            .operation(op);
        if let Some(b) = body {
            rb = rb.body(b, media);
        }
        rb.send().await
    }

    fn coll_path(&self, t: &ItemType) -> String {
        format!("{}/{}", self.project_path, seg(t.as_str()))
    }

    fn entity_path(&self, t: &ItemType, id: &ItemId) -> Result<String> {
        let n: u64 = id.as_str().parse().map_err(|_| Error::not_found(t, id))?;
        Ok(format!("{}/{n}", self.coll_path(t)))
    }

    async fn offset(&self) -> Result<TimeDelta> {
        if let Some(m) = self.config.time_zone_offset_minutes {
            return Ok(TimeDelta::minutes(m));
        }
        self.offset
            .get_or_try_init(|| async {
                let resp = self
                    .client
                    .get("rest/server/time")
                    .header(ACCEPT, "application/xml")
                    .operation("server time")
                    .send()
                    .await?;
                let text = resp.text();
                let millis: i64 = xml_text(&text, "TimeInMillis")
                    .and_then(|m| m.parse().ok())
                    .ok_or_else(|| {
                        Error::protocol("ServerTime.TimeInMillis", "missing or not a number")
                    })?;
                let local = xml_text(&text, "DateTime")
                    .and_then(|d| NaiveDateTime::parse_from_str(&d, ALM_TIME).ok())
                    .ok_or_else(|| {
                        Error::protocol("ServerTime.DateTime", "missing or not yyyy-MM-dd HH:mm:ss")
                    })?;
                let utc = DateTime::from_timestamp_millis(millis)
                    .ok_or_else(|| Error::protocol("ServerTime.TimeInMillis", "out of range"))?;
                let minutes = (local - utc.naive_utc()).num_seconds() as f64 / 60.0;
                // Offsets are whole quarter hours.
                #[allow(clippy::cast_possible_truncation)]
                let quarter = ((minutes / 15.0).round() as i64) * 15;
                Ok(TimeDelta::minutes(quarter))
            })
            .await
            .copied()
    }

    async fn meta(&self, t: &ItemType) -> Result<Arc<Meta>> {
        if let Some(m) = self.meta.read().await.get(t.as_str()) {
            return Ok(m.clone());
        }
        let kind = entity_type(t.as_str());
        let resp = self
            .call(
                "schema",
                Method::GET,
                &format!("{}/customization/entities/{kind}/fields", self.project_path),
                &[],
                None,
            )
            .await
            .map_err(|e| e.with_item_type(t.clone()))?;
        let lists_resp = self
            .call(
                "schema",
                Method::GET,
                &format!("{}/customization/used-lists", self.project_path),
                &[],
                None,
            )
            .await?;
        let mut lists: HashMap<String, Vec<String>> = HashMap::new();
        let mut fields = BTreeMap::new();
        match self.config.format {
            codec::Format::Json => {
                let v: serde_json::Value = lists_resp.json()?;
                for l in v
                    .get("lists")
                    .and_then(|l| l.as_array())
                    .into_iter()
                    .flatten()
                {
                    let id = l
                        .get("Id")
                        .map(|i| i.to_string().trim_matches('"').to_owned())
                        .unwrap_or_default();
                    let items = l
                        .get("Items")
                        .and_then(|i| i.as_array())
                        .into_iter()
                        .flatten()
                        .filter_map(|i| {
                            i.get("value")
                                .and_then(|v| v.as_str())
                                .map(ToOwned::to_owned)
                        })
                        .collect();
                    lists.insert(id, items);
                }
                let v: serde_json::Value = resp.json()?;
                let list = v
                    .pointer("/Fields/Field")
                    .and_then(|f| f.as_array())
                    .ok_or_else(|| Error::protocol("Fields.Field", "the field list is missing"))?;
                for (i, f) in list.iter().enumerate() {
                    let name = f.get("name").and_then(|n| n.as_str()).ok_or_else(|| {
                        Error::protocol(format!("Fields.Field[{i}].name"), "missing")
                    })?;
                    let list_id = f
                        .get("listId")
                        .map(|x| x.to_string().trim_matches('"').to_owned());
                    fields.insert(
                        name.to_owned(),
                        FieldMeta {
                            label: f
                                .get("label")
                                .and_then(|l| l.as_str())
                                .unwrap_or(name)
                                .to_owned(),
                            ty: f
                                .get("type")
                                .and_then(|t| t.as_str())
                                .unwrap_or("String")
                                .to_owned(),
                            required: f
                                .get("required")
                                .and_then(serde_json::Value::as_bool)
                                .unwrap_or(false),
                            editable: f
                                .get("editable")
                                .and_then(serde_json::Value::as_bool)
                                .unwrap_or(true),
                            allowed: list_id
                                .and_then(|l| lists.get(&l).cloned())
                                .unwrap_or_default(),
                        },
                    );
                }
            }
            codec::Format::Xml => {
                let text = lists_resp.text();
                for list in text.split("<List>").skip(1) {
                    let id = xml_text(list, "Id").unwrap_or_default();
                    let items = list
                        .split("<Item ")
                        .skip(1)
                        .filter_map(|i| {
                            i.split("value=\"").nth(1).and_then(|v| v.split('"').next())
                        })
                        .map(|v| v.replace("&amp;", "&"))
                        .collect();
                    lists.insert(id, items);
                }
                let text = resp.text();
                for (i, f) in text
                    .split("<Field ")
                    .skip(1)
                    .map(|f| format!(" {f}"))
                    .enumerate()
                {
                    let attr = |a: &str| {
                        f.split(&format!(" {a}=\""))
                            .nth(1)
                            .and_then(|v| v.split('"').next())
                            .map(ToOwned::to_owned)
                    };
                    let name = attr("Name").ok_or_else(|| {
                        Error::protocol(format!("Fields.Field[{i}].Name"), "missing")
                    })?;
                    fields.insert(
                        name.clone(),
                        FieldMeta {
                            label: attr("Label").unwrap_or(name),
                            ty: xml_text(&f, "Type").unwrap_or_else(|| "String".into()),
                            required: xml_text(&f, "Required").is_some_and(|r| r == "true"),
                            editable: xml_text(&f, "Editable").is_none_or(|r| r == "true"),
                            allowed: xml_text(&f, "List-Id")
                                .and_then(|l| lists.get(&l).cloned())
                                .unwrap_or_default(),
                        },
                    );
                }
            }
        }
        let meta = Arc::new(fields);
        self.meta.write().await.insert(t.to_string(), meta.clone());
        Ok(meta)
    }

    /// The field a name or label stands for.
    fn resolve<'a>(meta: &'a Meta, name: &str) -> Option<(&'a String, &'a FieldMeta)> {
        meta.get_key_value(name).or_else(|| {
            meta.iter()
                .find(|(_, m)| m.label.eq_ignore_ascii_case(name))
        })
    }

    fn to_item(
        &self,
        t: &ItemType,
        meta: &Meta,
        e: &Entity,
        offset: TimeDelta,
        path: &str,
    ) -> Result<WorkItem> {
        let one = |f: &str| {
            e.fields
                .get(f)
                .cloned()
                .flatten()
                .and_then(|v| v.into_iter().next())
                .filter(|v| !v.is_empty())
        };
        let id = one("id")
            .ok_or_else(|| Error::protocol(format!("{path}.id"), "an entity without id"))?;
        let ver = one("ver-stamp").unwrap_or_else(|| "0".into());
        let lm = one("last-modified").ok_or_else(|| {
            Error::protocol(
                format!("{path}.last-modified"),
                "an entity without last-modified",
            )
        })?;
        let changed_at = NaiveDateTime::parse_from_str(&lm, ALM_TIME)
            .map_err(|_| {
                Error::protocol(
                    format!("{path}.last-modified"),
                    format!("`{lm}` is not yyyy-MM-dd HH:mm:ss"),
                )
            })?
            .and_utc()
            - offset;
        let mut fields = FieldMap::new();
        for (name, values) in &e.fields {
            let m = meta.get(name);
            let p = format!("{path}.{name}");
            let v = match (values, m.map(FieldMeta::kind)) {
                (None, _) => FieldValue::Null,
                (Some(vs), Some(FieldKind::Text | FieldKind::Html))
                    if vs.len() == 1 && vs[0].is_empty() =>
                {
                    if m.is_some_and(|m| m.ty == "Memo") {
                        FieldValue::Html(String::new())
                    } else {
                        FieldValue::Text(String::new())
                    }
                }
                (Some(vs), _) if vs.iter().all(String::is_empty) => FieldValue::Null,
                (Some(vs), Some(FieldKind::Choice)) if vs.len() > 1 => {
                    FieldValue::MultiChoice(vs.clone())
                }
                (Some(vs), kind) => {
                    let s = vs[0].clone();
                    let bad = |what: &str| Error::protocol(&p, format!("`{s}` is not {what}"));
                    match kind {
                        Some(FieldKind::Int) => {
                            FieldValue::Int(s.parse().map_err(|_| bad("a number"))?)
                        }
                        Some(FieldKind::Date) => FieldValue::Date(
                            NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| bad("a date"))?,
                        ),
                        Some(FieldKind::DateTime) => FieldValue::DateTime(
                            NaiveDateTime::parse_from_str(&s, ALM_TIME)
                                .map_err(|_| bad("a date-time"))?
                                .and_utc()
                                - offset,
                        ),
                        Some(FieldKind::Choice) => FieldValue::Choice(s),
                        Some(FieldKind::Person) => FieldValue::Person(Person::login(s)),
                        Some(FieldKind::Html) => FieldValue::Html(s),
                        Some(FieldKind::Reference) => FieldValue::Reference(Reference {
                            target: None,
                            id: s,
                            display: None,
                        }),
                        _ => FieldValue::Text(s),
                    }
                }
            };
            fields.insert(name.as_str(), v);
        }
        let mut item = WorkItem::new(
            ItemId::new(id),
            t.clone(),
            Version::new(ver),
            changed_at,
            fields,
        );
        item.url = None;
        Ok(item)
    }

    /// Writes encoded fields to an entity (`PUT`) and parses the entity the server answers.
    async fn put_entity(
        &self,
        op: &'static str,
        t: &ItemType,
        id: &ItemId,
        fields: &[(String, Values)],
    ) -> Result<Entity> {
        let resp = self
            .call(
                op,
                Method::PUT,
                &self.entity_path(t, id)?,
                &[],
                Some(encode(self.config.format, &entity_type(t.as_str()), fields)),
            )
            .await?;
        parse_entity(self.config.format, &resp.body)
    }

    /// Checks and encodes the fields of a write (labels resolved to names).
    fn encode_fields(
        &self,
        t: &ItemType,
        meta: &Meta,
        fields: &FieldMap,
        offset: TimeDelta,
    ) -> Result<Vec<(String, Values)>> {
        let mut out = Vec::new();
        for (name, value) in fields {
            let Some((real, m)) = Self::resolve(meta, name.as_str()) else {
                return Err(Error::invalid_input(
                    name.clone(),
                    value,
                    format!("{t} has no field `{name}` (by name or label)"),
                ));
            };
            if !m.editable {
                return Err(Error::invalid_input(
                    real.as_str(),
                    value,
                    "the field is read-only",
                ));
            }
            FieldDef::new(real.as_str(), m.kind())
                .allowed(m.allowed.clone())
                .check(value)?;
            let values: Values = match value {
                FieldValue::Null => None,
                FieldValue::Text(s) | FieldValue::Html(s) | FieldValue::Choice(s) => {
                    Some(vec![s.clone()])
                }
                FieldValue::Int(i) => Some(vec![i.to_string()]),
                FieldValue::Float(x) => Some(vec![x.to_string()]),
                FieldValue::Bool(b) => Some(vec![if *b { "Y" } else { "N" }.to_owned()]),
                FieldValue::Date(d) => Some(vec![d.format("%Y-%m-%d").to_string()]),
                FieldValue::DateTime(dt) => Some(vec![(*dt + offset).format(ALM_TIME).to_string()]),
                FieldValue::MultiChoice(v) => Some(v.clone()),
                FieldValue::Reference(r) => Some(vec![r.id.clone()]),
                FieldValue::Url(u) => Some(vec![u.to_string()]),
                FieldValue::Person(p) => Some(vec![p.login.clone().ok_or_else(|| {
                    Error::invalid_input(real.as_str(), p, "ALM names users by login")
                })?]),
            };
            out.push((real.clone(), values));
        }
        Ok(out)
    }

    async fn query(
        &self,
        op: &'static str,
        t: &ItemType,
        query: Option<String>,
        order: &str,
        page_size: usize,
        start: usize,
    ) -> Result<(Vec<Entity>, usize)> {
        let mut q = vec![
            ("order-by", order.to_owned()),
            ("page-size", page_size.to_string()),
            ("start-index", start.to_string()),
        ];
        if let Some(f) = query {
            q.push(("query", f));
        }
        let resp = self
            .call(op, Method::GET, &self.coll_path(t), &q, None)
            .await
            .map_err(|e| e.with_item_type(t.clone()))?;
        parse_collection(self.config.format, &resp.body)
            .map_err(|e| e.with_operation(op).with_system(self))
    }

    async fn read(&self, t: &ItemType, id: &ItemId) -> Result<WorkItem> {
        let meta = self.meta(t).await?;
        let offset = self.offset().await?;
        let resp = self
            .call("get", Method::GET, &self.entity_path(t, id)?, &[], None)
            .await
            .map_err(|e| e.with_item(t.clone(), id.clone()))?;
        let e = parse_entity(self.config.format, &resp.body)?;
        self.to_item(t, &meta, &e, offset, "")
    }

    fn versioned(&self, t: &ItemType) -> bool {
        self.config.versioned.iter().any(|v| v == t.as_str())
    }

    /// Runs `f` with the entity locked (or checked out), releasing it whatever happens.
    async fn with_lock<T, F, Fut>(
        &self,
        op: &'static str,
        t: &ItemType,
        id: &ItemId,
        f: F,
    ) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let path = self.entity_path(t, id)?;
        let (take, release) = if self.versioned(t) {
            (
                format!("{path}/versions/check-out"),
                (Method::POST, format!("{path}/versions/check-in")),
            )
        } else {
            (
                format!("{path}/lock"),
                (Method::DELETE, format!("{path}/lock")),
            )
        };
        self.call(op, Method::POST, &take, &[], None)
            .await
            .map_err(|e| e.with_item(t.clone(), id.clone()))?;
        let result = f().await;
        let released = self.call(op, release.0, &release.1, &[], None).await;
        match (result, released) {
            (Ok(v), Ok(_)) => Ok(v),
            (Ok(_), Err(e)) => Err(e.with_item(t.clone(), id.clone())),
            (Err(e), _) => Err(e),
        }
    }

    fn workflow(&self, t: &ItemType) -> Option<&workbridge_core::TransitionGraph> {
        (t.as_str() == "defects")
            .then_some(self.config.defect_workflow.as_ref())
            .flatten()
    }

    async fn scan(&self, t: &ItemType, since: &Cursor, opts: &ChangeOptions) -> Result<ChangePage> {
        let meta = self.meta(t).await?;
        let offset = self.offset().await?;
        let mut scan = KeysetScan::resume(since, TimeDelta::seconds(1))?;
        let limit = opts
            .page_size
            .unwrap_or(self.config.page_size)
            .clamp(1, 2000);
        let sq = scan.query();
        let local = |u: DateTime<Utc>| (u + offset).format(ALM_TIME).to_string();
        let upper = sq
            .upper
            .map(|u| format!(" AND <=\"{}\"", local(u)))
            .unwrap_or_default();
        let order = "{last-modified[ASC];id[ASC]}";
        let mut rows: Vec<Entity> = Vec::new();
        let mut full = false;
        let mut date = None;
        if let Some((at, id)) = &sq.after {
            let n: u64 = id.as_str().parse().unwrap_or(0);
            let (tie, total) = self
                .query(
                    "changes",
                    t,
                    Some(format!("{{last-modified[\"{}\"];id[>{n}]}}", local(*at))),
                    "{id[ASC]}",
                    limit,
                    1,
                )
                .await?;
            full = total > tie.len();
            rows.extend(tie);
        }
        if !full && rows.len() < limit {
            let filter = match (&sq.after, sq.lower) {
                (Some((at, _)), _) => {
                    Some(format!("{{last-modified[>\"{}\"{upper}]}}", local(*at)))
                }
                (None, Some(from)) => {
                    Some(format!("{{last-modified[>=\"{}\"{upper}]}}", local(from)))
                }
                (None, None) => None,
            };
            let want = limit - rows.len();
            let mut q = vec![
                ("order-by", order.to_owned()),
                ("page-size", want.to_string()),
                ("start-index", "1".to_owned()),
            ];
            if let Some(f) = filter {
                q.push(("query", f));
            }
            let resp = self
                .call("changes", Method::GET, &self.coll_path(t), &q, None)
                .await?;
            date = resp
                .header("date")
                .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
                .map(|d| d.with_timezone(&Utc));
            let (more, total) = parse_collection(self.config.format, &resp.body)?;
            full = total > more.len();
            rows.extend(more);
        } else {
            full = true;
        }
        let items = rows
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut item = self.to_item(t, &meta, e, offset, &format!("entities[{i}]"))?;
                if let Some(f) = &opts.fields {
                    item.fields = item
                        .fields
                        .into_iter()
                        .filter(|(k, _)| f.contains(k))
                        .collect();
                    item.partial = true;
                }
                Ok(item)
            })
            .collect::<Result<Vec<_>>>()?;
        let items = scan.absorb(items, full, date);
        Ok(ChangePage::new(items, scan.cursor()?, scan.has_more()))
    }

    fn correlation_name(&self, meta: &Meta) -> Result<String> {
        let f = self.config.correlation_field.as_deref().ok_or_else(|| {
            Error::unsupported("find_by_correlation", "no correlation field is configured")
        })?;
        Self::resolve(meta, f)
            .map(|(n, _)| n.clone())
            .ok_or_else(|| {
                Error::config(format!(
                    "the correlation field `{f}` is not a field of this entity (by name or label)"
                ))
            })
    }
}

#[async_trait]
impl Repository for AlmRepository {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn schema(&self, t: &ItemType) -> Result<Schema> {
        let meta = self
            .meta(t)
            .await
            .map_err(|e| e.with_operation("schema").with_system(self))?;
        let mut s = Schema::new(t.clone());
        for (name, m) in meta.iter() {
            let mut d = FieldDef::new(name.as_str(), m.kind())
                .label(m.label.clone())
                .allowed(m.allowed.clone());
            if m.required {
                d = d.required();
            }
            if !m.editable {
                d = d.read_only();
            }
            s = s.field(d);
        }
        if let Some(g) = self.workflow(t) {
            s = s.workflow(g.clone());
        }
        Ok(s)
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
            .meta(t)
            .await
            .map_err(|e| e.with_operation("get_many").with_system(self))?;
        let offset = self.offset().await?;
        let mut numeric: Vec<u64> = ids.iter().filter_map(|i| i.as_str().parse().ok()).collect();
        numeric.sort_unstable();
        numeric.dedup();
        let mut found: HashMap<String, WorkItem> = HashMap::new();
        for chunk in numeric.chunks(self.capabilities.max_batch_read) {
            let filter = format!(
                "{{id[{}]}}",
                chunk
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" OR ")
            );
            let (rows, _) = self
                .query("get_many", t, Some(filter), "{id[ASC]}", chunk.len(), 1)
                .await?;
            for (i, e) in rows.iter().enumerate() {
                let mut item = self.to_item(t, &meta, e, offset, &format!("entities[{i}]"))?;
                if let Some(f) = &opts.fields {
                    item.fields = item
                        .fields
                        .into_iter()
                        .filter(|(k, _)| f.contains(k))
                        .collect();
                    item.partial = true;
                }
                found.insert(item.id.to_string(), item);
            }
        }
        Ok(ids
            .iter()
            .map(|id| found.get(id.as_str()).cloned())
            .collect())
    }

    async fn create(
        &self,
        t: &ItemType,
        fields: &FieldMap,
        opts: &CreateOptions,
    ) -> Result<WorkItem> {
        let run = async {
            let meta = self.meta(t).await?;
            let offset = self.offset().await?;
            let mut body = self.encode_fields(t, &meta, fields, offset)?;
            if let Some(k) = &opts.correlation {
                let field = self.correlation_name(&meta).map_err(|e| {
                    if e.kind() == ErrorKind::Unsupported {
                        Error::config(
                            "a correlation key was given but no correlation field is configured",
                        )
                    } else {
                        e
                    }
                })?;
                body.retain(|(n, _)| *n != field);
                body.push((field, Some(vec![k.to_string()])));
            }
            if let Some(wf) = self.workflow(t)
                && let Some(state) = fields
                    .get(wf.state_field.as_str())
                    .and_then(FieldValue::as_str)
                && !wf.initial.is_empty()
                && !wf.initial.iter().any(|i| i == state)
            {
                return Err(Error::invalid_input(
                    wf.state_field.clone(),
                    state,
                    format!(
                        "a new entity must start in one of: {}",
                        wf.initial.join(", ")
                    ),
                ));
            }
            let resp = self
                .call(
                    "create",
                    Method::POST,
                    &self.coll_path(t),
                    &[],
                    Some(encode(self.config.format, &entity_type(t.as_str()), &body)),
                )
                .await?;
            let e = parse_entity(self.config.format, &resp.body)?;
            self.to_item(t, &meta, &e, offset, "")
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
            let meta = self.meta(t).await?;
            let offset = self.offset().await?;
            let body = self.encode_fields(t, &meta, changes, offset)?;
            self.with_lock("update", t, id, || async {
                let current = self.read(t, id).await?;
                if let Some(expected) = &opts.if_version
                    && *expected != current.version
                {
                    return Err(Error::conflict(format!(
                        "{t} {id} is at ver-stamp {}, not {expected}",
                        current.version
                    )));
                }
                if let Some(wf) = self.workflow(t)
                    && let Some(to) = changes.get(wf.state_field.as_str())
                {
                    let from = current
                        .field(wf.state_field.as_str())
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    let mut after = current.fields.clone();
                    after.merge(changes);
                    wf.check(&from, &to.to_string(), &after)?;
                }
                let e = self.put_entity("update", t, id, &body).await?;
                self.to_item(t, &meta, &e, offset, "")
            })
            .await
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

    async fn find_by_correlation(
        &self,
        t: &ItemType,
        key: &CorrelationKey,
    ) -> Result<Option<WorkItem>> {
        let meta = self
            .meta(t)
            .await
            .map_err(|e| e.with_operation("find_by_correlation").with_system(self))?;
        let field = self
            .correlation_name(&meta)
            .map_err(|e| e.with_operation("find_by_correlation").with_system(self))?;
        if key.as_str().contains('"') {
            return Err(Error::invalid_input(
                "correlation key",
                key,
                "an ALM query cannot hold a double quote",
            ));
        }
        let offset = self.offset().await?;
        let (rows, _) = self
            .query(
                "find_by_correlation",
                t,
                Some(format!("{{{field}[\"{key}\"]}}")),
                "{id[ASC]}",
                1,
                1,
            )
            .await?;
        rows.first()
            .map(|e| self.to_item(t, &meta, e, offset, "entities[0]"))
            .transpose()
    }

    async fn find_many_by_correlation(
        &self,
        t: &ItemType,
        keys: &[CorrelationKey],
    ) -> Result<Vec<Option<WorkItem>>> {
        const OP: &str = "find_many_by_correlation";
        const PAGE: usize = 1000;
        let meta = self.meta(t).await.map_err(|e| e.with_operation(OP))?;
        let field = self
            .correlation_name(&meta)
            .map_err(|e| e.with_operation(OP))?;
        if let Some(k) = keys.iter().find(|k| k.as_str().contains('"')) {
            return Err(Error::invalid_input(
                "correlation key",
                k,
                "an ALM query cannot hold a double quote",
            ));
        }
        let offset = self.offset().await?;
        let mut found: HashMap<String, WorkItem> = HashMap::new();
        let mut distinct: Vec<&CorrelationKey> = Vec::new();
        for k in keys {
            if !distinct.contains(&k) {
                distinct.push(k);
            }
        }
        for chunk in distinct.chunks(50) {
            let alternatives: Vec<String> = chunk.iter().map(|k| format!("\"{k}\"")).collect();
            let query = format!("{{{field}[{}]}}", alternatives.join(" OR "));
            let (rows, _) = self.query(OP, t, Some(query), "{id[ASC]}", PAGE, 1).await?;
            for (i, e) in rows.iter().enumerate() {
                let item = self.to_item(t, &meta, e, offset, &format!("entities[{i}]"))?;
                let Some(key) = item.field(&field).map(ToString::to_string) else {
                    continue;
                };
                // Lowest id first, as find_by_correlation answers.
                found.entry(key).or_insert(item);
            }
            if rows.len() >= PAGE {
                // Duplicates filled the page: what it did not reach is asked key by key.
                let missing: Vec<&CorrelationKey> = chunk
                    .iter()
                    .copied()
                    .filter(|k| !found.contains_key(k.as_str()))
                    .collect();
                for k in missing {
                    if let Some(item) = self.find_by_correlation(t, k).await? {
                        found.insert(k.as_str().to_owned(), item);
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
            let field = comment_field(t.as_str()).ok_or_else(|| {
                Error::unsupported("comments", format!("{t} has no comments memo"))
            })?;
            let offset = self.offset().await?;
            let item = self.read(t, id).await?;
            let memo = item
                .field(field)
                .and_then(FieldValue::as_str)
                .unwrap_or_default()
                .to_owned();
            Ok(parse_comments(&memo)
                .into_iter()
                .enumerate()
                .map(|(i, (name, login, date, text))| {
                    let at = parse_comment_date(&date)
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                        .map_or(item.changed_at, |d| d.and_utc() - offset);
                    let mut c = Comment::new(
                        format!("dc{}", i + 1),
                        at,
                        text,
                        TextFormat::Plain,
                        Visibility::Public,
                    );
                    c.author = Some(Person {
                        login: Some(login).filter(|l| !l.is_empty()),
                        display_name: Some(name).filter(|n| !n.is_empty()),
                        ..Person::default()
                    });
                    c
                })
                .collect())
        };
        run.await
            .map_err(|e: Error| e.for_item("comments", t, id, self))
    }

    async fn add_comment(&self, t: &ItemType, id: &ItemId, c: &NewComment) -> Result<Comment> {
        let run = async move {
            if c.visibility == Visibility::Internal {
                return Err(Error::unsupported(
                    "add_comment",
                    "ALM comments have no internal visibility",
                ));
            }
            let field = comment_field(t.as_str()).ok_or_else(|| {
                Error::unsupported("add_comment", format!("{t} has no comments memo"))
            })?;
            if c.body.trim().is_empty() {
                return Err(
                    Error::invalid_input("comment", "", "a comment needs a body")
                        .with_operation("add_comment"),
                );
            }
            let offset = self.offset().await?;
            let login = match &self.config.auth {
                Some(AlmAuth::Password { user, .. }) => user.clone(),
                Some(AlmAuth::ApiKey { client_id, .. }) => client_id.clone(),
                None => String::new(),
            };
            let name = c
                .author
                .as_ref()
                .and_then(|a| a.display_name.clone())
                .unwrap_or_else(|| login.clone());
            let today = (Utc::now() + offset).format("%Y-%m-%d").to_string();
            let text = match c.format {
                TextFormat::Html => html_text(&c.body).trim().to_owned(),
                _ => c.body.clone(),
            };
            let entry = format!(
                "<div align=\"left\"><font face=\"Arial\"><span style=\"font-size:8pt\"><br /></span></font></div><div align=\"left\"><font face=\"Arial\" color=\"#000080\"><span style=\"font-size:8pt\"><b>{SEPARATOR}</b></span></font></div><div align=\"left\"><font face=\"Arial\" color=\"#000080\"><span style=\"font-size:8pt\"><b>{} &lt;{}&gt;, {today}:</b></span></font><font face=\"Arial\"><span style=\"font-size:8pt\"> {}</span></font></div>",
                html_escape(&name),
                html_escape(&login),
                html_escape(&text).replace('\n', "<br />")
            );
            let meta = self.meta(t).await?;
            let count = self
                .with_lock("add_comment", t, id, || async {
                    let current = self.read(t, id).await?;
                    let memo = current
                        .field(field)
                        .and_then(FieldValue::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let updated = match memo.rfind("</body>") {
                        Some(pos) => format!("{}{entry}{}", &memo[..pos], &memo[pos..]),
                        None if memo.trim().is_empty() => {
                            format!("<html><body>{entry}</body></html>")
                        }
                        None => format!("{memo}{entry}"),
                    };
                    let body = self.encode_fields(
                        t,
                        &meta,
                        &FieldMap::new().with(field, FieldValue::Html(updated)),
                        offset,
                    )?;
                    let stored = self
                        .put_entity("add_comment", t, id, &body)
                        .await?
                        .fields
                        .get(field)
                        .cloned()
                        .flatten()
                        .and_then(|v| v.into_iter().next())
                        .unwrap_or_default();
                    Ok(parse_comments(&stored).len())
                })
                .await
                .map_err(|e| e.with_operation("add_comment").with_system(self))?;
            let at = NaiveDate::parse_from_str(&today, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map_or_else(Utc::now, |d| d.and_utc() - offset);
            let mut comment = Comment::new(
                format!("dc{count}"),
                at,
                text,
                TextFormat::Plain,
                Visibility::Public,
            );
            comment.author = Some(Person {
                login: Some(login),
                display_name: Some(name),
                ..Person::default()
            });
            Ok(comment)
        };
        run.await
            .map_err(|e: Error| e.for_item("add_comment", t, id, self))
    }

    async fn attachments(&self, t: &ItemType, id: &ItemId) -> Result<Vec<AttachmentMeta>> {
        let run = async move {
            let offset = self.offset().await?;
            let resp = self
                .call(
                    "attachments",
                    Method::GET,
                    &format!("{}/attachments", self.entity_path(t, id)?),
                    &[],
                    None,
                )
                .await
                .map_err(|e| e.with_item(t.clone(), id.clone()))?;
            let (rows, _) = parse_collection(self.config.format, &resp.body)?;
            Ok(rows
                .iter()
                .map(|e| attachment_meta(e, t, id.clone(), offset))
                .collect())
        };
        run.await
            .map_err(|e: Error| e.for_item("attachments", t, id, self))
    }

    async fn attachments_since(
        &self,
        t: &ItemType,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AttachmentMeta>> {
        // Attaching a file leaves the entity's `last-modified` alone (the simulator does so;
        // unverified on a server), so `changes` does not show it: the project-level
        // attachments collection does, with each attachment's parent.
        let run = async move {
            let offset = self.offset().await?;
            let local = (since + offset).format(ALM_TIME).to_string();
            let q = [
                (
                    "query",
                    format!(
                        "{{parent-type[{}];last-modified[>=\"{local}\"]}}",
                        entity_type(t.as_str())
                    ),
                ),
                ("order-by", "{last-modified[ASC];id[ASC]}".to_owned()),
                ("page-size", limit.clamp(1, 2000).to_string()),
                ("start-index", "1".to_owned()),
            ];
            let resp = self
                .call(
                    "attachments_since",
                    Method::GET,
                    &format!("{}/attachments", self.project_path),
                    &q,
                    None,
                )
                .await?;
            let (rows, _) = parse_collection(self.config.format, &resp.body)?;
            rows.iter()
                .enumerate()
                .map(|(i, e)| {
                    let parent = e
                        .fields
                        .get("parent-id")
                        .cloned()
                        .flatten()
                        .and_then(|v| v.into_iter().next())
                        .filter(|p| !p.is_empty())
                        .ok_or_else(|| {
                            Error::protocol(
                                format!("entities[{i}].parent-id"),
                                "an attachment without its entity",
                            )
                        })?;
                    let m = attachment_meta(e, t, ItemId::new(parent), offset);
                    if m.created_at.is_none() {
                        return Err(Error::protocol(
                            format!("entities[{i}].last-modified"),
                            "an attachment without a time",
                        ));
                    }
                    Ok(m)
                })
                .collect::<Result<Vec<_>>>()
        };
        run.await.map_err(|e: Error| {
            e.with_operation("attachments_since")
                .with_item_type(t.clone())
                .with_system(self)
        })
    }

    async fn download(&self, a: &AttachmentMeta) -> Result<Bytes> {
        let run = async move {
            let path = format!(
                "{}/attachments/{}",
                self.entity_path(&a.item_type, &a.item_id)?,
                seg(&a.file_name)
            );
            let resp = self
                .client
                .get(&path)
                .header(ACCEPT, "application/octet-stream")
                .operation("download")
                .send()
                .await?;
            Ok(resp.body)
        };
        run.await
            .map_err(|e: Error| e.for_item("download", &a.item_type, &a.item_id, self))
    }

    async fn upload(&self, t: &ItemType, id: &ItemId, a: &NewAttachment) -> Result<AttachmentMeta> {
        let run = async move {
            let path = format!("{}/attachments", self.entity_path(t, id)?);
            let resp = self
                .client
                .post(&path)
                .header(ACCEPT, self.config.format.media())
                .header(HeaderName::from_static("slug"), &a.file_name)
                .body(a.data.clone(), "application/octet-stream")
                .header(CONTENT_TYPE, "application/octet-stream")
                .operation("upload")
                .send()
                .await
                .map_err(|e| e.with_item(t.clone(), id.clone()))?;
            let e = parse_entity(self.config.format, &resp.body)?;
            let one = |f: &str| {
                e.fields
                    .get(f)
                    .cloned()
                    .flatten()
                    .and_then(|v| v.into_iter().next())
                    .unwrap_or_default()
            };
            let mut m = AttachmentMeta::new(one("id"), t.clone(), id.clone(), one("name"));
            m.size = one("file-size").parse().ok();
            Ok(m)
        };
        run.await
            .map_err(|e: Error| e.for_item("upload", t, id, self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_parsed_from_qc_markup_and_plain_rows() {
        let memo = "<html><body>\n<div align=\"left\"><font face=\"Arial\"><span style=\"font-size:8pt\"><br /></span></font></div>\n<div align=\"left\"><font face=\"Arial\" color=\"#000080\"><span style=\"font-size:8pt\"><b>________________________________________</b></span></font></div>\n<div align=\"left\"><font face=\"Arial\" color=\"#000080\"><span style=\"font-size:8pt\"><b>Jane Doe &lt;jdoe&gt;, 12/6/2017:</b></span></font>\n<font face=\"Arial\"><span style=\"font-size:8pt\"> comment text<br />second line</span></font></div>\n</body></html>";
        let c = parse_comments(memo);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].0.as_str(), c[0].1.as_str(), c[0].2.as_str()),
            ("Jane Doe", "jdoe", "12/6/2017")
        );
        assert_eq!(c[0].3, "comment text\nsecond line");
        assert_eq!(
            parse_comment_date(&c[0].2),
            NaiveDate::from_ymd_opt(2017, 12, 6)
        );
        let plain = "________________________________________\nName Here <nh>, 2017-06-12:\nfirst\n________________________________________\nOther <o>, 2017-06-13:\nsecond";
        let c = parse_comments(plain);
        assert_eq!(c.len(), 2);
        assert_eq!((c[1].1.as_str(), c[1].3.as_str()), ("o", "second"));
        assert!(parse_comments("<html><body>no comments yet</body></html>").is_empty());
    }
}
