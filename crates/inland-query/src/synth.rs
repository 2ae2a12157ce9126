//! A deterministic synthetic archive in the exact layout the archiver writes
//! (`inland_datasets`): telemetry and frame index Parquet under
//! `dataset=…/date=YYYY-MM-DD/hour=HH/`, several files per partition (as from several
//! topic partitions, vehicles spread by pseudonym), rows in arrival (time) order. Shared
//! by the unit tests, the integration test against DuckDB and the benchmark, so a seed
//! names one data set everywhere.
//!
//! Each vehicle drives a few consecutive hours a day, sampling every `sample_every_s`
//! seconds: a random walk around Shanghai with a smoothed speed, an odometer that only
//! grows, a battery that drains, and a few frames per hour from four cameras.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float32Builder, Float64Builder, RecordBatch, StringArray,
    StringBuilder, TimestampMillisecondBuilder, UInt32Array, UInt32Builder, UInt64Builder,
    new_null_array,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use inland_datasets::Dataset;
use inland_store::ObjectStore;

use crate::Error;

/// The cameras frames come from.
pub const CAMERAS: [&str; 4] = ["front", "rear", "left", "right"];
/// The purpose every synthetic row is archived under.
pub const PURPOSE: &str = "driving_statistics";

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub seed: u64,
    pub vehicles: u32,
    pub first_day: NaiveDate,
    pub days: u32,
    /// Consecutive hours each vehicle drives per day (its start hour varies).
    pub hours_per_day: u32,
    pub sample_every_s: u32,
    pub frames_per_vehicle_hour: u32,
    /// Files per `date=/hour=` partition of each dataset.
    pub files_per_partition: u32,
}

impl Spec {
    /// A few thousand rows: quick for unit tests.
    pub fn small() -> Self {
        Self {
            seed: 7,
            vehicles: 24,
            first_day: NaiveDate::from_ymd_opt(2026, 11, 2).expect("a valid date"),
            days: 2,
            hours_per_day: 3,
            sample_every_s: 120,
            frames_per_vehicle_hour: 4,
            files_per_partition: 2,
        }
    }

    /// Telemetry rows this spec yields.
    pub fn telemetry_rows(&self) -> u64 {
        u64::from(self.vehicles)
            * u64::from(self.days)
            * u64::from(self.hours_per_day.min(24))
            * u64::from(3600 / self.sample_every_s)
    }
}

/// What [`write`] stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Written {
    pub telemetry_rows: u64,
    pub frame_rows: u64,
    pub files: u64,
}

/// SplitMix64: tiny and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Vehicle {
    pseudonym: String,
    first_hour: u32,
    lat: f64,
    lon: f64,
    heading: f64,
    speed_kmh: f64,
    odometer_km: f64,
    soc: f64,
}

impl Vehicle {
    fn new(seed: u64, index: u32) -> Self {
        let mut rng = Rng(seed ^ (u64::from(index) << 32 | 0x5EED));
        let pseudonym =
            hex::encode([rng.next_u64().to_be_bytes(), rng.next_u64().to_be_bytes()].concat());
        Self {
            pseudonym,
            first_hour: (rng.next_u64() % 24) as u32,
            lat: 31.0 + rng.unit() * 0.5,
            lon: 121.2 + rng.unit() * 0.6,
            heading: rng.unit() * std::f64::consts::TAU,
            speed_kmh: rng.unit() * 60.0,
            odometer_km: 10_000.0 + rng.unit() * 50_000.0,
            soc: 60.0 + rng.unit() * 40.0,
        }
    }

    /// Whether the vehicle drives during `hour` of day `day`: `hours_per_day` hours from
    /// a start hour that moves from day to day (wrapping past midnight within the date).
    fn drives(&self, spec: &Spec, day: u32, hour: u32) -> bool {
        let start = (self.first_hour + day * 5) % 24;
        (hour + 24 - start) % 24 < spec.hours_per_day.min(24)
    }

    fn step(&mut self, rng: &mut Rng, dt_s: f64) {
        self.speed_kmh = (self.speed_kmh + (rng.unit() - 0.5) * 20.0).clamp(0.0, 130.0);
        self.heading += (rng.unit() - 0.5) * 0.4;
        let km = self.speed_kmh * dt_s / 3600.0;
        self.lat += km * self.heading.cos() / 111.32;
        self.lon += km * self.heading.sin() / (111.32 * self.lat.to_radians().cos());
        self.odometer_km += km;
        self.soc = (self.soc - km * 0.15).max(5.0);
    }
}

/// Snapped to 0.0001° (about 11 m), as a coarse purpose would store it.
fn snap(degrees: f64) -> f64 {
    (degrees * 10_000.0).round() / 10_000.0
}

