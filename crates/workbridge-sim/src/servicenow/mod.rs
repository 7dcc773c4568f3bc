//! A stateful simulator of the ServiceNow REST APIs: Table, Attachment, Batch and OAuth.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use workbridge_sim::servicenow::ServiceNowSim;
//! let sim = ServiceNowSim::builder().user("admin", "admin", &["admin"]).seed_incidents(20).spawn().await?;
//! let body: serde_json::Value = reqwest::Client::new()
//!     .get(format!("{}/api/now/table/incident?sysparm_limit=5", sim.url()))
//!     .basic_auth("admin", Some("admin"))
//!     .send()
//!     .await
//!     .unwrap()
//!     .json()
//!     .await
//!     .unwrap();
//! assert_eq!(body["result"].as_array().unwrap().len(), 5);
//! assert_eq!(sim.control().requests_to("GET /api/now/table/{table}"), 1);
//! # Ok(()) }
//! ```

mod attach;
mod batch;
mod data;
mod query;
mod store;
mod table;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use serde_json::{Value, json};

use crate::common::{self, Control, Faults, MiddlewareState, Running, SimClock, SimControl};
use store::{Row, Store, fmt_time};

pub(crate) use crate::common::lock;

/// A user who can sign in.
#[derive(Debug, Clone)]
pub(crate) struct SimUser {
    pub(crate) user_name: String,
    password: String,
    roles: Vec<String>,
}

impl SimUser {
    pub(crate) fn can_read(&self) -> bool {
        !self.roles.is_empty()
    }

    pub(crate) fn can_write(&self) -> bool {
        self.roles.iter().any(|r| r == "admin" || r == "itil")
    }
}

/// Behaviour switches, with the defaults of a current instance.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) default_limit: usize,
    pub(crate) prev_link_on_first_page: bool,
    pub(crate) invalid_query_returns_no_rows: bool,
    pub(crate) data_policy: bool,
    pub(crate) token_lifetime: Duration,
    pub(crate) display_offset: TimeDelta,
    pub(crate) max_attachment_bytes: usize,
}

pub(crate) struct Sn {
    pub(crate) store: Mutex<Store>,
    pub(crate) config: Config,
    pub(crate) base: OnceLock<String>,
    users: Mutex<Vec<SimUser>>,
    tokens: Mutex<HashMap<String, (String, DateTime<Utc>)>>,
    refresh: Mutex<HashMap<String, String>>,
    oauth_clients: Vec<(String, String)>,
    pub(crate) control: Arc<Control>,
    pub(crate) router: OnceLock<Router>,
}

impl Sn {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.control.clock.now()
    }

    pub(crate) fn base(&self) -> &str {
        self.base.get().map_or("", String::as_str)
    }
}

/// Builds a [`ServiceNowSim`].
#[derive(Debug, Clone)]
pub struct ServiceNowSimBuilder {
    users: Vec<SimUser>,
    oauth_clients: Vec<(String, String)>,
    incidents: usize,
    seed: u64,
    port: u16,
    tls: Option<common::Tls>,
    faults: Faults,
    clock: SimClock,
    config: Config,
}

impl Default for ServiceNowSimBuilder {
    fn default() -> Self {
        ServiceNowSimBuilder {
            users: Vec::new(),
            oauth_clients: Vec::new(),
            incidents: 0,
            seed: 1,
            port: 0,
            tls: None,
            faults: Faults::none(),
            clock: SimClock::default(),
            config: Config {
                default_limit: 10_000,
                prev_link_on_first_page: true,
                invalid_query_returns_no_rows: false,
                data_policy: true,
                token_lifetime: Duration::from_secs(1800),
                display_offset: TimeDelta::zero(),
                max_attachment_bytes: 1024 * 1024 * 1024,
            },
        }
    }
}

impl ServiceNowSimBuilder {
    /// Adds a user who can sign in; roles `admin` or `itil` may write, any role may read, a user
    /// without roles is refused by ACLs.
    #[must_use]
    pub fn user(mut self, user_name: &str, password: &str, roles: &[&str]) -> Self {
        self.users.push(SimUser {
            user_name: user_name.into(),
            password: password.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        });
        self
    }

    /// Registers an OAuth client for `/oauth_token.do`.
    #[must_use]
    pub fn oauth_client(mut self, client_id: &str, client_secret: &str) -> Self {
        self.oauth_clients
            .push((client_id.into(), client_secret.into()));
        self
    }

    /// Seeds `n` realistic incidents (with callers, groups, categories, states).
    #[must_use]
    pub fn seed_incidents(mut self, n: usize) -> Self {
        self.incidents = n;
        self
    }

    /// Seeds the RNG behind sys_ids and seeded data.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
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

