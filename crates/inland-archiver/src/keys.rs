//! Object keys. Every key the archiver writes is a function of where its records were
//! read (topic, partition, offsets) and of the rows' hour, never of when or by whom it
//! was written, so writing the same batch again replaces the same objects.

use chrono::{DateTime, Utc};
use inland_datasets::{Dataset, FRAMES_ROOT, partition_path};

/// Milliseconds in an hour: rows are partitioned by the UTC hour of their time.
const HOUR_MS: i64 = 3_600_000;

/// The hour (since the Unix epoch) holding `time_ms`.
pub(crate) fn hour_of(time_ms: i64) -> i64 {
    time_ms.div_euclid(HOUR_MS)
}

/// The start of an hour as a UTC instant; `None` outside chrono's range. Callers accept
/// only times [`valid_time`] passed.
fn hour_start(hour: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(hour.checked_mul(HOUR_MS)?)
}

/// Whether a time can be partitioned (chrono covers ±262 000 years).
pub(crate) fn valid_time(time_ms: i64) -> bool {
    DateTime::from_timestamp_millis(time_ms).is_some()
}

/// `date=YYYY-MM-DD/hour=HH/` of an hour.
fn hour_path(hour: i64) -> String {
    // Unreachable fallback: hours come from times `valid_time` accepted.
    hour_start(hour)
        .map(partition_path)
        .unwrap_or_else(|| partition_path(DateTime::UNIX_EPOCH))
}

/// A batch: a contiguous range of one partition's offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchName {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) first: i64,
    pub(crate) last: i64,
}

impl BatchName {
    /// `<topic>-p003-<first>-<last>`, offsets zero-padded to 20 digits so keys sort by
    /// offset.
    fn stem(&self) -> String {
        format!(
            "{}-p{:03}-{:020}-{:020}",
            self.topic, self.partition, self.first, self.last
        )
    }

    /// The batch's Parquet file of `dataset` for the rows of `hour`.
    pub(crate) fn parquet_key(&self, dataset: Dataset, hour: i64) -> String {
        format!(
            "{}{}{}.parquet",
            dataset.root(),
            hour_path(hour),
            self.stem()
        )
    }
}

/// The JPEG object of the frame read at `offset`.
pub(crate) fn frame_key(topic: &str, partition: i32, offset: i64, hour: i64) -> String {
    format!(
        "{FRAMES_ROOT}{}{topic}-p{partition:03}-{offset:020}.jpg",
        hour_path(hour)
    )
}

/// Where the intent of a partition's batch being written is kept (see `manifest`).
/// Outside every data class: it holds offsets only, and is rewritten with every batch.
pub(crate) fn manifest_key(topic: &str, partition: i32) -> String {
    format!("{MANIFEST_ROOT}{topic}/p{partition:03}.json")
}

pub(crate) const MANIFEST_ROOT: &str = "_archiver/manifests/";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hive_partitioned_and_named_by_offsets() {
        // 2026-11-03T07:59:59.999Z
        let t = 1_793_692_799_999;
        let name = BatchName {
            topic: "inland.anonymized.v1".into(),
            partition: 3,
            first: 100,
            last: 199,
        };
        assert_eq!(
            name.parquet_key(Dataset::Telemetry, hour_of(t)),
            "dataset=telemetry/date=2026-11-03/hour=07/\
             inland.anonymized.v1-p003-00000000000000000100-00000000000000000199.parquet"
        );
        assert_eq!(
            name.parquet_key(Dataset::FrameIndex, hour_of(t + 1)),
            "dataset=frame_index/date=2026-11-03/hour=08/\
             inland.anonymized.v1-p003-00000000000000000100-00000000000000000199.parquet"
        );
        assert_eq!(
            frame_key("inland.anonymized.v1", 12, 150, hour_of(t)),
            "dataset=frames/date=2026-11-03/hour=07/\
             inland.anonymized.v1-p012-00000000000000000150.jpg"
        );
        assert_eq!(
            manifest_key("inland.consent.v1", 0),
            "_archiver/manifests/inland.consent.v1/p000.json"
        );
        for key in [
            name.parquet_key(Dataset::ConsentEvents, hour_of(-1)),
            frame_key("t", 0, 0, 0),
        ] {
            inland_store::check_key(&key).unwrap();
        }
        assert_eq!(
            name.parquet_key(Dataset::ConsentEvents, hour_of(-1)),
            "consent/events/date=1969-12-31/hour=23/\
             inland.anonymized.v1-p003-00000000000000000100-00000000000000000199.parquet"
        );
        assert!(!valid_time(i64::MAX));
    }
}
