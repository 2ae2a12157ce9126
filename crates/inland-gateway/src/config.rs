use std::net::SocketAddr;
use std::time::Duration;

use inland_tls::ServerTls;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// Where accepted uploads go; tests and benchmarks use their own topic.
    pub raw_topic: String,
    /// The consent topic the gateway's view follows and its ConsentService appends to;
    /// tests and benchmarks use their own.
    pub consent_topic: String,
    /// Purposes consent can be granted for: the names of the anonymizer's purposes
    /// (`anonymizer.purposes`). A grant naming any other purpose is refused.
    pub consent_purposes: Vec<String>,
    /// Cameras that look outside the vehicle, by the first word of their `camera_id`
    /// (`front` covers `front`, `front-wide` and `front_left`; case does not matter).
    /// Frames of any other camera count as cabin camera and need cabin camera consent.
    pub exterior_cameras: Vec<String>,
    /// Server certificate and key, and the fleet CA vehicles' certificates chain to.
    /// `inland run` fills these from its dev certificates when unset.
    pub tls: Option<ServerTls>,
    /// Serve plain-text gRPC, identifying the vehicle by an `x-inland-vin` header. For
    /// local development only: refused unless `listen` is a loopback address.
    pub insecure_plaintext: bool,
    /// Largest encoded request accepted, in bytes (a camera frame is the large case).
    pub max_message_bytes: usize,
    /// Requests of one stream being processed at once; beyond it the gateway stops
    /// reading, so HTTP/2 flow control pushes back on the vehicle.
    pub max_in_flight_per_stream: usize,
    /// Most requests in one UploadBatch call.
    pub max_batch_requests: usize,
    /// Most samples in one telemetry batch.
    pub max_samples_per_batch: usize,
    /// Sustained uploads per second per vehicle (token bucket refill).
    pub rate_per_vehicle: u32,
    /// Uploads a vehicle may send in a burst (token bucket size).
    pub burst_per_vehicle: u32,
    /// How far in the future a timestamp may lie (vehicle clock drift).
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
    /// How old a recording may be (vehicles buffer while offline).
    #[serde(with = "humantime_serde")]
    pub max_record_age: Duration,
    /// How long a message id is remembered to answer retries `duplicate`.
    #[serde(with = "humantime_serde")]
    pub dedup_window: Duration,
    /// Most message ids remembered at once; the newest half always are. Bounds memory
    /// (≈ 150 bytes each) and so how far back retries are recognised under load: at
    /// 25 000 uploads/s, 200 000 ids cover 4 to 8 s; a retry older than that is stored
    /// again (at least once), and the anonymizer's `inland-record-id` header lets the
    /// archiver drop the copy.
    pub dedup_capacity: u64,
    /// How long to wait for the broker's delivery report before rejecting as unavailable.
    #[serde(with = "humantime_serde")]
    pub delivery_timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            raw_topic: inland_core::topics::RAW.into(),
            consent_topic: inland_core::topics::CONSENT.into(),
            consent_purposes: [
                "driving_statistics",
                "road_imagery",
                "map_improvement",
                "driver_assistance_training",
            ]
            .map(str::to_owned)
            .to_vec(),
            exterior_cameras: [
                "front", "rear", "left", "right", "side", "surround", "exterior",
            ]
            .map(str::to_owned)
            .to_vec(),
            tls: None,
            insecure_plaintext: false,
            max_message_bytes: 8 << 20,
            max_in_flight_per_stream: 256,
            max_batch_requests: 1000,
            max_samples_per_batch: 10_000,
            rate_per_vehicle: 200,
            burst_per_vehicle: 400,
            max_clock_skew: Duration::from_secs(300),
            max_record_age: Duration::from_secs(7 * 24 * 3600),
            dedup_window: Duration::from_secs(600),
            dedup_capacity: 200_000,
            delivery_timeout: Duration::from_secs(30),
        }
    }
}
