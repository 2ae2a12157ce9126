//! One simulated vehicle: produces uploads at its pace while a second loop keeps a
//! bidirectional `Upload` stream open, reads acks, and on failure reconnects with backoff
//! and resends what is unacked (see [`crate::outbox`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use inland_proto::ingest::v1::UploadAck;
use inland_proto::ingest::v1::vehicle_ingest_client::VehicleIngestClient;
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Status, Streaming};

use crate::fleet::{DEV_VIN_HEADER, Link};
use crate::frames::Frames;
use crate::motion::Motion;
use crate::outbox::Outbox;
use crate::stats::{Kind, Stats};
use crate::{Error, SimulatorConfig, consent, metrics, request};

/// What every vehicle of a run shares.
pub struct Fleet {
    pub config: SimulatorConfig,
    pub frames: Frames,
    pub stats: Arc<Stats>,
    /// Random per run (not per seed), so re-running the same fleet within the gateway's
    /// dedup window sends new message ids instead of being answered DUPLICATE.
    pub run_id: String,
    /// When the first ticks are due; each vehicle starts a fraction of a period later.
    pub start: Instant,
}

pub struct Vehicle {
    pub index: usize,
    pub link: Link,
    pub motion: Motion,
    /// Uploads this vehicle sends before stopping, if the run is bounded by a count.
    pub quota: Option<u64>,
}

/// Drives until `stop` (or the quota), then waits up to the drain time for acks still
/// outstanding. Fails only when the gateway refuses the vehicle outright.
pub async fn run(
    vehicle: Vehicle,
    fleet: Arc<Fleet>,
    stop: CancellationToken,
) -> Result<(), Error> {
    let Vehicle {
        index,
        link,
        mut motion,
        quota,
    } = vehicle;
    // As a real owner does through the HMI: nothing is collected before the grant.
    consent::grant(index, &link, &fleet.config, &fleet.stats, &stop).await?;
    let outbox = Outbox::new(fleet.config.in_flight);
    let connection = keep_streaming(index, &link, &outbox, &fleet.stats);
    tokio::pin!(connection);
    tokio::select! {
        refused = &mut connection => return refused,
        () = produce(index, &mut motion, quota, &outbox, &fleet, &stop) => {}
    }
    tokio::time::timeout(fleet.config.drain, connection)
        .await
        .unwrap_or(Ok(()))
}

/// Builds and queues uploads on the telemetry and frame clocks until stopped.
async fn produce(
    index: usize,
    motion: &mut Motion,
    quota: Option<u64>,
    outbox: &Outbox,
    fleet: &Fleet,
    stop: &CancellationToken,
) {
    let config = &fleet.config;
    let period = Duration::from_secs_f64(1.0 / config.batches_per_second);
    let samples = config.samples_per_batch;
    let dt = period / samples as u32;
    // Spread the vehicles' phases over a period so they do not all send at once.
    let share = index as f64 / config.vehicles as f64;
    let mut telemetry = clock(fleet.start + period.mul_f64(share), period);
    let mut frames = (config.frames_per_minute > 0.0).then(|| {
        let period = Duration::from_secs_f64(60.0 / config.frames_per_minute);
        clock(fleet.start + period.mul_f64(share), period)
    });
    let mut frames_sent = 0u64;
    for seq in 0.. {
        if quota.is_some_and(|q| seq >= q) {
            break;
        }
        let kind = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            _ = telemetry.tick() => Kind::Telemetry,
            () = tick(&mut frames) => Kind::Frame,
        };
        let slot = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            slot = outbox.reserve() => slot,
        };
        let message_id = format!("{}-{index}-{seq}", fleet.run_id);
        let now = SystemTime::now();
        let upload = match kind {
            Kind::Telemetry => {
                // The batch covers the last period, its newest sample taken now.
                let ticks: Vec<_> = (0..samples)
                    .map(|k| {
                        (
                            now - dt * (samples - 1 - k) as u32,
                            motion.step(dt.as_secs_f64()),
                        )
                    })
                    .collect();
                request::telemetry(message_id, now, &ticks)
            }
            Kind::Frame => {
                // Offset by the index so vehicles do not all show the same picture.
                let jpeg = fleet.frames.get(index as u64 + frames_sent);
                frames_sent += 1;
                request::frame(message_id, now, jpeg, &motion.snapshot())
            }
        };
        let bytes = outbox.push(seq, upload, slot);
        fleet.stats.sent(kind, bytes);
    }
    outbox.finish();
}

