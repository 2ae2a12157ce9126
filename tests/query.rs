//! The query service against outside oracles: a known archive in the store, the same SQL
//! through Arrow Flight SQL with a real client (the ADBC Flight SQL driver from PyPI,
//! results as pyarrow tables), through the HTTP API, and through DuckDB reading the
//! Parquet files directly with Hive partitioning; the results must be identical.
//!
//! The Python clients come from `scripts/pyenv-query.sh` (a venv in INLAND_CACHE,
//! created on first use; `INLAND_QUERY_PYTHON` overrides the interpreter).

use std::path::Path;
use std::process::Command;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use arrow::ipc::reader::FileReader;
use inland_query::client::Client;
use inland_query::synth::{self, Spec};
use inland_query::{Archive, QueryConfig, QueryService, Role};
use inland_store::{Backend, LocalStore, ObjectStore, S3Config, S3Store, StoreConfig};
use inland_tests::archive::{garage_env, python, remove_bucket};

/// The questions asked of every engine. Floats are rounded in SQL, after a cast to
/// DOUBLE, so summation order and float32 arithmetic cannot tell the engines apart.
const QUERIES: &[&str] = &[
    "SELECT count(*) AS n FROM telemetry",
    "SELECT date, hour, count(*) AS n, count(DISTINCT pseudonym) AS vehicles \
     FROM telemetry GROUP BY date, hour ORDER BY date, hour",
    "SELECT count(*) AS n FROM telemetry WHERE date = DATE '2026-11-03' AND hour = '05'",
    "SELECT camera_id, date, count(*) AS frames, sum(faces) AS faces, sum(bytes) AS bytes \
     FROM frame_index GROUP BY camera_id, date ORDER BY camera_id, date",
    "SELECT pseudonym, round(CAST(max(\"Vehicle.TraveledDistance\") AS DOUBLE) \
     - CAST(min(\"Vehicle.TraveledDistance\") AS DOUBLE), 3) AS km \
     FROM telemetry WHERE date = DATE '2026-11-02' GROUP BY pseudonym ORDER BY pseudonym",
    "SELECT hour, floor(CAST(\"Vehicle.Speed\" AS DOUBLE) / 10) * 10 AS bucket, count(*) AS n \
     FROM telemetry WHERE hour BETWEEN '08' AND '17' GROUP BY hour, bucket ORDER BY hour, bucket",
    "SELECT \"Vehicle.IsMoving\" AS moving, count(*) AS n FROM telemetry GROUP BY 1 ORDER BY 1",
    "SELECT count(*) AS n, count(\"Vehicle.Speed\") AS speeds, \
     count(\"Vehicle.Cabin.HVAC.AmbientAirTemperature\") AS cabin, min(time) AS first, \
     max(time) AS last FROM telemetry",
    "WITH p AS (SELECT pseudonym, date, latitude AS lat, longitude AS lon, \
       lag(latitude) OVER (PARTITION BY pseudonym, date ORDER BY time) AS plat, \
       lag(longitude) OVER (PARTITION BY pseudonym, date ORDER BY time) AS plon \
       FROM telemetry) \
     SELECT pseudonym, date, round(sum(2 * 6371.0088 * asin(sqrt( \
       pow(sin(radians(lat - plat) / 2), 2) \
       + cos(radians(plat)) * cos(radians(lat)) * pow(sin(radians(lon - plon) / 2), 2)))), 2) AS km \
     FROM p WHERE plat IS NOT NULL GROUP BY pseudonym, date ORDER BY pseudonym, date",
    "SELECT purpose, key_epoch, count(*) AS n FROM frame_index \
     WHERE date = DATE '2026-11-03' GROUP BY purpose, key_epoch ORDER BY purpose",
];

/// Runs every query through ADBC Flight SQL, DuckDB and Polars; writes Arrow IPC files.
const CLIENTS: &str = r#"
import json, sys
import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_flightsql import DatabaseOptions
import duckdb, polars, pyarrow as pa

job = json.load(open(sys.argv[1]))
root, out = job["root"], job["out"]

def save(table, name):
    with pa.ipc.new_file(f"{out}/{name}.arrow", table.schema) as w:
        w.write_table(table)

