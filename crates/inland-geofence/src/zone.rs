use std::fmt;
use std::ops::ControlFlow;
use std::path::Path;

use geo::{BoundingRect, CoordsIter, MultiPolygon};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};

use crate::Error;
use crate::geometry::{self, Probe, Proximity, Shape};
use crate::grid::Occupancy;

/// What kind of site a zone protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Military,
    Government,
    Other,
}

impl Category {
    pub const ALL: [Self; 3] = [Self::Military, Self::Government, Self::Other];

    /// The name used in zone files, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Military => "military",
            Self::Government => "government",
            Self::Other => "other",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// The datum a zone was published in. Zones are converted to WGS-84 at load either way;
/// this records where they came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Datum {
    Wgs84,
    /// The offset datum Chinese maps publish in (see [`crate::datum`]).
    Gcj02,
}

impl Datum {
    pub const ALL: [Self; 2] = [Self::Wgs84, Self::Gcj02];

    /// The name used in zone files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wgs84 => "WGS84",
            Self::Gcj02 => "GCJ02",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// One protected zone, its geometry already in WGS-84.
#[derive(Debug)]
pub struct Zone {
    id: String,
    category: Category,
    buffer_m: f64,
    datum: Datum,
    geometry: MultiPolygon<f64>,
    shape: Shape,
    /// Bounding box grown by the buffer, `[min_lon, min_lat, max_lon, max_lat]`.
    reach: [f64; 4],
}

impl Zone {
    /// `geometry` must be WGS-84 and already validated (closed, non-degenerate rings no
    /// wider than the extent limit); the parser guarantees it.
    pub(crate) fn new(
        id: String,
        category: Category,
        buffer_m: f64,
        datum: Datum,
        geometry: MultiPolygon<f64>,
    ) -> Self {
        let rect = geometry
            .bounding_rect()
            .expect("a validated zone has vertices");
        let bbox = [rect.min().x, rect.min().y, rect.max().x, rect.max().y];
        Self {
            id,
            category,
            buffer_m,
            datum,
            shape: Shape::new(&geometry, buffer_m),
            reach: geometry::grow(bbox, buffer_m),
            geometry,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn category(&self) -> Category {
        self.category
    }

    /// Metres around the zone that are protected too.
    pub fn buffer_m(&self) -> f64 {
        self.buffer_m
    }

    /// The datum the zone file gave; [`Zone::geometry`] is WGS-84 regardless.
    pub fn source_datum(&self) -> Datum {
        self.datum
    }

    /// The zone's polygons in WGS-84 (x = longitude, y = latitude, degrees).
    pub fn geometry(&self) -> &MultiPolygon<f64> {
        &self.geometry
    }

    fn reaches(&self, lat: f64, lon: f64) -> bool {
        let r = &self.reach;
        lon >= r[0] && lon <= r[2] && lat >= r[1] && lat <= r[3]
    }

    /// The exact test for a point already known to be within the buffered envelope.
    fn judge(&self, probe: &Probe) -> Option<Reason> {
        if self.shape.beyond_buffer(probe) {
            return None;
        }
        match self.shape.locate(probe) {
            Proximity::Inside => Some(Reason::Inside),
            // Most candidates are far enough that the spherical bound settles it.
            Proximity::Outside { x, y } if probe.lower_bound_m(x, y) > self.buffer_m => None,
            Proximity::Outside { x, y } => probe
                .within_m(x, y, self.buffer_m)
                .map(|distance_m| Reason::WithinBuffer { distance_m }),
        }
    }
}

/// Why a point was dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason {
    Inside,
    /// Outside the zone, `distance_m` (geodesic, to the nearest edge) ≤ its buffer.
    WithinBuffer {
        distance_m: f64,
    },
}

impl Reason {
    /// The label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inside => "inside",
            Self::WithinBuffer { .. } => "within_buffer",
        }
    }
}

/// The answer for one point.
#[derive(Debug, Clone, Copy)]
pub enum Verdict<'a> {
    Keep,
    /// Inside `zone` or its buffer. When several zones catch the point, one of them.
    Drop {
        zone: &'a Zone,
        reason: Reason,
    },
    /// Not a WGS-84 position (NaN, latitude beyond ±90 or longitude beyond ±180). Nothing can
    /// be said about where it was, so it must be dropped: the geofence fails closed.
    BadPosition,
}

impl Verdict<'_> {
    /// Whether the point must be dropped (caught by a zone, or not a position at all).
    pub fn is_drop(&self) -> bool {
        !matches!(self, Self::Keep)
    }
}

/// A WGS-84 bounding box in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bbox {
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
}

