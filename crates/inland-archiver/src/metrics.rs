//! Every archiver metric together with its log line. Logs carry topics, partitions,
//! offsets, object keys and counts, never a pseudonym, a key, a position or a payload.

use std::time::Duration;

use metrics::{Counter, Histogram, counter, gauge, histogram};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::erase::ErasureReport;
use crate::flush::STAGE;

/// Records consumed, by `topic` and `outcome`: `archived`, `duplicate` (a redelivered
/// copy, dropped), `erased` (covered by an erasure request, dropped), `rejected` (not
/// archivable, dead-lettered), `refused` (the store refused its object's key,
/// dead-lettered).
pub const RECORDS: &str = "inland_archiver_records_total";
/// Rejected records by `topic` and `reason` (a short stable label).
pub const REJECTED: &str = "inland_archiver_rejected_total";
/// Objects written, their bytes and rows, by `dataset` (`telemetry`, `frame_index`,
/// `frames`, `consent_events`).
pub const OBJECTS: &str = "inland_archiver_objects_total";
pub const OBJECT_BYTES: &str = "inland_archiver_object_bytes_total";
pub const ROWS: &str = "inland_archiver_rows_total";
/// Writing a batch, from its manifest to its offsets committed, by `topic`.
pub const FLUSH_SECONDS: &str = "inland_archiver_flush_seconds";
/// One successful object write.
pub const PUT_SECONDS: &str = "inland_archiver_store_put_seconds";
/// Store operations that failed and are retried, by `op`.
pub const STORE_RETRIES: &str = "inland_archiver_store_retries_total";
/// Commits or dead-letter sends that failed and are retried, by `what`.
pub const PIPELINE_RETRIES: &str = "inland_archiver_pipeline_retries_total";
/// Bytes held by all batches; consumption pauses at `archiver.max_buffered_bytes`.
pub const BUFFERED_BYTES: &str = "inland_archiver_buffered_bytes";
/// Batches written again with their manifest's boundaries after a restart, by `topic`.
pub const REPLAYS: &str = "inland_archiver_replays_total";
/// Erasures: files rewritten or deleted (`action`), rows removed, frames deleted.
pub const ERASURE_FILES: &str = "inland_archiver_erasure_files_total";
pub const ERASURE_ROWS: &str = "inland_archiver_erasure_rows_removed_total";
pub const ERASURE_FRAMES: &str = "inland_archiver_erasure_frames_deleted_total";
pub const ERASURE_SECONDS: &str = "inland_archiver_erasure_seconds";
/// Erasure requests from `archiver.erasure_topic`, by `outcome`: `completed` (erased and
/// recorded), `rejected` (not a request, dead-lettered), `restored` (relearned at start
/// from its completion record), `unreadable` (a completion record that could not be).
pub const ERASURE_REQUESTS: &str = "inland_archiver_erasure_requests_total";
/// Erasure steps that failed and are retried, by `step` (`erase`, `record`, `restore`).
pub const ERASURE_RETRIES: &str = "inland_archiver_erasure_retries_total";

/// The span of a record whose data is durable and committed (see `traced`), with
/// `stage`, `dataset` and `key` (the record's objects, space-separated, in the order
/// written).
pub const STORE_SPAN: &str = "archiver.store";

/// The counters of one input, registered once.
pub(crate) struct LaneMetrics {
    topic: String,
    archived: Counter,
    duplicate: Counter,
    erased: Counter,
    rejected: Counter,
    refused: Counter,
    flush_seconds: Histogram,
}

impl LaneMetrics {
    pub(crate) fn new(topic: &str) -> Self {
        let records =
            |outcome| counter!(RECORDS, "topic" => topic.to_owned(), "outcome" => outcome);
        Self {
            topic: topic.to_owned(),
            archived: records("archived"),
            duplicate: records("duplicate"),
            erased: records("erased"),
            rejected: records("rejected"),
            refused: records("refused"),
            flush_seconds: histogram!(FLUSH_SECONDS, "topic" => topic.to_owned()),
        }
    }

