//! The geofence stage against a real Apache Kafka broker: records and frames inside the
//! sample zones are dropped, the rest reach the geofenced topic with their key and headers,
//! a malformed record is dead-lettered, and offsets are committed. And the embedded path:
//! gateway → MemoryBus raw topic → geofence stage → geofenced topic.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use inland_core::{Vin, topics};
use inland_gateway::GatewayConfig;
use inland_geofence::{GeofenceConfig, GeofenceStage, Verdict, ZoneSet};
use inland_proto::Timestamp;
use inland_proto::ingest::v1::{
    AckStatus, CameraFrame, Position, Sample, TelemetryBatch, UploadBatchRequest, UploadRequest,
    sample, upload_request,
};
use inland_proto::pipeline::v1::{RawRecord, raw_record};
use inland_stage::{
    Consumed, Consumer, KafkaConfig, MemoryBus, Producer, Record, StageConfig, TopicSpec, run_stage,
};
use inland_tests::{
    TestGateway, as_gateway_writes, assert_dead_lettered, kafka, random_vin, records_for,
};
use prost::Message;
use tokio_util::sync::CancellationToken;

/// Inside `bj-mil-west` of the sample zones.
const INSIDE: (f64, f64) = (39.9435, 116.2570);
/// About 100 m west of `bj-mil-west`, within its 500 m buffer.
const IN_BUFFER: (f64, f64) = (39.9435, 116.24883);
/// Kilometres from every sample zone.
const OUTSIDE: (f64, f64) = (39.99, 116.30);
const OUTSIDE_TOO: (f64, f64) = (39.985, 116.31);

fn sample_zones() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/inland-geofence/zones/sample.geojson"
    ))
}

#[test]
fn the_test_points_are_where_their_names_say() {
    let zones = ZoneSet::from_file(&sample_zones()).unwrap();
    for (name, (lat, lon), dropped) in [
        ("inside", INSIDE, true),
        ("in buffer", IN_BUFFER, true),
        ("outside", OUTSIDE, false),
        ("outside too", OUTSIDE_TOO, false),
    ] {
        let verdict = zones.check(lat, lon);
        assert_eq!(verdict.is_drop(), dropped, "{name}: {verdict:?}");
        if dropped {
            assert!(matches!(verdict, Verdict::Drop { zone, .. } if zone.id() == "bj-mil-west"));
        }
    }
}

/// `ms` milliseconds after `base`.
fn at(base: SystemTime, ms: u64) -> Timestamp {
    (base + Duration::from_millis(ms)).into()
}

/// Latitude and longitude at each `(ms, point)`, then a speed at each of `speeds`.
fn track(base: SystemTime, positions: &[(u64, (f64, f64))], speeds: &[u64]) -> TelemetryBatch {
    let double = |path: &str, ms, v| Sample {
        path: path.into(),
        time: Some(at(base, ms)),
        value: Some(sample::Value::DoubleValue(v)),
    };
    let mut samples = Vec::new();
    for &(ms, (lat, lon)) in positions {
        samples.push(double(inland_core::vss::LATITUDE, ms, lat));
        samples.push(double(inland_core::vss::LONGITUDE, ms, lon));
    }
    samples.extend(speeds.iter().map(|&ms| Sample {
        path: "Vehicle.Speed".into(),
        time: Some(at(base, ms)),
        value: Some(sample::Value::FloatValue(ms as f32 / 100.0)),
    }));
    TelemetryBatch { samples }
}

/// Outside → inside → buffer → outside, with speeds in between.
fn crossing(base: SystemTime) -> TelemetryBatch {
    track(
        base,
        &[
            (0, OUTSIDE),
            (1000, INSIDE),
            (2000, IN_BUFFER),
            (3000, OUTSIDE_TOO),
        ],
        &[500, 1500, 2500, 3000],
    )
}

/// What the geofence keeps of [`crossing`]: the outside positions, the speed between an
/// outside and an inside position, and the speeds at or after the last outside one; not
/// the speed between the two dropped positions.
fn crossing_kept(base: SystemTime) -> Vec<Sample> {
    let all = crossing(base).samples;
    [0, 1, 6, 7, 8, 10, 11].map(|i| all[i].clone()).to_vec()
}

fn frame(base: SystemTime, position: Option<(f64, f64)>, fix_age: Duration) -> CameraFrame {
    CameraFrame {
        camera_id: "front".into(),
        captured_at: Some(at(base, 0)),
        jpeg: vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 74, 70, 73, 70].into(),
        position: position.map(|(latitude, longitude)| Position {
            latitude,
            longitude,
            horizontal_accuracy_m: 4.0,
            fixed_at: Some((base - fix_age).into()),
        }),
    }
}

const FRESH: Duration = Duration::from_millis(300);

