//! `workbridge-sim`: runs a simulator until stopped.
//!
//! ```text
//! cargo run -p workbridge-sim -- servicenow --port 8080 --user admin --password admin --seed-items 100
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;

const USAGE: &str = "usage: workbridge-sim servicenow [--user NAME] [--password PW] [--oauth-client ID:SECRET] [SHARED]
       workbridge-sim azure-devops [--organization ORG] [--project P] [--pat TOKEN]
       [--server-version tfs2015|tfs2017|tfs2018|server2019|server2020|server2022|services]
       [--process agile|scrum|cmmi] [SHARED]
       workbridge-sim alm [--domain D] [--project P] [--user NAME] [--password PW]
       [--version V] [--tz-offset-minutes N] [SHARED]
SHARED: [--port N] [--seed-items N] [--rng-seed N] [--latency-ms N] [--error-rate STATUS:RATIO]
       [--tls] [--pem PATH]
--seed-items N holds N sample items at start (default 100); --rng-seed picks their values.
--tls serves HTTPS with a self-signed certificate made at start; its PEM is written to --pem
(default: the temporary directory) and its path printed on the second line.";

/// Flags that take no value.
const SWITCHES: [&str; 1] = ["tls"];

fn parse(args: &[String]) -> Result<(String, HashMap<String, String>), String> {
    let mut it = args.iter();
    let system = it.next().ok_or("name a simulator")?.clone();
    let mut opts = HashMap::new();
    while let Some(flag) = it.next() {
        let key = flag
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument `{flag}`"))?;
        if SWITCHES.contains(&key) {
            opts.insert(key.to_owned(), String::new());
            continue;
        }
        let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
        opts.insert(key.to_owned(), value.clone());
    }
    Ok((system, opts))
}

fn number<T: std::str::FromStr>(
    opts: &HashMap<String, String>,
    key: &str,
    default: T,
) -> Result<T, String> {
    opts.get(key).map_or(Ok(default), |v| {
        v.parse()
            .map_err(|_| format!("--{key}: `{v}` is not a number"))
    })
}

/// The options every simulator takes, from the shared flags.
fn options(opts: &HashMap<String, String>) -> Result<workbridge_sim::SimOptions, String> {
    let mut faults = workbridge_sim::Faults::none().latency(std::time::Duration::from_millis(
        number(opts, "latency-ms", 0)?,
    ));
    if let Some(spec) = opts.get("error-rate") {
        let (s, r) = spec
            .split_once(':')
            .ok_or("--error-rate takes STATUS:RATIO")?;
        faults = faults.error_rate(
            s.parse().map_err(|_| "bad status")?,
            r.parse().map_err(|_| "bad ratio")?,
        );
    }
    let mut o = workbridge_sim::SimOptions::default();
    o.port = number(opts, "port", 8080)?;
    o.faults = faults;
    o.seed_items = number(opts, "seed-items", 100)?;
    o.rng_seed = number(opts, "rng-seed", 1)?;
    o.tls = opts.contains_key("tls").then(|| match opts.get("pem") {
        Some(p) => workbridge_sim::Tls::pem_at(p),
        None => workbridge_sim::Tls::self_signed(),
    });
    Ok(o)
}

/// Prints the certificate's path, when there is one.
fn print_certificate(c: Option<&workbridge_sim::Certificate>) {
    if let Some(c) = c {
        println!("certificate: {}", c.path.display());
    }
}

async fn run(args: &[String]) -> Result<(), String> {
    let (system, opts) = parse(args)?;
    match system.as_str() {
        "alm" => {
            use workbridge_sim::alm::{AlmSim, AlmVersion};
            let version = opts.get("version").map_or("16", String::as_str);
            let v = AlmVersion::parse(version)
                .ok_or_else(|| format!("unknown --version `{version}`"))?;
            let user = opts.get("user").map_or("qa", String::as_str);
            let sim = AlmSim::builder()
                .options(options(&opts)?)
                .domain(opts.get("domain").map_or("DEFAULT", String::as_str))
                .project(opts.get("project").map_or("Demo", String::as_str))
                .user(user, opts.get("password").map_or("qa", String::as_str))
                .version(v)
                .time_zone_offset_minutes(number(&opts, "tz-offset-minutes", -420)?)
                .spawn()
                .await
                .map_err(|e| format!("cannot listen: {e}"))?;
            println!("{}/qcbin", sim.url());
            print_certificate(sim.certificate());
            println!("ALM simulator ({version}), user {user}; Ctrl-C stops it");
            tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
            sim.stop().await;
            Ok(())
        }
        "azure-devops" => {
            use workbridge_sim::azure_devops::{AzureDevOpsSim, Process, ServerVersion};
            let version = opts
                .get("server-version")
                .map_or("services", String::as_str);
            let server = ServerVersion::parse(version)
                .ok_or_else(|| format!("unknown --server-version `{version}`"))?;
            let process = match opts.get("process").map_or("agile", String::as_str) {
                "agile" => Process::Agile,
                "scrum" => Process::Scrum,
                "cmmi" => Process::Cmmi,
                other => return Err(format!("unknown --process `{other}`")),
            };
            let sim = AzureDevOpsSim::builder()
                .options(options(&opts)?)
                .organization(opts.get("organization").map_or("fabrikam", String::as_str))
                .project(opts.get("project").map_or("Fabrikam", String::as_str))
                .pat(opts.get("pat").map_or("TOKEN", String::as_str))
                .server_version(server)
                .process(process)
                .spawn()
                .await
                .map_err(|e| format!("cannot listen: {e}"))?;
            println!("{}", sim.collection_url());
            print_certificate(sim.certificate());
            println!(
                "Azure DevOps simulator ({version}), project {}; Ctrl-C stops it",
                sim.project()
            );
            tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
            sim.stop().await;
            Ok(())
        }
        "servicenow" => {
            let user = opts.get("user").map_or("admin", String::as_str);
            let password = opts.get("password").map_or("admin", String::as_str);
            let mut b = workbridge_sim::servicenow::ServiceNowSim::builder()
                .options(options(&opts)?)
                .user(user, password, &["admin"]);
            if let Some(c) = opts.get("oauth-client") {
                let (id, secret) = c.split_once(':').ok_or("--oauth-client takes ID:SECRET")?;
                b = b.oauth_client(id, secret);
            }
            let sim = b.spawn().await.map_err(|e| format!("cannot listen: {e}"))?;
            println!("{}", sim.url());
            print_certificate(sim.certificate());
            println!("ServiceNow simulator: user {user}; Ctrl-C stops it");
            tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
            sim.stop().await;
            Ok(())
        }
        other => Err(format!("unknown simulator `{other}`")),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args).await {
        eprintln!("workbridge-sim: {e}\n{USAGE}");
        std::process::exit(2);
    }
}
