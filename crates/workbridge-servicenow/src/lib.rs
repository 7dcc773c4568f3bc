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

mod client;
mod config;
mod error;
mod extras;
mod meta;
mod read;
mod settings;
mod wire;
mod write;

pub use config::{
    ServiceNowAuth, ServiceNowConfig, ServiceNowConfigBuilder, VersionCheck,
    default_change_workflow, default_incident_workflow, default_problem_workflow,
};
pub use settings::ServiceNowSettings;

// The helpers every concern uses: calls and quoting, metadata and value conversion.
#[allow(clippy::wildcard_imports)]
use {client::*, meta::*, wire::*};

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt as _;
use std::fmt;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};
use tokio::sync::RwLock;
use workbridge_core::{
    AttachmentMeta, Capabilities, ChangeOptions, ChangePage, Comment, CorrelationKey,
    CreateOptions, Cursor, Error, ErrorKind, FieldMap, FieldName, FieldValue, GetOptions, ItemId,
    ItemType, KeysetScan, NewAttachment, NewComment, Person, Repository, Result, TextFormat,
    UpdateOptions, Version, Visibility, WorkItem, Write,
};
use workbridge_http::header::CONTENT_TYPE;
use workbridge_http::{AuthProvider, BasicAuth, BearerAuth, HttpClient, Method, OAuth2};

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

impl ServiceNowRepository {
    /// How many of one call's requests go out together: the client's bound
    /// (`ClientOptions::max_concurrency`), which holds across calls.
    fn concurrency(&self) -> usize {
        self.config.client.max_concurrency.max(1)
    }
}

/// Batch API requests of writes one `write_many` call takes (the kernel hands it
/// `write_batch` × this many at a time).
const WRITE_CALL_BATCHES: usize = 10;

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
                    "ServiceNowConfig has no credentials: call basic(), oauth(), bearer() or auth_provider()",
                ));
            }
            Some(ServiceNowAuth::Basic { user, password }) => {
                Arc::new(BasicAuth::new(user.clone(), password.expose_secret()))
            }
            Some(ServiceNowAuth::Bearer(token)) => Arc::new(BearerAuth::new(token.expose_secret())),
            Some(ServiceNowAuth::Custom(p)) => p.clone(),
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
        // A call's writes go out in Batch API requests of `write_batch`, together, after one
        // read of their versions.
        capabilities.max_batch_write = config.write_batch.saturating_mul(WRITE_CALL_BATCHES);
        capabilities.max_page_size = 10_000;
        capabilities.max_attachment_size = None;
        // Checked after the write, a stale version is answered once the write was applied.
        capabilities.optimistic_concurrency = config.version_check == VersionCheck::ReadBefore;
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
}

workbridge_core::traced_repository!(ServiceNowRepository {
    schema => do_schema,
    changes => scan,
    get_many => do_get_many,
    create => do_create,
    update => do_update,
    find_by_correlation => do_find_by_correlation,
    find_many_by_correlation => do_find_many_by_correlation,
    holds_correlated => do_holds_correlated,
    comments => do_comments,
    add_comment => do_add_comment,
    attachments => do_attachments,
    attachments_since => do_attachments_since,
    comments_many => do_comments_many,
    attachments_many => do_attachments_many,
    download => do_download,
    upload => do_upload,
    write_many => do_write_many,
});