/// What a zone file holds, for `inland zones check` and the load log.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub zones: usize,
    /// Zone counts in the order of [`Category::ALL`].
    pub by_category: [usize; 3],
    /// Zone counts in the order of [`Datum::ALL`].
    pub by_datum: [usize; 2],
    pub polygons: usize,
    pub holes: usize,
    /// Distinct ring vertices (a ring's closing position is not counted twice).
    pub vertices: usize,
    /// Of the zones themselves, without buffers; `None` when there are no zones.
    pub bbox: Option<Bbox>,
    pub max_buffer_m: f64,
}

impl Summary {
    fn of(zones: &[Zone]) -> Self {
        let mut s = Self {
            zones: zones.len(),
            by_category: [0; 3],
            by_datum: [0; 2],
            polygons: 0,
            holes: 0,
            vertices: 0,
            bbox: None,
            max_buffer_m: 0.0,
        };
        for z in zones {
            s.by_category[z.category as usize] += 1;
            s.by_datum[z.datum as usize] += 1;
            let polygons = z.geometry.0.len();
            let holes: usize = z.geometry.iter().map(|p| p.interiors().len()).sum();
            s.polygons += polygons;
            s.holes += holes;
            s.vertices += z.geometry.coords_count() - polygons - holes;
            s.max_buffer_m = s.max_buffer_m.max(z.buffer_m);
            let r = z
                .geometry
                .bounding_rect()
                .expect("validated zones have vertices");
            let b = s.bbox.get_or_insert(Bbox {
                min_lon: r.min().x,
                min_lat: r.min().y,
                max_lon: r.max().x,
                max_lat: r.max().y,
            });
            b.min_lon = b.min_lon.min(r.min().x);
            b.min_lat = b.min_lat.min(r.min().y);
            b.max_lon = b.max_lon.max(r.max().x);
            b.max_lat = b.max_lat.max(r.max().y);
        }
        s
    }

    pub fn category(&self, c: Category) -> usize {
        self.by_category[c as usize]
    }

    pub fn datum(&self, d: Datum) -> usize {
        self.by_datum[d as usize]
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cats = Category::ALL.map(|c| format!("{} {}", c.as_str(), self.category(c)));
        let datums = Datum::ALL.map(|d| format!("{} {}", d.as_str(), self.datum(d)));
        writeln!(f, "zones: {} ({})", self.zones, cats.join(", "))?;
        writeln!(
            f,
            "source datum: {} (all converted to WGS-84 at load)",
            datums.join(", ")
        )?;
        writeln!(
            f,
            "polygons: {}, holes: {}, vertices: {}",
            self.polygons, self.holes, self.vertices
        )?;
        match self.bbox {
            Some(b) => writeln!(
                f,
                "bbox (WGS-84): lon {:.6}..{:.6}, lat {:.6}..{:.6}",
                b.min_lon, b.max_lon, b.min_lat, b.max_lat
            )?,
            None => writeln!(f, "bbox (WGS-84): none")?,
        }
        writeln!(f, "largest buffer: {} m", self.max_buffer_m)
    }
}

/// The R-tree holds the envelopes in `f32`, rounded outwards, so it is half the memory to
/// walk. Rounding the query point to nearest stays conservative: rounding is monotone,
/// so a point inside an envelope rounds to a point inside the rounded-out envelope.
type Entry = GeomWithData<Rectangle<[f32; 2]>, u32>;

/// A validated set of zones with its spatial index.
///
/// [`ZoneSet::check`] first asks a coarse occupancy bitmap whether any zone's envelope,
/// grown by its buffer, touches the point's cell (most traffic stops there), then the
/// R-tree for the zones whose grown envelope holds the point. For each candidate: a
/// spherical cap test, then the inside test and the nearest boundary point on the sphere
/// (exact, like PostGIS geography; see the `geometry` module), a spherical lower bound
/// that settles most candidates, and otherwise the ellipsoidal distance to that point.
/// A point is dropped when that distance is ≤ the zone's buffer; the `postgis_oracle` test
/// measures the agreement with PostGIS `ST_DWithin(geography)`.
#[derive(Debug)]
pub struct ZoneSet {
    zones: Vec<Zone>,
    occupancy: Occupancy,
    index: RTree<Entry>,
    summary: Summary,
}

impl ZoneSet {
    /// Parses and validates a GeoJSON FeatureCollection of zones (see the crate docs for the
    /// properties). Every problem is reported with the feature's index and id.
    pub fn from_geojson(text: &str) -> Result<Self, Error> {
        Self::from_geojson_bytes(text.as_bytes())
    }

    /// [`ZoneSet::from_geojson`] on UTF-8 bytes, as read from a file.
    pub fn from_geojson_bytes(bytes: &[u8]) -> Result<Self, Error> {
        Ok(Self::new(crate::parse::zones(bytes)?))
    }

