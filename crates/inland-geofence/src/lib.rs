//! The geofence: decides whether a WGS-84 point lies inside a protected zone (military and
//! government compounds) or within that zone's buffer, so the pipeline drops it.
//!
//! - [`ZoneSet::from_geojson`] loads and validates zones from a GeoJSON FeatureCollection
//!   (Polygon/MultiPolygon with holes; properties `id`, `category`, `buffer_m`, `datum`).
//!   GCJ-02 zones are converted to WGS-84 vertex by vertex at load ([`datum`]), so every
//!   comparison happens in the datum vehicles report.
//! - [`ZoneSet::check`] answers one point: a coarse occupancy bitmap and an R-tree of each
//!   zone's envelope, grown by its buffer, reject most points alone; a candidate gets the
//!   exact test, which agrees with PostGIS geography `ST_DWithin` (see [`ZoneSet`]). It
//!   does not allocate.
//! - [`ZoneWatcher`] keeps the zones of a file current and refuses a bad file.
//! - [`GeofenceStage`] is the pipeline stage (`inland geofence`): it reads `RawRecord`s from
//!   `inland.raw.v1` and forwards to `inland.geofenced.v1` the samples and frames outside
//!   every zone and buffer, failing closed on positions it cannot trust;
//!   [`GeofenceConfig`] is its configuration section.
//! - [`cli`] holds the `inland zones check|test|classify` commands.
//!
//! Positions are never logged; drops are counted by category and reason ([`metrics`]).

pub mod cli;
pub mod datum;
mod error;
mod geometry;
mod grid;
pub mod metrics;
mod parse;
mod stage;
pub mod synth;
mod watch;
mod zone;

pub use error::{Error, FeatureRef};
pub use stage::{GeofenceConfig, GeofenceStage};
pub use watch::{Reload, ZoneWatcher};
pub use zone::{Bbox, Category, Datum, Reason, Summary, Verdict, Zone, ZoneSet};
