//! The gateway against a real Apache Kafka broker: uploads over mTLS land in the raw
//! topic keyed by VIN with their headers, acks follow durability, retries are stored once,
//! and every limit answers with its own status.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use inland_core::topics;
use inland_gateway::GatewayConfig;
use inland_proto::ingest::v1::{AckStatus, UploadAck, UploadBatchRequest, UploadRequest, sample};
use inland_proto::pipeline::v1::{RAW_RECORD_SCHEMA, RawRecord, raw_record};
use inland_stage::{Consumer, KafkaConfig, MemoryBus, MemoryBusConfig, Producer, TopicSpec};
use inland_tests::{TestGateway, frame, kafka, random_vin, records_for, speed, telemetry};
use inland_tls::{ClientTls, FleetCa};
use prost::Message;
use tonic::Code;

/// A fresh raw topic per test, so tests never read each other's records.
async fn raw_topic(kafka: &KafkaConfig) -> String {
    let name = format!("inland.test.raw.{}", random_vin().as_str().to_lowercase());
    let spec = TopicSpec {
        name: name.clone(),
        partitions: 3,
        retention_ms: 3_600_000,
        compacted: false,
    };
    kafka
        .ensure_topics(&[spec])
        .await
        .expect("create test topic");
    name
}

async fn kafka_gateway(mut config: GatewayConfig) -> (TestGateway, KafkaConfig, String) {
    let kafka = kafka();
    config.raw_topic = raw_topic(&kafka).await;
    let producer: Arc<dyn Producer> = Arc::new(kafka.producer().unwrap());
    let topic = config.raw_topic.clone();
    (TestGateway::start(config, producer).await, kafka, topic)
}

async fn stream(
    client: &mut inland_proto::ingest::v1::vehicle_ingest_client::VehicleIngestClient<
        tonic::transport::Channel,
    >,
    requests: Vec<UploadRequest>,
) -> Result<Vec<UploadAck>, tonic::Status> {
    let n = requests.len();
    let mut acks = client
        .upload(futures::stream::iter(requests))
        .await?
        .into_inner();
    let mut out = Vec::new();
    while out.len() < n {
        match acks.next().await {
            Some(ack) => out.push(ack?),
            None => break,
        }
    }
    Ok(out)
}

fn status(ack: &UploadAck) -> AckStatus {
    AckStatus::try_from(ack.status).unwrap()
}

#[tokio::test]
#[ignore = "needs Kafka: scripts/kafka.sh start, then INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo test -- --ignored"]
async fn uploads_over_mtls_land_in_the_raw_topic_keyed_by_vin_with_headers() {
    let (gateway, kafka, topic) = kafka_gateway(GatewayConfig::default()).await;
    let vin = random_vin();
    let mut client = gateway.consenting_vehicle(&vin).await;
    let mut requests: Vec<_> = (0..5)
        .map(|i| speed(&format!("t-{i}"), 40.0 + i as f32))
        .collect();
    requests.push(frame("f-0", 20_000));
    let acks = stream(&mut client, requests).await.unwrap();
    assert_eq!(acks.len(), 6);
    assert!(
        acks.iter().all(|a| status(a) == AckStatus::Accepted),
        "{acks:?}"
    );

    let consumer = kafka
        .consumer(&format!("reader-{topic}"), &[&topic])
        .unwrap();
    let records = records_for(&consumer, &vin, 6, Duration::from_secs(30)).await;
    assert_eq!(records.len(), 6, "every acked upload is in the broker");
    let mut ids = Vec::new();
    for got in &records {
        let r = &got.record;
        assert_eq!(r.key, vin.as_str().as_bytes());
        assert_eq!(
            r.header("inland-schema").unwrap(),
            RAW_RECORD_SCHEMA.as_bytes()
        );
        let traceparent = std::str::from_utf8(r.header("traceparent").unwrap()).unwrap();
        assert!(
            traceparent.starts_with("00-") && traceparent.len() == 55,
            "{traceparent}"
        );
        let raw = RawRecord::decode(r.payload.clone()).unwrap();
        assert_eq!(raw.vin, vin.as_str());
        assert_eq!(
            r.header("inland-message-id").unwrap(),
            raw.message_id.as_bytes()
        );
        if raw.message_id == "f-0" {
            let Some(raw_record::Payload::Frame(f)) = raw.payload else {
                panic!("frame payload")
            };
            assert_eq!(f.jpeg.len(), 20_000);
        }
        ids.push(raw.message_id);
    }
    ids.sort();
    assert_eq!(ids, ["f-0", "t-0", "t-1", "t-2", "t-3", "t-4"]);
}

