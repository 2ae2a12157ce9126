//! Building the S3 client: credentials from the environment, the TLS trust store, SSE-C
//! key, and the region lock's bucket location check.

use std::fmt;
use std::path::Path;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::{Digest, Md5};

use super::classify::classify;
use crate::{Error, S3Config};

/// A client for one bucket, with what error messages need to name.
#[derive(Clone)]
pub(crate) struct Connection {
    pub client: Client,
    pub bucket: String,
    pub endpoint: String,
    pub region: String,
    pub allowed_regions: Vec<String>,
    /// Only to blank it out of the store's error messages.
    pub access_key_id: String,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// A client for `config` (checked first); sends nothing yet.
pub(crate) fn connect(config: &S3Config) -> Result<Connection, Error> {
    config.check()?;
    let credentials = credentials_from_env()?;
    let access_key_id = credentials.access_key_id().to_owned();
    let mut trust = TrustStore::default();
    if let Some(ca_file) = &config.ca_file {
        trust = TrustStore::empty().with_pem_certificate(read_ca_file(ca_file)?);
    }
    let tls = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| Error::Config(format!("TLS settings for the object store: {e}")))?;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(tls)
        .build_https();
    let sdk_config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(config.region.clone()))
        .endpoint_url(config.endpoint.trim_end_matches('/'))
        .force_path_style(config.path_style)
        .credentials_provider(credentials)
        .http_client(http)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(config.connect_timeout)
                .operation_attempt_timeout(config.attempt_timeout)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .build();
    Ok(Connection {
        client: Client::from_conf(sdk_config),
        bucket: config.bucket.clone(),
        endpoint: config.endpoint.clone(),
        region: config.region.clone(),
        allowed_regions: config.allowed_regions.clone(),
        access_key_id,
    })
}

/// The standard AWS variables; never from the config file, so keys stay out of it.
fn credentials_from_env() -> Result<Credentials, Error> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) else {
        return Err(Error::Credentials(
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for \
             temporary credentials) in the environment"
                .into(),
        ));
    };
    Ok(Credentials::new(
        id,
        secret,
        var("AWS_SESSION_TOKEN"),
        None,
        "environment",
    ))
}

/// The CA file's certificates, checked to parse (the HTTP client would panic on bad ones).
fn read_ca_file(path: &Path) -> Result<Vec<u8>, Error> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let shown = path.display();
    let pem =
        std::fs::read(path).map_err(|e| Error::Config(format!("store.s3.ca_file {shown}: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("store.s3.ca_file {shown}: not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "store.s3.ca_file {shown} holds no CERTIFICATE block"
        )));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| {
            Error::Config(format!(
                "store.s3.ca_file {shown}: not a usable CA certificate: {e}"
            ))
        })?;
    }
    Ok(pem)
}

/// The SSE-C headers' values. The key never appears in `Debug` or logs.
#[derive(Clone)]
pub(crate) struct SseCustomerKey {
    pub key_b64: String,
    pub md5_b64: String,
}

impl fmt::Debug for SseCustomerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SseCustomerKey(..)")
    }
}

impl SseCustomerKey {
    pub const ALGORITHM: &str = "AES256";

    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("store.s3.sse_c_key_file {shown}: {e}")))?;
        Self::from_base64(text.trim())
            .map_err(|why| Error::Config(format!("store.s3.sse_c_key_file {shown}: {why}")))
    }

    /// A key from its base64 text; the reason says what is wrong, never the text.
    pub fn from_base64(text: &str) -> Result<Self, &'static str> {
        let key = BASE64.decode(text).map_err(
            |_| "not base64: write 32 random bytes base64-encoded (openssl rand -base64 32)",
        )?;
        if key.len() != 32 {
            return Err("not 32 bytes: SSE-C needs a 256-bit key (openssl rand -base64 32)");
        }
        Ok(Self {
            key_b64: BASE64.encode(&key),
            md5_b64: BASE64.encode(Md5::digest(&key)),
        })
    }
}

/// The region lock's second half: the bucket's real location must be the configured
/// region (and so on the allowlist). A store that rejects our signature's region is in
/// another region too.
pub(crate) async fn verify_region(conn: &Connection) -> Result<(), Error> {
    let out = conn
        .client
        .get_bucket_location()
        .bucket(&conn.bucket)
        .send()
        .await
        .map_err(|e| classify("GetBucketLocation", conn, "", e))?;
    // S3 reports us-east-1 as no constraint, and old eu-west-1 buckets as "EU".
    let actual = match out.location_constraint().map(|c| c.as_str()) {
        None | Some("") => "us-east-1",
        Some("EU") => "eu-west-1",
        Some(region) => region,
    };
    if actual == conn.region {
        return Ok(());
    }
    Err(Error::WrongRegion {
        bucket: conn.bucket.clone(),
        configured: conn.region.clone(),
        actual: actual.to_owned(),
        allowed: conn.allowed_regions.iter().any(|r| r == actual),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_c_keys_must_be_32_bytes_of_base64() {
        let key = SseCustomerKey::from_base64(&BASE64.encode([7u8; 32])).unwrap();
        assert_eq!(BASE64.decode(&key.md5_b64).unwrap().len(), 16);
        assert_eq!(format!("{key:?}"), "SseCustomerKey(..)");
        assert!(
            SseCustomerKey::from_base64(&BASE64.encode([7u8; 16]))
                .unwrap_err()
                .contains("not 32 bytes")
        );
        assert!(
            SseCustomerKey::from_base64("not base64!")
                .unwrap_err()
                .contains("not base64")
        );
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "hello").unwrap();
        let err = read_ca_file(&path).unwrap_err().to_string();
        assert!(err.contains("holds no CERTIFICATE block"), "{err}");
        let err = read_ca_file(&dir.path().join("missing.pem"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.pem"), "{err}");
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = read_ca_file(&path).unwrap_err().to_string();
        assert!(err.contains("not a usable CA certificate"), "{err}");
    }
}
