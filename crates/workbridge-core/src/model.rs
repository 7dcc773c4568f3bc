//! The data model: identifiers, typed field values, work items, comments, attachments, cursors.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use url::Url;

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a string.
            pub fn new(s: impl Into<String>) -> Self {
                $name(s.into())
            }

            /// The string form.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&$name> for $name {
            fn from(s: &$name) -> Self {
                s.clone()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_newtype!(
    /// The id of an item in its system: a ServiceNow `sys_id`, an Azure DevOps work item id,
    /// an ALM entity id.
    ItemId
);
string_newtype!(
    /// The type of an item: a ServiceNow table (`incident`), an Azure DevOps work item type
    /// (`Bug`), an ALM entity collection (`defects`).
    ItemType
);
string_newtype!(
    /// The name of a field in its system (`short_description`, `System.Title`, `user-03`).
    FieldName
);
string_newtype!(
    /// The system's own revision counter (`sys_mod_count`, `rev`, `ver-stamp`), opaque to the
    /// sync kernel: it is compared for equality only.
    Version
);
string_newtype!(
    /// A key that identifies the twin of an item on the other side. It is written into the
    /// created item in the same request (ServiceNow `correlation_id`, a configured field in
    /// Azure DevOps or ALM), so a retry after a lost reply finds the item instead of creating
    /// a duplicate.
    CorrelationKey
);

impl CorrelationKey {
    /// How every key the sync kernel writes begins (`wb:{item type}:{item id}`): an adapter
    /// whose query language cannot ask whether a field is empty answers
    /// [`Repository::holds_correlated`](crate::Repository::holds_correlated) by asking whether
    /// any value starts with it.
    pub const PREFIX: &'static str = "wb:";
}

/// A person as systems name them: a login, an email, a display name; any may be missing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Person {
    /// The login or user name (`abel.tuter`, `DOMAIN\\user`, `qa`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// The email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The name shown to users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The system's own id of the user (a `sys_id`, an identity id), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Person {
    /// A person known by login.
    pub fn login(login: impl Into<String>) -> Self {
        Person {
            login: Some(login.into()),
            ..Person::default()
        }
    }

    /// A person known by email.
    pub fn email(email: impl Into<String>) -> Self {
        Person {
            email: Some(email.into()),
            ..Person::default()
        }
    }

    /// Sets the display name.
    #[must_use]
    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }
}

impl fmt::Display for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.display_name, &self.email, &self.login) {
            (Some(n), Some(e), _) => write!(f, "{n} <{e}>"),
            (Some(n), None, _) => f.write_str(n),
            (None, Some(e), _) => f.write_str(e),
            (None, None, Some(l)) => f.write_str(l),
            (None, None, None) => f.write_str(self.id.as_deref().unwrap_or("(unknown person)")),
        }
    }
}

/// A reference to a record in another table or collection (ServiceNow reference fields,
/// ALM references).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Reference {
    /// The referenced table or type, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ItemType>,
    /// The referenced record's id.
    pub id: String,
    /// The referenced record's display value, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// A typed field value. Adapters convert their wire encodings into these; nothing is "just a
/// string" unless the field is text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum FieldValue {
    /// No value (ServiceNow `""`, ALM `values: []`, an absent Azure DevOps field).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Plain text.
    Text(String),
    /// HTML markup (Azure DevOps `Html` fields, ALM memos).
    Html(String),
    /// A calendar date.
    Date(NaiveDate),
    /// A point in time.
    DateTime(DateTime<Utc>),
    /// A person (boxed, as the other large values are: a value is 32 bytes, and so is every
    /// slot of a field map).
    Person(Box<Person>),
    /// One value of a choice list (its stored value, not its label).
    Choice(String),
    /// Several values of a choice list.
    MultiChoice(Vec<String>),
    /// A reference to another record.
    Reference(Box<Reference>),
    /// A URL.
    Url(Box<Url>),
}

