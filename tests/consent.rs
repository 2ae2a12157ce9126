//! Consent end to end against a real Apache Kafka broker: a vehicle's uploads are refused
//! before consent, accepted once its owner grants it through the vehicle's HMI, refused
//! again right after a withdrawal; the withdrawal yields an erasure request naming the
//! vehicle's pseudonyms under every key epoch; the history shows the events; and a view
//! started afterwards replays the compacted topic to the same decisions.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use inland_anonymizer::{ErasureStage, Pseudonymizer};
use inland_consent::proto::{Category, HistoryRequest, Subject, WithdrawRequest, consent_event};
use inland_consent::{ConsentLog, ConsentView, ViewOptions, decode_erasure};
use inland_core::{Vin, topics};
use inland_gateway::GatewayConfig;
use inland_proto::ingest::v1::{AckStatus, UploadAck, UploadRequest};
use inland_proto::pipeline::v1::RawRecord;
use inland_stage::{Consumer, KafkaConfig, StageConfig, TopicSpec, run_stage};
use inland_tests::{
    CONSENT_PURPOSES, TestGateway, frame, hmi_grant, kafka, random_vin, records_for, speed,
};
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::Code;

fn spec(name: &str, compacted: bool) -> TopicSpec {
    TopicSpec {
        name: name.into(),
        partitions: 3,
        retention_ms: if compacted { -1 } else { 3_600_000 },
        compacted,
    }
}

async fn upload(
    client: &mut inland_proto::ingest::v1::vehicle_ingest_client::VehicleIngestClient<
        tonic::transport::Channel,
    >,
    requests: Vec<UploadRequest>,
) -> Vec<UploadAck> {
    let n = requests.len();
    let acks = client
        .upload(futures::stream::iter(requests))
        .await
        .expect("stream opens")
        .into_inner();
    let mut acks: Vec<UploadAck> = acks
        .take(n)
        .map(|a| a.expect("ack"))
        .collect::<Vec<_>>()
        .await;
    acks.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    acks
}

fn status(ack: &UploadAck) -> AckStatus {
    AckStatus::try_from(ack.status).unwrap()
}

