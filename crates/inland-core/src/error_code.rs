/// The small set of outcomes every crate's error type maps to. Each code has exactly one
/// gRPC status and one HTTP status, so a client sees the same meaning on either API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The input was malformed or violated a rule; retrying unchanged will fail again.
    InvalidInput,
    /// The caller is not who it must be (no or bad credentials).
    Unauthenticated,
    /// The caller is known but not allowed to do this (e.g. a VIN mismatch, no consent).
    PermissionDenied,
    /// The named thing does not exist.
    NotFound,
    /// A quota or rate limit was hit; retry later.
    ResourceExhausted,
    /// A dependency (broker, store) is unreachable or overloaded; retry later.
    Unavailable,
    /// Deadline passed before the work was durable; the outcome is unknown, retry.
    Timeout,
    /// A bug or an unexpected state inside Inland.
    Internal,
}

impl ErrorCode {
    pub fn grpc(self) -> tonic::Code {
        match self {
            Self::InvalidInput => tonic::Code::InvalidArgument,
            Self::Unauthenticated => tonic::Code::Unauthenticated,
            Self::PermissionDenied => tonic::Code::PermissionDenied,
            Self::NotFound => tonic::Code::NotFound,
            Self::ResourceExhausted => tonic::Code::ResourceExhausted,
            Self::Unavailable => tonic::Code::Unavailable,
            Self::Timeout => tonic::Code::DeadlineExceeded,
            Self::Internal => tonic::Code::Internal,
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidInput => 400,
            Self::Unauthenticated => 401,
            Self::PermissionDenied => 403,
            Self::NotFound => 404,
            Self::ResourceExhausted => 429,
            Self::Unavailable => 503,
            Self::Timeout => 504,
            Self::Internal => 500,
        }
    }

    /// A stable lower-case label, used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid_input",
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission_denied",
            Self::NotFound => "not_found",
            Self::ResourceExhausted => "resource_exhausted",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
        }
    }

    /// Builds the gRPC status for an error of this code.
    pub fn status(self, message: impl Into<String>) -> tonic::Status {
        tonic::Status::new(self.grpc(), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_distinct_http_statuses() {
        let all = [
            ErrorCode::InvalidInput,
            ErrorCode::Unauthenticated,
            ErrorCode::PermissionDenied,
            ErrorCode::NotFound,
            ErrorCode::ResourceExhausted,
            ErrorCode::Unavailable,
            ErrorCode::Timeout,
            ErrorCode::Internal,
        ];
        let mut seen: Vec<u16> = all.iter().map(|c| c.http_status()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), all.len());
        assert_eq!(
            ErrorCode::ResourceExhausted.grpc(),
            tonic::Code::ResourceExhausted
        );
    }
}
