//! Credentials never show: not in `Debug` or `Display` of a repository or its config, not in
//! an error (its `Display`, its `Debug`, the system it names), not in a log line at TRACE —
//! whether they were given as credentials or left in the URL (user info, a token in the query),
//! and whether the failure is a refused login, a server error or a URL that does not parse.

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use workbridge::{ItemType, Repository};
use workbridge_alm::{AlmConfig, AlmRepository};
use workbridge_azure_devops::{AzureDevOpsConfig, AzureDevOpsRepository};
use workbridge_http::ClientOptions;
use workbridge_servicenow::{ServiceNowConfig, ServiceNowRepository};

const SECRETS: [&str; 4] = ["hunter2", "url-pass", "sekrit", "pat-secret"];

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn assert_clean(what: &str, text: &str) {
    let mut forbidden: Vec<String> = SECRETS.iter().map(|s| (*s).to_owned()).collect();
    for pair in [
        "admin:hunter2",
        "admin:url-pass",
        ":pat-secret",
        "qa:hunter2",
    ] {
        forbidden.push(base64::engine::general_purpose::STANDARD.encode(pair));
    }
    for s in &forbidden {
        assert!(!text.contains(s.as_str()), "{what} shows {s}: {text}");
    }
}

/// A loopback URL with credentials in it, on a port where nothing listens (the second server's
/// port is taken from a listener bound and dropped).
fn url_with_credentials(port: u16, path: &str) -> String {
    format!("http://admin:url-pass@127.0.0.1:{port}{path}?token=sekrit")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn options() -> ClientOptions {
    ClientOptions::default()
        .allow_http(true)
        .retry(workbridge_http::RetryConfig::disabled())
}

async fn exercise(repo: &dyn Repository, t: &str, log: &Captured) -> Vec<String> {
    let mut shown = vec![format!("{repo:?}"), repo.to_string()];
    let t = ItemType::from(t);
    for e in [
        repo.schema(&t).await.unwrap_err(),
        repo.get_many(&t, &["1".into()], &Default::default())
            .await
            .unwrap_err(),
    ] {
        shown.push(e.to_string());
        shown.push(format!("{e:?}"));
    }
    shown.push(String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned());
    shown
}

#[tokio::test]
async fn no_credential_shows_in_debug_errors_or_trace_logs() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Nothing listens: a connection failure, with credentials in the URL and in the config.
    let sn = ServiceNowRepository::new(
        ServiceNowConfig::builder(url_with_credentials(free_port(), ""))
            .basic("admin", "hunter2")
            .client_options(options())
            .build(),
    )
    .unwrap();
    let ado = AzureDevOpsRepository::new(
        AzureDevOpsConfig::builder(url_with_credentials(free_port(), "/fabrikam"), "Fabrikam")
            .pat("pat-secret")
            .client_options(options())
            .build(),
    )
    .unwrap();
    let alm = AlmRepository::new(
        AlmConfig::builder(
            url_with_credentials(free_port(), "/qcbin"),
            "DEFAULT",
            "Demo",
        )
        .password("qa", "hunter2")
        .client_options(options())
        .build(),
    )
    .unwrap();
    for (repo, t) in [
        (&sn as &dyn Repository, "incident"),
        (&ado as &dyn Repository, "Bug"),
        (&alm as &dyn Repository, "defects"),
    ] {
        for (i, text) in exercise(repo, t, &log).await.iter().enumerate() {
            assert_clean(&format!("{t} #{i}"), text);
        }
    }
    // Refused credentials and server errors, from the simulators.
    let sim = workbridge_sim::servicenow::ServiceNowSim::builder()
        .user("admin", "admin", &["admin"])
        .spawn()
        .await
        .unwrap();
    let refused = ServiceNowRepository::new(
        ServiceNowConfig::builder(sim.url())
            .basic("admin", "hunter2")
            .client_options(options())
            .build(),
    )
    .unwrap();
    for (i, text) in exercise(&refused, "incident", &log)
        .await
        .iter()
        .enumerate()
    {
        assert_clean(&format!("401 #{i}"), text);
    }
    sim.control().fail_next(3, 500, None);
    let ok = ServiceNowRepository::new(
        ServiceNowConfig::builder(sim.url())
            .basic("admin", "admin")
            .client_options(options())
            .build(),
    )
    .unwrap();
    let e = ok.schema(&ItemType::from("incident")).await.unwrap_err();
    assert_clean("500", &format!("{e} {e:?}"));
    // A URL that does not parse: the error names it without its credentials.
    let e = ServiceNowRepository::new(
        ServiceNowConfig::builder("http://admin:hunter2@exa mple.com:99999/?token=sekrit")
            .basic("admin", "hunter2")
            .build(),
    )
    .unwrap_err();
    assert_clean("invalid URL", &format!("{e} {e:?}"));
    assert!(
        !log.0.lock().unwrap().is_empty(),
        "the TRACE log was captured"
    );
}

