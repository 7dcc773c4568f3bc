//! Authentication providers: basic, bearer / PAT, OAuth2 password and refresh grants, and a
//! cookie session hook for login-based APIs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, COOKIE, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;
use workbridge_core::{Error, ErrorKind, Result};

use crate::classify::body_snippet;
use crate::redact::redact_url;

/// Adds credentials to requests, and renews them when the server says they expired.
///
/// [`HttpClient`](crate::HttpClient) calls [`authorize`](AuthProvider::authorize) before every
/// attempt, and on a 401 calls [`renew`](AuthProvider::renew) once: if that returns true the
/// request is sent once more; a second 401 is returned as
/// [`ErrorKind::Unauthenticated`]. There is never a loop of renewals.
#[async_trait]
pub trait AuthProvider: fmt::Debug + Send + Sync {
    /// Adds credentials to the headers of a request. `client` is a plain client (no retries)
    /// for providers that must fetch a token or log in first.
    async fn authorize(&self, client: &reqwest::Client, headers: &mut HeaderMap) -> Result<()>;

    /// Called after a 401: renew the credentials if possible. True when the request should be
    /// sent once more.
    async fn renew(&self, _client: &reqwest::Client) -> Result<bool> {
        Ok(false)
    }

    /// Ends the session, if the provider has one.
    async fn logout(&self, _client: &reqwest::Client) -> Result<()> {
        Ok(())
    }
}

fn sensitive(value: &str) -> Result<HeaderValue> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        Error::config("a credential contains characters not allowed in an HTTP header")
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// No credentials.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAuth;

#[async_trait]
impl AuthProvider for NoAuth {
    async fn authorize(&self, _: &reqwest::Client, _: &mut HeaderMap) -> Result<()> {
        Ok(())
    }
}

/// HTTP basic authentication (ServiceNow basic, Azure DevOps PAT, ALM `authenticate`).
#[derive(Clone)]
pub struct BasicAuth {
    username: String,
    password: SecretString,
}

impl BasicAuth {
    /// A user and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        BasicAuth {
            username: username.into(),
            password: SecretString::from(password.into()),
        }
    }

    /// An Azure DevOps personal access token: basic authentication with an empty user name.
    pub fn pat(token: impl Into<String>) -> Self {
        BasicAuth::new("", token)
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The `Authorization` header value.
    pub fn header_value(&self) -> Result<HeaderValue> {
        use base64::Engine as _;
        let raw = format!("{}:{}", self.username, self.password.expose_secret());
        let encoded = base64::engine::general_purpose::STANDARD.encode(raw.as_bytes());
        sensitive(&format!("Basic {encoded}"))
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"REDACTED")
            .finish()
    }
}

#[async_trait]
impl AuthProvider for BasicAuth {
    async fn authorize(&self, _: &reqwest::Client, headers: &mut HeaderMap) -> Result<()> {
        headers.insert(AUTHORIZATION, self.header_value()?);
        Ok(())
    }
}

/// A bearer token (an OAuth access token obtained elsewhere, an Azure DevOps token).
#[derive(Clone)]
pub struct BearerAuth {
    token: SecretString,
}

impl BearerAuth {
    /// A token.
    pub fn new(token: impl Into<String>) -> Self {
        BearerAuth {
            token: SecretString::from(token.into()),
        }
    }
}

impl fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuth")
            .field("token", &"REDACTED")
            .finish()
    }
}

#[async_trait]
impl AuthProvider for BearerAuth {
    async fn authorize(&self, _: &reqwest::Client, headers: &mut HeaderMap) -> Result<()> {
        headers.insert(
            AUTHORIZATION,
            sensitive(&format!("Bearer {}", self.token.expose_secret()))?,
        );
        Ok(())
    }
}

/// Where a [`TokenAuth`] gets bearer tokens: a Microsoft Entra ID client, a managed identity
/// endpoint, a secrets vault, a CLI — whatever the deployment signs in with.
#[async_trait]
pub trait TokenSource: fmt::Debug + Send + Sync {
    /// A fresh token, and how long it stays valid when known (`expires_in`).
    async fn token(&self) -> Result<(SecretString, Option<Duration>)>;
}

