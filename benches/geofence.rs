//! Geofence throughput: points decided per second on one core against 10 000 zones, side by
//! side for the R-tree (`ZoneSet::check`), a naive scan over every zone with the same exact
//! test (`ZoneSet::check_linear`), and PostGIS running the same check as one set-based query
//! (when `INLAND_POSTGIS_URL` is set; start it with scripts/postgis.sh start).
//!
//! Two workloads over the same zones (synthetic, eastern China, mixed datums, buffers
//! 0–2 km): `uniform` points spread over the whole region, as traffic mostly is far from
//! protected sites, and `near` points all close to a zone, where every point needs the
//! exact test.
//!
//! Rates are per CPU-second of the thread doing the work (this thread, or the PostGIS
//! backend process), read from Linux's schedstat, so they are per core even when other
//! processes share the machine; the wall-clock rate is printed beside them.
//!
//! `cargo bench -p inland-benches --bench geofence`

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::Write as _;
use std::time::{Duration, Instant};

use inland_geofence::{ZoneSet, synth};
use postgres::{Client, NoTls};

const ZONES: usize = 10_000;
const POINTS: usize = 1_000_000;
/// The naive scan and PostGIS are measured on a prefix of the points: they are slow.
const NAIVE_POINTS: usize = 20_000;
const POSTGIS_POINTS: usize = 200_000;

fn main() {
    let started = Instant::now();
    let zones = synth::zones(ZONES, 42, synth::EASTERN_CHINA);
    let set = ZoneSet::from_geojson(&zones.geojson).expect("synthetic zones are valid");
    println!(
        "geofence: {} zones ({} polygons, {} holes, {} vertices) loaded in {:.0?}",
        ZONES,
        set.summary().polygons,
        set.summary().holes,
        set.summary().vertices,
        started.elapsed()
    );
    let mut postgis = std::env::var("INLAND_POSTGIS_URL").ok().map(|url| {
        let mut db = Client::connect(&url, NoTls).unwrap_or_else(|e| panic!("connect {url}: {e}"));
        load_zones(&mut db, &set);
        db
    });
    if postgis.is_none() {
        println!(
            "geofence: PostGIS skipped (INLAND_POSTGIS_URL is not set; scripts/postgis.sh start)"
        );
    }

    let workloads = [
        (
            "uniform",
            synth::points_uniform(synth::EASTERN_CHINA, POINTS, 7),
        ),
        ("near", synth::points_near(&zones, POINTS, 8)),
    ];
    for (name, points) in &workloads {
        let (indexed, dropped) = rate(points, |lat, lon| set.check(lat, lon).is_drop());
        let naive_points = &points[..NAIVE_POINTS];
        let (naive, naive_dropped) = rate(naive_points, |lat, lon| {
            set.check_linear(lat, lon).is_drop()
        });
        let indexed_on_prefix = count_drops(naive_points, |lat, lon| set.check(lat, lon).is_drop());
        assert_eq!(naive_dropped, indexed_on_prefix, "index and scan disagree");
        println!(
            "geofence {name}: R-tree {indexed} ({:.1} % dropped); naive scan {naive}; R-tree / naive {:.0}x",
            100.0 * dropped as f64 / points.len() as f64,
            indexed.per_core() / naive.per_core()
        );
        if let Some(db) = postgis.as_mut() {
            let sample = &points[..POSTGIS_POINTS];
            let (pg_rate, pg_dropped) = postgis_rate(db, sample);
            let ours = count_drops(sample, |lat, lon| set.check(lat, lon).is_drop());
            println!(
                "geofence {name}: PostGIS {pg_rate} (no parallel workers; {pg_dropped} of {} dropped, ours {ours}); R-tree / PostGIS {:.0}x",
                sample.len(),
                indexed.per_core() / pg_rate.per_core()
            );
        }
    }
}

/// Points per CPU-second and per wall-second over repeated passes of at least a second in
/// all; and the drops of one pass.
fn rate(points: &[(f64, f64)], decide: impl Fn(f64, f64) -> bool) -> (Rate, usize) {
    let dropped = count_drops(points, &decide);
    let (mut passes, timer) = (0u32, Timer::start(THIS_THREAD));
    while passes == 0 || timer.wall.elapsed() < Duration::from_secs(1) {
        black_box(count_drops(points, &decide));
        passes += 1;
    }
    (timer.rate(f64::from(passes) * points.len() as f64), dropped)
}

const THIS_THREAD: &str = "/proc/thread-self/schedstat";

/// Points per second, by CPU time (per core) and by wall time.
#[derive(Clone, Copy)]
struct Rate {
    cpu: Option<f64>,
    wall: f64,
}

