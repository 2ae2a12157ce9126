/// A topic as the pipeline needs it. `ensure_topics` on either transport creates the
/// missing ones; see [`crate::KafkaConfig::ensure_topics`] and
/// [`crate::MemoryBus::ensure_topics`] for what each applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// How long Kafka keeps a record (`retention.ms`); -1 keeps it forever. The shelf life
    /// of raw data is a legal limit, so this is set per topic, never left to the broker.
    pub retention_ms: i64,
    /// Keep only the latest record per key (`cleanup.policy=compact`), e.g. consent.
    pub compacted: bool,
}
