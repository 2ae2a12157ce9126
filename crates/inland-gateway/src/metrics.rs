//! Every gateway metric with its log line. Log lines never carry the VIN or payload.

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::Error;

/// How an upload ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Accepted,
    Duplicate,
}

pub fn upload_acked(outcome: Outcome, latency: Duration) {
    let label = match outcome {
        Outcome::Accepted => "accepted",
        Outcome::Duplicate => "duplicate",
    };
    counter!("inland_gateway_uploads_total", "outcome" => label, "code" => "ok").increment(1);
    histogram!("inland_gateway_ack_latency_seconds", "outcome" => label)
        .record(latency.as_secs_f64());
    tracing::trace!(
        outcome = label,
        latency_ms = latency.as_millis() as u64,
        "upload acked"
    );
}

pub fn upload_rejected(error: &Error, latency: Duration) {
    let code = error.code().as_str();
    counter!("inland_gateway_uploads_total", "outcome" => "rejected", "code" => code).increment(1);
    histogram!("inland_gateway_ack_latency_seconds", "outcome" => "rejected")
        .record(latency.as_secs_f64());
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
