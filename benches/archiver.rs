//! The archiver into a real Garage S3 server, side by side with raw aws-sdk-s3 PUTs of the
//! same bytes (the ceiling), and its memory with a slow store.
//!
//! Two workloads, each produced once onto an in-process bus (6 partitions) so the input
//! costs nothing on either side:
//! - telemetry: BENCH_RECORDS (default 200 000) anonymized records as the anonymizer
//!   writes them for driving statistics (one second of 10 Hz speed and coarse position
//!   plus the state of charge: 31 samples; 1000 vehicles);
//! - frames: BENCH_FRAMES (default 1 000; 0 skips frames and the slow store) anonymized
//!   frames of 100 KiB.
//!
//! For each, the archiver runs from the first record until every record is written and
//! committed (decode and check each record, build the rows, encode zstd Parquet, put the
//! manifest, files and JPEGs, commit; the end of the input shuts it down and its drain
//! writes the last batches). Then, with the same SDK client and the same concurrency (16)
//! and nothing else, the ceiling: the input's bytes (the record payloads back to back) PUT
//! as 8 MiB objects. The ratio is raw PUT time / archiver time for the same input bytes
//! (target ≥ 0.80); BENCH_ROUNDS (default 3) rounds alternate the two, each archiver run
//! with a consumer group of its own, and the median ratio is the figure. Also printed:
//! the time to PUT just the objects the archiver wrote; zstd Parquet shrinks telemetry a
//! hundredfold, so that is far faster, and the gap is the archiver's CPU (decode, check,
//! encode).
//!
//! Slow store: the archiver reads the frames input again (objects as large as the input,
//! so the store is the bottleneck) into a local store throttled to BENCH_SLOW_MBPS
//! (default 2) MB/s, with `max_buffered_bytes` = 16 MiB, for 15 s; printed are the input
//! waiting, what was consumed and written, the peak of the buffered-bytes gauge and the
//! peak growth of the process's resident memory (the bus holding the input is resident
//! before it starts).
//!
//! Needs `scripts/garage.sh start` and `export $(scripts/garage.sh env)`; the bench
//! deletes what it wrote.
//!
//! `cargo bench -p inland-benches --bench archiver`

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use futures::StreamExt;
use inland_archiver::{Archiver, ArchiverConfig, Inputs};
use inland_benches::median;
use inland_proto::ingest::v1::{Sample, sample};
use inland_proto::pipeline::v1::anonymized_record::Payload;
use inland_proto::pipeline::v1::{AnonymizedFrame, AnonymizedTelemetry, CoarsePosition};
use inland_stage::{
    Consumed, Consumer, MemoryBus, MemoryBusConfig, MemoryConsumer, Position, Producer, Record,
    TopicSpec,
};
use inland_store::{LocalStore, ObjectMeta, ObjectStore, S3Config, S3Store};
use inland_tests::archive::{self, ts};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

/// The same allocator as the `inland` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PARTITIONS: i32 = 6;
const VEHICLES: u64 = 1_000;
const CONCURRENCY: usize = 16;
const MB: f64 = 1e6;
/// Object size of the raw PUTs of the input.
const RAW_OBJECT: usize = 8 << 20;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: export $(scripts/garage.sh env)"))
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Record `n` of the workload, as the anonymizer puts it on its topic: 1000 vehicles'
/// pseudonyms, record id `n`.
fn on_topic(n: u64, payload: Payload, purpose: &str, at: i64) -> Record {
    let pseudonym = format!(
        "{:032x}",
        (n % VEHICLES).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    );
    archive::on_topic(pseudonym, purpose, n, payload, at)
}

