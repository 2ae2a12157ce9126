//! [`TelemetryView`]: an anonymized telemetry record read in place from the topic, for
//! the archiver, whose work per record was mostly prost allocating a `String` for every
//! sample path and the checks looking each path up again.
//!
//! A view passes exactly the checks [`Anonymized::decode_from_topic`] makes, in the same
//! order and with the same errors (the tests hold the two together over generated and
//! mangled records), so it proves anonymization as much as an [`Anonymized`] does, and
//! like it, only this crate can build one.

use inland_core::vss;
use inland_proto::Timestamp;
use inland_stage::Record;

use crate::record::{
    NO_SAMPLES, NOT_A_RECORD, check_key_and_id, check_schema, not_anonymized, verify_labels,
    verify_sample,
};
use crate::wire::{self, AnonymizedPayload, SampleView, Value};
use crate::{Anonymized, Error};

/// A record read from `inland.anonymized.v1`.
pub enum FromTopic<'a> {
    /// Telemetry, read in place.
    Telemetry(TelemetryView<'a>),
    /// A frame, decoded.
    Frame(Anonymized),
}

/// An anonymized telemetry record, borrowed from the topic record it was read from. No
/// `Debug`: it holds a pseudonym and positions.
pub struct TelemetryView<'a> {
    pseudonym: &'a str,
    key_epoch: u32,
    purpose: &'a str,
    recorded_at: Option<Timestamp>,
    record_id: &'a str,
    /// Every one a catalog signal (checked).
    samples: Vec<SampleView<'a>>,
}

/// A sample of a [`TelemetryView`]: a catalog signal that is not an identifier.
pub struct TelemetrySample<'a> {
    /// Its index in `vss::catalog()`.
    pub signal: usize,
    pub time: Option<Timestamp>,
    pub value: Option<Value<'a>>,
}

impl Anonymized {
    /// Reads a record from `inland.anonymized.v1` as [`Anonymized::decode_from_topic`]
    /// does, refusing the same records with the same errors; telemetry is read in place.
    pub fn read_from_topic(record: &Record) -> Result<FromTopic<'_>, Error> {
        check_schema(record)?;
        let view = wire::read_anonymized_record(&record.payload)
            .ok_or_else(|| not_anonymized(NOT_A_RECORD))?;
        let Some(AnonymizedPayload::Telemetry(samples)) = view.payload else {
            // A frame, or no payload: prost's types, and their checks, as they are.
            return Self::decode_from_topic(record).map(FromTopic::Frame);
        };
        verify_labels(view.pseudonym, view.purpose).map_err(not_anonymized)?;
        if samples.is_empty() {
            return Err(not_anonymized(NO_SAMPLES));
        }
        for s in &samples {
            let text = match s.value {
                Some(Value::String(text)) => Some(text),
                _ => None,
            };
            verify_sample(s.signal.map(|i| &vss::catalog()[i]), text).map_err(not_anonymized)?;
        }
        let record_id = check_key_and_id(record, view.pseudonym)?;
        Ok(FromTopic::Telemetry(TelemetryView {
            pseudonym: view.pseudonym,
            key_epoch: view.key_epoch,
            purpose: view.purpose,
            recorded_at: view.recorded_at,
            record_id,
            samples,
        }))
    }
}

