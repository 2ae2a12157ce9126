//! The exact point-to-zone test, built to agree with PostGIS geography.
//!
//! PostGIS treats a polygon edge as the great-circle arc between its vertices (latitude and
//! longitude taken as spherical coordinates), decides inside/outside on the sphere, finds
//! the nearest boundary point on the sphere and reports the ellipsoidal (Karney) distance to
//! that point. This module does the same, through a gnomonic projection centred on the
//! query point: it maps every great circle to a straight line, and the planar distance `r`
//! from the centre grows monotonically with the angular distance (`atan r`). So in that
//! plane a plain ray-crossing test is the spherical inside test, and the nearest point of a
//! straight segment is the nearest point of the arc; both are exact on the sphere, not
//! approximations. Vertices are stored as unit vectors, so projecting one costs three dot
//! products and a division. Only the final distance uses the ellipsoid: Karney's geodesic
//! ([`geo::Geodesic`]), or, when the point is clearly inside or outside the buffer and
//! within 5 km, a local approximation good to 1 cm that decides the same way.
//!
//! The projection needs every vertex within 90° of the query point; zones are limited to
//! [`MAX_EXTENT_DEG`] and buffers to [`MAX_BUFFER_M`], and a candidate lies within its zone's
//! buffered envelope, so that always holds.

use std::f64::consts::PI;

use geo::{Distance, Geodesic, MultiPolygon, Point};

/// Widest zone accepted, in degrees of latitude or longitude. Protected compounds are
/// local; a wider polygon is a mistake in the file.
pub(crate) const MAX_EXTENT_DEG: f64 = 20.0;
/// Largest buffer accepted: `buffer_m` is metres, so a larger value is a unit mistake.
pub(crate) const MAX_BUFFER_M: f64 = 100_000.0;
/// Mean Earth radius (IUGG R1 of WGS-84), the sphere PostGIS uses for its first pass.
const SPHERE_RADIUS_M: f64 = 6_371_008.8;
/// The ellipsoidal distance between two points is at least this fraction of the spherical
/// one on [`SPHERE_RADIUS_M`] (worst case: north-south at the equator, 0.9944), so a
/// candidate whose spherical distance exceeds the buffer by more needs no geodesic.
const SPHERE_TO_ELLIPSOID_MIN: f64 = 0.99;
/// Fewest metres in one degree of latitude (at the equator), for growing envelopes.
const MIN_M_PER_DEG_LAT: f64 = 110_574.0;
/// A degree of longitude at latitude φ is `a cos φ / sqrt(1 - e² sin² φ) ≥ a cos φ` metres
/// (times π/180), so this times `cos φ` is a safe minimum.
const MIN_M_PER_DEG_LON_EQUATOR: f64 = 111_319.0;

/// A zone's polygons as unit vectors on the sphere, rings closed (last vertex = first).
#[derive(Debug)]
pub(crate) struct Shape {
    /// A spherical cap around the zone grown by its buffer (with margins): a point outside
    /// it is beyond the buffer, which one dot product shows. Tighter than the envelope.
    cap_center: [f64; 3],
    cap_cos: f64,
    xyz: Box<[[f64; 3]]>,
    /// Exclusive end of each ring in `xyz`.
    ring_ends: Box<[u32]>,
    /// Exclusive end of each polygon in `ring_ends` (outer ring first, then its holes).
    polygon_ends: Box<[u32]>,
}

/// A query point and its gnomonic frame: `p` the point, `e` east, `n` north.
pub(crate) struct Probe {
    lat: f64,
    lon: f64,
    p: [f64; 3],
    e: [f64; 3],
    n: [f64; 3],
}

/// Where a point is relative to one zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Proximity {
    Inside,
    /// Outside; `(x, y)` is the nearest boundary point in the probe's gnomonic plane.
    Outside {
        x: f64,
        y: f64,
    },
}

