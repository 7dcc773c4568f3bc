//! A stateful simulator of the ServiceNow REST APIs: Table, Attachment, Batch and OAuth.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use workbridge_sim::servicenow::ServiceNowSim;
//! let sim = ServiceNowSim::builder().user("admin", "admin", &["admin"]).seed_items(20).spawn().await?;
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

mod attachments;
mod auth;
mod batch;
mod comments;
mod data;
mod envelope;
mod items;
mod metadata;
mod query;
mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::middleware::{self};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::TimeDelta;
use rand::Rng;
use serde_json::Value;

use crate::SimOptions;
use crate::common::or_answer;
use crate::common::{self, Control, MiddlewareState, Running, SimClock, SimControl};

pub(crate) use crate::common::lock;

#[allow(clippy::wildcard_imports)]
use auth::*;
#[allow(clippy::wildcard_imports)]
use envelope::*;
#[allow(clippy::wildcard_imports)]
use items::*;
#[allow(clippy::wildcard_imports)]
use metadata::*;
#[allow(clippy::wildcard_imports)]
use store::*;

/// Builds a [`ServiceNowSim`].
#[derive(Debug, Clone)]
pub struct ServiceNowSimBuilder {
    users: Vec<SimUser>,
    oauth_clients: Vec<(String, String)>,
    options: SimOptions,
    config: Config,
}

impl Default for ServiceNowSimBuilder {
    fn default() -> Self {
        ServiceNowSimBuilder {
            users: Vec::new(),
            oauth_clients: Vec::new(),
            options: SimOptions::default(),
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
    common::sim_options_methods!("incidents (with callers, groups, categories and states)");

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
        let control = Arc::new(Control::new(&self.options));
        let now = control.clock.now();
        let mut store = Store::new(self.options.rng_seed);
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
        let running = common::serve(router, &self.options).await?;
        let _ = sn.base.set(running.base_url());
        let sim = ServiceNowSim { sn, running };
        if self.options.seed_items > 0 {
            sim.seed_items(self.options.seed_items, self.options.rng_seed);
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
        items::write(&self.sn, &mut store, table, None, &body, "admin").map_or_else(
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
        items::write(&self.sn, &mut store, table, Some(sys_id), &body, user).is_ok()
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

    /// Adds `n` realistic incidents, their values chosen by an RNG seeded with `rng_seed`.
    pub fn seed_items(&self, n: usize, rng_seed: u64) {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(rng_seed);
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
            get(items::list).post(items::create),
        )
        .route(
            "/api/now/table/{table}/{sys_id}",
            get(items::get_one)
                .put(items::update)
                .patch(items::update)
                .delete(items::delete),
        )
        .route(
            "/api/now/v1/table/{table}",
            get(items::list).post(items::create),
        )
        .route(
            "/api/now/v1/table/{table}/{sys_id}",
            get(items::get_one)
                .put(items::update)
                .patch(items::update)
                .delete(items::delete),
        )
        .route(
            "/api/now/v2/table/{table}",
            get(items::list).post(items::create),
        )
        .route(
            "/api/now/v2/table/{table}/{sys_id}",
            get(items::get_one)
                .put(items::update)
                .patch(items::update)
                .delete(items::delete),
        )
        .route("/api/now/attachment", get(attachments::list))
        .route("/api/now/attachment/file", post(attachments::upload_raw))
        .route(
            "/api/now/attachment/upload",
            post(attachments::upload_multipart),
        )
        .route(
            "/api/now/attachment/{sys_id}",
            get(attachments::meta).delete(attachments::delete),
        )
        .route(
            "/api/now/attachment/{sys_id}/file",
            get(attachments::download),
        )
        .route("/api/now/v1/attachment", get(attachments::list))
        .route("/api/now/v1/attachment/file", post(attachments::upload_raw))
        .route(
            "/api/now/v1/attachment/upload",
            post(attachments::upload_multipart),
        )
        .route(
            "/api/now/v1/attachment/{sys_id}",
            get(attachments::meta).delete(attachments::delete),
        )
        .route(
            "/api/now/v1/attachment/{sys_id}/file",
            get(attachments::download),
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
