//! Telemetry on the protobuf wire, read in place: sample paths borrowed from the payload
//! and found in the VSS catalog without allocating. Through the generated types every
//! sample path becomes a `String` and every sample a struct, which cost the gateway and
//! the anonymizer most of their time per record.
//!
//! Reading follows prost's rules to the letter, so bytes mean the same here as to the
//! generated types: the last occurrence of a field wins, a message field given twice is
//! merged (a sample's `time`), unknown fields are skipped (groups too, within prost's
//! nesting limit), every string must be UTF-8 and any malformation refuses the whole
//! batch (`None`). The anonymizer's tests hold it to prost.

use inland_core::vss;
use prost::bytes::BufMut;
use prost::encoding::{DecodeContext, WireType, encoded_len_varint};

use crate::Timestamp;

/// Nesting levels prost allows (its `RECURSION_LIMIT`): a top-level field gets all of them,
/// every message level down one less.
pub const NESTING_LIMIT: u32 = 100;

/// A telemetry sample, read in place.
pub struct SampleView<'a> {
    /// The index of the path in `vss::catalog()`, if it is a catalog signal.
    pub signal: Option<usize>,
    /// The path as sent.
    pub path: &'a str,
    pub time: Option<Timestamp>,
    pub value: Option<Value<'a>>,
}

/// A sample's value (`inland.ingest.v1.Sample.value`), strings borrowed.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f32),
    Double(f64),
    String(&'a str),
}

impl Value<'_> {
    /// The value as prost's type, owning its string.
    pub fn to_proto(self) -> crate::ingest::v1::sample::Value {
        use crate::ingest::v1::sample::Value as V;
        match self {
            Value::Bool(v) => V::BoolValue(v),
            Value::Int(v) => V::IntValue(v),
            Value::Uint(v) => V::UintValue(v),
            Value::Float(v) => V::FloatValue(v),
            Value::Double(v) => V::DoubleValue(v),
            Value::String(v) => V::StringValue(v.to_owned()),
        }
    }
}

/// A top-level message field, merged by prost.
pub fn message(wire_type: WireType, into: &mut impl prost::Message, buf: &mut &[u8]) -> Option<()> {
    prost::encoding::message::merge(wire_type, into, buf, DecodeContext::default()).ok()
}

/// Appends the samples of a `TelemetryBatch` field; `nesting` as prost's context has it.
pub fn telemetry_batch<'a>(
    wire_type: WireType,
    buf: &mut &'a [u8],
    nesting: u32,
    samples: &mut Vec<SampleView<'a>>,
) -> Option<()> {
    let body = embedded(wire_type, buf, nesting)?;
    samples_of(body, nesting, samples)
}

/// Appends the samples of a `TelemetryBatch` given its `body`, the message without its key
/// and length, at `nesting` (what the field holding it was read at).
pub fn samples_of<'a>(
    mut body: &'a [u8],
    nesting: u32,
    samples: &mut Vec<SampleView<'a>>,
) -> Option<()> {
    if samples.is_empty() {
        // About 50 bytes a sample: one allocation for a whole upload.
        samples.reserve(body.len() / 48);
    }
    let mut last_time = None;
    while !body.is_empty() {
        let (tag, wire_type) = key(&mut body)?;
        match tag {
            1 => samples.push(sample(wire_type, &mut body, nesting - 1, &mut last_time)?),
            _ => skip(wire_type, tag, &mut body, nesting - 1)?,
        }
    }
    Some(())
}

