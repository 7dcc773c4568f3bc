//! Authentication: PATs over Basic, bearer tokens, and the FedAuth sign-in page that answers
//! a missing or bad credential.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::common::Credential;

pub(crate) async fn authenticate(
    State(ado): State<Arc<Ado>>,
    req: Request,
    next: Next,
) -> Response {
    let ok = match Credential::of(req.headers()) {
        Some(Credential::Basic { password, .. } | Credential::Bearer(password)) => {
            password == ado.config.pat
        }
        None => false,
    };
    if ok {
        let session = req.headers().get("x-tfs-session").cloned();
        let mut resp = next.run(req).await;
        let h = resp.headers_mut();
        if let Some(s) = session {
            h.insert("x-tfs-session", s);
        }
        h.insert(
            "activityid",
            HeaderValue::from_static("2f3a8b4c-0d1e-4f5a-9b6c-7d8e9f0a1b2c"),
        );
        h.insert(
            "x-vss-e2eid",
            HeaderValue::from_static("2f3a8b4c-0d1e-4f5a-9b6c-7d8e9f0a1b2c"),
        );
        return resp;
    }
    let suppress = req
        .headers()
        .get("x-tfs-fedauthredirect")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("suppress"));
    if ado.config.fedauth_html && !suppress {
        let mut r = Response::new(Body::from(
            "<!DOCTYPE html><html><head><title>Azure DevOps Services | Sign In</title></head><body><form id=\"signin\">Sign in to your account</form></body></html>",
        ));
        *r.status_mut() = StatusCode::NON_AUTHORITATIVE_INFORMATION;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        return r;
    }
    let mut r = ado_error_with(
        StatusCode::UNAUTHORIZED,
        "UnauthorizedRequestException",
        "Microsoft.TeamFoundation.Framework.Server",
        "TF400813: The user '' is not authorized to access this resource.",
        3000,
        None,
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"https://dev.azure.com/\""),
    );
    r
}
