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
//! - Consent: a record serves only the purposes the gateway admitted it for
//!   (`RawRecord.purposes`, decided from the consent topic when the upload was acked),
//!   and keeps precise positions only for `RawRecord.precise_location_purposes`. A record
//!   naming none serves none: there is no default grant.
//! - [`ErasureStage`]: for every consent withdrawal, the vehicle's pseudonyms under every
//!   key epoch go to `inland.erasure.v1`, for the archiver to erase.
//! - [`Anonymized`]: the only form in which a record may reach the archive; built by this
//!   crate alone, or checked by [`Anonymized::decode_from_topic`]; telemetry can be read
//!   in place with the same checks ([`Anonymized::read_from_topic`], [`TelemetryView`]).
//!
//! Frames: with `frames = "anonymize"` (the default) the stage loads inland-vision's models
//! at start and refuses to start without them; telemetry-only operation is the explicit
//! `frames = "drop"`, which drops every frame.
//!
//! Logs and metrics ([`metrics`]) never carry VINs, pseudonyms, keys, positions or pixels.

mod erasure;
mod error;
pub mod keys;
pub mod metrics;
mod purpose;
mod record;
mod stage;
mod view;
mod wire;

pub use erasure::ErasureStage;
pub use error::Error;
pub use inland_proto::wire::Value as SampleValue;
pub use keys::Pseudonymizer;
pub use purpose::{
    DRIVING_STATISTICS, LocationPrecision, PurposeConfig, ROAD_IMAGERY, default_purposes,
    looks_like_identifier,
};
pub use record::{Anonymized, RECORD_ID_HEADER, SCHEMA_HEADER, TRACEPARENT_HEADER};
pub use stage::{AnonymizerConfig, AnonymizerStage, FramesMode};
pub use view::{FromTopic, TelemetrySample, TelemetryView};
