//! The payloads of the Work Item Tracking API whose shape is known, as serde types. A payload
//! that does not fit is a protocol error naming its path (`value[3].referenceName`). What is
//! open by nature stays JSON: a work item's `fields` (each read by the type of its field, in
//! `meta.rs`), identities (an object on Services, a string on older servers), default values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `{"count": n, "value": [...]}`: every list the API answers.
#[derive(Debug, Deserialize)]
pub(crate) struct List<T> {
    /// The entries.
    pub(crate) value: Vec<T>,
}

/// The body of `POST _apis/wit/wiql`.
#[derive(Debug, Serialize)]
pub(crate) struct WiqlQuery<'a> {
    /// The WIQL text.
    pub(crate) query: &'a str,
}

/// The answer of a WIQL query.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WiqlResult {
    /// The matching work items, in the query's order.
    pub(crate) work_items: Vec<ItemRef>,
    /// The time the query was evaluated as of.
    #[serde(default)]
    pub(crate) as_of: Option<String>,
}

/// A work item by id, in a WIQL answer.
#[derive(Debug, Deserialize)]
pub(crate) struct ItemRef {
    /// The id.
    pub(crate) id: u64,
}

/// The body of `POST workitemsbatch`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BatchRead<'a> {
    /// The ids, at most 200.
    pub(crate) ids: &'a [u64],
    /// `omit`: a missing id is a `null` entry, not a failure of the batch.
    pub(crate) error_policy: &'static str,
    /// The fields to read; all when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) fields: Option<&'a [String]>,
    /// The time to read them as of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) as_of: Option<&'a str>,
    /// `relations` and the like, with every field (not with `fields`).
    #[serde(rename = "$expand", skip_serializing_if = "Option::is_none")]
    pub(crate) expand: Option<&'static str>,
}

/// A work item as the API answers it.
#[derive(Debug, Deserialize)]
pub(crate) struct WorkItemJson {
    /// The id.
    pub(crate) id: u64,
    /// The revision: the version `if_version` is checked against.
    pub(crate) rev: u64,
    /// The fields by reference name, each in the form of its type.
    pub(crate) fields: Map<String, Value>,
    /// Links; `html.href` is the item's page.
    #[serde(default, rename = "_links")]
    pub(crate) links: Option<Links>,
    /// Relations, with `$expand=relations`: attachments among them.
    #[serde(default)]
    pub(crate) relations: Option<Vec<RelationJson>>,
}

/// The `_links` of a work item.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Links {
    /// The item's page in the web UI.
    #[serde(default)]
    pub(crate) html: Option<Href>,
}

/// A link.
#[derive(Debug, Deserialize)]
pub(crate) struct Href {
    /// The URL.
    pub(crate) href: String,
}

/// A relation of a work item (`AttachedFile`, `Hyperlink`, hierarchy and related links).
#[derive(Debug, Deserialize)]
pub(crate) struct RelationJson {
    /// The kind (`AttachedFile`, `System.LinkTypes.Related`, ...).
    pub(crate) rel: String,
    /// The target.
    #[serde(default)]
    pub(crate) url: String,
    /// `name`, `resourceSize`, `resourceCreatedDate`, `comment`, ... by kind.
    #[serde(default)]
    pub(crate) attributes: Map<String, Value>,
}

/// A field of the organization's field list.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FieldJson {
    /// The reference name (`System.Title`).
    pub(crate) reference_name: String,
    /// `string`, `integer`, `dateTime`, `html`, `treePath`, `identity`, ...
    #[serde(default, rename = "type")]
    pub(crate) ty: Option<String>,
    /// Whether it holds identities (real servers say `"type": "string"` for them).
    #[serde(default)]
    pub(crate) is_identity: bool,
    /// Whether the server refuses writes to it.
    #[serde(default)]
    pub(crate) read_only: bool,
}

/// A work item type.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TypeJson {
    /// The type's name (`Bug`).
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// The type's fields (`fieldInstances`; older servers: `fields`).
    #[serde(default)]
    pub(crate) field_instances: Option<Vec<FieldInstanceJson>>,
    /// The type's fields on servers before `fieldInstances`.
    #[serde(default)]
    pub(crate) fields: Option<Vec<FieldInstanceJson>>,
    /// The allowed moves: from a state (`""` for the initial one) to the states it may go to.
    #[serde(default)]
    pub(crate) transitions: BTreeMap<String, Vec<TransitionJson>>,
    /// The type's states.
    #[serde(default)]
    pub(crate) states: Vec<Named>,
}

/// A field of a work item type, or of the type's field list (`$expand=allowedValues`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FieldInstanceJson {
    /// The reference name.
    pub(crate) reference_name: String,
    /// The display name.
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// Whether the type demands it (see the reference on identity fields).
    #[serde(default, deserialize_with = "present")]
    pub(crate) always_required: Option<Value>,
    /// The value the server fills in when none is given.
    #[serde(default, deserialize_with = "present")]
    pub(crate) default_value: Option<Value>,
    /// The values allowed (strings or numbers; identities as objects).
    #[serde(default, deserialize_with = "present")]
    pub(crate) allowed_values: Option<Value>,
}

/// A member that is there, `null` included (`Some(Value::Null)`); `None` only when absent: the
/// type's field list, where it has a member, decides over the type's own entry even when null.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A transition's target state.
#[derive(Debug, Deserialize)]
pub(crate) struct TransitionJson {
    /// The state moved to.
    pub(crate) to: String,
}

/// Anything with a name (a state).
#[derive(Debug, Deserialize)]
pub(crate) struct Named {
    /// The name.
    pub(crate) name: String,
}

/// A page of the comments API (7.x).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CommentList {
    /// The comments of this page.
    pub(crate) comments: Vec<CommentJson>,
    /// The token of the next page; absent or empty on the last.
    #[serde(default)]
    pub(crate) continuation_token: Option<String>,
}

/// A comment.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CommentJson {
    /// The comment's id (`commentId` in early previews).
    #[serde(alias = "commentId")]
    pub(crate) id: u64,
    /// When it was written.
    #[serde(default)]
    pub(crate) created_date: Option<String>,
    /// `html` or `markdown`.
    #[serde(default)]
    pub(crate) format: Option<String>,
    /// The text.
    #[serde(default)]
    pub(crate) text: Option<String>,
    /// The author, an identity.
    #[serde(default)]
    pub(crate) created_by: Option<Value>,
}

impl CommentJson {
    /// When it was written, if the answer says.
    pub(crate) fn created_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.created_date
            .as_deref()
            .and_then(super::meta::parse_time)
    }
}

/// The body of a new comment.
#[derive(Debug, Serialize)]
pub(crate) struct NewCommentJson<'a> {
    /// The comment, in HTML.
    pub(crate) text: &'a str,
}

/// The answer of an upload: the attachment's reference.
#[derive(Debug, Deserialize)]
pub(crate) struct AttachmentRef {
    /// The attachment's id.
    #[serde(default)]
    pub(crate) id: Option<String>,
    /// Where it is downloaded from; linked to the work item by `AttachedFile`.
    pub(crate) url: String,
}

/// One answer of a `$batch` of work item writes.
#[derive(Debug, Deserialize)]
pub(crate) struct BatchAnswer {
    /// The HTTP status of this write.
    pub(crate) code: u16,
    /// Its body, a JSON document in a string.
    #[serde(default)]
    pub(crate) body: Option<String>,
}
