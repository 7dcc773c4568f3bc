//! ITIL on the Ops side, one Bug on the Dev side: three ServiceNow incidents share a root
//! cause; Ops group them under a problem, and the problem — not each incident — becomes the Azure
//! DevOps Bug. Dev's root-cause analysis and fix flow back into the problem; Ops deploy the fix
//! through a change request, whose closure closes the Bug; Ops resolve the incidents by the
//! problem. Dev never see the incidents, the problem workflow or the change process.
//!
//! Two pairs: `docs/mappings/itil_problem.toml` (problem ↔ Bug, creating the Bug) and
//! `docs/mappings/itil_change.toml` (change ↔ Bug, linked by this program through the problem's
//! `rfc` field). It starts both simulators in this process.
//!
//! ```text
//! cargo run --example itil_problem --features servicenow,azure-devops
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
use workbridge::{
    Error, FieldMap, FieldValue, ItemId, ItemType, NewComment, Reference, Repository,
    RepositoryExt, Result, WorkItem,
};

fn t(name: &str) -> ItemType {
    ItemType::from(name)
}

fn text(item: &WorkItem, field: &str) -> String {
    item.field(field)
        .filter(|v| !v.is_empty())
        .map_or_else(|| "-".to_owned(), ToString::to_string)
}

fn reference(table: &str, id: &ItemId) -> FieldValue {
    FieldValue::from(Reference {
        target: Some(t(table)),
        id: id.to_string(),
        display: None,
    })
}

