//! A vehicle driving a route through a city: legs between random waypoints inside a disc,
//! along great circles, with a speed profile (accelerate, cruise at 30–60 km/h, brake for
//! the turn at each waypoint, sometimes stop there for a while), the battery draining with
//! distance and the odometer counting it.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Mean Earth radius (IUGG), metres. A sphere is plenty at city scale.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

const ACCELERATION: f64 = 1.5; // m/s², a calm driver
const DECELERATION: f64 = 2.5; // m/s²
const CRUISE_KMH: (f64, f64) = (30.0, 60.0);
const TURN_MPS: f64 = 15.0 / 3.6;
/// Slowest approach to a waypoint: without it braking to a stop would take forever.
const CREEP_MPS: f64 = 0.2;
const LEG_M: (f64, f64) = (300.0, 2500.0);
/// Share of waypoints that are a stop (lights, traffic, a drop-off) rather than a turn.
const STOP_PROBABILITY: f64 = 0.3;
const STOP_S: (f64, f64) = (5.0, 40.0);
const ACCURACY_M: (f64, f64) = (2.0, 8.0);
/// Longest time one integration step covers, so coarse sampling keeps a smooth profile.
const MAX_STEP_S: f64 = 0.2;

/// A WGS-84 position in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

impl LatLon {
    /// Great-circle distance (haversine), metres.
    pub fn distance_m(self, to: LatLon) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), to.lat.to_radians());
        let dp = p2 - p1;
        let dl = (to.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }

    /// Initial great-circle bearing towards `to`, degrees clockwise from north in [0, 360).
    pub fn bearing_deg(self, to: LatLon) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), to.lat.to_radians());
        let dl = (to.lon - self.lon).to_radians();
        let y = dl.sin() * p2.cos();
        let x = p1.cos() * p2.sin() - p1.sin() * p2.cos() * dl.cos();
        y.atan2(x).to_degrees().rem_euclid(360.0)
    }

    /// The point `distance_m` away along the great circle leaving at `bearing_deg`.
    pub fn destination(self, bearing_deg: f64, distance_m: f64) -> LatLon {
        let d = distance_m / EARTH_RADIUS_M;
        let b = bearing_deg.to_radians();
        let p1 = self.lat.to_radians();
        let p2 = (p1.sin() * d.cos() + p1.cos() * d.sin() * b.cos()).asin();
        let l2 = self.lon.to_radians()
            + (b.sin() * d.sin() * p1.cos()).atan2(d.cos() - p1.sin() * p2.sin());
        LatLon {
            lat: p2.to_degrees(),
            lon: (l2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0,
        }
    }
}

/// The vehicle's state at one sampling instant, in VSS units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    pub position: LatLon,
    /// Direction of travel, degrees clockwise from north; kept while stopped.
    pub heading_deg: f64,
    pub speed_kmh: f64,
    /// GNSS horizontal accuracy (1 sigma), metres.
    pub accuracy_m: f64,
    pub soc_percent: f64,
    pub odometer_km: f64,
}

impl Snapshot {
    pub fn is_moving(&self) -> bool {
        self.speed_kmh > 0.0
    }
}

/// One simulated vehicle's motion. Deterministic for a given random generator.
pub struct Motion {
    rng: ChaCha8Rng,
    center: LatLon,
    radius_m: f64,
    position: LatLon,
    heading_deg: f64,
    speed_mps: f64,
    target: LatLon,
    cruise_mps: f64,
    stop_at_target: bool,
    /// Seconds left standing at a stop.
    dwell_s: f64,
    accuracy_m: f64,
    soc_percent: f64,
    odometer_km: f64,
    /// Battery percent used per km: consumption over capacity.
    drain_percent_per_km: f64,
}

