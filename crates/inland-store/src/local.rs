//! The store of `inland run`: one file per object under a root directory. A put writes a
//! temporary file, syncs it, renames it over the key and syncs the directory, so a crash
//! leaves the old object or the new one, and an acknowledged put survives power loss.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;

use crate::{Error, ObjectMeta, ObjectStore, check_key, metrics};

/// Temporary files carry this suffix until renamed; listings skip them.
const PARTIAL: &str = ".inland-partial";

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root`, created if missing.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| local(&root, e))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, Error> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

fn local(path: &Path, source: io::Error) -> Error {
    Error::Local {
        path: path.display().to_string(),
        source,
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .expect("a local store operation panicked")
}

fn put_durably(path: &Path, body: &[u8]) -> Result<(), Error> {
    let dir = path.parent().expect("a key has a parent: the root");
    fs::create_dir_all(dir).map_err(|e| local(dir, e))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}{PARTIAL}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let write = || -> io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(body)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        local(path, e)
    })
}

fn walk(root: &Path, dir: &Path, prefix: &str, out: &mut Vec<ObjectMeta>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let meta = entry.metadata()?;
        let Some(key) = path
            .strip_prefix(root)
            .ok()
            .and_then(|k| k.to_str())
            .map(str::to_owned)
        else {
            continue;
        };
        if meta.is_dir() {
            // Descend only where keys could still match the prefix.
            let as_prefix = format!("{key}/");
            if as_prefix.starts_with(prefix) || prefix.starts_with(&as_prefix) {
                walk(root, &path, prefix, out)?;
            }
        } else if key.starts_with(prefix) && !key.ends_with(PARTIAL) {
            out.push(ObjectMeta {
                key,
                size: meta.len(),
                last_modified: meta.modified()?,
            });
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl ObjectStore for LocalStore {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), Error> {
        let path = self.path(key)?;
        let (started, len) = (Instant::now(), body.len());
        let result = blocking(move || put_durably(&path, &body)).await;
        match &result {
            Ok(()) => metrics::put("local", key, len, started.elapsed()),
            Err(e) => metrics::failed("local", "put", key, e),
        }
        result
    }

    async fn get(&self, key: &str) -> Result<Bytes, Error> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(bytes.into()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NotFound(key.into())),
            Err(e) => Err(local(&path, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        blocking(move || {
            let mut out = Vec::new();
            walk(&root, &root, &prefix, &mut out).map_err(|e| local(&root, e))?;
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(local(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_replaces_get_reads_list_filters_delete_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        store
            .put("a/b/one", Bytes::from_static(b"1"))
            .await
            .unwrap();
        store
            .put("a/b/one", Bytes::from_static(b"11"))
            .await
            .unwrap();
        store
            .put("a/c/two", Bytes::from_static(b"2"))
            .await
            .unwrap();
        store
            .put("ab/three", Bytes::from_static(b"3"))
            .await
            .unwrap();
        assert_eq!(&store.get("a/b/one").await.unwrap()[..], b"11");
        let keys = |list: Vec<ObjectMeta>| list.into_iter().map(|m| m.key).collect::<Vec<_>>();
        assert_eq!(
            keys(store.list("a/").await.unwrap()),
            ["a/b/one", "a/c/two"]
        );
        assert_eq!(
            keys(store.list("a").await.unwrap()),
            ["a/b/one", "a/c/two", "ab/three"]
        );
        assert_eq!(keys(store.list("a/b/o").await.unwrap()), ["a/b/one"]);
        store.delete("a/b/one").await.unwrap();
        store.delete("a/b/one").await.unwrap();
        assert!(matches!(
            store.get("a/b/one").await,
            Err(Error::NotFound(_))
        ));
        assert!(store.put("../escape", Bytes::new()).await.is_err());
    }
}
