//! The one public error type, [`Error`], and its [`ErrorKind`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::model::{FieldName, ItemId, ItemType};

/// What went wrong, in terms a caller can act on.
///
/// The kind decides what a sync engine does next: retry later ([`ErrorKind::RateLimited`],
/// [`ErrorKind::Unavailable`]), re-read and re-plan ([`ErrorKind::Conflict`]), park the item
/// ([`ErrorKind::InvalidInput`], [`ErrorKind::InvalidTransition`]), or stop and fix the setup
/// ([`ErrorKind::Config`], [`ErrorKind::Unauthenticated`], [`ErrorKind::PermissionDenied`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The item, type, attachment or route does not exist.
    NotFound,
    /// The credentials are missing, wrong or expired.
    Unauthenticated,
    /// The credentials are valid but lack a role or permission.
    PermissionDenied,
    /// The item changed since the version the caller based its write on.
    Conflict,
    /// The server asked us to slow down; see [`Error::retry_after`].
    RateLimited,
    /// The target rejected a value: the error names the field and the value.
    InvalidInput,
    /// The workflow does not allow the requested state change; the error names from and to.
    InvalidTransition,
    /// The backend cannot do this at all (see [`crate::Capabilities`]).
    Unsupported,
    /// The configuration is invalid (bad URL, missing credential, refused plain HTTP, ...).
    Config,
    /// The server said something we cannot read; the error names the path in the payload.
    Protocol,
    /// The server or network is unavailable right now (5xx, timeout, connection refused).
    Unavailable,
    /// Anything else.
    Unexpected,
}

impl ErrorKind {
    /// Whether errors of this kind are temporary by default (worth retrying later unchanged).
    pub fn is_temporary_by_default(self) -> bool {
        matches!(self, ErrorKind::RateLimited | ErrorKind::Unavailable)
    }

    /// A short lower-case name of the kind, as used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::Conflict => "conflict",
            ErrorKind::RateLimited => "rate limited",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::InvalidTransition => "invalid transition",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Config => "configuration error",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Unexpected => "unexpected error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an error happened: which system, item, field, value, HTTP status and request.
///
/// Every member is optional; adapters fill in what they know. Values are truncated when they
/// are long, and never hold credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorContext {
    /// The system, as the repository's `Display` shows it (e.g. `servicenow:https://x.service-now.com`).
    pub system: Option<String>,
    /// The item type involved.
    pub item_type: Option<ItemType>,
    /// The item involved.
    pub item_id: Option<ItemId>,
    /// The field involved (for [`ErrorKind::InvalidInput`]).
    pub field: Option<FieldName>,
    /// The offending value, rendered and truncated (for [`ErrorKind::InvalidInput`]).
    pub value: Option<String>,
    /// The workflow state moved from (for [`ErrorKind::InvalidTransition`]).
    pub from_state: Option<String>,
    /// The workflow state requested (for [`ErrorKind::InvalidTransition`]).
    pub to_state: Option<String>,
    /// The path in a response payload that could not be read (for [`ErrorKind::Protocol`]).
    pub path: Option<String>,
    /// The HTTP status of the response, if any.
    pub http_status: Option<u16>,
    /// The server's request or activity id, if it sent one.
    pub request_id: Option<String>,
}

/// The error of every workbridge operation.
///
/// It is cheap to clone (the source is shared), so a sync engine can keep it with a parked item
/// and report it at the same time.
///
/// ```
/// use workbridge_core::{Error, ErrorKind};
/// let e = Error::invalid_input("priority", "7", "not one of the allowed values 1, 2, 3");
/// assert_eq!(e.kind(), ErrorKind::InvalidInput);
/// assert!(!e.is_temporary());
/// assert_eq!(
///     e.to_string(),
///     "invalid input: field `priority` value \"7\": not one of the allowed values 1, 2, 3"
/// );
/// ```
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    temporary: bool,
    maybe_applied: bool,
    retry_after: Option<Duration>,
    operation: Option<&'static str>,
    context: Box<ErrorContext>,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

