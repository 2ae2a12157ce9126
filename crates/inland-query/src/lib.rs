//! The query service (`inland query`): SQL over the anonymized archive, for data
//! scientists, with every question on record.
//!
//! - [`Engine`]: Apache DataFusion over the archive's Parquet, with exactly two tables
//!   for analysts, `telemetry` and `frame_index` (Hive partitions `date`, `hour`: pruned
//!   by filters, columns projected), plus `audit_log` for auditors and admins. It reads
//!   through a read-only view limited to those tables' prefixes ([`catalog`]); consent
//!   events, frames, other prefixes and the local file system are unreachable. Only reads
//!   are planned (no DDL, DML, COPY, SET, external tables or file-reading functions).
//!   Each role has a row and a time limit; a larger result is an error, never cut short.
//! - [`audit`]: every query, failed or not, is appended to a SHA-256 hash chain in the
//!   store (`audit/`, its own shelf life) before its result is returned;
//!   [`audit::verify`] (`inland audit verify`) finds the first broken link.
//! - [`auth`]: bearer tokens (stored as hashes) bound to a user and a role: analyst,
//!   auditor, admin.
//! - Interfaces: Arrow Flight SQL ([`flight`]; ADBC, JDBC/DBeaver, pyarrow), HTTP
//!   ([`http`]; `POST /v1/query` → JSON, CSV or Arrow IPC), and `inland sql` ([`cli`]),
//!   served together by [`QueryService`].
//! - [`export`]: `inland export`, the one path out of the country: aggregates only,
//!   groups of fewer than k vehicles suppressed, a transfer record in the audit log.
//! - [`synth`]: a deterministic synthetic archive in the real layout, for tests and
//!   benchmarks.
//!
//! Logs and metrics ([`metrics`]) never carry SQL text, tokens or result data.

mod archive;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod client;
mod config;
mod engine;
mod error;
pub mod export;
pub mod flight;
mod guard;
pub mod http;
pub mod metrics;
mod output;
mod service;
pub mod synth;
#[cfg(test)]
mod testing;

pub use archive::Archive;
pub use auth::{Principal, Role, Tokens};
pub use config::{ExportConfig, Limits, QueryConfig, RoleLimits, TlsFiles};
pub use engine::{Engine, Interface, QueryResult};
pub use error::Error;
pub use export::{ExportFormat, ExportReport, ExportRequest};
pub use output::Format;
pub use service::QueryService;
