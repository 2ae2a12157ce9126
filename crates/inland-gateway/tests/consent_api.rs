//! The ConsentService and consent enforcement over mutual TLS, on the in-process bus: a
//! vehicle acts for its own VIN through its HMI, an operator for any VIN; uploads are
//! refused until granted and again right after a withdrawal.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use inland_consent::proto::consent_service_client::ConsentServiceClient;
use inland_consent::proto::{
    Category, Channel, GetRequest, GrantRequest, HistoryRequest, Notice, Subject, WithdrawRequest,
};
use inland_consent::{ConsentLog, ConsentView, ViewOptions};
use inland_core::Vin;
use inland_gateway::{Gateway, GatewayConfig};
use inland_proto::ingest::v1::vehicle_ingest_client::VehicleIngestClient;
use inland_proto::ingest::v1::{
    AckStatus, CameraFrame, Sample, TelemetryBatch, UploadAck, UploadBatchRequest, UploadRequest,
    sample, upload_request,
};
use inland_stage::{MemoryBus, TopicSpec};
use inland_tls::{ClientTls, DevCerts, FleetCa, Issued};
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::{Channel as GrpcChannel, Endpoint};

const VIN: &str = "LSVAU2180N2183294";
const OTHER: &str = "WVWZZZ1JZXW000001";

struct Running {
    url: String,
    ca: FleetCa,
    operator: Issued,
    _certs: tempfile::TempDir,
    _stop: tokio_util::sync::DropGuard,
}

async fn start() -> Running {
    let bus = MemoryBus::default();
    let config = GatewayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..GatewayConfig::default()
    };
    bus.ensure_topics(&[
        TopicSpec {
            name: config.raw_topic.clone(),
            partitions: 2,
            retention_ms: -1,
            compacted: false,
        },
        TopicSpec {
            name: config.consent_topic.clone(),
            partitions: 2,
            retention_ms: -1,
            compacted: true,
        },
    ])
    .unwrap();
    let certs = tempfile::tempdir().unwrap();
    let files = DevCerts::new(certs.path());
    let ca = files.generate(&["localhost".into()], &[]).unwrap();
    let operator = Issued {
        cert_pem: std::fs::read_to_string(files.operator_cert()).unwrap(),
        key_pem: std::fs::read_to_string(files.operator_key()).unwrap(),
    };
    let view = ConsentView::on_memory_bus(
        &bus,
        &config.consent_topic,
        ViewOptions {
            keep_history: true,
            ..ViewOptions::default()
        },
    )
    .await
    .unwrap();
    let gateway = Gateway::bind(
        GatewayConfig {
            tls: Some(inland_tls::ServerTls::from_dev_certs(&files)),
            ..config
        },
        Arc::new(bus.clone()),
        ConsentLog {
            view,
            producer: Arc::new(bus),
        },
    )
    .await
    .unwrap();
    let url = format!("https://{}", gateway.local_addr());
    let stop = CancellationToken::new();
    tokio::spawn(gateway.serve(stop.clone().cancelled_owned()));
    Running {
        url,
        ca,
        operator,
        _certs: certs,
        _stop: stop.drop_guard(),
    }
}

impl Running {
    async fn channel(&self, identity: Issued) -> GrpcChannel {
        let tls = ClientTls {
            server_ca_pem: self.ca.cert_pem().into(),
            server_name: "localhost".into(),
            identity,
        };
        Endpoint::from_shared(self.url.clone())
            .unwrap()
            .tls_config(tls.config())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn vehicle(&self, vin: &str) -> GrpcChannel {
        self.channel(self.ca.issue_vehicle(&Vin::parse(vin).unwrap()).unwrap())
            .await
    }
}

fn subject(vin: &str) -> Option<Subject> {
    Some(Subject {
        vin: vin.into(),
        driver_profile_id: String::new(),
    })
}

fn grant(vin: &str, categories: &[Category], channel: Channel) -> GrantRequest {
    GrantRequest {
        subject: subject(vin),
        categories: categories.iter().map(|c| *c as i32).collect(),
        purposes: vec!["driving_statistics".into(), "road_imagery".into()],
        notice: Some(Notice {
            version: "2026-03".into(),
            sha256: "c0".repeat(32),
        }),
        channel: channel as i32,
        actor: "owner".into(),
    }
}

fn speed(id: &str) -> UploadRequest {
    UploadRequest {
        message_id: id.into(),
        recorded_at: Some(SystemTime::now().into()),
        vin: String::new(),
        driver_profile_id: String::new(),
        payload: Some(upload_request::Payload::Telemetry(TelemetryBatch {
            samples: vec![Sample {
                path: "Vehicle.Speed".into(),
                time: None,
                value: Some(sample::Value::FloatValue(30.0)),
            }],
        })),
    }
}

fn frame(id: &str, camera_id: &str) -> UploadRequest {
    UploadRequest {
        message_id: id.into(),
        recorded_at: Some(SystemTime::now().into()),
        vin: String::new(),
        driver_profile_id: String::new(),
        payload: Some(upload_request::Payload::Frame(CameraFrame {
            camera_id: camera_id.into(),
            captured_at: None,
            jpeg: vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 0].into(),
            position: None,
        })),
    }
}

