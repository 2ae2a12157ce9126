//! Query latency of typical analyses over ≥ 10 million telemetry rows: the query service's
//! engine (DataFusion, through `Engine::query`: planning, limits and the audit write
//! included) beside DuckDB (PyPI) on the same Parquet files, in the same run.
//!
//!   cargo bench -p inland-benches --bench query
//!
//! The archive (synthetic, in the archiver's layout) is generated once into
//! `$INLAND_CACHE/query-bench/<spec>/` and reused. Per query one warm-up each, then
//! `ROUNDS` (default 5) rounds alternating the two engines, so both see the same machine
//! load; medians are compared. Both engines get every core.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Lines, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Instant;

use chrono::NaiveDate;
use inland_benches::median;
use inland_query::synth::{self, Spec};
use inland_query::{Archive, Engine, Interface, Principal, QueryConfig, Role};
use inland_store::LocalStore;
use inland_tests::archive::python;

/// Target: DataFusion within this factor of DuckDB on each query.
const TARGET_RATIO: f64 = 1.5;

const QUERIES: &[(&str, &str)] = &[
    (
        "daily distance per pseudonym (haversine, lag window)",
        "WITH p AS (SELECT pseudonym, date, latitude AS lat, longitude AS lon, \
           lag(latitude) OVER (PARTITION BY pseudonym, date ORDER BY time) AS plat, \
           lag(longitude) OVER (PARTITION BY pseudonym, date ORDER BY time) AS plon \
           FROM telemetry) \
         SELECT pseudonym, date, sum(2 * 6371.0088 * asin(sqrt( \
           pow(sin(radians(lat - plat) / 2), 2) \
           + cos(radians(plat)) * cos(radians(lat)) * pow(sin(radians(lon - plon) / 2), 2)))) AS km \
         FROM p WHERE plat IS NOT NULL GROUP BY pseudonym, date",
    ),
    (
        "daily distance per pseudonym (odometer)",
        "SELECT pseudonym, date, max(\"Vehicle.TraveledDistance\") - min(\"Vehicle.TraveledDistance\") AS km \
         FROM telemetry GROUP BY pseudonym, date",
    ),
    (
        "speed histogram per hour",
        "SELECT hour, floor(\"Vehicle.Speed\" / 10) * 10 AS bucket, count(*) AS samples \
         FROM telemetry WHERE \"Vehicle.Speed\" IS NOT NULL GROUP BY hour, bucket",
    ),
    (
        "frames per camera per day",
        "SELECT date, camera_id, count(*) AS frames, sum(bytes) AS bytes \
         FROM frame_index GROUP BY date, camera_id",
    ),
    (
        "mean speed per pseudonym, one day (partition pruning)",
        "SELECT pseudonym, avg(\"Vehicle.Speed\") AS mean_kmh, count(*) AS samples \
         FROM telemetry WHERE date = DATE '2026-11-03' GROUP BY pseudonym",
    ),
];

/// 1000 vehicles × 4 days × 6 hours × 450 samples (every 8 s) = 10.8 million rows.
fn spec() -> Spec {
    Spec {
        seed: 2026,
        vehicles: 1000,
        first_day: NaiveDate::from_ymd_opt(2026, 11, 2).expect("a valid date"),
        days: 4,
        hours_per_day: 6,
        sample_every_s: 8,
        frames_per_vehicle_hour: 60,
        files_per_partition: 4,
    }
}

fn cache_dir() -> PathBuf {
    let cache = std::env::var_os("INLAND_CACHE").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/inland"),
        PathBuf::from,
    );
    let s = spec();
    cache.join("query-bench").join(format!(
        "seed{}-v{}-d{}-h{}-s{}-f{}-p{}-zstd1",
        s.seed,
        s.vehicles,
        s.days,
        s.hours_per_day,
        s.sample_every_s,
        s.frames_per_vehicle_hour,
        s.files_per_partition
    ))
}

/// The archive, generated unless a complete copy is cached.
async fn archive(root: &Path) -> u64 {
    let done = root.join("generated");
    if let Ok(rows) = std::fs::read_to_string(&done) {
        println!("archive: cached at {}", root.display());
        return rows.trim().parse().expect("the marker holds the row count");
    }
    if root.exists() {
        std::fs::remove_dir_all(root).expect("removing a partial archive");
    }
    let started = Instant::now();
    let store = LocalStore::open(root).expect("creating the archive directory");
    let written = synth::write(&store, &spec())
        .await
        .expect("writing the archive");
    std::fs::write(&done, written.telemetry_rows.to_string()).expect("writing the marker");
    println!(
        "archive: generated {} telemetry rows, {} frame rows in {} files at {} ({:.0} s)",
        written.telemetry_rows,
        written.frame_rows,
        written.files,
        root.display(),
        started.elapsed().as_secs_f64()
    );
    written.telemetry_rows
}

