//! Builds upload requests from the motion model's snapshots: VSS samples typed as the
//! catalog says (the gateway refuses a wrong type), and camera frames with their position.

use std::time::SystemTime;

use bytes::Bytes;
use inland_core::vss;
use inland_proto::ingest::v1::{
    CameraFrame, Position, Sample, TelemetryBatch, UploadRequest, sample, upload_request,
};

use crate::motion::Snapshot;

pub const CAMERA_ID: &str = "front";

/// A telemetry upload: every signal at every sampling instant, each with its own time.
pub fn telemetry(
    message_id: String,
    recorded_at: SystemTime,
    ticks: &[(SystemTime, Snapshot)],
) -> UploadRequest {
    let samples = ticks
        .iter()
        .flat_map(|(time, state)| signals(state).map(|(path, value)| (time, path, value)))
        .map(|(time, path, value)| Sample {
            path: path.into(),
            time: Some((*time).into()),
            value: Some(value),
        })
        .collect();
    UploadRequest {
        message_id,
        recorded_at: Some(recorded_at.into()),
        // The certificate (or dev header) names the vehicle; repeating it adds nothing.
        vin: String::new(),
        driver_profile_id: String::new(),
        payload: Some(upload_request::Payload::Telemetry(TelemetryBatch {
            samples,
        })),
    }
}

/// A front-camera frame captured at `at`, where the vehicle was then.
pub fn frame(message_id: String, at: SystemTime, jpeg: Bytes, state: &Snapshot) -> UploadRequest {
    UploadRequest {
        message_id,
        recorded_at: Some(at.into()),
        vin: String::new(),
        driver_profile_id: String::new(),
        payload: Some(upload_request::Payload::Frame(CameraFrame {
            camera_id: CAMERA_ID.into(),
            captured_at: Some(at.into()),
            jpeg,
            position: Some(Position {
                latitude: state.position.lat,
                longitude: state.position.lon,
                horizontal_accuracy_m: state.accuracy_m as f32,
                fixed_at: Some(at.into()),
            }),
        })),
    }
}

/// The signals of one instant, in the VSS datatypes of `inland_core::vss`.
fn signals(s: &Snapshot) -> [(&'static str, sample::Value); 8] {
    use sample::Value::{BoolValue, DoubleValue, FloatValue};
    [
        ("Vehicle.Speed", FloatValue(s.speed_kmh as f32)),
        (vss::LATITUDE, DoubleValue(s.position.lat)),
        (vss::LONGITUDE, DoubleValue(s.position.lon)),
        (
            "Vehicle.CurrentLocation.Heading",
            DoubleValue(s.heading_deg),
        ),
        (vss::HORIZONTAL_ACCURACY, DoubleValue(s.accuracy_m)),
        (
            "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current",
            FloatValue(s.soc_percent as f32),
        ),
        ("Vehicle.TraveledDistance", FloatValue(s.odometer_km as f32)),
        ("Vehicle.IsMoving", BoolValue(s.is_moving())),
    ]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use inland_core::vss::Datatype;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::motion::{LatLon, Motion};

    fn states(n: usize) -> Vec<(SystemTime, Snapshot)> {
        let center = LatLon {
            lat: 39.9,
            lon: 116.4,
        };
        let mut motion = Motion::new(center, 5000.0, ChaCha8Rng::seed_from_u64(1));
        let start = SystemTime::now();
        (0..n)
            .map(|i| {
                (
                    start + Duration::from_millis(100 * i as u64),
                    motion.step(0.1),
                )
            })
            .collect()
    }

    #[test]
    fn every_sample_has_a_catalogued_path_and_its_datatype() {
        let ticks = states(10);
        let req = telemetry("0-1".into(), SystemTime::now(), &ticks);
        let Some(upload_request::Payload::Telemetry(batch)) = req.payload else {
            panic!("telemetry payload");
        };
        assert_eq!(batch.samples.len(), 10 * 8);
        for s in &batch.samples {
            let signal = vss::lookup(&s.path).unwrap_or_else(|| panic!("{} not in VSS", s.path));
            let matches = match s.value.as_ref().unwrap() {
                sample::Value::BoolValue(_) => signal.datatype == Datatype::Boolean,
                sample::Value::FloatValue(_) => signal.datatype == Datatype::Float,
                sample::Value::DoubleValue(_) => signal.datatype == Datatype::Double,
                other => panic!("unexpected value {other:?}"),
            };
            assert!(matches, "{} is {:?}", s.path, signal.datatype);
        }
        // Each instant keeps its own time, in order.
        let times: Vec<_> = batch.samples.iter().step_by(8).map(|s| s.time).collect();
        let expected: Vec<_> = ticks.iter().map(|(t, _)| Some((*t).into())).collect();
        assert_eq!(times, expected);
        assert_eq!(req.message_id, "0-1");
        assert!(req.recorded_at.is_some());
    }

    #[test]
    fn a_frame_carries_its_capture_position() {
        let (at, state) = states(1)[0];
        let req = frame(
            "0-2".into(),
            at,
            Bytes::from_static(b"\xFF\xD8\xFF"),
            &state,
        );
        let Some(upload_request::Payload::Frame(f)) = req.payload else {
            panic!("frame payload");
        };
        assert_eq!(f.camera_id, CAMERA_ID);
        let p = f.position.unwrap();
        assert_eq!(
            (p.latitude, p.longitude),
            (state.position.lat, state.position.lon)
        );
        assert!((2.0..=8.0).contains(&p.horizontal_accuracy_m));
        assert_eq!(p.fixed_at, Some(at.into()));
        assert_eq!(f.captured_at, Some(at.into()));
    }
}
