//! [`Anonymized`]: the only form in which a record may reach the archive.
//!
//! Its constructor is private to this crate, and only the anonymizer stage calls it, with
//! what it built from a raw record. Outside the crate the one way to get an `Anonymized` is
//! [`Anonymized::decode_from_topic`], which checks the schema header and the record itself:
//! a keyed pseudonym and no VIN, no identifier signal or identifier-like string, only
//! catalog signals, a JPEG without metadata segments. So an archiver whose write path takes
//! `Anonymized` cannot be handed a raw or geofenced record by mistake; a deliberately forged
//! `AnonymizedRecord` on the topic still has to pass those checks (who may write to the
//! topic is the broker's ACLs' business).

use std::fmt;

use bytes::Bytes;
use inland_core::vss::{self, Sensitivity};
use inland_proto::Timestamp;
use inland_proto::ingest::v1::sample;
use inland_proto::pipeline::v1::{
    ANONYMIZED_RECORD_SCHEMA, AnonymizedFrame, AnonymizedRecord, anonymized_record,
};
use inland_stage::Record;
use prost::Message;

use crate::Error;
use crate::purpose::looks_like_identifier;

/// Header naming a record's schema.
pub const SCHEMA_HEADER: &str = "inland-schema";
/// Header with a keyed hash of the vehicle's message id (see `Key::record_id`): the same
/// upload always gets the same id, so downstream can drop redelivered copies by
/// (record id, purpose).
pub const RECORD_ID_HEADER: &str = "inland-record-id";
/// W3C trace context, passed through from the input.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// An anonymized record. Debug shows what it is, never its contents.
#[derive(Clone, PartialEq)]
pub struct Anonymized {
    record: AnonymizedRecord,
    record_id: String,
}

impl Anonymized {
    /// Only the stage builds these, from what it anonymized.
    pub(crate) fn new(record: AnonymizedRecord, record_id: String) -> Self {
        debug_assert!(verify(&record).is_ok(), "{:?}", verify(&record));
        Self { record, record_id }
    }

    /// Reads a record from `inland.anonymized.v1`, refusing anything that is not an
    /// anonymized record: another or no schema header, a key other than the pseudonym, no
    /// record id, or contents that could identify a vehicle or a person (see the module
    /// docs).
    pub fn decode_from_topic(record: &Record) -> Result<Self, Error> {
        check_schema(record)?;
        let decoded = AnonymizedRecord::decode(record.payload.clone())
            .map_err(|_| not_anonymized(NOT_A_RECORD))?;
        verify(&decoded).map_err(not_anonymized)?;
        let record_id = check_key_and_id(record, &decoded.pseudonym)?;
        Ok(Self {
            record: decoded,
            record_id: record_id.to_owned(),
        })
    }

    pub fn record(&self) -> &AnonymizedRecord {
        &self.record
    }

    pub fn into_record(self) -> AnonymizedRecord {
        self.record
    }

    /// The de-duplication id of the upload this record came from.
    pub fn record_id(&self) -> &str {
        &self.record_id
    }

    /// The record as it goes on the topic: keyed by pseudonym, with the schema and record
    /// id headers (and the trace context, when there is one).
    pub(crate) fn to_topic(&self, traceparent: Option<&Bytes>) -> Record {
        topic_record(
            self.record.pseudonym.clone().into_bytes().into(),
            self.record.encode_to_vec().into(),
            self.record_id.clone().into_bytes().into(),
            traceparent,
            self.record.recorded_at.as_ref(),
        )
    }
}

/// A telemetry record the stage wrote in place (see `wire`) as it goes on the topic, like
/// [`Anonymized::to_topic`]. Debug builds (the tests) check it as the archiver will.
pub(crate) fn telemetry_to_topic(
    pseudonym: Bytes,
    payload: Bytes,
    record_id: Bytes,
    traceparent: Option<&Bytes>,
    recorded_at: &Timestamp,
) -> Record {
    let record = topic_record(
        pseudonym,
        payload,
        record_id,
        traceparent,
        Some(recorded_at),
    );
    debug_assert!(
        Anonymized::decode_from_topic(&record).is_ok(),
        "{:?}",
        Anonymized::decode_from_topic(&record)
    );
    record
}

fn topic_record(
    key: Bytes,
    payload: Bytes,
    record_id: Bytes,
    traceparent: Option<&Bytes>,
    recorded_at: Option<&Timestamp>,
) -> Record {
    let mut headers = Vec::with_capacity(3);
    headers.push((
        SCHEMA_HEADER.to_owned(),
        Bytes::from_static(ANONYMIZED_RECORD_SCHEMA.as_bytes()),
    ));
    headers.push((RECORD_ID_HEADER.to_owned(), record_id));
    if let Some(trace) = traceparent {
        headers.push((TRACEPARENT_HEADER.to_owned(), trace.clone()));
    }
    Record {
        key,
        payload,
        headers,
        timestamp_ms: recorded_at.map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000),
    }
}

