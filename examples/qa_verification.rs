//! QA verification across three systems: a ServiceNow ticket escalated to an Azure DevOps Bug;
//! the resolved Bug reaches QA as an HP ALM defect; QA's verdict closes (or reactivates) the
//! Bug, and the defect's status shows on the ServiceNow ticket so Ops can tell the customer.
//!
//! Three pairs, each with its own spec from `docs/mappings/`:
//!
//! - `incident_escalation.toml` — ticket ↔ Bug (the Bug's progress in `u_dev_status`);
//! - `qa_verification.toml` — Bug ↔ defect (created when the Bug is resolved);
//! - `qa_status.toml` — ticket ↔ defect (QA's status in `u_qa_status`), linked by this program
//!   from the two other pairs' links.
//!
//! It starts the three simulators in this process and plays two tickets through: one passes
//! QA, one fails it and goes back to Dev.
//!
//! ```text
//! cargo run --example qa_verification --features servicenow,azure-devops,alm
//! ```
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use workbridge::alm::{AlmConfig, AlmRepository};
use workbridge::azure_devops::{AzureDevOpsConfig, AzureDevOpsRepository};
use workbridge::http::ClientOptions;
use workbridge::mapping::Mapping;
use workbridge::servicenow::{ServiceNowConfig, ServiceNowRepository};
use workbridge::sim::alm::AlmSim;
use workbridge::sim::azure_devops::AzureDevOpsSim;
use workbridge::sim::servicenow::ServiceNowSim;
use workbridge::sync::{MemoryStore, Side, SyncOptions, SyncPair};
use workbridge::{
    Error, FieldMap, FieldValue, ItemId, ItemType, Repository, RepositoryExt, Result, WorkItem,
};

fn incident() -> ItemType {
    ItemType::from("incident")
}
fn bug() -> ItemType {
    ItemType::from("Bug")
}
fn defect() -> ItemType {
    ItemType::from("defects")
}

fn text(item: &WorkItem, field: &str) -> String {
    item.field(field)
        .filter(|v| !v.is_empty())
        .map_or_else(|| "-".to_owned(), ToString::to_string)
}

