//! Writing one batch: intent, objects, dead letters, commit, in that order.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use inland_core::topics;
use inland_stage::{
    Consumer, DEAD_LETTER_REASON, DEAD_LETTER_SOURCE, DEAD_LETTER_STAGE, Position, Producer, Record,
};
use inland_store::ObjectStore;
use parquet::file::properties::WriterProperties;
use tokio::sync::Semaphore;

use crate::batch::{Batch, Budget, DeadLetter, Pending};
use crate::keys::{BatchName, manifest_key};
use crate::kinds::{Kind, Object};
use crate::manifest::Manifest;
use crate::metrics::{self, LaneMetrics};
use crate::requests::Erasures;
use crate::traced::StoreSpans;
use crate::{ArchiverConfig, Error};

/// Names the archiver in dead-letter headers.
pub(crate) const STAGE: &str = "archiver";

/// What every lane and flush shares.
pub(crate) struct Ctx {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) producer: Arc<dyn Producer>,
    pub(crate) config: ArchiverConfig,
    pub(crate) props: WriterProperties,
    pub(crate) puts: Semaphore,
    pub(crate) budget: Budget,
    /// Batches not yet committed, which an erasure waits for.
    pub(crate) pending: Pending,
    /// Erasure requests read: their records are left out of batches.
    pub(crate) erasures: Erasures,
}

/// Whether the store refused this key for good: only a key the store will never accept.
/// Everything else (outages, credentials, permissions) heals by operator or time, so it
/// is retried: skipping would lose data, committing would lie.
fn refused(error: &inland_store::Error) -> bool {
    matches!(error, inland_store::Error::BadKey(_))
}

impl Ctx {
    /// Sleeps the backoff of retry `attempt`.
    async fn backoff(&self, attempt: u32) -> Duration {
        let backoff = self.config.backoff(attempt);
        tokio::time::sleep(backoff).await;
        backoff
    }

