//! From `cargo add` to a running two-system sync, with no accounts: the ServiceNow and Azure
//! DevOps simulators start in this process, a ticket is escalated, one round makes its Bug and
//! brings the Bug's state back. Against real instances, point the two configs at them (see
//! `examples/incident_escalation.rs`) and drop the simulators.
//!
//! ```text
//! cargo run --example quickstart --features servicenow,azure-devops,sim
//! ```
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use workbridge::azure_devops::{AzureDevOpsConfig, AzureDevOpsRepository};
use workbridge::http::ClientOptions;
use workbridge::mapping::Mapping;
use workbridge::servicenow::{ServiceNowConfig, ServiceNowRepository};
use workbridge::sim::azure_devops::AzureDevOpsSim;
use workbridge::sim::servicenow::ServiceNowSim;
use workbridge::sync::{MemoryStore, Side, SyncPair};
use workbridge::{CreateOptions, Error, FieldMap, ItemType, Repository, RepositoryExt, Result};

#[tokio::main]
async fn main() -> Result<()> {
    // Two simulators on 127.0.0.1 (plain http is allowed to loopback only).
    let sim_err = |e: std::io::Error| Error::config(format!("a simulator did not start: {e}"));
    let sn_sim = ServiceNowSim::builder()
        .user("integration", "secret", &["admin"])
        .spawn()
        .await
        .map_err(sim_err)?;
    let ado_sim = AzureDevOpsSim::builder()
        .pat("token")
        .custom_field("Custom.ServiceNowTicket", "ServiceNow Ticket")
        .spawn()
        .await
        .map_err(sim_err)?;
    let local = ClientOptions::default().allow_http(true);
    let ops = Arc::new(ServiceNowRepository::new(
        ServiceNowConfig::builder(sn_sim.url())
            .basic("integration", "secret")
            .client_options(local.clone())
            .build(),
    )?);
    let dev = Arc::new(AzureDevOpsRepository::new(
        AzureDevOpsConfig::builder(ado_sim.collection_url(), "Fabrikam")
            .pat("token")
            .client_options(local)
            .build(),
    )?);

    // Ops escalate a ticket to Dev.
    let ticket = ops
        .create(
            &ItemType::from("incident"),
            &FieldMap::new()
                .with("short_description", "Checkout fails for EUR")
                .with("category", "software")
                .with("u_escalate_to_dev", true),
            &CreateOptions::default(),
        )
        .await?;

    // The pair: named sides, both schemas read and the spec checked before anything runs.
    let pair = SyncPair::builder()
        .left(ops.clone())
        .right(dev.clone())
        .mapping(Mapping::from_toml_str(include_str!(
            "../docs/mappings/incident_escalation.toml"
        ))?)
        .store(Arc::new(MemoryStore::new()))
        .build()
        .await?;
    let report = pair.run_once().await.into_result()?;
    println!("{report}");

    let link = pair
        .link_of(Side::Left, &ticket.id)
        .await?
        .ok_or_else(|| Error::config("the ticket was not escalated"))?;
    let bug = dev.get(&ItemType::from("Bug"), &link.right).await?;
    let back = ops.get(&ItemType::from("incident"), &ticket.id).await?;
    println!(
        "Bug {}: {:?}; the ticket's dev status: {:?}",
        bug.id,
        bug.field("System.Title").map(ToString::to_string),
        back.field("u_dev_status").map(ToString::to_string),
    );
    Ok(())
}
