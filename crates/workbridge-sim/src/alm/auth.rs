//! Authentication and sessions: LWSSO cookies from basic, `alm-authenticate` and API-key
//! logins, the site session with its XSRF token, idle expiry and logout.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::common::Credential;

/// The cookies a request carries, by name.
pub(crate) fn cookies(headers: &HeaderMap) -> HashMap<String, String> {
    axum_extra::extract::CookieJar::from_headers(headers)
        .iter()
        .map(|c| (c.name().to_owned(), c.value().to_owned()))
        .collect()
}

pub(crate) fn set_cookie(r: &mut Response, name: &str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("{name}={value}; Path=/qcbin; HTTPOnly")) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

pub(crate) fn unauthenticated(headers: &HeaderMap, raw: Option<&str>, url: &str) -> Response {
    let mut r = qc_error(
        wants(headers, raw),
        StatusCode::UNAUTHORIZED,
        "qccore.general-error",
        "Authentication failed. Browser based authentication is not supported",
    );
    if let Ok(v) =
        HeaderValue::from_str(&format!("LWSSO realm=\"{url}/qcbin/authentication-point\""))
    {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// The session of a project call, or the error response.
pub(crate) fn session_of(
    alm: &Alm,
    st: &mut State_,
    headers: &HeaderMap,
    raw: Option<&str>,
    method: &Method,
    host: &str,
) -> Result<(String, String), Response> {
    let fmt = wants(headers, raw);
    let c = cookies(headers);
    let Some(lw) = c.get("LWSSO_COOKIE_KEY") else {
        return Err(unauthenticated(headers, raw, host));
    };
    match st.lwsso.get(lw) {
        None => return Err(unauthenticated(headers, raw, host)),
        Some((_, true)) => {
            return Err(qc_error(
                fmt,
                StatusCode::INTERNAL_SERVER_ERROR,
                "qccore.general-error",
                "TokenId is invalid because it has logged out",
            ));
        }
        Some(_) => {}
    }
    let now = alm.control.clock.now();
    let Some(qs) = c.get("QCSession").cloned() else {
        return Err(qc_error(
            fmt,
            StatusCode::UNAUTHORIZED,
            "qccore.session-has-expired",
            "Session has expired or was not created: open a site session",
        ));
    };
    let idle = alm.config.idle;
    // The server ends idle sessions on its own, and with them their locks ("When a session
    // ends, all locks are released": the REST reference's logout page): a client that died
    // holding a lock blocks the entity only until its session would have expired.
    st.sessions.retain(|_, s| now - s.last_used <= idle);
    let State_ {
        sessions, locks, ..
    } = &mut *st;
    locks.retain(|_, holder| sessions.contains_key(holder));
    if !st.sessions.contains_key(&qs) {
        return Err(qc_error(
            fmt,
            StatusCode::UNAUTHORIZED,
            "qccore.session-has-expired",
            "Session has expired",
        ));
    }
    let s = st
        .sessions
        .get_mut(&qs)
        .ok_or_else(|| unauthenticated(headers, raw, host))?;
    if alm.config.version >= AlmVersion::V16 && method != Method::GET {
        let sent = headers
            .get("x-xsrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if sent != s.xsrf {
            return Err(qc_error(
                fmt,
                StatusCode::UNAUTHORIZED,
                "qccore.general-error",
                "Unauthorized request. For more details see XSRF Token section in REST API documentation.",
            ));
        }
    }
    s.last_used = now;
    Ok((qs, s.user.clone()))
}

pub(crate) fn issue_lwsso(alm: &Alm, user: &str) -> (String, Response) {
    let token = alm.token();
    lock(&alm.st)
        .lwsso
        .insert(token.clone(), (user.to_owned(), false));
    let mut r = StatusCode::OK.into_response();
    set_cookie(&mut r, "LWSSO_COOKIE_KEY", &token);
    (token, r)
}

pub(crate) async fn is_authenticated(
    State(alm): State<Arc<Alm>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let c = cookies(&headers);
    let user = c.get("LWSSO_COOKIE_KEY").and_then(|t| {
        lock(&alm.st)
            .lwsso
            .get(t)
            .filter(|(_, out)| !out)
            .map(|(u, _)| u.clone())
    });
    match user {
        Some(u) => {
            if alm.config.version >= AlmVersion::V25 && wants(&headers, raw.as_deref()) == Fmt::Json
            {
                return qc_error(
                    Fmt::Json,
                    StatusCode::NOT_ACCEPTABLE,
                    "qccore.general-error",
                    "Not acceptable",
                );
            }
            typed(
                StatusCode::OK,
                format!(
                    "<AuthenticationInfo><Username>{}</Username></AuthenticationInfo>",
                    xml_escape(&u)
                ),
                "application/xml",
            )
        }
        None => unauthenticated(&headers, raw.as_deref(), &host_of(&headers)),
    }
}

pub(crate) async fn authenticate(State(alm): State<Arc<Alm>>, headers: HeaderMap) -> Response {
    let user = match Credential::of(&headers) {
        Some(Credential::Basic { user, password }) => Some((user, password)),
        _ => None,
    }
    .filter(|(u, p)| alm.config.users.iter().any(|(n, pw, _)| n == u && pw == p));
    match user {
        Some((u, _)) => issue_lwsso(&alm, &u).1,
        None => {
            let mut r = qc_error(
                Fmt::Html,
                StatusCode::UNAUTHORIZED,
                "qccore.general-error",
                "Authentication failed",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ALM\""),
            );
            r
        }
    }
}

pub(crate) async fn alm_authenticate(
    State(alm): State<Arc<Alm>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body);
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (user, password) = if ct.contains("json") {
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let a = &v["alm-authentication"];
        (
            a["user"].as_str().unwrap_or_default().to_owned(),
            a["password"].as_str().unwrap_or_default().to_owned(),
        )
    } else {
        let between = |tag: &str| -> String {
            let open = format!("<{tag}>");
            let close = format!("</{tag}>");
            text.find(&open)
                .and_then(|s| {
                    text[s + open.len()..]
                        .find(&close)
                        .map(|e| text[s + open.len()..s + open.len() + e].to_owned())
                })
                .map(|v| {
                    quick_xml::escape::unescape(&v)
                        .map(|x| x.into_owned())
                        .unwrap_or(v)
                })
                .unwrap_or_default()
        };
        (between("user"), between("password"))
    };
    if !alm
        .config
        .users
        .iter()
        .any(|(n, pw, _)| *n == user && *pw == password)
    {
        let mut r = qc_error(
            wants(&headers, None),
            StatusCode::UNAUTHORIZED,
            "qccore.general-error",
            "Authentication failed",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("ALMAUTH"),
        );
        return r;
    }
    let (_, mut r) = issue_lwsso(&alm, &user);
    *r.status_mut() = StatusCode::CREATED;
    r
}

