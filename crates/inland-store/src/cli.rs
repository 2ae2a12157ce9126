//! `inland storage …`: set up and check the archive bucket's lifecycle rules.

use std::io::Write;

use crate::lifecycle::{Report, bootstrap, inspect};
use crate::{Error, StoreConfig};

#[derive(Debug, Clone, PartialEq, clap::Subcommand)]
pub enum StorageCommand {
    /// Create the bucket if missing (in the configured, allowlisted region), write one
    /// lifecycle rule per data class that expires it after its shelf life plus one that
    /// removes abandoned multipart uploads, read them back and print them with any drift.
    Bootstrap,
    /// Print the lifecycle rules in force and how they differ from `store.shelf_life`;
    /// exits non-zero on any drift.
    Check,
}

/// Runs a `storage` command, printing the report to `out`. Drift (after bootstrap: drift
/// that remains) is an error, returned after the report is printed.
pub async fn run(
    cmd: StorageCommand,
    config: &StoreConfig,
    mut out: impl Write,
) -> Result<(), Error> {
    let report = match cmd {
        StorageCommand::Bootstrap => bootstrap(config).await?,
        StorageCommand::Check => inspect(config).await?,
    };
    write!(out, "{report}")
        .and_then(|()| out.flush())
        .map_err(Error::Output)?;
    drift_is_an_error(config, &report)
}

fn drift_is_an_error(config: &StoreConfig, report: &Report) -> Result<(), Error> {
    if report.drift.is_empty() {
        return Ok(());
    }
    Err(Error::LifecycleDrift {
        bucket: config.s3.bucket.clone(),
        findings: format!("{} finding(s), listed above", report.drift.len()),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Backend, S3Config};

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: StorageCommand,
    }

    fn parse(arg: &str) -> StorageCommand {
        Cli::try_parse_from(["storage", arg]).unwrap().cmd
    }

    #[tokio::test]
    async fn a_local_store_has_nothing_to_bootstrap() {
        let mut out = Vec::new();
        run(parse("check"), &StoreConfig::default(), &mut out)
            .await
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("store: local directory"), "{text}");
        assert!(text.ends_with("drift: none\n"), "{text}");
    }

    #[tokio::test]
    async fn a_region_off_the_allowlist_is_refused_before_any_request() {
        let config = StoreConfig {
            backend: Backend::S3,
            s3: S3Config {
                endpoint: "https://s3.us-east-1.amazonaws.com".into(),
                region: "us-east-1".into(),
                bucket: "inland".into(),
                ..S3Config::default()
            },
            ..StoreConfig::default()
        };
        let mut out = Vec::new();
        let err = run(parse("bootstrap"), &config, &mut out)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::RegionNotAllowed { .. }), "{err:?}");
        assert!(out.is_empty());
    }

    #[test]
    fn drift_fails_the_command() {
        let mut report = lifecycle_report();
        drift_is_an_error(&StoreConfig::default(), &report).unwrap();
        report.drift = crate::lifecycle::diff(&Default::default(), 1, &[]);
        let err = drift_is_an_error(&StoreConfig::default(), &report).unwrap_err();
        assert!(
            err.to_string().contains("6 finding(s), listed above"),
            "{err}"
        );
    }

    fn lifecycle_report() -> Report {
        Report {
            backend: crate::Backend::S3,
            store: "bucket".into(),
            created_bucket: false,
            applied: false,
            rules: Vec::new(),
            drift: Vec::new(),
        }
    }
}