/// One second of vehicle `n` as the anonymizer writes it for driving statistics: times
/// floored to the second, positions snapped to a 1 km grid.
fn telemetry(n: u64, second: i64) -> Record {
    let at = second * 1000;
    let (lat, lon) = (
        30.0045 + (n % 97) as f64 * 0.009,
        110.0052 + (n % 89) as f64 * 0.0105,
    );
    let mut samples = Vec::with_capacity(31);
    for i in 0..10 {
        let time = Some(ts(at));
        samples.push(Sample {
            path: "Vehicle.Speed".into(),
            time,
            value: Some(sample::Value::FloatValue(40.0 + i as f32)),
        });
        for (path, v) in [
            (inland_core::vss::LATITUDE, lat),
            (inland_core::vss::LONGITUDE, lon),
        ] {
            samples.push(Sample {
                path: path.into(),
                time,
                value: Some(sample::Value::DoubleValue(v)),
            });
        }
    }
    samples.push(Sample {
        path: "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current".into(),
        time: None,
        value: Some(sample::Value::FloatValue(80.0)),
    });
    on_topic(
        n,
        Payload::Telemetry(AnonymizedTelemetry { samples }),
        "driving_statistics",
        at,
    )
}

/// A 100 KiB JPEG as far as the archiver looks: JFIF header, scan data, end.
fn frame(n: u64, second: i64) -> Record {
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16];
    jpeg.extend(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    jpeg.extend([0xFF, 0xDA, 0, 2]);
    let mut x = n.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
    while jpeg.len() < 100 * 1024 - 2 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        jpeg.push((x & 0x7f) as u8);
    }
    jpeg.extend([0xFF, 0xD9]);
    let payload = Payload::Frame(AnonymizedFrame {
        camera_id: "front".into(),
        captured_at: Some(ts(second * 1000)),
        jpeg: jpeg.into(),
        position: Some(CoarsePosition {
            latitude: 39.9045,
            longitude: 116.4052,
            grid_m: 1000,
        }),
        faces: 1,
        plates: 0,
    });
    on_topic(n, payload, "road_imagery", second * 1000)
}

/// Counts what it delivers, cancels `consumed` once it delivered `records`, and keeps
/// what was committed.
struct Tracked {
    inner: MemoryConsumer,
    records: usize,
    received: AtomicUsize,
    received_bytes: AtomicUsize,
    consumed: CancellationToken,
    committed: Mutex<HashMap<i32, i64>>,
}

#[async_trait::async_trait]
impl Consumer for Tracked {
    async fn recv(&self) -> Result<Consumed, inland_stage::Error> {
        let consumed = self.inner.recv().await?;
        self.received_bytes
            .fetch_add(consumed.record.payload.len(), Ordering::Relaxed);
        if self.received.fetch_add(1, Ordering::Relaxed) + 1 == self.records {
            self.consumed.cancel();
        }
        Ok(consumed)
    }

    async fn commit(&self, positions: &[Position]) -> Result<(), inland_stage::Error> {
        self.inner.commit(positions).await?;
        let mut committed = self.committed.lock().unwrap();
        for p in positions {
            committed.insert(p.partition, p.offset);
        }
        Ok(())
    }
}

fn config(topic: &str) -> ArchiverConfig {
    ArchiverConfig {
        topic: topic.into(),
        group: format!("{topic}-archiver"),
        max_batch_bytes: 32 << 20,
        max_buffered_bytes: 512 << 20,
        max_concurrent_puts: CONCURRENCY,
        ..ArchiverConfig::default()
    }
}

/// The records of one workload on their own topic.
struct Input {
    topic: String,
    records: usize,
    bytes: usize,
    ends: HashMap<i32, i64>,
    payloads: Vec<Bytes>,
}

async fn produce(bus: &MemoryBus, topic: &str, records: impl Iterator<Item = Record>) -> Input {
    bus.ensure_topics(&[TopicSpec {
        name: topic.into(),
        partitions: PARTITIONS,
        retention_ms: 3_600_000,
        compacted: false,
    }])
    .unwrap();
    let (mut bytes, mut ends, mut payloads) = (0, HashMap::new(), Vec::new());
    for record in records {
        bytes += record.payload.len();
        payloads.push(record.payload.clone());
        let at = bus.send(topic, record).await.unwrap();
        ends.insert(at.partition, at.offset);
    }
    Input {
        topic: topic.into(),
        records: payloads.len(),
        bytes,
        ends,
        payloads,
    }
}

