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
    tracing::info!(%addr, mtls = tls, "gateway serving vehicle uploads");
}
