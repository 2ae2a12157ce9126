//! Every metric of the stage runtime with its log line. Logs carry topics, partitions,
//! offsets and reasons, never keys or payloads (they hold VINs, positions, pixels).

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use crate::{Error, Position};

/// Handles of one running stage's metrics, registered once, labelled `stage`.
pub(crate) struct StageMetrics {
    stage: Arc<str>,
    consumed: Counter,
    produced: Counter,
    dropped: Counter,
    dead_lettered: Counter,
    process_seconds: Histogram,
    process_retries: Counter,
    produce_retries: Counter,
    consume_errors: Counter,
    commits: Counter,
    commit_failures: Counter,
    commit_lag: Gauge,
    running: Gauge,
}

impl StageMetrics {
    pub(crate) fn new(stage: &str) -> Self {
        let stage: Arc<str> = stage.into();
        Self {
            consumed: counter!("inland_stage_records_consumed_total", "stage" => stage.clone()),
            produced: counter!("inland_stage_records_produced_total", "stage" => stage.clone()),
            dropped: counter!("inland_stage_records_dropped_total", "stage" => stage.clone()),
            dead_lettered: counter!("inland_stage_records_dead_lettered_total", "stage" => stage.clone()),
            process_seconds: histogram!("inland_stage_process_seconds", "stage" => stage.clone()),
            process_retries: counter!("inland_stage_process_retries_total", "stage" => stage.clone()),
            produce_retries: counter!("inland_stage_produce_retries_total", "stage" => stage.clone()),
            consume_errors: counter!("inland_stage_consume_errors_total", "stage" => stage.clone()),
            commits: counter!("inland_stage_commits_total", "stage" => stage.clone()),
            commit_failures: counter!("inland_stage_commit_failures_total", "stage" => stage.clone()),
            commit_lag: gauge!("inland_stage_commit_lag_records", "stage" => stage.clone()),
            running: gauge!("inland_stage_running", "stage" => stage.clone()),
            stage,
        }
    }

    pub(crate) fn started(&self) {
        self.running.set(1.0);
        tracing::info!(stage = %self.stage, "stage started");
    }

    pub(crate) fn stopped(&self, drained: bool) {
        self.running.set(0.0);
        tracing::info!(stage = %self.stage, drained, "stage stopped");
    }

    pub(crate) fn drain_timed_out(&self, timeout: Duration) {
        tracing::warn!(
            stage = %self.stage, ?timeout,
            "stage stopped before its in-flight records were durable; they will be consumed again"
        );
    }

    pub(crate) fn worker_panicked(&self) {
        tracing::error!(
            stage = %self.stage,
            "a stage worker panicked; its uncommitted records will be consumed again after a restart"
        );
    }

    pub(crate) fn consumed(&self, at: &Position) {
        self.consumed.increment(1);
        tracing::trace!(stage = %self.stage, topic = %at.topic, partition = at.partition, offset = at.offset, "record consumed");
    }

    pub(crate) fn process_latency(&self, elapsed: Duration) {
        self.process_seconds.record(elapsed.as_secs_f64());
    }

    pub(crate) fn produced(&self, outputs: usize, at: &Position) {
        self.produced.increment(outputs as u64);
        tracing::trace!(stage = %self.stage, topic = %at.topic, partition = at.partition, offset = at.offset, outputs, "outputs durable");
    }

    pub(crate) fn dropped(&self, at: &Position) {
        self.dropped.increment(1);
        tracing::debug!(stage = %self.stage, topic = %at.topic, partition = at.partition, offset = at.offset, "record dropped: no outputs");
    }

    pub(crate) fn dead_lettered(&self, at: &Position, reason: &str) {
        self.dead_lettered.increment(1);
        tracing::warn!(
            stage = %self.stage, topic = %at.topic, partition = at.partition, offset = at.offset, reason,
            "record rejected, sent to the dead-letter topic"
        );
    }

    pub(crate) fn process_retry(&self, at: &Position, reason: &str, backoff: Duration) {
        self.process_retries.increment(1);
        tracing::warn!(
            stage = %self.stage, topic = %at.topic, partition = at.partition, offset = at.offset, reason, ?backoff,
            "a dependency is unavailable; processing the record again after a backoff"
        );
    }

    pub(crate) fn produce_retry(&self, topic: &str, error: &Error, backoff: Duration) {
        self.produce_retries.increment(1);
        tracing::warn!(
            stage = %self.stage, topic, %error, ?backoff,
            "an output is not durable; sending again after a backoff, offsets stay uncommitted"
        );
    }

    pub(crate) fn consume_failed(&self, error: &Error, backoff: Duration) {
        self.consume_errors.increment(1);
        tracing::warn!(stage = %self.stage, %error, ?backoff, "consuming failed; trying again after a backoff");
    }

    pub(crate) fn committed(&self, positions: &[Position]) {
        self.commits.increment(1);
        tracing::debug!(stage = %self.stage, partitions = positions.len(), "offsets committed");
    }

    pub(crate) fn commit_failed(&self, error: &Error) {
        self.commit_failures.increment(1);
        tracing::warn!(stage = %self.stage, %error, "committing offsets failed; will try again at the next commit");
    }

    /// Records consumed but not yet committed, over all partitions of this member.
    pub(crate) fn commit_lag(&self, records: i64) {
        self.commit_lag.set(records as f64);
        tracing::trace!(stage = %self.stage, records, "commit lag");
    }
}

/// librdkafka's consumer lag of one partition (its high watermark minus the group's
/// committed offset), reported with the client statistics. No log line: it is a level,
/// read by dashboards and the consumer-lag alert.
pub(crate) fn consumer_lag(group: &str, topic: &str, partition: i32, records: i64) {
    metrics::gauge!(
        "inland_stage_consumer_lag_records",
        "group" => group.to_owned(),
        "topic" => topic.to_owned(),
        "partition" => partition.to_string()
    )
    .set(records as f64);
}

pub(crate) fn bus_backpressure(topic: &str, partition: i32) {
    counter!("inland_bus_backpressure_waits_total", "topic" => topic.to_owned()).increment(1);
    tracing::debug!(
        topic,
        partition,
        "in-process bus partition full; producer waits for consumers to commit"
    );
}

pub(crate) fn bus_evicted(topic: &str, records: usize) {
    counter!("inland_bus_records_evicted_total", "topic" => topic.to_owned())
        .increment(records as u64);
    tracing::trace!(
        topic,
        records,
        "in-process bus dropped records every group has committed"
    );
}

pub(crate) fn topic_created(topic: &str, partitions: i32) {
    counter!("inland_kafka_topics_created_total").increment(1);
    tracing::info!(topic, partitions, "Kafka topic created");
}

pub(crate) fn topic_reconfigured(topic: &str, key: &str, from: &str, to: &str) {
    counter!("inland_kafka_topics_reconfigured_total").increment(1);
    tracing::warn!(
        topic,
        key,
        from,
        to,
        "Kafka topic config differed from its spec; altered"
    );
}

pub(crate) fn producer_queue_full(topic: &str) {
    counter!("inland_kafka_producer_queue_full_total", "topic" => topic.to_owned()).increment(1);
    tracing::debug!(
        topic,
        "librdkafka's producer queue is full; waiting for it to drain"
    );
}
