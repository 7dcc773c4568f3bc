//! [`HttpClient`]: one per repository; retries, paces and authenticates every request.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::SeedableRng;
use rand::rngs::StdRng;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use url::Url;
use workbridge_core::{Error, ErrorKind, Result, truncate_chars};

use crate::auth::{AuthProvider, NoAuth};
use crate::classify::classify;
use crate::options::ClientOptions;
use crate::redact::redact_url;
use crate::retry::{is_retryable_status, server_wait};

/// Turns a non-success response into an error: adapters plug in the parser of their system's
/// error envelope. The default is [`classify`].
pub type ErrorParser = Arc<dyn Fn(StatusCode, &HeaderMap, &[u8]) -> Error + Send + Sync>;

/// Builds an [`HttpClient`].
pub struct HttpClientBuilder {
    base: String,
    options: ClientOptions,
    auth: Arc<dyn AuthProvider>,
    error_parser: ErrorParser,
    system: Option<String>,
}

impl fmt::Debug for HttpClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientBuilder")
            .field("base", &self.base)
            .field("options", &self.options)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl HttpClientBuilder {
    /// Sets the options.
    #[must_use]
    pub fn options(mut self, options: ClientOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the authentication.
    #[must_use]
    pub fn auth(mut self, auth: Arc<dyn AuthProvider>) -> Self {
        self.auth = auth;
        self
    }

    /// Sets the error parser.
    #[must_use]
    pub fn error_parser(mut self, parser: ErrorParser) -> Self {
        self.error_parser = parser;
        self
    }

    /// Names the system in errors (default: the base URL).
    #[must_use]
    pub fn system(mut self, name: impl Into<String>) -> Self {
        self.system = Some(crate::redact::redact_embedded_userinfo(&name.into()));
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an invalid base URL, a refused scheme, a bad proxy or
    /// certificate.
    pub fn build(self) -> Result<HttpClient> {
        let mut base = Url::parse(&self.base).map_err(|e| {
            Error::config(format!(
                "`{}` is not a valid URL: {e}",
                truncate_chars(&crate::redact::redact_url_text(&self.base), 200)
            ))
        })?;
        if base.cannot_be_a_base() {
            return Err(Error::config("the base URL cannot have paths joined to it"));
        }
        self.options.check_url(&base)?;
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let _ = base.set_username("");
        let _ = base.set_password(None);
        let o = &self.options;
        if o.plain_http(&base) == Some(crate::options::PlainHttp::Named) {
            tracing::warn!(
                url = %redact_url(&base),
                "plain http allowed by name: credentials and data travel to this host unencrypted"
            );
        }
        let redirects = o.clone();
        let mut b = reqwest::Client::builder()
            .user_agent(o.user_agent.clone())
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                let plain_remote = attempt.url().scheme() != "https"
                    && redirects.plain_http(attempt.url()).is_none();
                // Another origin never sees what this client sends: credentials, session and
                // XSRF headers, a re-sent form body (307/308) with a client secret.
                let other_origin = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.origin() != attempt.url().origin());
                if other_origin {
                    let to = attempt.url().origin().ascii_serialization();
                    attempt.error(format!(
                        "redirect to another origin ({to}) refused: credentials are never sent there"
                    ))
                } else if plain_remote {
                    attempt.error("redirect to a plain-http URL not allowed by the options refused")
                } else if attempt.previous().len() >= 5 {
                    attempt.error("too many redirects")
                } else {
                    attempt.follow()
                }
            }));
        if let Some(t) = o.connect_timeout {
            b = b.connect_timeout(t);
        }
        if let Some(t) = o.timeout {
            b = b.timeout(t);
        }
        if let Some(p) = &o.proxy {
            let mut proxy = reqwest::Proxy::all(p.url.clone())
                .map_err(|_| Error::config(format!("invalid proxy {}", redact_url(&p.url))))?;
            if let Some(user) = &p.username {
                use secrecy::ExposeSecret;
                let pw = p.password.as_ref().map_or("", |s| s.expose_secret());
                proxy = proxy.basic_auth(user, pw);
            }
            b = b.proxy(proxy);
        }
        if let Some(pem) = &o.client_identity {
            use secrecy::ExposeSecret;
            let id = reqwest::Identity::from_pem(pem.expose_secret()).map_err(|_| {
                Error::config(
                    "the client certificate is not valid PEM holding a certificate and its private key",
                )
            })?;
            b = b.identity(id);
        }
        for pem in &o.root_certificates {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|_| Error::config("a root certificate is not valid PEM"))?;
            b = b.add_root_certificate(cert);
        }
        let inner = b
            .build()
            .map_err(|e| Error::config("the HTTP client cannot be built").with_source(e))?;
        let limiter = o.rate_limit.map(|r| {
            Arc::new(RateLimiter::direct(
                Quota::per_second(r.per_second).allow_burst(r.burst),
            ))
        });
        Ok(HttpClient {
            system: self.system.unwrap_or_else(|| redact_url(&base)),
            inner,
            semaphore: Arc::new(Semaphore::new(o.max_concurrency.max(1))),
            limiter,
            not_before: Mutex::new(None),
            rng: Mutex::new(StdRng::from_os_rng()),
            sent: AtomicU64::new(0),
            server_date_ms: std::sync::atomic::AtomicI64::new(0),
            base,
            options: self.options,
            auth: self.auth,
            error_parser: self.error_parser,
        })
    }
}

