//! Every simulator metric with its log line. Like every Inland log, these never carry a VIN
//! or a position: vehicles are named by their index in the simulated fleet.

use std::time::Duration;

use inland_proto::ingest::v1::AckStatus;
use metrics::{counter, histogram};

use crate::stats::{Kind, Summary};

/// Uploads sent for the first time, by `kind` (`telemetry`, `frame`).
pub const SENT: &str = "inland_simulator_uploads_sent_total";
/// Encoded request bytes written, resends included.
pub const BYTES: &str = "inland_simulator_upload_bytes_total";
/// Uploads sent again on a new stream after one broke.
pub const RESENT: &str = "inland_simulator_uploads_resent_total";
/// Acks, by `status` (`accepted`, `duplicate`, `rejected`).
pub const ACKS: &str = "inland_simulator_acks_total";
/// Send-to-ack latency, by `status`.
pub const ACK_LATENCY: &str = "inland_simulator_ack_latency_seconds";
/// Streams that failed to open or broke, by gRPC `code` (consent grants that failed too).
pub const STREAM_ERRORS: &str = "inland_simulator_stream_errors_total";
/// Simulated owners that granted consent through the vehicle's HMI.
pub const CONSENTS: &str = "inland_simulator_consents_granted_total";

pub fn starting(vehicles: usize, gateway: &str, mtls: bool) {
    tracing::info!(vehicles, gateway, mtls, "simulating a fleet");
}

pub fn sent(kind: Kind, bytes: usize) {
    counter!(SENT, "kind" => kind.as_str()).increment(1);
    counter!(BYTES).increment(bytes as u64);
}

pub fn resent(uploads: usize) {
    counter!(RESENT).increment(uploads as u64);
}

pub fn acked(status: i32, latency: Duration) {
    let status = match AckStatus::try_from(status) {
        Ok(AckStatus::Accepted) => "accepted",
        Ok(AckStatus::Duplicate) => "duplicate",
        _ => "rejected",
    };
    counter!(ACKS, "status" => status).increment(1);
    histogram!(ACK_LATENCY, "status" => status).record(latency.as_secs_f64());
}

/// The reason goes to the summary, not the log: it may quote a value from the upload.
pub fn rejected(code: &str) {
    tracing::debug!(code, "upload rejected");
}

pub fn stream_error(vehicle: usize, status: &tonic::Status) {
    let code = format!("{:?}", status.code());
    counter!(STREAM_ERRORS, "code" => code.clone()).increment(1);
    tracing::debug!(
        vehicle,
        code,
        message = status.message(),
        "stream failed; reconnecting"
    );
}

pub fn consented(vehicle: usize) {
    counter!(CONSENTS).increment(1);
    tracing::debug!(
        vehicle,
        "simulated owner granted consent through the vehicle HMI"
    );
}

pub fn refused(vehicle: usize, status: &tonic::Status) {
    tracing::error!(
        vehicle,
        code = ?status.code(),
        message = status.message(),
        "the gateway refused the vehicle; stopping"
    );
}

pub fn finished(summary: &Summary) {
    tracing::info!(
        sent = summary.sent,
        accepted = summary.accepted,
        duplicate = summary.duplicate,
        rejected = summary.rejected,
        unacked = summary.unacked,
        stream_errors = summary.stream_errors,
        "simulation finished"
    );
}
