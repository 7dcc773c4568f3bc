//! A stateful simulator of Azure DevOps Services, Azure DevOps Server and TFS work item
//! tracking: WIQL, work items (JSON Patch), batch reads and writes, revisions and updates,
//! comments, attachments, work item types and fields, api-version negotiation, PAT auth.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use workbridge_sim::azure_devops::{AzureDevOpsSim, ServerVersion};
//! let sim = AzureDevOpsSim::builder().pat("TOKEN").seed_items(10).spawn().await?;
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

/// The request prelude of a handler: api-version, project and caller, or the early answer.
macro_rules! pre {
    ($ado:expr, $org:expr, $project:expr, $raw:expr, $headers:expr, $method:expr) => {
        or_answer!(prelude(
            &$ado,
            &$org,
            $project,
            $raw.as_deref(),
            &$headers,
            &$method
        ))
    };
}

mod attachments;
mod auth;
mod batch;
mod comments;
mod data;
mod envelope;
mod history;
mod items;
mod metadata;
mod patch;
mod store;
mod wiql;

use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::extract::Request;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use serde_json::{Value, json};

use crate::SimOptions;
use crate::common::or_answer;
use crate::common::{self, Control, MiddlewareState, Running, SimClock, SimControl};

pub(crate) use crate::common::lock;

#[allow(clippy::wildcard_imports)]
use attachments::*;
#[allow(clippy::wildcard_imports)]
use auth::*;
#[allow(clippy::wildcard_imports)]
use batch::*;
#[allow(clippy::wildcard_imports)]
use comments::*;
#[allow(clippy::wildcard_imports)]
use data::*;
#[allow(clippy::wildcard_imports)]
use envelope::*;
#[allow(clippy::wildcard_imports)]
use history::*;
#[allow(clippy::wildcard_imports)]
use items::*;
#[allow(clippy::wildcard_imports)]
use metadata::*;
#[allow(clippy::wildcard_imports)]
use patch::*;
#[allow(clippy::wildcard_imports)]
use store::*;
#[allow(clippy::wildcard_imports)]
use wiql::*;

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
            Process::Agile => data::AGILE,
            Process::Scrum => data::SCRUM,
            Process::Cmmi => data::CMMI,
        }
    }
}

/// Builds an [`AzureDevOpsSim`].
#[derive(Debug, Clone)]
pub struct AzureDevOpsSimBuilder {
    config: Config,
    options: SimOptions,
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
            options: SimOptions::default(),
        }
    }
}

impl AzureDevOpsSimBuilder {
    common::sim_options_methods!("work items (Bugs, User Stories and Tasks, in turn)");

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

    /// Starts serving on 127.0.0.1.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn spawn(self) -> std::io::Result<AzureDevOpsSim> {
        let control = Arc::new(Control::new(&self.options));
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
        let running = common::serve(app, &self.options).await?;
        let _ = ado.base.set(running.base_url());
        let sim = AzureDevOpsSim { ado, running };
        sim.seed_items(self.options.seed_items, self.options.rng_seed);
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
        apply(
            &self.ado,
            &mut st,
            t,
            None,
            &ops,
            PatchFlags::default(),
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
        apply(
            &self.ado,
            &mut st,
            t,
            Some(id),
            &ops,
            PatchFlags::default(),
            &me,
        )
        .is_ok()
    }