/// Two values are the same when equal, both empty (absent, null, empty text or list), or the
/// same text under different kinds (a choice and a plain text, as backends report them): how
/// the kernel decides that a field changed, and how a write is recognised as landed.
///
/// ```
/// use workbridge_core::{FieldValue, same_value};
/// assert!(same_value(Some(&FieldValue::Choice("2".into())), Some(&FieldValue::Text("2".into()))));
/// assert!(same_value(None, Some(&FieldValue::Text(String::new()))));
/// assert!(!same_value(Some(&FieldValue::Text("a".into())), Some(&FieldValue::Text("b".into()))));
/// ```
pub fn same_value(a: Option<&FieldValue>, b: Option<&FieldValue>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            a == b
                || (a.is_empty() && b.is_empty())
                || a.as_str().is_some_and(|x| b.as_str() == Some(x))
        }
        (Some(v), None) | (None, Some(v)) => v.is_empty(),
        (None, None) => true,
    }
}

impl FieldValue {
    /// Whether the value is [`FieldValue::Null`], or an empty text, HTML or multi-choice.
    pub fn is_empty(&self) -> bool {
        match self {
            FieldValue::Null => true,
            FieldValue::Text(s) | FieldValue::Html(s) | FieldValue::Choice(s) => s.is_empty(),
            FieldValue::MultiChoice(v) => v.is_empty(),
            _ => false,
        }
    }

    /// The kind of this value.
    pub fn kind(&self) -> crate::FieldKind {
        use crate::FieldKind as K;
        match self {
            FieldValue::Null => K::Any,
            FieldValue::Bool(_) => K::Bool,
            FieldValue::Int(_) => K::Int,
            FieldValue::Float(_) => K::Float,
            FieldValue::Text(_) => K::Text,
            FieldValue::Html(_) => K::Html,
            FieldValue::Date(_) => K::Date,
            FieldValue::DateTime(_) => K::DateTime,
            FieldValue::Person(_) => K::Person,
            FieldValue::Choice(_) | FieldValue::MultiChoice(_) => K::Choice,
            FieldValue::Reference(_) => K::Reference,
            FieldValue::Url(_) => K::Url,
        }
    }

    /// The text of a [`FieldValue::Text`], [`FieldValue::Html`] or [`FieldValue::Choice`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::Text(s) | FieldValue::Html(s) | FieldValue::Choice(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Null => f.write_str("null"),
            FieldValue::Bool(b) => write!(f, "{b}"),
            FieldValue::Int(i) => write!(f, "{i}"),
            FieldValue::Float(x) => write!(f, "{x}"),
            FieldValue::Text(s) | FieldValue::Html(s) | FieldValue::Choice(s) => f.write_str(s),
            FieldValue::Date(d) => write!(f, "{d}"),
            FieldValue::DateTime(t) => write!(f, "{}", t.to_rfc3339()),
            FieldValue::Person(p) => write!(f, "{p}"),
            FieldValue::MultiChoice(v) => f.write_str(&v.join(", ")),
            FieldValue::Reference(r) => f.write_str(r.display.as_deref().unwrap_or(&r.id)),
            FieldValue::Url(u) => f.write_str(u.as_str()),
        }
    }
}

impl From<&str> for FieldValue {
    fn from(s: &str) -> Self {
        FieldValue::Text(s.to_owned())
    }
}
impl From<String> for FieldValue {
    fn from(s: String) -> Self {
        FieldValue::Text(s)
    }
}
impl From<bool> for FieldValue {
    fn from(b: bool) -> Self {
        FieldValue::Bool(b)
    }
}
impl From<i64> for FieldValue {
    fn from(i: i64) -> Self {
        FieldValue::Int(i)
    }
}
impl From<f64> for FieldValue {
    fn from(x: f64) -> Self {
        FieldValue::Float(x)
    }
}
impl From<DateTime<Utc>> for FieldValue {
    fn from(t: DateTime<Utc>) -> Self {
        FieldValue::DateTime(t)
    }
}
impl From<Person> for FieldValue {
    fn from(p: Person) -> Self {
        FieldValue::Person(Box::new(p))
    }
}
impl From<Reference> for FieldValue {
    fn from(r: Reference) -> Self {
        FieldValue::Reference(Box::new(r))
    }
}
impl From<Url> for FieldValue {
    fn from(u: Url) -> Self {
        FieldValue::Url(Box::new(u))
    }
}

