//! Keeps a [`ConsentView`] up to date: a consumer group of its own reads the consent topic
//! from its oldest record, for as long as the view lives. Start-up waits until the view
//! has read every record that existed when it started.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use inland_core::ErrorCode;
use inland_stage::{Consumer, KafkaConfig, MemoryBus, Position};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::event::new_id;
use crate::{ConsentView, Error, metrics};

/// How long a Kafka metadata request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the follower commits what it has read: only so that the in-process bus may
/// compact behind it. It never resumes from a commit (every view has a group of its own).
const COMMIT_EVERY: Duration = Duration::from_secs(1);
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How a view is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewOptions {
    /// Keep every event read, for the History RPC. The gateway does; a view that only
    /// answers checks does not (it costs the events' bytes in memory).
    pub keep_history: bool,
    /// How long start-up may take to read the topic up to its end.
    pub catch_up_timeout: Duration,
}

impl Default for ViewOptions {
    fn default() -> Self {
        Self {
            keep_history: false,
            catch_up_timeout: Duration::from_secs(60),
        }
    }
}

/// Where a topic ends now: the view has caught up once it has read that far.
#[async_trait::async_trait]
pub trait TopicEnds: Send + Sync {
    /// The sum over the topic's partitions of the offset its next record will get.
    async fn end(&self, topic: &str) -> Result<i64, Error>;
}

#[async_trait::async_trait]
impl TopicEnds for MemoryBus {
    async fn end(&self, topic: &str) -> Result<i64, Error> {
        self.records_appended(topic)
            .ok_or_else(|| inland_stage::Error::UnknownTopic(topic.to_owned()).into())
    }
}

/// A topic's end on Kafka: the sum of its partitions' high watermarks. Compaction never
/// removes a partition's last record, so reading up to the watermark is reading it all.
pub struct KafkaEnds {
    client: std::sync::Arc<BaseConsumer>,
}

impl KafkaEnds {
    /// A metadata client with the brokers and connection properties of `kafka`.
    pub fn new(kafka: &KafkaConfig) -> Result<Self, Error> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &kafka.bootstrap_servers);
        // As `KafkaConfig` reads them: an underscore stands for a dot (environment names).
        for (key, value) in &kafka.properties {
            config.set(key.replace('_', "."), value);
        }
        let client = config.create().map_err(|e| {
            Error::Transport(inland_stage::Error::Kafka {
                op: "create the metadata client",
                reason: e.to_string(),
            })
        })?;
        Ok(Self {
            client: std::sync::Arc::new(client),
        })
    }
}

#[async_trait::async_trait]
impl TopicEnds for KafkaEnds {
    async fn end(&self, topic: &str) -> Result<i64, Error> {
        let (client, name) = (self.client.clone(), topic.to_owned());
        let kafka = |op: &'static str| {
            move |e: rdkafka::error::KafkaError| {
                Error::Transport(inland_stage::Error::Kafka {
                    op,
                    reason: e.to_string(),
                })
            }
        };
        // librdkafka's metadata calls block: off the async workers.
        tokio::task::spawn_blocking(move || {
            let metadata = client
                .fetch_metadata(Some(&name), METADATA_TIMEOUT)
                .map_err(kafka("fetch topic metadata"))?;
            let partitions: Vec<i32> = match metadata.topics().first() {
                Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                    t.partitions().iter().map(|p| p.id()).collect()
                }
                _ => return Err(inland_stage::Error::UnknownTopic(name).into()),
            };
            let mut end = 0;
            for p in partitions {
                let (_, high) = client
                    .fetch_watermarks(&name, p, METADATA_TIMEOUT)
                    .map_err(kafka("fetch watermarks"))?;
                end += high;
            }
            Ok(end)
        })
        .await
        .map_err(|e| {
            Error::Transport(inland_stage::Error::Kafka {
                op: "fetch watermarks",
                reason: e.to_string(),
            })
        })?
    }
}

impl ConsentView {
    /// A view of `topic` on the in-process bus, caught up when this returns.
    pub async fn on_memory_bus(
        bus: &MemoryBus,
        topic: &str,
        options: ViewOptions,
    ) -> Result<Self, Error> {
        let consumer = bus.consumer(&view_group(), &[topic])?;
        Self::follow(topic, consumer, bus, options).await
    }

    /// A view of `topic` on Kafka, caught up when this returns.
    pub async fn on_kafka(
        kafka: &KafkaConfig,
        topic: &str,
        options: ViewOptions,
    ) -> Result<Self, Error> {
        let ends = KafkaEnds::new(kafka)?;
        let consumer = kafka.consumer(&view_group(), &[topic])?;
        Self::follow(topic, consumer, &ends, options).await
    }

