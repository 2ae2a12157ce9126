//! The archiver end to end on the in-process bus and a local directory store: rows read
//! back, keys, partitions, de-duplication, dead letters, commits only after durability,
//! replay after a crash, bounded memory, consent history, erasure.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, TimestampMillisecondType, UInt32Type,
};
use arrow_array::{Array, RecordBatch};
use bytes::Bytes;
use inland_consent::proto::{ErasureRequest, Pseudonym};
use inland_core::{topics, vss};
use inland_datasets::Dataset;
use inland_proto::Timestamp;
use inland_proto::ingest::v1::{Sample, sample::Value};
use inland_proto::pipeline::v1::anonymized_record::Payload;
use inland_proto::pipeline::v1::{
    ANONYMIZED_RECORD_SCHEMA, AnonymizedFrame, AnonymizedRecord, AnonymizedTelemetry,
    CoarsePosition,
};
use inland_stage::{
    Consumed, Consumer, DEAD_LETTER_REASON, DEAD_LETTER_SOURCE, DEAD_LETTER_STAGE, MemoryBus,
    MemoryBusConfig, MemoryConsumer, Position, Producer, Record, TopicSpec,
};
use inland_store::{LocalStore, ObjectMeta, ObjectStore};
use prost::Message;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Archiver, ArchiverConfig, Error, Inputs, erase, record_erasure};

const P1: &str = "0123456789abcdef0123456789abcdef";
const P2: &str = "fedcba9876543210fedcba9876543210";
/// 2026-11-03T07:59:58Z: two seconds before an hour boundary.
const T0: i64 = 1_793_692_798_000;
const PARTITIONS: i32 = 3;

fn ts(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn record_id(n: u64) -> String {
    format!("{n:032x}")
}

fn on_topic(record: &AnonymizedRecord, id: &str) -> Record {
    Record {
        key: record.pseudonym.clone().into_bytes().into(),
        payload: record.encode_to_vec().into(),
        headers: vec![
            ("inland-schema".into(), ANONYMIZED_RECORD_SCHEMA.into()),
            ("inland-record-id".into(), id.to_owned().into_bytes().into()),
        ],
        timestamp_ms: None,
    }
}

fn anonymized(pseudonym: &str, purpose: &str, payload: Payload) -> AnonymizedRecord {
    AnonymizedRecord {
        pseudonym: pseudonym.into(),
        key_epoch: 1,
        purpose: purpose.into(),
        recorded_at: Some(ts(T0)),
        payload: Some(payload),
    }
}

fn sample(path: &str, ms: i64, value: Value) -> Sample {
    Sample {
        path: path.into(),
        time: Some(ts(ms)),
        value: Some(value),
    }
}

/// Two instants of driving at `at` and `at + 1 s`; the first has two speeds (10 Hz
/// floored to the second), so it fills two rows: three rows in all.
fn drive(at: i64, kmh: f32) -> Payload {
    Payload::Telemetry(AnonymizedTelemetry {
        samples: vec![
            sample("Vehicle.Speed", at, Value::FloatValue(kmh)),
            sample(vss::LATITUDE, at, Value::DoubleValue(39.9)),
            sample(vss::LONGITUDE, at, Value::DoubleValue(116.4)),
            sample("Vehicle.Speed", at, Value::FloatValue(kmh + 1.0)),
            sample("Vehicle.IsMoving", at, Value::BoolValue(true)),
            sample(
                "Vehicle.Chassis.SteeringWheel.Angle",
                at + 1000,
                Value::IntValue(-12),
            ),
            sample("Vehicle.Speed", at + 1000, Value::FloatValue(kmh + 2.0)),
        ],
    })
}
const DRIVE_ROWS: usize = 3;

/// The smallest JPEG `decode_from_topic` accepts: SOI, a JFIF APP0, SOS and some bytes.
fn jpeg(fill: u8) -> Bytes {
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16];
    jpeg.extend(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    jpeg.extend([0xFF, 0xDA, 0, 2, fill, fill, fill, 0xFF, 0xD9]);
    jpeg.into()
}

fn frame(at: i64, fill: u8) -> Payload {
    Payload::Frame(AnonymizedFrame {
        camera_id: "front".into(),
        captured_at: Some(ts(at)),
        jpeg: jpeg(fill),
        position: Some(CoarsePosition {
            latitude: 39.9,
            longitude: 116.4,
            grid_m: 1000,
        }),
        faces: 2,
        plates: 1,
    })
}

/// What the archiver did, in order: objects written and offsets committed.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Put(String),
    Commit(Position),
}

type Log = Arc<Mutex<Vec<Event>>>;

fn events(log: &Log) -> Vec<Event> {
    log.lock().unwrap().clone()
}

fn committed(log: &Log) -> HashMap<i32, i64> {
    let mut out = HashMap::new();
    for event in events(log) {
        if let Event::Commit(p) = event {
            let at = out.entry(p.partition).or_insert(p.offset);
            *at = (*at).max(p.offset);
        }
    }
    out
}

