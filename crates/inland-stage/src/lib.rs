//! The pipeline runtime shared by the gateway and every stage (geofence, anonymizer,
//! archiver). A [`Producer`] resolves only once a record is durable; a stage's offsets are
//! committed only after its outputs are durable, so delivery is at least once.
//!
//! - [`Record`], [`Consumed`], [`Position`]: what travels, and where it was read.
//! - [`Producer`] and [`Consumer`]: the two transport-agnostic halves of a transport.
//! - [`run_stage`] with a [`Stage`]: consume → process → produce → commit, in order per
//!   partition, dead-lettering rejected records, retrying outages, draining on shutdown.
//! - Two transports with the same semantics: [`KafkaConfig`] builds Kafka clients
//!   (rdkafka) for the distributed mode; [`MemoryBus`] is the bounded in-process bus for
//!   `inland run` and tests.
//! - [`TopicSpec`]: what `ensure_topics` creates on either transport.
//! - [`trace`]: OpenTelemetry trace context in record headers, and the OTLP exporter.
//! - Metrics and their log lines: `metrics.rs`.

mod consumer;
mod error;
mod kafka;
mod memory;
mod metrics;
mod producer;
mod record;
mod stage;
mod topic_spec;
pub mod trace;

pub use consumer::{Consumed, Consumer, Position};
pub use error::Error;
pub use kafka::{BrokerProbe, KafkaConfig, KafkaConsumer, KafkaProducer};
pub use memory::{MemoryBus, MemoryBusConfig, MemoryConsumer};
pub use producer::{Delivery, Producer};
pub use record::{Delivered, Record};
pub use stage::{
    DEAD_LETTER_REASON, DEAD_LETTER_SOURCE, DEAD_LETTER_STAGE, Output, Stage, StageConfig,
    StageError, run_stage,
};
pub use topic_spec::TopicSpec;
