//! The fleet simulator behind `inland simulate` and `inland run --simulate`.
//!
//! Each simulated vehicle has a VIN derived from the seed ([`vins`]) and a client
//! certificate issued in memory by the dev fleet CA, grants its simulated owner's consent
//! through the gateway's ConsentService as a vehicle HMI would ([`consent`]: telemetry,
//! camera frames and precise location for `consent_purposes`), drives a route through the city
//! (`motion`), and keeps one bidirectional `Upload` stream to the gateway on its own channel:
//! VSS telemetry batches and front-camera JPEG frames, each acked by message id. Up to
//! `in_flight` uploads per vehicle are unacked at once; a broken stream is reopened with
//! backoff and the unacked uploads resent under the same ids (`outbox`). [`run`] returns a
//! [`Summary`]: counts by ack status, rejections by code, stream errors, throughput and
//! ack latency percentiles.

pub mod cli;
mod config;
pub mod consent;
mod error;
mod fleet;
mod frames;
mod metrics;
mod motion;
mod outbox;
mod progress;
mod request;
mod stats;
mod vehicle;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use config::SimulatorConfig;
pub use error::Error;
pub use fleet::vins;
pub use stats::{Latency, Summary};

use crate::frames::Frames;
use crate::motion::{LatLon, Motion};
use crate::progress::ProgressLine;
use crate::stats::Stats;
use crate::vehicle::{Fleet, Vehicle};

/// Simulates the configured fleet against the gateway until the duration or count is
/// reached or `shutdown` is cancelled, then waits up to `config.drain` for outstanding
/// acks and returns the summary.
///
/// `certs` is the dev certificates directory (`inland dev-certs`), needed for an
/// `https://` gateway and ignored for `http://`. `progress` shows a live line on stderr
/// when it is a terminal. Fails on a bad configuration or certificates, or when the
/// gateway refuses a vehicle outright (unauthenticated, permission denied); a gateway that
/// is down or restarting is retried until the run ends.
pub async fn run(
    config: SimulatorConfig,
    certs: Option<&Path>,
    progress: bool,
    shutdown: CancellationToken,
) -> Result<Summary, Error> {
    config.validate()?;
    let fleet_vins = vins(config.seed, config.vehicles);
    // Issuing certificates and encoding frames are CPU work: off the async workers.
    let links = {
        let (config, certs) = (config.clone(), certs.map(Path::to_path_buf));
        tokio::task::spawn_blocking(move || fleet::connect(&config, certs.as_deref(), fleet_vins))
    };
    let frames = {
        let (w, h, seed) = (config.frame_width, config.frame_height, config.seed);
        tokio::task::spawn_blocking(move || {
            Frames::generate(w, h, frames::DISTINCT, rng(seed, Stream::Frames))
        })
    };
    let (links, frames) = (links.await??, frames.await??);

    metrics::starting(config.vehicles, &config.gateway, !config.plaintext());
    let stats = Arc::new(Stats::new());
    let _progress = ProgressLine::start(stats.clone(), progress);
    let stop = shutdown.child_token();
    // Ends the duration timer however this function returns.
    let _stop_on_return = stop.clone().drop_guard();
    if let Some(duration) = config.duration {
        tokio::spawn(stop_after(duration, stop.clone()));
    }

    let center = LatLon {
        lat: config.center_lat,
        lon: config.center_lon,
    };
    let vehicles = config.vehicles;
    let count = config.count;
    let fleet = Arc::new(Fleet {
        frames,
        stats: stats.clone(),
        run_id: format!("{:08x}", rand::random::<u32>()),
        start: tokio::time::Instant::now(),
        config,
    });
    let mut tasks = JoinSet::new();
    for (index, link) in links.into_iter().enumerate() {
        let motion = Motion::new(
            center,
            fleet.config.radius_km * 1000.0,
            rng(fleet.config.seed, Stream::Vehicle(index)),
        );
        let quota =
            count.map(|n| n / vehicles as u64 + u64::from((index as u64) < n % vehicles as u64));
        let vehicle = Vehicle {
            index,
            link,
            motion,
            quota,
        };
        tasks.spawn(vehicle::run(vehicle, fleet.clone(), stop.clone()));
    }
    // The first refusal ends the run; dropping the set stops the other vehicles.
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    let summary = stats.summary(vehicles);
    metrics::finished(&summary);
    Ok(summary)
}

async fn stop_after(duration: Duration, stop: CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(duration) => stop.cancel(),
        () = stop.cancelled() => {}
    }
}

/// Independent random streams from one seed, so adding a vehicle or changing the frames
/// does not change the other vehicles' routes. Stream 0 makes the VINs ([`vins`]).
enum Stream {
    Frames,
    Vehicle(usize),
}

fn rng(seed: u64, stream: Stream) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(match stream {
        Stream::Frames => 1,
        Stream::Vehicle(i) => 2 + i as u64,
    });
    rng
}