fn clock(first: Instant, period: Duration) -> Interval {
    let mut clock = interval_at(first, period);
    // A vehicle held back by a full window sends late, not in a burst afterwards.
    clock.set_missed_tick_behavior(MissedTickBehavior::Delay);
    clock
}

async fn tick(clock: &mut Option<Interval>) {
    match clock {
        Some(clock) => {
            clock.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Keeps an `Upload` stream open until every upload is acked after the last one, opening
/// a new one with backoff whenever it fails.
async fn keep_streaming(
    index: usize,
    link: &Link,
    outbox: &Outbox,
    stats: &Stats,
) -> Result<(), Error> {
    let mut client = VehicleIngestClient::new(link.channel.clone());
    let mut backoff = Backoff::default();
    for attempt in 0u64.. {
        if outbox.done() {
            break;
        }
        let (requests, resent) = outbox.open_stream();
        if attempt > 0 {
            stats.reconnected();
            if resent.uploads > 0 {
                stats.resent(resent.uploads, resent.bytes);
            }
        }
        let mut request = Request::new(ReceiverStream::new(requests));
        if link.plaintext {
            let vin = link.vin.as_str().parse().expect("a VIN is ASCII");
            request.metadata_mut().insert(DEV_VIN_HEADER, vin);
        }
        let failure = match client.upload(request).await {
            Err(status) if refuses(&status) => {
                metrics::refused(index, &status);
                return Err(Error::Refused {
                    vehicle: index,
                    status,
                });
            }
            Err(status) => status,
            Ok(response) => {
                match read_acks(response.into_inner(), outbox, stats, &mut backoff).await {
                    Ok(()) => break,
                    Err(status) => status,
                }
            }
        };
        stats.stream_error(index, &failure);
        tokio::time::sleep(backoff.next_delay()).await;
    }
    Ok(())
}

/// Retrying cannot fix these: the gateway does not accept this vehicle or this API.
fn refuses(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unauthenticated | Code::PermissionDenied | Code::Unimplemented
    )
}

/// Reads acks until the gateway ends the stream after the last upload, or it fails.
async fn read_acks(
    mut acks: Streaming<UploadAck>,
    outbox: &Outbox,
    stats: &Stats,
    backoff: &mut Backoff,
) -> Result<(), Status> {
    while let Some(ack) = acks.message().await? {
        if let Some(latency) = outbox.ack(&ack.message_id) {
            stats.acked(&ack, latency);
        }
        backoff.reset();
    }
    if outbox.done() {
        Ok(())
    } else {
        Err(Status::unavailable(
            "the gateway ended the stream with uploads unacked",
        ))
    }
}

/// Exponential backoff with jitter, so a restarted gateway is not hit by every vehicle at
/// the same instant.
pub(crate) struct Backoff {
    next: Duration,
}

const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST_RETRY }
    }
}

impl Backoff {
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next.mul_f64(rand::random_range(0.8..1.2));
        self.next = (self.next * 2).min(MAX_RETRY);
        delay
    }

    fn reset(&mut self) {
        self.next = FIRST_RETRY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= FIRST_RETRY.mul_f64(0.8) && delays[0] <= FIRST_RETRY.mul_f64(1.2));
        assert!(delays[3] > delays[0] * 4);
        assert!(delays.iter().all(|d| *d <= MAX_RETRY.mul_f64(1.2)));
        assert!(delays[9] >= MAX_RETRY.mul_f64(0.8));
        b.reset();
        assert!(b.next_delay() <= FIRST_RETRY.mul_f64(1.2));
    }

    #[test]
    fn only_refusals_stop_a_vehicle() {
        assert!(refuses(&Status::unauthenticated("no certificate")));
        assert!(refuses(&Status::permission_denied("no consent")));
        assert!(!refuses(&Status::unavailable("gateway restarting")));
        assert!(!refuses(&Status::unknown(
            "Service was not ready: transport error"
        )));
    }
}
