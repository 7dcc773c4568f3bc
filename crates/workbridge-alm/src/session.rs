//! The ALM session: login, site session, XSRF header, logout.

use std::fmt;

use async_trait::async_trait;
use secrecy::ExposeSecret;
use workbridge_core::{Error, ErrorKind, Result};
use workbridge_http::header::{HeaderMap, HeaderName};
use workbridge_http::{Session, SessionLogin, body_snippet};

use crate::config::{AlmAuth, LoginFlow};

/// Opens and closes ALM sessions for [`CookieSession`](workbridge_http::CookieSession).
pub(crate) struct AlmLogin {
    pub(crate) qcbin: String,
    pub(crate) auth: AlmAuth,
    pub(crate) flow: LoginFlow,
}

impl fmt::Debug for AlmLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlmLogin")
            .field("qcbin", &self.qcbin)
            .field("auth", &self.auth)
            .field("flow", &self.flow)
            .finish()
    }
}

fn failed(step: &str, status: reqwest::StatusCode, body: &[u8]) -> Error {
    let kind = match status.as_u16() {
        401 => ErrorKind::Unauthenticated,
        403 => ErrorKind::PermissionDenied,
        s if s >= 500 => ErrorKind::Unavailable,
        _ => ErrorKind::Unexpected,
    };
    Error::new(
        kind,
        format!(
            "ALM {step} was refused with {status}: {}",
            body_snippet(body)
        ),
    )
    .with_http_status(status.as_u16())
    .with_operation("login")
}

fn unreachable_err(step: &str, e: reqwest::Error) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("ALM {step} cannot be reached"),
    )
    .with_source(e.without_url())
    .with_operation("login")
}

impl AlmLogin {
    async fn step(&self, name: &str, rb: reqwest::RequestBuilder) -> Result<HeaderMap> {
        let resp = rb.send().await.map_err(|e| unreachable_err(name, e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap_or_default();
        if !status.is_success() {
            return Err(failed(name, status, &body));
        }
        Ok(headers)
    }
}

#[async_trait]
impl SessionLogin for AlmLogin {
    async fn login(&self, client: &reqwest::Client) -> Result<Session> {
        let q = &self.qcbin;
        let mut session = Session::new();
        match &self.auth {
            AlmAuth::ApiKey { client_id, secret } => {
                let body =
                    serde_json::json!({"clientId": client_id, "secret": secret.expose_secret()})
                        .to_string();
                let h = self
                    .step(
                        "API-key login",
                        client
                            .post(format!("{q}/rest/oauth2/login"))
                            .header("Content-Type", "application/json")
                            .body(body),
                    )
                    .await?;
                session = session.with_set_cookies(&h);
            }
            AlmAuth::Password { user, password } => {
                let h = match self.flow {
                    LoginFlow::AlmAuthenticate => {
                        let esc = |s: &str| quick_xml::escape::escape(s).into_owned();
                        let body = format!(
                            "<alm-authentication><user>{}</user><password>{}</password></alm-authentication>",
                            esc(user),
                            esc(password.expose_secret())
                        );
                        self.step(
                            "authentication",
                            client
                                .post(format!("{q}/authentication-point/alm-authenticate"))
                                .header("Content-Type", "application/xml")
                                .body(body),
                        )
                        .await?
                    }
                    LoginFlow::Basic => {
                        self.step(
                            "authentication",
                            client
                                .get(format!("{q}/authentication-point/authenticate"))
                                .basic_auth(user, Some(password.expose_secret())),
                        )
                        .await?
                    }
                };
                session = session.with_set_cookies(&h);
                let cookie = session_cookie_header(&session);
                let h = self
                    .step(
                        "site session",
                        client
                            .post(format!("{q}/rest/site-session"))
                            .header("Cookie", cookie)
                            .header("Content-Type", "application/xml")
                            .body("<session-parameters><client-type>workbridge</client-type></session-parameters>"),
                    )
                    .await?;
                session = session.with_set_cookies(&h);
            }
            AlmAuth::Custom(_) => {
                return Err(Error::config(
                    "a custom authentication provider signs requests itself; the adapter's login does not run",
                )
                .with_operation("login"));
            }
        }
        if session.cookie_value("LWSSO_COOKIE_KEY").is_none() {
            return Err(Error::new(
                ErrorKind::Protocol,
                "ALM login set no LWSSO_COOKIE_KEY cookie",
            )
            .with_operation("login"));
        }
        if let Some(x) = session.cookie_value("XSRF-TOKEN").map(ToOwned::to_owned) {
            session = session.header(HeaderName::from_static("x-xsrf-token"), x);
        }
        Ok(session)
    }

    async fn logout(&self, client: &reqwest::Client, session: &Session) -> Result<()> {
        let cookie = session_cookie_header(session);
        let xsrf = session
            .cookie_value("XSRF-TOKEN")
            .unwrap_or_default()
            .to_owned();
        let q = &self.qcbin;
        let _ = client
            .delete(format!("{q}/rest/site-session"))
            .header("Cookie", &cookie)
            .header("X-XSRF-TOKEN", &xsrf)
            .send()
            .await;
        self.step(
            "logout",
            client
                .post(format!("{q}/authentication-point/logout"))
                .header("Cookie", cookie)
                .header("X-XSRF-TOKEN", xsrf),
        )
        .await
        .map(|_| ())
    }
}

fn session_cookie_header(s: &Session) -> String {
    [
        "LWSSO_COOKIE_KEY",
        "QCSession",
        "ALM_USER",
        "XSRF-TOKEN",
        "JSESSIONID",
    ]
    .iter()
    .filter_map(|n| s.cookie_value(n).map(|v| format!("{n}={v}")))
    .collect::<Vec<_>>()
    .join("; ")
}
