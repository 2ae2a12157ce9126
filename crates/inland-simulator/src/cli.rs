//! `inland simulate`: the flags, and how they combine with the configuration.
//!
//! ```no_run
//! # async fn simulate(
//! #     args: inland_simulator::cli::SimulateArgs,
//! #     shutdown: tokio_util::sync::CancellationToken,
//! # ) -> Result<(), inland_simulator::Error> {
//! // The base is the defaults, or the `[simulator]` section loaded by inland-config.
//! let opts = args.into_options(inland_simulator::SimulatorConfig::default());
//! let summary =
//!     inland_simulator::run(opts.config, Some(&opts.certs), opts.progress, shutdown).await?;
//! if opts.json {
//!     println!("{}", serde_json::to_string_pretty(&summary).expect("serializable"));
//! } else {
//!     println!("{summary}");
//! }
//! # Ok(())
//! # }
//! ```

use std::path::PathBuf;
use std::time::Duration;

use crate::SimulatorConfig;

/// Simulate a fleet streaming telemetry and camera frames to the gateway, then print a
/// summary of acks and latency.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct SimulateArgs {
    /// The gateway: https:// for mutual TLS, http:// for its plain-text loopback dev mode
    /// [default: https://127.0.0.1:50051]
    #[arg(long, value_name = "URL")]
    pub gateway: Option<String>,
    /// The dev certificates (`inland dev-certs` writes them); their fleet CA issues each
    /// simulated vehicle's certificate. Not needed with an http:// gateway.
    #[arg(long, value_name = "DIR", default_value = ".inland/certs")]
    pub certs: PathBuf,
    /// Vehicles to simulate [default: 10]
    #[arg(long, value_name = "N")]
    pub vehicles: Option<usize>,
    /// Telemetry batches per second per vehicle, each sampling 10 instants [default: 1]
    #[arg(long, value_name = "BATCHES_PER_S")]
    pub rate: Option<f64>,
    /// Camera frames per minute per vehicle; 0 sends none [default: 6]
    #[arg(long, value_name = "N")]
    pub frames_per_minute: Option<f64>,
    /// Stop after this long, e.g. 30s or 5m [default: until Ctrl-C]
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many uploads in total, over all vehicles
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Fixes VINs, routes and frames, so runs are repeatable [default: 1]
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// No live progress line (it is also off when stderr is not a terminal)
    #[arg(long)]
    pub no_progress: bool,
    /// Print the summary as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// A parsed `inland simulate`: what [`crate::run`] takes, and how to print the summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub config: SimulatorConfig,
    /// The dev certificates directory, for [`crate::run`]'s `certs`.
    pub certs: PathBuf,
    pub progress: bool,
    pub json: bool,
}

impl SimulateArgs {
    /// The flags given on the command line override `base`: the defaults, or the
    /// configuration loaded from file and environment.
    pub fn into_options(self, base: SimulatorConfig) -> Options {
        let mut config = base;
        if let Some(v) = self.gateway {
            config.gateway = v;
        }
        if let Some(v) = self.vehicles {
            config.vehicles = v;
        }
        if let Some(v) = self.rate {
            config.batches_per_second = v;
        }
        if let Some(v) = self.frames_per_minute {
            config.frames_per_minute = v;
        }
        if let Some(v) = self.duration {
            config.duration = Some(v);
        }
        if let Some(v) = self.count {
            config.count = Some(v);
        }
        if let Some(v) = self.seed {
            config.seed = v;
        }
        Options {
            config,
            certs: self.certs,
            progress: !self.no_progress,
            json: self.json,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    fn parse(args: &[&str]) -> Options {
        let cli = Cli::try_parse_from(std::iter::once("simulate").chain(args.iter().copied()))
            .expect("arguments parse");
        cli.args.into_options(SimulatorConfig::default())
    }

    #[test]
    fn no_flags_keep_the_base_config() {
        let opts = parse(&[]);
        assert_eq!(opts.config, SimulatorConfig::default());
        assert_eq!(opts.certs, PathBuf::from(".inland/certs"));
        assert!(opts.progress && !opts.json);

        let base = SimulatorConfig {
            vehicles: 99,
            ..Default::default()
        };
        let cli = Cli::try_parse_from(["simulate", "--seed", "5"]).unwrap();
        let opts = cli.args.into_options(base);
        assert_eq!((opts.config.vehicles, opts.config.seed), (99, 5));
    }

    #[test]
    fn flags_override() {
        let opts = parse(&[
            "--gateway",
            "http://127.0.0.1:9000",
            "--certs",
            "/tmp/c",
            "--vehicles",
            "3",
            "--rate",
            "2.5",
            "--frames-per-minute",
            "0",
            "--duration",
            "1m 30s",
            "--count",
            "40",
            "--seed",
            "7",
            "--no-progress",
            "--json",
        ]);
        let c = &opts.config;
        assert_eq!(c.gateway, "http://127.0.0.1:9000");
        assert!(c.plaintext());
        assert_eq!(
            (c.vehicles, c.batches_per_second, c.frames_per_minute),
            (3, 2.5, 0.0)
        );
        assert_eq!(c.duration, Some(Duration::from_secs(90)));
        assert_eq!((c.count, c.seed), (Some(40), 7));
        assert_eq!(opts.certs, PathBuf::from("/tmp/c"));
        assert!(!opts.progress && opts.json);
    }

    #[test]
    fn a_bad_duration_is_refused() {
        assert!(Cli::try_parse_from(["simulate", "--duration", "soon"]).is_err());
    }
}
