//! `inland.ingest.v1` as the gateway serves it: the same messages on the wire, but an
//! upload's telemetry stays encoded. The gateway validates the samples where they lie
//! (`crate::wire`) and writes the same bytes into the raw record, where through the
//! generated types it decoded every sample into a struct with a `String` path only to
//! encode it again.
//!
//! The messages decode as prost decodes `UploadRequest` and `UploadBatchRequest`: the last
//! occurrence of a scalar wins, a message field given twice is merged (for the telemetry
//! batch, whose encodings concatenate to their merge, by concatenating), the other case of
//! the oneof starts afresh, unknown fields are skipped.

use prost::DecodeError;
use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{self, DecodeContext, WireType};

use crate::Timestamp;
use crate::ingest::v1::CameraFrame;

include!(concat!(
    env!("OUT_DIR"),
    "/inland.ingest.v1.VehicleIngest.rs"
));

/// `inland.ingest.v1.UploadRequest`, its telemetry batch still encoded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UploadRequest {
    pub message_id: String,
    pub recorded_at: Option<Timestamp>,
    pub vin: String,
    pub driver_profile_id: String,
    pub payload: Option<UploadPayload>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum UploadPayload {
    /// The body of an `inland.ingest.v1.TelemetryBatch` (without its key and length).
    Telemetry(Bytes),
    Frame(CameraFrame),
}

/// `inland.ingest.v1.UploadBatchRequest` of [`UploadRequest`]s.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UploadBatchRequest {
    pub requests: Vec<UploadRequest>,
}

/// The fields of the payload oneof.
const TELEMETRY: u32 = 10;
const FRAME: u32 = 11;

