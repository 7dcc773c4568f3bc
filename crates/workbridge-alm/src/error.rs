//! `QCRestException` (JSON, XML or an HTML page) → [`workbridge_core::Error`].

use workbridge_core::{Error, ErrorKind};
use workbridge_http::header::HeaderMap;
use workbridge_http::{StatusCode, classify, refine};

use crate::wire::xml_text;

/// The error of a non-success response, decided on the QC exception id.
pub(crate) fn parse_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Error {
    let generic = classify(status, headers, body);
    let text = String::from_utf8_lossy(body);
    let (id, title) = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) if v.get("Id").is_some() => (
            v["Id"].as_str().unwrap_or_default().to_owned(),
            v["Title"].as_str().unwrap_or_default().to_owned(),
        ),
        _ => match (xml_text(&text, "Id"), xml_text(&text, "Title")) {
            (Some(i), Some(t)) => (i, t),
            _ => return generic,
        },
    };
    let quoted = title.split('\'').nth(1).map(ToOwned::to_owned);
    let kind = match id.as_str() {
        "qccore.entity-not-found" => ErrorKind::NotFound,
        "qccore.unknown-field-name"
        | "qccore.invalid-list-field-value"
        | "qccore.required-field-missing"
        | "qccore.invalid-value-type-for-field"
        | "qccore.invalid-filter-expression"
        | "qccore.invalid-query-value" => ErrorKind::InvalidInput,
        "qccore.lock-failure" | "qccore.check-out-failure" => ErrorKind::Conflict,
        "qccore.session-has-expired" => ErrorKind::Unauthenticated,
        "qccore.operation-forbidden" if title.contains("workflow") => ErrorKind::InvalidTransition,
        "qccore.operation-forbidden" => ErrorKind::PermissionDenied,
        _ if title.contains("logged out") => ErrorKind::Unauthenticated,
        _ => generic.kind(),
    };
    let message = format!("ALM answered {status}: {title} ({id})");
    let e = match (kind, quoted) {
        (ErrorKind::InvalidInput, Some(q)) if id != "qccore.invalid-list-field-value" => {
            Error::invalid_input(q, "", message)
        }
        (ErrorKind::InvalidInput, Some(q)) => {
            let field = title.split('\'').nth(3).unwrap_or_default().to_owned();
            Error::invalid_input(field, q, message)
        }
        _ => Error::new(kind, message),
    };
    let e = refine(e, &generic);
    // A locked entity frees itself when its holder unlocks or its session ends: worth a retry.
    let temporary = e.is_temporary() || kind == ErrorKind::Conflict;
    e.with_temporary(temporary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(status: u16, body: &str) -> Error {
        parse_error(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
        )
    }

    #[test]
    fn exception_ids_map_to_kinds_in_json_xml_and_html() {
        let cases = [
            (
                404,
                r#"{"Id":"qccore.entity-not-found","Title":"Failed to get entity: defect with id 9 does not exist","ExceptionProperties":null,"StackTrace":null}"#,
                ErrorKind::NotFound,
            ),
            (
                404,
                "<QCRestException><Id>qccore.entity-not-found</Id><Title>Entity not found</Title><StackTrace>x</StackTrace></QCRestException>",
                ErrorKind::NotFound,
            ),
            (
                400,
                r#"{"Id":"qccore.unknown-field-name","Title":"Failed to update entity: unknown field name 'user-77'"}"#,
                ErrorKind::InvalidInput,
            ),
            (
                400,
                r#"{"Id":"qccore.required-field-missing","Title":"Failed to create entity: the required field 'severity' is missing"}"#,
                ErrorKind::InvalidInput,
            ),
            (
                403,
                r#"{"Id":"qccore.lock-failure","Title":"Failed to update entity: The entity is locked by user 'jdoe'"}"#,
                ErrorKind::Conflict,
            ),
            (
                401,
                r#"{"Id":"qccore.session-has-expired","Title":"Session has expired"}"#,
                ErrorKind::Unauthenticated,
            ),
            (
                401,
                r#"{"Id":"qccore.general-error","Title":"Unauthorized request. For more details see XSRF Token section in REST API documentation.","ExceptionProperties":null,"StackTrace":null}"#,
                ErrorKind::Unauthenticated,
            ),
            (
                500,
                r#"{"Id":"qccore.general-error","Title":"TokenId is invalid because it has logged out"}"#,
                ErrorKind::Unauthenticated,
            ),
            (
                403,
                r#"{"Id":"qccore.operation-forbidden","Title":"The workflow does not allow changing the status from 'New' to 'Closed'"}"#,
                ErrorKind::InvalidTransition,
            ),
            (
                403,
                r#"{"Id":"qccore.operation-forbidden","Title":"Failed to update entity: field 'id' is read-only"}"#,
                ErrorKind::PermissionDenied,
            ),
            (
                404,
                r#"{"Id":"qccore.invalid-query-value","Title":"Invalid \"order-by\" parameter value, not existing field: \"type-id,id\""}"#,
                ErrorKind::InvalidInput,
            ),
            (
                500,
                "<html><body><h1>ALM</h1> qccore.general-error stack</body></html>",
                ErrorKind::Unavailable,
            ),
        ];
        for (status, body, kind) in cases {
            assert_eq!(parse(status, body).kind(), kind, "{body}");
        }
        let e = parse(
            400,
            r#"{"Id":"qccore.invalid-list-field-value","Title":"Failed to update entity: the value '9-Doom' of field 'severity' is not in the list 'Severity'"}"#,
        );
        assert_eq!(
            (e.field().map(|f| f.as_str()), e.value()),
            (Some("severity"), Some("9-Doom"))
        );
        assert_eq!(
            parse(
                400,
                r#"{"Id":"qccore.unknown-field-name","Title":"unknown field name 'user-77'"}"#
            )
            .field()
            .map(|f| f.as_str()),
            Some("user-77")
        );
    }
}
