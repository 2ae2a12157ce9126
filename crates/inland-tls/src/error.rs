use std::path::PathBuf;

use inland_core::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the client certificate is not valid X.509: {0}")]
    BadCertificate(String),
    #[error("the client certificate names no VIN: its subject common name must be the VIN")]
    NoVin,
    #[error("the client certificate's common name is not a VIN: {0}")]
    NotAVin(#[from] inland_core::VinError),
    #[error("an operator certificate cannot upload vehicle data; use the vehicle's certificate")]
    NotAVehicle,
    #[error(
        "the operator certificate's common name must be 1 to 64 printable ASCII characters \
         (the operator's name)"
    )]
    BadOperatorName,
    #[error("operator name {0:?}: use 1 to 64 printable ASCII characters")]
    OperatorName(String),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Read { .. } | Self::Write { .. } | Self::Generate(_) => ErrorCode::Internal,
            Self::BadCertificate(_)
            | Self::NoVin
            | Self::NotAVin(_)
            | Self::NotAVehicle
            | Self::BadOperatorName => ErrorCode::Unauthenticated,
            Self::OperatorName(_) => ErrorCode::InvalidInput,
        }
    }
}
