//! Checks an upload before anything is stored: ids, timestamps, VSS paths and value
//! types, positions, frame bytes. Each refusal says exactly what was wrong.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use inland_core::Vin;
use inland_core::vss::{self, Datatype, Sensitivity};
use inland_proto::Timestamp;
use inland_proto::ingest::v1::in_place::{UploadPayload, UploadRequest};
use inland_proto::ingest::v1::{CameraFrame, Position};
use inland_proto::pipeline::v1::{RawRecord, raw_record};
use inland_proto::wire::{self, SampleView, Value};
use prost::Message;

use crate::consent::Admitted;
use crate::{Error, GatewayConfig};

const MAX_MESSAGE_ID: usize = 128;
const MAX_CAMERA_ID: usize = 64;
const MAX_STRING_VALUE: usize = 1024;

/// The window timestamps must fall in, fixed once per request.
pub struct Window {
    earliest: SystemTime,
    latest: SystemTime,
    now: SystemTime,
}

impl Window {
    pub fn new(config: &GatewayConfig, now: SystemTime) -> Self {
        Self {
            earliest: now
                .checked_sub(config.max_record_age)
                .unwrap_or(SystemTime::UNIX_EPOCH),
            latest: now + config.max_clock_skew,
            now,
        }
    }

    fn check(&self, ts: &Timestamp, what: &str) -> Result<(), Error> {
        let t = to_system_time(ts)
            .ok_or_else(|| invalid(format!("{what} is not a valid timestamp")))?;
        if t > self.latest {
            let ahead = t.duration_since(self.now).unwrap_or_default();
            return Err(invalid(format!(
                "{what} is {}s in the future; check the vehicle clock",
                ahead.as_secs()
            )));
        }
        if t < self.earliest {
            return Err(invalid(format!(
                "{what} is older than the accepted record age"
            )));
        }
        Ok(())
    }
}

/// An upload that passed every check, encoded as its record on the raw topic.
pub struct RawUpload {
    pub message_id: String,
    pub record: Bytes,
}

/// Validates `req` from the authenticated `vin` and encodes it as the raw-topic record,
/// naming the consent it was `admitted` under. Telemetry is checked where it lies and
/// written as it came.
pub fn to_raw_record(
    req: UploadRequest,
    vin: &Vin,
    admitted: Admitted,
    config: &GatewayConfig,
    window: &Window,
) -> Result<RawUpload, Error> {
    if req.message_id.is_empty() {
        return Err(invalid("message_id is empty".into()));
    }
    if req.message_id.len() > MAX_MESSAGE_ID || req.message_id.chars().any(char::is_control) {
        return Err(invalid(format!(
            "message_id must be at most {MAX_MESSAGE_ID} bytes of printable text"
        )));
    }
    if !req.vin.is_empty() && req.vin != vin.as_str() {
        return Err(Error::VinMismatch { claimed: req.vin });
    }
    let recorded_at = req
        .recorded_at
        .ok_or_else(|| invalid("recorded_at is missing".into()))?;
    window.check(&recorded_at, "recorded_at")?;
    let mut header = RawRecord {
        message_id: req.message_id,
        vin: vin.as_str().to_owned(),
        recorded_at: Some(recorded_at),
        received_at: Some(window.now.into()),
        purposes: admitted.purposes,
        precise_location_purposes: admitted.precise_location_purposes,
        payload: None,
    };
    let record = match req.payload {
        None => {
            return Err(invalid(
                "the upload has no payload: send telemetry or a frame".into(),
            ));
        }
        Some(UploadPayload::Telemetry(batch)) => {
            check_batch(&batch, config, window)?;
            // The payload is the last field prost writes: the header's encoding followed
            // by it is the encoding of the whole record.
            let batch_len = prost::encoding::bytes::encoded_len(TELEMETRY, &batch);
            let mut record = Vec::with_capacity(header.encoded_len() + batch_len);
            header.encode_raw(&mut record);
            prost::encoding::bytes::encode(TELEMETRY, &batch, &mut record);
            record
        }
        Some(UploadPayload::Frame(frame)) => {
            check_frame(&frame, window)?;
            header.payload = Some(raw_record::Payload::Frame(frame));
            header.encode_to_vec()
        }
    };
    Ok(RawUpload {
        message_id: std::mem::take(&mut header.message_id),
        record: record.into(),
    })
}

/// `RawRecord.telemetry`.
const TELEMETRY: u32 = 10;

