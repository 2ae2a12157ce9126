//! The Kafka transport against a real Apache Kafka broker.
//!
//! `scripts/kafka.sh start`, then
//! `INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo test -p inland-stage --test kafka -- --ignored`.
//! Every test uses topics and groups of its own, so runs never see each other's data.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use inland_stage::{
    Consumed, Consumer, Error, KafkaConfig, Output, Producer, Record, Stage, StageConfig,
    StageError, TopicSpec, run_stage,
};
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(10);

fn bootstrap() -> String {
    std::env::var("INLAND_KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
        panic!(
            "INLAND_KAFKA_BOOTSTRAP is not set: run `scripts/kafka.sh start` and set \
             INLAND_KAFKA_BOOTSTRAP to the KAFKA_BOOTSTRAP it prints (e.g. 127.0.0.1:9092)"
        )
    })
}

/// A name no other run or test uses.
fn unique(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "test.stage.{what}.{}.{nanos}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn spec(name: &str, partitions: i32) -> TopicSpec {
    TopicSpec {
        name: name.to_owned(),
        partitions,
        retention_ms: 3_600_000,
        compacted: false,
    }
}

fn admin() -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap()
}

fn options() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(TIMEOUT))
}

async fn topic_config(topic: &str) -> BTreeMap<String, String> {
    let described = admin()
        .describe_configs([&ResourceSpecifier::Topic(topic)], &options())
        .await
        .unwrap();
    let resource = described.into_iter().next().unwrap().unwrap();
    resource
        .entries
        .into_iter()
        .filter_map(|e| Some((e.name, e.value?)))
        .collect()
}

async fn delete_topics(topics: &[&str]) {
    admin().delete_topics(topics, &options()).await.unwrap();
}

/// A plain client for looking at offsets without joining any group.
fn inspector(group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", group)
        .create()
        .unwrap()
}

/// (committed, end) offsets per partition of `topic` for `group`.
fn offsets(group: &str, topic: &str, partitions: i32) -> Vec<(Option<i64>, i64)> {
    let client = inspector(group);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = client.committed_offsets(tpl, TIMEOUT).unwrap();
    (0..partitions)
        .map(|p| {
            let committed = match committed.find_partition(topic, p).unwrap().offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            let (_, end) = client.fetch_watermarks(topic, p, TIMEOUT).unwrap();
            (committed, end)
        })
        .collect()
}

/// Reads `topic` with a fresh group until `done` says it has enough or `wait` passes.
async fn read(
    kafka: &KafkaConfig,
    topic: &str,
    wait: Duration,
    done: impl Fn(&[Consumed]) -> bool,
) -> Vec<Consumed> {
    let consumer = kafka.consumer(&unique("reader"), &[topic]).unwrap();
    let deadline = Instant::now() + wait;
    let mut all = Vec::new();
    while !done(&all) && Instant::now() < deadline {
        if let Ok(next) = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
            all.push(next.unwrap());
        }
    }
    all
}

