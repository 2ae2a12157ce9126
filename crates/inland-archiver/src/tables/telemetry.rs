//! Telemetry rows: one per sample instant of a record, a typed column per signal.
//!
//! Samples of a record with equal times share a row. A signal sampled more than once at
//! one instant (after the purpose floored the times, 10 Hz samples share each second)
//! fills as many rows at that instant, the k-th value of every signal in the k-th row, so
//! no value is dropped. Latitude and longitude go to the typed position columns; the
//! anonymizer pairs them by instant the same way when it snaps them to the grid.
//! `grid_m` stays null: `AnonymizedTelemetry` does not say which grid its coordinates were
//! snapped to (frames do).

use std::sync::{Arc, LazyLock};

use arrow_array::RecordBatch;
use arrow_array::builder::{
    Float64Builder, StringBuilder, TimestampMillisecondBuilder, UInt32Builder,
};
use arrow_array::types::UInt32Type;
use inland_anonymizer::{SampleValue, TelemetryView};
use inland_core::vss::{self, Datatype};
use inland_datasets::{Dataset, signal_columns};
use inland_proto::ingest::v1::sample::Value;

use super::column::{Column, Nulls, fits};
use super::{Reject, millis};
use crate::Error;

/// Where a catalog signal goes in a row.
#[derive(Clone, Copy)]
enum Slot {
    Latitude,
    Longitude,
    /// Index among the signal columns.
    Signal(usize),
}

impl Slot {
    /// Position in a row's cells: latitude, longitude, then the signals.
    fn index(self) -> usize {
        match self {
            Self::Latitude => 0,
            Self::Longitude => 1,
            Self::Signal(i) => 2 + i,
        }
    }
}

struct Layout {
    /// By catalog index; `None` for signals that have no column (identifiers).
    slots: Vec<Option<Slot>>,
    datatypes: Vec<Datatype>,
}

/// Memory of one row's fixed columns (pseudonym and purpose offsets, key epoch, time,
/// latitude, longitude, with validity), without the strings.
const ROW_BYTES: usize = 4 + 4 + 4 + 8 + 9 + 9;

static LAYOUT: LazyLock<Layout> = LazyLock::new(|| {
    let signals: Vec<&vss::Signal> = signal_columns().collect();
    let slots = vss::catalog()
        .iter()
        .map(|s| match s.path {
            vss::LATITUDE => Some(Slot::Latitude),
            vss::LONGITUDE => Some(Slot::Longitude),
            path => signals
                .iter()
                .position(|c| c.path == path)
                .map(Slot::Signal),
        })
        .collect();
    Layout {
        slots,
        datatypes: signals.iter().map(|s| s.datatype).collect(),
    }
});

/// The telemetry rows of one batch and hour.
pub(crate) struct TelemetryTable {
    /// The pseudonym, key epoch and purpose of consecutive rows, once per record: a record
    /// fills several rows, and these columns are built at once in [`Self::finish`]
    /// instead of growing (and copying) row by row.
    runs: Vec<Run>,
    /// The runs' pseudonyms and purposes back to back.
    labels: String,
    time: TimestampMillisecondBuilder,
    latitude: Float64Builder,
    longitude: Float64Builder,
    signals: Vec<Column>,
    pub(crate) rows: usize,
}

impl TelemetryTable {
    fn new() -> Self {
        Self {
            runs: Vec::new(),
            labels: String::new(),
            time: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            latitude: Float64Builder::new(),
            longitude: Float64Builder::new(),
            signals: LAYOUT.datatypes.iter().map(|d| Column::new(*d)).collect(),
            rows: 0,
        }
    }