impl Motion {
    /// A vehicle parked somewhere in the disc of `radius_m` around `center`.
    pub fn new(center: LatLon, radius_m: f64, mut rng: ChaCha8Rng) -> Self {
        let position = random_in_disc(&mut rng, center, radius_m);
        let consumption_kwh_per_km = rng.random_range(0.13..0.19);
        let capacity_kwh = rng.random_range(50.0..85.0);
        let mut motion = Self {
            center,
            radius_m,
            position,
            heading_deg: rng.random_range(0.0..360.0),
            speed_mps: 0.0,
            target: position,
            cruise_mps: 0.0,
            stop_at_target: false,
            dwell_s: rng.random_range(0.0..STOP_S.0),
            accuracy_m: rng.random_range(2.5..5.0),
            soc_percent: rng.random_range(40.0..95.0),
            odometer_km: rng.random_range(1_000.0..60_000.0),
            drain_percent_per_km: consumption_kwh_per_km / capacity_kwh * 100.0,
            rng,
        };
        motion.next_leg();
        motion
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            position: self.position,
            heading_deg: self.heading_deg,
            speed_kmh: self.speed_mps * 3.6,
            accuracy_m: self.accuracy_m,
            soc_percent: self.soc_percent,
            odometer_km: self.odometer_km,
        }
    }

    /// Advances `dt_s` seconds and returns the state at the end.
    pub fn step(&mut self, dt_s: f64) -> Snapshot {
        let steps = (dt_s / MAX_STEP_S).ceil().max(1.0);
        for _ in 0..steps as u32 {
            self.advance(dt_s / steps);
        }
        let jitter = self.rng.random_range(-0.1..0.1) * dt_s.sqrt();
        self.accuracy_m = (self.accuracy_m + jitter).clamp(ACCURACY_M.0, ACCURACY_M.1);
        self.snapshot()
    }

    fn advance(&mut self, dt: f64) {
        if self.dwell_s > 0.0 {
            self.dwell_s -= dt;
            return;
        }
        let remaining = self.position.distance_m(self.target);
        let end_mps = if self.stop_at_target { 0.0 } else { TURN_MPS };
        // The fastest speed from which the vehicle can still brake to `end_mps` in time,
        // judged from where this step will end, so braking starts soon enough.
        let ahead = (remaining - self.speed_mps * dt).max(0.0);
        let brakeable = (end_mps * end_mps + 2.0 * DECELERATION * ahead).sqrt();
        let wanted = self.cruise_mps.min(brakeable).max(CREEP_MPS);
        let v0 = self.speed_mps;
        let v1 = if wanted > v0 {
            (v0 + ACCELERATION * dt).min(wanted)
        } else {
            (v0 - DECELERATION * dt).max(wanted)
        };
        let travelled = (v0 + v1) / 2.0 * dt;
        self.heading_deg = self.position.bearing_deg(self.target);
        if travelled >= remaining {
            self.position = self.target;
            self.drive(remaining);
            if self.stop_at_target {
                self.speed_mps = 0.0;
                self.dwell_s = self.rng.random_range(STOP_S.0..STOP_S.1);
            } else {
                self.speed_mps = v1;
            }
            self.next_leg();
        } else {
            self.position = self.position.destination(self.heading_deg, travelled);
            self.speed_mps = v1;
            self.drive(travelled);
        }
    }

    fn drive(&mut self, metres: f64) {
        let km = metres / 1000.0;
        self.odometer_km += km;
        self.soc_percent = (self.soc_percent - km * self.drain_percent_per_km).max(0.0);
    }

    /// Picks the next waypoint a city-block-ish leg away, inside the disc. Legs between
    /// points of the disc stay in it: a spherical cap is convex.
    fn next_leg(&mut self) {
        self.target = (0..16)
            .map(|_| {
                let bearing = self.rng.random_range(0.0..360.0);
                let length = self.rng.random_range(LEG_M.0..LEG_M.1);
                self.position.destination(bearing, length)
            })
            .find(|p| self.center.distance_m(*p) <= self.radius_m)
            .unwrap_or_else(|| random_in_disc(&mut self.rng, self.center, self.radius_m));
        self.cruise_mps = self.rng.random_range(CRUISE_KMH.0..CRUISE_KMH.1) / 3.6;
        self.stop_at_target = self.rng.random_bool(STOP_PROBABILITY);
    }
}