    pub(crate) fn started(&self, group: &str) {
        tracing::info!(topic = %self.topic, group, "archiver started");
    }

    pub(crate) fn stopped(&self, drained: bool) {
        tracing::info!(topic = %self.topic, drained, "archiver stopped");
    }

    pub(crate) fn rejected(&self, partition: i32, offset: i64, label: &'static str) {
        self.rejected.increment(1);
        counter!(REJECTED, "topic" => self.topic.clone(), "reason" => label).increment(1);
        tracing::debug!(topic = %self.topic, partition, offset, reason = label, "record rejected: dead-lettered");
    }

    /// A batch is durable and committed.
    pub(crate) fn flushed(
        &self,
        partition: i32,
        (first, last): (i64, i64),
        (archived, duplicates, erased): (u64, u64, u64),
        objects: usize,
        elapsed: Duration,
    ) {
        self.archived.increment(archived);
        self.duplicate.increment(duplicates);
        self.erased.increment(erased);
        self.flush_seconds.record(elapsed.as_secs_f64());
        tracing::debug!(
            topic = %self.topic, partition, first, last, archived, duplicates, erased, objects,
            seconds = elapsed.as_secs_f64(),
            "batch archived and committed"
        );
    }

    pub(crate) fn refused(&self, key: &str, error: &inland_store::Error, records: usize) {
        self.refused.increment(records as u64);
        tracing::error!(
            topic = %self.topic, key, %error, records,
            "the store refused an object's key: its records are dead-lettered"
        );
    }

    pub(crate) fn replay(&self, partition: i32, first: i64, last: i64) {
        counter!(REPLAYS, "topic" => self.topic.clone()).increment(1);
        tracing::info!(
            topic = %self.topic, partition, first, last,
            "replaying a batch that was being written: it ends at its manifest's last offset and overwrites the same objects"
        );
    }

    /// A partition was read again from an earlier offset (a rebalance gave it back):
    /// its uncommitted batches are dropped and rebuilt from the records redelivered.
    pub(crate) fn rewound(&self, partition: i32, offset: i64) {
        tracing::info!(
            topic = %self.topic, partition, offset,
            "partition redelivered from an earlier offset: its unwritten batches are rebuilt"
        );
    }

    pub(crate) fn replay_abandoned(&self, partition: i32) {
        tracing::info!(
            topic = %self.topic, partition,
            "shutting down before a replayed batch was complete: it stays uncommitted and is replayed at the next start"
        );
    }

    pub(crate) fn consume_failed(&self, error: &inland_stage::Error, backoff: Duration) {
        tracing::warn!(topic = %self.topic, %error, ?backoff, "consume failed; retrying");
    }

    pub(crate) fn drain_timed_out(&self, timeout: Duration) {
        tracing::warn!(
            topic = %self.topic, ?timeout,
            "shutdown gave up on batches not yet durable; they are consumed again at the next start"
        );
    }
}

pub(crate) fn object_written(dataset: &'static str, bytes: usize, rows: usize, elapsed: Duration) {
    counter!(OBJECTS, "dataset" => dataset).increment(1);
    counter!(OBJECT_BYTES, "dataset" => dataset).increment(bytes as u64);
    counter!(ROWS, "dataset" => dataset).increment(rows as u64);
    histogram!(PUT_SECONDS).record(elapsed.as_secs_f64());
}

pub(crate) fn store_retry(
    op: &'static str,
    key: &str,
    error: &inland_store::Error,
    backoff: Duration,
) {
    counter!(STORE_RETRIES, "op" => op).increment(1);
    tracing::warn!(op, key, %error, ?backoff, "object store operation failed; retrying");
}

pub(crate) fn commit_retry(
    topic: &str,
    partition: i32,
    error: &inland_stage::Error,
    backoff: Duration,
) {
    counter!(PIPELINE_RETRIES, "what" => "commit").increment(1);
    tracing::warn!(topic, partition, %error, ?backoff, "commit failed; retrying (the batch is durable)");
}

