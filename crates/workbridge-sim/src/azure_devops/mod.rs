//! A stateful simulator of Azure DevOps Services, Azure DevOps Server and TFS work item
//! tracking: WIQL, work items (JSON Patch), batch reads and writes, revisions and updates,
//! comments, attachments, work item types and fields, api-version negotiation, PAT auth.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use workbridge_sim::azure_devops::{AzureDevOpsSim, ServerVersion};
//! let sim = AzureDevOpsSim::builder().pat("TOKEN").seed(10).spawn().await?;
//! let body: serde_json::Value = reqwest::Client::new()
//!     .post(format!("{}/Fabrikam/_apis/wit/wiql?api-version=7.1", sim.collection_url()))
//!     .basic_auth("", Some("TOKEN"))
//!     .json(&serde_json::json!({"query": "SELECT [System.Id] FROM WorkItems WHERE [System.WorkItemType] = 'Bug'"}))
//!     .send()
//!     .await
//!     .unwrap()
//!     .json()
//!     .await
//!     .unwrap();
//! assert!(body["workItems"].as_array().unwrap().len() > 0);
//! # Ok(()) }
//! ```

mod api;
mod process;
mod wiql;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::common::{self, Control, Faults, MiddlewareState, Running, SimClock, SimControl};
use process::WitType;

pub(crate) use crate::common::lock;

/// The server a simulator emulates, which decides the api-versions it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ServerVersion {
    /// TFS 2015 (api 1.0, 2.x).
    Tfs2015,
    /// TFS 2017 (up to 3.2).
    Tfs2017,
    /// TFS 2018 Update 2+ (up to 4.1).
    Tfs2018,
    /// Azure DevOps Server 2019.1 (up to 5.1).
    Server2019,
    /// Azure DevOps Server 2020.1 (up to 6.1).
    Server2020,
    /// Azure DevOps Server 2022.1 (up to 7.1).
    Server2022,
    /// Azure DevOps Services (7.1 GA, 7.2 preview).
    Services,
}

impl ServerVersion {
    /// The highest api-version the server accepts, as (major, minor).
    pub fn max_api(self) -> (u32, u32) {
        match self {
            ServerVersion::Tfs2015 => (2, 3),
            ServerVersion::Tfs2017 => (3, 2),
            ServerVersion::Tfs2018 => (4, 1),
            ServerVersion::Server2019 => (5, 1),
            ServerVersion::Server2020 => (6, 1),
            ServerVersion::Server2022 => (7, 1),
            ServerVersion::Services => (7, 2),
        }
    }

    /// Parses `tfs2015`, `tfs2017`, `tfs2018`, `server2019`, `server2020`, `server2022`,
    /// `services`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "tfs2015" => ServerVersion::Tfs2015,
            "tfs2017" => ServerVersion::Tfs2017,
            "tfs2018" => ServerVersion::Tfs2018,
            "server2019" => ServerVersion::Server2019,
            "server2020" => ServerVersion::Server2020,
            "server2022" => ServerVersion::Server2022,
            "services" => ServerVersion::Services,
            _ => return None,
        })
    }
}

/// The process template of the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Process {
    /// Agile: Bug, User Story, Task, Feature; New → Active → Resolved → Closed.
    Agile,
    /// Scrum: Bug, Product Backlog Item, Task; New → Approved → Committed → Done.
    Scrum,
    /// CMMI: Bug, Requirement, Task; Proposed → Active → Resolved → Closed.
    Cmmi,
}

impl Process {
    pub(crate) fn types(self) -> &'static [WitType] {
        match self {
            Process::Agile => process::AGILE,
            Process::Scrum => process::SCRUM,
            Process::Cmmi => process::CMMI,
        }
    }
}

/// A user known to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) display: String,
    pub(crate) unique: String,
    pub(crate) id: String,
}