    /// Uses this clock (share it to freeze or advance time from a test).
    #[must_use]
    pub fn clock(mut self, clock: SimClock) -> Self {
        self.clock = clock;
        self
    }

    /// Rows a list returns when `sysparm_limit` is absent (default 10 000).
    #[must_use]
    pub fn default_limit(mut self, n: usize) -> Self {
        self.config.default_limit = n.max(1);
        self
    }

    /// Whether the first page's `Link` header carries a `prev` link at offset -1, as observed
    /// on a real instance (default true).
    #[must_use]
    pub fn prev_link_on_first_page(mut self, on: bool) -> Self {
        self.config.prev_link_on_first_page = on;
        self
    }

    /// `glide.invalid_query.returns_no_rows`: an unknown field in a query gives no rows instead
    /// of being ignored (default false).
    #[must_use]
    pub fn invalid_query_returns_no_rows(mut self, on: bool) -> Self {
        self.config.invalid_query_returns_no_rows = on;
        self
    }

    /// The data policy that refuses resolving or closing an incident without `close_code` and
    /// `close_notes` (default on).
    #[must_use]
    pub fn data_policy(mut self, on: bool) -> Self {
        self.config.data_policy = on;
        self
    }

    /// Lifetime of OAuth access tokens (default 30 minutes).
    #[must_use]
    pub fn token_lifetime(mut self, d: Duration) -> Self {
        self.config.token_lifetime = d;
        self
    }

    /// The reading user's time zone, as an offset from UTC in minutes, for display values.
    #[must_use]
    pub fn user_time_zone_offset_minutes(mut self, minutes: i64) -> Self {
        self.config.display_offset = TimeDelta::minutes(minutes);
        self
    }

    /// Largest attachment accepted, in bytes (default 1 GiB).
    #[must_use]
    pub fn max_attachment_bytes(mut self, n: usize) -> Self {
        self.config.max_attachment_bytes = n;
        self
    }

    /// Starts serving on 127.0.0.1.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn spawn(self) -> std::io::Result<ServiceNowSim> {
        let control = Arc::new(Control::new(self.clock.clone(), self.faults));
        let now = control.clock.now();
        let mut store = Store::new(self.seed);
        for u in &self.users {
            let (first, last) = match u.user_name.as_str() {
                "admin" => ("System", "Administrator"),
                other => (other, ""),
            };
            store.add_user(
                &u.user_name,
                first,
                last,
                &format!("{}@example.com", u.user_name),
                now,
            );
        }
        let sn = Arc::new(Sn {
            store: Mutex::new(store),
            config: self.config,
            base: OnceLock::new(),
            users: Mutex::new(self.users),
            tokens: Mutex::new(HashMap::new()),
            refresh: Mutex::new(HashMap::new()),
            oauth_clients: self.oauth_clients,
            control: control.clone(),
            router: OnceLock::new(),
        });
        let router = router(sn.clone());
        let running = common::serve(router, self.port, self.tls.as_ref()).await?;
        let _ = sn.base.set(running.base_url());
        let sim = ServiceNowSim { sn, running };
        if self.incidents > 0 {
            sim.seed_incidents(self.incidents, self.seed);
        }
        Ok(sim)
    }
}

/// A running ServiceNow simulator. It stops when dropped.
pub struct ServiceNowSim {
    sn: Arc<Sn>,
    running: Running,
}

