use inland_core::ErrorCode;

/// Why the store refused or failed an operation. Messages name the key and what to do,
/// never an object's contents or a credential.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid object key {0}")]
    BadKey(String),
    #[error("no object {0:?}")]
    NotFound(String),
    /// The local store's directory cannot be read or written.
    #[error("local store {path}: {source}")]
    Local {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadKey(_) => ErrorCode::InvalidInput,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Local { .. } => ErrorCode::Unavailable,
        }
    }
}
