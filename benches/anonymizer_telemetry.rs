//! The anonymizer stage on telemetry: records per second on one core through `run_stage`
//! with the anonymizer (decode, pseudonymize, cut to the purposes, coarsen, encode), side by
//! side with a pass-through stage on the same runtime, bus and settings (the ceiling:
//! consume, produce and commit only), and the ratio of the two (target ≥ 0.80).
//!
//! Both run on a current-thread Tokio runtime, so everything (bus, stage, commits) shares
//! one core, and over the in-process `MemoryBus`, which has Kafka's semantics without a
//! broker's cost or its noise on a shared machine: the ratio then measures what the
//! anonymizer adds to a stage's own work. The pass-through decodes and encodes nothing and
//! forwards the very bytes it consumed, the anonymizer decodes, filters and writes every
//! sample anew, so on this bus the ratio stays well below 0.80. With a broker, the same
//! rounds run Kafka to Kafka, the transport a deployment runs: there the consumer's and
//! producer's per-record cost is added to both sides, and CPU per record gives records/s
//! per core. A tight loop over `process` alone is printed too: the anonymizer's own cost
//! per record, without any transport.
//!
//! BENCH_RECORDS (default 100 000) telemetry records as the geofence forwards them (one
//! second of 10 Hz speed and position plus the state of charge: 31 samples; 1000
//! vehicles) are produced once. BENCH_ROUNDS (default 3) rounds each run the pass-through
//! and then the anonymizer (a fresh stage) over all of them, each with a consumer group of
//! its own, so both sides of a round see about the same load on a shared machine; the
//! median of the rounds' ratios is the figure. The tight loop reports its best of three
//! passes. The default purposes run (driving statistics with coarse location); a
//! Prometheus recorder is installed as in the `inland` binary.
//!
//! `cargo bench -p inland-benches --bench anonymizer_telemetry`; with
//! `INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092` (`scripts/kafka.sh start`) BENCH_ROUNDS more
//! rounds run the same records Kafka to Kafka.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use inland_anonymizer::{AnonymizerConfig, AnonymizerStage, FramesMode};
use inland_benches::{
    Counted, POSITIONS, PassThrough, cpu_seconds, delete_topics, drive_samples, median,
};
use inland_proto::ingest::v1::{Sample, TelemetryBatch, sample};
use inland_proto::pipeline::v1::{RAW_RECORD_SCHEMA, RawRecord, raw_record};
use inland_stage::{
    Consumed, Consumer, KafkaConfig, MemoryBus, MemoryBusConfig, Producer, Record, Stage,
    StageConfig, TopicSpec, run_stage,
};
use prost::Message;

const PARTITIONS: i32 = 6;
const VEHICLES: usize = 1_000;
const INPUT: &str = "bench.geofenced";
const OUTPUT: &str = "bench.out";
const DEAD_LETTER: &str = inland_core::topics::DEAD_LETTER;

fn topics(names: &[&str]) -> Vec<TopicSpec> {
    names
        .iter()
        .map(|name| TopicSpec {
            name: (*name).into(),
            partitions: PARTITIONS,
            retention_ms: 600_000,
            compacted: false,
        })
        .collect()
}

/// The same allocator as the `inland` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One second of vehicle `n` at 10 Hz, about 40 km/h north-east, as the geofence forwards it.
fn record(n: usize, now: SystemTime) -> Record {
    let (lat, lon) = (30.0 + (n % 97) as f64 * 0.1, 110.0 + (n % 89) as f64 * 0.1);
    let mut samples = drive_samples((lat, lon), now);
    samples.push(Sample {
        path: "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current".into(),
        time: None,
        value: Some(sample::Value::FloatValue(80.0)),
    });
    let vin = format!("LBENCH{:011}", n % VEHICLES);
    let raw = RawRecord {
        message_id: format!("bench-{n}"),
        vin: vin.clone(),
        recorded_at: Some(now.into()),
        received_at: Some(now.into()),
        // Consented for every default purpose, as the gateway names them.
        purposes: vec!["driving_statistics".into(), "road_imagery".into()],
        precise_location_purposes: vec![],
        payload: Some(raw_record::Payload::Telemetry(TelemetryBatch { samples })),
    };
    Record {
        key: vin.into(),
        payload: raw.encode_to_vec().into(),
        headers: vec![
            ("inland-message-id".into(), raw.message_id.into()),
            ("inland-schema".into(), RAW_RECORD_SCHEMA.into()),
            (
                "traceparent".into(),
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            ),
        ],
        timestamp_ms: None,
    }
}

