//! The vehicle-facing gateway.
//!
//! A request flows: [`identity`] (VIN from the client certificate) → [`limits`] (per-vehicle
//! token bucket) → [`validate`] (VSS paths, types, timestamps, sizes) → [`dedup`] (retries
//! of a message id) → the raw-topic [`inland_stage::Producer`] → ack. The ack is sent only
//! after the producer reports the record durable.

mod config;
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
pub use server::{Gateway, GatewayTls};
