//! Every query-service metric together with its log line. Neither carries SQL text (it
//! may hold positions or pseudonyms), tokens or data: only who, how, how many and how
//! long, and where the audit entry landed.

use std::time::Duration;

use inland_core::ErrorCode;

use crate::audit::Appended;
use crate::auth::Role;
use crate::engine::Interface;

/// Query latency from SQL text to audited result, seconds, by `interface`.
pub const LATENCY: &str = "inland_query_latency_seconds";
/// Queries that returned a result, by `interface`.
pub const QUERIES: &str = "inland_query_queries_total";
/// Rows handed to callers, by `interface`.
pub const ROWS: &str = "inland_query_rows_returned_total";
/// Failed queries and exports, by `interface` and `code`.
pub const ERRORS: &str = "inland_query_errors_total";
/// Time to write one audit entry durably, seconds, by `outcome` (`ok`, `failed`).
pub const AUDIT_WRITE: &str = "inland_query_audit_write_seconds";
/// Refused credentials, by `interface`.
pub const AUTH_FAILURES: &str = "inland_query_auth_failures_total";
/// Exports written, and the groups they suppressed for having fewer than k vehicles.
pub const EXPORTS: &str = "inland_query_exports_total";
pub const EXPORT_GROUPS_SUPPRESSED: &str = "inland_query_export_groups_suppressed_total";

pub(crate) fn query_done(via: Interface, latency: Duration, rows: u64) {
    let interface = via.as_str();
    metrics::histogram!(LATENCY, "interface" => interface).record(latency.as_secs_f64());
    metrics::counter!(QUERIES, "interface" => interface).increment(1);
    metrics::counter!(ROWS, "interface" => interface).increment(rows);
}

pub(crate) fn query_failed(via: Interface, code: ErrorCode) {
    metrics::counter!(ERRORS, "interface" => via.as_str(), "code" => code.as_str()).increment(1);
}

pub(crate) fn audit_write(latency: Duration, ok: bool) {
    let outcome = if ok { "ok" } else { "failed" };
    metrics::histogram!(AUDIT_WRITE, "outcome" => outcome).record(latency.as_secs_f64());
}

/// One entry appended; its chain position and hash are logged so the log collector
/// keeps a witness of every chain head.
pub(crate) fn audited(
    at: &Appended,
    user: &str,
    role: Role,
    via: Interface,
    rows: Option<u64>,
    outcome: &str,
) {
    tracing::info!(
        user,
        role = role.as_str(),
        interface = via.as_str(),
        rows,
        outcome,
        chain = %at.chain,
        seq = at.seq,
        hash = %at.hash,
        "query audited"
    );
}

pub(crate) fn audit_failed(error: &inland_store::Error) {
    tracing::error!(%error, "audit entry not written; the result is withheld");
}

pub(crate) fn auth_failed(via: Interface, code: ErrorCode) {
    metrics::counter!(AUTH_FAILURES, "interface" => via.as_str()).increment(1);
    tracing::info!(
        interface = via.as_str(),
        code = code.as_str(),
        "credentials refused"
    );
}

pub(crate) fn exported(rows: u64, groups_suppressed: u64) {
    metrics::counter!(EXPORTS).increment(1);
    metrics::counter!(EXPORT_GROUPS_SUPPRESSED).increment(groups_suppressed);
    tracing::info!(rows, groups_suppressed, "export written");
}

pub(crate) fn serving(flight: std::net::SocketAddr, http: std::net::SocketAddr, chain: &str) {
    tracing::info!(%flight, %http, chain, "query service listening");
}
