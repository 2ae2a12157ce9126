//! The `store` configuration section: which backend holds the archive, how to reach an S3
//! store safely, and how long each data class is kept.
//!
//! ```toml
//! [store]
//! backend = "s3"                     # "local" (the default, for `inland run`) or "s3"
//!
//! [store.local]
//! dir = "archive"                    # relative paths resolve against `data_dir`
//!
//! [store.s3]
//! endpoint = "https://s3.cn-north-1.amazonaws.com.cn"
//! region = "cn-north-1"
//! bucket = "inland-archive"
//! # allowed_regions = ["cn-north-1", "cn-northwest-1", "cn-inland-1"]
//! # ca_file = "/etc/inland/store-ca.pem"
//! # sse_c_key_file = "/etc/inland/store-sse-c.key"
//!
//! [store.shelf_life]
//! telemetry = "365d"
//! frames = "30d"
//! ```
//!
//! Credentials never appear here: the S3 backend reads the standard `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` (and optional `AWS_SESSION_TOKEN`) environment variables.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{DataClass, Error};

const DAY: u64 = 24 * 3600;
const MIB: u64 = 1 << 20;
/// S3's smallest part (except the last) and largest part.
const MIN_PART: u64 = 5 * MIB;
const MAX_PART: u64 = 5 * 1024 * MIB;

/// The `store` section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Which backend holds the archive; only that backend's section is read.
    pub backend: Backend,
    pub local: LocalConfig,
    pub s3: S3Config,
    /// How long objects of each class are kept. The S3 backend enforces it with bucket
    /// lifecycle rules (`inland storage bootstrap`), the local backend with a sweeper.
    pub shelf_life: ShelfLife,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// A directory: for `inland run` and tests.
    #[default]
    Local,
    /// An S3-compatible object store in the country (AWS China regions, or a self-hosted
    /// Garage, MinIO or Ceph).
    S3,
}

/// The local backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalConfig {
    /// The store's root directory; a relative path resolves against the data dir.
    pub dir: PathBuf,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("archive"),
        }
    }
}

/// The S3 backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// The store's URL, e.g. `https://s3.cn-north-1.amazonaws.com.cn`. Plain `http://` is
    /// accepted only for a loopback address (a dev server on this machine). Required.
    pub endpoint: String,
    /// The region requests are signed for; must be in `allowed_regions`, and the bucket
    /// must really be there (checked with GetBucketLocation at start).
    pub region: String,
    /// The bucket; created by `inland storage bootstrap` if missing. Required.
    pub bucket: String,
    /// The region lock: the only regions the store may be in. Only in-country names
    /// (`cn-…`) may be listed. `cn-inland-1` is the name to give a self-hosted store in the
    /// country (set it as the server's region, e.g. Garage's `s3_region`), so a self-hosted
    /// store is allowed by explicit choice rather than by accepting any region name.
    pub allowed_regions: Vec<String>,
    /// Path-style requests (`endpoint/bucket/key`), which self-hosted stores need; false
    /// for virtual-hosted style (`bucket.endpoint/key`).
    pub path_style: bool,
    /// A PEM file of CA certificates to trust for the `https` endpoint instead of the
    /// system's roots (a private CA of a self-hosted store).
    pub ca_file: Option<PathBuf>,
    /// A file holding a 32-byte key, base64-encoded, for SSE-C: every object is encrypted
    /// by the store with this key, which the store does not keep. Losing the key loses the
    /// archive; changing it makes older objects unreadable.
    pub sse_c_key_file: Option<PathBuf>,
    /// Objects larger than this many bytes are uploaded in parts.
    pub multipart_threshold: u64,
    /// The size of each part of a multipart upload, in bytes (5 MiB to 5 GiB).
    pub part_size: u64,
    /// Incomplete multipart uploads (left by a crash) are removed after this (whole days).
    #[serde(with = "humantime_serde")]
    pub abort_incomplete_multipart_after: Duration,
    /// How long to wait for a connection to the store.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long one attempt of one request may take (a part, for multipart uploads).
    #[serde(with = "humantime_serde")]
    pub attempt_timeout: Duration,
}