/// A consumer that logs its commits and counts what it delivered.
struct Observed {
    inner: MemoryConsumer,
    log: Log,
    received: Arc<AtomicUsize>,
    received_bytes: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl Consumer for Observed {
    async fn recv(&self) -> Result<Consumed, inland_stage::Error> {
        let consumed = self.inner.recv().await?;
        self.received.fetch_add(1, Ordering::SeqCst);
        self.received_bytes
            .fetch_add(consumed.record.payload.len(), Ordering::SeqCst);
        Ok(consumed)
    }

    async fn commit(&self, positions: &[Position]) -> Result<(), inland_stage::Error> {
        self.inner.commit(positions).await?;
        let mut log = self.log.lock().unwrap();
        log.extend(positions.iter().cloned().map(Event::Commit));
        Ok(())
    }
}

#[derive(Default)]
struct Faults {
    /// Puts fail (an outage) while set.
    fail_puts: bool,
    /// Puts after this many successful ones wait until this is lifted (a hung store, or
    /// with an abort, a crash mid-write).
    block_after: Option<usize>,
    /// Keys ending so are refused.
    refuse_suffix: Option<&'static str>,
    /// Gets wait while set (a store that stopped answering reads).
    hang_gets: bool,
    puts: usize,
    failed: usize,
    blocked: usize,
}

/// A local store with injected faults that logs every durable put.
struct TestStore {
    inner: LocalStore,
    faults: Mutex<Faults>,
    log: Log,
}

#[async_trait::async_trait]
impl ObjectStore for TestStore {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), inland_store::Error> {
        let mut waiting = false;
        loop {
            {
                let mut f = self.faults.lock().unwrap();
                if f.refuse_suffix.is_some_and(|s| key.ends_with(s)) {
                    return Err(inland_store::Error::BadKey(format!(
                        "{key:?}: refused by the test"
                    )));
                }
                if f.fail_puts {
                    f.failed += 1;
                    return Err(inland_store::Error::Local {
                        path: key.into(),
                        source: std::io::Error::other("the disk is away"),
                    });
                }
                if f.block_after.is_none_or(|n| f.puts < n) {
                    f.puts += 1;
                    break;
                }
                if !waiting {
                    f.blocked += 1;
                    waiting = true;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.inner.put(key, body).await?;
        self.log.lock().unwrap().push(Event::Put(key.to_owned()));
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes, inland_store::Error> {
        while self.faults.lock().unwrap().hang_gets {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.inner.get(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, inland_store::Error> {
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), inland_store::Error> {
        self.inner.delete(key).await
    }
}

struct Setup {
    bus: MemoryBus,
    store: Arc<TestStore>,
    log: Log,
    _dir: tempfile::TempDir,
}

fn spec(name: &str, partitions: i32) -> TopicSpec {
    TopicSpec {
        name: name.into(),
        partitions,
        retention_ms: 3_600_000,
        compacted: false,
    }
}

impl Setup {
    fn new() -> Self {
        let bus = MemoryBus::new(MemoryBusConfig {
            max_records: 100_000,
            max_bytes: 64 << 20,
        });
        bus.ensure_topics(&[
            spec(topics::ANONYMIZED, PARTITIONS),
            spec(topics::CONSENT, 2),
            spec(topics::ERASURE, 2),
            spec(topics::DEAD_LETTER, 1),
            spec("one.partition", 1),
        ])
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = Log::default();
        let store = Arc::new(TestStore {
            inner: LocalStore::open(dir.path()).unwrap(),
            faults: Mutex::default(),
            log: log.clone(),
        });
        Self {
            bus,
            store,
            log,
            _dir: dir,
        }
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.store.faults.lock().unwrap()
    }

    /// Sends records; returns the last offset per partition.
    async fn send(&self, topic: &str, records: Vec<Record>) -> HashMap<i32, i64> {
        let mut last = HashMap::new();
        for record in records {
            let at = self.bus.send(topic, record).await.unwrap();
            last.insert(at.partition, at.offset);
        }
        last
    }

    /// Sends records on the anonymized topic to a running archiver, adds their offsets
    /// to `ends` and waits until all of `ends` is committed.
    async fn archive(&self, what: &str, ends: &mut HashMap<i32, i64>, records: Vec<Record>) {
        ends.extend(self.send(topics::ANONYMIZED, records).await);
        until(what, || {
            committed_on(&self.log, topics::ANONYMIZED) == *ends
        })
        .await;
    }

    fn start(&self, config: ArchiverConfig, consent: bool) -> Running {
        self.start_with(config, consent, false)
    }

    /// The archiver on the anonymized topic, and on the consent and erasure topics when
    /// asked.
    fn start_with(&self, config: ArchiverConfig, consent: bool, erasure: bool) -> Running {
        let observed = |group: &str,
                        topic: &str,
                        received: &Arc<AtomicUsize>,
                        bytes: &Arc<AtomicUsize>|
         -> Arc<dyn Consumer> {
            Arc::new(Observed {
                inner: self.bus.consumer(group, &[topic]).unwrap(),
                log: self.log.clone(),
                received: received.clone(),
                received_bytes: bytes.clone(),
            })
        };
        let (received, received_bytes) = (Arc::default(), Arc::default());
        let inputs = Inputs {
            anonymized: observed(&config.group, &config.topic, &received, &received_bytes),
            consent: consent.then(|| {
                observed(
                    &config.consent_group,
                    &config.consent_topic,
                    &received,
                    &received_bytes,
                )
            }),
            erasure: erasure.then(|| {
                observed(
                    &config.erasure_group,
                    &config.erasure_topic,
                    &Arc::default(),
                    &Arc::default(),
                )
            }),
        };
        let archiver =
            Archiver::new(self.store.clone(), Arc::new(self.bus.clone()), config).unwrap();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(archiver.run(inputs, shutdown.clone()));
        Running {
            shutdown,
            handle,
            received,
            received_bytes,
        }
    }

    async fn objects(&self, prefix: &str) -> Vec<String> {
        self.store
            .list(prefix)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect()
    }

    /// Every row of every Parquet file under `prefix`.
    async fn rows(&self, prefix: &str) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        for key in self.objects(prefix).await {
            if key.ends_with(".parquet") {
                out.extend(read_parquet(self.store.get(&key).await.unwrap()));
            }
        }
        out
    }

    async fn dead_letters(&self, want: usize) -> Vec<Record> {
        let reader = self
            .bus
            .consumer("dead-reader", &[topics::DEAD_LETTER])
            .unwrap();
        let mut out = Vec::new();
        while out.len() < want {
            let next = tokio::time::timeout(Duration::from_secs(30), reader.recv()).await;
            out.push(next.expect("a dead letter").unwrap().record);
        }
        out
    }
}

struct Running {
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), Error>>,
    received: Arc<AtomicUsize>,
    received_bytes: Arc<AtomicUsize>,
}

impl Running {
    async fn until_received(&self, n: usize) {
        until("records consumed", || {
            self.received.load(Ordering::SeqCst) >= n
        })
        .await;
    }

    /// Graceful shutdown: writes and commits what is buffered.
    async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
    }
}

/// Polls `done` until true; fails the test after a minute (a hang, not a slow machine).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..6000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn config() -> ArchiverConfig {
    ArchiverConfig {
        max_batch_age: Duration::from_secs(3600),
        retry_min: Duration::from_millis(1),
        retry_max: Duration::from_millis(20),
        drain_timeout: Duration::from_secs(30),
        ..ArchiverConfig::default()
    }
}

fn read_parquet(bytes: Bytes) -> Vec<RecordBatch> {
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn total_rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name(column).unwrap().as_string::<i32>().clone();
            (0..c.len()).map(move |i| c.value(i).to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_rows_read_back_as_written_in_hive_partitions_named_by_offsets() {
    let s = Setup::new();
    let records: Vec<Record> = (0..12)
        .map(|i| {
            let pseudonym = if i % 2 == 0 { P1 } else { P2 };
            on_topic(
                &anonymized(pseudonym, "driving_statistics", drive(T0, 40.0 + i as f32)),
                &record_id(i),
            )
        })
        .collect();
    let last = s.send(topics::ANONYMIZED, records).await;
    let running = s.start(config(), false);
    running.until_received(12).await;
    running.stop().await;

    // Both pseudonyms hash to partitions; every used partition committed its last offset.
    assert_eq!(committed(&s.log), last);
    let keys = s.objects("dataset=telemetry/").await;
    for key in &keys {
        let (dir, file) = key.rsplit_once('/').unwrap();
        assert!(
            dir == "dataset=telemetry/date=2026-11-03/hour=07"
                || dir == "dataset=telemetry/date=2026-11-03/hour=08",
            "{key}"
        );
        let partition: i32 = file[22..25].parse().unwrap();
        let stem = format!(
            "inland.anonymized.v1-p{partition:03}-{:020}-{:020}.parquet",
            0, last[&partition]
        );
        assert_eq!(file, stem);
    }
    // T0 (07:59:58) and T0 + 1 s fall in hour 07: one file per used partition.
    assert_eq!(keys.len(), last.len());

    let batches = s.rows("dataset=telemetry/").await;
    assert_eq!(total_rows(&batches), 12 * DRIVE_ROWS);
    assert_eq!(batches[0].schema(), Dataset::Telemetry.schema());
    let mut speeds = BTreeSet::new();
    let mut positions = 0;
    for b in &batches {
        let time = b
            .column_by_name("time")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>();
        let speed = b
            .column_by_name("Vehicle.Speed")
            .unwrap()
            .as_primitive::<Float32Type>();
        let lat = b
            .column_by_name("latitude")
            .unwrap()
            .as_primitive::<Float64Type>();
        let angle = b
            .column_by_name("Vehicle.Chassis.SteeringWheel.Angle")
            .unwrap()
            .as_primitive::<Int16Type>();
        let moving = b.column_by_name("Vehicle.IsMoving").unwrap().as_boolean();
        let grid = b
            .column_by_name("grid_m")
            .unwrap()
            .as_primitive::<UInt32Type>();
        for i in 0..b.num_rows() {
            speeds.insert(speed.value(i).to_bits());
            assert_eq!(
                grid.null_count(),
                grid.len(),
                "telemetry carries no grid size"
            );
            if time.value(i) == T0 + 1000 {
                assert_eq!(angle.value(i), -12);
                assert!(lat.is_null(i) && moving.is_null(i));
            } else {
                assert_eq!(time.value(i), T0);
                assert!(angle.is_null(i));
                if lat.is_valid(i) {
                    positions += 1;
                    assert_eq!(lat.value(i), 39.9);
                    assert!(moving.value(i), "shares the row of the first speed");
                }
            }
        }
    }
    // One position per record (in its instant's first row); three speeds per record.
    assert_eq!(positions, 12);
    assert_eq!(speeds.len(), 14, "speeds 40..=53");
    let pseudonyms = strings(&batches, "pseudonym");
    assert_eq!(
        pseudonyms.iter().filter(|p| *p == P1).count(),
        6 * DRIVE_ROWS
    );

    // The pseudonym column has a bloom filter; the manifest names each batch.
    let key = &keys[0];
    let file = s.store.get(key).await.unwrap();
    let meta = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .unwrap();
    assert!(meta.row_group(0).column(0).bloom_filter_offset().is_some());
    assert!(
        !s.objects("_archiver/manifests/inland.anonymized.v1/")
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_become_jpeg_objects_with_an_index_and_rows_span_hours() {
    let s = Setup::new();
    let records = vec![
        on_topic(&anonymized(P1, "road_imagery", frame(T0, 1)), &record_id(1)),
        on_topic(
            &anonymized(P1, "road_imagery", frame(T0 + 5000, 2)),
            &record_id(2),
        ),
        // Crosses into hour 08: rows at 07:59:59.5 and 08:00:00.5.
        on_topic(
            &anonymized(
                P1,
                "driving_statistics",
                Payload::Telemetry(AnonymizedTelemetry {
                    samples: vec![
                        sample("Vehicle.Speed", T0 + 1500, Value::FloatValue(1.0)),
                        sample("Vehicle.Speed", T0 + 2500, Value::FloatValue(2.0)),
                    ],
                }),
            ),
            &record_id(3),
        ),
    ];
    let last = s.send(topics::ANONYMIZED, records).await;
    let partition = *last.keys().next().unwrap();
    assert_eq!(last.len(), 1, "one pseudonym, one partition");
    let running = s.start(config(), false);
    running.until_received(3).await;
    running.stop().await;

    let jpegs = s.objects("dataset=frames/").await;
    assert_eq!(
        jpegs,
        [
            format!(
                "dataset=frames/date=2026-11-03/hour=07/inland.anonymized.v1-p{partition:03}-00000000000000000000.jpg"
            ),
            format!(
                "dataset=frames/date=2026-11-03/hour=08/inland.anonymized.v1-p{partition:03}-00000000000000000001.jpg"
            ),
        ]
    );
    assert_eq!(s.store.get(&jpegs[0]).await.unwrap(), jpeg(1));
    let index = s.rows("dataset=frame_index/").await;
    assert_eq!(total_rows(&index), 2);
    assert_eq!(index[0].schema(), Dataset::FrameIndex.schema());
    let keys: BTreeSet<String> = strings(&index, "object_key").into_iter().collect();
    assert_eq!(keys, jpegs.iter().cloned().collect());
    let grid = index[0]
        .column_by_name("grid_m")
        .unwrap()
        .as_primitive::<UInt32Type>();
    assert_eq!(grid.value(0), 1000);
    let telemetry = s.objects("dataset=telemetry/").await;
    assert_eq!(telemetry.len(), 2, "one file per hour: {telemetry:?}");
    assert_eq!(total_rows(&s.rows("dataset=telemetry/").await), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_copies_are_dropped_per_purpose() {
    let s = Setup::new();
    let record = |purpose: &str, id: u64| {
        on_topic(&anonymized(P1, purpose, drive(T0, 50.0)), &record_id(id))
    };
    let records = vec![
        record("driving_statistics", 7),
        record("driving_statistics", 7),
        record("trips", 7),
        record("driving_statistics", 8),
        record("driving_statistics", 7),
    ];
    s.send(topics::ANONYMIZED, records).await;
    let running = s.start(config(), false);
    running.until_received(5).await;
    running.stop().await;
    let batches = s.rows("dataset=telemetry/").await;
    assert_eq!(total_rows(&batches), 3 * DRIVE_ROWS);
    let purposes = strings(&batches, "purpose");
    assert_eq!(
        purposes.iter().filter(|p| *p == "trips").count(),
        DRIVE_ROWS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_are_not_anonymized_are_dead_lettered_and_committed() {
    let s = Setup::new();
    // A raw record as the gateway writes it: keyed by VIN, another schema.
    let raw = Record {
        key: Bytes::from_static(b"LSVAU2180N2183294"),
        payload: Bytes::from_static(b"\x0a\x11LSVAU2180N2183294"),
        headers: vec![(
            "inland-schema".into(),
            "inland.pipeline.v1.RawRecord".into(),
        )],
        timestamp_ms: None,
    };
    // Anonymized in form, but a speed that is not a float: forged.
    let forged = on_topic(
        &anonymized(
            P1,
            "driving_statistics",
            Payload::Telemetry(AnonymizedTelemetry {
                samples: vec![sample(
                    "Vehicle.Speed",
                    T0,
                    Value::StringValue("fast".into()),
                )],
            }),
        ),
        &record_id(1),
    );
    let good = on_topic(
        &anonymized(P1, "driving_statistics", drive(T0, 1.0)),
        &record_id(2),
    );
    let last = s
        .send(topics::ANONYMIZED, vec![raw.clone(), forged.clone(), good])
        .await;
    let running = s.start(config(), false);
    running.until_received(3).await;
    running.stop().await;

    let dead = s.dead_letters(2).await;
    let header = |r: &Record, h: &str| String::from_utf8(r.header(h).unwrap().to_vec()).unwrap();
    let raw_dead = dead.iter().find(|r| r.key == raw.key).unwrap();
    assert_eq!(
        raw_dead.payload, raw.payload,
        "dead letters carry the record as read"
    );
    assert!(header(raw_dead, DEAD_LETTER_REASON).contains("not an anonymized record"));
    assert_eq!(header(raw_dead, DEAD_LETTER_STAGE), "archiver");
    assert!(header(raw_dead, DEAD_LETTER_SOURCE).starts_with("inland.anonymized.v1/"));
    let forged_dead = dead.iter().find(|r| r.key == forged.key).unwrap();
    assert!(
        header(forged_dead, DEAD_LETTER_REASON).contains("Vehicle.Speed is not a valid float"),
        "{}",
        header(forged_dead, DEAD_LETTER_REASON)
    );
    // Only the good record is archived, and every partition is committed.
    assert_eq!(total_rows(&s.rows("dataset=telemetry/").await), DRIVE_ROWS);
    assert_eq!(committed(&s.log), last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_committed_until_every_object_of_the_batch_is_durable() {
    let s = Setup::new();
    s.faults().fail_puts = true;
    let records: Vec<Record> = (0..4)
        .map(|i| {
            on_topic(
                &anonymized(P1, "road_imagery", frame(T0 + i * 1000, i as u8)),
                &record_id(i as u64),
            )
        })
        .collect();
    let last = s.send(topics::ANONYMIZED, records).await;
    let running = s.start(
        ArchiverConfig {
            max_batch_records: 4,
            ..config()
        },
        false,
    );
    running.until_received(4).await;
    until("failed puts being retried", || s.faults().failed >= 5).await;
    assert!(
        committed(&s.log).is_empty(),
        "committed while the store failed"
    );

    s.faults().fail_puts = false;
    until("the commit", || !committed(&s.log).is_empty()).await;
    let log = events(&s.log);
    let commit = log
        .iter()
        .position(|e| matches!(e, Event::Commit(_)))
        .unwrap();
    // The manifest, then the four JPEGs, then the index of each hour (the frames span
    // 07:59:58 to 08:00:01): all before the commit.
    let kind = |e: &Event| match e {
        Event::Put(k) if k.starts_with("_archiver/manifests/") => 0,
        Event::Put(k) if k.starts_with("dataset=frames/") => 1,
        Event::Put(k) if k.starts_with("dataset=frame_index/") => 2,
        other => panic!("{other:?}"),
    };
    let order: Vec<i32> = log[..commit].iter().map(kind).collect();
    assert_eq!(order, [0, 1, 1, 1, 1, 2, 2], "{log:?}");
    assert_eq!(committed(&s.log), last);
    running.stop().await;
    assert_eq!(s.objects("dataset=frames/").await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_dead_letters_its_records_and_leaves_them_out_of_the_index() {
    let s = Setup::new();
    s.faults().refuse_suffix = Some(".jpg");
    let framed = on_topic(&anonymized(P1, "road_imagery", frame(T0, 9)), &record_id(1));
    let driven = on_topic(
        &anonymized(P1, "driving_statistics", drive(T0, 1.0)),
        &record_id(2),
    );
    let last = s
        .send(topics::ANONYMIZED, vec![framed.clone(), driven])
        .await;
    let running = s.start(config(), false);
    running.until_received(2).await;
    running.stop().await;
    let dead = s.dead_letters(1).await;
    assert_eq!(dead[0].payload, framed.payload);
    let reason = String::from_utf8(dead[0].header(DEAD_LETTER_REASON).unwrap().to_vec()).unwrap();
    assert!(
        reason.contains("refused the key dataset=frames/"),
        "{reason}"
    );
    assert!(s.objects("dataset=frame_index/").await.is_empty());
    assert_eq!(total_rows(&s.rows("dataset=telemetry/").await), DRIVE_ROWS);
    assert_eq!(committed(&s.log), last);
}

/// Records on one partition, alternating between hour 07 and hour 08.
fn replay_records(n: u64) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let at = if i % 2 == 0 { T0 } else { T0 + 10_000 };
            on_topic(
                &anonymized(P1, "driving_statistics", drive(at, i as f32)),
                &record_id(i),
            )
        })
        .collect()
}

fn offset_range(key: &str) -> (i64, i64) {
    let stem = key.rsplit_once('/').unwrap().1.trim_end_matches(".parquet");
    let mut parts = stem.rsplitn(3, '-');
    let last = parts.next().unwrap().parse().unwrap();
    let first = parts.next().unwrap().parse().unwrap();
    (first, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_after_a_crash_overwrites_the_same_keys_without_duplicating_rows() {
    let s = Setup::new();
    let topic = "one.partition";
    s.send(topic, replay_records(25)).await;
    // The first run writes the manifest and one file of its first batch, then "crashes".
    s.faults().block_after = Some(2);
    let crashed = s.start(
        ArchiverConfig {
            topic: topic.into(),
            max_batch_records: 10,
            ..config()
        },
        false,
    );
    until("two writes done and one hanging", || {
        events(&s.log).len() == 2 && s.faults().blocked > 0
    })
    .await;
    crashed.handle.abort();
    assert!(crashed.handle.await.unwrap_err().is_cancelled());
    assert!(committed(&s.log).is_empty());
    let first_attempt = s.objects("dataset=telemetry/").await;
    assert_eq!(first_attempt.len(), 1, "{first_attempt:?}");
    assert_eq!(offset_range(&first_attempt[0]), (0, 9));

    // The restart cuts batches of 7 records, but replays the first one as 0..=9.
    *s.faults() = Faults::default();
    let mut more = replay_records(31);
    s.send(topic, more.split_off(25)).await;
    let restarted = s.start(
        ArchiverConfig {
            topic: topic.into(),
            max_batch_records: 7,
            ..config()
        },
        false,
    );
    until("every record committed", || {
        committed(&s.log).get(&0) == Some(&30)
    })
    .await;
    restarted.stop().await;

    let keys = s.objects("dataset=telemetry/").await;
    assert!(
        keys.contains(&first_attempt[0]),
        "overwritten under the same key"
    );
    assert!(events(&s.log).contains(&Event::Put(first_attempt[0].clone())));
    let mut ranges: Vec<(i64, i64)> = keys.iter().map(|k| offset_range(k)).collect();
    ranges.sort();
    ranges.dedup();
    assert_eq!(ranges, [(0, 9), (10, 16), (17, 23), (24, 30)]);
    let batches = s.rows("dataset=telemetry/").await;
    assert_eq!(total_rows(&batches), 31 * DRIVE_ROWS, "no row twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_store_stops_consumption_at_the_memory_budget() {
    let s = Setup::new();
    s.faults().block_after = Some(0);
    let records: Vec<Record> = (0..300)
        .map(|i| {
            on_topic(
                &anonymized(P1, "driving_statistics", drive(T0, i as f32)),
                &record_id(i),
            )
        })
        .collect();
    let record_bytes = records[0].payload.len();
    let last = s.send(topics::ANONYMIZED, records).await;
    let budget = 40 * record_bytes;
    let running = s.start(
        ArchiverConfig {
            max_batch_bytes: 10 * record_bytes,
            max_buffered_bytes: budget,
            ..config()
        },
        false,
    );
    // Wait for consumption to stop: no record for 50 polls in a row.
    let mut still = 0;
    let mut seen = 0;
    until("consumption to pause", || {
        let now = running.received.load(Ordering::SeqCst);
        still = if now == seen { still + 1 } else { 0 };
        seen = now;
        still >= 50
    })
    .await;
    let consumed = running.received_bytes.load(Ordering::SeqCst);
    assert!(seen < 300, "consumed everything into memory");
    // Each record holds at least its payload; reading stops once the budget is used and
    // an eighth of it is read ahead (each limit may be passed by the record that reaches
    // it).
    let bound = budget + budget / 8 + 2 * record_bytes;
    assert!(consumed <= bound, "{consumed} > {bound}");

    s.faults().block_after = None;
    until("every record committed", || committed(&s.log) == last).await;
    running.stop().await;
    assert_eq!(
        total_rows(&s.rows("dataset=telemetry/").await),
        300 * DRIVE_ROWS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_handed_back_is_rebuilt_without_duplicates() {
    let s = Setup::new();
    let pseudonym = |i: u64| format!("{:032x}", i % 5 + 1);
    let mut partition_of = HashMap::new();
    for i in 0..30 {
        let record = on_topic(
            &anonymized(&pseudonym(i), "driving_statistics", drive(T0, i as f32)),
            &record_id(i),
        );
        let at = s.bus.send(topics::ANONYMIZED, record).await.unwrap();
        partition_of.insert(pseudonym(i), at.partition);
    }
    let on_one = (0..30)
        .filter(|i| partition_of[&pseudonym(*i)] == 1)
        .count();
    assert!(on_one > 0, "the test needs records on partition 1");
    let running = s.start(config(), false);
    running.until_received(30).await;
    // A second member takes partition 1 (p % 2 of two members). A record the archiver
    // keeps, read after that, shows it saw the reassignment.
    let other = s
        .bus
        .consumer(&config().group, &[topics::ANONYMIZED])
        .unwrap();
    let (kept, _) = partition_of.iter().find(|(_, p)| **p != 1).unwrap();
    let record = on_topic(
        &anonymized(kept, "driving_statistics", drive(T0, 99.0)),
        &record_id(99),
    );
    s.bus.send(topics::ANONYMIZED, record).await.unwrap();
    running.until_received(31).await;
    // It leaves: partition 1 comes back rewound to the committed offset (nothing yet).
    drop(other);
    until("partition 1 read again", || {
        running.received.load(Ordering::SeqCst) >= 31 + on_one
    })
    .await;
    running.stop().await;
    assert_eq!(
        total_rows(&s.rows("dataset=telemetry/").await),
        31 * DRIVE_ROWS
    );
    let commits = committed(&s.log);
    assert!(commits.contains_key(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_events_are_archived_as_they_were() {
    let s = Setup::new();
    let event = |key: &str, payload: &'static [u8], at: Option<i64>| Record {
        key: key.to_owned().into_bytes().into(),
        payload: Bytes::from_static(payload),
        headers: vec![],
        timestamp_ms: at,
    };
    let last = s
        .send(
            topics::CONSENT,
            vec![
                event("LSVAU2180N2183294", b"grant", Some(T0)),
                event("LSVAU2180N2183294", b"withdraw", Some(T0 + 3_600_000)),
                event("LFV2A21K6A3043071", b"", None),
            ],
        )
        .await;
    let running = s.start(config(), true);
    running.until_received(3).await;
    running.stop().await;
    assert_eq!(committed(&s.log), last);
    let keys = s.objects("consent/events/").await;
    assert!(
        keys.iter()
            .any(|k| k.starts_with("consent/events/date=2026-11-03/hour=07/inland.consent.v1-p"))
    );
    assert!(
        keys.iter()
            .any(|k| k.starts_with("consent/events/date=2026-11-03/hour=08/"))
    );
    assert!(
        keys.iter()
            .any(|k| k.starts_with("consent/events/date=1970-01-01/hour=00/"))
    );
    let batches = s.rows("consent/events/").await;
    assert_eq!(batches[0].schema(), Dataset::ConsentEvents.schema());
    let mut payloads = BTreeMap::new();
    for b in &batches {
        let payload = b.column_by_name("payload").unwrap().as_binary::<i32>();
        let at = b
            .column_by_name("timestamp")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>();
        for i in 0..b.num_rows() {
            payloads.insert(
                payload.value(i).to_vec(),
                at.is_valid(i).then(|| at.value(i)),
            );
        }
    }
    assert_eq!(payloads[&b"withdraw".to_vec()], Some(T0 + 3_600_000));
    assert_eq!(payloads[&Vec::new()], None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_removes_exactly_that_pseudonyms_rows_and_frames_and_is_idempotent() {
    let s = Setup::new();
    let mut records = Vec::new();
    for i in 0..6 {
        records.push(on_topic(
            &anonymized(P1, "driving_statistics", drive(T0, i as f32)),
            &record_id(i),
        ));
        records.push(on_topic(
            &anonymized(P2, "driving_statistics", drive(T0, i as f32)),
            &record_id(100 + i),
        ));
    }
    records.push(on_topic(
        &anonymized(P1, "road_imagery", frame(T0, 1)),
        &record_id(50),
    ));
    records.push(on_topic(
        &anonymized(P1, "road_imagery", frame(T0 + 3_600_000, 2)),
        &record_id(51),
    ));
    records.push(on_topic(
        &anonymized(P2, "road_imagery", frame(T0, 3)),
        &record_id(150),
    ));
    s.send(topics::ANONYMIZED, records).await;
    let running = s.start(config(), false);
    running.until_received(15).await;
    running.stop().await;
    let telemetry_before = s.rows("dataset=telemetry/").await;
    let p2_rows = strings(&telemetry_before, "pseudonym")
        .iter()
        .filter(|p| *p == P2)
        .count();
    let mut holding_p1 = 0;
    for prefix in ["dataset=telemetry/", "dataset=frame_index/"] {
        for key in s.objects(prefix).await {
            if strings(&s.rows(&key).await, "pseudonym")
                .iter()
                .any(|p| p == P1)
            {
                holding_p1 += 1;
            }
        }
    }

    let report = erase(s.store.as_ref(), &[P1.to_owned()]).await.unwrap();
    assert_eq!(report.rows_removed as usize, 6 * DRIVE_ROWS + 2);
    assert_eq!(report.frames_deleted, 2);
    assert_eq!(report.files_rewritten + report.files_deleted, holding_p1);
    let telemetry = s.rows("dataset=telemetry/").await;
    let pseudonyms = strings(&telemetry, "pseudonym");
    assert!(!pseudonyms.iter().any(|p| p == P1));
    assert_eq!(pseudonyms.len(), p2_rows);
    let index = s.rows("dataset=frame_index/").await;
    assert_eq!(strings(&index, "pseudonym"), [P2]);
    let jpegs = s.objects("dataset=frames/").await;
    assert_eq!(jpegs, strings(&index, "object_key"));
    // The frame of hour 08 was P1's only row there: its index file is gone.
    assert!(
        s.objects("dataset=frame_index/date=2026-11-03/hour=08/")
            .await
            .is_empty()
    );
    assert!(report.files_deleted >= 1);

    let again = erase(s.store.as_ref(), &[P1.to_owned()]).await.unwrap();
    assert_eq!(
        (
            again.rows_removed,
            again.files_rewritten,
            again.files_deleted,
            again.frames_deleted
        ),
        (0, 0, 0, 0)
    );
    assert!(again.files_scanned > 0);

    let requested = std::time::UNIX_EPOCH + Duration::from_millis(T0 as u64);
    let key = record_erasure(s.store.as_ref(), "req-42", requested, &[P1.into()], &report)
        .await
        .unwrap();
    assert_eq!(key, "consent/erasure/req-42.json");
    let stored: crate::ErasureRecord =
        serde_json::from_slice(&s.store.get(&key).await.unwrap()).unwrap();
    assert_eq!(stored.requested_at, "2026-11-03T07:59:58.000Z");
    assert_eq!(stored.report, report);
    let err = record_erasure(s.store.as_ref(), "../x", requested, &[], &report)
        .await
        .unwrap_err();
    assert_eq!(err.code(), inland_core::ErrorCode::InvalidInput);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_request_covers_only_what_was_recorded_before_it() {
    let s = Setup::new();
    let hour = 3_600_000;
    let records = vec![
        on_topic(
            &anonymized(P1, "driving_statistics", drive(T0, 1.0)),
            &record_id(1),
        ),
        on_topic(
            &anonymized(P1, "driving_statistics", drive(T0 + hour, 2.0)),
            &record_id(2),
        ),
        on_topic(&anonymized(P1, "road_imagery", frame(T0, 1)), &record_id(3)),
        on_topic(
            &anonymized(P1, "road_imagery", frame(T0 + hour, 2)),
            &record_id(4),
        ),
    ];
    s.send(topics::ANONYMIZED, records).await;
    let running = s.start(config(), false);
    running.until_received(4).await;
    running.stop().await;

    let requested_at = std::time::UNIX_EPOCH + Duration::from_millis((T0 + hour / 2) as u64);
    let report =
        crate::erase_recorded_before(s.store.as_ref(), &[P1.to_owned()], Some(requested_at))
            .await
            .unwrap();
    assert_eq!(report.rows_removed as usize, DRIVE_ROWS + 1);
    assert_eq!(report.frames_deleted, 1);
    let left = s.rows("dataset=telemetry/").await;
    assert_eq!(
        total_rows(&left),
        DRIVE_ROWS,
        "recorded after the request: kept"
    );
    let times = left[0]
        .column_by_name("time")
        .unwrap()
        .as_primitive::<TimestampMillisecondType>();
    assert!(times.values().iter().all(|t| *t >= T0 + hour));
    assert_eq!(s.objects("dataset=frames/").await.len(), 1);
    assert_eq!(total_rows(&s.rows("dataset=frame_index/").await), 1);
}

/// The highest offset committed per partition of `topic`.
fn committed_on(log: &Log, topic: &str) -> HashMap<i32, i64> {
    let mut out = HashMap::new();
    for event in events(log) {
        if let Event::Commit(p) = event
            && p.topic == topic
        {
            let at = out.entry(p.partition).or_insert(p.offset);
            *at = (*at).max(p.offset);
        }
    }
    out
}

fn erasure_request(id: &str, at: i64, pseudonyms: &[&str]) -> Record {
    inland_consent::erasure_record(&ErasureRequest {
        request_id: id.into(),
        requested_at: Some(ts(at)),
        pseudonyms: pseudonyms
            .iter()
            .zip(1..)
            .map(|(p, key_epoch)| Pseudonym {
                key_epoch,
                value: (*p).to_owned(),
            })
            .collect(),
        consent_event_id: "ev-1".into(),
        categories: Vec::new(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_request_on_its_topic_is_carried_out_recorded_and_keeps_late_records_out() {
    let s = Setup::new();
    let minute = 60_000;
    let mut ends = s
        .send(
            topics::ANONYMIZED,
            vec![
                on_topic(
                    &anonymized(P1, "driving_statistics", drive(T0, 1.0)),
                    &record_id(1),
                ),
                on_topic(
                    &anonymized(P2, "driving_statistics", drive(T0, 2.0)),
                    &record_id(2),
                ),
                on_topic(&anonymized(P1, "road_imagery", frame(T0, 1)), &record_id(3)),
            ],
        )
        .await;
    let running = s.start_with(
        ArchiverConfig {
            max_batch_age: Duration::from_millis(100),
            ..config()
        },
        false,
        true,
    );
    until("the first records committed", || {
        committed_on(&s.log, topics::ANONYMIZED) == ends
    })
    .await;
    assert_eq!(s.objects("dataset=frames/").await.len(), 1);

    // Made ten minutes after T0, for P1 and its pseudonym of another key epoch; and a record
    // that is no request.
    let junk = Record {
        key: Bytes::from_static(b"er-2"),
        payload: Bytes::from_static(b"junk"),
        ..Record::default()
    };
    let requested = T0 + 10 * minute;
    let other_epoch = "00000000000000000000000000000003";
    let requests = s
        .send(
            topics::ERASURE,
            vec![erasure_request("er-1", requested, &[P1, other_epoch]), junk],
        )
        .await;
    let recorded = s._dir.path().join("consent/erasure/er-1.json");
    until("the erasure recorded", || recorded.exists()).await;

    // Records held up upstream: P1's from before the request stay out; P1's from after it
    // and P2's are archived.
    s.archive(
        "the late records committed",
        &mut ends,
        vec![
            on_topic(
                &anonymized(P1, "driving_statistics", drive(T0 + minute, 3.0)),
                &record_id(4),
            ),
            on_topic(
                &anonymized(P1, "driving_statistics", drive(T0 + 20 * minute, 4.0)),
                &record_id(5),
            ),
            on_topic(
                &anonymized(P2, "driving_statistics", drive(T0 + minute, 5.0)),
                &record_id(6),
            ),
            on_topic(
                &anonymized(P1, "road_imagery", frame(T0 + minute, 2)),
                &record_id(7),
            ),
        ],
    )
    .await;
    running.stop().await;

    // Restarted, the archiver relearns the request from its completion record: a record
    // of P1 from before it, held up even longer, stays out too.
    let running = s.start_with(
        ArchiverConfig {
            max_batch_age: Duration::from_millis(100),
            ..config()
        },
        false,
        true,
    );
    s.archive(
        "the record after the restart committed",
        &mut ends,
        vec![on_topic(
            &anonymized(P1, "driving_statistics", drive(T0 + 2 * minute, 6.0)),
            &record_id(8),
        )],
    )
    .await;
    running.stop().await;

    let telemetry = s.rows("dataset=telemetry/").await;
    let times = telemetry.iter().flat_map(|b| {
        let t = b
            .column_by_name("time")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>()
            .clone();
        (0..t.len()).map(move |i| t.value(i))
    });
    let rows: Vec<(String, i64)> = strings(&telemetry, "pseudonym")
        .into_iter()
        .zip(times)
        .collect();
    assert_eq!(rows.iter().filter(|(p, _)| p == P2).count(), 2 * DRIVE_ROWS);
    let p1: Vec<i64> = rows
        .iter()
        .filter(|(p, _)| p == P1)
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(
        p1.len(),
        DRIVE_ROWS,
        "only P1's rows from after the request"
    );
    assert!(p1.iter().all(|t| *t >= requested));
    assert!(s.objects("dataset=frames/").await.is_empty());
    assert_eq!(total_rows(&s.rows("dataset=frame_index/").await), 0);

    let record: crate::ErasureRecord =
        serde_json::from_slice(&std::fs::read(&recorded).unwrap()).unwrap();
    assert_eq!(record.request_id, "er-1");
    assert_eq!(record.requested_at, "2026-11-03T08:09:58.000Z");
    assert_eq!(record.pseudonyms, [P1, other_epoch]);
    assert_eq!(record.report.rows_removed as usize, DRIVE_ROWS + 1);
    assert_eq!(record.report.frames_deleted, 1);
    assert!(record.completed_at > record.requested_at);

    let dead = s.dead_letters(1).await;
    assert_eq!(dead[0].payload, Bytes::from_static(b"junk"));
    let reason = dead[0].header(DEAD_LETTER_REASON).unwrap();
    assert!(
        String::from_utf8_lossy(reason).contains("ErasureRequest"),
        "{reason:?}"
    );
    assert_eq!(committed_on(&s.log, topics::ERASURE), requests);
}

#[test]
fn erased_records_delete_what_a_first_attempt_of_their_batch_may_have_written() {
    use crate::dedup::RecentIds;
    use crate::keys::{BatchName, frame_key, hour_of};
    use crate::kinds::{Added, Archive, ArchiveTables, Kind};
    use crate::requests::Erasures;

    let hour = 3_600_000;
    let erasures = Erasures::default();
    erasures.register(P1, T0 + 2 * hour, T0 + 2 * hour);
    let (mut tables, mut recent) = (ArchiveTables::default(), RecentIds::new(10));
    let records = [
        anonymized(P1, "driving_statistics", drive(T0, 1.0)),
        anonymized(P1, "driving_statistics", drive(T0 + hour, 2.0)),
        anonymized(P1, "road_imagery", frame(T0 + hour, 1)),
        anonymized(P2, "driving_statistics", drive(T0, 3.0)),
    ];
    let mut outcomes = Vec::new();
    for (offset, record) in records.iter().enumerate() {
        let consumed = Consumed {
            topic: "t".into(),
            partition: 0,
            offset: offset as i64,
            record: on_topic(record, &record_id(offset as u64)),
        };
        let prepared = Archive::prepare(&consumed);
        let added = Archive::add(
            &mut tables,
            prepared,
            &consumed,
            offset as u32,
            &mut recent,
            &erasures,
        );
        outcomes.push(matches!(added, Added::Erased));
    }
    assert_eq!(outcomes, [true, true, true, false]);
    let name = BatchName {
        topic: "t".into(),
        partition: 0,
        first: 0,
        last: 3,
    };
    // Hour 07 keeps P2's telemetry rows: its file is written, not deleted. Hour 08 had only
    // P1's: its telemetry and frame index files go, and so does the frame.
    let at = hour_of(T0 + hour);
    assert_eq!(
        Archive::take_erased(&mut tables, &name),
        [
            frame_key("t", 0, 2, at),
            name.parquet_key(Dataset::Telemetry, at),
            name.parquet_key(Dataset::FrameIndex, at),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_stuck_on_the_manifest_commits_nothing_after_the_record_left_out() {
    let s = Setup::new();
    let topic = "one.partition";
    s.send(topic, replay_records(5)).await;
    // The first record waits for its partition's manifest, which never comes.
    s.faults().hang_gets = true;
    let stuck = s.start(
        ArchiverConfig {
            topic: topic.into(),
            drain_timeout: Duration::from_millis(200),
            ..config()
        },
        false,
    );
    stuck.until_received(5).await;
    stuck.stop().await;
    assert!(
        committed(&s.log).is_empty(),
        "a record left out: nothing after it may be committed"
    );
    assert!(s.objects("dataset=telemetry/").await.is_empty());

    // Once the store answers, the restart archives all of them.
    s.faults().hang_gets = false;
    let restarted = s.start(
        ArchiverConfig {
            topic: topic.into(),
            ..config()
        },
        false,
    );
    restarted.until_received(5).await;
    restarted.stop().await;
    assert_eq!(committed(&s.log).get(&0), Some(&4));
    assert_eq!(
        total_rows(&s.rows("dataset=telemetry/").await),
        5 * DRIVE_ROWS
    );
}