/// Field values by name, ordered by name.
///
/// ```
/// use workbridge_core::{FieldMap, FieldValue};
/// let fields = FieldMap::new()
///     .with("short_description", "Printer on fire")
///     .with("priority", FieldValue::Int(1));
/// assert_eq!(fields.get("priority"), Some(&FieldValue::Int(1)));
/// assert_eq!(fields.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FieldMap(BTreeMap<FieldName, FieldValue>);

impl FieldMap {
    /// An empty map.
    pub fn new() -> Self {
        FieldMap::default()
    }

    /// Adds a value, builder style.
    #[must_use]
    pub fn with(mut self, name: impl Into<FieldName>, value: impl Into<FieldValue>) -> Self {
        self.insert(name, value);
        self
    }

    /// Sets a value, returning the previous one.
    pub fn insert(
        &mut self,
        name: impl Into<FieldName>,
        value: impl Into<FieldValue>,
    ) -> Option<FieldValue> {
        self.0.insert(name.into(), value.into())
    }

    /// The value of a field.
    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.0.get(name)
    }

    /// Removes a field.
    pub fn remove(&mut self, name: &str) -> Option<FieldValue> {
        self.0.remove(name)
    }

    /// Whether the field is present.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&FieldName, &FieldValue)> {
        self.0.iter()
    }

    /// The field names, in order.
    pub fn names(&self) -> impl Iterator<Item = &FieldName> {
        self.0.keys()
    }

    /// Copies every field of `other` into this map, replacing existing values.
    pub fn merge(&mut self, other: &FieldMap) {
        for (k, v) in other.iter() {
            self.0.insert(k.clone(), v.clone());
        }
    }
}

impl FromIterator<(FieldName, FieldValue)> for FieldMap {
    fn from_iter<I: IntoIterator<Item = (FieldName, FieldValue)>>(iter: I) -> Self {
        FieldMap(iter.into_iter().collect())
    }
}

impl IntoIterator for FieldMap {
    type Item = (FieldName, FieldValue);
    type IntoIter = std::collections::btree_map::IntoIter<FieldName, FieldValue>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a FieldMap {
    type Item = (&'a FieldName, &'a FieldValue);
    type IntoIter = std::collections::btree_map::Iter<'a, FieldName, FieldValue>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A work item as a repository returned it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkItem {
    /// Its id.
    pub id: ItemId,
    /// Its type.
    pub item_type: ItemType,
    /// Its revision, as the system counts.
    pub version: Version,
    /// When it last changed, as the system records it (the change watermark).
    pub changed_at: DateTime<Utc>,
    /// Who changed it last, when the system says.
    pub changed_by: Option<Person>,
    /// Where a user can open it, when known.
    pub url: Option<Url>,
    /// Its fields (all, or those asked for: see `partial`).
    pub fields: FieldMap,
    /// True when only some fields were read (a `fields` projection).
    pub partial: bool,
}

impl WorkItem {
    /// A work item with the required members; the rest empty.
    pub fn new(
        id: ItemId,
        item_type: ItemType,
        version: Version,
        changed_at: DateTime<Utc>,
        fields: FieldMap,
    ) -> Self {
        WorkItem {
            id,
            item_type,
            version,
            changed_at,
            changed_by: None,
            url: None,
            fields,
            partial: false,
        }
    }

    /// The value of a field, if present.
    pub fn field(&self, name: &str) -> Option<&FieldValue> {
        self.fields.get(name)
    }

    /// The position of this item in the change order.
    pub fn position(&self) -> Cursor {
        Cursor::at(self.changed_at, self.id.clone())
    }
}

/// Who may see a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Seen by the customer (ServiceNow `comments`).
    #[default]
    Public,
    /// Seen by staff only (ServiceNow `work_notes`).
    Internal,
}

/// The markup of a comment body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextFormat {
    /// Plain text.
    #[default]
    Plain,
    /// HTML.
    Html,
}

/// A comment on an item, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Comment {
    /// Its id, stable across reads (a `sys_journal_field` sys_id, an Azure DevOps comment id,
    /// a derived id for ALM memo entries).
    pub id: String,
    /// Who wrote it, when known.
    pub author: Option<Person>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// The body.
    pub body: String,
    /// The markup of the body.
    pub format: TextFormat,
    /// Who may see it.
    pub visibility: Visibility,
}