impl Identity {
    pub(crate) fn stored(&self) -> Value {
        json!({"displayName": self.display, "uniqueName": self.unique, "id": self.id})
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Revision {
    pub(crate) rev: u64,
    pub(crate) fields: BTreeMap<String, Value>,
    pub(crate) relations: Vec<Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct UpdateRec {
    pub(crate) rev: u64,
    pub(crate) by: Identity,
    pub(crate) at: DateTime<Utc>,
    pub(crate) fields: serde_json::Map<String, Value>,
    pub(crate) added: Vec<Value>,
    pub(crate) removed: Vec<Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct CommentRec {
    pub(crate) id: u64,
    pub(crate) text: String,
    pub(crate) format: &'static str,
    pub(crate) by: Identity,
    pub(crate) at: DateTime<Utc>,
    pub(crate) modified_at: DateTime<Utc>,
    pub(crate) version: u64,
    pub(crate) deleted: bool,
    pub(crate) rev: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Wi {
    pub(crate) id: u64,
    pub(crate) rev: u64,
    pub(crate) wtype: &'static WitType,
    pub(crate) fields: BTreeMap<String, Value>,
    pub(crate) relations: Vec<Value>,
    pub(crate) revisions: Vec<Revision>,
    pub(crate) updates: Vec<UpdateRec>,
    pub(crate) comments: Vec<CommentRec>,
    pub(crate) history_rev: Option<u64>,
    pub(crate) changed_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(crate) items: BTreeMap<u64, Wi>,
    pub(crate) next_id: u64,
    pub(crate) next_comment: u64,
    pub(crate) attachments: HashMap<String, (String, Bytes)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) organization: String,
    pub(crate) project: String,
    pub(crate) project_id: String,
    pub(crate) pat: String,
    pub(crate) server: ServerVersion,
    pub(crate) process: Process,
    pub(crate) custom_fields: Vec<(String, String, &'static str)>,
    pub(crate) fedauth_html: bool,
    pub(crate) enforce_transitions: bool,
    pub(crate) me: Identity,
    pub(crate) people: Vec<Identity>,
    pub(crate) wiql_cap: usize,
}

pub(crate) struct Ado {
    pub(crate) store: Mutex<Store>,
    pub(crate) config: Config,
    pub(crate) base: OnceLock<String>,
    pub(crate) control: Arc<Control>,
    pub(crate) router: OnceLock<Router>,
}

impl Ado {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.control.clock.now()
    }

    pub(crate) fn collection_url(&self) -> String {
        format!(
            "{}/{}",
            self.base.get().map_or("", String::as_str),
            self.config.organization
        )
    }

    pub(crate) fn wit_type(&self, name: &str) -> Option<&'static WitType> {
        self.config
            .process
            .types()
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    pub(crate) fn identity(&self, s: &str) -> Option<Identity> {
        let s = s.trim();
        let (display, unique) = match s.rsplit_once('<') {
            Some((d, u)) => (d.trim(), u.trim_end_matches('>').trim()),
            None => (s, s),
        };
        std::iter::once(&self.config.me)
            .chain(self.config.people.iter())
            .find(|p| {
                p.unique.eq_ignore_ascii_case(unique)
                    || p.display.eq_ignore_ascii_case(display)
                    || p.id == s
            })
            .cloned()
    }
}

/// Builds an [`AzureDevOpsSim`].
#[derive(Debug, Clone)]
pub struct AzureDevOpsSimBuilder {
    config: Config,
    seed: usize,
    port: u16,
    tls: Option<common::Tls>,
    faults: Faults,
    clock: SimClock,
}

impl Default for AzureDevOpsSimBuilder {
    fn default() -> Self {
        let person = |d: &str, u: &str, id: &str| Identity {
            display: d.into(),
            unique: u.into(),
            id: id.into(),
        };
        AzureDevOpsSimBuilder {
            config: Config {
                organization: "fabrikam".into(),
                project: "Fabrikam".into(),
                project_id: "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c".into(),
                pat: "TOKEN".into(),
                server: ServerVersion::Services,
                process: Process::Agile,
                custom_fields: Vec::new(),
                fedauth_html: true,
                enforce_transitions: true,
                me: person(
                    "Sim User",
                    "sim.user@fabrikam.com",
                    "d291b0c4-a05c-4ea6-8df1-4b41d5f39eff",
                ),
                people: vec![
                    person(
                        "Jamal Hartnett",
                        "fabrikamfiber4@hotmail.com",
                        "d291b0c4-a05c-4ea6-8df1-4b41d5f39ef0",
                    ),
                    person(
                        "Norman Paulk",
                        "fabrikamfiber16@hotmail.com",
                        "d291b0c4-a05c-4ea6-8df1-4b41d5f39ef1",
                    ),
                    person(
                        "Chuck Reinhart",
                        "fabrikamfiber3@hotmail.com",
                        "d291b0c4-a05c-4ea6-8df1-4b41d5f39ef2",
                    ),
                    person(
                        "Christie Church",
                        "fabrikamfiber1@hotmail.com",
                        "d291b0c4-a05c-4ea6-8df1-4b41d5f39ef3",
                    ),
                ],
                wiql_cap: 20_000,
            },
            seed: 0,
            port: 0,
            tls: None,
            faults: Faults::none(),
            clock: SimClock::default(),
        }
    }
}

impl AzureDevOpsSimBuilder {
    /// The organization (Services) or collection (on-premises) name (default `fabrikam`).
    #[must_use]
    pub fn organization(mut self, name: &str) -> Self {
        self.config.organization = name.into();
        self
    }

    /// The project name (default `Fabrikam`).
    #[must_use]
    pub fn project(mut self, name: &str) -> Self {
        self.config.project = name.into();
        self
    }

    /// The personal access token that authenticates (default `TOKEN`).
    #[must_use]
    pub fn pat(mut self, pat: &str) -> Self {
        self.config.pat = pat.into();
        self
    }

    /// The server emulated (default Services).
    #[must_use]
    pub fn server_version(mut self, v: ServerVersion) -> Self {
        self.config.server = v;
        self
    }

    /// The process template (default Agile).
    #[must_use]
    pub fn process(mut self, p: Process) -> Self {
        self.config.process = p;
        self
    }

    /// Adds a custom string field (`Custom.ServiceNowTicket`) to every type.
    #[must_use]
    pub fn custom_field(mut self, reference: &str, name: &str) -> Self {
        self.config
            .custom_fields
            .push((reference.into(), name.into(), "string"));
        self
    }

    /// Whether a missing or bad credential without `X-TFS-FedAuthRedirect: Suppress` gets the
    /// 203 HTML sign-in page, as real servers answer (default true).
    #[must_use]
    pub fn fedauth_html(mut self, on: bool) -> Self {
        self.config.fedauth_html = on;
        self
    }

    /// Whether state transitions are enforced (default true).
    #[must_use]
    pub fn enforce_transitions(mut self, on: bool) -> Self {
        self.config.enforce_transitions = on;
        self
    }

    /// The WIQL result cap (default 20 000).
    #[must_use]
    pub fn wiql_cap(mut self, n: usize) -> Self {
        self.config.wiql_cap = n;
        self
    }

    /// Seeds `n` work items (bugs, stories, tasks).
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
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Uses this clock.
    #[must_use]
    pub fn clock(mut self, clock: SimClock) -> Self {
        self.clock = clock;
        self
    }

    /// Starts serving on 127.0.0.1.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn spawn(self) -> std::io::Result<AzureDevOpsSim> {
        let control = Arc::new(Control::new(self.clock.clone(), self.faults));
        let ado = Arc::new(Ado {
            store: Mutex::new(Store {
                next_id: 0,
                ..Store::default()
            }),
            config: self.config,
            base: OnceLock::new(),
            control,
            router: OnceLock::new(),
        });
        let app = router(ado.clone());
        let running = common::serve(app, self.port, self.tls.as_ref()).await?;
        let _ = ado.base.set(running.base_url());
        let sim = AzureDevOpsSim { ado, running };
        sim.seed_items(self.seed);
        Ok(sim)
    }
}

/// A running Azure DevOps simulator. It stops when dropped.
pub struct AzureDevOpsSim {
    ado: Arc<Ado>,
    running: Running,
}

impl std::fmt::Debug for AzureDevOpsSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureDevOpsSim")
            .field("collection_url", &self.collection_url())
            .finish_non_exhaustive()
    }
}

impl AzureDevOpsSim {
    /// A builder.
    pub fn builder() -> AzureDevOpsSimBuilder {
        AzureDevOpsSimBuilder::default()
    }

