//! The payloads of the Table, Attachment and Batch APIs whose shape is known, as serde types. A
//! payload that does not fit is a protocol error naming its path (`result[2]`). A record stays
//! a JSON object: its members are the table's columns, each a string, or a `{value,
//! display_value}` pair with `sysparm_display_value=all` (read by column type in `meta.rs`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A record: the table's columns by name.
pub(crate) type Record = Map<String, Value>;

/// `{"result": [...]}`: a list answer.
#[derive(Debug, Deserialize)]
pub(crate) struct ResultList {
    /// The records.
    pub(crate) result: Vec<Record>,
}

/// `{"result": {...}}`: the answer of a read, create or update of one record.
#[derive(Debug, Deserialize)]
pub(crate) struct ResultOne {
    /// The record.
    pub(crate) result: Record,
}

/// The body of `POST api/now/v1/batch`.
#[derive(Debug, Serialize)]
pub(crate) struct BatchRequest<'a> {
    /// The batch's id, echoed in the answer.
    pub(crate) batch_request_id: &'a str,
    /// The requests, run in order.
    pub(crate) rest_requests: Vec<RestRequest<'a>>,
}

/// One request of a batch.
#[derive(Debug, Serialize)]
pub(crate) struct RestRequest<'a> {
    /// Its id, to find its answer by.
    pub(crate) id: &'a str,
    /// `POST`, `PATCH`, ...
    pub(crate) method: &'a str,
    /// The path and query, from `/api/now/...`.
    pub(crate) url: &'a str,
    /// Its headers.
    pub(crate) headers: [NameValue; 2],
    /// The answer without its headers (the status and body are enough).
    pub(crate) exclude_response_headers: bool,
    /// The body, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) body: Option<String>,
}

/// A header of a batched request.
#[derive(Debug, Serialize)]
pub(crate) struct NameValue {
    /// The header's name.
    pub(crate) name: &'static str,
    /// Its value.
    pub(crate) value: &'static str,
}

/// The answer of a batch.
#[derive(Debug, Deserialize)]
pub(crate) struct BatchResponse {
    /// The requests it ran; a request not among them was not run.
    pub(crate) serviced_requests: Vec<ServicedRequest>,
}

/// The answer of one batched request.
#[derive(Debug, Deserialize)]
pub(crate) struct ServicedRequest {
    /// The request's id.
    pub(crate) id: String,
    /// Its HTTP status.
    pub(crate) status_code: u16,
    /// Its body, base64.
    #[serde(default)]
    pub(crate) body: Option<String>,
}
