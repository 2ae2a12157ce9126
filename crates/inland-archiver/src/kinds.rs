//! What each input becomes: anonymized records → telemetry rows, frame JPEGs and frame
//! index rows; consent records → consent event rows.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use bytes::Bytes;
use inland_anonymizer::{Anonymized, FromTopic};
use inland_datasets::Dataset;
use inland_proto::pipeline::v1::anonymized_record::Payload;
use inland_stage::Consumed;
use parquet::file::properties::WriterProperties;

use crate::dedup::RecentIds;
use crate::keys::{BatchName, frame_key, hour_of, valid_time};
use crate::requests::Erasures;
use crate::tables::consent::{self, ConsentRow};
use crate::tables::frames::{self, FrameRow};
use crate::tables::telemetry::{TelemetryRecord, TelemetryTable};
use crate::tables::{Reject, millis};
use crate::{Error, files};

/// An object a batch writes, with the batch's records it holds (by index).
pub(crate) struct Object {
    pub(crate) key: String,
    pub(crate) body: Bytes,
    /// `telemetry`, `frame_index`, `frames` or `consent_events`: the metrics label.
    pub(crate) dataset: &'static str,
    pub(crate) rows: usize,
    pub(crate) sources: Vec<u32>,
}

/// What became of one record.
pub(crate) enum Added {
    /// Its rows are in the tables; they take this much memory.
    Archived {
        bytes: usize,
    },
    /// A copy of a record archived recently: dropped.
    Duplicate,
    /// Covered by an erasure request: dropped.
    Erased,
    Rejected(Reject),
}

/// One input of the archiver: how its records become rows, and rows become objects.
pub(crate) trait Kind: Send + Sync + 'static {
    type Tables: Default + Send + 'static;
    /// A record decoded and checked, ready to be added.
    type Prepared: Send + Sync + 'static;

    /// The CPU-heavy part of adding a record (decoding, checking, placing its samples),
    /// which depends on nothing but the record: runs in parallel, ahead of [`Kind::add`].
    fn prepare(consumed: &Consumed) -> Self::Prepared;

    /// Adds the record (number `source` of the batch) to `tables`, unless it is bad, a
    /// duplicate or erased; nothing of a rejected record is added.
    fn add(
        tables: &mut Self::Tables,
        prepared: Self::Prepared,
        consumed: &Consumed,
        source: u32,
        recent: &mut RecentIds,
        erasures: &Erasures,
    ) -> Added;

    /// The objects written before the Parquet files (the frames' JPEGs, which the index
    /// names), taken out of the tables.
    fn take_blobs(tables: &mut Self::Tables) -> Vec<Object>;

    /// Keys to delete: where the batch would have written objects of erased records and
    /// now writes nothing (a replay's first attempt may have written them).
    fn take_erased(tables: &mut Self::Tables, name: &BatchName) -> Vec<String>;

    /// The Parquet files, without rows of the `refused` records (whose JPEG the store
    /// refused). CPU-bound: runs on a blocking thread.
    fn encode(
        tables: Self::Tables,
        name: &BatchName,
        refused: &HashSet<u32>,
        props: &WriterProperties,
    ) -> Result<Vec<Object>, Error>;
}

/// Anonymized records.
pub(crate) struct Archive;

#[derive(Default)]
pub(crate) struct ArchiveTables {
    hours: BTreeMap<i64, Hour>,
    jpegs: Vec<Object>,
    /// Of the records left out as erased: the hours of their telemetry rows and frames,
    /// and their frames' keys.
    erased_telemetry: BTreeSet<i64>,
    erased_frame_hours: BTreeSet<i64>,
    erased_frames: Vec<String>,
}

#[derive(Default)]
struct Hour {
    telemetry: Option<TelemetryTable>,
    /// Records with rows in `telemetry`, ascending.
    telemetry_sources: Vec<u32>,
    frames: Vec<FrameRow>,
}

/// An anonymized record ready to be added. The only ways in are an [`Anonymized`] and an
/// [`inland_anonymizer::TelemetryView`], so a record that is not provably anonymized is
/// never written.
pub(crate) enum Ready {
    /// Its rows, placed.
    Telemetry(TelemetryRecord),
    Frame {
        anonymized: Anonymized,
        time_ms: i64,
    },
}

