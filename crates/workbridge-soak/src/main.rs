//! `workbridge-soak`: the sync as a separate process, killed by pid at random moments while
//! users edit both systems and the simulators inject faults; then edits and faults stop, the
//! sync is run to quiet, and an independent model of the users' last writes checks the result.
//!
//! ```text
//! workbridge-soak run [--seconds 60] [--seed 1] [--kill-percent 4] [--postgres CONN --workers N]
//!                     [--wire [--delay-sn-writes]]
//! workbridge-soak worker --sn URL --ado URL (--db PATH | --postgres CONN) [--holder NAME]
//!                        [--lease-ms N] [--until-quiet]
//! ```
//!
//! `run` starts the ServiceNow and Azure DevOps simulators in this process with faults (503,
//! 429 with a short and, now and then, an absurd `Retry-After`, connections dropped, replies
//! lost after the write was applied), spawns `worker` as a child process on a SQLite store,
//! kills it with SIGKILL by pid and starts it again, and meanwhile creates and edits tickets
//! (title, priority) and moves Bugs through their workflow. The checker's model is the users'
//! own last write per field, not the kernel's state. It prints edits, kills, faults and the
//! counts of duplicates, lost updates, echo writes in the quiet round, divergence and panics,
//! and exits 1 unless all are zero.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod proxy;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use workbridge::azure_devops::{AzureDevOpsConfig, AzureDevOpsRepository};
use workbridge::http::{BackoffConfig, ClientOptions, RetryConfig};
use workbridge::mapping::Mapping;
use workbridge::servicenow::{ServiceNowConfig, ServiceNowRepository};
use workbridge::sim::Faults;
use workbridge::sim::azure_devops::AzureDevOpsSim;
use workbridge::sim::servicenow::ServiceNowSim;
use workbridge::sync::{PostgresStore, SqliteStore, StateStore, SyncOptions, SyncPair};
use workbridge::{FieldMap, FieldValue, ItemId, ItemType, Repository, RepositoryExt, WorkItem};

const SPEC: &str = include_str!("../../../docs/mappings/incident_escalation.toml");

fn incident() -> ItemType {
    ItemType::from("incident")
}

fn bug() -> ItemType {
    ItemType::from("Bug")
}

