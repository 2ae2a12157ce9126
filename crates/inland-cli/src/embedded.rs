//! `inland run`: the whole pipeline in one process on embedded defaults, so a newcomer
//! sees data flow with one command. Same services as the distributed mode, with the
//! in-process bus in place of Kafka, dev certificates under the data directory, and the
//! archive in a local directory there (`store.local.dir`) swept by shelf life.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use inland_anonymizer::{AnonymizerConfig, AnonymizerStage, ErasureStage, FramesMode};
use inland_archiver::{Archiver, Inputs};
use inland_consent::{ConsentLog, ConsentView, ViewOptions};
use inland_core::topics;
use inland_datasets::Dataset;
use inland_gateway::Gateway;
use inland_gateway::GatewayConfig;
use inland_geofence::{GeofenceConfig, GeofenceStage};
use inland_stage::{MemoryBus, Stage, StageConfig, run_stage};
use inland_store::{Backend, ObjectStore};
use inland_tls::{DevCerts, FleetCa, ServerTls};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::InlandConfig;
use crate::readiness::Readiness;
use crate::services::{ANONYMIZER, ERASURE, GEOFENCE, StageSite, sweep_local_store};

#[derive(Args)]
pub struct RunArgs {
    /// Where local state goes (default `.inland`, or `data_dir` in the config).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also run a simulated fleet against the gateway.
    #[arg(long)]
    pub simulate: bool,
}

pub async fn run(config: InlandConfig, args: RunArgs, ready: Readiness) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let bus = MemoryBus::new(config.bus);
    bus.ensure_topics(&config.topics.specs())?;

    // Stages join their groups before the gateway accepts, so no record is produced while
    // nobody reads and retention is the only bound.
    let geofence = GeofenceStage::start(&with_sample_zones(
        config.geofence.clone(),
        &config.data_dir,
    )?)?;
    let geofence = spawn_on_bus(&bus, GEOFENCE, geofence, &shutdown)?;
    let anonymizer_config = embedded_anonymizer(config.anonymizer.clone(), &config.data_dir)?;
    let anonymizer = AnonymizerStage::start(&anonymizer_config)?;
    let anonymizer = spawn_on_bus(&bus, ANONYMIZER, anonymizer, &shutdown)?;
    let erasure = ErasureStage::start(&anonymizer_config, topics::ERASURE)?;
    let erasure = spawn_on_bus(&bus, ERASURE, erasure, &shutdown)?;
    // Stopped after the anonymizer, so it archives what the anonymizer's drain produced.
    let archiving = CancellationToken::new();
    let store = inland_store::open(&config.store, &config.data_dir).await?;
    let archiver = Archiver::new(
        store.clone(),
        Arc::new(bus.clone()),
        config.archiver.clone(),
    )?;
    let inputs = Inputs::on_memory_bus(&bus, &config.archiver)?;
    let archiver = tokio::spawn(archiver.run(inputs, archiving.clone()));
    let sweeper = sweep_local_store(&config, &archiving)?;

    let gateway_config = with_dev_tls(config.gateway.clone(), &config.data_dir)?;
    let history = ViewOptions {
        keep_history: true,
        ..ViewOptions::default()
    };
    let consent = ConsentLog {
        view: ConsentView::on_memory_bus(&bus, &gateway_config.consent_topic, history).await?,
        producer: Arc::new(bus.clone()),
    };
    let gateway = Gateway::bind(gateway_config, Arc::new(bus.clone()), consent).await?;
    let addr = gateway.local_addr();
    let serving = tokio::spawn(gateway.serve(shutdown.clone().cancelled_owned()));
    ready.set(true);
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "embedded pipeline running; Ctrl-C stops it");

    let fleet = args.simulate.then(|| {
        let mut fleet = config.simulator.clone();
        fleet.gateway = format!("https://{addr}");
        let certs = config.data_dir.join("certs");
        let stop = shutdown.clone();
        tokio::spawn(async move { inland_simulator::run(fleet, Some(&certs), true, stop).await })
    });
    let status = tokio::spawn(report_progress(bus.clone(), shutdown.clone()));
    crate::shutdown_signal(ready).await;
    shutdown.cancel();
    status.await.context("status task")?;
    if let Some(fleet) = fleet {
        println!("{}", fleet.await.context("simulator task")??);
    }
    serving.await.context("gateway task")??;
    geofence.await.context("geofence task")??;
    anonymizer.await.context("anonymizer task")??;
    erasure.await.context("erasure task")??;
    archiving.cancel();
    archiver.await.context("archiver task")??;
    if let Some(sweeper) = sweeper {
        sweeper.await.context("sweeper task")?;
    }
    report_archive(store.as_ref(), &config).await;
    Ok(())
}