fn tracked(bus: &MemoryBus, input: &Input, group: &str) -> Arc<Tracked> {
    Arc::new(Tracked {
        inner: bus.consumer(group, &[&input.topic]).unwrap(),
        records: input.records,
        received: AtomicUsize::new(0),
        received_bytes: AtomicUsize::new(0),
        consumed: CancellationToken::new(),
        committed: Mutex::default(),
    })
}

/// The archiver reads only the workload's topic.
fn inputs(consumer: &Arc<Tracked>) -> Inputs {
    Inputs {
        anonymized: consumer.clone(),
        consent: None,
        erasure: None,
    }
}

/// The run's objects: every key naming the topic.
async fn written(store: &dyn ObjectStore, topic: &str) -> Vec<ObjectMeta> {
    let mut out = Vec::new();
    for root in [
        "dataset=telemetry/",
        "dataset=frame_index/",
        "dataset=frames/",
    ] {
        let mut listed = store.list(root).await.unwrap();
        listed.retain(|o| o.key.contains(&format!("/{topic}-p")));
        out.extend(listed);
    }
    out
}

/// PUTs `objects` with the bare SDK client, `CONCURRENCY` at once; returns the time taken.
async fn raw_puts(garage: &S3Store, objects: &[(String, Bytes)]) -> Duration {
    let client = garage.client().clone();
    let bucket = env("INLAND_S3_BUCKET");
    let started = Instant::now();
    futures::stream::iter(objects)
        .map(|(key, body)| {
            let (client, bucket) = (client.clone(), bucket.clone());
            async move {
                client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await
                    .expect("raw PUT")
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    started.elapsed()
}

async fn compare(
    bus: &MemoryBus,
    garage: &Arc<S3Store>,
    name: &str,
    input: &Input,
    round: usize,
) -> (f64, f64) {
    // The archiver, from the first record read until every record is written and
    // committed (the end of the input shuts it down; its drain writes the last batches).
    let consumer = tracked(bus, input, &format!("{}-archiver-{round}", input.topic));
    let store: Arc<dyn ObjectStore> = garage.clone();
    let archiver = Archiver::new(store, Arc::new(bus.clone()), config(&input.topic)).unwrap();
    let (started, cpu) = (Instant::now(), cpu_seconds());
    archiver
        .run(inputs(&consumer), consumer.consumed.clone())
        .await
        .expect("the archiver runs");
    let archived = started.elapsed();
    let cpu = cpu_seconds() - cpu;
    assert_eq!(
        *consumer.committed.lock().unwrap(),
        input.ends,
        "every partition committed to its end"
    );
    let objects = written(garage.as_ref(), &input.topic).await;
    let manifests = garage
        .list(&format!("_archiver/manifests/{}/", input.topic))
        .await
        .unwrap();
    let mut outputs = Vec::with_capacity(objects.len() + manifests.len());
    for o in objects.iter().chain(&manifests) {
        outputs.push((
            format!("bench-raw/out/{}", o.key),
            garage.get(&o.key).await.unwrap(),
        ));
    }
    let out_bytes: usize = outputs.iter().map(|(_, b)| b.len()).sum();

    // Ceiling 1: the input's bytes (the record payloads back to back), PUT as objects of
    // RAW_OBJECT bytes. Ceiling 2: the very objects the archiver wrote.
    let mut inputs = Vec::new();
    let mut chunk = Vec::with_capacity(RAW_OBJECT);
    for record in &input.payloads {
        chunk.extend_from_slice(record);
        if chunk.len() >= RAW_OBJECT {
            inputs.push((
                format!("bench-raw/in/{}/{}", input.topic, inputs.len()),
                Bytes::from(std::mem::take(&mut chunk)),
            ));
        }
    }
    if !chunk.is_empty() {
        inputs.push((
            format!("bench-raw/in/{}/{}", input.topic, inputs.len()),
            Bytes::from(chunk),
        ));
    }
    let raw_in = raw_puts(garage, &inputs).await;
    let raw_out = raw_puts(garage, &outputs).await;

    let secs = archived.as_secs_f64();
    let rate = |bytes: usize, d: Duration| bytes as f64 / MB / d.as_secs_f64();
    println!(
        "{name}, round {round}: {} records, {:.1} MB in, {:.1} MB out in {} objects",
        input.records,
        input.bytes as f64 / MB,
        out_bytes as f64 / MB,
        outputs.len()
    );
    println!(
        "  archiver               {:>9.0} records/s  {:>7.1} MB/s of input  ({archived:.2?}, \
         CPU {cpu:.2} s: {:.1} µs per record)",
        input.records as f64 / secs,
        rate(input.bytes, archived),
        cpu * 1e6 / input.records as f64,
    );
    println!(
        "  raw PUTs of the input                        {:>7.1} MB/s  ({raw_in:.2?}, {} objects of {} MiB, {CONCURRENCY} at once)",
        rate(input.bytes, raw_in),
        inputs.len(),
        RAW_OBJECT >> 20,
    );
    println!(
        "  raw PUTs of its output                       {:>7.1} MB/s  ({raw_out:.2?}, the archiver's {} objects, {CONCURRENCY} at once)",
        rate(out_bytes, raw_out),
        outputs.len(),
    );
    let ratios = (raw_in.as_secs_f64() / secs, raw_out.as_secs_f64() / secs);
    println!(
        "  ratio archiver / raw PUTs of the input bytes: {:.2} (target >= 0.80); \
         archiver / raw PUTs of the objects it wrote: {:.2}",
        ratios.0, ratios.1
    );

    for (key, _) in inputs.iter().chain(&outputs) {
        garage.delete(key).await.unwrap();
    }
    for o in objects.iter().chain(&manifests) {
        garage.delete(&o.key).await.unwrap();
    }
    ratios
}

/// The median and range of `values`.
fn spread(mut values: Vec<f64>) -> String {
    let median = median(&mut values);
    format!(
        "{median:.2} (rounds {:.2}-{:.2})",
        values[0],
        values[values.len() - 1]
    )
}

/// A store that takes in `bytes_per_second` over all puts together: a slow or distant
/// store (each put waits for its turn on the one link).
struct Throttled {
    inner: LocalStore,
    bytes_per_second: f64,
    busy_until: tokio::sync::Mutex<tokio::time::Instant>,
}

#[async_trait::async_trait]
impl ObjectStore for Throttled {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), inland_store::Error> {
        let takes = Duration::from_secs_f64(body.len() as f64 / self.bytes_per_second);
        let done = {
            let mut until = self.busy_until.lock().await;
            *until = (*until).max(tokio::time::Instant::now()) + takes;
            *until
        };
        tokio::time::sleep_until(done).await;
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

/// CPU time (user + system) of this process so far: on a shared machine, what a run cost
/// says more than how long it took.
fn cpu_seconds() -> f64 {
    inland_benches::cpu_seconds(std::process::id()).unwrap_or(0.0)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn buffered_bytes(metrics: &PrometheusHandle) -> f64 {
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("inland_archiver_buffered_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn slow_store(bus: &MemoryBus, input: &Input, metrics: &PrometheusHandle) {
    let mbps = env_or("BENCH_SLOW_MBPS", 2) as f64;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Throttled {
        inner: LocalStore::open(dir.path()).unwrap(),
        bytes_per_second: mbps * MB,
        busy_until: tokio::sync::Mutex::new(tokio::time::Instant::now()),
    });
    let budget = 16 << 20;
    let config = ArchiverConfig {
        max_batch_bytes: 4 << 20,
        max_buffered_bytes: budget,
        drain_timeout: Duration::from_secs(1),
        ..config(&input.topic)
    };
    let consumer = tracked(bus, input, "slow-store");
    let shutdown = CancellationToken::new();
    let archiver = Archiver::new(store.clone(), Arc::new(bus.clone()), config).unwrap();
    let baseline = rss_mib();
    let running = tokio::spawn(archiver.run(inputs(&consumer), shutdown.clone()));
    let (mut peak_rss, mut peak_buffered) = (baseline, 0.0f64);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak_rss = peak_rss.max(rss_mib());
        peak_buffered = peak_buffered.max(buffered_bytes(metrics));
    }
    let consumed = consumer.received_bytes.load(Ordering::Relaxed) as f64 / MB;
    let written: u64 = store.list("").await.unwrap().iter().map(|o| o.size).sum();
    shutdown.cancel();
    running.await.unwrap().unwrap();
    println!(
        "slow store ({mbps} MB/s, max_buffered_bytes {} MiB): {:.1} MB of frames waiting, \
         {consumed:.1} MB consumed and {:.1} MB written in 15 s",
        budget >> 20,
        input.bytes as f64 / MB,
        written as f64 / MB
    );
    println!(
        "  peak buffered {:.1} MiB (gauge), peak resident memory +{:.1} MiB over the {:.0} MiB before",
        peak_buffered / (1 << 20) as f64,
        peak_rss - baseline,
        baseline
    );
}

fn main() {
    let records = env_or("BENCH_RECORDS", 200_000) as u64;
    let frames = env_or("BENCH_FRAMES", 1_000) as u64;
    let rounds = env_or("BENCH_ROUNDS", 3).max(1);
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("install the Prometheus recorder");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let garage = Arc::new(
            S3Store::open(&S3Config {
                endpoint: env("INLAND_S3_ENDPOINT"),
                region: env("INLAND_S3_REGION"),
                bucket: env("INLAND_S3_BUCKET"),
                ..S3Config::default()
            })
            .await
            .expect("Garage: scripts/garage.sh start"),
        );
        let run = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let second = (run / 1000) as i64;
        let bus = MemoryBus::new(MemoryBusConfig {
            max_records: records as usize + frames as usize,
            max_bytes: 8 << 30,
        });
        bus.ensure_topics(&[TopicSpec {
            name: inland_core::topics::DEAD_LETTER.into(),
            partitions: 1,
            retention_ms: 3_600_000,
            compacted: false,
        }])
        .unwrap();
        let telemetry_input = produce(
            &bus,
            &format!("bench.telemetry.{run}"),
            (0..records).map(|n| telemetry(n, second - (n / VEHICLES) as i64)),
        )
        .await;
        let frames_input = produce(
            &bus,
            &format!("bench.frames.{run}"),
            (0..frames).map(|n| frame(n, second)),
        )
        .await;
        println!(
            "archiver bench into Garage at {}: {PARTITIONS} partitions, zstd level {}, batches up to {} MiB",
            env("INLAND_S3_ENDPOINT"),
            ArchiverConfig::default().zstd_level,
            config("").max_batch_bytes >> 20
        );
        for (name, input) in [("telemetry", &telemetry_input), ("frames", &frames_input)] {
            // The end of the input stops the archiver: an empty one never ends.
            if input.records == 0 {
                continue;
            }
            let (mut of_input, mut of_objects) = (Vec::new(), Vec::new());
            for round in 1..=rounds {
                let (input, objects) = compare(&bus, &garage, name, input, round).await;
                of_input.push(input);
                of_objects.push(objects);
            }
            println!(
                "{name}, median of {rounds} rounds: archiver / raw PUTs of the input bytes {}, \
                 of the objects it wrote {}",
                spread(of_input),
                spread(of_objects)
            );
        }
        if frames_input.records > 0 {
            slow_store(&bus, &frames_input, &metrics).await;
        }
    });
}
