//! The engine's only view of the store: read-only, and only under the prefixes of the
//! tables a role may query. Even a planner bug or an unforeseen SQL feature cannot make
//! DataFusion read consent records, frames or another dataset, nor write anything.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

#[derive(Debug)]
pub(crate) struct ReadOnlyPrefixes {
    inner: Arc<dyn ObjectStore>,
    allowed: Vec<Path>,
}

impl ReadOnlyPrefixes {
    /// `prefixes` are key prefixes ending in `/` (e.g. `dataset=telemetry/`).
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, prefixes: &[&str]) -> Self {
        Self {
            inner,
            allowed: prefixes.iter().map(|p| Path::from(*p)).collect(),
        }
    }

    fn check(&self, location: Option<&Path>) -> Result<()> {
        match location {
            Some(path) if self.allowed.iter().any(|a| path.prefix_matches(a)) => Ok(()),
            _ => Err(denied(location)),
        }
    }
}

#[derive(Debug)]
struct Denied(String);

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Denied {}

fn denied(location: Option<&Path>) -> object_store::Error {
    let path = location.map_or_else(|| "/".to_owned(), |p| p.to_string());
    object_store::Error::PermissionDenied {
        source: Box::new(Denied(format!(
            "the query service reads only the registered datasets, not {path}"
        ))),
        path,
    }
}

fn read_only(location: &Path) -> object_store::Error {
    object_store::Error::PermissionDenied {
        path: location.to_string(),
        source: Box::new(Denied(
            "the query service never writes to the archive".into(),
        )),
    }
}

impl fmt::Display for ReadOnlyPrefixes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReadOnlyPrefixes({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for ReadOnlyPrefixes {
    async fn put_opts(
        &self,
        location: &Path,
        _payload: PutPayload,
        _opts: PutOptions,
    ) -> Result<PutResult> {
        Err(read_only(location))
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        Err(read_only(location))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.check(Some(location))?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.check(Some(location))?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        locations
            .map(|location| location.and_then(|l| Err(read_only(&l))))
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        match self.check(prefix) {
            Ok(()) => self.inner.list(prefix),
            Err(e) => stream::once(async { Err(e) }).boxed(),
        }
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        match self.check(prefix) {
            Ok(()) => self.inner.list_with_offset(prefix, offset),
            Err(e) => stream::once(async { Err(e) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.check(prefix)?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, _from: &Path, to: &Path, _options: CopyOptions) -> Result<()> {
        Err(read_only(to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutPayload};

    #[tokio::test]
    async fn reads_only_under_the_allowed_prefixes_and_never_writes() {
        let inner = Arc::new(InMemory::new());
        for key in [
            "dataset=telemetry/date=2026-01-01/hour=00/a.parquet",
            "dataset=telemetry2/x.parquet",
            "consent/events/date=2026-01-01/hour=00/c.parquet",
        ] {
            inner
                .put(&Path::from(key), PutPayload::from_static(b"x"))
                .await
                .unwrap();
        }
        let guard = ReadOnlyPrefixes::new(inner, &["dataset=telemetry/"]);
        let listed: Vec<_> = guard
            .list(Some(&Path::from("dataset=telemetry")))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        guard
            .get(&Path::from(
                "dataset=telemetry/date=2026-01-01/hour=00/a.parquet",
            ))
            .await
            .unwrap();
        for refused in [
            "consent/events/date=2026-01-01/hour=00/c.parquet",
            "dataset=telemetry2/x.parquet",
        ] {
            let err = guard.get(&Path::from(refused)).await.unwrap_err();
            assert!(
                matches!(err, object_store::Error::PermissionDenied { .. }),
                "{err}"
            );
        }
        assert!(guard.list(None).try_collect::<Vec<_>>().await.is_err());
        assert!(
            guard
                .list(Some(&Path::from("consent")))
                .try_collect::<Vec<_>>()
                .await
                .is_err()
        );
        assert!(guard.list_with_delimiter(None).await.is_err());
        let target = Path::from("dataset=telemetry/new.parquet");
        assert!(
            guard
                .put(&target, PutPayload::from_static(b"y"))
                .await
                .is_err()
        );
        assert!(guard.delete(&target).await.is_err());
        assert!(
            guard
                .copy(
                    &Path::from("dataset=telemetry/date=2026-01-01/hour=00/a.parquet"),
                    &target
                )
                .await
                .is_err()
        );
    }
}