    /// Reads and validates a zone file.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_geojson_bytes(&bytes)
    }

    fn new(zones: Vec<Zone>) -> Self {
        let reaches: Vec<[f64; 4]> = zones.iter().map(|z| z.reach).collect();
        let entries = reaches
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let lower = [down(r[0]), down(r[1])];
                let upper = [up(r[2]), up(r[3])];
                let i = u32::try_from(i).expect("fewer than 2^32 zones");
                GeomWithData::new(Rectangle::from_corners(lower, upper), i)
            })
            .collect();
        Self {
            occupancy: Occupancy::new(&reaches),
            index: RTree::bulk_load(entries),
            summary: Summary::of(&zones),
            zones,
        }
    }

    /// Decides one WGS-84 point. Does not allocate.
    pub fn check(&self, lat: f64, lon: f64) -> Verdict<'_> {
        if !valid(lat, lon) {
            return Verdict::BadPosition;
        }
        if !self.occupancy.maybe(lat, lon) {
            return Verdict::Keep;
        }
        let mut probe = None;
        // Internal iteration recurses on the stack; the iterator form keeps a stack of
        // nodes that can spill to the heap.
        let found = self.index.locate_in_envelope_intersecting_int(
            &AABB::from_point([lon as f32, lat as f32]),
            |entry| {
                let zone = &self.zones[entry.data as usize];
                let probe = probe.get_or_insert_with(|| Probe::new(lat, lon));
                match zone.judge(probe) {
                    Some(reason) => ControlFlow::Break(Verdict::Drop { zone, reason }),
                    None => ControlFlow::Continue(()),
                }
            },
        );
        match found {
            ControlFlow::Break(verdict) => verdict,
            ControlFlow::Continue(()) => Verdict::Keep,
        }
    }

    /// [`ZoneSet::check`] without the R-tree: every zone's buffered envelope is tested in
    /// turn, then the same exact test. For measuring what the index buys and for
    /// cross-checking it; always slower.
    pub fn check_linear(&self, lat: f64, lon: f64) -> Verdict<'_> {
        if !valid(lat, lon) {
            return Verdict::BadPosition;
        }
        let probe = Probe::new(lat, lon);
        for zone in self.zones.iter().filter(|z| z.reaches(lat, lon)) {
            if let Some(reason) = zone.judge(&probe) {
                return Verdict::Drop { zone, reason };
            }
        }
        Verdict::Keep
    }

    /// Every zone whose buffered envelope holds the point, with the geodesic distance from
    /// the point to the zone in metres (0 inside). Zones not listed are farther than their
    /// buffer. For diagnostics (`inland zones test`), not the hot path.
    pub fn nearby(&self, lat: f64, lon: f64) -> impl Iterator<Item = (&Zone, f64)> {
        let probe = valid(lat, lon).then(|| Probe::new(lat, lon));
        self.index
            .locate_all_at_point(&[lon as f32, lat as f32])
            .filter_map(move |entry| {
                let zone = &self.zones[entry.data as usize];
                Some((zone, zone.shape.distance_m(probe.as_ref()?)))
            })
    }

    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }
}

/// The largest `f32` not above `x`.
fn down(x: f64) -> f32 {
    let r = x as f32;
    if f64::from(r) > x { r.next_down() } else { r }
}

/// The smallest `f32` not below `x`.
fn up(x: f64) -> f32 {
    let r = x as f32;
    if f64::from(r) < x { r.next_up() } else { r }
}

fn valid(lat: f64, lon: f64) -> bool {
    // Written so that NaN fails.
    lat.abs() <= 90.0 && lon.abs() <= 180.0
}

#[cfg(test)]
mod tests {
    use geo::{Bearing, Destination, Geodesic, Point};

    use super::*;
    use crate::synth;