/// The default region lock: the two AWS China regions and the self-hosted name.
pub const DEFAULT_ALLOWED_REGIONS: [&str; 3] = ["cn-north-1", "cn-northwest-1", "cn-inland-1"];

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            region: "cn-north-1".into(),
            bucket: String::new(),
            allowed_regions: DEFAULT_ALLOWED_REGIONS.map(String::from).into(),
            path_style: true,
            ca_file: None,
            sse_c_key_file: None,
            multipart_threshold: 64 * MIB,
            part_size: 16 * MIB,
            abort_incomplete_multipart_after: Duration::from_secs(DAY),
            connect_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(120),
        }
    }
}

/// How long objects of each class are kept, in whole days.
///
/// The defaults: telemetry a year (a full year of driving statistics); frames 30 days and
/// their index likewise (imagery is the most sensitive class and serves short-lived map
/// updates; the index must not outlive the frames it describes); consent records six years
/// and the query audit log three, long enough to answer a regulator or a data subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShelfLife {
    #[serde(with = "humantime_serde")]
    pub telemetry: Duration,
    #[serde(with = "humantime_serde")]
    pub frames: Duration,
    /// At most `frames`.
    #[serde(with = "humantime_serde")]
    pub frame_index: Duration,
    #[serde(with = "humantime_serde")]
    pub consent: Duration,
    #[serde(with = "humantime_serde")]
    pub audit: Duration,
}

impl Default for ShelfLife {
    fn default() -> Self {
        let days = |d: u64| Duration::from_secs(d * DAY);
        Self {
            telemetry: days(365),
            frames: days(30),
            frame_index: days(30),
            consent: days(2190),
            audit: days(1095),
        }
    }
}

impl ShelfLife {
    /// The shelf life of `class`.
    pub fn of(&self, class: DataClass) -> Duration {
        match class {
            DataClass::Telemetry => self.telemetry,
            DataClass::Frames => self.frames,
            DataClass::FrameIndex => self.frame_index,
            DataClass::Consent => self.consent,
            DataClass::Audit => self.audit,
        }
    }

    /// The shelf life of `class` in days (checked to be whole by [`StoreConfig::check`]).
    pub fn days(&self, class: DataClass) -> u32 {
        whole_days(self.of(class)).unwrap_or(u32::MAX)
    }

    fn check(&self) -> Result<(), Error> {
        for class in DataClass::ALL {
            days_setting(
                &format!("store.shelf_life.{}", class.as_str()),
                self.of(class),
            )?;
        }
        if self.frame_index > self.frames {
            return Err(config(
                "store.shelf_life.frame_index is longer than store.shelf_life.frames: the index \
                 would outlive the frames it describes",
            ));
        }
        Ok(())
    }
}

/// `d` in days, if it is a whole number of them (1 to 100 years).
fn whole_days(d: Duration) -> Option<u32> {
    let secs = d.as_secs();
    (d.subsec_nanos() == 0 && secs.is_multiple_of(DAY) && (1..=36_500).contains(&(secs / DAY)))
        .then_some((secs / DAY) as u32)
}

fn days_setting(name: &str, d: Duration) -> Result<u32, Error> {
    whole_days(d).ok_or_else(|| {
        config(format!(
            "{name} = {:?}: give whole days between 1d and 36500d, e.g. \"365d\" (lifecycle \
             rules count in days)",
            humantime::format_duration(d).to_string()
        ))
    })
}

fn config(message: impl Into<String>) -> Error {
    Error::Config(message.into())
}

impl StoreConfig {
    /// Refuses a configuration that cannot work or would break the region lock; reads no
    /// files (the backends do when they open).
    pub fn check(&self) -> Result<(), Error> {
        self.shelf_life.check()?;
        match self.backend {
            Backend::Local => {
                if self.local.dir.as_os_str().is_empty() {
                    return Err(config(
                        "store.local.dir is empty: name the archive directory",
                    ));
                }
                Ok(())
            }
            Backend::S3 => self.s3.check(),
        }
    }

    /// The local store's directory: `local.dir`, against `data_dir` when relative.
    pub fn local_dir(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(&self.local.dir)
    }
}

