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
mod wire;
mod write;

pub use config::{AzureDevOpsAuth, AzureDevOpsConfig, AzureDevOpsConfigBuilder, ServerVersion};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
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
use workbridge_core::{Operation, traced};
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
                    "AzureDevOpsConfig has no credentials: call pat() or bearer()",
                ));
            }
            Some(AzureDevOpsAuth::Pat(p)) => Arc::new(BasicAuth::pat(p.expose_secret())),
            Some(AzureDevOpsAuth::Bearer(t)) => Arc::new(BearerAuth::new(t.expose_secret())),
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
        capabilities.max_batch_read = BATCH;
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

/// Each method is one call into the module of its concern; the error of every call leaving
/// here names its operation, system and (where the call has them) item type and id.
#[async_trait]
impl Repository for AzureDevOpsRepository {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn schema(&self, t: &ItemType) -> Result<Schema> {
        traced(Operation::Schema, self, Some(t), None, self.do_schema(t)).await
    }

    async fn changes(
        &self,
        t: &ItemType,
        since: &Cursor,
        opts: &ChangeOptions,
    ) -> Result<ChangePage> {
        traced(
            Operation::Changes,
            self,
            Some(t),
            None,
            self.scan(t, since, opts),
        )
        .await
    }

    async fn get_many(
        &self,
        t: &ItemType,
        ids: &[ItemId],
        opts: &GetOptions,
    ) -> Result<Vec<Option<WorkItem>>> {
        traced(
            Operation::GetMany,
            self,
            Some(t),
            None,
            self.do_get_many(t, ids, opts),
        )
        .await
    }

    async fn create(
        &self,
        t: &ItemType,
        fields: &FieldMap,
        opts: &CreateOptions,
    ) -> Result<WorkItem> {
        traced(
            Operation::Create,
            self,
            Some(t),
            None,
            self.do_create(t, fields, opts),
        )
        .await
    }

    async fn update(
        &self,
        t: &ItemType,
        id: &ItemId,
        changes: &FieldMap,
        opts: &UpdateOptions,
    ) -> Result<WorkItem> {
        traced(
            Operation::Update,
            self,
            Some(t),
            Some(id),
            self.do_update(t, id, changes, opts),
        )
        .await
    }

    async fn revision_after(
        &self,
        t: &ItemType,
        id: &ItemId,
        version: &Version,
        n: u32,
    ) -> Result<Option<WorkItem>> {
        traced(
            Operation::RevisionAfter,
            self,
            Some(t),
            Some(id),
            self.do_revision_after(t, id, version, n),
        )
        .await
    }

    async fn find_by_correlation(
        &self,
        t: &ItemType,
        key: &CorrelationKey,
    ) -> Result<Option<WorkItem>> {
        traced(
            Operation::FindByCorrelation,
            self,
            Some(t),
            None,
            self.do_find_by_correlation(t, key),
        )
        .await
    }

    async fn find_many_by_correlation(
        &self,
        t: &ItemType,
        keys: &[CorrelationKey],
    ) -> Result<Vec<Option<WorkItem>>> {
        traced(
            Operation::FindManyByCorrelation,
            self,
            Some(t),
            None,
            self.do_find_many_by_correlation(t, keys),
        )
        .await
    }

    async fn comments(&self, t: &ItemType, id: &ItemId) -> Result<Vec<Comment>> {
        traced(
            Operation::Comments,
            self,
            Some(t),
            Some(id),
            self.do_comments(t, id),
        )
        .await
    }

    async fn add_comment(&self, t: &ItemType, id: &ItemId, c: &NewComment) -> Result<Comment> {
        traced(
            Operation::AddComment,
            self,
            Some(t),
            Some(id),
            self.do_add_comment(t, id, c),
        )
        .await
    }

    async fn attachments(&self, t: &ItemType, id: &ItemId) -> Result<Vec<AttachmentMeta>> {
        traced(
            Operation::Attachments,
            self,
            Some(t),
            Some(id),
            self.do_attachments(t, id),
        )
        .await
    }

    async fn download(&self, a: &AttachmentMeta) -> Result<Bytes> {
        traced(
            Operation::Download,
            self,
            Some(&a.item_type),
            Some(&a.item_id),
            self.do_download(a),
        )
        .await
    }

    async fn upload(&self, t: &ItemType, id: &ItemId, a: &NewAttachment) -> Result<AttachmentMeta> {
        traced(
            Operation::Upload,
            self,
            Some(t),
            Some(id),
            self.do_upload(t, id, a),
        )
        .await
    }

    async fn write_many(&self, writes: &[Write]) -> Result<Vec<Result<WorkItem>>> {
        traced(
            Operation::WriteMany,
            self,
            None,
            None,
            self.do_write_many(writes),
        )
        .await
    }
}
