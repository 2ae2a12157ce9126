//! The geofence pipeline stage: reads `RawRecord`s from `inland.raw.v1` and forwards to
//! `inland.geofenced.v1` what lies outside every protected zone and its buffer, failing
//! closed wherever a position cannot be trusted.
//!
//! Telemetry is filtered per sample. The instant of a sample is its `time`, else the
//! record's `recorded_at`. Every instant with a latitude or longitude sample is an anchor;
//! an anchor is dropped when its position is caught by a zone or is not a position at all
//! (a coordinate without its partner, a value that is not a number). Every other sample
//! follows the anchors: the one at its own instant; between two anchors it goes only when
//! both went; before the first or after the last it follows that one. A batch without
//! anchors reveals no location and is kept whole.
//!
//! A frame is kept only when its capture position is present, fixed within
//! `max_position_age` of the capture, of known accuracy within `max_accuracy_m`, and
//! outside every zone and buffer.
//!
//! Only fields this build knows pass: a record is forwarded as read only when nothing was
//! dropped and it has no unknown field; otherwise what is kept is re-encoded, which leaves
//! unknown fields behind, so a newer schema cannot carry a position past the geofence.

use std::path::PathBuf;
use std::time::Duration;

use inland_core::topics;
use inland_core::vss;
use inland_proto::Timestamp;
use inland_proto::ingest::v1::{CameraFrame, Position, Sample, TelemetryBatch, sample};
use inland_proto::pipeline::v1::{RAW_RECORD_SCHEMA, RawRecord, raw_record};
use inland_stage::{Consumed, Output, Stage, StageError};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::{Error, ZoneSet, ZoneWatcher, metrics};

/// The header naming a record's schema, as the gateway writes it.
const SCHEMA_HEADER: &str = "inland-schema";

/// The `geofence` configuration section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeofenceConfig {
    /// The zone file (GeoJSON FeatureCollection, see `inland zones check`). Unset, the
    /// stage refuses to start: without zones it would pass every record.
    pub zones_file: Option<PathBuf>,
    /// How often the zone file is re-read; a changed, valid file takes effect then.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
    /// Largest gap between a frame's capture and the fix of its position; beyond it the
    /// position may be somewhere else and the frame is dropped.
    #[serde(with = "humantime_serde")]
    pub max_position_age: Duration,
    /// Worst horizontal accuracy (1 sigma, metres) a frame's position may have; frames
    /// with a worse or unknown accuracy are dropped.
    pub max_accuracy_m: f64,
    /// Where kept records go; tests and benchmarks use their own topic.
    pub output_topic: String,
}

impl Default for GeofenceConfig {
    fn default() -> Self {
        Self {
            zones_file: None,
            reload_interval: Duration::from_secs(5),
            max_position_age: Duration::from_secs(10),
            max_accuracy_m: 50.0,
            output_topic: topics::GEOFENCED.into(),
        }
    }
}

/// The geofence [`Stage`]: one output with what is kept of a record, or none when nothing
/// is; records that are not a `RawRecord` are rejected (dead-lettered).
pub struct GeofenceStage {
    watcher: ZoneWatcher,
    output_topic: String,
    max_position_age_ns: i128,
    max_accuracy_m: f64,
}

/// Why a frame's position cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UntrustedPosition {
    Missing,
    Stale,
    Inaccurate,
}

impl UntrustedPosition {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "no_position",
            Self::Stale => "stale_position",
            Self::Inaccurate => "inaccurate_position",
        }
    }
}

impl GeofenceStage {
    /// Loads the configured zone file, starts watching it and builds the stage. Fails when
    /// no zone file is configured or it is invalid: the geofence never runs without zones.
    pub fn start(config: &GeofenceConfig) -> Result<Self, Error> {
        let path = config.zones_file.as_ref().ok_or_else(|| {
            Error::Config(
                "no zone file configured: set geofence.zones_file to a GeoJSON zone file \
                 (the geofence refuses to run without zones rather than pass every record)"
                    .into(),
            )
        })?;
        Self::new(ZoneWatcher::start(path, config.reload_interval)?, config)
    }