    pub(crate) fn finish(mut self) -> Result<RecordBatch, Error> {
        let (mut bytes, mut start) = ([0; 2], 0);
        for run in &self.runs {
            bytes[0] += run.rows * (run.pseudonym_end - start);
            bytes[1] += run.rows * (run.purpose_end - run.pseudonym_end);
            start = run.purpose_end;
        }
        let mut pseudonym = StringBuilder::with_capacity(self.rows, bytes[0]);
        let mut purpose = StringBuilder::with_capacity(self.rows, bytes[1]);
        let mut key_epoch = UInt32Builder::with_capacity(self.rows);
        let mut start = 0;
        for run in &self.runs {
            let (p, q) = (
                &self.labels[start..run.pseudonym_end],
                &self.labels[run.pseudonym_end..run.purpose_end],
            );
            for _ in 0..run.rows {
                pseudonym.append_value(p);
                purpose.append_value(q);
            }
            key_epoch.append_value_n(run.key_epoch, run.rows);
            start = run.purpose_end;
        }
        let nulls = Nulls::new(self.rows);
        let mut columns: Vec<arrow_array::ArrayRef> = vec![
            Arc::new(pseudonym.finish()),
            Arc::new(key_epoch.finish()),
            Arc::new(purpose.finish()),
            Arc::new(self.time.finish()),
            Arc::new(self.latitude.finish()),
            Arc::new(self.longitude.finish()),
            nulls.primitive::<UInt32Type>(),
        ];
        columns.extend(self.signals.iter().map(|c| c.finish(&nulls)));
        RecordBatch::try_new(Dataset::Telemetry.schema(), columns)
            .map_err(|e| Error::parquet("building a telemetry batch")(e.into()))
    }
}

/// Rows of one record: how many, and where its labels end in `labels`.
struct Run {
    rows: usize,
    key_epoch: u32,
    pseudonym_end: usize,
    purpose_end: usize,
}

/// A sample placed: its time, slot and value.
struct Placed {
    time_ms: i64,
    slot: usize,
    value: Value,
}

/// Checks every sample of a telemetry record and places it, or says why the record
/// cannot be archived (nothing of it is then written).
fn place(view: &TelemetryView<'_>) -> Result<Vec<Placed>, Reject> {
    let fallback = view.recorded_at().map(millis);
    let catalog = vss::catalog();
    let mut placed = Vec::with_capacity(view.samples().len());
    for s in view.samples() {
        let time_ms = s
            .time
            .as_ref()
            .map(millis)
            .or(fallback)
            .ok_or_else(|| Reject {
                label: "no_time",
                reason: "a sample without a time in a record without recorded_at".into(),
            })?;
        // Samples of a record share a few instants: check each once.
        if placed.last().is_none_or(|p: &Placed| p.time_ms != time_ms)
            && !crate::keys::valid_time(time_ms)
        {
            return Err(Reject {
                label: "bad_time",
                reason: "a sample time outside the representable range".into(),
            });
        }
        let signal = &catalog[s.signal];
        let Some(slot) = LAYOUT.slots[s.signal] else {
            return Err(Reject {
                label: "no_column",
                reason: format!("signal {:?} has no telemetry column", signal.path),
            });
        };
        let value = s.value.map(SampleValue::to_proto);
        let value = match (slot, value) {
            (Slot::Latitude, Some(Value::DoubleValue(v))) if (-90.0..=90.0).contains(&v) => {
                Value::DoubleValue(v)
            }
            (Slot::Longitude, Some(Value::DoubleValue(v))) if (-180.0..=180.0).contains(&v) => {
                Value::DoubleValue(v)
            }
            (Slot::Signal(_), Some(value)) if fits(signal.datatype, &value) => value,
            _ => {
                return Err(Reject {
                    label: "mistyped",
                    reason: format!(
                        "a sample of {} is not a valid {} value",
                        signal.path,
                        signal.datatype.as_str()
                    ),
                });
            }
        };
        placed.push(Placed {
            time_ms,
            slot: slot.index(),
            value,
        });
    }
    // Stable: samples of one instant keep their order, which pairs the k-th values. They
    // mostly come in time order already, and a stable sort of more than 20 allocates.
    if !placed.is_sorted_by_key(|p| p.time_ms) {
        placed.sort_by_key(|p| p.time_ms);
    }
    Ok(placed)
}

