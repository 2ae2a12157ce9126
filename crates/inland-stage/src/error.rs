use inland_core::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the broker did not confirm delivery to {topic}: {reason}")]
    Delivery { topic: String, reason: String },
    #[error("unknown topic {0}: create it first (inland topics create)")]
    UnknownTopic(String),
    #[error("the transport is shut down")]
    Closed,
    /// A Kafka client call other than a delivery failed (consume, commit, admin).
    #[error(
        "Kafka {op} failed: {reason}; check that the brokers are reachable and the credentials valid"
    )]
    Kafka { op: &'static str, reason: String },
    #[error("invalid transport configuration: {0}")]
    Config(String),
    #[error("stage {stage} failed: a worker panicked while processing a record; see the log above")]
    Panicked { stage: String },
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Delivery { .. } | Self::Closed | Self::Kafka { .. } => ErrorCode::Unavailable,
            Self::UnknownTopic(_) => ErrorCode::NotFound,
            Self::Config(_) => ErrorCode::InvalidInput,
            Self::Panicked { .. } => ErrorCode::Internal,
        }
    }

    /// Whether waiting and trying again can help: the broker may come back, the topic may
    /// be created by an operator. Configuration errors and bugs will not heal.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self.code(), ErrorCode::Unavailable | ErrorCode::NotFound)
    }
}
