//! The anonymizer pipeline stage: reads `RawRecord`s from `inland.geofenced.v1` and writes
//! [`AnonymizedRecord`]s to `inland.anonymized.v1`, keyed by pseudonym.
//!
//! Consent decides which purposes a record serves: the gateway names them in the record
//! (`RawRecord.purposes`, and `precise_location_purposes`) from the consent in force when
//! it acked the upload; a record naming none serves none. Telemetry yields one record per
//! configured purpose it was consented for that keeps something of it: only the
//! purpose's signals, identifiers never, times floored and positions at the purpose's
//! precision (precise only where consented). A frame yields one record for
//! `frame_purpose` if consented for it, with faces and plates destroyed by inland-vision
//! and its position at that purpose's precision; or none at all with `frames = "drop"`.
//!
//! A record the stage cannot anonymize (not a `RawRecord`, no valid VIN, no recording
//! time, recorded before the first key epoch, a frame the vision pipeline refuses) is
//! rejected to the dead-letter topic with a reason that carries none of its data.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use inland_core::{Vin, topics};
use inland_proto::ingest::v1::CameraFrame;
use inland_proto::pipeline::v1::{
    AnonymizedFrame, AnonymizedRecord, CoarsePosition, RAW_RECORD_SCHEMA, anonymized_record,
};
use inland_stage::{Consumed, Output, Stage, StageError};
use inland_vision::{Anonymizer, VisionConfig};
use serde::{Deserialize, Serialize};

use crate::keys::{Key, Pseudonymizer};
use crate::purpose::{
    Batch, LocationPrecision, Purpose, PurposeConfig, ROAD_IMAGERY, Tally, default_purposes,
    looks_like_identifier, snap_latitude, snap_longitude,
};
use crate::record::{self, Anonymized, SCHEMA_HEADER, TRACEPARENT_HEADER};
use crate::wire::{self, Payload, SampleView, TelemetryWriter};
use crate::{Error, metrics};

/// What happens to camera frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FramesMode {
    /// Faces and plates are destroyed (inland-vision). Needs the models: without them the
    /// stage refuses to start rather than let a frame through.
    Anonymize,
    /// Every frame is dropped: telemetry-only operation, chosen explicitly.
    Drop,
}

/// The `anonymizer` configuration section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnonymizerConfig {
    /// The pseudonym key file (see [`crate::keys`]). Unset, the stage refuses to start.
    pub key_file: Option<PathBuf>,
    /// Purposes by name. Giving any replaces the defaults (`driving_statistics`,
    /// `road_imagery`).
    pub purposes: BTreeMap<String, PurposeConfig>,
    pub frames: FramesMode,
    /// The purpose whose location and time precision frames get (its `signals` are not
    /// used). Only read with `frames = "anonymize"`.
    pub frame_purpose: String,
    /// Models and tuning of the frame anonymizer; model paths resolve against
    /// `vision.models_dir`, else `INLAND_MODELS_DIR`.
    pub vision: VisionConfig,
    /// Where anonymized records go; tests and benchmarks use their own topic.
    pub output_topic: String,
}

impl Default for AnonymizerConfig {
    fn default() -> Self {
        Self {
            key_file: None,
            purposes: default_purposes(),
            frames: FramesMode::Anonymize,
            frame_purpose: ROAD_IMAGERY.into(),
            vision: VisionConfig::default(),
            output_topic: topics::ANONYMIZED.into(),
        }
    }
}

/// The anonymizer [`Stage`].
pub struct AnonymizerStage {
    keys: Pseudonymizer,
    /// The purposes that keep signals, in name order.
    telemetry: Vec<Purpose>,
    /// `None` with `frames = "drop"`.
    frames: Option<Frames>,
    output_topic: String,
    counters: metrics::TelemetryCounters,
}

struct Frames {
    anonymizer: Arc<Anonymizer>,
    purpose: Purpose,
}

