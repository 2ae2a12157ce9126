//! Parquet files: how the archiver writes them (zstd pages, statistics, a bloom filter on
//! `pseudonym` so an erasure reads only the row groups that may hold one) and reads them
//! back (erasure, tests).

use arrow_array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::{ArchiverConfig, Error};

/// The column an erasure looks for; telemetry and the frame index both have it.
pub(crate) const PSEUDONYM: &str = inland_datasets::telemetry::PSEUDONYM;

/// False-positive rate of the pseudonym bloom filter. parquet sizes the filter for the
/// row group's rows, then folds it down to the distinct values actually written.
const BLOOM_FPP: f64 = 0.01;

pub(crate) fn writer_properties(config: &ArchiverConfig) -> Result<WriterProperties, Error> {
    let level = ZstdLevel::try_new(config.zstd_level)
        .map_err(Error::parquet("zstd level (archiver.zstd_level)"))?;
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(config.row_group_rows))
        .set_column_bloom_filter_enabled(ColumnPath::from(PSEUDONYM), true)
        .set_column_bloom_filter_fpp(ColumnPath::from(PSEUDONYM), BLOOM_FPP)
        .set_created_by(concat!("inland-archiver ", env!("CARGO_PKG_VERSION")).into())
        .build())
}

/// One Parquet file holding `batch`.
pub(crate) fn write(batch: &RecordBatch, props: WriterProperties) -> Result<Bytes, Error> {
    let what = || format!("writing {} rows", batch.num_rows());
    // Compressed telemetry is a fraction of its Arrow size; start there.
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 4 + 4096);
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))
        .map_err(Error::parquet(what()))?;
    writer.write(batch).map_err(Error::parquet(what()))?;
    writer.close().map_err(Error::parquet(what()))?;
    Ok(out.into())
}
