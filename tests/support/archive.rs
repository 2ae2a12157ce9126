//! Helpers for the tests of the archive (archiver and query): records as the anonymizer
//! puts them on its topic, the Garage settings, DuckDB's interpreter, and removing a
//! test's bucket.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use inland_proto::Timestamp;
use inland_proto::pipeline::v1::anonymized_record::Payload;
use inland_proto::pipeline::v1::{ANONYMIZED_RECORD_SCHEMA, AnonymizedRecord};
use inland_stage::Record;
use inland_store::{ObjectStore, S3Store};
use prost::Message;

/// A setting of `scripts/garage.sh env`; the tests fail loudly without it.
pub fn garage_env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: export $(scripts/garage.sh env)"))
}

pub fn ts(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// An anonymized record as the anonymizer produces it: keyed by pseudonym, with its
/// schema and record-id headers.
pub fn on_topic(pseudonym: String, purpose: &str, id: u64, payload: Payload, at: i64) -> Record {
    let key = Bytes::from(pseudonym.clone());
    let record = AnonymizedRecord {
        pseudonym,
        key_epoch: 1,
        purpose: purpose.into(),
        recorded_at: Some(ts(at)),
        payload: Some(payload),
    };
    Record {
        key,
        payload: record.encode_to_vec().into(),
        headers: vec![
            ("inland-schema".into(), ANONYMIZED_RECORD_SCHEMA.into()),
            ("inland-record-id".into(), format!("{id:032x}").into()),
        ],
        timestamp_ms: Some(at),
    }
}

/// A JFIF JPEG header and an empty scan, told apart by `n`: what the archiver's metadata
/// check accepts.
pub fn jpeg(n: u8) -> Bytes {
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16];
    jpeg.extend(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    jpeg.extend([0xFF, 0xDA, 0, 2, n, 0xFF, 0xD9]);
    jpeg.into()
}

/// The interpreter of the venv `scripts/pyenv-query.sh` keeps (DuckDB, Polars, ADBC);
/// `INLAND_QUERY_PYTHON` overrides it.
pub fn python() -> PathBuf {
    if let Ok(python) = std::env::var("INLAND_QUERY_PYTHON") {
        return python.into();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pyenv-query.sh");
    let output = Command::new(&script)
        .output()
        .expect("running scripts/pyenv-query.sh");
    assert!(
        output.status.success(),
        "scripts/pyenv-query.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// Deletes every object of a test's bucket, then the bucket.
pub async fn remove_bucket(store: &S3Store) {
    for object in store.list("").await.unwrap() {
        store.delete(&object.key).await.unwrap();
    }
    store
        .client()
        .delete_bucket()
        .bucket(store.bucket())
        .send()
        .await
        .unwrap();
}
