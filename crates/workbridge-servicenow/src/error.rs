//! ServiceNow's error envelope → [`workbridge_core::Error`].

use serde::Deserialize;
use workbridge_core::{Error, ErrorKind};
use workbridge_http::header::HeaderMap;
use workbridge_http::{StatusCode, body_snippet, classify, refine};

#[derive(Deserialize)]
struct Envelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

/// The error of a non-success response: the `{"error":{"message","detail"},"status":"failure"}`
/// envelope read when present, the kind chosen by status and message.
pub(crate) fn parse_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Error {
    let generic = classify(status, headers, body);
    let Ok(env) = serde_json::from_slice::<Envelope>(body) else {
        return generic;
    };
    let message = env.error.message.unwrap_or_default();
    let detail = env.error.detail.unwrap_or_default();
    let text = match (message.is_empty(), detail.is_empty()) {
        (false, false) => format!("{message}: {}", detail.trim()),
        (false, true) => message.clone(),
        (true, false) => detail.trim().to_owned(),
        (true, true) => body_snippet(body),
    };
    let kind = if status == StatusCode::BAD_REQUEST && message.starts_with("Invalid table") {
        ErrorKind::NotFound
    } else if status == StatusCode::FORBIDDEN && detail.contains("Data Policy Exception") {
        ErrorKind::InvalidInput
    } else {
        generic.kind()
    };
    refine(
        Error::new(kind, format!("ServiceNow answered {status}: {text}")),
        &generic,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use workbridge_http::header::HeaderValue;

    fn parse(status: u16, body: &str) -> Error {
        parse_error(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
        )
    }

    #[test]
    fn every_documented_error_body_maps_to_a_kind() {
        let cases = [
            (
                400,
                r#"{"error":{"message":"Invalid table incidentx","detail":null},"status":"failure"}"#,
                ErrorKind::NotFound,
                "Invalid table incidentx",
            ),
            (
                401,
                r#"{"error":{"message":"User Not Authenticated","detail":"Required to provide Auth information"},"status":"failure"}"#,
                ErrorKind::Unauthenticated,
                "User Not Authenticated: Required to provide Auth information",
            ),
            (
                403,
                r#"{"error":{"message":"Operation Failed","detail":"ACL Exception Update Failed due to security constraints"},"status":"failure"}"#,
                ErrorKind::PermissionDenied,
                "ACL Exception",
            ),
            (
                403,
                r#"{"error":{"message":"Operation Failed","detail":"Data Policy Exception: \n The following fields are mandatory: Resolution code"},"status":"failure"}"#,
                ErrorKind::InvalidInput,
                "Resolution code",
            ),
            (
                404,
                r#"{"error":{"message":"No Record found","detail":"Record doesn't exist or ACL restricts the record retrieval"},"status":"failure"}"#,
                ErrorKind::NotFound,
                "No Record found",
            ),
            (
                400,
                r#"{"error":{"detail":"Negative offset is not supported","message":"offset is -9"},"status":"failure"}"#,
                ErrorKind::InvalidInput,
                "Negative offset",
            ),
            (
                429,
                r#"{"error":{"message":"Too Many Requests","detail":null},"status":"failure"}"#,
                ErrorKind::RateLimited,
                "Too Many Requests",
            ),
            (
                503,
                "<html><body>Instance hibernating</body></html>",
                ErrorKind::Unavailable,
                "hibernating",
            ),
            (
                406,
                r#"{"error":{"message":"Requested response format is not supported","detail":null},"status":"failure"}"#,
                ErrorKind::Unexpected,
                "format",
            ),
        ];
        for (status, body, kind, text) in cases {
            let e = parse(status, body);
            assert_eq!(e.kind(), kind, "{status} {body}");
            assert!(e.to_string().contains(text), "{e}");
            assert_eq!(e.context().http_status, Some(status));
        }
    }

    #[test]
    fn retry_after_and_transaction_id_are_kept() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("30"));
        h.insert("x-transaction-id", HeaderValue::from_static("7d9414489707"));
        let e = parse_error(
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            br#"{"error":{"message":"Rate limit exceeded"},"status":"failure"}"#,
        );
        assert!(e.is_temporary());
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(30)));
        assert_eq!(e.context().request_id.as_deref(), Some("7d9414489707"));
    }
}
