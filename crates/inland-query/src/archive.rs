//! The archive as the query service reaches it: DataFusion reads the datasets through the
//! `object_store` crate, the audit log is appended through Inland's own [`ObjectStore`]
//! (durable puts, the `audit/` class with its own shelf life). Both are built from the
//! same store settings, so they see the same bucket or directory.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use inland_store::{Backend, LocalStore, ObjectStore, S3Config, StoreConfig};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::{Certificate, ClientOptions};

use crate::Error;

/// The datasets to read and the store to audit into.
#[derive(Clone)]
pub struct Archive {
    reader: Arc<dyn object_store::ObjectStore>,
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Archive({})", self.reader)
    }
}

impl Archive {
    /// `reader` must see the same objects as `store`, keys as paths from its root.
    pub fn new(reader: Arc<dyn object_store::ObjectStore>, store: Arc<dyn ObjectStore>) -> Self {
        Self { reader, store }
    }

    /// The local backend: a [`LocalStore`] directory.
    pub fn local(root: &Path) -> Result<Self, Error> {
        let store = LocalStore::open(root).map_err(|e| Error::Store(e.to_string()))?;
        let reader = LocalFileSystem::new_with_prefix(store.root())
            .map_err(|e| Error::Store(format!("{}: {e}", root.display())))?;
        Ok(Self::new(Arc::new(reader), Arc::new(store)))
    }

    /// The configured store (the `store` section): the local directory under `data_dir`,
    /// or the S3 bucket, whose region inland-store verifies before anything is read.
    pub async fn open(config: &StoreConfig, data_dir: &Path) -> Result<Self, Error> {
        let store = inland_store::open(config, data_dir)
            .await
            .map_err(|e| Error::Store(e.to_string()))?;
        let reader: Arc<dyn object_store::ObjectStore> = match config.backend {
            Backend::Local => {
                let root = config.local_dir(data_dir);
                Arc::new(
                    LocalFileSystem::new_with_prefix(&root)
                        .map_err(|e| Error::Store(format!("{}: {e}", root.display())))?,
                )
            }
            Backend::S3 => Arc::new(s3_reader(&config.s3)?),
        };
        Ok(Self::new(reader, store))
    }

    pub(crate) fn reader(&self) -> Arc<dyn object_store::ObjectStore> {
        self.reader.clone()
    }

    /// Where the audit log is written.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }
}

/// DataFusion's S3 client, from the same settings and credentials as inland-store's:
/// endpoint, region, bucket and addressing style, the private CA, the SSE-C key (without
/// which encrypted objects cannot be read), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
/// and `AWS_SESSION_TOKEN`. Plain http is allowed only where the store section allows
/// it (a loopback endpoint, checked by [`StoreConfig::check`]).
fn s3_reader(s3: &S3Config) -> Result<object_store::aws::AmazonS3, Error> {
    let config = |problem: String| Error::Config(format!("store.s3: {problem}"));
    let mut options = ClientOptions::new()
        .with_connect_timeout(s3.connect_timeout)
        .with_timeout(s3.attempt_timeout)
        .with_allow_http(s3.endpoint.starts_with("http://"));
    if let Some(path) = &s3.ca_file {
        let pem =
            std::fs::read(path).map_err(|e| config(format!("ca_file {}: {e}", path.display())))?;
        for certificate in Certificate::from_pem_bundle(&pem)
            .map_err(|e| config(format!("ca_file {}: {e}", path.display())))?
        {
            options = options.with_root_certificate(certificate);
        }
    }
    let mut builder = AmazonS3Builder::new()
        .with_endpoint(&s3.endpoint)
        .with_region(&s3.region)
        .with_bucket_name(&s3.bucket)
        .with_virtual_hosted_style_request(!s3.path_style)
        .with_client_options(options);
    if let Ok(id) = std::env::var("AWS_ACCESS_KEY_ID") {
        builder = builder.with_access_key_id(id);
    }
    if let Ok(secret) = std::env::var("AWS_SECRET_ACCESS_KEY") {
        builder = builder.with_secret_access_key(secret);
    }
    if let Ok(token) = std::env::var("AWS_SESSION_TOKEN") {
        builder = builder.with_token(token);
    }
    if let Some(path) = &s3.sse_c_key_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| config(format!("sse_c_key_file {}: {e}", path.display())))?;
        let key = text.trim();
        // Checked here too, so a bad key fails at start with a message, not at a read.
        let decoded = base64::engine::general_purpose::STANDARD.decode(key);
        if decoded.map(|k| k.len()) != Ok(32) {
            return Err(config(format!(
                "sse_c_key_file {}: not a base64-encoded 32-byte key",
                path.display()
            )));
        }
        builder = builder.with_ssec_encryption(key);
    }
    builder
        .build()
        .map_err(|e| config(format!("cannot build the S3 reader: {e}")))
}
