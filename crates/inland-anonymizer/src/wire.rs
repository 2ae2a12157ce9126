//! Telemetry on the protobuf wire, without the generated types: a `RawRecord`'s samples are
//! read in place (by `inland_proto::wire`), and each purpose's `AnonymizedRecord` is
//! written straight into the buffer that goes on the topic. Through the generated types
//! every sample path became a `String` and every kept sample a struct to encode again:
//! most of the anonymizer's time.
//!
//! Reading follows prost's rules to the letter, so a payload means the same here as to the
//! generated types: the last occurrence of a field wins, a message field given twice is
//! merged (`recorded_at`, a sample's `time`, the telemetry payload), unknown fields are
//! skipped (groups too, within prost's nesting limit), every string must be UTF-8 and any
//! malformation refuses the whole record. Frames are decoded by prost itself. Writing
//! yields the bytes prost's encoding of the same record yields. The tests hold both to
//! prost, the reading of `inland_proto::wire` included.

use bytes::{BufMut, Bytes};
use inland_proto::Timestamp;
use inland_proto::ingest::v1::CameraFrame;
use inland_proto::pipeline::v1::AnonymizedFrame;
use inland_proto::wire::{
    NESTING_LIMIT, bytes_len, key, message, put_key, put_varint, skip, string, telemetry_batch,
    varint,
};
pub(crate) use inland_proto::wire::{SampleView, Value};
use prost::encoding::{WireType, encoded_len_varint};

/// A `RawRecord`, read in place. No `Debug`: nothing here may reach a log.
pub(crate) struct RawRecordView<'a> {
    pub(crate) message_id: &'a str,
    pub(crate) vin: &'a str,
    pub(crate) recorded_at: Option<Timestamp>,
    /// The purposes the gateway admitted the record for, and those with precise location.
    pub(crate) purposes: Vec<&'a str>,
    pub(crate) precise_location_purposes: Vec<&'a str>,
    pub(crate) payload: Option<Payload<'a>>,
}

pub(crate) enum Payload<'a> {
    Telemetry(Vec<SampleView<'a>>),
    Frame(CameraFrame),
}

/// Reads a `RawRecord`; `None` when prost would refuse to decode it.
pub(crate) fn read_raw_record(mut buf: &[u8]) -> Option<RawRecordView<'_>> {
    let buf = &mut buf;
    let mut record = RawRecordView {
        message_id: "",
        vin: "",
        recorded_at: None,
        purposes: Vec::new(),
        precise_location_purposes: Vec::new(),
        payload: None,
    };
    let mut received_at = Timestamp::default();
    while !buf.is_empty() {
        let (tag, wire_type) = key(buf)?;
        match tag {
            1 => record.message_id = string(wire_type, buf)?,
            2 => record.vin = string(wire_type, buf)?,
            // Top-level fields get prost's default context: its own functions match exactly.
            3 => message(
                wire_type,
                record.recorded_at.get_or_insert_with(Timestamp::default),
                buf,
            )?,
            // Not used, but it must be well-formed, as for prost.
            4 => message(wire_type, &mut received_at, buf)?,
            5 => record.purposes.push(string(wire_type, buf)?),
            6 => record
                .precise_location_purposes
                .push(string(wire_type, buf)?),
            // The oneof: the same case again merges, the other case starts afresh.
            10 => {
                let mut samples = match record.payload.take() {
                    Some(Payload::Telemetry(samples)) => samples,
                    _ => Vec::new(),
                };
                telemetry_batch(wire_type, buf, NESTING_LIMIT, &mut samples)?;
                record.payload = Some(Payload::Telemetry(samples));
            }
            11 => {
                let mut frame = match record.payload.take() {
                    Some(Payload::Frame(frame)) => frame,
                    _ => CameraFrame::default(),
                };
                message(wire_type, &mut frame, buf)?;
                record.payload = Some(Payload::Frame(frame));
            }
            _ => skip(wire_type, tag, buf, NESTING_LIMIT)?,
        }
    }
    Some(record)
}