#[derive(Default)]
struct TelemetryColumns {
    pseudonym: StringBuilder,
    time: TimestampMillisecondBuilder,
    latitude: Float64Builder,
    longitude: Float64Builder,
    speed: Float32Builder,
    odometer: Float32Builder,
    soc: Float32Builder,
    moving: BooleanBuilder,
    air: Float32Builder,
    rows: usize,
}

impl TelemetryColumns {
    fn push(&mut self, v: &Vehicle, at_ms: i64, air: f32) {
        self.pseudonym.append_value(&v.pseudonym);
        self.time.append_value(at_ms);
        self.latitude.append_value(snap(v.lat));
        self.longitude.append_value(snap(v.lon));
        self.speed.append_value(v.speed_kmh as f32);
        self.odometer.append_value(v.odometer_km as f32);
        self.soc.append_value(v.soc as f32);
        self.moving.append_value(v.speed_kmh > 0.5);
        self.air.append_value(air);
        self.rows += 1;
    }

    fn finish(mut self) -> Result<RecordBatch, Error> {
        let schema = Dataset::Telemetry.schema();
        let n = self.rows;
        let utc = self.time.finish().with_timezone("UTC");
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|field| -> ArrayRef {
                match field.name().as_str() {
                    "pseudonym" => Arc::new(self.pseudonym.finish()),
                    "key_epoch" => Arc::new(UInt32Array::from(vec![1; n])),
                    "purpose" => Arc::new(StringArray::from(vec![PURPOSE; n])),
                    "time" => Arc::new(utc.clone()),
                    "latitude" => Arc::new(self.latitude.finish()),
                    "longitude" => Arc::new(self.longitude.finish()),
                    "grid_m" => Arc::new(UInt32Array::from(vec![11; n])),
                    "Vehicle.Speed" => Arc::new(self.speed.finish()),
                    "Vehicle.TraveledDistance" => Arc::new(self.odometer.finish()),
                    "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current" => {
                        Arc::new(self.soc.finish())
                    }
                    "Vehicle.IsMoving" => Arc::new(self.moving.finish()),
                    "Vehicle.Exterior.AirTemperature" => Arc::new(self.air.finish()),
                    _ => new_null_array(field.data_type(), n),
                }
            })
            .collect();
        RecordBatch::try_new(schema, columns).map_err(|e| Error::Internal(e.to_string()))
    }
}

#[derive(Default)]
struct FrameColumns {
    pseudonym: StringBuilder,
    captured_at: TimestampMillisecondBuilder,
    latitude: Float64Builder,
    longitude: Float64Builder,
    camera: StringBuilder,
    faces: UInt32Builder,
    plates: UInt32Builder,
    object_key: StringBuilder,
    bytes: UInt64Builder,
    rows: usize,
}

impl FrameColumns {
    fn push(&mut self, v: &Vehicle, at: DateTime<Utc>, camera: &str, rng: &mut Rng) {
        self.pseudonym.append_value(&v.pseudonym);
        self.captured_at.append_value(at.timestamp_millis());
        self.latitude.append_value(snap(v.lat));
        self.longitude.append_value(snap(v.lon));
        self.camera.append_value(camera);
        self.faces.append_value((rng.next_u64() % 4) as u32);
        self.plates.append_value((rng.next_u64() % 3) as u32);
        self.object_key.append_value(format!(
            "{}{}{}-{}-{camera}.jpg",
            inland_datasets::FRAMES_ROOT,
            inland_datasets::partition_path(at),
            v.pseudonym,
            at.timestamp_millis()
        ));
        self.bytes.append_value(40_000 + rng.next_u64() % 260_000);
        self.rows += 1;
    }

    fn finish(mut self) -> Result<RecordBatch, Error> {
        let schema = Dataset::FrameIndex.schema();
        let n = self.rows;
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|field| -> ArrayRef {
                match field.name().as_str() {
                    "pseudonym" => Arc::new(self.pseudonym.finish()),
                    "key_epoch" => Arc::new(UInt32Array::from(vec![1; n])),
                    "purpose" => Arc::new(StringArray::from(vec![PURPOSE; n])),
                    "captured_at" => Arc::new(self.captured_at.finish().with_timezone("UTC")),
                    "latitude" => Arc::new(self.latitude.finish()),
                    "longitude" => Arc::new(self.longitude.finish()),
                    "grid_m" => Arc::new(UInt32Array::from(vec![11; n])),
                    "camera_id" => Arc::new(self.camera.finish()),
                    "faces" => Arc::new(self.faces.finish()),
                    "plates" => Arc::new(self.plates.finish()),
                    "object_key" => Arc::new(self.object_key.finish()),
                    "bytes" => Arc::new(self.bytes.finish()),
                    other => unreachable!("frame index column {other} has no generator"),
                }
            })
            .collect();
        RecordBatch::try_new(schema, columns).map_err(|e| Error::Internal(e.to_string()))
    }
}