impl std::fmt::Debug for ServiceNowSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceNowSim")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl ServiceNowSim {
    /// A builder.
    pub fn builder() -> ServiceNowSimBuilder {
        ServiceNowSimBuilder::default()
    }

    /// The instance URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        self.sn.base().to_owned()
    }

    /// Request accounting, faults and the clock.
    pub fn control(&self) -> SimControl {
        SimControl(self.sn.control.clone())
    }

    /// The clock.
    pub fn clock(&self) -> SimClock {
        self.sn.control.clock.clone()
    }

    /// The certificate it serves, when started with [`crate::Tls`].
    pub fn certificate(&self) -> Option<&common::Certificate> {
        self.running.certificate.as_ref()
    }

    /// Stops serving.
    pub async fn stop(self) {
        self.running.stop().await;
    }

    /// Inserts a record directly (as `admin`, bypassing HTTP); returns its sys_id.
    pub fn insert(&self, table: &str, fields: &[(&str, &str)]) -> String {
        let body: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect();
        let mut store = lock(&self.sn.store);
        table::write(&self.sn, &mut store, table, None, &body, "admin").map_or_else(
            |_| String::new(),
            |row| row.get("sys_id").cloned().unwrap_or_default(),
        )
    }

    /// Updates a record directly, as `user` would through the UI; returns whether it existed.
    pub fn update(&self, table: &str, sys_id: &str, fields: &[(&str, &str)], user: &str) -> bool {
        let body: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect();
        let mut store = lock(&self.sn.store);
        table::write(&self.sn, &mut store, table, Some(sys_id), &body, user).is_ok()
    }

    /// Deletes a record directly.
    pub fn delete(&self, table: &str, sys_id: &str) -> bool {
        lock(&self.sn.store)
            .tables
            .get_mut(table)
            .and_then(|t| t.remove(sys_id))
            .is_some()
    }

    /// A record's stored values.
    pub fn record(
        &self,
        table: &str,
        sys_id: &str,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        lock(&self.sn.store).tables.get(table)?.get(sys_id).cloned()
    }

    /// Number of records in a table.
    pub fn count(&self, table: &str) -> usize {
        lock(&self.sn.store)
            .tables
            .get(table)
            .map_or(0, store::Table::len)
    }

    /// Creates a table (a custom `u_` table, say) with string fields.
    pub fn create_table(&self, name: &str, fields: &[&str]) {
        let now = self.sn.now();
        let mut store = lock(&self.sn.store);
        store.tables.entry(name.to_owned()).or_default();
        for f in fields {
            let row = Row::from([
                ("name".into(), name.into()),
                ("element".into(), (*f).into()),
                ("column_label".into(), (*f).into()),
                ("internal_type".into(), "string".into()),
                ("reference".into(), String::new()),
                ("choice".into(), "0".into()),
                ("active".into(), "true".into()),
            ]);
            store.insert_system("sys_dictionary", row, now);
        }
    }

    /// Adds `n` realistic incidents.
    pub fn seed_incidents(&self, n: usize, seed: u64) {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (users, groups): (Vec<String>, Vec<String>) = {
            let store = lock(&self.sn.store);
            let ids = |t: &str| -> Vec<String> {
                store
                    .tables
                    .get(t)
                    .map(|t| t.rows().filter_map(|r| r.get("sys_id").cloned()).collect())
                    .unwrap_or_default()
            };
            (ids("sys_user"), ids("sys_user_group"))
        };
        let categories = ["inquiry", "software", "hardware", "network", "database"];
        for i in 0..n {
            let summary = data::SUMMARIES[i % data::SUMMARIES.len()];
            let caller = &users[rng.random_range(0..users.len())];
            let group = &groups[rng.random_range(0..groups.len())];
            let category = categories[rng.random_range(0..categories.len())];
            let priority = rng.random_range(1..=5).to_string();
            let state = ["1", "2", "3"][rng.random_range(0..3)];
            self.insert(
                "incident",
                &[
                    ("short_description", summary),
                    (
                        "description",
                        &format!("{summary}. Reported by phone; see the caller's notes."),
                    ),
                    ("caller_id", caller),
                    ("assignment_group", group),
                    ("category", category),
                    ("priority", &priority),
                    ("state", state),
                ],
            );
        }
    }
}

/// The standard error envelope.
pub(crate) fn sn_error(status: StatusCode, message: &str, detail: Option<&str>) -> Response {
    let body = json!({"error": {"message": message, "detail": detail}, "status": "failure"});
    json_response(status, &body)
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r.headers_mut()
        .insert("x-is-logged-in", HeaderValue::from_static("true"));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache,no-store,must-revalidate,max-age=-1"),
    );
    r
}

fn fault_body(status: u16) -> (String, &'static str) {
    let message = match status {
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Operation Failed",
    };
    (
        json!({"error": {"message": message, "detail": null}, "status": "failure"}).to_string(),
        "application/json;charset=UTF-8",
    )
}

/// Who sent the request.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) SimUser);

fn unauthenticated() -> Response {
    sn_error(
        StatusCode::UNAUTHORIZED,
        "User Not Authenticated",
        Some("Required to provide Auth information"),
    )
}

async fn authenticate(State(sn): State<Arc<Sn>>, mut req: Request, next: Next) -> Response {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let user = if let Some(b64) = auth.strip_prefix("Basic ") {
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|pair| {
                let (u, p) = pair.split_once(':')?;
                lock(&sn.users)
                    .iter()
                    .find(|x| x.user_name == u && x.password == p)
                    .cloned()
            })
    } else if let Some(token) = auth.strip_prefix("Bearer ") {
        let now = sn.now();
        let name = lock(&sn.tokens)
            .get(token.trim())
            .filter(|(_, exp)| *exp > now)
            .map(|(u, _)| u.clone());
        name.and_then(|n| lock(&sn.users).iter().find(|x| x.user_name == n).cloned())
    } else {
        None
    };
    let Some(user) = user else {
        return unauthenticated();
    };
    if !user.can_read() {
        return sn_error(
            StatusCode::FORBIDDEN,
            "Insufficient rights to query records",
            Some("Not authorized"),
        );
    }
    req.extensions_mut().insert(Caller(user));
    next.run(req).await
}

