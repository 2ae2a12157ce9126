use inland_core::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the broker did not confirm delivery to {topic}: {reason}")]
    Delivery { topic: String, reason: String },
    #[error("unknown topic {0}: create it first (inland topics create)")]
    UnknownTopic(String),
    #[error("the transport is shut down")]
    Closed,
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Delivery { .. } | Self::Closed => ErrorCode::Unavailable,
            Self::UnknownTopic(_) => ErrorCode::NotFound,
        }
    }
}
