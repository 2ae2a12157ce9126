//! Erasure: a consent withdrawal removes a vehicle's rows from every telemetry and frame
//! index file, and its frames, then records when it completed. An erasure request
//! (`inland.erasure.v1`) covers what was recorded before it was made: a row goes when its
//! pseudonym is one of the request's and its time (`time`, `captured_at`, floored to the
//! purpose's resolution, so erring towards erasing) is before `requested_at`.
//!
//! Each file that may hold one of the pseudonyms (its row groups' bloom filters say
//! maybe) is read; if rows of them are there, the file is written again without them
//! under the same key (deleted when nothing is left). Frame JPEGs named by removed index
//! rows are deleted before the index is rewritten, so an erasure interrupted half way
//! still finds them on its next run: [`erase`] is idempotent, and re-running it is how a
//! caller retries.
//!
//! The running archiver carries out the requests it reads itself (`requests`), keeping
//! what is still in the pipeline out of the archive. Run by hand (`inland archive erase`),
//! records of the pseudonyms still in the pipeline are archived after it: run it again
//! once the pipeline has drained (a few `archiver.max_batch_age`s later) to catch those.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arrow_array::{Array, BooleanArray, RecordBatch, StringArray, TimestampMillisecondArray};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use inland_datasets::{Dataset, frame_index};
use inland_store::{DataClass, ObjectStore};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use crate::files::{self, PSEUDONYM};
use crate::{ArchiverConfig, Error, metrics};

/// What an erasure did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureReport {
    /// Parquet files of the telemetry and frame index datasets looked at.
    pub files_scanned: u64,
    /// Files written again without the pseudonyms' rows.
    pub files_rewritten: u64,
    /// Files deleted because every row was the pseudonyms'.
    pub files_deleted: u64,
    pub rows_removed: u64,
    /// Frame JPEGs deleted.
    pub frames_deleted: u64,
}

/// Removes every row of `pseudonyms` from the telemetry and frame index datasets, and
/// their frames. Idempotent; see the module docs.
pub async fn erase(store: &dyn ObjectStore, pseudonyms: &[String]) -> Result<ErasureReport, Error> {
    erase_recorded_before(store, pseudonyms, None).await
}

/// Like [`erase`], but only rows (and frames) whose time is before `before`, when given:
/// what an erasure request made at `before` covers.
pub async fn erase_recorded_before(
    store: &dyn ObjectStore,
    pseudonyms: &[String],
    before: Option<SystemTime>,
) -> Result<ErasureReport, Error> {
    let before_ms = before.map(|t| match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    });
    let mut covered = Covered::new();
    for pseudonym in pseudonyms {
        cover(&mut covered, pseudonym, before_ms);
    }
    erase_covered(store, covered).await
}

/// Pseudonym → the time before which its rows go (`None`: all of them).
pub(crate) type Covered = HashMap<String, Option<i64>>;

/// Adds a pseudonym to `covered`; of two requests for one pseudonym the wider wins.
pub(crate) fn cover(covered: &mut Covered, pseudonym: &str, before_ms: Option<i64>) {
    let entry = covered.entry(pseudonym.to_owned()).or_insert(before_ms);
    *entry = match (*entry, before_ms) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    };
}

