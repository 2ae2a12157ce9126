use std::path::PathBuf;

use inland_core::ErrorCode;

/// Everything that can stop a frame from being anonymized. A frame that fails for any
/// reason is never published: the stage sends it to the dead-letter topic with this
/// message, which names the stage that failed and never carries pixel data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the frame is not a JPEG (it does not start with the SOI marker FF D8)")]
    NotJpeg,
    #[error("the JPEG is corrupt or truncated: {0}")]
    CorruptJpeg(String),
    #[error(
        "the frame is {width}x{height} px, over the configured limit of {max_side} px a side \
         or {max_pixels} px in all; raise limits in the vision config if such frames are expected"
    )]
    TooLarge {
        width: usize,
        height: usize,
        max_side: usize,
        max_pixels: usize,
    },
    #[error(
        "ONNX Runtime could not be loaded from {path}: {reason}; run scripts/fetch-models.sh \
         and set ORT_DYLIB_PATH to the path it prints"
    )]
    Runtime { path: PathBuf, reason: String },
    #[error("{what} is not configured: {hint}")]
    NotConfigured {
        what: &'static str,
        hint: &'static str,
    },
    #[error(
        "the model {path} could not be loaded: {reason}; run scripts/fetch-models.sh and set \
         INLAND_MODELS_DIR to the directory it prints"
    )]
    Model { path: PathBuf, reason: String },
    #[error("{model} inference failed: {reason}")]
    Inference { model: &'static str, reason: String },
    #[error("the JPEG encoder failed: {0}")]
    Encode(String),
    #[error("invalid vision config: {0}")]
    Config(String),
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotJpeg | Self::CorruptJpeg(_) | Self::TooLarge { .. } => ErrorCode::InvalidInput,
            Self::Config(_) | Self::NotConfigured { .. } => ErrorCode::InvalidInput,
            Self::Model { .. } | Self::Io { .. } => ErrorCode::NotFound,
            Self::Runtime { .. } | Self::Inference { .. } | Self::Encode(_) => ErrorCode::Internal,
        }
    }

    /// A short stable label for metrics and dead-letter headers.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotJpeg => "not_jpeg",
            Self::CorruptJpeg(_) => "corrupt_jpeg",
            Self::TooLarge { .. } => "too_large",
            Self::Runtime { .. } => "runtime",
            Self::NotConfigured { .. } => "not_configured",
            Self::Model { .. } => "model",
            Self::Inference { .. } => "inference",
            Self::Encode(_) => "encode",
            Self::Config(_) => "config",
            Self::Io { .. } => "io",
        }
    }

    pub(crate) fn inference(model: &'static str, e: impl std::fmt::Display) -> Self {
        Self::Inference {
            model,
            reason: e.to_string(),
        }
    }
}
