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

mod client;
mod config;
mod error;
mod extras;
mod meta;
mod read;
mod session;
mod wire;
mod write;

pub use config::{AlmAuth, AlmConfig, AlmConfigBuilder, LoginFlow, default_defect_workflow};
pub use wire::Format;

// The helpers every concern uses: calls and paths, metadata and values.
#[allow(clippy::wildcard_imports)]
use {client::*, meta::*};

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
use workbridge_core::{Operation, traced};
use workbridge_http::header::{ACCEPT, CONTENT_TYPE, HeaderName};
use workbridge_http::{CookieSession, HttpClient, HttpResponse, Method};

use wire::{Entity, Values, encode, parse_collection, parse_entity, xml_text};

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
}

/// Each method is one call into the module of its concern; the error of every call leaving
/// here names its operation, system and (where the call has them) item type and id.
#[async_trait]
impl Repository for AlmRepository {
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

    async fn attachments_since(
        &self,
        t: &ItemType,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AttachmentMeta>> {
        traced(
            Operation::AttachmentsSince,
            self,
            Some(t),
            None,
            self.do_attachments_since(t, since, limit),
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
}
