//! Every store metric together with its log line. Keys are labelled by data class only
//! (`telemetry`, …, or `other`): a key may hold a pseudonym, so it is never logged.

use std::time::Duration;

use crate::{DataClass, Error};

/// Seconds until a put was durable, by `backend` (`s3`, `local`) and `class`.
pub const PUT_SECONDS: &str = "inland_store_put_seconds";
/// Bytes durably stored, by `backend` and `class`.
pub const PUT_BYTES: &str = "inland_store_put_bytes_total";
/// Failed operations, by `backend`, `op` (`put`, `get`, `list`, `delete`, `ready`), `class`
/// and `kind` (see [`Error::kind`]).
pub const ERRORS: &str = "inland_store_errors_total";
/// Objects deleted by the local sweeper because their shelf life ended, by `class`.
pub const SWEPT: &str = "inland_store_swept_total";
/// Lifecycle drift findings in the last check (0 when the bucket's rules match
/// `store.shelf_life`); the Helm chart alerts on it.
pub const LIFECYCLE_DRIFT: &str = "inland_storage_lifecycle_drift";

/// The class label of a key or prefix.
pub(crate) fn class_of(key: &str) -> &'static str {
    DataClass::of_key(key).map_or("other", DataClass::as_str)
}

/// A put became durable.
pub(crate) fn put(backend: &'static str, key: &str, bytes: usize, took: Duration) {
    let class = class_of(key);
    metrics::histogram!(PUT_SECONDS, "backend" => backend, "class" => class)
        .record(took.as_secs_f64());
    metrics::counter!(PUT_BYTES, "backend" => backend, "class" => class).increment(bytes as u64);
    tracing::trace!(backend, class, bytes, "object stored");
}

/// An operation failed. The caller gets the error, whose message may name the key, and
/// logs it; this line has its kind only.
pub(crate) fn failed(backend: &'static str, op: &'static str, key: &str, error: &Error) {
    let (class, kind) = (class_of(key), error.kind());
    metrics::counter!(ERRORS, "backend" => backend, "op" => op, "class" => class, "kind" => kind)
        .increment(1);
    tracing::debug!(backend, op, class, kind, "store operation failed");
}

/// A multipart upload failed and was aborted, so no part lingers.
pub(crate) fn multipart_aborted(key: &str, error: &Error, abort: Option<&Error>) {
    let (class, kind) = (class_of(key), error.kind());
    match abort {
        None => tracing::warn!(class, kind, "multipart upload failed and was aborted"),
        Some(abort) => tracing::warn!(
            class,
            kind,
            abort_kind = abort.kind(),
            "multipart upload failed and could not be aborted; the bucket's \
             abort-incomplete-multipart rule will remove its parts"
        ),
    }
}

/// The local sweeper deleted expired objects.
pub(crate) fn swept(class: DataClass, deleted: u64) {
    metrics::counter!(SWEPT, "class" => class.as_str()).increment(deleted);
    if deleted > 0 {
        tracing::info!(
            class = class.as_str(),
            deleted,
            "deleted objects past their shelf life"
        );
    }
}

/// A sweep failed; the next one retries. The I/O error is logged without its path.
pub(crate) fn sweep_failed(error: &Error) {
    let kind = error.kind();
    match error {
        Error::Local { source, .. } => tracing::warn!(
            kind, %source,
            "local store sweep failed; retrying at the next interval"
        ),
        _ => tracing::warn!(
            kind,
            "local store sweep failed; retrying at the next interval"
        ),
    }
}

/// A lifecycle check ended with `findings` drift findings.
pub(crate) fn lifecycle_checked(bucket: &str, findings: usize) {
    metrics::gauge!(LIFECYCLE_DRIFT).set(findings as f64);
    if findings == 0 {
        tracing::info!(
            bucket,
            "bucket lifecycle rules match the configured shelf lives"
        );
    } else {
        tracing::error!(
            bucket,
            findings,
            "bucket lifecycle rules differ from the configured shelf lives: run `inland storage \
             check` for details and `inland storage bootstrap` to re-apply them"
        );
    }
}

/// A lifecycle check could not be made; the drift gauge keeps its last value.
pub(crate) fn lifecycle_check_failed(error: &Error) {
    tracing::warn!(%error, "cannot read the bucket's lifecycle rules; retrying later");
}
