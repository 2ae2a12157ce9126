//! The archiver service: its inputs, one store, one memory budget.

use std::sync::Arc;

use inland_stage::{Consumer, KafkaConfig, MemoryBus, Producer};
use inland_store::ObjectStore;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::batch::{Budget, Pending};
use crate::flush::Ctx;
use crate::kinds::{Archive, ConsentHistory};
use crate::lane::Lane;
use crate::requests::{self, Erasures};
use crate::{ArchiverConfig, Error, files};

/// The archiver, ready to run.
pub struct Archiver {
    ctx: Arc<Ctx>,
}

impl Archiver {
    /// Validates `config`. Dead letters go to `producer`; objects to `store`.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        producer: Arc<dyn Producer>,
        config: ArchiverConfig,
    ) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self {
            ctx: Arc::new(Ctx {
                store,
                producer,
                props: files::writer_properties(&config)?,
                puts: Semaphore::new(config.max_concurrent_puts),
                budget: Budget::default(),
                pending: Pending::default(),
                erasures: Erasures::default(),
                config,
            }),
        })
    }

    /// Runs each of `inputs` until `shutdown`; then writes and commits what is buffered,
    /// for at most `drain_timeout`. Returns an error only for what retrying cannot heal
    /// (the store refusing a manifest key, a consumer that cannot work, a bug); the other
    /// inputs are then drained and stopped too.
    pub async fn run(self, inputs: Inputs, shutdown: CancellationToken) -> Result<(), Error> {
        let stop = shutdown.child_token();
        let config = &self.ctx.config;
        // The first input to fail stops the others.
        let stopping = |result: Result<(), Error>| {
            if result.is_err() {
                stop.cancel();
            }
            result
        };
        let archive = async {
            let lane = Lane::<Archive>::new(self.ctx.clone(), inputs.anonymized, &config.topic);
            stopping(lane.run(&config.group, stop.clone()).await)
        };
        let history = async {
            let Some(consent) = inputs.consent else {
                return Ok(());
            };
            let lane =
                Lane::<ConsentHistory>::new(self.ctx.clone(), consent, &config.consent_topic);
            stopping(lane.run(&config.consent_group, stop.clone()).await)
        };
        let erasure = async {
            let Some(erasure) = inputs.erasure else {
                return Ok(());
            };
            let (topic, group) = (&config.erasure_topic, &config.erasure_group);
            stopping(requests::run(self.ctx.clone(), erasure, topic, group, stop.clone()).await)
        };
        // Before any lane reads: a restart keeps late records of past requests out too.
        if !requests::restore(&self.ctx, &stop).await {
            return Ok(());
        }
        let (archived, kept, erased) = tokio::join!(archive, history, erasure);
        archived.and(kept).and(erased)
    }
}

/// What the archiver reads, each a member of its own consumer group.
pub struct Inputs {
    /// Anonymized records: `config.topic` in `config.group`.
    pub anonymized: Arc<dyn Consumer>,
    /// Consent events to keep as they were: `config.consent_topic` in
    /// `config.consent_group`.
    pub consent: Option<Arc<dyn Consumer>>,
    /// Erasure requests to carry out: `config.erasure_topic` in `config.erasure_group`.
    pub erasure: Option<Arc<dyn Consumer>>,
}

impl Inputs {
    /// Every input, from `bus` (`inland run`).
    pub fn on_memory_bus(bus: &MemoryBus, config: &ArchiverConfig) -> Result<Self, Error> {
        Self::each(config, |group, topic| {
            Ok(Arc::new(bus.consumer(group, &[topic])?))
        })
    }

    /// Every input, from Kafka.
    pub fn on_kafka(kafka: &KafkaConfig, config: &ArchiverConfig) -> Result<Self, Error> {
        Self::each(config, |group, topic| {
            Ok(Arc::new(kafka.consumer(group, &[topic])?))
        })
    }

    fn each(
        config: &ArchiverConfig,
        consumer: impl Fn(&str, &str) -> Result<Arc<dyn Consumer>, inland_stage::Error>,
    ) -> Result<Self, Error> {
        let open = |group: &str, topic: &str| {
            consumer(group, topic).map_err(|source| Error::Consume {
                topic: topic.to_owned(),
                source,
            })
        };
        Ok(Self {
            anonymized: open(&config.group, &config.topic)?,
            consent: Some(open(&config.consent_group, &config.consent_topic)?),
            erasure: Some(open(&config.erasure_group, &config.erasure_topic)?),
        })
    }
}

/// The distributed archiver: every input from Kafka in its consumer group, dead letters
/// to Kafka, objects to `store`.
pub async fn run_on_kafka(
    kafka: &KafkaConfig,
    store: Arc<dyn ObjectStore>,
    config: ArchiverConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let inputs = Inputs::on_kafka(kafka, &config)?;
    let producer = kafka.producer().map_err(|source| Error::Consume {
        topic: inland_core::topics::DEAD_LETTER.into(),
        source,
    })?;
    Archiver::new(store, Arc::new(producer), config)?
        .run(inputs, shutdown)
        .await
}
