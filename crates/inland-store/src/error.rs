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
    /// The `store` configuration cannot work, or a file it names is unusable.
    #[error("store configuration: {0}")]
    Config(String),
    /// The configured region is not on the allowlist (the region lock).
    #[error(
        "store.s3.region {region:?} is not an allowed region ({}): the archive must stay in \
         the country; set store.s3.region to the store's region",
        allowed.join(", ")
    )]
    RegionNotAllowed {
        region: String,
        allowed: Vec<String>,
    },
    /// The bucket is not in the configured region, or in one off the allowlist.
    #[error(
        "bucket {bucket:?} is in region {actual:?}, but store.s3.region is {configured:?}{}: \
         refusing to use it (the region lock); point store.s3 at an in-country bucket",
        if *allowed { "" } else { " and that region is not an allowed region" }
    )]
    WrongRegion {
        bucket: String,
        configured: String,
        actual: String,
        /// Whether `actual` is on the allowlist.
        allowed: bool,
    },
    /// No usable S3 credentials in the environment.
    #[error("S3 credentials: {0}")]
    Credentials(String),
    #[error(
        "cannot reach the object store at {endpoint}: {detail}; check store.s3.endpoint and that the store is up"
    )]
    Unreachable { endpoint: String, detail: String },
    #[error(
        "TLS with the object store at {endpoint} failed: {detail}; if the store uses a private CA, set store.s3.ca_file to it"
    )]
    Tls { endpoint: String, detail: String },
    #[error(
        "{op} on the object store at {endpoint} timed out; retry, or raise store.s3.attempt_timeout"
    )]
    Timeout { op: &'static str, endpoint: String },
    /// The credentials are known to the store but lack a permission.
    #[error(
        "{op} on bucket {bucket:?} was denied: {detail}; grant the access key read, write (and for bootstrap, owner) on the bucket"
    )]
    AccessDenied {
        op: &'static str,
        bucket: String,
        detail: String,
    },
    /// The store does not know the credentials, or the signature does not match.
    #[error(
        "the object store rejected the credentials for {op}: {detail}; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )]
    BadCredentials { op: &'static str, detail: String },
    #[error(
        "bucket {bucket:?} does not exist at {endpoint}; create it with `inland storage bootstrap`"
    )]
    NoSuchBucket { bucket: String, endpoint: String },
    /// An SSE-C object read without its key or with another key, or the reverse.
    #[error(
        "{op} {key:?}: {detail}; the object was written with a different store.s3.sse_c_key_file setting or key"
    )]
    Encryption {
        op: &'static str,
        key: String,
        detail: String,
    },
    /// Any other reply of the store.
    #[error("{op} failed at the object store: {code} (HTTP {status}): {detail}")]
    Service {
        op: &'static str,
        status: u16,
        code: String,
        detail: String,
    },
    /// The bucket's lifecycle rules in force keep data longer than configured, or miss a
    /// data class.
    #[error(
        "lifecycle rules of bucket {bucket:?} differ from store.shelf_life: {findings}; run `inland storage bootstrap` to re-apply them"
    )]
    LifecycleDrift { bucket: String, findings: String },
    /// A report could not be written (the `inland storage` commands).
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadKey(_)
            | Self::Config(_)
            | Self::RegionNotAllowed { .. }
            | Self::WrongRegion { .. }
            | Self::Encryption { .. }
            | Self::LifecycleDrift { .. } => ErrorCode::InvalidInput,
            Self::NotFound(_) | Self::NoSuchBucket { .. } => ErrorCode::NotFound,
            Self::Local { .. } | Self::Unreachable { .. } | Self::Tls { .. } => {
                ErrorCode::Unavailable
            }
            Self::Credentials(_) | Self::BadCredentials { .. } => ErrorCode::Unauthenticated,
            Self::AccessDenied { .. } => ErrorCode::PermissionDenied,
            Self::Timeout { .. } => ErrorCode::Timeout,
            Self::Service { status, code, .. } => match (*status, code.as_str()) {
                (_, "SlowDown") | (429, _) => ErrorCode::ResourceExhausted,
                (500.., _) => ErrorCode::Unavailable,
                _ => ErrorCode::Internal,
            },
            Self::Output(_) => ErrorCode::Internal,
        }
    }

    /// A short stable name for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadKey(_) => "bad_key",
            Self::NotFound(_) => "not_found",
            Self::Local { .. } => "local_io",
            Self::Config(_) => "config",
            Self::RegionNotAllowed { .. } | Self::WrongRegion { .. } => "wrong_region",
            Self::Credentials(_) | Self::BadCredentials { .. } => "credentials",
            Self::Unreachable { .. } => "unreachable",
            Self::Tls { .. } => "tls",
            Self::Timeout { .. } => "timeout",
            Self::AccessDenied { .. } => "access_denied",
            Self::NoSuchBucket { .. } => "no_such_bucket",
            Self::Encryption { .. } => "encryption",
            Self::Service { .. } => "service",
            Self::LifecycleDrift { .. } => "lifecycle_drift",
            Self::Output(_) => "output",
        }
    }
}
