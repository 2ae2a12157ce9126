//! The production store: an S3-compatible bucket in the country.
//!
//! Opening it enforces the region lock (the configured region must be allowlisted and the
//! bucket must really be there). With `sse_c_key_file`, every object is encrypted by the
//! store with our key (SSE-C): on every put, part and get. Objects above
//! `multipart_threshold` go up in parts, and a failed multipart upload is aborted. A put
//! returns once S3 acknowledged the whole object, which S3 stores durably before it
//! answers.

mod classify;
mod connect;

use std::time::Instant;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

pub(crate) use classify::classify;
use connect::SseCustomerKey;
pub(crate) use connect::{Connection, connect, verify_region};

use crate::{Error, ObjectMeta, ObjectStore, S3Config, check_key, metrics};

/// Parts of one multipart upload in flight at once.
const PART_CONCURRENCY: usize = 4;

/// Adds the SSE-C headers to a request builder when a key is configured.
macro_rules! sse_c {
    ($request:expr, $key:expr) => {
        match $key {
            Some(key) => $request
                .sse_customer_algorithm(SseCustomerKey::ALGORITHM)
                .sse_customer_key(&key.key_b64)
                .sse_customer_key_md5(&key.md5_b64),
            None => $request,
        }
    };
}

#[derive(Debug, Clone)]
pub struct S3Store {
    conn: Connection,
    sse: Option<SseCustomerKey>,
    multipart_threshold: u64,
    part_size: u64,
}

impl S3Store {
    /// Checks `config`, reads the CA and SSE-C key files, and verifies the bucket's
    /// location against the region lock; fails if the bucket does not exist.
    pub async fn open(config: &S3Config) -> Result<Self, Error> {
        let conn = connect(config)?;
        let sse = config
            .sse_c_key_file
            .as_deref()
            .map(SseCustomerKey::from_file)
            .transpose()?;
        verify_region(&conn).await?;
        Ok(Self {
            conn,
            sse,
            multipart_threshold: config.multipart_threshold,
            part_size: config.part_size,
        })
    }

    pub fn bucket(&self) -> &str {
        &self.conn.bucket
    }

    /// The SDK client, for what the trait does not cover (tests, tools).
    pub fn client(&self) -> &Client {
        &self.conn.client
    }

    fn fail(&self, op: &'static str, key: &str, error: Error) -> Error {
        metrics::failed("s3", op, key, &error);
        error
    }

    async fn put_object(&self, key: &str, body: Bytes) -> Result<(), Error> {
        let request = self
            .conn
            .client
            .put_object()
            .bucket(&self.conn.bucket)
            .key(key)
            .body(ByteStream::from(body));
        sse_c!(request, &self.sse)
            .send()
            .await
            .map_err(|e| classify("PutObject", &self.conn, key, e))?;
        Ok(())
    }