fn check_batch(batch: &[u8], config: &GatewayConfig, window: &Window) -> Result<(), Error> {
    let mut samples = Vec::new();
    // At the depth the batch has in the raw record, where every stage after reads it (in
    // an `UploadBatch` it sits one level deeper).
    wire::samples_of(batch, wire::NESTING_LIMIT, &mut samples).ok_or_else(|| {
        invalid("the telemetry batch is not a well-formed inland.ingest.v1.TelemetryBatch".into())
    })?;
    if samples.is_empty() {
        return Err(invalid("the telemetry batch has no samples".into()));
    }
    if samples.len() > config.max_samples_per_batch {
        return Err(invalid(format!(
            "the telemetry batch has {} samples, at most {} are accepted",
            samples.len(),
            config.max_samples_per_batch
        )));
    }
    for (i, s) in samples.iter().enumerate() {
        check_sample(s, window).map_err(|e| invalid(format!("sample {i} ({}): {e}", s.path)))?;
    }
    Ok(())
}

fn check_sample(s: &SampleView<'_>, window: &Window) -> Result<(), String> {
    let signal = s
        .signal
        .map(|i| &vss::catalog()[i])
        .ok_or("not a VSS signal Inland accepts")?;
    if let Some(t) = &s.time {
        window.check(t, "time").map_err(|e| e.to_string())?;
    }
    let value = s.value.ok_or("no value")?;
    let want = signal.datatype;
    let type_error = || {
        format!(
            "VSS datatype is {}, got {}",
            want.as_str(),
            value_kind(value)
        )
    };
    match value {
        Value::Bool(_) if want == Datatype::Boolean => Ok(()),
        Value::String(v) if want == Datatype::String => {
            if v.len() > MAX_STRING_VALUE {
                Err(format!("string longer than {MAX_STRING_VALUE} bytes"))
            } else {
                Ok(())
            }
        }
        Value::Int(v) => match want.int_range() {
            Some((lo, hi)) if (lo..=hi).contains(&v) => Ok(()),
            Some((lo, hi)) => Err(format!(
                "{v} is outside {} range {lo}..={hi}",
                want.as_str()
            )),
            None => Err(type_error()),
        },
        Value::Uint(v) => match want.uint_max() {
            Some(max) if v <= max => Ok(()),
            Some(max) => Err(format!("{v} is outside {} range 0..={max}", want.as_str())),
            None => Err(type_error()),
        },
        Value::Float(v) if want == Datatype::Float => finite(f64::from(v)),
        Value::Double(v) if want == Datatype::Double => {
            finite(v)?;
            if signal.sensitivity == Sensitivity::Location {
                check_coordinate(signal.path, v)?;
            }
            Ok(())
        }
        _ => Err(type_error()),
    }
}

fn check_coordinate(path: &str, v: f64) -> Result<(), String> {
    let limit = match path {
        vss::LATITUDE => 90.0,
        vss::LONGITUDE => 180.0,
        _ => return Ok(()),
    };
    if v.abs() > limit {
        return Err(format!("{v} is outside ±{limit} degrees"));
    }
    Ok(())
}

fn check_frame(frame: &CameraFrame, window: &Window) -> Result<(), Error> {
    if frame.jpeg.is_empty() {
        return Err(invalid("the camera frame has no image bytes".into()));
    }
    // The anonymizer decodes fully; this cheap check refuses what is plainly not a JPEG.
    if !frame.jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err(invalid(
            "the camera frame is not a JPEG (no SOI marker)".into(),
        ));
    }
    if frame.camera_id.is_empty() || frame.camera_id.len() > MAX_CAMERA_ID {
        return Err(invalid(format!(
            "camera_id must be 1 to {MAX_CAMERA_ID} bytes"
        )));
    }
    if let Some(t) = &frame.captured_at {
        window.check(t, "captured_at")?;
    }
    if let Some(p) = &frame.position {
        check_position(p, window)?;
    }
    Ok(())
}

fn check_position(p: &Position, window: &Window) -> Result<(), Error> {
    let bad = |e: String| invalid(format!("position: {e}"));
    finite(p.latitude)
        .and_then(|_| check_coordinate(vss::LATITUDE, p.latitude))
        .map_err(bad)?;
    finite(p.longitude)
        .and_then(|_| check_coordinate(vss::LONGITUDE, p.longitude))
        .map_err(bad)?;
    if !(p.horizontal_accuracy_m.is_finite() && p.horizontal_accuracy_m >= 0.0) {
        return Err(bad(
            "horizontal_accuracy_m must be a non-negative number".into()
        ));
    }
    if let Some(t) = &p.fixed_at {
        window.check(t, "position.fixed_at")?;
    }
    Ok(())
}

