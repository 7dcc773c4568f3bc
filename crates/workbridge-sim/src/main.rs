//! `workbridge-sim`: runs a simulator until stopped.
//!
//! ```text
//! cargo run -p workbridge-sim -- servicenow --port 8080 --user admin --password admin --seed-items 100
//! cargo run -p workbridge-sim -- azure-devops --help
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Runs a simulator of ServiceNow, Azure DevOps / TFS or HP ALM on 127.0.0.1 until Ctrl-C. It
/// prints its URL on the first line (and, with --tls, its certificate's path on the second).
#[derive(Debug, Parser)]
#[command(name = "workbridge-sim", version)]
struct Cli {
    #[command(subcommand)]
    system: System,
}

#[derive(Debug, Subcommand)]
enum System {
    /// ServiceNow: Table, Attachment and Batch APIs, basic auth and OAuth.
    Servicenow {
        /// The user that signs in.
        #[arg(long, default_value = "admin")]
        user: String,
        /// Its password.
        #[arg(long, default_value = "admin")]
        password: String,
        /// An OAuth client, as ID:SECRET.
        #[arg(long, value_name = "ID:SECRET")]
        oauth_client: Option<String>,
        #[command(flatten)]
        shared: Shared,
    },
    /// Azure DevOps Services or Server / TFS: work items, WIQL, batches, comments, attachments.
    AzureDevops {
        /// The organization (collection) name.
        #[arg(long, default_value = "fabrikam")]
        organization: String,
        /// The project.
        #[arg(long, default_value = "Fabrikam")]
        project: String,
        /// The personal access token it accepts.
        #[arg(long, default_value = "TOKEN")]
        pat: String,
        /// The server it answers as: tfs2015, tfs2017, tfs2018, server2019, server2020,
        /// server2022 or services.
        #[arg(long, default_value = "services")]
        server_version: String,
        /// The project's process.
        #[arg(long, value_enum, default_value_t = ProcessArg::Agile)]
        process: ProcessArg,
        #[command(flatten)]
        shared: Shared,
    },
    /// HP ALM / Quality Center: sessions, entities, bulk writes, locks, attachments.
    Alm {
        /// The domain.
        #[arg(long, default_value = "DEFAULT")]
        domain: String,
        /// The project.
        #[arg(long, default_value = "Demo")]
        project: String,
        /// The user that signs in.
        #[arg(long, default_value = "qa")]
        user: String,
        /// Its password.
        #[arg(long, default_value = "qa")]
        password: String,
        /// The ALM version it answers as (12.60, 15, 16, …).
        #[arg(long, default_value = "16")]
        version: String,
        /// The server's offset from UTC, in minutes (ALM times are the server's local time).
        #[arg(long, default_value_t = -420, allow_hyphen_values = true)]
        tz_offset_minutes: i64,
        #[command(flatten)]
        shared: Shared,
    },
}

