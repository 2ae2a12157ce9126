//! Types every Inland crate shares: the error codes that errors map to, the Kafka topic
//! names, the vehicle identity (VIN), the VSS signal catalog, and byte comparisons for
//! the hot paths that read them off the wire.

pub mod bytes;
mod error_code;
pub mod topics;
mod vin;
pub mod vss;

pub use error_code::ErrorCode;
pub use vin::{Vin, VinError};