pub(crate) fn dead_letter_retry(error: &inland_stage::Error, backoff: Duration) {
    counter!(PIPELINE_RETRIES, "what" => "dead_letter").increment(1);
    tracing::warn!(%error, ?backoff, "sending a record to the dead-letter topic failed; retrying");
}

/// Whether an `archiver.store` span would be recorded at all (its level is enabled).
pub(crate) fn store_spans_enabled() -> bool {
    tracing::span_enabled!(tracing::Level::INFO)
}

/// An `archiver.store` span, a child of `parent`. False when no OpenTelemetry layer
/// records it, so no other would be exported either.
pub(crate) fn stored(parent: opentelemetry::Context, datasets: &str, keys: &str) -> bool {
    let span = tracing::info_span!(STORE_SPAN, stage = STAGE, dataset = datasets, key = keys);
    span.set_parent(parent).is_ok()
}

/// The erasure requests completed within the remembered window were relearned at start.
pub(crate) fn erasures_restored(requests: usize, pseudonyms: usize) {
    counter!(ERASURE_REQUESTS, "outcome" => "restored").increment(requests as u64);
    tracing::info!(
        requests,
        pseudonyms,
        "erasure requests relearned from their completion records"
    );
}

/// A completion record under `consent/erasure/` could not be read; its late records are
/// not kept out after this restart.
pub(crate) fn erasure_record_unreadable(key: &str, error: &str) {
    counter!(ERASURE_REQUESTS, "outcome" => "unreadable").increment(1);
    tracing::warn!(
        key,
        error,
        "an erasure completion record is unreadable; skipped"
    );
}

pub(crate) fn buffered(bytes: usize) {
    gauge!(BUFFERED_BYTES).set(bytes as f64);
}

pub(crate) fn erasure_file(action: &'static str, key: &str, rows_removed: usize) {
    counter!(ERASURE_FILES, "action" => action).increment(1);
    counter!(ERASURE_ROWS).increment(rows_removed as u64);
    tracing::debug!(action, key, rows_removed, "erasure changed a file");
}

pub(crate) fn erasure_done(report: &ErasureReport, elapsed: Duration) {
    counter!(ERASURE_FRAMES).increment(report.frames_deleted);
    histogram!(ERASURE_SECONDS).record(elapsed.as_secs_f64());
    tracing::info!(
        files_scanned = report.files_scanned,
        files_rewritten = report.files_rewritten,
        files_deleted = report.files_deleted,
        rows_removed = report.rows_removed,
        frames_deleted = report.frames_deleted,
        "erasure completed"
    );
}

pub(crate) fn erasures_started(topic: &str, group: &str) {
    tracing::info!(topic, group, "archiver reading erasure requests");
}

pub(crate) fn erasure_consume_failed(topic: &str, error: &inland_stage::Error, backoff: Duration) {
    tracing::warn!(topic, %error, ?backoff, "reading erasure requests failed; retrying");
}

pub(crate) fn erasure_rejected(topic: &str, partition: i32, offset: i64) {
    counter!(ERASURE_REQUESTS, "outcome" => "rejected").increment(1);
    tracing::warn!(
        topic,
        partition,
        offset,
        "not an erasure request the archiver can carry out: dead-lettered"
    );
}

pub(crate) fn erasure_retry(step: &'static str, error: &crate::Error, backoff: Duration) {
    counter!(ERASURE_RETRIES, "step" => step).increment(1);
    tracing::warn!(step, %error, ?backoff, "erasure step failed; retrying the whole step");
}

/// The request id is no personal data: it names the withdrawal, not the vehicle.
pub(crate) fn erasure_request_done(request_id: &str, key: &str, pseudonyms: usize) {
    counter!(ERASURE_REQUESTS, "outcome" => "completed").increment(1);
    tracing::info!(
        request_id,
        key,
        pseudonyms,
        "erasure request completed and recorded"
    );
}