    /// The stage on zones already being watched; `config.zones_file` and
    /// `config.reload_interval` are the watcher's business and not read here.
    pub fn new(watcher: ZoneWatcher, config: &GeofenceConfig) -> Result<Self, Error> {
        // Written so that NaN fails.
        if !(config.max_accuracy_m > 0.0 && config.max_accuracy_m.is_finite()) {
            return Err(Error::Config(format!(
                "max_accuracy_m must be a positive number of metres, not {}",
                config.max_accuracy_m
            )));
        }
        Ok(Self {
            watcher,
            output_topic: config.output_topic.clone(),
            max_position_age_ns: i128::try_from(config.max_position_age.as_nanos())
                .unwrap_or(i128::MAX),
            max_accuracy_m: config.max_accuracy_m,
        })
    }

    fn keep_frame(
        &self,
        zones: &ZoneSet,
        frame: &CameraFrame,
        recorded_at: Option<&Timestamp>,
    ) -> bool {
        let kept = match self.trusted_position(frame, recorded_at) {
            Ok(p) => {
                let verdict = zones.check(p.latitude, p.longitude);
                metrics::verdict(&verdict);
                !verdict.is_drop()
            }
            Err(why) => {
                metrics::frame_untrusted(why);
                false
            }
        };
        metrics::frame(kept);
        kept
    }

    /// The frame's position if it says where the frame was taken. Non-finite coordinates
    /// are left to [`ZoneSet::check`], which fails them closed.
    fn trusted_position<'a>(
        &self,
        frame: &'a CameraFrame,
        recorded_at: Option<&Timestamp>,
    ) -> Result<&'a Position, UntrustedPosition> {
        let p = frame.position.as_ref().ok_or(UntrustedPosition::Missing)?;
        let captured = frame.captured_at.as_ref().or(recorded_at).map(nanos);
        // A capture or fix of unknown time, or a fix long before (or after) the capture,
        // does not say where the frame was taken.
        match (captured, p.fixed_at.as_ref().map(nanos)) {
            (Some(c), Some(f)) if (c - f).abs() <= self.max_position_age_ns => {}
            _ => return Err(UntrustedPosition::Stale),
        }
        // 0 means unknown; NaN and negatives fail too.
        let accuracy = f64::from(p.horizontal_accuracy_m);
        if !(accuracy > 0.0 && accuracy <= self.max_accuracy_m) {
            return Err(UntrustedPosition::Inaccurate);
        }
        Ok(p)
    }
}

