//! The geofence against an outside oracle: PostGIS `ST_DWithin(zone::geography,
//! point::geography, buffer_m)` (spheroid) on the same zones, loaded into PostGIS after the
//! GCJ-02 → WGS-84 conversion so both sides compare the same polygons. Points whose PostGIS
//! `ST_Distance` is within 0.5 m of a zone's buffer are "at the boundary" (for a point inside
//! a zone, distance 0, that means within 0.5 m of its edge, and only matters for buffers
//! under 0.5 m): counted and printed, never failed on. Everywhere else the decisions must
//! agree exactly, and the distances must agree within 0.5 m.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Instant;

use geo::MultiPolygon;
use inland_geofence::{Reason, Verdict, ZoneSet, synth};
use postgres::{Client, NoTls};

const ZONES: usize = 1_200;
const POINTS: usize = 120_000;
const BOUNDARY_M: f64 = 0.5;

#[test]
#[ignore = "needs PostGIS: scripts/postgis.sh start, then INLAND_POSTGIS_URL=… cargo test -- --ignored"]
fn decisions_match_postgis() {
    let url = std::env::var("INLAND_POSTGIS_URL").unwrap_or_else(|_| {
        panic!(
            "INLAND_POSTGIS_URL is not set: run scripts/postgis.sh start and export the \
             INLAND_POSTGIS_URL=… line it prints"
        )
    });
    let started = Instant::now();
    let synthetic = synth::zones(ZONES, 2024, synth::BEIJING);
    let set = ZoneSet::from_geojson(&synthetic.geojson).expect("synthetic zones are valid");
    let mut points = synth::points_near(&synthetic, POINTS * 9 / 10, 1);
    points.extend(synth::points_uniform(synth::BEIJING, POINTS / 10, 2));

    let mut db = Client::connect(&url, NoTls).unwrap_or_else(|e| panic!("connect {url}: {e}"));
    load(&mut db, &set, &points);
    let loaded = started.elapsed();

    // Every (point, zone) pair within buffer + 1 m: the verdict and the distance.
    let rows = db
        .query(
            "SELECT p.idx, z.idx, ST_DWithin(z.geog, p.geog, z.buffer_m), d, z.buffer_m, \
                    CASE WHEN d = 0 THEN \
                        ST_Distance(ST_Boundary(z.geog::geometry)::geography, p.geog) END \
             FROM zones z JOIN points p ON ST_DWithin(z.geog, p.geog, z.buffer_m + 1.0), \
                  LATERAL ST_Distance(z.geog, p.geog) AS d",
            &[],
        )
        .expect("oracle query");
    let queried = started.elapsed();

    let mut pg_drop = vec![false; points.len()];
    let mut boundary = vec![false; points.len()];
    let mut pairs: HashMap<usize, Vec<(usize, f64)>> = HashMap::new();
    for row in &rows {
        let (p, z): (i32, i32) = (row.get(0), row.get(1));
        let (p, z) = (p as usize, z as usize);
        let (within, distance, buffer): (bool, f64, f64) = (row.get(2), row.get(3), row.get(4));
        let to_edge: Option<f64> = row.get(5);
        pg_drop[p] |= within;
        boundary[p] |= match to_edge {
            Some(edge) => buffer + edge <= BOUNDARY_M,
            None => (distance - buffer).abs() <= BOUNDARY_M,
        };
        pairs.entry(p).or_default().push((z, distance));
    }

    let index_of: HashMap<&str, usize> = set
        .zones()
        .iter()
        .enumerate()
        .map(|(i, z)| (z.id(), i))
        .collect();
    let (mut agree, mut at_boundary, mut disagree_at_boundary) = (0, 0, 0);
    let mut wrong = Vec::new();
    let (mut compared, mut worst_delta, mut worst_pair) = (0, 0.0f64, None);
    let mut worst_reported = 0.0f64;
    for (i, &(lat, lon)) in points.iter().enumerate() {
        let verdict = set.check(lat, lon);
        if let Verdict::Drop {
            zone,
            reason: Reason::WithinBuffer { distance_m },
        } = verdict
        {
            // The distance a drop reports is within 1 cm of PostGIS's.
            let z = index_of[zone.id()];
            let pg = pairs[&i]
                .iter()
                .find(|(pz, _)| *pz == z)
                .expect("PostGIS has the pair")
                .1;
            worst_reported = worst_reported.max((distance_m - pg).abs());
        }
        let mine = verdict.is_drop();
        at_boundary += usize::from(boundary[i]);
        if mine == pg_drop[i] {
            agree += 1;
        } else if boundary[i] {
            disagree_at_boundary += 1;
        } else {
            wrong.push((i, mine, pg_drop[i]));
        }
        let Some(near) = pairs.get(&i) else { continue };
        let my_distances: HashMap<usize, f64> = set
            .nearby(lat, lon)
            .map(|(z, d)| (index_of[z.id()], d))
            .collect();
        for &(z, pg_distance) in near {
            // A zone missing here has its grown envelope (buffer + 1 % + 1 cm) away from the
            // point, so it is beyond the buffer for both sides; no distance to compare.
            let Some(&d) = my_distances.get(&z) else {
                assert!(
                    pg_distance > set.zones()[z].buffer_m(),
                    "point {i}, zone {z}"
                );
                continue;
            };
            compared += 1;
            let delta = (d - pg_distance).abs();
            if delta > worst_delta {
                (worst_delta, worst_pair) = (delta, Some((i, z, d, pg_distance)));
            }
        }
    }
    let pg_dropped = pg_drop.iter().filter(|d| **d).count();
    println!(
        "postgis oracle: {ZONES} zones ({} polygons, {} holes, {} vertices), {} points, \
         {} pairs within buffer + 1 m",
        set.summary().polygons,
        set.summary().holes,
        set.summary().vertices,
        points.len(),
        rows.len()
    );
    println!(
        "postgis oracle: PostGIS drops {pg_dropped}, agreement {agree}/{}, at the boundary \
         (|ST_Distance - buffer| <= {BOUNDARY_M} m) {at_boundary} points of which {} disagree, \
         disagreements away from the boundary {}",
        points.len(),
        disagree_at_boundary,
        wrong.len()
    );
    println!(
        "postgis oracle: distances compared on {compared} pairs, largest |ours - ST_Distance| \
         = {worst_delta:.3e} m ({worst_pair:?}), largest for the distance a drop reports \
         {worst_reported:.3e} m; load {:.1?}, PostGIS query {:.1?}, total {:.1?}",
        loaded,
        queried - loaded,
        started.elapsed()
    );
    assert!(
        wrong.is_empty(),
        "disagreements away from the boundary: {:?}",
        &wrong[..wrong.len().min(20)]
    );
    assert!(
        worst_delta <= BOUNDARY_M,
        "distance differs from PostGIS by {worst_delta} m"
    );
    assert!(
        pg_dropped > points.len() / 10,
        "the data set must exercise drops"
    );
    assert!(compared > 10_000, "the data set must exercise distances");
}