/// An HTTP client bound to one server: base URL, authentication, retries with backoff that
/// honours the server's waits, a concurrency limit and an optional rate limit.
///
/// Every request goes through [`HttpClient::request`] → [`RequestBuilder::send`]. Secrets
/// never appear in its `Debug`, its errors or its `tracing` events: URLs are logged with
/// [`redact_url`], headers are never logged, credentials are marked sensitive.
pub struct HttpClient {
    inner: reqwest::Client,
    base: Url,
    options: ClientOptions,
    auth: Arc<dyn AuthProvider>,
    error_parser: ErrorParser,
    system: String,
    semaphore: Arc<Semaphore>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    not_before: Mutex<Option<Instant>>,
    rng: Mutex<StdRng>,
    sent: AtomicU64,
    /// The latest `Date` an answer carried, in Unix milliseconds (0: none yet).
    server_date_ms: std::sync::atomic::AtomicI64,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("base", &redact_url(&self.base))
            .field("system", &self.system)
            .field("options", &self.options)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// A response that was read whole.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// The body as JSON of type `T`.
    ///
    /// # Errors
    /// [`ErrorKind::Protocol`] naming the path in the payload where it did not fit.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        let de = &mut serde_json::Deserializer::from_slice(&self.body);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let mut path = e.path().to_string();
            let inner = e.into_inner().to_string();
            // A member that is missing is named in the path, not only in the message.
            if let Some(name) = inner
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
            {
                path = if path == "." {
                    name.to_owned()
                } else {
                    format!("{path}.{name}")
                };
            }
            Error::protocol(
                path,
                format!(
                    "the response is not the expected JSON: {}",
                    truncate_chars(&inner, 200)
                ),
            )
            .with_http_status(self.status.as_u16())
        })
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The server's time when it answered, from its `Date` header (one-second precision).
    pub fn date(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.header("date")
            .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
            .map(|d| d.with_timezone(&chrono::Utc))
    }
}

impl HttpClient {
    /// A builder for a client of the server at `base` (paths are joined to it).
    pub fn builder(base: impl Into<String>) -> HttpClientBuilder {
        HttpClientBuilder {
            base: base.into(),
            options: ClientOptions::default(),
            auth: Arc::new(NoAuth),
            error_parser: Arc::new(classify),
            system: None,
        }
    }

