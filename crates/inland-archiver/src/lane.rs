//! One input (a topic read by a consumer group): records into batches per partition,
//! batches rolled by size, count and age, written one at a time per partition, memory
//! bounded by the shared budget.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use inland_stage::Consumer;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::batch::{Batch, record_size};
use crate::decoder;
use crate::dedup::RecentIds;
use crate::flush::{Ctx, dead_letter_record, flush};
use crate::kinds::{Added, Kind};
use crate::metrics::LaneMetrics;

/// The outcome of one partition's write: partition, batch number, footprint, result.
type Flushed = (i32, u64, usize, Result<(), Error>);

struct Part<T> {
    /// The batch filling.
    open: Option<Batch<T>>,
    /// Rolled batches waiting for the one being written (a partition writes one batch at a
    /// time, so its manifest always describes the oldest uncommitted batch).
    sealed: VecDeque<Batch<T>>,
    flushing: bool,
    /// The next record is the first after a start or a rewind: consult the manifest.
    fresh: bool,
    /// The end of the batch the next record opens, when it replays a manifest.
    replay_end: Option<i64>,
    last_seen: Option<i64>,
    recent: RecentIds,
    /// A record was left out (its acceptance cut short at the drain's end): every later
    /// record of the partition is left out too, or committing them would skip it.
    halted: bool,
}

impl<T> Part<T> {
    fn new(dedup: usize) -> Self {
        Self {
            open: None,
            sealed: VecDeque::new(),
            flushing: false,
            fresh: true,
            replay_end: None,
            last_seen: None,
            recent: RecentIds::new(dedup),
            halted: false,
        }
    }
}

pub(crate) struct Lane<K: Kind> {
    ctx: Arc<Ctx>,
    consumer: Arc<dyn Consumer>,
    topic: Arc<str>,
    metrics: Arc<LaneMetrics>,
    parts: HashMap<i32, Part<K::Tables>>,
    flushes: JoinSet<Flushed>,
    /// Bytes this lane holds in the shared budget.
    held: usize,
}

impl<K: Kind> Lane<K> {
    pub(crate) fn new(ctx: Arc<Ctx>, consumer: Arc<dyn Consumer>, topic: &str) -> Self {
        Self {
            ctx,
            consumer,
            topic: topic.into(),
            metrics: Arc::new(LaneMetrics::new(topic)),
            parts: HashMap::new(),
            flushes: JoinSet::new(),
            held: 0,
        }
    }

    /// Consumes until `shutdown`; then archives what was read ahead, writes what is
    /// buffered and commits it, for at most `drain_timeout` in all. Errors only for what
    /// retrying cannot heal.
    pub(crate) async fn run(
        mut self,
        group: &str,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        self.metrics.started(group);
        let reading = shutdown.child_token();
        let (mut input, reader) = decoder::spawn::<K>(
            self.consumer.clone(),
            self.topic.clone(),
            self.ctx.config.clone(),
            self.metrics.clone(),
            reading.clone(),
        );
        // The end of the drain: `drain_timeout` after the shutdown. Waits inside a record's
        // acceptance (the manifest, a write) are cut only then, so a shutdown while they
        // are under way still archives the record.
        let deadline = CancellationToken::new();
        let timer = tokio::spawn({
            let (shutdown, deadline) = (shutdown.clone(), deadline.clone());
            let drain_timeout = self.ctx.config.drain_timeout;
            async move {
                shutdown.cancelled().await;
                tokio::time::sleep(drain_timeout).await;
                deadline.cancel();
            }
        });
        let consumed = self.consume(&mut input, &shutdown, &deadline).await;
        reading.cancel();
        let consumed = match consumed {
            Ok(()) => self.finish_input(&mut input, &deadline).await,
            Err(e) => Err(e),
        };
        let drained = self.drain(&deadline).await;
        timer.abort();
        reader.abort();
        self.ctx.budget.release(std::mem::take(&mut self.held));
        self.metrics.stopped(matches!(drained, Ok(true)));
        consumed.and(drained.map(|_| ()))
    }