impl S3Config {
    /// The S3 part of [`StoreConfig::check`].
    pub fn check(&self) -> Result<(), Error> {
        check_endpoint(&self.endpoint, self.ca_file.is_some())?;
        check_bucket(&self.bucket)?;
        if self.allowed_regions.is_empty() {
            return Err(config(
                "store.s3.allowed_regions is empty: list the in-country regions the store may be in",
            ));
        }
        if let Some(region) = self.allowed_regions.iter().find(|r| !in_country(r)) {
            return Err(config(format!(
                "store.s3.allowed_regions lists {region:?}: only in-country regions (cn-…) may \
                 be allowed"
            )));
        }
        if !self.allowed_regions.contains(&self.region) {
            return Err(Error::RegionNotAllowed {
                region: self.region.clone(),
                allowed: self.allowed_regions.clone(),
            });
        }
        if !(MIN_PART..=MAX_PART).contains(&self.part_size) {
            return Err(config(format!(
                "store.s3.part_size = {}: must be between {MIN_PART} (5 MiB) and {MAX_PART} (5 GiB)",
                self.part_size
            )));
        }
        if self.multipart_threshold < self.part_size {
            return Err(config(format!(
                "store.s3.multipart_threshold = {} is below part_size = {}: objects between \
                 the two would be sent as one undersized part",
                self.multipart_threshold, self.part_size
            )));
        }
        days_setting(
            "store.s3.abort_incomplete_multipart_after",
            self.abort_incomplete_multipart_after,
        )?;
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("attempt_timeout", self.attempt_timeout),
        ] {
            if d.is_zero() {
                return Err(config(format!("store.s3.{name} is zero")));
            }
        }
        Ok(())
    }
}

/// An in-country region name: `cn-` and a non-empty rest of lowercase letters, digits and
/// dashes.
fn in_country(region: &str) -> bool {
    region.strip_prefix("cn-").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    })
}