impl Shape {
    pub(crate) fn new(geometry: &MultiPolygon<f64>, buffer_m: f64) -> Self {
        let mut xyz = Vec::new();
        let mut ring_ends = Vec::new();
        let mut polygon_ends = Vec::new();
        for polygon in geometry {
            for ring in std::iter::once(polygon.exterior()).chain(polygon.interiors()) {
                xyz.extend(ring.coords().map(|c| unit_vector(c.y, c.x)));
                ring_ends.push(to_u32(xyz.len()));
            }
            polygon_ends.push(to_u32(ring_ends.len()));
        }
        let sum = xyz
            .iter()
            .fold([0.0; 3], |s, v| [s[0] + v[0], s[1] + v[1], s[2] + v[2]]);
        let norm = dot(&sum, &sum).sqrt();
        let cap_center = sum.map(|c| c / norm);
        let radius = xyz
            .iter()
            .map(|v| dot(v, &cap_center).clamp(-1.0, 1.0).acos())
            .fold(0.0, f64::max);
        // Any boundary point is within `radius` of the centre, so a point farther than
        // radius + buffer (as a spherical angle, with the ellipsoid bound) is beyond the
        // buffer. 1e-6 rad (6 m) covers the rounding of acos and of the dot product.
        let limit = radius + buffer_m / (SPHERE_RADIUS_M * SPHERE_TO_ELLIPSOID_MIN) + 1e-6;
        Self {
            cap_center,
            cap_cos: limit.min(PI).cos(),
            xyz: xyz.into(),
            ring_ends: ring_ends.into(),
            polygon_ends: polygon_ends.into(),
        }
    }

    /// Whether the probe is surely farther from the zone than its buffer.
    #[inline]
    pub(crate) fn beyond_buffer(&self, q: &Probe) -> bool {
        dot(&q.p, &self.cap_center) < self.cap_cos
    }

    /// Inside test and nearest boundary point, on the sphere, in one pass over the edges.
    pub(crate) fn locate(&self, q: &Probe) -> Proximity {
        let mut best_d2 = f64::INFINITY;
        let (mut best_x, mut best_y) = (0.0, 0.0);
        let mut ring_start = 0;
        let mut ring = 0;
        for &polygon_end in &*self.polygon_ends {
            // Even-odd over the outer ring and its holes; polygons of a MultiPolygon are
            // tested one by one so overlapping parts cannot cancel each other out.
            let mut odd = false;
            for &ring_end in &self.ring_ends[ring..polygon_end as usize] {
                let vertices = &self.xyz[ring_start..ring_end as usize];
                let (mut ax, mut ay) = q.project(&vertices[0]);
                for v in &vertices[1..] {
                    let (bx, by) = q.project(v);
                    // Ray from the point due north: the half-line x = 0, y > 0.
                    if (ax > 0.0) != (bx > 0.0) && ay + (by - ay) * (ax / (ax - bx)) > 0.0 {
                        odd = !odd;
                    }
                    // Nearest point of the segment to the origin; a zero-length segment
                    // (repeated vertex) takes the first branch.
                    let (dx, dy) = (bx - ax, by - ay);
                    let along = -(ax * dx + ay * dy);
                    let len2 = dx * dx + dy * dy;
                    let (cx, cy) = if along <= 0.0 {
                        (ax, ay)
                    } else if along >= len2 {
                        (bx, by)
                    } else {
                        let t = along / len2;
                        (ax + t * dx, ay + t * dy)
                    };
                    let d2 = cx * cx + cy * cy;
                    if d2 < best_d2 {
                        (best_d2, best_x, best_y) = (d2, cx, cy);
                    }
                    (ax, ay) = (bx, by);
                }
                ring_start = ring_end as usize;
            }
            if odd {
                return Proximity::Inside;
            }
            ring = polygon_end as usize;
        }
        Proximity::Outside {
            x: best_x,
            y: best_y,
        }
    }

    /// Geodesic distance in metres from the probe to the zone, 0 inside.
    pub(crate) fn distance_m(&self, q: &Probe) -> f64 {
        match self.locate(q) {
            Proximity::Inside => 0.0,
            Proximity::Outside { x, y } => q.geodesic_m(x, y),
        }
    }
}