impl Rate {
    /// The per-core rate where CPU time is known, else the wall-clock one.
    fn per_core(self) -> f64 {
        self.cpu.unwrap_or(self.wall)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cpu {
            Some(cpu) => write!(
                f,
                "{:.3} M points/s/core (wall {:.3} M/s)",
                cpu / 1e6,
                self.wall / 1e6
            ),
            None => write!(f, "{:.3} M points/s (wall; no schedstat)", self.wall / 1e6),
        }
    }
}

struct Timer {
    schedstat: String,
    cpu_ns: Option<u64>,
    wall: Instant,
}

impl Timer {
    fn start(schedstat: &str) -> Self {
        Self {
            schedstat: schedstat.to_owned(),
            cpu_ns: cpu_ns(schedstat),
            wall: Instant::now(),
        }
    }

    fn rate(&self, points: f64) -> Rate {
        let wall = points / self.wall.elapsed().as_secs_f64();
        let cpu = match (self.cpu_ns, cpu_ns(&self.schedstat)) {
            (Some(before), Some(after)) if after > before => {
                Some(points / ((after - before) as f64 / 1e9))
            }
            _ => None,
        };
        Rate { cpu, wall }
    }
}

/// Nanoseconds on CPU so far, the first field of a Linux schedstat file.
fn cpu_ns(schedstat: &str) -> Option<u64> {
    std::fs::read_to_string(schedstat)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn count_drops(points: &[(f64, f64)], decide: impl Fn(f64, f64) -> bool) -> usize {
    points
        .iter()
        .filter(|&&(lat, lon)| decide(black_box(lat), black_box(lon)))
        .count()
}

fn load_zones(db: &mut Client, set: &ZoneSet) {
    db.batch_execute(
        "SET max_parallel_workers_per_gather = 0;
         DROP TABLE IF EXISTS pg_temp.zones;
         CREATE TEMP TABLE zones (idx int, buffer_m float8, geog geography(MultiPolygon, 4326));",
    )
    .expect("create zones");
    let mut text = String::new();
    for (i, zone) in set.zones().iter().enumerate() {
        let _ = write!(text, "{i}\t{}\tSRID=4326;MULTIPOLYGON(", zone.buffer_m());
        for (p, polygon) in zone.geometry().iter().enumerate() {
            text.push_str(if p > 0 { ",(" } else { "(" });
            let rings = std::iter::once(polygon.exterior()).chain(polygon.interiors());
            for (r, ring) in rings.enumerate() {
                text.push_str(if r > 0 { ",(" } else { "(" });
                for (v, c) in ring.coords().enumerate() {
                    let _ = write!(text, "{}{} {}", if v > 0 { "," } else { "" }, c.x, c.y);
                }
                text.push(')');
            }
            text.push(')');
        }
        text.push_str(")\n");
    }
    copy(db, "COPY zones (idx, buffer_m, geog) FROM STDIN", &text);
    db.batch_execute("CREATE INDEX ON zones USING gist (geog); ANALYZE zones;")
        .expect("index zones");
}

/// PostGIS on one core (no parallel workers): the points are loaded and indexed first,
/// untimed; the timed part is the set-based query that finds every point within a zone's
/// buffer, driven from the zones so each probes the points' index with its own buffer (the
/// fastest plan found; asking per point with EXISTS took 2.5x as long). CPU time is the
/// backend process's, read from /proc: PostGIS runs on this machine.
fn postgis_rate(db: &mut Client, points: &[(f64, f64)]) -> (Rate, usize) {
    db.batch_execute(
        "DROP TABLE IF EXISTS pg_temp.points;
         CREATE TEMP TABLE points (idx int, geog geography(Point, 4326));",
    )
    .expect("create points");
    let mut text = String::new();
    for (i, (lat, lon)) in points.iter().enumerate() {
        let _ = writeln!(text, "{i}\tSRID=4326;POINT({lon} {lat})");
    }
    copy(db, "COPY points (idx, geog) FROM STDIN", &text);
    db.batch_execute("CREATE INDEX ON points USING gist (geog); ANALYZE points;")
        .expect("index points");
    let backend: i32 = db
        .query_one("SELECT pg_backend_pid()", &[])
        .expect("backend pid")
        .get(0);
    let timer = Timer::start(&format!("/proc/{backend}/schedstat"));
    let row = db
        .query_one(
            "SELECT count(DISTINCT p.idx) FROM zones z \
             JOIN points p ON ST_DWithin(z.geog, p.geog, z.buffer_m)",
            &[],
        )
        .expect("PostGIS query");
    let dropped: i64 = row.get(0);
    (timer.rate(points.len() as f64), dropped as usize)
}

fn copy(db: &mut Client, statement: &str, text: &str) {
    let mut writer = db.copy_in(statement).expect(statement);
    writer.write_all(text.as_bytes()).expect(statement);
    writer.finish().expect(statement);
}
