//! Erasure requests from `inland.erasure.v1`: the anonymizer writes one per consent
//! withdrawal, naming the vehicle's pseudonyms (one per key epoch) and when it was made.
//! The archiver erases what they cover and records when each completed.
//!
//! A request's rows may be anywhere on their way: in the store, in a batch being filled
//! or written, or still upstream. So, for the requests read together:
//!
//! 1. [`Erasures`] learns them: from then on every batch leaves out records they cover
//!    (and deletes the objects a replay would otherwise keep, see `kinds`).
//! 2. The lane waits until every batch opened before that is committed ([`Pending`]): a
//!    batch filled earlier may hold covered records.
//! 3. One pass over the store removes the covered rows and frames (`erase`).
//! 4. Each request's completion is recorded (`consent/erasure/<id>.json`), then its offset
//!    committed. A crash before that repeats the whole request: every step is idempotent.
//!
//! [`Erasures`] lives in memory; at start, [`restore`] relearns the requests completed
//! within [`REMEMBER`] from their completion records (which name the pseudonyms), so a
//! record still upstream across a restart stays out as well.
//!
//! [`Pending`]: crate::batch::Pending

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::DateTime;
use futures::FutureExt;
use inland_core::ErrorCode;
use inland_stage::{Consumed, Consumer, Position};
use inland_store::ObjectStore;
use tokio_util::sync::CancellationToken;

use crate::erase::{
    Covered, ErasureRecord, cover, erase_covered, erasure_key, erasure_prefix, is_pseudonym,
    record_erasure, store_error,
};
use crate::flush::{Ctx, dead_letter_record};
use crate::tables::millis;
use crate::{Error, metrics};

/// Requests carried out in one pass over the store, at most.
const PER_PASS: usize = 256;
/// How long a request keeps its records out of new batches: longer than any topic upstream
/// keeps a record (72 h by default), and the gateway refuses uploads once consent is
/// withdrawn, so nothing it covers can arrive later.
const REMEMBER: Duration = Duration::from_secs(7 * 24 * 3600);

/// The pseudonyms of the erasure requests read, each with the latest time a request for it
/// was made: a record of one of them from before that time is never archived again.
#[derive(Default)]
pub(crate) struct Erasures {
    /// Whether `before` has any entry: the check per record is then one load.
    any: AtomicBool,
    /// Pseudonym → (requested before, when the archiver read the request).
    before: RwLock<HashMap<String, (i64, i64)>>,
}

impl Erasures {
    /// Remembers a request for `pseudonym` made at `requested_ms`, read at `now_ms`; forgets
    /// those read longer than [`REMEMBER`] ago.
    pub(crate) fn register(&self, pseudonym: &str, requested_ms: i64, now_ms: i64) {
        let mut before = self.before.write().expect("never poisoned");
        let horizon = now_ms.saturating_sub(REMEMBER.as_millis() as i64);
        before.retain(|_, (_, read)| *read >= horizon);
        let (at, read) = before
            .entry(pseudonym.to_owned())
            .or_insert((requested_ms, now_ms));
        *at = (*at).max(requested_ms);
        *read = now_ms;
        self.any.store(true, Ordering::Release);
    }

    /// Whether a record of `pseudonym` whose earliest time is `time_ms` is covered by a
    /// request (and so must not be archived).
    pub(crate) fn covers(&self, pseudonym: &str, time_ms: i64) -> bool {
        self.any.load(Ordering::Acquire)
            && self
                .before
                .read()
                .expect("never poisoned")
                .get(pseudonym)
                .is_some_and(|(before, _)| time_ms < *before)
    }
}

/// One request, checked.
struct Request {
    id: String,
    requested_ms: i64,
    pseudonyms: Vec<String>,
}

/// Why a record is not an erasure request the archiver can carry out (the dead-letter
/// reason: never a pseudonym).
fn parse(consumed: &Consumed) -> Result<Request, String> {
    let request =
        inland_consent::decode_erasure(&consumed.record.payload).map_err(|e| e.to_string())?;
    erasure_key(&request.request_id).map_err(|e| e.to_string())?;
    let pseudonyms: Vec<String> = request
        .pseudonyms
        .into_iter()
        .map(|p| p.value)
        .filter(|p| !p.is_empty())
        .collect();
    if !pseudonyms.iter().all(|p| is_pseudonym(p)) {
        return Err("a pseudonym that is not 32 lower-case hex digits".into());
    }
    let requested_ms = request
        .requested_at
        .as_ref()
        .map(millis)
        .ok_or("the erasure request has no requested_at")?;
    Ok(Request {
        id: request.request_id,
        requested_ms,
        pseudonyms,
    })
}

