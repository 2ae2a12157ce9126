//! Helpers shared by the integration tests: the servers the scripts started, a gateway on
//! a free port with fresh dev certificates, and vehicle clients (whose owners grant
//! consent through the gateway's ConsentService, as a vehicle's HMI would).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use inland_consent::proto::consent_service_client::ConsentServiceClient;
use inland_consent::proto::{Category, Channel as ConsentChannel, GrantRequest, Notice, Subject};
use inland_consent::{ConsentLog, ConsentView, ViewOptions};
use inland_core::Vin;
use inland_gateway::{Gateway, GatewayConfig};
use inland_proto::ingest::v1::vehicle_ingest_client::VehicleIngestClient;
use inland_proto::ingest::v1::{
    CameraFrame, Position, Sample, TelemetryBatch, UploadRequest, sample, upload_request,
};
use inland_stage::{
    Consumed, Consumer, DEAD_LETTER_REASON, DEAD_LETTER_STAGE, KafkaConfig, KafkaConsumer,
    MemoryBus, Producer, Record, TopicSpec,
};
use inland_tls::{ClientTls, DevCerts, FleetCa, Issued, ServerTls};
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

pub mod archive;

/// The Kafka broker `scripts/kafka.sh start` runs; the tests fail loudly without one.
pub fn kafka() -> KafkaConfig {
    let bootstrap = std::env::var("INLAND_KAFKA_BOOTSTRAP").expect(
        "INLAND_KAFKA_BOOTSTRAP is not set: run `scripts/kafka.sh start`, then \
         INLAND_KAFKA_BOOTSTRAP=127.0.0.1:9092 (or `make test`, which does both)",
    );
    KafkaConfig::new(bootstrap)
}

/// A random valid VIN, so tests sharing a topic can find their own records by key.
pub fn random_vin() -> Vin {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPRSTUVWXYZ";
    let mut rng = rand::rng();
    let s: String = (0..17)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    Vin::parse(&s).expect("alphabet has no I, O or Q")
}

/// The `inland` binary, built here (a no-op after `cargo test --workspace`) next to the
/// calling test's binary.
pub fn inland_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "inland-cli", "--bin", "inland"])
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building the inland binary failed");
    // target/debug/deps/<test>-<hash> → target/debug/inland
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("inland")
}

/// A gateway serving on 127.0.0.1 with mTLS and its own fleet CA; stops when dropped.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub ca: FleetCa,
    /// The operator certificate `inland dev-certs` issues with the CA.
    pub operator: Issued,
    _certs: tempfile::TempDir,
    stop: CancellationToken,
}

/// The purposes test vehicles' owners consent for (the anonymizer's defaults).
pub const CONSENT_PURPOSES: [&str; 2] = ["driving_statistics", "road_imagery"];

impl TestGateway {
    /// Uploads go through `producer`; consent lives on an in-process consent topic of this
    /// gateway's own (tests of consent itself use [`Self::start_with_consent`]).
    pub async fn start(config: GatewayConfig, producer: Arc<dyn Producer>) -> Self {
        let bus = MemoryBus::default();
        bus.ensure_topics(&[TopicSpec {
            name: config.consent_topic.clone(),
            partitions: 1,
            retention_ms: -1,
            compacted: true,
        }])
        .unwrap();
        let options = ViewOptions {
            keep_history: true,
            ..ViewOptions::default()
        };
        let consent = ConsentLog {
            view: ConsentView::on_memory_bus(&bus, &config.consent_topic, options)
                .await
                .unwrap(),
            producer: Arc::new(bus),
        };
        Self::start_with_consent(config, producer, consent).await
    }

    /// A gateway whose consent view and ConsentService use `consent`.
    pub async fn start_with_consent(
        mut config: GatewayConfig,
        producer: Arc<dyn Producer>,
        consent: ConsentLog,
    ) -> Self {
        let certs = tempfile::tempdir().unwrap();
        let files = DevCerts::new(certs.path());
        let ca = files.generate(&["localhost".into()], &[]).unwrap();
        let operator = Issued {
            cert_pem: std::fs::read_to_string(files.operator_cert()).unwrap(),
            key_pem: std::fs::read_to_string(files.operator_key()).unwrap(),
        };
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.tls = Some(ServerTls::from_dev_certs(&files));
        let gateway = Gateway::bind(config, producer, consent).await.unwrap();
        let addr = gateway.local_addr();
        let stop = CancellationToken::new();
        tokio::spawn(gateway.serve(stop.clone().cancelled_owned()));
        Self {
            addr,
            ca,
            operator,
            _certs: certs,
            stop,
        }
    }

    /// A client of the upload API for `vin` whose owner has granted telemetry and camera
    /// frames for [`CONSENT_PURPOSES`] through the vehicle's HMI, as a real fleet would.
    pub async fn consenting_vehicle(&self, vin: &Vin) -> VehicleIngestClient<Channel> {
        let mut consent = self.consent_as(self.ca.issue_vehicle(vin).unwrap()).await;
        consent
            .grant(hmi_grant(
                vin,
                &[Category::Telemetry, Category::CameraFrames],
            ))
            .await
            .expect("the vehicle's HMI grants consent");
        self.vehicle(vin).await
    }

    /// The consent API as whoever `identity` names: a vehicle, or [`Self::operator`].
    pub async fn consent_as(&self, identity: Issued) -> ConsentServiceClient<Channel> {
        let channel = Endpoint::from_shared(format!("https://{}", self.addr))
            .unwrap()
            .tls_config(
                ClientTls {
                    server_ca_pem: self.ca.cert_pem().into(),
                    server_name: "localhost".into(),
                    identity,
                }
                .config(),
            )
            .unwrap()
            .connect()
            .await
            .expect("mTLS connection to the gateway");
        ConsentServiceClient::new(channel)
    }

