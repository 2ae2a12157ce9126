//! Rows of the datasets, built in Arrow as records arrive.

pub(crate) mod column;
pub(crate) mod consent;
pub(crate) mod frames;
pub(crate) mod telemetry;

use inland_proto::Timestamp;

/// Why a record cannot be archived: a stable label for metrics and a reason for the
/// dead-letter header. Neither carries data of the record (signal names at most).
#[derive(Debug)]
pub(crate) struct Reject {
    pub(crate) label: &'static str,
    pub(crate) reason: String,
}

/// Milliseconds since the Unix epoch, floored; saturates far outside any valid time
/// (which `keys::valid_time` then refuses).
pub(crate) fn millis(t: &Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(t.nanos).div_euclid(1_000_000))
}