/// Records/s and µs of this process's CPU per record of one side.
struct Side {
    per_second: f64,
    cpu_us: f64,
}

/// Runs `stage` over the whole input of `consumer` (a fresh group), sending to `outputs`;
/// returns when it has drained and committed after the last record.
async fn run(
    name: &str,
    records: usize,
    stage: impl Stage,
    consumer: impl Consumer,
    outputs: Arc<dyn Producer>,
) -> Side {
    let stage = Counted::new(stage, records);
    let (done, forwarded) = (stage.done.clone(), stage.forwarded.clone());
    let cpu_before = cpu_seconds(std::process::id()).unwrap_or(0.0);
    let started = Instant::now();
    run_stage(stage, consumer, outputs, StageConfig::new(name), done)
        .await
        .expect("the stage runs");
    let elapsed = started.elapsed();
    let cpu = cpu_seconds(std::process::id()).unwrap_or(0.0) - cpu_before;
    let side = Side {
        per_second: records as f64 / elapsed.as_secs_f64(),
        cpu_us: cpu * 1e6 / records as f64,
    };
    assert_eq!(
        forwarded.load(Ordering::Relaxed),
        records,
        "{name}: one output per record"
    );
    println!(
        "{name:<15} {:>9.0} records/s  ({records} records in {elapsed:.2?}, {:.2} µs CPU/record)",
        side.per_second, side.cpu_us
    );
    side
}

/// Runs `stage` on the `MemoryBus` holding the input.
async fn run_in_memory(bus: &MemoryBus, name: &str, records: usize, stage: impl Stage) -> Side {
    let consumer = bus.consumer(name, &[INPUT]).unwrap();
    // Outputs go to a bus of their own that nobody reads and that keeps only the newest
    // records, as a broker's producer frees what it delivered: a stage's steady state,
    // not a heap growing by every output.
    let outputs = MemoryBus::new(MemoryBusConfig {
        max_records: 1_000,
        max_bytes: 16 << 20,
    });
    outputs
        .ensure_topics(&topics(&[OUTPUT, DEAD_LETTER]))
        .unwrap();
    run(name, records, stage, consumer, Arc::new(outputs)).await
}

/// With `INLAND_KAFKA_BOOTSTRAP`: the same rounds over the real broker, Kafka to Kafka. The
/// records are produced once to a fresh topic; each side of a round reads all of them with
/// a group of its own and writes to a topic of its own, the side going first alternating
/// between rounds (the first reads of a topic are the slowest). rdkafka's threads and the
/// broker share the machine's cores with the runtime, so records/s depends on the broker's
/// load, and µs CPU/record counts this process's threads: its inverse is records/s per
/// core, the figure.
async fn over_kafka(
    bootstrap: String,
    inputs: &[Record],
    rounds: usize,
    anonymizer: impl Fn(&str) -> AnonymizerStage,
) {
    let kafka = KafkaConfig::new(bootstrap.clone());
    let run_id = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let topic = |side: &str| format!("inland.bench.anonymizer.{side}.{run_id}");
    let (input, passed, anonymized_topic) =
        (topic("geofenced"), topic("pass"), topic("anonymized"));
    let specs = topics(&[&input, &passed, &anonymized_topic]);
    kafka
        .ensure_topics(&specs)
        .await
        .expect("create bench topics");
    let producer = kafka.producer().expect("a producer");
    let mut deliveries = FuturesUnordered::new();
    for record in inputs {
        deliveries.push(
            producer
                .enqueue(&input, record.clone())
                .await
                .expect("queued"),
        );
        if deliveries.len() >= 10_000 {
            deliveries.next().await.expect("one").expect("pre-produced");
        }
    }
    while let Some(delivered) = deliveries.next().await {
        delivered.expect("pre-produced");
    }
    let records = inputs.len();
    let side = |name: &str| {
        let consumer = kafka
            .consumer(&format!("{input}.{name}"), &[&input])
            .unwrap();
        (consumer, Arc::new(kafka.producer().unwrap()))
    };
    let (mut per_second, mut per_core) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        // Index 0 the pass-through, 1 the anonymizer; odd rounds start with the pass-through.
        let mut sides: [Option<Side>; 2] = [None, None];
        for anonymizing in [round % 2 == 0, round % 2 == 1] {
            let name = match anonymizing {
                false => format!("kafka-pass-{round}"),
                true => format!("kafka-anonymizer-{round}"),
            };
            let (consumer, outputs) = side(&name);
            sides[usize::from(anonymizing)] = Some(if anonymizing {
                run(
                    &name,
                    records,
                    anonymizer(&anonymized_topic),
                    consumer,
                    outputs,
                )
                .await
            } else {
                let stage = PassThrough {
                    topic: passed.clone(),
                };
                run(&name, records, stage, consumer, outputs).await
            });
        }
        let [Some(ceiling), Some(anonymized)] = sides else {
            unreachable!("both sides ran")
        };
        let (rate, core) = (
            anonymized.per_second / ceiling.per_second,
            ceiling.cpu_us / anonymized.cpu_us,
        );
        println!("kafka round {round}: ratio {core:.2} per core ({rate:.2} of the records/s)");
        per_second.push(rate);
        per_core.push(core);
    }
    println!(
        "over Kafka, ratio anonymizer / pass-through, median of {rounds} rounds: {:.2} of the records/s per core (target >= 0.80), {:.2} of the records/s",
        median(&mut per_core),
        median(&mut per_second)
    );
    delete_topics(&bootstrap, &[&input, &passed, &anonymized_topic]).await;
}