impl AnonymizerStage {
    /// Validates the purposes, loads the key file and, unless `frames = "drop"`, the frame
    /// anonymizer's models; refuses to start if any of them is missing or would let
    /// personal data through.
    pub fn start(config: &AnonymizerConfig) -> Result<Self, Error> {
        let mut purposes = Vec::with_capacity(config.purposes.len());
        for (name, purpose) in &config.purposes {
            if name.is_empty() || looks_like_identifier(name) {
                return Err(Error::Config(format!(
                    "purpose name {name:?}: use a short descriptive name"
                )));
            }
            purposes.push(Purpose::new(name, purpose)?);
        }
        let frame_purpose = match config.frames {
            FramesMode::Drop => None,
            FramesMode::Anonymize => {
                let Some(i) = purposes.iter().position(|p| p.name == config.frame_purpose) else {
                    return Err(Error::Config(format!(
                        "frame_purpose {:?} is not one of the configured purposes",
                        config.frame_purpose
                    )));
                };
                Some(purposes.remove(i))
            }
        };
        let key_file = config.key_file.as_ref().ok_or_else(|| {
            Error::Config(
                "no key file configured: set anonymizer.key_file to the pseudonym key file \
                 (create one with `inland keys generate`)"
                    .into(),
            )
        })?;
        let keys = Pseudonymizer::load(key_file)?;
        let frames = match frame_purpose {
            None => None,
            Some(purpose) => Some(Frames {
                anonymizer: Arc::new(Anonymizer::load(&config.vision).map_err(Error::Vision)?),
                purpose,
            }),
        };
        let telemetry: Vec<Purpose> = purposes.into_iter().filter(|p| p.keeps_signals()).collect();
        let names: Vec<&str> = telemetry.iter().map(|p| p.name.as_str()).collect();
        let frames_label = match &frames {
            Some(f) => f.purpose.name.as_str(),
            None => "drop",
        };
        metrics::started(key_file, &keys.epochs(), &names, frames_label);
        let counters = metrics::TelemetryCounters::new(&names);
        Ok(Self {
            keys,
            telemetry,
            frames,
            output_topic: config.output_topic.clone(),
            counters,
        })
    }

    fn output(&self, record: AnonymizedRecord, record_id: &str, input: &Consumed) -> Output {
        let anonymized = Anonymized::new(record, record_id.to_owned());
        Output {
            topic: self.output_topic.clone(),
            record: anonymized.to_topic(input.record.header(TRACEPARENT_HEADER)),
        }
    }

