//! Properties over generated geofenced records: whatever a vehicle sends (any VSS path,
//! identifier signals, strings holding VINs, IP addresses and phone numbers, any position),
//! no output carries the VIN or an address, no output is for a purpose the record was not
//! consented for, every sample is on its purpose's allowlist, and pseudonyms are stable
//! within a key epoch and differ across epochs and keys.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use inland_anonymizer::{
    Anonymized, AnonymizerConfig, AnonymizerStage, FramesMode, LocationPrecision, PurposeConfig,
};
use inland_core::{topics, vss};
use inland_proto::Timestamp;
use inland_proto::ingest::v1::{Sample, TelemetryBatch, sample};
use inland_proto::pipeline::v1::{RAW_RECORD_SCHEMA, RawRecord, anonymized_record, raw_record};
use inland_stage::{Consumed, Record, Stage, StageError};
use proptest::prelude::*;
use prost::Message;

const SECRET_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SECRET_B: &str = "//79/Pv6+fj39vX08/Lx8O/u7ezr6uno5+bl5OPi4eA=";
const SECRET_C: &str = "ERERERERERERERERERERERERERERERERERERERERERE=";
/// Epoch 2 starts here (2026-01-01T00:00:00Z).
const ROTATION: i64 = 1_767_225_600;

fn key_file(dir: &Path, name: &str, epochs: &[(u32, &str, &str)]) -> std::path::PathBuf {
    let path = dir.join(name);
    let text: String = epochs
        .iter()
        .map(|(epoch, not_before, secret)| {
            format!(
                "[[keys]]\nepoch = {epoch}\nnot_before = \"{not_before}\"\nsecret = \"{secret}\"\n"
            )
        })
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

/// A precise-location purpose next to the defaults, so every precision is exercised.
fn purposes() -> BTreeMap<String, PurposeConfig> {
    let mut purposes = inland_anonymizer::default_purposes();
    purposes.insert(
        "routing".into(),
        PurposeConfig {
            signals: [
                vss::LATITUDE,
                vss::LONGITUDE,
                "Vehicle.CurrentLocation.Heading",
                "Vehicle.Speed",
            ]
            .map(str::to_owned)
            .to_vec(),
            location: LocationPrecision::Precise,
            time_resolution: Duration::from_millis(100),
            ..PurposeConfig::default()
        },
    );
    purposes.insert(
        "thermal".into(),
        PurposeConfig {
            signals: vec!["Vehicle.Cabin.HVAC.AmbientAirTemperature".into()],
            location: LocationPrecision::None,
            ..PurposeConfig::default()
        },
    );
    purposes
}

/// Every purpose the stage knows, and one it does not, as the gateway could name them.
fn purpose_names() -> Vec<String> {
    let mut names: Vec<String> = purposes().into_keys().collect();
    names.push("not_configured".into());
    names
}

struct Fixture {
    _dir: tempfile::TempDir,
    stage: AnonymizerStage,
    /// The same epochs with another first secret.
    other_keys: AnonymizerStage,
    runtime: tokio::runtime::Runtime,
    allowed: BTreeMap<String, BTreeSet<String>>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = |key_file| AnonymizerConfig {
        key_file: Some(key_file),
        purposes: purposes(),
        frames: FramesMode::Drop,
        output_topic: "test.anonymized".into(),
        ..AnonymizerConfig::default()
    };
    let main = key_file(
        dir.path(),
        "keys.toml",
        &[
            (1, "2020-01-01T00:00:00Z", SECRET_A),
            (2, "2026-01-01T00:00:00Z", SECRET_B),
        ],
    );
    let other = key_file(
        dir.path(),
        "other.toml",
        &[
            (1, "2020-01-01T00:00:00Z", SECRET_C),
            (2, "2026-01-01T00:00:00Z", SECRET_B),
        ],
    );
    let allowed = purposes()
        .into_iter()
        .map(|(name, p)| (name, p.signals.into_iter().collect()))
        .collect();
    Fixture {
        stage: AnonymizerStage::start(&config(main)).unwrap(),
        other_keys: AnonymizerStage::start(&config(other)).unwrap(),
        _dir: dir,
        runtime: tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap(),
        allowed,
    }
}

const VIN_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ";

fn vin() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        proptest::sample::select(VIN_ALPHABET.as_bytes().to_vec()),
        17,
    )
    .prop_map(|b| String::from_utf8(b).unwrap())
}

fn ipv4() -> impl Strategy<Value = String> {
    any::<[u8; 4]>().prop_map(|[a, b, c, d]| format!("{a}.{b}.{c}.{d}"))
}

fn ipv6() -> impl Strategy<Value = String> {
    any::<[u16; 8]>().prop_map(|g| std::net::Ipv6Addr::from(g).to_string())
}

fn phone() -> impl Strategy<Value = String> {
    (130u32..200, 0u32..10_000, 0u32..10_000).prop_map(|(a, b, c)| format!("+86 {a} {b:04} {c:04}"))
}

