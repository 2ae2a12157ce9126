//! Erasure requests. For every withdrawal on `inland.consent.v1` the [`ErasureStage`]
//! writes the vehicle's pseudonyms under every key epoch to `inland.erasure.v1`, for the
//! archiver to erase what is stored under them. The anonymizer writes them because it
//! alone holds the pseudonym keys; the request id is the one the withdrawal recorded (and
//! `inland consent show` lists), so a request can be tracked from the withdrawal on.
//!
//! Run with a consumer group of its own that commits (like every stage): each withdrawal
//! yields its request once, at least once across restarts. A request carries
//! `requested_at`, so one delivered twice, or late, erases nothing recorded after it.

use inland_consent::proto::{ErasureRequest, Pseudonym, consent_event};
use inland_consent::{decode_event, erasure_record};
use inland_core::Vin;
use inland_stage::{Consumed, Output, Stage, StageError};

use crate::{AnonymizerConfig, Error, Pseudonymizer, metrics};

/// Reads consent events, writes an erasure request per withdrawal.
pub struct ErasureStage {
    keys: Pseudonymizer,
    output_topic: String,
}

impl ErasureStage {
    /// Loads the anonymizer's key file; requests go to `output_topic`.
    pub fn start(config: &AnonymizerConfig, output_topic: &str) -> Result<Self, Error> {
        let key_file = config.key_file.as_ref().ok_or_else(|| {
            Error::Config(
                "no key file configured: set anonymizer.key_file to the pseudonym key file \
                 (erasure requests name the pseudonyms it derives)"
                    .into(),
            )
        })?;
        Ok(Self::new(Pseudonymizer::load(key_file)?, output_topic))
    }

    pub fn new(keys: Pseudonymizer, output_topic: &str) -> Self {
        Self {
            keys,
            output_topic: output_topic.to_owned(),
        }
    }
}

#[async_trait::async_trait]
impl Stage for ErasureStage {
    async fn process(&self, input: &Consumed) -> Result<Vec<Output>, StageError> {
        let event = decode_event(&input.record.payload).map_err(|e| {
            metrics::erasure_rejected();
            StageError::Reject(e.to_string())
        })?;
        let Some(consent_event::Change::Withdrawn(withdrawn)) = &event.change else {
            return Ok(Vec::new());
        };
        let subject = event
            .subject
            .as_ref()
            .expect("decode_event checked the subject");
        let vin = Vin::parse(&subject.vin).expect("decode_event checked the VIN");
        let pseudonyms: Vec<Pseudonym> = self
            .keys
            .pseudonyms(&vin)
            .into_iter()
            .map(|(key_epoch, value)| Pseudonym { key_epoch, value })
            .collect();
        metrics::erasure_requested(pseudonyms.len());
        let request = ErasureRequest {
            request_id: withdrawn.erasure_request_id.clone(),
            requested_at: event.occurred_at,
            pseudonyms,
            consent_event_id: event.event_id.clone(),
            categories: withdrawn.categories.clone(),
        };
        Ok(vec![Output {
            topic: self.output_topic.clone(),
            record: erasure_record(&request),
        }])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use inland_consent::proto::{Category, GrantRequest, Notice, Subject, WithdrawRequest};
    use inland_consent::{
        ConsentLedger, ConsentLog, ConsentView, Principal, ViewOptions, decode_erasure,
    };
    use inland_stage::{Consumer, MemoryBus, Producer, Record, TopicSpec};

    use super::*;

    const VIN: &str = "LSVAU2180N2183294";

    fn topic(name: &str, compacted: bool) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            partitions: 1,
            retention_ms: -1,
            compacted,
        }
    }

    #[tokio::test]
    async fn a_withdrawal_yields_the_vehicles_pseudonyms_of_every_epoch() {
        let bus = MemoryBus::default();
        bus.ensure_topics(&[topic("consent", true)]).unwrap();
        let view = ConsentView::on_memory_bus(&bus, "consent", ViewOptions::default())
            .await
            .unwrap();
        let ledger = ConsentLedger::new(
            ConsentLog {
                view,
                producer: Arc::new(bus.clone()),
            },
            &["driving_statistics".to_owned()],
            Duration::from_secs(5),
        )
        .unwrap();
        let subject = Some(Subject {
            vin: VIN.into(),
            driver_profile_id: String::new(),
        });
        let op = Principal::Operator("ops".into());
        ledger
            .grant(
                &op,
                GrantRequest {
                    subject: subject.clone(),
                    categories: vec![Category::Telemetry as i32],
                    purposes: vec!["driving_statistics".into()],
                    notice: Some(Notice {
                        version: "1".into(),
                        sha256: "1".repeat(64),
                    }),
                    channel: 0,
                    actor: "owner".into(),
                },
            )
            .await
            .unwrap();
        let withdrawal = ledger
            .withdraw(
                &op,
                WithdrawRequest {
                    subject,
                    actor: "owner".into(),
                    ..WithdrawRequest::default()
                },
            )
            .await
            .unwrap();

        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("keys.toml");
        crate::keys::generate(&key_file).unwrap();
        crate::keys::rotate(
            &key_file,
            std::time::SystemTime::now() + Duration::from_secs(3600),
        )
        .unwrap();
        let keys = Pseudonymizer::load(&key_file).unwrap();
        let stage = ErasureStage::new(keys.clone(), "erasure");
        let reader = bus.consumer("erasure-test", &["consent"]).unwrap();
        let grant = reader.recv().await.unwrap();
        assert!(
            stage.process(&grant).await.unwrap().is_empty(),
            "grants erase nothing"
        );
        let out = stage.process(&reader.recv().await.unwrap()).await.unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].topic, "erasure");
        let request = decode_erasure(&out[0].record.payload).unwrap();
        let Some(consent_event::Change::Withdrawn(w)) = &withdrawal.change else {
            panic!()
        };
        assert_eq!(request.request_id, w.erasure_request_id);
        assert_eq!(out[0].record.key, request.request_id.as_bytes());
        assert_eq!(request.consent_event_id, withdrawal.event_id);
        assert_eq!(request.requested_at, withdrawal.occurred_at);
        let vin = Vin::parse(VIN).unwrap();
        let expected: Vec<(u32, String)> = keys.pseudonyms(&vin);
        assert_eq!(expected.len(), 2, "two epochs");
        let got: Vec<(u32, String)> = request
            .pseudonyms
            .iter()
            .map(|p| (p.key_epoch, p.value.clone()))
            .collect();
        assert_eq!(got, expected);
        assert!(
            !out[0]
                .record
                .payload
                .windows(VIN.len())
                .any(|w| w == VIN.as_bytes()),
            "an erasure request never carries the VIN"
        );

        // What is not a consent event is dead-lettered with the reason.
        bus.send(
            "consent",
            Record {
                key: VIN.as_bytes().to_vec().into(),
                payload: b"junk".to_vec().into(),
                ..Record::default()
            },
        )
        .await
        .unwrap();
        let junk = reader.recv().await.unwrap();
        assert!(matches!(
            stage.process(&junk).await,
            Err(StageError::Reject(reason)) if reason.contains("not a consent event")
        ));
    }
}
