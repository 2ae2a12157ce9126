//! A batch (one partition's contiguous records on their way to the store) and the memory
//! budget all batches share.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use inland_stage::{Delivery, Record};
use tokio::sync::Notify;

use crate::metrics;

pub(crate) struct Batch<T> {
    /// Its number in [`Pending`].
    pub(crate) seq: u64,
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) first: i64,
    pub(crate) last: i64,
    /// A replay's end: the last offset of the manifest this batch repeats. The batch ends
    /// exactly there, whatever its size or age, so it writes the same keys again.
    pub(crate) end: Option<i64>,
    pub(crate) opened: Instant,
    /// Records consumed into this batch (archived, duplicate or rejected).
    pub(crate) consumed: usize,
    /// Their payload bytes: what `max_batch_bytes` limits.
    pub(crate) input_bytes: usize,
    /// Memory held: the kept records plus their rows. Counted against the budget.
    pub(crate) footprint: usize,
    /// The archived records as read, with their offsets, so that one whose object the
    /// store refuses can still be dead-lettered whole. Payloads share their buffers with
    /// the rows' JPEGs.
    pub(crate) records: Vec<(i64, Record)>,
    pub(crate) dead_letters: Vec<DeadLetter>,
    pub(crate) tables: T,
    pub(crate) archived: u64,
    pub(crate) duplicates: u64,
    /// Records left out because an erasure request covers them.
    pub(crate) erased: u64,
}

/// A record on its way to the dead-letter topic; `delivery` is `None` until the producer
/// accepted it.
pub(crate) struct DeadLetter {
    pub(crate) record: Record,
    pub(crate) delivery: Option<Delivery>,
}

impl<T: Default> Batch<T> {
    pub(crate) fn new(
        seq: u64,
        topic: Arc<str>,
        partition: i32,
        first: i64,
        end: Option<i64>,
    ) -> Self {
        Self {
            seq,
            topic,
            partition,
            first,
            last: first,
            end,
            opened: Instant::now(),
            consumed: 0,
            input_bytes: 0,
            footprint: 0,
            records: Vec::new(),
            dead_letters: Vec::new(),
            tables: T::default(),
            archived: 0,
            duplicates: 0,
            erased: 0,
        }
    }
}

impl<T> Batch<T> {
    /// The last offset the batch's keys and commit name: a replay's declared end (its
    /// last record may have been compacted away), else the last record read.
    pub(crate) fn last_offset(&self) -> i64 {
        self.end.unwrap_or(self.last)
    }
}

/// Memory a record holds in a batch, beyond its rows.
pub(crate) fn record_size(record: &Record) -> usize {
    std::mem::size_of::<Record>()
        + record.key.len()
        + record.payload.len()
        + record
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 48)
            .sum::<usize>()
}

/// Bytes held by every batch of the archiver; consumption pauses while it is over the
/// limit (see `Lane::may_receive`).
#[derive(Default)]
pub(crate) struct Budget {
    used: AtomicUsize,
    /// Woken whenever memory is released.
    pub(crate) freed: Notify,
}

impl Budget {
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub(crate) fn hold(&self, bytes: usize) {
        let used = self.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        metrics::buffered(used);
    }

    pub(crate) fn release(&self, bytes: usize) {
        let used = self.used.fetch_sub(bytes, Ordering::Relaxed) - bytes;
        metrics::buffered(used);
        self.freed.notify_waiters();
    }
}

/// The batches opened and not yet committed, by number, so that an erasure can wait until
/// every batch that may hold rows added before it is in the store (see `requests`).
#[derive(Default)]
pub(crate) struct Pending {
    /// The next number, and the numbers still open, filling, waiting or being written.
    state: Mutex<(u64, BTreeSet<u64>)>,
    changed: Notify,
}

impl Pending {
    /// Numbers a new batch.
    pub(crate) fn open(&self) -> u64 {
        let mut state = self.state.lock().expect("never poisoned");
        let seq = state.0;
        state.0 += 1;
        state.1.insert(seq);
        seq
    }

    /// The batch is committed, or dropped to be rebuilt from records read again.
    pub(crate) fn close(&self, seq: u64) {
        self.state.lock().expect("never poisoned").1.remove(&seq);
        self.changed.notify_waiters();
    }

    /// The number the next batch gets: [`Pending::closed_before`] it waits for every batch
    /// opened until now.
    pub(crate) fn mark(&self) -> u64 {
        self.state.lock().expect("never poisoned").0
    }

    /// Resolves once every batch numbered below `mark` is closed.
    pub(crate) async fn closed_before(&self, mark: u64) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let oldest = self
                .state
                .lock()
                .expect("never poisoned")
                .1
                .first()
                .copied();
            if oldest.is_none_or(|seq| seq >= mark) {
                return;
            }
            changed.await;
        }
    }
}
