//! The anonymizer (`inland anonymizer`): the stage between the geofence and the archive.
//!
//! - [`AnonymizerStage`] reads `RawRecord`s from `inland.geofenced.v1` and writes
//!   `AnonymizedRecord`s (proto/inland/pipeline/v1/anonymized.proto) to
//!   `inland.anonymized.v1`, keyed by pseudonym; [`AnonymizerConfig`] is its section.
//! - [`Pseudonymizer`] ([`keys`]): VIN → HMAC-SHA256 pseudonym under the key epoch in force
//!   at the record's recording time; [`keys::generate`] and [`keys::rotate`] manage the
//!   in-country key file.
//! - [`PurposeConfig`]: what a purpose keeps — an allowlist of VSS signals, a location
//!   precision (`precise` only with consent, `coarse` grid cells, `none`) and a time
//!   resolution. Identifiers never pass, whatever the configuration says.
//! - [`ConsentView`]: per-vehicle consent, pluggable; [`NoConsent`] (the default) means no
//!   precise location for anyone; `inland_consent::ConsentView` (the consent topic's view)
//!   grants it per vehicle and purpose.
//! - [`ErasureStage`]: for every consent withdrawal, the vehicle's pseudonyms under every
//!   key epoch go to `inland.erasure.v1`, for the archiver to erase.
//! - [`Anonymized`]: the only form in which a record may reach the archive; built by this
//!   crate alone, or checked by [`Anonymized::decode_from_topic`].
//!
//! Frames: with `frames = "anonymize"` (the default) the stage loads inland-vision's models
//! at start and refuses to start without them; telemetry-only operation is the explicit
//! `frames = "drop"`, which drops every frame.
//!
//! Logs and metrics ([`metrics`]) never carry VINs, pseudonyms, keys, positions or pixels.

mod consent;
mod erasure;
mod error;
pub mod keys;
pub mod metrics;
mod purpose;
mod record;
mod stage;
mod wire;

pub use consent::{ConsentView, NoConsent};
pub use erasure::ErasureStage;
pub use error::Error;
pub use keys::Pseudonymizer;
pub use purpose::{
    DRIVING_STATISTICS, LocationPrecision, PurposeConfig, ROAD_IMAGERY, default_purposes,
    looks_like_identifier,
};
pub use record::{Anonymized, RECORD_ID_HEADER, SCHEMA_HEADER, TRACEPARENT_HEADER};
pub use stage::{AnonymizerConfig, AnonymizerStage, FramesMode};