    /// Deletes a work item directly.
    pub fn delete(&self, id: u64) -> bool {
        lock(&self.ado.store).remove(id).is_some()
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

    /// Adds `n` realistic work items: Bugs, User Stories and Tasks in turn (the process's first
    /// three types), their titles and assignees chosen by an RNG seeded with `rng_seed`.
    pub fn seed_items(&self, n: usize, rng_seed: u64) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(rng_seed);
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
            let title = format!("{} #{i}", TITLES[rng.random_range(0..TITLES.len())]);
            let people = &self.ado.config.people;
            let person = &people[rng.random_range(0..people.len())];
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
        .route("/_apis", axum::routing::options(locations))
        .route("/_apis/", axum::routing::options(locations))
        .route("/{org}/_apis", axum::routing::options(locations))
        .route("/{org}/_apis/", axum::routing::options(locations))
        .route("/{org}/_apis/{area}", axum::routing::options(locations))
        .route("/{org}/_apis/resourceareas", get(resource_areas))
        .route("/{org}/_apis/resourceareas/{aid}", get(resource_areas))
        .route("/{org}/_apis/wit/wiql", post(wiql))
        .route("/{org}/{project}/_apis/wit/wiql", post(wiql))
        .route("/{org}/{project}/{team}/_apis/wit/wiql", post(wiql))
        .route("/{org}/_apis/wit/workitems", get(list_items))
        .route("/{org}/{project}/_apis/wit/workitems", get(list_items))
        .route(
            "/{org}/_apis/wit/workitems/{id}",
            get(get_item).patch(update_item).delete(delete_item),
        )
        .route(
            "/{org}/{project}/_apis/wit/workitems/{id}",
            get(get_item)
                .patch(update_item)
                .delete(delete_item)
                .post(create_item),
        )
        .route("/{org}/_apis/wit/workitemsbatch", post(batch_get))
        .route("/{org}/{project}/_apis/wit/workitemsbatch", post(batch_get))
        .route("/{org}/_apis/wit/workitems/{id}/updates", get(updates))
        .route(
            "/{org}/{project}/_apis/wit/workitems/{id}/updates",
            get(updates),
        )
        .route("/{org}/_apis/wit/workitems/{id}/updates/{n}", get(updates))
        .route(
            "/{org}/{project}/_apis/wit/workitems/{id}/updates/{n}",
            get(updates),
        )
        .route("/{org}/_apis/wit/workitems/{id}/revisions", get(revisions))
        .route(
            "/{org}/{project}/_apis/wit/workitems/{id}/revisions",
            get(revisions),
        )
        .route(
            "/{org}/_apis/wit/workitems/{id}/revisions/{n}",
            get(revisions),
        )
        .route(
            "/{org}/{project}/_apis/wit/workitems/{id}/revisions/{n}",
            get(revisions),
        )
        .route(
            "/{org}/{project}/_apis/wit/workitems/{id}/comments",
            get(list_comments).post(add_comment),
        )
        .route(
            "/{org}/{project}/_apis/wit/workitems/{id}/comments/{cid}",
            get(get_comment)
                .patch(update_comment)
                .delete(delete_comment),
        )
        .route("/{org}/_apis/wit/attachments", post(upload))
        .route("/{org}/{project}/_apis/wit/attachments", post(upload))
        .route("/{org}/_apis/wit/attachments/{aid}", get(download))
        .route(
            "/{org}/{project}/_apis/wit/attachments/{aid}",
            get(download),
        )
        .route(
            "/{org}/_apis/wit/$batch",
            post(batch_write).patch(batch_write),
        )
        .route("/{org}/{project}/_apis/wit/workitemtypes", get(types))
        .route(
            "/{org}/{project}/_apis/wit/workitemtypes/{wtype}",
            get(one_type),
        )
        .route(
            "/{org}/{project}/_apis/wit/workitemtypes/{wtype}/states",
            get(states),
        )
        .route(
            "/{org}/{project}/_apis/wit/workitemtypes/{wtype}/fields",
            get(type_fields),
        )
        .route("/{org}/_apis/wit/fields", get(fields))
        .route("/{org}/{project}/_apis/wit/fields", get(fields))
        .route("/{org}/_apis/wit/fields/{name}", get(fields))
        .route("/{org}/{project}/_apis/wit/fields/{name}", get(fields))
        .route_layer(middleware::from_fn_with_state(ado.clone(), authenticate));
    let _ = ado.router.set(api.clone().with_state(ado.clone()));
    let control = MiddlewareState {
        control: ado.control.clone(),
        fault_body,
    };
    let inner = api
        .fallback(unknown_fallback)
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
