//! Integration tests of workbridge-core: the conformance suite over the in-memory backend and
//! every wrapper, and the wrappers' own behaviour.

mod conformance;
mod wrappers;

use workbridge_core::{FieldDef, FieldKind, FieldMap, InMemoryRepository, Schema, TransitionGraph};
use workbridge_testkit::Fixture;

/// An incident type with a workflow, like a small ServiceNow table.
pub fn incident_schema() -> Schema {
    Schema::new("incident")
        .field(FieldDef::new("short_description", FieldKind::Text).required())
        .field(FieldDef::new("description", FieldKind::Html))
        .field(FieldDef::new("priority", FieldKind::Choice).allowed(["1", "2", "3", "4"]))
        .field(FieldDef::new("state", FieldKind::Choice))
        .field(FieldDef::new("close_code", FieldKind::Choice).allowed(["Solved", "Workaround"]))
        .field(FieldDef::new("number", FieldKind::Text).read_only())
        .workflow(
            TransitionGraph::new("state")
                .initial("New")
                .transition("New", "In Progress")
                .transition("In Progress", "Resolved")
                .transition("Resolved", "Closed")
                .transition("Resolved", "In Progress")
                .require("In Progress", "Resolved", ["close_code"]),
        )
}

/// The in-memory reference backend with the incident schema.
pub fn memory() -> InMemoryRepository {
    InMemoryRepository::builder("conformance")
        .schema(incident_schema())
        .build()
}

/// The fixture for [`memory`].
pub fn fixture() -> Fixture {
    Fixture::new("incident", "short_description")
        .with_field("priority", workbridge_core::FieldValue::Choice("3".into()))
        .with_invalid_transition(FieldMap::new().with("state", "Closed"))
}