/// An `AnonymizedRecord`, read in place. No `Debug`: nothing here may reach a log.
pub(crate) struct AnonymizedView<'a> {
    pub(crate) pseudonym: &'a str,
    pub(crate) key_epoch: u32,
    pub(crate) purpose: &'a str,
    pub(crate) recorded_at: Option<Timestamp>,
    pub(crate) payload: Option<AnonymizedPayload<'a>>,
}

pub(crate) enum AnonymizedPayload<'a> {
    Telemetry(Vec<SampleView<'a>>),
    /// Well-formed, as prost decodes it, but not kept: frames are decoded by prost itself.
    Frame,
}

/// Reads an `AnonymizedRecord` (the archiver's telemetry); `None` when prost would refuse
/// to decode it.
pub(crate) fn read_anonymized_record(mut buf: &[u8]) -> Option<AnonymizedView<'_>> {
    let buf = &mut buf;
    let mut record = AnonymizedView {
        pseudonym: "",
        key_epoch: 0,
        purpose: "",
        recorded_at: None,
        payload: None,
    };
    while !buf.is_empty() {
        let (tag, wire_type) = key(buf)?;
        match tag {
            1 => record.pseudonym = string(wire_type, buf)?,
            // prost's uint32: a varint, truncated.
            2 if wire_type == WireType::Varint => record.key_epoch = varint(buf)? as u32,
            2 => return None,
            3 => record.purpose = string(wire_type, buf)?,
            4 => message(
                wire_type,
                record.recorded_at.get_or_insert_with(Timestamp::default),
                buf,
            )?,
            // The oneof, as in `read_raw_record`.
            10 => {
                let mut samples = match record.payload.take() {
                    Some(AnonymizedPayload::Telemetry(samples)) => samples,
                    _ => Vec::new(),
                };
                telemetry_batch(wire_type, buf, NESTING_LIMIT, &mut samples)?;
                record.payload = Some(AnonymizedPayload::Telemetry(samples));
            }
            11 => {
                // Each field on its own: whether prost accepts a merge does not depend on
                // what it merges into.
                message(wire_type, &mut AnonymizedFrame::default(), buf)?;
                record.payload = Some(AnonymizedPayload::Frame);
            }
            _ => skip(wire_type, tag, buf, NESTING_LIMIT)?,
        }
    }
    Some(record)
}

/// The fields of an `AnonymizedRecord` other than its payload.
pub(crate) struct Header<'a> {
    pub(crate) pseudonym: &'a [u8],
    pub(crate) key_epoch: u32,
    pub(crate) purpose: &'a str,
    pub(crate) recorded_at: Timestamp,
}

/// Field 10 of `AnonymizedRecord`, `telemetry`.
const TELEMETRY: u32 = 10;

/// Writes one `AnonymizedRecord` with a telemetry payload into a scratch buffer. The
/// samples go first, behind room for the rest, which is written in front of them once their
/// length is known; the record is then copied out at its exact size. The buffer is only
/// ever grown: samples are written into bytes it already holds, not appended (a small
/// sample put together elsewhere and copied in costs a store-forwarding stall per sample).
pub(crate) struct TelemetryWriter<'b> {
    buf: &'b mut Vec<u8>,
    /// Where the samples start.
    samples_at: usize,
    /// Where they end.
    end: usize,
    header_len: usize,
    /// The last time written, encoded as a field: samples come in groups of one instant.
    last_time: Option<(Timestamp, TimeField)>,
}

/// A sample's `time` field: key, length and at most two 10-byte varints with their keys.
#[derive(Clone, Copy)]
struct TimeField {
    bytes: [u8; 24],
    len: usize,
}

