//! Turning an HTTP error response into a core [`Error`].

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use workbridge_core::{Error, ErrorKind, truncate_chars};

use crate::retry::{is_retryable_status, server_wait};

/// Longest body snippet kept in an error message, in characters.
pub const MAX_SNIPPET_CHARS: usize = 300;

/// The error kind an HTTP status stands for.
pub fn kind_for_status(status: StatusCode) -> ErrorKind {
    match status.as_u16() {
        400 | 413 | 415 | 422 => ErrorKind::InvalidInput,
        401 => ErrorKind::Unauthenticated,
        403 => ErrorKind::PermissionDenied,
        404 | 410 => ErrorKind::NotFound,
        409 | 412 => ErrorKind::Conflict,
        429 => ErrorKind::RateLimited,
        501 => ErrorKind::Unsupported,
        408 | 500..=599 => ErrorKind::Unavailable,
        _ => ErrorKind::Unexpected,
    }
}

/// A short, single-line excerpt of a response body for messages: whitespace collapsed,
/// HTML tags dropped, truncated to [`MAX_SNIPPET_CHARS`].
pub fn body_snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(text.len().min(MAX_SNIPPET_CHARS * 2));
    let mut in_tag = false;
    let mut last_space = true;
    for ch in text.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                if !last_space {
                    out.push(' ');
                    last_space = true;
                }
            }
            _ if in_tag => {}
            c if c.is_whitespace() => {
                if !last_space {
                    out.push(' ');
                    last_space = true;
                }
            }
            c => {
                out.push(c);
                last_space = false;
            }
        }
        if out.len() > MAX_SNIPPET_CHARS * 4 {
            break;
        }
    }
    truncate_chars(out.trim(), MAX_SNIPPET_CHARS)
}

const REQUEST_ID_HEADERS: [&str; 5] = [
    "x-request-id",
    "x-ms-request-id",
    "activityid",
    "x-vss-e2eid",
    "x-transaction-id",
];

/// The generic error for a non-success response: kind by status, temporary for retryable
/// statuses, the server's wait, its request id and a body snippet. Adapters read their
/// system's error envelope first and fall back to this.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Error {
    let snippet = body_snippet(body);
    let message = if snippet.is_empty() {
        format!("the server answered {status}")
    } else {
        format!("the server answered {status}: {snippet}")
    };
    let mut e = Error::new(kind_for_status(status), message)
        .with_http_status(status.as_u16())
        .with_temporary(is_retryable_status(status));
    if let Some(w) = server_wait(status, headers, chrono::Utc::now()) {
        e = e.with_retry_after(w);
    }
    if let Some(id) = request_id(headers) {
        e = e.with_request_id(id);
    }
    e
}

/// A system's own reading of an error answer (`e`: its kind, message, field), completed from
/// the generic classification of the same answer: the HTTP status, whether it is temporary,
/// the server's wait and the request id. The tail of every adapter's `parse_error`.
pub fn refine(e: Error, generic: &Error) -> Error {
    let c = generic.context();
    let mut e = e.with_temporary(generic.is_temporary());
    if let Some(s) = c.http_status {
        e = e.with_http_status(s);
    }
    if let Some(w) = generic.retry_after() {
        e = e.with_retry_after(w);
    }
    if let Some(id) = &c.request_id {
        e = e.with_request_id(id.clone());
    }
    e
}

/// The server's id of a request (`x-request-id`, `x-ms-request-id`, `ActivityId`,
/// `x-vss-e2eid`, ServiceNow's `X-Transaction-ID`), for logs and errors: what its operators
/// search for.
pub(crate) fn request_id(headers: &HeaderMap) -> Option<String> {
    REQUEST_ID_HEADERS
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .map(|id| truncate_chars(id, 100))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn status_table() {
        let cases = [
            (400, ErrorKind::InvalidInput, false),
            (401, ErrorKind::Unauthenticated, false),
            (403, ErrorKind::PermissionDenied, false),
            (404, ErrorKind::NotFound, false),
            (408, ErrorKind::Unavailable, true),
            (409, ErrorKind::Conflict, false),
            (412, ErrorKind::Conflict, false),
            (429, ErrorKind::RateLimited, true),
            (500, ErrorKind::Unavailable, true),
            (501, ErrorKind::Unsupported, false),
            (503, ErrorKind::Unavailable, true),
            (302, ErrorKind::Unexpected, false),
        ];
        for (status, kind, temporary) in cases {
            let e = classify(
                StatusCode::from_u16(status).unwrap(),
                &HeaderMap::new(),
                b"",
            );
            assert_eq!((e.kind(), e.is_temporary()), (kind, temporary), "{status}");
            assert_eq!(e.context().http_status, Some(status));
        }
    }

    #[test]
    fn snippet_is_short_single_line_text() {
        let html = format!(
            "<html><body>\n<h1>Oops</h1>\n<p>{}</p></body></html>",
            "x".repeat(5000)
        );
        let s = body_snippet(html.as_bytes());
        assert!(s.starts_with("Oops x"), "{s}");
        assert!(s.chars().count() <= MAX_SNIPPET_CHARS + 1);
        assert!(!s.contains('\n'));
    }

    #[test]
    fn request_id_and_wait_are_kept() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("9"));
        h.insert("x-request-id", HeaderValue::from_static("abc-123"));
        let e = classify(
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            br#"{"error":{"message":"slow"}}"#,
        );
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(9)));
        assert_eq!(e.context().request_id.as_deref(), Some("abc-123"));
        assert!(e.to_string().contains("slow"));
    }
}