/// Topics of this run: raw, consent (compacted) and erasure.
async fn topics_of_run(kafka: &KafkaConfig) -> (String, String, String) {
    let run = random_vin().as_str().to_lowercase();
    let names = (
        format!("inland.test.raw.{run}"),
        format!("inland.test.consent.{run}"),
        format!("inland.test.erasure.{run}"),
    );
    kafka
        .ensure_topics(&[
            spec(&names.0, false),
            spec(&names.1, true),
            spec(&names.2, false),
            TopicSpec {
                name: topics::DEAD_LETTER.into(),
                partitions: 6,
                retention_ms: 24 * 3_600_000,
                compacted: false,
            },
        ])
        .await
        .expect("create test topics");
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Kafka: scripts/kafka.sh start, then INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo test -- --ignored"]
async fn refused_before_consent_accepted_after_refused_right_after_withdrawal_and_erased() {
    let kafka = kafka();
    let (raw_topic, consent_topic, erasure_topic) = topics_of_run(&kafka).await;
    let producer = Arc::new(kafka.producer().unwrap());
    let history = ViewOptions {
        keep_history: true,
        ..ViewOptions::default()
    };
    let consent = ConsentLog {
        view: ConsentView::on_kafka(&kafka, &consent_topic, history)
            .await
            .expect("the consent view catches up"),
        producer: producer.clone(),
    };
    let config = GatewayConfig {
        raw_topic: raw_topic.clone(),
        consent_topic: consent_topic.clone(),
        ..GatewayConfig::default()
    };
    let gateway = TestGateway::start_with_consent(config, producer.clone(), consent).await;

    // The anonymizer's erasure stage, with a key file of two epochs.
    let keys_dir = tempfile::tempdir().unwrap();
    let key_file = keys_dir.path().join("keys.toml");
    inland_anonymizer::keys::generate(&key_file).unwrap();
    inland_anonymizer::keys::rotate(
        &key_file,
        std::time::SystemTime::now() + Duration::from_secs(3600),
    )
    .unwrap();
    let keys = Pseudonymizer::load(&key_file).unwrap();
    let shutdown = CancellationToken::new();
    let erasing = tokio::spawn(run_stage(
        ErasureStage::new(keys.clone(), &erasure_topic),
        kafka
            .consumer(&format!("erasure-{consent_topic}"), &[&consent_topic])
            .unwrap(),
        producer.clone(),
        StageConfig::new("erasure"),
        shutdown.clone(),
    ));

    let vin = random_vin();
    let mut car = gateway.vehicle(&vin).await;
    let mut hmi = gateway
        .consent_as(gateway.ca.issue_vehicle(&vin).unwrap())
        .await;

    // 1. No consent: refused, with the category and how to grant it.
    let acks = upload(
        &mut car,
        vec![speed("a-telemetry", 50.0), frame("b-frame", 1000)],
    )
    .await;
    for ack in &acks {
        assert_eq!(status(ack), AckStatus::Rejected, "{ack:?}");
        assert_eq!(ack.code, Code::PermissionDenied as i32, "{ack:?}");
        assert!(
            ack.reason.contains("inland consent grant"),
            "{}",
            ack.reason
        );
    }
    assert!(
        acks[0].reason.contains("CATEGORY_TELEMETRY"),
        "{}",
        acks[0].reason
    );
    assert!(
        acks[1].reason.contains("CATEGORY_CAMERA_FRAMES"),
        "{}",
        acks[1].reason
    );

    // 2. The owner grants through the HMI: accepted, and in the broker.
    hmi.grant(hmi_grant(
        &vin,
        &[Category::Telemetry, Category::CameraFrames],
    ))
    .await
    .expect("grant");
    let acks = upload(
        &mut car,
        vec![speed("c-telemetry", 51.0), frame("d-frame", 1000)],
    )
    .await;
    assert!(
        acks.iter().all(|a| status(a) == AckStatus::Accepted),
        "{acks:?}"
    );
    let raw = kafka
        .consumer(&format!("reader-{raw_topic}"), &[&raw_topic])
        .unwrap();
    let stored = records_for(&raw, &vin, 2, Duration::from_secs(30)).await;
    assert_eq!(stored.len(), 2, "only what was consented to is stored");
    // Each names the purposes it was consented for, and no precise location: the
    // anonymizer serves those alone.
    for record in &stored {
        let raw = RawRecord::decode(record.record.payload.clone()).unwrap();
        assert_eq!(raw.purposes, CONSENT_PURPOSES, "{}", raw.message_id);
        assert!(raw.precise_location_purposes.is_empty());
    }

    // 3. Withdrawal of telemetry: the very next upload is refused; frames still flow.
    let withdrawn = hmi
        .withdraw(WithdrawRequest {
            subject: Some(Subject {
                vin: vin.as_str().into(),
                driver_profile_id: String::new(),
            }),
            categories: vec![Category::Telemetry as i32],
            actor: "owner".into(),
            reason: "no longer wanted".into(),
            ..WithdrawRequest::default()
        })
        .await
        .expect("withdraw")
        .into_inner();
    let acks = upload(
        &mut car,
        vec![speed("e-telemetry", 52.0), frame("f-frame", 1000)],
    )
    .await;
    assert_eq!(status(&acks[0]), AckStatus::Rejected, "{acks:?}");
    assert_eq!(acks[0].code, Code::PermissionDenied as i32);
    assert_eq!(status(&acks[1]), AckStatus::Accepted, "{acks:?}");

    // 4. The withdrawal produced an erasure request with the id the withdrawal returned,
    // naming the vehicle's pseudonym under each key epoch and never the VIN.
    let erasures = kafka
        .consumer(&format!("reader-{erasure_topic}"), &[&erasure_topic])
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(60), erasures.recv())
        .await
        .expect("an erasure request within 60 s")
        .unwrap();
    let request = decode_erasure(&got.record.payload).unwrap();
    assert_eq!(request.request_id, withdrawn.erasure_request_id);
    assert_eq!(got.record.key, request.request_id.as_bytes());
    let pseudonyms: Vec<(u32, String)> = request
        .pseudonyms
        .iter()
        .map(|p| (p.key_epoch, p.value.clone()))
        .collect();
    assert_eq!(pseudonyms, keys.pseudonyms(&vin));
    assert_eq!(pseudonyms.len(), 2);
    assert_eq!(request.categories, [Category::Telemetry as i32]);
    assert!(
        !got.record
            .payload
            .windows(17)
            .any(|w| w == vin.as_str().as_bytes())
    );

    // 5. History: the grant, then the withdrawal with its erasure request.
    let mut operator = gateway.consent_as(gateway.operator.clone()).await;
    let mut events = Vec::new();
    for _ in 0..100 {
        events = operator
            .history(HistoryRequest {
                subject: Some(Subject {
                    vin: vin.as_str().into(),
                    driver_profile_id: String::new(),
                }),
                include_driver_profiles: true,
            })
            .await
            .expect("history")
            .into_inner()
            .events;
        if events.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(
        events[0].change,
        Some(consent_event::Change::Granted(_))
    ));
    let Some(consent_event::Change::Withdrawn(w)) = &events[1].change else {
        panic!("the withdrawal second: {events:?}")
    };
    assert_eq!(w.erasure_request_id, withdrawn.erasure_request_id);

    // 6. A view started now replays the topic from the broker to the same decisions.
    let replayed = ConsentView::on_kafka(&kafka, &consent_topic, ViewOptions::default())
        .await
        .expect("a second view catches up");
    assert!(!replayed.allows(&vin, None, Category::Telemetry, None));
    assert!(replayed.allows(&vin, None, Category::CameraFrames, Some("road_imagery")));
    let stranger = Vin::parse("WVWZZZ1JZXW000001").unwrap();
    assert!(!replayed.allows(&stranger, None, Category::Telemetry, None));

    shutdown.cancel();
    erasing.await.unwrap().unwrap();
}
