use std::fmt;
use std::io;
use std::path::PathBuf;

use inland_core::ErrorCode;

/// Which feature of a zone file an error is about: its position in `features` and, when it
/// has a usable one, its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureRef {
    pub index: usize,
    pub id: Option<String>,
}

impl fmt::Display for FeatureRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) => write!(f, "feature {} (id {id:?})", self.index),
            None => write!(f, "feature {} (no id)", self.index),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("zone file is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("zone file: {0}")]
    Collection(String),
    #[error("zone file, {at}: {problem}")]
    Feature { at: FeatureRef, problem: String },
    #[error("cannot read zone file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A malformed line of `inland zones classify` input. The message never repeats the
    /// line, which may hold a position.
    #[error("input line {line}: {problem}")]
    Input { line: u64, problem: String },
    #[error("cannot read input: {0}")]
    InputIo(#[source] io::Error),
    #[error("cannot write output: {0}")]
    Output(#[source] io::Error),
    #[error("cannot start the zone file watcher thread: {0}")]
    Spawn(#[source] io::Error),
    /// The geofence stage's configuration cannot work (no zone file, a meaningless limit).
    #[error("geofence configuration: {0}")]
    Config(String),
}

impl Error {
    pub(crate) fn feature(index: usize, id: Option<&str>, problem: impl Into<String>) -> Self {
        Self::Feature {
            at: FeatureRef {
                index,
                id: id.map(str::to_owned),
            },
            problem: problem.into(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Json(_)
            | Self::Collection(_)
            | Self::Feature { .. }
            | Self::Input { .. }
            | Self::Config(_) => ErrorCode::InvalidInput,
            Self::Read { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                ErrorCode::NotFound
            }
            Self::Read { .. } | Self::InputIo(_) | Self::Output(_) => ErrorCode::Unavailable,
            Self::Spawn(_) => ErrorCode::Internal,
        }
    }
}
