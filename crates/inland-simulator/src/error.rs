use std::path::PathBuf;

use inland_core::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("simulator configuration: {0}")]
    Config(String),
    #[error("mutual TLS needs the dev certificates: pass --certs (`inland dev-certs` writes them)")]
    NoCerts,
    #[error(
        "cannot load the dev fleet CA from {}: {source}; run `inland dev-certs` or pass --certs", dir.display()
    )]
    Certs {
        dir: PathBuf,
        #[source]
        source: inland_tls::Error,
    },
    #[error("cannot issue a vehicle certificate: {0}")]
    Issue(#[source] inland_tls::Error),
    #[error("gateway endpoint {url:?}: {source}")]
    Endpoint {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("cannot encode the synthetic camera frames: {0}")]
    Frames(#[from] image::ImageError),
    /// The gateway refused a vehicle's stream outright; retrying would not help.
    #[error("the gateway refused vehicle {vehicle}: {}: {}", .status.code(), .status.message())]
    Refused {
        vehicle: usize,
        status: tonic::Status,
    },
    #[error("a simulator task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Config(_) | Self::NoCerts | Self::Endpoint { .. } => ErrorCode::InvalidInput,
            Self::Certs {
                source: inland_tls::Error::Read { source, .. },
                ..
            } if source.kind() == std::io::ErrorKind::NotFound => ErrorCode::NotFound,
            Self::Certs { source, .. } | Self::Issue(source) => source.code(),
            Self::Refused { status, .. } => match status.code() {
                tonic::Code::Unauthenticated => ErrorCode::Unauthenticated,
                tonic::Code::PermissionDenied => ErrorCode::PermissionDenied,
                _ => ErrorCode::InvalidInput,
            },
            Self::Frames(_) | Self::Task(_) => ErrorCode::Internal,
        }
    }
}