    const SQUARE: &str = r#"{"type":"FeatureCollection","features":[
        {"type":"Feature","properties":{"id":"w","category":"military","buffer_m":750},
         "geometry":{"type":"Polygon","coordinates":[[[116.0,39.0],[116.02,39.0],[116.02,39.02],[116.0,39.02],[116.0,39.0]]]}},
        {"type":"Feature","properties":{"id":"g","category":"government","buffer_m":1234.5,"datum":"GCJ02"},
         "geometry":{"type":"Polygon","coordinates":[[[121.0,31.0],[121.02,31.0],[121.02,31.02],[121.0,31.02],[121.0,31.0]]]}}]}"#;

    fn caught_by(set: &ZoneSet, p: Point) -> Option<(String, f64)> {
        match set.check(p.y(), p.x()) {
            Verdict::Drop {
                zone,
                reason: Reason::WithinBuffer { distance_m },
            } => Some((zone.id().to_owned(), distance_m)),
            Verdict::Drop {
                zone,
                reason: Reason::Inside,
            } => Some((zone.id().to_owned(), 0.0)),
            Verdict::Keep => None,
            Verdict::BadPosition => panic!("valid position"),
        }
    }

    #[test]
    fn buffers_are_exact_to_the_metre() {
        let set = ZoneSet::from_geojson(SQUARE).unwrap();
        for zone in set.zones() {
            let ring = &zone.geometry().0[0].exterior().0;
            // From the north-east corner outwards at 45°: the corner is the nearest point.
            // From the middle of the east edge at right angles to it: the foot of the
            // perpendicular (the GCJ-02 conversion tilts the edge off the meridian).
            let east_mid = Point::new((ring[1].x + ring[2].x) / 2.0, (ring[1].y + ring[2].y) / 2.0);
            let across = Geodesic.bearing(east_mid, Point::from(ring[2])) + 90.0;
            for (from, bearing) in [(Point::from(ring[2]), 45.0), (east_mid, across)] {
                let inner = Geodesic.destination(from, bearing, zone.buffer_m() - 1.0);
                let outer = Geodesic.destination(from, bearing, zone.buffer_m() + 1.0);
                let (id, d) = caught_by(&set, inner).expect("buffer - 1 m is dropped");
                assert_eq!(id, zone.id());
                assert!((d - (zone.buffer_m() - 1.0)).abs() < 0.01, "{d}");
                assert_eq!(caught_by(&set, outer), None, "buffer + 1 m is kept");
            }
        }
    }

    #[test]
    fn inside_and_far_points() {
        let set = ZoneSet::from_geojson(SQUARE).unwrap();
        assert_eq!(
            caught_by(&set, Point::new(116.01, 39.01)),
            Some(("w".into(), 0.0))
        );
        assert_eq!(caught_by(&set, Point::new(116.5, 39.5)), None);
        // The GCJ-02 zone moved: its published south-west corner is no longer inside it,
        // while the WGS-84 image of a point inside it is.
        let (lat, lon) = crate::datum::gcj02_to_wgs84(31.01, 121.01);
        assert_eq!(
            caught_by(&set, Point::new(lon, lat)),
            Some(("g".into(), 0.0))
        );
    }

    #[test]
    fn bad_positions_fail_closed() {
        let set = ZoneSet::from_geojson(SQUARE).unwrap();
        for (lat, lon) in [
            (f64::NAN, 116.0),
            (39.0, f64::NAN),
            (90.5, 0.0),
            (0.0, -180.5),
        ] {
            let v = set.check(lat, lon);
            assert!(matches!(v, Verdict::BadPosition) && v.is_drop());
            assert!(matches!(set.check_linear(lat, lon), Verdict::BadPosition));
            assert_eq!(set.nearby(lat, lon).count(), 0);
        }
    }

    #[test]
    fn index_and_linear_scan_agree_and_nearby_explains_them() {
        let zones = synth::zones(500, 11, synth::BEIJING);
        let set = ZoneSet::from_geojson(&zones.geojson).unwrap();
        let mut dropped = 0;
        for (lat, lon) in synth::points_near(&zones, 20_000, 12) {
            let indexed = set.check(lat, lon);
            assert_eq!(indexed.is_drop(), set.check_linear(lat, lon).is_drop());
            let within = set.nearby(lat, lon).any(|(z, d)| d <= z.buffer_m());
            assert_eq!(indexed.is_drop(), within, "at {lat},{lon}");
            dropped += usize::from(indexed.is_drop());
        }
        assert!((2_000..18_000).contains(&dropped), "{dropped}");
    }

    #[test]
    fn f32_envelopes_round_outwards() {
        for x in [116.123_456_789, -33.000_000_001, 0.1, 39.9, 180.0, -90.0] {
            let (lo, hi) = (f64::from(down(x)), f64::from(up(x)));
            assert!(lo <= x && x <= hi && hi - lo < 2e-5, "{x}: {lo}..{hi}");
        }
        assert_eq!((down(0.5), up(0.5)), (0.5, 0.5));
    }

    #[test]
    fn summary_counts() {
        let s = ZoneSet::from_geojson(SQUARE).unwrap().summary().clone();
        assert_eq!((s.zones, s.polygons, s.holes, s.vertices), (2, 2, 0, 8));
        assert_eq!(s.category(Category::Military), 1);
        assert_eq!(s.datum(Datum::Gcj02), 1);
        assert_eq!(s.max_buffer_m, 1234.5);
        let b = s.bbox.unwrap();
        assert_eq!((b.min_lon, b.max_lat), (116.0, 39.02));
        // The GCJ-02 zone is converted: in Shanghai WGS-84 lies north-west of GCJ-02.
        assert!(b.max_lon < 121.02 && b.max_lon > 121.01, "{b:?}");
        assert!(b.min_lat > 31.0 && b.min_lat < 31.01, "{b:?}");
    }
}
