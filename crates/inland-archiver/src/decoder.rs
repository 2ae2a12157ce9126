//! Reads the input ahead of the lane and prepares records (decode, check, place) on the
//! blocking pool, in chunks, several at once, handing them on in their original order.
//! The lane then only appends rows, so decoding uses every core instead of the lane's.
//!
//! What is read ahead is bounded in bytes ([`read_ahead_limit`]), on top of the budget the
//! batches hold. At shutdown the reader stops reading and hands on what it has read, so
//! the lane archives every record it was given.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use inland_core::ErrorCode;
use inland_stage::{Consumed, Consumer};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::kinds::Kind;
use crate::metrics::LaneMetrics;
use crate::{ArchiverConfig, Error};

/// Records prepared together on one blocking thread: enough to make the thread hop cheap
/// per record, few enough to keep the pipeline short.
const CHUNK: usize = 256;
/// Chunks being prepared at once.
const DEPTH: usize = 4;

/// Bytes of records read ahead of the lane: an eighth of the batches' budget.
pub(crate) fn read_ahead_limit(config: &ArchiverConfig) -> usize {
    config.max_buffered_bytes / 8
}

/// A record read ahead, prepared: its bytes count as read ahead until it is dropped.
pub(crate) struct Prepared<P> {
    pub(crate) consumed: Consumed,
    pub(crate) prepared: P,
    _ahead: Ahead,
}

/// Payload bytes read but not yet taken by the lane.
#[derive(Default)]
struct ReadAhead {
    bytes: AtomicUsize,
    taken: Notify,
}

struct Ahead {
    shared: Arc<ReadAhead>,
    bytes: usize,
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.shared.bytes.fetch_sub(self.bytes, Ordering::Relaxed);
        self.shared.taken.notify_waiters();
    }
}

pub(crate) type Item<P> = Result<Prepared<P>, Error>;

/// Starts reading `consumer`; the records come out of the receiver in the order read.
/// At `shutdown` it stops reading, hands on what it read, and closes the receiver; an
/// error that stops it is the last item.
pub(crate) fn spawn<K: Kind>(
    consumer: Arc<dyn Consumer>,
    topic: Arc<str>,
    config: ArchiverConfig,
    metrics: Arc<LaneMetrics>,
    shutdown: CancellationToken,
) -> (mpsc::Receiver<Item<K::Prepared>>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(CHUNK);
    let task = tokio::spawn(async move {
        let reader = Reader::<K> {
            consumer,
            topic,
            limit: read_ahead_limit(&config),
            config,
            metrics,
            ahead: Arc::default(),
            tx,
            preparing: FuturesOrdered::new(),
        };
        reader.run(shutdown).await;
    });
    (rx, task)
}

type Chunk<P> = Vec<(Consumed, P, Ahead)>;

struct Reader<K: Kind> {
    consumer: Arc<dyn Consumer>,
    topic: Arc<str>,
    config: ArchiverConfig,
    metrics: Arc<LaneMetrics>,
    limit: usize,
    ahead: Arc<ReadAhead>,
    tx: mpsc::Sender<Item<K::Prepared>>,
    preparing: FuturesOrdered<JoinHandle<Chunk<K::Prepared>>>,
}

impl<K: Kind> Reader<K> {
    async fn run(mut self, shutdown: CancellationToken) {
        let outcome = self.read(&shutdown).await;
        // What was read is handed on (the lane archives it), then the error if any.
        while let Some(chunk) = self.preparing.next().await {
            if !self.hand_on(chunk).await {
                return;
            }
        }
        if let Err(e) = outcome {
            let _ = self.tx.send(Err(e)).await;
        }
    }

    /// Reads until `shutdown` or an error that retrying cannot heal.
    async fn read(&mut self, shutdown: &CancellationToken) -> Result<(), Error> {
        let mut failures = 0;
        loop {
            // Registered before the check, so a record taken in between still wakes us.
            let ahead = self.ahead.clone();
            let taken = ahead.taken.notified();
            tokio::pin!(taken);
            taken.as_mut().enable();
            let room =
                self.preparing.len() < DEPTH && ahead.bytes.load(Ordering::Relaxed) < self.limit;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                Some(chunk) = self.preparing.next(), if !self.preparing.is_empty() => {
                    if !self.hand_on(chunk).await {
                        return Ok(());
                    }
                }
                _ = &mut taken, if !room => {}
                next = self.consumer.recv(), if room => {
                    let first = match next {
                        Ok(first) => first,
                        Err(e) => {
                            failures += 1;
                            if !self.retry(e, failures, shutdown).await? {
                                return Ok(());
                            }
                            continue;
                        }
                    };
                    failures = 0;
                    let failed = self.gather(first);
                    if let Some(e) = failed {
                        failures += 1;
                        if !self.retry(e, failures, shutdown).await? {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    /// Takes `first` and whatever else is there already, without waiting (recv is cancel
    /// safe), up to a chunk or the read-ahead limit, and starts preparing them. Returns an
    /// error met on the way.
    fn gather(&mut self, first: Consumed) -> Option<inland_stage::Error> {
        let mut chunk = vec![self.held(first)];
        let mut failed = None;
        while chunk.len() < CHUNK && self.ahead.bytes.load(Ordering::Relaxed) < self.limit {
            match self.consumer.recv().now_or_never() {
                Some(Ok(next)) => chunk.push(self.held(next)),
                Some(Err(e)) => {
                    failed = Some(e);
                    break;
                }
                None => break,
            }
        }
        self.preparing
            .push_back(tokio::task::spawn_blocking(move || {
                chunk
                    .into_iter()
                    .map(|(consumed, ahead)| {
                        let prepared = K::prepare(&consumed);
                        (consumed, prepared, ahead)
                    })
                    .collect()
            }));
        failed
    }

    fn held(&self, consumed: Consumed) -> (Consumed, Ahead) {
        let bytes = consumed.record.payload.len();
        self.ahead.bytes.fetch_add(bytes, Ordering::Relaxed);
        let ahead = Ahead {
            shared: self.ahead.clone(),
            bytes,
        };
        (consumed, ahead)
    }

    /// Sends a prepared chunk on, in order; false once the lane is gone.
    async fn hand_on(&self, chunk: Result<Chunk<K::Prepared>, tokio::task::JoinError>) -> bool {
        let items = match chunk {
            Ok(items) => items,
            Err(e) => {
                let _ = self
                    .tx
                    .send(Err(Error::Panicked(format!("preparing records: {e}"))))
                    .await;
                return false;
            }
        };
        for (consumed, prepared, ahead) in items {
            let item = Prepared {
                consumed,
                prepared,
                _ahead: ahead,
            };
            if self.tx.send(Ok(item)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// A consume error: an outage waits its backoff (false if shut down meanwhile),
    /// anything else stops the archiver.
    async fn retry(
        &self,
        error: inland_stage::Error,
        failures: u32,
        shutdown: &CancellationToken,
    ) -> Result<bool, Error> {
        if !matches!(error.code(), ErrorCode::Unavailable | ErrorCode::NotFound) {
            return Err(Error::Consume {
                topic: self.topic.to_string(),
                source: error,
            });
        }
        let backoff = self.config.backoff(failures);
        self.metrics.consume_failed(&error, backoff);
        tokio::select! {
            _ = shutdown.cancelled() => Ok(false),
            _ = tokio::time::sleep(backoff) => Ok(true),
        }
    }
}