/// Strings a vehicle might send, several of them identifiers (`vin` is the record's).
fn text(vin: String) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(vin.clone()),
        Just(format!("owner car {}", vin.to_lowercase())),
        ipv4(),
        ipv6().prop_map(|ip| format!("peer [{ip}]:443")),
        phone(),
        "[a-z ]{0,12}",
    ]
}

fn value(vin: String) -> impl Strategy<Value = sample::Value> {
    use sample::Value::*;
    prop_oneof![
        any::<bool>().prop_map(BoolValue),
        any::<i64>().prop_map(IntValue),
        any::<u64>().prop_map(UintValue),
        any::<f32>().prop_map(FloatValue),
        (-200.0f64..200.0).prop_map(DoubleValue),
        any::<f64>().prop_map(DoubleValue),
        text(vin).prop_map(StringValue),
    ]
}

fn path() -> impl Strategy<Value = String> {
    let known: Vec<String> = vss::catalog().iter().map(|s| s.path.to_owned()).collect();
    prop_oneof![
        4 => proptest::sample::select(known),
        1 => "Vehicle\\.[A-Za-z]{1,8}(\\.[A-Za-z]{1,8})?",
        1 => Just("Vehicle.VehicleIdentification.VIN".to_owned()),
    ]
}

fn time(base: i64) -> impl Strategy<Value = Option<Timestamp>> {
    proptest::option::weighted(
        0.8,
        (0i64..5_000).prop_map(move |ms| {
            Some(Timestamp {
                seconds: base + ms / 1000,
                nanos: (ms % 1000) as i32 * 1_000_000,
            })
        }),
    )
    .prop_map(Option::flatten)
}

fn samples(vin: String, base: i64) -> impl Strategy<Value = Vec<Sample>> {
    let sample = (path(), time(base), value(vin)).prop_map(|(path, time, value)| Sample {
        path,
        time,
        value: Some(value),
    });
    // Positions as vehicles send them: a latitude and a longitude at one instant.
    let position = (time(base), -90.0f64..=90.0, -180.0f64..=180.0).prop_map(|(time, lat, lon)| {
        vec![
            Sample {
                path: vss::LATITUDE.into(),
                time,
                value: Some(sample::Value::DoubleValue(lat)),
            },
            Sample {
                path: vss::LONGITUDE.into(),
                time,
                value: Some(sample::Value::DoubleValue(lon)),
            },
        ]
    });
    (
        proptest::collection::vec(sample, 0..24),
        proptest::collection::vec(position, 0..4),
    )
        .prop_map(|(mut samples, positions)| {
            samples.extend(positions.into_iter().flatten());
            samples
        })
}

/// A geofenced record and its VIN, consented for some purposes (precise location for
/// some). Recorded either side of the key rotation.
fn record() -> impl Strategy<Value = RawRecord> {
    let names = purpose_names();
    let consented = proptest::sample::subsequence(names.clone(), 0..=names.len());
    let precise = proptest::sample::subsequence(names.clone(), 0..=names.len());
    (
        vin(),
        prop_oneof![Just(1_760_000_000i64), Just(ROTATION + 1000)],
        consented,
        precise,
    )
        .prop_flat_map(|(vin, base, purposes, precise)| {
            (samples(vin.clone(), base), text(vin.clone())).prop_map(
                move |(samples, message_id)| RawRecord {
                    message_id,
                    vin: vin.clone(),
                    recorded_at: Some(Timestamp {
                        seconds: base + 2,
                        nanos: 123_456_789,
                    }),
                    received_at: Some(Timestamp {
                        seconds: base + 3,
                        nanos: 0,
                    }),
                    purposes: purposes.clone(),
                    precise_location_purposes: precise.clone(),
                    payload: Some(raw_record::Payload::Telemetry(TelemetryBatch { samples })),
                },
            )
        })
}

fn consumed(raw: &RawRecord) -> Consumed {
    Consumed {
        topic: topics::GEOFENCED.into(),
        partition: 0,
        offset: 0,
        record: Record {
            key: raw.vin.clone().into(),
            payload: raw.encode_to_vec().into(),
            headers: vec![
                ("inland-message-id".into(), raw.message_id.clone().into()),
                ("inland-schema".into(), RAW_RECORD_SCHEMA.into()),
            ],
            timestamp_ms: None,
        },
    }
}

