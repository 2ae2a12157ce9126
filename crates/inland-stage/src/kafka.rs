//! Apache Kafka through rdkafka (bundled librdkafka): the distributed transport.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::{
    Consumed, Consumer, Delivered, Delivery, Error, Position, Producer, Record, TopicSpec, metrics,
};

/// Properties that carry the at-least-once contract; `properties` may not override them.
const RESERVED: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "enable.auto.commit",
];

/// Timeout of admin requests (create, describe, alter).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a readiness probe waits for the cluster's metadata; shorter than the
/// readiness probe's own timeout, so a slow broker reads as unready rather than a hang.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the Kafka cluster is and how to talk to it; builds the producer, consumers and
/// topics. The producer is idempotent with `acks=all`; consumers commit explicitly.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`, e.g. `127.0.0.1:9092`.
    pub bootstrap_servers: String,
    /// `linger.ms`: how long the producer waits to fill a batch.
    pub linger_ms: u32,
    /// `message.timeout.ms`: how long librdkafka retries a record before reporting it
    /// failed; a stage then sends it again after a backoff.
    pub delivery_timeout_ms: u32,
    /// Replication factor of topics `ensure_topics` creates; `None` takes the broker's
    /// `default.replication.factor`.
    pub replication_factor: Option<i32>,
    /// Extra librdkafka properties for every client, applied after Inland's defaults:
    /// `security.protocol`, `sasl.mechanism`, `sasl.username`, `ssl.ca.location`, …
    /// (SASL PLAIN, SCRAM and OAUTHBEARER over TLS are built in). `bootstrap.servers`,
    /// `group.id`, `enable.idempotence`, `acks` and `enable.auto.commit` are refused: they
    /// would weaken durability or belong to the fields and methods.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    /// A broker on this machine, as `scripts/kafka.sh start` runs it.
    fn default() -> Self {
        Self::new("127.0.0.1:9092")
    }
}