    /// The server URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        self.ado.base.get().cloned().unwrap_or_default()
    }

    /// The organization / collection URL (`http://127.0.0.1:PORT/fabrikam`).
    pub fn collection_url(&self) -> String {
        self.ado.collection_url()
    }

    /// The project name.
    pub fn project(&self) -> String {
        self.ado.config.project.clone()
    }

    /// Request accounting, faults and the clock.
    pub fn control(&self) -> SimControl {
        SimControl(self.ado.control.clone())
    }

    /// The clock.
    pub fn clock(&self) -> SimClock {
        self.ado.control.clock.clone()
    }

    /// The certificate it serves, when started with [`crate::Tls`].
    pub fn certificate(&self) -> Option<&common::Certificate> {
        self.running.certificate.as_ref()
    }

    /// Stops serving.
    pub async fn stop(self) {
        self.running.stop().await;
    }

    /// Creates a work item directly (as the PAT's user); returns its id.
    ///
    /// # Panics
    /// When the type is unknown or the fields break the rules (a test's mistake).
    pub fn create(&self, wtype: &str, fields: &[(&str, &str)]) -> u64 {
        let ops: Vec<Value> = fields
            .iter()
            .map(|(k, v)| json!({"op": "add", "path": format!("/fields/{k}"), "value": v}))
            .collect();
        let t = self
            .ado
            .wit_type(wtype)
            .unwrap_or_else(|| panic!("no work item type {wtype}"));
        let mut st = lock(&self.ado.store);
        let me = self.ado.config.me.clone();
        api::apply(
            &self.ado,
            &mut st,
            t,
            None,
            &ops,
            api::PatchFlags::default(),
            &me,
        )
        .unwrap_or_else(|e| panic!("seed item refused: {e:?}"))
    }

