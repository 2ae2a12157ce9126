//! The anonymizer stage against a real Apache Kafka broker: geofenced telemetry in,
//! anonymized records out keyed by pseudonym, no VIN bytes anywhere in the output topic,
//! frames dropped with `frames = "drop"`, a malformed record dead-lettered, and offsets
//! committed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use inland_anonymizer::{Anonymized, AnonymizerConfig, AnonymizerStage, FramesMode, Pseudonymizer};
use inland_core::{Vin, topics, vss};
use inland_proto::ingest::v1::{CameraFrame, Sample, TelemetryBatch, sample};
use inland_proto::pipeline::v1::{RawRecord, anonymized_record, raw_record};
use inland_stage::{
    Consumed, Consumer, KafkaConfig, Producer, Record, StageConfig, TopicSpec, run_stage,
};
use inland_tests::{CONSENT_PURPOSES, as_gateway_writes, assert_dead_lettered, kafka, random_vin};
use prost::Message;
use tokio_util::sync::CancellationToken;

const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn spec(name: &str, partitions: i32, retention: Duration) -> TopicSpec {
    TopicSpec {
        name: name.into(),
        partitions,
        retention_ms: retention.as_millis() as i64,
        compacted: false,
    }
}

/// A record as the geofence forwards it: keyed by VIN, with the gateway's headers.
fn geofenced(vin: &Vin, message_id: &str, payload: Vec<u8>) -> Record {
    as_gateway_writes(vin, message_id, payload, TRACE)
}

fn raw(vin: &Vin, message_id: &str, payload: raw_record::Payload) -> Record {
    let now = SystemTime::now();
    let raw = RawRecord {
        message_id: message_id.into(),
        vin: vin.as_str().into(),
        recorded_at: Some(now.into()),
        received_at: Some(now.into()),
        purposes: CONSENT_PURPOSES.map(str::to_owned).to_vec(),
        precise_location_purposes: vec![],
        payload: Some(payload),
    };
    geofenced(vin, message_id, raw.encode_to_vec())
}

