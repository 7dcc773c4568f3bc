//! `workbridge-soak`: the sync as a separate process, killed by pid at random moments while
//! users edit all three systems and the simulators — and, with `--wire`, the wire between — inject
//! faults; then edits and faults stop, the sync is run to quiet, and an independent model of the
//! users' last writes checks the result.
//!
//! ```text
//! workbridge-soak run [--seconds 60] [--seed 1] [--kill-percent 4] [--postgres CONN --workers N]
//!                     [--wire [--delay-sn-writes]] [--page-size N]
//! workbridge-soak worker --sn URL --ado URL --alm URL (--db PATH | --postgres CONN)
//!                        [--holder NAME] [--lease-ms N] [--page-size N] [--until-quiet]
//! ```
//!
//! `run` starts the ServiceNow, Azure DevOps and HP ALM simulators in this process with faults
//! (503, 429 with a short and, now and then, an absurd `Retry-After`, connections dropped,
//! replies lost after the write was applied), spawns `worker` as a child process — the
//! escalation pair (ticket ↔ Bug) and the QA pair (Bug ↔ defect) on one store — kills it with
//! SIGKILL by pid and starts it again, and meanwhile Ops create tickets and edit their title,
//! priority and description, Dev move Bugs through their workflow, QA verify or fail the
//! resolved Bugs' defects, and all three comment and attach files. The checker's model is the
//! users' own last write per field (and each comment and file once on each item), not the
//! kernel's state. It prints edits, kills, faults and the counts of duplicates, lost updates,
//! echo writes in the quiet round, divergence and panics, and exits 1 unless all are zero.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod proxy;
mod users;
mod worker;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use workbridge::alm::{AlmConfig, AlmRepository};
use workbridge::azure_devops::{AzureDevOpsConfig, AzureDevOpsRepository};
use workbridge::http::{BackoffConfig, ClientOptions, RetryConfig};
use workbridge::servicenow::{ServiceNowConfig, ServiceNowRepository};
use workbridge::sim::Faults;
use workbridge::sim::alm::AlmSim;
use workbridge::sim::azure_devops::AzureDevOpsSim;
use workbridge::sim::servicenow::ServiceNowSim;

pub(crate) const ESCALATION: &str = include_str!("../../../docs/mappings/incident_escalation.toml");
pub(crate) const QA: &str = include_str!("../../../docs/mappings/qa_verification.toml");

/// What the harness could not set up, said as such: the soak's own failures are never panics
/// (the checker counts panics in the worker's output as the sync's).
pub(crate) type Setup<T> = Result<T, String>;

pub(crate) fn setup<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> Setup<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

pub(crate) fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Where the three systems are.
#[derive(Clone)]
pub(crate) struct Urls {
    sn: String,
    ado: String,
    alm: String,
}

impl Urls {
    fn from_args(args: &[String]) -> Setup<Urls> {
        match (flag(args, "--sn"), flag(args, "--ado"), flag(args, "--alm")) {
            (Some(sn), Some(ado), Some(alm)) => Ok(Urls { sn, ado, alm }),
            _ => Err("worker needs --sn URL --ado URL --alm URL".into()),
        }
    }

    fn args(&self) -> [&str; 6] {
        ["--sn", &self.sn, "--ado", &self.ado, "--alm", &self.alm]
    }
}

/// The adapters of the three systems.
pub(crate) struct Systems {
    pub(crate) sn: Arc<ServiceNowRepository>,
    pub(crate) ado: Arc<AzureDevOpsRepository>,
    pub(crate) alm: Arc<AlmRepository>,
}

fn options(retries: u32) -> ClientOptions {
    ClientOptions::default()
        .allow_http(true)
        .timeout(Some(Duration::from_secs(2)))
        .retry(
            RetryConfig::default()
                .max_retries(retries)
                .max_elapsed(Duration::from_secs(6))
                .max_server_wait(Duration::from_secs(2))
                .backoff(
                    BackoffConfig::default()
                        .initial(Duration::from_millis(5))
                        .max(Duration::from_millis(50)),
                ),
        )
}

pub(crate) fn systems(urls: &Urls, retries: u32) -> Setup<Systems> {
    let sn = setup(
        ServiceNowRepository::new(
            ServiceNowConfig::builder(&urls.sn)
                .basic("admin", "admin")
                .client_options(options(retries))
                .build(),
        ),
        "the ServiceNow adapter",
    )?;
    let ado = setup(
        AzureDevOpsRepository::new(
            AzureDevOpsConfig::builder(&urls.ado, "Fabrikam")
                .pat("TOKEN")
                .client_options(options(retries))
                .build(),
        ),
        "the Azure DevOps adapter",
    )?;
    let alm = setup(
        AlmRepository::new(
            AlmConfig::builder(&urls.alm, "DEFAULT", "Demo")
                .password("qa", "qa")
                // The QA pair finds a defect whose create reply was lost by this key.
                .correlation_field("Sync Key")
                .client_options(options(retries))
                .build(),
        ),
        "the ALM adapter",
    )?;
    Ok(Systems {
        sn: Arc::new(sn),
        ado: Arc::new(ado),
        alm: Arc::new(alm),
    })
}

