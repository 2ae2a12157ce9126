//! The consume → process → produce → commit loop every pipeline stage runs.
//!
//! Each partition of the input gets its own worker task. A worker processes its records
//! in offset order and queues their outputs in that order, but does not wait for one
//! record's outputs to be durable before processing the next: up to
//! [`StageConfig::max_in_flight`] records per partition await durability at once. A record
//! is done when all its outputs are durable and every earlier record of its partition is
//! done; the highest done offset per partition is committed every
//! [`StageConfig::commit_interval`]. So nothing is committed before it is durable, and a
//! crash at any point re-delivers whatever was not committed (at least once).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::metrics::StageMetrics;
use crate::{Consumed, Consumer, Delivery, Error, Position, Producer, Record, trace};

/// Header on a dead-lettered record: why the stage rejected it.
pub const DEAD_LETTER_REASON: &str = "inland-dlq-reason";
/// Header on a dead-lettered record: the stage that rejected it.
pub const DEAD_LETTER_STAGE: &str = "inland-dlq-stage";
/// Header on a dead-lettered record: where it was read, as `topic/partition/offset`.
pub const DEAD_LETTER_SOURCE: &str = "inland-dlq-source";

/// One record a stage emits for one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub topic: String,
    pub record: Record,
}

/// Why a stage could not process a record. Reasons go to logs and headers: they must
/// never contain payload data, positions, VINs or keys.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The record itself is bad (malformed, breaks a rule): retrying cannot help, so it
    /// goes to [`inland_core::topics::DEAD_LETTER`] with this reason and is committed.
    #[error("record rejected: {0}")]
    Reject(String),
    /// Something the stage depends on is down (a store, a key service): the record is
    /// processed again after a backoff, never skipped and never committed before.
    #[error("dependency unavailable: {0}")]
    Unavailable(String),
}

/// A pipeline stage: turns one consumed record into zero or more outputs. Zero outputs
/// drops the record (e.g. the geofence inside a protected zone). Processing may be called
/// again for the same record after a crash, so it must be deterministic or idempotent.
#[async_trait::async_trait]
pub trait Stage: Send + Sync + 'static {
    async fn process(&self, input: &Consumed) -> Result<Vec<Output>, StageError>;
}

/// How a stage runs.
#[derive(Debug, Clone)]
pub struct StageConfig {
    /// Names the stage in metrics, logs and dead-letter headers.
    pub name: String,
    /// Records of one partition whose outputs may await durability at once (at least 1).
    /// Throughput is about `max_in_flight` × partitions / delivery latency, so this is
    /// the knob that keeps a stage from idling while the broker confirms.
    pub max_in_flight: usize,
    /// Bytes of output one partition may hold awaiting durability, so large records
    /// (camera frames) bound memory before `max_in_flight` does. One record always fits.
    pub max_in_flight_bytes: usize,
    /// How often durable progress is committed. Longer means fewer commits and more
    /// records consumed again after a crash.
    pub commit_interval: Duration,
    /// How long a shutdown waits for in-flight records before giving up on them (they
    /// stay uncommitted and are consumed again).
    pub drain_timeout: Duration,
    /// First backoff after a failure; doubled on each further failure up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl StageConfig {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            max_in_flight: 1024,
            max_in_flight_bytes: 16 << 20,
            commit_interval: Duration::from_millis(500),
            drain_timeout: Duration::from_secs(30),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(10),
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let doubled = self
            .retry_min
            .saturating_mul(1 << attempt.saturating_sub(1).min(16));
        doubled.min(self.retry_max)
    }
}

