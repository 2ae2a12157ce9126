//! Every geofence metric together with its log line. Positions never appear here: a drop is
//! counted and logged by zone category and reason only.

use std::path::Path;

use crate::stage::UntrustedPosition;
use crate::{Category, Error, Summary, Verdict};

/// Points decided, by outcome (`keep` or `drop`).
pub const POINTS: &str = "inland_geofence_points_total";
/// Dropped points, by zone `category` and `reason` (`inside`, `within_buffer`; with
/// category `none`: `bad_position`, or `lone_coordinate` for a telemetry latitude or
/// longitude without its partner).
pub const DROPPED: &str = "inland_geofence_dropped_total";
/// Telemetry samples the stage decided, by outcome (`kept` or `dropped`).
pub const SAMPLES: &str = "inland_geofence_samples_total";
/// Camera frames the stage decided, by outcome (`kept` or `dropped`).
pub const FRAMES: &str = "inland_geofence_frames_total";
/// Frames dropped without a zone check because their position cannot be trusted, by
/// `reason` (`no_position`, `stale_position`, `inaccurate_position`).
pub const UNTRUSTED_FRAMES: &str = "inland_geofence_untrusted_frames_total";
/// Zones in force, by category.
pub const ZONES: &str = "inland_geofence_zones";
/// Zone file loads, by outcome (`loaded` or `refused`).
pub const LOADS: &str = "inland_geofence_zone_loads_total";

/// Counts one decided point.
pub fn verdict(v: &Verdict<'_>) {
    let (category, reason) = match v {
        Verdict::Keep => {
            metrics::counter!(POINTS, "outcome" => "keep").increment(1);
            return;
        }
        Verdict::Drop { zone, reason } => (zone.category().as_str(), reason.as_str()),
        Verdict::BadPosition => ("none", "bad_position"),
    };
    metrics::counter!(POINTS, "outcome" => "drop").increment(1);
    metrics::counter!(DROPPED, "category" => category, "reason" => reason).increment(1);
    tracing::trace!(category, reason, "point dropped");
}

/// A telemetry latitude or longitude without its partner at the same instant: not a
/// position, so it is dropped, like a bad position.
pub(crate) fn lone_coordinate() {
    let (category, reason) = ("none", "lone_coordinate");
    metrics::counter!(POINTS, "outcome" => "drop").increment(1);
    metrics::counter!(DROPPED, "category" => category, "reason" => reason).increment(1);
    tracing::trace!(category, reason, "point dropped");
}

/// One telemetry batch decided: how many of its samples are kept and dropped.
pub(crate) fn samples(kept: usize, dropped: usize) {
    metrics::counter!(SAMPLES, "outcome" => "kept").increment(kept as u64);
    metrics::counter!(SAMPLES, "outcome" => "dropped").increment(dropped as u64);
    tracing::trace!(kept, dropped, "telemetry batch geofenced");
}

/// One camera frame decided.
pub(crate) fn frame(kept: bool) {
    let outcome = if kept { "kept" } else { "dropped" };
    metrics::counter!(FRAMES, "outcome" => outcome).increment(1);
    tracing::trace!(outcome, "frame geofenced");
}

/// A frame is dropped because its position cannot be trusted (fail closed).
pub(crate) fn frame_untrusted(why: UntrustedPosition) {
    let reason = why.as_str();
    metrics::counter!(UNTRUSTED_FRAMES, "reason" => reason).increment(1);
    tracing::debug!(reason, "frame dropped: its position cannot be trusted");
}

/// A zone file was loaded and is now in force.
pub fn zones_loaded(path: &Path, summary: &Summary) {
    metrics::counter!(LOADS, "outcome" => "loaded").increment(1);
    for c in Category::ALL {
        metrics::gauge!(ZONES, "category" => c.as_str()).set(summary.category(c) as f64);
    }
    tracing::info!(
        path = %path.display(),
        zones = summary.zones,
        military = summary.category(Category::Military),
        government = summary.category(Category::Government),
        other = summary.category(Category::Other),
        vertices = summary.vertices,
        "zone file loaded"
    );
}

/// A changed zone file was refused; the zones loaded before stay in force.
pub fn zones_refused(path: &Path, error: &Error) {
    metrics::counter!(LOADS, "outcome" => "refused").increment(1);
    tracing::error!(
        path = %path.display(),
        %error,
        "zone file refused, the previous zones stay in force: fix the file"
    );
}
