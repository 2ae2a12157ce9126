//! Edits an ONNX model's protobuf before ONNX Runtime loads it, at the wire level so that
//! every field we do not touch is copied byte for byte.
//!
//! * Every 4-D graph input and output gets symbolic batch and spatial dimensions (axis 1,
//!   the channels, stays fixed). CenterFace declares a fixed 10x3x32x32 input, which ONNX
//!   Runtime would enforce.
//! * Graph inputs that merely repeat an initializer are dropped. CenterFace (IR version 4)
//!   lists all 194 weights as inputs too, which makes them overridable at run time, so ONNX
//!   Runtime may not fold batch norms into convolutions; without them inference takes
//!   about half the time for the same outputs.

use std::collections::HashSet;

const MODEL_GRAPH: u32 = 7;
const GRAPH_INITIALIZER: u32 = 5;
const GRAPH_INPUT: u32 = 11;
const GRAPH_OUTPUT: u32 = 12;
const TENSOR_NAME: u32 = 8;
const VALUE_INFO_NAME: u32 = 1;
const VALUE_INFO_TYPE: u32 = 2;
const TYPE_TENSOR: u32 = 1;
const TENSOR_TYPE_SHAPE: u32 = 2;
const SHAPE_DIM: u32 = 1;
const DIM_PARAM: u32 = 2;

/// Rewrites a message's payload.
type Transform<'a> = dyn Fn(&[u8]) -> Result<Vec<u8>, String> + 'a;
/// Given a field's number and payload, writes its replacement and returns true, or
/// returns false to keep the field.
type Edit<'a> = dyn FnMut(u32, &[u8], &mut Vec<u8>) -> Result<bool, String> + 'a;

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

/// Returns the model with free batch/spatial dimensions and no initializer inputs.
pub fn prepare(model: &[u8]) -> Result<Vec<u8>, String> {
    rewrite(model, &mut |number, payload, out| {
        if number == MODEL_GRAPH {
            put_len(out, number, &graph(payload)?);
            Ok(true)
        } else {
            Ok(false)
        }
    })
}

fn graph(buf: &[u8]) -> Result<Vec<u8>, String> {
    let mut initializers = HashSet::new();
    for field in Fields(buf) {
        let field = field?;
        if field.number == GRAPH_INITIALIZER
            && field.wire == LEN
            && let Some(name) = string_field(field.payload, TENSOR_NAME)?
        {
            initializers.insert(name);
        }
    }
    rewrite(buf, &mut |number, payload, out| match number {
        GRAPH_INPUT => {
            let name = string_field(payload, VALUE_INFO_NAME)?.unwrap_or_default();
            if !initializers.contains(&name) {
                put_len(out, number, &value_info(payload, &name)?);
            }
            Ok(true)
        }
        GRAPH_OUTPUT => {
            let name = string_field(payload, VALUE_INFO_NAME)?.unwrap_or_default();
            put_len(out, number, &value_info(payload, &name)?);
            Ok(true)
        }
        _ => Ok(false),
    })
}

fn value_info(buf: &[u8], name: &str) -> Result<Vec<u8>, String> {
    nested(buf, VALUE_INFO_TYPE, &|type_proto| {
        nested(type_proto, TYPE_TENSOR, &|tensor| {
            nested(tensor, TENSOR_TYPE_SHAPE, &|shape| free_dims(shape, name))
        })
    })
}

/// Rewrites the one nested message `number` of `buf` with `f`.
fn nested(buf: &[u8], number: u32, f: &Transform) -> Result<Vec<u8>, String> {
    rewrite(buf, &mut |n, payload, out| {
        if n == number {
            put_len(out, n, &f(payload)?);
            Ok(true)
        } else {
            Ok(false)
        }
    })
}

