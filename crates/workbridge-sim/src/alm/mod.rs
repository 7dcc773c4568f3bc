//! A stateful simulator of the HP ALM / Quality Center REST API (Core): cookie sessions with
//! XSRF, entities (`defects`, `requirements`, `tests`) in JSON and XML, the query grammar,
//! paging, locks, check-out, customization metadata, attachments and audits, with
//! `last-modified` in the server's own time zone.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use workbridge_sim::alm::AlmSim;
//! let sim = AlmSim::builder().user("qa", "qa").seed_items(5).spawn().await?;
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

mod attachments;
mod auth;
mod data;
mod envelope;
mod history;
mod items;
mod metadata;
mod query;
mod store;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{any, get, post};
use chrono::TimeDelta;

use crate::SimOptions;
use crate::common::or_answer;
use crate::common::{self, Control, MiddlewareState, Running, SimClock, SimControl};

pub(crate) use crate::common::lock;

#[allow(clippy::wildcard_imports)]
use attachments::*;
#[allow(clippy::wildcard_imports)]
use auth::*;
#[allow(clippy::wildcard_imports)]
use envelope::*;
#[allow(clippy::wildcard_imports)]
use history::*;
#[allow(clippy::wildcard_imports)]
use items::*;
#[allow(clippy::wildcard_imports)]
use metadata::*;
#[allow(clippy::wildcard_imports)]
use store::*;

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

/// Builds an [`AlmSim`].
#[derive(Debug, Clone)]
pub struct AlmSimBuilder {
    config: Config,
    options: SimOptions,
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
                enforce_transitions: true,
                version_control: false,
            },
            options: SimOptions::default(),
        }
    }
}

impl AlmSimBuilder {
    common::sim_options_methods!("defects");

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
    pub fn enforce_transitions(mut self, on: bool) -> Self {
        self.config.enforce_transitions = on;
        self
    }

    /// Whether requirements and tests are version-controlled (check-out before update).
    #[must_use]
    pub fn version_control(mut self, on: bool) -> Self {
        self.config.version_control = on;
        self
    }

    /// Starts serving on 127.0.0.1.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn spawn(self) -> std::io::Result<AlmSim> {
        let control = Arc::new(Control::new(&self.options));
        let alm = Arc::new(Alm {
            st: Mutex::new(State_::default()),
            offset_minutes: std::sync::atomic::AtomicI64::new(self.config.offset.num_minutes()),
            config: self.config,
            control,
        });
        let router = router(alm.clone());
        let running = common::serve(router, &self.options).await?;
        let url = running.base_url();
        let sim = AlmSim { alm, running, url };
        sim.seed_items(self.options.seed_items, self.options.rng_seed);
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
    /// Adds `n` realistic defects, their summaries and severities chosen by an RNG seeded
    /// with `rng_seed`.
    pub fn seed_items(&self, n: usize, rng_seed: u64) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(rng_seed);
        for _ in 0..n {
            let summary = data::SUMMARIES[rng.random_range(0..data::SUMMARIES.len())];
            let severity = ["2-Medium", "3-High", "1-Low"][rng.random_range(0..3)];
            let _ = self.create(
                "defects",
                &[
                    ("name", summary),
                    ("severity", severity),
                    ("detected-by", "jdoe"),
                    ("creation-time", "2026-01-05"),
                ],
            );
        }
    }

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

    /// Moves the database server's offset from UTC, as a daylight-saving change does: times
    /// stored from now on, and the server time it answers, use the new offset.
    pub fn set_time_zone_offset_minutes(&self, m: i64) {
        self.alm
            .offset_minutes
            .store(m, std::sync::atomic::Ordering::Relaxed);
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

async fn unknown(headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    qc_error(
        wants(&headers, raw.as_deref()),
        StatusCode::NOT_FOUND,
        "qccore.general-error",
        "The requested resource does not exist",
    )
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
            get(collection).post(collection).put(collection),
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