fn spec(name: &str) -> Result<Mapping> {
    Mapping::from_path(format!(
        "{}/docs/mappings/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

/// Moves a change through its workflow, one allowed transition at a time.
async fn walk(sn: &ServiceNowRepository, change: &ItemId, to: &str) -> Result<()> {
    let workflow = sn
        .schema(&t("change_request"))
        .await?
        .workflow
        .ok_or_else(|| Error::config("no change workflow"))?;
    let from = text(&sn.get(&t("change_request"), change).await?, "state");
    for state in workflow
        .shortest_path(&from, to)
        .ok_or_else(|| Error::invalid_transition(&from, to, "no path"))?
    {
        sn.update(
            &t("change_request"),
            change,
            &FieldMap::new().with("state", FieldValue::Choice(state)),
            &Default::default(),
        )
        .await?;
    }
    Ok(())
}

async fn round(pair: &SyncPair, what: &str) -> Result<()> {
    let r = pair.run_once().await;
    println!("  {what:<28} {r}");
    for p in &r.parked {
        println!("    parked {} item {}: {}", p.side, p.id, p.error);
    }
    r.into_result().map(|_| ())
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
        .custom_field("Custom.RootCause", "Root Cause")
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
            .client_options(loopback)
            .build(),
    )?);
    let (problem_spec, change_spec) = (spec("itil_problem.toml")?, spec("itil_change.toml")?);
    problem_spec
        .validate(
            &sn.schema(&t("problem")).await?,
            &ado.schema(&t("Bug")).await?,
        )
        .map_err(|e| Error::config(e.to_string()))?;
    change_spec
        .validate(
            &sn.schema(&t("change_request")).await?,
            &ado.schema(&t("Bug")).await?,
        )
        .map_err(|e| Error::config(e.to_string()))?;
    let store = Arc::new(MemoryStore::new());
    let problems =
        SyncPair::new(sn.clone(), ado.clone(), problem_spec, store.clone())?.with_id("problem");
    let changes = SyncPair::new(sn.clone(), ado.clone(), change_spec, store)?.with_id("change");

    println!(
        "Ops: three customers report failing card payments; the service desk logs three incidents."
    );
    let mut incidents = Vec::new();
    for who in ["Lyon branch", "Web shop", "Call centre"] {
        let i = sn
            .create(
                &t("incident"),
                &FieldMap::new()
                    .with("short_description", format!("Card payment fails ({who})"))
                    .with("category", FieldValue::Choice("software".into())),
                &Default::default(),
            )
            .await?;
        incidents.push(i.id);
    }
    println!("Ops: problem management groups them under one problem.");
    let problem = sn
        .create(
            &t("problem"),
            &FieldMap::new()
                .with("short_description", "Card payments time out at the gateway")
                .with(
                    "description",
                    "Three incidents since the 8.2 release.\nTimeouts after 30 s.",
                )
                .with("priority", FieldValue::Choice("2".into())),
            &Default::default(),
        )
        .await?;
    for i in &incidents {
        sn.update(
            &t("incident"),
            i,
            &FieldMap::new().with("problem_id", reference("problem", &problem.id)),
            &Default::default(),
        )
        .await?;
    }
    round(&problems, "problem → one Bug").await?;
    let bug_id = problems
        .link_of(Side::Left, &problem.id)
        .await?
        .ok_or_else(|| Error::config("the problem has no Bug"))?
        .right;

    println!("Dev: analyse, find the root cause, fix.");
    ado.update(
        &t("Bug"),
        &bug_id,
        &FieldMap::new().with("System.State", "Active").with(
            "Custom.RootCause",
            "Gateway client timeout set to 30 s; the acquirer answers in up to 45 s.",
        ),
        &Default::default(),
    )
    .await?;
    round(&problems, "root cause → problem").await?;
    ado.update(
        &t("Bug"),
        &bug_id,
        &FieldMap::new().with("System.State", "Resolved"),
        &Default::default(),
    )
    .await?;
    round(&problems, "fix → problem resolved").await?;

    println!("Ops: a change request deploys the fix; the problem names it.");
    let change = sn
        .create(
            &t("change_request"),
            &FieldMap::new().with("short_description", "Deploy payment gateway client 8.2.1"),
            &Default::default(),
        )
        .await?;
    sn.update(
        &t("problem"),
        &problem.id,
        &FieldMap::new().with("rfc", reference("change_request", &change.id)),
        &Default::default(),
    )
    .await?;
    // The application links the change to the problem's Bug: the problem's `rfc` says which.
    let p = sn.get(&t("problem"), &problem.id).await?;
    let rfc = ItemId::new(
        p.field("rfc")
            .map(|v| match v {
                FieldValue::Reference(r) => r.id.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default(),
    );
    let r = changes.link_existing(&rfc, &bug_id).await;
    println!("  {:<28} {r}", "change ↔ Bug linked");
    // Ops walk the change through its workflow: assess, authorize, schedule, implement.
    walk(&sn, &change.id, "-1").await?;
    sn.add_comment(
        &t("change_request"),
        &change.id,
        &NewComment::public("Deployed in tonight's window; card payments back to normal."),
    )
    .await?;
    walk(&sn, &change.id, "3").await?;
    round(&changes, "change closed → Bug closed").await?;
    round(&problems, "Bug closed → problem").await?;

    println!("Ops: the incidents are resolved by the problem.");
    for i in &incidents {
        sn.update(
            &t("incident"),
            i,
            &FieldMap::new()
                .with("state", FieldValue::Choice("6".into()))
                .with(
                    "close_code",
                    FieldValue::Choice("Resolved by problem".into()),
                )
                .with(
                    "close_notes",
                    "Fixed by the payment gateway client 8.2.1 deployment.",
                ),
            &Default::default(),
        )
        .await?;
    }
    let quiet = problems.run_once().await.writes() + changes.run_once().await.writes();
    assert_eq!(quiet, 0, "nothing left to write");

    println!("\nServiceNow (Ops):");
    for i in &incidents {
        let i = sn.get(&t("incident"), i).await?;
        println!(
            "  {} {:<34} state {:<2} {}",
            text(&i, "number"),
            text(&i, "short_description"),
            text(&i, "state"),
            text(&i, "close_code")
        );
    }
    let p = sn.get(&t("problem"), &problem.id).await?;
    println!(
        "  {} state {}; cause: {}",
        text(&p, "number"),
        text(&p, "state"),
        text(&p, "cause_notes")
    );
    println!("             fix: {}", text(&p, "fix_notes"));
    let c = sn.get(&t("change_request"), &change.id).await?;
    println!(
        "  {} {} state {}",
        text(&c, "number"),
        text(&c, "short_description"),
        text(&c, "state")
    );
    let (all, _) = ado
        .all_changes(&t("Bug"), &Default::default(), &Default::default())
        .await?;
    println!("\nAzure DevOps (Dev): {} Bug", all.len());
    let b = ado.get(&t("Bug"), &bug_id).await?;
    println!(
        "  {} {} state {} ({})",
        b.id,
        text(&b, "System.Title"),
        text(&b, "System.State"),
        text(&b, "System.Reason")
    );
    for c in ado.comments(&t("Bug"), &bug_id).await? {
        println!(
            "  comment: {}",
            workbridge::mapping::transform::html_to_text(&c.body).replace('\n', " ")
        );
    }

    assert_eq!(all.len(), 1, "Dev see one Bug for three incidents");
    assert_eq!(text(&b, "System.State"), "Closed");
    assert_eq!(text(&p, "state"), "106");
    assert!(text(&p, "cause_notes").contains("45 s"));
    assert!(text(&p, "fix_notes").contains(&format!("bug {bug_id}")));
    println!(
        "\nHTTP requests: ServiceNow {}, Azure DevOps {}",
        sn_sim.control().total_requests(),
        ado_sim.control().total_requests()
    );
    Ok(())
}
