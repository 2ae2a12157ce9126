use std::io;
use std::path::PathBuf;

use inland_core::ErrorCode;

/// Everything that stops the anonymizer from starting, a key file from loading, or a record
/// from being accepted as anonymized. Messages never carry a key, a VIN or a position.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the pseudonym key file {}: {source}", path.display())]
    KeyFileRead {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is there but unusable (syntax, a short or undecodable secret, a duplicate
    /// epoch). `problem` names the epoch, never the secret.
    #[error(
        "pseudonym key file {}: {problem}; fix it, or create one with `inland keys generate`",
        path.display()
    )]
    KeyFile { path: PathBuf, problem: String },
    #[error(
        "cannot write the pseudonym key file {}: {source}",
        path.display()
    )]
    KeyFileWrite {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The anonymizer's configuration cannot work or would let personal data through.
    #[error("anonymizer configuration: {0}")]
    Config(String),
    /// Frames are to be anonymized but the frame anonymizer cannot be loaded.
    #[error(
        "the frame anonymizer cannot start: {0}; configure the models (anonymizer.vision, or \
         `export $(scripts/fetch-models.sh)`), or set anonymizer.frames = \"drop\" to run on \
         telemetry only and drop every frame"
    )]
    Vision(#[source] inland_vision::Error),
    /// A record read from the anonymized topic is not an anonymized record.
    #[error("not an anonymized record: {0}")]
    NotAnonymized(String),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::KeyFileRead { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                ErrorCode::NotFound
            }
            Self::KeyFileRead { .. } | Self::KeyFileWrite { .. } => ErrorCode::Unavailable,
            Self::KeyFile { .. } | Self::Config(_) | Self::NotAnonymized(_) => {
                ErrorCode::InvalidInput
            }
            Self::Vision(e) => e.code(),
        }
    }
}
