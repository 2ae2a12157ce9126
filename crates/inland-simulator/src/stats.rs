//! What a run did: counters shared by every vehicle task, a histogram of ack latency, and
//! the [`Summary`] made from them at the end.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use inland_proto::ingest::v1::{AckStatus, UploadAck};
use serde::Serialize;

use crate::metrics;

/// Rejection reasons and stream errors kept verbatim for the summary.
const KEPT_REASONS: usize = 5;
/// Longest ack latency the histogram tells apart, µs; slower acks count as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Telemetry,
    Frame,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Telemetry => "telemetry",
            Self::Frame => "frame",
        }
    }
}

pub struct Stats {
    started: Instant,
    telemetry: AtomicU64,
    frames: AtomicU64,
    resent: AtomicU64,
    bytes: AtomicU64,
    accepted: AtomicU64,
    duplicate: AtomicU64,
    rejected: AtomicU64,
    stream_errors: AtomicU64,
    reconnects: AtomicU64,
    /// Rare, so a lock is fine; keyed by gRPC code name.
    rejections: Mutex<Rejections>,
    stream_error_reasons: Mutex<Vec<String>>,
    latency_us: Mutex<Histogram<u64>>,
}

#[derive(Default)]
struct Rejections {
    by_code: BTreeMap<String, u64>,
    reasons: Vec<String>,
}

/// Counters for the progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub sent: u64,
    pub acked: u64,
    pub rejected: u64,
    pub stream_errors: u64,
}

impl Stats {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            telemetry: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            resent: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            duplicate: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            stream_errors: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            rejections: Mutex::default(),
            stream_error_reasons: Mutex::default(),
            latency_us: Mutex::new(
                Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds"),
            ),
        }
    }

    /// A new upload was sent for the first time.
    pub fn sent(&self, kind: Kind, bytes: usize) {
        match kind {
            Kind::Telemetry => &self.telemetry,
            Kind::Frame => &self.frames,
        }
        .fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes as u64, Relaxed);
        metrics::sent(kind, bytes);
    }

    /// Unacked uploads were sent again on a new stream.
    pub fn resent(&self, uploads: usize, bytes: usize) {
        self.resent.fetch_add(uploads as u64, Relaxed);
        self.bytes.fetch_add(bytes as u64, Relaxed);
        metrics::resent(uploads);
    }

    pub fn acked(&self, ack: &UploadAck, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        self.latency_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .saturating_record(us);
        match AckStatus::try_from(ack.status) {
            Ok(AckStatus::Accepted) => self.accepted.fetch_add(1, Relaxed),
            Ok(AckStatus::Duplicate) => self.duplicate.fetch_add(1, Relaxed),
            // An unknown status stores nothing we can count on: treat it as a rejection.
            _ => {
                let code = format!("{:?}", tonic::Code::from(ack.code));
                metrics::rejected(&code);
                let mut r = self.rejections.lock().unwrap_or_else(|e| e.into_inner());
                *r.by_code.entry(code).or_default() += 1;
                if r.reasons.len() < KEPT_REASONS {
                    r.reasons.push(ack.reason.clone());
                }
                self.rejected.fetch_add(1, Relaxed)
            }
        };
        metrics::acked(ack.status, latency);
    }

    /// A stream failed to open or broke; `vehicle` is the index, never the VIN.
    pub fn stream_error(&self, vehicle: usize, status: &tonic::Status) {
        self.stream_errors.fetch_add(1, Relaxed);
        metrics::stream_error(vehicle, status);
        let mut reasons = self
            .stream_error_reasons
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if reasons.len() < KEPT_REASONS {
            reasons.push(format!("{:?}: {}", status.code(), status.message()));
        }
    }

    pub fn reconnected(&self) {
        self.reconnects.fetch_add(1, Relaxed);
    }

    pub fn progress(&self) -> Progress {
        let rejected = self.rejected.load(Relaxed);
        Progress {
            sent: self.telemetry.load(Relaxed) + self.frames.load(Relaxed),
            acked: self.accepted.load(Relaxed) + self.duplicate.load(Relaxed) + rejected,
            rejected,
            stream_errors: self.stream_errors.load(Relaxed),
        }
    }

    pub fn summary(&self, vehicles: usize) -> Summary {
        let elapsed = self.started.elapsed().as_secs_f64();
        let progress = self.progress();
        let bytes = self.bytes.load(Relaxed);
        let latency = {
            let h = self.latency_us.lock().unwrap_or_else(|e| e.into_inner());
            let ms = |us: u64| us as f64 / 1000.0;
            if h.is_empty() {
                Latency::default()
            } else {
                Latency {
                    p50: ms(h.value_at_quantile(0.5)),
                    p90: ms(h.value_at_quantile(0.9)),
                    p99: ms(h.value_at_quantile(0.99)),
                    max: ms(h.max()),
                }
            }
        };
        let rejections = self.rejections.lock().unwrap_or_else(|e| e.into_inner());
        let per_s = |n: u64| {
            if elapsed > 0.0 {
                n as f64 / elapsed
            } else {
                0.0
            }
        };
        Summary {
            vehicles,
            elapsed_s: elapsed,
            sent: progress.sent,
            telemetry: self.telemetry.load(Relaxed),
            frames: self.frames.load(Relaxed),
            resent: self.resent.load(Relaxed),
            bytes,
            accepted: self.accepted.load(Relaxed),
            duplicate: self.duplicate.load(Relaxed),
            rejected: progress.rejected,
            rejected_by_code: rejections.by_code.clone(),
            rejection_reasons: rejections.reasons.clone(),
            unacked: progress.sent.saturating_sub(progress.acked),
            stream_errors: progress.stream_errors,
            reconnects: self.reconnects.load(Relaxed),
            stream_error_reasons: self
                .stream_error_reasons
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            acks_per_s: per_s(progress.acked),
            bytes_per_s: per_s(bytes),
            latency_ms: latency,
        }
    }
}

