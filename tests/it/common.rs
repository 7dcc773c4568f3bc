//! What the end-to-end tests share: the two simulators, adapters on them, the documented spec,
//! a scratch directory.

use std::sync::Arc;
use std::time::Duration;

use workbridge::mapping::Mapping;
use workbridge::{FieldMap, FieldValue, ItemId, ItemType, Repository, WorkItem};
use workbridge_azure_devops::{AzureDevOpsConfig, AzureDevOpsRepository};
use workbridge_http::{BackoffConfig, ClientOptions, RetryConfig};
use workbridge_servicenow::{ServiceNowConfig, ServiceNowRepository, VersionCheck};
use workbridge_sim::azure_devops::AzureDevOpsSim;
use workbridge_sim::servicenow::ServiceNowSim;

pub(crate) fn incident() -> ItemType {
    ItemType::from("incident")
}

pub(crate) fn bug() -> ItemType {
    ItemType::from("Bug")
}

/// A field as text, empty when absent.
pub(crate) fn s(item: &WorkItem, f: &str) -> String {
    item.field(f).map(ToString::to_string).unwrap_or_default()
}

/// The ServiceNow and Azure DevOps simulators, as the escalation spec needs them.
pub(crate) struct Sims {
    pub(crate) sn: ServiceNowSim,
    pub(crate) ado: AzureDevOpsSim,
}

pub(crate) async fn sims() -> Sims {
    let sn = ServiceNowSim::builder()
        .user("admin", "admin", &["admin"])
        .spawn()
        .await
        .unwrap();
    let ado = AzureDevOpsSim::builder()
        .pat("TOKEN")
        .custom_field("Custom.ServiceNowTicket", "ServiceNow Ticket")
        .spawn()
        .await
        .unwrap();
    Sims { sn, ado }
}

/// Adapters on the simulators.
pub(crate) struct Sides {
    pub(crate) sn: Arc<ServiceNowRepository>,
    pub(crate) ado: Arc<AzureDevOpsRepository>,
}

/// Adapters on `sims`, retrying transient failures `retries` times with millisecond waits.
pub(crate) fn sides(sims: &Sims, retries: u32) -> Sides {
    sides_checked(sims, retries, VersionCheck::default())
}

/// As [`sides`], ServiceNow holding updates to their versions as `check` says.
pub(crate) fn sides_checked(sims: &Sims, retries: u32, check: VersionCheck) -> Sides {
    let options = ClientOptions::default().allow_http(true).retry(
        RetryConfig::default().max_retries(retries).backoff(
            BackoffConfig::default()
                .initial(Duration::from_millis(1))
                .max(Duration::from_millis(2)),
        ),
    );
    Sides {
        sn: Arc::new(
            ServiceNowRepository::new(
                ServiceNowConfig::builder(sims.sn.url())
                    .basic("admin", "admin")
                    .client_options(options.clone())
                    .version_check(check)
                    .build(),
            )
            .unwrap(),
        ),
        ado: Arc::new(
            AzureDevOpsRepository::new(
                AzureDevOpsConfig::builder(sims.ado.collection_url(), "Fabrikam")
                    .pat("TOKEN")
                    .client_options(options)
                    .build(),
            )
            .unwrap(),
        ),
    }
}

/// A documented spec from `docs/mappings/`.
pub(crate) fn spec(name: &str) -> Mapping {
    Mapping::from_path(format!(
        "{}/docs/mappings/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A fresh scratch directory's `state.db`.
pub(crate) fn temp_db(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("workbridge-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("state.db")
}

/// A software ticket with `title`, as Ops open it.
pub(crate) async fn software_ticket(sn: &ServiceNowRepository, title: &str) -> WorkItem {
    sn.create(
        &incident(),
        &FieldMap::new()
            .with("short_description", title)
            .with("category", FieldValue::Choice("software".into())),
        &Default::default(),
    )
    .await
    .unwrap()
}

/// Dev moves a Bug to `state`.
pub(crate) async fn move_bug(ado: &AzureDevOpsRepository, id: &ItemId, state: &str) {
    ado.update(
        &bug(),
        id,
        &FieldMap::new().with("System.State", state),
        &Default::default(),
    )
    .await
    .unwrap();
}
