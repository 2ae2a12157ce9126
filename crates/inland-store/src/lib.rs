//! Where the archive lives. Everything the archiver and the query service store goes
//! through [`ObjectStore`]: a put returns only once the object is durable, so the archiver
//! may commit its input offsets after it.
//!
//! - [`DataClass`]: what an object holds, and so its key prefix and shelf life.
//! - [`LocalStore`]: a directory, for `inland run` and unit tests.

mod class;
mod error;
mod local;

use bytes::Bytes;

pub use class::DataClass;
pub use error::Error;
pub use local::LocalStore;

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

    #[test]
    fn keys_that_could_escape_are_refused() {
        for key in ["", "/a", "a/", "a//b", "a/../b", "./a", "a\\b", "a\nb"] {
            assert!(check_key(key).is_err(), "{key:?}");
        }
        check_key("dataset=telemetry/date=2026-11-23/hour=17/part.parquet").unwrap();
    }
}
