//! Every geofence metric together with its log line. Positions never appear here: a drop is
//! counted and logged by zone category and reason only.

use std::path::Path;

use crate::{Category, Error, Summary, Verdict};

/// Points decided, by outcome (`keep` or `drop`).
pub const POINTS: &str = "inland_geofence_points_total";
/// Dropped points, by zone `category` and `reason` (`inside`, `within_buffer`, or
/// `bad_position` with category `none`).
pub const DROPPED: &str = "inland_geofence_dropped_total";
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