fn free_dims(shape: &[u8], name: &str) -> Result<Vec<u8>, String> {
    let dims = Fields(shape)
        .filter(|f| f.as_ref().map_or(true, |f| f.number == SHAPE_DIM))
        .count();
    if dims != 4 {
        return Ok(shape.to_vec());
    }
    let mut axis = 0;
    rewrite(shape, &mut |number, _, out| {
        if number != SHAPE_DIM {
            return Ok(false);
        }
        let keep = axis == 1;
        axis += 1;
        if keep {
            return Ok(false);
        }
        let mut dim = Vec::new();
        put_len(
            &mut dim,
            DIM_PARAM,
            format!("{name}_{}", axis - 1).as_bytes(),
        );
        put_len(out, number, &dim);
        Ok(true)
    })
}

/// Copies `buf` field by field; `edit` may write a replacement (or nothing) for a
/// length-delimited field and return true, or return false to keep it as it is.
fn rewrite(buf: &[u8], edit: &mut Edit) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(buf.len());
    for field in Fields(buf) {
        let field = field?;
        if !(field.wire == LEN && edit(field.number, field.payload, &mut out)?) {
            out.extend_from_slice(field.raw);
        }
    }
    Ok(out)
}

fn string_field(buf: &[u8], number: u32) -> Result<Option<String>, String> {
    for field in Fields(buf) {
        let field = field?;
        if field.number == number && field.wire == LEN {
            return Ok(Some(String::from_utf8_lossy(field.payload).into_owned()));
        }
    }
    Ok(None)
}

struct Field<'a> {
    number: u32,
    wire: u8,
    /// The whole field, key included.
    raw: &'a [u8],
    /// The bytes of a length-delimited field.
    payload: &'a [u8],
}

struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let result = parse_field(self.0);
        match &result {
            Ok(f) => self.0 = &self.0[f.raw.len()..],
            Err(_) => self.0 = &[],
        }
        Some(result)
    }
}

fn parse_field(buf: &[u8]) -> Result<Field<'_>, String> {
    let (key, mut pos) = varint(buf, 0)?;
    let number = u32::try_from(key >> 3).map_err(|_| "field number out of range".to_string())?;
    let wire = (key & 7) as u8;
    let mut payload: &[u8] = &[];
    match wire {
        VARINT => pos = varint(buf, pos)?.1,
        I64 => pos += 8,
        I32 => pos += 4,
        LEN => {
            let (len, start) = varint(buf, pos)?;
            let end = usize::try_from(len)
                .ok()
                .and_then(|l| start.checked_add(l))
                .filter(|&e| e <= buf.len())
                .ok_or("a length-delimited field runs past its message")?;
            payload = &buf[start..end];
            pos = end;
        }
        other => return Err(format!("unsupported protobuf wire type {other}")),
    }
    if pos > buf.len() {
        return Err("a field runs past its message".into());
    }
    Ok(Field {
        number,
        wire,
        raw: &buf[..pos],
        payload,
    })
}