/// One `Sample` field. `last_time`: the last time field read whole and what it held;
/// samples come in groups of one instant, and comparing bytes costs less than decoding.
fn sample<'a>(
    wire_type: WireType,
    buf: &mut &'a [u8],
    nesting: u32,
    last_time: &mut Option<(&'a [u8], Timestamp)>,
) -> Option<SampleView<'a>> {
    let mut body = embedded(wire_type, buf, nesting)?;
    let mut path: &[u8] = b"";
    let mut time = None;
    let mut value = None;
    while !body.is_empty() {
        let (tag, wire_type) = key(&mut body)?;
        match tag {
            1 => {
                // Checked below, or here if another path replaces it.
                if !path.is_empty() {
                    std::str::from_utf8(path).ok()?;
                }
                path = bytes(wire_type, &mut body)?;
            }
            2 => {
                let field = embedded(wire_type, &mut body, nesting - 1)?;
                match (time, *last_time) {
                    (None, Some((bytes, t))) if inland_core::bytes::equal(bytes, field) => {
                        time = Some(t)
                    }
                    _ => {
                        let whole = time.is_none();
                        let t = time.get_or_insert_with(Timestamp::default);
                        timestamp(field, t, nesting - 2)?;
                        if whole {
                            *last_time = Some((field, *t));
                        }
                    }
                }
            }
            10..=15 => value = Some(sample_value(tag, wire_type, &mut body)?),
            _ => skip(wire_type, tag, &mut body, nesting - 1)?,
        }
    }
    // A path found in the catalog is UTF-8; only others need checking.
    let signal = vss::index_of(path);
    let path = match signal {
        Some(i) => vss::catalog()[i].path,
        None => std::str::from_utf8(path).ok()?,
    };
    Some(SampleView {
        signal,
        path,
        time,
        value,
    })
}

fn sample_value<'a>(tag: u32, wire_type: WireType, buf: &mut &'a [u8]) -> Option<Value<'a>> {
    let expect = |expected: WireType| (wire_type == expected).then_some(());
    Some(match tag {
        10 => {
            expect(WireType::Varint)?;
            Value::Bool(varint(buf)? != 0)
        }
        11 => {
            expect(WireType::Varint)?;
            Value::Int(varint(buf)? as i64)
        }
        12 => {
            expect(WireType::Varint)?;
            Value::Uint(varint(buf)?)
        }
        13 => {
            expect(WireType::ThirtyTwoBit)?;
            Value::Float(f32::from_le_bytes(fixed(buf)?))
        }
        14 => {
            expect(WireType::SixtyFourBit)?;
            Value::Double(f64::from_le_bytes(fixed(buf)?))
        }
        _ => Value::String(string(wire_type, buf)?),
    })
}

/// Merges the fields of a `google.protobuf.Timestamp` into `t`.
fn timestamp(mut body: &[u8], t: &mut Timestamp, nesting: u32) -> Option<()> {
    while !body.is_empty() {
        let (tag, wire_type) = key(&mut body)?;
        match tag {
            1 if wire_type == WireType::Varint => t.seconds = varint(&mut body)? as i64,
            2 if wire_type == WireType::Varint => t.nanos = varint(&mut body)? as i32,
            1 | 2 => return None,
            _ => skip(wire_type, tag, &mut body, nesting)?,
        }
    }
    Some(())
}

/// The body of an embedded message field, as prost's `message::merge` accepts it.
fn embedded<'a>(wire_type: WireType, buf: &mut &'a [u8], nesting: u32) -> Option<&'a [u8]> {
    if nesting == 0 {
        return None;
    }
    bytes(wire_type, buf)
}

pub fn string<'a>(wire_type: WireType, buf: &mut &'a [u8]) -> Option<&'a str> {
    std::str::from_utf8(bytes(wire_type, buf)?).ok()
}

fn bytes<'a>(wire_type: WireType, buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    if wire_type != WireType::LengthDelimited {
        return None;
    }
    let len = usize::try_from(varint(buf)?).ok()?;
    let (field, rest) = buf.split_at_checked(len)?;
    *buf = rest;
    Some(field)
}

fn fixed<const N: usize>(buf: &mut &[u8]) -> Option<[u8; N]> {
    let (field, rest) = buf.split_first_chunk::<N>()?;
    *buf = rest;
    Some(*field)
}

/// A varint, refused as prost refuses it: more than 10 bytes, or more than 64 bits.
#[inline(always)]
pub fn varint(buf: &mut &[u8]) -> Option<u64> {
    // Keys, lengths and small numbers: the common case, one byte.
    let (&first, rest) = buf.split_first()?;
    if first < 0x80 {
        *buf = rest;
        return Some(u64::from(first));
    }
    long_varint(buf)
}

