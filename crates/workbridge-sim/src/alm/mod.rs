//! A stateful simulator of the HP ALM / Quality Center REST API (Core): cookie sessions with
//! XSRF, entities (`defects`, `requirements`, `tests`) in JSON and XML, the query grammar,
//! paging, locks, check-out, customization metadata, attachments and audits, with
//! `last-modified` in the server's own time zone.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use workbridge_sim::alm::AlmSim;
//! let sim = AlmSim::builder().user("qa", "qa").seed(5).spawn().await?;
//! let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
//! http.post(format!("{}/qcbin/authentication-point/alm-authenticate", sim.url()))
//!     .header("Content-Type", "application/xml")
//!     .body("<alm-authentication><user>qa</user><password>qa</password></alm-authentication>")
//!     .send().await.unwrap();
//! http.post(format!("{}/qcbin/rest/site-session", sim.url())).send().await.unwrap();
//! let body: serde_json::Value = http
//!     .get(format!("{}/qcbin/rest/domains/DEFAULT/projects/Demo/defects?page-size=2", sim.url()))
//!     .header("Accept", "application/json")
//!     .send().await.unwrap().json().await.unwrap();
//! assert_eq!(body["TotalResults"], 5);
//! # Ok(()) }
//! ```

mod model;
mod query;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::common::{self, Control, Faults, MiddlewareState, Running, SimClock, SimControl};
use model::FieldSpec;

pub(crate) use crate::common::lock;

/// The ALM release emulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum AlmVersion {
    /// ALM 12.60: no XSRF token required.
    V12_60,
    /// ALM 16: `X-XSRF-TOKEN` required on every write.
    V16,
    /// ALM 25: XSRF, and `GET logout` disabled.
    V25,
}

impl AlmVersion {
    /// Parses `12.60`, `16`, `25`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "12.60" | "12.6" => Some(AlmVersion::V12_60),
            "16" | "16.0" => Some(AlmVersion::V16),
            "25" | "25.1" => Some(AlmVersion::V25),
            _ => None,
        }
    }
}

/// A stored value: `None` is null (`values: []`), `Some` holds the values (`""` for empty).
type Stored = Option<Vec<String>>;

#[derive(Debug, Clone)]
struct Entity {
    fields: BTreeMap<String, Stored>,
}

#[derive(Debug, Clone)]
struct Attachment {
    id: u64,
    collection: String,
    parent: u64,
    name: String,
    data: Bytes,
    modified: String,
}

#[derive(Debug, Clone)]
struct Audit {
    id: u64,
    parent_type: &'static str,
    parent: u64,
    time: String,
    user: String,
    props: Vec<(String, String, String, String)>,
}

#[derive(Debug, Clone)]
struct Session {
    user: String,
    xsrf: String,
    last_used: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct State_ {
    entities: BTreeMap<String, BTreeMap<u64, Entity>>,
    next_id: HashMap<String, u64>,
    attachments: Vec<Attachment>,
    next_attachment: u64,
    audits: Vec<Audit>,
    next_audit: u64,
    /// LWSSO token → (user, logged out).
    lwsso: HashMap<String, (String, bool)>,
    sessions: HashMap<String, Session>,
    locks: HashMap<(String, u64), String>,
    checked_out: HashMap<(String, u64), String>,
}

#[derive(Debug, Clone)]
struct Config {
    domain: String,
    project: String,
    version: AlmVersion,
    users: Vec<(String, String, String)>,
    api_keys: Vec<(String, String, String, bool)>,
    offset: TimeDelta,
    idle: TimeDelta,
    enforce_workflow: bool,
    version_control: bool,
}

struct Alm {
    st: Mutex<State_>,
    config: Config,
    control: Arc<Control>,
}

impl Alm {
    fn local_now(&self) -> String {
        (self.control.clock.now() + self.config.offset)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    fn token(&self) -> String {
        let n: u128 = rand::rngs::StdRng::from_os_rng().random();
        format!("{n:032x}")
    }
}

/// Builds an [`AlmSim`].
#[derive(Debug, Clone)]
pub struct AlmSimBuilder {
    config: Config,
    seed: usize,
    port: u16,
    tls: Option<common::Tls>,
    faults: Faults,
    clock: SimClock,
}

impl Default for AlmSimBuilder {
    fn default() -> Self {
        AlmSimBuilder {
            config: Config {
                domain: "DEFAULT".into(),
                project: "Demo".into(),
                version: AlmVersion::V16,
                users: vec![
                    ("sa".into(), String::new(), "Site Admin".into()),
                    ("dev1".into(), "dev1".into(), "Dana Developer".into()),
                    ("jdoe".into(), "jdoe".into(), "Jane Doe".into()),
                ],
                api_keys: Vec::new(),
                offset: TimeDelta::hours(-7),
                idle: TimeDelta::minutes(60),
                enforce_workflow: true,
                version_control: false,
            },
            seed: 0,
            port: 0,
            tls: None,
            faults: Faults::none(),
            clock: SimClock::default(),
        }
    }
}

impl AlmSimBuilder {
    /// The domain (default `DEFAULT`).
    #[must_use]
    pub fn domain(mut self, d: &str) -> Self {
        self.config.domain = d.into();
        self
    }

