//! Helpers shared by the benchmarks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;

/// Latencies in microseconds, 1 µs to 60 s, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

pub fn record(h: &mut Histogram<u64>, latency: Duration) {
    h.saturating_record(latency.as_micros() as u64);
}

/// `p50/p99` in milliseconds.
pub fn percentiles_ms(h: &Histogram<u64>) -> (f64, f64) {
    (
        h.value_at_quantile(0.50) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
    )
}

/// Deletes the topics a bench wrote. A run writes up to gigabytes, and a topic's newest
/// segment outlives its retention until it rolls (a week by default): left behind, a
/// day of runs filled the broker's disk.
pub async fn delete_topics(bootstrap: &str, topics: &[&str]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("a Kafka admin client");
    let deleted = admin
        .delete_topics(topics, &AdminOptions::new())
        .await
        .expect("delete the bench's topics");
    for failed in deleted.into_iter().filter_map(Result::err) {
        eprintln!("could not delete bench topic {}: {}", failed.0, failed.1);
    }
}

/// Peak resident memory of a process, from /proc (Linux), in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU time (user + system) a process has used so far, from /proc (Linux), in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The median of rounds (the upper one of an even count); sorts `values`.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The ceiling of a stage benchmark: forwards every record as read to `topic`.
pub struct PassThrough {
    pub topic: String,
}

#[async_trait::async_trait]
impl inland_stage::Stage for PassThrough {
    async fn process(
        &self,
        input: &inland_stage::Consumed,
    ) -> Result<Vec<inland_stage::Output>, inland_stage::StageError> {
        Ok(vec![inland_stage::Output {
            topic: self.topic.clone(),
            record: input.record.clone(),
        }])
    }
}

/// Wraps a stage: counts its outputs into `forwarded` and cancels `done` once `records`
/// inputs were processed, so a benchmark's `run_stage` stops when the input is used up.
pub struct Counted<S> {
    inner: S,
    records: usize,
    processed: AtomicUsize,
    pub forwarded: Arc<AtomicUsize>,
    pub done: tokio_util::sync::CancellationToken,
}

impl<S> Counted<S> {
    pub fn new(inner: S, records: usize) -> Self {
        Self {
            inner,
            records,
            processed: AtomicUsize::new(0),
            forwarded: Arc::new(AtomicUsize::new(0)),
            done: tokio_util::sync::CancellationToken::new(),
        }
    }
}

#[async_trait::async_trait]
impl<S: inland_stage::Stage> inland_stage::Stage for Counted<S> {
    async fn process(
        &self,
        input: &inland_stage::Consumed,
    ) -> Result<Vec<inland_stage::Output>, inland_stage::StageError> {
        let outputs = self.inner.process(input).await?;
        self.forwarded.fetch_add(outputs.len(), Ordering::Relaxed);
        if self.processed.fetch_add(1, Ordering::Relaxed) + 1 == self.records {
            self.done.cancel();
        }
        Ok(outputs)
    }
}

/// Positions per one-second telemetry upload (10 Hz).
pub const POSITIONS: usize = 10;

/// One second of a vehicle at 10 Hz from `(lat, lon)`, about 40 km/h north-east: speed,
/// latitude and longitude per instant, as the stage benchmarks feed their stages.
pub fn drive_samples(
    (lat, lon): (f64, f64),
    now: std::time::SystemTime,
) -> Vec<inland_proto::ingest::v1::Sample> {
    use inland_proto::ingest::v1::{Sample, sample};
    let mut samples = Vec::with_capacity(3 * POSITIONS + 1);
    for i in 0..POSITIONS {
        let time = Some((now - Duration::from_millis(100 * (POSITIONS - i) as u64)).into());
        let step = i as f64 * 1e-5;
        let double = |path: &str, v| Sample {
            path: path.into(),
            time,
            value: Some(sample::Value::DoubleValue(v)),
        };
        samples.push(Sample {
            path: "Vehicle.Speed".into(),
            time,
            value: Some(sample::Value::FloatValue(40.0 + i as f32)),
        });
        samples.push(double(inland_core::vss::LATITUDE, lat + step));
        samples.push(double(inland_core::vss::LONGITUDE, lon + step));
    }
    samples
}
