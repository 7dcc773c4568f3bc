//! The backfill at scale, as a user would measure it: ServiceNow incidents escalated to Azure
//! DevOps Bugs with the incident-escalation spec, each simulator in its own process with a
//! latency per request, the sync in a third process (its peak RSS and its SQLite state file
//! measured), and beside it the sync script an integrator writes by hand
//! (`benches/handwritten_sync.py`, Python with `requests`) against fresh simulators.
//!
//! ```text
//! cargo bench --bench sync_scale --features servicenow,azure-devops,alm,sqlite
//! WORKBRIDGE_SCALE_SIZES=1000,10000,100000 WORKBRIDGE_SCALE_LATENCY_MS=50 \
//!   WORKBRIDGE_SCALE_SCRIPT_UP_TO=10000 WORKBRIDGE_SCALE_QA_SIZES=1000,10000 \
//!   cargo bench --bench sync_scale --features servicenow,azure-devops,alm,sqlite
//! ```
//!
//! Then the QA pair (`WORKBRIDGE_SCALE_QA_SIZES`, default 1000; `WORKBRIDGE_SCALE_QA=0` leaves it
//! out): resolved Azure DevOps Bugs become HP ALM defects (`qa_verification.toml`), each walked
//! New → Open → Fixed; its minimum is one `workitemsbatch` per 200 Bugs, and on ALM one bulk POST
//! and two bulk PUTs per 2,000 defects, plus the fixed reads (login, schema, server time).
//!
//! Each size is measured with comments and attachments off (the rows the minimum is for) and
//! on (the defaults; `WORKBRIDGE_SCALE_EXTRAS=0` leaves these out), and with ServiceNow's
//! versions checked on the writes' answers instead of read before them
//! (`VersionCheck::AfterWrite`; `WORKBRIDGE_SCALE_AFTER=0` leaves it out).
//!
//! Requests are counted by the simulators. The batched minimum of a backfill of N tickets is
//! what the APIs allow at best: on ServiceNow one read per 10,000 rows (the Table API's page
//! maximum) and one Batch API request per 100 write-backs; on Azure DevOps one `$batch` per 200
//! creates and one `workitemsbatch` read per 200 Bugs; plus the fixed reads (schemas, server
//! time) a sync of empty repositories costs, measured in the same run.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use workbridge::mapping::Mapping;
use workbridge::sync::{SqliteStore, SyncOptions, SyncPair};
use workbridge_azure_devops::{AzureDevOpsConfig, AzureDevOpsRepository};
use workbridge_http::ClientOptions;
use workbridge_servicenow::{ServiceNowConfig, ServiceNowRepository, VersionCheck};
use workbridge_sim::Faults;
use workbridge_sim::azure_devops::AzureDevOpsSim;
use workbridge_sim::servicenow::ServiceNowSim;

const SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/docs/mappings/incident_escalation.toml"
);
const QA_SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/docs/mappings/qa_verification.toml"
);

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    match args.first().map(String::as_str) {
        Some("--sim") => runtime.block_on(sim(&args[1..])),
        Some("--sync") => runtime.block_on(sync(&args[1..])),
        _ => orchestrate(),
    }
}