    /// The base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The options.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The latest server time an answer of this client carried (its `Date` header), if any.
    /// A request sent after this call is read by the server at or after that time: a change
    /// scan's first page can be judged by it (a page's own `Date` is set after its read).
    pub fn server_time_seen(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        match self.server_date_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => chrono::DateTime::from_timestamp_millis(ms),
        }
    }

    fn note_date(&self, headers: &reqwest::header::HeaderMap) {
        if let Some(t) = headers
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
        {
            self.server_date_ms
                .fetch_max(t.timestamp_millis(), Ordering::Relaxed);
        }
    }

    /// How many requests were sent (attempts, retries included; token and login requests
    /// excluded): for API-call budgets in tests and benches.
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The underlying reqwest client, for adapters' special cases (multipart uploads).
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.inner
    }

    /// A request to `path`, relative to the base URL (`api/now/table/incident`), or an
    /// absolute URL (a `Link` header's next page, an attachment's download link).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder<'_> {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            Url::parse(path)
        } else {
            self.base.join(path.trim_start_matches('/'))
        }
        .map_err(|e| {
            Error::config(format!(
                "invalid request path `{}`: {e}",
                truncate_chars(path, 200)
            ))
        });
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        );
        RequestBuilder {
            client: self,
            operation: "http request",
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            idempotent,
            answers: &[],
        }
    }

    /// A GET request.
    pub fn get(&self, path: &str) -> RequestBuilder<'_> {
        self.request(Method::GET, path)
    }

    /// A POST request.
    pub fn post(&self, path: &str) -> RequestBuilder<'_> {
        self.request(Method::POST, path)
    }

    /// Logs out of the session, if the authentication has one.
    ///
    /// # Errors
    /// What the logout request gave.
    pub async fn close(&self) -> Result<()> {
        self.auth.logout(&self.inner).await
    }

    /// Waits for what the server asked of every request of this client, or, when that wait is
    /// beyond the time this request has left, fails at once without sending: a caller with a
    /// budget is never held past it.
    async fn pace(&self, budget_left: Duration) -> Result<()> {
        let not_before = *self
            .not_before
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(t) = not_before {
            let wait = t.saturating_duration_since(Instant::now());
            if wait > budget_left {
                return Err(Error::new(
                    ErrorKind::RateLimited,
                    format!(
                        "the server asked for a pause of {} s before the next request, more than the {} s this request has left; nothing was sent",
                        wait.as_secs(),
                        budget_left.as_secs()
                    ),
                )
                .with_retry_after(wait));
            }
            tokio::time::sleep_until(t).await;
        }
        if let Some(l) = &self.limiter {
            l.until_ready().await;
        }
        Ok(())
    }

    /// Remembers a wait the server asked for, so that every request of this client honours it;
    /// a wait beyond `RetryConfig::max_server_wait` is clamped to it.
    fn note_pressure(&self, status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
        let asked = server_wait(status, headers, chrono::Utc::now())?;
        let cap = self.options.retry.max_server_wait;
        if asked > cap {
            tracing::warn!(system = %self.system, asked_s = asked.as_secs(), honoured_s = cap.as_secs(), "the server asked for a longer pause than max_server_wait; honouring the cap");
        }
        let wait = asked.min(cap);
        let until = Instant::now() + wait;
        let mut nb = self
            .not_before
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if nb.is_none_or(|t| t < until) {
            *nb = Some(until);
        }
        tracing::info!(system = %self.system, wait_ms = wait.as_millis() as u64, %status, "server asked to slow down");
        Some(wait)
    }

    fn next_backoff(&self, previous: Duration) -> Duration {
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.options.retry.backoff.next_wait(previous, &mut *rng)
    }

    async fn execute(&self, req: RequestBuilder<'_>) -> Result<HttpResponse> {
        let url = req.url?;
        self.options.check_url(&url)?;
        let shown = redact_url(&url);
        let retry = &self.options.retry;
        let started = Instant::now();
        let mut retries = 0u32;
        let mut backoff = retry.backoff.initial;
        let mut renewed = false;
        // A write's deadline (the sync lease, see `workbridge_core::fence`): nothing is sent
        // after it, no retry waits past it, no attempt outlives it.
        let fence = workbridge_core::fence::deadline();
        let budget = |started: Instant| {
            let left = retry.max_elapsed.saturating_sub(started.elapsed());
            fence.map_or(left, |f| {
                left.min(f.saturating_duration_since(Instant::now()))
            })
        };
        loop {
            self.pace(budget(started))
                .await
                .map_err(|e| e.with_system(&self.system))?;
            let permit = self.semaphore.acquire().await.map_err(|_| {
                Error::new(ErrorKind::Unavailable, "the HTTP client is shutting down")
            })?;
            let mut headers = req.headers.clone();
            self.auth.authorize(&self.inner, &mut headers).await?;
            let mut rb = self
                .inner
                .request(req.method.clone(), url.clone())
                .headers(headers);
            if let Some(f) = fence {
                let left = f.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(past_deadline(&req.method, &shown, retries));
                }
                rb = rb.timeout(self.options.timeout.map_or(left, |t| t.min(left)));
            }
            if let Some(body) = &req.body {
                rb = rb.body(body.clone());
            }
            self.sent.fetch_add(1, Ordering::Relaxed);
            let attempt = retries + 1;
            tracing::debug!(system = %self.system, method = %req.method, url = %shown, attempt, "sending");
            let sent_at = Instant::now();
            let failure = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let body = resp.bytes().await;
                    drop(permit);
                    let duration_ms =
                        u64::try_from(sent_at.elapsed().as_millis()).unwrap_or(u64::MAX);
                    let request_id = crate::classify::request_id(&headers).unwrap_or_default();
                    tracing::debug!(system = %self.system, method = %req.method, url = %shown, %status, attempt, duration_ms, request_id = %request_id, "answered");
                    self.note_pressure(status, &headers);
                    self.note_date(&headers);
                    match body {
                        Err(e) => {
                            let e = e.without_url();
                            let err = Error::new(
                                ErrorKind::Unavailable,
                                format!("the response to {} {shown} was cut off ({status}); the request may have been applied", req.method),
                            )
                            .with_maybe_applied(true)
                            .with_http_status(status.as_u16())
                            .with_source(e);
                            if !req.idempotent {
                                return Err(err);
                            }
                            err
                        }
                        Ok(body)
                            if status.is_success()
                                || status.is_redirection()
                                || status.is_informational()
                                || req.answers.contains(&status) =>
                        {
                            return Ok(HttpResponse {
                                status,
                                headers,
                                body,
                            });
                        }
                        Ok(body) => {
                            if status == StatusCode::UNAUTHORIZED && !renewed {
                                renewed = true;
                                if self.auth.renew(&self.inner).await? {
                                    tracing::debug!(system = %self.system, "credentials renewed after 401; sending once more");
                                    continue;
                                }
                            }
                            let mut err = (self.error_parser)(status, &headers, &body)
                                .with_http_status(status.as_u16());
                            if let Some(w) = server_wait(status, &headers, chrono::Utc::now())
                                && err.retry_after().is_none()
                            {
                                err = err.with_retry_after(w);
                            }
                            if !is_retryable_status(status) {
                                return Err(err);
                            }
                            err
                        }
                    }
                }
                Err(e) if e.is_redirect() => {
                    // Refused by the redirect policy (another origin, plain http, a loop): say
                    // why, and never retry.
                    let why = innermost(&e);
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!("{} {shown} was redirected: {why}", req.method),
                    ));
                }
                Err(e) if chain_mentions(&e, "certificate") => {
                    // Retrying does not make a certificate trusted: say it was the certificate.
                    let detail = innermost(&e);
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!(
                            "the TLS certificate of {shown} was refused ({detail}); add the server's CA with ClientOptions::root_certificate"
                        ),
                    ));
                }
                Err(e) => {
                    drop(permit);
                    let connect = e.is_connect();
                    let timeout = e.is_timeout();
                    let e = e.without_url();
                    let what = if connect {
                        format!("cannot connect for {} {shown}", req.method)
                    } else if timeout {
                        format!("{} {shown} timed out; it may have been applied", req.method)
                    } else {
                        format!("{} {shown} failed in transit", req.method)
                    };
                    // Not connected: nothing was sent. Otherwise the request may have reached
                    // the server.
                    let err = Error::new(ErrorKind::Unavailable, what)
                        .with_maybe_applied(!connect)
                        .with_source(e);
                    if !(connect || req.idempotent) {
                        return Err(err);
                    }
                    err
                }
            };
            if retries >= retry.max_retries {
                return Err(failure);
            }
            backoff = self.next_backoff(backoff);
            let wait = backoff.max(
                failure
                    .retry_after()
                    .unwrap_or_default()
                    .min(retry.max_server_wait),
            );
            if started.elapsed() + wait > retry.max_elapsed {
                tracing::warn!(system = %self.system, url = %shown, wait_ms = wait.as_millis() as u64, "giving up: the wait exceeds the time left");
                return Err(failure);
            }
            if fence.is_some_and(|f| Instant::now() + wait >= f) {
                tracing::warn!(system = %self.system, url = %shown, wait_ms = wait.as_millis() as u64, error = %failure, "not retrying: the write's deadline comes first");
                let maybe = failure.maybe_applied();
                return Err(past_deadline(&req.method, &shown, retries + 1)
                    .with_maybe_applied(maybe)
                    .with_source(failure));
            }
            tracing::info!(system = %self.system, method = %req.method, url = %shown, attempt, wait_ms = wait.as_millis() as u64, error = %failure, "retrying");
            tokio::time::sleep(wait).await;
            retries += 1;
        }
    }
}