impl KafkaConfig {
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            linger_ms: 5,
            delivery_timeout_ms: 30_000,
            replication_factor: None,
            properties: BTreeMap::new(),
        }
    }

    /// An idempotent producer with `acks=all`, keyed by `murmur2` like the Java clients.
    pub fn producer(&self) -> Result<KafkaProducer, Error> {
        let mut config = self.client_config(&[
            ("linger.ms", self.linger_ms.to_string()),
            ("message.timeout.ms", self.delivery_timeout_ms.to_string()),
            // Same key → same partition as the Java clients (Kafka Streams, Connect) pick.
            ("partitioner", "murmur2_random".to_owned()),
        ])?;
        config.set("enable.idempotence", "true").set("acks", "all");
        let inner = config
            .create()
            .map_err(kafka_error("create the producer"))?;
        Ok(KafkaProducer { inner })
    }

    /// Joins `group` reading `topics`, from the group's committed offsets (the earliest
    /// record for a new group). Offsets are committed only through [`Consumer::commit`].
    pub fn consumer(&self, group: &str, topics: &[&str]) -> Result<KafkaConsumer, Error> {
        let inner: StreamConsumer<LagReporter> = self
            .consumer_config(group)?
            .create_with_context(LagReporter {
                group: group.to_owned(),
            })
            .map_err(kafka_error("create the consumer"))?;
        inner.subscribe(topics).map_err(kafka_error("subscribe"))?;
        Ok(KafkaConsumer {
            inner: Arc::new(inner),
        })
    }

    fn consumer_config(&self, group: &str) -> Result<ClientConfig, Error> {
        let mut config = self.client_config(&[
            ("auto.offset.reset", "earliest".to_owned()),
            // How often librdkafka reports consumer lag (see `LagReporter`).
            ("statistics.interval.ms", "10000".to_owned()),
            // Once its local queue is full, librdkafka waits this long before fetching
            // again (1 s by default): a stage that drains the queue sooner sat idle, at
            // about 60 % of the records/s it reaches with 100 ms (docs/BENCHMARKS.md).
            ("fetch.queue.backoff.ms", "100".to_owned()),
        ])?;
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false");
        Ok(config)
    }

    /// A client that only asks the cluster for metadata, for readiness checks.
    pub fn probe(&self) -> Result<BrokerProbe, Error> {
        let client = self
            .client_config(&[])?
            .create()
            .map_err(kafka_error("create the readiness probe"))?;
        Ok(BrokerProbe {
            client: Arc::new(client),
        })
    }

    /// Creates the missing topics with their partitions, `retention.ms` and
    /// `cleanup.policy`. Existing topics keep their partitions (changing them would remap
    /// keys), but a `retention.ms` or `cleanup.policy` that differs from the spec is altered
    /// to match: retention is a legal limit, not a broker default. Idempotent.
    pub async fn ensure_topics(&self, specs: &[TopicSpec]) -> Result<(), Error> {
        if let Some(bad) = specs.iter().find(|s| s.partitions < 1) {
            return Err(Error::Config(format!(
                "topic {} needs at least one partition",
                bad.name
            )));
        }
        let admin: AdminClient<DefaultClientContext> = self
            .client_config(&[])?
            .create()
            .map_err(kafka_error("create the admin client"))?;
        let options = AdminOptions::new()
            .request_timeout(Some(ADMIN_TIMEOUT))
            .operation_timeout(Some(ADMIN_TIMEOUT));
        let wanted: Vec<[(&str, String); 2]> = specs.iter().map(topic_config).collect();
        let replication = self.replication_factor.unwrap_or(-1);
        let new_topics: Vec<NewTopic> = specs
            .iter()
            .zip(&wanted)
            .map(|(spec, config)| {
                config.iter().fold(
                    NewTopic::new(
                        &spec.name,
                        spec.partitions,
                        TopicReplication::Fixed(replication),
                    ),
                    |t, (k, v)| t.set(k, v),
                )
            })
            .collect();
        let created = admin
            .create_topics(&new_topics, &options)
            .await
            .map_err(kafka_error("create topics"))?;
        let mut existing = Vec::new();
        for (result, (spec, config)) in created.into_iter().zip(specs.iter().zip(&wanted)) {
            match result {
                Ok(_) => metrics::topic_created(&spec.name, spec.partitions),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => existing.push((spec, config)),
                Err((name, code)) => {
                    return Err(Error::Kafka {
                        op: "create topics",
                        reason: format!("{name}: {code}"),
                    });
                }
            }
        }
        for (spec, config) in existing {
            reconcile(&admin, &options, &spec.name, config).await?;
        }
        Ok(())
    }

    /// Inland's defaults, then the client's own, then the operator's properties.
    /// `properties` with their names as librdkafka spells them. Environment variables
    /// cannot carry the dots of a name (the config loader reads a dot as nesting), so an
    /// underscore stands for a dot: `INLAND__KAFKA__PROPERTIES__SASL_PASSWORD` sets
    /// `sasl.password`. No librdkafka property name has an underscore of its own.
    fn librdkafka_properties(&self) -> impl Iterator<Item = (String, &String)> {
        self.properties
            .iter()
            .map(|(k, v)| (k.replace('_', "."), v))
    }

    fn client_config(&self, defaults: &[(&str, String)]) -> Result<ClientConfig, Error> {
        let properties: Vec<(String, &String)> = self.librdkafka_properties().collect();
        if let Some((key, _)) = properties
            .iter()
            .find(|(k, _)| RESERVED.contains(&k.as_str()))
        {
            return Err(Error::Config(format!(
                "the Kafka property {key} is set by Inland and cannot be overridden; remove it"
            )));
        }
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            // Auto-created topics would get the broker's retention instead of their spec's.
            .set("allow.auto.create.topics", "false");
        for (key, value) in defaults
            .iter()
            .map(|(k, v)| (*k, v))
            .chain(properties.iter().map(|(k, v)| (k.as_str(), *v)))
        {
            config.set(key, value);
        }
        Ok(config)
    }
}