impl prost::Message for UploadRequest {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if !self.message_id.is_empty() {
            encoding::string::encode(1, &self.message_id, buf);
        }
        if let Some(t) = &self.recorded_at {
            encoding::message::encode(2, t, buf);
        }
        if !self.vin.is_empty() {
            encoding::string::encode(3, &self.vin, buf);
        }
        if !self.driver_profile_id.is_empty() {
            encoding::string::encode(4, &self.driver_profile_id, buf);
        }
        match &self.payload {
            Some(UploadPayload::Telemetry(batch)) => encoding::bytes::encode(TELEMETRY, batch, buf),
            Some(UploadPayload::Frame(frame)) => encoding::message::encode(FRAME, frame, buf),
            None => {}
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => encoding::string::merge(wire_type, &mut self.message_id, buf, ctx),
            2 => encoding::message::merge(
                wire_type,
                self.recorded_at.get_or_insert_with(Timestamp::default),
                buf,
                ctx,
            ),
            3 => encoding::string::merge(wire_type, &mut self.vin, buf, ctx),
            4 => encoding::string::merge(wire_type, &mut self.driver_profile_id, buf, ctx),
            TELEMETRY => {
                let mut batch = Bytes::new();
                encoding::bytes::merge(wire_type, &mut batch, buf, ctx)?;
                self.payload = Some(UploadPayload::Telemetry(match self.payload.take() {
                    Some(UploadPayload::Telemetry(before)) => [before, batch].concat().into(),
                    _ => batch,
                }));
                Ok(())
            }
            FRAME => {
                let mut frame = match self.payload.take() {
                    Some(UploadPayload::Frame(frame)) => frame,
                    _ => CameraFrame::default(),
                };
                let merged = encoding::message::merge(wire_type, &mut frame, buf, ctx);
                self.payload = Some(UploadPayload::Frame(frame));
                merged
            }
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let string = |tag, s: &String| {
            if s.is_empty() {
                0
            } else {
                encoding::string::encoded_len(tag, s)
            }
        };
        string(1, &self.message_id)
            + self
                .recorded_at
                .as_ref()
                .map_or(0, |t| encoding::message::encoded_len(2, t))
            + string(3, &self.vin)
            + string(4, &self.driver_profile_id)
            + match &self.payload {
                Some(UploadPayload::Telemetry(batch)) => {
                    encoding::bytes::encoded_len(TELEMETRY, batch)
                }
                Some(UploadPayload::Frame(frame)) => encoding::message::encoded_len(FRAME, frame),
                None => 0,
            }
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

impl prost::Message for UploadBatchRequest {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encoding::message::encode_repeated(1, &self.requests, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => encoding::message::merge_repeated(wire_type, &mut self.requests, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        encoding::message::encoded_len_repeated(1, &self.requests)
    }

    fn clear(&mut self) {
        self.requests.clear();
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::ingest::v1::{self as generated, Sample, TelemetryBatch, sample, upload_request};

    fn batch(paths: &[&str]) -> TelemetryBatch {
        TelemetryBatch {
            samples: paths
                .iter()
                .map(|p| Sample {
                    path: (*p).into(),
                    time: Some(Timestamp {
                        seconds: 1_700_000_000,
                        nanos: 5,
                    }),
                    value: Some(sample::Value::FloatValue(1.5)),
                })
                .collect(),
        }
    }

    fn upload(payload: upload_request::Payload) -> generated::UploadRequest {
        generated::UploadRequest {
            message_id: "m-1".into(),
            recorded_at: Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            vin: "LSVAU2180N2183294".into(),
            driver_profile_id: "driver-2".into(),
            payload: Some(payload),
        }
    }

    #[test]
    fn reads_and_writes_the_bytes_prost_does() {
        let frame = upload_request::Payload::Frame(CameraFrame {
            camera_id: "front".into(),
            jpeg: Bytes::from_static(b"\xFF\xD8\xFF"),
            ..Default::default()
        });
        let telemetry = upload_request::Payload::Telemetry(batch(&["Vehicle.Speed"]));
        for payload in [frame, telemetry.clone()] {
            let bytes = upload(payload.clone()).encode_to_vec();
            let in_place = UploadRequest::decode(&bytes[..]).unwrap();
            assert_eq!(in_place.encode_to_vec(), bytes);
            assert_eq!(in_place.encoded_len(), bytes.len());
            assert_eq!(in_place.message_id, "m-1");
            assert_eq!(in_place.driver_profile_id, "driver-2");
            match (in_place.payload.unwrap(), payload) {
                (UploadPayload::Telemetry(got), upload_request::Payload::Telemetry(want)) => {
                    assert_eq!(got, want.encode_to_vec())
                }
                (UploadPayload::Frame(got), upload_request::Payload::Frame(want)) => {
                    assert_eq!(got, want)
                }
                _ => panic!("the payload changed case"),
            }
        }
        let batch_request = generated::UploadBatchRequest {
            requests: vec![upload(telemetry.clone()), upload(telemetry)],
        };
        let bytes = batch_request.encode_to_vec();
        let in_place = UploadBatchRequest::decode(&bytes[..]).unwrap();
        assert_eq!(in_place.requests.len(), 2);
        assert_eq!(in_place.encode_to_vec(), bytes);
    }

    #[test]
    fn a_batch_given_twice_is_merged_and_the_other_case_starts_afresh() {
        let first = upload(upload_request::Payload::Telemetry(batch(&[
            "Vehicle.Speed",
        ])));
        let second = upload(upload_request::Payload::Telemetry(batch(&[
            "Vehicle.IsMoving",
        ])));
        let frame = upload(upload_request::Payload::Frame(CameraFrame::default()));
        let both = [first.encode_to_vec(), second.encode_to_vec()].concat();
        let Some(UploadPayload::Telemetry(merged)) =
            UploadRequest::decode(&both[..]).unwrap().payload
        else {
            panic!("not telemetry")
        };
        let by_prost = generated::UploadRequest::decode(&both[..]).unwrap();
        let Some(upload_request::Payload::Telemetry(want)) = by_prost.payload else {
            panic!("not telemetry")
        };
        assert_eq!(want.samples.len(), 2);
        assert_eq!(TelemetryBatch::decode(merged).unwrap(), want);
        let frame_then_telemetry = [frame.encode_to_vec(), first.encode_to_vec()].concat();
        assert!(matches!(
            UploadRequest::decode(&frame_then_telemetry[..])
                .unwrap()
                .payload,
            Some(UploadPayload::Telemetry(_))
        ));
        let telemetry_then_frame = [first.encode_to_vec(), frame.encode_to_vec()].concat();
        assert!(matches!(
            UploadRequest::decode(&telemetry_then_frame[..])
                .unwrap()
                .payload,
            Some(UploadPayload::Frame(_))
        ));
    }

    #[test]
    fn refuses_what_prost_refuses() {
        // Field 10 with a length beyond the end; field 1 not UTF-8.
        for bad in [&[0x52, 0x05, 0x0a][..], &[0x0a, 0x01, 0xff][..]] {
            assert!(generated::UploadRequest::decode(bad).is_err());
            assert!(UploadRequest::decode(bad).is_err());
        }
    }
}
