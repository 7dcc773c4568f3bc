//! What a request's `Authorization` header says.

use axum::http::{HeaderMap, header};
use base64::Engine as _;

/// The credential a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    /// `Basic`: a user name and password (either may be empty, as with a PAT).
    Basic {
        /// The user name.
        user: String,
        /// The password or token.
        password: String,
    },
    /// `Bearer`: a token.
    Bearer(String),
}

impl Credential {
    /// The credential of `headers`; `None` without one, or with a scheme or encoding the
    /// simulators do not accept.
    pub(crate) fn of(headers: &HeaderMap) -> Option<Credential> {
        let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        if let Some(b64) = auth.strip_prefix("Basic ") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()?;
            let pair = String::from_utf8(raw).ok()?;
            let (user, password) = pair.split_once(':')?;
            return Some(Credential::Basic {
                user: user.to_owned(),
                password: password.to_owned(),
            });
        }
        auth.strip_prefix("Bearer ")
            .map(|t| Credential::Bearer(t.trim().to_owned()))
    }
}