/// A bearer token from a [`TokenSource`]: fetched on first use, fetched again shortly before
/// it expires (`refresh_margin`, default 5 minutes) and once after a 401. An Entra ID token
/// lives about an hour; a service running for days gets a new one each time.
pub struct TokenAuth {
    source: Arc<dyn TokenSource>,
    refresh_margin: Duration,
    token: Mutex<Option<(SecretString, Option<Instant>)>>,
}

impl fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAuth")
            .field("source", &self.source)
            .field("refresh_margin", &self.refresh_margin)
            .finish_non_exhaustive()
    }
}

impl TokenAuth {
    /// Tokens from `source`.
    pub fn new(source: Arc<dyn TokenSource>) -> Self {
        TokenAuth {
            source,
            refresh_margin: Duration::from_secs(300),
            token: Mutex::new(None),
        }
    }

    /// How long before its expiry a token is replaced.
    #[must_use]
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }
}

#[async_trait]
impl AuthProvider for TokenAuth {
    async fn authorize(&self, _: &reqwest::Client, headers: &mut HeaderMap) -> Result<()> {
        let mut held = self.token.lock().await;
        let stale = match held.as_ref() {
            None => true,
            Some((_, Some(until))) => Instant::now() + self.refresh_margin >= *until,
            Some((_, None)) => false,
        };
        if stale {
            let (token, ttl) = self.source.token().await?;
            *held = Some((token, ttl.map(|t| Instant::now() + t)));
        }
        if let Some((token, _)) = held.as_ref() {
            headers.insert(
                AUTHORIZATION,
                sensitive(&format!("Bearer {}", token.expose_secret()))?,
            );
        }
        Ok(())
    }

    async fn renew(&self, _: &reqwest::Client) -> Result<bool> {
        // The next `authorize` asks the source again.
        *self.token.lock().await = None;
        Ok(true)
    }
}

/// How an [`OAuth2`] provider obtains its first token.
#[derive(Clone)]
pub enum OAuth2Grant {
    /// Resource-owner password grant (ServiceNow `grant_type=password`).
    Password {
        /// The user.
        username: String,
        /// The user's password.
        password: SecretString,
    },
    /// Start from a refresh token obtained elsewhere.
    RefreshToken(SecretString),
}

impl fmt::Debug for OAuth2Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OAuth2Grant::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &"REDACTED")
                .finish(),
            OAuth2Grant::RefreshToken(_) => {
                f.debug_tuple("RefreshToken").field(&"REDACTED").finish()
            }
        }
    }
}

struct Token {
    access: SecretString,
    refresh: Option<SecretString>,
    expires_at: Option<Instant>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// OAuth2 with the password and refresh-token grants (ServiceNow `/oauth_token.do`).
///
/// The access token is obtained on first use, renewed with the refresh token shortly before it
/// expires (`refresh_margin`, default 60 s) and once after a 401; when the refresh token is
/// refused, the password grant is used again if configured.
pub struct OAuth2 {
    token_url: Url,
    client_id: String,
    client_secret: SecretString,
    grant: OAuth2Grant,
    refresh_margin: Duration,
    token: Mutex<Option<Token>>,
}

impl fmt::Debug for OAuth2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2")
            .field("token_url", &redact_url(&self.token_url))
            .field("client_id", &self.client_id)
            .field("client_secret", &"REDACTED")
            .field("grant", &self.grant)
            .finish_non_exhaustive()
    }
}

impl OAuth2 {
    /// A provider fetching tokens from `token_url`.
    pub fn new(
        token_url: Url,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        grant: OAuth2Grant,
    ) -> Self {
        OAuth2 {
            token_url,
            client_id: client_id.into(),
            client_secret: SecretString::from(client_secret.into()),
            grant,
            refresh_margin: Duration::from_secs(60),
            token: Mutex::new(None),
        }
    }