fn check_endpoint(endpoint: &str, has_ca_file: bool) -> Result<(), Error> {
    if endpoint.is_empty() {
        return Err(config(
            "store.s3.endpoint is not set: give the store's URL, e.g. \
             https://s3.cn-north-1.amazonaws.com.cn",
        ));
    }
    let (scheme, rest) = endpoint.split_once("://").ok_or_else(|| {
        config(format!(
            "store.s3.endpoint = {endpoint:?} is not a URL: write https://HOST[:PORT]"
        ))
    })?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#']) {
        return Err(config(format!(
            "store.s3.endpoint = {endpoint:?}: give only scheme, host and port (the bucket \
             goes in store.s3.bucket)"
        )));
    }
    if authority.contains('@') {
        // Not echoed: it holds credentials.
        return Err(config(
            "store.s3.endpoint holds user info (user:password@): remove it; credentials come \
             from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ));
    }
    match scheme {
        "https" => Ok(()),
        "http" if has_ca_file => Err(config(format!(
            "store.s3.ca_file is set but store.s3.endpoint = {endpoint:?} is plain http: use https"
        ))),
        "http" if is_loopback(authority) => Ok(()),
        "http" => Err(config(format!(
            "store.s3.endpoint = {endpoint:?}: plain http is only allowed to a loopback address \
             (a dev server on this machine); use https"
        ))),
        _ => Err(config(format!(
            "store.s3.endpoint = {endpoint:?}: the scheme must be https (or http to a loopback \
             address)"
        ))),
    }
}

/// Whether `authority` (host[:port]) names this machine.
fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// S3 bucket naming rules, so a typo fails here rather than as a signature error.
fn check_bucket(bucket: &str) -> Result<(), Error> {
    if bucket.is_empty() {
        return Err(config(
            "store.s3.bucket is not set: name the archive's bucket",
        ));
    }
    let valid = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !bucket.contains("..")
        && bucket.parse::<IpAddr>().is_err();
    if valid {
        Ok(())
    } else {
        Err(config(format!(
            "store.s3.bucket = {bucket:?} is not a valid bucket name: 3 to 63 lowercase letters, \
             digits, dashes and dots, starting and ending with a letter or digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3() -> StoreConfig {
        StoreConfig {
            backend: Backend::S3,
            s3: S3Config {
                endpoint: "https://s3.cn-north-1.amazonaws.com.cn".into(),
                bucket: "inland-archive".into(),
                ..S3Config::default()
            },
            ..StoreConfig::default()
        }
    }

    fn refused(config: &StoreConfig) -> String {
        let err = config.check().unwrap_err();
        assert_eq!(err.code(), inland_core::ErrorCode::InvalidInput, "{err}");
        err.to_string()
    }

    #[test]
    fn defaults_are_valid_and_local() {
        let config = StoreConfig::default();
        config.check().unwrap();
        assert_eq!(config.backend, Backend::Local);
        assert_eq!(
            config.local_dir(Path::new("/var/lib/inland")),
            Path::new("/var/lib/inland/archive")
        );
        assert_eq!(config.shelf_life.days(DataClass::Telemetry), 365);
        s3().check().unwrap();
    }

    #[test]
    fn toml_sections_parse_and_unknown_fields_are_refused() {
        let config: StoreConfig = toml::from_str(
            r#"
            backend = "s3"
            [s3]
            endpoint = "http://127.0.0.1:3900"
            region = "cn-inland-1"
            bucket = "inland"
            sse_c_key_file = "/run/secrets/sse-c"
            [shelf_life]
            telemetry = "90d"
            "#,
        )
        .unwrap();
        config.check().unwrap();
        assert_eq!(config.shelf_life.days(DataClass::Telemetry), 90);
        assert_eq!(config.shelf_life.days(DataClass::Consent), 2190);
        let err = toml::from_str::<StoreConfig>("[s3]\naccess_key = \"x\"\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `access_key`"),
            "{err}"
        );
    }

    #[test]
    fn the_region_lock_refuses_regions_off_the_list() {
        let mut config = s3();
        config.s3.region = "us-east-1".into();
        let message = refused(&config);
        assert!(message.contains("us-east-1"), "{message}");
        assert!(
            message.contains("cn-north-1, cn-northwest-1, cn-inland-1"),
            "{message}"
        );

        // Nor can the list itself be widened beyond the country.
        let mut config = s3();
        config.s3.allowed_regions.push("eu-west-1".into());
        assert!(refused(&config).contains("only in-country regions"));
        config.s3.allowed_regions.clear();
        assert!(refused(&config).contains("allowed_regions is empty"));
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "http://127.0.0.1:3900",
            "http://localhost:9000/",
            "http://[::1]:3900",
            "https://store.example.cn",
        ] {
            let mut config = s3();
            config.s3.endpoint = ok.into();
            config.check().unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, why) in [
            ("http://10.0.0.5:3900", "only allowed to a loopback"),
            ("http://127.0.0.1.example.com", "only allowed to a loopback"),
            ("ftp://127.0.0.1", "scheme must be https"),
            ("s3.cn-north-1.amazonaws.com.cn", "not a URL"),
            ("https://host/bucket", "only scheme, host and port"),
            ("", "endpoint is not set"),
        ] {
            let mut config = s3();
            config.s3.endpoint = bad.into();
            let message = refused(&config);
            assert!(message.contains(why), "{bad}: {message}");
        }
        let mut config = s3();
        config.s3.endpoint = "https://AKID:hunter2@store.example.cn".into();
        let message = refused(&config);
        assert!(
            message.contains("user info") && !message.contains("hunter2"),
            "{message}"
        );
        let mut config = s3();
        config.s3.endpoint = "http://127.0.0.1:3900".into();
        config.s3.ca_file = Some("/etc/ca.pem".into());
        assert!(refused(&config).contains("use https"));
    }

    #[test]
    fn shelf_lives_are_whole_days_and_the_index_does_not_outlive_frames() {
        let mut config = StoreConfig::default();
        config.shelf_life.telemetry = Duration::from_secs(36 * 3600);
        let message = refused(&config);
        assert!(
            message.contains("store.shelf_life.telemetry = \"1day 12h\""),
            "{message}"
        );
        config.shelf_life.telemetry = Duration::ZERO;
        refused(&config);
        let mut config = StoreConfig::default();
        config.shelf_life.frame_index = Duration::from_secs(31 * DAY);
        assert!(refused(&config).contains("outlive the frames"));
    }

    #[test]
    fn bucket_names_and_part_sizes_are_checked() {
        for bad in [
            "",
            "ab",
            "Inland",
            "-inland",
            "inland-",
            "in..land",
            "192.168.0.1",
        ] {
            let mut config = s3();
            config.s3.bucket = bad.into();
            refused(&config);
        }
        let mut config = s3();
        config.s3.part_size = MIB;
        assert!(refused(&config).contains("part_size"));
        let mut config = s3();
        config.s3.multipart_threshold = config.s3.part_size - 1;
        assert!(refused(&config).contains("multipart_threshold"));
        let mut config = s3();
        config.s3.abort_incomplete_multipart_after = Duration::from_secs(3600);
        assert!(refused(&config).contains("abort_incomplete_multipart_after"));
    }
}
