//! Types every Inland crate shares: the error codes that errors map to, the Kafka topic
//! names, the vehicle identity (VIN) and the VSS signal catalog.

mod error_code;
pub mod topics;
mod vin;
pub mod vss;

pub use error_code::ErrorCode;
pub use vin::{Vin, VinError};
