//! A deployment from one configuration file: systems, state and pairs, secrets from the
//! environment.

use workbridge::RepositoryExt;
use workbridge::deploy::Deployment;

use crate::common::{bug, sims, software_ticket, temp_db};

/// A deployment file over the simulators: ServiceNow and Azure DevOps, SQLite state, the
/// escalation pair.
fn file(sn: &str, ado: &str, db: &std::path::Path) -> String {
    let spec = format!(
        "{}/docs/mappings/incident_escalation.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    format!(
        r#"
[systems.ops]
kind = "servicenow"
instance = "{sn}"
user = "admin"
password_env = "TEST_SN_PASSWORD"
[systems.ops.http]
allow_http = true
timeout = "20s"

[systems.dev]
kind = "azure-devops"
url = "{ado}"
project = "Fabrikam"
pat_env = "TEST_ADO_PAT"
[systems.dev.http]
allow_http = true

[state]
sqlite = "{db}"

[[pair]]
name = "escalation"
left = "ops"
right = "dev"
spec = "{spec}"
every = "1m"
[pair.options]
comments = false
attachments = false
"#,
        db = db.display(),
    )
}

fn env(k: &str) -> Option<String> {
    match k {
        "TEST_SN_PASSWORD" => Some("admin".into()),
        "TEST_ADO_PAT" => Some("TOKEN".into()),
        _ => None,
    }
}

#[tokio::test]
async fn a_deployment_file_builds_pairs_that_sync() {
    let sims = sims().await;
    let db = temp_db("deploy");
    let text = file(&sims.sn.url(), &sims.ado.collection_url(), &db);
    let dir = db.parent().unwrap().to_owned();
    let path = dir.join("workbridge.toml");
    std::fs::write(&path, &text).unwrap();
    let d = Deployment::from_path(&path).unwrap();
    let pairs = d.build_with(&env).await.unwrap();
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].name, "escalation");
    assert_eq!(pairs[0].every, Some(std::time::Duration::from_secs(60)));
    let ops = crate::common::sides(&sims, 0);
    let t = software_ticket(&ops.sn, "Invoices print blank").await;
    let r = pairs[0].pair.run_once().await;
    assert!(r.is_complete(), "{r}");
    assert_eq!(r.created.right, 1, "{r}");
    let link = pairs[0]
        .pair
        .link_of(workbridge::sync::Side::Left, &t.id)
        .await
        .unwrap()
        .unwrap();
    let b = ops.ado.get(&bug(), &link.right).await.unwrap();
    assert!(crate::common::s(&b, "System.Title").contains("Invoices print blank"));
    // The state went to the file's SQLite store, under the pair's name.
    drop(pairs);
    let store = workbridge::sync::SqliteStore::open(&db).unwrap();
    assert!(
        workbridge::sync::StateStore::link(
            &store,
            "escalation",
            workbridge::sync::Side::Left,
            &t.id
        )
        .await
        .unwrap()
        .is_some()
    );
}

#[tokio::test]
async fn what_is_wrong_in_a_deployment_is_named_before_anything_runs() {
    let sims = sims().await;
    let db = temp_db("deploy-errors");
    let good = file(&sims.sn.url(), &sims.ado.collection_url(), &db);
    // Read and checked: each mistake named with where it is.
    for (from, to, says) in [
        (
            "timeout = \"20s\"",
            "timeuot = \"20s\"",
            "unknown field `timeuot`",
        ),
        (
            "right = \"dev\"",
            "right = \"devv\"",
            "pair `escalation`: right = `devv` is not a system of this file (systems: dev, ops)",
        ),
        (
            "kind = \"azure-devops\"",
            "kind = \"jira\"",
            "unknown variant `jira`",
        ),
        (
            "sqlite = ",
            "memory = true\nsqlite = ",
            "state: give exactly one of",
        ),
        (
            "every = \"1m\"",
            "every = \"every minute\"",
            "is not a duration",
        ),
    ] {
        let text = good.replacen(from, to, 1);
        let e = Deployment::from_toml_str(&text, ".").unwrap_err();
        assert_eq!(e.kind(), workbridge::ErrorKind::Config, "{to}");
        assert!(e.to_string().contains(says), "{to}: {e}");
    }
    // Built: secrets and mappings checked before the first round.
    let d = Deployment::from_toml_str(&good, ".").unwrap();
    let no_pat = |k: &str| (k == "TEST_SN_PASSWORD").then(|| "admin".to_owned());
    let e = d.build_with(&no_pat).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("systems.dev.pat_env: the environment variable TEST_ADO_PAT is not set"),
        "{e}"
    );
    let dir = db.parent().unwrap();
    let spec = dir.join("typo.toml");
    std::fs::write(
        &spec,
        std::fs::read_to_string(format!(
            "{}/docs/mappings/incident_escalation.toml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .replacen("right = \"System.Title\"", "right = \"System.Titel\"", 1),
    )
    .unwrap();
    let text = good.replace(
        &format!(
            "{}/docs/mappings/incident_escalation.toml",
            env!("CARGO_MANIFEST_DIR")
        ),
        "typo.toml",
    );
    let d = Deployment::from_toml_str(&text, dir).unwrap();
    let e = d.build_with(&env).await.unwrap_err();
    assert_eq!(e.kind(), workbridge::ErrorKind::Config);
    assert!(e.to_string().contains("pair `escalation`"), "{e}");
    assert!(e.to_string().contains("System.Titel"), "{e}");
    assert!(
        !format!("{e:?}").contains("TOKEN"),
        "no secret in the error: {e:?}"
    );
}
