//! The worker: the sync as a deployment runs it, in its own process, on a shared store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use workbridge::Repository;
use workbridge::mapping::Mapping;
use workbridge::sync::{PostgresStore, SqliteStore, StateStore, SyncOptions, SyncPair};

use crate::{ESCALATION, QA, Setup, Urls, flag, setup, systems};

/// Rounds of both pairs — escalation (ticket ↔ Bug) and QA verification (Bug ↔ defect) — until
/// killed, or (`--until-quiet`) until a complete round of both writes nothing; it then prints
/// `quiet writes=N` with the writes of its first complete round and exits 0.
pub(crate) async fn worker(args: &[String]) -> Setup<i32> {
    let urls = Urls::from_args(args)?;
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
    let sys = systems(&urls, 1)?;
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
    // A killed worker's create may land for as long as a request's budget: 6 s here.
    let mut options = SyncOptions::default()
        .in_flight_grace(Duration::from_secs(8))
        .lease_ttl(Duration::from_millis(lease));
    if let Some(n) = flag(args, "--page-size").and_then(|s| s.parse().ok()) {
        options = options.page_size(n);
    }
    let holder = flag(args, "--holder");
    let pair = |id: &str,
                spec: &str,
                left: Arc<dyn Repository>,
                right: Arc<dyn Repository>|
     -> Setup<SyncPair> {
        let mapping = setup(Mapping::from_toml_str(spec), id)?;
        let p = setup(SyncPair::new(left, right, mapping, store.clone()), id)?
            .with_id(id)
            .with_options(options.clone());
        Ok(match &holder {
            Some(h) => p.with_holder(h.clone()),
            None => p,
        })
    };
    let pairs = [
        pair("soak", ESCALATION, sys.sn.clone(), sys.ado.clone())?,
        // As the QA pattern is documented: the scope decides which Bugs get a defect, and a
        // Bug QA sends back keeps its defect.
        pair("soak-qa", QA, sys.ado.clone(), sys.alm.clone())?
            .with_options(options.clone().retire_out_of_scope(false)),
    ];
    let started = Instant::now();
    let mut first_writes = None;
    loop {
        let (mut complete, mut writes, mut parked) = (true, 0, 0);
        for p in &pairs {
            let r = p.run_once().await;
            println!("round {} {r}", p.id());
            complete &= r.is_complete();
            writes += r.writes();
            parked += r.parked.len();
        }
        if until_quiet {
            if first_writes.is_none() && complete {
                first_writes = Some(writes);
            }
            if complete && writes == 0 && parked == 0 {
                println!("quiet writes={}", first_writes.unwrap_or(0));
                return Ok(0);
            }
            if started.elapsed() > Duration::from_secs(90) {
                println!("not quiet after 90 s");
                return Ok(1);
            }
        }
        tokio::time::sleep(Duration::from_millis(if until_quiet { 200 } else { 30 })).await;
    }
}