const MAX_VALUE_CHARS: usize = 200;

/// Truncates `s` to at most `max` characters, marking the cut with `…`.
pub fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((idx, _)) => format!("{}…", &s[..idx]),
    }
}

impl Error {
    /// A new error of `kind` with a message; temporary as the kind is by default.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            temporary: kind.is_temporary_by_default(),
            maybe_applied: false,
            retry_after: None,
            operation: None,
            context: Box::default(),
            source: None,
        }
    }

    /// [`ErrorKind::NotFound`] for an item.
    pub fn not_found(item_type: &ItemType, id: &ItemId) -> Self {
        Error::new(
            ErrorKind::NotFound,
            format!("{item_type} {id} does not exist"),
        )
        .with_item(item_type.clone(), id.clone())
    }

    /// [`ErrorKind::InvalidInput`] naming the field and the value.
    pub fn invalid_input(
        field: impl Into<FieldName>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        let mut e = Error::new(ErrorKind::InvalidInput, reason);
        e.context.field = Some(field.into());
        e.context.value = Some(truncate_chars(&value.to_string(), MAX_VALUE_CHARS));
        e
    }

    /// [`ErrorKind::InvalidTransition`] naming the states.
    pub fn invalid_transition(
        from: impl Into<String>,
        to: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        let mut e = Error::new(ErrorKind::InvalidTransition, reason);
        e.context.from_state = Some(from.into());
        e.context.to_state = Some(to.into());
        e
    }

    /// [`ErrorKind::Protocol`]: the payload could not be read at `path`.
    pub fn protocol(path: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Error::new(ErrorKind::Protocol, message);
        e.context.path = Some(path.into());
        e
    }

    /// [`ErrorKind::Unsupported`] for an operation this backend cannot perform.
    pub fn unsupported(operation: &'static str, why: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unsupported, why).with_operation(operation)
    }

    /// [`ErrorKind::Conflict`] with a message.
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Conflict, message)
    }

    /// [`ErrorKind::Config`] with a message.
    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without context.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    /// Whether the failed call may have taken effect all the same: a request that timed out or
    /// whose answer was cut off after it was sent. A write failing so is not known not to have
    /// happened (the sync kernel does not create the same twin again while it may still land).
    pub fn maybe_applied(&self) -> bool {
        self.maybe_applied
    }

    /// Marks whether the failed call may have taken effect (see [`Error::maybe_applied`]).
    #[must_use]
    pub fn with_maybe_applied(mut self, maybe: bool) -> Self {
        self.maybe_applied = maybe;
        self
    }

    /// How long the server asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The operation that failed (`create`, `update`, `changes`, ...).
    pub fn operation(&self) -> Option<&'static str> {
        self.operation
    }

    /// Where it happened.
    pub fn context(&self) -> &ErrorContext {
        &self.context
    }

    /// The field named by an [`ErrorKind::InvalidInput`] error.
    pub fn field(&self) -> Option<&FieldName> {
        self.context.field.as_ref()
    }

    /// The value named by an [`ErrorKind::InvalidInput`] error.
    pub fn value(&self) -> Option<&str> {
        self.context.value.as_deref()
    }

    /// Marks the error temporary or permanent.
    #[must_use]
    pub fn with_temporary(mut self, temporary: bool) -> Self {
        self.temporary = temporary;
        self
    }

    /// Sets how long to wait before retrying.
    #[must_use]
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// Sets the operation, unless one is already set.
    #[must_use]
    pub fn with_operation(mut self, operation: &'static str) -> Self {
        self.operation.get_or_insert(operation);
        self
    }

    /// Sets the operation, replacing one an inner call set: for a trait method that is built
    /// from other operations (comments read through a `get`) and must name itself.
    #[must_use]
    pub fn in_operation(mut self, operation: &'static str) -> Self {
        self.operation = Some(operation);
        self
    }

    /// Sets the item type and id, each unless an inner call set it: where a repository
    /// method has them.
    #[must_use]
    pub fn or_item(mut self, item_type: Option<&ItemType>, id: Option<&ItemId>) -> Self {
        if let Some(t) = item_type {
            self.context.item_type.get_or_insert_with(|| t.clone());
        }
        if let Some(id) = id {
            self.context.item_id.get_or_insert_with(|| id.clone());
        }
        self
    }

    /// Sets the system, unless one is already set.
    #[must_use]
    pub fn with_system(mut self, system: impl fmt::Display) -> Self {
        if self.context.system.is_none() {
            self.context.system = Some(system.to_string());
        }
        self
    }

    /// Sets the item type and id.
    #[must_use]
    pub fn with_item(mut self, item_type: ItemType, id: ItemId) -> Self {
        self.context.item_type = Some(item_type);
        self.context.item_id = Some(id);
        self
    }

    /// Sets the item type.
    #[must_use]
    pub fn with_item_type(mut self, item_type: ItemType) -> Self {
        self.context.item_type.get_or_insert(item_type);
        self
    }

    /// Sets the HTTP status.
    #[must_use]
    pub fn with_http_status(mut self, status: u16) -> Self {
        self.context.http_status = Some(status);
        self
    }

    /// Sets the server's request id.
    #[must_use]
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.context.request_id = Some(id.into());
        self
    }

    /// Sets the field the error is about.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<FieldName>) -> Self {
        self.context.field = Some(field.into());
        self
    }

    /// Sets the payload path (for protocol errors).
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.context.path = Some(path.into());
        self
    }

    /// Sets the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(op) = self.operation {
            write!(f, "{op} failed: ")?;
        }
        write!(f, "{}", self.kind)?;
        let c = &self.context;
        if let Some(field) = &c.field {
            write!(f, ": field `{field}`")?;
            if let Some(v) = &c.value {
                write!(f, " value {v:?}")?;
            }
        }
        if let (Some(from), Some(to)) = (&c.from_state, &c.to_state) {
            write!(f, ": from {from:?} to {to:?}")?;
        }
        if let Some(path) = &c.path {
            write!(f, ": at `{path}`")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        let mut extra = Vec::new();
        if let Some(s) = &c.system {
            extra.push(format!("system {s}"));
        }
        match (&c.item_type, &c.item_id) {
            (Some(t), Some(id)) => extra.push(format!("item {t} {id}")),
            (Some(t), None) => extra.push(format!("type {t}")),
            _ => {}
        }
        if let Some(s) = c.http_status {
            extra.push(format!("HTTP {s}"));
        }
        if let Some(r) = &c.request_id {
            extra.push(format!("request {r}"));
        }
        if let Some(w) = self.retry_after {
            extra.push(format!("retry after {}s", w.as_secs_f64()));
        }
        if !extra.is_empty() {
            write!(f, " ({})", extra.join(", "))?;
        }
        Ok(())
    }
}