/// What every simulator takes.
#[derive(Debug, Args)]
struct Shared {
    /// The port on 127.0.0.1 (0: any free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Sample items held at start.
    #[arg(long, default_value_t = 100)]
    seed_items: usize,
    /// Picks the sample items' values.
    #[arg(long, default_value_t = 1)]
    rng_seed: u64,
    /// Latency added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Answers this share of requests with this status, as STATUS:RATIO (`503:0.1`).
    #[arg(long, value_name = "STATUS:RATIO")]
    error_rate: Option<String>,
    /// Serves HTTPS with a self-signed certificate made at start.
    #[arg(long)]
    tls: bool,
    /// Where --tls writes the certificate's PEM (default: the temporary directory).
    #[arg(long, requires = "tls")]
    pem: Option<PathBuf>,
    /// Serves an admin endpoint on 127.0.0.1 at this port (0: any free one): request counts
    /// (`GET`/`DELETE /requests`) and faults (`GET`/`PUT /faults`, `POST /fail-next`). Its URL
    /// is printed as `admin: http://127.0.0.1:PORT`.
    #[arg(long)]
    admin_port: Option<u16>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProcessArg {
    Agile,
    Scrum,
    Cmmi,
}

/// The options every simulator takes, from the shared flags.
fn options(s: &Shared) -> Result<workbridge_sim::SimOptions, String> {
    let mut faults =
        workbridge_sim::Faults::none().latency(std::time::Duration::from_millis(s.latency_ms));
    if let Some(spec) = &s.error_rate {
        let (status, ratio) = spec
            .split_once(':')
            .ok_or("--error-rate takes STATUS:RATIO")?;
        faults = faults.error_rate(
            status
                .parse()
                .map_err(|_| format!("--error-rate: `{status}` is not a status"))?,
            ratio
                .parse()
                .map_err(|_| format!("--error-rate: `{ratio}` is not a ratio"))?,
        );
    }
    let mut o = workbridge_sim::SimOptions::default();
    o.port = s.port;
    o.faults = faults;
    o.seed_items = s.seed_items;
    o.rng_seed = s.rng_seed;
    o.tls = s.tls.then(|| match &s.pem {
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

/// Starts the admin endpoint when asked for, and prints its URL.
async fn admin(
    s: &Shared,
    control: workbridge_sim::SimControl,
) -> Result<Option<workbridge_sim::AdminServer>, String> {
    let Some(port) = s.admin_port else {
        return Ok(None);
    };
    let a = control
        .serve_admin(port)
        .await
        .map_err(|e| format!("--admin-port: cannot listen: {e}"))?;
    println!("admin: http://{}", a.addr());
    Ok(Some(a))
}

async fn run(system: System) -> Result<(), String> {
    match system {
        System::Alm {
            domain,
            project,
            user,
            password,
            version,
            tz_offset_minutes,
            shared,
        } => {
            use workbridge_sim::alm::{AlmSim, AlmVersion};
            let v = AlmVersion::parse(&version)
                .ok_or_else(|| format!("unknown --version `{version}`"))?;
            let sim = AlmSim::builder()
                .options(options(&shared)?)
                .domain(&domain)
                .project(&project)
                .user(&user, &password)
                .version(v)
                .time_zone_offset_minutes(tz_offset_minutes)
                .spawn()
                .await
                .map_err(|e| format!("cannot listen: {e}"))?;
            println!("{}/qcbin", sim.url());
            print_certificate(sim.certificate());
            let _admin = admin(&shared, sim.control()).await?;
            println!("ALM simulator ({version}), user {user}; Ctrl-C stops it");
            tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
            sim.stop().await;
            Ok(())
        }
        System::AzureDevops {
            organization,
            project,
            pat,
            server_version,
            process,
            shared,
        } => {
            use workbridge_sim::azure_devops::{AzureDevOpsSim, Process, ServerVersion};
            let server = ServerVersion::parse(&server_version)
                .ok_or_else(|| format!("unknown --server-version `{server_version}`"))?;
            let process = match process {
                ProcessArg::Agile => Process::Agile,
                ProcessArg::Scrum => Process::Scrum,
                ProcessArg::Cmmi => Process::Cmmi,
            };
            let sim = AzureDevOpsSim::builder()
                .options(options(&shared)?)
                .organization(&organization)
                .project(&project)
                .pat(&pat)
                .server_version(server)
                .process(process)
                .spawn()
                .await
                .map_err(|e| format!("cannot listen: {e}"))?;
            println!("{}", sim.collection_url());
            print_certificate(sim.certificate());
            let _admin = admin(&shared, sim.control()).await?;
            println!(
                "Azure DevOps simulator ({server_version}), project {}; Ctrl-C stops it",
                sim.project()
            );
            tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
            sim.stop().await;
            Ok(())
        }
        System::Servicenow {
            user,
            password,
            oauth_client,
            shared,
        } => {
            let mut b = workbridge_sim::servicenow::ServiceNowSim::builder()
                .options(options(&shared)?)
                .user(&user, &password, &["admin"]);
            if let Some(c) = &oauth_client {
                let (id, secret) = c.split_once(':').ok_or("--oauth-client takes ID:SECRET")?;
                b = b.oauth_client(id, secret);
            }
            let sim = b.spawn().await.map_err(|e| format!("cannot listen: {e}"))?;
            println!("{}", sim.url());
            print_certificate(sim.certificate());
            let _admin = admin(&shared, sim.control()).await?;
            println!("ServiceNow simulator: user {user}; Ctrl-C stops it");
            tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
            sim.stop().await;
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() {
    // Unknown flags, missing values and bad numbers are refused with the usage (exit 2);
    // `--help` prints it (exit 0).
    let cli = Cli::parse();
    if let Err(e) = run(cli.system).await {
        eprintln!("workbridge-sim: {e}");
        std::process::exit(2);
    }
}
