//! The archiver against a real Apache Kafka broker and a real Garage S3 server:
//! anonymized records, frames and consent events from Kafka into Garage, read back with
//! the parquet crate and counted by DuckDB (from PyPI); an erasure request on its topic;
//! a crash mid-write replayed into the same keys; and the real `inland` binary:
//! `inland storage bootstrap|check`, `inland archiver` refusing to start on missing or
//! longer lifecycle rules and on a region off the lock, and `kill -9` of an `inland
//! archiver` process mid-stream losing nothing.
//!
//! Needs `scripts/kafka.sh start` (INLAND_KAFKA_BOOTSTRAP) and `scripts/garage.sh start`
//! (`export $(scripts/garage.sh env)`). Each test works in a bucket of its own, deleted at
//! the end. The `inland` binary is built by the test (`cargo test --workspace` has built
//! it already). DuckDB comes from `scripts/pyenv-query.sh` (`INLAND_QUERY_PYTHON`
//! overrides the interpreter); it reads a copy of the objects, as its S3 extension would
//! have to be downloaded from outside the package registries.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Float32Type;
use bytes::Bytes;
use inland_archiver::{Archiver, ArchiverConfig, ErasureRecord, Inputs};
use inland_consent::proto::{ErasureRequest, Pseudonym};
use inland_core::topics;
use inland_proto::ingest::v1::{Sample, sample::Value};
use inland_proto::pipeline::v1::anonymized_record::Payload;
use inland_proto::pipeline::v1::{AnonymizedFrame, AnonymizedTelemetry, CoarsePosition};
use inland_stage::{KafkaConfig, Producer, Record, TopicSpec};
use inland_store::{Backend, ObjectMeta, ObjectStore, S3Config, S3Store, StoreConfig};
use inland_tests::archive::{garage_env, jpeg, on_topic, python, remove_bucket, ts};
use inland_tests::{assert_dead_lettered, inland_binary, kafka, random_vin};
use tokio_util::sync::CancellationToken;

/// A name no other run uses (topics, groups, buckets).
fn unique() -> String {
    random_vin().as_str().to_lowercase()
}

/// A bucket of the run's own on Garage, with the lifecycle rules of `store.shelf_life`.
struct TestBucket {
    config: StoreConfig,
}

impl TestBucket {
    fn named(run: &str) -> Self {
        Self {
            config: StoreConfig {
                backend: Backend::S3,
                s3: S3Config {
                    endpoint: garage_env("INLAND_S3_ENDPOINT"),
                    region: garage_env("INLAND_S3_REGION"),
                    bucket: format!("inland-test-{run}"),
                    ..S3Config::default()
                },
                ..StoreConfig::default()
            },
        }
    }

    /// Created (with its rules) in-process.
    async fn bootstrapped(run: &str) -> Self {
        let bucket = Self::named(run);
        let report = inland_store::bootstrap(&bucket.config)
            .await
            .expect("Garage: scripts/garage.sh start");
        assert!(report.created_bucket && report.drift.is_empty(), "{report}");
        bucket
    }

    fn name(&self) -> &str {
        &self.config.s3.bucket
    }

    async fn store(&self) -> S3Store {
        S3Store::open(&self.config.s3)
            .await
            .expect("the test bucket")
    }

    async fn remove(self) {
        remove_bucket(&self.store().await).await;
    }
}

fn spec(name: &str, partitions: i32) -> TopicSpec {
    TopicSpec {
        name: name.into(),
        partitions,
        retention_ms: 3_600_000,
        compacted: false,
    }
}

/// Now, in milliseconds: rows land in the current hour's partitions.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The pseudonym of vehicle `i % 6`.
fn pseudonym(i: u64) -> String {
    format!("{:032x}", i % 6 + 1)
}

/// Record `i`: one row whose speed is `i`, so every record is found (or missed) by it.
fn speed(i: u64, at: i64) -> Record {
    let payload = Payload::Telemetry(AnonymizedTelemetry {
        samples: vec![Sample {
            path: "Vehicle.Speed".into(),
            time: Some(ts(at)),
            value: Some(Value::FloatValue(i as f32)),
        }],
    });
    on_topic(pseudonym(i), "driving_statistics", i, payload, at)
}

