use futures::future::BoxFuture;

use crate::{Delivered, Error, Record};

/// Resolves once a queued record is durable, or with the reason it never will be.
///
/// The delivery progresses whether or not this future is polled; polling only observes it.
pub type Delivery = BoxFuture<'static, Result<Delivered, Error>>;

/// Sends records to a topic. `send` resolves only once the record is durable: for Kafka,
/// when the broker's delivery report arrives (acks=all, idempotent producer); for the
/// in-process bus, once it is appended to the topic's log.
#[async_trait::async_trait]
pub trait Producer: Send + Sync + 'static {
    /// Queues `record` for `topic` and returns once it is queued, waiting while the
    /// transport is full (backpressure). Records queued one after another by one caller
    /// land in that order in their partition, so a caller can keep several records in
    /// flight and still preserve per-key order. The returned [`Delivery`] resolves once the
    /// record is durable.
    async fn enqueue(&self, topic: &str, record: Record) -> Result<Delivery, Error>;

    /// Sends one record and waits until it is durable.
    async fn send(&self, topic: &str, record: Record) -> Result<Delivered, Error> {
        self.enqueue(topic, record).await?.await
    }
}