#[tokio::test]
#[ignore = "needs Kafka: scripts/kafka.sh start, then INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo test -- --ignored"]
async fn retries_of_a_message_id_are_duplicates_and_stored_once() {
    let (gateway, kafka, topic) = kafka_gateway(GatewayConfig::default()).await;
    let vin = random_vin();
    let mut client = gateway.consenting_vehicle(&vin).await;
    // Three copies in one stream race each other; a fourth comes later on a new stream.
    let acks = stream(
        &mut client,
        vec![speed("m-1", 1.0), speed("m-1", 1.0), speed("m-1", 1.0)],
    )
    .await
    .unwrap();
    let later = stream(&mut client, vec![speed("m-1", 1.0)]).await.unwrap();
    let mut statuses: Vec<_> = acks.iter().chain(&later).map(status).collect();
    statuses.sort_by_key(|s| *s as i32);
    assert_eq!(
        statuses,
        [
            AckStatus::Accepted,
            AckStatus::Duplicate,
            AckStatus::Duplicate,
            AckStatus::Duplicate
        ]
    );

    let consumer = kafka
        .consumer(&format!("reader-{topic}"), &[&topic])
        .unwrap();
    let records = records_for(&consumer, &vin, 2, Duration::from_secs(10)).await;
    assert_eq!(records.len(), 1, "a retried message is stored exactly once");
}

#[tokio::test]
#[ignore = "needs Kafka: scripts/kafka.sh start, then INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo test -- --ignored"]
async fn no_ack_without_a_delivery_report_and_a_retry_is_then_stored() {
    // A broker that never answers: nothing can become durable, so nothing is accepted.
    let mut dead = KafkaConfig::new("127.0.0.1:1");
    dead.delivery_timeout_ms = 2_000;
    let config = GatewayConfig {
        delivery_timeout: Duration::from_secs(5),
        ..GatewayConfig::default()
    };
    let gateway = TestGateway::start(config, Arc::new(dead.producer().unwrap())).await;
    let vin = random_vin();
    let mut client = gateway.consenting_vehicle(&vin).await;
    let acks = stream(&mut client, vec![speed("m-1", 1.0), speed("m-2", 2.0)])
        .await
        .unwrap();
    for ack in &acks {
        assert_eq!(status(ack), AckStatus::Rejected, "{ack:?}");
        assert!(
            [Code::Unavailable as i32, Code::DeadlineExceeded as i32].contains(&ack.code),
            "{ack:?}"
        );
    }
    // The failed attempt did not mark the id as seen: the vehicle's retry is stored.
    let (good, kafka, topic) = kafka_gateway(GatewayConfig::default()).await;
    let mut client = good.consenting_vehicle(&vin).await;
    let acks = stream(&mut client, vec![speed("m-1", 1.0)]).await.unwrap();
    assert_eq!(status(&acks[0]), AckStatus::Accepted);
    let consumer = kafka
        .consumer(&format!("reader-{topic}"), &[&topic])
        .unwrap();
    assert_eq!(
        records_for(&consumer, &vin, 1, Duration::from_secs(30))
            .await
            .len(),
        1
    );
}

