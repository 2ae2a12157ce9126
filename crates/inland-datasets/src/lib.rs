//! The archive's layout: what the archiver writes and the query service reads, in one
//! place so the two cannot drift.
//!
//! Every dataset is Parquet under a Hive-partitioned prefix,
//! `dataset=<name>/date=YYYY-MM-DD/hour=HH/<file>`, so DuckDB, Polars, Spark and Trino
//! read it as it is. `date` and `hour` are the UTC date and hour of the row's time (the
//! record's recording time); they live in the path, not in the files.

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use inland_core::vss::{self, Datatype, Sensitivity};
use inland_store::DataClass;

/// The archived datasets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// Anonymized telemetry: one row per sample instant of a record.
    Telemetry,
    /// One row per archived (anonymized) camera frame, naming its JPEG object.
    FrameIndex,
    /// Every consent event as it was on `inland.consent.v1`: the append-only history an
    /// auditor is shown. Identifies vehicles, so the query service never registers it.
    ConsentEvents,
}

impl Dataset {
    /// The table name in SQL and the `dataset=` partition value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Telemetry => "telemetry",
            Self::FrameIndex => "frame_index",
            Self::ConsentEvents => "consent_events",
        }
    }

    pub fn class(self) -> DataClass {
        match self {
            Self::Telemetry => DataClass::Telemetry,
            Self::FrameIndex => DataClass::FrameIndex,
            Self::ConsentEvents => DataClass::Consent,
        }
    }

    /// Where the dataset's files live: the class prefix, plus `events/` for consent.
    pub fn root(self) -> &'static str {
        match self {
            Self::Telemetry => "dataset=telemetry/",
            Self::FrameIndex => "dataset=frame_index/",
            Self::ConsentEvents => "consent/events/",
        }
    }

    /// The Arrow schema of the dataset's Parquet files (without the partition columns).
    pub fn schema(self) -> SchemaRef {
        match self {
            Self::Telemetry => TELEMETRY.clone(),
            Self::FrameIndex => FRAME_INDEX.clone(),
            Self::ConsentEvents => CONSENT_EVENTS.clone(),
        }
    }

    /// The partition directory holding rows of time `at`, ending in `/`.
    pub fn partition(self, at: DateTime<Utc>) -> String {
        format!("{}{}", self.root(), partition_path(at))
    }
}

/// `date=YYYY-MM-DD/hour=HH/` for a UTC instant.
pub fn partition_path(at: DateTime<Utc>) -> String {
    at.format("date=%Y-%m-%d/hour=%H/").to_string()
}

/// The Hive partition columns, as the query service declares them.
pub const PARTITION_COLUMNS: [&str; 2] = ["date", "hour"];

/// Frames are stored as JPEG objects here, named by the frame index's `object_key`.
pub const FRAMES_ROOT: &str = "dataset=frames/";

/// Telemetry columns before the signals.
pub mod telemetry {
    pub const PSEUDONYM: &str = "pseudonym";
    pub const KEY_EPOCH: &str = "key_epoch";
    pub const PURPOSE: &str = "purpose";
    /// The sample instant (floored to the purpose's resolution), UTC milliseconds.
    pub const TIME: &str = "time";
    /// Position at this instant at the purpose's precision; null without one.
    pub const LATITUDE: &str = "latitude";
    pub const LONGITUDE: &str = "longitude";
    /// Side of the grid cell the position was snapped to, metres; 0 when precise.
    pub const GRID_M: &str = "grid_m";
}

/// Frame index columns.
pub mod frame_index {
    pub const PSEUDONYM: &str = "pseudonym";
    pub const KEY_EPOCH: &str = "key_epoch";
    pub const PURPOSE: &str = "purpose";
    pub const CAPTURED_AT: &str = "captured_at";
    pub const LATITUDE: &str = "latitude";
    pub const LONGITUDE: &str = "longitude";
    pub const GRID_M: &str = "grid_m";
    pub const CAMERA_ID: &str = "camera_id";
    pub const FACES: &str = "faces";
    pub const PLATES: &str = "plates";
    /// Key of the JPEG object, under [`super::FRAMES_ROOT`].
    pub const OBJECT_KEY: &str = "object_key";
    pub const BYTES: &str = "bytes";
}

/// Consent event columns: the record as it was on the topic.
pub mod consent_events {
    pub const PARTITION: &str = "partition";
    pub const OFFSET: &str = "offset";
    pub const TIMESTAMP: &str = "timestamp";
    pub const KEY: &str = "key";
    /// The encoded `inland.consent.v1` event.
    pub const PAYLOAD: &str = "payload";
}

