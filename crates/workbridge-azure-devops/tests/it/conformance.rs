//! The testkit conformance suite over the simulator: Services, and TFS 2018 on-premises.

use workbridge_azure_devops::ServerVersion;
use workbridge_core::{FieldMap, FieldValue};
use workbridge_sim::azure_devops::ServerVersion as SimVersion;
use workbridge_testkit::Fixture;

pub(crate) async fn services() -> workbridge_azure_devops::AzureDevOpsRepository {
    let sim = crate::sim(SimVersion::Services).await;
    let repo = crate::repo(&sim, ServerVersion::Services, true);
    std::mem::forget(sim);
    repo
}

pub(crate) async fn tfs2018_with_tags() -> workbridge_azure_devops::AzureDevOpsRepository {
    let sim = crate::sim(SimVersion::Tfs2018).await;
    let repo = crate::repo(&sim, ServerVersion::Tfs2018, false);
    std::mem::forget(sim);
    repo
}

pub(crate) fn fixture() -> Fixture {
    // A User Story cannot go from New straight to Resolved.
    Fixture::new("User Story", "System.Title")
        .with_field(
            "Microsoft.VSTS.Common.Priority",
            FieldValue::Choice("2".into()),
        )
        .with_field(
            "Microsoft.VSTS.Common.AcceptanceCriteria",
            FieldValue::Html("<div>Invoices print.</div>".into()),
        )
        .with_invalid_transition(
            FieldMap::new().with("System.State", FieldValue::Choice("Resolved".into())),
        )
}

mod on_services {
    workbridge_testkit::conformance_tests!(repo = super::services(), fixture = super::fixture());
}

mod on_tfs2018 {
    workbridge_testkit::conformance_tests!(
        repo = super::tfs2018_with_tags(),
        fixture = super::fixture()
    );
}
