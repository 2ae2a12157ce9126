//! The stage on real frames with the real models. They need the models fetched by
//! scripts/fetch-models.sh; run them with
//!     export $(scripts/fetch-models.sh) && cargo test -p inland-anonymizer -- --ignored

use std::path::PathBuf;

use inland_anonymizer::{Anonymized, AnonymizerConfig, AnonymizerStage, FramesMode};
use inland_core::topics;
use inland_proto::Timestamp;
use inland_proto::ingest::v1::{CameraFrame, Position};
use inland_proto::pipeline::v1::{RAW_RECORD_SCHEMA, RawRecord, anonymized_record, raw_record};
use inland_stage::{Consumed, Record, Stage, StageError};
use prost::Message;

const NEEDS_MODELS: &str =
    "set INLAND_MODELS_DIR and ORT_DYLIB_PATH: run `export $(scripts/fetch-models.sh)` first";
const VIN: &str = "LSVAU2180N2183294";

/// The dev set: `INLAND_ANON_DEV`, else `../shared/data/anon-dev` beside the repo.
fn dev_image(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("INLAND_ANON_DEV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/anon-dev")
        });
    let path = dir.join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The stage anonymizing frames with the default models, failing loudly (never skipping)
/// when they are not set up.
fn stage(dir: &tempfile::TempDir) -> AnonymizerStage {
    for var in ["INLAND_MODELS_DIR", "ORT_DYLIB_PATH"] {
        assert!(
            std::env::var_os(var).is_some_and(|v| !v.is_empty()),
            "{var} is unset: {NEEDS_MODELS}"
        );
    }
    let key_file = dir.path().join("keys.toml");
    inland_anonymizer::keys::generate(&key_file).unwrap();
    AnonymizerStage::start(&AnonymizerConfig {
        key_file: Some(key_file),
        frames: FramesMode::Anonymize,
        ..AnonymizerConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e} ({NEEDS_MODELS})"))
}

fn frame(jpeg: Vec<u8>) -> Consumed {
    let at = Timestamp {
        seconds: 1_760_000_000,
        nanos: 250_000_000,
    };
    let raw = RawRecord {
        message_id: "f-1".into(),
        vin: VIN.into(),
        recorded_at: Some(at),
        received_at: Some(at),
        // What the gateway names for a vehicle that consented to camera frames.
        purposes: vec![inland_anonymizer::ROAD_IMAGERY.into()],
        precise_location_purposes: vec![],
        payload: Some(raw_record::Payload::Frame(CameraFrame {
            camera_id: "front".into(),
            captured_at: Some(at),
            jpeg: jpeg.into(),
            position: Some(Position {
                latitude: 39.9042,
                longitude: 116.4074,
                horizontal_accuracy_m: 3.0,
                fixed_at: Some(at),
            }),
        })),
    };
    Consumed {
        topic: topics::GEOFENCED.into(),
        partition: 0,
        offset: 0,
        record: Record {
            key: VIN.into(),
            payload: raw.encode_to_vec().into(),
            headers: vec![("inland-schema".into(), RAW_RECORD_SCHEMA.into())],
            timestamp_ms: None,
        },
    }
}

#[tokio::test]
#[ignore = "needs models: export $(scripts/fetch-models.sh) then cargo test -- --ignored"]
async fn a_frame_leaves_with_its_face_destroyed_a_coarse_position_and_no_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let stage = stage(&dir);
    let input = dev_image("face_astronaut.jpg");
    let mut outputs = stage.process(&frame(input.clone())).await.unwrap();
    assert_eq!(outputs.len(), 1);
    let out = outputs.pop().unwrap().record;
    assert_eq!(out.key.len(), 32, "keyed by pseudonym");
    assert!(!out.payload.windows(VIN.len()).any(|w| w == VIN.as_bytes()));
    let a = Anonymized::decode_from_topic(&out).expect("no metadata, no identifier");
    let record = a.record();
    assert_eq!(record.purpose, "road_imagery");
    let Some(anonymized_record::Payload::Frame(f)) = &record.payload else {
        panic!("a frame")
    };
    assert!(f.faces >= 1, "the astronaut's face was found");
    assert_ne!(f.jpeg, input, "re-encoded");
    assert_eq!(f.captured_at.unwrap().nanos, 0, "floored to 1 s");
    let p = f.position.unwrap();
    assert_eq!(p.grid_m, 1000);
    assert!((p.latitude - 39.9042).abs() < 0.01 && p.latitude != 39.9042);
    assert!((p.longitude - 116.4074).abs() < 0.01 && p.longitude != 116.4074);
}

#[tokio::test]
#[ignore = "needs models: export $(scripts/fetch-models.sh) then cargo test -- --ignored"]
async fn a_frame_that_cannot_be_anonymized_is_dead_lettered_not_passed() {
    let dir = tempfile::tempdir().unwrap();
    let stage = stage(&dir);
    let mut truncated = dev_image("face_astronaut.jpg");
    truncated.truncate(truncated.len() / 2);
    for jpeg in [truncated, b"GIF89a not a jpeg".to_vec()] {
        match stage.process(&frame(jpeg)).await {
            Err(StageError::Reject(reason)) => {
                assert!(reason.starts_with("frame anonymization failed"), "{reason}")
            }
            other => panic!("not rejected: {other:?}"),
        }
    }
}