async fn oauth_token(
    State(sn): State<Arc<Sn>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let denied = || {
        json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error_description": "access_denied", "error": "server_error"}),
        )
    };
    let form_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if !form_ok {
        return denied();
    }
    let params: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let p = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
    if !sn
        .oauth_clients
        .iter()
        .any(|(id, secret)| id == p("client_id") && secret == p("client_secret"))
    {
        return denied();
    }
    let (user, issue_refresh) = match p("grant_type") {
        "password" => {
            let ok = lock(&sn.users)
                .iter()
                .any(|u| u.user_name == p("username") && u.password == p("password"));
            if !ok {
                return denied();
            }
            (p("username").to_owned(), true)
        }
        "refresh_token" => match lock(&sn.refresh).get(p("refresh_token")) {
            Some(u) => (u.clone(), false),
            None => return denied(),
        },
        _ => return denied(),
    };
    let token = random_token();
    let lifetime = sn.config.token_lifetime;
    let expires = sn.now() + TimeDelta::from_std(lifetime).unwrap_or(TimeDelta::minutes(30));
    lock(&sn.tokens).insert(token.clone(), (user.clone(), expires));
    let mut body = json!({
        "access_token": token,
        "scope": "useraccount",
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs().saturating_sub(1),
    });
    if issue_refresh {
        let refresh = random_token();
        lock(&sn.refresh).insert(refresh.clone(), user);
        body["refresh_token"] = Value::String(refresh);
    }
    json_response(StatusCode::OK, &body)
}

fn random_token() -> String {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
    (0..86)
        .map(|_| {
            let c: u8 = rng.random_range(0..62);
            char::from(match c {
                0..=9 => b'0' + c,
                10..=35 => b'a' + c - 10,
                _ => b'A' + c - 36,
            })
        })
        .collect()
}

async fn unknown_route() -> Response {
    sn_error(
        StatusCode::BAD_REQUEST,
        "Requested URI does not represent any resource",
        None,
    )
}

fn router(sn: Arc<Sn>) -> Router {
    let api = Router::new()
        .route(
            "/api/now/table/{table}",
            get(table::list).post(table::create),
        )
        .route(
            "/api/now/table/{table}/{sys_id}",
            get(table::get_one)
                .put(table::update)
                .patch(table::update)
                .delete(table::delete),
        )
        .route(
            "/api/now/v1/table/{table}",
            get(table::list).post(table::create),
        )
        .route(
            "/api/now/v1/table/{table}/{sys_id}",
            get(table::get_one)
                .put(table::update)
                .patch(table::update)
                .delete(table::delete),
        )
        .route(
            "/api/now/v2/table/{table}",
            get(table::list).post(table::create),
        )
        .route(
            "/api/now/v2/table/{table}/{sys_id}",
            get(table::get_one)
                .put(table::update)
                .patch(table::update)
                .delete(table::delete),
        )
        .route("/api/now/attachment", get(attach::list))
        .route("/api/now/attachment/file", post(attach::upload_raw))
        .route("/api/now/attachment/upload", post(attach::upload_multipart))
        .route(
            "/api/now/attachment/{sys_id}",
            get(attach::meta).delete(attach::delete),
        )
        .route("/api/now/attachment/{sys_id}/file", get(attach::download))
        .route("/api/now/v1/attachment", get(attach::list))
        .route("/api/now/v1/attachment/file", post(attach::upload_raw))
        .route(
            "/api/now/v1/attachment/upload",
            post(attach::upload_multipart),
        )
        .route(
            "/api/now/v1/attachment/{sys_id}",
            get(attach::meta).delete(attach::delete),
        )
        .route(
            "/api/now/v1/attachment/{sys_id}/file",
            get(attach::download),
        )
        .route("/api/now/v1/batch", post(batch::batch))
        .route_layer(middleware::from_fn_with_state(sn.clone(), authenticate));
    // The Batch API runs its requests through the API routes directly: they are not HTTP
    // requests of their own, so they are neither counted nor faulted.
    let _ = sn.router.set(api.clone().with_state(sn.clone()));
    let control = MiddlewareState {
        control: sn.control.clone(),
        fault_body,
    };
    Router::new()
        .merge(api)
        .route("/oauth_token.do", post(oauth_token))
        .fallback(unknown_route)
        .layer(axum::extract::DefaultBodyLimit::max(
            sn.config.max_attachment_bytes.saturating_add(1 << 20),
        ))
        .layer(middleware::from_fn_with_state(
            control,
            common::control_layer,
        ))
        .with_state(sn)
}

pub(crate) fn now_str(sn: &Sn) -> String {
    fmt_time(sn.now())
}

pub(crate) fn empty_response(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}