impl Comment {
    /// A comment with the given members.
    pub fn new(
        id: impl Into<String>,
        created_at: DateTime<Utc>,
        body: impl Into<String>,
        format: TextFormat,
        visibility: Visibility,
    ) -> Self {
        Comment {
            id: id.into(),
            author: None,
            created_at,
            body: body.into(),
            format,
            visibility,
        }
    }
}

/// A comment to add.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NewComment {
    /// The body.
    pub body: String,
    /// Its markup.
    pub format: TextFormat,
    /// Who may see it.
    pub visibility: Visibility,
    /// The original author, for systems that record an author other than the API user.
    pub author: Option<Person>,
}

impl NewComment {
    /// A public plain-text comment.
    pub fn public(body: impl Into<String>) -> Self {
        NewComment {
            body: body.into(),
            ..NewComment::default()
        }
    }

    /// An internal plain-text comment (ServiceNow work note).
    pub fn internal(body: impl Into<String>) -> Self {
        NewComment {
            body: body.into(),
            visibility: Visibility::Internal,
            ..NewComment::default()
        }
    }

    /// Sets the markup.
    #[must_use]
    pub fn with_format(mut self, format: TextFormat) -> Self {
        self.format = format;
        self
    }

    /// Sets the author.
    #[must_use]
    pub fn with_author(mut self, author: Person) -> Self {
        self.author = Some(author);
        self
    }
}

/// What a repository knows of an attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AttachmentMeta {
    /// Its id.
    pub id: String,
    /// The type of the item it is attached to.
    pub item_type: ItemType,
    /// The item it is attached to.
    pub item_id: ItemId,
    /// The file name.
    pub file_name: String,
    /// The media type, when known.
    pub content_type: Option<String>,
    /// Its size in bytes, when known.
    pub size: Option<u64>,
    /// When it was attached, when known.
    pub created_at: Option<DateTime<Utc>>,
    /// Where it can be downloaded, when the system gives a URL.
    pub url: Option<Url>,
}

impl AttachmentMeta {
    /// Metadata with the required members.
    pub fn new(
        id: impl Into<String>,
        item_type: ItemType,
        item_id: ItemId,
        file_name: impl Into<String>,
    ) -> Self {
        AttachmentMeta {
            id: id.into(),
            item_type,
            item_id,
            file_name: file_name.into(),
            content_type: None,
            size: None,
            created_at: None,
            url: None,
        }
    }
}

/// An attachment to upload.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewAttachment {
    /// The file name.
    pub file_name: String,
    /// The media type.
    pub content_type: String,
    /// The content.
    pub data: Bytes,
}

impl NewAttachment {
    /// An attachment with content.
    pub fn new(
        file_name: impl Into<String>,
        content_type: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> Self {
        NewAttachment {
            file_name: file_name.into(),
            content_type: content_type.into(),
            data: data.into(),
        }
    }
}

impl fmt::Debug for NewAttachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAttachment")
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("len", &self.data.len())
            .finish()
    }
}

/// A position in a repository's change order, `(changed_at, id)`, plus an optional token the
/// backend uses to find what changed behind the position while a scan was paging.
///
/// Cursors are opaque to callers: store them (they serialize with serde) and hand them back.
/// They order by `(changed_at, id)`; the beginning sorts first.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use workbridge_core::{Cursor, ItemId};
/// let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
/// let a = Cursor::at(t, ItemId::from("1"));
/// let b = Cursor::at(t, ItemId::from("2"));
/// assert!(Cursor::beginning() < a && a < b);
/// let json = serde_json::to_string(&b).unwrap();
/// assert_eq!(serde_json::from_str::<Cursor>(&json).unwrap(), b);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    position: Option<(DateTime<Utc>, ItemId)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl Cursor {
    /// Before every item.
    pub fn beginning() -> Self {
        Cursor::default()
    }

    /// Just after the item `(changed_at, id)`.
    pub fn at(changed_at: DateTime<Utc>, id: ItemId) -> Self {
        Cursor {
            position: Some((changed_at, id)),
            token: None,
        }
    }

    /// Attaches a backend-defined token (for backends that need more than the position).
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Whether this is the beginning.
    pub fn is_beginning(&self) -> bool {
        self.position.is_none()
    }

    /// The `(changed_at, id)` position, `None` at the beginning.
    pub fn position(&self) -> Option<(&DateTime<Utc>, &ItemId)> {
        self.position.as_ref().map(|(t, id)| (t, id))
    }

    /// The change watermark, `None` at the beginning.
    pub fn changed_at(&self) -> Option<DateTime<Utc>> {
        self.position.as_ref().map(|(t, _)| *t)
    }

    /// The backend's token.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }
}

