use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

/// What to simulate and where to send it. Layered like every Inland config: defaults, then
/// the file's `[simulator]` section, then the environment, then flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorConfig {
    /// The gateway. `https://` uses mutual TLS with a certificate per vehicle; `http://`
    /// is the gateway's loopback dev mode, naming the vehicle in an `x-inland-vin` header.
    pub gateway: String,
    /// The name the gateway's certificate must carry.
    pub server_name: String,
    pub vehicles: usize,
    /// Telemetry uploads per second per vehicle.
    pub batches_per_second: f64,
    /// Sampling instants per batch: at 1 batch/s, 10 means sampling at 10 Hz.
    pub samples_per_batch: usize,
    /// Camera frames per minute per vehicle; 0 sends none.
    pub frames_per_minute: f64,
    pub frame_width: u32,
    pub frame_height: u32,
    /// Stop after this long; with neither this nor `count`, run until cancelled.
    #[serde(with = "humantime_serde")]
    pub duration: Option<Duration>,
    /// Stop after this many uploads in total (telemetry and frames, over all vehicles).
    pub count: Option<u64>,
    /// Fixes the VINs, routes and frames, so two runs simulate the same fleet.
    pub seed: u64,
    /// The city the vehicles drive in (WGS-84 degrees) and its radius.
    pub center_lat: f64,
    pub center_lon: f64,
    pub radius_km: f64,
    /// Unacked uploads per vehicle stream; a vehicle waits when this many are pending.
    pub in_flight: usize,
    /// After stopping, how long to wait for acks still outstanding.
    #[serde(with = "humantime_serde")]
    pub drain: Duration,
    /// The purposes each simulated owner grants telemetry, camera frames and precise
    /// location for, through the vehicle's HMI, before its first upload: names the
    /// gateway accepts (`gateway.consent_purposes`).
    pub consent_purposes: Vec<String>,
    /// The version of the simulated consent notice recorded with each grant.
    pub consent_notice_version: String,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            gateway: "https://127.0.0.1:50051".into(),
            server_name: "localhost".into(),
            vehicles: 10,
            batches_per_second: 1.0,
            samples_per_batch: 10,
            frames_per_minute: 6.0,
            frame_width: 640,
            frame_height: 360,
            duration: None,
            count: None,
            seed: 1,
            // Tiananmen Square, Beijing.
            center_lat: 39.9042,
            center_lon: 116.4074,
            radius_km: 15.0,
            in_flight: 32,
            drain: Duration::from_secs(5),
            consent_purposes: vec!["driving_statistics".into(), "road_imagery".into()],
            consent_notice_version: "simulator-1".into(),
        }
    }
}

/// Most vehicles one simulator runs: the VIN serial has six digits.
const MAX_VEHICLES: usize = 100_000;

impl SimulatorConfig {
    /// Whether the gateway is the plain-text loopback dev mode (no certificates).
    pub fn plaintext(&self) -> bool {
        self.gateway.starts_with("http://")
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        if !(self.gateway.starts_with("https://") || self.plaintext()) {
            return bad(format!(
                "gateway {:?} must start with https:// (mutual TLS) or http:// (loopback dev mode)",
                self.gateway
            ));
        }
        if !(1..=MAX_VEHICLES).contains(&self.vehicles) {
            return bad(format!(
                "vehicles must be 1 to {MAX_VEHICLES}, not {}",
                self.vehicles
            ));
        }
        if !(self.batches_per_second > 0.0 && self.batches_per_second <= 1000.0) {
            return bad(format!(
                "batches_per_second must be above 0 and at most 1000, not {}",
                self.batches_per_second
            ));
        }
        if !(1..=1000).contains(&self.samples_per_batch) {
            return bad(format!(
                "samples_per_batch must be 1 to 1000, not {}",
                self.samples_per_batch
            ));
        }
        if !(self.frames_per_minute >= 0.0 && self.frames_per_minute <= 60_000.0) {
            return bad(format!(
                "frames_per_minute must be 0 to 60000, not {}",
                self.frames_per_minute
            ));
        }
        if !(16..=4096).contains(&self.frame_width) || !(16..=4096).contains(&self.frame_height) {
            return bad(format!(
                "frame size must be 16 to 4096 pixels a side, not {}x{}",
                self.frame_width, self.frame_height
            ));
        }
        if self.center_lat.abs() > 80.0 || self.center_lon.abs() > 180.0 {
            return bad("center_lat must be within ±80 and center_lon within ±180".into());
        }
        if !(self.radius_km > 0.5 && self.radius_km <= 200.0) {
            return bad(format!(
                "radius_km must be above 0.5 and at most 200, not {}",
                self.radius_km
            ));
        }
        if self.in_flight == 0 {
            return bad("in_flight must be at least 1".into());
        }
        if self.duration == Some(Duration::ZERO) {
            return bad("duration must be longer than 0s".into());
        }
        if self.count == Some(0) {
            return bad("count must be at least 1".into());
        }
        if self.consent_purposes.is_empty() {
            return bad(
                "consent_purposes is empty: simulated owners grant consent for at least one \
                 purpose (e.g. driving_statistics), or the gateway refuses every upload"
                    .into(),
            );
        }
        if self.consent_notice_version.trim().is_empty() {
            return bad("consent_notice_version is empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        SimulatorConfig::default().validate().unwrap();
        for (config, needle) in [
            (
                SimulatorConfig {
                    gateway: "127.0.0.1:50051".into(),
                    ..Default::default()
                },
                "https://",
            ),
            (
                SimulatorConfig {
                    vehicles: 0,
                    ..Default::default()
                },
                "vehicles",
            ),
            (
                SimulatorConfig {
                    batches_per_second: f64::NAN,
                    ..Default::default()
                },
                "batches_per_second",
            ),
            (
                SimulatorConfig {
                    count: Some(0),
                    ..Default::default()
                },
                "count",
            ),
            (
                SimulatorConfig {
                    in_flight: 0,
                    ..Default::default()
                },
                "in_flight",
            ),
            (
                SimulatorConfig {
                    consent_purposes: vec![],
                    ..Default::default()
                },
                "consent_purposes",
            ),
        ] {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn unknown_fields_are_refused_and_durations_are_human() {
        let config: SimulatorConfig =
            serde_json::from_str(r#"{"vehicles": 3, "duration": "30s"}"#).unwrap();
        assert_eq!(config.vehicles, 3);
        assert_eq!(config.duration, Some(Duration::from_secs(30)));
        assert_eq!(config.in_flight, 32);
        assert!(serde_json::from_str::<SimulatorConfig>(r#"{"vehicle": 3}"#).is_err());
    }
}