    /// Updates a work item directly, as a user of the server would (bypassing auth).
    /// Returns false when the update is refused or the item does not exist.
    pub fn update(&self, id: u64, fields: &[(&str, &str)]) -> bool {
        let ops: Vec<Value> = fields
            .iter()
            .map(|(k, v)| json!({"op": "add", "path": format!("/fields/{k}"), "value": v}))
            .collect();
        let mut st = lock(&self.ado.store);
        let Some(t) = st.items.get(&id).map(|w| w.wtype) else {
            return false;
        };
        let me = self.ado.config.people[0].clone();
        api::apply(
            &self.ado,
            &mut st,
            t,
            Some(id),
            &ops,
            api::PatchFlags::default(),
            &me,
        )
        .is_ok()
    }

    /// Deletes a work item directly.
    pub fn delete(&self, id: u64) -> bool {
        lock(&self.ado.store).items.remove(&id).is_some()
    }

    /// A field of a work item, as stored.
    pub fn field(&self, id: u64, field: &str) -> Option<Value> {
        lock(&self.ado.store)
            .items
            .get(&id)?
            .fields
            .get(field)
            .cloned()
    }

    /// The revision of a work item.
    pub fn rev(&self, id: u64) -> Option<u64> {
        lock(&self.ado.store).items.get(&id).map(|w| w.rev)
    }

    /// Number of work items.
    pub fn count(&self) -> usize {
        lock(&self.ado.store).items.len()
    }

    /// Seeds `n` realistic work items.
    pub fn seed_items(&self, n: usize) {
        const TITLES: [&str; 8] = [
            "Checkout fails for carts over 100 items",
            "Export to CSV drops accented characters",
            "Login page times out for EU users",
            "Invoices print blank pages",
            "Add dark mode to the dashboard",
            "Search ignores the date filter",
            "Payroll export fails with error 500",
            "Slow response on the orders API",
        ];
        let types: Vec<&'static str> = self
            .ado
            .config
            .process
            .types()
            .iter()
            .map(|t| t.name)
            .collect();
        for i in 0..n {
            let t = types[i % types.len().min(3)];
            let title = format!("{} #{i}", TITLES[i % TITLES.len()]);
            let person = &self.ado.config.people[i % self.ado.config.people.len()];
            let assigned = format!("{} <{}>", person.display, person.unique);
            self.create(
                t,
                &[
                    ("System.Title", &title),
                    ("System.AssignedTo", &assigned),
                    ("System.Description", "<div>Reported by support.</div>"),
                ],
            );
        }
    }
}

/// The WrappedException error body.
pub(crate) fn ado_error(status: StatusCode, type_key: &str, message: &str) -> Response {
    ado_error_with(
        status,
        type_key,
        "Microsoft.TeamFoundation.WorkItemTracking.Server",
        message,
        3200,
        None,
    )
}

pub(crate) fn ado_error_with(
    status: StatusCode,
    type_key: &str,
    namespace: &str,
    message: &str,
    event_id: u32,
    custom: Option<Value>,
) -> Response {
    let mut body = json!({
        "$id": "1",
        "innerException": null,
        "message": message,
        "typeName": format!("{namespace}.{type_key}, {namespace}"),
        "typeKey": type_key,
        "errorCode": 0,
        "eventId": event_id,
    });
    if let Some(c) = custom {
        body["customProperties"] = c;
    }
    json_response(status, &body, None)
}