    async fn put_multipart(&self, key: &str, body: Bytes) -> Result<(), Error> {
        let request = self
            .conn
            .client
            .create_multipart_upload()
            .bucket(&self.conn.bucket)
            .key(key)
            // Each part carries a CRC32 the store verifies, and completion checks them all.
            .checksum_algorithm(ChecksumAlgorithm::Crc32);
        let created = sse_c!(request, &self.sse)
            .send()
            .await
            .map_err(|e| classify("CreateMultipartUpload", &self.conn, key, e))?;
        let upload_id = created.upload_id().ok_or_else(|| Error::Service {
            op: "CreateMultipartUpload",
            status: 200,
            code: "InvalidResponse".into(),
            detail: "the reply has no UploadId".into(),
        })?;
        let Err(error) = self.upload_parts(key, upload_id, body).await else {
            return Ok(());
        };
        // Parts of an unfinished upload are stored (and billed) until aborted.
        let abort = self
            .conn
            .client
            .abort_multipart_upload()
            .bucket(&self.conn.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .err()
            .map(|e| classify("AbortMultipartUpload", &self.conn, key, e));
        metrics::multipart_aborted(key, &error, abort.as_ref());
        Err(error)
    }

    async fn upload_parts(&self, key: &str, upload_id: &str, body: Bytes) -> Result<(), Error> {
        let part_size = usize::try_from(self.part_size).unwrap_or(usize::MAX);
        let parts: Vec<CompletedPart> = futures::stream::iter(0..body.len().div_ceil(part_size))
            .map(|i| {
                let chunk = body.slice(i * part_size..body.len().min((i + 1) * part_size));
                self.upload_part(key, upload_id, i as i32 + 1, chunk)
            })
            .buffered(PART_CONCURRENCY)
            .try_collect()
            .await?;
        let request = self
            .conn
            .client
            .complete_multipart_upload()
            .bucket(&self.conn.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        sse_c!(request, &self.sse)
            .send()
            .await
            .map_err(|e| classify("CompleteMultipartUpload", &self.conn, key, e))?;
        Ok(())
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        chunk: Bytes,
    ) -> Result<CompletedPart, Error> {
        let request = self
            .conn
            .client
            .upload_part()
            .bucket(&self.conn.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(chunk));
        let out = sse_c!(request, &self.sse)
            .send()
            .await
            .map_err(|e| classify("UploadPart", &self.conn, key, e))?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(out.e_tag)
            .set_checksum_crc32(out.checksum_crc32)
            .build())
    }

    async fn get_object(&self, key: &str) -> Result<Bytes, Error> {
        let request = self
            .conn
            .client
            .get_object()
            .bucket(&self.conn.bucket)
            .key(key);
        let out = sse_c!(request, &self.sse)
            .send()
            .await
            .map_err(|e| classify("GetObject", &self.conn, key, e))?;
        let body = out.body.collect().await.map_err(|e| Error::Unreachable {
            endpoint: self.conn.endpoint.clone(),
            detail: format!("reading the object's bytes: {e}"),
        })?;
        Ok(body.into_bytes())
    }

    async fn list_objects(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        let mut pages = self
            .conn
            .client
            .list_objects_v2()
            .bucket(&self.conn.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("ListObjectsV2", &self.conn, "", e))?;
            for object in page.contents() {
                let (Some(key), Some(modified)) = (object.key(), object.last_modified()) else {
                    continue;
                };
                out.push(ObjectMeta {
                    key: key.to_owned(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                    last_modified: std::time::SystemTime::try_from(*modified).map_err(|_| {
                        Error::Service {
                            op: "ListObjectsV2",
                            status: 200,
                            code: "InvalidResponse".into(),
                            detail: "an object's LastModified is out of range".into(),
                        }
                    })?,
                });
            }
        }
        // S3 lists in UTF-8 byte order already; sorting keeps the trait's promise for
        // stores that do not.
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

#[async_trait::async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), Error> {
        check_key(key)?;
        let (started, len) = (Instant::now(), body.len());
        let result = if len as u64 > self.multipart_threshold {
            self.put_multipart(key, body).await
        } else {
            self.put_object(key, body).await
        };
        match result {
            Ok(()) => {
                metrics::put("s3", key, len, started.elapsed());
                Ok(())
            }
            Err(e) => Err(self.fail("put", key, e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes, Error> {
        check_key(key)?;
        self.get_object(key)
            .await
            .map_err(|e| self.fail("get", key, e))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        self.list_objects(prefix)
            .await
            .map_err(|e| self.fail("list", prefix, e))
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        check_key(key)?;
        self.conn
            .client
            .delete_object()
            .bucket(&self.conn.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.fail("delete", key, classify("DeleteObject", &self.conn, key, e)))?;
        Ok(())
    }

    async fn ready(&self) -> Result<(), Error> {
        self.conn
            .client
            .head_bucket()
            .bucket(&self.conn.bucket)
            .send()
            .await
            .map_err(|e| self.fail("ready", "", classify("HeadBucket", &self.conn, "", e)))?;
        Ok(())
    }
}
