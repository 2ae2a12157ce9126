use inland_consent::proto::Category;
use inland_core::ErrorCode;

/// Why the gateway refused a request or could not start. Each maps to one gRPC code,
/// carried in the ack of a rejected upload.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "this upload is for VIN {claimed}, but the client certificate belongs to another vehicle"
    )]
    VinMismatch { claimed: String },
    /// The vehicle (or the driver profile it named) has not consented to the upload's
    /// category.
    #[error(
        "not stored: {} not consented to {} ({}){}; nothing of it is collected \
         without a grant. Its owner grants it in the vehicle (inland.consent.v1.ConsentService/Grant), \
         or an operator records it: inland consent grant --vin <VIN> --category {} --purpose <PURPOSE> \
         --notice-version <V> --notice-file <NOTICE> --actor <WHO>",
        if *driver_profile {
            "this vehicle and the driver profile it names have not both"
        } else {
            "this vehicle has"
        },
        inland_consent::category_label(*category),
        category.as_str_name(),
        if *category == Category::CabinCamera {
            ": this camera_id does not name an exterior camera (gateway.exterior_cameras), so its \
             frames are cabin camera frames"
        } else {
            ""
        },
        inland_consent::category_flag(*category)
    )]
    NoConsent {
        category: Category,
        driver_profile: bool,
    },
    #[error("{0}")]
    Consent(#[from] inland_consent::Error),
    #[error("rate limit: at most {per_second} uploads/s per vehicle (burst {burst}); retry later")]
    RateLimited { per_second: u32, burst: u32 },
    #[error("not stored: the broker did not confirm the upload ({0}); retry")]
    NotDurable(String),
    #[error("not stored: no delivery report within {0:?}; retry")]
    DeliveryTimeout(std::time::Duration),
    #[error("vehicle not authenticated: {0}")]
    Unauthenticated(String),
    #[error("gateway configuration: {0}")]
    Config(String),
    #[error("TLS: {0}")]
    Tls(#[from] inland_tls::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) | Self::Config(_) => ErrorCode::InvalidInput,
            Self::VinMismatch { .. } | Self::NoConsent { .. } => ErrorCode::PermissionDenied,
            Self::Consent(e) => e.code(),
            Self::RateLimited { .. } => ErrorCode::ResourceExhausted,
            Self::NotDurable(_) => ErrorCode::Unavailable,
            Self::DeliveryTimeout(_) => ErrorCode::Timeout,
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Tls(e) => e.code(),
            Self::Transport(_) | Self::Bind { .. } => ErrorCode::Internal,
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        e.code().status(e.to_string())
    }
}
