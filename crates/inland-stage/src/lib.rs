//! The pipeline runtime shared by the gateway and every stage (geofence, anonymizer,
//! archiver). A [`Producer`] resolves only once a record is durable; a stage's offsets are
//! committed only after its outputs are durable, so delivery is at least once.
//!
//! Two transports with the same semantics: Kafka (rdkafka) for the distributed mode, and
//! an in-process bus for `inland run` and unit tests.

mod error;
mod record;

pub use error::Error;
pub use record::{Delivered, Record};

/// Sends records to a topic. `send` resolves once the record is durable: for Kafka, when
/// the broker's delivery report arrives (acks=all, idempotent producer); for the
/// in-process bus, once it is appended to the topic's log.
#[async_trait::async_trait]
pub trait Producer: Send + Sync + 'static {
    async fn send(&self, topic: &str, record: Record) -> Result<Delivered, Error>;
}
