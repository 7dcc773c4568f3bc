//! The example specs in `docs/mappings/` compile and validate against the schemas the adapters
//! read from the simulators: they are working examples, not prose.

use workbridge::mapping::Direction;
use workbridge::{FieldMap, FieldValue, ItemType, Repository};
use workbridge_alm::{AlmConfig, AlmRepository};
use workbridge_http::ClientOptions;
use workbridge_sim::alm::AlmSim;

use crate::common::{sides, sims, spec};

#[tokio::test]
async fn the_documented_specs_validate_against_real_schemas() {
    let both = sims().await;
    let alm_sim = AlmSim::builder().user("qa", "qa").spawn().await.unwrap();
    let (sn, ado) = {
        let s = sides(&both, 0);
        (s.sn, s.ado)
    };
    let alm = AlmRepository::new(
        AlmConfig::builder(alm_sim.url(), "DEFAULT", "Demo")
            .password("qa", "qa")
            .client_options(ClientOptions::default().allow_http(true))
            .build(),
    )
    .unwrap();
    let incident = sn.schema(&ItemType::from("incident")).await.unwrap();
    let bug = ado.schema(&ItemType::from("Bug")).await.unwrap();
    let defect = alm.schema(&ItemType::from("defects")).await.unwrap();

    let escalation = spec("incident_escalation.toml");
    escalation
        .validate(&incident, &bug)
        .unwrap_or_else(|e| panic!("incident_escalation.toml:\n{e}"));
    spec("state_sync.toml")
        .validate(&incident, &bug)
        .unwrap_or_else(|e| panic!("state_sync.toml:\n{e}"));
    spec("qa_verification.toml")
        .validate(&bug, &defect)
        .unwrap_or_else(|e| panic!("qa_verification.toml:\n{e}"));
    spec("qa_status.toml")
        .validate(&incident, &defect)
        .unwrap_or_else(|e| panic!("qa_status.toml:\n{e}"));

    // The escalation spec maps a real ticket into a Bug the simulator accepts.
    let ticket = sn
        .create(
            &ItemType::from("incident"),
            &FieldMap::new()
                .with("short_description", "Invoices print blank")
                .with("description", "Since Monday.\nAll printers.")
                .with("category", FieldValue::Choice("software".into())),
            &Default::default(),
        )
        .await
        .unwrap();
    assert!(escalation.in_scope(Direction::LeftToRight, &ticket.fields));
    let mapped = escalation.map_for_create(Direction::LeftToRight, &ticket.fields);
    assert!(mapped.errors.is_empty(), "{:?}", mapped.errors);
    let created = ado
        .create(&ItemType::from("Bug"), &mapped.fields, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        created
            .field("System.Title")
            .map(ToString::to_string)
            .unwrap(),
        format!("{}: Invoices print blank", ticket.field("number").unwrap())
    );
    assert_eq!(
        created.field("Microsoft.VSTS.TCM.ReproSteps"),
        Some(&FieldValue::Html("Since Monday.<br>All printers.".into()))
    );
    // Dev resolve the Bug: the ticket's dev status and state follow, through ServiceNow's workflow.
    let back = escalation.map(
        Direction::RightToLeft,
        &FieldMap::new()
            .with("System.State", FieldValue::Choice("Resolved".into()))
            .with("System.Id", 12i64)
            .with("System.Title", "x"),
    );
    assert_eq!(
        back.fields.get("u_dev_status"),
        Some(&FieldValue::Text("Fixed, awaiting release".into()))
    );
    let steps = escalation
        .plan_state(
            Direction::RightToLeft,
            &FieldMap::new()
                .with("System.State", "Resolved")
                .with("System.Id", 12i64)
                .with("System.Title", "Invoices"),
            &ticket.fields,
            incident.workflow.as_ref(),
        )
        .unwrap();
    assert_eq!(steps.len(), 1);
    let resolved = sn
        .update(
            &ItemType::from("incident"),
            &ticket.id,
            &steps[0].fields,
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        resolved.field("state"),
        Some(&FieldValue::Choice("6".into()))
    );
}
