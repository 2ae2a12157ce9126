use std::pin::Pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::{Stream, StreamExt};
use inland_core::Vin;
use inland_proto::ingest::v1::in_place::vehicle_ingest_server::VehicleIngest;
use inland_proto::ingest::v1::in_place::{UploadBatchRequest, UploadRequest};
use inland_proto::ingest::v1::{AckStatus, UploadAck, UploadBatchResponse};
use inland_proto::pipeline::v1::RAW_RECORD_SCHEMA;
use inland_stage::{Producer, Record, trace};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::consent::{Admitted, ConsentCheck};
use crate::dedup::{Claim, Deduplicator};
use crate::limits::VehicleRateLimit;
use crate::metrics::{self, Outcome, UploadMetrics};
use crate::validate::{self, RawUpload, Window};
use crate::{Error, GatewayConfig, identity, trace_context};

pub const MESSAGE_ID_HEADER: &str = "inland-message-id";
pub const SCHEMA_HEADER: &str = "inland-schema";

#[derive(Clone)]
pub struct IngestService {
    inner: Arc<Inner>,
}

struct Inner {
    config: GatewayConfig,
    producer: Arc<dyn Producer>,
    dedup: Deduplicator,
    rate: VehicleRateLimit,
    consent: ConsentCheck,
    metrics: UploadMetrics,
}

impl IngestService {
    pub fn new(
        config: GatewayConfig,
        producer: Arc<dyn Producer>,
        consent: ConsentCheck,
    ) -> Result<Self, Error> {
        let rate = VehicleRateLimit::new(&config)?;
        let dedup = Deduplicator::new(&config);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                producer,
                dedup,
                rate,
                consent,
                metrics: UploadMetrics::register(),
            }),
        })
    }

    pub fn rate_limit(&self) -> &VehicleRateLimit {
        &self.inner.rate
    }

    fn authenticate<T>(&self, request: &Request<T>) -> Result<Vin, Status> {
        identity::vehicle(request, self.inner.config.insecure_plaintext).map_err(|e| {
            metrics::unauthenticated(&e);
            Status::from(e)
        })
    }

    /// Handles one upload end to end, in a `gateway.upload` span continuing the
    /// vehicle's trace, and answers with its ack. The span never names the vehicle or the
    /// message.
    ///
    /// The checks, which need no waiting, run before the future is made: it then holds the
    /// record, not the request as well, and one span rather than two nested futures. Each
    /// upload's future is allocated and moved; this took it from 2064 to 952 bytes.
    fn handle<'a>(
        &'a self,
        vin: &'a Vin,
        parent: Option<&'a str>,
        req: UploadRequest,
    ) -> impl Future<Output = UploadAck> + 'a {
        let span = tracing::info_span!("gateway.upload", outcome = tracing::field::Empty);
        if let Some(parent) = parent {
            // Fails only when no OpenTelemetry layer is installed; nothing is exported then.
            let _ = span.set_parent(trace::parent_from_traceparent(parent));
        }
        let started = Instant::now();
        let message_id = req.message_id.clone();
        // Outside the span: the checks log nothing, and entering it costs.
        let checked = self.check(vin, req);
        async move {
            let stored = match checked {
                Ok(checked) => self.store(vin, parent, checked).await,
                Err(e) => Err(e),
            };
            let (ack, outcome) = match stored {
                Ok(outcome) => {
                    self.inner.metrics.acked(outcome, started.elapsed());
                    let status = match outcome {
                        Outcome::Accepted => AckStatus::Accepted,
                        Outcome::Duplicate => AckStatus::Duplicate,
                    };
                    let ack = UploadAck {
                        message_id,
                        status: status.into(),
                        code: 0,
                        reason: String::new(),
                    };
                    (ack, outcome.label())
                }
                Err(e) => {
                    metrics::upload_rejected(&e, started.elapsed());
                    let ack = UploadAck {
                        message_id,
                        status: AckStatus::Rejected.into(),
                        code: e.code().grpc() as i32,
                        reason: e.to_string(),
                    };
                    (ack, "rejected")
                }
            };
            tracing::Span::current().record("outcome", outcome);
            ack
        }
        .instrument(span)
    }

    /// Rate, consent and validity: everything about an upload that needs no waiting.
    fn check(&self, vin: &Vin, req: UploadRequest) -> Result<Checked, Error> {
        let config = &self.inner.config;
        self.inner.rate.check(vin)?;
        // Before validation: data of a category without consent is not even inspected.
        let admitted = match &req.payload {
            Some(payload) => {
                let profile = Some(req.driver_profile_id.as_str()).filter(|p| !p.is_empty());
                self.inner.consent.admit(vin, profile, payload)?
            }
            None => Admitted::default(),
        };
        let now = SystemTime::now();
        let window = Window::new(config, now);
        let upload = validate::to_raw_record(req, vin, admitted, config, &window)?;
        Ok(Checked { upload, now })
    }

    async fn store(
        &self,
        vin: &Vin,
        parent: Option<&str>,
        Checked { upload, now }: Checked,
    ) -> Result<Outcome, Error> {
        let config = &self.inner.config;
        let owner = match self.inner.dedup.claim(vin, &upload.message_id).await {
            Claim::Duplicate => return Ok(Outcome::Duplicate),
            Claim::Owner(owner) => owner,
        };
        let mut record = Record {
            key: vin.as_str().as_bytes().to_vec().into(),
            headers: vec![
                (
                    MESSAGE_ID_HEADER.into(),
                    upload.message_id.into_bytes().into(),
                ),
                (SCHEMA_HEADER.into(), RAW_RECORD_SCHEMA.as_bytes().into()),
                // Replaced by this upload's span when it is exported.
                (
                    trace::TRACEPARENT.into(),
                    parent
                        .map(str::to_owned)
                        .unwrap_or_else(trace_context::new_root)
                        .into_bytes()
                        .into(),
                ),
            ],
            payload: upload.record,
            timestamp_ms: now
                .duration_since(SystemTime::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_millis() as i64),
        };
        trace::inject_current(&mut record.headers);
        let send = self.inner.producer.send(&config.raw_topic, record);
        match tokio::time::timeout(config.delivery_timeout, send).await {
            Err(_) => Err(Error::DeliveryTimeout(config.delivery_timeout)),
            Ok(Err(e)) => Err(Error::NotDurable(e.to_string())),
            Ok(Ok(_)) => {
                owner.accepted();
                Ok(Outcome::Accepted)
            }
        }
    }
}

