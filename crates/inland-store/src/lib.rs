//! Where the archive lives. Everything the archiver and the query service store goes
//! through [`ObjectStore`]: a put returns only once the object is durable, so the archiver
//! may commit its input offsets after it.
//!
//! - [`DataClass`]: what an object holds, and so its key prefix and shelf life.
//! - [`StoreConfig`]: the `store` section; [`open`] makes the configured store.
//! - [`LocalStore`]: a directory, for `inland run` and unit tests; [`sweep`] deletes its
//!   objects past their shelf life.
//! - [`S3Store`]: an in-country S3 bucket, region-locked, optionally SSE-C encrypted;
//!   [`lifecycle`] makes the bucket expire each class after its shelf life and reports
//!   drift.
//! - [`cli`]: `inland storage bootstrap|check`.

mod class;
pub mod cli;
mod config;
mod error;
pub mod lifecycle;
mod local;
pub mod metrics;
mod s3;
pub mod sweep;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

pub use class::DataClass;
pub use config::{Backend, DEFAULT_ALLOWED_REGIONS, LocalConfig, S3Config, ShelfLife, StoreConfig};
pub use error::Error;
pub use lifecycle::{Report, bootstrap, check_lifecycle};
pub use local::LocalStore;
pub use s3::S3Store;

/// An object's listing entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub last_modified: std::time::SystemTime,
}

/// A flat key → bytes store with the semantics both implementations share: a put replaces
/// the whole object atomically (readers see the old or the new bytes, never a mix) and is
/// durable when it returns; keys are `/`-separated and never start with `/` nor contain
/// `..` segments.
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Stores `body` under `key`, replacing any object already there.
    async fn put(&self, key: &str, body: Bytes) -> Result<(), Error>;
    /// The object's bytes; [`Error::NotFound`] when there is none.
    async fn get(&self, key: &str) -> Result<Bytes, Error>;
    /// Every object whose key starts with `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error>;
    /// Removes the object; removing a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<(), Error>;
    /// Whether the store answers, cheaply (for `/readyz`): by default a listing of a
    /// prefix no object has.
    async fn ready(&self) -> Result<(), Error> {
        self.list(".inland-ready/").await.map(drop)
    }
}

/// The configured store: checks `config`, then opens the local directory (relative to
/// `data_dir`) or the S3 bucket (verifying its region; see [`S3Store::open`]).
pub async fn open(config: &StoreConfig, data_dir: &Path) -> Result<Arc<dyn ObjectStore>, Error> {
    config.check()?;
    Ok(match config.backend {
        Backend::Local => Arc::new(LocalStore::open(config.local_dir(data_dir))?),
        Backend::S3 => Arc::new(S3Store::open(&config.s3).await?),
    })
}

/// Refuses keys that could escape the store's root or the class layout.
pub fn check_key(key: &str) -> Result<(), Error> {
    let bad = |why: &str| Err(Error::BadKey(format!("{key:?}: {why}")));
    if key.is_empty() {
        return bad("empty");
    }
    if key.starts_with('/') || key.ends_with('/') {
        return bad("starts or ends with /");
    }
    if key
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return bad("has an empty, . or .. segment");
    }
    if key.chars().any(|c| c.is_control() || c == '\\') {
        return bad("has a control character or a backslash");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_makes_the_configured_local_store_and_refuses_a_bad_config() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&StoreConfig::default(), dir.path()).await.unwrap();
        store.ready().await.unwrap();
        store
            .put("audit/2026/a.json", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert!(dir.path().join("archive/audit/2026/a.json").is_file());
        let mut config = StoreConfig::default();
        config.shelf_life.audit = std::time::Duration::from_secs(90);
        let err = open(&config, dir.path()).await.err().unwrap();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
    }

    #[test]
    fn keys_that_could_escape_are_refused() {
        for key in ["", "/a", "a/", "a//b", "a/../b", "./a", "a\\b", "a\nb"] {
            assert!(check_key(key).is_err(), "{key:?}");
        }
        check_key("dataset=telemetry/date=2026-11-23/hour=17/part.parquet").unwrap();
    }
}