/// Relearns the requests completed within [`REMEMBER`] (see the module docs), retrying
/// while the store fails. False when shut down first.
pub(crate) async fn restore(ctx: &Ctx, shutdown: &CancellationToken) -> bool {
    let Some(completed) = retrying(ctx, shutdown, "restore", || async {
        completed_since(ctx.store.as_ref(), now_ms() - REMEMBER.as_millis() as i64).await
    })
    .await
    else {
        return false;
    };
    let mut pseudonyms = 0;
    for (record, requested_ms, completed_ms) in &completed {
        for pseudonym in record.pseudonyms.iter().filter(|p| is_pseudonym(p)) {
            ctx.erasures
                .register(pseudonym, *requested_ms, *completed_ms);
            pseudonyms += 1;
        }
    }
    metrics::erasures_restored(completed.len(), pseudonyms);
    true
}

/// The completion records of requests completed at or after `since_ms`, each with its
/// request and completion times. A record that is not one is skipped, with a warning.
async fn completed_since(
    store: &dyn ObjectStore,
    since_ms: i64,
) -> Result<Vec<(ErasureRecord, i64, i64)>, Error> {
    let prefix = erasure_prefix();
    let listed = store
        .list(&prefix)
        .await
        .map_err(store_error("list", &prefix))?;
    let since = UNIX_EPOCH + Duration::from_millis(since_ms.max(0) as u64);
    let mut completed = Vec::new();
    // Written when the request completed: older objects cannot be recent records.
    for object in listed.iter().filter(|o| o.last_modified >= since) {
        let body = store
            .get(&object.key)
            .await
            .map_err(store_error("get", &object.key))?;
        let times = |r: &ErasureRecord| {
            let ms = |t: &str| {
                DateTime::parse_from_rfc3339(t)
                    .ok()
                    .map(|t| t.timestamp_millis())
            };
            Some((ms(&r.requested_at)?, ms(&r.completed_at)?))
        };
        match serde_json::from_slice::<ErasureRecord>(&body) {
            Ok(record) => match times(&record) {
                Some((requested, done)) if done >= since_ms => {
                    completed.push((record, requested, done));
                }
                Some(_) => {}
                None => metrics::erasure_record_unreadable(&object.key, "a time is not RFC 3339"),
            },
            Err(e) => metrics::erasure_record_unreadable(&object.key, &e.to_string()),
        }
    }
    Ok(completed)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Carries out the requests on `consumer` (reading `topic`) until `shutdown`. A request in
/// progress at shutdown stays uncommitted and is carried out again after the restart.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    consumer: Arc<dyn Consumer>,
    topic: &str,
    group: &str,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    metrics::erasures_started(topic, group);
    let mut failures = 0;
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            next = consumer.recv() => next,
        };
        let first = match next {
            Ok(first) => first,
            Err(e) if matches!(e.code(), ErrorCode::Unavailable | ErrorCode::NotFound) => {
                failures += 1;
                let backoff = ctx.config.backoff(failures);
                metrics::erasure_consume_failed(topic, &e, backoff);
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff) => continue,
                }
            }
            Err(source) => {
                return Err(Error::Consume {
                    topic: topic.to_owned(),
                    source,
                });
            }
        };
        failures = 0;
        // What else is there already (recv is cancel safe): one pass serves them all.
        let mut read = vec![first];
        while read.len() < PER_PASS {
            match consumer.recv().now_or_never() {
                Some(Ok(next)) => read.push(next),
                // Met again by the next recv, after this pass.
                Some(Err(_)) | None => break,
            }
        }
        if !carry_out(&ctx, read, consumer.as_ref(), topic, &shutdown).await {
            return Ok(());
        }
    }
}