/// A telemetry record, checked and placed, ready to become rows.
pub(crate) struct TelemetryRecord {
    pub(crate) pseudonym: String,
    pub(crate) purpose: String,
    pub(crate) record_id: String,
    key_epoch: u32,
    placed: Vec<Placed>,
}

impl TelemetryRecord {
    pub(crate) fn new(view: &TelemetryView<'_>) -> Result<Self, Reject> {
        Ok(Self {
            placed: place(view)?,
            pseudonym: view.pseudonym().to_owned(),
            purpose: view.purpose().to_owned(),
            record_id: view.record_id().to_owned(),
            key_epoch: view.key_epoch(),
        })
    }

    /// The time of the earliest row; `None` without samples.
    pub(crate) fn earliest_ms(&self) -> Option<i64> {
        self.placed.first().map(|p| p.time_ms)
    }

    /// The hours the rows fall in, ascending, each once.
    pub(crate) fn hours(&self) -> impl Iterator<Item = i64> + '_ {
        let mut last = None;
        self.placed.iter().filter_map(move |p| {
            let hour = crate::keys::hour_of(p.time_ms);
            (last != Some(hour)).then(|| {
                last = Some(hour);
                hour
            })
        })
    }

    /// Appends the rows of `hour` to `table` (created on first use); returns the memory
    /// they take.
    pub(crate) fn append(&self, hour: i64, table: &mut Option<TelemetryTable>) -> usize {
        let table = table.get_or_insert_with(TelemetryTable::new);
        table.labels.push_str(&self.pseudonym);
        let pseudonym_end = table.labels.len();
        table.labels.push_str(&self.purpose);
        table.runs.push(Run {
            rows: 0,
            key_epoch: self.key_epoch,
            pseudonym_end,
            purpose_end: table.labels.len(),
        });
        let row_bytes = ROW_BYTES + self.pseudonym.len() + self.purpose.len();
        let slots = 2 + LAYOUT.datatypes.len();
        let mut counts = vec![0usize; slots];
        let mut cells: Vec<Option<&Value>> = Vec::new();
        let mut bytes = 0;
        // Sorted by time: the hour's samples are a run.
        let start = self
            .placed
            .partition_point(|p| crate::keys::hour_of(p.time_ms) < hour);
        let len = self.placed[start..].partition_point(|p| crate::keys::hour_of(p.time_ms) == hour);
        let of_hour = &self.placed[start..start + len];
        for instant in of_hour.chunk_by(|a, b| a.time_ms == b.time_ms) {
            counts.fill(0);
            let rows = instant
                .iter()
                .map(|p| {
                    counts[p.slot] += 1;
                    counts[p.slot]
                })
                .max()
                .unwrap_or(0);
            cells.clear();
            cells.resize(rows * slots, None);
            counts.fill(0);
            for p in instant {
                cells[counts[p.slot] * slots + p.slot] = Some(&p.value);
                counts[p.slot] += 1;
            }
            for row in cells.chunks(slots) {
                bytes += row_bytes + table.append_row(instant[0].time_ms, row);
            }
        }
        bytes
    }
}

fn double(value: Option<&Value>) -> Option<f64> {
    match value {
        Some(Value::DoubleValue(v)) => Some(*v),
        _ => None,
    }
}

impl TelemetryTable {
    /// One row: `cells` holds the value of each slot, if it has one. Returns the memory
    /// its signal values take.
    fn append_row(&mut self, time_ms: i64, cells: &[Option<&Value>]) -> usize {
        self.runs
            .last_mut()
            .expect("TelemetryRecord::append started a run")
            .rows += 1;
        self.time.append_value(time_ms);
        self.latitude
            .append_option(double(cells[Slot::Latitude.index()]));
        self.longitude
            .append_option(double(cells[Slot::Longitude.index()]));
        let mut bytes = 0;
        let row = self.rows as u32;
        for (i, column) in self.signals.iter_mut().enumerate() {
            if let Some(v) = cells[Slot::Signal(i).index()] {
                bytes += column.push(row, v);
            }
        }
        self.rows += 1;
        bytes
    }
}