/// Speed, a position, the VIN as a signal and a cabin temperature (not in the purpose).
fn drive(vin: &Vin, kmh: f32) -> raw_record::Payload {
    use sample::Value::*;
    // One instant: a longitude is snapped with the latitude of its instant.
    let now = SystemTime::now();
    let s = |path: &str, value| Sample {
        path: path.into(),
        time: Some(now.into()),
        value: Some(value),
    };
    raw_record::Payload::Telemetry(TelemetryBatch {
        samples: vec![
            s("Vehicle.Speed", FloatValue(kmh)),
            s(vss::LATITUDE, DoubleValue(39.99)),
            s(vss::LONGITUDE, DoubleValue(116.30)),
            s(
                "Vehicle.VehicleIdentification.VIN",
                StringValue(vin.as_str().into()),
            ),
            s("Vehicle.Cabin.HVAC.AmbientAirTemperature", FloatValue(21.0)),
        ],
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// An input and an output topic named after `run` with `partitions` each, and the
/// dead-letter topic.
async fn run_topics(kafka: &KafkaConfig, run: &str, partitions: i32) -> (String, String) {
    let (in_topic, out_topic) = (
        format!("inland.test.geofenced.{run}"),
        format!("inland.test.anonymized.{run}"),
    );
    kafka
        .ensure_topics(&[
            spec(&in_topic, partitions, Duration::from_secs(3600)),
            spec(&out_topic, partitions, Duration::from_secs(3600)),
            spec(topics::DEAD_LETTER, 6, Duration::from_secs(24 * 3600)),
        ])
        .await
        .expect("create test topics");
    (in_topic, out_topic)
}

/// Reads `consumer` until nothing arrived for `quiet`.
async fn drain(consumer: &impl Consumer, quiet: Duration) -> Vec<Consumed> {
    let mut got = Vec::new();
    while let Ok(next) = tokio::time::timeout(quiet, consumer.recv()).await {
        got.push(next.expect("consume"));
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Kafka: scripts/kafka.sh start, then INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo test -- --ignored"]
async fn kafka_anonymizes_keys_by_pseudonym_leaks_no_vin_and_dead_letters_the_malformed() {
    let kafka = kafka();
    let run = random_vin().as_str().to_lowercase();
    let (in_topic, out_topic) = run_topics(&kafka, &run, 3).await;

    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("keys.toml");
    inland_anonymizer::keys::generate(&key_file).unwrap();
    let stage = AnonymizerStage::start(&AnonymizerConfig {
        key_file: Some(key_file.clone()),
        frames: FramesMode::Drop,
        output_topic: out_topic.clone(),
        ..AnonymizerConfig::default()
    })
    .unwrap();

    let (vin, other) = (random_vin(), random_vin());
    let frame = raw_record::Payload::Frame(CameraFrame {
        camera_id: "front".into(),
        captured_at: Some(SystemTime::now().into()),
        jpeg: vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16].into(),
        position: None,
    });
    let inputs = [
        raw(&vin, "t-1", drive(&vin, 40.0)),
        raw(&vin, "t-2", drive(&vin, 41.0)),
        raw(&other, "t-3", drive(&other, 42.0)),
        geofenced(&vin, "bad", b"\x0a\xff\xff\xff".to_vec()),
        raw(&vin, "f-1", frame),
        raw(&vin, "t-4", drive(&vin, 43.0)),
    ];
    let producer = kafka.producer().unwrap();
    for input in &inputs {
        producer.send(&in_topic, input.clone()).await.unwrap();
    }

    let group = format!("anonymizer-{run}");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_stage(
        stage,
        kafka.consumer(&group, &[&in_topic]).unwrap(),
        Arc::new(kafka.producer().unwrap()),
        StageConfig {
            commit_interval: Duration::from_millis(100),
            ..StageConfig::new("anonymizer")
        },
        shutdown.clone(),
    ));

    assert_dead_lettered(
        &kafka,
        &run,
        &vin,
        &inputs[3].payload,
        "anonymizer",
        "not a inland.pipeline.v1.RawRecord",
    )
    .await;

    // The output topic is this test's alone: read all of it.
    let reader = kafka
        .consumer(&format!("reader-{run}"), &[&out_topic])
        .unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while out.len() < 4 && tokio::time::Instant::now() < deadline {
        out.extend(drain(&reader, Duration::from_secs(2)).await);
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();
    out.extend(drain(&reader, Duration::from_secs(3)).await);
    assert_eq!(
        out.len(),
        4,
        "one record per telemetry input, the frame dropped"
    );

    let keys = Pseudonymizer::load(&key_file).unwrap();
    let key = keys.key_at(&SystemTime::now().into()).unwrap();
    let (mine, theirs) = (key.pseudonym(&vin), key.pseudonym(&other));
    let mut speeds = Vec::new();
    for got in &out {
        let r = &got.record;
        for id in [&vin, &other] {
            assert!(!contains(&r.key, id.as_str().as_bytes()), "VIN in the key");
            assert!(
                !contains(&r.payload, id.as_str().as_bytes()),
                "VIN in the payload"
            );
            for (name, value) in &r.headers {
                assert!(!contains(value, id.as_str().as_bytes()), "VIN in {name}");
            }
        }
        assert!(r.header("inland-message-id").is_none());
        assert_eq!(r.header("traceparent").unwrap(), TRACE.as_bytes());
        let a = Anonymized::decode_from_topic(r).expect("an anonymized record");
        let Some(anonymized_record::Payload::Telemetry(t)) = &a.record().payload else {
            panic!("telemetry")
        };
        let paths: Vec<&str> = t.samples.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, ["Vehicle.Speed", vss::LATITUDE, vss::LONGITUDE]);
        let Some(sample::Value::FloatValue(kmh)) = t.samples[0].value else {
            panic!("speed")
        };
        let pseudonym = if kmh == 42.0 { &theirs } else { &mine };
        assert_eq!(
            r.key,
            pseudonym.as_bytes(),
            "keyed by the vehicle's pseudonym"
        );
        speeds.push(kmh);
    }
    speeds.sort_by(f32::total_cmp);
    assert_eq!(speeds, [40.0, 41.0, 42.0, 43.0]);

    // Everything was committed: the group's next member starts after the last input.
    let next = kafka.consumer(&group, &[&in_topic]).unwrap();
    producer
        .send(&in_topic, geofenced(&vin, "after", b"x".to_vec()))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(60), next.recv())
        .await
        .expect("the group's next member reads")
        .unwrap();
    assert_eq!(
        first.record.header("inland-message-id").unwrap(),
        "after".as_bytes(),
        "an input was not committed"
    );
}

#[tokio::test]
#[ignore = "needs Kafka and the models: scripts/kafka.sh start; export $(scripts/fetch-models.sh); INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo test -- --ignored"]
async fn kafka_carries_a_real_frame_with_its_face_destroyed() {
    let kafka = kafka();
    let run = random_vin().as_str().to_lowercase();
    let (in_topic, out_topic) = run_topics(&kafka, &run, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("keys.toml");
    inland_anonymizer::keys::generate(&key_file).unwrap();
    let stage = AnonymizerStage::start(&AnonymizerConfig {
        key_file: Some(key_file),
        output_topic: out_topic.clone(),
        ..AnonymizerConfig::default()
    })
    .expect("the anonymizer loads its models (export $(scripts/fetch-models.sh))");

    let dev = std::env::var_os("INLAND_ANON_DEV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/anon-dev")
        });
    let jpeg = std::fs::read(dev.join("face_astronaut.jpg")).expect("the dev set beside the repo");
    let vin = random_vin();
    let frame = raw_record::Payload::Frame(CameraFrame {
        camera_id: "front".into(),
        captured_at: Some(SystemTime::now().into()),
        jpeg: jpeg.clone().into(),
        position: Some(inland_proto::ingest::v1::Position {
            latitude: 39.91234,
            longitude: 116.41234,
            horizontal_accuracy_m: 3.0,
            fixed_at: Some(SystemTime::now().into()),
        }),
    });
    kafka
        .producer()
        .unwrap()
        .send(&in_topic, raw(&vin, "f-1", frame))
        .await
        .unwrap();

    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_stage(
        stage,
        kafka
            .consumer(&format!("anonymizer-{run}"), &[&in_topic])
            .unwrap(),
        Arc::new(kafka.producer().unwrap()),
        StageConfig::new("anonymizer"),
        shutdown.clone(),
    ));
    let reader = kafka
        .consumer(&format!("reader-{run}"), &[&out_topic])
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(120), reader.recv())
        .await
        .expect("the anonymized frame arrives")
        .unwrap();
    shutdown.cancel();
    task.await.unwrap().unwrap();

    assert!(!contains(&got.record.payload, vin.as_str().as_bytes()));
    let a = Anonymized::decode_from_topic(&got.record).expect("an anonymized record");
    let Some(anonymized_record::Payload::Frame(f)) = &a.record().payload else {
        panic!("a frame")
    };
    assert!(f.faces >= 1, "the astronaut's face was found");
    assert_ne!(
        f.jpeg.as_ref(),
        jpeg.as_slice(),
        "the pixels were rewritten"
    );
    assert!(f.jpeg.starts_with(&[0xFF, 0xD8]), "still a JPEG");
    let position = f.position.as_ref().expect("a coarse position");
    assert_ne!(position.latitude, 39.91234, "the position was coarsened");
}