/// Runs `stage` until `shutdown` is cancelled: consumes from `consumer`, sends outputs
/// with `producer`, commits what is durable. On shutdown it stops consuming, waits up to
/// `drain_timeout` for in-flight records, and commits what became durable.
///
/// Returns an error only for what retrying cannot heal: a consumer error that is not
/// transient, or a panic in `stage.process` (the panicking record stays uncommitted).
/// Broker outages are retried with backoff, never skipped.
pub async fn run_stage<S: Stage>(
    stage: S,
    consumer: impl Consumer,
    producer: Arc<dyn Producer>,
    config: StageConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let config = StageConfig {
        // Zero would mean no progress at all (and panics in tokio): take the least useful.
        max_in_flight: config.max_in_flight.max(1),
        commit_interval: config.commit_interval.max(Duration::from_millis(1)),
        ..config
    };
    let ctx = Arc::new(Ctx {
        metrics: StageMetrics::new(&config.name),
        stage,
        producer,
        config,
        done: Mutex::new(HashMap::new()),
    });
    let mut commits = Commits::default();
    let mut inputs: HashMap<(String, i32), mpsc::Sender<Consumed>> = HashMap::new();
    let mut workers = JoinSet::new();
    let mut tick = tokio::time::interval(ctx.config.commit_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut consume_failures = 0;
    ctx.metrics.started();

    let outcome = 'consume: loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break Ok(()),
            // Workers end only when their input closes at drain: any earlier end is a panic.
            Some(_) = workers.join_next() => {
                ctx.metrics.worker_panicked();
                break Err(Error::Panicked { stage: ctx.config.name.clone() });
            }
            _ = tick.tick() => commits.commit(&ctx, &consumer).await,
            next = consumer.recv() => {
                let consumed = match next {
                    Ok(consumed) => consumed,
                    Err(error) if error.is_transient() => {
                        consume_failures += 1;
                        let backoff = ctx.config.backoff(consume_failures);
                        ctx.metrics.consume_failed(&error, backoff);
                        tokio::select! {
                            _ = shutdown.cancelled() => break Ok(()),
                            _ = tokio::time::sleep(backoff) => continue,
                        }
                    }
                    Err(error) => break Err(error),
                };
                consume_failures = 0;
                let position = consumed.position();
                ctx.metrics.consumed(&position);
                let input = inputs.entry((position.topic.clone(), position.partition)).or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(ctx.config.max_in_flight);
                    workers.spawn(partition_worker(ctx.clone(), rx));
                    tx
                });
                // A partition whose pipeline is full holds up consuming; commits go on.
                let permit = loop {
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => break 'consume Ok(()),
                        permit = input.reserve() => break permit,
                        _ = tick.tick() => commits.commit(&ctx, &consumer).await,
                    }
                };
                match permit {
                    Ok(permit) => permit.send(consumed),
                    Err(_) => {
                        ctx.metrics.worker_panicked();
                        break Err(Error::Panicked { stage: ctx.config.name.clone() });
                    }
                }
                commits.dispatched(position);
            }
        }
    };

    // Closing the inputs lets each worker finish the records it holds, then end.
    drop(inputs);
    let drain = async {
        while let Some(joined) = workers.join_next().await {
            if joined.is_err() {
                ctx.metrics.worker_panicked();
            }
        }
    };
    let drained = tokio::time::timeout(ctx.config.drain_timeout, drain)
        .await
        .is_ok();
    if !drained {
        workers.abort_all();
        ctx.metrics.drain_timed_out(ctx.config.drain_timeout);
    }
    commits.commit(&ctx, &consumer).await;
    ctx.metrics.stopped(drained);
    outcome
}

struct Ctx<S> {
    stage: S,
    producer: Arc<dyn Producer>,
    config: StageConfig,
    metrics: StageMetrics,
    /// Highest done offset per partition since the last commit.
    done: Mutex<HashMap<(String, i32), i64>>,
}

/// Progress per partition, for commits and the commit-lag gauge.
#[derive(Default)]
struct Commits {
    dispatched: HashMap<(String, i32), i64>,
    committed: HashMap<(String, i32), i64>,
}

impl Commits {
    fn dispatched(&mut self, at: Position) {
        let key = (at.topic, at.partition);
        self.committed.entry(key.clone()).or_insert(at.offset - 1);
        self.dispatched.insert(key, at.offset);
    }

    async fn commit<S>(&mut self, ctx: &Ctx<S>, consumer: &impl Consumer) {
        let done = std::mem::take(&mut *ctx.done.lock().unwrap_or_else(|e| e.into_inner()));
        if !done.is_empty() {
            let positions: Vec<Position> = done
                .iter()
                .map(|((topic, partition), offset)| Position {
                    topic: topic.clone(),
                    partition: *partition,
                    offset: *offset,
                })
                .collect();
            match consumer.commit(&positions).await {
                Ok(()) => {
                    ctx.metrics.committed(&positions);
                    self.committed.extend(done);
                }
                Err(error) => {
                    ctx.metrics.commit_failed(&error);
                    // Retried at the next tick, unless a worker has since reported newer.
                    let mut pending = ctx.done.lock().unwrap_or_else(|e| e.into_inner());
                    for (key, offset) in done {
                        pending.entry(key).or_insert(offset);
                    }
                }
            }
        }
        let lag = self
            .dispatched
            .iter()
            .map(|(key, offset)| {
                (offset - self.committed.get(key).copied().unwrap_or(*offset)).max(0)
            })
            .sum();
        ctx.metrics.commit_lag(lag);
    }
}