impl Probe {
    pub(crate) fn new(lat: f64, lon: f64) -> Self {
        let (sin_lat, cos_lat) = lat.to_radians().sin_cos();
        let (sin_lon, cos_lon) = lon.to_radians().sin_cos();
        Self {
            lat,
            lon,
            p: [cos_lat * cos_lon, cos_lat * sin_lon, sin_lat],
            e: [-sin_lon, cos_lon, 0.0],
            n: [-sin_lat * cos_lon, -sin_lat * sin_lon, cos_lat],
        }
    }

    #[inline]
    fn project(&self, v: &[f64; 3]) -> (f64, f64) {
        let w = 1.0 / dot(v, &self.p);
        (dot(v, &self.e) * w, dot(v, &self.n) * w)
    }

    /// A lower bound, in metres, of the ellipsoidal distance to the point `(x, y)` of the
    /// gnomonic plane, from the exact spherical one.
    pub(crate) fn lower_bound_m(&self, x: f64, y: f64) -> f64 {
        (x * x + y * y).sqrt().atan() * SPHERE_RADIUS_M * SPHERE_TO_ELLIPSOID_MIN
    }

    /// Karney's ellipsoidal distance from the probe to the point `(x, y)` of its gnomonic
    /// plane, in metres.
    pub(crate) fn geodesic_m(&self, x: f64, y: f64) -> f64 {
        let (lat, lon) = self.unproject(x, y);
        Geodesic.distance(Point::new(self.lon, self.lat), Point::new(lon, lat))
    }

    /// The distance to the point `(x, y)` of the gnomonic plane when it is within
    /// `buffer_m`, else `None`. Decides exactly as [`Probe::geodesic_m`] would, but most
    /// points are clearly inside or outside the buffer, and for those within
    /// [`LOCAL_MAX_M`] the local approximation settles it (and is the distance reported,
    /// within [`LOCAL_ERROR_M`] of Karney's); Karney's geodesic is computed only near the
    /// buffer's edge and beyond [`LOCAL_MAX_M`].
    pub(crate) fn within_m(&self, x: f64, y: f64, buffer_m: f64) -> Option<f64> {
        let (lat, lon) = self.unproject(x, y);
        let local = local_m(self.lat, self.lon, lat, lon);
        let distance = if local <= LOCAL_MAX_M && (local - buffer_m).abs() > LOCAL_ERROR_M {
            local
        } else {
            Geodesic.distance(Point::new(self.lon, self.lat), Point::new(lon, lat))
        };
        (distance <= buffer_m).then_some(distance)
    }

    /// The point `(x, y)` of the gnomonic plane as `(lat, lon)` in degrees.
    fn unproject(&self, x: f64, y: f64) -> (f64, f64) {
        let v = [
            self.p[0] + x * self.e[0] + y * self.n[0],
            self.p[1] + x * self.e[1] + y * self.n[1],
            self.p[2] + x * self.e[2] + y * self.n[2],
        ];
        let lat = v[2].atan2(v[0].hypot(v[1])).to_degrees();
        let lon = v[1].atan2(v[0]).to_degrees();
        (lat, lon)
    }
}

/// The local approximation is used up to this distance.
const LOCAL_MAX_M: f64 = 5_000.0;
/// Bound on the local approximation's error within [`LOCAL_MAX_M`]: measured at most 4.5 mm
/// (0.3 mm within 2 km) against Karney at latitudes up to ±80°, doubled; a test checks it.
const LOCAL_ERROR_M: f64 = 0.01;

/// Ellipsoidal distance between two nearby points, in metres: the plane tangent at the mid
/// latitude, scaled by the WGS-84 meridian (M) and prime-vertical (N) radii of curvature.
/// The error grows with the cube of the distance; see [`LOCAL_ERROR_M`].
fn local_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    const A: f64 = 6_378_137.0;
    const F: f64 = 1.0 / 298.257_223_563;
    const E2: f64 = F * (2.0 - F);
    let mid = ((lat1 + lat2) / 2.0).to_radians();
    let (sin, cos) = mid.sin_cos();
    let w = 1.0 - E2 * sin * sin;
    let n = A / w.sqrt();
    let m = A * (1.0 - E2) / (w * w.sqrt());
    let dy = m * (lat2 - lat1).to_radians();
    let dx = n * cos * (lon2 - lon1).to_radians();
    dx.hypot(dy)
}