#[async_trait::async_trait]
impl Stage for GeofenceStage {
    async fn process(&self, input: &Consumed) -> Result<Vec<Output>, StageError> {
        let record = &input.record;
        if record
            .header(SCHEMA_HEADER)
            .is_some_and(|schema| schema != RAW_RECORD_SCHEMA.as_bytes())
        {
            return Err(StageError::Reject(format!(
                "the {SCHEMA_HEADER} header names another schema than {RAW_RECORD_SCHEMA}; \
                 the stage reads the raw topic only"
            )));
        }
        let mut raw = RawRecord::decode(record.payload.clone()).map_err(|e| {
            StageError::Reject(format!("the payload is not a {RAW_RECORD_SCHEMA}: {e}"))
        })?;
        // One snapshot for the whole record, even if a reload lands meanwhile.
        let zones = self.watcher.zones();
        let recorded_at = raw.recorded_at.as_ref();
        let (kept, whole) = match raw.payload.take() {
            None => {
                return Err(StageError::Reject(
                    "the record has no payload (neither telemetry nor a frame)".into(),
                ));
            }
            Some(raw_record::Payload::Telemetry(batch)) => {
                let total = batch.samples.len();
                let samples = keep_samples(&zones, batch.samples, recorded_at);
                if samples.is_empty() {
                    return Ok(Vec::new());
                }
                let whole = samples.len() == total;
                (
                    raw_record::Payload::Telemetry(TelemetryBatch { samples }),
                    whole,
                )
            }
            Some(raw_record::Payload::Frame(frame)) => {
                if !self.keep_frame(&zones, &frame, recorded_at) {
                    return Ok(Vec::new());
                }
                (raw_record::Payload::Frame(frame), true)
            }
        };
        raw.payload = Some(kept);
        let mut record = record.clone();
        // The bytes as read hold exactly what is kept when nothing was dropped and no field
        // was unknown. The gateway writes the raw topic with prost, which encodes known
        // fields as short as they can be, so an unknown field makes the input longer than
        // its re-encoding: equal lengths rule it out without encoding (or copying a JPEG).
        if !(whole && raw.encoded_len() == record.payload.len()) {
            record.payload = raw.encode_to_vec().into();
        }
        Ok(vec![Output {
            topic: self.output_topic.clone(),
            record,
        }])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Axis {
    Latitude,
    Longitude,
}

/// An anchor: an instant with coordinate samples, and whether its samples go.
type Anchor = (Option<i128>, bool);

/// The samples of a batch that stay, in their order; see the module docs.
fn keep_samples(
    zones: &ZoneSet,
    samples: Vec<Sample>,
    recorded_at: Option<&Timestamp>,
) -> Vec<Sample> {
    let fallback = recorded_at.map(nanos);
    let instant = |s: &Sample| s.time.as_ref().map(nanos).or(fallback);
    let mut coordinates: Vec<(Option<i128>, Axis, f64)> = samples
        .iter()
        .filter_map(|s| {
            let axis = match s.path.as_str() {
                vss::LATITUDE => Axis::Latitude,
                vss::LONGITUDE => Axis::Longitude,
                _ => return None,
            };
            // Anything but a double is not a coordinate: NaN makes the check drop it.
            let value = match s.value {
                Some(sample::Value::DoubleValue(v)) => v,
                _ => f64::NAN,
            };
            Some((instant(s), axis, value))
        })
        .collect();
    coordinates.sort_unstable_by_key(|c| c.0);
    let anchors: Vec<Anchor> = coordinates
        .chunk_by(|a, b| a.0 == b.0)
        .map(|same| (same[0].0, position_dropped(zones, same)))
        .collect();
    let total = samples.len();
    let kept: Vec<Sample> = samples
        .into_iter()
        .filter(|s| !dropped_at(&anchors, instant(s)))
        .collect();
    metrics::samples(kept.len(), total - kept.len());
    kept
}

/// Whether the coordinates of one instant must go: caught by a zone, not a number, or
/// lacking a partner. Several fixes at one instant go together if any one is caught.
fn position_dropped(zones: &ZoneSet, same: &[(Option<i128>, Axis, f64)]) -> bool {
    let on = |axis| same.iter().filter(move |c| c.1 == axis).map(|c| c.2);
    if on(Axis::Latitude).next().is_none() || on(Axis::Longitude).next().is_none() {
        metrics::lone_coordinate();
        return true;
    }
    on(Axis::Latitude).any(|lat| {
        on(Axis::Longitude).any(|lon| {
            let verdict = zones.check(lat, lon);
            metrics::verdict(&verdict);
            verdict.is_drop()
        })
    })
}

/// Whether a sample at `at` goes, given the anchors sorted by instant.
fn dropped_at(anchors: &[Anchor], at: Option<i128>) -> bool {
    match anchors.binary_search_by_key(&at, |a| a.0) {
        Ok(i) => anchors[i].1,
        // Before the first anchor (or there is none).
        Err(0) => anchors.first().is_some_and(|a| a.1),
        Err(i) if i == anchors.len() => anchors[i - 1].1,
        Err(i) => anchors[i - 1].1 && anchors[i].1,
    }
}

/// Nanoseconds since the Unix epoch; no overflow for any `Timestamp`.
fn nanos(t: &Timestamp) -> i128 {
    i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos)
}

#[cfg(test)]
mod tests {
    use inland_stage::Record;

    use super::*;
    use crate::{Reason, Verdict};

