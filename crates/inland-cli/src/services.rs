//! The distributed mode: each service on its own, talking to Kafka.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use inland_anonymizer::{AnonymizerStage, ErasureStage};
use inland_consent::{ConsentLog, ConsentView, ViewOptions};
use inland_core::topics;
use inland_geofence::GeofenceStage;
use inland_stage::{Stage, StageConfig, run_stage};
use inland_store::sweep::run_sweeper;
use inland_store::{Backend, LocalStore, ObjectStore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::InlandConfig;
use crate::readiness::Readiness;

pub async fn create_topics(config: &InlandConfig) -> anyhow::Result<()> {
    let specs = config.topics.specs();
    config
        .kafka
        .ensure_topics(&specs)
        .await
        .with_context(|| format!("creating topics on {}", config.kafka.bootstrap_servers))?;
    for spec in specs {
        println!(
            "{}  partitions={} retention_ms={} compacted={}",
            spec.name, spec.partitions, spec.retention_ms, spec.compacted
        );
    }
    Ok(())
}

async fn prepare_topics(config: &InlandConfig) -> anyhow::Result<()> {
    if config.topics.create_on_start {
        config
            .kafka
            .ensure_topics(&config.topics.specs())
            .await
            .context("creating topics")?;
    }
    Ok(())
}

/// Keeps the process unready while no broker answers.
fn watch_broker(config: &InlandConfig, ready: &Readiness) -> anyhow::Result<()> {
    let probe = Arc::new(config.kafka.probe()?);
    ready.watch("kafka", move || {
        let probe = probe.clone();
        async move { probe.check().await.map_err(|e| e.to_string()) }
    });
    Ok(())
}

/// A token cancelled by Ctrl-C or SIGTERM.
fn cancel_on_signal(ready: Readiness) -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        crate::shutdown_signal(ready).await;
        cancel.cancel();
    });
    token
}

pub async fn gateway(config: InlandConfig, ready: Readiness) -> anyhow::Result<()> {
    prepare_topics(&config).await?;
    let producer = config
        .kafka
        .producer()
        .context("creating the Kafka producer")?;
    watch_broker(&config, &ready)?;
    let producer = Arc::new(producer);
    let consent = ConsentLog {
        view: consent_view(&config, &config.gateway.consent_topic, true).await?,
        producer: producer.clone(),
    };
    let gateway = inland_gateway::Gateway::bind(config.gateway, producer, consent).await?;
    ready.set(true);
    gateway.serve(crate::shutdown_signal(ready)).await?;
    Ok(())
}

pub async fn simulate(
    config: InlandConfig,
    args: inland_simulator::cli::SimulateArgs,
) -> anyhow::Result<()> {
    let opts = args.into_options(config.simulator);
    let summary = inland_simulator::run(
        opts.config,
        Some(&opts.certs),
        opts.progress,
        // Nothing routes work to a simulator; it has no readiness of its own.
        cancel_on_signal(Readiness::default()),
    )
    .await?;
    if opts.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("{summary}");
    }
    Ok(())
}

/// A pipeline stage's place: its name (metrics, logs, consumer group `inland-NAME`) and
/// the topic it reads.
#[derive(Clone, Copy)]
pub struct StageSite {
    pub name: &'static str,
    pub input: &'static str,
}

pub const GEOFENCE: StageSite = StageSite {
    name: "geofence",
    input: topics::RAW,
};
pub const ANONYMIZER: StageSite = StageSite {
    name: "anonymizer",
    input: topics::GEOFENCED,
};
/// Beside the anonymizer (it holds the pseudonym keys): an erasure request per consent
/// withdrawal, to `inland.erasure.v1`.
pub const ERASURE: StageSite = StageSite {
    name: "erasure",
    input: topics::CONSENT,
};

impl StageSite {
    pub fn group(self) -> String {
        format!("inland-{}", self.name)
    }
}

async fn run_on_kafka(
    config: &InlandConfig,
    site: StageSite,
    stage: impl Stage,
    ready: Readiness,
) -> anyhow::Result<()> {
    let consumer = config.kafka.consumer(&site.group(), &[site.input])?;
    let producer = Arc::new(config.kafka.producer()?);
    watch_broker(config, &ready)?;
    ready.set(true);
    run_stage(
        stage,
        consumer,
        producer,
        StageConfig::new(site.name),
        cancel_on_signal(ready),
    )
    .await?;
    Ok(())
}

pub async fn geofence(config: InlandConfig, ready: Readiness) -> anyhow::Result<()> {
    prepare_topics(&config).await?;
    let stage = GeofenceStage::start(&config.geofence)?;
    run_on_kafka(&config, GEOFENCE, stage, ready).await
}

/// The current consent, read from `topic` until caught up; `history` for the History RPC.
pub async fn consent_view(
    config: &InlandConfig,
    topic: &str,
    history: bool,
) -> anyhow::Result<ConsentView> {
    let options = ViewOptions {
        keep_history: history,
        ..ViewOptions::default()
    };
    ConsentView::on_kafka(&config.kafka, topic, options)
        .await
        .with_context(|| format!("reading the consent topic {topic}"))
}

