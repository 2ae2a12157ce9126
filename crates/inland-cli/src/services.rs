//! The distributed mode: each service on its own, talking to Kafka.

use std::sync::Arc;

use anyhow::Context;
use inland_anonymizer::AnonymizerStage;
use inland_core::topics;
use inland_geofence::GeofenceStage;
use inland_stage::{Stage, StageConfig, run_stage};
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
    let gateway = inland_gateway::Gateway::bind(config.gateway, Arc::new(producer)).await?;
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

pub async fn anonymizer(config: InlandConfig, ready: Readiness) -> anyhow::Result<()> {
    prepare_topics(&config).await?;
    let stage = AnonymizerStage::start(&config.anonymizer)?;
    run_on_kafka(&config, ANONYMIZER, stage, ready).await
}
