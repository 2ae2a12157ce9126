//! The simulator against a real gateway on loopback, producing to the in-process bus.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use inland_consent::{ConsentLog, ConsentView, ViewOptions};
use inland_core::topics::{CONSENT, RAW};
use inland_gateway::{Gateway, GatewayConfig};
use inland_proto::pipeline::v1::{RawRecord, raw_record};
use inland_simulator::{SimulatorConfig, Summary, run, vins};
use inland_stage::{Consumer, MemoryBus, MemoryBusConfig, Record, TopicSpec};
use inland_tls::DevCerts;
use prost::Message;
use tokio_util::sync::CancellationToken;

/// A serving gateway; it stops when the token is dropped.
struct Running {
    addr: SocketAddr,
    bus: MemoryBus,
    _stop: tokio_util::sync::DropGuard,
}

async fn start_gateway(certs: Option<&DevCerts>) -> Running {
    let bus = MemoryBus::new(MemoryBusConfig::default());
    bus.ensure_topics(&[
        TopicSpec {
            name: RAW.into(),
            partitions: 4,
            retention_ms: 3_600_000,
            compacted: false,
        },
        TopicSpec {
            name: CONSENT.into(),
            partitions: 4,
            retention_ms: -1,
            compacted: true,
        },
    ])
    .unwrap();
    let mut config = GatewayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    match certs {
        Some(files) => config.tls = Some(inland_tls::ServerTls::from_dev_certs(files)),
        None => config.insecure_plaintext = true,
    }
    let consent = ConsentLog {
        view: ConsentView::on_memory_bus(&bus, CONSENT, ViewOptions::default())
            .await
            .unwrap(),
        producer: Arc::new(bus.clone()),
    };
    let gateway = Gateway::bind(config, Arc::new(bus.clone()), consent)
        .await
        .unwrap();
    let addr = gateway.local_addr();
    let stop = CancellationToken::new();
    let serving = stop.clone();
    tokio::spawn(async move { gateway.serve(serving.cancelled_owned()).await });
    Running {
        addr,
        bus,
        _stop: stop.drop_guard(),
    }
}

fn fast(gateway: String, vehicles: usize, count: u64) -> SimulatorConfig {
    SimulatorConfig {
        gateway,
        vehicles,
        batches_per_second: 20.0,
        frames_per_minute: 240.0,
        frame_width: 160,
        frame_height: 90,
        count: Some(count),
        seed: 7,
        in_flight: 4,
        drain: Duration::from_secs(10),
        ..Default::default()
    }
}

async fn simulate(config: SimulatorConfig, certs: Option<&Path>) -> Summary {
    tokio::time::timeout(
        Duration::from_secs(60),
        run(config, certs, false, CancellationToken::new()),
    )
    .await
    .expect("the run ends by itself")
    .expect("the run succeeds")
}

/// Everything on the raw topic, read until it stays quiet.
async fn raw_records(bus: &MemoryBus) -> Vec<Record> {
    let consumer = bus.consumer("t", &[RAW]).unwrap();
    let mut records = Vec::new();
    while let Ok(consumed) = tokio::time::timeout(Duration::from_secs(2), consumer.recv()).await {
        records.push(consumed.unwrap().record);
    }
    records
}

/// Every consent event on the consent topic.
async fn consent_events(bus: &MemoryBus) -> Vec<inland_consent::proto::ConsentEvent> {
    let consumer = bus.consumer("c", &[CONSENT]).unwrap();
    let mut events = Vec::new();
    while let Ok(consumed) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await {
        events.push(inland_consent::decode_event(&consumed.unwrap().record.payload).unwrap());
    }
    events
}