/// The error of a request not sent because its write's deadline (the sync lease) has passed.
fn past_deadline(method: &Method, shown: &str, sent: u32) -> Error {
    let what = if sent == 0 {
        "nothing was sent".to_owned()
    } else {
        format!("it was sent {sent} time(s) and is not sent again")
    };
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "{method} {shown}: the write's deadline passed (the worker's lease may have run out); {what}"
        ),
    )
}

/// The innermost cause of an error, as text.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        last = s.to_string();
        src = s.source();
    }
    last
}

/// Whether any cause of an error mentions `word` (case-insensitive).
fn chain_mentions(e: &(dyn std::error::Error + 'static), word: &str) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if c.to_string().to_lowercase().contains(word) {
            return true;
        }
        cur = c.source();
    }
    false
}

/// A request being built; [`send`](RequestBuilder::send) runs it with retries.
pub struct RequestBuilder<'a> {
    client: &'a HttpClient,
    operation: &'static str,
    method: Method,
    url: Result<Url>,
    headers: HeaderMap,
    body: Option<Bytes>,
    idempotent: bool,
    /// Statuses that are answers to read, not errors (a bulk write's partial success).
    answers: &'static [StatusCode],
}

impl fmt::Debug for RequestBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field("url", &self.url.as_ref().map(redact_url))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body_len", &self.body.as_ref().map(Bytes::len))
            .field("idempotent", &self.idempotent)
            .finish()
    }
}

