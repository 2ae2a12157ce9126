//! The S3 store against a real S3 server: `scripts/garage.sh start`, then
//! `export $(scripts/garage.sh env)` (INLAND_S3_ENDPOINT, INLAND_S3_REGION,
//! INLAND_S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY). The SSE-C test also reads
//! the server's files: INLAND_GARAGE_DATA_DIR, else `scripts/garage.sh datadir`.
//!
//! Each test works under its own random key prefix or in its own bucket, and cleans up.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter,
};
use bytes::Bytes;
use inland_store::cli::{StorageCommand, run};
use inland_store::lifecycle::{Drift, inspect};
use inland_store::{
    Backend, DataClass, Error, ObjectStore, S3Config, S3Store, StoreConfig, bootstrap,
    check_lifecycle,
};

const MIB: usize = 1 << 20;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: export $(scripts/garage.sh env)"))
}

/// The server from the environment, with 5 MiB parts so a small object goes multipart.
fn s3_config() -> S3Config {
    S3Config {
        endpoint: env("INLAND_S3_ENDPOINT"),
        region: env("INLAND_S3_REGION"),
        bucket: env("INLAND_S3_BUCKET"),
        multipart_threshold: 5 * MIB as u64,
        part_size: 5 * MIB as u64,
        ..S3Config::default()
    }
}

fn store_config(s3: S3Config) -> StoreConfig {
    StoreConfig {
        backend: Backend::S3,
        s3,
        ..StoreConfig::default()
    }
}

/// A name no other run uses.
fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", std::process::id(), nanos)
}

/// `len` bytes of `marker` repeated (a recognisable, incompressible-enough pattern).
fn body_of(marker: &str, len: usize) -> Bytes {
    marker.bytes().cycle().take(len).collect::<Vec<u8>>().into()
}

#[tokio::test]
#[ignore = "needs Garage: scripts/garage.sh start"]
async fn put_get_list_delete_round_trip_with_a_multipart_object() {
    let store = S3Store::open(&s3_config()).await.unwrap();
    store.ready().await.unwrap();
    let prefix = format!("dataset=telemetry/test-{}/", unique());
    let small = format!("{prefix}date=2026-01-01/small.parquet");
    let large = format!("{prefix}date=2026-01-01/large.parquet");

    store
        .put(&small, Bytes::from_static(b"first"))
        .await
        .unwrap();
    store
        .put(&small, Bytes::from_static(b"second"))
        .await
        .unwrap();
    let large_body = body_of("multipart-", 11 * MIB + 123);
    store.put(&large, large_body.clone()).await.unwrap();

    assert_eq!(&store.get(&small).await.unwrap()[..], b"second");
    assert_eq!(store.get(&large).await.unwrap(), large_body);
    // Three 5 MiB parts: S3 marks a multipart object's ETag with its part count.
    let head = store
        .client()
        .head_object()
        .bucket(store.bucket())
        .key(&large)
        .send()
        .await
        .unwrap();
    assert!(
        head.e_tag().unwrap().ends_with("-3\""),
        "{:?}",
        head.e_tag()
    );

    let listed = store.list(&prefix).await.unwrap();
    let keys: Vec<&str> = listed.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, [large.as_str(), small.as_str()]);
    assert_eq!(listed[0].size, large_body.len() as u64);
    assert_eq!(listed[1].size, 6);
    let age = SystemTime::now()
        .duration_since(listed[1].last_modified)
        .unwrap_or_default();
    assert!(age < Duration::from_secs(600), "last_modified is now-ish");

    store.delete(&small).await.unwrap();
    store.delete(&small).await.unwrap(); // deleting a missing object is fine
    store.delete(&large).await.unwrap();
    assert!(matches!(store.get(&small).await, Err(Error::NotFound(k)) if k == small));
    assert!(store.list(&prefix).await.unwrap().is_empty());
    assert!(matches!(
        store.put("../escape", Bytes::new()).await,
        Err(Error::BadKey(_))
    ));
}

