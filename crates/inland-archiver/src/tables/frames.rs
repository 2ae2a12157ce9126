//! Frame index rows: one per archived frame, naming its JPEG object.

use std::sync::Arc;

use arrow_array::builder::{
    Float64Builder, StringBuilder, TimestampMillisecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use inland_datasets::Dataset;
use inland_proto::pipeline::v1::{AnonymizedFrame, AnonymizedRecord};

use crate::Error;

/// A frame's index row. Kept as a struct until the batch is written, so a frame whose
/// JPEG the store refused can be left out of the index.
pub(crate) struct FrameRow {
    pseudonym: String,
    key_epoch: u32,
    purpose: String,
    captured_at_ms: i64,
    position: Option<(f64, f64, u32)>,
    camera_id: String,
    faces: u32,
    plates: u32,
    pub(crate) object_key: String,
    bytes: u64,
    /// Index of its record in the batch.
    pub(crate) source: u32,
}

impl FrameRow {
    pub(crate) fn new(
        record: &AnonymizedRecord,
        frame: &AnonymizedFrame,
        captured_at_ms: i64,
        object_key: String,
        source: u32,
    ) -> Self {
        Self {
            pseudonym: record.pseudonym.clone(),
            key_epoch: record.key_epoch,
            purpose: record.purpose.clone(),
            captured_at_ms,
            position: frame
                .position
                .as_ref()
                .map(|p| (p.latitude, p.longitude, p.grid_m)),
            camera_id: frame.camera_id.clone(),
            faces: frame.faces,
            plates: frame.plates,
            object_key,
            bytes: frame.jpeg.len() as u64,
            source,
        }
    }

    /// Memory the row takes until written.
    pub(crate) fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.pseudonym.len()
            + self.purpose.len()
            + self.camera_id.len()
            + self.object_key.len()
    }
}

/// The index file of some frame rows.
pub(crate) fn batch<'a>(rows: impl Iterator<Item = &'a FrameRow>) -> Result<RecordBatch, Error> {
    let mut pseudonym = StringBuilder::new();
    let mut key_epoch = UInt32Builder::new();
    let mut purpose = StringBuilder::new();
    let mut captured_at = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut latitude = Float64Builder::new();
    let mut longitude = Float64Builder::new();
    let mut grid_m = UInt32Builder::new();
    let mut camera_id = StringBuilder::new();
    let mut faces = UInt32Builder::new();
    let mut plates = UInt32Builder::new();
    let mut object_key = StringBuilder::new();
    let mut bytes = UInt64Builder::new();
    for row in rows {
        pseudonym.append_value(&row.pseudonym);
        key_epoch.append_value(row.key_epoch);
        purpose.append_value(&row.purpose);
        captured_at.append_value(row.captured_at_ms);
        latitude.append_option(row.position.map(|p| p.0));
        longitude.append_option(row.position.map(|p| p.1));
        grid_m.append_option(row.position.map(|p| p.2));
        camera_id.append_value(&row.camera_id);
        faces.append_value(row.faces);
        plates.append_value(row.plates);
        object_key.append_value(&row.object_key);
        bytes.append_value(row.bytes);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(pseudonym.finish()),
        Arc::new(key_epoch.finish()),
        Arc::new(purpose.finish()),
        Arc::new(captured_at.finish()),
        Arc::new(latitude.finish()),
        Arc::new(longitude.finish()),
        Arc::new(grid_m.finish()),
        Arc::new(camera_id.finish()),
        Arc::new(faces.finish()),
        Arc::new(plates.finish()),
        Arc::new(object_key.finish()),
        Arc::new(bytes.finish()),
    ];
    RecordBatch::try_new(Dataset::FrameIndex.schema(), columns)
        .map_err(|e| Error::parquet("building a frame index batch")(e.into()))
}
