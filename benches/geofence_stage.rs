//! The geofence stage end to end, Kafka to Kafka: records per second through `run_stage`
//! with the geofence, side by side in the same run with a pass-through stage on the same
//! runtime, transports and settings (the ceiling: consume, produce and commit only).
//!
//! BENCH_RECORDS (default 200 000) telemetry `RawRecord`s as the gateway writes them (one
//! second of 10 Hz speed and position: 30 samples, 10 positions) are produced once to a
//! fresh topic by a bare rdkafka producer. Each side then reads all of them with its own
//! consumer group into its own fresh topic, timed from the start of `run_stage` until it
//! has drained and committed after the last record. The geofence runs on 10 000 synthetic
//! zones over eastern China (as benches/geofence.rs); 80 % of the tracks start anywhere in
//! the region and 20 % near a zone, so some positions need the exact test and some records
//! are trimmed or dropped (the shares are printed). A Prometheus recorder is installed, as
//! in the `inland` binary, so the per-point metrics cost what they cost in production.
//!
//! Needs a broker: `scripts/kafka.sh start`, then
//! `INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo bench -p inland-benches --bench geofence_stage`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use inland_benches::{Counted, POSITIONS, PassThrough, cpu_seconds, delete_topics, drive_samples};
use inland_geofence::{GeofenceConfig, GeofenceStage, synth};
use inland_proto::ingest::v1::TelemetryBatch;
use inland_proto::pipeline::v1::{RAW_RECORD_SCHEMA, RawRecord, raw_record};
use inland_stage::{KafkaConfig, Stage, StageConfig, TopicSpec, run_stage};
use prost::Message;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

const PARTITIONS: i32 = 6;
const ZONES: usize = 10_000;
const VEHICLES: usize = 1_000;

/// The same allocator as the `inland` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One second of a vehicle at 10 Hz from `(lat, lon)`, about 40 km/h north-east.
fn record(n: usize, (lat, lon): (f64, f64), now: SystemTime) -> RawRecord {
    let samples = drive_samples((lat, lon), now);
    RawRecord {
        message_id: format!("bench-{n}"),
        vin: vin(n),
        recorded_at: Some(now.into()),
        received_at: Some(now.into()),
        purposes: vec!["driving_statistics".into()],
        precise_location_purposes: vec![],
        payload: Some(raw_record::Payload::Telemetry(TelemetryBatch { samples })),
    }
}

fn vin(n: usize) -> String {
    format!("LBENCH{:011}", n % VEHICLES)
}

/// Produces `starts.len()` records to `topic` with the gateway's producer settings.
async fn preproduce(kafka: &KafkaConfig, topic: &str, starts: &[(f64, f64)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("linger.ms", kafka.linger_ms.to_string())
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("bare producer");
    let now = SystemTime::now();
    let started = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut bytes = 0;
    for (n, &start) in starts.iter().enumerate() {
        let raw = record(n, start, now);
        let payload = raw.encode_to_vec();
        bytes += payload.len();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "inland-message-id",
                value: Some(raw.message_id.as_bytes()),
            })
            .insert(Header {
                key: "inland-schema",
                value: Some(RAW_RECORD_SCHEMA.as_bytes()),
            })
            .insert(Header {
                key: "traceparent",
                value: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".as_bytes()),
            });
        let (producer, topic) = (producer.clone(), topic.to_owned());
        in_flight.push(async move {
            let message = FutureRecord::to(&topic)
                .key(&raw.vin)
                .payload(&payload)
                .headers(headers);
            producer
                .send(message, Duration::from_secs(60))
                .await
                .expect("pre-produce");
        });
        if in_flight.len() >= 10_000 {
            in_flight.next().await;
        }
    }
    while in_flight.next().await.is_some() {}
    println!(
        "pre-produced {} records ({:.0} bytes each) in {:.1?}",
        starts.len(),
        bytes as f64 / starts.len() as f64,
        started.elapsed()
    );
}

struct Side {
    per_second: f64,
    elapsed: Duration,
    cpu_s: f64,
    forwarded: usize,
}

