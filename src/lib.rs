//! # workbridge
//!
//! Keeps work items in sync, in both directions, between **ServiceNow**, **Microsoft TFS /
//! Azure DevOps** and **HP Quality Center / ALM**, from your own Rust service.
//!
//! workbridge gives you:
//!
//! - a generic [`Repository`] trait — one item store, whatever the system — with
//!   [`RepositoryExt`] conveniences, typed [`FieldValue`]s, [`Schema`]s with workflows
//!   ([`TransitionGraph`]), comments with visibility, attachments and change cursors that never
//!   skip an item;
//! - [`InMemoryRepository`], a complete reference backend, and wrappers that inject faults,
//!   add latency or record calls ([`testing`]);
//! - the HTTP layer the adapters share (feature `http`): retries that honour the server's
//!   waits, rate limits, OAuth2 and session auth, secrets kept out of logs and errors;
//! - a conformance suite every backend passes (feature `testkit`).
//!
//! - the ServiceNow, Azure DevOps / TFS and HP ALM adapters (features `servicenow`,
//!   `azure-devops`, `alm`) and faithful simulators of the three APIs (feature `sim`).
//!
//! - the mapping engine ([`mapping`]): TOML specs that say which field becomes which;
//! - the sync kernel ([`sync`]): [`sync::SyncPair`] runs one round at a time — links,
//!   baselines, a three-way merge, cursors, parking, comments and attachments — with its state
//!   in a [`sync::StateStore`] (SQLite by default).
//!
//! Scheduling stays with you: call a sync round from a loop, a cron job or a webhook.
//!
//! ## A first look
//!
//! ```
//! use workbridge::{
//!     ChangeOptions, CreateOptions, Cursor, FieldMap, InMemoryRepository, ItemType, Repository,
//!     RepositoryExt,
//! };
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), workbridge::Error> {
//! let ops = InMemoryRepository::new("ops");
//! let incident = ItemType::from("incident");
//! let ticket = ops
//!     .create(
//!         &incident,
//!         &FieldMap::new().with("short_description", "Invoices print blank"),
//!         &CreateOptions::default().correlation("ticket-1"),
//!     )
//!     .await?;
//!
//! // Read what changed since a stored cursor, page by page; keep the new cursor for next time.
//! let (changed, cursor) = ops
//!     .all_changes(&incident, &Cursor::beginning(), &ChangeOptions::default().page_size(50))
//!     .await?;
//! assert_eq!(changed.len(), 1);
//!
//! // Nothing changed since: nothing comes back.
//! let (again, _) = ops.all_changes(&incident, &cursor, &ChangeOptions::default()).await?;
//! assert!(again.is_empty());
//!
//! // The correlation key finds the item even when a create's reply was lost.
//! assert_eq!(ops.find_by_correlation(&incident, &"ticket-1".into()).await?.unwrap().id, ticket.id);
//! # Ok(())
//! # }
//! ```
//!
//! ## Features
//!
//! | feature | gives |
//! |---|---|
//! | `http` | `workbridge::http`: the HTTP layer adapters are built on |
//! | `testkit` | `workbridge::testkit`: the conformance suite for your own `Repository` implementations |
//! | `servicenow` | `workbridge::servicenow`: the ServiceNow adapter (Table, Attachment, Batch APIs) |
//! | `sim` | `workbridge::sim`: stateful simulators of the APIs, for your own tests |
//! | `azure-devops` | `workbridge::azure_devops`: the Azure DevOps Services / Server / TFS adapter |
//! | `alm` | `workbridge::alm`: the HP ALM / Quality Center adapter |
//! | `bundled-sqlite` (default) | [`sync::SqliteStore`]: the embedded state store, SQLite compiled in |
//! | `sqlite` | the same store, linked against the system's libsqlite3 |
//! | `postgres` | `workbridge::sync::PostgresStore`: state shared by several workers, a lease per pair |
//! | `full` | all of the above |
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use workbridge_core::{
    AttachmentMeta, Bytes, Capabilities, ChangeOptions, ChangePage, Comment, CorrelationKey,
    CreateOptions, Cursor, Error, ErrorContext, ErrorKind, FieldDef, FieldKind, FieldMap,
    FieldName, FieldValue, GetOptions, InMemoryRepository, InMemoryRepositoryBuilder, ItemId,
    ItemType, NewAttachment, NewComment, Person, Reference, Repository, RepositoryExt, Result,
    Schema, TextFormat, TransitionGraph, UpdateOptions, Version, VersionCheck, Visibility,
    WorkItem, Write,
};

/// What tests of a sync service use beside [`InMemoryRepository`]: a clock to move by hand, and
/// wrappers that inject faults, add latency or record the calls made — each naming the
/// [`Operation`](testing::Operation) it acts on.
pub mod testing {
    pub use workbridge_core::wrappers::{
        Call, FaultRepository, FaultRule, RecordingRepository, ThrottledRepository,
    };
    pub use workbridge_core::{ManualClock, Operation};
}

/// What building a connector of your own takes beyond what a sync service uses: the shared
/// keyset scan behind `changes`, the write deadline the HTTP layer honours, `async_trait` for
/// implementing [`Repository`] — see `docs/connector-guide.md`.
pub mod connector {
    pub use workbridge_core::{
        KeysetScan, ScanQuery, async_trait, fence, same_value, scan, traced, traced_repository,
        truncate_chars, written_in_sequence,
    };
}

/// The mapping engine: TOML specs that turn one side's fields into the other's.
pub use workbridge_mapping as mapping;

/// The sync kernel: pairs, rounds, state stores.
pub use workbridge_sync as sync;

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use workbridge_http as http;

#[cfg(feature = "servicenow")]
#[cfg_attr(docsrs, doc(cfg(feature = "servicenow")))]
pub use workbridge_servicenow as servicenow;

#[cfg(feature = "azure-devops")]
#[cfg_attr(docsrs, doc(cfg(feature = "azure-devops")))]
pub use workbridge_azure_devops as azure_devops;

#[cfg(feature = "alm")]
#[cfg_attr(docsrs, doc(cfg(feature = "alm")))]
pub use workbridge_alm as alm;

#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub use workbridge_sim as sim;

#[cfg(any(feature = "servicenow", feature = "azure-devops", feature = "alm"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "servicenow", feature = "azure-devops", feature = "alm")))
)]
pub mod deploy;

#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub use workbridge_testkit as testkit;