/// A zone's bounding box `[min_lon, min_lat, max_lon, max_lat]` grown by `buffer_m` so that
/// every point within `buffer_m` of the zone lies inside it. Conservative: the fewest
/// metres per degree for latitude, and for longitude the fewest at the most poleward
/// latitude the grown box reaches, plus 1 % and a millimetre-scale margin.
pub(crate) fn grow(bbox: [f64; 4], buffer_m: f64) -> [f64; 4] {
    let margin = buffer_m * 1.01 + 0.01;
    let dlat = margin / MIN_M_PER_DEG_LAT;
    let (min_lat, max_lat) = ((bbox[1] - dlat).max(-90.0), (bbox[3] + dlat).min(90.0));
    let cos = min_lat.abs().max(max_lat.abs()).to_radians().cos();
    let dlon = if cos * MIN_M_PER_DEG_LON_EQUATOR * 180.0 > margin {
        margin / (cos * MIN_M_PER_DEG_LON_EQUATOR)
    } else {
        // So close to a pole that any longitude may be within the buffer.
        360.0
    };
    [bbox[0] - dlon, min_lat, bbox[2] + dlon, max_lat]
}

fn unit_vector(lat: f64, lon: f64) -> [f64; 3] {
    let (sin_lat, cos_lat) = lat.to_radians().sin_cos();
    let (sin_lon, cos_lon) = lon.to_radians().sin_cos();
    [cos_lat * cos_lon, cos_lat * sin_lon, sin_lat]
}

