//! Gateway throughput and ack latency over mTLS into the real broker, side by side with a
//! bare rdkafka producer writing the same bytes with the same settings and the same number
//! of records in flight (the ceiling).
//!
//! Needs a broker (`scripts/kafka.sh start`) and a release `inland` binary; `make
//! bench-gateway` provides both, and the broker's pid (INLAND_KAFKA_PID) so the CPU of
//! every process on the machine is accounted per record. The gateway runs as its own
//! process so its peak RSS is its own. Knobs: BENCH_VEHICLES (default 40), BENCH_WINDOW
//! in-flight per vehicle (32), BENCH_SECONDS per side (20), BENCH_WARMUP (20) seconds of the
//! bare producer's load before any side, unmeasured. Each vehicle's owner grants
//! telemetry consent through the gateway's ConsentService (as its HMI would) before the
//! measurement, so every upload passes the consent check, as in a consenting fleet.
//!
//! A third side measures the floor under any gateway on this stack: this binary again, as
//! a server on the gateway's transport (`inland_gateway::transport`: mutual TLS, HTTP/2,
//! its windows, gRPC with the gateway's codec) that produces the bare producer's record
//! for every upload with the gateway's Kafka client and acks it once durable, checking,
//! deduplicating and tracing nothing, under the same load. What it reaches is what the
//! gateway could reach if its own work were free.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::{BufMut, Bytes};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use inland_benches::{
    cpu_seconds, delete_topics, latency_histogram, peak_rss_mib, percentiles_ms, record,
};
use inland_core::Vin;
use inland_gateway::GatewayTls;
use inland_proto::consent::v1::consent_service_client::ConsentServiceClient;
use inland_proto::consent::v1::{
    Category, Channel as ConsentChannel, GrantRequest, Notice, Subject,
};
use inland_proto::ingest::v1::in_place::vehicle_ingest_server::{
    VehicleIngest, VehicleIngestServer,
};
use inland_proto::ingest::v1::{
    AckStatus, Sample, TelemetryBatch, UploadAck, UploadBatchResponse, UploadRequest, sample,
    upload_request,
};
use inland_proto::pipeline::v1::RawRecord;
use inland_stage::{KafkaConfig, KafkaProducer, Producer, Record, TopicSpec};
use inland_tls::{ClientTls, DevCerts, ServerTls};
use prost::Message;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::Mutex;
use tonic::Status;
use tonic::transport::Endpoint;

const PARTITIONS: i32 = 6;
/// Issue 2: the gateway's throughput at least this share of the bare producer's.
const TARGET_RATIO: f64 = 0.70;
/// Set (to its port, the certificates' directory and the topic it produces to) when this
/// binary runs as the floor's server.
const FLOOR_PORT: &str = "BENCH_FLOOR_PORT";
const FLOOR_CERTS: &str = "BENCH_FLOOR_CERTS";
const FLOOR_TOPIC: &str = "BENCH_FLOOR_TOPIC";

/// The same allocator as the `inland` binary, for both sides of the comparison.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sends requests the load generator encoded up front, so the generator's own CPU (it
/// shares the machine with the gateway and the broker) stays small, like the bare
/// producer's, and the comparison measures the gateway.
#[derive(Clone, Default)]
struct PreEncoded;

struct BytesEncoder;