#[tokio::test]
#[ignore = "needs Garage: scripts/garage.sh start"]
async fn a_missing_bucket_is_named_with_what_to_do() {
    let config = S3Config {
        bucket: format!("inland-missing-{}", unique()),
        ..s3_config()
    };
    let err = S3Store::open(&config).await.unwrap_err();
    assert!(matches!(err, Error::NoSuchBucket { .. }), "{err:?}");
    assert!(
        err.to_string().contains("inland storage bootstrap"),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "needs Garage: scripts/garage.sh start"]
async fn an_unreachable_store_and_a_bad_key_file_are_named() {
    let config = S3Config {
        endpoint: "http://127.0.0.1:1".into(),
        ..s3_config()
    };
    let err = S3Store::open(&config).await.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert_eq!(err.code(), inland_core::ErrorCode::Unavailable);
    assert!(
        err.to_string()
            .contains("http://127.0.0.1:1: tcp connect error"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("short.key");
    std::fs::write(&key_file, "c2hvcnQ=\n").unwrap();
    let config = S3Config {
        sse_c_key_file: Some(key_file),
        ..s3_config()
    };
    let err = S3Store::open(&config).await.unwrap_err();
    assert!(err.to_string().contains("short.key: not 32 bytes"), "{err}");
}

/// A bucket of its own, deleted with its objects at the end.
struct TestBucket {
    config: StoreConfig,
}

impl TestBucket {
    fn new() -> Self {
        Self {
            config: store_config(S3Config {
                bucket: format!("inland-test-{}", unique()),
                ..s3_config()
            }),
        }
    }

    async fn remove(self) {
        let store = S3Store::open(&self.config.s3).await.unwrap();
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
}

#[tokio::test]
#[ignore = "needs Garage: scripts/garage.sh start"]
async fn bootstrap_applies_the_rules_and_a_longer_rule_is_drift() {
    let bucket = TestBucket::new();
    let config = &bucket.config;

    let report = bootstrap(config).await.unwrap();
    assert!(report.created_bucket && report.applied, "{report}");
    assert_eq!(report.drift, [], "{report}");
    assert_eq!(report.rules.len(), DataClass::ALL.len() + 1, "{report}");
    let telemetry = report
        .rules
        .iter()
        .find(|r| r.id.as_deref() == Some("inland-telemetry"))
        .unwrap();
    assert_eq!(telemetry.prefix, "dataset=telemetry/");
    assert_eq!(telemetry.expire_after_days, Some(365));
    check_lifecycle(config).await.unwrap();

    // Again: the bucket exists, nothing changes.
    let again = bootstrap(config).await.unwrap();
    assert!(!again.created_bucket && again.drift.is_empty(), "{again}");

    // Someone keeps telemetry for 400 days and drops the other rules.
    let store = S3Store::open(&config.s3).await.unwrap();
    store
        .client()
        .put_bucket_lifecycle_configuration()
        .bucket(store.bucket())
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(
                    LifecycleRule::builder()
                        .id("inland-telemetry")
                        .status(ExpirationStatus::Enabled)
                        .filter(
                            LifecycleRuleFilter::builder()
                                .prefix("dataset=telemetry/")
                                .build(),
                        )
                        .expiration(LifecycleExpiration::builder().days(400).build())
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let report = inspect(config).await.unwrap();
    assert!(
        report.drift.contains(&Drift::Longer {
            class: DataClass::Telemetry,
            configured_days: 365,
            in_force_days: 400
        }),
        "{report}"
    );
    assert!(
        report.drift.contains(&Drift::Missing {
            class: DataClass::Frames,
            configured_days: 30
        }),
        "{report}"
    );
    let err = check_lifecycle(config).await.unwrap_err();
    assert!(matches!(err, Error::LifecycleDrift { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("telemetry: expires after 400 days, longer than the configured 365 days"),
        "{err}"
    );
    let mut out = Vec::new();
    let err = run(StorageCommand::Check, config, &mut out)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LifecycleDrift { .. }));
    let printed = String::from_utf8(out).unwrap();
    assert!(
        printed.contains("inland-telemetry: prefix \"dataset=telemetry/\", expire after 400 days"),
        "{printed}"
    );

    // Bootstrap repairs it.
    let mut out = Vec::new();
    run(StorageCommand::Bootstrap, config, &mut out)
        .await
        .unwrap();
    assert!(String::from_utf8(out).unwrap().ends_with("drift: none\n"));
    check_lifecycle(config).await.unwrap();
    bucket.remove().await;
}

#[tokio::test]
#[ignore = "needs Garage: scripts/garage.sh start"]
async fn regions_off_the_lock_or_not_the_buckets_are_refused() {
    // Not on the allowlist: refused before any request.
    let config = S3Config {
        region: "us-east-1".into(),
        ..s3_config()
    };
    let err = S3Store::open(&config).await.unwrap_err();
    assert!(matches!(err, Error::RegionNotAllowed { .. }), "{err:?}");

    // Allowlisted, but not where the server is (Garage answers for cn-north-1).
    let server_region = env("INLAND_S3_REGION");
    let other = if server_region == "cn-northwest-1" {
        "cn-north-1"
    } else {
        "cn-northwest-1"
    };
    let config = S3Config {
        region: other.into(),
        ..s3_config()
    };
    let err = S3Store::open(&config).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, Error::WrongRegion { actual, configured, .. } if *actual == server_region && configured == other),
        "{err:?}"
    );
    assert!(
        text.contains(&server_region) && text.contains(other),
        "{text}"
    );
    assert_eq!(err.code(), inland_core::ErrorCode::InvalidInput);

    // Bootstrap refuses too, and creates nothing.
    let bucket = format!("inland-test-{}", unique());
    let err = bootstrap(&store_config(S3Config {
        region: other.into(),
        bucket: bucket.clone(),
        ..s3_config()
    }))
    .await
    .unwrap_err();
    assert!(matches!(err, Error::WrongRegion { .. }), "{err:?}");
    let err = S3Store::open(&S3Config {
        bucket,
        ..s3_config()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NoSuchBucket { .. }), "{err:?}");
}

/// Where Garage keeps everything it stores (metadata and blocks).
fn garage_data_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("INLAND_GARAGE_DATA_DIR") {
        return dir.into();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/garage.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("datadir")
        .output()
        .expect("run scripts/garage.sh datadir");
    assert!(out.status.success(), "scripts/garage.sh datadir failed");
    let dir = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(
        dir.is_dir(),
        "{} is not a directory: set INLAND_GARAGE_DATA_DIR to Garage's data dir",
        dir.display()
    );
    dir
}

/// Whether any file under `dir` holds `needle`.
fn found_on_disk(dir: &Path, needle: &[u8]) -> bool {
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                return true;
            }
        }
    }
    false
}