fn text(item: &WorkItem, f: &str) -> String {
    item.field(f).map(ToString::to_string).unwrap_or_default()
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
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

/// What the harness could not set up, said as such: the soak's own failures are never panics
/// (the checker counts panics in the worker's output as the sync's).
type Setup<T> = Result<T, String>;

fn setup<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> Setup<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

fn adapters(
    sn: &str,
    ado: &str,
    retries: u32,
) -> Setup<(Arc<ServiceNowRepository>, Arc<AzureDevOpsRepository>)> {
    let sn = setup(
        ServiceNowRepository::new(
            ServiceNowConfig::builder(sn)
                .basic("admin", "admin")
                .client_options(options(retries))
                .build(),
        ),
        "the ServiceNow adapter",
    )?;
    let ado = setup(
        AzureDevOpsRepository::new(
            AzureDevOpsConfig::builder(ado, "Fabrikam")
                .pat("TOKEN")
                .client_options(options(retries))
                .build(),
        ),
        "the Azure DevOps adapter",
    )?;
    Ok((Arc::new(sn), Arc::new(ado)))
}

/// The worker: rounds until killed, or (`--until-quiet`) until a complete round writes nothing;
/// it then prints `quiet writes=N` with the writes of its first round and exits 0.
async fn worker(args: &[String]) -> Setup<i32> {
    let (Some(sn), Some(ado)) = (flag(args, "--sn"), flag(args, "--ado")) else {
        return Err("worker needs --sn URL --ado URL and --db PATH or --postgres CONN".into());
    };
    let until_quiet = args.iter().any(|a| a == "--until-quiet");
    if std::env::var_os("WORKBRIDGE_SOAK_TRACE").is_some() {
        tracing_subscriber::fmt()
            .with_max_level(
                if std::env::var("WORKBRIDGE_SOAK_TRACE").as_deref() == Ok("debug") {
                    tracing_subscriber::filter::LevelFilter::DEBUG
                } else {
                    tracing_subscriber::filter::LevelFilter::INFO
                },
            )
            .with_ansi(false)
            .init();
    }
    let (sn, ado) = adapters(&sn, &ado, 1)?;
    let store: Arc<dyn StateStore> = match (flag(args, "--db"), flag(args, "--postgres")) {
        (Some(db), _) => Arc::new(setup(SqliteStore::open(&db), "the SQLite store")?),
        (None, Some(pg)) => Arc::new(setup(
            PostgresStore::connect(&pg).await,
            "the PostgreSQL store",
        )?),
        (None, None) => return Err("worker needs --db PATH or --postgres CONN".into()),
    };
    let lease = flag(args, "--lease-ms")
        .and_then(|s| s.parse().ok())
        .unwrap_or(600_000);
    let mapping = setup(Mapping::from_toml_str(SPEC), "the escalation spec")?;
    let mut pair = setup(SyncPair::new(sn, ado, mapping, store), "the pair")?
        .with_id("soak")
        // A killed worker's create may land for as long as a request's budget: 6 s here.
        .with_options(
            SyncOptions::default()
                .foreign_intent_grace(Duration::from_secs(8))
                .lease_ttl(Duration::from_millis(lease)),
        );
    if let Some(h) = flag(args, "--holder") {
        pair = pair.with_holder(h);
    }
    let started = Instant::now();
    let mut first_writes = None;
    loop {
        let r = pair.run_once().await;
        println!("round {r}");
        if until_quiet {
            if first_writes.is_none() && r.is_complete() {
                first_writes = Some(r.writes());
            }
            if r.is_complete() && r.writes() == 0 && r.parked.is_empty() {
                println!("quiet writes={}", first_writes.unwrap_or(0));
                return Ok(0);
            }
            if started.elapsed() > Duration::from_secs(90) {
                println!("not quiet after 90 s: {r}");
                return Ok(1);
            }
        }
        tokio::time::sleep(Duration::from_millis(if until_quiet { 200 } else { 30 })).await;
    }
}

struct Worker {
    child: tokio::process::Child,
}

fn spawn_worker(
    exe: &Path,
    sn: &str,
    ado: &str,
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
            .args(["worker", "--sn", sn, "--ado", ado])
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

#[derive(Default)]
struct Model {
    tickets: Vec<ItemId>,
    number: HashMap<ItemId, String>,
    title: BTreeMap<ItemId, String>,
    priority: BTreeMap<ItemId, String>,
    dev_state: BTreeMap<String, String>,
}

/// Reads an item back, trying again through faults: after a write whose reply may have been
/// lost, the model must learn what the system holds.
async fn read_back(repo: &dyn Repository, t: &ItemType, id: &ItemId) -> Option<WorkItem> {
    for _ in 0..30 {
        if let Ok(item) = repo.get(t, id).await {
            return Some(item);
        }
    }
    None
}

/// Every Bug by the ticket number it carries; `None` when faults kept the listing from
/// completing (users try again later).
async fn bugs_by_number(ado: &AzureDevOpsRepository) -> Option<HashMap<String, Vec<WorkItem>>> {
    let mut listed = None;
    for _ in 0..10 {
        if let Ok((bugs, _)) = ado
            .all_changes(&bug(), &Default::default(), &Default::default())
            .await
        {
            listed = Some(bugs);
            break;
        }
    }
    let bugs = listed?;
    let mut by: HashMap<String, Vec<WorkItem>> = HashMap::new();
    for b in bugs {
        by.entry(text(&b, "Custom.ServiceNowTicket"))
            .or_default()
            .push(b);
    }
    Some(by)
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
    let sn_sim = ServiceNowSim::builder()
        .user("admin", "admin", &["admin"])
        .spawn()
        .await
        .map_err(|e| format!("the ServiceNow simulator: {e}"))?;
    let ado_sim = AzureDevOpsSim::builder()
        .pat("TOKEN")
        .custom_field("Custom.ServiceNowTicket", "ServiceNow Ticket")
        .spawn()
        .await
        .map_err(|e| format!("the Azure DevOps simulator: {e}"))?;
    let faults = |s: u64| {
        Faults::none()
            .error_rate(503, 0.04)
            .rate_limit(0.02, 1)
            .drop_connections(0.02)
            .lose_replies(0.04)
            .seed(s)
    };
    sn_sim.control().set_faults(faults(seed));
    ado_sim.control().set_faults(faults(seed + 1));
    // Between the workers and the simulators, the wire breaks too: requests held past the
    // client's 2 s timeout and then delivered, resets, replies lost after the server answered.
    // A late ServiceNow write can overwrite a newer edit (no conditional write; ADR 0011), so
    // ServiceNow writes are held only with --delay-sn-writes.
    let wire = |delay_writes: bool| proxy::WireFaults {
        delay: Duration::from_millis(2500),
        delay_ratio: 0.01,
        delay_writes,
        reset_ratio: 0.01,
        lose_reply_ratio: 0.02,
    };
    let addr = |url: &str| -> Setup<std::net::SocketAddr> {
        url.trim_start_matches("http://")
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("a simulator's URL without 127.0.0.1:port: {url}"))
    };
    let delay_sn_writes = args.iter().any(|a| a == "--delay-sn-writes");
    // Without --wire the proxies relay as they are.
    let wire_on = args.iter().any(|a| a == "--wire");
    let sn_wire = setup(
        proxy::Proxy::start(
            addr(&sn_sim.url())?,
            wire_on.then(|| wire(delay_sn_writes)),
            seed + 2,
        )
        .await,
        "the ServiceNow proxy",
    )?;
    let ado_wire = setup(
        proxy::Proxy::start(addr(&ado_sim.url())?, wire_on.then(|| wire(true)), seed + 3).await,
        "the Azure DevOps proxy",
    )?;
    let dir: PathBuf =
        std::env::temp_dir().join(format!("workbridge-soak-{}-{seed}", std::process::id()));
    setup(std::fs::create_dir_all(&dir), "the scratch directory")?;
    let db = dir.join("state.sqlite");
    let log = dir.join("worker.log");
    let exe = setup(std::env::current_exe(), "this program's path")?;
    let (sn_url, ado_url) = (sn_sim.url(), ado_sim.collection_url());
    // Users retry their own calls, and reach the systems directly: they are people, not the
    // system under test.
    let (users_sn, users_ado) = adapters(&sn_url, &ado_url, 8)?;
    // The workers go through the proxies.
    let (sn_url, ado_url) = (
        sn_wire.url(""),
        ado_url.replacen(&ado_sim.url(), &ado_wire.url(""), 1),
    );

    let postgres = flag(args, "--postgres");
    let n_workers: usize = flag(args, "--workers")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let store_args: Vec<String> = match &postgres {
        Some(pg) => vec!["--postgres".into(), pg.clone()],
        None => vec!["--db".into(), db.display().to_string()],
    };
    // Several workers share a PostgreSQL store with a short lease, each under its own name.
    let spawn = |i: usize| {
        let mut extra = vec!["--holder".to_owned(), format!("worker-{i}")];
        if postgres.is_some() {
            extra.extend(["--lease-ms".to_owned(), "300".to_owned()]);
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        spawn_worker(&exe, &sn_url, &ado_url, &store_args, &log, &extra)
    };
    let mut model = Model::default();
    let mut workers: Vec<Worker> = (0..n_workers).map(spawn).collect::<Setup<_>>()?;
    let (mut edits, mut kills, mut absurd) = (0u64, 0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut step = 0u64;
    while Instant::now() < deadline {
        step += 1;
        let roll = rng.random_range(0..100u32);
        if roll < kill_percent {
            // SIGKILL by pid, mid-whatever, and a new process on the same store.
            let i = rng.random_range(0..workers.len());
            let _ = workers[i].child.start_kill();
            let _ = workers[i].child.wait().await;
            kills += 1;
            workers[i] = spawn(i)?;
        } else if roll < kill_percent + 1 {
            let sim = if rng.random_bool(0.5) {
                sn_sim.control()
            } else {
                ado_sim.control()
            };
            sim.fail_next(1, 429, Some(99_999_999));
            absurd += 1;
        } else if roll < 30 || model.tickets.is_empty() {
            let short = format!("Defect {step}");
            let p = rng.random_range(1..=4).to_string();
            let Ok(t) = users_sn
                .create(
                    &incident(),
                    &FieldMap::new()
                        .with("short_description", short.as_str())
                        .with("category", FieldValue::Choice("software".into()))
                        .with("priority", FieldValue::Choice(p.clone())),
                    &Default::default(),
                )
                .await
            else {
                continue; // a user's lost reply: the model cannot know, so it is not counted
            };
            model.number.insert(t.id.clone(), text(&t, "number"));
            model.title.insert(t.id.clone(), short);
            model.priority.insert(t.id.clone(), p);
            model.tickets.push(t.id);
            edits += 1;
        } else if roll < 70 {
            let id = model.tickets[rng.random_range(0..model.tickets.len())].clone();
            let (field, value) = if rng.random_bool(0.5) {
                (
                    "short_description",
                    FieldValue::Text(format!("Defect edited at {step}")),
                )
            } else {
                (
                    "priority",
                    FieldValue::Choice(rng.random_range(1..=4).to_string()),
                )
            };
            let wrote = users_sn
                .update(
                    &incident(),
                    &id,
                    &FieldMap::new().with(field, value.clone()),
                    &Default::default(),
                )
                .await;
            // Whatever the reply said, the model learns what the system now holds.
            let Some(t) = read_back(users_sn.as_ref(), &incident(), &id).await else {
                eprintln!("soak: ticket {id} cannot be read back through the faults");
                return Ok(1);
            };
            model
                .title
                .insert(id.clone(), text(&t, "short_description"));
            model.priority.insert(id.clone(), text(&t, "priority"));
            edits += u64::from(wrote.is_ok());
        } else {
            let id = &model.tickets[rng.random_range(0..model.tickets.len())];
            let number = model.number[id].clone();
            let Some(by) = bugs_by_number(&users_ado).await else {
                continue;
            };
            let Some(b) = by.get(&number).and_then(|v| v.first()).cloned() else {
                continue; // not synced yet
            };
            let next = match text(&b, "System.State").as_str() {
                "New" => "Active",
                "Active" => "Resolved",
                _ => "Active",
            };
            let wrote = users_ado
                .update(
                    &bug(),
                    &b.id,
                    &FieldMap::new().with("System.State", next),
                    &Default::default(),
                )
                .await;
            let Some(now) = read_back(users_ado.as_ref(), &bug(), &b.id).await else {
                eprintln!("soak: Bug {} cannot be read back through the faults", b.id);
                return Ok(1);
            };
            model.dev_state.insert(number, text(&now, "System.State"));
            edits += u64::from(wrote.is_ok());
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..120))).await;
    }

    // Edits and faults stop; the sync runs to quiet, then once more: that round must write
    // nothing (an echo or a no-op write would show there).
    for w in &mut workers {
        let _ = w.child.start_kill();
        let _ = w.child.wait().await;
    }
    sn_sim.control().set_faults(Faults::none());
    ado_sim.control().set_faults(Faults::none());
    sn_wire.heal();
    ado_wire.heal();
    let mut quiet_writes = Vec::new();
    for _ in 0..2 {
        let mut q = spawn_worker(
            &exe,
            &sn_url,
            &ado_url,
            &store_args,
            &log,
            // The first worker started again: it takes its own lease back at once.
            &["--until-quiet", "--holder", "worker-0"],
        )?;
        let status = tokio::time::timeout(Duration::from_secs(120), q.child.wait()).await;
        let ok = matches!(status, Ok(Ok(s)) if s.success());
        if !ok {
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

    // The checker: the users' last writes against what both systems hold.
    let Some(by) = bugs_by_number(&users_ado).await else {
        eprintln!("the Bugs cannot be listed without faults");
        return Ok(1);
    };
    let (mut duplicates, mut lost, mut divergence) = (0usize, 0usize, 0usize);
    let status = |st: &str| match st {
        "New" => "New",
        "Active" => "In development",
        "Resolved" => "Fixed, awaiting release",
        _ => "",
    };
    for id in &model.tickets {
        let number = &model.number[id];
        let bugs = by.get(number).cloned().unwrap_or_default();
        duplicates += bugs.len().saturating_sub(1);
        let Some(b) = bugs.first() else {
            lost += 1; // a ticket without a Bug
            continue;
        };
        let Some(t) = read_back(users_sn.as_ref(), &incident(), id).await else {
            return Err(format!("ticket {id} cannot be read without faults"));
        };
        if text(b, "System.Title") != format!("{number}: {}", model.title[id]) {
            lost += 1;
            eprintln!(
                "lost title: {number}: {} vs {}",
                model.title[id],
                text(b, "System.Title")
            );
        }
        if text(b, "Microsoft.VSTS.Common.Priority") != model.priority[id] {
            lost += 1;
            eprintln!(
                "lost priority: {number}: {} vs {}",
                model.priority[id],
                text(b, "Microsoft.VSTS.Common.Priority")
            );
        }
        let state = text(b, "System.State");
        if let Some(want) = model.dev_state.get(number)
            && *want != state
        {
            lost += 1;
            eprintln!("lost state: {number}: {want} vs {state}");
        }
        if text(&t, "u_dev_status") != status(&state) {
            divergence += 1;
            eprintln!(
                "diverged: {number}: Bug {state}, ticket says {}",
                text(&t, "u_dev_status")
            );
        }
    }
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let panics = log_text.matches("panicked").count();
    let echo = quiet_writes.get(1).copied().unwrap_or(usize::MAX);
    let faults_served: u64 = [sn_sim.control(), ado_sim.control()]
        .iter()
        .map(|c| c.total_requests())
        .sum();
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
        "soak seed {seed}, {seconds} s: tickets {}, edits {edits}, kills {kills}, absurd Retry-After {absurd}, requests {faults_served}; wire: ServiceNow {}, Azure DevOps {}; duplicates {duplicates}, lost updates {lost}, echo writes {echo}, divergence {divergence}, panics {panics}",
        model.tickets.len(),
        w(&sn_wire),
        w(&ado_wire)
    );
    let failed = duplicates + lost + echo + divergence + panics > 0;
    if failed {
        println!("the worker log is kept: {}", log.display());
        for p in [&sn_wire, &ado_wire] {
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
        Some("worker") => worker(&args[1..]).await,
        _ => Err(
            "usage: workbridge-soak run [--seconds N] [--seed N] [--kill-percent N] [--wire]\n       workbridge-soak worker --sn URL --ado URL --db PATH [--until-quiet]"
                .to_owned(),
        ),
    };
    let code = result.unwrap_or_else(|e| {
        eprintln!("workbridge-soak: {e}");
        2
    });
    std::process::exit(code);
}
