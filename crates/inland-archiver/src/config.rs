//! The `archiver` configuration section.

use std::time::Duration;

use inland_core::topics;
use serde::{Deserialize, Serialize};

use crate::Error;

/// How the archiver batches, buffers and retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiverConfig {
    /// The topic of anonymized records; tests and benchmarks use their own.
    pub topic: String,
    /// Consumer group reading `topic`.
    pub group: String,
    /// The consent topic whose every event is kept in the consent history.
    pub consent_topic: String,
    /// Consumer group reading `consent_topic`.
    pub consent_group: String,
    /// The topic of erasure requests (one per consent withdrawal, from the anonymizer).
    pub erasure_topic: String,
    /// Consumer group reading `erasure_topic`.
    pub erasure_group: String,
    /// A batch (one input partition's records, written as one file per dataset and hour)
    /// is written once its records' payloads reach this many bytes.
    pub max_batch_bytes: usize,
    /// ... or once it holds this many records.
    pub max_batch_records: usize,
    /// ... or this long after its first record arrived, so a quiet partition is archived
    /// (and committed) promptly.
    #[serde(with = "humantime_serde")]
    pub max_batch_age: Duration,
    /// Memory all batches (filling, waiting and being written) may hold, in bytes of
    /// records plus their rows. Beyond it the archiver stops consuming until a write
    /// completes: a slow store slows the input, it does not grow memory. Records read
    /// ahead of the batches (being decoded) add at most an eighth of this.
    pub max_buffered_bytes: usize,
    /// Object writes in flight at once, over all partitions.
    pub max_concurrent_puts: usize,
    /// Rows per Parquet row group: the unit readers skip by statistics and bloom filter.
    pub row_group_rows: usize,
    /// zstd level of the Parquet pages (1 = fastest; 3 compresses telemetry a little
    /// better for about twice the CPU).
    pub zstd_level: i32,
    /// (record id, purpose) pairs remembered per partition to drop redelivered copies
    /// (the stages upstream deliver at least once; a copy arrives within their commit
    /// window, so a few thousand suffice).
    pub dedup_ids_per_partition: usize,
    /// First backoff after a store, broker or commit failure; doubled on each further
    /// failure up to `retry_max`. Failures are retried until they heal, never skipped.
    #[serde(with = "humantime_serde")]
    pub retry_min: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// How long a shutdown waits for the records read to be archived and committed before
    /// giving up on them (they are consumed again after the restart).
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for ArchiverConfig {
    fn default() -> Self {
        Self {
            topic: topics::ANONYMIZED.into(),
            group: "inland-archiver".into(),
            consent_topic: topics::CONSENT.into(),
            consent_group: "inland-archiver-consent".into(),
            erasure_topic: topics::ERASURE.into(),
            erasure_group: "inland-archiver-erasure".into(),
            max_batch_bytes: 64 << 20,
            max_batch_records: 500_000,
            max_batch_age: Duration::from_secs(60),
            max_buffered_bytes: 512 << 20,
            max_concurrent_puts: 16,
            row_group_rows: 128 * 1024,
            zstd_level: 1,
            dedup_ids_per_partition: 20_000,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

impl ArchiverConfig {
    /// Refuses settings that cannot work; the messages say which field to change.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |problem: String| Err(Error::Config(problem));
        let inputs = [
            ("topic", &self.topic, &self.group),
            ("consent_topic", &self.consent_topic, &self.consent_group),
            ("erasure_topic", &self.erasure_topic, &self.erasure_group),
        ];
        for (field, topic, _) in inputs {
            // Topic names become part of object keys: Kafka's own charset keeps them safe.
            let valid = !topic.is_empty()
                && topic.len() <= 249
                && topic
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                && topic != "."
                && topic != "..";
            if !valid {
                return bad(format!(
                    "archiver.{field} {topic:?} is not a Kafka topic name (letters, digits, \
                     '.', '_', '-')"
                ));
            }
        }
        for (i, (field, topic, group)) in inputs.iter().enumerate() {
            let group_field = field.replace("topic", "group");
            if group.is_empty() {
                return bad(format!("archiver.{group_field} must be set"));
            }
            for (other, other_topic, other_group) in &inputs[i + 1..] {
                if topic == other_topic {
                    return bad(format!("archiver.{field} and archiver.{other} must differ"));
                }
                if group == other_group {
                    return bad(format!(
                        "archiver.{group_field} and archiver.{} must differ: each input \
                         commits on its own",
                        other.replace("topic", "group")
                    ));
                }
            }
        }
        let positive = [
            ("max_batch_bytes", self.max_batch_bytes),
            ("max_batch_records", self.max_batch_records),
            ("max_concurrent_puts", self.max_concurrent_puts),
            ("row_group_rows", self.row_group_rows),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return bad(format!("archiver.{field} must be at least 1"));
        }
        if self.max_buffered_bytes < self.max_batch_bytes {
            return bad(format!(
                "archiver.max_buffered_bytes ({}) must be at least max_batch_bytes ({}), or \
                 no batch could fill",
                self.max_buffered_bytes, self.max_batch_bytes
            ));
        }
        if self.max_batch_age.is_zero() {
            return bad("archiver.max_batch_age must be positive (e.g. \"60s\")".into());
        }
        if !(1..=22).contains(&self.zstd_level) {
            return bad(format!(
                "archiver.zstd_level {} is outside zstd's 1..=22",
                self.zstd_level
            ));
        }
        if self.retry_min.is_zero() || self.retry_max < self.retry_min {
            return bad(
                "archiver.retry_min must be positive and retry_max at least retry_min".into(),
            );
        }
        Ok(())
    }

    /// The wait before retry number `attempt` (1 for the first).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        self.retry_min
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(self.retry_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid_and_reads_from_toml() {
        ArchiverConfig::default().validate().unwrap();
        let config: ArchiverConfig = toml::from_str(
            r#"
            max_batch_bytes = 1048576
            max_batch_age = "5s"
            retry_max = "2s"
            "#,
        )
        .unwrap();
        assert_eq!(config.max_batch_age, Duration::from_secs(5));
        assert_eq!(config.max_batch_bytes, 1 << 20);
        assert_eq!(config.topic, topics::ANONYMIZED);
        config.validate().unwrap();
        assert!(toml::from_str::<ArchiverConfig>("max_batch_size = 1").is_err());
    }

    #[test]
    fn settings_that_cannot_work_are_refused_by_field() {
        let refused = |config: ArchiverConfig, field: &str| {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        };
        let d = ArchiverConfig::default;
        refused(
            ArchiverConfig {
                topic: "../x".into(),
                ..d()
            },
            "archiver.topic",
        );
        refused(
            ArchiverConfig {
                consent_topic: d().topic,
                ..d()
            },
            "consent_topic must differ",
        );
        refused(
            ArchiverConfig {
                consent_group: d().group,
                ..d()
            },
            "consent_group must differ",
        );
        refused(
            ArchiverConfig {
                erasure_topic: d().consent_topic,
                ..d()
            },
            "archiver.consent_topic and archiver.erasure_topic must differ",
        );
        refused(
            ArchiverConfig {
                erasure_group: d().group,
                ..d()
            },
            "archiver.group and archiver.erasure_group must differ",
        );
        refused(
            ArchiverConfig {
                erasure_group: String::new(),
                ..d()
            },
            "archiver.erasure_group must be set",
        );
        refused(
            ArchiverConfig {
                max_batch_records: 0,
                ..d()
            },
            "max_batch_records",
        );
        refused(
            ArchiverConfig {
                max_buffered_bytes: 1,
                ..d()
            },
            "max_buffered_bytes",
        );
        refused(
            ArchiverConfig {
                zstd_level: 0,
                ..d()
            },
            "zstd_level",
        );
        refused(
            ArchiverConfig {
                retry_max: Duration::ZERO,
                ..d()
            },
            "retry_max",
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = ArchiverConfig::default();
        assert_eq!(c.backoff(1), Duration::from_millis(100));
        assert_eq!(c.backoff(3), Duration::from_millis(400));
        assert_eq!(c.backoff(60), Duration::from_secs(10));
    }
}
