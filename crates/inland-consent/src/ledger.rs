//! [`ConsentLedger`]: what the gateway's ConsentService does, free of gRPC and TLS. It
//! checks a change, derives the subject's new state from the view, appends the event to
//! the consent topic, and counts it in its own view at once (withdrawals from the moment
//! they are sent, grants once durable), before the follower reads it back.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use inland_proto::consent::v1::{
    Actor, Channel, ConsentEvent, GetRequest, GetResponse, GrantRequest, HistoryRequest,
    HistoryResponse, Reconciled, WithdrawRequest, consent_event,
};
use inland_stage::Producer;
use tokio_util::sync::CancellationToken;

use crate::event::{event_record, new_id};
use crate::request::{self, Change, channel_label, check_purpose_name};
use crate::state::apply;
use crate::{ConsentView, Error, Principal, SubjectId, metrics};

/// How long to wait before restating a subject again after a failure.
const RESTATE_RETRY: Duration = Duration::from_secs(1);
/// Locks changes are serialized on, by subject: changes of one subject one at a time,
/// of different subjects (mostly) in parallel.
const STRIPES: usize = 64;

/// The consent topic on one transport: the view that follows it and a producer that
/// appends to it (the topic is the view's).
#[derive(Clone)]
pub struct ConsentLog {
    pub view: ConsentView,
    pub producer: Arc<dyn Producer>,
}

/// Records consent changes and answers reads. A ledger changes one subject one change at
/// a time, so each derives from the state the previous one left.
#[derive(Clone)]
pub struct ConsentLedger {
    inner: Arc<Inner>,
}

struct Inner {
    log: ConsentLog,
    purposes: Vec<String>,
    delivery_timeout: Duration,
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl ConsentLedger {
    /// `purposes` are the names consent may be granted for; `delivery_timeout` bounds the
    /// wait for the broker's confirmation.
    pub fn new(
        log: ConsentLog,
        purposes: &[String],
        delivery_timeout: Duration,
    ) -> Result<Self, Error> {
        if purposes.is_empty() {
            return Err(Error::Invalid(
                "no consent purposes configured: name at least one (e.g. driving_statistics)"
                    .into(),
            ));
        }
        for p in purposes {
            check_purpose_name(p)?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                log,
                purposes: purposes.to_vec(),
                delivery_timeout,
                stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            }),
        })
    }

    pub fn view(&self) -> &ConsentView {
        &self.inner.log.view
    }

    /// Records a grant once durable; returns the event, with the state after it.
    pub async fn grant(
        &self,
        who: &Principal,
        request: GrantRequest,
    ) -> Result<ConsentEvent, Error> {
        let change = request::grant(request, who, &self.inner.purposes)?;
        self.record(change, who.label(), "grant").await
    }

    /// Records a withdrawal, which opens an erasure request (its id is in the event).
    pub async fn withdraw(
        &self,
        who: &Principal,
        request: WithdrawRequest,
    ) -> Result<ConsentEvent, Error> {
        let change = request::withdraw(request, who, &self.inner.purposes, new_id("er"))?;
        self.record(change, who.label(), "withdraw").await
    }

    pub fn get(&self, who: &Principal, request: GetRequest) -> Result<GetResponse, Error> {
        let subject = SubjectId::parse(request.subject.as_ref())?;
        who.may_act_for(&subject)?;
        let view = self.view();
        let mut states = vec![view.state(&subject)];
        if request.include_driver_profiles && subject.driver_profile.is_none() {
            states.extend(view.driver_profiles(&subject.vin));
        }
        Ok(GetResponse { states })
    }

    pub fn history(
        &self,
        who: &Principal,
        request: HistoryRequest,
    ) -> Result<HistoryResponse, Error> {
        let subject = SubjectId::parse(request.subject.as_ref())?;
        who.may_act_for(&subject)?;
        Ok(HistoryResponse {
            events: self
                .view()
                .history(&subject, request.include_driver_profiles),
        })
    }

    /// Until `shutdown`: when the view reads an event written from a stale state (another
    /// gateway changed the subject at the same moment), appends an event restating the
    /// subject's state, so that the latest event (what compaction keeps) is right.
    /// Run it once per ledger; a second run returns at once.
    pub async fn restate_conflicts(self, shutdown: CancellationToken) {
        let Some(mut conflicts) = self.view().take_conflicts() else {
            return;
        };
        loop {
            let subject = tokio::select! {
                () = shutdown.cancelled() => return,
                next = conflicts.recv() => match next {
                    Some(subject) => subject,
                    None => return,
                },
            };
            loop {
                let change = Change {
                    subject: subject.clone(),
                    channel: Channel::Unspecified,
                    actor: "consent reconciliation".into(),
                    change: consent_event::Change::Reconciled(Reconciled {}),
                };
                match self.record(change, "gateway".into(), "reconcile").await {
                    Ok(_) => break,
                    Err(e) => {
                        metrics::reconcile_failed(&e);
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep(RESTATE_RETRY) => {}
                        }
                    }
                }
            }
        }
    }

    async fn record(
        &self,
        change: Change,
        principal: String,
        kind: &'static str,
    ) -> Result<ConsentEvent, Error> {
        let Inner {
            log,
            delivery_timeout,
            stripes,
            ..
        } = &*self.inner;
        let stripe = stripe_of(&change.subject.key()) % stripes.len();
        let _one_at_a_time = stripes[stripe].lock().await;
        let mut state = log.view.state(&change.subject);
        let mut event = ConsentEvent {
            event_id: new_id("ce"),
            subject: Some(change.subject.to_proto()),
            occurred_at: Some(SystemTime::now().into()),
            channel: change.channel as i32,
            actor: Some(Actor {
                principal,
                declared: change.actor,
            }),
            change: Some(change.change),
            state: None,
        };
        apply(&mut state, &event);
        event.state = Some(state);
        // Refusing more at once is safe; accepting more is not until it is durable.
        let withdrawal = matches!(event.change, Some(consent_event::Change::Withdrawn(_)));
        log.view.add_pending(&event, withdrawal);
        let send = log.producer.send(log.view.topic(), event_record(&event));
        match tokio::time::timeout(*delivery_timeout, send).await {
            Ok(Ok(_)) => {
                log.view.reveal_pending(&event);
                metrics::changed(kind, channel_label(change.channel));
                Ok(event)
            }
            Ok(Err(e)) => {
                log.view.drop_pending(&event);
                Err(Error::NotDurable(e.to_string()))
            }
            // The outcome is unknown: a withdrawal keeps counting (if it lands, the
            // follower reads it; if not, this gateway refuses more than it must).
            Err(_) => {
                if !withdrawal {
                    log.view.drop_pending(&event);
                }
                Err(Error::DeliveryTimeout(*delivery_timeout))
            }
        }
    }
}

/// FNV-1a of a subject key: which stripe serializes its changes.
fn stripe_of(key: &str) -> usize {
    key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    }) as usize
}