#[tokio::test]
#[ignore = "needs Kafka: scripts/kafka.sh start, then INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo test -- --ignored"]
async fn each_limit_answers_with_its_own_code() {
    let config = GatewayConfig {
        rate_per_vehicle: 1,
        burst_per_vehicle: 8,
        max_message_bytes: 64 << 10,
        ..GatewayConfig::default()
    };
    let (gateway, _kafka, _topic) = kafka_gateway(config).await;
    let vin = random_vin();
    let mut client = gateway.consenting_vehicle(&vin).await;

    let mut future = speed("future", 1.0);
    future.recorded_at = Some((std::time::SystemTime::now() + Duration::from_secs(3600)).into());
    let mut empty = speed("empty", 1.0);
    empty.payload = None;
    let mut other_vin = speed("other-vin", 1.0);
    other_vin.vin = random_vin().as_str().into();
    let cases = vec![
        (future, Code::InvalidArgument, "in the future"),
        (
            telemetry(
                "unknown",
                vec![("Vehicle.Teleporter", sample::Value::BoolValue(true))],
            ),
            Code::InvalidArgument,
            "not a VSS signal",
        ),
        (
            telemetry(
                "type",
                vec![("Vehicle.Speed", sample::Value::StringValue("fast".into()))],
            ),
            Code::InvalidArgument,
            "datatype is float",
        ),
        (empty, Code::InvalidArgument, "no payload"),
        (
            telemetry("no-samples", vec![]),
            Code::InvalidArgument,
            "no samples",
        ),
        (other_vin, Code::PermissionDenied, "another vehicle"),
    ];
    for (req, code, reason) in cases {
        let id = req.message_id.clone();
        let acks = stream(&mut client, vec![req]).await.unwrap();
        assert_eq!(status(&acks[0]), AckStatus::Rejected, "{id}");
        assert_eq!(acks[0].code, code as i32, "{id}: {}", acks[0].reason);
        assert!(acks[0].reason.contains(reason), "{id}: {}", acks[0].reason);
    }

    // The burst is spent by now (6 rejected uploads count too): the next ones are refused.
    let acks = stream(
        &mut client,
        (0..4).map(|i| speed(&format!("r-{i}"), 1.0)).collect(),
    )
    .await
    .unwrap();
    let limited: Vec<_> = acks
        .iter()
        .filter(|a| a.code == Code::ResourceExhausted as i32)
        .collect();
    assert!(!limited.is_empty(), "{acks:?}");
    assert!(limited[0].reason.contains("rate limit"));

    // An oversized message ends the stream with a gRPC status, before any processing.
    let err = stream(&mut client, vec![frame("huge", 100 << 10)])
        .await
        .unwrap_err();
    assert!(
        matches!(err.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{err:?}"
    );
}

#[tokio::test]
#[ignore = "needs Kafka: scripts/kafka.sh start, then INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo test -- --ignored"]
async fn unary_batch_acks_in_request_order() {
    let (gateway, _kafka, _topic) = kafka_gateway(GatewayConfig::default()).await;
    let mut client = gateway.consenting_vehicle(&random_vin()).await;
    let requests = vec![
        speed("b-0", 1.0),
        telemetry("b-1", vec![]),
        speed("b-2", 2.0),
        speed("b-0", 1.0),
    ];
    let acks = client
        .upload_batch(UploadBatchRequest { requests })
        .await
        .unwrap()
        .into_inner()
        .acks;
    let got: Vec<_> = acks
        .iter()
        .map(|a| (a.message_id.as_str(), status(a)))
        .collect();
    assert_eq!(got[1], ("b-1", AckStatus::Rejected));
    assert_eq!(got[2], ("b-2", AckStatus::Accepted));
    // b-0 twice in one batch: one is stored, the other is its duplicate.
    let mut b0 = [got[0].1, got[3].1];
    b0.sort_by_key(|s| *s as i32);
    assert_eq!(b0, [AckStatus::Accepted, AckStatus::Duplicate]);
}

#[tokio::test]
async fn vehicles_without_a_certificate_from_the_fleet_ca_are_refused() {
    let bus = MemoryBus::new(MemoryBusConfig::default());
    bus.ensure_topics(&[TopicSpec {
        name: topics::RAW.into(),
        partitions: 1,
        retention_ms: -1,
        compacted: false,
    }])
    .unwrap();
    let gateway = TestGateway::start(GatewayConfig::default(), Arc::new(bus)).await;
    // A certificate from another CA fails the TLS handshake or the first call.
    let rogue = FleetCa::generate().unwrap();
    let tls = ClientTls {
        server_ca_pem: gateway.ca.cert_pem().into(),
        server_name: "localhost".into(),
        identity: rogue.issue_vehicle(&random_vin()).unwrap(),
    };
    let refused = match gateway.client_with(tls).await {
        Err(_) => true,
        Ok(mut client) => client
            .upload_batch(UploadBatchRequest {
                requests: vec![speed("x", 1.0)],
            })
            .await
            .is_err(),
    };
    assert!(
        refused,
        "a certificate from another CA must not be accepted"
    );
    // A certificate from the right CA but not issued for client auth (the gateway's own).
    let server_identity = gateway.ca.issue_server(&["localhost".into()]).unwrap();
    let tls = ClientTls {
        server_ca_pem: gateway.ca.cert_pem().into(),
        server_name: "localhost".into(),
        identity: server_identity,
    };
    let refused = match gateway.client_with(tls).await {
        Err(_) => true,
        Ok(mut client) => client
            .upload_batch(UploadBatchRequest {
                requests: vec![speed("x", 1.0)],
            })
            .await
            .is_err(),
    };
    assert!(
        refused,
        "only vehicle (client-auth) certificates are accepted"
    );
}

#[tokio::test]
async fn a_stalled_bus_pushes_back_instead_of_buffering() {
    // One partition holding 3 records, read by a group that has not committed: the 4th
    // upload waits, and the gateway stops reading the stream at its in-flight bound.
    let bus = MemoryBus::new(MemoryBusConfig {
        max_records: 3,
        max_bytes: 64 << 20,
    });
    bus.ensure_topics(&[TopicSpec {
        name: topics::RAW.into(),
        partitions: 1,
        retention_ms: -1,
        compacted: false,
    }])
    .unwrap();
    let reader = bus.consumer("stalled", &[topics::RAW]).unwrap();
    let config = GatewayConfig {
        max_in_flight_per_stream: 2,
        ..GatewayConfig::default()
    };
    let gateway = TestGateway::start(config, Arc::new(bus.clone())).await;
    let mut client = gateway.consenting_vehicle(&random_vin()).await;
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut acks = client
        .upload(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    for i in 0..20 {
        tx.send(speed(&format!("p-{i}"), 1.0)).await.unwrap();
    }
    let mut accepted = 0;
    while let Ok(Some(ack)) = tokio::time::timeout(Duration::from_millis(1500), acks.next()).await {
        assert_eq!(status(&ack.unwrap()), AckStatus::Accepted);
        accepted += 1;
    }
    assert_eq!(accepted, 3, "only what the bus could hold was acked");
    // The reader commits what it read: the bus frees room and the uploads flow again.
    let mut last = None;
    for _ in 0..3 {
        last = Some(reader.recv().await.unwrap().position());
    }
    reader.commit(&[last.unwrap()]).await.unwrap();
    let more = tokio::time::timeout(Duration::from_secs(5), acks.next()).await;
    assert!(
        matches!(more, Ok(Some(Ok(_)))),
        "uploads resume once the bus has room"
    );
}
