//! Mutual TLS for vehicles. The fleet CA issues each vehicle a client certificate whose
//! subject common name is its VIN; the gateway trusts only that CA and takes the VIN from
//! the verified certificate, never from the payload. Operators (who record consent for
//! any vehicle) get a certificate from the same CA with subject OU [`OPERATOR_OU`].

mod ca;
mod error;
mod identity;
mod settings;

pub use ca::{DEV_OPERATOR, DevCerts, FleetCa, Issued};
pub use error::Error;
pub use identity::{ClientIdentity, OPERATOR_OU, client_identity, vin_from_certificate};
pub use settings::{ClientTls, ServerTls};