#[inline]
fn dot(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn to_u32(n: usize) -> u32 {
    // Zone files are parsed from memory, far below 4 G vertices per zone.
    u32::try_from(n).expect("fewer than 2^32 vertices per zone")
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Destination, LineString, Polygon};

    fn square(lat: f64, lon: f64, half_deg: f64) -> MultiPolygon<f64> {
        let ring = LineString::from(vec![
            (lon - half_deg, lat - half_deg),
            (lon + half_deg, lat - half_deg),
            (lon + half_deg, lat + half_deg),
            (lon - half_deg, lat + half_deg),
            (lon - half_deg, lat - half_deg),
        ]);
        MultiPolygon::new(vec![Polygon::new(ring, vec![])])
    }

    #[test]
    fn inside_outside_and_hole() {
        let outer = square(40.0, 116.0, 0.01).0.remove(0).exterior().clone();
        let hole = square(40.0, 116.0, 0.002).0.remove(0).exterior().clone();
        let shape = Shape::new(
            &MultiPolygon::new(vec![Polygon::new(outer, vec![hole])]),
            0.0,
        );
        assert_eq!(shape.locate(&Probe::new(40.005, 116.0)), Proximity::Inside);
        assert!(matches!(
            shape.locate(&Probe::new(40.0, 116.0)),
            Proximity::Outside { .. }
        ));
        assert!(matches!(
            shape.locate(&Probe::new(40.02, 116.0)),
            Proximity::Outside { .. }
        ));
        // In the hole: the nearest boundary is the hole's east (or west) edge, a meridian.
        let d = shape.distance_m(&Probe::new(40.0, 116.0));
        let expected = Geodesic.distance(Point::new(116.0, 40.0), Point::new(116.002, 40.0));
        assert!((d - expected).abs() < 1e-6, "{d} vs {expected}");
    }

    #[test]
    fn distance_due_north_of_an_edge_matches_the_geodesic() {
        let shape = Shape::new(&square(30.0, 120.0, 0.01), 0.0);
        // The north edge runs along a great circle that bulges poleward of 30.01, so a point
        // due north of the middle is slightly less than the latitude difference away.
        let probe = Probe::new(30.02, 120.0);
        let d = shape.distance_m(&probe);
        let to_vertex_lat = Geodesic.distance(Point::new(120.0, 30.02), Point::new(120.0, 30.01));
        assert!(
            d < to_vertex_lat && d > to_vertex_lat - 1.0,
            "{d} vs {to_vertex_lat}"
        );
    }

    #[test]
    fn the_cap_only_excludes_points_beyond_the_buffer() {
        let shape = Shape::new(&square(30.0, 120.0, 0.01), 1_000.0);
        // Due east of the middle of the east edge the cap is loose: 1001 m out is still
        // inside it (the exact test decides), 3 km out is not.
        let east = |m: f64| Geodesic.destination(Point::new(120.01, 30.0), 90.0, m);
        for (m, beyond) in [
            (0.0, false),
            (999.0, false),
            (1_001.0, false),
            (3_000.0, true),
        ] {
            let p = east(m);
            assert_eq!(
                shape.beyond_buffer(&Probe::new(p.y(), p.x())),
                beyond,
                "{m} m"
            );
        }
        // From a corner outwards the cap is tight: 1 km beyond is still inside it.
        let p = Geodesic.destination(Point::new(120.01, 30.01), 45.0, 999.0);
        assert!(!shape.beyond_buffer(&Probe::new(p.y(), p.x())));
    }

    #[test]
    fn long_edges_follow_great_circles() {
        // A 4-degree-wide square at 50 N: its north edge bulges ~1.5 km north of lat 52 at
        // the middle, so lat 52.005 (550 m north of the vertices' latitude) is inside.
        let shape = Shape::new(&square(50.0, 10.0, 2.0), 0.0);
        assert_eq!(shape.locate(&Probe::new(52.005, 10.0)), Proximity::Inside);
        assert!(matches!(
            shape.locate(&Probe::new(52.05, 10.0)),
            Proximity::Outside { .. }
        ));
    }

    #[test]
    fn local_approximation_is_within_its_error_bound() {
        let mut rng = crate::synth::Rng::new(1);
        let mut worst: f64 = 0.0;
        for _ in 0..100_000 {
            let from = Point::new(rng.range(-179.0, 179.0), rng.range(-80.0, 80.0));
            let to = Geodesic.destination(from, rng.range(0.0, 360.0), rng.range(0.0, LOCAL_MAX_M));
            let karney = Geodesic.distance(from, to);
            worst = worst.max((local_m(from.y(), from.x(), to.y(), to.x()) - karney).abs());
        }
        assert!(worst < LOCAL_ERROR_M / 2.0, "worst {worst} m");
    }

    #[test]
    fn within_decides_like_karney_at_the_edge() {
        let probe = Probe::new(40.0, 116.0);
        for (x, y) in [(1e-4, 2e-4), (3e-4, -1e-4), (5e-4, 5e-4)] {
            let exact = probe.geodesic_m(x, y);
            for buffer in [
                exact - 0.001,
                exact,
                exact + 0.001,
                exact * 2.0,
                exact / 2.0,
            ] {
                let got = probe.within_m(x, y, buffer);
                assert_eq!(got.is_some(), exact <= buffer, "{exact} vs buffer {buffer}");
                if let Some(d) = got {
                    assert!((d - exact).abs() < LOCAL_ERROR_M, "{d} vs {exact}");
                }
            }
        }
    }

    #[test]
    fn grown_envelope_holds_every_point_within_the_buffer() {
        for lat in [0.0, 30.0, 60.0, 80.0] {
            let bbox = [116.0, lat, 116.01, lat + 0.01];
            let g = grow(bbox, 2_000.0);
            // Points exactly 2 km due west and due north of the box's corners.
            let west = Geodesic.destination(Point::new(116.0, lat + 0.01), 270.0, 2_000.0);
            let north = Geodesic.destination(Point::new(116.0, lat + 0.01), 0.0, 2_000.0);
            for p in [west, north] {
                assert!(p.x() >= g[0] && p.y() <= g[3], "{p:?} outside {g:?}");
            }
        }
        assert_eq!(grow([0.0, 89.99, 1.0, 90.0], 2_000.0)[0], -360.0);
    }
}
