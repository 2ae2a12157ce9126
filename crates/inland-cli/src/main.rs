//! `inland`: every Inland service as a subcommand of one binary.

mod config;
mod dev_certs;
mod embedded;
mod keys;
mod metrics;
mod observability;
mod otlp_metrics;
mod readiness;
mod services;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::config::InlandConfig;

/// Every upload allocates and frees many small buffers across threads; glibc malloc spent
/// a quarter of the gateway's CPU on that under load, mimalloc a fraction of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "inland", version, about = "In-country vehicle data backend")]
struct Cli {
    /// A TOML config file; `INLAND__SECTION__KEY` environment variables override it.
    #[arg(long, global = true, env = "INLAND_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline in one process on embedded defaults (in-process bus, local
    /// directories), optionally with a simulated fleet.
    Run(embedded::RunArgs),
    /// Serve the vehicle upload API, producing to Kafka.
    Gateway,
    /// Drop records and frames recorded near protected sites: inland.raw.v1 →
    /// inland.geofenced.v1 on Kafka.
    Geofence,
    /// Pseudonymize, minimize and blur: inland.geofenced.v1 → inland.anonymized.v1 on Kafka.
    Anonymizer,
    /// Archive anonymized records as Parquet in the object store (inland.anonymized.v1 →
    /// `store`), keep consent events, carry out erasure requests. Refuses to start while
    /// the bucket's lifecycle rules keep a class longer than `store.shelf_life`.
    Archiver,
    /// Set up and check the object store's bucket and lifecycle rules.
    Storage {
        #[command(subcommand)]
        command: inland_store::cli::StorageCommand,
    },
    /// Operator commands on the archive (erase a vehicle's pseudonyms by hand).
    Archive {
        #[command(subcommand)]
        command: inland_archiver::cli::ArchiveCommand,
    },
    /// Manage the pseudonym key file (held in-country; never logged).
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Create Inland's Kafka topics with their partitions and retention (idempotent).
    Topics,
    /// Simulate a fleet of vehicles streaming to a gateway, then print a summary.
    Simulate(inland_simulator::cli::SimulateArgs),
    /// Check zone files and test points against them (no servers needed).
    Zones {
        #[command(subcommand)]
        command: inland_geofence::cli::ZonesCommand,
    },
    /// Blur faces and plates in a JPEG (`IN OUT`), or score the anonymizer on a labelled
    /// folder (`--eval DIR`). Needs the models: `export $(scripts/fetch-models.sh)`.
    Anonymize(inland_vision::cli::AnonymizeArgs),
    /// Generate a dev fleet CA, a gateway certificate, an operator certificate and vehicle
    /// certificates.
    DevCerts(dev_certs::DevCertsArgs),
    /// Grant, withdraw and show consent, and its history, through a gateway's consent API
    /// (with an operator certificate).
    Consent {
        #[command(subcommand)]
        command: inland_consent::cli::ConsentCommand,
    },
    /// `query` (serve SQL), `sql`, `audit verify` and `export`.
    #[command(flatten)]
    Query(inland_query::cli::Command),
}

/// Flags that override the config file and environment; only those given are set.
#[derive(Serialize, Default)]
struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let overrides = match &cli.command {
        Command::Run(args) => Overrides {
            data_dir: args.data_dir.clone(),
        },
        _ => Overrides::default(),
    };
    let config: InlandConfig = inland_config::load(cli.config.as_deref(), overrides)?;
    match cli.command {
        Command::DevCerts(args) => return dev_certs::run(args),
        Command::Keys { command } => return keys::run(command),
        Command::Anonymize(args) => return Ok(inland_vision::cli::run(args)?),
        // A client: no admin server (it would collide with a running `inland run`).
        Command::Consent { command } => {
            let runtime = tokio::runtime::Runtime::new()?;
            print!("{}", runtime.block_on(inland_consent::cli::run(command))?);
            return Ok(());
        }
        // Tools: no admin server either.
        Command::Storage { command } => {
            let runtime = tokio::runtime::Runtime::new()?;
            let out = std::io::stdout().lock();
            return Ok(runtime.block_on(inland_store::cli::run(command, &config.store, out))?);
        }
        Command::Archive { command } => {
            let runtime = tokio::runtime::Runtime::new()?;
            return runtime.block_on(services::archive(command, &config));
        }
        Command::Query(command) if !command.serves() => {
            let runtime = tokio::runtime::Runtime::new()?;
            let query = (&config.store, &config.data_dir, &config.query);
            let out = &mut std::io::stdout().lock();
            return Ok(runtime.block_on(inland_query::cli::run(
                command, query.0, query.1, query.2, out,
            ))?);
        }
        Command::Zones { command } => {
            return Ok(inland_geofence::cli::run(
                command,
                std::io::stdin().lock(),
                std::io::stdout().lock(),
            )?);
        }
        _ => {}
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let telemetry = {
        let _in_runtime = runtime.enter();
        observability::init_logs(&config.observability, cli.command.service_name())?
    };
    let exporting = &telemetry;
    let result = runtime.block_on(async move {
        let ready = observability::init_admin(&config.observability, exporting).await?;
        match cli.command {
            Command::Run(args) => embedded::run(config, args, ready).await,
            Command::Gateway => services::gateway(config, ready).await,
            Command::Geofence => services::geofence(config, ready).await,
            Command::Anonymizer => services::anonymizer(config, ready).await,
            Command::Archiver => services::archiver(config, ready).await,
            Command::Query(_) => services::query(config, ready).await,
            Command::Topics => services::create_topics(&config).await,
            Command::Simulate(args) => services::simulate(config, args).await,
            Command::DevCerts(_)
            | Command::Zones { .. }
            | Command::Anonymize(_)
            | Command::Consent { .. }
            | Command::Storage { .. }
            | Command::Archive { .. }
            | Command::Keys { .. } => {
                unreachable!("handled before the runtime starts")
            }
        }
    });
    // Exports what is still batched; the runtime must still run the gRPC channel.
    telemetry.shutdown();
    result
}

impl Command {
    /// Names the service in exported traces (`inland-<name>`).
    fn service_name(&self) -> &'static str {
        match self {
            Command::Run(_) => "run",
            Command::Gateway => "gateway",
            Command::Geofence => "geofence",
            Command::Anonymizer => "anonymizer",
            Command::Archiver => "archiver",
            Command::Storage { .. } => "storage",
            Command::Archive { .. } => "archive",
            Command::Keys { .. } => "keys",
            Command::Topics => "topics",
            Command::Simulate(_) => "simulate",
            Command::Zones { .. } => "zones",
            Command::Anonymize(_) => "anonymize",
            Command::DevCerts(_) => "dev-certs",
            Command::Consent { .. } => "consent",
            Command::Query(_) => "query",
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM (what Kubernetes sends before killing a pod), first
/// turning readiness off so no new work is routed here while in-flight work drains.
async fn shutdown_signal(ready: readiness::Readiness) {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail on Unix");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    ready.set(false);
    tracing::info!("shutting down: draining in-flight work");
}
