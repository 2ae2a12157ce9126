//! Frame anonymization for Inland: faces and licence plates in vehicle camera frames are
//! personal data, so no frame leaves this crate with one recognisable.
//!
//! [`Anonymizer::anonymize_jpeg`] decodes a JPEG (rejecting anything that is not a whole,
//! reasonably sized JPEG), finds faces with CenterFace and plates with a RetinaFace-style
//! plate detector (both on ONNX Runtime), grows every box by a margin, destroys it with a
//! coarse noisy mosaic and re-encodes the pixels, so no metadata survives. Any failure is
//! an error and the frame must not be published. See README.md for the method and figures.

mod anonymizer;
pub mod cli;
mod config;
pub mod detect;
mod error;
pub mod eval;
pub mod frame;
pub mod geometry;
mod metrics;
mod onnx;
mod proposals;
mod redact;
mod resample;
mod runtime;

pub use anonymizer::{Anonymized, Anonymizer, Detection, Source};
pub use config::{
    ColourRange, FaceConfig, Limits, Margin, PassScale, PlateConfig, PlateModelKind,
    ProposalConfig, RedactionConfig, VisionConfig,
};
pub use error::Error;
pub use resample::View;
