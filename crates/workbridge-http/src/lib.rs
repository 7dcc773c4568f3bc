//! The HTTP layer of workbridge: the one crate that talks to reqwest.
//!
//! Adapters build one [`HttpClient`] per repository from [`ClientOptions`] and an
//! [`AuthProvider`]; it retries what is worth retrying ([`RetryConfig`]), waits at least as long
//! as the server asks (`Retry-After`, `X-RateLimit-Reset`, `X-RateLimit-Delay`), limits
//! concurrency and rate, renews credentials once on a 401, turns failures into
//! [`workbridge_core::Error`] ([`classify`]), and keeps secrets out of `Debug`, errors and logs
//! ([`redact_url`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use workbridge_http::{BasicAuth, ClientOptions, HttpClient, RetryConfig};
//! # async fn run() -> workbridge_core::Result<()> {
//! let client = HttpClient::builder("https://acme.service-now.com")
//!     .auth(Arc::new(BasicAuth::new("integration", "s3cret")))
//!     .options(ClientOptions::default().retry(RetryConfig::default().max_retries(3)))
//!     .build()?;
//! let body: serde_json::Value = client
//!     .get("api/now/table/incident")
//!     .query(&[("sysparm_limit", "1")])
//!     .operation("changes")
//!     .send_json()
//!     .await?;
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod auth;
mod classify;
mod client;
mod env;
mod options;
mod path;
mod redact;
mod retry;
mod settings;

pub use auth::{
    AuthProvider, BasicAuth, BearerAuth, CookieSession, NoAuth, OAuth2, OAuth2Grant, Session,
    SessionLogin, TokenAuth, TokenSource,
};
pub use classify::{MAX_SNIPPET_CHARS, body_snippet, classify, kind_for_status, refine};
pub use client::{ErrorParser, HttpClient, HttpClientBuilder, HttpResponse, RequestBuilder};
pub use env::EnvVars;
pub use options::{ClientOptions, ProxyConfig, RateLimit, is_loopback};
pub use path::path_segment;
pub use redact::{REDACTED, redact_url, redact_url_text};
pub use retry::{BackoffConfig, RetryConfig, is_retryable_status, parse_retry_after, server_wait};
pub use settings::{ConfigContext, HttpSettings};

pub use reqwest::header;
pub use reqwest::{Method, StatusCode};
pub use secrecy::SecretString;
