//! Deterministic synthetic zone files and points, shared by the PostGIS oracle test and the
//! benchmark so both exercise the same shapes: star-shaped polygons of 5–24 vertices and
//! 100 m–3 km radius, a few large ones (0.5 %, 5–30 km with 4–6 vertices: edges long enough
//! that great-circle and straight-line edges differ by metres), holes, MultiPolygons, half
//! of them in GCJ-02, and buffers of 0–2 km.

use std::f64::consts::TAU;
use std::fmt::Write;

use crate::{Bbox, datum};

/// SplitMix64: tiny, fast and the same on every platform, so a seed names one data set.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }
}

/// A generated zone file and, per zone, a WGS-84 centre and the radius in metres within
/// which the zone and its buffer lie, for sampling points near it.
pub struct SyntheticZones {
    pub geojson: String,
    pub anchors: Vec<(f64, f64, f64)>,
}

/// Beijing and its surroundings: dense enough that zones and buffers overlap.
pub const BEIJING: Bbox = Bbox {
    min_lon: 115.5,
    min_lat: 39.0,
    max_lon: 117.5,
    max_lat: 41.0,
};

/// Most of eastern China, inside the GCJ-02 rectangle.
pub const EASTERN_CHINA: Bbox = Bbox {
    min_lon: 100.0,
    min_lat: 22.0,
    max_lon: 122.0,
    max_lat: 42.0,
};

/// `count` zones with centres uniform in `region`.
pub fn zones(count: usize, seed: u64, region: Bbox) -> SyntheticZones {
    let mut rng = Rng::new(seed);
    let mut geojson = String::from(r#"{"type":"FeatureCollection","features":["#);
    let mut anchors = Vec::with_capacity(count);
    for i in 0..count {
        let lat = rng.range(region.min_lat, region.max_lat);
        let lon = rng.range(region.min_lon, region.max_lon);
        let large = rng.unit() < 0.005;
        let radius = if large {
            rng.range(5_000.0, 30_000.0)
        } else {
            rng.range(100.0, 3_000.0)
        };
        let parts = if !large && rng.unit() < 0.15 {
            2 + rng.below(2)
        } else {
            1
        };
        let direction = rng.range(0.0, TAU);
        let mut polygons = Vec::with_capacity(parts);
        for k in 0..parts {
            // Parts 2.2 radii apart along one direction cannot overlap.
            let (clat, clon) = offset(lat, lon, direction, 2.2 * radius * k as f64);
            let vertices = if large {
                4 + rng.below(3)
            } else {
                5 + rng.below(20)
            };
            let mut rings = vec![star(&mut rng, clat, clon, radius, vertices, 0.6)];
            if !large && rng.unit() < 0.2 {
                // The outer ring stays beyond 0.6 radii, so this hole is inside it.
                let hole = rng.range(0.1, 0.35) * radius;
                rings.push(star(&mut rng, clat, clon, hole, 6, 0.9));
            }
            polygons.push(rings);
        }
        let gcj = rng.unit() < 0.5;
        let buffer_m = if rng.unit() < 0.1 {
            0.0
        } else {
            (rng.range(0.0, 2_000.0) * 10.0).round() / 10.0
        };
        let category = ["military", "government", "other"][i % 3];
        if i > 0 {
            geojson.push(',');
        }
        write_feature(&mut geojson, i, category, buffer_m, gcj, &polygons);
        let (wlat, wlon) = if gcj {
            datum::gcj02_to_wgs84(lat, lon)
        } else {
            (lat, lon)
        };
        let reach = radius * (1.0 + 2.2 * (parts - 1) as f64) + buffer_m;
        anchors.push((wlat, wlon, reach));
    }
    geojson.push_str("]}");
    SyntheticZones { geojson, anchors }
}

/// Points 0.3–1.6 reach from the centres of randomly chosen zones: many land inside, in
/// buffers, near their edges and just beyond.
pub fn points_near(zones: &SyntheticZones, count: usize, seed: u64) -> Vec<(f64, f64)> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            let (lat, lon, reach) = zones.anchors[rng.below(zones.anchors.len())];
            let bearing = rng.range(0.0, TAU);
            offset(lat, lon, bearing, rng.range(0.3, 1.6) * reach)
        })
        .collect()
}

