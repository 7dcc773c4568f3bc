//! The deployable shape of a sync service: one deployment file (`workbridge::deploy`), several
//! pairs checked before anything runs, a round per pair on its schedule, an HTTP endpoint that
//! runs a pair's round at once (for a ServiceNow outbound REST message or an Azure DevOps
//! service hook), a progress bar while a round reads, JSON logs, and a clean stop on SIGTERM or
//! Ctrl-C — between pages, the cursors committed.
//!
//! ```text
//! cargo run --example service --features full -- --config workbridge.toml --listen 127.0.0.1:8088
//! curl -X POST http://127.0.0.1:8088/pairs/escalation/run     # a round now
//! curl http://127.0.0.1:8088/pairs                             # each pair's last report
//!
//! # Everything in this process: the three simulators, a deployment file written for them, two
//! # pairs; a ticket opened after the first rounds reaches Azure DevOps through the endpoint.
//! cargo run --example service --features full -- --demo
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Notify;
use workbridge::deploy::Deployment;
use workbridge::sync::{Observer, PageDone, SyncPair, SyncReport};

/// A sync service over a deployment file.
#[derive(Parser, Debug)]
struct Args {
    /// The deployment file.
    #[arg(long, required_unless_present = "demo")]
    config: Option<PathBuf>,
    /// Where the HTTP endpoint listens.
    #[arg(long, default_value = "127.0.0.1:8088")]
    listen: SocketAddr,
    /// Run against simulators started in this process, and check that a ticket opened after
    /// the first rounds reaches Azure DevOps through the endpoint (exit 1 otherwise).
    #[arg(long)]
    demo: bool,
    /// Logs as text instead of JSON.
    #[arg(long)]
    text_logs: bool,
}

/// One pair as the service runs it.
struct Running {
    pair: SyncPair,
    every: Duration,
    /// Asks for a round now (the endpoint).
    now: Notify,
    /// The last round's report.
    last: Mutex<Option<SyncReport>>,
}

/// The service's state: its pairs by name, and whether it is stopping.
struct Service {
    pairs: BTreeMap<String, Arc<Running>>,
    stopping: Arc<AtomicBool>,
    stop: Arc<Notify>,
}

/// Shows a round's progress and ends it between pages once the service is stopping.
struct Progress {
    stopping: Arc<AtomicBool>,
    bar: ProgressBar,
}

impl Observer for Progress {
    fn page(&self, page: &PageDone) -> ControlFlow<()> {
        self.bar.set_message(format!(
            "{} side: {} read",
            page.side,
            page.read.left + page.read.right
        ));
        self.bar.inc(page.items as u64);
        if self.stopping.load(Ordering::Relaxed) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

impl Service {
    /// Runs a pair's rounds until the service stops: one at start, then every `every` or when
    /// the endpoint asks.
    async fn run(self: Arc<Self>, name: String, p: Arc<Running>) {
        loop {
            if self.stopping.load(Ordering::Relaxed) {
                return;
            }
            let report = p.pair.run_once().await;
            let report_json = serde_json::to_string(&report).unwrap_or_default();
            match &report.stopped {
                None => tracing::info!(pair = %name, report = %report_json, "round done"),
                Some(e) => {
                    tracing::warn!(pair = %name, error = %e, report = %report_json, "round stopped; the next one resumes");
                }
            }
            *p.last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(report);
            // Registered before the flag is read: a stop asked for during the round is seen
            // here, one asked for from now on wakes the wait.
            let stop = self.stop.notified();
            tokio::pin!(stop);
            stop.as_mut().enable();
            if self.stopping.load(Ordering::Relaxed) {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(p.every) => {}
                () = p.now.notified() => tracing::info!(pair = %name, "round asked for"),
                () = &mut stop => return,
            }
        }
    }
}

async fn run_now(State(s): State<Arc<Service>>, Path(name): Path<String>) -> (StatusCode, String) {
    match s.pairs.get(&name) {
        Some(p) => {
            p.now.notify_one();
            (
                StatusCode::ACCEPTED,
                format!("a round of {name} is asked for\n"),
            )
        }
        None => (StatusCode::NOT_FOUND, format!("no pair {name}\n")),
    }
}

async fn list_pairs(State(s): State<Arc<Service>>) -> Json<serde_json::Value> {
    let all = s
        .pairs
        .iter()
        .map(|(name, p)| {
            let last = p
                .last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (
                name.clone(),
                serde_json::to_value(&*last).unwrap_or_default(),
            )
        })
        .collect::<serde_json::Map<_, _>>();
    Json(serde_json::Value::Object(all))
}

/// Resolves on Ctrl-C or SIGTERM.
async fn signalled() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.text_logs {
        tracing_subscriber::fmt().with_target(false).init();
    } else {
        tracing_subscriber::fmt().json().with_target(false).init();
    }
    let code = match serve(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("service: {e}");
            2
        }
    };
    std::process::exit(code);
}

