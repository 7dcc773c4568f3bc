//! Azure DevOps' WrappedException → [`workbridge_core::Error`].

use serde::Deserialize;
use workbridge_core::{Error, ErrorKind};
use workbridge_http::header::HeaderMap;
use workbridge_http::{StatusCode, classify, refine};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wrapped {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    type_key: Option<String>,
    #[serde(default)]
    custom_properties: Option<serde_json::Value>,
}

/// The error of a non-success response, from the `{"message","typeKey",...}` body when present.
pub(crate) fn parse_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Error {
    let generic = classify(status, headers, body);
    let Ok(w) = serde_json::from_slice::<Wrapped>(body) else {
        return generic;
    };
    let message = w.message.unwrap_or_default();
    let key = w.type_key.unwrap_or_default();
    let rule_field = w
        .custom_properties
        .as_ref()
        .and_then(|c| c.get("RuleValidationErrors"))
        .and_then(|e| e.get(0))
        .and_then(|e| e.get("fieldReferenceName"))
        .and_then(|f| f.as_str())
        .map(ToOwned::to_owned);
    let kind = if message.contains("TF26071") || key == "WorkItemRevisionMismatchException" {
        ErrorKind::Conflict
    } else if key == "VssVersionOutOfRangeException" || key == "VssInvalidPreviewVersionException" {
        ErrorKind::Config
    } else {
        generic.kind()
    };
    let text = if key.is_empty() {
        message.clone()
    } else {
        format!("{message} ({key})")
    };
    let e = match (&rule_field, kind) {
        (Some(field), ErrorKind::InvalidInput) => Error::invalid_input(
            field.as_str(),
            "",
            format!("Azure DevOps refused the value: {text}"),
        ),
        _ => {
            let field = message
                .strip_prefix("TF51535: Cannot find field ")
                .map(|f| f.trim_end_matches('.').to_owned());
            match field {
                Some(f) => Error::invalid_input(
                    f.as_str(),
                    "",
                    format!("Azure DevOps has no such field: {text}"),
                ),
                None => Error::new(kind, format!("Azure DevOps answered {status}: {text}")),
            }
        }
    };
    refine(e, &generic)
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
    fn every_documented_error_body_maps_to_a_kind() {
        let cases = [
            (
                404,
                r#"{"$id":"1","innerException":null,"message":"TF401232: Work item 43 does not exist, or you do not have permissions to read it.","typeName":"Microsoft.TeamFoundation.WorkItemTracking.Server.WorkItemUnauthorizedAccessException, Microsoft.TeamFoundation.WorkItemTracking.Server","typeKey":"WorkItemUnauthorizedAccessException","errorCode":0,"eventId":3200}"#,
                ErrorKind::NotFound,
                "TF401232",
            ),
            (
                401,
                r#"{"$id":"1","innerException":null,"message":"TF400813: The user '' is not authorized to access this resource.","typeKey":"UnauthorizedRequestException","errorCode":0,"eventId":3000}"#,
                ErrorKind::Unauthenticated,
                "TF400813",
            ),
            (
                400,
                r#"{"message":"TF401320: Rule Error for field Title. Error code: Required, InvalidEmpty.","typeKey":"RuleValidationException","customProperties":{"RuleValidationErrors":[{"fieldReferenceName":"System.Title","fieldStatusFlags":"required, invalidEmpty","errorMessage":"TF401320"}]}}"#,
                ErrorKind::InvalidInput,
                "TF401320",
            ),
            (
                400,
                r#"{"message":"TF51535: Cannot find field Custom.Foo.","typeKey":"WorkItemTrackingFieldDefinitionNotFoundException"}"#,
                ErrorKind::InvalidInput,
                "Custom.Foo",
            ),
            (
                412,
                r#"{"message":"VS403351: Test Operation for path /rev failed, value 5 was not equal to test value 4.","typeKey":"TestPatchOperationFailedException"}"#,
                ErrorKind::Conflict,
                "VS403351",
            ),
            (
                409,
                r#"{"message":"TF26071: This work item has been changed by someone else since you opened it.","typeKey":"WorkItemRevisionMismatchException"}"#,
                ErrorKind::Conflict,
                "TF26071",
            ),
            (
                400,
                r#"{"message":"TF26071: This work item has been changed by someone else since you opened it.","typeKey":"ValidationException"}"#,
                ErrorKind::Conflict,
                "TF26071",
            ),
            (
                400,
                r#"{"message":"VS402337: The number of work items returned exceeds the size limit of 20000. Change the query to return fewer items.","typeKey":"WorkItemTrackingQueryResultSizeLimitExceededException"}"#,
                ErrorKind::InvalidInput,
                "VS402337",
            ),
            (
                400,
                r#"{"message":"VS403474: You requested 459 work items which exceeds the limit of 200"}"#,
                ErrorKind::InvalidInput,
                "VS403474",
            ),
            (
                400,
                r#"{"message":"The requested REST API version of 7.2 is out of range for this server. The latest REST API version this server supports is 6.1.","typeKey":"VssVersionOutOfRangeException"}"#,
                ErrorKind::Config,
                "out of range",
            ),
            (
                429,
                r#"{"message":"TF400733: The request has been canceled: Request was blocked due to exceeding usage of resource 'WorkItemTrackingResource' in namespace 'User'.","typeKey":"RequestBlockedException"}"#,
                ErrorKind::RateLimited,
                "TF400733",
            ),
            (
                403,
                r#"{"message":"Access denied.","typeKey":"PermissionDeniedException"}"#,
                ErrorKind::PermissionDenied,
                "Access denied",
            ),
        ];
        for (status, body, kind, text) in cases {
            let e = parse(status, body);
            assert_eq!(e.kind(), kind, "{status} {body}");
            assert!(e.to_string().contains(text), "{e}");
        }
        assert_eq!(parse(400, r#"{"message":"x","typeKey":"RuleValidationException","customProperties":{"RuleValidationErrors":[{"fieldReferenceName":"System.Title"}]}}"#).field().map(|f| f.as_str()), Some("System.Title"));
        assert_eq!(
            parse(
                400,
                r#"{"message":"TF51535: Cannot find field Custom.Foo."}"#
            )
            .field()
            .map(|f| f.as_str()),
            Some("Custom.Foo")
        );
    }
}