/// `retention.ms` and `cleanup.policy` as the spec wants them.
fn topic_config(spec: &TopicSpec) -> [(&'static str, String); 2] {
    let policy = if spec.compacted { "compact" } else { "delete" };
    [
        ("retention.ms", spec.retention_ms.to_string()),
        ("cleanup.policy", policy.to_owned()),
    ]
}

/// Alters the topic's config where it differs from `wanted`.
async fn reconcile(
    admin: &AdminClient<DefaultClientContext>,
    options: &AdminOptions,
    topic: &str,
    wanted: &[(&str, String)],
) -> Result<(), Error> {
    let resource = ResourceSpecifier::Topic(topic);
    let described = admin
        .describe_configs([&resource], options)
        .await
        .map_err(kafka_error("describe topic configs"))?;
    let current = described
        .into_iter()
        .next()
        .ok_or_else(|| Error::Kafka {
            op: "describe topic configs",
            reason: format!("{topic}: no answer"),
        })?
        .map_err(|code| Error::Kafka {
            op: "describe topic configs",
            reason: format!("{topic}: {code}"),
        })?;
    let value = |key: &str| {
        current
            .get(key)
            .and_then(|e| e.value.clone())
            .unwrap_or_default()
    };
    let differing: Vec<_> = wanted.iter().filter(|(k, v)| value(k) != *v).collect();
    if differing.is_empty() {
        return Ok(());
    }
    // AlterConfigs replaces the topic's whole dynamic config, so carry over the rest.
    let mut alter = AlterConfig::new(resource);
    for entry in &current.entries {
        let carried = entry.source == ConfigSource::DynamicTopic
            && !wanted.iter().any(|(k, _)| *k == entry.name);
        if let (true, Some(v)) = (carried, &entry.value) {
            alter = alter.set(&entry.name, v);
        }
    }
    for (key, v) in wanted {
        alter = alter.set(key, v);
    }
    let results = admin
        .alter_configs([&alter], options)
        .await
        .map_err(kafka_error("alter topic configs"))?;
    for result in results {
        result.map_err(|(_, code)| Error::Kafka {
            op: "alter topic configs",
            reason: format!("{topic}: {code}"),
        })?;
    }
    for (key, v) in differing {
        metrics::topic_reconfigured(topic, key, &value(key), v);
    }
    Ok(())
}

/// The Kafka [`Producer`]: `send` resolves on the broker's delivery report.
pub struct KafkaProducer {
    inner: FutureProducer,
}

#[async_trait::async_trait]
impl Producer for KafkaProducer {
    /// An empty key is sent as no key (spread over partitions); the timestamp defaults to
    /// the time of sending.
    async fn enqueue(&self, topic: &str, record: Record) -> Result<Delivery, Error> {
        let headers = record.headers.iter().fold(
            OwnedHeaders::new_with_capacity(record.headers.len()),
            |h, (key, value)| {
                h.insert(Header {
                    key,
                    value: Some(value.as_ref()),
                })
            },
        );
        let mut message = FutureRecord::to(topic)
            .payload(record.payload.as_ref())
            .headers(headers);
        if !record.key.is_empty() {
            message = message.key(record.key.as_ref());
        }
        if let Some(ms) = record.timestamp_ms {
            message = message.timestamp(ms);
        }
        let mut waited = false;
        let delivery = loop {
            match self.inner.send_result(message) {
                Ok(delivery) => break delivery,
                // librdkafka's local queue is full: wait for it to drain (backpressure),
                // then offer the same record again.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), refused)) => {
                    if !waited {
                        metrics::producer_queue_full(topic);
                        waited = true;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    message = refused;
                }
                Err((error, _)) => return Err(delivery_error(topic, error)),
            }
        };
        let topic = topic.to_owned();
        Ok(async move {
            match delivery.await {
                Ok(Ok(d)) => Ok(Delivered {
                    partition: d.partition,
                    offset: d.offset,
                }),
                Ok(Err((error, _))) => Err(delivery_error(&topic, error)),
                // The producer was dropped before the report came.
                Err(_) => Err(Error::Closed),
            }
        }
        .boxed())
    }
}

/// A member of a Kafka consumer group.
/// Answers whether the brokers respond (see [`KafkaConfig::probe`]).
pub struct BrokerProbe {
    client: Arc<BaseConsumer>,
}

impl BrokerProbe {
    /// Ok when a broker returned the cluster's metadata within [`PROBE_TIMEOUT`].
    pub async fn check(&self) -> Result<(), Error> {
        let client = self.client.clone();
        tokio::task::spawn_blocking(move || client.fetch_metadata(None, PROBE_TIMEOUT))
            .await
            .map_err(|_| Error::Closed)?
            .map(drop)
            .map_err(kafka_error("fetch metadata"))
    }
}

pub struct KafkaConsumer {
    // Shared with the blocking thread a synchronous commit runs on.
    inner: Arc<StreamConsumer<LagReporter>>,
}

/// Turns librdkafka's periodic statistics into the consumer-lag gauge: lag is what an
/// operator pages on, and librdkafka already computes it per assigned partition.
struct LagReporter {
    group: String,
}

impl ClientContext for LagReporter {
    fn stats(&self, statistics: Statistics) {
        for (topic, stats) in &statistics.topics {
            for (&partition, p) in &stats.partitions {
                // Partition -1 is librdkafka's internal one; a lag of -1 is unknown.
                if partition >= 0 && p.consumer_lag >= 0 {
                    metrics::consumer_lag(&self.group, topic, partition, p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for LagReporter {}

#[async_trait::async_trait]
impl Consumer for KafkaConsumer {
    async fn recv(&self) -> Result<Consumed, Error> {
        match self.inner.recv().await {
            Ok(message) => Ok(consumed(&message)),
            Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic,
            )) => {
                let topics = self.inner.subscription().map(|s| {
                    s.elements()
                        .iter()
                        .map(|e| e.topic().to_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                });
                Err(Error::UnknownTopic(topics.unwrap_or_default()))
            }
            Err(error) => Err(kafka_error("consume")(error)),
        }
    }

    async fn commit(&self, positions: &[Position]) -> Result<(), Error> {
        let mut offsets = TopicPartitionList::with_capacity(positions.len());
        for p in positions {
            offsets
                .add_partition_offset(&p.topic, p.partition, Offset::Offset(p.offset + 1))
                .map_err(kafka_error("commit"))?;
        }
        let inner = self.inner.clone();
        // A synchronous commit reports whether the broker stored the offsets; it blocks,
        // so it runs off the async workers.
        tokio::task::spawn_blocking(move || inner.commit(&offsets, CommitMode::Sync))
            .await
            .map_err(|e| Error::Kafka {
                op: "commit",
                reason: e.to_string(),
            })?
            .map_err(kafka_error("commit"))
    }
}

fn consumed(message: &BorrowedMessage<'_>) -> Consumed {
    let headers = message
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        h.value.map(Bytes::copy_from_slice).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Consumed {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        record: Record {
            key: message
                .key()
                .map(Bytes::copy_from_slice)
                .unwrap_or_default(),
            payload: message
                .payload()
                .map(Bytes::copy_from_slice)
                .unwrap_or_default(),
            headers,
            timestamp_ms: message.timestamp().to_millis(),
        },
    }
}

fn delivery_error(topic: &str, error: KafkaError) -> Error {
    match error {
        KafkaError::MessageProduction(
            RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition,
        ) => Error::UnknownTopic(topic.to_owned()),
        error => Error::Delivery {
            topic: topic.to_owned(),
            reason: error.to_string(),
        },
    }
}

fn kafka_error(op: &'static str) -> impl Fn(KafkaError) -> Error {
    move |error| Error::Kafka {
        op,
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_cannot_weaken_durability() {
        for key in ["acks", "enable.idempotence", "enable.auto.commit"] {
            let mut config = KafkaConfig::new("127.0.0.1:9092");
            config.properties.insert(key.to_owned(), "1".to_owned());
            let refused = config.producer().err().expect("refused");
            assert!(
                matches!(&refused, Error::Config(m) if m.contains(key)),
                "{refused}"
            );
            assert!(config.consumer("g", &["t"]).is_err());
        }
    }

    #[test]
    fn underscores_in_property_names_stand_for_dots() {
        let mut config = KafkaConfig::new("127.0.0.1:9092");
        config
            .properties
            .insert("enable_idempotence".into(), "false".into());
        assert!(
            matches!(config.producer(), Err(Error::Config(m)) if m.contains("enable.idempotence")),
            "an env-style name is the same property"
        );
        let mut config = KafkaConfig::new("127.0.0.1:9092");
        config
            .properties
            .insert("no_such_property".into(), "x".into());
        let refused = config.producer().err().expect("unknown property");
        assert!(
            refused.to_string().contains("no.such.property"),
            "{refused}"
        );
    }

    #[test]
    fn consumers_fetch_again_soon_unless_the_operator_says_otherwise() {
        let mut config = KafkaConfig::new("127.0.0.1:9092");
        let built = config.consumer_config("g").unwrap();
        assert_eq!(built.get("fetch.queue.backoff.ms"), Some("100"));
        assert_eq!(built.get("statistics.interval.ms"), Some("10000"));
        config.properties.extend([
            ("fetch_queue_backoff_ms".into(), "500".into()),
            ("statistics.interval.ms".into(), "0".into()),
        ]);
        let built = config.consumer_config("g").unwrap();
        assert_eq!(built.get("fetch.queue.backoff.ms"), Some("500"));
        assert_eq!(built.get("statistics.interval.ms"), Some("0"));
    }

    #[test]
    fn operator_properties_reach_librdkafka() {
        let mut config = KafkaConfig::new("127.0.0.1:9092");
        config
            .properties
            .insert("security.protocol".into(), "ssl".into());
        assert!(config.producer().is_ok(), "TLS is compiled in");
        config
            .properties
            .insert("no.such.property".into(), "x".into());
        let refused = config
            .producer()
            .err()
            .expect("librdkafka refuses unknown properties");
        assert!(
            refused.to_string().contains("no.such.property"),
            "{refused}"
        );
    }
}
