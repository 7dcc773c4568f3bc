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

mod client;
mod config;
mod error;
mod extras;
mod meta;
mod read;
mod settings;
mod wire;
mod write;

pub use config::{AzureDevOpsAuth, AzureDevOpsConfig, AzureDevOpsConfigBuilder, ServerVersion};
pub use settings::AzureDevOpsSettings;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use futures::StreamExt as _;
use std::sync::Arc;

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

// The helpers every concern uses: paths and calls, metadata and value conversion.
#[allow(clippy::wildcard_imports)]
use {client::*, meta::*, wire::*};

/// An Azure DevOps project (Services or on-premises collection) as a [`Repository`]; item
/// types are work item types (`Bug`, `User Story`).
pub struct AzureDevOpsRepository {
    client: HttpClient,
    config: AzureDevOpsConfig,
    types: RwLock<HashMap<String, Arc<TypeMeta>>>,
    field_types: RwLock<Option<Arc<FieldTypes>>>,
    capabilities: Capabilities,
}

impl AzureDevOpsRepository {
    /// How many of one call's requests go out together: the client's bound
    /// (`ClientOptions::max_concurrency`), which holds across calls.
    fn concurrency(&self) -> usize {
        self.config.client.max_concurrency.max(1)
    }
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
                    "AzureDevOpsConfig has no credentials: call pat(), basic(), bearer(), token_source() or auth_provider()",
                ));
            }
            Some(AzureDevOpsAuth::Pat(p)) => Arc::new(BasicAuth::pat(p.expose_secret())),
            Some(AzureDevOpsAuth::Bearer(t)) => Arc::new(BearerAuth::new(t.expose_secret())),
            Some(AzureDevOpsAuth::Basic { user, password }) => {
                Arc::new(BasicAuth::new(user, password.expose_secret()))
            }
            Some(AzureDevOpsAuth::Token(source)) => {
                Arc::new(workbridge_http::TokenAuth::new(source.clone()))
            }
            Some(AzureDevOpsAuth::Custom(p)) => p.clone(),
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
        capabilities.skips_known = true;
        capabilities.max_batch_read = BATCH;
        // `$batch` takes at most 200 work item writes.
        capabilities.max_batch_write = BATCH;
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
}

workbridge_core::traced_repository!(AzureDevOpsRepository {
    schema => do_schema,
    changes => scan,
    get_many => do_get_many,
    create => do_create,
    update => do_update,
    revision_after => do_revision_after,
    find_by_correlation => do_find_by_correlation,
    find_many_by_correlation => do_find_many_by_correlation,
    holds_correlated => do_holds_correlated,
    comments => do_comments,
    add_comment => do_add_comment,
    attachments => do_attachments,
    comments_many => do_comments_many,
    attachments_many => do_attachments_many,
    download => do_download,
    upload => do_upload,
    write_many => do_write_many,
});