fn sse_c_config(dir: &Path, name: &str, key: [u8; 32]) -> S3Config {
    use base64::Engine as _;
    let path = dir.join(name);
    std::fs::write(
        &path,
        base64::engine::general_purpose::STANDARD.encode(key) + "\n",
    )
    .unwrap();
    S3Config {
        sse_c_key_file: Some(path),
        ..s3_config()
    }
}

#[tokio::test]
#[ignore = "needs Garage: scripts/garage.sh start"]
async fn sse_c_objects_are_not_readable_on_the_servers_disk() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = garage_data_dir();
    let run = unique();
    let plain = S3Store::open(&s3_config()).await.unwrap();
    let encrypted = S3Store::open(&sse_c_config(dir.path(), "key", [0x5a; 32]))
        .await
        .unwrap();
    let other_key = S3Store::open(&sse_c_config(dir.path(), "other", [0xa5; 32]))
        .await
        .unwrap();

    // Without SSE-C the bytes are on the server's disk as sent.
    let plain_marker = format!("INLAND-PLAIN-MARKER-{run}|");
    let plain_key = format!("dataset=frames/test-{run}/plain.jpg");
    plain
        .put(&plain_key, body_of(&plain_marker, 256 * 1024))
        .await
        .unwrap();
    assert!(
        found_on_disk(&data_dir, plain_marker.as_bytes()),
        "the unencrypted marker should be on disk under {}",
        data_dir.display()
    );

    // With SSE-C they are not, neither for a single put nor for a multipart one.
    let secret_marker = format!("INLAND-SECRET-MARKER-{run}|");
    let small_key = format!("dataset=frames/test-{run}/secret.jpg");
    let large_key = format!("dataset=frames/test-{run}/secret-large.jpg");
    let small = body_of(&secret_marker, 256 * 1024);
    let large = body_of(&secret_marker, 6 * MIB);
    encrypted.put(&small_key, small.clone()).await.unwrap();
    encrypted.put(&large_key, large.clone()).await.unwrap();
    assert!(
        !found_on_disk(&data_dir, secret_marker.as_bytes()),
        "SSE-C plaintext found on disk under {}",
        data_dir.display()
    );
    assert_eq!(encrypted.get(&small_key).await.unwrap(), small);
    assert_eq!(encrypted.get(&large_key).await.unwrap(), large);

    // Without the key, or with another, the object cannot be read.
    for (store, what) in [(&plain, "no key"), (&other_key, "another key")] {
        let err = store.get(&small_key).await.unwrap_err();
        assert!(matches!(err, Error::Encryption { .. }), "{what}: {err:?}");
        assert!(!err.to_string().contains(&secret_marker), "{err}");
    }

    for key in [&plain_key, &small_key, &large_key] {
        plain.delete(key).await.unwrap();
    }
}