#[tokio::test]
async fn a_tls_failure_says_it_was_the_certificate_and_trusting_it_works() {
    let sim = workbridge_sim::servicenow::ServiceNowSim::builder()
        .user("admin", "admin", &["admin"])
        .seed_items(2)
        .tls(workbridge_sim::Tls::self_signed())
        .spawn()
        .await
        .unwrap();
    let untrusting = ServiceNowRepository::new(
        ServiceNowConfig::builder(sim.url())
            .basic("admin", "hunter2")
            .client_options(
                ClientOptions::default().retry(workbridge_http::RetryConfig::disabled()),
            )
            .build(),
    )
    .unwrap();
    let e = untrusting
        .schema(&ItemType::from("incident"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), workbridge::ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("TLS certificate"), "{e}");
    assert_clean("TLS", &format!("{e} {e:?}"));
    let pem = sim.certificate().unwrap().pem.clone();
    let trusting = ServiceNowRepository::new(
        ServiceNowConfig::builder(sim.url())
            .basic("admin", "admin")
            .client_options(ClientOptions::default().root_certificate(pem))
            .build(),
    )
    .unwrap();
    trusting
        .schema(&ItemType::from("incident"))
        .await
        .expect("the simulator's certificate, trusted, is accepted");
}

/// Every request an adapter sends is logged inside a `repository` span that names the system,
/// the trait method and the item it serves, so a log line can be tied to what the sync asked
/// for — and the span carries no credential.
#[tokio::test]
async fn each_request_is_logged_inside_the_span_of_the_method_and_item_it_serves() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let sim = workbridge_sim::azure_devops::AzureDevOpsSim::builder()
        .pat("pat-secret")
        .seed_items(1)
        .spawn()
        .await
        .unwrap();
    let ado = AzureDevOpsRepository::new(
        AzureDevOpsConfig::builder(sim.collection_url(), "Fabrikam")
            .pat("pat-secret")
            .client_options(options())
            .build(),
    )
    .unwrap();
    let bug = ItemType::from("Bug");
    let got = ado
        .get_many(&bug, &["1".into()], &Default::default())
        .await
        .unwrap();
    assert!(got[0].is_some());
    let e = ado
        .comments(&bug, &"999".into())
        .await
        .expect_err("no such item");
    assert_eq!(e.operation(), Some("comments"));
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let answered: Vec<&str> = text.lines().filter(|l| l.contains("answered")).collect();
    assert!(
        answered.iter().any(|l| l.contains("repository{")
            && l.contains("operation=\"get_many\"")
            && l.contains("item_type=\"Bug\"")),
        "{text}"
    );
    assert!(
        answered.iter().any(|l| l.contains("operation=\"comments\"")
            && l.contains("item_id=\"999\"")
            && l.contains("status=404")),
        "{text}"
    );
    assert_clean("span", &text);
}
