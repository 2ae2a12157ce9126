use bytes::Bytes;

/// One message on a topic: the same shape on Kafka and on the in-process bus.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Partitioning key (the VIN on the raw topic, the pseudonym after anonymization).
    pub key: Bytes,
    pub payload: Bytes,
    /// Ordered headers: message id, schema version, trace context.
    pub headers: Vec<(String, Bytes)>,
    /// Record timestamp in milliseconds since the Unix epoch, if set by the producer.
    pub timestamp_ms: Option<i64>,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// Where a durable record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}