/// A TLS terminator in front of the plain-http server: accepts TLS on a free loopback port
/// with `cert_pem`/`key_pem` and forwards the bytes to `upstream`.
async fn tls_proxy(cert_pem: &str, key_pem: &str, upstream: String) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                // A client that refuses our certificate ends the handshake: nothing to do.
                let Ok(mut client) = acceptor.accept(client).await else {
                    return;
                };
                let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    port
}

#[tokio::test]
#[ignore = "needs Garage: scripts/garage.sh start"]
async fn https_works_with_the_ca_file_and_refuses_an_untrusted_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = inland_tls::FleetCa::generate().unwrap();
    let server = ca.issue_server(&["localhost".into()]).unwrap();
    let upstream = env("INLAND_S3_ENDPOINT")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let port = tls_proxy(&server.cert_pem, &server.key_pem, upstream).await;
    let endpoint = format!("https://localhost:{port}");

    let ca_file = dir.path().join("store-ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let trusted = S3Config {
        endpoint: endpoint.clone(),
        ca_file: Some(ca_file),
        ..s3_config()
    };
    let store = S3Store::open(&trusted).await.unwrap();
    let key = format!("audit/test-{}/over-tls.json", unique());
    store.put(&key, Bytes::from_static(b"{}")).await.unwrap();
    assert_eq!(&store.get(&key).await.unwrap()[..], b"{}");
    store.delete(&key).await.unwrap();

    // A CA that did not sign the server's certificate, and the system roots: refused.
    let stranger = dir.path().join("other-ca.pem");
    std::fs::write(
        &stranger,
        inland_tls::FleetCa::generate().unwrap().cert_pem(),
    )
    .unwrap();
    for ca_file in [Some(stranger), None] {
        let config = S3Config {
            endpoint: endpoint.clone(),
            ca_file: ca_file.clone(),
            ..s3_config()
        };
        let err = S3Store::open(&config).await.unwrap_err();
        assert!(matches!(err, Error::Tls { .. }), "{ca_file:?}: {err:?}");
        assert!(err.to_string().contains("store.s3.ca_file"), "{err}");
    }
}