fn spec(name: &str) -> Result<Mapping> {
    Mapping::from_path(format!(
        "{}/docs/mappings/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

struct Flow {
    sn: Arc<ServiceNowRepository>,
    ado: Arc<AzureDevOpsRepository>,
    alm: Arc<AlmRepository>,
    escalation: SyncPair,
    verification: SyncPair,
    qa_status: SyncPair,
}

impl Flow {
    /// One pass of the three pairs, in the order the information flows; then the ticket ↔
    /// defect links the other two pairs imply.
    async fn sync(&self, what: &str) -> Result<()> {
        println!("\n— {what}");
        for (name, pair) in [
            ("escalation", &self.escalation),
            ("verification", &self.verification),
        ] {
            let r = pair.run_once().await;
            println!("  {name:<12} {r}");
            if let Some(e) = r.stopped {
                return Err(e);
            }
        }
        for link in self.verification.links().await? {
            let Some(ticket) = self.escalation.link_of(Side::Right, &link.left).await? else {
                continue;
            };
            if self
                .qa_status
                .link_of(Side::Left, &ticket.left)
                .await?
                .is_none()
            {
                let r = self
                    .qa_status
                    .link_existing(&ticket.left, &link.right)
                    .await;
                println!(
                    "  {:<12} linked ticket to defect {}: {r}",
                    "qa status", link.right
                );
            }
        }
        let r = self.qa_status.run_once().await;
        println!("  {:<12} {r}", "qa status");
        r.into_result().map(|_| ())
    }

    async fn defect_of(&self, ticket: &ItemId) -> Result<WorkItem> {
        let link = self
            .qa_status
            .link_of(Side::Left, ticket)
            .await?
            .ok_or_else(|| Error::config("no defect yet"))?;
        self.alm.get(&defect(), &link.right).await
    }

    async fn bug_of(&self, ticket: &ItemId) -> Result<WorkItem> {
        let link = self
            .escalation
            .link_of(Side::Left, ticket)
            .await?
            .ok_or_else(|| Error::config("no Bug yet"))?;
        self.ado.get(&bug(), &link.right).await
    }

    async fn qa(&self, ticket: &ItemId, statuses: &[&str]) -> Result<()> {
        let d = self.defect_of(ticket).await?;
        for s in statuses {
            self.alm
                .update(
                    &defect(),
                    &d.id,
                    &FieldMap::new().with("status", *s),
                    &Default::default(),
                )
                .await?;
        }
        Ok(())
    }

    async fn dev(&self, ticket: &ItemId, state: &str) -> Result<()> {
        let b = self.bug_of(ticket).await?;
        self.ado
            .update(
                &bug(),
                &b.id,
                &FieldMap::new().with("System.State", state),
                &Default::default(),
            )
            .await?;
        Ok(())
    }

    async fn show(&self, tickets: &[ItemId]) -> Result<()> {
        println!(
            "\n{:<11} {:<6} {:<24} {:<16} {:<4} {:<9} {:<12} {:<7} {:<8}",
            "ticket",
            "state",
            "dev status",
            "qa status",
            "bug",
            "bug state",
            "bug reason",
            "defect",
            "status"
        );
        for id in tickets {
            let t = self.sn.get(&incident(), id).await?;
            let b = self.bug_of(id).await?;
            let d = self.defect_of(id).await?;
            println!(
                "{:<11} {:<6} {:<24} {:<16} {:<4} {:<9} {:<12} {:<7} {:<8}",
                text(&t, "number"),
                text(&t, "state"),
                text(&t, "u_dev_status"),
                text(&t, "u_qa_status"),
                b.id.to_string(),
                text(&b, "System.State"),
                text(&b, "System.Reason"),
                d.id.to_string(),
                text(&d, "status")
            );
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let sn_sim = ServiceNowSim::builder()
        .user("integration", "integration-pw", &["admin"])
        .spawn()
        .await
        .map_err(|e| Error::config(e.to_string()))?;
    let ado_sim = AzureDevOpsSim::builder()
        .pat("example-token")
        .custom_field("Custom.ServiceNowTicket", "ServiceNow Ticket")
        .spawn()
        .await
        .map_err(|e| Error::config(e.to_string()))?;
    let alm_sim = AlmSim::builder()
        .user("qa", "qa-pw")
        .spawn()
        .await
        .map_err(|e| Error::config(e.to_string()))?;
    let loopback = ClientOptions::default().allow_http(true);
    let sn = Arc::new(ServiceNowRepository::new(
        ServiceNowConfig::builder(sn_sim.url())
            .basic("integration", "integration-pw")
            .client_options(loopback.clone())
            .build(),
    )?);
    let ado = Arc::new(AzureDevOpsRepository::new(
        AzureDevOpsConfig::builder(ado_sim.collection_url(), "Fabrikam")
            .pat("example-token")
            .client_options(loopback.clone())
            .build(),
    )?);
    let alm = Arc::new(AlmRepository::new(
        AlmConfig::builder(alm_sim.url(), "DEFAULT", "Demo")
            .password("qa", "qa-pw")
            // A user field for the sync's key: a defect whose create reply was lost is found
            // by it, not created twice.
            .correlation_field("Sync Key")
            .client_options(loopback)
            .build(),
    )?);

    let store = Arc::new(MemoryStore::new());
    let flow = Flow {
        escalation: SyncPair::new(
            sn.clone(),
            ado.clone(),
            spec("incident_escalation.toml")?,
            store.clone(),
        )?
        .with_id("escalation"),
        // The scope decides which Bugs get a defect; a Bug QA sends back keeps its defect.
        verification: SyncPair::new(
            ado.clone(),
            alm.clone(),
            spec("qa_verification.toml")?,
            store.clone(),
        )?
        .with_id("verification")
        .with_options(SyncOptions::default().retire_out_of_scope(false)),
        qa_status: SyncPair::new(sn.clone(), alm.clone(), spec("qa_status.toml")?, store)?
            .with_id("qa-status"),
        sn,
        ado,
        alm,
    };

    let mut tickets = Vec::new();
    for short in ["Invoices print blank", "Export to CSV drops accents"] {
        let t = flow
            .sn
            .create(
                &incident(),
                &FieldMap::new()
                    .with("short_description", short)
                    .with("description", "Reported by several branches.")
                    .with("category", FieldValue::Choice("software".into())),
                &Default::default(),
            )
            .await?;
        tickets.push(t.id);
    }
    let (pass, fail) = (&tickets[0], &tickets[1]);

    flow.sync("Ops escalated two software defects").await?;
    flow.dev(pass, "Active").await?;
    flow.dev(fail, "Active").await?;
    flow.sync("Dev started work").await?;
    flow.dev(pass, "Resolved").await?;
    flow.dev(fail, "Resolved").await?;
    flow.sync("Dev resolved both Bugs: each reaches QA as a defect, in Fixed")
        .await?;
    flow.qa(pass, &["Closed"]).await?;
    flow.qa(fail, &["Reopen"]).await?;
    flow.sync("QA verified one fix and sent the other back")
        .await?;
    flow.sync("the Bugs' new states reach the tickets").await?;
    flow.show(&tickets).await?;

    let (p, f) = (flow.bug_of(pass).await?, flow.bug_of(fail).await?);
    assert_eq!(
        (text(&p, "System.State"), text(&p, "System.Reason")),
        ("Closed".into(), "Verified".into())
    );
    assert_eq!(
        (text(&f, "System.State"), text(&f, "System.Reason")),
        ("Active".into(), "Test Failed".into())
    );
    let (tp, tf) = (
        flow.sn.get(&incident(), pass).await?,
        flow.sn.get(&incident(), fail).await?,
    );
    assert_eq!(text(&tp, "u_qa_status"), "Verified by QA");
    assert_eq!(text(&tp, "u_dev_status"), "Released");
    assert_eq!(text(&tf, "u_qa_status"), "Failed QA");
    assert_eq!(text(&tf, "u_dev_status"), "In development");

    // Dev fixes the failed one again: its defect is back in Fixed, QA's turn, and this time QA
    // verify it.
    flow.dev(fail, "Resolved").await?;
    flow.sync("Dev fixed the failed Bug again: its defect is back in Fixed")
        .await?;
    assert_eq!(text(&flow.defect_of(fail).await?, "status"), "Fixed");
    flow.qa(fail, &["Closed"]).await?;
    flow.sync("QA verified the second fix").await?;
    flow.sync("its state reaches the ticket").await?;
    flow.show(&tickets).await?;
    let f = flow.bug_of(fail).await?;
    assert_eq!(text(&f, "System.State"), "Closed");
    let tf = flow.sn.get(&incident(), fail).await?;
    assert_eq!(text(&tf, "u_qa_status"), "Verified by QA");
    assert_eq!(text(&tf, "u_dev_status"), "Released");
    println!(
        "\nHTTP requests: ServiceNow {}, Azure DevOps {}, ALM {}",
        sn_sim.control().total_requests(),
        ado_sim.control().total_requests(),
        alm_sim.control().total_requests()
    );
    Ok(())
}
