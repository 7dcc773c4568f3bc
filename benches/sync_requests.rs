//! Counts the HTTP requests a sync round costs, against the ServiceNow and Azure DevOps
//! simulators, with the incident-escalation spec: the initial sync of a backlog, a quiet round,
//! a round after Ops edit a tenth of the tickets, a round after Dev move a tenth of the Bugs.
//!
//! ```text
//! cargo bench --bench sync_requests --features servicenow,azure-devops
//! WORKBRIDGE_BENCH_TICKETS=1000 cargo bench --bench sync_requests --features servicenow,azure-devops
//! ```
//!
//! `WORKBRIDGE_BENCH_ROUTES=1` prints each round's requests by route.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::time::Instant;

use workbridge::mapping::Mapping;
use workbridge::sync::{MemoryStore, Side, SyncOptions, SyncPair};
use workbridge::{FieldMap, FieldValue, ItemType, Repository, Write};
use workbridge_azure_devops::{AzureDevOpsConfig, AzureDevOpsRepository};
use workbridge_http::ClientOptions;
use workbridge_servicenow::{ServiceNowConfig, ServiceNowRepository};
use workbridge_sim::azure_devops::AzureDevOpsSim;
use workbridge_sim::servicenow::ServiceNowSim;

fn main() {
    let n: usize = std::env::var("WORKBRIDGE_BENCH_TICKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    tokio::runtime::Runtime::new()
        .expect("a runtime")
        .block_on(run(n));
}

async fn run(n: usize) {
    let sn_sim = ServiceNowSim::builder()
        .user("admin", "admin", &["admin"])
        .spawn()
        .await
        .expect("ServiceNow simulator");
    let ado_sim = AzureDevOpsSim::builder()
        .pat("TOKEN")
        .custom_field("Custom.ServiceNowTicket", "ServiceNow Ticket")
        .spawn()
        .await
        .expect("Azure DevOps simulator");
    let loopback = ClientOptions::default().allow_http(true);
    let sn = Arc::new(
        ServiceNowRepository::new(
            ServiceNowConfig::builder(sn_sim.url())
                .basic("admin", "admin")
                .client_options(loopback.clone())
                .build(),
        )
        .expect("adapter"),
    );
    let ado = Arc::new(
        AzureDevOpsRepository::new(
            AzureDevOpsConfig::builder(ado_sim.collection_url(), "Fabrikam")
                .pat("TOKEN")
                .client_options(loopback)
                .build(),
        )
        .expect("adapter"),
    );
    let incident = ItemType::from("incident");
    let bug = ItemType::from("Bug");
    let writes: Vec<Write> = (0..n)
        .map(|i| {
            Write::create(
                incident.clone(),
                FieldMap::new()
                    .with("short_description", format!("Defect {i}"))
                    .with("description", "Steps:\n1. open\n2. click")
                    .with("category", FieldValue::Choice("software".into())),
            )
        })
        .collect();
    let mut tickets = Vec::new();
    for chunk in writes.chunks(100) {
        for r in sn.write_many(chunk).await.expect("seed") {
            tickets.push(r.expect("seeded").id);
        }
    }
    let spec = Mapping::from_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/mappings/incident_escalation.toml"
    ))
    .expect("spec");
    let pair = SyncPair::new(sn.clone(), ado.clone(), spec, Arc::new(MemoryStore::new()))
        .expect("pair")
        .with_options(
            SyncOptions::default()
                .page_size(200)
                .comments(false)
                .attachments(false),
        );

    println!(
        "| round ({n} tickets) | ServiceNow requests | Azure DevOps requests | items written | time |"
    );
    println!("|---|---|---|---|---|");
    let measure = |label: &'static str| {
        let (sn_c, ado_c) = (sn_sim.control(), ado_sim.control());
        let pair = &pair;
        async move {
            sn_c.reset_requests();
            ado_c.reset_requests();
            let t = Instant::now();
            let r = pair.run_once().await;
            let took = t.elapsed();
            assert!(r.is_complete() && r.parked.is_empty(), "{r}");
            if std::env::var_os("WORKBRIDGE_BENCH_ROUTES").is_some() {
                eprintln!("{label}: {:?} / {:?}", sn_c.requests(), ado_c.requests());
            }
            println!(
                "| {label} | {} | {} | {} | {:.2} s |",
                sn_c.total_requests(),
                ado_c.total_requests(),
                r.writes(),
                took.as_secs_f64()
            );
        }
    };
    measure("initial sync").await;
    measure("quiet").await;
    for id in tickets.iter().step_by(10) {
        sn.update(
            &incident,
            id,
            &FieldMap::new().with("short_description", "Edited by Ops"),
            &Default::default(),
        )
        .await
        .expect("edit");
    }
    measure("Ops edited 10 %").await;
    for id in tickets.iter().step_by(10) {
        let link = pair
            .link_of(Side::Left, id)
            .await
            .expect("store")
            .expect("linked");
        ado.update(
            &bug,
            &link.right,
            &FieldMap::new().with("System.State", "Active"),
            &Default::default(),
        )
        .await
        .expect("edit");
    }
    measure("Dev moved 10 %").await;
    measure("quiet").await;
    // The servers' clocks past the second of the last writes: nothing is live any more.
    for clock in [sn_sim.clock(), ado_sim.clock()] {
        clock.advance(std::time::Duration::from_secs(2));
    }
    measure("quiet, a second later").await;
    measure("quiet").await;
}