impl PartialOrd for Cursor {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Cursor {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.position
            .cmp(&other.position)
            .then_with(|| self.token.cmp(&other.token))
    }
}

/// One page of changes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ChangePage {
    /// Items changed at or after the cursor, ascending by `(changed_at, id)`.
    pub items: Vec<WorkItem>,
    /// The cursor to pass for the next page. When `has_more` is false, store it and pass it
    /// again later to see new changes.
    pub next: Cursor,
    /// Whether more changes were already waiting when this page was read.
    pub has_more: bool,
}

impl ChangePage {
    /// A page.
    pub fn new(items: Vec<WorkItem>, next: Cursor, has_more: bool) -> Self {
        ChangePage {
            items,
            next,
            has_more,
        }
    }
}

/// What a repository can do. Callers and the conformance suite consult it before calling an
/// optional operation; an operation a backend cannot do fails with
/// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// `comments` and `add_comment` work.
    pub comments: bool,
    /// Comments can be internal (not customer-visible).
    pub internal_comments: bool,
    /// `attachments`, `upload` and `download` work.
    pub attachments: bool,
    /// `update` and `write_many` honour `if_version` before writing: a write made against
    /// another version is refused with [`ErrorKind::Conflict`](crate::ErrorKind::Conflict), not
    /// applied and then reported. The sync kernel then merges a twin its link knows exactly
    /// without reading it first, and relies on the refusal if it changed since.
    pub optimistic_concurrency: bool,
    /// `create` records a correlation key and `find_by_correlation` finds it.
    pub correlation: bool,
    /// `write_many` sends several writes in one request.
    pub batch_writes: bool,
    /// `schema` describes fields and the workflow.
    pub schema: bool,
    /// Workflow transitions are enforced by the backend.
    pub workflow: bool,
    /// The backend rejects unknown fields and disallowed values with
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput).
    pub validates_fields: bool,
    /// Most items `get_many` reads in one request.
    pub max_batch_read: usize,
    /// Most writes `write_many` sends in one request (1 without batch writes): the kernel hands
    /// it this many at a time.
    pub max_batch_write: usize,
    /// Most items `changes` returns in one page.
    pub max_page_size: usize,
    /// Largest attachment accepted, in bytes, when the backend has a limit.
    pub max_attachment_size: Option<u64>,
    /// `revision_after` reads the item's own history (ADR 0014).
    pub history: bool,
    /// `changes` leaves out the items [`ChangeOptions::known`] lists while they are at the
    /// versions given (otherwise the hint is ignored).
    pub skips_known: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            comments: false,
            internal_comments: false,
            attachments: false,
            optimistic_concurrency: false,
            correlation: false,
            batch_writes: false,
            schema: false,
            workflow: false,
            validates_fields: false,
            max_batch_read: 100,
            max_batch_write: 1,
            max_page_size: 100,
            max_attachment_size: None,
            history: false,
            skips_known: false,
        }
    }
}