    /// Puts until durable; an error only when the store refused the key.
    pub(crate) async fn put(&self, object: &Object) -> Result<(), inland_store::Error> {
        let mut failures = 0;
        loop {
            let permit = self.puts.acquire().await.expect("never closed");
            let started = Instant::now();
            let result = self.store.put(&object.key, object.body.clone()).await;
            drop(permit);
            match result {
                Ok(()) => {
                    metrics::object_written(
                        object.dataset,
                        object.body.len(),
                        object.rows,
                        started.elapsed(),
                    );
                    return Ok(());
                }
                Err(e) if refused(&e) => return Err(e),
                Err(e) => {
                    failures += 1;
                    let backoff = self.config.backoff(failures);
                    metrics::store_retry("put", &object.key, &e, backoff);
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    /// Deletes until done (deleting a missing object succeeds); an error only when the
    /// store refused the key.
    async fn delete(&self, key: &str) -> Result<(), Error> {
        let mut failures = 0;
        loop {
            match self.store.delete(key).await {
                Ok(()) => return Ok(()),
                Err(source) if refused(&source) => {
                    return Err(Error::Refused {
                        key: key.to_owned(),
                        source,
                    });
                }
                Err(e) => {
                    failures += 1;
                    let backoff = self.config.backoff(failures);
                    metrics::store_retry("delete", key, &e, backoff);
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    /// The manifest of a partition, retrying outages; `None` when there is none (or it is
    /// not one).
    pub(crate) async fn manifest(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<Manifest>, Error> {
        let key = manifest_key(topic, partition);
        let mut failures = 0;
        loop {
            match self.store.get(&key).await {
                Ok(bytes) => return Ok(Manifest::parse(&bytes)),
                Err(inland_store::Error::NotFound(_)) => return Ok(None),
                Err(source) if refused(&source) => return Err(Error::Refused { key, source }),
                Err(e) => {
                    failures += 1;
                    let backoff = self.config.backoff(failures);
                    metrics::store_retry("get", &key, &e, backoff);
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    async fn put_manifest(&self, name: &BatchName) -> Result<(), Error> {
        let manifest = Object {
            key: manifest_key(&name.topic, name.partition),
            body: Manifest {
                first: name.first,
                last: name.last,
            }
            .to_bytes(),
            dataset: "manifest",
            rows: 0,
            sources: Vec::new(),
        };
        self.put(&manifest).await.map_err(|source| Error::Refused {
            key: manifest.key.clone(),
            source,
        })
    }

    /// Sends a dead letter until the producer accepts it.
    async fn enqueue_dead_letter(&self, record: Record) -> inland_stage::Delivery {
        let mut failures = 0;
        loop {
            match self
                .producer
                .enqueue(topics::DEAD_LETTER, record.clone())
                .await
            {
                Ok(delivery) => return delivery,
                Err(e) => {
                    failures += 1;
                    metrics::dead_letter_retry(&e, self.backoff(failures).await);
                }
            }
        }
    }

    /// Waits until every dead letter is durable, sending again those that failed.
    pub(crate) async fn settle(&self, dead_letters: Vec<DeadLetter>) {
        for DeadLetter { record, delivery } in dead_letters {
            let mut delivery = match delivery {
                Some(delivery) => delivery,
                None => self.enqueue_dead_letter(record.clone()).await,
            };
            let mut failures = 0;
            while let Err(e) = delivery.await {
                failures += 1;
                metrics::dead_letter_retry(&e, self.backoff(failures).await);
                delivery = self.enqueue_dead_letter(record.clone()).await;
            }
        }
    }

    /// Queues a dead letter without waiting: the flush waits for it before committing.
    pub(crate) async fn dead_letter(&self, record: Record) -> DeadLetter {
        let delivery = self
            .producer
            .enqueue(topics::DEAD_LETTER, record.clone())
            .await
            .ok();
        DeadLetter { record, delivery }
    }

    pub(crate) async fn commit(&self, consumer: &dyn Consumer, at: Position) {
        let mut failures = 0;
        while let Err(e) = consumer.commit(std::slice::from_ref(&at)).await {
            failures += 1;
            let backoff = self.config.backoff(failures);
            metrics::commit_retry(&at.topic, at.partition, &e, backoff);
            tokio::time::sleep(backoff).await;
        }
    }
}

/// The record as read, plus why, by whom and from where: what inland-stage's dead letters
/// carry.
pub(crate) fn dead_letter_record(
    mut record: Record,
    reason: String,
    (topic, partition, offset): (&str, i32, i64),
) -> Record {
    record.headers.extend([
        (DEAD_LETTER_REASON.to_owned(), reason.into()),
        (
            DEAD_LETTER_STAGE.to_owned(),
            Bytes::from_static(STAGE.as_bytes()),
        ),
        (
            DEAD_LETTER_SOURCE.to_owned(),
            format!("{topic}/{partition}/{offset}").into(),
        ),
    ]);
    record
}

/// Puts `objects` concurrently; returns those the store refused, with the error.
async fn put_all(ctx: &Ctx, objects: Vec<Object>) -> Vec<(Object, inland_store::Error)> {
    let limit = ctx.config.max_concurrent_puts;
    futures::stream::iter(objects)
        .map(|object| async move {
            match ctx.put(&object).await {
                Ok(()) => None,
                Err(e) => Some((object, e)),
            }
        })
        .buffer_unordered(limit)
        .filter_map(|refused| async move { refused })
        .collect()
        .await
}

/// Writes a batch and commits its last offset; see the crate docs for the order and why.
/// Store outages and commit failures are retried until they heal (or the task is
/// aborted at the end of a shutdown's drain, leaving the batch uncommitted).
pub(crate) async fn flush<K: Kind>(
    ctx: Arc<Ctx>,
    consumer: Arc<dyn Consumer>,
    lane: Arc<LaneMetrics>,
    mut batch: Batch<K::Tables>,
) -> Result<(), Error> {
    let started = Instant::now();
    let name = BatchName {
        topic: batch.topic.to_string(),
        partition: batch.partition,
        first: batch.first,
        last: batch.last_offset(),
    };
    let erased = K::take_erased(&mut batch.tables, &name);
    let mut written = 0;
    let mut spans = StoreSpans::new();
    let mut refused_sources = HashSet::new();
    let mut dead_letters = std::mem::take(&mut batch.dead_letters);
    let mut refuse =
        |object: Object, error: inland_store::Error, refused_sources: &mut HashSet<u32>| {
            lane.refused(&object.key, &error, object.sources.len());
            let reason = format!("the object store refused the key {}: {error}", object.key);
            for source in object.sources {
                if refused_sources.insert(source) {
                    let (offset, record) = batch.records[source as usize].clone();
                    let from = (name.topic.as_str(), name.partition, offset);
                    dead_letters.push(DeadLetter {
                        record: dead_letter_record(record, reason.clone(), from),
                        delivery: None,
                    });
                }
            }
        };
    if batch.archived > 0 {
        // 1. The intent, before any object: a replay must cut the same batch.
        ctx.put_manifest(&name).await?;
        // 2. The frames' JPEGs, before the index that names them.
        let blobs = K::take_blobs(&mut batch.tables);
        written += blobs.len();
        spans.written(&blobs);
        for (object, error) in put_all(&ctx, blobs).await {
            refuse(object, error, &mut refused_sources);
        }
        // 3. The Parquet files, encoded off the async workers.
        let tables = std::mem::take(&mut batch.tables);
        let (props, excluded, encode_name) =
            (ctx.props.clone(), refused_sources.clone(), name.clone());
        let files =
            tokio::task::spawn_blocking(move || K::encode(tables, &encode_name, &excluded, &props))
                .await
                .map_err(|e| Error::Panicked(format!("encoding {name:?}: {e}")))??;
        written += files.len();
        spans.written(&files);
        for (object, error) in put_all(&ctx, files).await {
            refuse(object, error, &mut refused_sources);
        }
    }
    // 4. What erased records would have left behind (see `Kind::take_erased`).
    for key in erased {
        ctx.delete(&key).await?;
    }
    // 5. Dead letters durable, 6. then the offsets committed.
    ctx.settle(dead_letters).await;
    let at = Position {
        topic: name.topic.clone(),
        partition: name.partition,
        offset: name.last,
    };
    ctx.commit(consumer.as_ref(), at).await;
    spans.emit(&batch.records, &refused_sources);
    let archived = batch.archived - refused_sources.len() as u64;
    lane.flushed(
        name.partition,
        (name.first, name.last),
        (archived, batch.duplicates, batch.erased),
        written,
        started.elapsed(),
    );
    Ok(())
}