impl TimeField {
    fn new(t: &Timestamp) -> Self {
        let mut bytes = [0; 24];
        let mut out = &mut bytes[..];
        put_key(2, WireType::LengthDelimited, &mut out);
        put_varint(timestamp_len(t) as u64, &mut out);
        encode_timestamp(t, &mut out);
        let len = 24 - out.len();
        Self { bytes, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// What the buffer grows by beyond what a record needs: a few records' worth.
const GROWTH: usize = 16 << 10;

impl<'b> TelemetryWriter<'b> {
    pub(crate) fn new(scratch: &'b mut Vec<u8>, header: &Header<'_>) -> Self {
        let header_len = header.encoded_len();
        // The payload's key and the longest length a varint can have.
        let samples_at = header_len + 1 + 10;
        if scratch.len() < samples_at {
            scratch.resize(samples_at + GROWTH, 0);
        }
        Self {
            buf: scratch,
            samples_at,
            end: samples_at,
            header_len,
            last_time: None,
        }
    }

    /// Whether no sample was written.
    pub(crate) fn is_empty(&self) -> bool {
        self.end == self.samples_at
    }

    /// Appends a sample (`AnonymizedTelemetry.samples`).
    pub(crate) fn sample(&mut self, path: &str, time: Option<&Timestamp>, value: Value<'_>) {
        let time = time.map(|t| match self.last_time {
            Some((last, field)) if last == *t => field,
            _ => {
                let field = TimeField::new(t);
                self.last_time = Some((*t, field));
                field
            }
        });
        let time = time.as_ref().map_or(&[][..], TimeField::as_bytes);
        let len = bytes_len(1, path.len()) + time.len() + value.encoded_len();
        let total = 1 + encoded_len_varint(len as u64) + len;
        let end = self.end + total;
        if self.buf.len() < end {
            self.buf.resize(end + GROWTH, 0);
        }
        let mut room = &mut self.buf[self.end..end];
        put_sample(&mut room, len, path, time, value);
        debug_assert!(room.is_empty(), "the sample fills its room exactly");
        self.end = end;
    }

    /// The encoded record.
    pub(crate) fn finish(self, header: &Header<'_>) -> Bytes {
        let samples = (self.end - self.samples_at) as u64;
        let start = self.samples_at
            - self.header_len
            - prost::encoding::key_len(TELEMETRY)
            - encoded_len_varint(samples);
        let mut front = &mut self.buf[start..self.samples_at];
        header.encode(&mut front);
        put_key(TELEMETRY, WireType::LengthDelimited, &mut front);
        put_varint(samples, &mut front);
        debug_assert!(front.is_empty(), "the header fills its room exactly");
        Bytes::copy_from_slice(&self.buf[start..self.end])
    }
}

/// One element of `AnonymizedTelemetry.samples`, `len` bytes long after its key and length.
fn put_sample(out: &mut impl BufMut, len: usize, path: &str, time: &[u8], value: Value<'_>) {
    put_key(1, WireType::LengthDelimited, out);
    put_varint(len as u64, out);
    put_key(1, WireType::LengthDelimited, out);
    put_varint(path.len() as u64, out);
    out.put_slice(path.as_bytes());
    out.put_slice(time);
    value.encode(out);
}

impl Header<'_> {
    fn encoded_len(&self) -> usize {
        let mut len = bytes_len(4, timestamp_len(&self.recorded_at));
        if !self.pseudonym.is_empty() {
            len += bytes_len(1, self.pseudonym.len());
        }
        if self.key_epoch != 0 {
            len += 1 + encoded_len_varint(u64::from(self.key_epoch));
        }
        if !self.purpose.is_empty() {
            len += bytes_len(3, self.purpose.len());
        }
        len
    }

    /// As prost does: proto3 fields at their default value are left out.
    fn encode(&self, buf: &mut impl BufMut) {
        if !self.pseudonym.is_empty() {
            put_key(1, WireType::LengthDelimited, buf);
            put_varint(self.pseudonym.len() as u64, buf);
            buf.put_slice(self.pseudonym);
        }
        if self.key_epoch != 0 {
            put_key(2, WireType::Varint, buf);
            put_varint(u64::from(self.key_epoch), buf);
        }
        if !self.purpose.is_empty() {
            put_key(3, WireType::LengthDelimited, buf);
            put_varint(self.purpose.len() as u64, buf);
            buf.put_slice(self.purpose.as_bytes());
        }
        put_key(4, WireType::LengthDelimited, buf);
        put_varint(timestamp_len(&self.recorded_at) as u64, buf);
        encode_timestamp(&self.recorded_at, buf);
    }
}

fn timestamp_len(t: &Timestamp) -> usize {
    let seconds = if t.seconds != 0 {
        1 + encoded_len_varint(t.seconds as u64)
    } else {
        0
    };
    // int32 is sign-extended on the wire.
    let nanos = if t.nanos != 0 {
        1 + encoded_len_varint(i64::from(t.nanos) as u64)
    } else {
        0
    };
    seconds + nanos
}

fn encode_timestamp(t: &Timestamp, buf: &mut impl BufMut) {
    if t.seconds != 0 {
        put_key(1, WireType::Varint, buf);
        put_varint(t.seconds as u64, buf);
    }
    if t.nanos != 0 {
        put_key(2, WireType::Varint, buf);
        put_varint(i64::from(t.nanos) as u64, buf);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use inland_core::vss;
    use inland_proto::ingest::v1::{Sample, TelemetryBatch, sample};
    use inland_proto::pipeline::v1::{
        AnonymizedRecord, AnonymizedTelemetry, RawRecord, anonymized_record, raw_record,
    };
    use proptest::prelude::*;
    use prost::Message;
    use prost::encoding::DecodeContext;

    use super::*;

    /// Paths outside the catalog, as the views keep them: not at all.
    const ELSEWHERE: &str = "<not a catalog signal>";

    /// What prost makes of the bytes, without `received_at` (read, never used) and with
    /// paths outside the catalog all alike.
    fn prost_reads(bytes: &[u8]) -> Option<RawRecord> {
        let mut record = RawRecord::decode(bytes).ok()?;
        record.received_at = None;
        if let Some(raw_record::Payload::Telemetry(batch)) = &mut record.payload {
            for s in &mut batch.samples {
                if vss::lookup(&s.path).is_none() {
                    s.path = ELSEWHERE.into();
                }
            }
        }
        Some(record)
    }

    /// What `read_raw_record` makes of them, as prost's types.
    fn we_read(bytes: &[u8]) -> Option<RawRecord> {
        let view = read_raw_record(bytes)?;
        let payload = view.payload.map(|p| match p {
            Payload::Frame(frame) => raw_record::Payload::Frame(frame),
            Payload::Telemetry(samples) => raw_record::Payload::Telemetry(TelemetryBatch {
                samples: samples
                    .into_iter()
                    .map(|s| Sample {
                        path: s
                            .signal
                            .map_or(ELSEWHERE, |i| vss::catalog()[i].path)
                            .into(),
                        time: s.time,
                        value: s.value.map(Value::to_proto),
                    })
                    .collect(),
            }),
        });
        Some(RawRecord {
            message_id: view.message_id.to_owned(),
            vin: view.vin.to_owned(),
            recorded_at: view.recorded_at,
            received_at: None,
            purposes: view.purposes.into_iter().map(str::to_owned).collect(),
            precise_location_purposes: view
                .precise_location_purposes
                .into_iter()
                .map(str::to_owned)
                .collect(),
            payload,
        })
    }

    pub(crate) fn varint_bytes(value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        prost::encoding::encode_varint(value, &mut out);
        out
    }

    pub(crate) fn key_bytes(tag: u32, wire_type: u8) -> Vec<u8> {
        varint_bytes(u64::from(tag) << 3 | u64::from(wire_type))
    }

    pub(crate) fn delimited(tag: u32, body: &[u8]) -> Vec<u8> {
        [
            key_bytes(tag, 2),
            varint_bytes(body.len() as u64),
            body.to_vec(),
        ]
        .concat()
    }

    /// Varints of every length, some overlong (still valid) or too long (not).
    pub(crate) fn any_varint() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (0u32..64)
                .prop_flat_map(|bits| 0..=u64::MAX >> (63 - bits))
                .prop_map(varint_bytes),
            (any::<u64>(), 1usize..4).prop_map(|(v, extra)| {
                // The same value with `extra` needless zero groups: prost accepts those.
                let mut bytes = varint_bytes(v);
                if bytes.len() + extra <= 10 {
                    let last = bytes.len() - 1;
                    bytes[last] |= 0x80;
                    bytes.extend(std::iter::repeat_n(0x80, extra - 1));
                    bytes.push(0);
                }
                bytes
            }),
            proptest::collection::vec(0x80u8..=0xff, 9..=10).prop_map(|mut b| {
                b.push(2);
                b
            }),
        ]
    }

    /// A field of any tag and wire type, with a plausible or random body.
    pub(crate) fn any_field(tags: Vec<u32>, depth: u32) -> BoxedStrategy<Vec<u8>> {
        let tag = proptest::sample::select(tags.clone());
        let leaf = prop_oneof![
            (tag.clone(), any_varint()).prop_map(|(t, v)| [key_bytes(t, 0), v].concat()),
            (tag.clone(), any::<[u8; 4]>())
                .prop_map(|(t, v)| [key_bytes(t, 5), v.to_vec()].concat()),
            (tag.clone(), any::<[u8; 8]>())
                .prop_map(|(t, v)| [key_bytes(t, 1), v.to_vec()].concat()),
            (tag.clone(), proptest::collection::vec(any::<u8>(), 0..12))
                .prop_map(|(t, v)| delimited(t, &v)),
            (tag.clone(), 6u8..8).prop_map(|(t, w)| key_bytes(t, w)),
        ];
        if depth == 0 {
            return leaf.boxed();
        }
        let group = (
            tag,
            proptest::collection::vec(any_field(tags, depth - 1), 0..3),
            any::<bool>(),
        )
            .prop_map(|(t, inner, matched)| {
                let end = if matched { t } else { t + 1 };
                [key_bytes(t, 3), inner.concat(), key_bytes(end, 4)].concat()
            });
        prop_oneof![4 => leaf, 1 => group].boxed()
    }

    pub(crate) fn timestamp_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (any::<i64>(), any::<i32>())
                .prop_map(|(seconds, nanos)| Timestamp { seconds, nanos }.encode_to_vec()),
            proptest::collection::vec(any_field(vec![1, 2, 3], 1), 0..4).prop_map(|f| f.concat()),
        ]
    }

    pub(crate) fn path_bytes() -> impl Strategy<Value = Vec<u8>> {
        let known: Vec<Vec<u8>> = vss::catalog()
            .iter()
            .map(|s| s.path.as_bytes().to_vec())
            .collect();
        prop_oneof![
            4 => proptest::sample::select(known),
            1 => "Vehicle\\.[A-Za-z.]{0,40}".prop_map(String::into_bytes),
            1 => Just(b"Vehicle.Sp\xffed".to_vec()),
        ]
    }

    fn value_field() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (any_varint(), 10u32..=12).prop_map(|(v, t)| [key_bytes(t, 0), v].concat()),
            any::<f32>().prop_map(|v| [key_bytes(13, 5), v.to_le_bytes().to_vec()].concat()),
            any::<f64>().prop_map(|v| [key_bytes(14, 1), v.to_le_bytes().to_vec()].concat()),
            prop_oneof![Just(b"D3".to_vec()), Just(b"\xc3\x28".to_vec())]
                .prop_map(|s| delimited(15, &s)),
        ]
    }

    pub(crate) fn sample_field() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            3 => path_bytes().prop_map(|p| delimited(1, &p)),
            3 => timestamp_bytes().prop_map(|t| delimited(2, &t)),
            4 => value_field(),
            2 => any_field(vec![1, 2, 10, 11, 12, 13, 14, 15, 3, 99], 2),
        ]
    }

    /// A sample's body as prost lays it out (path, time, value), the time often the one
    /// before it, as in a real batch: the layout vehicles send, which random fields rarely
    /// make.
    fn prost_layout_sample() -> impl Strategy<Value = Vec<u8>> {
        let time = prop_oneof![
            Just(
                Timestamp {
                    seconds: 1_765_000_000,
                    nanos: 100_000_000
                }
                .encode_to_vec()
            ),
            timestamp_bytes(),
        ];
        (path_bytes(), time, value_field())
            .prop_map(|(p, t, v)| [delimited(1, &p), delimited(2, &t), v].concat())
    }

    /// A `TelemetryBatch` (or `AnonymizedTelemetry`) body: samples, and stray fields.
    pub(crate) fn batch_bytes() -> impl Strategy<Value = Vec<u8>> {
        let sample = proptest::collection::vec(sample_field(), 0..6).prop_map(|f| f.concat());
        proptest::collection::vec(
            prop_oneof![
                4 => sample.prop_map(|s| delimited(1, &s)),
                4 => prost_layout_sample().prop_map(|s| delimited(1, &s)),
                1 => any_field(vec![1, 2], 1),
            ],
            0..5,
        )
        .prop_map(|f| f.concat())
    }

    /// Records of up to 6 `fields`, some with a byte flipped or cut short.
    pub(crate) fn mangled(field: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::collection::vec(field, 0..7),
            any::<Option<(prop::sample::Index, u8)>>(),
            any::<Option<prop::sample::Index>>(),
        )
            .prop_map(|(fields, flip, cut)| {
                let mut bytes = fields.concat();
                if let (Some((at, bits)), false) = (flip, bytes.is_empty()) {
                    let at = at.index(bytes.len());
                    bytes[at] ^= bits;
                }
                if let (Some(at), false) = (cut, bytes.is_empty()) {
                    bytes.truncate(at.index(bytes.len()));
                }
                bytes
            })
    }

    /// Records as prost writes them, and the same with fields repeated, reordered, of the
    /// wrong wire type, unknown, truncated or flipped.
    fn raw_bytes() -> impl Strategy<Value = Vec<u8>> {
        let frame = (".{0,4}", any::<[u8; 3]>()).prop_map(|(camera_id, jpeg)| {
            CameraFrame {
                camera_id,
                jpeg: jpeg.to_vec().into(),
                ..CameraFrame::default()
            }
            .encode_to_vec()
        });
        mangled(prop_oneof![
            1 => "[A-Z0-9]{17}".prop_map(|v| delimited(2, v.as_bytes())),
            1 => ".{0,8}".prop_map(|m| delimited(1, m.as_bytes())),
            1 => Just(delimited(1, b"\xff")),
            1 => (3u32..=4, timestamp_bytes()).prop_map(|(t, b)| delimited(t, &b)),
            1 => (5u32..=6, "[a-z_]{0,12}").prop_map(|(t, p)| delimited(t, p.as_bytes())),
            1 => (5u32..=6).prop_map(|t| delimited(t, b"road_\xffimagery")),
            4 => batch_bytes().prop_map(|b| delimited(10, &b)),
            1 => frame.prop_map(|f| delimited(11, &f)),
            1 => any_field(vec![1, 2, 3, 4, 5, 6, 10, 11, 12], 2),
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        #[test]
        fn records_are_read_as_prost_reads_them(bytes in raw_bytes()) {
            prop_assert_eq!(we_read(&bytes), prost_reads(&bytes));
        }

        #[test]
        fn varints_keys_and_skips_are_read_as_prost_reads_them(
            bytes in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..24),
                (any_varint(), proptest::collection::vec(any::<u8>(), 0..4))
                    .prop_map(|(v, tail)| [v, tail].concat()),
                proptest::collection::vec(0x80u8..=0xff, 0..12),
            ],
            wire_type in 0u8..6,
            tag in 1u32..20,
        ) {
            let (mut ours, mut theirs) = (&bytes[..], &bytes[..]);
            prop_assert_eq!(varint(&mut ours), prost::encoding::decode_varint(&mut theirs).ok());
            if ours.len() != bytes.len() {
                prop_assert_eq!(ours.len(), theirs.len());
            }
            let (mut ours, mut theirs) = (&bytes[..], &bytes[..]);
            prop_assert_eq!(key(&mut ours), prost::encoding::decode_key(&mut theirs).ok());
            let wire_type = WireType::try_from(u64::from(wire_type)).unwrap();
            let (mut ours, mut theirs) = (&bytes[..], &bytes[..]);
            let skipped = skip(wire_type, tag, &mut ours, NESTING_LIMIT);
            let expected = prost::encoding::skip_field(wire_type, tag, &mut theirs, DecodeContext::default());
            prop_assert_eq!(skipped.is_some(), expected.is_ok());
            if skipped.is_some() {
                prop_assert_eq!(ours.len(), theirs.len());
            }
        }
    }

    /// A string value too long for a sample to be put together on the stack.
    static LONG_TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| "x".repeat(300));

    pub(crate) fn any_value() -> impl Strategy<Value = Value<'static>> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<u64>().prop_map(Value::Uint),
            any::<f32>().prop_map(Value::Float),
            any::<f64>().prop_map(Value::Double),
            prop_oneof![Just(""), Just("eco"), Just(LONG_TEXT.as_str())].prop_map(Value::String),
        ]
    }

    proptest! {
        #[test]
        fn records_are_written_as_prost_writes_them(
            epoch in prop_oneof![Just(0u32), any::<u32>()],
            recorded_at in (any::<i64>(), any::<i32>()),
            samples in proptest::collection::vec(
                (
                    prop_oneof![path_bytes().prop_filter_map("UTF-8", |p| String::from_utf8(p).ok()), Just("V".repeat(200))],
                    proptest::option::of((-3i64..3, -2i32..2).prop_map(|(s, n)| Timestamp { seconds: 1_760_000_000 + s, nanos: n * 500_000_000 })),
                    any_value(),
                ),
                1..40,
            ),
        ) {
            let header = Header {
                pseudonym: b"0123456789abcdef0123456789abcdef",
                key_epoch: epoch,
                purpose: "driving_statistics",
                recorded_at: Timestamp { seconds: recorded_at.0, nanos: recorded_at.1 },
            };
            let mut scratch = Vec::new();
            let mut writer = TelemetryWriter::new(&mut scratch, &header);
            for (path, time, value) in &samples {
                writer.sample(path, time.as_ref(), *value);
            }
            let written = writer.finish(&header);
            let expected = AnonymizedRecord {
                pseudonym: "0123456789abcdef0123456789abcdef".into(),
                key_epoch: epoch,
                purpose: "driving_statistics".into(),
                recorded_at: Some(header.recorded_at),
                payload: Some(anonymized_record::Payload::Telemetry(AnonymizedTelemetry {
                    samples: samples
                        .iter()
                        .map(|(path, time, value)| Sample {
                            path: path.clone(),
                            time: *time,
                            value: Some(value.to_proto()),
                        })
                        .collect(),
                })),
            };
            prop_assert_eq!(&written[..], &expected.encode_to_vec()[..]);
        }
    }

    /// `depth` groups inside each other, as an unknown field 99.
    fn nested_groups(depth: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for _ in 0..depth {
            bytes.extend(key_bytes(99, 3));
        }
        for _ in 0..depth {
            bytes.extend(key_bytes(99, 4));
        }
        bytes
    }

    #[test]
    fn nesting_is_limited_where_prost_limits_it() {
        let speed = delimited(1, b"Vehicle.Speed");
        let (mut read, mut refused) = (0, 0);
        for depth in 94..=102 {
            let groups = nested_groups(depth);
            let records = [
                groups.clone(),
                delimited(10, &delimited(1, &[speed.clone(), groups.clone()].concat())),
                delimited(
                    10,
                    &delimited(1, &[speed.clone(), delimited(2, &groups)].concat()),
                ),
                delimited(3, &groups),
            ];
            for bytes in records {
                let theirs = prost_reads(&bytes);
                assert_eq!(we_read(&bytes), theirs, "depth {depth}");
                if theirs.is_some() {
                    read += 1;
                } else {
                    refused += 1;
                }
            }
        }
        assert!(
            read > 0 && refused > 0,
            "the limit lies within the depths tried"
        );
    }

    #[test]
    fn a_time_given_twice_is_merged_not_taken_from_the_sample_before() {
        let seconds_only = Timestamp {
            seconds: 1_760_000_000,
            nanos: 0,
        }
        .encode_to_vec();
        let with_nanos = Timestamp {
            seconds: 1,
            nanos: 500,
        }
        .encode_to_vec();
        let path = delimited(1, b"Vehicle.Speed");
        let first = delimited(1, &[path.clone(), delimited(2, &seconds_only)].concat());
        let second = delimited(
            1,
            &[path, delimited(2, &with_nanos), delimited(2, &seconds_only)].concat(),
        );
        let bytes = delimited(10, &[first, second].concat());
        let read = we_read(&bytes).unwrap();
        assert_eq!(Some(&read), prost_reads(&bytes).as_ref());
        let Some(raw_record::Payload::Telemetry(batch)) = read.payload else {
            panic!("telemetry")
        };
        assert_eq!(batch.samples[1].time.unwrap().nanos, 500);
    }

    #[test]
    fn the_payload_merges_into_the_same_case_and_restarts_on_the_other() {
        let frame = |camera_id: &str, jpeg: &[u8]| {
            delimited(
                11,
                &CameraFrame {
                    camera_id: camera_id.into(),
                    jpeg: jpeg.to_vec().into(),
                    ..CameraFrame::default()
                }
                .encode_to_vec(),
            )
        };
        let speed = delimited(10, &delimited(1, &delimited(1, b"Vehicle.Speed")));
        let cases = [
            [frame("front", b"a"), frame("", b"b")].concat(),
            [speed.clone(), speed.clone()].concat(),
            [speed.clone(), frame("front", b"a"), speed.clone()].concat(),
            [frame("front", b"a"), speed, frame("", b"b")].concat(),
        ];
        for bytes in cases {
            assert_eq!(we_read(&bytes), prost_reads(&bytes));
        }
        let Some(raw_record::Payload::Frame(merged)) =
            we_read(&[frame("front", b"a"), frame("", b"b")].concat())
                .unwrap()
                .payload
        else {
            panic!("a frame")
        };
        assert_eq!(
            (merged.camera_id.as_str(), &merged.jpeg[..]),
            ("front", &b"b"[..])
        );
    }

    #[test]
    fn a_record_as_the_gateway_writes_it_is_read_whole() {
        let raw = RawRecord {
            message_id: "m-1".into(),
            vin: "LSVAU2180N2183294".into(),
            recorded_at: Some(Timestamp {
                seconds: 1_760_000_000,
                nanos: 5,
            }),
            received_at: None,
            purposes: vec!["driving_statistics".into(), "map_improvement".into()],
            precise_location_purposes: vec!["map_improvement".into()],
            payload: Some(raw_record::Payload::Telemetry(TelemetryBatch {
                samples: vec![
                    Sample {
                        path: "Vehicle.Speed".into(),
                        time: Some(Timestamp {
                            seconds: 1_760_000_000,
                            nanos: 100_000_000,
                        }),
                        value: Some(sample::Value::FloatValue(50.0)),
                    },
                    Sample {
                        path: ELSEWHERE.into(),
                        time: None,
                        value: Some(sample::Value::StringValue("x".into())),
                    },
                ],
            })),
        };
        let bytes = raw.encode_to_vec();
        assert_eq!(we_read(&bytes), Some(raw.clone()));
        assert_eq!(prost_reads(&bytes), Some(raw));
        assert!(
            read_raw_record(&bytes[..bytes.len() - 1]).is_none(),
            "truncated"
        );
    }
}
