//! One typed telemetry signal column. Telemetry is sparse (a record samples a few of the
//! catalog's signals), so a column keeps only its values with their row numbers and
//! becomes a dense Arrow array, nulls and all, when the batch is written: memory and the
//! per-record work then grow with the samples, not with rows × signals.

use std::sync::Arc;

use arrow_array::builder::{BooleanBufferBuilder, StringBuilder};
use arrow_array::types::{
    ArrowPrimitiveType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{ArrayRef, BooleanArray, PrimitiveArray, StringArray};
use arrow_buffer::{
    ArrowNativeType, BooleanBuffer, Buffer, MutableBuffer, NullBuffer, OffsetBuffer, ScalarBuffer,
};
use inland_core::vss::Datatype;
use inland_proto::ingest::v1::sample::Value;

/// Values of one column with the rows they belong to, ascending.
pub(crate) struct Sparse<T> {
    rows: Vec<u32>,
    values: Vec<T>,
}

impl<T> Default for Sparse<T> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl<T> Sparse<T> {
    fn push(&mut self, row: u32, value: T) {
        self.rows.push(row);
        self.values.push(value);
    }

    fn validity(&self, len: usize) -> NullBuffer {
        let mut valid = BooleanBufferBuilder::new(len);
        valid.append_n(len, false);
        for &row in &self.rows {
            valid.set_bit(row as usize, true);
        }
        NullBuffer::new(valid.finish())
    }
}

impl<T: ArrowNativeType> Sparse<T> {
    fn dense<A: ArrowPrimitiveType<Native = T>>(&self, nulls: &Nulls) -> ArrayRef {
        if self.rows.is_empty() {
            return nulls.primitive::<A>();
        }
        let len = nulls.len;
        let mut dense = vec![T::default(); len];
        for (&row, &value) in self.rows.iter().zip(&self.values) {
            dense[row as usize] = value;
        }
        Arc::new(PrimitiveArray::<A>::new(
            ScalarBuffer::from(dense),
            Some(self.validity(len)),
        ))
    }
}

/// The all-null columns of a batch of `len` rows, every one on the same zeroed buffer and
/// validity: most signals have no value in a batch, and zero-filling a buffer for each
/// was most of the page faults of encoding.
pub(crate) struct Nulls {
    len: usize,
    zeros: Buffer,
    validity: NullBuffer,
}

impl Nulls {
    pub(crate) fn new(len: usize) -> Self {
        Self {
            len,
            // Room for the widest: 8-byte values, or a string column's len + 1 offsets.
            zeros: MutableBuffer::from_len_zeroed((len + 1) * 8).into(),
            validity: NullBuffer::new_null(len),
        }
    }

    pub(crate) fn primitive<A: ArrowPrimitiveType>(&self) -> ArrayRef {
        let values = ScalarBuffer::new(self.zeros.clone(), 0, self.len);
        Arc::new(PrimitiveArray::<A>::new(
            values,
            Some(self.validity.clone()),
        ))
    }

    fn boolean(&self) -> ArrayRef {
        let values = BooleanBuffer::new(self.zeros.clone(), 0, self.len);
        Arc::new(BooleanArray::new(values, Some(self.validity.clone())))
    }

    fn string(&self) -> ArrayRef {
        let offsets = OffsetBuffer::new(ScalarBuffer::new(self.zeros.clone(), 0, self.len + 1));
        Arc::new(StringArray::new(
            offsets,
            Buffer::from_vec(Vec::<u8>::new()),
            Some(self.validity.clone()),
        ))
    }
}

pub(crate) enum Column {
    Bool(Sparse<bool>),
    Utf8(Sparse<String>),
    I8(Sparse<i8>),
    I16(Sparse<i16>),
    I32(Sparse<i32>),
    I64(Sparse<i64>),
    U8(Sparse<u8>),
    U16(Sparse<u16>),
    U32(Sparse<u32>),
    U64(Sparse<u64>),
    F32(Sparse<f32>),
    F64(Sparse<f64>),
}

/// Whether `value` fits a column of `datatype` (the type and, for integers, the range).
/// The anonymizer drops mistyped samples, so only a forged record fails this.
pub(crate) fn fits(datatype: Datatype, value: &Value) -> bool {
    match value {
        Value::BoolValue(_) => datatype == Datatype::Boolean,
        Value::StringValue(_) => datatype == Datatype::String,
        Value::FloatValue(_) => datatype == Datatype::Float,
        Value::DoubleValue(_) => datatype == Datatype::Double,
        Value::IntValue(v) => datatype
            .int_range()
            .is_some_and(|(lo, hi)| (lo..=hi).contains(v)),
        Value::UintValue(v) => datatype.uint_max().is_some_and(|max| *v <= max),
    }
}

impl Column {
    pub(crate) fn new(datatype: Datatype) -> Self {
        match datatype {
            Datatype::Boolean => Self::Bool(Sparse::default()),
            Datatype::String => Self::Utf8(Sparse::default()),
            Datatype::Int8 => Self::I8(Sparse::default()),
            Datatype::Int16 => Self::I16(Sparse::default()),
            Datatype::Int32 => Self::I32(Sparse::default()),
            Datatype::Int64 => Self::I64(Sparse::default()),
            Datatype::Uint8 => Self::U8(Sparse::default()),
            Datatype::Uint16 => Self::U16(Sparse::default()),
            Datatype::Uint32 => Self::U32(Sparse::default()),
            Datatype::Uint64 => Self::U64(Sparse::default()),
            Datatype::Float => Self::F32(Sparse::default()),
            Datatype::Double => Self::F64(Sparse::default()),
        }
    }

    /// Sets the column's value of `row` (rows ascending, each once) to `value`, which
    /// [`fits`] this column; returns the memory it takes. The integer casts cannot
    /// truncate: `fits` checked the range.
    pub(crate) fn push(&mut self, row: u32, value: &Value) -> usize {
        let row_bytes = std::mem::size_of::<u32>();
        match (self, value) {
            (Self::Bool(c), Value::BoolValue(v)) => c.push(row, *v),
            (Self::Utf8(c), Value::StringValue(v)) => {
                c.push(row, v.clone());
                return row_bytes + std::mem::size_of::<String>() + v.len();
            }
            (Self::I8(c), Value::IntValue(v)) => c.push(row, *v as i8),
            (Self::I16(c), Value::IntValue(v)) => c.push(row, *v as i16),
            (Self::I32(c), Value::IntValue(v)) => c.push(row, *v as i32),
            (Self::I64(c), Value::IntValue(v)) => c.push(row, *v),
            (Self::U8(c), Value::UintValue(v)) => c.push(row, *v as u8),
            (Self::U16(c), Value::UintValue(v)) => c.push(row, *v as u16),
            (Self::U32(c), Value::UintValue(v)) => c.push(row, *v as u32),
            (Self::U64(c), Value::UintValue(v)) => c.push(row, *v),
            (Self::F32(c), Value::FloatValue(v)) => c.push(row, *v),
            (Self::F64(c), Value::DoubleValue(v)) => c.push(row, *v),
            // `fits` was checked when the record was placed.
            _ => return 0,
        }
        row_bytes + 8
    }

    /// The column as an array of `nulls.len` rows, null where it has no value.
    pub(crate) fn finish(&self, nulls: &Nulls) -> ArrayRef {
        let len = nulls.len;
        match self {
            Self::Bool(c) if c.rows.is_empty() => nulls.boolean(),
            Self::Utf8(c) if c.rows.is_empty() => nulls.string(),
            Self::Bool(c) => {
                let mut values = BooleanBufferBuilder::new(len);
                values.append_n(len, false);
                for (&row, &v) in c.rows.iter().zip(&c.values) {
                    values.set_bit(row as usize, v);
                }
                Arc::new(BooleanArray::new(values.finish(), Some(c.validity(len))))
            }
            Self::Utf8(c) => {
                let mut out =
                    StringBuilder::with_capacity(len, c.values.iter().map(String::len).sum());
                let mut next = c.rows.iter().zip(&c.values).peekable();
                for row in 0..len as u32 {
                    match next.next_if(|(r, _)| **r == row) {
                        Some((_, v)) => out.append_value(v),
                        None => out.append_null(),
                    }
                }
                Arc::new(out.finish())
            }
            Self::I8(c) => c.dense::<Int8Type>(nulls),
            Self::I16(c) => c.dense::<Int16Type>(nulls),
            Self::I32(c) => c.dense::<Int32Type>(nulls),
            Self::I64(c) => c.dense::<Int64Type>(nulls),
            Self::U8(c) => c.dense::<UInt8Type>(nulls),
            Self::U16(c) => c.dense::<UInt16Type>(nulls),
            Self::U32(c) => c.dense::<UInt32Type>(nulls),
            Self::U64(c) => c.dense::<UInt64Type>(nulls),
            Self::F32(c) => c.dense::<Float32Type>(nulls),
            Self::F64(c) => c.dense::<Float64Type>(nulls),
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;

    use super::*;

    #[test]
    fn values_fit_only_their_datatype_and_range() {
        assert!(fits(Datatype::Uint8, &Value::UintValue(255)));
        assert!(!fits(Datatype::Uint8, &Value::UintValue(256)));
        assert!(fits(Datatype::Int16, &Value::IntValue(-32768)));
        assert!(!fits(Datatype::Int16, &Value::IntValue(40_000)));
        assert!(!fits(Datatype::Int16, &Value::UintValue(1)));
        assert!(!fits(Datatype::Double, &Value::FloatValue(1.0)));
        assert!(fits(Datatype::String, &Value::StringValue("D".into())));
    }

    #[test]
    fn sparse_values_become_dense_arrays_with_nulls() {
        let mut angle = Column::new(Datatype::Int16);
        angle.push(1, &Value::IntValue(-12));
        angle.push(3, &Value::IntValue(7));
        let array = angle.finish(&Nulls::new(5));
        let array = array.as_primitive::<Int16Type>();
        assert_eq!(array.null_count(), 3);
        assert_eq!((array.value(1), array.value(3)), (-12, 7));
        assert!(array.is_null(0) && array.is_null(4));

        let mut moving = Column::new(Datatype::Boolean);
        moving.push(0, &Value::BoolValue(false));
        moving.push(2, &Value::BoolValue(true));
        let array = moving.finish(&Nulls::new(3));
        let array = array.as_boolean();
        assert!(array.is_valid(0) && !array.value(0) && array.is_null(1) && array.value(2));

        let mut gear = Column::new(Datatype::String);
        gear.push(2, &Value::StringValue("D".into()));
        let array = gear.finish(&Nulls::new(4));
        let array = array.as_string::<i32>();
        assert_eq!(array.null_count(), 3);
        assert_eq!(array.value(2), "D");
    }

    #[test]
    fn columns_without_values_are_all_null_of_their_type() {
        let nulls = Nulls::new(3);
        for datatype in [
            Datatype::Boolean,
            Datatype::String,
            Datatype::Int8,
            Datatype::Uint64,
            Datatype::Float,
            Datatype::Double,
        ] {
            let array = Column::new(datatype).finish(&nulls);
            assert_eq!(array.len(), 3);
            assert_eq!(array.null_count(), 3);
            assert_eq!(array.data_type(), &inland_datasets::arrow_type(datatype));
            array.to_data().validate_full().expect("a valid array");
        }
    }
}
