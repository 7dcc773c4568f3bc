//! The testkit conformance suite over the simulator.

use workbridge_core::{FieldMap, FieldValue};
use workbridge_testkit::Fixture;

/// A fresh simulator and the adapter on it. The simulator lives as long as the test's runtime.
pub(crate) async fn sim_repo() -> workbridge_servicenow::ServiceNowRepository {
    let sim = crate::sim().await;
    let repo = crate::repo(&sim);
    std::mem::forget(sim);
    repo
}

/// The incident fixture.
pub(crate) fn fixture() -> Fixture {
    Fixture::new("incident", "short_description")
        .with_field("category", FieldValue::Choice("software".into()))
        .with_field("description", "Seen by several users since Monday.")
        .with_invalid_transition(FieldMap::new().with("state", FieldValue::Choice("7".into())))
        .with_missing_id("0123456789abcdef0123456789abcdef")
}

mod suite {
    workbridge_testkit::conformance_tests!(repo = super::sim_repo(), fixture = super::fixture());
}
