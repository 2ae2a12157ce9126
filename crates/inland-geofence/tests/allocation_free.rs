//! `ZoneSet::check` must not allocate: it runs for every point of every batch.

use std::alloc::System;

use inland_geofence::{ZoneSet, synth};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn check_does_not_allocate() {
    let zones = synth::zones(2_000, 5, synth::BEIJING);
    let set = ZoneSet::from_geojson(&zones.geojson).unwrap();
    let mut points = synth::points_near(&zones, 50_000, 6);
    points.extend(synth::points_uniform(synth::BEIJING, 50_000, 7));
    // Karney's geodesic sets itself up lazily on first use; `nearby` always uses it.
    let warmed: usize = points[..100]
        .iter()
        .map(|(lat, lon)| set.nearby(*lat, *lon).count())
        .sum();
    assert!(warmed > 0);

    let region = Region::new(GLOBAL);
    let dropped = points
        .iter()
        .filter(|(lat, lon)| set.check(*lat, *lon).is_drop())
        .count();
    let change = region.change();
    assert_eq!(change.allocations + change.reallocations, 0, "{change:?}");
    assert!(
        dropped > 10_000,
        "the exact test and the geodesic ran: {dropped} dropped"
    );
}