fn run(f: &Fixture, stage: &AnonymizerStage, raw: &RawRecord) -> Vec<Record> {
    f.runtime
        .block_on(stage.process(&consumed(raw)))
        .map_err(|e: StageError| e.to_string())
        .expect("a telemetry record with a VIN and a time is never rejected")
        .into_iter()
        .map(|o| o.record)
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every byte of a record: key, payload, header names and values.
fn all_bytes(r: &Record) -> Vec<u8> {
    let mut bytes = [&r.key[..], &r.payload[..]].concat();
    for (name, value) in &r.headers {
        bytes.extend(name.as_bytes());
        bytes.extend(&value[..]);
    }
    bytes
}

/// The identifiers a vehicle put into the record's strings.
fn identifiers_in(raw: &RawRecord) -> Vec<String> {
    let Some(raw_record::Payload::Telemetry(batch)) = &raw.payload else {
        return Vec::new();
    };
    let mut found: Vec<String> = batch
        .samples
        .iter()
        .filter_map(|s| match &s.value {
            Some(sample::Value::StringValue(t)) if inland_anonymizer::looks_like_identifier(t) => {
                Some(t.clone())
            }
            _ => None,
        })
        .collect();
    found.push(raw.message_id.clone());
    found.retain(|t| t.len() >= 7);
    found
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn no_identifier_and_nothing_outside_the_allowlist_ever_passes(raw in record()) {
        let f = fixture_once();
        let outputs = run(f, &f.stage, &raw);
        let vin = raw.vin.as_bytes();
        let identifiers = identifiers_in(&raw);
        for out in &outputs {
            let bytes = all_bytes(out);
            prop_assert!(!contains(&bytes, vin), "the VIN leaked");
            prop_assert!(!contains(&bytes, raw.vin.to_lowercase().as_bytes()));
            for id in &identifiers {
                prop_assert!(!contains(&bytes, id.as_bytes()), "{id:?} leaked");
            }
            let a = Anonymized::decode_from_topic(out).expect("valid anonymized record");
            let record = a.record();
            let Some(anonymized_record::Payload::Telemetry(t)) = &record.payload else {
                panic!("telemetry in, telemetry out")
            };
            prop_assert!(!t.samples.is_empty());
            let allowed = &f.allowed[&record.purpose];
            for s in &t.samples {
                prop_assert!(allowed.contains(&s.path), "{} in {}", s.path, record.purpose);
                prop_assert!(!matches!(s.value, Some(sample::Value::StringValue(_))));
                if let Some(sample::Value::DoubleValue(v)) = s.value
                    && s.path == vss::LATITUDE
                {
                    prop_assert!((-90.0..=90.0).contains(&v));
                }
            }
            prop_assert!(raw.purposes.contains(&record.purpose), "{} was not consented", record.purpose);
            let precise = raw.precise_location_purposes.contains(&record.purpose);
            if record.purpose != "routing" || !precise {
                prop_assert!(t.samples.iter().all(|s| s.path != "Vehicle.CurrentLocation.Heading"));
            }
            if record.purpose == "thermal" {
                prop_assert!(t.samples.iter().all(|s| vss::lookup(&s.path).unwrap().sensitivity
                    != vss::Sensitivity::Location));
            }
        }
        let purposes: Vec<String> = outputs
            .iter()
            .map(|o| Anonymized::decode_from_topic(o).unwrap().record().purpose.clone())
            .collect();
        let mut unique = purposes.clone();
        unique.dedup();
        prop_assert_eq!(unique, purposes, "at most one record per purpose");
    }

    #[test]
    fn pseudonyms_are_stable_within_an_epoch_and_differ_across_epochs_and_keys(
        vin in vin(),
        first in 0i64..1_000_000,
        second in 0i64..1_000_000,
    ) {
        let f = fixture_once();
        let speed = |seconds: i64| RawRecord {
            message_id: "m".into(),
            vin: vin.clone(),
            recorded_at: Some(Timestamp { seconds, nanos: 0 }),
            received_at: None,
            purposes: purpose_names(),
            precise_location_purposes: vec![],
            payload: Some(raw_record::Payload::Telemetry(TelemetryBatch {
                samples: vec![Sample {
                    path: "Vehicle.Speed".into(),
                    time: None,
                    value: Some(sample::Value::FloatValue(1.0)),
                }],
            })),
        };
        let key = |stage: &AnonymizerStage, seconds| {
            let out = run(f, stage, &speed(seconds));
            // One record per purpose that keeps speed, all under the one pseudonym.
            prop_assert_eq!(out.len(), 2);
            prop_assert_eq!(&out[0].key, &out[1].key);
            Ok(out[0].key.clone())
        };
        let epoch1 = key(&f.stage, ROTATION - 1 - first)?;
        prop_assert_eq!(&epoch1, &key(&f.stage, ROTATION - 1 - second)?);
        let epoch2 = key(&f.stage, ROTATION + first)?;
        prop_assert_eq!(&epoch2, &key(&f.stage, ROTATION + second)?);
        prop_assert_ne!(&epoch1, &epoch2);
        prop_assert_ne!(&epoch1, &key(&f.other_keys, ROTATION - 1 - first)?);
        // Same epoch-2 secret in both files: the pseudonym depends on the key only.
        prop_assert_eq!(&epoch2, &key(&f.other_keys, ROTATION + first)?);
    }
}

/// One fixture for all cases: loading key files per case would dominate the run time.
fn fixture_once() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(fixture)
}
