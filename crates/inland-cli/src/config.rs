//! The whole configuration of an Inland process: each service's section is its own
//! crate's type; this file only composes them and adds what the binary owns.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use inland_anonymizer::AnonymizerConfig;
use inland_archiver::ArchiverConfig;
use inland_core::topics;
use inland_gateway::GatewayConfig;
use inland_geofence::GeofenceConfig;
use inland_simulator::SimulatorConfig;
use inland_stage::{KafkaConfig, MemoryBusConfig, TopicSpec};
use inland_store::StoreConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InlandConfig {
    /// Where `inland run` keeps its local state (dev certificates, stores).
    pub data_dir: PathBuf,
    /// The broker of the distributed mode.
    pub kafka: KafkaConfig,
    /// The in-process bus of `inland run`.
    pub bus: MemoryBusConfig,
    pub topics: TopicsConfig,
    pub gateway: GatewayConfig,
    pub geofence: GeofenceConfig,
    pub anonymizer: AnonymizerConfig,
    /// The object store holding the archive (archiver, `inland storage`).
    pub store: StoreConfig,
    pub archiver: ArchiverConfig,
    pub query: inland_query::QueryConfig,
    pub simulator: SimulatorConfig,
    pub observability: ObservabilityConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicsConfig {
    pub partitions: i32,
    /// The raw topic holds un-anonymized data: keep it only as long as the pipeline
    /// needs to catch up after an outage.
    #[serde(with = "humantime_serde")]
    pub raw_retention: Duration,
    /// Geofenced (still personal) and anonymized records awaiting the next stage.
    #[serde(with = "humantime_serde")]
    pub pipeline_retention: Duration,
    /// Dead letters carry the rejected payload, raw data included.
    #[serde(with = "humantime_serde")]
    pub dead_letter_retention: Duration,
    /// Erasure requests link a vehicle's pseudonyms across key epochs: keep them only as
    /// long as the archiver may need to act on them after an outage.
    #[serde(with = "humantime_serde")]
    pub erasure_retention: Duration,
    /// Create missing topics (and correct their retention) when a service starts.
    pub create_on_start: bool,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            partitions: 6,
            raw_retention: Duration::from_secs(24 * 3600),
            pipeline_retention: Duration::from_secs(72 * 3600),
            dead_letter_retention: Duration::from_secs(24 * 3600),
            erasure_retention: Duration::from_secs(7 * 24 * 3600),
            create_on_start: true,
        }
    }
}

impl TopicsConfig {
    /// Every topic Inland uses, with its partitions and retention.
    pub fn specs(&self) -> Vec<TopicSpec> {
        let spec = |name: &str, retention: Option<Duration>, compacted| TopicSpec {
            name: name.into(),
            partitions: self.partitions,
            retention_ms: retention.map_or(-1, |d| d.as_millis() as i64),
            compacted,
        };
        vec![
            spec(topics::RAW, Some(self.raw_retention), false),
            spec(topics::GEOFENCED, Some(self.pipeline_retention), false),
            spec(topics::ANONYMIZED, Some(self.pipeline_retention), false),
            spec(topics::DEAD_LETTER, Some(self.dead_letter_retention), false),
            // Consent is the current state per subject: compacted, kept forever.
            spec(topics::CONSENT, None, true),
            spec(topics::ERASURE, Some(self.erasure_retention), false),
        ]
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObservabilityConfig {
    /// `text` for people, `json` for log pipelines.
    pub log_format: LogFormat,
    /// A tracing-subscriber filter, e.g. `info,inland_gateway=debug`. `RUST_LOG` wins.
    pub log_filter: String,
    /// The admin HTTP server: `/metrics` (Prometheus), `/healthz` (liveness), `/readyz`
    /// (readiness). In a pod, listen on `0.0.0.0:9464`; unset to disable.
    pub admin_listen: Option<SocketAddr>,
    /// Where to export traces over OTLP/gRPC, e.g. `http://otel-collector:4317`. Unset:
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, and without that no traces are exported.
    pub otlp_endpoint: Option<String>,
    /// Share of new traces exported (0.0–1.0); a continued trace follows its parent.
    pub trace_sample_ratio: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for ObservabilityConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Text,
            log_filter: "info".into(),
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            otlp_endpoint: None,
            trace_sample_ratio: 1.0,
        }
    }
}

impl Default for InlandConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".inland"),
            kafka: KafkaConfig::default(),
            bus: MemoryBusConfig::default(),
            topics: TopicsConfig::default(),
            gateway: GatewayConfig::default(),
            geofence: GeofenceConfig::default(),
            anonymizer: AnonymizerConfig::default(),
            store: StoreConfig::default(),
            archiver: ArchiverConfig::default(),
            query: inland_query::QueryConfig::default(),
            simulator: SimulatorConfig::default(),
            observability: ObservabilityConfig::default(),
        }
    }
}