/// Only what is known: `main` returning `Err` prints this, so it names the kind, the
/// message and each piece of context that is set, and nothing empty.
impl ErrorContext {
    /// The textual context that is set, by name, as `Debug` and `Serialize` show it.
    fn texts(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("system", self.system.as_deref()),
            ("item_type", self.item_type.as_ref().map(ItemType::as_str)),
            ("item_id", self.item_id.as_ref().map(ItemId::as_str)),
            ("field", self.field.as_ref().map(FieldName::as_str)),
            ("value", self.value.as_deref()),
            ("from_state", self.from_state.as_deref()),
            ("to_state", self.to_state.as_deref()),
            ("path", self.path.as_deref()),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.map(|v| (name, v)))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(op) = self.operation {
            d.field("operation", &op);
        }
        let c = &self.context;
        for (name, v) in c.texts() {
            d.field(name, &v);
        }
        if let Some(status) = c.http_status {
            d.field("http_status", &status);
        }
        if let Some(id) = &c.request_id {
            d.field("request_id", id);
        }
        if self.temporary {
            d.field("temporary", &true);
        }
        if let Some(wait) = self.retry_after {
            d.field("retry_after", &wait);
        }
        if let Some(s) = &self.source {
            d.field("source", &s.to_string());
        }
        d.finish()
    }
}