impl Capabilities {
    /// Checks a comment against what the backend can keep, before anything is sent.
    ///
    /// # Errors
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) for an internal comment where
    /// comments have no internal visibility.
    pub fn check_comment(&self, c: &NewComment) -> crate::Result<()> {
        if c.visibility == Visibility::Internal && !self.internal_comments {
            return Err(crate::Error::unsupported(
                "add_comment",
                "comments here have no internal visibility",
            ));
        }
        Ok(())
    }

    /// Checks an upload against the backend's size limit, before anything is sent.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the file and its size
    /// when it is over [`max_attachment_size`](Self::max_attachment_size).
    pub fn check_upload(&self, a: &NewAttachment) -> crate::Result<()> {
        match self.max_attachment_size {
            Some(max) if a.data.len() as u64 > max => Err(crate::Error::invalid_input(
                "attachment",
                &a.file_name,
                format!("{} bytes is over the limit of {max} bytes", a.data.len()),
            )),
            _ => Ok(()),
        }
    }

    /// Every capability on (the in-memory backend).
    pub fn all() -> Self {
        Capabilities {
            comments: true,
            internal_comments: true,
            attachments: true,
            optimistic_concurrency: true,
            correlation: true,
            batch_writes: true,
            schema: true,
            workflow: true,
            validates_fields: true,
            max_batch_read: 1000,
            max_batch_write: 1000,
            max_page_size: 1000,
            max_attachment_size: None,
            history: true,
            skips_known: false,
        }
    }
}

/// Options of [`Repository::changes`](crate::Repository::changes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangeOptions {
    /// Most items in the page (capped by [`Capabilities::max_page_size`]); `None`: the backend's default.
    pub page_size: Option<usize>,
    /// Read only these fields (items come back `partial`); `None`: all.
    pub fields: Option<Vec<FieldName>>,
    /// Items the caller knows at these versions — its own writes, which it would take for
    /// echoes: a backend whose change query can say so may leave an item out of the page while
    /// it is still at the version given, and moves the cursor past it as past the rest. An
    /// item changed since is listed as ever. A hint: a backend may list them all the same
    /// (Azure DevOps leaves them out of its WIQL, which otherwise lists ids to be read one
    /// batch at a time; ALM, whose query cannot pair an id with a version, leaves them out
    /// where there are a page of them or more and reads apart those whose `ver-stamp` moved
    /// since; ServiceNow reads whole rows with the scan and lists them).
    pub known: Vec<(ItemId, Version)>,
}

impl ChangeOptions {
    /// Sets [`ChangeOptions::known`].
    #[must_use]
    pub fn known(mut self, known: impl IntoIterator<Item = (ItemId, Version)>) -> Self {
        self.known = known.into_iter().collect();
        self
    }

    /// Sets the page size.
    #[must_use]
    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = Some(n);
        self
    }

    /// Sets the projection.
    #[must_use]
    pub fn fields(mut self, fields: impl IntoIterator<Item = impl Into<FieldName>>) -> Self {
        self.fields = Some(fields.into_iter().map(Into::into).collect());
        self
    }
}

/// Options of [`Repository::get_many`](crate::Repository::get_many).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GetOptions {
    /// Read only these fields; `None`: all.
    pub fields: Option<Vec<FieldName>>,
}

impl GetOptions {
    /// Sets the projection.
    #[must_use]
    pub fn fields(mut self, fields: impl IntoIterator<Item = impl Into<FieldName>>) -> Self {
        self.fields = Some(fields.into_iter().map(Into::into).collect());
        self
    }
}

/// Options of [`Repository::create`](crate::Repository::create).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreateOptions {
    /// The correlation key to record in the new item, in the same request.
    pub correlation: Option<CorrelationKey>,
    /// The fields the caller needs of the item the create answers (the backend adds its
    /// own); `None`: all. A backend whose API cannot narrow its answer answers more.
    pub answer_fields: Option<Vec<FieldName>>,
}

impl CreateOptions {
    /// Sets the correlation key.
    #[must_use]
    pub fn correlation(mut self, key: impl Into<CorrelationKey>) -> Self {
        self.correlation = Some(key.into());
        self
    }

    /// Sets [`CreateOptions::answer_fields`].
    #[must_use]
    pub fn answer_fields(mut self, fields: impl IntoIterator<Item = impl Into<FieldName>>) -> Self {
        self.answer_fields = Some(fields.into_iter().map(Into::into).collect());
        self
    }
}