async fn upload(channel: &GrpcChannel, requests: Vec<UploadRequest>) -> Vec<UploadAck> {
    VehicleIngestClient::new(channel.clone())
        .upload_batch(UploadBatchRequest { requests })
        .await
        .unwrap()
        .into_inner()
        .acks
}

fn accepted(ack: &UploadAck) -> bool {
    ack.status == AckStatus::Accepted as i32
}

#[tokio::test]
async fn uploads_follow_consent_granted_through_the_vehicle_hmi() {
    let gw = start().await;
    let car = gw.vehicle(VIN).await;
    let acks = upload(
        &car,
        vec![speed("t-1"), frame("f-1", "front"), frame("c-1", "cabin")],
    )
    .await;
    for ack in &acks {
        assert_eq!(ack.status, AckStatus::Rejected as i32, "{ack:?}");
        assert_eq!(ack.code, Code::PermissionDenied as i32);
        assert!(ack.reason.contains("has not consented"), "{}", ack.reason);
    }
    assert!(acks[0].reason.contains("CATEGORY_TELEMETRY"));
    assert!(acks[1].reason.contains("CATEGORY_CAMERA_FRAMES"));
    assert!(acks[2].reason.contains("CATEGORY_CABIN_CAMERA"));

    let mut consent = ConsentServiceClient::new(car.clone());
    let event = consent
        .grant(grant(
            VIN,
            &[Category::Telemetry, Category::CameraFrames],
            Channel::Unspecified,
        ))
        .await
        .unwrap()
        .into_inner()
        .event
        .unwrap();
    assert_eq!(event.channel, Channel::VehicleHmi as i32);
    assert_eq!(event.actor.unwrap().principal, "vehicle");

    let acks = upload(
        &car,
        vec![speed("t-2"), frame("f-2", "front"), frame("c-2", "cabin")],
    )
    .await;
    assert!(accepted(&acks[0]) && accepted(&acks[1]), "{acks:?}");
    assert!(!accepted(&acks[2]), "cabin camera needs its own consent");

    // The vehicle cannot act for another vehicle, nor claim the operator's channel.
    let err = consent
        .grant(grant(OTHER, &[Category::Telemetry], Channel::Unspecified))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let err = consent
        .grant(grant(VIN, &[Category::Telemetry], Channel::Operator))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // Requests missing what a grant records are refused.
    let mut no_hash = grant(VIN, &[Category::Voice], Channel::Unspecified);
    no_hash.notice.as_mut().unwrap().sha256.clear();
    let err = consent.grant(no_hash).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("notice.sha256"), "{err:?}");
    let err = consent
        .grant(GrantRequest {
            categories: vec![42],
            ..grant(VIN, &[], Channel::Unspecified)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("unknown category 42"), "{err:?}");

    // Withdrawal from the HMI: refused again at once.
    let withdrawn = consent
        .withdraw(WithdrawRequest {
            subject: subject(VIN),
            categories: vec![Category::Telemetry as i32],
            actor: "owner".into(),
            ..WithdrawRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(withdrawn.erasure_request_id.starts_with("er-"));
    let acks = upload(&car, vec![speed("t-3"), frame("f-3", "front")]).await;
    assert!(!accepted(&acks[0]), "{acks:?}");
    assert!(accepted(&acks[1]), "camera frames are still granted");

    let state = consent
        .get(GetRequest {
            subject: subject(VIN),
            include_driver_profiles: true,
        })
        .await
        .unwrap()
        .into_inner()
        .states
        .remove(0);
    assert_eq!(state.erasures[0].request_id, withdrawn.erasure_request_id);
}

#[tokio::test]
async fn an_operator_acts_for_any_vehicle_but_cannot_upload() {
    let gw = start().await;
    let ops = gw.channel(gw.operator.clone()).await;
    let mut consent = ConsentServiceClient::new(ops.clone());
    let err = consent
        .grant(grant(OTHER, &[Category::Telemetry], Channel::VehicleHmi))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::PermissionDenied,
        "only the vehicle records its HMI"
    );
    let event = consent
        .grant(grant(OTHER, &[Category::Telemetry], Channel::CompanionApp))
        .await
        .unwrap()
        .into_inner()
        .event
        .unwrap();
    assert_eq!(event.channel, Channel::CompanionApp as i32);
    assert_eq!(event.actor.unwrap().principal, "operator:dev-operator");

    let car = gw.vehicle(OTHER).await;
    assert!(accepted(&upload(&car, vec![speed("t-1")]).await[0]));
    consent
        .withdraw(WithdrawRequest {
            subject: subject(OTHER),
            actor: "customer service".into(),
            reason: "owner called".into(),
            ..WithdrawRequest::default()
        })
        .await
        .unwrap();
    assert!(!accepted(&upload(&car, vec![speed("t-2")]).await[0]));

    // The gateway's view reads its own events back: history shows both, in order.
    let mut events = Vec::new();
    for _ in 0..200 {
        events = consent
            .history(HistoryRequest {
                subject: subject(OTHER),
                include_driver_profiles: true,
            })
            .await
            .unwrap()
            .into_inner()
            .events;
        if events.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(events.len(), 2);
    assert!(events[1].change.as_ref().is_some_and(|c| matches!(
        c,
        inland_consent::proto::consent_event::Change::Withdrawn(_)
    )));

    // An operator certificate uploads nothing.
    let err = VehicleIngestClient::new(ops)
        .upload_batch(UploadBatchRequest {
            requests: vec![speed("x")],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
}
