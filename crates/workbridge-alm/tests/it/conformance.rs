//! The testkit conformance suite over the simulator, in JSON and in XML.

use chrono::NaiveDate;
use workbridge_alm::Format;
use workbridge_core::{FieldMap, FieldValue, Person};
use workbridge_testkit::Fixture;

pub(crate) async fn json() -> workbridge_alm::AlmRepository {
    let sim = crate::sim().await;
    let r = crate::repo(&sim, Format::Json);
    std::mem::forget(sim);
    r
}

pub(crate) async fn xml() -> workbridge_alm::AlmRepository {
    let sim = crate::sim().await;
    let r = crate::repo(&sim, Format::Xml);
    std::mem::forget(sim);
    r
}

pub(crate) fn fixture() -> Fixture {
    Fixture::new("defects", "name")
        .with_field("severity", FieldValue::Choice("2-Medium".into()))
        .with_field("detected-by", Person::login("qa"))
        .with_field(
            "creation-time",
            FieldValue::Date(NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()),
        )
        .with_field("user-01", FieldValue::Choice("Billing".into()))
        .with_invalid_transition(
            FieldMap::new().with("status", FieldValue::Choice("Closed".into())),
        )
        .with_paging(30, 7)
}

mod in_json {
    workbridge_testkit::conformance_tests!(repo = super::json(), fixture = super::fixture());
}

mod in_xml {
    workbridge_testkit::conformance_tests!(repo = super::xml(), fixture = super::fixture());
}