/// Whether `s` is a pseudonym as the anonymizer writes it: 32 lower-case hex digits.
pub(crate) fn is_pseudonym(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Removes the rows `covered` names from the telemetry and frame index datasets, and their
/// frames, in one pass over the files.
pub(crate) async fn erase_covered(
    store: &dyn ObjectStore,
    covered: Covered,
) -> Result<ErasureReport, Error> {
    let started = Instant::now();
    let mut report = ErasureReport::default();
    if covered.is_empty() {
        return Ok(report);
    }
    let covered = Arc::new(covered);
    let props = files::writer_properties(&ArchiverConfig::default())?;
    for dataset in [Dataset::FrameIndex, Dataset::Telemetry] {
        let listed = store
            .list(dataset.root())
            .await
            .map_err(store_error("list", dataset.root()))?;
        for object in listed.iter().filter(|o| o.key.ends_with(".parquet")) {
            let key = &object.key;
            let bytes = match store.get(key).await {
                Ok(bytes) => bytes,
                // Deleted since the listing (by another erasure): nothing to do.
                Err(inland_store::Error::NotFound(_)) => continue,
                Err(e) => return Err(store_error("get", key)(e)),
            };
            report.files_scanned += 1;
            let erased = Erased {
                covered: covered.clone(),
                time: match dataset {
                    Dataset::FrameIndex => frame_index::CAPTURED_AT,
                    _ => inland_datasets::telemetry::TIME,
                },
            };
            let scan_key = key.clone();
            let scanned = tokio::task::spawn_blocking(move || without(bytes, &erased, &scan_key))
                .await
                .map_err(|e| Error::Panicked(format!("erasure of {key}: {e}")))??;
            let Some(Without {
                kept,
                removed,
                frames,
            }) = scanned
            else {
                continue;
            };
            for frame in &frames {
                // Only keys of the frames dataset: a forged index must not delete others.
                if DataClass::of_key(frame) == Some(DataClass::Frames) {
                    store
                        .delete(frame)
                        .await
                        .map_err(store_error("delete", frame))?;
                    report.frames_deleted += 1;
                }
            }
            if kept.num_rows() == 0 {
                store
                    .delete(key)
                    .await
                    .map_err(store_error("delete", key))?;
                report.files_deleted += 1;
                metrics::erasure_file("deleted", key, removed);
            } else {
                let props = props.clone();
                let body = tokio::task::spawn_blocking(move || files::write(&kept, props))
                    .await
                    .map_err(|e| Error::Panicked(format!("erasure of {key}: {e}")))??;
                store
                    .put(key, body)
                    .await
                    .map_err(store_error("put", key))?;
                report.files_rewritten += 1;
                metrics::erasure_file("rewritten", key, removed);
            }
            report.rows_removed += removed as u64;
        }
    }
    metrics::erasure_done(&report, started.elapsed());
    Ok(report)
}

pub(crate) fn store_error(
    op: &'static str,
    key: &str,
) -> impl FnOnce(inland_store::Error) -> Error {
    let key = key.to_owned();
    move |source| Error::Store { op, key, source }
}

/// A file without the erased rows.
struct Without {
    kept: RecordBatch,
    removed: usize,
    /// JPEG keys of the removed frame index rows.
    frames: Vec<String>,
}

/// Which rows of one file go.
struct Erased {
    covered: Arc<Covered>,
    /// The file's time column, which the times in `covered` bound.
    time: &'static str,
}

impl Erased {
    /// Per row of `batch`, whether it stays; `None` when a column is not as the datasets
    /// have it.
    fn keep(&self, batch: &RecordBatch, pseudonyms: &StringArray) -> Option<BooleanArray> {
        let times = batch
            .column_by_name(self.time)?
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()?;
        Some(
            (0..batch.num_rows())
                .map(|i| {
                    let erased = pseudonyms.is_valid(i)
                        && match self.covered.get(pseudonyms.value(i)) {
                            None => false,
                            Some(None) => true,
                            Some(Some(before)) => times.is_valid(i) && times.value(i) < *before,
                        };
                    Some(!erased)
                })
                .collect(),
        )
    }
}

/// The file without the erased rows, or `None` when it has none of them.
fn without(bytes: Bytes, erased: &Erased, key: &str) -> Result<Option<Without>, Error> {
    let what = || format!("reading {key} for an erasure");
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(Error::parquet(what()))?;
    let leaf = builder
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.name() == PSEUDONYM)
        .ok_or_else(|| Error::Parquet {
            what: what(),
            source: parquet::errors::ParquetError::General(
                "no pseudonym column: not a file of the archive's datasets".into(),
            ),
        })?;
    // The bloom filters answer without reading the rows: most files hold none of them.
    let mut maybe = false;
    for row_group in 0..builder.metadata().num_row_groups() {
        maybe |= match builder
            .get_row_group_column_bloom_filter(row_group, leaf)
            .map_err(Error::parquet(what()))?
        {
            Some(bloom) => erased.covered.keys().any(|p| bloom.check(p.as_str())),
            None => true,
        };
    }
    if !maybe {
        return Ok(None);
    }
    let schema = builder.schema().clone();
    let reader = builder.build().map_err(Error::parquet(what()))?;
    let mut kept = Vec::new();
    let (mut removed, mut frames) = (0, Vec::new());
    for batch in reader {
        let batch = batch.map_err(|e| Error::parquet(what())(e.into()))?;
        let not_ours = || Error::Parquet {
            what: what(),
            source: parquet::errors::ParquetError::General(
                "no string pseudonym or timestamp time column: not a file of the archive's \
                 datasets"
                    .into(),
            ),
        };
        let pseudonyms = string_column(&batch, PSEUDONYM).ok_or_else(not_ours)?;
        let keep = erased.keep(&batch, pseudonyms).ok_or_else(not_ours)?;
        let gone = keep.len() - keep.true_count();
        if gone == 0 {
            kept.push(batch);
            continue;
        }
        removed += gone;
        if let Some(keys) = string_column(&batch, frame_index::OBJECT_KEY) {
            frames.extend(
                keys.iter()
                    .zip(keep.iter())
                    .filter(|(_, keep)| *keep == Some(false))
                    .filter_map(|(key, _)| key.map(str::to_owned)),
            );
        }
        kept.push(
            arrow_select::filter::filter_record_batch(&batch, &keep)
                .map_err(|e| Error::parquet(what())(e.into()))?,
        );
    }
    if removed == 0 {
        return Ok(None);
    }
    let kept = arrow_select::concat::concat_batches(&schema, &kept)
        .map_err(|e| Error::parquet(what())(e.into()))?;
    Ok(Some(Without {
        kept,
        removed,
        frames,
    }))
}

