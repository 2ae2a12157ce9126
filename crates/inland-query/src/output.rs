//! Result encodings shared by the HTTP API and `inland sql`.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::json::{WriterBuilder as JsonWriterBuilder, writer::JsonArray};
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The media type of an Arrow IPC stream.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// How a result is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A JSON array of row objects, nulls included.
    Json,
    /// CSV with a header line.
    Csv,
    /// An Arrow IPC stream (exact types; `pyarrow.ipc.open_stream`, `polars.read_ipc_stream`).
    Arrow,
}

impl Format {
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Arrow => ARROW_STREAM,
        }
    }

    /// The format an `Accept` header asks for: the first it names that is served, JSON
    /// when it names none.
    pub fn from_accept(accept: Option<&str>) -> Self {
        accept
            .into_iter()
            .flat_map(|a| a.split(','))
            .map(|item| item.split(';').next().unwrap_or("").trim())
            .find_map(|media| match media {
                ARROW_STREAM => Some(Self::Arrow),
                "text/csv" => Some(Self::Csv),
                "application/json" => Some(Self::Json),
                _ => None,
            })
            .unwrap_or(Self::Json)
    }
}

/// Encodes `batches` (of `schema`, which an empty result still carries in Arrow IPC).
pub fn encode(
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<u8>, Error> {
    let failed = |e: datafusion::arrow::error::ArrowError| {
        Error::Internal(format!("encoding the result as {format:?}: {e}"))
    };
    match format {
        Format::Json => {
            let mut writer = JsonWriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, JsonArray>(Vec::new());
            for batch in batches {
                writer.write(batch).map_err(failed)?;
            }
            writer.finish().map_err(failed)?;
            let mut body = writer.into_inner();
            // An empty result is `[]`, not an empty body.
            if body.is_empty() {
                body.extend_from_slice(b"[]");
            }
            Ok(body)
        }
        Format::Csv => {
            // An empty result still gets its header line.
            let empty = [RecordBatch::new_empty(schema.clone())];
            let batches = if batches.is_empty() {
                &empty[..]
            } else {
                batches
            };
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(Vec::new());
            for batch in batches {
                writer.write(batch).map_err(failed)?;
            }
            Ok(writer.into_inner())
        }
        Format::Arrow => {
            let mut writer = StreamWriter::try_new(Vec::new(), schema).map_err(failed)?;
            for batch in batches {
                writer.write(batch).map_err(failed)?;
            }
            writer.finish().map_err(failed)?;
            writer.into_inner().map_err(failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::ipc::reader::StreamReader;

    use super::*;

    fn sample() -> (SchemaRef, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("camera_id", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("front"), None])),
                Arc::new(Int64Array::from(vec![3, 4])),
            ],
        )
        .unwrap();
        (schema, batch)
    }

    #[test]
    fn every_format_encodes_rows_and_empty_results() {
        let (schema, batch) = sample();
        let json = encode(Format::Json, &schema, std::slice::from_ref(&batch)).unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"[{"camera_id":"front","n":3},{"camera_id":null,"n":4}]"#
        );
        let csv = encode(Format::Csv, &schema, std::slice::from_ref(&batch)).unwrap();
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "camera_id,n\nfront,3\n,4\n"
        );
        let arrow = encode(Format::Arrow, &schema, std::slice::from_ref(&batch)).unwrap();
        let read: Vec<_> = StreamReader::try_new(arrow.as_slice(), None)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(read, vec![batch]);
        assert_eq!(encode(Format::Json, &schema, &[]).unwrap(), b"[]");
        assert_eq!(encode(Format::Csv, &schema, &[]).unwrap(), b"camera_id,n\n");
        let empty = encode(Format::Arrow, &schema, &[]).unwrap();
        let reader = StreamReader::try_new(empty.as_slice(), None).unwrap();
        assert_eq!(reader.schema(), schema);
    }

    #[test]
    fn accept_headers_pick_the_first_served_format() {
        assert_eq!(Format::from_accept(None), Format::Json);
        assert_eq!(Format::from_accept(Some("text/csv")), Format::Csv);
        assert_eq!(
            Format::from_accept(Some("text/html, application/vnd.apache.arrow.stream;q=0.9")),
            Format::Arrow
        );
        assert_eq!(Format::from_accept(Some("*/*")), Format::Json);
    }
}
