//! Every gateway metric with its log line. Log lines never carry the VIN or payload.

use std::time::Duration;

use metrics::{Counter, Histogram, counter, gauge, histogram};

use crate::Error;

const UPLOADS_TOTAL: &str = "inland_gateway_uploads_total";
const ACK_LATENCY: &str = "inland_gateway_ack_latency_seconds";

/// How an upload ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Accepted,
    Duplicate,
}

impl Outcome {
    /// Its label on the upload metrics and the `gateway.upload` span.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
        }
    }
}

/// The metrics every accepted upload records, registered once: looked up by name and
/// labels on every upload they cost ~2 % of the gateway's CPU.
pub struct UploadMetrics {
    accepted: Counter,
    duplicate: Counter,
    accepted_latency: Histogram,
    duplicate_latency: Histogram,
}

impl UploadMetrics {
    /// With the recorder installed at the time of the call.
    pub fn register() -> Self {
        let counter = |outcome: Outcome| counter!(UPLOADS_TOTAL, "outcome" => outcome.label(), "code" => "ok");
        let latency = |outcome: Outcome| histogram!(ACK_LATENCY, "outcome" => outcome.label());
        Self {
            accepted: counter(Outcome::Accepted),
            duplicate: counter(Outcome::Duplicate),
            accepted_latency: latency(Outcome::Accepted),
            duplicate_latency: latency(Outcome::Duplicate),
        }
    }

    pub fn acked(&self, outcome: Outcome, latency: Duration) {
        let (count, histogram) = match outcome {
            Outcome::Accepted => (&self.accepted, &self.accepted_latency),
            Outcome::Duplicate => (&self.duplicate, &self.duplicate_latency),
        };
        count.increment(1);
        histogram.record(latency.as_secs_f64());
        tracing::trace!(
            outcome = outcome.label(),
            latency_ms = latency.as_millis() as u64,
            "upload acked"
        );
    }
}

pub fn upload_rejected(error: &Error, latency: Duration) {
    let code = error.code().as_str();
    counter!(UPLOADS_TOTAL, "outcome" => "rejected", "code" => code).increment(1);
    histogram!(ACK_LATENCY, "outcome" => "rejected").record(latency.as_secs_f64());
    tracing::debug!(code, reason = %error, "upload rejected");
}

/// An upload refused for want of consent: counted as a drop by reason and category.
pub fn dropped_without_consent(category: inland_consent::proto::Category) {
    counter!(
        "inland_gateway_dropped_total",
        "reason" => "consent",
        "category" => inland_consent::category_flag(category)
    )
    .increment(1);
    tracing::debug!(
        category = inland_consent::category_flag(category),
        "upload refused: no consent"
    );
}

/// A ConsentService call refused (bad request, another vehicle, broker down).
pub fn consent_refused(call: &'static str, error: &Error) {
    counter!("inland_gateway_consent_refused_total", "call" => call, "code" => error.code().as_str())
        .increment(1);
    tracing::info!(call, code = error.code().as_str(), reason = %error, "consent call refused");
}

pub fn stream_opened() {
    gauge!("inland_gateway_open_streams").increment(1.0);
}

pub fn stream_closed() {
    gauge!("inland_gateway_open_streams").decrement(1.0);
}

pub fn unauthenticated(error: &Error) {
    counter!("inland_gateway_unauthenticated_total").increment(1);
    tracing::info!(reason = %error, "vehicle refused: not authenticated");
}

pub fn serving(addr: std::net::SocketAddr, tls: bool) {
    tracing::info!(%addr, mtls = tls, "gateway serving vehicle uploads and the consent API");
}
