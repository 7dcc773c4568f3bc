//! Incident escalation: ServiceNow tickets that reveal a software defect become Azure DevOps
//! Bugs, and the Bugs' progress flows back onto the tickets.
//!
//! By default it starts both simulators in this process, seeds realistic tickets, and runs a
//! few sync rounds while simulated Ops and Dev users work; each round prints what it did, and
//! the run ends with the state of every ticket and Bug.
//!
//! ```text
//! cargo run --example incident_escalation
//! ```
//!
//! With `SERVICENOW_INSTANCE` (and `SERVICENOW_USER`/`SERVICENOW_PASSWORD` or
//! `SERVICENOW_TOKEN`) and `AZURE_DEVOPS_ORG_URL`, `AZURE_DEVOPS_PROJECT` and
//! `AZURE_DEVOPS_TOKEN` set, it syncs those real instances instead, every
//! `WORKBRIDGE_INTERVAL_SECS` seconds (default 60), for `WORKBRIDGE_ROUNDS` rounds (default:
//! until stopped), with its state in `WORKBRIDGE_STATE` (default `workbridge-state.db`).
//! The spec is `docs/mappings/incident_escalation.toml`; the ServiceNow instance needs the
//! `u_dev_status` and `u_escalate_to_dev` fields, the Azure DevOps process the
//! `Custom.ServiceNowTicket` field.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use workbridge::azure_devops::{AzureDevOpsConfig, AzureDevOpsRepository};
use workbridge::http::ClientOptions;
use workbridge::mapping::Mapping;
use workbridge::mapping::transform::html_to_text;
use workbridge::servicenow::{ServiceNowConfig, ServiceNowRepository};
use workbridge::sim::azure_devops::AzureDevOpsSim;
use workbridge::sim::servicenow::ServiceNowSim;
use workbridge::sync::{Side, SqliteStore, SyncPair, SyncReport};
use workbridge::{
    FieldMap, FieldValue, ItemId, ItemType, NewComment, Repository, RepositoryExt, Result,
    TextFormat, WorkItem,
};

fn incident() -> ItemType {
    ItemType::from("incident")
}

fn bug() -> ItemType {
    ItemType::from("Bug")
}

fn text(item: &WorkItem, field: &str) -> String {
    item.field(field)
        .filter(|v| !v.is_empty())
        .map_or_else(|| "-".to_owned(), ToString::to_string)
}

fn spec() -> Result<Mapping> {
    Mapping::from_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/mappings/incident_escalation.toml"
    ))
}

#[tokio::main]
async fn main() -> Result<()> {
    if std::env::var_os("SERVICENOW_INSTANCE").is_some()
        && std::env::var_os("AZURE_DEVOPS_ORG_URL").is_some()
    {
        live().await
    } else {
        simulated().await
    }
}

/// Real instances: rounds on a timer, state in a SQLite file.
async fn live() -> Result<()> {
    let sn = Arc::new(ServiceNowRepository::new(ServiceNowConfig::from_env()?)?);
    let ado = Arc::new(AzureDevOpsRepository::new(AzureDevOpsConfig::from_env()?)?);
    let state = std::env::var("WORKBRIDGE_STATE").unwrap_or_else(|_| "workbridge-state.db".into());
    let interval = std::env::var("WORKBRIDGE_INTERVAL_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let rounds: Option<u64> = std::env::var("WORKBRIDGE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok());
    // Both schemas read and the spec checked against them before the first round.
    let pair = SyncPair::builder()
        .left(sn)
        .right(ado)
        .mapping(spec()?)
        .store(Arc::new(SqliteStore::open(&state)?))
        .id("incident-escalation")
        .build()
        .await?;
    println!("syncing {} every {interval} s, state in {state}", pair.id());
    let mut n = 0;
    loop {
        n += 1;
        let report = pair.run_once().await;
        println!("round {n}: {report}");
        for p in &report.parked {
            println!("  parked {} item {}: {}", p.side, p.id, p.error);
        }
        if rounds.is_some_and(|r| n >= r) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(interval)).await;
    }
}