/// Where the archive is and how to query it, once the archiver has written its last batch.
async fn report_archive(store: &dyn ObjectStore, config: &InlandConfig) {
    let mut files = 0;
    for dataset in [Dataset::Telemetry, Dataset::FrameIndex] {
        if let Ok(listed) = store.list(dataset.root()).await {
            files += listed
                .iter()
                .filter(|o| o.key.ends_with(".parquet"))
                .count();
        }
    }
    if config.store.backend == Backend::Local {
        let dir = config.store.local_dir(&config.data_dir);
        println!(
            "archive: {files} Parquet files under {} (Hive partitions; e.g. duckdb -c \
             \"select count(*) from read_parquet('{}/dataset=telemetry/**/*.parquet', \
             hive_partitioning=1)\")",
            dir.display(),
            dir.display()
        );
    } else {
        println!(
            "archive: {files} Parquet files in bucket {}",
            config.store.s3.bucket
        );
    }
}

fn spawn_on_bus(
    bus: &MemoryBus,
    site: StageSite,
    stage: impl Stage,
    shutdown: &CancellationToken,
) -> anyhow::Result<JoinHandle<Result<(), inland_stage::Error>>> {
    let consumer = bus.consumer(&site.group(), &[site.input])?;
    let config = StageConfig::new(site.name);
    Ok(tokio::spawn(run_stage(
        stage,
        consumer,
        Arc::new(bus.clone()),
        config,
        shutdown.clone(),
    )))
}

/// A pseudonym key file under the data directory (created on first run) unless the config
/// names one; and frames dropped, not passed, when no models are installed.
fn embedded_anonymizer(
    mut config: AnonymizerConfig,
    data_dir: &Path,
) -> anyhow::Result<AnonymizerConfig> {
    if config.key_file.is_none() {
        let path = data_dir.join("pseudonym-keys.toml");
        if !path.exists() {
            inland_anonymizer::keys::generate(&path)?;
        }
        config.key_file = Some(path);
    }
    let models =
        config.vision.models_dir.is_some() || std::env::var_os("INLAND_MODELS_DIR").is_some();
    if config.frames == FramesMode::Anonymize && !models {
        tracing::warn!(
            "no anonymizer models: camera frames are dropped; `export $(scripts/fetch-models.sh)` \
             (make run does it) to anonymize them instead"
        );
        config.frames = FramesMode::Drop;
    }
    Ok(config)
}

/// Logs, every few seconds and once at the end, how many records each topic received, so
/// a newcomer sees data flow through the stages.
async fn report_progress(bus: MemoryBus, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
    every.tick().await;
    loop {
        let stopping = tokio::select! {
            _ = every.tick() => false,
            _ = shutdown.cancelled() => true,
        };
        let count = |topic| bus.records_appended(topic).unwrap_or(0);
        tracing::info!(
            raw = count(topics::RAW),
            geofenced = count(topics::GEOFENCED),
            anonymized = count(topics::ANONYMIZED),
            dead_letters = count(topics::DEAD_LETTER),
            consent_events = count(topics::CONSENT),
            erasure_requests = count(topics::ERASURE),
            "pipeline: records accepted (raw), passed by the geofence, anonymized"
        );
        if stopping {
            return;
        }
    }
}

/// The sample zone file (made-up zones in Beijing and Shanghai), written under the data
/// directory on first run, unless the config names a zone file.
fn with_sample_zones(
    mut geofence: GeofenceConfig,
    data_dir: &Path,
) -> anyhow::Result<GeofenceConfig> {
    if geofence.zones_file.is_none() {
        let path = data_dir.join("zones.geojson");
        if !path.exists() {
            std::fs::create_dir_all(data_dir)?;
            std::fs::write(&path, SAMPLE_ZONES)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        geofence.zones_file = Some(path);
    }
    Ok(geofence)
}

const SAMPLE_ZONES: &str = include_str!("../../inland-geofence/zones/sample.geojson");

/// Uses (and on first run creates) dev certificates under the data directory unless the
/// config names real ones; the operator certificate `inland consent` uses by default is
/// among them.
fn with_dev_tls(
    mut gateway: GatewayConfig,
    data_dir: &std::path::Path,
) -> anyhow::Result<GatewayConfig> {
    if gateway.tls.is_some() || gateway.insecure_plaintext {
        return Ok(gateway);
    }
    let files = DevCerts::new(data_dir.join("certs"));
    if !files.ca_cert().exists() {
        files
            .generate(&["localhost".into(), "127.0.0.1".into()], &[])
            .context("creating dev certificates")?;
    } else {
        files
            .ensure_operator(&FleetCa::load(&files)?)
            .context("creating the dev operator certificate")?;
    }
    gateway.tls = Some(ServerTls::from_dev_certs(&files));
    Ok(gateway)
}
