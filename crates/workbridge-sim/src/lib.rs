//! Stateful simulators of the REST APIs workbridge talks to, for tests, examples and benches —
//! and for integrators' own tests.
//!
//! Each simulator is an axum server on 127.0.0.1, started in process with `spawn()` (port 0
//! picks a free port) or standalone with the `workbridge-sim` binary. They follow the wire
//! format of the real systems (`../shared/reference/api-reference.md`): status codes,
//! envelopes, headers, error bodies, value encodings, paging and timestamps, and they enforce
//! what the real servers enforce (authentication, ACL roles, data policies). Every simulator
//! counts requests by route and injects faults on demand ([`Faults`], [`SimControl`]).
//!
//! - [`servicenow`]: Table, Attachment, Batch and OAuth APIs.
//! - [`azure_devops`]: Azure DevOps Services / Server / TFS work item tracking.
//! - [`alm`]: HP ALM / Quality Center REST (Core).

#![cfg_attr(docsrs, feature(doc_cfg))]
// Handlers return early with a ready `Response` as the error: the idiom of axum handlers.
#![allow(clippy::result_large_err)]

pub mod alm;
pub mod azure_devops;
mod common;
pub mod servicenow;

pub use common::{
    AdminServer, Certificate, Exchange, Faults, SimClock, SimControl, SimOptions, Tls,
};