fn finite(v: f64) -> Result<(), String> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(format!("{v} is not a finite number"))
    }
}

fn value_kind(v: Value<'_>) -> &'static str {
    match v {
        Value::Bool(_) => "bool_value",
        Value::Int(_) => "int_value",
        Value::Uint(_) => "uint_value",
        Value::Float(_) => "float_value",
        Value::Double(_) => "double_value",
        Value::String(_) => "string_value",
    }
}

fn to_system_time(ts: &Timestamp) -> Option<SystemTime> {
    let secs = u64::try_from(ts.seconds).ok()?;
    let nanos = u32::try_from(ts.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

fn invalid(message: String) -> Error {
    Error::Invalid(message)
}

#[cfg(test)]
mod tests {
    use inland_proto::ingest::v1::{
        self as generated, Sample, TelemetryBatch, sample, upload_request,
    };

    use super::*;

    fn vin() -> Vin {
        Vin::parse("LSVAU2180N2183294").unwrap()
    }

    fn ts(t: SystemTime) -> Option<Timestamp> {
        Some(t.into())
    }

    fn sample(path: &str, value: sample::Value) -> Sample {
        Sample {
            path: path.into(),
            time: None,
            value: Some(value),
        }
    }

    fn telemetry(samples: Vec<Sample>) -> generated::UploadRequest {
        generated::UploadRequest {
            message_id: "m-1".into(),
            recorded_at: ts(SystemTime::now()),
            vin: String::new(),
            driver_profile_id: String::new(),
            payload: Some(upload_request::Payload::Telemetry(TelemetryBatch {
                samples,
            })),
        }
    }

    /// An upload's bytes as the gateway receives and checks them.
    fn raw_upload(bytes: &[u8]) -> Result<RawUpload, String> {
        let config = GatewayConfig::default();
        to_raw_record(
            UploadRequest::decode(bytes).unwrap(),
            &vin(),
            Admitted::default(),
            &config,
            &Window::new(&config, SystemTime::now()),
        )
        .map_err(|e| e.to_string())
    }

    /// Checks `req` as the gateway receives it; the record it becomes, as prost reads it.
    fn check(req: generated::UploadRequest) -> Result<RawRecord, String> {
        let upload = raw_upload(&req.encode_to_vec())?;
        let record = RawRecord::decode(upload.record).unwrap();
        assert_eq!(upload.message_id, record.message_id);
        Ok(record)
    }

    #[test]
    fn accepts_typed_vss_samples() {
        let raw = check(telemetry(vec![
            sample("Vehicle.Speed", sample::Value::FloatValue(42.5)),
            sample(vss::LATITUDE, sample::Value::DoubleValue(39.9)),
            sample(
                "Vehicle.Chassis.SteeringWheel.Angle",
                sample::Value::IntValue(-90),
            ),
            sample("Vehicle.IsMoving", sample::Value::BoolValue(true)),
        ]))
        .unwrap();
        assert_eq!(raw.vin, vin().as_str());
        assert!(raw.received_at.is_some());
    }

    #[test]
    fn the_record_is_the_upload_with_its_samples_as_sent() {
        let mut speed = sample("Vehicle.Speed", sample::Value::FloatValue(42.5));
        speed.time = ts(SystemTime::now());
        let req = telemetry(vec![
            speed,
            sample("Vehicle.IsMoving", sample::Value::BoolValue(true)),
        ]);
        let raw = check(req.clone()).unwrap();
        assert_eq!(raw.message_id, req.message_id);
        assert_eq!(raw.recorded_at, req.recorded_at);
        let (
            Some(raw_record::Payload::Telemetry(got)),
            Some(upload_request::Payload::Telemetry(sent)),
        ) = (&raw.payload, &req.payload)
        else {
            panic!("not telemetry");
        };
        assert_eq!(got, sent);
        // Byte for byte what prost writes for the same record.
        let upload = raw_upload(&req.encode_to_vec()).unwrap();
        let reencoded = RawRecord::decode(upload.record.clone())
            .unwrap()
            .encode_to_vec();
        assert_eq!(upload.record, reencoded);
    }

    #[test]
    fn refuses_a_malformed_batch_saying_so() {
        let mut req = telemetry(vec![]);
        req.payload = None;
        let mut bytes = req.encode_to_vec();
        // A batch holding a sample field whose length runs past the end of the batch.
        bytes.extend_from_slice(&[0x52, 0x02, 0x0a, 0x09]);
        let err = raw_upload(&bytes).err().unwrap();
        assert!(err.contains("not a well-formed"), "{err}");
    }

    #[test]
    fn refuses_unknown_paths_wrong_types_and_ranges() {
        let err = check(telemetry(vec![sample(
            "Vehicle.Warp",
            sample::Value::BoolValue(true),
        )]))
        .unwrap_err();
        assert!(
            err.contains("Vehicle.Warp") && err.contains("not a VSS signal"),
            "{err}"
        );
        let err = check(telemetry(vec![sample(
            "Vehicle.Speed",
            sample::Value::DoubleValue(1.0),
        )]))
        .unwrap_err();
        assert!(
            err.contains("VSS datatype is float, got double_value"),
            "{err}"
        );
        let err = check(telemetry(vec![sample(
            "Vehicle.Chassis.Accelerator.PedalPosition",
            sample::Value::UintValue(300),
        )]))
        .unwrap_err();
        assert!(err.contains("outside uint8"), "{err}");
        let err = check(telemetry(vec![sample(
            vss::LATITUDE,
            sample::Value::DoubleValue(91.0),
        )]))
        .unwrap_err();
        assert!(err.contains("±90"), "{err}");
        let err = check(telemetry(vec![sample(
            "Vehicle.Speed",
            sample::Value::FloatValue(f32::NAN),
        )]))
        .unwrap_err();
        assert!(err.contains("finite"), "{err}");
    }

    #[test]
    fn refuses_empty_and_mismatched_uploads() {
        assert!(check(telemetry(vec![])).unwrap_err().contains("no samples"));
        let mut req = telemetry(vec![sample(
            "Vehicle.Speed",
            sample::Value::FloatValue(1.0),
        )]);
        req.payload = None;
        assert!(check(req).unwrap_err().contains("no payload"));
        let mut req = telemetry(vec![sample(
            "Vehicle.Speed",
            sample::Value::FloatValue(1.0),
        )]);
        req.vin = "WVWZZZ1JZXW000001".into();
        assert!(check(req).unwrap_err().contains("another vehicle"));
        let mut req = telemetry(vec![sample(
            "Vehicle.Speed",
            sample::Value::FloatValue(1.0),
        )]);
        req.message_id.clear();
        assert!(check(req).unwrap_err().contains("message_id"));
    }

    #[test]
    fn refuses_timestamps_outside_the_window() {
        let mut req = telemetry(vec![sample(
            "Vehicle.Speed",
            sample::Value::FloatValue(1.0),
        )]);
        req.recorded_at = ts(SystemTime::now() + Duration::from_secs(3600));
        assert!(check(req).unwrap_err().contains("in the future"));
        let mut req = telemetry(vec![sample(
            "Vehicle.Speed",
            sample::Value::FloatValue(1.0),
        )]);
        req.recorded_at = ts(SystemTime::now() - Duration::from_secs(30 * 24 * 3600));
        assert!(check(req).unwrap_err().contains("older"));
        let mut req = telemetry(vec![sample(
            "Vehicle.Speed",
            sample::Value::FloatValue(1.0),
        )]);
        req.recorded_at = None;
        assert!(check(req).unwrap_err().contains("recorded_at is missing"));
    }

    #[test]
    fn checks_frames() {
        let frame = |jpeg: &[u8]| generated::UploadRequest {
            message_id: "f-1".into(),
            recorded_at: ts(SystemTime::now()),
            vin: String::new(),
            driver_profile_id: String::new(),
            payload: Some(upload_request::Payload::Frame(CameraFrame {
                camera_id: "front".into(),
                captured_at: ts(SystemTime::now()),
                jpeg: jpeg.to_vec().into(),
                position: Some(Position {
                    latitude: 31.2,
                    longitude: 121.5,
                    horizontal_accuracy_m: 3.0,
                    fixed_at: None,
                }),
            })),
        };
        assert!(check(frame(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0])).is_ok());
        assert!(check(frame(b"")).unwrap_err().contains("no image bytes"));
        assert!(check(frame(b"\x89PNG")).unwrap_err().contains("not a JPEG"));
    }
}