    /// The password grant.
    pub fn password(
        token_url: Url,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        OAuth2::new(
            token_url,
            client_id,
            client_secret,
            OAuth2Grant::Password {
                username: username.into(),
                password: SecretString::from(password.into()),
            },
        )
    }

    /// Renew this long before the token expires.
    #[must_use]
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    async fn request_token(
        &self,
        client: &reqwest::Client,
        form: &[(&str, &str)],
    ) -> Result<Token> {
        let mut params: Vec<(&str, &str)> = vec![
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
        ];
        params.extend_from_slice(form);
        let grant = form
            .iter()
            .find(|(k, _)| *k == "grant_type")
            .map_or("", |(_, v)| *v);
        let resp = client
            .post(self.token_url.clone())
            .form(&params)
            .send()
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    "the OAuth token endpoint cannot be reached",
                )
                .with_source(e.without_url())
                .with_operation("oauth token")
            })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                "the OAuth token response was cut off",
            )
            .with_source(e.without_url())
        })?;
        if !status.is_success() {
            let kind = if status.is_server_error() {
                ErrorKind::Unavailable
            } else {
                ErrorKind::Unauthenticated
            };
            return Err(Error::new(
                kind,
                format!(
                    "the OAuth {grant} grant was refused with {status}: {}",
                    body_snippet(&body)
                ),
            )
            .with_http_status(status.as_u16())
            .with_operation("oauth token"));
        }
        let de = &mut serde_json::Deserializer::from_slice(&body);
        let parsed: TokenResponse = serde_path_to_error::deserialize(de).map_err(|e| {
            Error::protocol(
                e.path().to_string(),
                "the OAuth token response is not a token",
            )
            .with_operation("oauth token")
        })?;
        let expires_in = parsed.expires_in.as_ref().and_then(|v| match v {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        });
        Ok(Token {
            access: SecretString::from(parsed.access_token),
            // A refresh grant may answer without a new refresh token: the caller keeps the old one.
            refresh: parsed.refresh_token.map(SecretString::from),
            expires_at: expires_in.map(|s| Instant::now() + Duration::from_secs(s)),
        })
    }

    async fn obtain(&self, client: &reqwest::Client, previous: Option<&Token>) -> Result<Token> {
        let refresh = previous
            .and_then(|t| t.refresh.as_ref())
            .or(match &self.grant {
                OAuth2Grant::RefreshToken(r) => Some(r),
                OAuth2Grant::Password { .. } => None,
            });
        if let Some(r) = refresh {
            let attempt = self
                .request_token(
                    client,
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", r.expose_secret()),
                    ],
                )
                .await
                .map(|mut t| {
                    // A refresh grant may answer without a new refresh token: keep the old one.
                    t.refresh.get_or_insert_with(|| r.clone());
                    t
                });
            match (&attempt, &self.grant) {
                (Err(e), OAuth2Grant::Password { .. })
                    if e.kind() == ErrorKind::Unauthenticated =>
                {
                    tracing::debug!("refresh token refused; using the password grant");
                }
                _ => return attempt,
            }
        }
        match &self.grant {
            OAuth2Grant::Password { username, password } => {
                self.request_token(
                    client,
                    &[
                        ("grant_type", "password"),
                        ("username", username.as_str()),
                        ("password", password.expose_secret()),
                    ],
                )
                .await
            }
            OAuth2Grant::RefreshToken(_) => Err(Error::new(
                ErrorKind::Unauthenticated,
                "the refresh token was refused and no password grant is configured",
            )),
        }
    }
}

#[async_trait]
impl AuthProvider for OAuth2 {
    async fn authorize(&self, client: &reqwest::Client, headers: &mut HeaderMap) -> Result<()> {
        let mut slot = self.token.lock().await;
        let fresh = slot.as_ref().is_some_and(|t| {
            t.expires_at
                .is_none_or(|at| Instant::now() + self.refresh_margin < at)
        });
        if !fresh {
            let token = self.obtain(client, slot.as_ref()).await?;
            *slot = Some(token);
        }
        let access = slot
            .as_ref()
            .map(|t| t.access.expose_secret().to_owned())
            .unwrap_or_default();
        headers.insert(AUTHORIZATION, sensitive(&format!("Bearer {access}"))?);
        Ok(())
    }