auth = {DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer " + job["token"]}
with flight_sql.connect(job["flight"], db_kwargs=auth) as conn:
    for i, sql in enumerate(job["queries"]):
        with conn.cursor() as cur:
            cur.execute(sql)
            save(cur.fetch_arrow_table(), f"flight-{i}")
    # Catalog metadata: only the analyst's tables.
    objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    tables = sorted(t["table_name"] for c in objects for s in c["catalog_db_schemas"]
                    for t in s["db_schema_tables"])
    errors = {}
    for name, sql in job["bad"].items():
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                cur.fetch_arrow_table()
            errors[name] = "no error"
        except Exception as e:
            errors[name] = str(e)

with flight_sql.connect(job["flight"], db_kwargs={
        DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer wrong"}) as conn:
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        errors["bad_token"] = "no error"
    except Exception as e:
        errors["bad_token"] = str(e)

db = duckdb.connect()
hive = "hive_partitioning = true, hive_types = {'date': DATE, 'hour': VARCHAR}"
for table in ("telemetry", "frame_index"):
    db.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet("
               f"'{root}/dataset={table}/*/*/*.parquet', {hive})")
for i, sql in enumerate(job["queries"]):
    save(db.execute(sql).fetch_arrow_table(), f"duckdb-{i}")

polars_rows = polars.scan_parquet(f"{root}/dataset=telemetry/", hive_partitioning=True) \
    .select(polars.len()).collect().item()

json.dump({"tables": tables, "errors": errors, "polars_rows": polars_rows},
          open(f"{out}/meta.json", "w"))
"#;

/// A column as comparable text: integers and decimals of scale 0 as integers, floats as
/// f64, times as epoch milliseconds, dates as ISO dates, nulls as NULL.
fn normalize(column: &ArrayRef) -> Vec<String> {
    let column = match column.data_type() {
        DataType::Dictionary(_, value) => cast(column, value).unwrap(),
        _ => column.clone(),
    };
    let text: Vec<Option<String>> = match column.data_type() {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let floats = cast(&column, &DataType::Float64).unwrap();
            floats
                .as_primitive::<Float64Type>()
                .iter()
                .map(|v| v.map(|v| format!("{v}")))
                .collect()
        }
        DataType::Timestamp(_, _) => {
            let ms = cast(&column, &DataType::Timestamp(TimeUnit::Millisecond, None)).unwrap();
            let ms = cast(&ms, &DataType::Int64).unwrap();
            ms.as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.map(|v| v.to_string()))
                .collect()
        }
        _ => {
            let strings = cast(&column, &DataType::Utf8).unwrap();
            strings
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(str::to_owned))
                .collect()
        }
    };
    text.into_iter()
        .map(|v| v.unwrap_or_else(|| "NULL".into()))
        .collect()
}

/// Column names and rows of a result, normalized.
fn table(batches: &[RecordBatch]) -> (Vec<String>, Vec<Vec<String>>) {
    let Some(first) = batches.first() else {
        return (Vec::new(), Vec::new());
    };
    let names = first
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<Vec<String>> = batch.columns().iter().map(normalize).collect();
        for i in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[i].clone()).collect());
        }
    }
    (names, rows)
}