/// Points uniform in `region`.
pub fn points_uniform(region: Bbox, count: usize, seed: u64) -> Vec<(f64, f64)> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            (
                rng.range(region.min_lat, region.max_lat),
                rng.range(region.min_lon, region.max_lon),
            )
        })
        .collect()
}

/// A closed star-shaped ring around a centre: vertices at increasing bearings, each at
/// `min_fraction..1` of `radius`.
fn star(
    rng: &mut Rng,
    lat: f64,
    lon: f64,
    radius: f64,
    n: usize,
    min_fraction: f64,
) -> Vec<(f64, f64)> {
    let step = TAU / n as f64;
    let mut ring: Vec<(f64, f64)> = (0..n)
        .map(|k| {
            let bearing = step * (k as f64 + rng.range(0.0, 0.8));
            offset(lat, lon, bearing, radius * rng.range(min_fraction, 1.0))
        })
        .collect();
    ring.push(ring[0]);
    ring
}

/// The point `metres` from `(lat, lon)` towards `bearing` (radians from north), on a local
/// flat approximation: good enough to shape test data.
fn offset(lat: f64, lon: f64, bearing: f64, metres: f64) -> (f64, f64) {
    let dlat = metres * bearing.cos() / 111_000.0;
    let dlon = metres * bearing.sin() / (111_000.0 * lat.to_radians().cos());
    (lat + dlat, lon + dlon)
}

fn write_feature(
    out: &mut String,
    i: usize,
    category: &str,
    buffer_m: f64,
    gcj: bool,
    polygons: &[Vec<Vec<(f64, f64)>>],
) {
    let datum = if gcj { "GCJ02" } else { "WGS84" };
    let multi = polygons.len() > 1;
    let kind = if multi { "MultiPolygon" } else { "Polygon" };
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        r#"{{"type":"Feature","properties":{{"id":"z{i}","category":"{category}","buffer_m":{buffer_m},"datum":"{datum}"}},"geometry":{{"type":"{kind}","coordinates":"#
    );
    if multi {
        out.push('[');
    }
    for (p, rings) in polygons.iter().enumerate() {
        out.push_str(if p > 0 { ",[" } else { "[" });
        for (r, ring) in rings.iter().enumerate() {
            out.push_str(if r > 0 { ",[" } else { "[" });
            for (v, (lat, lon)) in ring.iter().enumerate() {
                let _ = write!(out, "{}[{lon},{lat}]", if v > 0 { "," } else { "" });
            }
            out.push(']');
        }
        out.push(']');
    }
    if multi {
        out.push(']');
    }
    out.push_str("}}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Datum, ZoneSet};

    #[test]
    fn generated_files_load_and_are_reproducible() {
        let a = zones(300, 7, BEIJING);
        assert_eq!(a.geojson, zones(300, 7, BEIJING).geojson);
        let set = ZoneSet::from_geojson(&a.geojson).unwrap();
        let s = set.summary();
        assert_eq!(s.zones, 300);
        assert!(s.holes > 10 && s.polygons > 320, "{s:?}");
        assert!(
            s.datum(Datum::Gcj02) > 100 && s.datum(Datum::Wgs84) > 100,
            "{s:?}"
        );
        let near = points_near(&a, 2_000, 1);
        let dropped = near
            .iter()
            .filter(|(lat, lon)| set.check(*lat, *lon).is_drop())
            .count();
        assert!(
            (400..1_800).contains(&dropped),
            "{dropped} of 2000 near points dropped"
        );
    }
}