impl ItemId {
    /// The distinct numeric ids among `ids`, ascending: what a system with numeric ids (Azure
    /// DevOps, ALM) reads. An id that is not a number names no item there and is left out.
    pub fn distinct_numbers(ids: &[ItemId]) -> Vec<u64> {
        let mut n: Vec<u64> = ids.iter().filter_map(|i| i.as_str().parse().ok()).collect();
        n.sort_unstable();
        n.dedup();
        n
    }
}

/// How an adapter holds an update to the version its caller read
/// ([`UpdateOptions::if_version`]) where the API has no conditional write — ServiceNow's Table
/// API, ALM's collections — but a version count every update grows by exactly one
/// (`sys_mod_count`, `ver-stamp`; ADR 0011, ADR 0020).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum VersionCheck {
    /// Checked on the item the write answers: a count more than one above `if_version`
    /// means another update came after the caller's read, and the write — applied over it —
    /// answers `Conflict`, so the caller reads both sides again and the other update's
    /// changes still flow (a sync kernel does). No read of its own: a page of updates costs its
    /// write requests only. What it cannot keep: an edit, between the caller's read and the
    /// write, to a field the write sets (the write's value stands). The adapter then declares
    /// no `optimistic_concurrency`: a stale `if_version` is answered after the fact.
    AfterWrite,
    /// Also read just before the write (one read for many updates), refusing an update whose
    /// item moved since the caller's read with `Conflict` before anything is written: an edit
    /// to a field the write sets is kept unless it lands in the round trip between that read
    /// and the write. An update that carries the item as the caller's own write before it was
    /// answered ([`UpdateOptions::answered`]: a walk's next step) is checked on that answer
    /// instead, and the window is from that write's landing to this one (ADR 0023). The
    /// default: what `optimistic_concurrency` promises.
    #[default]
    ReadBefore,
}

/// Options of [`Repository::update`](crate::Repository::update).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct UpdateOptions {
    /// Apply only if the item is still at this version, else fail with
    /// [`ErrorKind::Conflict`](crate::ErrorKind::Conflict).
    pub if_version: Option<Version>,
    /// The fields the caller needs of the item the update answers (the backend adds its
    /// own); `None`: all. A backend whose API cannot narrow its answer answers more.
    pub answer_fields: Option<Vec<FieldName>>,
    /// The item as the caller's own write before this one was answered with a moment ago,
    /// at [`if_version`](Self::if_version): a write of a sequence (a create, then the steps
    /// of a workflow walk). A backend that reads an item just before writing it — to check its
    /// version, or the workflow's transition from the state it is in — may check against this
    /// instead: it is what that read finds unless another client wrote in between, and a
    /// backend that checks the version sequence of its answer tells that after the fact.
    /// Ignored where its version is not `if_version`.
    pub answered: Option<Box<WorkItem>>,
}

impl UpdateOptions {
    /// Sets [`UpdateOptions::answered`].
    #[must_use]
    pub fn answered(mut self, item: WorkItem) -> Self {
        self.answered = Some(Box::new(item));
        self
    }

    /// The item [`answered`](Self::answered) a moment ago, where it is at
    /// [`if_version`](Self::if_version) and holds each of `fields`: what a read just before
    /// the write would find but for another client's write in between.
    pub fn answered_at_version(&self, fields: &[&str]) -> Option<&WorkItem> {
        self.answered.as_deref().filter(|a| {
            self.if_version.as_ref().is_none_or(|v| *v == a.version)
                && fields.iter().all(|f| a.fields.contains(f))
        })
    }

    /// Sets the expected version.
    #[must_use]
    pub fn if_version(mut self, v: impl Into<Version>) -> Self {
        self.if_version = Some(v.into());
        self
    }

    /// Sets [`UpdateOptions::answer_fields`].
    #[must_use]
    pub fn answer_fields(mut self, fields: impl IntoIterator<Item = impl Into<FieldName>>) -> Self {
        self.answer_fields = Some(fields.into_iter().map(Into::into).collect());
        self
    }