impl<'a> TelemetryView<'a> {
    pub fn pseudonym(&self) -> &'a str {
        self.pseudonym
    }

    pub fn key_epoch(&self) -> u32 {
        self.key_epoch
    }

    pub fn purpose(&self) -> &'a str {
        self.purpose
    }

    pub fn recorded_at(&self) -> Option<&Timestamp> {
        self.recorded_at.as_ref()
    }

    /// The de-duplication id of the upload this record came from.
    pub fn record_id(&self) -> &'a str {
        self.record_id
    }

    /// The samples, in the record's order.
    pub fn samples(&self) -> impl ExactSizeIterator<Item = TelemetrySample<'a>> + '_ {
        self.samples.iter().map(|s| TelemetrySample {
            signal: s.signal.expect("checked: catalog signals only"),
            time: s.time,
            value: s.value,
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use inland_proto::ingest::v1::Sample;
    use inland_proto::pipeline::v1::{
        ANONYMIZED_RECORD_SCHEMA, AnonymizedFrame, AnonymizedRecord, AnonymizedTelemetry,
        anonymized_record,
    };
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::RECORD_ID_HEADER;
    use crate::record::SCHEMA_HEADER;
    use crate::wire::tests::{
        any_field, any_value, any_varint, batch_bytes, delimited, key_bytes, mangled,
        timestamp_bytes,
    };

    const PSEUDONYM: &str = "0123456789abcdef0123456789abcdef";

    fn on_topic(key: &str, payload: Vec<u8>) -> Record {
        Record {
            key: Bytes::copy_from_slice(key.as_bytes()),
            payload: payload.into(),
            headers: vec![
                (SCHEMA_HEADER.into(), ANONYMIZED_RECORD_SCHEMA.into()),
                (
                    RECORD_ID_HEADER.into(),
                    "fedcba9876543210fedcba9876543210".into(),
                ),
            ],
            timestamp_ms: None,
        }
    }

    /// What a view holds, as prost's types.
    fn as_record(view: &TelemetryView<'_>) -> AnonymizedRecord {
        AnonymizedRecord {
            pseudonym: view.pseudonym().into(),
            key_epoch: view.key_epoch(),
            purpose: view.purpose().into(),
            recorded_at: view.recorded_at().copied(),
            payload: Some(anonymized_record::Payload::Telemetry(AnonymizedTelemetry {
                samples: view
                    .samples()
                    .map(|s| Sample {
                        path: vss::catalog()[s.signal].path.into(),
                        time: s.time,
                        value: s.value.map(Value::to_proto),
                    })
                    .collect(),
            })),
        }
    }

    /// Both readers agree: the same error, or the same record and record id.
    fn agree(record: &Record) -> Result<(), TestCaseError> {
        match (
            Anonymized::read_from_topic(record),
            Anonymized::decode_from_topic(record),
        ) {
            (Err(ours), Err(theirs)) => prop_assert_eq!(ours.to_string(), theirs.to_string()),
            (Ok(FromTopic::Telemetry(view)), Ok(theirs)) => {
                prop_assert_eq!(&as_record(&view), theirs.record());
                prop_assert_eq!(view.record_id(), theirs.record_id());
            }
            (Ok(FromTopic::Frame(ours)), Ok(theirs)) => {
                prop_assert!(
                    !matches!(
                        theirs.record().payload,
                        Some(anonymized_record::Payload::Telemetry(_))
                    ),
                    "telemetry decoded by prost"
                );
                prop_assert_eq!(ours, theirs);
            }
            (ours, theirs) => prop_assert!(
                false,
                "ours {:?}, prost's {:?}",
                ours.map(|_| "a record"),
                theirs
            ),
        }
        Ok(())
    }

    /// A frame that passes the checks, or one that does not.
    fn frame_bytes() -> impl Strategy<Value = Vec<u8>> {
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16];
        jpeg.extend(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0\xFF\xDA\0\x02");
        (
            prop_oneof![Just("front"), Just("LSVAU2180N2183294")],
            any::<bool>(),
        )
            .prop_map(move |(camera_id, clean)| {
                AnonymizedFrame {
                    camera_id: camera_id.into(),
                    jpeg: if clean {
                        jpeg.clone()
                    } else {
                        b"GIF89a".to_vec()
                    }
                    .into(),
                    ..AnonymizedFrame::default()
                }
                .encode_to_vec()
            })
    }

    /// Anonymized records as the stage writes them, with what a forger or a bit flip adds:
    /// identifier signals and strings, bad pseudonyms and purposes, frames, strays.
    fn anonymized_bytes() -> impl Strategy<Value = Vec<u8>> {
        mangled(prop_oneof![
            3 => prop_oneof![Just(PSEUDONYM), Just("LSVAU2180N2183294"), Just("")]
                .prop_map(|p| delimited(1, p.as_bytes())),
            1 => Just(delimited(1, b"\xff")),
            1 => any_varint().prop_map(|v| [key_bytes(2, 0), v].concat()),
            1 => Just(key_bytes(2, 5)),
            2 => prop_oneof![Just("driving_statistics"), Just("LSVAU2180N2183294"), Just("")]
                .prop_map(|p| delimited(3, p.as_bytes())),
            1 => timestamp_bytes().prop_map(|b| delimited(4, &b)),
            6 => batch_bytes().prop_map(|b| delimited(10, &b)),
            1 => frame_bytes().prop_map(|f| delimited(11, &f)),
            1 => any_field(vec![1, 2, 3, 4, 10, 11, 12], 2),
        ])
    }

    /// Records as prost writes them, mostly valid: catalog signals (identifiers among
    /// them), identifier-like strings, a pseudonym or purpose that is a VIN, a frame.
    fn written_by_prost() -> impl Strategy<Value = Vec<u8>> {
        let paths: Vec<&str> = vss::catalog().iter().map(|s| s.path).collect();
        let sample = (
            prop_oneof![8 => proptest::sample::select(paths), 1 => Just("Vehicle.Unknown")],
            proptest::option::of((any::<i64>(), 0..1_000_000_000)),
            proptest::option::of(prop_oneof![
                4 => any_value().prop_map(Value::to_proto),
                1 => Just(Value::String("LSVAU2180N2183294").to_proto()),
            ]),
        )
            .prop_map(|(path, time, value)| Sample {
                path: path.into(),
                time: time.map(|(seconds, nanos)| Timestamp { seconds, nanos }),
                value,
            });
        let payload = prop_oneof![
            6 => proptest::collection::vec(sample, 0..8).prop_map(|samples| {
                Some(anonymized_record::Payload::Telemetry(AnonymizedTelemetry { samples }))
            }),
            1 => frame_bytes().prop_map(|f| {
                Some(anonymized_record::Payload::Frame(AnonymizedFrame::decode(&f[..]).unwrap()))
            }),
            1 => Just(None),
        ];
        (
            prop_oneof![8 => Just(PSEUDONYM), 1 => Just("LSVAU2180N2183294")],
            any::<u32>(),
            prop_oneof![8 => Just("driving_statistics"), 1 => Just("LSVAU2180N2183294")],
            proptest::option::of((any::<i64>(), any::<i32>())),
            payload,
        )
            .prop_map(|(pseudonym, key_epoch, purpose, recorded_at, payload)| {
                AnonymizedRecord {
                    pseudonym: pseudonym.into(),
                    key_epoch,
                    purpose: purpose.into(),
                    recorded_at: recorded_at.map(|(seconds, nanos)| Timestamp { seconds, nanos }),
                    payload,
                }
                .encode_to_vec()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        #[test]
        fn records_are_read_and_refused_as_decode_from_topic_reads_and_refuses_them(
            bytes in prop_oneof![
                3 => written_by_prost(),
                // Followed by more fields: payloads merged or replaced, fields repeated.
                1 => (written_by_prost(), anonymized_bytes()).prop_map(|(a, b)| [a, b].concat()),
                1 => anonymized_bytes(),
            ],
            key in prop_oneof![4 => Just(PSEUDONYM), 1 => Just("LSVAU2180N2183294")],
        ) {
            agree(&on_topic(key, bytes))?;
        }
    }

    #[test]
    fn a_record_as_the_stage_writes_it_is_read_in_place() {
        let record = AnonymizedRecord {
            pseudonym: PSEUDONYM.into(),
            key_epoch: 3,
            purpose: "driving_statistics".into(),
            recorded_at: Some(Timestamp {
                seconds: 1_760_000_000,
                nanos: 0,
            }),
            payload: Some(anonymized_record::Payload::Telemetry(AnonymizedTelemetry {
                samples: vec![Sample {
                    path: "Vehicle.Speed".into(),
                    time: None,
                    value: Some(inland_proto::ingest::v1::sample::Value::FloatValue(50.0)),
                }],
            })),
        };
        let topic = on_topic(PSEUDONYM, record.encode_to_vec());
        let Ok(FromTopic::Telemetry(view)) = Anonymized::read_from_topic(&topic) else {
            panic!("read in place");
        };
        assert_eq!(as_record(&view), record);
        agree(&topic).unwrap();
    }
}
