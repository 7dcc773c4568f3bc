//! Authentication: Basic and bearer credentials, ACL roles, and the OAuth token endpoint
//! (password and refresh-token grants).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use chrono::TimeDelta;
use rand::Rng;
use serde_json::{Value, json};

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::common::Credential;

/// Who sent the request.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) SimUser);

pub(crate) fn unauthenticated() -> Response {
    sn_error(
        StatusCode::UNAUTHORIZED,
        "User Not Authenticated",
        Some("Required to provide Auth information"),
    )
}

pub(crate) async fn authenticate(
    State(sn): State<Arc<Sn>>,
    mut req: Request,
    next: Next,
) -> Response {
    let user = match Credential::of(req.headers()) {
        Some(Credential::Basic { user, password }) => lock(&sn.users)
            .iter()
            .find(|x| x.user_name == user && x.password == password)
            .cloned(),
        Some(Credential::Bearer(token)) => {
            let now = sn.now();
            let name = lock(&sn.tokens)
                .get(&token)
                .filter(|(_, exp)| *exp > now)
                .map(|(u, _)| u.clone());
            name.and_then(|n| lock(&sn.users).iter().find(|x| x.user_name == n).cloned())
        }
        None => None,
    };
    let Some(user) = user else {
        return unauthenticated();
    };
    if !user.can_read() {
        return sn_error(
            StatusCode::FORBIDDEN,
            "Insufficient rights to query records",
            Some("Not authorized"),
        );
    }
    req.extensions_mut().insert(Caller(user));
    next.run(req).await
}

pub(crate) async fn oauth_token(
    State(sn): State<Arc<Sn>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let denied = || {
        json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error_description": "access_denied", "error": "server_error"}),
        )
    };
    let form_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if !form_ok {
        return denied();
    }
    let params: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let p = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
    if !sn
        .oauth_clients
        .iter()
        .any(|(id, secret)| id == p("client_id") && secret == p("client_secret"))
    {
        return denied();
    }
    let (user, issue_refresh) = match p("grant_type") {
        "password" => {
            let ok = lock(&sn.users)
                .iter()
                .any(|u| u.user_name == p("username") && u.password == p("password"));
            if !ok {
                return denied();
            }
            (p("username").to_owned(), true)
        }
        "refresh_token" => match lock(&sn.refresh).get(p("refresh_token")) {
            Some(u) => (u.clone(), false),
            None => return denied(),
        },
        _ => return denied(),
    };
    let token = random_token();
    let lifetime = sn.config.token_lifetime;
    let expires = sn.now() + TimeDelta::from_std(lifetime).unwrap_or(TimeDelta::minutes(30));
    lock(&sn.tokens).insert(token.clone(), (user.clone(), expires));
    let mut body = json!({
        "access_token": token,
        "scope": "useraccount",
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs().saturating_sub(1),
    });
    if issue_refresh {
        let refresh = random_token();
        lock(&sn.refresh).insert(refresh.clone(), user);
        body["refresh_token"] = Value::String(refresh);
    }
    json_response(StatusCode::OK, &body)
}

pub(crate) fn random_token() -> String {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
    (0..86)
        .map(|_| {
            let c: u8 = rng.random_range(0..62);
            char::from(match c {
                0..=9 => b'0' + c,
                10..=35 => b'a' + c - 10,
                _ => b'A' + c - 36,
            })
        })
        .collect()
}