    /// The project (default `Demo`).
    #[must_use]
    pub fn project(mut self, p: &str) -> Self {
        self.config.project = p.into();
        self
    }

    /// Adds a user who can sign in.
    #[must_use]
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.config
            .users
            .push((name.into(), password.into(), name.into()));
        self
    }

    /// Adds an API key (`oauth2/login`) acting as `user`.
    #[must_use]
    pub fn api_key(mut self, client_id: &str, secret: &str, user: &str) -> Self {
        self.config
            .api_keys
            .push((client_id.into(), secret.into(), user.into(), true));
        self
    }

    /// The release emulated (default 16).
    #[must_use]
    pub fn version(mut self, v: AlmVersion) -> Self {
        self.config.version = v;
        self
    }

    /// The database server's time zone, as minutes from UTC (default -420, UTC-7).
    #[must_use]
    pub fn time_zone_offset_minutes(mut self, m: i64) -> Self {
        self.config.offset = TimeDelta::minutes(m);
        self
    }

    /// Idle time after which a site session expires (default 60 minutes).
    #[must_use]
    pub fn session_idle_timeout(mut self, d: std::time::Duration) -> Self {
        self.config.idle = TimeDelta::from_std(d).unwrap_or(TimeDelta::minutes(60));
        self
    }

    /// Whether defect status transitions are enforced (default true).
    #[must_use]
    pub fn enforce_workflow(mut self, on: bool) -> Self {
        self.config.enforce_workflow = on;
        self
    }

    /// Whether requirements and tests are version-controlled (check-out before update).
    #[must_use]
    pub fn version_control(mut self, on: bool) -> Self {
        self.config.version_control = on;
        self
    }

    /// Seeds `n` defects.
    #[must_use]
    pub fn seed(mut self, n: usize) -> Self {
        self.seed = n;
        self
    }

    /// Listens on this port (default: any free one).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Serves HTTPS with a self-signed certificate made at start (see
    /// [`crate::Tls`]); the base URL becomes `https://localhost:port`.
    #[must_use]
    pub fn tls(mut self, tls: common::Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Injects faults.
    #[must_use]
    pub fn faults(mut self, f: Faults) -> Self {
        self.faults = f;
        self
    }

    /// Uses this clock.
    #[must_use]
    pub fn clock(mut self, c: SimClock) -> Self {
        self.clock = c;
        self
    }

    /// Starts serving on 127.0.0.1.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn spawn(self) -> std::io::Result<AlmSim> {
        let control = Arc::new(Control::new(self.clock.clone(), self.faults));
        let alm = Arc::new(Alm {
            st: Mutex::new(State_::default()),
            config: self.config,
            control,
        });
        let router = router(alm.clone());
        let running = common::serve(router, self.port, self.tls.as_ref()).await?;
        let url = running.base_url();
        let sim = AlmSim { alm, running, url };
        for i in 0..self.seed {
            let summary = model::SUMMARIES[i % model::SUMMARIES.len()];
            let severity = ["2-Medium", "3-High", "1-Low"][i % 3];
            let _ = sim.create(
                "defects",
                &[
                    ("name", summary),
                    ("severity", severity),
                    ("detected-by", "jdoe"),
                    ("creation-time", "2026-01-05"),
                ],
            );
        }
        Ok(sim)
    }
}

/// A running ALM simulator. It stops when dropped.
pub struct AlmSim {
    alm: Arc<Alm>,
    running: Running,
    url: String,
}

impl std::fmt::Debug for AlmSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlmSim")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl AlmSim {
    /// A builder.
    pub fn builder() -> AlmSimBuilder {
        AlmSimBuilder::default()
    }

    /// The server URL (`http://127.0.0.1:PORT`); the API is under `/qcbin`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Request accounting, faults and the clock.
    pub fn control(&self) -> SimControl {
        SimControl(self.alm.control.clone())
    }

    /// The clock.
    pub fn clock(&self) -> SimClock {
        self.alm.control.clock.clone()
    }

    /// The certificate it serves, when started with [`crate::Tls`].
    pub fn certificate(&self) -> Option<&common::Certificate> {
        self.running.certificate.as_ref()
    }

    /// Stops serving.
    pub async fn stop(self) {
        self.running.stop().await;
    }