/// As `Debug` shows it: the kind, the message and only the context that is known (a report
/// written as JSON, a log line). `retry_after` in milliseconds; the source as text.
impl serde::Serialize for Error {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("kind", &self.kind)?;
        m.serialize_entry("message", &self.message)?;
        if let Some(op) = self.operation {
            m.serialize_entry("operation", op)?;
        }
        let c = &self.context;
        for (name, v) in c.texts() {
            m.serialize_entry(name, v)?;
        }
        if let Some(status) = c.http_status {
            m.serialize_entry("http_status", &status)?;
        }
        if let Some(id) = &c.request_id {
            m.serialize_entry("request_id", id)?;
        }
        if self.temporary {
            m.serialize_entry("temporary", &true)?;
        }
        if let Some(wait) = self.retry_after {
            m.serialize_entry(
                "retry_after_ms",
                &u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            )?;
        }
        if let Some(s) = &self.source {
            m.serialize_entry("source", &s.to_string())?;
        }
        m.end()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_context() {
        let e = Error::invalid_transition("New", "Closed", "no such transition")
            .with_item(ItemType::from("Bug"), ItemId::from("42"))
            .with_operation("update")
            .with_system("memory:dev");
        assert_eq!(
            e.to_string(),
            "update failed: invalid transition: from \"New\" to \"Closed\": no such transition (system memory:dev, item Bug 42)"
        );
    }

    #[test]
    fn serializes_as_it_shows_only_what_is_known() {
        let e = Error::invalid_input("priority", "9", "not a choice")
            .with_item(ItemType::from("incident"), ItemId::from("46d44"))
            .with_operation("update")
            .with_system("servicenow:https://dev.service-now.com");
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "invalid_input");
        assert_eq!(v["operation"], "update");
        assert_eq!(v["item_id"], "46d44");
        assert_eq!(v["field"], "priority");
        assert_eq!(v["value"], "9");
        assert!(
            v.get("from_state").is_none() && v.get("http_status").is_none(),
            "{v}"
        );
        let bare = serde_json::to_string(&Error::new(ErrorKind::Conflict, "stale")).unwrap();
        assert_eq!(bare, r#"{"kind":"conflict","message":"stale"}"#);
    }

    #[test]
    fn debug_shows_only_what_is_known() {
        let bare = Error::new(ErrorKind::Conflict, "stale");
        assert_eq!(
            format!("{bare:?}"),
            r#"Error { kind: Conflict, message: "stale" }"#
        );
        let e = Error::invalid_transition("New", "Closed", "no such transition")
            .with_item(ItemType::from("Bug"), ItemId::from("42"))
            .with_operation("update")
            .with_system("memory:dev");
        let d = format!("{e:?}");
        assert!(!d.contains("None") && !d.contains("context"), "{d}");
        for part in [
            r#"operation: "update""#,
            r#"system: "memory:dev""#,
            r#"item_type: "Bug""#,
            r#"item_id: "42""#,
            r#"from_state: "New""#,
            r#"to_state: "Closed""#,
        ] {
            assert!(d.contains(part), "{part} in {d}");
        }
    }

    #[test]
    fn rate_limited_is_temporary_and_carries_wait() {
        let e = Error::new(ErrorKind::RateLimited, "slow down")
            .with_retry_after(Duration::from_secs(3))
            .with_http_status(429);
        assert!(e.is_temporary());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(e.to_string().contains("HTTP 429"));
        assert!(e.to_string().contains("retry after 3s"));
    }

    #[test]
    fn long_values_are_truncated() {
        let v = "x".repeat(1000);
        let e = Error::invalid_input("description", &v, "too long");
        assert_eq!(
            e.value().map(|v| v.chars().count()),
            Some(MAX_VALUE_CHARS + 1)
        );
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate_chars("ééé", 2), "éé…");
        assert_eq!(truncate_chars("ab", 2), "ab");
    }
}