/// Runs `stage` over the whole input with a fresh group; returns when it has committed.
async fn run(
    kafka: &KafkaConfig,
    name: &str,
    input: &str,
    records: usize,
    stage: impl Stage,
) -> Side {
    let config = StageConfig {
        max_in_flight: env_or("BENCH_IN_FLIGHT", StageConfig::new(name).max_in_flight),
        ..StageConfig::new(name)
    };
    let stage = Counted::new(stage, records);
    let (done, forwarded) = (stage.done.clone(), stage.forwarded.clone());
    let consumer = kafka
        .consumer(&format!("{input}.{name}"), &[input])
        .unwrap();
    let producer = Arc::new(kafka.producer().unwrap());
    let cpu_before = cpu_seconds(std::process::id()).unwrap_or(0.0);
    let started = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(1800),
        run_stage(stage, consumer, producer, config, done),
    )
    .await
    .unwrap_or_else(|_| panic!("{name}: not done within 30 min"))
    .expect("the stage runs");
    let elapsed = started.elapsed();
    let side = Side {
        per_second: records as f64 / elapsed.as_secs_f64(),
        elapsed,
        cpu_s: cpu_seconds(std::process::id()).unwrap_or(0.0) - cpu_before,
        forwarded: forwarded.load(Ordering::Relaxed),
    };
    println!(
        "{name:<13} {:>9.0} records/s  ({} records in {:.1?}, {:.1} CPU-s in this process, {:.1} µs CPU/record)",
        side.per_second,
        records,
        side.elapsed,
        side.cpu_s,
        side.cpu_s * 1e6 / records as f64
    );
    side
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The value of the counter `name` with exactly `labels` in Prometheus text, or 0.
fn counter(text: &str, name: &str, labels: &str) -> f64 {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::main]
async fn main() {
    let bootstrap = std::env::var("INLAND_KAFKA_BOOTSTRAP")
        .expect("INLAND_KAFKA_BOOTSTRAP: run scripts/kafka.sh start");
    let kafka = KafkaConfig::new(bootstrap.clone());
    let records = env_or("BENCH_RECORDS", 200_000);
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("install the Prometheus recorder");

    let zones = synth::zones(ZONES, 42, synth::EASTERN_CHINA);
    let dir = tempfile::tempdir().unwrap();
    let zones_file = dir.path().join("zones.geojson");
    std::fs::write(&zones_file, &zones.geojson).unwrap();
    let near = records / 5;
    let mut starts = synth::points_near(&zones, near, 8);
    starts.extend(synth::points_uniform(
        synth::EASTERN_CHINA,
        records - near,
        7,
    ));
    // Interleave, so near-zone tracks are spread over the run and the partitions.
    let mut rng = synth::Rng::new(9);
    for i in (1..starts.len()).rev() {
        starts.swap(i, rng.below(i + 1));
    }

    let run_id = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let topic = |side: &str| format!("inland.bench.stage.{side}.{run_id}");
    let (input, passed, geofenced) = (topic("raw"), topic("pass"), topic("geofenced"));
    let specs: Vec<TopicSpec> = [&input, &passed, &geofenced]
        .iter()
        .map(|name| TopicSpec {
            name: (*name).clone(),
            partitions: PARTITIONS,
            retention_ms: 600_000,
            compacted: false,
        })
        .collect();
    kafka
        .ensure_topics(&specs)
        .await
        .expect("create bench topics");
    println!(
        "geofence stage bench: {records} records x {POSITIONS} positions ({} samples), {ZONES} zones, {PARTITIONS} partitions, {} cores shared with the broker",
        3 * POSITIONS,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    preproduce(&kafka, &input, &starts).await;

    let ceiling = run(
        &kafka,
        "pass-through",
        &input,
        records,
        PassThrough {
            topic: passed.clone(),
        },
    )
    .await;
    assert_eq!(
        ceiling.forwarded, records,
        "pass-through forwards everything"
    );
    let stage = GeofenceStage::start(&GeofenceConfig {
        zones_file: Some(zones_file),
        output_topic: geofenced.clone(),
        ..GeofenceConfig::default()
    })
    .expect("synthetic zones load");
    let geofence = run(&kafka, "geofence", &input, records, stage).await;

    let text = metrics.render();
    let points = |outcome| {
        counter(
            &text,
            inland_geofence::metrics::POINTS,
            &format!("outcome=\"{outcome}\""),
        )
    };
    let samples = |outcome| {
        counter(
            &text,
            inland_geofence::metrics::SAMPLES,
            &format!("outcome=\"{outcome}\""),
        )
    };
    let (checked, dropped_points) = (points("keep") + points("drop"), points("drop"));
    let dropped_samples = samples("dropped") / (samples("kept") + samples("dropped"));
    println!(
        "geofence: {:.2} % of records dropped whole, {:.2} % of samples and {:.2} % of {checked:.0} positions dropped",
        100.0 * (records - geofence.forwarded) as f64 / records as f64,
        100.0 * dropped_samples,
        100.0 * dropped_points / checked,
    );
    println!(
        "geofence / pass-through: {:.2} of the ceiling's records/s ({:.2}x its CPU per record); implied geofence checks {:.2} M positions/s",
        geofence.per_second / ceiling.per_second,
        geofence.cpu_s / ceiling.cpu_s,
        geofence.per_second * checked / records as f64 / 1e6
    );
    delete_topics(&bootstrap, &[&input, &passed, &geofenced]).await;
}