struct Desk {
    ado: Arc<AzureDevOpsRepository>,
    pair: SyncPair,
}

impl Desk {
    async fn bug_of(&self, ticket: &ItemId) -> Result<Option<WorkItem>> {
        match self.pair.link_of(Side::Left, ticket).await? {
            Some(link) => self.ado.get_opt(&bug(), &link.right).await,
            None => Ok(None),
        }
    }

    async fn dev(&self, ticket: &ItemId, fields: FieldMap, say: Option<&str>) -> Result<()> {
        if let Some(b) = self.bug_of(ticket).await? {
            if !fields.is_empty() {
                self.ado
                    .update(&bug(), &b.id, &fields, &Default::default())
                    .await?;
            }
            if let Some(say) = say {
                self.ado
                    .add_comment(&bug(), &b.id, &NewComment::public(say))
                    .await?;
            }
        }
        Ok(())
    }

    async fn round(&self, n: usize, what: &str) -> SyncReport {
        let report = self.pair.run_once().await;
        println!("\nround {n} — {what}\n  {report}");
        for c in &report.conflicts {
            println!("  conflict: {c}");
        }
        for p in &report.parked {
            println!("  parked {} item {}: {}", p.side, p.id, p.error);
        }
        report
    }
}

/// Simulators in this process, simulated users between rounds.
async fn simulated() -> Result<()> {
    let sn_sim = ServiceNowSim::builder()
        .user("integration", "integration-pw", &["admin"])
        .spawn()
        .await
        .map_err(|e| workbridge::Error::config(format!("the ServiceNow simulator: {e}")))?;
    let ado_sim = AzureDevOpsSim::builder()
        .pat("example-token")
        .custom_field("Custom.ServiceNowTicket", "ServiceNow Ticket")
        .spawn()
        .await
        .map_err(|e| workbridge::Error::config(format!("the Azure DevOps simulator: {e}")))?;
    println!("ServiceNow simulator at {}", sn_sim.url());
    println!("Azure DevOps simulator at {}", ado_sim.collection_url());
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
    let mapping = spec()?;
    let state_dir = std::env::temp_dir().join(format!("workbridge-example-{}", std::process::id()));
    std::fs::create_dir_all(&state_dir).map_err(|e| workbridge::Error::config(e.to_string()))?;
    let pair = SyncPair::builder()
        .left(sn.clone())
        .right(ado.clone())
        .mapping(mapping)
        .store(Arc::new(SqliteStore::open(state_dir.join("state.db"))?))
        .build()
        .await?;
    let desk = Desk {
        ado: ado.clone(),
        pair,
    };

    // Ops' queue this morning.
    let seeds = [
        (
            "Invoices print blank",
            "Since the 8.2 update every invoice PDF is empty.\nAll branches.",
            "software",
            "2",
        ),
        ("Broken chair in room 4", "", "hardware", "4"),
        (
            "Checkout times out",
            "Card payments hang for 30 s, then fail.",
            "software",
            "1",
        ),
        (
            "VPN drops every hour",
            "Remote staff reconnect hourly.",
            "network",
            "3",
        ),
        (
            "Report totals off by one cent",
            "Monthly revenue report rounds differently than the ledger.",
            "software",
            "3",
        ),
    ];
    let mut tickets = Vec::new();
    for (short, desc, category, priority) in seeds {
        let t = sn
            .create(
                &incident(),
                &FieldMap::new()
                    .with("short_description", short)
                    .with("description", desc)
                    .with("category", FieldValue::Choice(category.into()))
                    .with("priority", FieldValue::Choice(priority.into())),
                &Default::default(),
            )
            .await?;
        tickets.push(t.id);
    }
    let [invoices, _chair, checkout, vpn, report_totals] = tickets.as_slice() else {
        unreachable!("five seeds")
    };

    desk.round(1, "Ops escalated three software defects").await;

    desk.dev(
        checkout,
        FieldMap::new().with("System.State", "Active"),
        Some("Reproduced with the test card; looking at the gateway timeout."),
    )
    .await?;
    desk.dev(
        invoices,
        FieldMap::new().with("System.State", "Active"),
        Some("Which printer driver do the branches use?"),
    )
    .await?;
    sn.add_comment(
        &incident(),
        invoices,
        &NewComment::public("Customer: it started right after the update."),
    )
    .await?;
    sn.add_comment(
        &incident(),
        invoices,
        &NewComment::internal("Key account; call them back by noon."),
    )
    .await?;
    // A network ticket turns out to be the VPN client's bug: Ops escalate it explicitly.
    sn.update(
        &incident(),
        vpn,
        &FieldMap::new().with("u_escalate_to_dev", true),
        &Default::default(),
    )
    .await?;
    desk.round(
        2,
        "Dev started work and asked a question; Ops escalated the VPN ticket",
    )
    .await;

    desk.dev(
        checkout,
        FieldMap::new().with("System.State", "Resolved"),
        Some("Gateway timeout raised to 60 s; fixed in 8.2.1."),
    )
    .await?;
    sn.update(
        &incident(),
        report_totals,
        &FieldMap::new().with("priority", FieldValue::Choice("2".into())),
        &Default::default(),
    )
    .await?;
    desk.dev(invoices, FieldMap::new().with("Microsoft.VSTS.TCM.ReproSteps", FieldValue::Html("<p>Print any invoice with driver <b>5.1</b>.</p><ul><li>PDF is empty</li><li>XPS is fine</li></ul>".into())), None).await?;
    desk.round(
        3,
        "Dev resolved the checkout bug and refined a repro; Ops raised a priority",
    )
    .await;

    desk.dev(
        checkout,
        FieldMap::new().with("System.State", "Closed"),
        None,
    )
    .await?;
    desk.round(4, "Dev closed the checkout bug after the release")
        .await;

    let last = desk.round(5, "nobody edited: nothing to write").await;
    assert_eq!(last.writes(), 0, "a quiet round writes nothing");

    println!(
        "\n{:<12} {:<30} {:<9} {:<4} {:<6} {:<24} {:<5} {:<9}",
        "ticket",
        "short description",
        "category",
        "prio",
        "state",
        "dev status",
        "bug",
        "bug state"
    );
    for id in &tickets {
        let t = sn.get(&incident(), id).await?;
        let (bug_id, bug_state) = match desk.bug_of(id).await? {
            Some(b) => (b.id.to_string(), text(&b, "System.State")),
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "{:<12} {:<30} {:<9} {:<4} {:<6} {:<24} {:<5} {:<9}",
            text(&t, "number"),
            text(&t, "short_description"),
            text(&t, "category"),
            text(&t, "priority"),
            text(&t, "state"),
            text(&t, "u_dev_status"),
            bug_id,
            bug_state
        );
    }
    let t = sn.get(&incident(), invoices).await?;
    println!(
        "\nThe invoices ticket's description, from Dev's rich-text repro steps:\n{}",
        text(&t, "description")
    );
    let notes = sn.comments(&incident(), invoices).await?;
    println!("\nIts journal (Dev's comments arrive as work notes):");
    for c in notes {
        let body = match c.format {
            TextFormat::Html => html_to_text(&c.body),
            _ => c.body,
        };
        println!("  [{:?}] {}", c.visibility, body.replace('\n', " "));
    }
    println!(
        "\nHTTP requests: ServiceNow {}, Azure DevOps {}",
        sn_sim.control().total_requests(),
        ado_sim.control().total_requests()
    );
    let _ = std::fs::remove_dir_all(&state_dir);
    Ok(())
}
