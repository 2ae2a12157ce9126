//! Types every Inland crate shares: the error codes that errors map to, the Kafka topic
//! names, and the vehicle identity (VIN).

mod error_code;
pub mod topics;
mod vin;

pub use error_code::ErrorCode;
pub use vin::{Vin, VinError};
