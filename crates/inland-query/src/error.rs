use std::io;
use std::path::PathBuf;
use std::time::Duration;

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use inland_core::ErrorCode;

/// Everything a query, an export, the audit log or the service's start can fail with.
/// Messages say what was wrong and what to do; they never carry a token, and never the
/// SQL text (it may hold positions), only what the engine said about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query service's configuration cannot work.
    #[error("query configuration: {0}")]
    Config(String),
    #[error("cannot read the token file {}: {source}", path.display())]
    TokenFileRead {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The token list is unusable; `problem` names the entry, never a token.
    #[error(
        "query tokens ({source_name}): {problem}; each [[tokens]] entry needs user, role \
         (analyst, auditor or admin) and the sha256 of the token (`inland query token` makes one)"
    )]
    Tokens {
        source_name: String,
        problem: String,
    },
    /// No credentials, or credentials no entry matches.
    #[error("{0}")]
    Unauthenticated(String),
    /// A known caller asked for something its role does not allow.
    #[error("{0}")]
    Forbidden(String),
    /// The SQL cannot be parsed or planned, or fails on the data (a bad cast, a division by
    /// zero).
    #[error("{0}")]
    Sql(String),
    #[error(
        "table {table} does not exist or is not readable by your role; tables you can query: {available}"
    )]
    UnknownTable { table: String, available: String },
    #[error(
        "the result has more than {limit} rows, the most your role may fetch in one query; \
         aggregate it, filter it or add LIMIT"
    )]
    TooManyRows { limit: u64 },
    #[error(
        "the query ran longer than {}, the limit for your role; narrow it by date/hour or \
         select fewer columns", humantime::format_duration(*.limit)
    )]
    Timeout { limit: Duration },
    /// Out of query memory or another engine resource.
    #[error("{0}; retry later or narrow the query")]
    Exhausted(String),
    /// The archive could not be read.
    #[error("reading the archive failed: {0}; retry later")]
    Store(String),
    /// The audit log could not be written, so the result was withheld.
    #[error("the query could not be audited, so no result is returned: {0}; retry later")]
    Audit(#[source] inland_store::Error),
    /// `inland export` refused the query: its output is not made only of aggregates.
    #[error("export refused: {0}")]
    NotAggregate(String),
    #[error("cannot write {}: {source}", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The query server answered with an error (`inland sql --server`).
    #[error("the query server answered {status}: {message}")]
    Server { status: u16, message: String },
    /// The query server could not be reached or answered something that is not a result.
    #[error("query server {url}: {problem}")]
    Client { url: String, problem: String },
    /// `inland audit verify` found a broken chain.
    #[error("{0}")]
    Tampered(String),
    /// A bug or an unexpected engine state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Config(_) | Self::Tokens { .. } | Self::Sql(_) | Self::NotAggregate(_) => {
                ErrorCode::InvalidInput
            }
            Self::TokenFileRead { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                ErrorCode::NotFound
            }
            Self::TokenFileRead { .. } | Self::Output { .. } => ErrorCode::Unavailable,
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::PermissionDenied,
            Self::UnknownTable { .. } => ErrorCode::NotFound,
            Self::TooManyRows { .. } | Self::Exhausted(_) => ErrorCode::ResourceExhausted,
            Self::Timeout { .. } => ErrorCode::Timeout,
            Self::Store(_) | Self::Audit(_) | Self::Client { .. } => ErrorCode::Unavailable,
            Self::Server { status, .. } => code_of_status(*status),
            Self::Tampered(_) | Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The gRPC status a Flight SQL client sees.
    pub fn status(&self) -> tonic::Status {
        self.code().status(self.to_string())
    }

    /// Classifies an engine error by its root cause: what the caller wrote wrong, what
    /// the archive or the machine could not do, or a bug.
    pub(crate) fn from_engine(e: DataFusionError) -> Self {
        let message = e.strip_backtrace();
        match e.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_)
            | DataFusionError::Configuration(_) => Self::Sql(message),
            DataFusionError::ArrowError(e, _) if user_arrow_error(e) => Self::Sql(message),
            DataFusionError::ResourcesExhausted(_) => Self::Exhausted(message),
            DataFusionError::ObjectStore(_) | DataFusionError::IoError(_) => Self::Store(message),
            _ => Self::Internal(message),
        }
    }
}

/// Arrow errors a query's own expressions cause on the data.
fn user_arrow_error(e: &ArrowError) -> bool {
    matches!(
        e,
        ArrowError::CastError(_)
            | ArrowError::DivideByZero
            | ArrowError::ArithmeticOverflow(_)
            | ArrowError::InvalidArgumentError(_)
            | ArrowError::ParseError(_)
            | ArrowError::ComputeError(_)
    )
}

/// The code an HTTP status of this service stands for (the inverse of
/// [`ErrorCode::http_status`]).
fn code_of_status(status: u16) -> ErrorCode {
    match status {
        400 => ErrorCode::InvalidInput,
        401 => ErrorCode::Unauthenticated,
        403 => ErrorCode::PermissionDenied,
        404 => ErrorCode::NotFound,
        429 => ErrorCode::ResourceExhausted,
        503 => ErrorCode::Unavailable,
        504 => ErrorCode::Timeout,
        _ => ErrorCode::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_statuses_map_back_to_their_codes() {
        for code in [
            ErrorCode::InvalidInput,
            ErrorCode::Unauthenticated,
            ErrorCode::PermissionDenied,
            ErrorCode::NotFound,
            ErrorCode::ResourceExhausted,
            ErrorCode::Unavailable,
            ErrorCode::Timeout,
            ErrorCode::Internal,
        ] {
            assert_eq!(code_of_status(code.http_status()), code);
        }
    }

    #[test]
    fn engine_errors_are_classified_by_their_root_cause() {
        let plan = DataFusionError::Plan("no such column".into());
        assert_eq!(Error::from_engine(plan).code(), ErrorCode::InvalidInput);
        let nested = DataFusionError::Context(
            "while reading".into(),
            Box::new(DataFusionError::ResourcesExhausted("memory".into())),
        );
        assert_eq!(
            Error::from_engine(nested).code(),
            ErrorCode::ResourceExhausted
        );
        let cast = DataFusionError::ArrowError(
            Box::new(ArrowError::CastError("'x' is not a number".into())),
            None,
        );
        assert_eq!(Error::from_engine(cast).code(), ErrorCode::InvalidInput);
        let bug = DataFusionError::Internal("oops".into());
        assert_eq!(Error::from_engine(bug).code(), ErrorCode::Internal);
    }
}
