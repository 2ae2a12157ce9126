use std::path::PathBuf;
use std::time::Duration;

use inland_core::ErrorCode;

/// Why a consent change, a read, a view or `inland consent` failed. Messages say what was
/// wrong and what to do, and never carry a VIN.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request broke a rule of inland.consent.v1.
    #[error("{0}")]
    Invalid(String),
    /// The caller may not act for this subject or through this channel.
    #[error("{0}")]
    Forbidden(String),
    #[error("not recorded: the broker did not confirm the consent event ({0}); retry")]
    NotDurable(String),
    #[error(
        "the broker did not confirm the consent event within {0:?}; it may still be recorded: \
         check with `inland consent show` before retrying"
    )]
    DeliveryTimeout(Duration),
    /// A record on the consent topic is not a consent event.
    #[error("not a consent event: {0}")]
    BadEvent(String),
    #[error(
        "the consent view did not catch up with {topic} within {timeout:?}; check that the \
         broker is reachable and the topic exists (inland topics)"
    )]
    CatchUp { topic: String, timeout: Duration },
    #[error("consent topic: {0}")]
    Transport(#[from] inland_stage::Error),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] inland_tls::Error),
    #[error(
        "cannot reach the gateway at {url}: {source}; is it running (inland run / inland gateway)?"
    )]
    Connect {
        url: String,
        source: tonic::transport::Error,
    },
    /// The gateway answered with an error status.
    #[error("the gateway refused: {}", .0.message())]
    Refused(tonic::Status),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) | Self::BadEvent(_) => ErrorCode::InvalidInput,
            Self::Forbidden(_) => ErrorCode::PermissionDenied,
            Self::NotDurable(_) | Self::CatchUp { .. } | Self::Connect { .. } => {
                ErrorCode::Unavailable
            }
            Self::DeliveryTimeout(_) => ErrorCode::Timeout,
            Self::Transport(e) => e.code(),
            Self::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorCode::NotFound
            }
            Self::Read { .. } => ErrorCode::InvalidInput,
            Self::Tls(e) => e.code(),
            Self::Refused(status) => code_of(status.code()),
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Refused(status) => status,
            e => e.code().status(e.to_string()),
        }
    }
}

fn code_of(code: tonic::Code) -> ErrorCode {
    use tonic::Code::*;
    match code {
        InvalidArgument | FailedPrecondition | OutOfRange | AlreadyExists => {
            ErrorCode::InvalidInput
        }
        Unauthenticated => ErrorCode::Unauthenticated,
        PermissionDenied => ErrorCode::PermissionDenied,
        NotFound => ErrorCode::NotFound,
        ResourceExhausted => ErrorCode::ResourceExhausted,
        Unavailable | Aborted | Cancelled => ErrorCode::Unavailable,
        DeadlineExceeded => ErrorCode::Timeout,
        Ok | Unknown | Unimplemented | Internal | DataLoss => ErrorCode::Internal,
    }
}