pub(crate) async fn oauth_login(State(alm): State<Arc<Alm>>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (id, secret) = (
        v["clientId"].as_str().unwrap_or_default(),
        v["secret"].as_str().unwrap_or_default(),
    );
    let Some((_, _, user, active)) = alm
        .config
        .api_keys
        .iter()
        .find(|(i, s, ..)| i == id && s == secret)
        .cloned()
    else {
        return qc_error(
            Fmt::Json,
            StatusCode::UNAUTHORIZED,
            "qccore.general-error",
            "Authentication failed",
        );
    };
    if !active {
        return qc_error(
            Fmt::Json,
            StatusCode::FORBIDDEN,
            "qccore.operation-forbidden",
            "The client id is not active",
        );
    }
    let (token, mut r) = issue_lwsso(&alm, &user);
    let _ = token;
    let (qs, xsrf) = open_session(&alm, &user);
    set_cookie(&mut r, "QCSession", &qs);
    set_cookie(&mut r, "ALM_USER", &user);
    set_cookie(&mut r, "XSRF-TOKEN", &xsrf);
    set_cookie(&mut r, "JSESSIONID", &alm.token());
    r
}

pub(crate) fn open_session(alm: &Alm, user: &str) -> (String, String) {
    let qs = alm.token();
    let xsrf = alm.token();
    lock(&alm.st).sessions.insert(
        qs.clone(),
        Session {
            user: user.to_owned(),
            xsrf: xsrf.clone(),
            last_used: alm.control.clock.now(),
        },
    );
    (qs, xsrf)
}

pub(crate) async fn site_session(
    State(alm): State<Arc<Alm>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let c = cookies(&headers);
    let url = host_of(&headers);
    let lw_user = c
        .get("LWSSO_COOKIE_KEY")
        .and_then(|t| lock(&alm.st).lwsso.get(t).cloned());
    let user = match lw_user {
        None => return unauthenticated(&headers, raw.as_deref(), &url),
        Some((_, true)) => {
            return qc_error(
                wants(&headers, raw.as_deref()),
                StatusCode::INTERNAL_SERVER_ERROR,
                "qccore.general-error",
                "TokenId is invalid because it has logged out",
            );
        }
        Some((u, false)) => u,
    };
    match method {
        Method::POST => {
            let (qs, xsrf) = open_session(&alm, &user);
            let mut r = StatusCode::CREATED.into_response();
            set_cookie(&mut r, "QCSession", &qs);
            set_cookie(&mut r, "ALM_USER", &user);
            set_cookie(&mut r, "XSRF-TOKEN", &xsrf);
            r
        }
        Method::GET | Method::PUT => {
            let mut st = lock(&alm.st);
            match session_of(&alm, &mut st, &headers, raw.as_deref(), &Method::GET, &url) {
                Ok(_) => typed(
                    StatusCode::OK,
                    "<SiteSession><TimeoutInMinutes>60</TimeoutInMinutes></SiteSession>".into(),
                    "application/xml",
                ),
                Err(r) => r,
            }
        }
        Method::DELETE => {
            let mut st = lock(&alm.st);
            let (qs, _) = or_answer!(session_of(
                &alm,
                &mut st,
                &headers,
                raw.as_deref(),
                &Method::DELETE,
                &url,
            ));
            st.sessions.remove(&qs);
            st.locks.retain(|_, holder| *holder != qs);
            st.checked_out.retain(|_, holder| *holder != qs);
            let mut r = StatusCode::OK.into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                HeaderValue::from_static(
                    "QCSession=\"\"; Expires=Thu, 01-Jan-1970 00:00:10 GMT; Path=/qcbin",
                ),
            );
            r
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

pub(crate) async fn logout(
    State(alm): State<Arc<Alm>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if method == Method::GET && alm.config.version >= AlmVersion::V25 {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let c = cookies(&headers);
    if let Some(t) = c.get("LWSSO_COOKIE_KEY") {
        let mut st = lock(&alm.st);
        if let Some(e) = st.lwsso.get_mut(t) {
            e.1 = true;
        }
        if let Some(qs) = c.get("QCSession") {
            st.sessions.remove(qs);
            st.locks.retain(|_, holder| holder != qs);
        }
    }
    let mut r = StatusCode::OK.into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "LWSSO_COOKIE_KEY=\"\"; Expires=Thu, 01-Jan-1970 00:00:10 GMT; Path=/",
        ),
    );
    r
}
