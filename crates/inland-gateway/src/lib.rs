//! The vehicle-facing gateway.
//!
//! A request flows: [`identity`] (VIN from the client certificate) → [`limits`] (per-vehicle
//! token bucket) → [`consent`] (the vehicle consented to the upload's category: telemetry,
//! camera frames, cabin camera; default deny; the record names the purposes it was
//! consented for, and those with precise location, for the anonymizer) → [`validate`] (VSS paths, types, timestamps,
//! sizes) → [`dedup`] (retries of a message id) → the raw-topic [`inland_stage::Producer`]
//! → ack. The ack is sent only after the producer reports the record durable.
//!
//! The same listener serves the ConsentService ([`consent_api`], inland.consent.v1): a
//! vehicle's certificate acts for its own VIN, an operator certificate for any VIN.
//! Changes go to the consent topic and count in the gateway's own view at once, so a
//! withdrawal refuses the next upload.
//!
//! Voice: inland.ingest.v1 has no audio payload, so voice is refused by construction;
//! [`consent`] maps every payload kind to a category in an exhaustive match, so adding one
//! does not compile until it names the consent it needs.

mod config;
mod consent;
mod consent_api;
mod dedup;
mod error;
mod identity;
mod limits;
mod metrics;
mod server;
mod service;
mod trace_context;
mod validate;

pub use config::GatewayConfig;
pub use error::Error;
pub use server::{Gateway, GatewayTls, accepted, transport};
