//! workbridge-http against wiremock: retries, waits, auth renewal, redaction, errors.

mod auth;
mod reach;
mod redaction;
mod retries;

use std::sync::Arc;
use std::time::Duration;

use workbridge_http::{
    AuthProvider, BackoffConfig, ClientOptions, HttpClient, NoAuth, RetryConfig,
};

/// Options for tests: loopback http, quick backoff, no timeouts unless a test sets one.
pub fn options() -> ClientOptions {
    let mut o = ClientOptions::default()
        .allow_http(true)
        .retry(
            RetryConfig::default().max_retries(4).backoff(
                BackoffConfig::default()
                    .initial(Duration::from_millis(1))
                    .max(Duration::from_millis(5)),
            ),
        )
        .timeout(None);
    o.connect_timeout = None;
    o
}

/// A client of `uri` without credentials.
pub fn client(uri: &str, options: ClientOptions) -> HttpClient {
    client_with(uri, options, Arc::new(NoAuth))
}

/// A client of `uri` with `auth`.
pub fn client_with(uri: &str, options: ClientOptions, auth: Arc<dyn AuthProvider>) -> HttpClient {
    HttpClient::builder(uri)
        .options(options)
        .auth(auth)
        .system("test-system")
        .build()
        .expect("client builds")
}