/// Uniform over the disc's area (hence the square root).
fn random_in_disc(rng: &mut ChaCha8Rng, center: LatLon, radius_m: f64) -> LatLon {
    let r = radius_m * rng.random::<f64>().sqrt();
    center.destination(rng.random_range(0.0..360.0), r)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    const BEIJING: LatLon = LatLon {
        lat: 39.9042,
        lon: 116.4074,
    };

    fn vehicle(seed: u64) -> Motion {
        Motion::new(BEIJING, 15_000.0, ChaCha8Rng::seed_from_u64(seed))
    }

    /// An hour at 10 Hz.
    fn drive(seed: u64) -> Vec<Snapshot> {
        let mut m = vehicle(seed);
        let mut out = vec![m.snapshot()];
        out.extend((0..36_000).map(|_| m.step(0.1)));
        out
    }

    #[test]
    fn geodesy_round_trips() {
        let p = BEIJING.destination(63.0, 1234.0);
        assert!((BEIJING.distance_m(p) - 1234.0).abs() < 0.01);
        assert!((BEIJING.bearing_deg(p) - 63.0).abs() < 0.01);
        // One degree of latitude is about 111.2 km.
        let north = LatLon {
            lat: BEIJING.lat + 1.0,
            lon: BEIJING.lon,
        };
        assert!((BEIJING.distance_m(north) - 111_195.0).abs() < 10.0);
    }

    #[test]
    fn speeds_stay_realistic_and_the_vehicle_both_cruises_and_stops() {
        for seed in 0..5 {
            let run = drive(seed);
            let max = run.iter().map(|s| s.speed_kmh).fold(0.0, f64::max);
            assert!(max <= 60.0 + 1e-9, "seed {seed}: {max} km/h");
            assert!(max >= 30.0, "seed {seed}: never cruised, max {max} km/h");
            let stopped = run.iter().filter(|s| !s.is_moving()).count();
            assert!(stopped > 100, "seed {seed}: stopped only {stopped} samples");
            for pair in run.windows(2) {
                let dv = (pair[1].speed_kmh - pair[0].speed_kmh) / 3.6 / 0.1;
                // The last crawl to a standstill may be a little abrupt, and that is all.
                let halting = pair[1].speed_kmh == 0.0 && pair[0].speed_kmh < 2.0;
                assert!(
                    halting || (-DECELERATION - 1e-6..=ACCELERATION + 1e-6).contains(&dv),
                    "seed {seed}: {dv} m/s²"
                );
            }
        }
    }

    #[test]
    fn positions_stay_within_the_city() {
        for seed in 0..5 {
            for s in drive(seed) {
                let from_center = BEIJING.distance_m(s.position);
                assert!(from_center <= 15_001.0, "seed {seed}: {from_center} m out");
                assert!((ACCURACY_M.0..=ACCURACY_M.1).contains(&s.accuracy_m));
            }
        }
    }

    #[test]
    fn heading_follows_the_movement_and_odometer_counts_it() {
        let run = drive(7);
        let mut checked = 0;
        for pair in run.windows(2) {
            let moved = pair[0].position.distance_m(pair[1].position);
            let odometer_m = (pair[1].odometer_km - pair[0].odometer_km) * 1000.0;
            assert!(
                (moved - odometer_m).abs() < 0.01,
                "{moved} m vs {odometer_m} m"
            );
            if moved > 0.5 {
                let bearing = pair[0].position.bearing_deg(pair[1].position);
                let off = (bearing - pair[1].heading_deg + 540.0).rem_euclid(360.0) - 180.0;
                assert!(
                    off.abs() < 1.0,
                    "heading {} vs movement {bearing}",
                    pair[1].heading_deg
                );
                checked += 1;
            } else if moved == 0.0 {
                assert_eq!(
                    pair[1].heading_deg, pair[0].heading_deg,
                    "kept while stopped"
                );
            }
        }
        assert!(checked > 10_000, "only {checked} moving samples");
    }

    #[test]
    fn battery_drains_with_distance_only() {
        let run = drive(3);
        let first = run.first().unwrap();
        let last = run.last().unwrap();
        assert!((40.0..95.0).contains(&first.soc_percent));
        for pair in run.windows(2) {
            assert!(pair[1].soc_percent <= pair[0].soc_percent);
            if pair[0].position == pair[1].position {
                assert_eq!(pair[1].soc_percent, pair[0].soc_percent);
            }
        }
        let km = last.odometer_km - first.odometer_km;
        let used = first.soc_percent - last.soc_percent;
        assert!(km > 10.0, "an hour in town covers more than {km} km");
        // 0.13–0.19 kWh/km out of 50–85 kWh.
        let per_km = used / km;
        assert!((0.15..0.38).contains(&per_km), "{per_km} %/km");
    }

    #[test]
    fn the_same_seed_drives_the_same_route() {
        assert_eq!(drive(11)[..500], drive(11)[..500]);
        assert_ne!(drive(11)[1].position, drive(12)[1].position);
    }
}