impl RequestBuilder<'_> {
    /// Appends query parameters (encoded).
    #[must_use]
    pub fn query<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Self {
        if let Ok(url) = &mut self.url {
            let mut q = url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k.as_ref(), v.as_ref());
            }
        }
        self
    }

    /// Sets a header. An invalid value makes `send` fail with a Config error.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: &str) -> Self {
        match HeaderValue::from_str(value) {
            Ok(v) => {
                self.headers.insert(name, v);
            }
            Err(_) => {
                self.url = Err(Error::config(format!("invalid value for header {name}")));
            }
        }
        self
    }

    /// Sets a JSON body (and `Content-Type: application/json`).
    #[must_use]
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Self {
        self.json_as(value, "application/json")
    }

    /// Sets a JSON body with another media type (`application/json-patch+json`).
    #[must_use]
    pub fn json_as<T: Serialize + ?Sized>(mut self, value: &T, content_type: &str) -> Self {
        match serde_json::to_vec(value) {
            Ok(v) => self.body(v, content_type),
            Err(e) => {
                self.url = Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("the request body cannot be encoded: {e}"),
                ));
                self
            }
        }
    }

    /// Sets a body and its media type.
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>, content_type: &str) -> Self {
        self.body = Some(body.into());
        self.header(CONTENT_TYPE, content_type)
    }

    /// Marks whether sending it twice does no harm (decides whether timeouts are retried).
    #[must_use]
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// Takes these statuses as answers, returned for the caller to read, not as errors to
    /// classify and retry: a bulk write's `409` with a result per entity.
    #[must_use]
    pub fn answers(mut self, statuses: &'static [StatusCode]) -> Self {
        self.answers = statuses;
        self
    }

    /// Names the operation in errors (`create`, `changes`, ...).
    #[must_use]
    pub fn operation(mut self, op: &'static str) -> Self {
        self.operation = op;
        self
    }

    /// Sends it, with retries; a non-success status is an error.
    ///
    /// # Errors
    /// The classified error of the last attempt, naming the operation and the system.
    pub async fn send(self) -> Result<HttpResponse> {
        let (client, op) = (self.client, self.operation);
        client
            .execute(self)
            .await
            .map_err(|e| e.with_operation(op).with_system(&client.system))
    }

    /// Sends it and reads the body as JSON.
    ///
    /// # Errors
    /// As [`send`](RequestBuilder::send), or [`ErrorKind::Protocol`] naming the path where the
    /// body did not fit `T`.
    pub async fn send_json<T: DeserializeOwned>(self) -> Result<T> {
        let (system, op) = (self.client.system.clone(), self.operation);
        self.send()
            .await?
            .json()
            .map_err(|e| e.with_operation(op).with_system(system))
    }
}