impl fmt::Debug for Anonymized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.record.payload {
            Some(anonymized_record::Payload::Telemetry(_)) => "telemetry",
            Some(anonymized_record::Payload::Frame(_)) => "frame",
            None => "none",
        };
        f.debug_struct("Anonymized")
            .field("purpose", &self.record.purpose)
            .field("key_epoch", &self.record.key_epoch)
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

/// 32 lower-case hex digits: what a pseudonym and a record id look like.
fn is_hash(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(crate) fn not_anonymized(why: &str) -> Error {
    Error::NotAnonymized(why.to_owned())
}

pub(crate) const NOT_A_RECORD: &str = "the payload is not an AnonymizedRecord";

/// The first check on a record from the topic: its schema header.
pub(crate) fn check_schema(record: &Record) -> Result<(), Error> {
    if record.header(SCHEMA_HEADER).map(|s| &s[..]) != Some(ANONYMIZED_RECORD_SCHEMA.as_bytes()) {
        return Err(not_anonymized(
            "the inland-schema header is not inland.pipeline.v1.AnonymizedRecord",
        ));
    }
    Ok(())
}

/// The last checks: the record is keyed by its pseudonym and names its record id, which
/// is returned.
pub(crate) fn check_key_and_id<'r>(record: &'r Record, pseudonym: &str) -> Result<&'r str, Error> {
    if record.key != pseudonym.as_bytes() {
        return Err(not_anonymized("the key is not the record's pseudonym"));
    }
    record
        .header(RECORD_ID_HEADER)
        .and_then(|id| std::str::from_utf8(id).ok())
        .filter(|id| is_hash(id))
        .ok_or_else(|| not_anonymized("no inland-record-id header of 32 hex digits"))
}

/// The checks `decode_from_topic` makes on the contents.
fn verify(record: &AnonymizedRecord) -> Result<(), &'static str> {
    verify_labels(&record.pseudonym, &record.purpose)?;
    match &record.payload {
        None => Err("no payload"),
        Some(anonymized_record::Payload::Telemetry(t)) => {
            if t.samples.is_empty() {
                return Err(NO_SAMPLES);
            }
            t.samples.iter().try_for_each(|s| {
                let text = match &s.value {
                    Some(sample::Value::StringValue(text)) => Some(text.as_str()),
                    _ => None,
                };
                verify_sample(vss::lookup(&s.path), text)
            })
        }
        Some(anonymized_record::Payload::Frame(frame)) => verify_frame(frame),
    }
}

pub(crate) const NO_SAMPLES: &str = "a telemetry record without samples";

/// A keyed pseudonym, and a purpose that names no one.
pub(crate) fn verify_labels(pseudonym: &str, purpose: &str) -> Result<(), &'static str> {
    if !is_hash(pseudonym) {
        return Err("the pseudonym is not 32 lower-case hex digits");
    }
    if purpose.is_empty() || looks_like_identifier(purpose) {
        return Err("no valid purpose");
    }
    Ok(())
}

/// A sample of a catalog `signal` that is not an identifier, whose string value (`text`),
/// if it has one, does not look like one.
pub(crate) fn verify_sample(
    signal: Option<&vss::Signal>,
    text: Option<&str>,
) -> Result<(), &'static str> {
    match signal {
        None => return Err("a sample of a signal outside the VSS catalog"),
        Some(signal) if signal.sensitivity == Sensitivity::Identifier => {
            return Err("an identifier signal");
        }
        Some(_) => {}
    }
    if text.is_some_and(looks_like_identifier) {
        return Err("a string value that looks like an identifier");
    }
    Ok(())
}

fn verify_frame(frame: &AnonymizedFrame) -> Result<(), &'static str> {
    if looks_like_identifier(&frame.camera_id) {
        return Err("a camera id that looks like an identifier");
    }
    if let Some(p) = &frame.position
        && !((-90.0..=90.0).contains(&p.latitude) && (-180.0..=180.0).contains(&p.longitude))
    {
        return Err("a position that is not one");
    }
    jpeg_without_metadata(&frame.jpeg)
}

/// Walks the JPEG's header segments up to the scan: only the segments an encoder writes
/// from pixels may be there (JFIF APP0, tables, frame header), no APP1-APP15 (EXIF, GPS,
/// XMP, ICC, maker notes) and no comment.
pub(crate) fn jpeg_without_metadata(jpeg: &[u8]) -> Result<(), &'static str> {
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return Err("the frame is not a JPEG");
    }
    let mut i = 2;
    loop {
        match jpeg.get(i..i + 2) {
            Some([0xFF, 0xFF]) => i += 1, // fill byte
            Some([0xFF, 0xDA]) => return Ok(()),
            Some([0xFF, 0xE1..=0xEF | 0xFE]) => {
                return Err("the JPEG carries metadata (an APPn or COM segment)");
            }
            Some([0xFF, 0x01 | 0xD0..=0xD7]) => i += 2,
            Some([0xFF, _]) => {
                let len = jpeg
                    .get(i + 2..i + 4)
                    .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
                    .ok_or("the JPEG header is truncated")?;
                if len < 2 {
                    return Err("the JPEG header is malformed");
                }
                i += 2 + len;
            }
            _ => return Err("the JPEG header is malformed or truncated"),
        }
    }
}