fn frame(i: u64, at: i64) -> Record {
    let payload = Payload::Frame(AnonymizedFrame {
        camera_id: "front".into(),
        captured_at: Some(ts(at)),
        jpeg: jpeg(i as u8),
        position: Some(CoarsePosition {
            latitude: 39.9,
            longitude: 116.4,
            grid_m: 1000,
        }),
        faces: 0,
        plates: 0,
    });
    on_topic(pseudonym(i), "road_imagery", 1_000_000 + i, payload, at)
}

async fn send_all(producer: &dyn Producer, topic: &str, records: Vec<Record>) {
    let mut deliveries = Vec::with_capacity(records.len());
    for record in records {
        deliveries.push(producer.enqueue(topic, record).await.expect("enqueue"));
    }
    for delivery in deliveries {
        delivery.await.expect("delivered");
    }
}

/// The objects of a run: keys under `root` naming `topic`.
async fn objects(store: &dyn ObjectStore, root: &str, topic: &str) -> Vec<ObjectMeta> {
    let mut listed = store.list(root).await.expect("list");
    listed.retain(|o| o.key.contains(&format!("/{topic}-p")));
    listed
}

async fn rows(store: &dyn ObjectStore, root: &str, topic: &str) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for object in objects(store, root, topic).await {
        if object.key.ends_with(".parquet") {
            let bytes = store.get(&object.key).await.expect("get");
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                    .unwrap()
                    .build()
                    .unwrap();
            out.extend(reader.map(Result::unwrap));
        }
    }
    out
}

/// How many rows hold each speed.
async fn speeds(store: &dyn ObjectStore, topic: &str) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for batch in rows(store, "dataset=telemetry/", topic).await {
        let speed = batch
            .column_by_name("Vehicle.Speed")
            .unwrap()
            .as_primitive::<Float32Type>();
        for i in 0..speed.len() {
            *seen.entry(speed.value(i) as u64).or_default() += 1;
        }
    }
    seen
}

