//! Consent event rows: each record of the consent topic as it was, bytes and all.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, Int32Builder, Int64Builder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use bytes::Bytes;
use inland_datasets::Dataset;

use crate::Error;

pub(crate) struct ConsentRow {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) timestamp_ms: Option<i64>,
    pub(crate) key: Bytes,
    pub(crate) payload: Bytes,
    pub(crate) source: u32,
}

pub(crate) fn batch<'a>(rows: impl Iterator<Item = &'a ConsentRow>) -> Result<RecordBatch, Error> {
    let mut partition = Int32Builder::new();
    let mut offset = Int64Builder::new();
    let mut timestamp = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut key = BinaryBuilder::new();
    let mut payload = BinaryBuilder::new();
    for row in rows {
        partition.append_value(row.partition);
        offset.append_value(row.offset);
        timestamp.append_option(row.timestamp_ms);
        key.append_value(&row.key);
        payload.append_value(&row.payload);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        Arc::new(timestamp.finish()),
        Arc::new(key.finish()),
        Arc::new(payload.finish()),
    ];
    RecordBatch::try_new(Dataset::ConsentEvents.schema(), columns)
        .map_err(|e| Error::parquet("building a consent events batch")(e.into()))
}