/// A processed record whose outputs are queued but not all durable yet.
struct InFlight {
    position: Position,
    outputs: Vec<Output>,
    /// Payload bytes of `outputs`, counted against `max_in_flight_bytes`.
    bytes: usize,
    /// Deliveries still to confirm, in queueing order.
    pending: VecDeque<Delivery>,
}

impl InFlight {
    /// Waits until every output is durable. Cancel safe: a confirmed delivery is removed
    /// as soon as it resolves, the others stay.
    async fn settle(&mut self) -> Result<(), (String, Error)> {
        while let Some(delivery) = self.pending.front_mut() {
            let result = delivery.await;
            let topic_index = self.outputs.len() - self.pending.len();
            self.pending.pop_front();
            if let Err(error) = result {
                return Err((self.outputs[topic_index].topic.clone(), error));
            }
        }
        Ok(())
    }
}

/// Processes one partition's records in order; see the module docs.
async fn partition_worker<S: Stage>(ctx: Arc<Ctx<S>>, mut input: mpsc::Receiver<Consumed>) {
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut in_flight_bytes = 0usize;
    let mut input_open = true;
    let mut failures = 0;
    while input_open || !in_flight.is_empty() {
        tokio::select! {
            biased;
            settled = async { in_flight.front_mut().expect("guarded").settle().await }, if !in_flight.is_empty() => {
                match settled {
                    Ok(()) => {
                        failures = 0;
                        let done = in_flight.pop_front().expect("guarded");
                        in_flight_bytes -= done.bytes;
                        ctx.metrics.produced(done.outputs.len(), &done.position);
                        let key = (done.position.topic, done.position.partition);
                        ctx.done.lock().unwrap_or_else(|e| e.into_inner()).insert(key, done.position.offset);
                    }
                    Err((topic, error)) => {
                        failures += 1;
                        let backoff = ctx.config.backoff(failures);
                        ctx.metrics.produce_retry(&topic, &error, backoff);
                        tokio::time::sleep(backoff).await;
                        // Later records' outputs may have landed already; sending all of them
                        // again in order makes the last copy of every output land in order.
                        for record in &mut in_flight {
                            record.pending.clear();
                            for output in &record.outputs {
                                record.pending.push_back(enqueue(&ctx, output).await);
                            }
                        }
                    }
                }
            }
            next = input.recv(), if input_open
                && in_flight.len() < ctx.config.max_in_flight
                && (in_flight.is_empty() || in_flight_bytes < ctx.config.max_in_flight_bytes) => {
                match next {
                    Some(consumed) => {
                        let outputs = process(&ctx, &consumed).await;
                        let mut pending = VecDeque::with_capacity(outputs.len());
                        for output in &outputs {
                            pending.push_back(enqueue(&ctx, output).await);
                        }
                        if outputs.is_empty() {
                            ctx.metrics.dropped(&consumed.position());
                        }
                        let bytes = outputs.iter().map(|o| o.record.payload.len()).sum();
                        in_flight_bytes += bytes;
                        in_flight.push_back(InFlight { position: consumed.position(), outputs, bytes, pending });
                    }
                    None => input_open = false,
                }
            }
        }
    }
}

/// The outputs of one record: the stage's, or its dead-letter copy, within a
/// `stage.process` span that continues the record's trace; the outputs carry that span's
/// context on to the next hop.
async fn process<S: Stage>(ctx: &Ctx<S>, consumed: &Consumed) -> Vec<Output> {
    let span = tracing::info_span!("stage.process", stage = %ctx.config.name);
    // Fails only when no OpenTelemetry layer is installed; the span is then not exported.
    let _ = span.set_parent(trace::parent_from_headers(&consumed.record));
    let mut outputs = attempt(ctx, consumed).instrument(span.clone()).await;
    span.in_scope(|| {
        for output in &mut outputs {
            trace::inject_current(&mut output.record.headers);
        }
    });
    outputs
}