/// Polls until `done` holds; fails after `limit` (a hang, not a slow machine).
async fn until<F: Future<Output = bool>>(what: &str, limit: Duration, mut done: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn config(run: &str) -> ArchiverConfig {
    ArchiverConfig {
        topic: format!("inland.test.anonymized.{run}"),
        group: format!("inland-test-archiver-{run}"),
        consent_topic: format!("inland.test.consent.{run}"),
        consent_group: format!("inland-test-archiver-consent-{run}"),
        erasure_topic: format!("inland.test.erasure.{run}"),
        erasure_group: format!("inland-test-archiver-erasure-{run}"),
        max_batch_age: Duration::from_secs(1),
        retry_min: Duration::from_millis(50),
        retry_max: Duration::from_secs(1),
        ..ArchiverConfig::default()
    }
}

/// Every input of `config` from Kafka, and the dead-letter topic.
async fn topics_of(kafka: &KafkaConfig, config: &ArchiverConfig, partitions: i32) {
    kafka
        .ensure_topics(&[
            spec(&config.topic, partitions),
            spec(&config.consent_topic, 2),
            spec(&config.erasure_topic, 2),
            spec(topics::DEAD_LETTER, 6),
        ])
        .await
        .expect("create test topics");
}

/// What DuckDB counts in a local copy of the run's objects, read as Hive partitions.
async fn duckdb_counts(store: &dyn ObjectStore, config: &ArchiverConfig) -> serde_json::Value {
    const SCRIPT: &str = r#"
import duckdb, json, sys
root = sys.argv[1]
# `hour=HH` is zero-padded text: DuckDB infers BIGINT from "13" but keeps "07" as VARCHAR,
# so the partition types are stated, as the query service states them.
def scan(dataset):
    return (f"read_parquet('{root}/{dataset}/**/*.parquet', hive_partitioning = true, "
            "hive_types = {'date': DATE, 'hour': VARCHAR})")
db = duckdb.connect()
t = db.sql(f"select count(*), count(distinct pseudonym), count(distinct date), min(cast(hour AS INTEGER)) >= 0 from {scan('dataset=telemetry')}").fetchone()
f = db.sql(f"select count(*), sum(bytes) from {scan('dataset=frame_index')}").fetchone()
c = db.sql(f"select count(*) from {scan('consent/events')}").fetchone()
print(json.dumps({"telemetry": t[0], "pseudonyms": t[1], "dates": t[2], "hours": t[3],
                  "frames": f[0], "frame_bytes": int(f[1] or 0), "consent": c[0]}))
"#;
    let copy = tempfile::tempdir().unwrap();
    for (root, topic) in [
        ("dataset=telemetry/", &config.topic),
        ("dataset=frame_index/", &config.topic),
        ("consent/events/", &config.consent_topic),
    ] {
        for object in objects(store, root, topic).await {
            let path = copy.path().join(&object.key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, store.get(&object.key).await.unwrap()).unwrap();
        }
    }
    let out = Command::new(python())
        .arg("-c")
        .arg(SCRIPT)
        .arg(copy.path())
        .output()
        .expect("running DuckDB");
    assert!(
        out.status.success(),
        "DuckDB failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("DuckDB's JSON")
}

async fn jpeg_bytes(store: &dyn ObjectStore, topic: &str) -> u64 {
    objects(store, "dataset=frames/", topic)
        .await
        .iter()
        .map(|o| o.size)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Kafka and Garage: scripts/kafka.sh start; scripts/garage.sh start; export INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 $(scripts/garage.sh env)"]
async fn kafka_into_garage_once_each_counted_by_duckdb_then_a_vehicle_erased() {
    let kafka = kafka();
    let run = unique();
    let config = config(&run);
    topics_of(&kafka, &config, 3).await;
    let bucket = TestBucket::bootstrapped(&run).await;
    let producer = kafka.producer().unwrap();
    let now = now_ms();
    let mut records: Vec<Record> = (0..600).map(|i| speed(i, now)).collect();
    records.extend((0..5).map(|i| frame(i, now)));
    // Redelivered copies (same record id and purpose): archived once.
    records.extend((0..20).map(|i| speed(i, now)));
    let vin = random_vin();
    let raw = Record {
        key: Bytes::from(vin.as_str().to_owned()),
        payload: Bytes::from_static(b"not anonymized"),
        headers: vec![(
            "inland-schema".into(),
            "inland.pipeline.v1.RawRecord".into(),
        )],
        timestamp_ms: None,
    };
    records.push(raw.clone());
    send_all(&producer, &config.topic, records).await;
    let consent: Vec<Record> = (0..4)
        .map(|i| Record {
            key: Bytes::from(format!("subject-{i}")),
            payload: Bytes::from(format!("event-{i}")),
            headers: vec![],
            timestamp_ms: Some(now),
        })
        .collect();
    send_all(&producer, &config.consent_topic, consent).await;

    let store: Arc<dyn ObjectStore> = Arc::new(bucket.store().await);
    let archiver = Archiver::new(
        store.clone(),
        Arc::new(kafka.producer().unwrap()),
        config.clone(),
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let running =
        tokio::spawn(archiver.run(Inputs::on_kafka(&kafka, &config).unwrap(), shutdown.clone()));
    let (s, topic, consent_topic) = (
        store.as_ref(),
        config.topic.as_str(),
        config.consent_topic.as_str(),
    );
    until(
        "every record archived",
        Duration::from_secs(120),
        || async move {
            speeds(s, topic).await.len() == 600
                && objects(s, "dataset=frames/", topic).await.len() == 5
                && rows(s, "consent/events/", consent_topic)
                    .await
                    .iter()
                    .map(RecordBatch::num_rows)
                    .sum::<usize>()
                    == 4
        },
    )
    .await;
    let seen = speeds(s, topic).await;
    assert!(seen.values().all(|n| *n == 1), "a record archived twice");
    assert_dead_lettered(
        &kafka,
        &run,
        &vin,
        &raw.payload,
        "archiver",
        "not an anonymized record",
    )
    .await;

    // DuckDB reads the partitions as they are.
    let counts = duckdb_counts(s, &config).await;
    assert_eq!(counts["telemetry"], 600, "{counts}");
    assert_eq!(counts["pseudonyms"], 6, "{counts}");
    assert_eq!(counts["frames"], 5, "{counts}");
    assert_eq!(counts["consent"], 4, "{counts}");
    assert_eq!(
        counts["hours"], true,
        "hour is a partition column: {counts}"
    );
    assert_eq!(
        counts["frame_bytes"],
        jpeg_bytes(s, topic).await,
        "{counts}"
    );

    // A withdrawal's erasure request for vehicle 0 (both its pseudonyms, of two key
    // epochs), made after its records: its 100 rows and its frame go, and the request's
    // completion is recorded.
    let request = ErasureRequest {
        request_id: format!("er-{run}"),
        requested_at: Some(ts(now + 1000)),
        pseudonyms: vec![
            Pseudonym {
                key_epoch: 1,
                value: pseudonym(0),
            },
            Pseudonym {
                key_epoch: 2,
                value: format!("{:032x}", 0xabcu32),
            },
        ],
        consent_event_id: "ev-1".into(),
        categories: Vec::new(),
    };
    send_all(
        &producer,
        &config.erasure_topic,
        vec![inland_consent::erasure_record(&request)],
    )
    .await;
    let recorded = format!("consent/erasure/{}.json", request.request_id);
    let key = recorded.as_str();
    until(
        "the erasure recorded",
        Duration::from_secs(120),
        || async move { s.get(key).await.is_ok() },
    )
    .await;
    shutdown.cancel();
    running.await.unwrap().expect("a clean stop");
    let record: ErasureRecord = serde_json::from_slice(&s.get(key).await.unwrap()).unwrap();
    assert_eq!(record.request_id, request.request_id);
    assert_eq!(record.report.rows_removed, 100 + 1);
    assert_eq!(record.report.frames_deleted, 1);
    let seen = speeds(s, topic).await;
    assert_eq!(seen.len(), 500);
    assert!(seen.keys().all(|i| i % 6 != 0), "vehicle 0's rows are gone");
    let counts = duckdb_counts(s, &config).await;
    assert_eq!(counts["telemetry"], 500, "{counts}");
    assert_eq!(counts["pseudonyms"], 5, "{counts}");
    assert_eq!(counts["frames"], 4, "{counts}");
    assert_eq!(
        counts["frame_bytes"],
        jpeg_bytes(s, topic).await,
        "{counts}"
    );
    bucket.remove().await;
}

/// A store that stops answering puts after `allow` of them: an archiver crashing mid-write.
struct Hangs {
    inner: Arc<dyn ObjectStore>,
    allow: usize,
    done: AtomicUsize,
}

#[async_trait::async_trait]
impl ObjectStore for Hangs {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), inland_store::Error> {
        if self.done.fetch_add(1, Ordering::SeqCst) >= self.allow {
            std::future::pending::<()>().await;
        }
        self.inner.put(key, body).await
    }
    async fn get(&self, key: &str) -> Result<Bytes, inland_store::Error> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, inland_store::Error> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), inland_store::Error> {
        self.inner.delete(key).await
    }
}

/// The anonymized input only.
fn anonymized_input(kafka: &KafkaConfig, config: &ArchiverConfig) -> Inputs {
    Inputs {
        anonymized: Arc::new(kafka.consumer(&config.group, &[&config.topic]).unwrap()),
        consent: None,
        erasure: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Kafka and Garage: scripts/kafka.sh start; scripts/garage.sh start; export INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 $(scripts/garage.sh env)"]
async fn a_crash_mid_write_is_replayed_into_the_same_keys_without_duplicates() {
    let kafka = kafka();
    let run = unique();
    let config = ArchiverConfig {
        max_batch_age: Duration::from_secs(3600),
        max_batch_records: 100,
        ..config(&run)
    };
    topics_of(&kafka, &config, 1).await;
    let bucket = TestBucket::bootstrapped(&run).await;
    let producer = kafka.producer().unwrap();
    // Rows in two hours, so a batch writes two files and the crash falls between them.
    let now = now_ms();
    let records = (0..250).map(|i| speed(i, if i % 2 == 0 { now } else { now - 3_600_000 }));
    send_all(&producer, &config.topic, records.collect()).await;

    let garage: Arc<dyn ObjectStore> = Arc::new(bucket.store().await);
    // The manifest and one file of the first batch, then the "crash".
    let hangs = Arc::new(Hangs {
        inner: garage.clone(),
        allow: 2,
        done: AtomicUsize::new(0),
    });
    let crashing = Archiver::new(
        hangs.clone(),
        Arc::new(kafka.producer().unwrap()),
        config.clone(),
    )
    .unwrap();
    let first =
        tokio::spawn(crashing.run(anonymized_input(&kafka, &config), CancellationToken::new()));
    let (g, topic, done) = (garage.as_ref(), config.topic.as_str(), &hangs.done);
    until("a write hanging", Duration::from_secs(60), || async move {
        done.load(Ordering::SeqCst) > 2
    })
    .await;
    // Both allowed puts are durable once the file is listed.
    until(
        "the first attempt's file",
        Duration::from_secs(30),
        || async move { objects(g, "dataset=telemetry/", topic).await.len() == 1 },
    )
    .await;
    first.abort();
    let _ = first.await;
    let written = objects(g, "dataset=telemetry/", topic).await;
    assert!(
        written[0]
            .key
            .ends_with("-00000000000000000000-00000000000000000099.parquet")
    );

    // The restart cuts 70-record batches, except the replay of 0..=99.
    let restarted = Archiver::new(
        garage.clone(),
        Arc::new(kafka.producer().unwrap()),
        ArchiverConfig {
            max_batch_records: 70,
            ..config.clone()
        },
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let second = tokio::spawn(restarted.run(anonymized_input(&kafka, &config), shutdown.clone()));
    // The last 10 records wait for the shutdown, which writes them.
    until(
        "the full batches archived",
        Duration::from_secs(120),
        || async move { speeds(g, topic).await.len() == 240 },
    )
    .await;
    shutdown.cancel();
    second.await.unwrap().unwrap();
    let seen = speeds(g, topic).await;
    assert_eq!(seen.len(), 250);
    assert!(seen.values().all(|n| *n == 1), "a record archived twice");
    let mut ranges: Vec<String> = objects(g, "dataset=telemetry/", topic)
        .await
        .iter()
        .map(|o| o.key.rsplit_once("-p000-").unwrap().1.to_owned())
        .collect();
    ranges.sort();
    ranges.dedup();
    let range = |a: u64, b: u64| format!("{a:020}-{b:020}.parquet");
    assert_eq!(
        ranges,
        [
            range(0, 99),
            range(100, 169),
            range(170, 239),
            range(240, 249)
        ]
    );
    bucket.remove().await;
}

/// `inland` with the store in `bucket` and the archiver on `config`'s topics, configured
/// by environment variables under the names the Helm chart sets.
fn inland(binary: &Path, bucket: &TestBucket, config: &ArchiverConfig) -> Command {
    let s3 = &bucket.config.s3;
    let mut cmd = Command::new(binary);
    cmd.env_remove("INLAND_CONFIG")
        .env("INLAND__STORE__BACKEND", "s3")
        .env("INLAND__STORE__S3__ENDPOINT", &s3.endpoint)
        .env("INLAND__STORE__S3__REGION", &s3.region)
        .env("INLAND__STORE__S3__BUCKET", &s3.bucket)
        .env("INLAND__STORE__S3__PATH_STYLE", "true")
        .env(
            "INLAND__KAFKA__BOOTSTRAP_SERVERS",
            kafka().bootstrap_servers,
        )
        // A killed member's partitions move on after this, rather than the 45 s default.
        .env("INLAND__KAFKA__PROPERTIES__SESSION_TIMEOUT_MS", "\"6000\"")
        .env("INLAND__TOPICS__CREATE_ON_START", "false")
        .env("INLAND__ARCHIVER__TOPIC", &config.topic)
        .env("INLAND__ARCHIVER__GROUP", &config.group)
        .env("INLAND__ARCHIVER__CONSENT_TOPIC", &config.consent_topic)
        .env("INLAND__ARCHIVER__CONSENT_GROUP", &config.consent_group)
        .env("INLAND__ARCHIVER__ERASURE_TOPIC", &config.erasure_topic)
        .env("INLAND__ARCHIVER__ERASURE_GROUP", &config.erasure_group)
        .env(
            "INLAND__ARCHIVER__MAX_BATCH_RECORDS",
            config.max_batch_records.to_string(),
        )
        .env("INLAND__ARCHIVER__MAX_BATCH_AGE", "500ms")
        .env("INLAND__OBSERVABILITY__ADMIN_LISTEN", "127.0.0.1:0")
        .env("INLAND__OBSERVABILITY__LOG_FORMAT", "json")
        .stdin(Stdio::null());
    cmd
}

/// Runs a command that must end by itself, in a blocking thread.
async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("running inland"))
        .await
        .unwrap()
}

/// Stdout and stderr of a finished command, for assertions and failure messages.
fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A running `inland` process; killed with SIGKILL when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /readyz` on the admin port: the status code and body, `None` while nobody answers.
fn readyz(port: u16) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

async fn readyz_async(port: u16) -> Option<(u16, String)> {
    tokio::task::spawn_blocking(move || readyz(port))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Kafka and Garage: scripts/kafka.sh start; scripts/garage.sh start; export INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 $(scripts/garage.sh env)"]
async fn storage_bootstrap_reads_the_rules_back_and_the_archiver_refuses_missing_or_longer_rules() {
    let binary = inland_binary();
    let kafka = kafka();
    let run = unique();
    let config = config(&run);
    topics_of(&kafka, &config, 1).await;
    let bucket = TestBucket::named(&run);
    let command = |args: &[&str], telemetry_days: &str| {
        let mut cmd = inland(&binary, &bucket, &config);
        cmd.args(args)
            .env("INLAND__STORE__SHELF_LIFE__TELEMETRY", telemetry_days);
        cmd
    };

    // No bucket yet: the archiver names the command that makes it.
    let out = output(command(&["archiver"], "365d")).await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("inland storage bootstrap"),
        "{}",
        text(&out)
    );

    // Bootstrap creates the bucket and the rules (telemetry kept 400 days), and prints
    // them as read back from the server.
    let out = output(command(&["storage", "bootstrap"], "400d")).await;
    assert!(out.status.success(), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in [
        "created the bucket",
        "applied the lifecycle rules",
        "inland-telemetry: prefix \"dataset=telemetry/\", expire after 400 days",
        "inland-frames: prefix \"dataset=frames/\", expire after 30 days",
        "inland-frame_index: prefix \"dataset=frame_index/\", expire after 30 days",
        "inland-consent: prefix \"consent/\", expire after 2190 days",
        "inland-audit: prefix \"audit/\", expire after 1095 days",
        "abort incomplete multipart uploads after 1 days",
        "drift: none",
    ] {
        assert!(report.contains(line), "{line:?} not in:\n{report}");
    }

    // Configured for 365 days, the rule in force keeps telemetry longer: `check` fails and
    // the archiver refuses to start.
    let out = output(command(&["storage", "check"], "365d")).await;
    assert!(!out.status.success());
    assert!(
        text(&out)
            .contains("telemetry: expires after 400 days, longer than the configured 365 days"),
        "{}",
        text(&out)
    );
    let out = output(command(&["archiver"], "365d")).await;
    assert!(!out.status.success());
    let refused = text(&out);
    assert!(
        refused.contains("refusing to start the archiver")
            && refused.contains("longer than the configured 365 days"),
        "{refused}"
    );

    // No rules at all: every class would be kept forever.
    let store = bucket.store().await;
    store
        .client()
        .delete_bucket_lifecycle()
        .bucket(bucket.name())
        .send()
        .await
        .unwrap();
    let out = output(command(&["archiver"], "365d")).await;
    assert!(!out.status.success());
    let refused = text(&out);
    assert!(
        refused.contains("refusing to start the archiver") && refused.contains("kept forever"),
        "{refused}"
    );

    // Bootstrapped as configured, it starts and becomes ready (broker, store and rules).
    let out = output(command(&["storage", "bootstrap"], "365d")).await;
    assert!(out.status.success(), "{}", text(&out));
    let port = free_port();
    let mut cmd = command(&["archiver"], "365d");
    cmd.env(
        "INLAND__OBSERVABILITY__ADMIN_LISTEN",
        format!("127.0.0.1:{port}"),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let archiver = Process(cmd.spawn().expect("starting inland archiver"));
    until(
        "the archiver ready",
        Duration::from_secs(60),
        || async move {
            readyz_async(port)
                .await
                .is_some_and(|(status, _)| status == 200)
        },
    )
    .await;
    // Rules removed while it runs: unready, naming them.
    store
        .client()
        .delete_bucket_lifecycle()
        .bucket(bucket.name())
        .send()
        .await
        .unwrap();
    until(
        "the archiver unready",
        Duration::from_secs(60),
        || async move {
            readyz_async(port).await.is_some_and(|(status, body)| {
                status == 503 && body.contains("lifecycle:") && body.contains("kept forever")
            })
        },
    )
    .await;
    drop(archiver);
    bucket.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Kafka and Garage: scripts/kafka.sh start; scripts/garage.sh start; export INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 $(scripts/garage.sh env)"]
async fn the_archiver_refuses_a_region_off_the_lock_or_not_the_buckets() {
    let binary = inland_binary();
    let run = unique();
    let config = config(&run);
    let bucket = TestBucket::bootstrapped(&run).await;
    let server_region = garage_env("INLAND_S3_REGION");
    let other = if server_region == "cn-northwest-1" {
        "cn-north-1"
    } else {
        "cn-northwest-1"
    };

    // Allowlisted, but the bucket (the server) is elsewhere: refused after asking it.
    let mut cmd = inland(&binary, &bucket, &config);
    cmd.arg("archiver").env("INLAND__STORE__S3__REGION", other);
    let out = output(cmd).await;
    assert!(!out.status.success());
    let refused = text(&out);
    assert!(
        refused.contains(&format!("is in region \"{server_region}\""))
            && refused.contains(&format!("store.s3.region is \"{other}\""))
            && refused.contains("region lock"),
        "{refused}"
    );

    // Off the allowlist (the list narrowed to another in-country region): refused before
    // any request, and bootstrap likewise.
    for args in [&["archiver"][..], &["storage", "bootstrap"]] {
        let mut cmd = inland(&binary, &bucket, &config);
        cmd.args(args).env(
            "INLAND__STORE__S3__ALLOWED_REGIONS",
            format!("[\"{other}\"]"),
        );
        let out = output(cmd).await;
        assert!(!out.status.success());
        let refused = text(&out);
        assert!(
            refused.contains(&format!(
                "store.s3.region \"{server_region}\" is not an allowed region ({other})"
            )),
            "{refused}"
        );
    }
    // And a region outside the country cannot even be allowed.
    let mut cmd = inland(&binary, &bucket, &config);
    cmd.arg("archiver")
        .env("INLAND__STORE__S3__ALLOWED_REGIONS", "[\"us-east-1\"]")
        .env("INLAND__STORE__S3__REGION", "us-east-1");
    let out = output(cmd).await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("only in-country regions (cn-…) may be allowed"),
        "{}",
        text(&out)
    );
    bucket.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Kafka and Garage: scripts/kafka.sh start; scripts/garage.sh start; export INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 $(scripts/garage.sh env)"]
async fn kill_9_of_an_archiver_process_mid_stream_loses_nothing() {
    let binary = inland_binary();
    let kafka = kafka();
    let run = unique();
    let config = ArchiverConfig {
        max_batch_records: 200,
        ..config(&run)
    };
    topics_of(&kafka, &config, 3).await;
    let bucket = TestBucket::bootstrapped(&run).await;
    let store = bucket.store().await;
    const TOTAL: u64 = 3000;
    // A steady stream: 30 bursts of 100 records, 100 ms apart.
    let stream = {
        let producer = kafka.producer().unwrap();
        let topic = config.topic.clone();
        tokio::spawn(async move {
            for burst in 0..TOTAL / 100 {
                let records = (burst * 100..(burst + 1) * 100).map(|i| speed(i, now_ms()));
                send_all(&producer, &topic, records.collect()).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let spawn = || {
        let mut cmd = inland(&binary, &bucket, &config);
        cmd.arg("archiver")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Process(cmd.spawn().expect("starting inland archiver"))
    };
    let first = spawn();
    let (s, topic): (&dyn ObjectStore, &str) = (&store, &config.topic);
    until(
        "some batches archived",
        Duration::from_secs(120),
        || async move { speeds(s, topic).await.len() >= 300 },
    )
    .await;
    drop(first); // SIGKILL, mid-stream
    stream.await.unwrap();
    let archived_before = speeds(s, topic).await.len();
    assert!(
        (archived_before as u64) < TOTAL,
        "killed after the stream ended"
    );

    let second = spawn();
    until(
        "every record archived",
        Duration::from_secs(180),
        || async move { speeds(s, topic).await.len() as u64 == TOTAL },
    )
    .await;
    drop(second);
    let seen = speeds(s, topic).await;
    assert_eq!(seen.len() as u64, TOTAL, "records lost");
    assert!(
        seen.values().all(|n| *n == 1),
        "a record archived twice: {:?}",
        seen.iter()
            .filter(|(_, n)| **n > 1)
            .take(5)
            .collect::<Vec<_>>()
    );
    bucket.remove().await;
}