pub(crate) fn json_response(
    status: StatusCode,
    body: &Value,
    api_version: Option<&str>,
) -> Response {
    let mut r = (status, body.to_string()).into_response();
    let ct = match api_version {
        Some(v) => format!("application/json; charset=utf-8; api-version={v}"),
        None => "application/json; charset=utf-8".to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&ct) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn fault_body(status: u16) -> (String, &'static str) {
    let (key, message) = match status {
        429 => (
            "RequestBlockedException",
            "TF400733: The request has been canceled: Request was blocked due to exceeding usage of resource 'WorkItemTrackingResource' in namespace 'User'.",
        ),
        503 => (
            "ServiceUnavailableException",
            "TF400898: An Internal Error Occurred. Activity Id: 00000000-0000-0000-0000-000000000000.",
        ),
        _ => (
            "VssServiceException",
            "TF400898: An Internal Error Occurred.",
        ),
    };
    (
        json!({"$id": "1", "innerException": null, "message": message, "typeName": format!("Microsoft.VisualStudio.Services.WebApi.{key}, Microsoft.VisualStudio.Services.WebApi"), "typeKey": key, "errorCode": 0, "eventId": 3000}).to_string(),
        "application/json; charset=utf-8",
    )
}

async fn authenticate(State(ado): State<Arc<Ado>>, req: Request, next: Next) -> Response {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let ok = if let Some(b64) = auth.strip_prefix("Basic ") {
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|pair| pair.split_once(':').map(|(_, p)| p == ado.config.pat))
            .unwrap_or(false)
    } else if let Some(token) = auth.strip_prefix("Bearer ") {
        token.trim() == ado.config.pat
    } else {
        false
    };
    if ok {
        let session = req.headers().get("x-tfs-session").cloned();
        let mut resp = next.run(req).await;
        let h = resp.headers_mut();
        if let Some(s) = session {
            h.insert("x-tfs-session", s);
        }
        h.insert(
            "activityid",
            HeaderValue::from_static("2f3a8b4c-0d1e-4f5a-9b6c-7d8e9f0a1b2c"),
        );
        h.insert(
            "x-vss-e2eid",
            HeaderValue::from_static("2f3a8b4c-0d1e-4f5a-9b6c-7d8e9f0a1b2c"),
        );
        return resp;
    }
    let suppress = req
        .headers()
        .get("x-tfs-fedauthredirect")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("suppress"));
    if ado.config.fedauth_html && !suppress {
        let mut r = Response::new(Body::from(
            "<!DOCTYPE html><html><head><title>Azure DevOps Services | Sign In</title></head><body><form id=\"signin\">Sign in to your account</form></body></html>",
        ));
        *r.status_mut() = StatusCode::NON_AUTHORITATIVE_INFORMATION;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        return r;
    }
    let mut r = ado_error_with(
        StatusCode::UNAUTHORIZED,
        "UnauthorizedRequestException",
        "Microsoft.TeamFoundation.Framework.Server",
        "TF400813: The user '' is not authorized to access this resource.",
        3000,
        None,
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"https://dev.azure.com/\""),
    );
    r
}

/// Route segments are case-insensitive: everything after `/_apis` is matched in lower case.
async fn lowercase_apis(mut req: Request, next: Next) -> Response {
    // Routes match case-insensitively; messages quote the path as the client sent it.
    let original = axum::extract::OriginalUri(req.uri().clone());
    req.extensions_mut().insert(original);
    let uri = req.uri();
    if let Some(pos) = uri.path().find("/_apis") {
        let path = uri.path();
        let new_path = format!("{}{}", &path[..pos], path[pos..].to_lowercase());
        let pq = match uri.query() {
            Some(q) => format!("{new_path}?{q}"),
            None => new_path,
        };
        if let Ok(u) = pq.parse::<Uri>() {
            *req.uri_mut() = u;
        }
    }
    next.run(req).await
}