/// DuckDB in its own process, answering one query per request.
struct DuckDb {
    child: Child,
    replies: Lines<BufReader<ChildStdout>>,
    version: String,
}

impl DuckDb {
    fn start(job: &Path) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("query_vs_duckdb.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(job)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting DuckDB");
        let mut replies = BufReader::new(child.stdout.take().expect("piped")).lines();
        let ready: serde_json::Value = serde_json::from_str(
            &replies
                .next()
                .expect("DuckDB starts")
                .expect("DuckDB's first line"),
        )
        .expect("JSON");
        let version = ready["ready"].as_str().unwrap_or("?").to_owned();
        Self {
            child,
            replies,
            version,
        }
    }

    /// Runs the named query once: (seconds, rows).
    fn run(&mut self, name: &str) -> (f64, u64) {
        let stdin = self.child.stdin.as_mut().expect("piped");
        writeln!(stdin, "{name}").expect("asking DuckDB");
        let reply: serde_json::Value = serde_json::from_str(
            &self
                .replies
                .next()
                .expect("DuckDB answers")
                .expect("a reply line"),
        )
        .expect("JSON");
        (
            reply["seconds"].as_f64().expect("seconds"),
            reply["rows"].as_u64().expect("rows"),
        )
    }
}

impl Drop for DuckDb {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
        .max(1);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let root = cache_dir();
    let rows = archive(&root).await;
    assert!(
        rows >= 10_000_000,
        "the benchmark needs at least 10 million rows"
    );

    let work = tempfile::tempdir().expect("a temporary directory");
    let job = serde_json::json!({
        "root": root,
        "threads": threads,
        "queries": QUERIES.iter().map(|(name, sql)| (*name, *sql)).collect::<BTreeMap<_, _>>(),
    });
    let job_file = work.path().join("job.json");
    std::fs::write(&job_file, job.to_string()).expect("writing the job");
    let mut duckdb = DuckDb::start(&job_file);

    // The audit log goes to a scratch store, not into the cached archive.
    let audit = tempfile::tempdir().expect("a temporary directory");
    let archive = Archive::new(
        std::sync::Arc::new(
            object_store::local::LocalFileSystem::new_with_prefix(&root).expect("the archive"),
        ),
        std::sync::Arc::new(LocalStore::open(audit.path()).expect("the audit store")),
    );
    let engine = Engine::new(&archive, &QueryConfig::default()).expect("the engine");
    let admin = Principal {
        user: "bench".into(),
        role: Role::Admin,
    };

    println!(
        "\n{rows} telemetry rows, {threads} threads each, DuckDB {}; per query a warm-up, \
         then {rounds} rounds alternating the engines; medians\n",
        duckdb.version
    );
    println!(
        "{:<58} {:>12} {:>12} {:>7}",
        "query", "DataFusion", "DuckDB", "ratio"
    );
    let mut worst: f64 = 0.0;
    for (name, sql) in QUERIES {
        let ours = || async {
            let started = Instant::now();
            let result = engine
                .query(&admin, Interface::Cli, sql)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            (started.elapsed().as_secs_f64(), result.rows)
        };
        let (_, our_rows) = ours().await;
        let (_, their_rows) = duckdb.run(name);
        assert_eq!(
            our_rows, their_rows,
            "{name}: DataFusion and DuckDB disagree on the rows"
        );
        let (mut us, mut them) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
        for _ in 0..rounds {
            us.push(ours().await.0);
            them.push(duckdb.run(name).0);
        }
        let (us, them) = (median(&mut us), median(&mut them));
        let ratio = us / them;
        worst = worst.max(ratio);
        println!(
            "{name:<58} {:>9.1} ms {:>9.1} ms {ratio:>6.2}x",
            us * 1e3,
            them * 1e3
        );
    }
    println!(
        "\nworst ratio {worst:.2}x (target ≤ {TARGET_RATIO}x): {}",
        if worst <= TARGET_RATIO {
            "met"
        } else {
            "NOT met"
        }
    );
}