fn read_ipc(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap();
    FileReader::try_new(file, None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

struct Running {
    flight: std::net::SocketAddr,
    http: std::net::SocketAddr,
    tokens: [String; 3],
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<Result<(), inland_query::Error>>,
}

async fn start(archive: &Archive, dir: &Path) -> Running {
    let mut text = String::new();
    let mut tokens = Vec::new();
    for (user, role) in [
        ("ana", Role::Analyst),
        ("otto", Role::Auditor),
        ("root", Role::Admin),
    ] {
        let (token, entry) = inland_query::auth::generate(user, role);
        text.push_str(&entry.to_toml());
        tokens.push(token);
    }
    std::fs::write(dir.join("tokens.toml"), text).unwrap();
    let config = QueryConfig {
        flight_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        token_file: Some(dir.join("tokens.toml")),
        ..QueryConfig::default()
    };
    let service = QueryService::bind(archive, &config).await.unwrap();
    let (flight, http) = (service.flight_addr(), service.http_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(service.serve(async {
        let _ = stopped.await;
    }));
    Running {
        flight,
        http,
        tokens: tokens.try_into().unwrap(),
        stop,
        serving,
    }
}

/// Asks every query through Flight SQL (ADBC), HTTP and DuckDB; `local_root` is a local
/// copy of the archive for DuckDB and Polars.
async fn compare_engines(archive: &Archive, local_root: &Path, written_rows: u64) {
    let work = tempfile::tempdir().unwrap();
    let server = start(archive, work.path()).await;
    let analyst = &server.tokens[0];

    let client = Client::new(&format!("http://{}", server.http), analyst, None).unwrap();
    let mut over_http = Vec::new();
    for sql in QUERIES {
        let (_, batches) = client
            .query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        over_http.push(table(&batches));
    }

    let job = serde_json::json!({
        "flight": format!("grpc://{}", server.flight),
        "token": analyst,
        "root": local_root,
        "out": work.path(),
        "queries": QUERIES,
        "bad": {
            "syntax": "SELEC 1",
            "unknown_table": "SELECT * FROM consent_events",
            "ddl": "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION 'inland://archive/consent/'",
        },
    });
    let job_file = work.path().join("job.json");
    std::fs::write(&job_file, job.to_string()).unwrap();
    let script = work.path().join("clients.py");
    std::fs::write(&script, CLIENTS).unwrap();
    let python = python();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(&script)
            .arg(&job_file)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the Python clients failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    for (i, sql) in QUERIES.iter().enumerate() {
        let flight = table(&read_ipc(&work.path().join(format!("flight-{i}.arrow"))));
        let duckdb = table(&read_ipc(&work.path().join(format!("duckdb-{i}.arrow"))));
        assert!(!duckdb.1.is_empty(), "{sql}: DuckDB found no rows");
        assert_eq!(flight, duckdb, "Flight SQL and DuckDB differ on {sql}");
        assert_eq!(over_http[i], duckdb, "HTTP and DuckDB differ on {sql}");
    }
    assert_eq!(
        over_http[0].1,
        vec![vec![written_rows.to_string()]],
        "every written row is seen"
    );

    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.path().join("meta.json")).unwrap()).unwrap();
    assert_eq!(
        meta["tables"],
        serde_json::json!(["frame_index", "telemetry"])
    );
    assert_eq!(meta["polars_rows"], written_rows);
    let errors = &meta["errors"];
    for (name, expected) in [
        ("syntax", "SQL error"),
        (
            "unknown_table",
            "tables you can query: telemetry, frame_index",
        ),
        ("ddl", "read-only"),
        ("bad_token", "unknown or revoked token"),
    ] {
        let message = errors[name].as_str().unwrap();
        assert!(message.contains(expected), "{name}: {message}");
    }

    // Every query above, failed ones included, is in the audit log.
    let auditor = Client::new(&format!("http://{}", server.http), &server.tokens[1], None).unwrap();
    let (_, batches) = auditor
        .query(
            "SELECT interface, outcome, count(*) AS n FROM audit_log \
             WHERE \"user\" = 'ana' GROUP BY interface, outcome ORDER BY interface, outcome",
        )
        .await
        .unwrap();
    let (_, rows) = table(&batches);
    let count = |interface: &str, outcome: &str| {
        rows.iter()
            .find(|r| r[0] == interface && r[1] == outcome)
            .map_or(0, |r| r[2].parse::<usize>().unwrap())
    };
    assert_eq!(count("http", "ok"), QUERIES.len());
    assert_eq!(count("flight_sql", "ok"), QUERIES.len());
    assert_eq!(count("flight_sql", "invalid_input"), 1, "{rows:?}");
    assert_eq!(count("flight_sql", "not_found"), 1, "{rows:?}");
    assert_eq!(count("flight_sql", "permission_denied"), 1, "{rows:?}");

    server.stop.send(()).unwrap();
    server.serving.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flight_sql_http_and_duckdb_agree_on_the_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let written = synth::write(&store, &Spec::small()).await.unwrap();
    let archive = Archive::local(dir.path()).unwrap();
    compare_engines(&archive, dir.path(), written.telemetry_rows).await;
    let reports = inland_query::audit::verify(&store).await.unwrap();
    assert!(reports.iter().all(|r| r.broken.is_none()), "{reports:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Garage: scripts/garage.sh start; export $(scripts/garage.sh env)"]
async fn flight_sql_http_and_duckdb_agree_on_s3_with_sse_c() {
    let dir = tempfile::tempdir().unwrap();
    // The archive is SSE-C encrypted: DataFusion's reader must send the same key.
    let key_file = dir.path().join("sse-c.key");
    std::fs::write(&key_file, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let config = StoreConfig {
        backend: Backend::S3,
        s3: S3Config {
            endpoint: garage_env("INLAND_S3_ENDPOINT"),
            region: garage_env("INLAND_S3_REGION"),
            bucket: format!("inland-query-{:x}{nanos:x}", std::process::id()),
            sse_c_key_file: Some(key_file),
            ..S3Config::default()
        },
        ..StoreConfig::default()
    };
    inland_store::bootstrap(&config).await.unwrap();
    let store = S3Store::open(&config.s3).await.unwrap();
    let written = synth::write(&store, &Spec::small()).await.unwrap();
    // DuckDB and Polars read a local copy of the same (deterministic) archive.
    let local = dir.path().join("local");
    synth::write(&LocalStore::open(&local).unwrap(), &Spec::small())
        .await
        .unwrap();

    let archive = Archive::open(&config, dir.path()).await.unwrap();
    compare_engines(&archive, &local, written.telemetry_rows).await;
    let reports = inland_query::audit::verify(&store).await.unwrap();
    assert!(reports.iter().all(|r| r.broken.is_none()), "{reports:?}");
    export_and_audit_on(&config, dir.path(), &store).await;

    remove_bucket(&store).await;
}

/// A known fleet as the anonymizer hands it to the archiver: `VEHICLES` vehicles drive
/// hours 05, 09 and 13 of two days; each sends a telemetry record every 10 minutes
/// (20 samples 30 s apart: speed, odometer, moving, position) and one frame with it.
/// Speeds and distances are whole numbers, so sums are exact in any engine.
mod fleet {
    use inland_proto::ingest::v1::{Sample, sample::Value};
    use inland_proto::pipeline::v1::anonymized_record::Payload;
    use inland_proto::pipeline::v1::{AnonymizedFrame, AnonymizedTelemetry, CoarsePosition};
    use inland_stage::Record;
    use inland_tests::archive::{jpeg, on_topic, ts};

    pub const VEHICLES: u64 = 12;
    pub const HOURS: [u32; 3] = [5, 9, 13];
    pub const DAYS: [&str; 2] = ["2026-11-02", "2026-11-03"];
    const RECORDS_PER_HOUR: u64 = 6;
    const SAMPLES: u64 = 20;
    pub const CAMERAS: [&str; 3] = ["front", "rear", "left"];

    pub fn pseudonym(vehicle: u64) -> String {
        format!("{:032x}", 0xa11ce_u64 * 1_000 + vehicle)
    }

    /// 2026-11-02T00:00:00Z, the first day.
    const FIRST_DAY_MS: i64 = 1_793_577_600_000;

    /// Milliseconds of `day`'s `hour` (UTC).
    fn hour_ms(day: usize, hour: u32) -> i64 {
        FIRST_DAY_MS + day as i64 * 86_400_000 + i64::from(hour) * 3_600_000
    }

    pub fn speed(vehicle: u64, sample: u64) -> f32 {
        ((vehicle * 7 + sample * 3) % 120) as f32
    }

    /// One sample's signals of one instant.
    fn samples(vehicle: u64, n: u64, at: i64) -> Vec<Sample> {
        let sample = |path: &str, value: Value| Sample {
            path: path.into(),
            time: Some(ts(at)),
            value: Some(value),
        };
        let speed = speed(vehicle, n);
        vec![
            sample("Vehicle.Speed", Value::FloatValue(speed)),
            sample(
                "Vehicle.TraveledDistance",
                Value::FloatValue((10_000 + vehicle * 100 + n) as f32),
            ),
            sample("Vehicle.IsMoving", Value::BoolValue(speed > 0.0)),
            sample(
                "Vehicle.CurrentLocation.Latitude",
                Value::DoubleValue(31.2 + vehicle as f64 * 0.01 + n as f64 * 0.001),
            ),
            sample(
                "Vehicle.CurrentLocation.Longitude",
                Value::DoubleValue(121.4 + n as f64 * 0.001),
            ),
        ]
    }

    /// Every record, and the telemetry rows they make.
    pub fn records() -> (Vec<Record>, u64) {
        let (mut records, mut rows) = (Vec::new(), 0);
        let mut id = 0;
        for day in 0..DAYS.len() {
            for hour in HOURS {
                for r in 0..RECORDS_PER_HOUR {
                    for vehicle in 0..VEHICLES {
                        let start = hour_ms(day, hour) + (r * 600_000) as i64;
                        let samples = (0..SAMPLES)
                            .flat_map(|n| {
                                samples(vehicle, r * SAMPLES + n, start + (n * 30_000) as i64)
                            })
                            .collect();
                        id += 1;
                        let telemetry = Payload::Telemetry(AnonymizedTelemetry { samples });
                        records.push(on_topic(
                            pseudonym(vehicle),
                            "driving_statistics",
                            id,
                            telemetry,
                            start,
                        ));
                        rows += SAMPLES;
                        id += 1;
                        let frame = Payload::Frame(AnonymizedFrame {
                            camera_id: CAMERAS[(vehicle + r) as usize % CAMERAS.len()].into(),
                            captured_at: Some(ts(start)),
                            jpeg: jpeg(id as u8),
                            position: Some(CoarsePosition {
                                latitude: 31.2,
                                longitude: 121.4,
                                grid_m: 1000,
                            }),
                            faces: (vehicle % 3) as u32,
                            plates: 0,
                        });
                        records.push(on_topic(
                            pseudonym(vehicle),
                            "road_imagery",
                            id,
                            frame,
                            start,
                        ));
                    }
                }
            }
        }
        (records, rows)
    }

    /// Per (pseudonym, date): samples and the sum of their speeds, as the fleet drove.
    pub fn speed_sums() -> Vec<(String, String, u64, f64)> {
        let mut out = Vec::new();
        for vehicle in 0..VEHICLES {
            for day in DAYS {
                let n = HOURS.len() as u64 * RECORDS_PER_HOUR * SAMPLES;
                let sum: f64 = (0..n)
                    .map(|i| f64::from(speed(vehicle, i % (RECORDS_PER_HOUR * SAMPLES))))
                    .sum();
                out.push((pseudonym(vehicle), day.to_owned(), n, sum));
            }
        }
        // Pseudonyms are hex of the same length, so vehicle order is their order.
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_archived_by_the_archiver_are_answered_alike_by_every_engine() {
    use inland_archiver::{Archiver, ArchiverConfig, Inputs};
    use inland_core::topics;
    use inland_stage::{MemoryBus, MemoryBusConfig, Producer, TopicSpec};

    let dir = tempfile::tempdir().unwrap();
    let bus = MemoryBus::new(MemoryBusConfig::default());
    let spec = |name: &str, partitions| TopicSpec {
        name: name.into(),
        partitions,
        retention_ms: 3_600_000,
        compacted: false,
    };
    bus.ensure_topics(&[
        spec(topics::ANONYMIZED, 3),
        spec(topics::CONSENT, 1),
        spec(topics::ERASURE, 1),
        spec(topics::DEAD_LETTER, 1),
    ])
    .unwrap();
    let (records, rows) = fleet::records();
    for record in records {
        bus.send(topics::ANONYMIZED, record).await.unwrap();
    }
    let store = std::sync::Arc::new(LocalStore::open(dir.path()).unwrap());
    let config = ArchiverConfig {
        max_batch_age: std::time::Duration::from_millis(200),
        ..ArchiverConfig::default()
    };
    let inputs = Inputs::on_memory_bus(&bus, &config).unwrap();
    let archiver = Archiver::new(store.clone(), std::sync::Arc::new(bus.clone()), config).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let archiving = tokio::spawn(archiver.run(inputs, stop.clone()));

    // Archived once every row is listed (a fresh listing each time: a short cache).
    let archive = Archive::local(dir.path()).unwrap();
    let engine = inland_query::Engine::new(
        &archive,
        &QueryConfig {
            listing_ttl: std::time::Duration::from_millis(1),
            ..QueryConfig::default()
        },
    )
    .unwrap();
    let admin = inland_query::Principal {
        user: "pipeline-test".into(),
        role: Role::Admin,
    };
    let count = || async {
        let result = engine
            .query(
                &admin,
                inland_query::Interface::Cli,
                "SELECT count(*) FROM telemetry",
            )
            .await
            .unwrap();
        table(&result.batches).1[0][0].parse::<u64>().unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while count().await != rows {
        assert!(
            std::time::Instant::now() < deadline,
            "the archiver did not archive every row within 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    stop.cancel();
    archiving.await.unwrap().unwrap();

    compare_engines(&archive, dir.path(), rows).await;

    // And the answers are what the fleet did.
    let per_vehicle_day = engine
        .query(
            &admin,
            inland_query::Interface::Cli,
            "SELECT pseudonym, date, count(*) AS n, sum(CAST(\"Vehicle.Speed\" AS DOUBLE)) AS speed \
             FROM telemetry GROUP BY pseudonym, date ORDER BY pseudonym, date",
        )
        .await
        .unwrap();
    let expected: Vec<Vec<String>> = fleet::speed_sums()
        .into_iter()
        .map(|(p, d, n, sum)| vec![p, d, n.to_string(), format!("{sum}")])
        .collect();
    assert_eq!(table(&per_vehicle_day.batches).1, expected);
    let cameras = engine
        .query(
            &admin,
            inland_query::Interface::Cli,
            "SELECT camera_id, count(*) AS frames FROM frame_index GROUP BY camera_id ORDER BY camera_id",
        )
        .await
        .unwrap();
    let frames_per_camera = rows / 20 / fleet::CAMERAS.len() as u64;
    let mut names = fleet::CAMERAS.to_vec();
    names.sort();
    let expected: Vec<Vec<String>> = names
        .iter()
        .map(|c| vec![c.to_string(), frames_per_camera.to_string()])
        .collect();
    assert_eq!(table(&cameras.batches).1, expected);
}

/// `inland export` and `inland audit verify` on the bucket: the transfer record lands in
/// the chain in S3, and an entry changed in S3 is found.
async fn export_and_audit_on(config: &StoreConfig, dir: &Path, store: &S3Store) {
    use inland_query::cli::{AuditCommand, Command, ExportArgs, run};

    let (token, entry) = inland_query::auth::generate("root", Role::Admin);
    std::fs::write(dir.join("admin.toml"), entry.to_toml()).unwrap();
    let query = QueryConfig {
        token_file: Some(dir.join("admin.toml")),
        ..QueryConfig::default()
    };
    let export = |sql: &str, out: &str| {
        Command::Export(ExportArgs {
            sql: sql.into(),
            out: dir.join(out),
            approved_by: "DPO, ticket 7".into(),
            format: None,
            token: token.clone(),
        })
    };
    let mut printed = Vec::new();
    let refused = run(
        export("SELECT pseudonym, latitude FROM telemetry", "rows.csv"),
        config,
        dir,
        &query,
        &mut printed,
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("export refused"), "{refused}");
    assert!(!dir.join("rows.csv").exists());
    run(
        export(
            "SELECT date, hour, count(*) AS samples FROM telemetry GROUP BY date, hour",
            "hourly.parquet",
        ),
        config,
        dir,
        &query,
        &mut printed,
    )
    .await
    .unwrap();
    let report = String::from_utf8(printed).unwrap();
    assert!(report.contains("(parquet, sha256 "), "{report}");

    let verify = || async {
        let mut out = Vec::new();
        let verdict = run(
            Command::Audit {
                command: AuditCommand::Verify,
            },
            config,
            dir,
            &query,
            &mut out,
        )
        .await;
        (verdict, String::from_utf8(out).unwrap())
    };
    let (verdict, out) = verify().await;
    verdict.unwrap();
    assert!(out.ends_with(", 0 broken\n"), "{out}");
    let keys = store.list(inland_query::audit::LOG_PREFIX).await.unwrap();
    let mut transfer = None;
    for meta in &keys {
        let body = String::from_utf8(store.get(&meta.key).await.unwrap().to_vec()).unwrap();
        if body.contains("\"approved_by\":\"DPO, ticket 7\"") && body.contains("\"outcome\":\"ok\"")
        {
            transfer = Some((meta.key.clone(), body));
        }
    }
    let (key, body) = transfer.expect("the transfer record is in the bucket's audit log");
    store
        .put(&key, body.replace("ticket 7", "ticket 8").into())
        .await
        .unwrap();
    let (verdict, out) = verify().await;
    assert!(verdict.is_err(), "{out}");
    assert!(
        out.contains(&format!("at {key}: its hash does not match")),
        "{out}"
    );
}