    async fn renew(&self, client: &reqwest::Client) -> Result<bool> {
        let mut slot = self.token.lock().await;
        let token = self.obtain(client, slot.as_ref()).await?;
        *slot = Some(token);
        Ok(true)
    }
}

/// What a login produced: cookies and headers to send on every request. `Debug` shows their
/// names only.
#[derive(Clone, Default)]
pub struct Session {
    cookies: Vec<(String, SecretString)>,
    headers: Vec<(HeaderName, SecretString)>,
}

impl Session {
    /// An empty session.
    pub fn new() -> Self {
        Session::default()
    }

    /// Adds a cookie.
    #[must_use]
    pub fn cookie(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.cookies
            .push((name.into(), SecretString::from(value.into())));
        self
    }

    /// Adds a header (such as `X-XSRF-TOKEN`).
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, SecretString::from(value.into())));
        self
    }

    /// Reads every `Set-Cookie` of a response into the session (name and value only).
    #[must_use]
    pub fn with_set_cookies(mut self, headers: &HeaderMap) -> Self {
        for v in headers.get_all(reqwest::header::SET_COOKIE) {
            let Ok(s) = v.to_str() else { continue };
            let pair = s.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                let name = name.trim().to_owned();
                self.cookies.retain(|(n, _)| *n != name);
                self.cookies
                    .push((name, SecretString::from(value.trim().to_owned())));
            }
        }
        self
    }

    /// The value of a cookie, to derive a header from (ALM copies `XSRF-TOKEN` into
    /// `X-XSRF-TOKEN`).
    pub fn cookie_value(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.expose_secret())
    }

    fn apply(&self, headers: &mut HeaderMap) -> Result<()> {
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(n, v)| format!("{n}={}", v.expose_secret()))
                .collect::<Vec<_>>()
                .join("; ");
            headers.insert(COOKIE, sensitive(&cookie)?);
        }
        for (name, value) in &self.headers {
            headers.insert(name.clone(), sensitive(value.expose_secret())?);
        }
        Ok(())
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field(
                "cookies",
                &self.cookies.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// How a cookie session is opened and closed: implemented by adapters (the ALM adapter logs
/// in with `authentication-point/authenticate` and `rest/site-session`).
#[async_trait]
pub trait SessionLogin: fmt::Debug + Send + Sync {
    /// Logs in and returns the session.
    async fn login(&self, client: &reqwest::Client) -> Result<Session>;

    /// Logs out.
    async fn logout(&self, _client: &reqwest::Client, _session: &Session) -> Result<()> {
        Ok(())
    }
}

/// A cookie session: logs in on first use, sends the session's cookies and headers on every
/// request, logs in again once when the server answers 401 (session expired), and logs out on
/// [`HttpClient::close`](crate::HttpClient::close).
#[derive(Debug)]
pub struct CookieSession {
    login: Arc<dyn SessionLogin>,
    session: Mutex<Option<Session>>,
}

impl CookieSession {
    /// A session opened by `login`.
    pub fn new(login: Arc<dyn SessionLogin>) -> Self {
        CookieSession {
            login,
            session: Mutex::new(None),
        }
    }
}

#[async_trait]
impl AuthProvider for CookieSession {
    async fn authorize(&self, client: &reqwest::Client, headers: &mut HeaderMap) -> Result<()> {
        let mut slot = self.session.lock().await;
        if slot.is_none() {
            *slot = Some(self.login.login(client).await?);
        }
        slot.as_ref().map_or(Ok(()), |s| s.apply(headers))
    }

    async fn renew(&self, client: &reqwest::Client) -> Result<bool> {
        let mut slot = self.session.lock().await;
        *slot = Some(self.login.login(client).await?);
        Ok(true)
    }

    async fn logout(&self, client: &reqwest::Client) -> Result<()> {
        let session = self.session.lock().await.take();
        match session {
            Some(s) => self.login.logout(client, &s).await,
            None => Ok(()),
        }
    }
}