/// Processes one record, retrying while a dependency is unavailable.
async fn attempt<S: Stage>(ctx: &Ctx<S>, consumed: &Consumed) -> Vec<Output> {
    let mut failures = 0;
    loop {
        let started = Instant::now();
        let result = ctx.stage.process(consumed).await;
        ctx.metrics.process_latency(started.elapsed());
        match result {
            Ok(outputs) => return outputs,
            Err(StageError::Reject(reason)) => {
                ctx.metrics.dead_lettered(&consumed.position(), &reason);
                return vec![dead_letter(&ctx.config.name, consumed, reason)];
            }
            Err(StageError::Unavailable(reason)) => {
                failures += 1;
                let backoff = ctx.config.backoff(failures);
                ctx.metrics
                    .process_retry(&consumed.position(), &reason, backoff);
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

/// Queues one output, retrying until the producer accepts it: a record is never skipped.
async fn enqueue<S>(ctx: &Ctx<S>, output: &Output) -> Delivery {
    let mut failures = 0;
    loop {
        match ctx
            .producer
            .enqueue(&output.topic, output.record.clone())
            .await
        {
            Ok(delivery) => return delivery,
            Err(error) => {
                failures += 1;
                let backoff = ctx.config.backoff(failures);
                ctx.metrics.produce_retry(&output.topic, &error, backoff);
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

/// The rejected record as it was read, plus why, by whom and from where.
fn dead_letter(stage: &str, consumed: &Consumed, reason: String) -> Output {
    let mut record = consumed.record.clone();
    let source = format!(
        "{}/{}/{}",
        consumed.topic, consumed.partition, consumed.offset
    );
    record.headers.extend([
        (DEAD_LETTER_REASON.to_owned(), reason.into()),
        (DEAD_LETTER_STAGE.to_owned(), stage.to_owned().into()),
        (DEAD_LETTER_SOURCE.to_owned(), source.into()),
    ]);
    Output {
        topic: inland_core::topics::DEAD_LETTER.to_owned(),
        record,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use futures::FutureExt;

    use super::*;
    use crate::{MemoryBus, MemoryBusConfig, TopicSpec};

    const INPUT: &str = "in";
    const OUTPUT: &str = "out";
    const DEAD: &str = inland_core::topics::DEAD_LETTER;

    /// Upper-cases payloads into OUTPUT, drops payloads starting with "drop", rejects "bad".
    struct Upper {
        delay: Duration,
    }

    #[async_trait::async_trait]
    impl Stage for Upper {
        async fn process(&self, input: &Consumed) -> Result<Vec<Output>, StageError> {
            tokio::time::sleep(self.delay).await;
            let payload = &input.record.payload;
            if payload.starts_with(b"drop") {
                return Ok(vec![]);
            }
            if payload.starts_with(b"bad") {
                return Err(StageError::Reject("payload is bad".into()));
            }
            let mut record = input.record.clone();
            record.payload = Bytes::from(payload.to_ascii_uppercase());
            Ok(vec![Output {
                topic: OUTPUT.into(),
                record,
            }])
        }
    }

    fn bus() -> MemoryBus {
        let bus = MemoryBus::new(MemoryBusConfig {
            max_records: 100_000,
            max_bytes: 64 << 20,
        });
        let spec = |name: &str| TopicSpec {
            name: name.into(),
            partitions: 3,
            retention_ms: 3_600_000,
            compacted: false,
        };
        bus.ensure_topics(&[spec(INPUT), spec(OUTPUT), spec(DEAD)])
            .unwrap();
        bus
    }

    fn config() -> StageConfig {
        StageConfig {
            commit_interval: Duration::from_millis(10),
            retry_min: Duration::from_millis(1),
            retry_max: Duration::from_millis(20),
            max_in_flight: 8,
            ..StageConfig::new("test")
        }
    }

    /// Produces `n` inputs "rec-i" over 7 keys; returns them in order.
    async fn produce_inputs(bus: &MemoryBus, n: usize) -> Vec<String> {
        let mut sent = Vec::new();
        for i in 0..n {
            let payload = format!("rec-{i}");
            let record = Record {
                key: Bytes::from(format!("key-{}", i % 7)),
                payload: Bytes::from(payload.clone()),
                ..Record::default()
            };
            bus.send(INPUT, record).await.unwrap();
            sent.push(payload);
        }
        sent
    }

    /// Everything on `topic`, read by a fresh group.
    async fn read_all(bus: &MemoryBus, topic: &str) -> Vec<Consumed> {
        let reader = bus
            .consumer(
                &format!("reader-{}", READERS.fetch_add(1, Ordering::Relaxed)),
                &[topic],
            )
            .unwrap();
        let mut all = Vec::new();
        while let Ok(next) = tokio::time::timeout(Duration::from_millis(20), reader.recv()).await {
            all.push(next.unwrap());
        }
        all
    }
    static READERS: AtomicUsize = AtomicUsize::new(0);

    fn payloads(records: &[Consumed]) -> Vec<String> {
        records
            .iter()
            .map(|c| String::from_utf8(c.record.payload.to_vec()).unwrap())
            .collect()
    }

    async fn wait_for_outputs(bus: &MemoryBus, topic: &str, at_least: usize) {
        let reader = bus
            .consumer(
                &format!("reader-{}", READERS.fetch_add(1, Ordering::Relaxed)),
                &[topic],
            )
            .unwrap();
        for _ in 0..at_least {
            tokio::time::timeout(Duration::from_secs(20), reader.recv())
                .await
                .expect("outputs did not arrive in time")
                .unwrap();
        }
    }

    async fn committed_all(bus: &MemoryBus, group: &str, topic: &str) -> bool {
        let ends = read_all(bus, topic)
            .await
            .iter()
            .fold(BTreeMap::new(), |mut m, c| {
                m.insert(c.partition, c.offset + 1);
                m
            });
        ends.iter()
            .all(|(p, end)| bus.committed(group, topic, *p) == Some(*end))
    }

    fn spawn_stage(
        bus: &MemoryBus,
        stage: impl Stage,
        config: StageConfig,
    ) -> (
        CancellationToken,
        tokio::task::JoinHandle<Result<(), Error>>,
    ) {
        let consumer = bus.consumer("stage", &[INPUT]).unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_stage(
            stage,
            consumer,
            Arc::new(bus.clone()),
            config,
            shutdown.clone(),
        ));
        (shutdown, task)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_byte_budget_below_one_record_still_moves_one_at_a_time() {
        let bus = bus();
        let inputs = produce_inputs(&bus, 50).await;
        let config = StageConfig {
            max_in_flight_bytes: 0,
            ..config()
        };
        let (shutdown, task) = spawn_stage(
            &bus,
            Upper {
                delay: Duration::ZERO,
            },
            config,
        );
        wait_for_outputs(&bus, OUTPUT, inputs.len()).await;
        shutdown.cancel();
        task.await.unwrap().unwrap();
        assert!(committed_all(&bus, "stage", INPUT).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn maps_drops_and_dead_letters_in_order_then_stops_gracefully() {
        let bus = bus();
        let mut inputs = produce_inputs(&bus, 300).await;
        for extra in ["drop-1", "bad-1", "drop-2"] {
            bus.send(
                INPUT,
                Record {
                    key: Bytes::from("key-0"),
                    payload: Bytes::from(extra),
                    ..Record::default()
                },
            )
            .await
            .unwrap();
            inputs.push(extra.to_owned());
        }
        let (shutdown, task) = spawn_stage(
            &bus,
            Upper {
                delay: Duration::ZERO,
            },
            config(),
        );
        wait_for_outputs(&bus, OUTPUT, 300).await;
        wait_for_outputs(&bus, DEAD, 1).await;
        shutdown.cancel();
        task.await.unwrap().unwrap();

        let out = read_all(&bus, OUTPUT).await;
        let expected: BTreeSet<String> = (0..300).map(|i| format!("REC-{i}")).collect();
        assert_eq!(out.len(), 300, "no duplicates without a crash");
        assert_eq!(
            payloads(&out).into_iter().collect::<BTreeSet<_>>(),
            expected
        );
        // Per key, outputs keep the input order.
        let mut last_per_key: BTreeMap<Bytes, usize> = BTreeMap::new();
        for c in &out {
            let n: usize = std::str::from_utf8(&c.record.payload[4..])
                .unwrap()
                .parse()
                .unwrap();
            if let Some(previous) = last_per_key.insert(c.record.key.clone(), n) {
                assert!(previous < n, "key {:?}: {previous} then {n}", c.record.key);
            }
        }

        let dead = read_all(&bus, DEAD).await;
        assert_eq!(dead.len(), 1);
        let rejected = &dead[0].record;
        assert_eq!(
            rejected.payload,
            Bytes::from("bad-1"),
            "dead letters carry the input as read"
        );
        assert_eq!(
            rejected.header(DEAD_LETTER_REASON),
            Some(&Bytes::from("payload is bad"))
        );
        assert_eq!(
            rejected.header(DEAD_LETTER_STAGE),
            Some(&Bytes::from("test"))
        );
        let source =
            String::from_utf8(rejected.header(DEAD_LETTER_SOURCE).unwrap().to_vec()).unwrap();
        assert!(source.starts_with("in/"), "{source}");

        // A graceful stop commits everything it consumed, dropped and dead-lettered included.
        assert!(committed_all(&bus, "stage", INPUT).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_killed_stage_loses_nothing_and_commits_only_what_is_durable() {
        let bus = bus();
        let inputs = produce_inputs(&bus, 600).await;
        let (_, task) = spawn_stage(
            &bus,
            Upper {
                delay: Duration::from_millis(5),
            },
            config(),
        );
        wait_for_outputs(&bus, OUTPUT, 150).await;
        task.abort(); // a crash: no draining, no final commit
        assert!(task.await.unwrap_err().is_cancelled());

        // Whatever was committed before the crash has its output.
        let out = payloads(&read_all(&bus, OUTPUT).await)
            .into_iter()
            .collect::<BTreeSet<_>>();
        assert!(
            out.len() < 600,
            "the crash must happen mid-stream, {} outputs",
            out.len()
        );
        let input_records = read_all(&bus, INPUT).await;
        let mut committed_some = false;
        for c in &input_records {
            if bus
                .committed("stage", INPUT, c.partition)
                .is_some_and(|next| c.offset < next)
            {
                committed_some |= true;
                let payload = String::from_utf8(c.record.payload.to_ascii_uppercase()).unwrap();
                assert!(
                    out.contains(&payload),
                    "{payload} committed but not durable"
                );
            }
        }
        assert!(
            committed_some,
            "the stage committed nothing before the crash"
        );

        // The restarted stage picks up from the commits: every input ends up in the output.
        let (shutdown, task) = spawn_stage(
            &bus,
            Upper {
                delay: Duration::ZERO,
            },
            config(),
        );
        let expected: BTreeSet<String> = inputs.iter().map(|p| p.to_ascii_uppercase()).collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out: BTreeSet<String> = payloads(&read_all(&bus, OUTPUT).await)
                .into_iter()
                .collect();
            if out == expected {
                break;
            }
            assert!(out.is_subset(&expected));
            assert!(
                Instant::now() < deadline,
                "missing {:?}",
                expected.difference(&out).take(5).collect::<Vec<_>>()
            );
        }
        shutdown.cancel();
        task.await.unwrap().unwrap();
        assert!(committed_all(&bus, "stage", INPUT).await);
    }

    /// Fails the first `failures` deliveries (after queueing them, like a broker that
    /// never acknowledges), then behaves like the bus underneath.
    struct Flaky {
        bus: MemoryBus,
        failures: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Producer for Flaky {
        async fn enqueue(&self, topic: &str, record: Record) -> Result<Delivery, Error> {
            let failing = self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                let topic = topic.to_owned();
                return Ok(async move {
                    Err(Error::Delivery {
                        topic,
                        reason: "broker down".into(),
                    })
                }
                .boxed());
            }
            self.bus.enqueue(topic, record).await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_deliveries_are_retried_in_order_and_never_committed_before() {
        let bus = bus();
        produce_inputs(&bus, 50).await;
        let consumer = bus.consumer("stage", &[INPUT]).unwrap();
        let producer = Arc::new(Flaky {
            bus: bus.clone(),
            failures: AtomicUsize::new(40),
        });
        let shutdown = CancellationToken::new();
        let config = StageConfig {
            retry_min: Duration::from_millis(30),
            retry_max: Duration::from_millis(30),
            ..config()
        };
        let task = tokio::spawn(run_stage(
            Upper {
                delay: Duration::ZERO,
            },
            consumer,
            producer.clone(),
            config,
            shutdown.clone(),
        ));

        // While deliveries fail nothing is committed past a record whose output is missing.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let out = payloads(&read_all(&bus, OUTPUT).await)
            .into_iter()
            .collect::<BTreeSet<_>>();
        for c in read_all(&bus, INPUT).await {
            if bus
                .committed("stage", INPUT, c.partition)
                .is_some_and(|next| c.offset < next)
            {
                let payload = String::from_utf8(c.record.payload.to_ascii_uppercase()).unwrap();
                assert!(
                    out.contains(&payload),
                    "{payload} committed but not durable"
                );
            }
        }

        let deadline = Instant::now() + Duration::from_secs(20);
        while !committed_all(&bus, "stage", INPUT).await {
            assert!(
                Instant::now() < deadline,
                "the stage did not recover from failed deliveries"
            );
        }
        assert_eq!(producer.failures.load(Ordering::SeqCst), 0);
        shutdown.cancel();
        task.await.unwrap().unwrap();

        // Every input made it, and the last copy of each key's outputs is in input order.
        let out = read_all(&bus, OUTPUT).await;
        let expected: BTreeSet<String> = (0..50).map(|i| format!("REC-{i}")).collect();
        assert_eq!(
            payloads(&out).into_iter().collect::<BTreeSet<_>>(),
            expected
        );
        let mut last_copy: BTreeMap<String, usize> = BTreeMap::new();
        for (i, payload) in payloads(&out).into_iter().enumerate() {
            last_copy.insert(payload, i);
        }
        let mut per_key: BTreeMap<Bytes, Vec<(usize, usize)>> = BTreeMap::new();
        for c in &out {
            let payload = String::from_utf8(c.record.payload.to_vec()).unwrap();
            let n: usize = payload[4..].parse().unwrap();
            per_key
                .entry(c.record.key.clone())
                .or_default()
                .push((last_copy[&payload], n));
        }
        for (key, mut copies) in per_key {
            copies.sort();
            copies.dedup();
            let order: Vec<usize> = copies.iter().map(|(_, n)| *n).collect();
            let mut by_last: Vec<usize> = Vec::new();
            for n in order {
                by_last.retain(|m| *m != n);
                by_last.push(n);
            }
            assert!(
                by_last.windows(2).all(|w| w[0] < w[1]),
                "key {key:?}: {by_last:?}"
            );
        }
    }

    /// Reports the dependency unavailable for the first calls of every record.
    struct Unreliable {
        calls: Mutex<BTreeMap<i64, usize>>,
    }

    #[async_trait::async_trait]
    impl Stage for Unreliable {
        async fn process(&self, input: &Consumed) -> Result<Vec<Output>, StageError> {
            let calls = {
                let mut calls = self.calls.lock().unwrap();
                let n = calls
                    .entry(input.offset * 10 + i64::from(input.partition))
                    .or_default();
                *n += 1;
                *n
            };
            if calls < 3 {
                return Err(StageError::Unavailable("key service down".into()));
            }
            Ok(vec![Output {
                topic: OUTPUT.into(),
                record: input.record.clone(),
            }])
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unavailable_dependency_is_retried_not_dead_lettered() {
        let bus = bus();
        produce_inputs(&bus, 20).await;
        let stage = Unreliable {
            calls: Mutex::new(BTreeMap::new()),
        };
        let (shutdown, task) = spawn_stage(&bus, stage, config());
        wait_for_outputs(&bus, OUTPUT, 20).await;
        shutdown.cancel();
        task.await.unwrap().unwrap();
        assert_eq!(read_all(&bus, OUTPUT).await.len(), 20);
        assert!(read_all(&bus, DEAD).await.is_empty());
        assert!(committed_all(&bus, "stage", INPUT).await);
    }

    /// Never finishes processing: shutdown must give up after the drain timeout.
    struct Stuck;

    #[async_trait::async_trait]
    impl Stage for Stuck {
        async fn process(&self, _: &Consumed) -> Result<Vec<Output>, StageError> {
            futures::future::pending().await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_gives_up_on_stuck_records_without_committing_them() {
        let bus = bus();
        produce_inputs(&bus, 5).await;
        let config = StageConfig {
            drain_timeout: Duration::from_millis(50),
            ..config()
        };
        let (shutdown, task) = spawn_stage(&bus, Stuck, config);
        tokio::time::sleep(Duration::from_millis(50)).await;
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        for p in 0..3 {
            assert_eq!(bus.committed("stage", INPUT, p), Some(0));
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = StageConfig {
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            ..StageConfig::new("t")
        };
        let backoffs: Vec<u128> = (1..=6).map(|a| config.backoff(a).as_millis()).collect();
        assert_eq!(backoffs, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(config.backoff(u32::MAX), Duration::from_secs(1));
    }
}