    fn telemetry(
        &self,
        samples: &[SampleView<'_>],
        who: &Who<'_>,
        input: &Consumed,
    ) -> Vec<Output> {
        thread_local! {
            /// Where records are written before they are copied out at their exact size.
            static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        if !self.telemetry.iter().any(|purpose| who.serves(purpose)) {
            self.counters.no_consent();
            return Vec::new();
        }
        let batch = Batch::new(samples, Some(who.recorded_at));
        let traceparent = input.record.header(TRACEPARENT_HEADER);
        let mut tally = Tally::default();
        let mut outputs = Vec::new();
        SCRATCH.with_borrow_mut(|scratch| {
            for (i, purpose) in self.telemetry.iter().enumerate() {
                if !who.serves(purpose) {
                    continue;
                }
                let precision = purpose.precision(|| who.precise_consent(purpose));
                let header = wire::Header {
                    pseudonym: who.pseudonym.as_bytes(),
                    key_epoch: who.key.epoch(),
                    purpose: &purpose.name,
                    recorded_at: purpose.coarse_time(who.recorded_at),
                };
                let mut writer = TelemetryWriter::new(scratch, &header);
                purpose.cut(&batch, precision, &mut tally, |path, time, value| {
                    writer.sample(path, time, value);
                });
                if writer.is_empty() {
                    continue;
                }
                self.counters.output(i);
                outputs.push(Output {
                    topic: self.output_topic.clone(),
                    record: record::telemetry_to_topic(
                        Bytes::copy_from_slice(who.pseudonym.as_bytes()),
                        writer.finish(&header),
                        Bytes::copy_from_slice(who.record_id.as_bytes()),
                        traceparent,
                        &header.recorded_at,
                    ),
                });
            }
        });
        self.counters.batch(&tally, outputs.len());
        outputs
    }

    async fn frame(
        &self,
        frame: CameraFrame,
        who: &Who<'_>,
        input: &Consumed,
    ) -> Result<Vec<Output>, StageError> {
        let Some(frames) = &self.frames else {
            metrics::frame_dropped();
            return Ok(Vec::new());
        };
        if !who.serves(&frames.purpose) {
            metrics::frame_without_consent();
            return Ok(Vec::new());
        }
        let anonymizer = frames.anonymizer.clone();
        let jpeg = frame.jpeg;
        // Detection takes tens to hundreds of milliseconds of CPU: keep it off the runtime.
        let result = tokio::task::spawn_blocking(move || anonymizer.anonymize_jpeg(&jpeg))
            .await
            .map_err(|e| {
                if e.is_panic() {
                    metrics::rejected("frame", "panic");
                    StageError::Reject("the frame anonymizer panicked on this frame".into())
                } else {
                    StageError::Unavailable("the frame anonymizer is shutting down".into())
                }
            })?;
        let anonymized = result.map_err(|e| {
            metrics::rejected("frame", e.reason());
            // inland-vision's messages describe the failure, never the pixels.
            StageError::Reject(format!("frame anonymization failed ({}): {e}", e.reason()))
        })?;
        let purpose = &frames.purpose;
        let position = frame.position.and_then(|p| {
            let valid =
                (-90.0..=90.0).contains(&p.latitude) && (-180.0..=180.0).contains(&p.longitude);
            match purpose.precision(|| who.precise_consent(purpose)) {
                _ if !valid => None,
                LocationPrecision::None => None,
                LocationPrecision::Precise => Some(CoarsePosition {
                    latitude: p.latitude,
                    longitude: p.longitude,
                    grid_m: 0,
                }),
                LocationPrecision::Coarse => Some(CoarsePosition {
                    latitude: snap_latitude(p.latitude, purpose.grid_m()),
                    longitude: snap_longitude(p.latitude, p.longitude, purpose.grid_m()),
                    grid_m: purpose.grid_m().round() as u32,
                }),
            }
        });
        // Chosen by the vehicle: it must not become a side channel for an identifier.
        let camera_id = if frame.camera_id.len() <= 32 && !looks_like_identifier(&frame.camera_id) {
            frame.camera_id
        } else {
            String::new()
        };
        metrics::frame_anonymized(anonymized.faces.len(), anonymized.plates.len());
        metrics::frame_output(&purpose.name);
        let record = who.record(
            purpose,
            anonymized_record::Payload::Frame(AnonymizedFrame {
                camera_id,
                captured_at: frame.captured_at.map(|t| purpose.coarse_time(&t)),
                jpeg: anonymized.jpeg.into(),
                position,
                faces: anonymized.faces.len() as u32,
                plates: anonymized.plates.len() as u32,
            }),
        );
        Ok(vec![self.output(record, &who.record_id, input)])
    }
}

/// The vehicle behind a record, as far as the outputs may know it.
struct Who<'a> {
    pseudonym: String,
    record_id: String,
    key: &'a Key,
    recorded_at: &'a inland_proto::Timestamp,
    /// What the gateway admitted the record for (see the module's documentation).
    purposes: &'a [&'a str],
    precise_location_purposes: &'a [&'a str],
}

impl Who<'_> {
    /// Whether the record was consented for `purpose`.
    fn serves(&self, purpose: &Purpose) -> bool {
        self.purposes.contains(&purpose.name.as_str())
    }

    /// Whether it was consented for precise location for `purpose`.
    fn precise_consent(&self, purpose: &Purpose) -> bool {
        self.precise_location_purposes
            .contains(&purpose.name.as_str())
    }

    fn record(&self, purpose: &Purpose, payload: anonymized_record::Payload) -> AnonymizedRecord {
        AnonymizedRecord {
            pseudonym: self.pseudonym.clone(),
            key_epoch: self.key.epoch(),
            purpose: purpose.name.clone(),
            recorded_at: Some(purpose.coarse_time(self.recorded_at)),
            payload: Some(payload),
        }
    }
}

fn reject(kind: &'static str, label: &'static str, reason: &str) -> StageError {
    metrics::rejected(kind, label);
    StageError::Reject(reason.to_owned())
}

