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
//! - `update` reads the entity's `ver-stamp` and checks it against `if_version`, then `PUT`s:
//!   two requests, no lock of its own (ALM's locks are optional; an entity another session
//!   holds locked refuses the write, a conflict); a `ver-stamp` grown by more than one in the
//!   answer is a conflict after the fact. Version-controlled collections use check-out /
//!   check-in. [`VersionCheck::AfterWrite`] leaves the read out where the workflow need not
//!   check the state: one request.
//! - `write_many` creates in bulk (one collection `POST` per type, up to
//!   [`AlmConfig::bulk_size`]) and updates several entities in one collection `PUT`, their
//!   versions read at once (consecutive ids as ranges) and checked the same way. A partial
//!   success (409) or a total failure (500) gives each entity its own result and is not sent
//!   again.
//! - `holds_correlated` asks, in one query, whether any entity holds a key starting with
//!   `wb:` (ALM's filter grammar has `*` wildcards but no "not empty"), so a backfill looks no
//!   twin up where none can exist.
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
mod history;
mod meta;
mod read;
mod session;
mod settings;
mod wire;
mod write;

pub use config::{
    AlmAuth, AlmConfig, AlmConfigBuilder, LoginFlow, VersionCheck, default_defect_workflow,
};
pub use settings::AlmSettings;
pub use wire::Format;

// The helpers every concern uses: calls and paths, metadata and values.
#[allow(clippy::wildcard_imports)]
use {client::*, meta::*};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use tokio::sync::RwLock;
use workbridge_core::{
    AttachmentMeta, Capabilities, ChangeOptions, ChangePage, Comment, CorrelationKey,
    CreateOptions, Cursor, Error, ErrorKind, FieldDef, FieldKind, FieldMap, FieldValue, GetOptions,
    ItemId, ItemType, KeysetScan, NewAttachment, NewComment, Person, Reference, Repository, Result,
    Schema, TextFormat, UpdateOptions, Version, Visibility, WorkItem,
};
use workbridge_http::header::{ACCEPT, CONTENT_TYPE, HeaderName};
use workbridge_http::{CookieSession, HttpClient, HttpResponse, Method};

use wire::{
    BulkEntry, Entity, Values, encode, encode_collection, parse_bulk_failure, parse_collection,
    parse_entity, xml_text,
};

/// An ALM project as a [`Repository`]; item types are collections (`defects`,
/// `requirements`, `tests`).
pub struct AlmRepository {
    client: HttpClient,
    config: AlmConfig,
    project_path: String,
    /// The server's offset from UTC as last detected, and when.
    offset: tokio::sync::Mutex<Option<(TimeDelta, std::time::Instant)>>,
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
        let provider: Arc<dyn workbridge_http::AuthProvider> = match auth {
            AlmAuth::Custom(p) => p,
            auth => Arc::new(CookieSession::new(Arc::new(session::AlmLogin {
                qcbin: qcbin.clone(),
                auth,
                flow: config.login,
            }))),
        };
        let client = HttpClient::builder(qcbin)
            .options(config.client.clone())
            .auth(provider)
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
        // Creates and updates in bulk (`write_many`).
        capabilities.batch_writes = true;
        capabilities.max_batch_write = config.bulk_size;
        capabilities.correlation = config.correlation_field.is_some();
        // A stale version is refused before the write only when it is read before it.
        capabilities.optimistic_concurrency = config.version_check == VersionCheck::ReadBefore;
        capabilities.max_page_size = 2000;
        capabilities.max_batch_read = 100;
        // The sync's own writes, a page of them or more, are left out of the scan (ADR 0023).
        capabilities.skips_known = true;
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
            offset: tokio::sync::Mutex::new(None),
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

workbridge_core::traced_repository!(AlmRepository {
    schema => do_schema,
    changes => scan,
    get_many => do_get_many,
    create => do_create,
    update => do_update,
    write_many => do_write_many,
    find_by_correlation => do_find_by_correlation,
    find_many_by_correlation => do_find_many_by_correlation,
    holds_correlated => do_holds_correlated,
    comments => do_comments,
    add_comment => do_add_comment,
    attachments => do_attachments,
    attachments_since => do_attachments_since,
    download => do_download,
    upload => do_upload,
    written_since => do_written_since,
});