    async fn consume(
        &mut self,
        input: &mut mpsc::Receiver<decoder::Item<K::Prepared>>,
        shutdown: &CancellationToken,
        deadline: &CancellationToken,
    ) -> Result<(), Error> {
        let ctx = self.ctx.clone();
        let age = ctx.config.max_batch_age;
        let mut tick = tokio::time::interval(
            (age / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)),
        );
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            // Registered before the check, so a release in between still wakes us.
            let freed = ctx.budget.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let receive = self.may_receive();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                Some(joined) = self.flushes.join_next() => self.flushed(joined)?,
                _ = tick.tick() => self.roll_aged(),
                _ = &mut freed, if !receive => {}
                next = input.recv(), if receive => match next {
                    Some(Ok(item)) => self.accept(item, deadline).await?,
                    Some(Err(e)) => return Err(e),
                    // The reader stopped: shutting down.
                    None => return Ok(()),
                },
            }
        }
    }

    /// Archives what the reader read before it stopped (bounded by the read-ahead limit),
    /// until `deadline`.
    async fn finish_input(
        &mut self,
        input: &mut mpsc::Receiver<decoder::Item<K::Prepared>>,
        deadline: &CancellationToken,
    ) -> Result<(), Error> {
        loop {
            let next = tokio::select! {
                _ = deadline.cancelled() => return Ok(()),
                next = input.recv() => next,
            };
            match next {
                Some(Ok(item)) => self.accept(item, deadline).await?,
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    }

    /// Whether to read another record. Over the budget, only if a replay needs records to
    /// reach its end and nothing is being written; otherwise the largest batch that may
    /// end is rolled so that memory frees up.
    fn may_receive(&mut self) -> bool {
        if self.ctx.budget.used() < self.ctx.config.max_buffered_bytes {
            return true;
        }
        if !self.flushes.is_empty() {
            return false;
        }
        let largest = self
            .parts
            .iter()
            .filter_map(|(p, part)| {
                part.open
                    .as_ref()
                    .filter(|b| b.end.is_none())
                    .map(|b| (*p, b.footprint))
            })
            .max_by_key(|(_, footprint)| *footprint);
        if let Some((partition, _)) = largest {
            self.seal(partition);
            return false;
        }
        // Replays end at a fixed offset: they must read on (bounded by their batch's size).
        self.parts
            .values()
            .any(|p| p.open.as_ref().is_some_and(|b| b.end.is_some()))
    }

    /// Adds one record to its partition's batch. `stop` cuts short a wait (for a write
    /// to finish, for the manifest): the record is then left out, uncommitted, and so is
    /// every later record of its partition.
    async fn accept(
        &mut self,
        item: decoder::Prepared<K::Prepared>,
        stop: &CancellationToken,
    ) -> Result<(), Error> {
        let decoder::Prepared {
            consumed, prepared, ..
        } = item;
        if consumed.topic != *self.topic {
            return Err(Error::Config(format!(
                "the consumer of {} delivered a record of {}: give each input its own consumer",
                self.topic, consumed.topic
            )));
        }
        let (partition, offset) = (consumed.partition, consumed.offset);
        let dedup = self.ctx.config.dedup_ids_per_partition;
        let part = self
            .parts
            .entry(partition)
            .or_insert_with(|| Part::new(dedup));
        if part.last_seen.is_some_and(|last| offset <= last) {
            // Read again from the committed offset (a rebalance took the partition away
            // and gave it back): the unwritten batches are rebuilt from the records.
            self.metrics.rewound(partition, offset);
            let mut dropped = 0;
            for batch in part.open.take().into_iter().chain(part.sealed.drain(..)) {
                dropped += batch.footprint;
                self.ctx.pending.close(batch.seq);
            }
            part.recent.clear();
            part.fresh = true;
            part.last_seen = None;
            part.halted = false;
            self.release(dropped);
        }
        if self.parts[&partition].halted {
            return Ok(());
        }
        if self.parts[&partition].fresh {
            let halt = |lane: &mut Self| {
                lane.parts
                    .get_mut(&partition)
                    .expect("inserted above")
                    .halted = true;
                Ok(())
            };
            // A batch being written decides what the manifest says: wait for it.
            if self.parts[&partition].flushing && !self.wait_for(partition, stop).await? {
                return halt(self);
            }
            let manifest = tokio::select! {
                _ = stop.cancelled() => return halt(self),
                manifest = self.ctx.manifest(&self.topic, partition) => manifest?,
            };
            let part = self.parts.get_mut(&partition).expect("inserted above");
            part.fresh = false;
            part.replay_end = manifest.filter(|m| m.first == offset).map(|m| m.last);
            if let Some(end) = part.replay_end {
                self.metrics.replay(partition, offset, end);
            }
        }
        let part = self.parts.get_mut(&partition).expect("inserted above");
        if part
            .open
            .as_ref()
            .is_some_and(|b| b.end.is_some_and(|end| offset > end))
        {
            // A replay whose last records were compacted away ends before this one.
            self.seal(partition);
        }
        let part = self.parts.get_mut(&partition).expect("inserted above");
        let batch = part.open.get_or_insert_with(|| {
            Batch::new(
                self.ctx.pending.open(),
                self.topic.clone(),
                partition,
                offset,
                part.replay_end.take(),
            )
        });
        let source = batch.records.len() as u32;
        let added = K::add(
            &mut batch.tables,
            prepared,
            &consumed,
            source,
            &mut part.recent,
            &self.ctx.erasures,
        );
        batch.last = offset;
        batch.consumed += 1;
        batch.input_bytes += consumed.record.payload.len();
        let before = batch.footprint;
        match added {
            Added::Archived { bytes } => {
                batch.footprint += bytes + record_size(&consumed.record);
                batch.records.push((offset, consumed.record));
                batch.archived += 1;
            }
            Added::Duplicate => batch.duplicates += 1,
            Added::Erased => batch.erased += 1,
            Added::Rejected(reject) => {
                self.metrics.rejected(partition, offset, reject.label);
                batch.footprint += record_size(&consumed.record);
                let record = dead_letter_record(
                    consumed.record,
                    reject.reason,
                    (&self.topic, partition, offset),
                );
                batch.dead_letters.push(self.ctx.dead_letter(record).await);
            }
        }
        let grown = batch.footprint - before;
        part.last_seen = Some(offset);
        let config = &self.ctx.config;
        let full = match batch.end {
            Some(end) => offset >= end,
            None => {
                batch.input_bytes >= config.max_batch_bytes
                    || batch.consumed >= config.max_batch_records
            }
        };
        self.hold(grown);
        if full {
            self.seal(partition);
        }
        Ok(())
    }

    /// Rolls the partition's open batch; it is written once the batches before it are.
    fn seal(&mut self, partition: i32) {
        let Some(part) = self.parts.get_mut(&partition) else {
            return;
        };
        if let Some(batch) = part.open.take() {
            part.sealed.push_back(batch);
        }
        self.start_flush(partition);
    }

    fn start_flush(&mut self, partition: i32) {
        let Some(part) = self.parts.get_mut(&partition) else {
            return;
        };
        if part.flushing {
            return;
        }
        let Some(batch) = part.sealed.pop_front() else {
            return;
        };
        part.flushing = true;
        let (seq, footprint) = (batch.seq, batch.footprint);
        let (ctx, consumer, metrics) = (
            self.ctx.clone(),
            self.consumer.clone(),
            self.metrics.clone(),
        );
        self.flushes.spawn(async move {
            (
                partition,
                seq,
                footprint,
                flush::<K>(ctx, consumer, metrics, batch).await,
            )
        });
    }

    fn flushed(&mut self, joined: Result<Flushed, JoinError>) -> Result<(), Error> {
        let (partition, seq, footprint, result) =
            joined.map_err(|e| Error::Panicked(e.to_string()))?;
        self.release(footprint);
        result?;
        self.ctx.pending.close(seq);
        if let Some(part) = self.parts.get_mut(&partition) {
            part.flushing = false;
        }
        self.start_flush(partition);
        Ok(())
    }

    /// Handles completed writes until `partition`'s is done; false if shut down first.
    async fn wait_for(
        &mut self,
        partition: i32,
        shutdown: &CancellationToken,
    ) -> Result<bool, Error> {
        while self.parts[&partition].flushing {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(false),
                Some(joined) = self.flushes.join_next() => self.flushed(joined)?,
            }
        }
        Ok(true)
    }

    fn roll_aged(&mut self) {
        let age = self.ctx.config.max_batch_age;
        let aged: Vec<i32> = self
            .parts
            .iter()
            .filter(|(_, p)| {
                p.open
                    .as_ref()
                    .is_some_and(|b| b.end.is_none() && b.opened.elapsed() >= age)
            })
            .map(|(partition, _)| *partition)
            .collect();
        for partition in aged {
            self.seal(partition);
        }
    }

    /// Writes every batch that may end (an incomplete replay may not: it is replayed at the
    /// next start) and waits until `deadline`. Ok(false) when it gave up.
    async fn drain(&mut self, deadline: &CancellationToken) -> Result<bool, Error> {
        let partitions: Vec<i32> = self.parts.keys().copied().collect();
        for partition in partitions {
            let part = self.parts.get_mut(&partition).expect("listed");
            if part.open.as_ref().is_some_and(|b| b.end.is_some()) {
                let replay = part.open.take().expect("checked");
                self.metrics.replay_abandoned(partition);
                self.release(replay.footprint);
            }
            self.seal(partition);
        }
        let drain = async {
            while let Some(joined) = self.flushes.join_next().await {
                self.flushed(joined)?;
            }
            Ok::<_, Error>(())
        };
        tokio::select! {
            result = drain => result.map(|()| true),
            _ = deadline.cancelled() => {
                self.flushes.abort_all();
                self.metrics.drain_timed_out(self.ctx.config.drain_timeout);
                Ok(false)
            }
        }
    }

    fn hold(&mut self, bytes: usize) {
        self.held += bytes;
        self.ctx.budget.hold(bytes);
    }

    fn release(&mut self, bytes: usize) {
        self.held -= bytes;
        self.ctx.budget.release(bytes);
    }
}
