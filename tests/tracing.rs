//! One upload is one OpenTelemetry trace: the gateway's `gateway.upload` span continues
//! the vehicle's `traceparent`, each stage's `stage.process` span is a child of the
//! previous hop's span, linked through the record headers, and the archiver's
//! `archiver.store` span, once the record's batch is committed, is a child of the
//! anonymizer's and names the object the record went to. Runs on the in-process bus, a
//! local object store and a fake OTLP collector; needs no Kafka.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fake_opentelemetry_collector::{ExportedSpan, FakeCollectorServer};
use inland_anonymizer::{AnonymizerConfig, AnonymizerStage, FramesMode};
use inland_archiver::{Archiver, ArchiverConfig, Inputs};
use inland_core::{topics, vss};
use inland_gateway::GatewayConfig;
use inland_geofence::{GeofenceConfig, GeofenceStage};
use inland_proto::ingest::v1::{
    AckStatus, Sample, TelemetryBatch, UploadBatchRequest, UploadRequest, sample, upload_request,
};
use inland_stage::{
    Consumer, MemoryBus, MemoryBusConfig, Stage, StageConfig, TopicSpec, run_stage,
};
use inland_store::{LocalStore, ObjectStore};
use inland_tests::{TestGateway, random_vin};
use opentelemetry::trace::TracerProvider;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const VEHICLE_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const VEHICLE_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_upload_is_one_trace_from_the_gateway_to_the_stored_object() {
    let mut collector = FakeCollectorServer::start().await.unwrap();
    let provider =
        inland_stage::trace::otlp_tracer_provider(&collector.endpoint(), "inland-test", 1.0)
            .unwrap();
    // `info`, as `inland` logs by default: the exporter's own transport (tonic, h2) has
    // debug spans, which must not be exported.
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("inland")))
        .with(LevelFilter::INFO)
        .init();

    let bus = MemoryBus::new(MemoryBusConfig::default());
    let specs: Vec<TopicSpec> = [
        topics::RAW,
        topics::GEOFENCED,
        topics::ANONYMIZED,
        topics::CONSENT,
        topics::ERASURE,
        topics::DEAD_LETTER,
    ]
    .into_iter()
    .map(|name| TopicSpec {
        name: name.into(),
        partitions: 1,
        retention_ms: 3_600_000,
        compacted: false,
    })
    .collect();
    bus.ensure_topics(&specs).unwrap();
    let shutdown = CancellationToken::new();
    let geofence = GeofenceStage::start(&GeofenceConfig {
        zones_file: Some(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../crates/inland-geofence/zones/sample.geojson"
            )
            .into(),
        ),
        ..GeofenceConfig::default()
    })
    .unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("keys.toml");
    inland_anonymizer::keys::generate(&key_file).unwrap();
    let anonymizer = AnonymizerStage::start(&AnonymizerConfig {
        key_file: Some(key_file),
        frames: FramesMode::Drop,
        ..AnonymizerConfig::default()
    })
    .unwrap();
    let stages = [
        spawn(&bus, "geofence", topics::RAW, geofence, &shutdown),
        spawn(&bus, "anonymizer", topics::GEOFENCED, anonymizer, &shutdown),
    ];
    let reader = bus.consumer("reader", &[topics::ANONYMIZED]).unwrap();
    let objects = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::open(objects.path()).unwrap());
    let archiver_config = ArchiverConfig {
        // Written as soon as the tick after the record notices it.
        max_batch_age: Duration::from_millis(50),
        ..ArchiverConfig::default()
    };
    let archiver = tokio::spawn(
        Archiver::new(
            store.clone(),
            Arc::new(bus.clone()),
            archiver_config.clone(),
        )
        .unwrap()
        .run(
            Inputs::on_memory_bus(&bus, &archiver_config).unwrap(),
            shutdown.clone(),
        ),
    );

    let gateway = TestGateway::start(GatewayConfig::default(), Arc::new(bus.clone())).await;
    let mut client = gateway.consenting_vehicle(&random_vin()).await;
    let mut request = tonic::Request::new(UploadBatchRequest {
        requests: vec![drive_outside_every_zone()],
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{VEHICLE_TRACE}-{VEHICLE_SPAN}-01")
            .parse()
            .unwrap(),
    );
    let acks = client
        .upload_batch(request)
        .await
        .unwrap()
        .into_inner()
        .acks;
    assert_eq!(acks[0].status(), AckStatus::Accepted, "{acks:?}");
    tokio::time::timeout(Duration::from_secs(20), reader.recv())
        .await
        .expect("the record reaches the anonymized topic")
        .unwrap();
    let stored = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let files = store.list("dataset=telemetry/").await.unwrap();
            if !files.is_empty() {
                return files;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the archiver writes the record's telemetry");
    assert_eq!(stored.len(), 1, "{stored:?}");
    shutdown.cancel();
    for stage in stages {
        stage.await.unwrap().unwrap();
    }
    archiver.await.unwrap().unwrap();
    // Blocks until the batch is exported, so off the runtime's workers.
    tokio::task::spawn_blocking(move || provider.force_flush())
        .await
        .unwrap()
        .unwrap();

    let spans = collector.exported_spans(4, Duration::from_secs(10)).await;
    let upload = one(&spans, "gateway.upload", None);
    let geofence = one(&spans, "stage.process", Some("geofence"));
    let anonymizer = one(&spans, "stage.process", Some("anonymizer"));
    let archived = one(&spans, "archiver.store", Some("archiver"));
    for span in [upload, geofence, anonymizer, archived] {
        assert_eq!(span.trace_id, VEHICLE_TRACE, "{span:?}");
    }
    assert_eq!(upload.parent_span_id, VEHICLE_SPAN);
    assert_eq!(geofence.parent_span_id, upload.span_id);
    assert_eq!(anonymizer.parent_span_id, geofence.span_id);
    assert_eq!(archived.parent_span_id, anonymizer.span_id);
    assert!(
        archived.attributes["dataset"].contains("telemetry")
            && archived.attributes["key"].contains(&stored[0].key),
        "{archived:?} {stored:?}"
    );
    assert!(
        upload.attributes["outcome"].contains("accepted"),
        "{upload:?}"
    );
}

fn spawn(
    bus: &MemoryBus,
    name: &str,
    input: &str,
    stage: impl Stage,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<Result<(), inland_stage::Error>> {
    tokio::spawn(run_stage(
        stage,
        bus.consumer(name, &[input]).unwrap(),
        Arc::new(bus.clone()),
        StageConfig::new(name),
        shutdown.clone(),
    ))
}

/// The only span called `name` (of stage `stage`).
fn one<'a>(spans: &'a [ExportedSpan], name: &str, stage: Option<&str>) -> &'a ExportedSpan {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| stage.is_none_or(|stage| s.attributes["stage"].contains(stage)))
        .collect();
    assert_eq!(found.len(), 1, "{name} {stage:?} in {spans:#?}");
    found[0]
}

/// Speed and a position kilometres from every sample zone, so the geofence keeps it.
fn drive_outside_every_zone() -> UploadRequest {
    let now = SystemTime::now();
    let s = |path: &str, value| Sample {
        path: path.into(),
        time: Some(now.into()),
        value: Some(value),
    };
    UploadRequest {
        message_id: "t-1".into(),
        recorded_at: Some(now.into()),
        vin: String::new(),
        driver_profile_id: String::new(),
        payload: Some(upload_request::Payload::Telemetry(TelemetryBatch {
            samples: vec![
                s("Vehicle.Speed", sample::Value::FloatValue(40.0)),
                s(vss::LATITUDE, sample::Value::DoubleValue(39.99)),
                s(vss::LONGITUDE, sample::Value::DoubleValue(116.30)),
            ],
        })),
    }
}
