//! Mutual TLS for vehicles. The fleet CA issues each vehicle a client certificate whose
//! subject common name is its VIN; the gateway trusts only that CA and takes the VIN from
//! the verified certificate, never from the payload.

mod ca;
mod error;
mod identity;
mod settings;

pub use ca::{DevCerts, FleetCa, Issued};
pub use error::Error;
pub use identity::vin_from_certificate;
pub use settings::{ClientTls, ServerTls};