    /// Checks the expected version against the item as it is now, for a backend that reads
    /// the item before it writes; `what` is the system's name for the version (`ver-stamp`,
    /// `sys_mod_count`).
    ///
    /// # Errors
    /// [`ErrorKind::Conflict`](crate::ErrorKind::Conflict) naming the item and both versions
    /// when they differ.
    pub fn check_version(&self, current: &WorkItem, what: &str) -> crate::Result<()> {
        match &self.if_version {
            Some(expected) if *expected != current.version => Err(crate::Error::conflict(format!(
                "{} {} is at {what} {}, not {expected}",
                current.item_type, current.id, current.version
            ))
            .with_item(current.item_type.clone(), current.id.clone())),
            _ => Ok(()),
        }
    }
}

/// For systems without a conditional write, whose version counts the item's updates one by one
/// (ServiceNow `sys_mod_count`, ALM `ver-stamp`): the item a write answered, checked against the
/// version read just before it. Grown by more than one, another update came between the check
/// and the write, which was applied over it: a [`Conflict`](crate::ErrorKind::Conflict) after
/// the fact, so that the caller reads again and re-plans instead of taking the other write's
/// changes for its own (ADR 0011). Versions that are not counts pass.
///
/// # Errors
/// [`ErrorKind::Conflict`](crate::ErrorKind::Conflict) naming the item, the counter and both
/// counts.
pub fn written_in_sequence(
    counter: &str,
    before: &Version,
    after: WorkItem,
) -> crate::Result<WorkItem> {
    match (
        before.as_str().parse::<u64>(),
        after.version.as_str().parse::<u64>(),
    ) {
        (Ok(b), Ok(a)) if a > b + 1 => Err(crate::Error::conflict(format!(
            "{} {} went from {counter} {b} to {a}: another update came between the version \
             check and this write, which was applied over it; read it again",
            after.item_type, after.id
        ))
        .with_item(after.item_type.clone(), after.id.clone())),
        _ => Ok(after),
    }
}

/// One write of [`Repository::write_many`](crate::Repository::write_many).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Write {
    /// Create an item.
    Create {
        /// Its type.
        item_type: ItemType,
        /// Its fields.
        fields: FieldMap,
        /// Options.
        options: CreateOptions,
    },
    /// Update an item.
    Update {
        /// Its type.
        item_type: ItemType,
        /// Its id.
        id: ItemId,
        /// The fields to change.
        changes: FieldMap,
        /// Options.
        options: UpdateOptions,
    },
}

impl Write {
    /// A create.
    pub fn create(item_type: impl Into<ItemType>, fields: FieldMap) -> Self {
        Write::Create {
            item_type: item_type.into(),
            fields,
            options: CreateOptions::default(),
        }
    }

    /// An update.
    pub fn update(
        item_type: impl Into<ItemType>,
        id: impl Into<ItemId>,
        changes: FieldMap,
    ) -> Self {
        Write::Update {
            item_type: item_type.into(),
            id: id.into(),
            changes,
            options: UpdateOptions::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    /// Every field of every item a chunk holds (items, twins, baselines, plans, pending
    /// writes) is a slot of a field map sized by the largest value: the large values are
    /// boxed, so a slot stays small (a value was 104 bytes with a `Person` inline), and their
    /// stored form is unchanged.
    #[test]
    fn a_value_is_small_and_boxing_leaves_its_stored_form_alone() {
        assert!(std::mem::size_of::<FieldValue>() <= 32);
        let p = FieldValue::from(Person::login("abel.tuter"));
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"type":"person","value":{"login":"abel.tuter"}}"#);
        assert_eq!(serde_json::from_str::<FieldValue>(&json).unwrap(), p);
    }

    #[test]
    fn what_a_backend_cannot_keep_is_refused_before_anything_is_sent() {
        let mut c = Capabilities::default();
        c.check_comment(&NewComment::public("hi")).unwrap();
        let e = c.check_comment(&NewComment::internal("hi")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        c.internal_comments = true;
        c.check_comment(&NewComment::internal("hi")).unwrap();
        let a = NewAttachment::new("big.bin", "application/octet-stream", vec![0u8; 11]);
        c.check_upload(&a).unwrap();
        c.max_attachment_size = Some(10);
        let e = c.check_upload(&a).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.value(), Some("big.bin"));
        assert!(
            e.to_string().contains("11 bytes is over the limit of 10"),
            "{e}"
        );
    }
}