/// A child process that answers one line per command on its standard output.
struct Proc {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Proc {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("this bench"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("a child process");
        let input = child.stdin.take().expect("stdin");
        let output = BufReader::new(child.stdout.take().expect("stdout"));
        Self {
            child,
            input,
            output,
        }
    }

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.input, "{command}").expect("a live child");
        self.input.flush().expect("a live child");
        self.line()
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.output.read_line(&mut line).expect("an answer");
        assert!(!line.is_empty(), "the child process ended");
        line.trim().to_owned()
    }

    fn count(&mut self) -> u64 {
        self.ask("count").parse().expect("a count")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--sim servicenow|azure-devops|alm ITEMS LATENCY_MS`: a simulator holding the items (tickets
/// on ServiceNow, resolved Bugs on Azure DevOps), then
/// serving with the latency; answers `count` (requests since the last `reset`), `reset` and
/// `edit I` (Ops edit ticket I, as in the UI) on standard input.
async fn sim(args: &[String]) {
    let n: usize = args[1].parse().expect("tickets");
    let latency = Duration::from_millis(args[2].parse().expect("latency"));
    // The simulators live until the process ends.
    let mut bugs: Option<(AzureDevOpsSim, Vec<u64>)> = None;
    let (control, url, sn, _keep): (_, _, _, Option<Box<dyn std::any::Any>>) = if args[0] == "alm" {
        let sim = workbridge_sim::alm::AlmSim::builder()
            .user("qa", "qa")
            .spawn()
            .await
            .expect("ALM simulator");
        (sim.control(), sim.url(), None, Some(Box::new(sim)))
    } else if args[0] == "servicenow" {
        let sim = ServiceNowSim::builder()
            .user("admin", "admin", &["admin"])
            .spawn()
            .await
            .expect("ServiceNow simulator");
        sim.clock().freeze_now();
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            // As a backlog builds up: a few tickets a second.
            if i % 5 == 0 {
                sim.clock().advance(Duration::from_secs(1));
            }
            ids.push(sim.insert(
                "incident",
                &[
                    ("short_description", &format!("Defect {i}")),
                    ("description", "Steps:\n1. open\n2. click"),
                    ("category", "software"),
                ],
            ));
        }
        sim.clock().unfreeze();
        (sim.control(), sim.url(), Some((sim, ids)), None)
    } else {
        let sim = AzureDevOpsSim::builder()
            .pat("TOKEN")
            .custom_field("Custom.ServiceNowTicket", "ServiceNow Ticket")
            .custom_field("Custom.SyncKey", "Sync Key")
            .spawn()
            .await
            .expect("Azure DevOps simulator");
        // Resolved Bugs, for QA.
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let id = sim.create("Bug", &[("System.Title", &format!("Fix {i}"))]);
            sim.update(id, &[("System.State", "Active")]);
            sim.update(id, &[("System.State", "Resolved")]);
            ids.push(id);
        }
        let out = (sim.control(), sim.collection_url(), None, None);
        bugs = Some((sim, ids));
        out
    };
    control.set_faults(Faults::none().latency(latency));
    control.reset_requests();
    println!("{url}");
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.unwrap_or_default();
        let answer = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["count"] => control.total_requests().to_string(),
            ["routes"] => format!("{:?}", control.requests()),
            ["reset"] => {
                control.reset_requests();
                "ok".into()
            }
            ["edit", i] if bugs.is_some() => {
                // Dev edits a Bug's title.
                let (sim, ids) = bugs.as_ref().expect("Bugs are in Azure DevOps");
                let id = ids[i.parse::<usize>().expect("an index")];
                sim.update(id, &[("System.Title", "Edited by Dev")]);
                id.to_string()
            }
            ["edit", i] => {
                let (sim, ids) = sn.as_ref().expect("tickets are in ServiceNow");
                let id = &ids[i.parse::<usize>().expect("an index")];
                sim.update(
                    "incident",
                    id,
                    &[("short_description", "Edited by Ops")],
                    "ops",
                )
                .to_string()
            }
            _ => "?".into(),
        };
        println!("{answer}");
    }
}

/// `--sync SN_URL ADO_URL STATE`: the sync, answering `round` (one `run_once`: seconds,
/// writes) and `stats` (peak RSS in KiB, state bytes, links).
async fn sync(args: &[String]) {
    if args[3].starts_with("qa") {
        return serve_sync(qa_pair(args, args[3] == "qa-after"), &args[2]).await;
    }
    let loopback = ClientOptions::default().allow_http(true);
    let sn = Arc::new(
        ServiceNowRepository::new(
            ServiceNowConfig::builder(&args[0])
                .basic("admin", "admin")
                .client_options(loopback.clone())
                .version_check(if args[3] == "after" {
                    VersionCheck::AfterWrite
                } else {
                    VersionCheck::ReadBefore
                })
                .build(),
        )
        .expect("adapter"),
    );
    let ado = Arc::new(
        AzureDevOpsRepository::new(
            AzureDevOpsConfig::builder(&args[1], "Fabrikam")
                .pat("TOKEN")
                // A field of its own for the correlation key, as a deployment of scale has.
                .correlation_field("Custom.SyncKey")
                .client_options(loopback)
                .build(),
        )
        .expect("adapter"),
    );
    let state = std::path::PathBuf::from(&args[2]);
    let store = Arc::new(SqliteStore::open(&state).expect("state"));
    let pair = SyncPair::new(sn, ado, Mapping::from_path(SPEC).expect("spec"), store)
        .expect("pair")
        .with_options(
            SyncOptions::default()
                .comments(args[3] == "extras")
                .attachments(args[3] == "extras"),
        );
    serve_sync(pair, &args[2]).await;
}

/// The QA pair: resolved Bugs of Azure DevOps (`args[0]`) become ALM defects (`args[1]`);
/// `after`: ALM's `VersionCheck::AfterWrite`.
fn qa_pair(args: &[String], after: bool) -> SyncPair {
    let loopback = ClientOptions::default().allow_http(true);
    let ado = Arc::new(
        AzureDevOpsRepository::new(
            AzureDevOpsConfig::builder(&args[0], "Fabrikam")
                .pat("TOKEN")
                .client_options(loopback.clone())
                .build(),
        )
        .expect("adapter"),
    );
    let alm = Arc::new(
        workbridge_alm::AlmRepository::new(
            workbridge_alm::AlmConfig::builder(&args[1], "DEFAULT", "Demo")
                .password("qa", "qa")
                .correlation_field("Sync Key")
                .version_check(if after {
                    VersionCheck::AfterWrite
                } else {
                    VersionCheck::ReadBefore
                })
                .client_options(loopback)
                .build(),
        )
        .expect("adapter"),
    );
    let store = Arc::new(SqliteStore::open(&args[2]).expect("state"));
    let mut options = SyncOptions::default().comments(false).attachments(false);
    // For measuring what a smaller chunk saves in memory and costs in requests.
    if let Some(n) = std::env::var("WORKBRIDGE_SCALE_CHUNK")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options = options.chunk_size(n);
    }
    SyncPair::new(ado, alm, Mapping::from_path(QA_SPEC).expect("spec"), store)
        .expect("pair")
        .with_options(options)
}

/// Answers `round` (one `run_once`: seconds, writes) and `stats` (peak RSS in KiB, state
/// bytes, links) on standard input.
async fn serve_sync(pair: SyncPair, state: &str) {
    let state = std::path::PathBuf::from(state);
    let mut pair = Some(pair);
    println!("ready");
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let answer = match line.unwrap_or_default().as_str() {
            "round" => {
                let Some(pair) = &pair else { break };
                let t = Instant::now();
                let r = pair.run_once().await;
                let took = t.elapsed().as_secs_f64();
                if !r.is_complete() || !r.parked.is_empty() {
                    eprintln!("round incomplete: {r}");
                }
                format!("{took:.3} {}", r.writes())
            }
            "stats" => {
                let Some(p) = pair.take() else { break };
                // The peak of the rounds: counting the links reads them all.
                let rss = peak_rss_kib();
                let links = p.links().await.map_or(0, |l| l.len());
                // The store closed: its log is folded into the database file.
                drop(p);
                let bytes: u64 = ["", "-wal"]
                    .iter()
                    .filter_map(|s| std::fs::metadata(format!("{}{s}", state.display())).ok())
                    .map(|m| m.len())
                    .sum();
                format!("{rss} {bytes} {links}")
            }
            _ => "?".into(),
        };
        println!("{answer}");
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Requests of one round on each side, and its wall time.
struct Round {
    sn: u64,
    ado: u64,
    secs: f64,
}

/// The two simulators of a pair: its left and right systems.
struct Sims {
    left: Proc,
    right: Proc,
}

impl Sims {
    fn start(n: usize, latency_ms: u64) -> (Self, String, String) {
        let (n, l) = (n.to_string(), latency_ms.to_string());
        Self::of(("servicenow", &n), ("azure-devops", "0"), &l)
    }

    /// Azure DevOps holding `n` resolved Bugs, and an empty ALM project.
    fn start_qa(n: usize, latency_ms: u64) -> (Self, String, String) {
        let (n, l) = (n.to_string(), latency_ms.to_string());
        Self::of(("azure-devops", &n), ("alm", "0"), &l)
    }

    fn of(left: (&str, &str), right: (&str, &str), latency: &str) -> (Self, String, String) {
        let mut l = Proc::start(&["--sim", left.0, left.1, latency]);
        let mut r = Proc::start(&["--sim", right.0, right.1, latency]);
        let (lu, ru) = (l.line(), r.line());
        (Self { left: l, right: r }, lu, ru)
    }

    fn take(&mut self) -> (u64, u64) {
        let counts = (self.left.count(), self.right.count());
        self.left.ask("reset");
        self.right.ask("reset");
        counts
    }
}

fn round(sync: &mut Proc, sims: &mut Sims) -> Round {
    let answer = sync.ask("round");
    if std::env::var_os("WORKBRIDGE_SCALE_ROUTES").is_some() {
        eprintln!(
            "round ({answer}): {} | {}",
            sims.left.ask("routes"),
            sims.right.ask("routes")
        );
    }
    let secs = answer
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    let (sn, ado) = sims.take();
    Round { sn, ado, secs }
}

struct Measured {
    backfill: Round,
    idle: Round,
    one_edit: Round,
    rss_kib: u64,
    state_bytes: u64,
    links: u64,
}

/// A backfill of `n` items and the rounds after it: `fields` (tickets to Bugs, comments and
/// attachments off), `extras` (on), `qa` (resolved Bugs to ALM defects).
fn measure(n: usize, latency_ms: u64, mode: &str) -> Measured {
    let (mut sims, sn_url, ado_url) = if mode.starts_with("qa") {
        Sims::start_qa(n, latency_ms)
    } else {
        Sims::start(n, latency_ms)
    };
    let dir = std::env::temp_dir().join(format!("workbridge-scale-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let state = dir.join("state.sqlite");
    let _ = std::fs::remove_file(&state);
    let mut sync = Proc::start(&[
        "--sync",
        &sn_url,
        &ado_url,
        &state.display().to_string(),
        mode,
    ]);
    assert_eq!(sync.line(), "ready");
    sims.take();
    let routes = std::env::var_os("WORKBRIDGE_SCALE_ROUTES").is_some();
    let backfill = if routes {
        let answer = sync.ask("round");
        eprintln!(
            "backfill of {n} ({answer}): ServiceNow {}",
            sims.left.ask("routes")
        );
        eprintln!("backfill of {n}: Azure DevOps {}", sims.right.ask("routes"));
        let (sn, ado) = sims.take();
        let secs = answer
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        Round { sn, ado, secs }
    } else {
        round(&mut sync, &mut sims)
    };
    // The next round reads what the backfill wrote last; the idle poll is the one after.
    round(&mut sync, &mut sims);
    std::thread::sleep(Duration::from_millis(1100));
    round(&mut sync, &mut sims);
    let idle = round(&mut sync, &mut sims);
    if n > 0 {
        sims.left.ask(&format!("edit {}", n / 2));
    }
    sims.take();
    let one_edit = round(&mut sync, &mut sims);
    let stats: Vec<u64> = sync
        .ask("stats")
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    Measured {
        backfill,
        idle,
        one_edit,
        rss_kib: stats.first().copied().unwrap_or(0),
        state_bytes: stats.get(1).copied().unwrap_or(0),
        links: stats.get(2).copied().unwrap_or(0),
    }
}

/// The hand-written script against fresh simulators: requests per side and wall time, or why
/// it did not run.
fn script(n: usize, latency_ms: u64) -> Result<Round, String> {
    let python = std::env::var("WORKBRIDGE_SCALE_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import requests"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(format!(
            "`{python}` cannot import requests (set WORKBRIDGE_SCALE_PYTHON)"
        ));
    }
    let (mut sims, sn_url, ado_url) = Sims::start(n, latency_ms);
    let t = Instant::now();
    let status = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/handwritten_sync.py"
        ))
        .args([&sn_url, &ado_url])
        .status()
        .map_err(|e| e.to_string())?;
    let secs = t.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("the script failed: {status}"));
    }
    let (sn, ado) = sims.take();
    Ok(Round { sn, ado, secs })
}

fn orchestrate() {
    let sizes: Vec<usize> = std::env::var("WORKBRIDGE_SCALE_SIZES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let latency_ms: u64 = env_or("WORKBRIDGE_SCALE_LATENCY_MS", 50);
    let script_up_to: usize = env_or("WORKBRIDGE_SCALE_SCRIPT_UP_TO", 1000);
    let extras = env_or("WORKBRIDGE_SCALE_EXTRAS", 1) != 0;
    let after = env_or("WORKBRIDGE_SCALE_AFTER", 1) != 0;
    let qa_sizes: Vec<usize> = std::env::var("WORKBRIDGE_SCALE_QA_SIZES")
        .unwrap_or_else(|_| "1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let concurrency = 1.0;
    let fixed = measure(0, latency_ms, "fields").backfill;
    println!(
        "latency {latency_ms} ms; fixed reads of an empty backfill: ServiceNow {} / Azure DevOps {}",
        fixed.sn, fixed.ado
    );
    println!(
        "| tickets | round | requests SN / ADO | minimum SN / ADO | ratio | wall time | ÷ requests × latency | peak RSS | state per link |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &n in &sizes {
        let m = measure(n, latency_ms, "fields");
        let min_sn = fixed.sn + n.div_ceil(10_000) as u64 + n.div_ceil(100) as u64;
        let min_ado = fixed.ado + 2 * n.div_ceil(200) as u64;
        let lat = latency_ms as f64 / 1000.0;
        let row = |label: &str, r: &Round, min: Option<(u64, u64)>, extra: &str| {
            let total = (r.sn + r.ado) as f64;
            let ideal = total * lat / concurrency;
            let (min_s, ratio) = min.map_or(("".into(), "".into()), |(s, a)| {
                (
                    format!("{s} / {a}"),
                    format!("{:.2}", total / (s + a) as f64),
                )
            });
            println!(
                "| {n} | {label} | {} / {} | {min_s} | {ratio} | {:.1} s | {:.2} | {extra} |",
                r.sn,
                r.ado,
                r.secs,
                if ideal > 0.0 { r.secs / ideal } else { 0.0 },
            );
        };
        let per_link = m.state_bytes.checked_div(m.links).unwrap_or(0);
        row(
            "backfill",
            &m.backfill,
            Some((min_sn, min_ado)),
            &format!("{:.1} MiB | {per_link} B", m.rss_kib as f64 / 1024.0),
        );
        row("idle poll", &m.idle, Some((1, 1)), "");
        row("one ticket edited", &m.one_edit, None, "");
        if after {
            let a = measure(n, latency_ms, "after");
            let per_link = a.state_bytes.checked_div(a.links).unwrap_or(0);
            row(
                "backfill, ServiceNow `VersionCheck::AfterWrite`",
                &a.backfill,
                Some((min_sn, min_ado)),
                &format!("{:.1} MiB | {per_link} B", a.rss_kib as f64 / 1024.0),
            );
            row("one ticket edited, the same", &a.one_edit, None, "");
        }
        if extras {
            let e = measure(n, latency_ms, "extras");
            let per_link = e.state_bytes.checked_div(e.links).unwrap_or(0);
            row(
                "backfill, comments and attachments on",
                &e.backfill,
                None,
                &format!("{:.1} MiB | {per_link} B", e.rss_kib as f64 / 1024.0),
            );
            row("idle poll, the same", &e.idle, Some((1, 1)), "");
            row("one ticket edited, the same", &e.one_edit, None, "");
        }
        if n <= script_up_to {
            match script(n, latency_ms) {
                Ok(r) => {
                    let (ours, theirs) = (
                        (m.backfill.sn + m.backfill.ado) as f64,
                        (r.sn + r.ado) as f64,
                    );
                    row(
                        "hand-written script",
                        &r,
                        Some((min_sn, min_ado)),
                        &format!(
                            "| workbridge: {:.1}× fewer requests, {:.1}× less time",
                            theirs / ours.max(1.0),
                            r.secs / m.backfill.secs.max(0.001)
                        ),
                    );
                }
                Err(why) => println!("| {n} | hand-written script | not run: {why} |"),
            }
        }
    }
    if env_or("WORKBRIDGE_SCALE_QA", 1) == 0 {
        return;
    }
    // The QA pair: resolved Bugs become ALM defects, each walked New → Open → Fixed.
    let fixed = measure(0, latency_ms, "qa").backfill;
    println!();
    println!(
        "Azure DevOps → ALM; fixed reads of an empty backfill: Azure DevOps {} / ALM {}",
        fixed.sn, fixed.ado
    );
    println!(
        "| Bugs | round | requests ADO / ALM | minimum ADO / ALM | ratio | wall time | ÷ requests × latency | peak RSS | state per link |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let lat = latency_ms as f64 / 1000.0;
    let modes: &[(&str, &str)] = if env_or("WORKBRIDGE_SCALE_AFTER", 1) == 0 {
        &[("qa", "")]
    } else {
        &[("qa", ""), ("qa-after", ", ALM `VersionCheck::AfterWrite`")]
    };
    for (n, (mode, suffix)) in qa_sizes
        .iter()
        .flat_map(|n| modes.iter().map(move |m| (*n, *m)))
    {
        let m = measure(n, latency_ms, mode);
        // Azure DevOps: one `workitemsbatch` per 200 Bugs; ALM: one bulk POST per 2,000 defects
        // and one bulk PUT per 2,000 for each of the walk's two steps.
        let min = (
            fixed.sn + n.div_ceil(200) as u64,
            fixed.ado + 3 * n.div_ceil(2000) as u64,
        );
        for (label, r, min) in [
            ("backfill", &m.backfill, Some(min)),
            ("idle poll", &m.idle, Some((1, 1))),
            ("one Bug edited", &m.one_edit, None),
        ] {
            let label = format!("{label}{suffix}");
            let total = (r.sn + r.ado) as f64;
            let (min_s, ratio) = min.map_or(("".into(), "".into()), |(a, b)| {
                (
                    format!("{a} / {b}"),
                    format!("{:.2}", total / (a + b) as f64),
                )
            });
            let extra = if label.starts_with("backfill") {
                format!(
                    "{:.1} MiB | {} B",
                    m.rss_kib as f64 / 1024.0,
                    m.state_bytes.checked_div(m.links).unwrap_or(0)
                )
            } else {
                " |".into()
            };
            println!(
                "| {n} | {label} | {} / {} | {min_s} | {ratio} | {:.1} s | {:.2} | {extra} |",
                r.sn,
                r.ado,
                r.secs,
                if total > 0.0 {
                    r.secs / (total * lat)
                } else {
                    0.0
                },
            );
        }
    }
}