#[cfg(test)]
mod tests {
    use inland_proto::Timestamp;
    use inland_proto::ingest::v1::Sample;
    use inland_proto::pipeline::v1::{AnonymizedTelemetry, CoarsePosition};

    use super::*;

    const PSEUDONYM: &str = "0123456789abcdef0123456789abcdef";

    fn telemetry(samples: Vec<Sample>) -> AnonymizedRecord {
        AnonymizedRecord {
            pseudonym: PSEUDONYM.into(),
            key_epoch: 1,
            purpose: "driving_statistics".into(),
            recorded_at: Some(Timestamp {
                seconds: 1_760_000_000,
                nanos: 0,
            }),
            payload: Some(anonymized_record::Payload::Telemetry(AnonymizedTelemetry {
                samples,
            })),
        }
    }

    fn speed() -> Sample {
        Sample {
            path: "Vehicle.Speed".into(),
            time: None,
            value: Some(sample::Value::FloatValue(50.0)),
        }
    }

    fn on_topic(record: &AnonymizedRecord) -> Record {
        Anonymized {
            record: record.clone(),
            record_id: PSEUDONYM.into(),
        }
        .to_topic(None)
    }

    #[test]
    fn a_record_round_trips_through_the_topic() {
        let record = telemetry(vec![speed()]);
        let topic = on_topic(&record);
        assert_eq!(topic.key, PSEUDONYM.as_bytes());
        assert_eq!(topic.timestamp_ms, Some(1_760_000_000_000));
        let back = Anonymized::decode_from_topic(&topic).unwrap();
        assert_eq!(back.record(), &record);
        assert_eq!(back.record_id(), PSEUDONYM);
        let debug = format!("{back:?}");
        assert!(
            !debug.contains(PSEUDONYM) && !debug.contains("Speed"),
            "{debug}"
        );
    }

    #[test]
    fn what_is_not_anonymized_is_refused() {
        let refused = |record: Record, why: &str| {
            let err = Anonymized::decode_from_topic(&record).unwrap_err();
            assert!(err.to_string().contains(why), "{err}");
        };
        let good = on_topic(&telemetry(vec![speed()]));

        let mut raw_schema = good.clone();
        raw_schema.headers[0].1 = "inland.pipeline.v1.RawRecord".into();
        refused(raw_schema, "inland-schema");
        let mut no_schema = good.clone();
        no_schema.headers.remove(0);
        refused(no_schema, "inland-schema");
        let mut vin_key = good.clone();
        vin_key.key = "LSVAU2180N2183294".into();
        refused(vin_key, "key is not");
        let mut no_id = good.clone();
        no_id.headers.remove(1);
        refused(no_id, "inland-record-id");
        let mut garbage = good.clone();
        garbage.payload = vec![0x0a, 0xff, 0xff].into();
        refused(garbage, "not an AnonymizedRecord");

        let mut vin_pseudonym = telemetry(vec![speed()]);
        vin_pseudonym.pseudonym = "LSVAU2180N2183294".into();
        refused(on_topic(&vin_pseudonym), "pseudonym");
        let vin_signal = Sample {
            path: "Vehicle.VehicleIdentification.VIN".into(),
            time: None,
            value: Some(sample::Value::StringValue("LSVAU2180N2183294".into())),
        };
        refused(
            on_topic(&telemetry(vec![speed(), vin_signal])),
            "identifier signal",
        );
        let unknown = Sample {
            path: "Vehicle.Driver.Identifier.Subject".into(),
            ..speed()
        };
        refused(
            on_topic(&telemetry(vec![unknown])),
            "outside the VSS catalog",
        );
        refused(on_topic(&telemetry(vec![])), "without samples");

        let frame = |jpeg: Vec<u8>, camera: &str| AnonymizedRecord {
            payload: Some(anonymized_record::Payload::Frame(AnonymizedFrame {
                camera_id: camera.into(),
                captured_at: None,
                jpeg: jpeg.into(),
                position: Some(CoarsePosition {
                    latitude: 39.9,
                    longitude: 116.4,
                    grid_m: 1000,
                }),
                faces: 0,
                plates: 0,
            })),
            ..telemetry(vec![])
        };
        // SOI, APP0 JFIF (16 bytes), SOS.
        let mut clean = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16];
        clean.extend(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        let mut exif = clean.clone();
        exif.extend([0xFF, 0xE1, 0, 8, b'E', b'x', b'i', b'f', 0, 0]);
        let mut comment = clean.clone();
        comment.extend([0xFF, 0xFE, 0, 4, b'h', b'i']);
        clean.extend([0xFF, 0xDA, 0, 2]);
        Anonymized::decode_from_topic(&on_topic(&frame(clean.clone(), "front"))).unwrap();
        refused(on_topic(&frame(exif, "front")), "metadata");
        refused(on_topic(&frame(comment, "front")), "metadata");
        refused(on_topic(&frame(clean[..10].to_vec(), "front")), "truncated");
        refused(on_topic(&frame(b"GIF89a".to_vec(), "front")), "not a JPEG");
        refused(on_topic(&frame(clean, "LSVAU2180N2183294")), "camera id");
    }
}