async fn serve(args: Args) -> workbridge::Result<i32> {
    let demo = if args.demo {
        Some(demo::Demo::start().await?)
    } else {
        None
    };
    let path = match (&demo, &args.config) {
        (Some(d), _) => d.config.clone(),
        (None, Some(p)) => p.clone(),
        (None, None) => {
            return Err(workbridge::Error::config(
                "--config is needed without --demo",
            ));
        }
    };
    // Every key checked, every secret read, both schemas of every pair read and its mapping
    // validated: nothing runs unless all of it can.
    let deployment = Deployment::from_path(&path)?;
    let built = match &demo {
        Some(d) => deployment.build_with(&|k| d.env(k)).await?,
        None => deployment.build().await?,
    };
    let stopping = Arc::new(AtomicBool::new(false));
    let mut pairs = BTreeMap::new();
    for p in built {
        let bar = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {prefix}: {pos} items — {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(p.name.clone());
        let pair = p.pair.with_observer(Arc::new(Progress {
            stopping: stopping.clone(),
            bar,
        }));
        let every = p.every.unwrap_or(Duration::from_secs(60));
        pairs.insert(
            p.name,
            Arc::new(Running {
                pair,
                every,
                now: Notify::new(),
                last: Mutex::new(None),
            }),
        );
    }
    let service = Arc::new(Service {
        pairs,
        stopping: stopping.clone(),
        stop: Arc::new(Notify::new()),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| workbridge::Error::config(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| workbridge::Error::config(e.to_string()))?;
    tracing::info!(%addr, pairs = service.pairs.len(), "listening");
    let app = Router::new()
        .route("/pairs", get(list_pairs))
        .route("/pairs/{name}/run", post(run_now))
        .with_state(service.clone());
    let http_stop = service.stop.clone();
    let http = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { http_stop.notified().await })
            .await;
    });
    let mut rounds = Vec::new();
    for (name, p) in &service.pairs {
        rounds.push(tokio::spawn(service.clone().run(name.clone(), p.clone())));
    }
    let outcome = match demo {
        Some(d) => {
            let ok = d.check(addr, &service).await;
            if ok { 0 } else { 1 }
        }
        None => {
            signalled().await;
            0
        }
    };
    // Stop: rounds end between pages (the observer), schedules and the endpoint end.
    tracing::info!("stopping");
    stopping.store(true, Ordering::Relaxed);
    service.stop.notify_waiters();
    for r in rounds {
        let _ = r.await;
    }
    // Once more for the endpoint, in case its wait had not been polled yet.
    service.stop.notify_waiters();
    let _ = http.await;
    tracing::info!("stopped");
    Ok(outcome)
}

/// `--demo`: the simulators in this process, and a deployment file for them.
mod demo {
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use workbridge::servicenow::{ServiceNowConfig, ServiceNowRepository};
    use workbridge::sim::alm::AlmSim;
    use workbridge::sim::azure_devops::AzureDevOpsSim;
    use workbridge::sim::servicenow::ServiceNowSim;
    use workbridge::sync::Side;
    use workbridge::{FieldMap, ItemType, Repository, Result};

    pub(super) struct Demo {
        _sn: ServiceNowSim,
        _ado: AzureDevOpsSim,
        _alm: AlmSim,
        ops: Arc<ServiceNowRepository>,
        pub(super) config: PathBuf,
    }