    /// A 0.02° square around 39 N 116 E with a 100 m buffer.
    const ZONE: &str = r#"{"type":"FeatureCollection","features":[
        {"type":"Feature","properties":{"id":"square","category":"military","buffer_m":100},
         "geometry":{"type":"Polygon","coordinates":[[[115.99,38.99],[116.01,38.99],[116.01,39.01],[115.99,39.01],[115.99,38.99]]]}}]}"#;
    const INSIDE: (f64, f64) = (39.0, 116.0);
    /// About 43 m east of the east edge.
    const IN_BUFFER: (f64, f64) = (39.0, 116.0105);
    const OUTSIDE: (f64, f64) = (39.1, 116.1);
    const OUTSIDE_TOO: (f64, f64) = (38.9, 115.9);
    const OUTPUT: &str = "test.geofenced";
    /// Seconds since the epoch of instant 0 in these tests.
    const T0: i64 = 1_760_000_000;

    #[test]
    fn the_test_points_are_where_their_names_say() {
        let zones = ZoneSet::from_geojson(ZONE).unwrap();
        let check = |(lat, lon)| zones.check(lat, lon);
        assert!(matches!(
            check(INSIDE),
            Verdict::Drop {
                reason: Reason::Inside,
                ..
            }
        ));
        assert!(matches!(
            check(IN_BUFFER),
            Verdict::Drop {
                reason: Reason::WithinBuffer { .. },
                ..
            }
        ));
        assert!(matches!(check(OUTSIDE), Verdict::Keep));
        assert!(matches!(check(OUTSIDE_TOO), Verdict::Keep));
    }

    /// The stage on [`ZONE`]; the directory holds the zone file while the stage runs.
    fn stage() -> (GeofenceStage, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zones.geojson");
        std::fs::write(&path, ZONE).unwrap();
        let config = GeofenceConfig {
            zones_file: Some(path),
            output_topic: OUTPUT.into(),
            ..GeofenceConfig::default()
        };
        (GeofenceStage::start(&config).unwrap(), dir)
    }

    /// A timestamp `ms` milliseconds after instant 0 (may be negative).
    fn at(ms: i64) -> Timestamp {
        let t = T0 * 1000 + ms;
        Timestamp {
            seconds: t.div_euclid(1000),
            nanos: (t.rem_euclid(1000) * 1_000_000) as i32,
        }
    }

    fn sample(path: &str, ms: Option<i64>, value: sample::Value) -> Sample {
        Sample {
            path: path.into(),
            time: ms.map(at),
            value: Some(value),
        }
    }

    fn double(path: &str, ms: Option<i64>, v: f64) -> Sample {
        sample(path, ms, sample::Value::DoubleValue(v))
    }

    fn lat(ms: i64, (lat, _): (f64, f64)) -> Sample {
        double(vss::LATITUDE, Some(ms), lat)
    }

    fn lon(ms: i64, (_, lon): (f64, f64)) -> Sample {
        double(vss::LONGITUDE, Some(ms), lon)
    }

    fn speed(ms: i64) -> Sample {
        sample("Vehicle.Speed", Some(ms), sample::Value::FloatValue(50.0))
    }

    fn telemetry(recorded_ms: i64, samples: Vec<Sample>) -> RawRecord {
        RawRecord {
            message_id: "m-1".into(),
            vin: "LSVAU2180N2183294".into(),
            recorded_at: Some(at(recorded_ms)),
            received_at: Some(at(recorded_ms + 50)),
            purposes: vec!["driving_statistics".into()],
            precise_location_purposes: vec![],
            payload: Some(raw_record::Payload::Telemetry(TelemetryBatch { samples })),
        }
    }

    fn consumed(payload: Vec<u8>) -> Consumed {
        Consumed {
            topic: topics::RAW.into(),
            partition: 2,
            offset: 41,
            record: Record {
                key: "LSVAU2180N2183294".into(),
                payload: payload.into(),
                headers: vec![
                    ("inland-message-id".into(), "m-1".into()),
                    (SCHEMA_HEADER.into(), RAW_RECORD_SCHEMA.into()),
                    (
                        "traceparent".into(),
                        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
                    ),
                ],
                timestamp_ms: Some(T0 * 1000),
            },
        }
    }

    /// What the stage forwards for `raw`, checking that the output goes to the output topic
    /// with the key, headers and timestamp of the input.
    async fn forwarded(stage: &GeofenceStage, raw: &RawRecord) -> Option<RawRecord> {
        let input = consumed(raw.encode_to_vec());
        let mut outputs = stage.process(&input).await.expect("processed");
        assert!(outputs.len() <= 1, "{outputs:?}");
        let output = outputs.pop()?;
        assert_eq!(output.topic, OUTPUT);
        let (got, sent) = (&output.record, &input.record);
        assert_eq!(got.key, sent.key);
        assert_eq!(got.headers, sent.headers);
        assert_eq!(got.timestamp_ms, sent.timestamp_ms);
        Some(RawRecord::decode(got.payload.clone()).expect("a RawRecord"))
    }

    /// The kept samples of a telemetry record, as (path, time in ms) in their order.
    async fn kept_samples(stage: &GeofenceStage, raw: &RawRecord) -> Vec<(String, Option<i64>)> {
        let Some(out) = forwarded(stage, raw).await else {
            return Vec::new();
        };
        assert_eq!(
            (&out.message_id, &out.vin, out.recorded_at, out.received_at),
            (&raw.message_id, &raw.vin, raw.recorded_at, raw.received_at)
        );
        let Some(raw_record::Payload::Telemetry(batch)) = out.payload else {
            panic!("telemetry stays telemetry")
        };
        assert!(
            !batch.samples.is_empty(),
            "an empty batch is dropped, not sent"
        );
        named(&batch.samples)
    }

    /// Milliseconds after instant 0.
    fn ms(t: Option<Timestamp>) -> Option<i64> {
        t.map(|t| (nanos(&t) / 1_000_000) as i64 - T0 * 1000)
    }

    fn named(samples: &[Sample]) -> Vec<(String, Option<i64>)> {
        samples
            .iter()
            .map(|s| (s.path.clone(), ms(s.time)))
            .collect()
    }

    #[tokio::test]
    async fn a_batch_crossing_a_zone_loses_what_was_inside_and_keeps_its_order() {
        let (stage, _dir) = stage();
        let track = [OUTSIDE, OUTSIDE_TOO, INSIDE, IN_BUFFER, OUTSIDE];
        let times = [0, 1000, 2000, 3000, 4000];
        // Grouped by signal, not by time, as vehicles often send them.
        let mut samples = vec![speed(-500)];
        samples.extend(times.iter().zip(track).map(|(&t, p)| lat(t, p)));
        samples.extend(times.iter().zip(track).map(|(&t, p)| lon(t, p)));
        samples.extend([
            double("Vehicle.CurrentLocation.Heading", Some(1000), 90.0),
            double("Vehicle.CurrentLocation.Heading", Some(2000), 91.0),
            double("Vehicle.CurrentLocation.Altitude", Some(2000), 40.0),
            double(vss::HORIZONTAL_ACCURACY, Some(3000), 3.0),
        ]);
        samples.extend([0, 500, 1500, 2000, 2500, 3500, 5000].map(speed));
        // No time of its own: at recorded_at (2.2 s), between two dropped positions.
        samples.push(sample(
            "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current",
            None,
            sample::Value::FloatValue(80.0),
        ));
        let raw = telemetry(2200, samples.clone());

        // Positions 2 and 3 and what is at or between them.
        let dropped = |s: &Sample| matches!(ms(s.time), Some(2000..=3000) | None);
        let expected: Vec<_> = samples.iter().filter(|s| !dropped(s)).cloned().collect();
        assert_eq!(expected.len(), 13, "the test keeps something of each kind");
        assert_eq!(kept_samples(&stage, &raw).await, named(&expected));
    }

    #[tokio::test]
    async fn samples_beyond_the_first_and_last_position_follow_it() {
        let (stage, _dir) = stage();
        let mut samples = vec![speed(-500), speed(500), speed(1500), speed(2500)];
        for (t, p) in [(0, INSIDE), (1000, OUTSIDE), (2000, IN_BUFFER)] {
            samples.extend([lat(t, p), lon(t, p)]);
        }
        let kept = kept_samples(&stage, &telemetry(0, samples)).await;
        let expected = [
            ("Vehicle.Speed", 500),
            ("Vehicle.Speed", 1500),
            (vss::LATITUDE, 1000),
            (vss::LONGITUDE, 1000),
        ];
        assert_eq!(
            kept,
            expected.map(|(p, t)| (p.to_owned(), Some(t))).to_vec()
        );
    }

    #[tokio::test]
    async fn a_coordinate_without_its_partner_fails_closed() {
        let (stage, _dir) = stage();
        let samples = vec![
            speed(-100),
            // A lone latitude at 0, outside on its own: not a position, so it goes.
            lat(0, OUTSIDE),
            speed(500),
            lat(1000, OUTSIDE),
            lon(1000, OUTSIDE),
            speed(1000),
            // Latitude and longitude one millisecond apart are two lone coordinates.
            lon(2000, OUTSIDE),
            lat(2001, OUTSIDE),
            speed(2000),
            // No time of their own: they pair at recorded_at (1.5 s).
            double(vss::LATITUDE, None, OUTSIDE.0),
            double(vss::LONGITUDE, None, OUTSIDE.1),
        ];
        let kept = kept_samples(&stage, &telemetry(1500, samples)).await;
        let expected = [
            ("Vehicle.Speed", Some(500)),
            (vss::LATITUDE, Some(1000)),
            (vss::LONGITUDE, Some(1000)),
            ("Vehicle.Speed", Some(1000)),
            (vss::LATITUDE, None),
            (vss::LONGITUDE, None),
        ];
        assert_eq!(kept, expected.map(|(p, t)| (p.to_owned(), t)).to_vec());

        // Nothing left: no output at all.
        let lone = telemetry(0, vec![lat(0, OUTSIDE), speed(0)]);
        assert_eq!(forwarded(&stage, &lone).await, None);
        // A coordinate that is not a double is not a position either.
        let float = telemetry(
            0,
            vec![
                sample(vss::LATITUDE, Some(0), sample::Value::FloatValue(39.1)),
                lon(0, OUTSIDE),
                speed(0),
            ],
        );
        assert_eq!(forwarded(&stage, &float).await, None);
    }

    #[tokio::test]
    async fn a_batch_without_positions_is_kept_whole() {
        let (stage, _dir) = stage();
        let samples = vec![
            speed(0),
            sample(
                "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current",
                Some(0),
                sample::Value::FloatValue(80.0),
            ),
            double("Vehicle.CurrentLocation.Heading", Some(500), 180.0),
            speed(1000),
        ];
        let raw = telemetry(0, samples);
        assert_eq!(forwarded(&stage, &raw).await, Some(raw));
        // A batch with no samples has nothing to forward.
        assert_eq!(forwarded(&stage, &telemetry(0, vec![])).await, None);
    }

    fn frame_at(
        position: Option<(f64, f64)>,
        fixed_ms: Option<i64>,
        accuracy_m: f32,
        captured_ms: Option<i64>,
    ) -> RawRecord {
        RawRecord {
            message_id: "f-1".into(),
            vin: "LSVAU2180N2183294".into(),
            recorded_at: Some(at(0)),
            received_at: Some(at(80)),
            purposes: vec!["road_imagery".into()],
            precise_location_purposes: vec![],
            payload: Some(raw_record::Payload::Frame(CameraFrame {
                camera_id: "front".into(),
                captured_at: captured_ms.map(at),
                jpeg: vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3].into(),
                position: position.map(|(latitude, longitude)| Position {
                    latitude,
                    longitude,
                    horizontal_accuracy_m: accuracy_m,
                    fixed_at: fixed_ms.map(at),
                }),
            })),
        }
    }

    #[tokio::test]
    async fn frames_pass_only_with_a_trustworthy_position_outside_every_zone() {
        let (stage, _dir) = stage();
        let frame = |p, fixed, accuracy| frame_at(p, fixed, accuracy, Some(0));
        let good = frame(Some(OUTSIDE), Some(-1000), 4.0);
        assert_eq!(forwarded(&stage, &good).await, Some(good));
        for (name, raw) in [
            ("inside", frame(Some(INSIDE), Some(-1000), 4.0)),
            ("in the buffer", frame(Some(IN_BUFFER), Some(-1000), 4.0)),
            ("no position", frame(None, None, 0.0)),
            ("stale", frame(Some(OUTSIDE), Some(-10_001), 4.0)),
            ("fixed long after", frame(Some(OUTSIDE), Some(10_001), 4.0)),
            ("fix time unknown", frame(Some(OUTSIDE), None, 4.0)),
            ("inaccurate", frame(Some(OUTSIDE), Some(-1000), 50.5)),
            ("accuracy unknown", frame(Some(OUTSIDE), Some(-1000), 0.0)),
            ("accuracy NaN", frame(Some(OUTSIDE), Some(-1000), f32::NAN)),
            ("NaN latitude", frame(Some((f64::NAN, 116.1)), Some(0), 4.0)),
            ("infinite", frame(Some((39.1, f64::INFINITY)), Some(0), 4.0)),
        ] {
            assert_eq!(forwarded(&stage, &raw).await, None, "{name}");
        }
        // At the limits: 10 s apart and 50 m.
        for raw in [
            frame(Some(OUTSIDE), Some(-10_000), 4.0),
            frame(Some(OUTSIDE), Some(10_000), 50.0),
        ] {
            assert_eq!(forwarded(&stage, &raw).await, Some(raw));
        }
        // Without captured_at the record's recorded_at (0) is the capture time.
        let fresh = frame_at(Some(OUTSIDE), Some(-2000), 4.0, None);
        assert_eq!(forwarded(&stage, &fresh).await, Some(fresh));
        let stale = frame_at(Some(OUTSIDE), Some(-20_000), 4.0, None);
        assert_eq!(forwarded(&stage, &stale).await, None);
    }

    #[tokio::test]
    async fn fields_this_build_does_not_know_never_pass() {
        let (stage, _dir) = stage();
        let raw = telemetry(0, vec![lat(0, OUTSIDE), lon(0, OUTSIDE), speed(0)]);
        let clean = consumed(raw.encode_to_vec());
        let out = stage.process(&clean).await.unwrap().pop().unwrap();
        assert_eq!(
            out.record.payload, clean.record.payload,
            "forwarded as read"
        );
        // Field 99, length-delimited: a newer schema's field could hold a position.
        let mut bytes = raw.encode_to_vec();
        bytes.extend_from_slice(&[0x9a, 0x06, 3, b'x', b'y', b'z']);
        let out = stage
            .process(&consumed(bytes))
            .await
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(
            out.record.payload, clean.record.payload,
            "re-encoded without it"
        );
    }

    #[tokio::test]
    async fn malformed_records_are_rejected_with_a_reason() {
        let (stage, _dir) = stage();
        let reject = |input: Consumed| {
            let stage = &stage;
            async move {
                match stage.process(&input).await {
                    Err(StageError::Reject(reason)) => reason,
                    other => panic!("not rejected: {other:?}"),
                }
            }
        };
        let garbage = reject(consumed(b"\x0a\xff\xff\xff".to_vec())).await;
        assert!(
            garbage.starts_with("the payload is not a inland.pipeline.v1.RawRecord"),
            "{garbage}"
        );
        let mut empty = telemetry(0, vec![]);
        empty.payload = None;
        let empty = reject(consumed(empty.encode_to_vec())).await;
        assert!(empty.contains("no payload"), "{empty}");
        let mut other = consumed(telemetry(0, vec![speed(0)]).encode_to_vec());
        other.record.headers[1].1 = "inland.pipeline.v1.Other".into();
        let other = reject(other).await;
        assert!(other.contains("another schema"), "{other}");
    }

    #[test]
    fn config_defaults_and_refusals() {
        let config: GeofenceConfig = serde_json::from_str(
            r#"{"zones_file": "/etc/inland/zones.geojson", "max_position_age": "2s 500ms"}"#,
        )
        .unwrap();
        assert_eq!(config.max_position_age, Duration::from_millis(2500));
        assert_eq!(config.reload_interval, Duration::from_secs(5));
        assert_eq!(config.max_accuracy_m, 50.0);
        assert_eq!(config.output_topic, topics::GEOFENCED);
        assert!(serde_json::from_str::<GeofenceConfig>(r#"{"zones": "x"}"#).is_err());

        // No zone file: refuse to start rather than pass everything.
        let err = GeofenceStage::start(&GeofenceConfig::default())
            .err()
            .unwrap();
        assert_eq!(err.code(), inland_core::ErrorCode::InvalidInput);
        assert!(err.to_string().contains("geofence.zones_file"), "{err}");

        let (_, dir) = stage();
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let config = GeofenceConfig {
                zones_file: Some(dir.path().join("zones.geojson")),
                max_accuracy_m: bad,
                ..GeofenceConfig::default()
            };
            let err = GeofenceStage::start(&config).err().unwrap();
            assert!(err.to_string().contains("max_accuracy_m"), "{err}");
        }
        let missing = GeofenceConfig {
            zones_file: Some(dir.path().join("missing.geojson")),
            ..GeofenceConfig::default()
        };
        let err = GeofenceStage::start(&missing).err().unwrap();
        assert_eq!(err.code(), inland_core::ErrorCode::NotFound);
    }
}
