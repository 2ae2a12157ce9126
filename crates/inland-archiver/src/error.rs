use inland_core::ErrorCode;

/// Everything that stops the archiver or an erasure. Messages name topics, partitions,
/// offsets and object keys, never a pseudonym, a position or a payload.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `archiver` configuration cannot work.
    #[error("archiver configuration: {0}")]
    Config(String),
    /// The store refused an object the archiver cannot do without (a batch manifest, an
    /// erasure record): retrying the same key cannot help.
    #[error("the object store refused {key}: {source}; check the store's key policy")]
    Refused {
        key: String,
        #[source]
        source: inland_store::Error,
    },
    /// A store operation failed in a way retrying cannot heal, or during an erasure, which
    /// the caller retries as a whole.
    #[error("object store {op} {key}: {source}")]
    Store {
        op: &'static str,
        key: String,
        #[source]
        source: inland_store::Error,
    },
    /// Reading the input or committing failed for good (not a broker outage).
    #[error("consuming {topic}: {source}")]
    Consume {
        topic: String,
        #[source]
        source: inland_stage::Error,
    },
    /// A Parquet file could not be written or read: a bug, or an object in the archive
    /// that is not one of its datasets.
    #[error("Parquet {what}: {source}")]
    Parquet {
        what: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// An erasure request that cannot be carried out as given (its id, a pseudonym).
    #[error("erasure request: {0}")]
    Request(String),
    /// A command's report could not be written.
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
    /// A task of the archiver panicked; its batch stays uncommitted and is consumed again.
    #[error("an archiver task panicked: {0}; its batch is consumed again after a restart")]
    Panicked(String),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Config(_) | Self::Request(_) => ErrorCode::InvalidInput,
            Self::Refused { .. } => ErrorCode::InvalidInput,
            Self::Store { source, .. } => source.code(),
            Self::Consume { source, .. } => source.code(),
            Self::Parquet { .. } | Self::Panicked(_) | Self::Output(_) => ErrorCode::Internal,
        }
    }

    pub(crate) fn parquet(
        what: impl Into<String>,
    ) -> impl FnOnce(parquet::errors::ParquetError) -> Self {
        let what = what.into();
        move |source| Self::Parquet { what, source }
    }
}