/// The anonymizer, serving the purposes the gateway admitted each record for, and beside
/// it the erasure stage (it needs the same pseudonym keys).
pub async fn anonymizer(config: InlandConfig, ready: Readiness) -> anyhow::Result<()> {
    prepare_topics(&config).await?;
    let stage = AnonymizerStage::start(&config.anonymizer)?;
    let erasure = ErasureStage::start(&config.anonymizer, topics::ERASURE)?;
    let records = config
        .kafka
        .consumer(&ANONYMIZER.group(), &[ANONYMIZER.input])?;
    let withdrawals = config.kafka.consumer(&ERASURE.group(), &[ERASURE.input])?;
    let producer = Arc::new(config.kafka.producer()?);
    watch_broker(&config, &ready)?;
    ready.set(true);
    let shutdown = cancel_on_signal(ready);
    let mut erasing = tokio::spawn(run_stage(
        erasure,
        withdrawals,
        producer.clone(),
        StageConfig::new(ERASURE.name),
        shutdown.clone(),
    ));
    let mut anonymizing = tokio::spawn(run_stage(
        stage,
        records,
        producer,
        StageConfig::new(ANONYMIZER.name),
        shutdown.clone(),
    ));
    // The first to end (a signal, or a failure) ends the other.
    let (first, other) = tokio::select! {
        ended = &mut anonymizing => (ended, erasing),
        ended = &mut erasing => (ended, anonymizing),
    };
    shutdown.cancel();
    let other = other.await;
    first.context("stage task")??;
    other.context("stage task")??;
    Ok(())
}

/// The object store the config names; for the S3 backend its region is verified first.
/// Readiness follows whether the store answers.
fn watch_store(ready: &Readiness, store: Arc<dyn ObjectStore>) {
    ready.watch("store", move || {
        let store = store.clone();
        async move { store.ready().await.map_err(|e| e.to_string()) }
    });
}

async fn open_store(config: &InlandConfig) -> anyhow::Result<Arc<dyn ObjectStore>> {
    inland_store::open(&config.store, &config.data_dir)
        .await
        .context("opening the object store (store)")
}

/// Enforces the shelf lives on a local store (what lifecycle rules do on S3): the sweeper
/// runs until `shutdown`.
pub fn sweep_local_store(
    config: &InlandConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    if config.store.backend != Backend::Local {
        return Ok(None);
    }
    let store = LocalStore::open(config.store.local_dir(&config.data_dir))?;
    Ok(Some(tokio::spawn(run_sweeper(
        store,
        config.store.shelf_life.clone(),
        SWEEP_EVERY,
        shutdown.clone(),
    ))))
}

/// How often the local sweeper looks for objects past their shelf life (whole days).
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// The archiver on Kafka. On S3 it refuses to start while the bucket's lifecycle rules keep
/// a class longer than `store.shelf_life` (or forever), and stays unready while they do, or
/// while the broker or the store do not answer.
/// `inland query`: SQL over the archive, ready while the store answers.
pub async fn query(config: InlandConfig, ready: Readiness) -> anyhow::Result<()> {
    let service = inland_query::cli::bind(&config.store, &config.data_dir, &config.query).await?;
    watch_store(&ready, open_store(&config).await?);
    ready.set(true);
    service.serve(crate::shutdown_signal(ready)).await?;
    Ok(())
}

pub async fn archiver(config: InlandConfig, ready: Readiness) -> anyhow::Result<()> {
    prepare_topics(&config).await?;
    let store = open_store(&config).await?;
    if config.store.backend == Backend::S3 {
        inland_store::check_lifecycle(&config.store)
            .await
            .context("refusing to start the archiver: data would be kept past its shelf life")?;
    }
    watch_broker(&config, &ready)?;
    watch_store(&ready, store.clone());
    if config.store.backend == Backend::S3 {
        let store_config = Arc::new(config.store.clone());
        ready.watch("lifecycle", move || {
            let store_config = store_config.clone();
            async move {
                inland_store::check_lifecycle(&store_config)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        });
    }
    ready.set(true);
    let shutdown = cancel_on_signal(ready);
    let sweeper = sweep_local_store(&config, &shutdown)?;
    let archived =
        inland_archiver::run_on_kafka(&config.kafka, store, config.archiver, shutdown.clone())
            .await;
    shutdown.cancel();
    if let Some(sweeper) = sweeper {
        sweeper.await.context("sweeper task")?;
    }
    Ok(archived?)
}

/// `inland archive …`, against the configured store.
pub async fn archive(
    command: inland_archiver::cli::ArchiveCommand,
    config: &InlandConfig,
) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    inland_archiver::cli::run(command, store.as_ref(), std::io::stdout().lock()).await?;
    Ok(())
}
