//! The core of workbridge: the work item model, the [`Repository`] trait every backend
//! implements, the [`Error`] type, and [`InMemoryRepository`], the reference backend.
//!
//! This crate does no I/O of its own and starts no runtime. Adapters for ServiceNow, Azure
//! DevOps / TFS and HP ALM implement [`Repository`] in their own crates; the sync kernel works
//! on `Arc<dyn Repository>` and never knows which system it talks to.
//!
//! ```
//! use std::sync::Arc;
//! use workbridge_core::{
//!     CreateOptions, FieldMap, InMemoryRepository, ItemType, Repository, RepositoryExt,
//!     UpdateOptions, ErrorKind,
//! };
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), workbridge_core::Error> {
//! let repo: Arc<dyn Repository> = Arc::new(InMemoryRepository::new("ops"));
//! let incident = ItemType::from("incident");
//! let item = repo
//!     .create(&incident, &FieldMap::new().with("short_description", "Mail is slow"), &CreateOptions::default())
//!     .await?;
//! let updated = repo.set_field(&incident, &item.id, "priority", 2i64).await?;
//! // Writing on top of a stale version is refused:
//! let stale = UpdateOptions::default().if_version(item.version.clone());
//! let err = repo
//!     .update(&incident, &item.id, &FieldMap::new().with("priority", 1i64), &stale)
//!     .await
//!     .unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Conflict);
//! assert_ne!(updated.version, item.version);
//! # Ok(())
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod duration_text;
mod error;
pub mod fence;
mod memory;
mod model;
mod repository;
pub mod scan;
mod schema;
mod traced;
pub mod wrappers;

pub use error::{Error, ErrorContext, ErrorKind, Result, truncate_chars};
pub use memory::{InMemoryRepository, InMemoryRepositoryBuilder, ManualClock};
pub use model::{
    AttachmentMeta, Capabilities, ChangeOptions, ChangePage, Comment, CorrelationKey,
    CreateOptions, Cursor, FieldMap, FieldName, FieldValue, GetOptions, ItemId, ItemType,
    NewAttachment, NewComment, Person, Reference, TextFormat, UpdateOptions, Version, VersionCheck,
    Visibility, WorkItem, Write, same_value, written_in_sequence,
};
pub use repository::{Operation, Repository, RepositoryExt};
pub use scan::{KeysetScan, ScanQuery};
pub use schema::{FieldDef, FieldKind, Schema, TransitionGraph};
pub use traced::traced;

pub use async_trait::async_trait;
pub use bytes::Bytes;
#[doc(hidden)]
pub use chrono as __chrono;