fn varint(buf: &[u8], mut pos: usize) -> Result<(u64, usize), String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(pos).ok_or("truncated varint")?;
        pos += 1;
        value |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Ok((value, pos));
        }
    }
    Err("varint longer than 10 bytes".into())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_len(out: &mut Vec<u8>, number: u32, payload: &[u8]) {
    put_varint(out, (u64::from(number) << 3) | u64::from(LEN));
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_int(out: &mut Vec<u8>, number: u32, v: u64) {
        put_varint(out, u64::from(number) << 3);
        put_varint(out, v);
    }

    fn value_info_msg(name: &str, dims: &[u64]) -> Vec<u8> {
        let mut shape = Vec::new();
        for &d in dims {
            let mut dim = Vec::new();
            put_int(&mut dim, 1, d);
            put_len(&mut shape, SHAPE_DIM, &dim);
        }
        let mut tensor = Vec::new();
        put_int(&mut tensor, 1, 1); // elem_type FLOAT
        put_len(&mut tensor, TENSOR_TYPE_SHAPE, &shape);
        let mut ty = Vec::new();
        put_len(&mut ty, TYPE_TENSOR, &tensor);
        let mut vi = Vec::new();
        put_len(&mut vi, VALUE_INFO_NAME, name.as_bytes());
        put_len(&mut vi, VALUE_INFO_TYPE, &ty);
        vi
    }

    /// A model with one 4-D input, one weight that is also listed as an input, and a
    /// 4-D and a 2-D output.
    fn model() -> Vec<u8> {
        let mut weight = Vec::new();
        put_int(&mut weight, 1, 4); // dims
        put_len(&mut weight, TENSOR_NAME, b"w");
        let mut graph = Vec::new();
        put_len(&mut graph, 2, b"graph-name");
        put_len(&mut graph, GRAPH_INITIALIZER, &weight);
        put_len(
            &mut graph,
            GRAPH_INPUT,
            &value_info_msg("x", &[10, 3, 32, 32]),
        );
        put_len(&mut graph, GRAPH_INPUT, &value_info_msg("w", &[4]));
        put_len(
            &mut graph,
            GRAPH_OUTPUT,
            &value_info_msg("y", &[10, 1, 8, 8]),
        );
        put_len(&mut graph, GRAPH_OUTPUT, &value_info_msg("z", &[10, 5]));
        let mut m = Vec::new();
        put_int(&mut m, 1, 4); // ir_version
        put_len(&mut m, MODEL_GRAPH, &graph);
        put_len(&mut m, 8, b"opset");
        m
    }

    fn dims(vi: &[u8]) -> Vec<String> {
        let ty = field(vi, VALUE_INFO_TYPE);
        let shape = field(field(ty, TYPE_TENSOR), TENSOR_TYPE_SHAPE);
        Fields(shape)
            .map(|d| {
                let d = d.unwrap();
                let inner = Fields(d.payload).next().unwrap().unwrap();
                match inner.number {
                    1 => varint(inner.raw, 1).unwrap().0.to_string(),
                    _ => String::from_utf8(inner.payload.to_vec()).unwrap(),
                }
            })
            .collect()
    }

    fn field(buf: &[u8], number: u32) -> &[u8] {
        Fields(buf)
            .map(Result::unwrap)
            .find(|f| f.number == number)
            .unwrap()
            .payload
    }

    fn all(buf: &[u8], number: u32) -> Vec<&[u8]> {
        Fields(buf)
            .map(Result::unwrap)
            .filter(|f| f.number == number)
            .map(|f| f.payload)
            .collect()
    }

    #[test]
    fn frees_batch_and_spatial_axes_and_drops_initializer_inputs() {
        let out = prepare(&model()).unwrap();
        let graph = field(&out, MODEL_GRAPH);
        let inputs = all(graph, GRAPH_INPUT);
        assert_eq!(inputs.len(), 1, "the weight is no longer an input");
        assert_eq!(dims(inputs[0]), ["x_0", "3", "x_2", "x_3"]);
        let outputs = all(graph, GRAPH_OUTPUT);
        assert_eq!(dims(outputs[0]), ["y_0", "1", "y_2", "y_3"]);
        assert_eq!(
            dims(outputs[1]),
            ["10", "5"],
            "non-4-D shapes are left alone"
        );
        // Untouched fields survive byte for byte.
        assert_eq!(field(graph, 2), b"graph-name");
        assert_eq!(all(graph, GRAPH_INITIALIZER).len(), 1);
        assert_eq!(field(&out, 8), b"opset");
        assert_eq!(prepare(&out).unwrap(), out, "idempotent");
    }

    #[test]
    fn malformed_protobuf_is_an_error_not_a_panic() {
        let m = model();
        assert!(prepare(&m[..m.len() - 3]).is_err());
        assert!(prepare(&[0x0B]).is_err()); // wire type 3 (group)
        assert!(prepare(&[0x08, 0xFF]).is_err()); // truncated varint
    }
}
