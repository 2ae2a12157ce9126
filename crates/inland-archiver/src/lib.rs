//! The archiver (`inland archiver`): anonymized records into the in-country object store,
//! as the datasets of `inland-datasets` that the query service reads.
//!
//! - [`Archiver`] consumes its [`Inputs`]: `inland.anonymized.v1` (consumer group
//!   `archiver.group`), `inland.consent.v1` (`archiver.consent_group`) and
//!   `inland.erasure.v1` (`archiver.erasure_group`); [`ArchiverConfig`] is its section;
//!   [`run_on_kafka`] wires it to Kafka.
//! - Erasure requests (one per consent withdrawal) are carried out as they arrive, see
//!   `requests.rs`: [`erase`] removes a pseudonym's rows and frames
//!   ([`erase_recorded_before`]: those an erasure request made at a time covers);
//!   [`record_erasure`] records that an erasure request completed. [`cli`] has
//!   `inland archive erase`, to do it by hand.
//! - Metrics and their log lines: [`metrics`]. Each record that carried a `traceparent`
//!   gets an `archiver.store` span once its batch is committed (see `traced.rs`), ending
//!   the upload's trace at the objects its data is in.
//!
//! # What is written
//!
//! A record reaches the archive only as an [`inland_anonymizer::Anonymized`] or, for
//! telemetry, an [`inland_anonymizer::TelemetryView`] (read in place, with the same checks),
//! which `Anonymized::read_from_topic` alone produces from a topic record after checking
//! it; anything else is dead-lettered (`inland.deadletter.v1`, with the `inland-dlq-*` headers
//! of inland-stage) and committed like the rest. Telemetry becomes rows of
//! `dataset=telemetry` (one per sample instant, see `tables::telemetry`); a frame becomes a
//! JPEG object under `dataset=frames/` and a row of `dataset=frame_index`; a consent record
//! becomes a row of `consent/events` as it was (partition, offset, timestamp, key, payload).
//! Rows are partitioned by the UTC date and hour of their time. Files are zstd Parquet with
//! page statistics and a bloom filter on `pseudonym`.
//!
//! # Batches, keys and commits
//!
//! Records of one input partition collect in a batch until its payloads reach
//! `max_batch_bytes`, it holds `max_batch_records`, or it is `max_batch_age` old. A batch
//! is written as one Parquet file per dataset and hour, named after the batch's offset
//! range (`…/hour=07/inland.anonymized.v1-p003-<first>-<last>.parquet`; a frame is named
//! after its own offset). Its last offset is committed only after every object is durable
//! (a put returns only then) and every dead letter is delivered; a partition writes one
//! batch at a time, in order. So a crash loses nothing: what was not committed is
//! consumed again.
//!
//! Consumed again, it must be written under the same keys, or the first attempt's objects
//! would stay beside the second's and rows would be duplicated. Keys follow from the
//! batch's boundaries, but the boundaries depend on timing (age, arrival order across
//! partitions, memory pressure), which a restart does not reproduce. Hence the manifest:
//! before writing any object of a batch, the archiver stores its intent,
//! `_archiver/manifests/<topic>/p003.json` = `{"first":…,"last":…}`, and only then the
//! objects, then commits. After a restart (or a rebalance that hands a partition back and
//! rewinds it to the committed offset), the partition's first record is compared with the
//! manifest:
//!
//! - It is the manifest's `first`: the previous attempt stopped between the manifest and
//!   the commit, and may have written some of the objects. The batch is rebuilt to end
//!   exactly at the manifest's `last` (whatever its size or age), so it writes the same
//!   keys and every object of the first attempt is overwritten. A shutdown before it is
//!   complete leaves it uncommitted rather than writing it with other boundaries.
//! - Anything else: the last batch was committed (the resume point is past it), so no
//!   object of an uncommitted batch exists and the next batch may be cut freely.
//!
//! Overwriting is enough because the replay holds every row the first attempt held: the
//! records are the same, and the de-duplication below forgets nothing that could make it
//! keep less (its memory starts empty after a restart or rewind). The one exception is
//! wanted: records an erasure request covers are left out of every batch from the moment
//! the request is read, and a batch deletes the keys where only such records would have
//! gone, so a replay does not keep a first attempt's file of them. A partition's manifest
//! is only rewritten for the next batch after the previous one is committed, so it always
//! describes the oldest uncommitted batch.
//!
//! Limits: a rebalance that moves a partition to another archiver while this one is still
//! writing it can let the two cut different batches over the same records (the `Consumer`
//! trait reports no revocations to stop the old owner); and a consent record at a
//! manifest's `first` compacted away during a crash makes its batch be cut anew. Both can
//! duplicate rows, never lose them. One consumer group per (topic, store).
//!
//! Copies of a record redelivered upstream (at least once) carry the same
//! `inland-record-id`; a (record id, purpose) pair already seen in the partition's last
//! `dedup_ids_per_partition` records is dropped.
//!
//! # Memory and failures
//!
//! All batches (filling, waiting, being written) count against `max_buffered_bytes`;
//! beyond it the archiver stops consuming and, if nothing is being written, rolls its
//! largest batch, so a slow store slows consumption instead of growing memory (a replay
//! may read past the limit by at most its own batch). Store outages, commit failures and
//! dead-letter deliveries are retried with backoff and never skipped; a key the store
//! refuses (`BadKey`) dead-letters the records of that object with the store's reason
//! (and a refused JPEG leaves its frame out of the index). Shutdown writes and commits
//! what is buffered for up to `drain_timeout`.

mod batch;
pub mod cli;
mod config;
mod decoder;
mod dedup;
mod erase;
mod error;
mod files;
mod flush;
mod keys;
mod kinds;
mod lane;
mod manifest;
pub mod metrics;
mod requests;
mod service;
mod tables;
#[cfg(test)]
mod tests;
mod traced;

pub use config::ArchiverConfig;
pub use erase::{
    ErasureRecord, ErasureReport, erase, erase_recorded_before, erasure_key, record_erasure,
};
pub use error::Error;
pub use service::{Archiver, Inputs, run_on_kafka};