fn router(ado: Arc<Ado>) -> Router {
    use axum::routing::{get, post};
    let api = Router::new()
        .route("/_apis", axum::routing::options(api::locations))
        .route("/_apis/", axum::routing::options(api::locations))
        .route("/{org}/_apis", axum::routing::options(api::locations))
        .route("/{org}/_apis/", axum::routing::options(api::locations))
        .route(
            "/{org}/_apis/{area}",
            axum::routing::options(api::locations),
        )
        .route("/{org}/_apis/resourceareas", get(api::resource_areas))
        .route("/{org}/_apis/resourceareas/{aid}", get(api::resource_areas))
        .route("/{org}/_apis/wit/wiql", post(api::wiql))
        .route("/{org}/{project}/_apis/wit/wiql", post(api::wiql))
        .route("/{org}/{project}/{team}/_apis/wit/wiql", post(api::wiql))
        .route("/{org}/_apis/wit/workitems", get(api::list_items))
        .route("/{org}/{project}/_apis/wit/workitems", get(api::list_items))
        .route(
            "/{org}/_apis/wit/workitems/{id}",
            get(api::get_item)
                .patch(api::update_item)
                .delete(api::delete_item),
        )
        .route(
            "/{org}/{project}/_apis/wit/workitems/{id}",
            get(api::get_item)
                .patch(api::update_item)
                .delete(api::delete_item)
                .post(api::create_item),
        )
        .route("/{org}/_apis/wit/workitemsbatch", post(api::batch_get))
        .route(
            "/{org}/{project}/_apis/wit/workitemsbatch",
            post(api::batch_get),
        )
        .route("/{org}/_apis/wit/workitems/{id}/updates", get(api::updates))
        .route(
            "/{org}/{project}/_apis/wit/workitems/{id}/updates",
            get(api::updates),
        )
        .route(
            "/{org}/_apis/wit/workitems/{id}/updates/{n}",
            get(api::updates),
        )
        .route(
            "/{org}/{project}/_apis/wit/workitems/{id}/updates/{n}",
            get(api::updates),
        )
        .route(
            "/{org}/_apis/wit/workitems/{id}/revisions",
            get(api::revisions),
        )
        .route(
            "/{org}/{project}/_apis/wit/workitems/{id}/revisions",
            get(api::revisions),
        )
        .route(
            "/{org}/_apis/wit/workitems/{id}/revisions/{n}",
            get(api::revisions),
        )
        .route(
            "/{org}/{project}/_apis/wit/workitems/{id}/revisions/{n}",
            get(api::revisions),
        )
        .route(
            "/{org}/{project}/_apis/wit/workitems/{id}/comments",
            get(api::list_comments).post(api::add_comment),
        )
        .route(
            "/{org}/{project}/_apis/wit/workitems/{id}/comments/{cid}",
            get(api::get_comment)
                .patch(api::update_comment)
                .delete(api::delete_comment),
        )
        .route("/{org}/_apis/wit/attachments", post(api::upload))
        .route("/{org}/{project}/_apis/wit/attachments", post(api::upload))
        .route("/{org}/_apis/wit/attachments/{aid}", get(api::download))
        .route(
            "/{org}/{project}/_apis/wit/attachments/{aid}",
            get(api::download),
        )
        .route(
            "/{org}/_apis/wit/$batch",
            post(api::batch_write).patch(api::batch_write),
        )
        .route("/{org}/{project}/_apis/wit/workitemtypes", get(api::types))
        .route(
            "/{org}/{project}/_apis/wit/workitemtypes/{wtype}",
            get(api::one_type),
        )
        .route(
            "/{org}/{project}/_apis/wit/workitemtypes/{wtype}/states",
            get(api::states),
        )
        .route(
            "/{org}/{project}/_apis/wit/workitemtypes/{wtype}/fields",
            get(api::type_fields),
        )
        .route("/{org}/_apis/wit/fields", get(api::fields))
        .route("/{org}/{project}/_apis/wit/fields", get(api::fields))
        .route("/{org}/_apis/wit/fields/{name}", get(api::fields))
        .route("/{org}/{project}/_apis/wit/fields/{name}", get(api::fields))
        .route_layer(middleware::from_fn_with_state(ado.clone(), authenticate));
    let _ = ado.router.set(api.clone().with_state(ado.clone()));
    let control = MiddlewareState {
        control: ado.control.clone(),
        fault_body,
    };
    let inner = api
        .fallback(api::unknown_fallback)
        .layer(axum::extract::DefaultBodyLimit::max(140 * 1024 * 1024))
        .layer(middleware::from_fn_with_state(
            control,
            common::control_layer,
        ))
        .with_state(ado);
    Router::new()
        .fallback_service(inner)
        .layer(middleware::from_fn(lowercase_apis))
}