/// One pass: the steps of the module docs for the requests in `read`. False when shut
/// down before the end (nothing of `read` is then committed).
async fn carry_out(
    ctx: &Ctx,
    read: Vec<Consumed>,
    consumer: &dyn Consumer,
    topic: &str,
    shutdown: &CancellationToken,
) -> bool {
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    let (mut requests, mut dead_letters) = (Vec::new(), Vec::new());
    let now = now_ms();
    for consumed in read {
        let end = ends.entry(consumed.partition).or_insert(consumed.offset);
        *end = (*end).max(consumed.offset);
        match parse(&consumed) {
            Ok(request) => {
                for pseudonym in &request.pseudonyms {
                    ctx.erasures.register(pseudonym, request.requested_ms, now);
                }
                requests.push(request);
            }
            Err(reason) => {
                metrics::erasure_rejected(topic, consumed.partition, consumed.offset);
                let from = (topic, consumed.partition, consumed.offset);
                let record = dead_letter_record(consumed.record, reason, from);
                dead_letters.push(ctx.dead_letter(record).await);
            }
        }
    }
    let mark = ctx.pending.mark();
    tokio::select! {
        _ = shutdown.cancelled() => return false,
        () = ctx.pending.closed_before(mark) => {}
    }
    let mut covered = Covered::new();
    for request in &requests {
        for pseudonym in &request.pseudonyms {
            cover(&mut covered, pseudonym, Some(request.requested_ms));
        }
    }
    let Some(report) = retrying(ctx, shutdown, "erase", || {
        erase_covered(ctx.store.as_ref(), covered.clone())
    })
    .await
    else {
        return false;
    };
    for request in &requests {
        let requested_at = UNIX_EPOCH + Duration::from_millis(request.requested_ms.max(0) as u64);
        let recorded = retrying(ctx, shutdown, "record", || {
            let store = ctx.store.as_ref();
            record_erasure(
                store,
                &request.id,
                requested_at,
                &request.pseudonyms,
                &report,
            )
        })
        .await;
        let Some(key) = recorded else {
            return false;
        };
        metrics::erasure_request_done(&request.id, &key, request.pseudonyms.len());
    }
    ctx.settle(dead_letters).await;
    let positions: Vec<Position> = ends
        .into_iter()
        .map(|(partition, offset)| Position {
            topic: topic.to_owned(),
            partition,
            offset,
        })
        .collect();
    for at in positions {
        ctx.commit(consumer, at).await;
    }
    true
}

/// Runs `op` until it succeeds (erasing and recording are idempotent), with backoff; `None`
/// when shut down first.
async fn retrying<T, F, Fut>(
    ctx: &Ctx,
    shutdown: &CancellationToken,
    what: &'static str,
    mut op: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut failures = 0;
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return None,
            result = op() => result,
        };
        match result {
            Ok(done) => return Some(done),
            Err(error) => {
                failures += 1;
                let backoff = ctx.config.backoff(failures);
                metrics::erasure_retry(what, &error, backoff);
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_request_covers_what_was_recorded_before_it_until_it_is_forgotten() {
        let erasures = Erasures::default();
        assert!(!erasures.covers(P, 0));
        let day = 24 * 3600 * 1000;
        erasures.register(P, 10 * day, 10 * day);
        assert!(erasures.covers(P, 10 * day - 1));
        assert!(
            !erasures.covers(P, 10 * day),
            "recorded at the request: kept"
        );
        assert!(!erasures.covers("fedcba9876543210fedcba9876543210", 0));
        // A later request for the same pseudonym widens it; an earlier one does not narrow.
        erasures.register(P, 11 * day, 11 * day);
        erasures.register(P, 9 * day, 11 * day);
        assert!(erasures.covers(P, 11 * day - 1));
        // Requests read now are kept however old they are ...
        let q = "fedcba9876543210fedcba9876543210";
        erasures.register(q, day, 18 * day);
        erasures.register("00000000000000000000000000000001", day, 18 * day);
        assert!(erasures.covers(q, 0) && erasures.covers(P, 0));
        // ... and forgotten a week after they were read, at the next request.
        erasures.register(q, day, 18 * day + 1);
        assert!(!erasures.covers(P, 0));
        assert!(erasures.covers(q, 0));
    }
}