    /// Creates an entity directly (as `sa`); returns its id.
    ///
    /// # Errors
    /// The QC error id and title when the values break the project's rules.
    pub fn create(&self, collection: &str, fields: &[(&str, &str)]) -> Result<u64, String> {
        let body: Vec<(String, Stored)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some(vec![(*v).to_owned()])))
            .collect();
        let mut st = lock(&self.alm.st);
        write_entity(&self.alm, &mut st, collection, None, body, "sa", None)
            .map_err(|e| format!("{}: {}", e.1, e.2))
    }

    /// Updates an entity directly, as `user` (ignoring locks, as another client would).
    pub fn update(&self, collection: &str, id: u64, fields: &[(&str, &str)], user: &str) -> bool {
        let body: Vec<(String, Stored)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some(vec![(*v).to_owned()])))
            .collect();
        let mut st = lock(&self.alm.st);
        write_entity(&self.alm, &mut st, collection, Some(id), body, user, None).is_ok()
    }

    /// A field's values.
    pub fn field(&self, collection: &str, id: u64, field: &str) -> Option<Vec<String>> {
        lock(&self.alm.st)
            .entities
            .get(collection)?
            .get(&id)?
            .fields
            .get(field)
            .cloned()
            .flatten()
    }

    /// Locks an entity as if another user's session held it; returns that session's id.
    pub fn lock_as_other_user(&self, collection: &str, id: u64, user: &str) -> String {
        let session = self.alm.token();
        let mut st = lock(&self.alm.st);
        st.sessions.insert(
            session.clone(),
            Session {
                user: user.into(),
                xsrf: String::new(),
                last_used: self.alm.control.clock.now(),
            },
        );
        st.locks
            .insert((collection.to_owned(), id), session.clone());
        session
    }

    /// Releases every lock.
    pub fn release_locks(&self) {
        lock(&self.alm.st).locks.clear();
    }
}

// ---------------------------------------------------------------------------------------------
// Formats and errors

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fmt {
    Json,
    Xml,
    Html,
}