struct Worker {
    child: tokio::process::Child,
}

fn spawn_worker(
    exe: &Path,
    urls: &Urls,
    store: &[String],
    log: &Path,
    extra: &[&str],
) -> Setup<Worker> {
    let out = setup(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log),
        "the worker log",
    )?;
    let err = setup(out.try_clone(), "the worker log")?;
    let child = setup(
        tokio::process::Command::new(exe)
            .arg("worker")
            .args(urls.args())
            .args(store)
            .args(extra)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn(),
        "the worker process",
    )?;
    Ok(Worker { child })
}

async fn run(args: &[String]) -> Setup<i32> {
    let seconds: u64 = flag(args, "--seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed: u64 = flag(args, "--seed")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let kill_percent: u32 = flag(args, "--kill-percent")
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let mut rng = StdRng::seed_from_u64(seed);
    let sn_sim = setup(
        ServiceNowSim::builder()
            .user("admin", "admin", &["admin"])
            .spawn()
            .await,
        "the ServiceNow simulator",
    )?;
    let ado_sim = setup(
        AzureDevOpsSim::builder()
            .pat("TOKEN")
            .custom_field("Custom.ServiceNowTicket", "ServiceNow Ticket")
            .spawn()
            .await,
        "the Azure DevOps simulator",
    )?;
    let alm_sim = setup(
        AlmSim::builder()
            .user("qa", "qa")
            // A killed worker's locks last as long as its session: short here, so the run
            // reaches quiet (a real server's timeout is longer; the items wait, parked).
            .session_idle_timeout(Duration::from_secs(5))
            .spawn()
            .await,
        "the ALM simulator",
    )?;
    let controls = [sn_sim.control(), ado_sim.control(), alm_sim.control()];
    let faults = |s: u64| {
        Faults::none()
            .error_rate(503, 0.04)
            .rate_limit(0.02, 1)
            .drop_connections(0.02)
            .lose_replies(0.04)
            .seed(s)
    };
    for (i, c) in (0u64..).zip(&controls) {
        c.set_faults(faults(seed + i));
    }
    // Between the workers and the simulators, the wire breaks too (--wire): requests held past
    // the client's 2 s timeout and then delivered, resets, replies lost after the server
    // answered. A late ServiceNow write can overwrite a newer edit (no conditional write;
    // ADR 0011), so ServiceNow writes are held only with --delay-sn-writes.
    let wire_on = args.iter().any(|a| a == "--wire");
    let delay_sn_writes = args.iter().any(|a| a == "--delay-sn-writes");
    let wire = |delay_writes: bool| {
        wire_on.then_some(proxy::WireFaults {
            delay: Duration::from_millis(2500),
            delay_ratio: 0.01,
            delay_writes,
            reset_ratio: 0.01,
            lose_reply_ratio: 0.02,
        })
    };
    let direct = Urls {
        sn: sn_sim.url(),
        ado: ado_sim.collection_url(),
        alm: alm_sim.url(),
    };
    let proxy = |base: String, faults, seed| async move {
        let at: std::net::SocketAddr = base
            .trim_start_matches("http://")
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("a simulator's URL without 127.0.0.1:port: {base}"))?;
        setup(proxy::Proxy::start(at, faults, seed).await, "a proxy")
    };
    let wires = [
        proxy(sn_sim.url(), wire(delay_sn_writes), seed + 10).await?,
        proxy(ado_sim.url(), wire(true), seed + 11).await?,
        proxy(alm_sim.url(), wire(true), seed + 12).await?,
    ];
    // The workers go through the proxies; the users, people and not the system under test,
    // reach the systems directly and retry their own calls.
    let through = Urls {
        sn: wires[0].url(""),
        ado: direct.ado.replacen(&ado_sim.url(), &wires[1].url(""), 1),
        alm: wires[2].url(""),
    };
    let users = systems(&direct, 8)?;

    let dir: PathBuf =
        std::env::temp_dir().join(format!("workbridge-soak-{}-{seed}", std::process::id()));
    setup(std::fs::create_dir_all(&dir), "the scratch directory")?;
    let log = dir.join("worker.log");
    let exe = setup(std::env::current_exe(), "this program's path")?;
    let postgres = flag(args, "--postgres");
    let n_workers: usize = flag(args, "--workers")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let store_args: Vec<String> = match &postgres {
        Some(pg) => vec!["--postgres".into(), pg.clone()],
        None => vec![
            "--db".into(),
            dir.join("state.sqlite").display().to_string(),
        ],
    };
    // Several workers share a PostgreSQL store with a short lease, each under its own name.
    let spawn = |i: usize| {
        let mut extra = vec!["--holder".to_owned(), format!("worker-{i}")];
        if postgres.is_some() {
            extra.extend(["--lease-ms".to_owned(), "300".to_owned()]);
        }
        if let Some(n) = flag(args, "--page-size") {
            extra.extend(["--page-size".to_owned(), n]);
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        spawn_worker(&exe, &through, &store_args, &log, &extra)
    };
    let mut model = users::Model::default();
    let mut workers: Vec<Worker> = (0..n_workers).map(spawn).collect::<Setup<_>>()?;
    let (mut edits, mut kills, mut absurd) = (0u64, 0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut step = 0u64;
    while Instant::now() < deadline {
        step += 1;
        let roll = rng.random_range(0..100u32);
        let done = if roll < kill_percent {
            // SIGKILL by pid, mid-whatever, and a new process on the same store.
            let i = rng.random_range(0..workers.len());
            let _ = workers[i].child.start_kill();
            let _ = workers[i].child.wait().await;
            kills += 1;
            workers[i] = spawn(i)?;
            false
        } else if roll < kill_percent + 1 {
            controls[rng.random_range(0..controls.len())].fail_next(1, 429, Some(99_999_999));
            absurd += 1;
            false
        } else if roll < 25 || model.tickets.is_empty() {
            model.open_ticket(&users, &mut rng, step).await?
        } else if roll < 45 {
            model.edit_ticket(&users, &mut rng, step).await?
        } else if roll < 51 {
            model.comment(&users, &mut rng, step).await?
        } else if roll < 55 {
            model.attach(&users, &mut rng, step).await?
        } else if roll < 80 {
            model.dev_moves(&users, &mut rng, step).await?
        } else {
            model.qa_verdict(&users, &mut rng, step).await?
        };
        edits += u64::from(done);
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..120))).await;
    }

    // Edits and faults stop; the sync runs to quiet, then once more: that round must write
    // nothing (an echo or a no-op write would show there).
    for w in &mut workers {
        let _ = w.child.start_kill();
        let _ = w.child.wait().await;
    }
    for c in &controls {
        c.set_faults(Faults::none());
    }
    for w in &wires {
        w.heal();
    }
    let mut quiet_writes = Vec::new();
    for _ in 0..2 {
        let mut q = spawn_worker(
            &exe,
            &through,
            &store_args,
            &log,
            // The first worker started again: it takes its own lease back at once.
            &["--until-quiet", "--holder", "worker-0"],
        )?;
        let status = tokio::time::timeout(Duration::from_secs(120), q.child.wait()).await;
        if !matches!(status, Ok(Ok(s)) if s.success()) {
            eprintln!("the final sync did not reach quiet; see {}", log.display());
            return Ok(1);
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let last = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("quiet writes="))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(usize::MAX);
        quiet_writes.push(last);
    }

    let counts = model.check(&users).await?;
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let panics = log_text.matches("panicked").count();
    let echo = quiet_writes.get(1).copied().unwrap_or(usize::MAX);
    let requests: u64 = controls.iter().map(|c| c.total_requests()).sum();
    let w = |p: &proxy::Proxy| {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &p.stats;
        format!(
            "{} held ({} writes), {} reset, {} replies lost",
            s.delayed.load(Relaxed),
            s.delayed_writes.load(Relaxed),
            s.resets.load(Relaxed),
            s.lost_replies.load(Relaxed)
        )
    };
    println!(
        "soak seed {seed}, {seconds} s: tickets {}, edits {edits} (QA verdicts {}, comments {}, files {}), kills {kills}, absurd Retry-After {absurd}, requests {requests}; wire: ServiceNow {}, Azure DevOps {}, ALM {}; duplicates {}, lost updates {}, echo writes {echo}, divergence {}, panics {panics}",
        model.tickets.len(),
        model.verdicts,
        model.comments_written,
        model.files_attached,
        w(&wires[0]),
        w(&wires[1]),
        w(&wires[2]),
        counts.duplicates,
        counts.lost,
        counts.divergence,
    );
    let failed = counts.duplicates + counts.lost + echo + counts.divergence + panics > 0;
    if failed {
        println!("the worker log is kept: {}", log.display());
        let journal = dir.join("users.log");
        if std::fs::write(&journal, model.journal.join("\n")).is_ok() {
            println!("Dev's moves and QA's verdicts: {}", journal.display());
        }
        for p in &wires {
            for line in p.held_writes() {
                println!("held write: {line}");
            }
        }
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(i32::from(failed))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]).await,
        Some("worker") => worker::worker(&args[1..]).await,
        _ => Err(
            "usage: workbridge-soak run [--seconds N] [--seed N] [--kill-percent N] [--wire]\n       workbridge-soak worker --sn URL --ado URL --alm URL --db PATH [--until-quiet]"
                .to_owned(),
        ),
    };
    let code = result.unwrap_or_else(|e| {
        eprintln!("workbridge-soak: {e}");
        2
    });
    std::process::exit(code);
}