fn payloads(records: &[Consumed]) -> BTreeSet<String> {
    records
        .iter()
        .map(|c| String::from_utf8(c.record.payload.to_vec()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: scripts/kafka.sh start, then INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo test -- --ignored"]
async fn ensure_topics_applies_specs_and_is_idempotent() {
    let kafka = KafkaConfig::new(bootstrap());
    let (raw, consent) = (unique("raw"), unique("consent"));
    let specs = [
        spec(&raw, 3),
        TopicSpec {
            compacted: true,
            ..spec(&consent, 1)
        },
    ];
    kafka.ensure_topics(&specs).await.unwrap();
    kafka
        .ensure_topics(&specs)
        .await
        .expect("a second run finds the topics and succeeds");

    let raw_config = topic_config(&raw).await;
    assert_eq!(raw_config["retention.ms"], "3600000");
    assert_eq!(raw_config["cleanup.policy"], "delete");
    assert_eq!(topic_config(&consent).await["cleanup.policy"], "compact");
    let metadata = admin().inner().fetch_metadata(Some(&raw), TIMEOUT).unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 3);

    // An operator-set config survives when a changed spec is reconciled.
    let alter = AlterConfig::new(ResourceSpecifier::Topic(&raw))
        .set("retention.ms", "3600000")
        .set("cleanup.policy", "delete")
        .set("max.message.bytes", "2000000");
    for result in admin().alter_configs([&alter], &options()).await.unwrap() {
        result.unwrap();
    }
    let shorter = TopicSpec {
        retention_ms: 600_000,
        ..spec(&raw, 3)
    };
    kafka.ensure_topics(&[shorter]).await.unwrap();
    let raw_config = topic_config(&raw).await;
    assert_eq!(
        raw_config["retention.ms"], "600000",
        "retention follows the spec"
    );
    assert_eq!(
        raw_config["max.message.bytes"], "2000000",
        "other settings are kept"
    );

    delete_topics(&[&raw, &consent]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: scripts/kafka.sh start, then INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo test -- --ignored"]
async fn records_come_back_with_key_headers_and_timestamp() {
    let kafka = KafkaConfig::new(bootstrap());
    let topic = unique("roundtrip");
    kafka.ensure_topics(&[spec(&topic, 2)]).await.unwrap();
    let producer = kafka.producer().unwrap();
    let record = Record {
        key: Bytes::from("WVWZZZ1JZXW000001"),
        payload: Bytes::from(vec![0, 159, 146, 150]),
        headers: vec![
            ("message-id".to_owned(), Bytes::from("m-1")),
            ("schema".to_owned(), Bytes::from(vec![1, 0])),
            (
                "message-id".to_owned(),
                Bytes::from("repeated names keep their order"),
            ),
        ],
        timestamp_ms: Some(1_700_000_000_123),
    };
    let delivered = producer.send(&topic, record.clone()).await.unwrap();
    let unkeyed = producer
        .send(
            &topic,
            Record {
                payload: Bytes::from("no key"),
                ..Record::default()
            },
        )
        .await
        .unwrap();

    let consumer = kafka.consumer(&unique("group"), &[&topic]).unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(
            tokio::time::timeout(Duration::from_secs(30), consumer.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let keyed = got.iter().find(|c| !c.record.key.is_empty()).unwrap();
    assert_eq!(
        (keyed.partition, keyed.offset),
        (delivered.partition, delivered.offset)
    );
    assert_eq!(keyed.topic, topic);
    assert_eq!(keyed.record, record);
    let plain = got.iter().find(|c| c.record.key.is_empty()).unwrap();
    assert_eq!(
        (plain.partition, plain.offset),
        (unkeyed.partition, unkeyed.offset)
    );
    assert_eq!(plain.record.payload, Bytes::from("no key"));
    assert!(
        plain.record.timestamp_ms.is_some(),
        "the producer stamps records without a timestamp"
    );

    // The same key always lands in the same partition.
    for _ in 0..5 {
        let again = producer.send(&topic, record.clone()).await.unwrap();
        assert_eq!(again.partition, delivered.partition);
    }
    drop(consumer);
    delete_topics(&[&topic]).await;
}

/// Upper-cases every payload into `output`, slowly enough to be killed mid-stream.
struct Upper {
    output: String,
    delay: Duration,
}

#[async_trait::async_trait]
impl Stage for Upper {
    async fn process(&self, input: &Consumed) -> Result<Vec<Output>, StageError> {
        tokio::time::sleep(self.delay).await;
        let mut record = input.record.clone();
        record.payload = Bytes::from(record.payload.to_ascii_uppercase());
        Ok(vec![Output {
            topic: self.output.clone(),
            record,
        }])
    }
}

fn stage_config() -> StageConfig {
    StageConfig {
        commit_interval: Duration::from_millis(100),
        retry_min: Duration::from_millis(50),
        retry_max: Duration::from_millis(500),
        ..StageConfig::new("kafka-test")
    }
}

async fn produce_inputs(kafka: &KafkaConfig, topic: &str, n: usize) -> BTreeSet<String> {
    let producer = kafka.producer().unwrap();
    let mut deliveries = Vec::new();
    for i in 0..n {
        let record = Record {
            key: Bytes::from(format!("vin-{}", i % 11)),
            payload: Bytes::from(format!("rec-{i}")),
            ..Record::default()
        };
        deliveries.push(producer.enqueue(topic, record).await.unwrap());
    }
    for delivery in deliveries {
        delivery.await.unwrap();
    }
    (0..n).map(|i| format!("REC-{i}")).collect()
}

fn spawn_stage(
    kafka: &KafkaConfig,
    group: &str,
    input: &str,
    stage: Upper,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), Error>>,
) {
    let consumer = kafka.consumer(group, &[input]).unwrap();
    let producer: Arc<dyn Producer> = Arc::new(kafka.producer().unwrap());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_stage(
        stage,
        consumer,
        producer,
        stage_config(),
        shutdown.clone(),
    ));
    (shutdown, task)
}

/// Waits (a minute at most) until `group` has committed each of `input`'s partitions up
/// to its end.
async fn until_committed_to_end(group: &str, input: &str, partitions: i32, failure: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while offsets(group, input, partitions)
        .iter()
        .any(|(c, end)| *c != Some(*end))
    {
        assert!(Instant::now() < deadline, "{failure}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The output topic holds exactly `expected`, once each.
async fn assert_output(kafka: &KafkaConfig, output: &str, expected: &BTreeSet<String>) {
    let out = payloads(
        &read(kafka, output, Duration::from_secs(30), |got| {
            payloads(got) == *expected
        })
        .await,
    );
    assert_eq!(out, *expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: scripts/kafka.sh start, then INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo test -- --ignored"]
async fn a_kafka_stage_killed_mid_stream_loses_nothing() {
    let kafka = KafkaConfig::new(bootstrap());
    let (input, output, group) = (unique("in"), unique("out"), unique("stage"));
    kafka
        .ensure_topics(&[spec(&input, 3), spec(&output, 3)])
        .await
        .unwrap();
    let expected = produce_inputs(&kafka, &input, 400).await;

    let slow = Upper {
        output: output.clone(),
        delay: Duration::from_millis(20),
    };
    let (_, task) = spawn_stage(&kafka, &group, &input, slow);
    read(&kafka, &output, Duration::from_secs(60), |got| {
        got.len() >= 60
    })
    .await;
    task.abort(); // a crash: no draining, no final commit
    assert!(task.await.unwrap_err().is_cancelled());

    // What was committed before the crash is in the output.
    let out = payloads(
        &read(&kafka, &output, Duration::from_secs(5), |got| {
            got.len() >= 400
        })
        .await,
    );
    assert!(out.len() < 400, "the crash must happen mid-stream");
    let committed = offsets(&group, &input, 3);
    assert!(
        committed.iter().any(|(c, _)| c.is_some()),
        "nothing committed before the crash: {committed:?}"
    );
    let inputs = read(&kafka, &input, Duration::from_secs(30), |got| {
        got.len() >= 400
    })
    .await;
    for c in &inputs {
        if committed[c.partition as usize]
            .0
            .is_some_and(|next| c.offset < next)
        {
            let payload = String::from_utf8(c.record.payload.to_ascii_uppercase()).unwrap();
            assert!(
                out.contains(&payload),
                "{payload} committed but not in the output"
            );
        }
    }

    // Restarted, the stage resumes from the commits; every input reaches the output.
    let fast = Upper {
        output: output.clone(),
        delay: Duration::ZERO,
    };
    let (shutdown, task) = spawn_stage(&kafka, &group, &input, fast);
    until_committed_to_end(
        &group,
        &input,
        3,
        "the restarted stage did not commit everything",
    )
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert_output(&kafka, &output, &expected).await;
    delete_topics(&[&input, &output]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: scripts/kafka.sh start, then INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo test -- --ignored"]
async fn offsets_wait_for_outputs_to_be_durable() {
    let (input, output, group) = (unique("in"), unique("missing-out"), unique("stage"));
    let mut kafka = KafkaConfig::new(bootstrap());
    // Fail fast on the missing output topic so the test sees retries, not one long wait.
    kafka.delivery_timeout_ms = 2_000;
    kafka
        .properties
        .insert("topic.metadata.propagation.max.ms".into(), "500".into());
    kafka
        .properties
        .insert("topic.metadata.refresh.interval.ms".into(), "500".into());
    kafka.ensure_topics(&[spec(&input, 2)]).await.unwrap();
    let expected = produce_inputs(&kafka, &input, 30).await;

    let stage = Upper {
        output: output.clone(),
        delay: Duration::ZERO,
    };
    let (shutdown, task) = spawn_stage(&kafka, &group, &input, stage);
    // The output topic does not exist (auto-creation is off): nothing is durable, so
    // nothing may be committed, however long the stage keeps trying.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !task.is_finished(),
        "the stage must keep retrying, not give up"
    );
    assert_eq!(
        offsets(&group, &input, 2)
            .iter()
            .map(|(c, _)| *c)
            .collect::<Vec<_>>(),
        [None, None]
    );

    kafka.ensure_topics(&[spec(&output, 2)]).await.unwrap();
    until_committed_to_end(
        &group,
        &input,
        2,
        "the stage did not recover once the topic existed",
    )
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert_output(&kafka, &output, &expected).await;
    delete_topics(&[&input, &output]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: scripts/kafka.sh start, then INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo test -- --ignored"]
async fn consumer_lag_is_reported_per_partition() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshots = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder in this test binary");

    let mut kafka = KafkaConfig::new(bootstrap());
    kafka
        .properties
        .insert("statistics.interval.ms".into(), "100".into());
    let topic = unique("lag");
    kafka.ensure_topics(&[spec(&topic, 1)]).await.unwrap();
    let producer = kafka.producer().unwrap();
    for i in 0..5 {
        let record = Record {
            key: Bytes::from("k"),
            payload: Bytes::from(format!("r{i}")),
            ..Record::default()
        };
        producer.send(&topic, record).await.unwrap();
    }
    let group = unique("lag-group");
    let consumer = kafka.consumer(&group, &[&topic]).unwrap();
    let mut last = None;
    for _ in 0..2 {
        last = Some(consumer.recv().await.unwrap().position());
    }
    consumer.commit(&[last.unwrap()]).await.unwrap();

    // Statistics are served while the consumer polls; 5 written, 2 committed: lag 3.
    let deadline = Instant::now() + Duration::from_secs(30);
    let lag = loop {
        let _ = tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await;
        let found = snapshots
            .snapshot()
            .into_vec()
            .into_iter()
            .find_map(|(key, _, _, value)| {
                let labels: Vec<_> = key
                    .key()
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                let mine = labels.contains(&("group".into(), group.clone()))
                    && labels.contains(&("topic".into(), topic.clone()));
                match value {
                    metrics_util::debugging::DebugValue::Gauge(v)
                        if mine && key.key().name() == "inland_stage_consumer_lag_records" =>
                    {
                        Some(v.into_inner())
                    }
                    _ => None,
                }
            });
        if found == Some(3.0) || Instant::now() > deadline {
            break found;
        }
    };
    assert_eq!(lag, Some(3.0), "high watermark 5 minus committed 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka broker: scripts/kafka.sh start, then INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo test -- --ignored"]
async fn the_readiness_probe_tells_a_serving_broker_from_a_dead_address() {
    KafkaConfig::new(bootstrap())
        .probe()
        .unwrap()
        .check()
        .await
        .expect("the running broker answers");
    // Nothing listens on port 1 of loopback.
    let dead = KafkaConfig::new("127.0.0.1:1")
        .probe()
        .unwrap()
        .check()
        .await;
    assert!(
        matches!(
            dead,
            Err(Error::Kafka {
                op: "fetch metadata",
                ..
            })
        ),
        "{dead:?}"
    );
}