/// Checks that the raw topic holds exactly the summary's uploads, each once, keyed by the
/// fleet's VINs; returns uploads per VIN.
fn check_records(records: &[Record], summary: &Summary, seed: u64) -> BTreeMap<String, usize> {
    assert_eq!(records.len() as u64, summary.sent);
    let fleet: HashSet<String> = vins(seed, summary.vehicles)
        .iter()
        .map(|v| v.as_str().to_owned())
        .collect();
    let mut per_vin = BTreeMap::new();
    let mut ids = HashSet::new();
    let mut frames = 0;
    for record in records {
        let key = String::from_utf8(record.key.to_vec()).unwrap();
        assert!(fleet.contains(&key), "keyed by a simulated VIN");
        let raw = RawRecord::decode(record.payload.clone()).unwrap();
        assert_eq!(raw.vin, key);
        assert!(ids.insert((key.clone(), raw.message_id)), "stored once");
        match raw.payload.unwrap() {
            raw_record::Payload::Telemetry(batch) => assert_eq!(batch.samples.len(), 10 * 8),
            raw_record::Payload::Frame(frame) => {
                assert!(frame.jpeg.starts_with(&[0xFF, 0xD8, 0xFF]));
                assert!(frame.position.is_some());
                frames += 1;
            }
        }
        *per_vin.entry(key).or_insert(0) += 1;
    }
    assert_eq!(frames, summary.frames);
    per_vin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_over_mutual_tls_is_stored_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let certs = DevCerts::new(dir.path());
    certs.generate(&["localhost".into()], &[]).unwrap();
    let gateway = start_gateway(Some(&certs)).await;

    let config = fast(format!("https://127.0.0.1:{}", gateway.addr.port()), 3, 40);
    let summary = simulate(config, Some(dir.path())).await;
    println!("{summary}");
    assert_eq!(summary.sent, 40);
    assert_eq!(summary.accepted, 40, "{summary}");
    assert_eq!(
        (summary.duplicate, summary.rejected, summary.unacked),
        (0, 0, 0)
    );
    assert!(summary.telemetry > 0 && summary.frames > 0, "{summary}");
    assert!(summary.latency_ms.max > 0.0);

    let per_vin = check_records(&raw_records(&gateway.bus).await, &summary, 7);
    let mut counts: Vec<usize> = per_vin.into_values().collect();
    counts.sort();
    assert_eq!(counts, [13, 13, 14], "the count is split over the vehicles");

    // Each simulated owner granted consent through the vehicle's HMI, with the notice.
    let events = consent_events(&gateway.bus).await;
    assert_eq!(events.len(), 3);
    for event in &events {
        use inland_consent::proto::{Category, Channel, consent_event};
        assert_eq!(event.channel, Channel::VehicleHmi as i32);
        assert_eq!(event.actor.as_ref().unwrap().principal, "vehicle");
        let Some(consent_event::Change::Granted(g)) = &event.change else {
            panic!("a grant")
        };
        assert_eq!(
            g.categories,
            [
                Category::Telemetry,
                Category::PreciseLocation,
                Category::CameraFrames
            ]
            .map(|c| c as i32)
        );
        assert_eq!(g.purposes, ["driving_statistics", "road_imagery"]);
        let notice = g.notice.as_ref().unwrap();
        assert_eq!(notice.version, "simulator-1");
        assert_eq!(notice.sha256, inland_simulator::consent::notice_sha256());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_mode_names_vehicles_by_header() {
    let gateway = start_gateway(None).await;
    let config = fast(format!("http://127.0.0.1:{}", gateway.addr.port()), 2, 10);
    let summary = simulate(config, None).await;
    assert_eq!(
        (summary.sent, summary.accepted, summary.rejected),
        (10, 10, 0)
    );
    let per_vin = check_records(&raw_records(&gateway.bus).await, &summary, 7);
    assert_eq!(per_vin.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failures_are_counted_and_the_run_still_ends() {
    // Two unrelated CAs: the vehicle cannot verify the gateway, nor the gateway the vehicle.
    let (gateway_dir, fleet_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let gateway_certs = DevCerts::new(gateway_dir.path());
    gateway_certs.generate(&["localhost".into()], &[]).unwrap();
    DevCerts::new(fleet_dir.path())
        .generate(&["localhost".into()], &[])
        .unwrap();
    let gateway = start_gateway(Some(&gateway_certs)).await;
    let config = SimulatorConfig {
        duration: Some(Duration::from_secs(1)),
        count: None,
        drain: Duration::from_millis(200),
        ..fast(format!("https://127.0.0.1:{}", gateway.addr.port()), 1, 1)
    };
    let summary = simulate(config, Some(fleet_dir.path())).await;
    assert_eq!(summary.accepted, 0);
    assert!(summary.stream_errors > 0, "{summary}");
    assert_eq!(summary.unacked, summary.sent);
}

/// A TCP relay to the gateway whose connections can all be cut at once, as a flaky
/// mobile network would.
struct Relay {
    addr: SocketAddr,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tracked = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tracked.lock().unwrap().push(relay);
            }
        });
        Self { addr, connections }
    }

    fn cut(&self) -> usize {
        let cut: Vec<_> = self.connections.lock().unwrap().drain(..).collect();
        cut.iter().for_each(|c| c.abort());
        cut.len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_streams_resume_and_every_upload_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let certs = DevCerts::new(dir.path());
    certs.generate(&["localhost".into()], &[]).unwrap();
    let gateway = start_gateway(Some(&certs)).await;
    let relay = Relay::start(gateway.addr).await;

    let config = fast(format!("https://127.0.0.1:{}", relay.addr.port()), 2, 80);
    let dir_path = dir.path().to_owned();
    let running = tokio::spawn(async move { simulate(config, Some(&dir_path)).await });
    let mut cuts = 0;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cuts += relay.cut();
    }
    let summary = running.await.unwrap();
    println!("{summary}");
    assert!(cuts >= 2, "both vehicles were connected");
    assert!(
        summary.stream_errors >= 2 && summary.reconnects >= 2,
        "{summary}"
    );
    assert_eq!(summary.sent, 80);
    assert_eq!(
        (
            summary.accepted + summary.duplicate,
            summary.rejected,
            summary.unacked
        ),
        (80, 0, 0),
        "{summary}"
    );
    // Resent uploads the gateway had stored were answered DUPLICATE, not stored again:
    // every upload is stored exactly once. (Not `accepted` records: an upload stored
    // whose ACCEPTED ack was lost in a cut is acked DUPLICATE when resent.)
    let records = raw_records(&gateway.bus).await;
    check_records(&records, &summary, 7);
}