impl Ready {
    /// The earliest time of its rows, which an erasure request's time is compared with.
    fn earliest_ms(&self) -> Option<i64> {
        match self {
            Ready::Telemetry(rows) => rows.earliest_ms(),
            Ready::Frame { time_ms, .. } => Some(*time_ms),
        }
    }

    fn pseudonym(&self) -> &str {
        match self {
            Ready::Telemetry(rows) => &rows.pseudonym,
            Ready::Frame { anonymized, .. } => &anonymized.record().pseudonym,
        }
    }

    /// What redeliveries are recognised by: the upload's record id, and the purpose.
    fn id(&self) -> (&str, &str) {
        match self {
            Ready::Telemetry(rows) => (&rows.record_id, &rows.purpose),
            Ready::Frame { anonymized, .. } => {
                (anonymized.record_id(), &anonymized.record().purpose)
            }
        }
    }
}

/// The time of an anonymized frame record, checked.
fn frame_time(anonymized: &Anonymized) -> Result<i64, Reject> {
    let record = anonymized.record();
    let Some(Payload::Frame(frame)) = &record.payload else {
        return Err(Reject {
            label: "no_payload",
            reason: "the record has no payload".into(),
        });
    };
    let time_ms = frame
        .captured_at
        .as_ref()
        .or(record.recorded_at.as_ref())
        .map(millis)
        .ok_or_else(|| Reject {
            label: "no_time",
            reason: "a frame without captured_at in a record without recorded_at".into(),
        })?;
    if !valid_time(time_ms) {
        return Err(Reject {
            label: "bad_time",
            reason: "a frame time outside the representable range".into(),
        });
    }
    Ok(time_ms)
}

impl Kind for Archive {
    type Tables = ArchiveTables;
    type Prepared = Result<Ready, Reject>;

    fn prepare(consumed: &Consumed) -> Self::Prepared {
        let read = Anonymized::read_from_topic(&consumed.record).map_err(|e| Reject {
            label: "not_anonymized",
            reason: e.to_string(),
        })?;
        match read {
            FromTopic::Telemetry(view) => Ok(Ready::Telemetry(TelemetryRecord::new(&view)?)),
            FromTopic::Frame(anonymized) => Ok(Ready::Frame {
                time_ms: frame_time(&anonymized)?,
                anonymized,
            }),
        }
    }

    fn add(
        tables: &mut ArchiveTables,
        prepared: Self::Prepared,
        consumed: &Consumed,
        source: u32,
        recent: &mut RecentIds,
        erasures: &Erasures,
    ) -> Added {
        let ready = match prepared {
            Ok(ready) => ready,
            Err(reject) => return Added::Rejected(reject),
        };
        if ready
            .earliest_ms()
            .is_some_and(|t| erasures.covers(ready.pseudonym(), t))
        {
            match &ready {
                Ready::Telemetry(rows) => tables.erased_telemetry.extend(rows.hours()),
                Ready::Frame { time_ms, .. } => {
                    let hour = hour_of(*time_ms);
                    tables.erased_frame_hours.insert(hour);
                    let (topic, partition) = (&consumed.topic, consumed.partition);
                    let key = frame_key(topic, partition, consumed.offset, hour);
                    tables.erased_frames.push(key);
                }
            }
            return Added::Erased;
        }
        let (record_id, purpose) = ready.id();
        if !recent.insert(record_id, purpose) {
            return Added::Duplicate;
        }
        let bytes = match &ready {
            Ready::Telemetry(rows) => {
                let mut bytes = 0;
                for hour in rows.hours() {
                    let h = tables.hours.entry(hour).or_default();
                    bytes += rows.append(hour, &mut h.telemetry);
                    h.telemetry_sources.push(source);
                }
                bytes
            }
            Ready::Frame {
                anonymized,
                time_ms,
            } => {
                let record = anonymized.record();
                let Some(Payload::Frame(frame)) = &record.payload else {
                    unreachable!("prepare checked the payload is a frame");
                };
                let hour = hour_of(*time_ms);
                let key = frame_key(&consumed.topic, consumed.partition, consumed.offset, hour);
                let row = FrameRow::new(record, frame, *time_ms, key.clone(), source);
                let bytes = row.size();
                tables.hours.entry(hour).or_default().frames.push(row);
                tables.jpegs.push(Object {
                    key,
                    // Shares the consumed payload's buffer (prost decodes `bytes` as Bytes).
                    body: frame.jpeg.clone(),
                    dataset: "frames",
                    rows: 1,
                    sources: vec![source],
                });
                bytes
            }
        };
        Added::Archived { bytes }
    }

