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
use inland_core::vss::{self, Datatype};
use inland_datasets::{Dataset, signal_columns};
use inland_proto::ingest::v1::Sample;
use inland_proto::ingest::v1::sample::Value;
use inland_proto::pipeline::v1::AnonymizedRecord;

use super::column::{Column, fits};
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
/// latitude, longitude, grid_m, with validity), without the strings.
const ROW_BYTES: usize = 4 + 4 + 4 + 8 + 9 + 9 + 5;

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
    grid_m: UInt32Builder,
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
            grid_m: UInt32Builder::new(),
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
        let mut columns: Vec<arrow_array::ArrayRef> = vec![
            Arc::new(pseudonym.finish()),
            Arc::new(key_epoch.finish()),
            Arc::new(purpose.finish()),
            Arc::new(self.time.finish()),
            Arc::new(self.latitude.finish()),
            Arc::new(self.longitude.finish()),
            Arc::new(self.grid_m.finish()),
        ];
        columns.extend(self.signals.iter().map(|c| c.finish(self.rows)));
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

/// A sample ready to be placed: its time, slot and index in the record.
struct Placed {
    time_ms: i64,
    slot: usize,
    sample: usize,
}

/// Checks every sample of a telemetry record and places it, or says why the record
/// cannot be archived (nothing of it is then written).
fn place(record: &AnonymizedRecord, samples: &[Sample]) -> Result<Vec<Placed>, Reject> {
    let fallback = record.recorded_at.as_ref().map(millis);
    let catalog = vss::catalog();
    let mut placed = Vec::with_capacity(samples.len());
    for (i, s) in samples.iter().enumerate() {
        let time_ms = s.time.as_ref().map(millis).or(fallback).ok_or(Reject {
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
        let slot = catalog
            .binary_search_by(|c| c.path.cmp(&s.path))
            .ok()
            .and_then(|c| LAYOUT.slots[c].map(|slot| (c, slot)));
        let Some((c, slot)) = slot else {
            return Err(Reject {
                label: "no_column",
                reason: format!("signal {:?} has no telemetry column", s.path),
            });
        };
        let ok = match (slot, &s.value) {
            (Slot::Latitude, Some(Value::DoubleValue(v))) => (-90.0..=90.0).contains(v),
            (Slot::Longitude, Some(Value::DoubleValue(v))) => (-180.0..=180.0).contains(v),
            (Slot::Signal(_), Some(value)) => fits(catalog[c].datatype, value),
            _ => false,
        };
        if !ok {
            return Err(Reject {
                label: "mistyped",
                reason: format!(
                    "a sample of {} is not a valid {} value",
                    s.path,
                    catalog[c].datatype.as_str()
                ),
            });
        }
        placed.push(Placed {
            time_ms,
            slot: slot.index(),
            sample: i,
        });
    }
    // Stable: samples of one instant keep their order, which pairs the k-th values.
    placed.sort_by_key(|p| p.time_ms);
    Ok(placed)
}

/// The rows a telemetry record adds, per hour.
pub(crate) struct Rows {
    placed: Vec<Placed>,
}

impl Rows {
    pub(crate) fn new(record: &AnonymizedRecord, samples: &[Sample]) -> Result<Self, Reject> {
        Ok(Self {
            placed: place(record, samples)?,
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
    pub(crate) fn append(
        &self,
        hour: i64,
        record: &AnonymizedRecord,
        samples: &[Sample],
        table: &mut Option<TelemetryTable>,
    ) -> usize {
        let table = table.get_or_insert_with(TelemetryTable::new);
        table.labels.push_str(&record.pseudonym);
        let pseudonym_end = table.labels.len();
        table.labels.push_str(&record.purpose);
        table.runs.push(Run {
            rows: 0,
            key_epoch: record.key_epoch,
            pseudonym_end,
            purpose_end: table.labels.len(),
        });
        let slots = 2 + LAYOUT.datatypes.len();
        let mut counts = vec![0usize; slots];
        let mut cells: Vec<Option<usize>> = Vec::new();
        let mut bytes = 0;
        let of_hour = self
            .placed
            .iter()
            .filter(|p| crate::keys::hour_of(p.time_ms) == hour);
        let instants: Vec<&Placed> = of_hour.collect();
        for instant in instants.chunk_by(|a, b| a.time_ms == b.time_ms) {
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
                cells[counts[p.slot] * slots + p.slot] = Some(p.sample);
                counts[p.slot] += 1;
            }
            for row in cells.chunks(slots) {
                bytes += table.append_row(record, instant[0].time_ms, row, samples);
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
    /// One row: `cells` holds, per slot, the index of its sample in `samples`.
    fn append_row(
        &mut self,
        record: &AnonymizedRecord,
        time_ms: i64,
        cells: &[Option<usize>],
        samples: &[Sample],
    ) -> usize {
        let value = |slot: usize| cells[slot].and_then(|i| samples[i].value.as_ref());
        self.runs
            .last_mut()
            .expect("Rows::append started a run")
            .rows += 1;
        self.time.append_value(time_ms);
        self.latitude
            .append_option(double(value(Slot::Latitude.index())));
        self.longitude
            .append_option(double(value(Slot::Longitude.index())));
        self.grid_m.append_null();
        let mut bytes = ROW_BYTES + record.pseudonym.len() + record.purpose.len();
        let row = self.rows as u32;
        for (i, column) in self.signals.iter_mut().enumerate() {
            if let Some(v) = value(Slot::Signal(i).index()) {
                bytes += column.push(row, v);
            }
        }
        self.rows += 1;
        bytes
    }
}