    /// A client presenting a certificate the fleet CA issued for `vin`.
    pub async fn vehicle(&self, vin: &Vin) -> VehicleIngestClient<Channel> {
        let identity = self.ca.issue_vehicle(vin).unwrap();
        self.client_with(ClientTls {
            server_ca_pem: self.ca.cert_pem().into(),
            server_name: "localhost".into(),
            identity,
        })
        .await
        .expect("mTLS connection to the gateway")
    }

    pub async fn client_with(
        &self,
        tls: ClientTls,
    ) -> Result<VehicleIngestClient<Channel>, tonic::transport::Error> {
        let channel = Endpoint::from_shared(format!("https://{}", self.addr))?
            .tls_config(tls.config())?
            .connect()
            .await?;
        Ok(VehicleIngestClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20))
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What a vehicle's HMI sends when its owner agrees to `categories` for
/// [`CONSENT_PURPOSES`] after reading notice version "test-1".
pub fn hmi_grant(vin: &Vin, categories: &[Category]) -> GrantRequest {
    GrantRequest {
        subject: Some(Subject {
            vin: vin.as_str().to_owned(),
            driver_profile_id: String::new(),
        }),
        categories: categories.iter().map(|c| *c as i32).collect(),
        purposes: CONSENT_PURPOSES.map(str::to_owned).to_vec(),
        notice: Some(Notice {
            version: "test-1".into(),
            sha256: "7e".repeat(32),
        }),
        channel: ConsentChannel::VehicleHmi as i32,
        actor: "owner".into(),
    }
}

pub fn telemetry(message_id: &str, samples: Vec<(&str, sample::Value)>) -> UploadRequest {
    UploadRequest {
        message_id: message_id.into(),
        recorded_at: Some(SystemTime::now().into()),
        vin: String::new(),
        driver_profile_id: String::new(),
        payload: Some(upload_request::Payload::Telemetry(TelemetryBatch {
            samples: samples
                .into_iter()
                .map(|(path, value)| Sample {
                    path: path.into(),
                    time: Some(SystemTime::now().into()),
                    value: Some(value),
                })
                .collect(),
        })),
    }
}

pub fn speed(message_id: &str, kmh: f32) -> UploadRequest {
    telemetry(
        message_id,
        vec![("Vehicle.Speed", sample::Value::FloatValue(kmh))],
    )
}

/// A camera frame; `jpeg_len` pads a JPEG header to that size (the gateway checks only
/// the SOI marker; the anonymizer decodes).
pub fn frame(message_id: &str, jpeg_len: usize) -> UploadRequest {
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
    jpeg.resize(jpeg_len.max(4), 0);
    UploadRequest {
        message_id: message_id.into(),
        recorded_at: Some(SystemTime::now().into()),
        vin: String::new(),
        driver_profile_id: String::new(),
        payload: Some(upload_request::Payload::Frame(CameraFrame {
            camera_id: "front".into(),
            captured_at: Some(SystemTime::now().into()),
            jpeg: jpeg.into(),
            position: Some(Position {
                latitude: 39.9,
                longitude: 116.4,
                horizontal_accuracy_m: 4.0,
                fixed_at: None,
            }),
        })),
    }
}

/// A record as the gateway writes it to the raw topic (and the geofence forwards it):
/// keyed by VIN, with the message-id, schema and trace headers.
pub fn as_gateway_writes(
    vin: &Vin,
    message_id: &str,
    payload: Vec<u8>,
    traceparent: &str,
) -> Record {
    Record {
        key: vin.as_str().as_bytes().to_vec().into(),
        payload: payload.into(),
        headers: vec![
            (
                "inland-message-id".into(),
                message_id.as_bytes().to_vec().into(),
            ),
            (
                "inland-schema".into(),
                inland_proto::pipeline::v1::RAW_RECORD_SCHEMA.into(),
            ),
            ("traceparent".into(), traceparent.as_bytes().to_vec().into()),
        ],
        timestamp_ms: None,
    }
}

/// Reads `consumer` until `want` records keyed `vin` arrived, or `timeout` passed.
pub async fn records_for(
    consumer: &impl Consumer,
    vin: &Vin,
    want: usize,
    timeout: Duration,
) -> Vec<Consumed> {
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while found.len() < want {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Err(_) => break,
            Ok(got) => {
                let got = got.expect("consume");
                if got.record.key == vin.as_str().as_bytes() {
                    found.push(got);
                }
            }
        }
    }
    found
}

/// Asserts that `stage` dead-lettered exactly one record of `vin`: the input as read
/// (`payload`), with a reason containing `reason`. Returns the reader, positioned after it.
pub async fn assert_dead_lettered(
    kafka: &KafkaConfig,
    run: &str,
    vin: &Vin,
    payload: &[u8],
    stage: &str,
    reason: &str,
) -> KafkaConsumer {
    let reader = kafka
        .consumer(
            &format!("dead-reader-{run}"),
            &[inland_core::topics::DEAD_LETTER],
        )
        .unwrap();
    let dead = records_for(&reader, vin, 1, Duration::from_secs(60)).await;
    assert_eq!(dead.len(), 1, "the malformed record is dead-lettered");
    let dead = &dead[0].record;
    assert_eq!(dead.payload, payload, "dead letters carry the input");
    let why = String::from_utf8(dead.header(DEAD_LETTER_REASON).unwrap().to_vec()).unwrap();
    assert!(why.contains(reason), "{why}");
    assert_eq!(dead.header(DEAD_LETTER_STAGE).unwrap(), stage.as_bytes());
    reader
}