#[async_trait::async_trait]
impl Stage for AnonymizerStage {
    async fn process(&self, input: &Consumed) -> Result<Vec<Output>, StageError> {
        let record = &input.record;
        if record
            .header(SCHEMA_HEADER)
            .is_some_and(|schema| schema != RAW_RECORD_SCHEMA.as_bytes())
        {
            return Err(reject(
                "unknown",
                "schema",
                "the inland-schema header names another schema than \
                 inland.pipeline.v1.RawRecord; the stage reads the geofenced topic only",
            ));
        }
        let raw = wire::read_raw_record(&record.payload).ok_or_else(|| {
            reject(
                "unknown",
                "malformed",
                "the payload is not a inland.pipeline.v1.RawRecord",
            )
        })?;
        let kind = match &raw.payload {
            Some(Payload::Telemetry(_)) => "telemetry",
            Some(Payload::Frame(_)) => "frame",
            None => {
                return Err(reject(
                    "unknown",
                    "no_payload",
                    "the record has no payload (neither telemetry nor a frame)",
                ));
            }
        };
        // VinError's message quotes a character of the VIN: say only what is wrong.
        let vin = Vin::parse(raw.vin)
            .map_err(|_| reject(kind, "bad_vin", "the record's vin is not a valid VIN"))?;
        let recorded_at = raw
            .recorded_at
            .as_ref()
            .ok_or_else(|| reject(kind, "no_time", "the record has no recorded_at"))?;
        let key = self.keys.key_at(recorded_at).ok_or_else(|| {
            reject(
                kind,
                "no_key",
                "the record was recorded before the first pseudonym key epoch",
            )
        })?;
        let who = Who {
            pseudonym: key.pseudonym(&vin),
            record_id: key.record_id(&vin, raw.message_id),
            key,
            recorded_at,
            purposes: &raw.purposes,
            precise_location_purposes: &raw.precise_location_purposes,
        };
        match raw.payload {
            Some(Payload::Telemetry(samples)) => Ok(self.telemetry(&samples, &who, input)),
            Some(Payload::Frame(frame)) => self.frame(frame, &who, input).await,
            None => unreachable!("checked above"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use inland_core::vss;
    use inland_proto::Timestamp;
    use inland_proto::ingest::v1::{Position, Sample, TelemetryBatch, sample};
    use inland_proto::pipeline::v1::{RawRecord, raw_record};
    use inland_stage::Record;
    use prost::Message;

    use super::*;
    use crate::RECORD_ID_HEADER;

    const VIN: &str = "LSVAU2180N2183294";
    const OUTPUT: &str = "test.anonymized";
    const TRACE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    /// Seconds since the epoch of instant 0 in these tests.
    const T0: i64 = 1_760_000_000;

    fn config(dir: &tempfile::TempDir) -> AnonymizerConfig {
        let key_file = dir.path().join("keys.toml");
        if !key_file.exists() {
            crate::keys::generate(&key_file).unwrap();
        }
        AnonymizerConfig {
            key_file: Some(key_file),
            frames: FramesMode::Drop,
            output_topic: OUTPUT.into(),
            ..AnonymizerConfig::default()
        }
    }

    fn stage(config: &AnonymizerConfig) -> AnonymizerStage {
        AnonymizerStage::start(config).unwrap()
    }

    fn at(ms: i64) -> Timestamp {
        let t = T0 * 1000 + ms;
        Timestamp {
            seconds: t.div_euclid(1000),
            nanos: (t.rem_euclid(1000) * 1_000_000) as i32,
        }
    }

    fn s(path: &str, ms: i64, value: sample::Value) -> Sample {
        Sample {
            path: path.into(),
            time: Some(at(ms)),
            value: Some(value),
        }
    }

    fn raw(payload: raw_record::Payload) -> RawRecord {
        RawRecord {
            message_id: format!("{VIN}-0001"),
            vin: VIN.into(),
            recorded_at: Some(at(1500)),
            received_at: Some(at(1550)),
            // Every purpose these tests configure; none with precise location.
            purposes: [
                "driving_statistics",
                "road_imagery",
                "routing",
                "speed_only",
            ]
            .map(str::to_owned)
            .to_vec(),
            precise_location_purposes: vec![],
            payload: Some(payload),
        }
    }

    fn drive() -> RawRecord {
        use sample::Value::*;
        raw(raw_record::Payload::Telemetry(TelemetryBatch {
            samples: vec![
                s("Vehicle.Speed", 1200, FloatValue(50.0)),
                s(vss::LATITUDE, 1200, DoubleValue(39.9042)),
                s(vss::LONGITUDE, 1200, DoubleValue(116.4074)),
                s("Vehicle.CurrentLocation.Heading", 1200, DoubleValue(90.0)),
                s(
                    "Vehicle.Cabin.HVAC.AmbientAirTemperature",
                    1200,
                    FloatValue(21.0),
                ),
                s(
                    "Vehicle.VehicleIdentification.VIN",
                    1200,
                    StringValue(VIN.into()),
                ),
                s("Vehicle.IsMoving", 1300, BoolValue(true)),
            ],
        }))
    }

    fn consumed(raw: &RawRecord) -> Consumed {
        Consumed {
            topic: topics::GEOFENCED.into(),
            partition: 1,
            offset: 7,
            record: Record {
                key: VIN.into(),
                payload: raw.encode_to_vec().into(),
                headers: vec![
                    ("inland-message-id".into(), raw.message_id.clone().into()),
                    (SCHEMA_HEADER.into(), RAW_RECORD_SCHEMA.into()),
                    (TRACEPARENT_HEADER.into(), TRACE.into()),
                ],
                timestamp_ms: Some(T0 * 1000 + 1550),
            },
        }
    }

    async fn anonymized(stage: &AnonymizerStage, raw: &RawRecord) -> Vec<(Record, Anonymized)> {
        let outputs = stage.process(&consumed(raw)).await.expect("processed");
        outputs
            .into_iter()
            .map(|o| {
                assert_eq!(o.topic, OUTPUT);
                let bytes = [&o.record.key[..], &o.record.payload[..]].concat();
                for (name, value) in &o.record.headers {
                    assert!(!contains(value, VIN.as_bytes()), "{name}");
                    assert_ne!(name, "inland-message-id");
                }
                assert!(!contains(&bytes, VIN.as_bytes()), "the VIN leaked");
                let a = Anonymized::decode_from_topic(&o.record).expect("a valid record");
                (o.record, a)
            })
            .collect()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn samples(a: &Anonymized) -> Vec<(String, Option<sample::Value>, Option<Timestamp>)> {
        let Some(anonymized_record::Payload::Telemetry(t)) = &a.record().payload else {
            panic!("telemetry")
        };
        t.samples
            .iter()
            .map(|s| (s.path.clone(), s.value.clone(), s.time))
            .collect()
    }

    #[tokio::test]
    async fn telemetry_is_cut_to_the_purpose_and_keyed_by_pseudonym() {
        let dir = tempfile::tempdir().unwrap();
        let stage = stage(&config(&dir));
        let out = anonymized(&stage, &drive()).await;
        assert_eq!(out.len(), 1, "road_imagery keeps no signals");
        let (record, a) = &out[0];
        let keys = Pseudonymizer::load(&dir.path().join("keys.toml")).unwrap();
        let key = keys.key_at(&at(1500)).unwrap();
        let vin = Vin::parse(VIN).unwrap();
        assert_eq!(record.key, key.pseudonym(&vin).as_bytes());
        assert_eq!(a.record().pseudonym, key.pseudonym(&vin));
        assert_eq!(a.record().key_epoch, 1);
        assert_eq!(a.record().purpose, "driving_statistics");
        assert_eq!(a.record().recorded_at, Some(at(1000)), "floored to 1 s");
        assert_eq!(record.timestamp_ms, Some(T0 * 1000 + 1000));
        assert_eq!(
            record.header(RECORD_ID_HEADER),
            Some(&Bytes::from(key.record_id(&vin, &drive().message_id)))
        );
        assert_eq!(record.header(TRACEPARENT_HEADER), Some(&Bytes::from(TRACE)));
        use sample::Value::*;
        let t = Some(at(1000));
        assert_eq!(
            samples(a),
            vec![
                ("Vehicle.Speed".into(), Some(FloatValue(50.0)), t),
                (
                    vss::LATITUDE.into(),
                    Some(DoubleValue(snap_latitude(39.9042, 1000.0))),
                    t
                ),
                (
                    vss::LONGITUDE.into(),
                    Some(DoubleValue(snap_longitude(39.9042, 116.4074, 1000.0))),
                    t
                ),
                ("Vehicle.IsMoving".into(), Some(BoolValue(true)), t),
            ]
        );
        // The same record again (a redelivery) gives the same bytes.
        let again = anonymized(&stage, &drive()).await;
        assert_eq!(again[0].0, out[0].0);
    }

    #[tokio::test]
    async fn every_purpose_gets_its_own_record_and_precise_location_needs_consent() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(&dir);
        config.purposes.insert(
            "routing".into(),
            PurposeConfig {
                signals: vec![vss::LATITUDE.into(), vss::LONGITUDE.into()],
                location: LocationPrecision::Precise,
                time_resolution: Duration::from_millis(100),
                ..PurposeConfig::default()
            },
        );
        config.purposes.insert(
            "speed_only".into(),
            PurposeConfig {
                signals: vec!["Vehicle.Speed".into(), vss::LATITUDE.into()],
                location: LocationPrecision::None,
                time_resolution: Duration::from_secs(60),
                ..PurposeConfig::default()
            },
        );
        let position = |a: &Anonymized| {
            samples(a)
                .into_iter()
                .filter(|s| s.0 == vss::LATITUDE)
                .map(|s| s.1)
                .collect::<Vec<_>>()
        };
        let without = anonymized(&stage(&config), &drive()).await;
        let purposes: Vec<&str> = without
            .iter()
            .map(|(_, a)| a.record().purpose.as_str())
            .collect();
        assert_eq!(purposes, ["driving_statistics", "routing", "speed_only"]);
        let coarse = Some(sample::Value::DoubleValue(snap_latitude(39.9042, 1000.0)));
        assert_eq!(
            position(&without[1].1),
            std::slice::from_ref(&coarse),
            "no consent: coarse"
        );
        assert_eq!(samples(&without[2].1).len(), 1, "location none: speed only");
        assert_eq!(without[2].1.record().recorded_at, Some(at(-20_000)));

        let mut consented = drive();
        consented.precise_location_purposes = consented.purposes.clone();
        let with = anonymized(&stage(&config), &consented).await;
        let precise = Some(sample::Value::DoubleValue(39.9042));
        assert_eq!(position(&with[1].1), [precise]);
        assert_eq!(samples(&with[1].1)[0].2, Some(at(1200)));
        assert_eq!(
            position(&with[0].1),
            [coarse],
            "a coarse purpose stays coarse"
        );
    }

    #[tokio::test]
    async fn a_record_serves_only_the_purposes_it_was_consented_for() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(&dir);
        config.purposes.insert(
            "speed_only".into(),
            PurposeConfig {
                signals: vec!["Vehicle.Speed".into()],
                ..PurposeConfig::default()
            },
        );
        let consenting = stage(&config);
        let purposes_of = |outputs: Vec<(Record, Anonymized)>| -> Vec<String> {
            outputs
                .into_iter()
                .map(|(_, a)| a.record().purpose.clone())
                .collect()
        };
        let mut one = drive();
        one.purposes = vec!["speed_only".into(), "not_configured".into()];
        assert_eq!(
            purposes_of(anonymized(&consenting, &one).await),
            ["speed_only"]
        );

        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshots = recorder.snapshotter();
        let mut none = drive();
        none.purposes.clear();
        none.precise_location_purposes = vec!["speed_only".into()];
        // A local recorder: the stage registers its counters when it starts.
        let counted = ::metrics::with_local_recorder(&recorder, || stage(&config));
        assert!(anonymized(&counted, &none).await.is_empty(), "default deny");
        let no_consent = snapshots
            .snapshot()
            .into_vec()
            .into_iter()
            .any(|(key, _, _, value)| {
                key.key().name() == metrics::RECORDS
                    && key.key().labels().any(|l| l.value() == "no_consent")
                    && matches!(value, metrics_util::debugging::DebugValue::Counter(1))
            });
        assert!(no_consent, "counted as a drop without consent");
    }

    #[tokio::test]
    async fn nothing_left_means_no_output_and_frames_can_be_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let stage = stage(&config(&dir));
        let nothing = raw(raw_record::Payload::Telemetry(TelemetryBatch {
            samples: vec![s(
                "Vehicle.Cabin.HVAC.AmbientAirTemperature",
                0,
                sample::Value::FloatValue(21.0),
            )],
        }));
        assert!(anonymized(&stage, &nothing).await.is_empty());
        let frame = raw(raw_record::Payload::Frame(CameraFrame {
            camera_id: "front".into(),
            captured_at: Some(at(0)),
            jpeg: vec![0xFF, 0xD8, 0xFF, 0xE0].into(),
            position: Some(Position {
                latitude: 39.9,
                longitude: 116.4,
                horizontal_accuracy_m: 3.0,
                fixed_at: Some(at(0)),
            }),
        }));
        assert!(anonymized(&stage, &frame).await.is_empty());
    }

    #[tokio::test]
    async fn records_that_cannot_be_anonymized_are_rejected_without_their_data() {
        let dir = tempfile::tempdir().unwrap();
        let stage = stage(&config(&dir));
        let reject = |input: Consumed| {
            let stage = &stage;
            async move {
                match stage.process(&input).await {
                    Err(StageError::Reject(reason)) => {
                        assert!(
                            !reason.contains("LSVAU") && !reason.contains('Q'),
                            "{reason}"
                        );
                        reason
                    }
                    other => panic!("not rejected: {other:?}"),
                }
            }
        };
        let garbage = Consumed {
            record: Record {
                payload: vec![0x0a, 0xff, 0xff].into(),
                ..consumed(&drive()).record
            },
            ..consumed(&drive())
        };
        assert!(
            reject(garbage)
                .await
                .contains("not a inland.pipeline.v1.RawRecord")
        );
        let mut other = consumed(&drive());
        other.record.headers[1].1 = "inland.pipeline.v1.AnonymizedRecord".into();
        assert!(reject(other).await.contains("another schema"));
        let mut empty = drive();
        empty.payload = None;
        assert!(reject(consumed(&empty)).await.contains("no payload"));
        let mut bad_vin = drive();
        bad_vin.vin = "LSVAU2180N218329Q".into();
        assert!(reject(consumed(&bad_vin)).await.contains("not a valid VIN"));
        let mut no_time = drive();
        no_time.recorded_at = None;
        assert!(reject(consumed(&no_time)).await.contains("recorded_at"));
        let mut ancient = drive();
        ancient.recorded_at = Some(Timestamp {
            seconds: -1,
            nanos: 0,
        });
        assert!(
            reject(consumed(&ancient))
                .await
                .contains("first pseudonym key epoch")
        );
    }

    #[test]
    fn config_defaults_and_refusals() {
        let parsed: AnonymizerConfig = serde_json::from_str(
            r#"{"key_file": "/etc/inland/keys.toml", "frames": "drop",
                "purposes": {"trips": {"signals": ["Vehicle.Speed"], "time_resolution": "1m"}}}"#,
        )
        .unwrap();
        assert_eq!(parsed.frames, FramesMode::Drop);
        let trips = &parsed.purposes["trips"];
        assert_eq!(trips.time_resolution, Duration::from_secs(60));
        assert_eq!(trips.coarse_grid_m, 1000.0);
        assert_eq!(trips.location, LocationPrecision::Coarse);
        assert_eq!(
            parsed.purposes.len(),
            1,
            "given purposes replace the defaults"
        );
        assert_eq!(parsed.output_topic, topics::ANONYMIZED);
        let defaults = AnonymizerConfig::default();
        assert_eq!(defaults.frames, FramesMode::Anonymize, "frames fail closed");
        assert!(defaults.purposes.contains_key("driving_statistics"));
        for unknown in [
            r#"{"keyfile": "x"}"#,
            r#"{"frames": "pass"}"#,
            r#"{"purposes": {"p": {"signal": []}}}"#,
            r#"{"purposes": {"p": {"location": "exact"}}}"#,
        ] {
            assert!(
                serde_json::from_str::<AnonymizerConfig>(unknown).is_err(),
                "{unknown}"
            );
        }

        let dir = tempfile::tempdir().unwrap();
        let refused = |config: AnonymizerConfig, expected: &str| {
            let err = AnonymizerStage::start(&config).err().expect("refused");
            assert!(err.to_string().contains(expected), "{err}");
            err
        };
        let err = refused(
            AnonymizerConfig {
                key_file: None,
                ..config(&dir)
            },
            "anonymizer.key_file",
        );
        assert_eq!(err.code(), inland_core::ErrorCode::InvalidInput);
        let mut vin_allowed = config(&dir);
        vin_allowed
            .purposes
            .get_mut("driving_statistics")
            .unwrap()
            .signals
            .push("Vehicle.VehicleIdentification.VIN".into());
        refused(vin_allowed, "never passes the anonymizer");
        refused(
            AnonymizerConfig {
                frames: FramesMode::Anonymize,
                frame_purpose: "nope".into(),
                ..config(&dir)
            },
            "frame_purpose \"nope\"",
        );
        let err = refused(
            AnonymizerConfig {
                key_file: Some(dir.path().join("missing.toml")),
                ..config(&dir)
            },
            "missing.toml",
        );
        assert_eq!(err.code(), inland_core::ErrorCode::NotFound);
        // Frames without a loadable runtime and models: refuse, and say how to go on.
        let mut no_models = AnonymizerConfig {
            frames: FramesMode::Anonymize,
            ..config(&dir)
        };
        no_models.vision.ort_dylib = Some(dir.path().join("no-libonnxruntime.so"));
        no_models.vision.models_dir = Some(dir.path().join("no-models"));
        refused(no_models, "frames = \"drop\"");
    }
}