/// `process` alone, in a loop on this thread: µs per record, the best of three passes.
async fn tight_loop(stage: &impl Stage, inputs: &[Consumed]) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let started = Instant::now();
        let mut outputs = 0;
        for input in inputs {
            outputs += stage.process(input).await.expect("processed").len();
        }
        assert_eq!(outputs, inputs.len());
        best = best.min(started.elapsed().as_secs_f64() * 1e6 / inputs.len() as f64);
    }
    best
}

fn main() {
    let records: usize = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("install the Prometheus recorder");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("keys.toml");
        inland_anonymizer::keys::generate(&key_file).unwrap();
        let anonymizer = |output_topic: &str| {
            AnonymizerStage::start(&AnonymizerConfig {
                key_file: Some(key_file.clone()),
                frames: FramesMode::Drop,
                output_topic: output_topic.into(),
                ..AnonymizerConfig::default()
            })
            .expect("the anonymizer starts")
        };

        let bus = MemoryBus::new(MemoryBusConfig {
            max_records: records,
            max_bytes: 4 << 30,
        });
        bus.ensure_topics(&topics(&[INPUT])).unwrap();
        let now = SystemTime::now();
        let inputs: Vec<Record> = (0..records).map(|n| record(n, now)).collect();
        println!(
            "anonymizer telemetry bench: {records} records x {} samples ({} bytes each), {PARTITIONS} partitions, one core (current-thread runtime)",
            3 * POSITIONS + 1,
            inputs[0].payload.len()
        );
        for input in &inputs {
            bus.send(INPUT, input.clone()).await.unwrap();
        }

        let mut ratios = Vec::with_capacity(rounds);
        for round in 1..=rounds {
            let pass = PassThrough { topic: OUTPUT.into() };
            let ceiling = run_in_memory(&bus, &format!("pass-through-{round}"), records, pass).await;
            let stage = anonymizer(OUTPUT);
            let anonymized = run_in_memory(&bus, &format!("anonymizer-{round}"), records, stage).await;
            let ratio = anonymized.per_second / ceiling.per_second;
            println!("round {round}: ratio {ratio:.2}");
            ratios.push(ratio);
        }
        println!(
            "ratio anonymizer / pass-through, median of {rounds} rounds: {:.2} (target >= 0.80)",
            median(&mut ratios)
        );

        if let Ok(bootstrap) = std::env::var("INLAND_KAFKA_BOOTSTRAP") {
            over_kafka(bootstrap, &inputs, rounds, anonymizer).await;
        }

        let consumed: Vec<Consumed> = inputs
            .into_iter()
            .take(20_000)
            .enumerate()
            .map(|(offset, record)| Consumed {
                topic: INPUT.into(),
                partition: 0,
                offset: offset as i64,
                record,
            })
            .collect();
        let stage = anonymizer(OUTPUT);
        println!(
            "process() alone, tight loop, best of 3: anonymizer {:.2} µs/record, pass-through {:.2} µs/record",
            tight_loop(&stage, &consumed).await,
            tight_loop(&PassThrough { topic: OUTPUT.into() }, &consumed).await
        );
    });
}