/// Written as the archiver writes (inland-archiver's defaults): zstd level 1, page
/// statistics, row groups of at most 128 Ki rows, a bloom filter on `pseudonym`.
fn parquet(batch: &RecordBatch, schema: SchemaRef) -> Result<Bytes, Error> {
    let pseudonym = ColumnPath::from(inland_datasets::telemetry::PSEUDONYM);
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_column_bloom_filter_enabled(pseudonym.clone(), true)
        .set_column_bloom_filter_fpp(pseudonym, 0.01)
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(properties))
        .map_err(|e| Error::Internal(e.to_string()))?;
    writer
        .write(batch)
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(writer
        .into_inner()
        .map_err(|e| Error::Internal(e.to_string()))?
        .into())
}

/// Writes the archive `spec` describes into `store`.
pub async fn write(store: &dyn ObjectStore, spec: &Spec) -> Result<Written, Error> {
    let mut vehicles: Vec<Vehicle> = (0..spec.vehicles)
        .map(|i| Vehicle::new(spec.seed, i))
        .collect();
    let mut rng = Rng(spec.seed);
    let files = spec.files_per_partition.max(1);
    let samples = 3600 / spec.sample_every_s.max(1);
    let mut written = Written::default();
    for day in 0..spec.days {
        let date = spec.first_day + Duration::days(i64::from(day));
        for hour in 0..24 {
            let start =
                Utc.from_utc_datetime(&date.and_hms_opt(hour, 0, 0).expect("hour is below 24"));
            let air = 10.0 + 10.0 * ((f64::from(hour) - 14.0) / 24.0 * std::f64::consts::TAU).cos();
            for file in 0..files {
                let active: Vec<usize> = (0..vehicles.len())
                    .filter(|&v| v as u32 % files == file && vehicles[v].drives(spec, day, hour))
                    .collect();
                if active.is_empty() {
                    continue;
                }
                let (mut telemetry, mut frames) =
                    (TelemetryColumns::default(), FrameColumns::default());
                let frame_every = samples / spec.frames_per_vehicle_hour.clamp(1, samples);
                for i in 0..samples {
                    let at = start + Duration::seconds(i64::from(i * spec.sample_every_s));
                    for &v in &active {
                        let vehicle = &mut vehicles[v];
                        vehicle.step(&mut rng, f64::from(spec.sample_every_s));
                        telemetry.push(vehicle, at.timestamp_millis(), air as f32);
                        if spec.frames_per_vehicle_hour > 0 && i % frame_every == 0 {
                            let camera = CAMERAS[(i / frame_every) as usize % CAMERAS.len()];
                            frames.push(vehicle, at, camera, &mut rng);
                        }
                    }
                }
                let name = format!("synth-{file:03}.parquet");
                for (dataset, rows, batch) in [
                    (Dataset::Telemetry, telemetry.rows, telemetry.finish()?),
                    (Dataset::FrameIndex, frames.rows, frames.finish()?),
                ] {
                    if rows == 0 {
                        continue;
                    }
                    let key = format!("{}{name}", dataset.partition(start));
                    let body = parquet(&batch, dataset.schema())?;
                    store
                        .put(&key, body)
                        .await
                        .map_err(|e| Error::Store(e.to_string()))?;
                    written.files += 1;
                    match dataset {
                        Dataset::Telemetry => written.telemetry_rows += rows as u64,
                        _ => written.frame_rows += rows as u64,
                    }
                }
            }
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use inland_store::LocalStore;

    #[tokio::test]
    async fn writes_the_datasets_layout_deterministically() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (sa, sb) = (
            LocalStore::open(a.path()).unwrap(),
            LocalStore::open(b.path()).unwrap(),
        );
        let spec = Spec::small();
        let written = write(&sa, &spec).await.unwrap();
        assert_eq!(written.telemetry_rows, spec.telemetry_rows());
        assert!(written.frame_rows > 0);
        assert_eq!(write(&sb, &spec).await.unwrap(), written);
        let keys = sa.list("").await.unwrap();
        assert_eq!(keys.len() as u64, written.files);
        for meta in &keys {
            assert!(
                meta.key.starts_with("dataset=telemetry/date=2026-11-0")
                    || meta.key.starts_with("dataset=frame_index/date=2026-11-0"),
                "{}",
                meta.key
            );
            assert_eq!(
                sa.get(&meta.key).await.unwrap(),
                sb.get(&meta.key).await.unwrap()
            );
        }
    }
}