fn long_varint(buf: &mut &[u8]) -> Option<u64> {
    // Up to 8 bytes (times, lengths, most numbers): from one 64-bit word, without a loop.
    let word = match buf.first_chunk::<8>() {
        Some(word) => u64::from_le_bytes(*word),
        // Near the end of a message: what is left, zero-padded.
        None => buf
            .iter()
            .enumerate()
            .fold(0, |word, (i, &b)| word | u64::from(b) << (8 * i)),
    };
    let ends = !word & 0x8080_8080_8080_8080;
    if ends != 0 {
        let len = ends.trailing_zeros() as usize / 8 + 1;
        let rest = buf.get(len..)?;
        let bits = if len == 8 {
            word
        } else {
            word & ((1 << (8 * len)) - 1)
        };
        // Close the gaps the continuation bits leave: 7-bit groups to 14, 28, 56 bits.
        let x = bits & 0x7f7f_7f7f_7f7f_7f7f;
        let x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) >> 1);
        let x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) >> 2);
        let x = (x & 0x0000_0000_0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) >> 4);
        *buf = rest;
        return Some(x);
    }
    // 9 or 10 bytes.
    let mut value = 0;
    for (i, &byte) in buf.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte < 0x80 {
            if i == 9 && byte > 1 {
                return None;
            }
            *buf = &buf[i + 1..];
            return Some(value);
        }
    }
    None
}

/// A field's key: its tag (at least 1) and wire type, as prost's `decode_key` reads it.
#[inline(always)]
pub fn key(buf: &mut &[u8]) -> Option<(u32, WireType)> {
    let key = u32::try_from(varint(buf)?).ok()?;
    let wire_type = WireType::try_from(u64::from(key & 7)).ok()?;
    let tag = key >> 3;
    (tag >= 1).then_some((tag, wire_type))
}

/// Skips an unknown field as prost's `skip_field` does, groups included.
pub fn skip(wire_type: WireType, tag: u32, buf: &mut &[u8], nesting: u32) -> Option<()> {
    if nesting == 0 {
        return None;
    }
    let len = match wire_type {
        WireType::Varint => varint(buf).map(|_| 0)?,
        WireType::ThirtyTwoBit => 4,
        WireType::SixtyFourBit => 8,
        WireType::LengthDelimited => varint(buf)?,
        WireType::StartGroup => loop {
            let (inner_tag, inner_wire_type) = key(buf)?;
            if inner_wire_type == WireType::EndGroup {
                if inner_tag != tag {
                    return None;
                }
                break 0;
            }
            skip(inner_wire_type, inner_tag, buf, nesting - 1)?;
        },
        WireType::EndGroup => return None,
    };
    *buf = buf.get(usize::try_from(len).ok()?..)?;
    Some(())
}

/// Writing a value as its field of `Sample.value`.
impl Value<'_> {
    #[inline]
    pub fn encoded_len(&self) -> usize {
        match *self {
            Value::Bool(_) => 2,
            Value::Int(v) => 1 + encoded_len_varint(v as u64),
            Value::Uint(v) => 1 + encoded_len_varint(v),
            Value::Float(_) => 5,
            Value::Double(_) => 9,
            Value::String(s) => bytes_len(15, s.len()),
        }
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        match *self {
            Value::Bool(v) => {
                put_key(10, WireType::Varint, buf);
                buf.put_u8(u8::from(v));
            }
            Value::Int(v) => {
                put_key(11, WireType::Varint, buf);
                put_varint(v as u64, buf);
            }
            Value::Uint(v) => {
                put_key(12, WireType::Varint, buf);
                put_varint(v, buf);
            }
            Value::Float(v) => {
                put_key(13, WireType::ThirtyTwoBit, buf);
                buf.put_f32_le(v);
            }
            Value::Double(v) => {
                put_key(14, WireType::SixtyFourBit, buf);
                buf.put_f64_le(v);
            }
            Value::String(s) => {
                put_key(15, WireType::LengthDelimited, buf);
                put_varint(s.len() as u64, buf);
                buf.put_slice(s.as_bytes());
            }
        }
    }
}

#[inline(always)]
pub fn put_varint(mut value: u64, buf: &mut impl BufMut) {
    while value >= 0x80 {
        buf.put_u8(value as u8 | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

pub fn put_key(tag: u32, wire_type: WireType, buf: &mut impl BufMut) {
    put_varint(u64::from(tag << 3 | wire_type as u32), buf);
}

/// A length-delimited field of `len` bytes.
#[inline]
pub fn bytes_len(tag: u32, len: usize) -> usize {
    prost::encoding::key_len(tag) + encoded_len_varint(len as u64) + len
}