fn spec(name: &str, partitions: i32, retention: Duration) -> TopicSpec {
    TopicSpec {
        name: name.into(),
        partitions,
        retention_ms: retention.as_millis() as i64,
        compacted: false,
    }
}

fn stage_config() -> StageConfig {
    StageConfig {
        commit_interval: Duration::from_millis(100),
        ..StageConfig::new("geofence")
    }
}

fn geofence(output_topic: &str) -> GeofenceStage {
    GeofenceStage::start(&GeofenceConfig {
        zones_file: Some(sample_zones()),
        output_topic: output_topic.into(),
        ..GeofenceConfig::default()
    })
    .expect("the sample zones load")
}

/// A record as the gateway writes it to the raw topic.
fn raw_record(vin: &Vin, message_id: &str, payload: raw_record::Payload) -> Record {
    let now = SystemTime::now();
    let raw = RawRecord {
        message_id: message_id.into(),
        vin: vin.as_str().into(),
        recorded_at: Some(now.into()),
        received_at: Some(now.into()),
        purposes: vec!["driving_statistics".into()],
        precise_location_purposes: vec![],
        payload: Some(payload),
    };
    record(vin, message_id, raw.encode_to_vec())
}

fn record(vin: &Vin, message_id: &str, payload: Vec<u8>) -> Record {
    as_gateway_writes(
        vin,
        message_id,
        payload,
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
}

fn decode(got: &Consumed) -> RawRecord {
    RawRecord::decode(got.record.payload.clone()).expect("a RawRecord")
}

fn message_id(got: &Consumed) -> String {
    String::from_utf8(got.record.header("inland-message-id").unwrap().to_vec()).unwrap()
}

fn samples(raw: RawRecord) -> Vec<Sample> {
    match raw.payload {
        Some(raw_record::Payload::Telemetry(batch)) => batch.samples,
        other => panic!("telemetry expected, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Kafka: scripts/kafka.sh start, then INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo test -- --ignored"]
async fn kafka_forwards_what_is_outside_dead_letters_the_malformed_and_commits() {
    let kafka: KafkaConfig = kafka();
    let run = random_vin().as_str().to_lowercase();
    let (raw_topic, out_topic) = (
        format!("inland.test.raw.{run}"),
        format!("inland.test.geofenced.{run}"),
    );
    // The dead-letter topic is the shared one (run_stage names it), with the partitions and
    // retention `inland topics` gives it; this test reads only its own key there.
    let day = Duration::from_secs(24 * 3600);
    kafka
        .ensure_topics(&[
            spec(&raw_topic, 3, Duration::from_secs(3600)),
            spec(&out_topic, 3, Duration::from_secs(3600)),
            spec(topics::DEAD_LETTER, 6, day),
        ])
        .await
        .expect("create test topics");

    let vin = random_vin();
    let base = SystemTime::now() - Duration::from_secs(5);
    let outside_only = track(base, &[(0, OUTSIDE), (1000, OUTSIDE_TOO)], &[0, 500, 1500]);
    let frame_outside = frame(base, Some(OUTSIDE), FRESH);
    use raw_record::Payload::{Frame, Telemetry};
    let inputs = [
        raw_record(&vin, "t-outside", Telemetry(outside_only.clone())),
        raw_record(&vin, "t-crossing", Telemetry(crossing(base))),
        raw_record(
            &vin,
            "t-inside",
            Telemetry(track(base, &[(0, INSIDE), (1000, IN_BUFFER)], &[500])),
        ),
        record(&vin, "bad", b"\x0a\xff\xff\xff".to_vec()),
        raw_record(&vin, "f-inside", Frame(frame(base, Some(INSIDE), FRESH))),
        raw_record(&vin, "f-outside", Frame(frame_outside.clone())),
        raw_record(
            &vin,
            "f-stale",
            Frame(frame(base, Some(OUTSIDE), Duration::from_secs(60))),
        ),
        raw_record(&vin, "f-no-position", Frame(frame(base, None, FRESH))),
    ];
    let producer = kafka.producer().unwrap();
    for input in &inputs {
        producer.send(&raw_topic, input.clone()).await.unwrap();
    }

    let group = format!("geofence-{run}");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_stage(
        geofence(&out_topic),
        kafka.consumer(&group, &[&raw_topic]).unwrap(),
        Arc::new(kafka.producer().unwrap()),
        stage_config(),
        shutdown.clone(),
    ));

    let reader = kafka
        .consumer(&format!("reader-{run}"), &[&out_topic])
        .unwrap();
    let out = records_for(&reader, &vin, 3, Duration::from_secs(60)).await;
    let ids: Vec<String> = out.iter().map(message_id).collect();
    assert_eq!(
        ids,
        ["t-outside", "t-crossing", "f-outside"],
        "in input order"
    );
    for got in &out {
        let sent = inputs.iter().find(|r| r.headers == got.record.headers);
        assert!(sent.is_some(), "headers kept: {:?}", got.record.headers);
        assert_eq!(got.record.key, vin.as_str().as_bytes());
    }
    assert_eq!(samples(decode(&out[0])), outside_only.samples);
    assert_eq!(samples(decode(&out[1])), crossing_kept(base));
    let raw = decode(&out[2]);
    assert_eq!(
        (raw.message_id.as_str(), raw.vin.as_str()),
        ("f-outside", vin.as_str())
    );
    assert_eq!(raw.payload, Some(Frame(frame_outside)));

    let dead_reader = assert_dead_lettered(
        &kafka,
        &run,
        &vin,
        &inputs[3].payload,
        "geofence",
        "not a inland.pipeline.v1.RawRecord",
    )
    .await;

    shutdown.cancel();
    task.await.unwrap().unwrap();
    // Nothing else arrives: the dropped records are dropped, not late.
    assert!(
        records_for(&reader, &vin, 1, Duration::from_secs(3))
            .await
            .is_empty()
    );
    assert!(
        records_for(&dead_reader, &vin, 1, Duration::from_secs(1))
            .await
            .is_empty()
    );

    // Everything was committed: the next member of the group starts after it. The record
    // produced now proves that member is reading, so silence before it means something.
    let next = kafka.consumer(&group, &[&raw_topic]).unwrap();
    producer
        .send(&raw_topic, record(&vin, "after", b"x".to_vec()))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(60), next.recv())
        .await
        .expect("the group's next member reads")
        .unwrap();
    assert_eq!(message_id(&first), "after", "an input was not committed");
}

fn upload(base: SystemTime, message_id: &str, payload: upload_request::Payload) -> UploadRequest {
    UploadRequest {
        message_id: message_id.into(),
        recorded_at: Some(at(base, 0)),
        vin: String::new(),
        driver_profile_id: String::new(),
        payload: Some(payload),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_pipeline_geofences_what_the_gateway_accepts() {
    let bus = MemoryBus::default();
    let hour = Duration::from_secs(3600);
    bus.ensure_topics(&[
        spec(topics::RAW, 3, hour),
        spec(topics::GEOFENCED, 3, hour),
        spec(topics::DEAD_LETTER, 3, hour),
    ])
    .unwrap();
    let gateway = TestGateway::start(GatewayConfig::default(), Arc::new(bus.clone())).await;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_stage(
        geofence(topics::GEOFENCED),
        bus.consumer("geofence", &[topics::RAW]).unwrap(),
        Arc::new(bus.clone()),
        stage_config(),
        shutdown.clone(),
    ));

    let vin = random_vin();
    let mut client = gateway.consenting_vehicle(&vin).await;
    let base = SystemTime::now() - Duration::from_secs(10);
    let frame_outside = frame(base, Some(OUTSIDE_TOO), FRESH);
    use upload_request::Payload::{Frame, Telemetry};
    let requests = vec![
        upload(base, "t-crossing", Telemetry(crossing(base))),
        upload(base, "f-inside", Frame(frame(base, Some(IN_BUFFER), FRESH))),
        upload(base, "f-outside", Frame(frame_outside.clone())),
        upload(
            base,
            "t-inside",
            Telemetry(track(base, &[(0, INSIDE)], &[0])),
        ),
    ];
    let acks = client
        .upload_batch(UploadBatchRequest { requests })
        .await
        .unwrap()
        .into_inner()
        .acks;
    assert!(
        acks.iter().all(|a| a.status == AckStatus::Accepted as i32),
        "{acks:?}"
    );

    let reader = bus.consumer("reader", &[topics::GEOFENCED]).unwrap();
    let out = records_for(&reader, &vin, 2, Duration::from_secs(20)).await;
    let ids: Vec<String> = out.iter().map(message_id).collect();
    assert_eq!(ids, ["t-crossing", "f-outside"]);
    assert_eq!(samples(decode(&out[0])), crossing_kept(base));
    assert_eq!(
        decode(&out[1]).payload,
        Some(raw_record::Payload::Frame(frame_outside))
    );
    assert!(
        records_for(&reader, &vin, 1, Duration::from_millis(500))
            .await
            .is_empty()
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();

    // Committed on the bus too: the group's next member gets only what comes after.
    let next = bus.consumer("geofence", &[topics::RAW]).unwrap();
    let mut after = client
        .upload_batch(UploadBatchRequest {
            requests: vec![upload(base, "after", Telemetry(track(base, &[], &[0])))],
        })
        .await
        .unwrap()
        .into_inner()
        .acks;
    assert_eq!(after.pop().unwrap().status, AckStatus::Accepted as i32);
    let first = tokio::time::timeout(Duration::from_secs(5), next.recv())
        .await
        .expect("the group's next member reads")
        .unwrap();
    assert_eq!(message_id(&first), "after", "an input was not committed");
}