/// Loads the zones (WGS-84, after conversion) and the points with COPY, indexed.
fn load(db: &mut Client, set: &ZoneSet, points: &[(f64, f64)]) {
    db.batch_execute(
        "DROP TABLE IF EXISTS pg_temp.zones, pg_temp.points;
         CREATE TEMP TABLE zones (idx int, buffer_m float8, geog geography(MultiPolygon, 4326));
         CREATE TEMP TABLE points (idx int, geog geography(Point, 4326));",
    )
    .expect("create tables");
    let mut text = String::new();
    for (i, zone) in set.zones().iter().enumerate() {
        let _ = writeln!(text, "{i}\t{}\t{}", zone.buffer_m(), ewkt(zone.geometry()));
    }
    copy(db, "COPY zones (idx, buffer_m, geog) FROM STDIN", &text);
    text.clear();
    for (i, (lat, lon)) in points.iter().enumerate() {
        let _ = writeln!(text, "{i}\tSRID=4326;POINT({lon} {lat})");
    }
    copy(db, "COPY points (idx, geog) FROM STDIN", &text);
    db.batch_execute(
        "CREATE INDEX ON zones USING gist (geog);
         CREATE INDEX ON points USING gist (geog);
         ANALYZE zones; ANALYZE points;",
    )
    .expect("index");
}

fn copy(db: &mut Client, statement: &str, text: &str) {
    let mut writer = db.copy_in(statement).expect(statement);
    writer.write_all(text.as_bytes()).expect(statement);
    writer.finish().expect(statement);
}

/// EWKT with every coordinate at full (round-trip) precision.
fn ewkt(geometry: &MultiPolygon<f64>) -> String {
    let mut out = String::from("SRID=4326;MULTIPOLYGON(");
    for (p, polygon) in geometry.iter().enumerate() {
        out.push_str(if p > 0 { ",(" } else { "(" });
        let rings = std::iter::once(polygon.exterior()).chain(polygon.interiors());
        for (r, ring) in rings.enumerate() {
            out.push_str(if r > 0 { ",(" } else { "(" });
            for (v, c) in ring.coords().enumerate() {
                let _ = write!(out, "{}{} {}", if v > 0 { "," } else { "" }, c.x, c.y);
            }
            out.push(')');
        }
        out.push(')');
    }
    out.push(')');
    out
}