    /// A view fed by `consumer`, which must be the only member of a new group (so it reads
    /// the topic from its oldest record). Returns once it has read up to where `ends` says
    /// the topic ended when called, or fails after `options.catch_up_timeout`.
    pub async fn follow(
        topic: &str,
        consumer: impl Consumer,
        ends: &dyn TopicEnds,
        options: ViewOptions,
    ) -> Result<Self, Error> {
        let started = Instant::now();
        let target = end_when_known(ends, topic, options.catch_up_timeout).await?;
        let stop = CancellationToken::new();
        let view =
            Self::empty(topic, options.keep_history).with_follower(stop.clone().drop_guard());
        let (progress, mut read) = watch::channel(0i64);
        // The task holds the view's state, not a handle, so dropping the last handle stops it.
        let follower = Follower {
            view: view.detached(),
            progress,
        };
        tokio::spawn(follower.run(consumer, stop));
        let caught_up = read.wait_for(|&n| n >= target);
        match tokio::time::timeout(options.catch_up_timeout, caught_up).await {
            Ok(Ok(_)) => {
                metrics::caught_up(topic, view.subjects(), started.elapsed());
                Ok(view)
            }
            _ => Err(Error::CatchUp {
                topic: topic.to_owned(),
                timeout: options.catch_up_timeout,
            }),
        }
    }
}

/// The topic's end, asking again while the answer is a transient failure (a topic just
/// created has no leader yet for a moment; a broker may be restarting), for up to `timeout`.
async fn end_when_known(
    ends: &dyn TopicEnds,
    topic: &str,
    timeout: Duration,
) -> Result<i64, Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match ends.end(topic).await {
            Ok(end) => return Ok(end),
            Err(e)
                if matches!(e.code(), ErrorCode::Unavailable | ErrorCode::NotFound)
                    && tokio::time::Instant::now() + RETRY_AFTER < deadline =>
            {
                metrics::end_unknown(&e);
                tokio::time::sleep(RETRY_AFTER).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A group no other view shares, so each reads the whole topic.
fn view_group() -> String {
    new_id("inland-consent-view")
}

struct Follower {
    view: ConsentView,
    /// The sum over partitions of (last offset read + 1): compared with the topic's end.
    progress: watch::Sender<i64>,
}

impl Follower {
    async fn run(self, consumer: impl Consumer, stop: CancellationToken) {
        let mut read: HashMap<i32, i64> = HashMap::new();
        let mut uncommitted: HashMap<i32, Position> = HashMap::new();
        let mut commit = tokio::time::interval(COMMIT_EVERY);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = commit.tick() => {
                    if uncommitted.is_empty() {
                        continue;
                    }
                    let positions: Vec<Position> = uncommitted.drain().map(|(_, p)| p).collect();
                    if let Err(e) = consumer.commit(&positions).await {
                        metrics::commit_failed(&e);
                    }
                }
                got = consumer.recv() => match got {
                    Ok(c) => {
                        // A redelivery after a rebalance repeats what was read: skip it.
                        if read.get(&c.partition).is_some_and(|&last| c.offset <= last) {
                            continue;
                        }
                        read.insert(c.partition, c.offset);
                        let applied = self.view.read(&c.record.key, &c.record.payload);
                        metrics::event_read(applied, self.view.subjects());
                        uncommitted.insert(c.partition, c.position());
                        self.progress.send_replace(read.values().map(|o| o + 1).sum());
                    }
                    Err(e) => {
                        metrics::read_failed(&e);
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(RETRY_AFTER) => {}
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Answers UnknownTopic `failures` times (a topic without a leader yet), then 7.
    struct LateTopic {
        failures: usize,
        asked: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl TopicEnds for LateTopic {
        async fn end(&self, topic: &str) -> Result<i64, Error> {
            if self.asked.fetch_add(1, Ordering::SeqCst) < self.failures {
                return Err(inland_stage::Error::UnknownTopic(topic.into()).into());
            }
            Ok(7)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_topic_without_a_leader_yet_is_asked_again_until_the_timeout() {
        let late = LateTopic {
            failures: 2,
            asked: AtomicUsize::new(0),
        };
        let end = end_when_known(&late, "t", Duration::from_secs(10)).await;
        assert_eq!(end.unwrap(), 7);
        assert_eq!(late.asked.load(Ordering::SeqCst), 3);

        let never = LateTopic {
            failures: usize::MAX,
            asked: AtomicUsize::new(0),
        };
        let err = end_when_known(&never, "t", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
        assert!(never.asked.load(Ordering::SeqCst) >= 4);
    }
}