impl tonic::codec::Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> std::result::Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Codec for PreEncoded {
    type Encode = Bytes;
    type Decode = UploadAck;
    type Encoder = BytesEncoder;
    type Decoder = tonic_prost::ProstDecoder<UploadAck>;
    fn encoder(&mut self) -> BytesEncoder {
        BytesEncoder
    }
    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

/// An upload without its message id, encoded once; [`with_id`] prepends the id field
/// (protobuf fields may come in any order).
fn upload_template() -> Vec<u8> {
    upload(String::new()).encode_to_vec()
}

fn with_id(template: &[u8], id: &str) -> Bytes {
    let mut buf = Vec::with_capacity(template.len() + id.len() + 4);
    prost::encoding::string::encode(1, &id.to_owned(), &mut buf);
    buf.extend_from_slice(template);
    buf.into()
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Load {
    vehicles: usize,
    window: usize,
    duration: Duration,
}

struct Result {
    records: u64,
    bytes: u64,
    elapsed: Duration,
    p50_ms: f64,
    p99_ms: f64,
}

impl Result {
    fn per_second(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }
    fn print(&self, name: &str) {
        println!(
            "{name:<22} {:>10.0} records/s {:>7.1} MB/s   ack p50 {:>6.2} ms  p99 {:>6.2} ms",
            self.per_second(),
            self.bytes as f64 / self.elapsed.as_secs_f64() / 1e6,
            self.p50_ms,
            self.p99_ms
        );
    }
}

fn vins(n: usize) -> Vec<Vin> {
    (0..n).map(vin).collect()
}

fn vin(i: usize) -> Vin {
    Vin::parse(&format!("LBENCH{i:011}")).unwrap()
}

/// One upload as a vehicle sends it: a second of 10 Hz speed and position samples.
fn upload(message_id: String) -> UploadRequest {
    let now = SystemTime::now();
    let mut samples = Vec::with_capacity(30);
    for i in 0..10 {
        let time = Some((now - Duration::from_millis(100 * (10 - i))).into());
        let f = i as f64;
        samples.push(Sample {
            path: "Vehicle.Speed".into(),
            time,
            value: Some(sample::Value::FloatValue(42.0 + i as f32)),
        });
        samples.push(Sample {
            path: "Vehicle.CurrentLocation.Latitude".into(),
            time,
            value: Some(sample::Value::DoubleValue(39.9 + f * 1e-5)),
        });
        samples.push(Sample {
            path: "Vehicle.CurrentLocation.Longitude".into(),
            time,
            value: Some(sample::Value::DoubleValue(116.4 + f * 1e-5)),
        });
    }
    UploadRequest {
        message_id,
        recorded_at: Some(now.into()),
        vin: String::new(),
        driver_profile_id: String::new(),
        payload: Some(upload_request::Payload::Telemetry(TelemetryBatch {
            samples,
        })),
    }
}

/// The exact record bytes the gateway writes for an upload, for the bare producer.
fn raw_bytes(vin: &Vin) -> Vec<u8> {
    let req = upload("bench-0".into());
    let Some(upload_request::Payload::Telemetry(batch)) = req.payload else {
        unreachable!()
    };
    RawRecord {
        message_id: req.message_id,
        vin: vin.as_str().into(),
        recorded_at: req.recorded_at,
        received_at: Some(SystemTime::now().into()),
        // As the gateway writes it for a vehicle consented for the default purposes.
        purposes: vec!["driving_statistics".into(), "road_imagery".into()],
        precise_location_purposes: vec![],
        payload: Some(inland_proto::pipeline::v1::raw_record::Payload::Telemetry(
            batch,
        )),
    }
    .encode_to_vec()
}

async fn bare_producer(kafka: &KafkaConfig, topic: &str, load: &Load) -> Result {
    // The settings the gateway's producer uses (inland_stage::KafkaConfig::producer).
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("linger.ms", kafka.linger_ms.to_string())
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("bare producer");
    let vins = vins(load.vehicles);
    let payload = raw_bytes(&vins[0]);
    let hist = Arc::new(Mutex::new(latency_histogram()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for vin in vins {
        let (producer, payload, hist, topic) = (
            producer.clone(),
            payload.clone(),
            hist.clone(),
            topic.to_owned(),
        );
        let (window, until) = (load.window, start + load.duration);
        tasks.push(tokio::spawn(async move {
            let mut in_flight = FuturesUnordered::new();
            let mut sent = 0u64;
            let mut local = latency_histogram();
            loop {
                while in_flight.len() < window && Instant::now() < until {
                    let (p, payload, topic, key) = (
                        producer.clone(),
                        payload.clone(),
                        topic.clone(),
                        vin.as_str().to_owned(),
                    );
                    in_flight.push(async move {
                        let t = Instant::now();
                        let rec = FutureRecord::to(&topic).key(&key).payload(&payload);
                        p.send(rec, Duration::from_secs(30))
                            .await
                            .expect("delivery");
                        t.elapsed()
                    });
                }
                match in_flight.next().await {
                    Some(latency) => {
                        record(&mut local, latency);
                        sent += 1;
                    }
                    None => break,
                }
            }
            hist.lock().await.add(&local).unwrap();
            sent
        }));
    }
    let mut records = 0;
    for t in tasks {
        records += t.await.unwrap();
    }
    let elapsed = start.elapsed();
    let (p50_ms, p99_ms) = percentiles_ms(&*hist.lock().await);
    Result {
        records,
        bytes: records * payload.len() as u64,
        elapsed,
        p50_ms,
        p99_ms,
    }
}

/// What the vehicle's HMI sends once its owner agreed to telemetry for driving statistics.
fn grant(vin: &Vin) -> GrantRequest {
    GrantRequest {
        subject: Some(Subject {
            vin: vin.as_str().into(),
            driver_profile_id: String::new(),
        }),
        categories: vec![Category::Telemetry as i32],
        purposes: vec!["driving_statistics".into()],
        notice: Some(Notice {
            version: "bench-1".into(),
            sha256: "be".repeat(32),
        }),
        channel: ConsentChannel::VehicleHmi as i32,
        actor: "owner".into(),
    }
}

fn start_gateway(
    kafka: &KafkaConfig,
    topic: &str,
    consent_topic: &str,
    certs: &DevCerts,
    port: u16,
) -> Child {
    let bin = std::env::var("INLAND_BIN")
        .expect("INLAND_BIN must name a release `inland` binary (make bench-gateway sets it)");
    Command::new(bin)
        .arg("gateway")
        .env("INLAND__KAFKA__BOOTSTRAP_SERVERS", &kafka.bootstrap_servers)
        .env("INLAND__TOPICS__CREATE_ON_START", "false")
        .env("INLAND__GATEWAY__RAW_TOPIC", topic)
        .env("INLAND__GATEWAY__CONSENT_TOPIC", consent_topic)
        .env("INLAND__GATEWAY__LISTEN", format!("127.0.0.1:{port}"))
        .env("INLAND__GATEWAY__RATE_PER_VEHICLE", "1000000")
        .env("INLAND__GATEWAY__BURST_PER_VEHICLE", "1000000")
        .env("INLAND__GATEWAY__TLS__CERT", certs.server_cert())
        .env("INLAND__GATEWAY__TLS__KEY", certs.server_key())
        .env("INLAND__GATEWAY__TLS__CLIENT_CA", certs.ca_cert())
        .env("INLAND__OBSERVABILITY__ADMIN_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the gateway")
}

/// The floor's service: a gateway stripped to what any gateway must do. It receives over
/// the gateway's transport and, for every upload, produces the bare producer's record (its
/// key and payload, encoded once up front) with the gateway's Kafka client, and acks once
/// it is durable; no checks, no dedup, no consent, no tracing, no metrics.
struct Forward {
    producer: KafkaProducer,
    topic: String,
    payload: Bytes,
    /// Streams opened so far: each stream is one vehicle and gets its VIN as the key.
    streams: AtomicUsize,
}

struct Floor(Arc<Forward>);

#[tonic::async_trait]
impl VehicleIngest for Floor {
    type UploadStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = std::result::Result<UploadAck, Status>> + Send>,
    >;

    async fn upload(
        &self,
        request: tonic::Request<
            tonic::Streaming<inland_proto::ingest::v1::in_place::UploadRequest>,
        >,
    ) -> std::result::Result<tonic::Response<Self::UploadStream>, Status> {
        let n = self.0.streams.fetch_add(1, Ordering::Relaxed);
        let key = Bytes::from(vin(n).as_str().to_owned());
        let floor = self.0.clone();
        let acks = request
            .into_inner()
            .map(move |upload| {
                let (floor, key) = (floor.clone(), key.clone());
                async move {
                    let upload = upload?;
                    let record = Record {
                        key,
                        payload: floor.payload.clone(),
                        headers: Vec::new(),
                        timestamp_ms: None,
                    };
                    floor
                        .producer
                        .send(&floor.topic, record)
                        .await
                        .map_err(|e| Status::unavailable(e.to_string()))?;
                    Ok(UploadAck {
                        message_id: upload.message_id,
                        status: AckStatus::Accepted as i32,
                        code: 0,
                        reason: String::new(),
                    })
                }
            })
            // More than the load keeps in flight: the vehicles' window bounds it.
            .buffer_unordered(1024);
        Ok(tonic::Response::new(Box::pin(acks)))
    }

    async fn upload_batch(
        &self,
        _: tonic::Request<inland_proto::ingest::v1::in_place::UploadBatchRequest>,
    ) -> std::result::Result<tonic::Response<UploadBatchResponse>, Status> {
        Err(Status::unimplemented("the floor serves the stream only"))
    }
}

/// Runs as the floor's server until killed.
async fn serve_floor(port: &str, certs: &str, bootstrap: &str, topic: &str) {
    let certs = DevCerts::new(std::path::Path::new(certs));
    let tls = GatewayTls::Mutual(ServerTls::from_dev_certs(&certs));
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
        .await
        .expect("bind the floor");
    let forward = Forward {
        producer: KafkaConfig::new(bootstrap)
            .producer()
            .expect("the gateway's Kafka client"),
        topic: topic.into(),
        payload: raw_bytes(&vin(0)).into(),
        streams: AtomicUsize::new(0),
    };
    inland_gateway::transport(&tls)
        .expect("the gateway's transport")
        .add_service(VehicleIngestServer::new(Floor(Arc::new(forward))))
        .serve_with_incoming(inland_gateway::accepted(listener))
        .await
        .expect("serve the floor");
}

fn start_floor(certs: &std::path::Path, port: u16, bootstrap: &str, topic: &str) -> Child {
    Command::new(std::env::current_exe().expect("this bench's path"))
        .env(FLOOR_PORT, port.to_string())
        .env(FLOOR_CERTS, certs)
        .env(FLOOR_TOPIC, topic)
        .env("INLAND_KAFKA_BOOTSTRAP", bootstrap)
        .stdout(Stdio::null())
        .spawn()
        .expect("start the floor")
}

/// Drives `load` through the server on `port`; with `grant_consent` each vehicle's consent
/// is granted first, through the gateway's ConsentService.
async fn through_gateway(
    port: u16,
    certs: &DevCerts,
    load: &Load,
    grant_consent: bool,
) -> (Result, u64) {
    let ca = inland_tls::FleetCa::load(certs).unwrap();
    let hist = Arc::new(Mutex::new(latency_histogram()));
    let payload_len = raw_bytes(&vin(0)).len() as u64;
    let mut clients = Vec::new();
    for vin in vins(load.vehicles) {
        let tls = ClientTls {
            server_ca_pem: ca.cert_pem().into(),
            server_name: "localhost".into(),
            identity: ca.issue_vehicle(&vin).unwrap(),
        };
        let channel = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
            .unwrap()
            .tls_config(tls.config())
            .unwrap();
        let channel = channel.connect().await.expect("connect to the gateway");
        if grant_consent {
            ConsentServiceClient::new(channel.clone())
                .grant(grant(&vin))
                .await
                .expect("the vehicle's HMI grants telemetry consent");
        }
        clients.push((vin, tonic::client::Grpc::new(channel)));
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (v, (vin, mut client)) in clients.into_iter().enumerate() {
        let hist = hist.clone();
        let (window, until) = (load.window, start + load.duration);
        tasks.push(tokio::spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(window);
            client.ready().await.expect("gateway ready");
            let path = tonic::codegen::http::uri::PathAndQuery::from_static(
                "/inland.ingest.v1.VehicleIngest/Upload",
            );
            let mut acks = client
                .streaming(tonic::Request::new(tokio_stream_from(rx)), path, PreEncoded)
                .await
                .expect("open stream")
                .into_inner();
            let template = upload_template();
            let mut sent_at = std::collections::HashMap::new();
            let mut local = latency_histogram();
            let (mut seq, mut accepted, mut other) = (0u64, 0u64, 0u64);
            loop {
                while sent_at.len() < window && Instant::now() < until {
                    let id = format!("{v}-{seq}");
                    seq += 1;
                    sent_at.insert(id.clone(), Instant::now());
                    tx.send(with_id(&template, &id)).await.expect("send");
                }
                if sent_at.is_empty() {
                    break;
                }
                let ack = acks.next().await.expect("ack stream ended").expect("ack");
                let t = sent_at
                    .remove(&ack.message_id)
                    .expect("ack names a sent message");
                if ack.status == AckStatus::Accepted as i32 {
                    record(&mut local, t.elapsed());
                    accepted += 1;
                } else {
                    other += 1;
                }
            }
            drop(tx);
            hist.lock().await.add(&local).unwrap();
            let _ = vin;
            (accepted, other)
        }));
    }
    let (mut records, mut not_accepted) = (0, 0);
    for t in tasks {
        let (a, o) = t.await.unwrap();
        records += a;
        not_accepted += o;
    }
    let elapsed = start.elapsed();
    let (p50_ms, p99_ms) = percentiles_ms(&*hist.lock().await);
    (
        Result {
            records,
            bytes: records * payload_len,
            elapsed,
            p50_ms,
            p99_ms,
        },
        not_accepted,
    )
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn wait_for_port(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the gateway did not start listening on {port}");
}

#[tokio::main]
async fn main() {
    let bootstrap = std::env::var("INLAND_KAFKA_BOOTSTRAP")
        .expect("INLAND_KAFKA_BOOTSTRAP: run scripts/kafka.sh start");
    if let (Ok(port), Ok(certs), Ok(topic)) = (
        std::env::var(FLOOR_PORT),
        std::env::var(FLOOR_CERTS),
        std::env::var(FLOOR_TOPIC),
    ) {
        return serve_floor(&port, &certs, &bootstrap, &topic).await;
    }
    let kafka = KafkaConfig::new(bootstrap.clone());
    let load = Load {
        vehicles: env_or("BENCH_VEHICLES", 40),
        window: env_or("BENCH_WINDOW", 32),
        duration: Duration::from_secs(env_or("BENCH_SECONDS", 20) as u64),
    };
    let run = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (bare_topic, gw_topic, consent_topic, floor_topic) = (
        format!("inland.bench.bare.{run}"),
        format!("inland.bench.gateway.{run}"),
        format!("inland.bench.consent.{run}"),
        format!("inland.bench.floor.{run}"),
    );
    let spec = |name: &str| TopicSpec {
        name: name.into(),
        partitions: PARTITIONS,
        retention_ms: 600_000,
        compacted: false,
    };
    let consent_spec = TopicSpec {
        compacted: true,
        ..spec(&consent_topic)
    };
    kafka
        .ensure_topics(&[
            spec(&bare_topic),
            spec(&gw_topic),
            spec(&floor_topic),
            consent_spec,
        ])
        .await
        .expect("create bench topics");

    let certs_dir = tempfile::tempdir().unwrap();
    let certs = DevCerts::new(certs_dir.path());
    certs.generate(&["localhost".into()], &[]).unwrap();
    let port = 50000 + (run % 10000) as u16;
    let mut gateway = start_gateway(&kafka, &gw_topic, &consent_topic, &certs, port);
    wait_for_port(port).await;

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "gateway bench: {} vehicles x {} in flight, {} s per side, {PARTITIONS} partitions, {cores} cores",
        load.vehicles,
        load.window,
        load.duration.as_secs(),
    );
    let broker = std::env::var("INLAND_KAFKA_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok());
    let cpu = |pid: Option<u32>| pid.and_then(cpu_seconds).unwrap_or(f64::NAN);
    let (me, gw_pid) = (Some(std::process::id()), Some(gateway.id()));

    // A freshly started broker is slower for a while: most of that now falls on no side.
    let warm_up = Load {
        duration: Duration::from_secs(env_or("BENCH_WARMUP", 20) as u64),
        ..load
    };
    bare_producer(&kafka, &bare_topic, &warm_up).await;

    let (bench0, broker0) = (cpu(me), cpu(broker));
    let bare = bare_producer(&kafka, &bare_topic, &load).await;
    let [producer, bare_broker] =
        micros_per_record(bare.records, [cpu(me) - bench0, cpu(broker) - broker0]);
    bare.print("bare rdkafka producer");

    let (bench0, broker0, gw0) = (cpu(me), cpu(broker), cpu(gw_pid));
    let (gw, not_accepted) = through_gateway(port, &certs, &load, true).await;
    let [clients, broker_cpu, gateway_cpu] = micros_per_record(
        gw.records,
        [cpu(me) - bench0, cpu(broker) - broker0, cpu(gw_pid) - gw0],
    );
    gw.print("gateway over mTLS");
    let rss = peak_rss_mib(gateway.id());
    gateway.kill().ok();
    gateway.wait().ok();
    println!(
        "gateway/bare throughput ratio: {:.2}",
        gw.per_second() / bare.per_second()
    );
    println!(
        "CPU per record: bare side producer {producer:.1} + broker {bare_broker:.1} µs; \
         gateway side vehicles' clients {clients:.1} + broker {broker_cpu:.1} + gateway {gateway_cpu:.1} µs \
         ({:.2} cores busy in the gateway)",
        gateway_cpu * gw.records as f64 / 1e6 / gw.elapsed.as_secs_f64()
    );
    // The broker keeps about the same share of the machine busy at any rate (its produce
    // requests carry bigger batches as the rate grows: 0.4-0.65 cores on either side), so
    // it is counted in cores and the clients per record; what the cores leave is what the
    // gateway may cost per upload to reach the target.
    let broker_cores = |micros: f64, per_second: f64| micros * per_second / 1e6;
    let beside_gateway = broker_cores(broker_cpu, gw.per_second());
    let target = TARGET_RATIO * bare.per_second();
    let budget = (cores as f64 - beside_gateway) * 1e6 / target - clients;
    println!(
        "broker busy: {:.2} cores beside the bare producer, {beside_gateway:.2} beside the gateway; \
         for {TARGET_RATIO} of bare ({target:.0} records/s) the gateway may cost {budget:.1} µs per upload",
        broker_cores(bare_broker, bare.per_second()),
    );
    println!(
        "gateway peak RSS: {} MiB; uploads not accepted: {not_accepted}",
        rss.map_or("?".into(), |r| format!("{r:.0}"))
    );

    let floor_port = port + 1;
    let mut floor = start_floor(certs_dir.path(), floor_port, &bootstrap, &floor_topic);
    wait_for_port(floor_port).await;
    let floor_pid = Some(floor.id());
    let (bench0, broker0, floor0) = (cpu(me), cpu(broker), cpu(floor_pid));
    let (floored, _) = through_gateway(floor_port, &certs, &load, false).await;
    let [floor_clients, floor_broker, floor_cpu] = micros_per_record(
        floored.records,
        [
            cpu(me) - bench0,
            cpu(broker) - broker0,
            cpu(floor_pid) - floor0,
        ],
    );
    floor.kill().ok();
    floor.wait().ok();
    floored.print("floor: transport+Kafka");
    println!(
        "floor/bare throughput ratio: {:.2} (the gateway's transport and Kafka client alone); \
         CPU per record: clients {floor_clients:.1} + broker {floor_broker:.1} + floor {floor_cpu:.1} µs",
        floored.per_second() / bare.per_second()
    );
    delete_topics(
        &bootstrap,
        &[&bare_topic, &gw_topic, &floor_topic, &consent_topic],
    )
    .await;
}

/// CPU seconds of the processes on one side as µs per accepted record (NaN where a
/// process could not be read, e.g. without INLAND_KAFKA_PID).
fn micros_per_record<const N: usize>(records: u64, cpu_seconds: [f64; N]) -> [f64; N] {
    cpu_seconds.map(|s| s * 1e6 / records.max(1) as f64)
}