fn utc_millis() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The Arrow type a VSS datatype is stored as.
pub fn arrow_type(datatype: Datatype) -> DataType {
    match datatype {
        Datatype::Boolean => DataType::Boolean,
        Datatype::String => DataType::Utf8,
        Datatype::Int8 => DataType::Int8,
        Datatype::Int16 => DataType::Int16,
        Datatype::Int32 => DataType::Int32,
        Datatype::Int64 => DataType::Int64,
        Datatype::Uint8 => DataType::UInt8,
        Datatype::Uint16 => DataType::UInt16,
        Datatype::Uint32 => DataType::UInt32,
        Datatype::Uint64 => DataType::UInt64,
        Datatype::Float => DataType::Float32,
        Datatype::Double => DataType::Float64,
    }
}

/// The signals that get a telemetry column: every catalog signal except identifiers
/// (never archived) and latitude/longitude (the typed position columns), in catalog
/// order, each named by its VSS path.
pub fn signal_columns() -> impl Iterator<Item = &'static vss::Signal> {
    vss::catalog().iter().filter(|s| {
        s.sensitivity != Sensitivity::Identifier
            && s.path != vss::LATITUDE
            && s.path != vss::LONGITUDE
    })
}

static TELEMETRY: LazyLock<SchemaRef> = LazyLock::new(|| {
    use telemetry::*;
    let mut fields = vec![
        Field::new(PSEUDONYM, DataType::Utf8, false),
        Field::new(KEY_EPOCH, DataType::UInt32, false),
        Field::new(PURPOSE, DataType::Utf8, false),
        Field::new(TIME, utc_millis(), false),
        Field::new(LATITUDE, DataType::Float64, true),
        Field::new(LONGITUDE, DataType::Float64, true),
        Field::new(GRID_M, DataType::UInt32, true),
    ];
    fields.extend(signal_columns().map(|s| Field::new(s.path, arrow_type(s.datatype), true)));
    Arc::new(Schema::new(fields))
});

static FRAME_INDEX: LazyLock<SchemaRef> = LazyLock::new(|| {
    use frame_index::*;
    Arc::new(Schema::new(vec![
        Field::new(PSEUDONYM, DataType::Utf8, false),
        Field::new(KEY_EPOCH, DataType::UInt32, false),
        Field::new(PURPOSE, DataType::Utf8, false),
        Field::new(CAPTURED_AT, utc_millis(), false),
        Field::new(LATITUDE, DataType::Float64, true),
        Field::new(LONGITUDE, DataType::Float64, true),
        Field::new(GRID_M, DataType::UInt32, true),
        Field::new(CAMERA_ID, DataType::Utf8, false),
        Field::new(FACES, DataType::UInt32, false),
        Field::new(PLATES, DataType::UInt32, false),
        Field::new(OBJECT_KEY, DataType::Utf8, false),
        Field::new(BYTES, DataType::UInt64, false),
    ]))
});

static CONSENT_EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use consent_events::*;
    Arc::new(Schema::new(vec![
        Field::new(PARTITION, DataType::Int32, false),
        Field::new(OFFSET, DataType::Int64, false),
        Field::new(TIMESTAMP, utc_millis(), true),
        Field::new(KEY, DataType::Binary, false),
        Field::new(PAYLOAD, DataType::Binary, false),
    ]))
});

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn partitions_are_hive_paths_under_the_class_prefix() {
        let at = Utc.with_ymd_and_hms(2026, 11, 3, 7, 59, 59).unwrap();
        let dir = Dataset::Telemetry.partition(at);
        assert_eq!(dir, "dataset=telemetry/date=2026-11-03/hour=07/");
        for dataset in [
            Dataset::Telemetry,
            Dataset::FrameIndex,
            Dataset::ConsentEvents,
        ] {
            assert_eq!(
                DataClass::of_key(&dataset.partition(at)),
                Some(dataset.class())
            );
        }
        assert_eq!(DataClass::of_key(FRAMES_ROOT), Some(DataClass::Frames));
    }

    #[test]
    fn telemetry_has_a_typed_column_per_signal_and_no_identifier() {
        let schema = Dataset::Telemetry.schema();
        let speed = schema.field_with_name("Vehicle.Speed").unwrap();
        assert_eq!(speed.data_type(), &DataType::Float32);
        assert!(
            schema
                .field_with_name("Vehicle.VehicleIdentification.VIN")
                .is_err()
        );
        assert!(schema.field_with_name(vss::LATITUDE).is_err());
        assert_eq!(schema.fields().len(), 7 + signal_columns().count());
    }
}