/// An upload that passed [`IngestService::check`], and when it was checked.
struct Checked {
    upload: RawUpload,
    now: SystemTime,
}

type AckStream = Pin<Box<dyn Stream<Item = Result<UploadAck, Status>> + Send>>;

#[tonic::async_trait]
impl VehicleIngest for IngestService {
    type UploadStream = AckStream;

    async fn upload(
        &self,
        request: Request<Streaming<UploadRequest>>,
    ) -> Result<Response<AckStream>, Status> {
        // Shared by every upload of the stream.
        let vin = Arc::new(self.authenticate(&request)?);
        let traceparent: Option<Arc<str>> =
            trace_context::incoming(request.metadata()).map(Into::into);
        let service = self.clone();
        let in_flight = self.inner.config.max_in_flight_per_stream;
        let open = StreamGuard::open();
        // `buffer_unordered` stops reading the inbound stream while `in_flight` uploads
        // are pending, so a fast vehicle is slowed by HTTP/2 flow control, not buffered.
        let acks = request
            .into_inner()
            .map(move |msg| {
                let _counted_until_dropped = &open;
                let (service, vin, traceparent) =
                    (service.clone(), vin.clone(), traceparent.clone());
                // Boxed: an upload's future is large, and moving it into the set of pending
                // ones was ~2.7 % of the gateway's CPU in memmove.
                Box::pin(async move {
                    match msg {
                        Ok(req) => Ok(service.handle(&vin, traceparent.as_deref(), req).await),
                        Err(status) => Err(status),
                    }
                })
            })
            .buffer_unordered(in_flight);
        Ok(Response::new(Box::pin(acks)))
    }

    async fn upload_batch(
        &self,
        request: Request<UploadBatchRequest>,
    ) -> Result<Response<UploadBatchResponse>, Status> {
        let vin = self.authenticate(&request)?;
        let traceparent = trace_context::incoming(request.metadata());
        let requests = request.into_inner().requests;
        let max = self.inner.config.max_batch_requests;
        if requests.len() > max {
            return Err(Error::Invalid(format!(
                "the batch has {} requests, at most {max} are accepted; split it",
                requests.len()
            ))
            .into());
        }
        let acks = futures::future::join_all(
            requests
                .into_iter()
                .map(|req| self.handle(&vin, traceparent.as_deref(), req)),
        )
        .await;
        Ok(Response::new(UploadBatchResponse { acks }))
    }
}

/// Counts a stream open until it is dropped, whichever way it ends.
struct StreamGuard;

impl StreamGuard {
    fn open() -> Self {
        metrics::stream_opened();
        Self
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        metrics::stream_closed();
    }
}