fn wants(headers: &HeaderMap, raw: Option<&str>) -> Fmt {
    if raw
        .is_some_and(|q| q.contains("alt=application/json") || q.contains("alt=application%2Fjson"))
    {
        return Fmt::Json;
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.contains("application/json") {
        Fmt::Json
    } else if accept.contains("application/xml") || accept.contains("text/xml") {
        Fmt::Xml
    } else {
        Fmt::Html
    }
}

fn xml_escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

fn qc_error(fmt: Fmt, status: StatusCode, id: &str, title: &str) -> Response {
    let (body, ct) = match fmt {
        Fmt::Json => (
            json!({"Id": id, "Title": title, "ExceptionProperties": null, "StackTrace": null})
                .to_string(),
            "application/json",
        ),
        Fmt::Xml => (
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><QCRestException><Id>{}</Id><Title>{}</Title><StackTrace>{}</StackTrace></QCRestException>",
                xml_escape(id),
                xml_escape(title),
                xml_escape(id)
            ),
            "application/xml",
        ),
        Fmt::Html => (
            format!(
                "<html><head><title>ALM Error</title></head><body><h1>Application Lifecycle Management</h1><p>{}</p><p>{}</p><pre>at com.hp.qc.rest.{}</pre></body></html>",
                xml_escape(title),
                xml_escape(id),
                xml_escape(id)
            ),
            "text/html",
        ),
    };
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

fn fault_body(status: u16) -> (String, &'static str) {
    let title = match status {
        503 => "Service Unavailable",
        429 => "Too Many Requests",
        _ => "General server error",
    };
    (json!({"Id": "qccore.general-error", "Title": title, "ExceptionProperties": null, "StackTrace": null}).to_string(), "application/json")
}

fn entity_json(kind: &str, e: &Entity, only: Option<&[String]>) -> Value {
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

fn entity_xml(kind: &str, e: &Entity, only: Option<&[String]>) -> String {
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

fn render_one(fmt: Fmt, status: StatusCode, kind: &str, e: &Entity) -> Response {
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

fn typed(status: StatusCode, body: String, ct: &'static str) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

/// Reads an entity body (JSON or XML) into (field, values) pairs.
fn parse_entity(headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, Stored)>, String> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if ct.contains("json") {
        let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let v = v.get("entity").cloned().unwrap_or(v);
        let fields = v
            .get("Fields")
            .and_then(Value::as_array)
            .ok_or("the entity has no Fields")?;
        return fields
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
            .collect();
    }
    if ct.contains("xml") {
        use quick_xml::events::Event;
        let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
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
        return Ok(out);
    }
    Err(format!("unsupported Content-Type {ct}"))
}

fn sanitize(html: &str) -> String {
    let mut out = html.to_owned();
    while let Some(start) = out.to_lowercase().find("<script") {
        let end = out.to_lowercase()[start..]
            .find("</script>")
            .map_or(out.len(), |e| start + e + "</script>".len());
        out.replace_range(start..end, "");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Writes

type QcErr = (StatusCode, &'static str, String);

fn list_items(name: &str) -> &'static [&'static str] {
    model::LISTS
        .iter()
        .find(|(n, ..)| *n == name)
        .map_or(&[], |(.., items)| items)
}

fn write_entity(
    alm: &Alm,
    st: &mut State_,
    collection: &str,
    id: Option<u64>,
    body: Vec<(String, Stored)>,
    user: &str,
    session: Option<&str>,
) -> Result<u64, QcErr> {
    let (kind, specs) = model::entity_type(collection).ok_or((
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
            (None, Some(s)) if alm.config.enforce_workflow && s != "New" => {
                return Err((
                    StatusCode::FORBIDDEN,
                    "qccore.operation-forbidden",
                    format!("The workflow does not allow a new defect in status '{s}'"),
                ));
            }
            (Some(a), Some(b))
                if a != b
                    && alm.config.enforce_workflow
                    && !model::DEFECT_TRANSITIONS.contains(&(a.as_str(), b.as_str())) =>
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

// ---------------------------------------------------------------------------------------------
// Sessions

fn host_of(headers: &HeaderMap) -> String {
    format!(
        "http://{}",
        headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost")
    )
}

fn cookies(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(';'))
        .filter_map(|p| {
            p.trim()
                .split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

fn set_cookie(r: &mut Response, name: &str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("{name}={value}; Path=/qcbin; HTTPOnly")) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn unauthenticated(headers: &HeaderMap, raw: Option<&str>, url: &str) -> Response {
    let mut r = qc_error(
        wants(headers, raw),
        StatusCode::UNAUTHORIZED,
        "qccore.general-error",
        "Authentication failed. Browser based authentication is not supported",
    );
    if let Ok(v) =
        HeaderValue::from_str(&format!("LWSSO realm=\"{url}/qcbin/authentication-point\""))
    {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// The session of a project call, or the error response.
fn session_of(
    alm: &Alm,
    st: &mut State_,
    headers: &HeaderMap,
    raw: Option<&str>,
    method: &Method,
    host: &str,
) -> Result<(String, String), Response> {
    let fmt = wants(headers, raw);
    let c = cookies(headers);
    let Some(lw) = c.get("LWSSO_COOKIE_KEY") else {
        return Err(unauthenticated(headers, raw, host));
    };
    match st.lwsso.get(lw) {
        None => return Err(unauthenticated(headers, raw, host)),
        Some((_, true)) => {
            return Err(qc_error(
                fmt,
                StatusCode::INTERNAL_SERVER_ERROR,
                "qccore.general-error",
                "TokenId is invalid because it has logged out",
            ));
        }
        Some(_) => {}
    }
    let now = alm.control.clock.now();
    let Some(qs) = c.get("QCSession").cloned() else {
        return Err(qc_error(
            fmt,
            StatusCode::UNAUTHORIZED,
            "qccore.session-has-expired",
            "Session has expired or was not created: open a site session",
        ));
    };
    let idle = alm.config.idle;
    // The server ends idle sessions on its own, and with them their locks ("When a session
    // ends, all locks are released": the REST reference's logout page): a client that died
    // holding a lock blocks the entity only until its session would have expired.
    st.sessions.retain(|_, s| now - s.last_used <= idle);
    let State_ {
        sessions, locks, ..
    } = &mut *st;
    locks.retain(|_, holder| sessions.contains_key(holder));
    if !st.sessions.contains_key(&qs) {
        return Err(qc_error(
            fmt,
            StatusCode::UNAUTHORIZED,
            "qccore.session-has-expired",
            "Session has expired",
        ));
    }
    let s = st
        .sessions
        .get_mut(&qs)
        .ok_or_else(|| unauthenticated(headers, raw, host))?;
    if alm.config.version >= AlmVersion::V16 && method != Method::GET {
        let sent = headers
            .get("x-xsrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if sent != s.xsrf {
            return Err(qc_error(
                fmt,
                StatusCode::UNAUTHORIZED,
                "qccore.general-error",
                "Unauthorized request. For more details see XSRF Token section in REST API documentation.",
            ));
        }
    }
    s.last_used = now;
    Ok((qs, s.user.clone()))
}

fn issue_lwsso(alm: &Alm, user: &str) -> (String, Response) {
    let token = alm.token();
    lock(&alm.st)
        .lwsso
        .insert(token.clone(), (user.to_owned(), false));
    let mut r = StatusCode::OK.into_response();
    set_cookie(&mut r, "LWSSO_COOKIE_KEY", &token);
    (token, r)
}

async fn is_authenticated(
    State(alm): State<Arc<Alm>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let c = cookies(&headers);
    let user = c.get("LWSSO_COOKIE_KEY").and_then(|t| {
        lock(&alm.st)
            .lwsso
            .get(t)
            .filter(|(_, out)| !out)
            .map(|(u, _)| u.clone())
    });
    match user {
        Some(u) => {
            if alm.config.version >= AlmVersion::V25 && wants(&headers, raw.as_deref()) == Fmt::Json
            {
                return qc_error(
                    Fmt::Json,
                    StatusCode::NOT_ACCEPTABLE,
                    "qccore.general-error",
                    "Not acceptable",
                );
            }
            typed(
                StatusCode::OK,
                format!(
                    "<AuthenticationInfo><Username>{}</Username></AuthenticationInfo>",
                    xml_escape(&u)
                ),
                "application/xml",
            )
        }
        None => unauthenticated(&headers, raw.as_deref(), &host_of(&headers)),
    }
}

async fn authenticate(State(alm): State<Arc<Alm>>, headers: HeaderMap) -> Response {
    let user = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(u, p)| (u.to_owned(), p.to_owned()))
        })
        .filter(|(u, p)| alm.config.users.iter().any(|(n, pw, _)| n == u && pw == p));
    match user {
        Some((u, _)) => issue_lwsso(&alm, &u).1,
        None => {
            let mut r = qc_error(
                Fmt::Html,
                StatusCode::UNAUTHORIZED,
                "qccore.general-error",
                "Authentication failed",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ALM\""),
            );
            r
        }
    }
}

async fn alm_authenticate(
    State(alm): State<Arc<Alm>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body);
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (user, password) = if ct.contains("json") {
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let a = &v["alm-authentication"];
        (
            a["user"].as_str().unwrap_or_default().to_owned(),
            a["password"].as_str().unwrap_or_default().to_owned(),
        )
    } else {
        let between = |tag: &str| -> String {
            let open = format!("<{tag}>");
            let close = format!("</{tag}>");
            text.find(&open)
                .and_then(|s| {
                    text[s + open.len()..]
                        .find(&close)
                        .map(|e| text[s + open.len()..s + open.len() + e].to_owned())
                })
                .map(|v| {
                    quick_xml::escape::unescape(&v)
                        .map(|x| x.into_owned())
                        .unwrap_or(v)
                })
                .unwrap_or_default()
        };
        (between("user"), between("password"))
    };
    if !alm
        .config
        .users
        .iter()
        .any(|(n, pw, _)| *n == user && *pw == password)
    {
        let mut r = qc_error(
            wants(&headers, None),
            StatusCode::UNAUTHORIZED,
            "qccore.general-error",
            "Authentication failed",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("ALMAUTH"),
        );
        return r;
    }
    let (_, mut r) = issue_lwsso(&alm, &user);
    *r.status_mut() = StatusCode::CREATED;
    r
}

async fn oauth_login(State(alm): State<Arc<Alm>>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (id, secret) = (
        v["clientId"].as_str().unwrap_or_default(),
        v["secret"].as_str().unwrap_or_default(),
    );
    let Some((_, _, user, active)) = alm
        .config
        .api_keys
        .iter()
        .find(|(i, s, ..)| i == id && s == secret)
        .cloned()
    else {
        return qc_error(
            Fmt::Json,
            StatusCode::UNAUTHORIZED,
            "qccore.general-error",
            "Authentication failed",
        );
    };
    if !active {
        return qc_error(
            Fmt::Json,
            StatusCode::FORBIDDEN,
            "qccore.operation-forbidden",
            "The client id is not active",
        );
    }
    let (token, mut r) = issue_lwsso(&alm, &user);
    let _ = token;
    let (qs, xsrf) = open_session(&alm, &user);
    set_cookie(&mut r, "QCSession", &qs);
    set_cookie(&mut r, "ALM_USER", &user);
    set_cookie(&mut r, "XSRF-TOKEN", &xsrf);
    set_cookie(&mut r, "JSESSIONID", &alm.token());
    r
}

fn open_session(alm: &Alm, user: &str) -> (String, String) {
    let qs = alm.token();
    let xsrf = alm.token();
    lock(&alm.st).sessions.insert(
        qs.clone(),
        Session {
            user: user.to_owned(),
            xsrf: xsrf.clone(),
            last_used: alm.control.clock.now(),
        },
    );
    (qs, xsrf)
}

async fn site_session(
    State(alm): State<Arc<Alm>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let c = cookies(&headers);
    let url = host_of(&headers);
    let lw_user = c
        .get("LWSSO_COOKIE_KEY")
        .and_then(|t| lock(&alm.st).lwsso.get(t).cloned());
    let user = match lw_user {
        None => return unauthenticated(&headers, raw.as_deref(), &url),
        Some((_, true)) => {
            return qc_error(
                wants(&headers, raw.as_deref()),
                StatusCode::INTERNAL_SERVER_ERROR,
                "qccore.general-error",
                "TokenId is invalid because it has logged out",
            );
        }
        Some((u, false)) => u,
    };
    match method {
        Method::POST => {
            let (qs, xsrf) = open_session(&alm, &user);
            let mut r = StatusCode::CREATED.into_response();
            set_cookie(&mut r, "QCSession", &qs);
            set_cookie(&mut r, "ALM_USER", &user);
            set_cookie(&mut r, "XSRF-TOKEN", &xsrf);
            r
        }
        Method::GET | Method::PUT => {
            let mut st = lock(&alm.st);
            match session_of(&alm, &mut st, &headers, raw.as_deref(), &Method::GET, &url) {
                Ok(_) => typed(
                    StatusCode::OK,
                    "<SiteSession><TimeoutInMinutes>60</TimeoutInMinutes></SiteSession>".into(),
                    "application/xml",
                ),
                Err(r) => r,
            }
        }
        Method::DELETE => {
            let mut st = lock(&alm.st);
            let (qs, _) = match session_of(
                &alm,
                &mut st,
                &headers,
                raw.as_deref(),
                &Method::DELETE,
                &url,
            ) {
                Ok(x) => x,
                Err(r) => return r,
            };
            st.sessions.remove(&qs);
            st.locks.retain(|_, holder| *holder != qs);
            st.checked_out.retain(|_, holder| *holder != qs);
            let mut r = StatusCode::OK.into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                HeaderValue::from_static(
                    "QCSession=\"\"; Expires=Thu, 01-Jan-1970 00:00:10 GMT; Path=/qcbin",
                ),
            );
            r
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

async fn logout(State(alm): State<Arc<Alm>>, method: Method, headers: HeaderMap) -> Response {
    if method == Method::GET && alm.config.version >= AlmVersion::V25 {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let c = cookies(&headers);
    if let Some(t) = c.get("LWSSO_COOKIE_KEY") {
        let mut st = lock(&alm.st);
        if let Some(e) = st.lwsso.get_mut(t) {
            e.1 = true;
        }
        if let Some(qs) = c.get("QCSession") {
            st.sessions.remove(qs);
            st.locks.retain(|_, holder| holder != qs);
        }
    }
    let mut r = StatusCode::OK.into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "LWSSO_COOKIE_KEY=\"\"; Expires=Thu, 01-Jan-1970 00:00:10 GMT; Path=/",
        ),
    );
    r
}

async fn server_time(
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

// ---------------------------------------------------------------------------------------------
// Project routes

struct Call {
    fmt: Fmt,
    params: HashMap<String, String>,
    session: String,
    user: String,
}

#[allow(clippy::too_many_arguments)]
fn begin(
    alm: &Alm,
    st: &mut State_,
    domain: &str,
    project: &str,
    headers: &HeaderMap,
    raw: Option<&str>,
    method: &Method,
    host: &str,
) -> Result<Call, Response> {
    let (session, user) = session_of(alm, st, headers, raw, method, host)?;
    let fmt = wants(headers, raw);
    if !domain.eq_ignore_ascii_case(&alm.config.domain)
        || !project.eq_ignore_ascii_case(&alm.config.project)
    {
        return Err(qc_error(
            fmt,
            StatusCode::NOT_FOUND,
            "qccore.entity-not-found",
            &format!("Project '{domain}/{project}' does not exist"),
        ));
    }
    let params = raw
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    Ok(Call {
        fmt,
        params,
        session,
        user,
    })
}

/// The entity type of a collection, or the 404 ALM answers for an unknown one.
fn known_collection(
    fmt: Fmt,
    coll: &str,
) -> Result<(&'static str, &'static [model::FieldSpec]), Response> {
    model::entity_type(coll).ok_or_else(|| {
        qc_error(
            fmt,
            StatusCode::NOT_FOUND,
            "qccore.entity-not-found",
            &format!("Unknown entity collection {coll}"),
        )
    })
}

fn not_found(fmt: Fmt, kind: &str, id: u64) -> Response {
    qc_error(
        fmt,
        StatusCode::NOT_FOUND,
        "qccore.entity-not-found",
        &format!("Failed to get entity: {kind} with id {id} does not exist"),
    )
}

fn err(fmt: Fmt, e: &QcErr) -> Response {
    qc_error(fmt, e.0, e.1, &e.2)
}

type Proj = Path<(String, String, String)>;
type ProjId = Path<(String, String, String, u64)>;

async fn collection(
    State(alm): State<Arc<Alm>>,
    Path((domain, project, coll)): Proj,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let host = host_of(&headers);
    let mut st = lock(&alm.st);
    let call = match begin(
        &alm,
        &mut st,
        &domain,
        &project,
        &headers,
        raw.as_deref(),
        &method,
        &host,
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
    // The project-level attachments collection: every entity's attachments, read only here.
    let attachments = coll == "attachments" && method == Method::GET;
    let (kind, specs) = if attachments {
        ("attachment", model::ATTACHMENT_FIELDS)
    } else {
        match known_collection(call.fmt, &coll) {
            Ok(t) => t,
            Err(r) => return r,
        }
    };
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

async fn entity(
    State(alm): State<Arc<Alm>>,
    Path((domain, project, coll, id)): ProjId,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let host = host_of(&headers);
    let mut st = lock(&alm.st);
    let call = match begin(
        &alm,
        &mut st,
        &domain,
        &project,
        &headers,
        raw.as_deref(),
        &method,
        &host,
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (kind, _) = match known_collection(call.fmt, &coll) {
        Ok(t) => t,
        Err(r) => return r,
    };
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

async fn entity_lock(
    State(alm): State<Arc<Alm>>,
    Path((domain, project, coll, id)): ProjId,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let host = host_of(&headers);
    let mut st = lock(&alm.st);
    let call = match begin(
        &alm,
        &mut st,
        &domain,
        &project,
        &headers,
        raw.as_deref(),
        &method,
        &host,
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (kind, _) = match known_collection(call.fmt, &coll) {
        Ok(t) => t,
        Err(r) => return r,
    };
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

async fn versions(
    State(alm): State<Arc<Alm>>,
    Path((domain, project, coll, id, action)): Path<(String, String, String, u64, String)>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let host = host_of(&headers);
    let mut st = lock(&alm.st);
    let call = match begin(
        &alm,
        &mut st,
        &domain,
        &project,
        &headers,
        raw.as_deref(),
        &method,
        &host,
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
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

fn attachment_entity(a: &Attachment) -> Entity {
    let s = |v: String| Some(vec![v]);
    Entity {
        fields: BTreeMap::from([
            ("id".into(), s(a.id.to_string())),
            ("name".into(), s(a.name.clone())),
            ("file-size".into(), s(a.data.len().to_string())),
            ("last-modified".into(), s(a.modified.clone())),
            ("ref-type".into(), s("File".into())),
            ("ref-subtype".into(), s("0".into())),
            ("parent-id".into(), s(a.parent.to_string())),
            (
                "parent-type".into(),
                s(model::entity_type(&a.collection)
                    .map_or("", |t| t.0)
                    .to_owned()),
            ),
            ("description".into(), Some(vec![String::new()])),
        ]),
    }
}

async fn attachments(
    State(alm): State<Arc<Alm>>,
    Path((domain, project, coll, id)): ProjId,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let host = host_of(&headers);
    let mut st = lock(&alm.st);
    let call = match begin(
        &alm,
        &mut st,
        &domain,
        &project,
        &headers,
        raw.as_deref(),
        &method,
        &host,
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (kind, _) = match known_collection(call.fmt, &coll) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if st.entities.get(&coll).and_then(|m| m.get(&id)).is_none() {
        return not_found(call.fmt, kind, id);
    }
    if method == Method::POST {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let (name, data) = if ct.starts_with("application/octet-stream") {
            let Some(slug) = headers.get("slug").and_then(|v| v.to_str().ok()) else {
                return qc_error(
                    call.fmt,
                    StatusCode::BAD_REQUEST,
                    "qccore.general-error",
                    "The Slug header with the file name is required",
                );
            };
            (slug.to_owned(), body)
        } else if ct.starts_with("multipart/form-data") {
            match parse_multipart(&ct, &body) {
                Some(x) => x,
                None => {
                    return qc_error(
                        call.fmt,
                        StatusCode::BAD_REQUEST,
                        "qccore.general-error",
                        "The multipart body has no file part",
                    );
                }
            }
        } else {
            return qc_error(
                call.fmt,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "qccore.general-error",
                "Unsupported media type",
            );
        };
        st.next_attachment += 1;
        let a = Attachment {
            id: st.next_attachment,
            collection: coll.clone(),
            parent: id,
            name,
            data,
            modified: alm.local_now(),
        };
        let e = attachment_entity(&a);
        st.attachments.push(a);
        if let Some(ent) = st.entities.get_mut(&coll).and_then(|m| m.get_mut(&id))
            && coll == "defects"
        {
            ent.fields
                .insert("attachment".into(), Some(vec!["Y".into()]));
        }
        return render_one(call.fmt, StatusCode::CREATED, "attachment", &e);
    }
    let list: Vec<Entity> = st
        .attachments
        .iter()
        .filter(|a| a.collection == coll && a.parent == id)
        .map(attachment_entity)
        .collect();
    match call.fmt {
        Fmt::Json => typed(
            StatusCode::OK,
            json!({"entities": list.iter().map(|e| entity_json("attachment", e, None)).collect::<Vec<_>>(), "TotalResults": list.len()}).to_string(),
            "application/json",
        ),
        _ => typed(
            StatusCode::OK,
            format!("<Entities TotalResults=\"{}\">{}</Entities>", list.len(), list.iter().map(|e| entity_xml("attachment", e, None)).collect::<String>()),
            "application/xml",
        ),
    }
}

fn parse_multipart(ct: &str, body: &[u8]) -> Option<(String, Bytes)> {
    let boundary = ct.split("boundary=").nth(1)?.trim_matches('"').to_owned();
    let delim = format!("--{boundary}");
    let text = body;
    let mut name = None;
    let mut file = None;
    let positions: Vec<usize> = text
        .windows(delim.len())
        .enumerate()
        .filter(|(_, w)| *w == delim.as_bytes())
        .map(|(i, _)| i)
        .collect();
    for pair in positions.windows(2) {
        let part = &text[pair[0] + delim.len()..pair[1]];
        let sep = part.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&part[..sep]).to_string();
        let mut content = &part[sep + 4..];
        if content.ends_with(b"\r\n") {
            content = &content[..content.len() - 2];
        }
        if head.contains("name=\"filename\"") {
            name = Some(String::from_utf8_lossy(content).to_string());
        } else if head.contains("name=\"file\"") {
            if name.is_none() {
                name = head
                    .split("filename=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .map(ToOwned::to_owned);
            }
            file = Some(Bytes::copy_from_slice(content));
        }
    }
    Some((name?, file?))
}

async fn attachment_file(
    State(alm): State<Arc<Alm>>,
    Path((domain, project, coll, id, name)): Path<(String, String, String, u64, String)>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let host = host_of(&headers);
    let mut st = lock(&alm.st);
    let call = match begin(
        &alm,
        &mut st,
        &domain,
        &project,
        &headers,
        raw.as_deref(),
        &method,
        &host,
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let by_id = call.params.get("by-id").is_some_and(|v| v == "true");
    let pos = st.attachments.iter().position(|a| {
        a.collection == coll
            && a.parent == id
            && if by_id {
                a.id.to_string() == name
            } else {
                a.name == name
            }
    });
    let Some(pos) = pos else {
        return qc_error(
            call.fmt,
            StatusCode::NOT_FOUND,
            "qccore.entity-not-found",
            &format!("Attachment '{name}' does not exist"),
        );
    };
    if method == Method::DELETE {
        st.attachments.remove(pos);
        return StatusCode::OK.into_response();
    }
    let mut r = Response::new(Body::from(st.attachments[pos].data.clone()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    r
}

async fn audits(
    State(alm): State<Arc<Alm>>,
    Path((domain, project, coll, id)): ProjId,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let host = host_of(&headers);
    let mut st = lock(&alm.st);
    let call = match begin(
        &alm,
        &mut st,
        &domain,
        &project,
        &headers,
        raw.as_deref(),
        &method,
        &host,
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let kind = model::entity_type(&coll).map_or("", |t| t.0);
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

async fn customization_fields(
    State(alm): State<Arc<Alm>>,
    Path((domain, project, entity)): Proj,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let host = host_of(&headers);
    let mut st = lock(&alm.st);
    let call = match begin(
        &alm,
        &mut st,
        &domain,
        &project,
        &headers,
        raw.as_deref(),
        &method,
        &host,
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some((_, specs)) = model::collection_of(&entity).and_then(model::entity_type) else {
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
        l.and_then(|n| model::LISTS.iter().find(|(x, ..)| *x == n))
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

async fn used_lists(
    State(alm): State<Arc<Alm>>,
    Path((domain, project)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let host = host_of(&headers);
    let mut st = lock(&alm.st);
    let call = match begin(
        &alm,
        &mut st,
        &domain,
        &project,
        &headers,
        raw.as_deref(),
        &method,
        &host,
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let lists: Vec<_> = model::LISTS
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

async fn users(
    State(alm): State<Arc<Alm>>,
    Path((domain, project)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let host = host_of(&headers);
    let mut st = lock(&alm.st);
    let call = match begin(
        &alm,
        &mut st,
        &domain,
        &project,
        &headers,
        raw.as_deref(),
        &method,
        &host,
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
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

async fn unknown(headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    qc_error(
        wants(&headers, raw.as_deref()),
        StatusCode::NOT_FOUND,
        "qccore.general-error",
        "The requested resource does not exist",
    )
}

/// `GET /qcbin/rest/domains[?include-projects-info=y]` and
/// `GET /qcbin/rest/domains/{domain}/projects`: the domains and projects the user may open.
async fn domains(
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
async fn customization_entities(
    State(alm): State<Arc<Alm>>,
    Path((domain, project)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let host = host_of(&headers);
    let mut st = lock(&alm.st);
    let call = match begin(
        &alm,
        &mut st,
        &domain,
        &project,
        &headers,
        raw.as_deref(),
        &method,
        &host,
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
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

/// ALM answers every REST failure as an ALM exception: a path the framework cannot parse (a
/// non-numeric entity id) is one too, not a text/plain framework message.
async fn alm_rejections(
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let fmt = wants(&headers, raw.as_deref());
    let r = next.run(req).await;
    let plain = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/plain"));
    if plain && r.status().is_client_error() {
        let status = r.status();
        return qc_error(
            fmt,
            if status == StatusCode::BAD_REQUEST {
                StatusCode::NOT_FOUND
            } else {
                status
            },
            "qccore.general-error",
            "The requested resource does not exist",
        );
    }
    r
}

fn router(alm: Arc<Alm>) -> Router {
    let p = "/qcbin/rest/domains/{domain}/projects/{project}";
    let control = MiddlewareState {
        control: alm.control.clone(),
        fault_body,
    };
    Router::new()
        .route("/qcbin/rest/is-authenticated", get(is_authenticated))
        .route(
            "/qcbin/authentication-point/authenticate",
            get(authenticate),
        )
        .route(
            "/qcbin/authentication-point/alm-authenticate",
            post(alm_authenticate),
        )
        .route("/qcbin/authentication-point/logout", any(logout))
        .route("/qcbin/rest/oauth2/login", post(oauth_login))
        .route("/qcbin/rest/site-session", any(site_session))
        .route("/qcbin/rest/server/time", get(server_time))
        .route("/qcbin/rest/domains", get(domains))
        .route("/qcbin/rest/domains/{domain}/projects", get(domains))
        .route(
            &format!("{p}/customization/entities"),
            get(customization_entities),
        )
        .route(
            &format!("{p}/customization/entities/{{entity}}/fields"),
            get(customization_fields),
        )
        .route(&format!("{p}/customization/used-lists"), get(used_lists))
        .route(&format!("{p}/customization/users"), get(users))
        .route(
            &format!("{p}/{{collection}}"),
            get(collection).post(collection),
        )
        .route(
            &format!("{p}/{{collection}}/{{id}}"),
            get(entity).put(entity).delete(entity),
        )
        .route(
            &format!("{p}/{{collection}}/{{id}}/lock"),
            get(entity_lock).post(entity_lock).delete(entity_lock),
        )
        .route(
            &format!("{p}/{{collection}}/{{id}}/versions/{{action}}"),
            post(versions),
        )
        .route(
            &format!("{p}/{{collection}}/{{id}}/attachments"),
            get(attachments).post(attachments),
        )
        .route(
            &format!("{p}/{{collection}}/{{id}}/attachments/{{name}}"),
            get(attachment_file).delete(attachment_file),
        )
        .route(&format!("{p}/{{collection}}/{{id}}/audits"), get(audits))
        .fallback(unknown)
        .layer(axum::middleware::from_fn(alm_rejections))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
        .layer(axum::middleware::from_fn_with_state(
            control,
            common::control_layer,
        ))
        .with_state(alm)
}