    impl Demo {
        pub(super) async fn start() -> Result<Demo> {
            let fail = |e: String| workbridge::Error::config(format!("demo: {e}"));
            let sn = ServiceNowSim::builder()
                .user("integration", "integration-pw", &["admin"])
                .spawn()
                .await
                .map_err(|e| fail(e.to_string()))?;
            let ado = AzureDevOpsSim::builder()
                .pat("demo-token")
                .custom_field("Custom.ServiceNowTicket", "ServiceNow Ticket")
                .spawn()
                .await
                .map_err(|e| fail(e.to_string()))?;
            let alm = AlmSim::builder()
                .user("qa", "qa-pw")
                .spawn()
                .await
                .map_err(|e| fail(e.to_string()))?;
            let dir =
                std::env::temp_dir().join(format!("workbridge-service-{}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
            let mappings = format!("{}/docs/mappings", env!("CARGO_MANIFEST_DIR"));
            let config = dir.join("workbridge.toml");
            let text = format!(
                r#"
[systems.ops]
kind = "servicenow"
instance = "{sn}"
user = "integration"
password_env = "DEMO_SERVICENOW_PASSWORD"
[systems.ops.http]
allow_http = true

[systems.dev]
kind = "azure-devops"
url = "{ado}"
project = "Fabrikam"
pat_env = "DEMO_AZURE_DEVOPS_PAT"
[systems.dev.http]
allow_http = true

[systems.qa]
kind = "alm"
url = "{alm}"
domain = "DEFAULT"
project = "Demo"
user = "qa"
password_env = "DEMO_ALM_PASSWORD"
correlation_field = "Sync Key"
[systems.qa.http]
allow_http = true

[state]
sqlite = "state.sqlite"

[[pair]]
name = "escalation"
left = "ops"
right = "dev"
spec = "{mappings}/incident_escalation.toml"
every = "1h"          # the schedule; the endpoint runs a round sooner

[[pair]]
name = "verification"
left = "dev"
right = "qa"
spec = "{mappings}/qa_verification.toml"
every = "1h"
"#,
                sn = sn.url(),
                ado = ado.collection_url(),
                alm = alm.url(),
            );
            let _ = std::fs::remove_file(dir.join("state.sqlite"));
            std::fs::write(&config, text).map_err(|e| fail(e.to_string()))?;
            let ops = Arc::new(ServiceNowRepository::new(
                ServiceNowConfig::builder(sn.url())
                    .basic("integration", "integration-pw")
                    .client_options(workbridge::http::ClientOptions::default().allow_http(true))
                    .build(),
            )?);
            let demo = Demo {
                _sn: sn,
                _ado: ado,
                _alm: alm,
                ops,
                config,
            };
            for title in ["Invoices print blank", "Checkout times out"] {
                demo.ticket(title).await?;
            }
            Ok(demo)
        }

        /// The demo's secrets, as a deployment would have them in its environment.
        pub(super) fn env(&self, k: &str) -> Option<String> {
            match k {
                "DEMO_SERVICENOW_PASSWORD" => Some("integration-pw".into()),
                "DEMO_AZURE_DEVOPS_PAT" => Some("demo-token".into()),
                "DEMO_ALM_PASSWORD" => Some("qa-pw".into()),
                _ => None,
            }
        }

        async fn ticket(&self, title: &str) -> Result<workbridge::WorkItem> {
            self.ops
                .create(
                    &ItemType::from("incident"),
                    &FieldMap::new().with("short_description", title).with(
                        "category",
                        workbridge::FieldValue::Choice("software".into()),
                    ),
                    &Default::default(),
                )
                .await
        }

        /// After the first rounds, Ops open a ticket and the endpoint is asked for a round
        /// (as ServiceNow's outbound REST message would): its Bug must follow within seconds,
        /// though the schedule says an hour.
        pub(super) async fn check(&self, addr: SocketAddr, service: &super::Service) -> bool {
            let escalation = &service.pairs["escalation"];
            for _ in 0..100 {
                if escalation.last.lock().map(|l| l.is_some()).unwrap_or(false) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let Ok(t) = self.ticket("Search returns nothing").await else {
                return false;
            };
            if !post(addr, "/pairs/escalation/run").await {
                eprintln!("demo: the endpoint did not take the request");
                return false;
            }
            for _ in 0..100 {
                if let Ok(Some(link)) = escalation.pair.link_of(Side::Left, &t.id).await {
                    println!(
                        "demo: ticket {} reached Bug {} through the endpoint",
                        t.id, link.right
                    );
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            eprintln!("demo: the ticket opened after the first round has no Bug");
            false
        }
    }

    /// `POST path` to the service: whether it answered 202.
    async fn post(addr: SocketAddr, path: &str) -> bool {
        let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
            return false;
        };
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        if s.write_all(req.as_bytes()).await.is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer).await;
        answer.starts_with("HTTP/1.1 202")
    }
}