    fn take_blobs(tables: &mut ArchiveTables) -> Vec<Object> {
        std::mem::take(&mut tables.jpegs)
    }

    fn take_erased(tables: &mut ArchiveTables, name: &BatchName) -> Vec<String> {
        let hours = &tables.hours;
        let empty = |hour: &i64, of: fn(&Hour) -> bool| hours.get(hour).is_none_or(|h| !of(h));
        let mut keys = std::mem::take(&mut tables.erased_frames);
        for hour in std::mem::take(&mut tables.erased_telemetry) {
            if empty(&hour, |h| h.telemetry.is_some()) {
                keys.push(name.parquet_key(Dataset::Telemetry, hour));
            }
        }
        for hour in std::mem::take(&mut tables.erased_frame_hours) {
            if empty(&hour, |h| !h.frames.is_empty()) {
                keys.push(name.parquet_key(Dataset::FrameIndex, hour));
            }
        }
        keys
    }

    fn encode(
        tables: ArchiveTables,
        name: &BatchName,
        refused: &HashSet<u32>,
        props: &WriterProperties,
    ) -> Result<Vec<Object>, Error> {
        let mut objects = Vec::new();
        for (hour, h) in tables.hours {
            if let Some(table) = h.telemetry {
                let rows = table.rows;
                let batch = table.finish()?;
                objects.push(Object {
                    key: name.parquet_key(Dataset::Telemetry, hour),
                    body: files::write(&batch, props.clone())?,
                    dataset: Dataset::Telemetry.name(),
                    rows,
                    sources: h.telemetry_sources,
                });
            }
            let kept: Vec<&FrameRow> = h
                .frames
                .iter()
                .filter(|f| !refused.contains(&f.source))
                .collect();
            if !kept.is_empty() {
                let batch = frames::batch(kept.iter().copied())?;
                objects.push(Object {
                    key: name.parquet_key(Dataset::FrameIndex, hour),
                    body: files::write(&batch, props.clone())?,
                    dataset: Dataset::FrameIndex.name(),
                    rows: kept.len(),
                    sources: kept.iter().map(|f| f.source).collect(),
                });
            }
        }
        Ok(objects)
    }
}

/// Consent events, archived as they were on the topic.
pub(crate) struct ConsentHistory;

impl Kind for ConsentHistory {
    /// Rows by hour of the record's timestamp.
    type Tables = BTreeMap<i64, Vec<ConsentRow>>;
    type Prepared = ();

    fn prepare(_: &Consumed) {}

    fn add(
        tables: &mut Self::Tables,
        (): (),
        consumed: &Consumed,
        source: u32,
        _recent: &mut RecentIds,
        _erasures: &Erasures,
    ) -> Added {
        let record = &consumed.record;
        // A record without a timestamp (Kafka always sets one) goes to the epoch's hour:
        // its partition must not depend on when it was archived, or a replay would move it.
        let timestamp_ms = record.timestamp_ms.filter(|t| valid_time(*t));
        let row = ConsentRow {
            partition: consumed.partition,
            offset: consumed.offset,
            timestamp_ms,
            key: record.key.clone(),
            payload: record.payload.clone(),
            source,
        };
        tables
            .entry(hour_of(timestamp_ms.unwrap_or(0)))
            .or_default()
            .push(row);
        Added::Archived {
            bytes: std::mem::size_of::<ConsentRow>(),
        }
    }

    fn take_blobs(_: &mut Self::Tables) -> Vec<Object> {
        Vec::new()
    }

    fn take_erased(_: &mut Self::Tables, _: &BatchName) -> Vec<String> {
        Vec::new()
    }

    fn encode(
        tables: Self::Tables,
        name: &BatchName,
        _refused: &HashSet<u32>,
        props: &WriterProperties,
    ) -> Result<Vec<Object>, Error> {
        let mut objects = Vec::with_capacity(tables.len());
        for (hour, rows) in tables {
            let batch = consent::batch(rows.iter())?;
            objects.push(Object {
                key: name.parquet_key(Dataset::ConsentEvents, hour),
                body: files::write(&batch, props.clone())?,
                dataset: Dataset::ConsentEvents.name(),
                rows: rows.len(),
                sources: rows.iter().map(|r| r.source).collect(),
            });
        }
        Ok(objects)
    }
}