fn string_column<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a StringArray> {
    batch
        .column_by_name(name)?
        .as_any()
        .downcast_ref::<StringArray>()
}

/// The completion record of an erasure request, stored as `consent/erasure/<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRecord {
    pub request_id: String,
    /// RFC 3339, UTC.
    pub requested_at: String,
    pub completed_at: String,
    /// The pseudonyms erased: a suppression list, so a restarted archiver still keeps
    /// their late records out (`requests::restore`). It expires with the consent class.
    #[serde(default)]
    pub pseudonyms: Vec<String>,
    #[serde(flatten)]
    pub report: ErasureReport,
}

/// The key of an erasure request's completion record.
pub fn erasure_key(request_id: &str) -> Result<String, Error> {
    let valid = (1..=128).contains(&request_id.len())
        && request_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !request_id.starts_with('.');
    if !valid {
        return Err(Error::Request(format!(
            "id {request_id:?}: use 1 to 128 letters, digits, '-', '_' or '.' (e.g. a UUID)"
        )));
    }
    Ok(format!("{}{request_id}.json", erasure_prefix()))
}

/// Where the completion records are: under the consent class, with its shelf life.
pub(crate) fn erasure_prefix() -> String {
    format!("{}erasure/", DataClass::Consent.prefix())
}

/// Records that the erasure request `request_id` (received at `requested_at`) for
/// `pseudonyms` completed now, with what it did; returns the record's key. Writing it
/// again replaces it.
pub async fn record_erasure(
    store: &dyn ObjectStore,
    request_id: &str,
    requested_at: SystemTime,
    pseudonyms: &[String],
    report: &ErasureReport,
) -> Result<String, Error> {
    let key = erasure_key(request_id)?;
    let rfc3339 =
        |t: SystemTime| DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true);
    let record = ErasureRecord {
        request_id: request_id.to_owned(),
        requested_at: rfc3339(requested_at),
        completed_at: rfc3339(SystemTime::now()),
        pseudonyms: pseudonyms.to_vec(),
        report: *report,
    };
    let body = serde_json::to_vec_pretty(&record).expect("strings and integers serialize");
    store
        .put(&key, body.into())
        .await
        .map_err(store_error("put", &key))?;
    Ok(key)
}