/// The outcome of a run; `Display` is a table for people, `Serialize` is for `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub vehicles: usize,
    pub elapsed_s: f64,
    /// Distinct uploads sent (telemetry + frames); resends are counted in `resent`.
    pub sent: u64,
    pub telemetry: u64,
    pub frames: u64,
    pub resent: u64,
    /// Encoded request bytes written, resends included.
    pub bytes: u64,
    pub accepted: u64,
    pub duplicate: u64,
    pub rejected: u64,
    /// Rejections by gRPC code name, e.g. `InvalidArgument`.
    pub rejected_by_code: BTreeMap<String, u64>,
    /// The first few rejection reasons, as the gateway worded them.
    pub rejection_reasons: Vec<String>,
    /// Sent but never acked before the run ended.
    pub unacked: u64,
    /// Streams that failed to open or broke.
    pub stream_errors: u64,
    pub reconnects: u64,
    pub stream_error_reasons: Vec<String>,
    pub acks_per_s: f64,
    pub bytes_per_s: f64,
    /// Send-to-ack latency of each upload, from its first send.
    pub latency_ms: Latency,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulated {} vehicle{} for {:.1} s",
            self.vehicles,
            if self.vehicles == 1 { "" } else { "s" },
            self.elapsed_s
        )?;
        writeln!(
            f,
            "  uploads      {} sent ({} telemetry, {} frames), {} resent, {}",
            self.sent,
            self.telemetry,
            self.frames,
            self.resent,
            human_bytes(self.bytes as f64)
        )?;
        writeln!(
            f,
            "  acks         {} accepted, {} duplicate, {} rejected, {} unacked",
            self.accepted, self.duplicate, self.rejected, self.unacked
        )?;
        if !self.rejected_by_code.is_empty() {
            let codes: Vec<String> = self
                .rejected_by_code
                .iter()
                .map(|(code, n)| format!("{code} {n}"))
                .collect();
            writeln!(f, "  rejected     {}", codes.join(", "))?;
            for reason in &self.rejection_reasons {
                writeln!(f, "               - {reason}")?;
            }
        }
        writeln!(
            f,
            "  streams      {} errors, {} reconnects",
            self.stream_errors, self.reconnects
        )?;
        for reason in &self.stream_error_reasons {
            writeln!(f, "               - {reason}")?;
        }
        writeln!(
            f,
            "  throughput   {:.1} acks/s, {}/s",
            self.acks_per_s,
            human_bytes(self.bytes_per_s)
        )?;
        let l = &self.latency_ms;
        write!(
            f,
            "  ack latency  p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            l.p50, l.p90, l.p99, l.max
        )
    }
}

fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = b;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(status: AckStatus, code: i32, reason: &str) -> UploadAck {
        UploadAck {
            message_id: "m".into(),
            status: status.into(),
            code,
            reason: reason.into(),
        }
    }

    #[test]
    fn counts_acks_by_status_and_rejections_by_code() {
        let stats = Stats::new();
        for _ in 0..3 {
            stats.sent(Kind::Telemetry, 1000);
        }
        stats.sent(Kind::Frame, 20_000);
        stats.sent(Kind::Frame, 20_000);
        stats.acked(&ack(AckStatus::Accepted, 0, ""), Duration::from_millis(2));
        stats.acked(&ack(AckStatus::Duplicate, 0, ""), Duration::from_millis(4));
        stats.acked(
            &ack(AckStatus::Rejected, 3, "bad sample"),
            Duration::from_millis(1),
        );
        stats.acked(
            &ack(AckStatus::Rejected, 8, "rate limit"),
            Duration::from_millis(1),
        );
        stats.stream_error(0, &tonic::Status::unavailable("gateway went away"));
        stats.reconnected();
        stats.resent(1, 1000);

        let s = stats.summary(2);
        assert_eq!((s.sent, s.telemetry, s.frames), (5, 3, 2));
        assert_eq!(
            (s.accepted, s.duplicate, s.rejected, s.unacked),
            (1, 1, 2, 1)
        );
        assert_eq!(s.bytes, 44_000);
        assert_eq!(
            s.rejected_by_code,
            BTreeMap::from([
                ("InvalidArgument".to_owned(), 1),
                ("ResourceExhausted".to_owned(), 1)
            ])
        );
        assert_eq!(s.rejection_reasons, ["bad sample", "rate limit"]);
        assert_eq!((s.stream_errors, s.reconnects, s.resent), (1, 1, 1));
        assert!((s.latency_ms.max - 4.0).abs() < 0.01, "{:?}", s.latency_ms);
        assert!((s.latency_ms.p50 - 1.0).abs() < 0.01, "{:?}", s.latency_ms);

        let table = s.to_string();
        assert!(
            table.contains("5 sent (3 telemetry, 2 frames), 1 resent, 43.0 KiB"),
            "{table}"
        );
        assert!(
            table.contains("InvalidArgument 1, ResourceExhausted 1"),
            "{table}"
        );
        assert!(
            table.contains("- Unavailable: gateway went away"),
            "{table}"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["rejected_by_code"]["InvalidArgument"], 1);
        assert_eq!(json["latency_ms"]["max"], s.latency_ms.max);
    }

    #[test]
    fn keeps_only_the_first_reasons() {
        let stats = Stats::new();
        for i in 0..20 {
            stats.acked(
                &ack(AckStatus::Rejected, 3, &format!("r{i}")),
                Duration::ZERO,
            );
        }
        let s = stats.summary(1);
        assert_eq!(s.rejected, 20);
        assert_eq!(s.rejection_reasons.len(), KEPT_REASONS);
        assert_eq!(s.rejection_reasons[0], "r0");
        assert_eq!(s.latency_ms.max, 0.001, "a zero latency counts as 1 µs");
    }
}
