//! Purposes: which signals a use of the data may keep, and at which precision in space and
//! time. Everything a purpose does not name is dropped; identifiers are dropped whatever it
//! names.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use inland_core::vss::{self, Datatype, Sensitivity};
use inland_proto::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::keys::timestamp_nanos;
use crate::wire::{SampleView, Value};

/// The purpose `AnonymizerConfig::default()` serves.
pub const DRIVING_STATISTICS: &str = "driving_statistics";
/// The purpose frames are anonymized for by default.
pub const ROAD_IMAGERY: &str = "road_imagery";

/// How precise the positions a purpose keeps are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocationPrecision {
    /// As recorded, but only for vehicles whose owner consented; `coarse` for the others.
    Precise,
    /// Latitude and longitude snapped to the centre of a `coarse_grid_m` grid cell;
    /// heading, altitude and accuracy dropped.
    Coarse,
    /// No location at all.
    None,
}

/// One purpose, as configured under `anonymizer.purposes.<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PurposeConfig {
    /// VSS paths the purpose keeps (location paths too, if it needs location). Identifier
    /// signals are refused.
    pub signals: Vec<String>,
    pub location: LocationPrecision,
    /// Side of the grid cells of `coarse` location, in metres.
    pub coarse_grid_m: f64,
    /// Times are floored to a multiple of this (since the Unix epoch).
    #[serde(with = "humantime_serde")]
    pub time_resolution: Duration,
}

impl Default for PurposeConfig {
    fn default() -> Self {
        Self {
            signals: Vec::new(),
            location: LocationPrecision::Coarse,
            coarse_grid_m: 1000.0,
            time_resolution: Duration::from_secs(1),
        }
    }
}

/// The default purposes: driving statistics (speed, state of charge, distance,
/// acceleration, moving or not, coarse position) and road imagery (frames, coarse
/// position).
pub fn default_purposes() -> BTreeMap<String, PurposeConfig> {
    let signals = [
        "Vehicle.Speed",
        "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current",
        "Vehicle.TraveledDistance",
        "Vehicle.Acceleration.Longitudinal",
        "Vehicle.Acceleration.Lateral",
        "Vehicle.Acceleration.Vertical",
        "Vehicle.IsMoving",
        vss::LATITUDE,
        vss::LONGITUDE,
    ];
    BTreeMap::from([
        (
            DRIVING_STATISTICS.to_owned(),
            PurposeConfig {
                signals: signals.map(str::to_owned).to_vec(),
                ..PurposeConfig::default()
            },
        ),
        (ROAD_IMAGERY.to_owned(), PurposeConfig::default()),
    ])
}

/// A validated purpose, ready to cut records.
#[derive(Debug)]
pub(crate) struct Purpose {
    pub(crate) name: String,
    /// Indexed like `vss::catalog()`.
    allowed: Vec<bool>,
    location: LocationPrecision,
    grid_m: f64,
    resolution_ns: i128,
}

/// What happened to the samples of one batch, for the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) kept: u64,
    /// Not in the purpose's allowlist (or not a known signal).
    pub(crate) not_allowed: u64,
    /// An identifier signal, or a string that looks like one.
    pub(crate) identifier: u64,
    /// A location signal the precision in force does not keep, or not a valid position.
    pub(crate) location: u64,
    /// A value whose type is not the signal's datatype.
    pub(crate) mistyped: u64,
}

impl Purpose {
    pub(crate) fn new(name: &str, config: &PurposeConfig) -> Result<Self, Error> {
        let bad = |problem: String| Err(Error::Config(format!("purpose {name:?}: {problem}")));
        let catalog = vss::catalog();
        let mut allowed = vec![false; catalog.len()];
        for path in &config.signals {
            let Some(i) = vss::index_of(path.as_bytes()) else {
                return bad(format!(
                    "{path:?} is not a signal of the VSS catalog (inland_core::vss)"
                ));
            };
            if catalog[i].sensitivity == Sensitivity::Identifier {
                return bad(format!(
                    "{path} identifies a vehicle or a person and never passes the anonymizer; \
                     remove it from signals"
                ));
            }
            allowed[i] = true;
        }
        // Written so that NaN fails.
        if !(config.coarse_grid_m >= 1.0 && config.coarse_grid_m.is_finite()) {
            return bad(format!(
                "coarse_grid_m must be at least 1 metre, not {}",
                config.coarse_grid_m
            ));
        }
        if config.time_resolution.is_zero() {
            return bad("time_resolution must be positive (e.g. \"1s\")".into());
        }
        Ok(Self {
            name: name.to_owned(),
            allowed,
            location: config.location,
            grid_m: config.coarse_grid_m,
            resolution_ns: i128::try_from(config.time_resolution.as_nanos()).unwrap_or(i128::MAX),
        })
    }

    /// Whether telemetry can yield anything for this purpose.
    pub(crate) fn keeps_signals(&self) -> bool {
        self.allowed.contains(&true)
    }

    /// The precision in force for a vehicle: `precise` needs its owner's consent to
    /// precise location for this purpose, asked only when the purpose wants it.
    pub(crate) fn precision(&self, precise_consent: impl FnOnce() -> bool) -> LocationPrecision {
        match self.location {
            LocationPrecision::Precise if !precise_consent() => LocationPrecision::Coarse,
            other => other,
        }
    }

    pub(crate) fn grid_m(&self) -> f64 {
        self.grid_m
    }

    /// `t` floored to this purpose's time resolution.
    pub(crate) fn coarse_time(&self, t: &Timestamp) -> Timestamp {
        // i128 division is a library call costing tens of ns per sample: stay in i64
        // whenever the time fits (±292 years around 1970).
        let narrow = t
            .seconds
            .checked_mul(1_000_000_000)
            .and_then(|s| s.checked_add(i64::from(t.nanos)))
            .zip(i64::try_from(self.resolution_ns).ok());
        let floored = match narrow {
            Some((ns, resolution)) => i128::from(ns - ns.rem_euclid(resolution)),
            None => {
                let ns = timestamp_nanos(t);
                ns - ns.rem_euclid(self.resolution_ns)
            }
        };
        if let Ok(ns) = i64::try_from(floored) {
            return Timestamp {
                seconds: ns.div_euclid(1_000_000_000),
                nanos: ns.rem_euclid(1_000_000_000) as i32,
            };
        }
        Timestamp {
            seconds: floored.div_euclid(1_000_000_000) as i64,
            nanos: floored.rem_euclid(1_000_000_000) as i32,
        }
    }

    /// Passes `keep` the samples this purpose keeps of a batch, in their order, with
    /// times and positions at its precision (`keep(path, time, value)`), and counts what
    /// it drops and why.
    pub(crate) fn cut<'a>(
        &self,
        batch: &Batch<'_, 'a>,
        precision: LocationPrecision,
        tally: &mut Tally,
        mut keep: impl FnMut(&'static str, Option<&Timestamp>, Value<'a>),
    ) {
        let catalog = vss::catalog();
        let (lat_signal, lon_signal) = position_signals();
        // Samples come in groups of one instant and positions in runs within one latitude
        // band: remember the last time floored and the last band's cell width.
        let mut floored: Option<(Timestamp, Timestamp)> = None;
        let mut cells = LongitudeCells::new(self.grid_m);
        for s in batch.samples {
            let Some(i) = s.signal else {
                tally.not_allowed += 1;
                continue;
            };
            let signal = &catalog[i];
            if signal.sensitivity == Sensitivity::Identifier {
                tally.identifier += 1;
                continue;
            }
            if !self.allowed[i] {
                tally.not_allowed += 1;
                continue;
            }
            let Some(value) = s.value.filter(|v| typed(signal.datatype, v)) else {
                tally.mistyped += 1;
                continue;
            };
            if let Value::String(text) = value
                && looks_like_identifier(text)
            {
                tally.identifier += 1;
                continue;
            }
            let value = if signal.sensitivity == Sensitivity::Location {
                let coarse = match precision {
                    LocationPrecision::None => None,
                    LocationPrecision::Precise if i == lat_signal => {
                        latitude(value).map(Value::Double)
                    }
                    LocationPrecision::Precise if i == lon_signal => {
                        longitude(value).map(Value::Double)
                    }
                    LocationPrecision::Precise => Some(value),
                    LocationPrecision::Coarse if i == lat_signal => {
                        latitude(value).map(|lat| Value::Double(snap_latitude(lat, self.grid_m)))
                    }
                    LocationPrecision::Coarse if i == lon_signal => {
                        longitude(value).and_then(|lon| {
                            let lat = batch.latitude_at(batch.instant(s))?;
                            Some(Value::Double(cells.snap(lat, lon)))
                        })
                    }
                    // Heading, altitude and accuracy say more than a grid cell.
                    LocationPrecision::Coarse => None,
                };
                match coarse {
                    Some(v) => v,
                    None => {
                        tally.location += 1;
                        continue;
                    }
                }
            } else {
                value
            };
            tally.kept += 1;
            let time = s.time.map(|t| match floored {
                Some((from, to)) if from == t => to,
                _ => {
                    let to = self.coarse_time(&t);
                    floored = Some((t, to));
                    to
                }
            });
            keep(signal.path, time.as_ref(), value);
        }
    }
}

/// A telemetry batch as the purposes cut it.
pub(crate) struct Batch<'s, 'a> {
    samples: &'s [SampleView<'a>],
    /// The instant of a sample without a time of its own.
    recorded_at: Option<i128>,
    /// The valid latitudes and their instants, once a longitude is to be snapped: that
    /// needs the latitude of the same instant.
    latitudes: OnceCell<Vec<(Option<i128>, f64)>>,
}

impl<'s, 'a> Batch<'s, 'a> {
    pub(crate) fn new(samples: &'s [SampleView<'a>], recorded_at: Option<&Timestamp>) -> Self {
        Self {
            samples,
            recorded_at: recorded_at.map(timestamp_nanos),
            latitudes: OnceCell::new(),
        }
    }

    fn instant(&self, s: &SampleView<'_>) -> Option<i128> {
        s.time.as_ref().map(timestamp_nanos).or(self.recorded_at)
    }

    /// The first valid latitude at `instant`.
    fn latitude_at(&self, instant: Option<i128>) -> Option<f64> {
        let (lat_signal, _) = position_signals();
        self.latitudes
            .get_or_init(|| {
                let mut latitudes = Vec::with_capacity(self.samples.len());
                latitudes.extend(
                    self.samples
                        .iter()
                        .filter(|s| s.signal == Some(lat_signal))
                        .filter_map(|s| Some((self.instant(s), latitude(s.value?)?))),
                );
                latitudes
            })
            .iter()
            .find(|(t, _)| *t == instant)
            .map(|&(_, lat)| lat)
    }
}

/// The catalog indices of latitude and longitude.
fn position_signals() -> (usize, usize) {
    static INDICES: OnceLock<(usize, usize)> = OnceLock::new();
    *INDICES.get_or_init(|| {
        let index = |path| {
            vss::catalog()
                .iter()
                .position(|s| s.path == path)
                .expect("positions are catalog signals")
        };
        (index(vss::LATITUDE), index(vss::LONGITUDE))
    })
}

fn latitude(value: Value<'_>) -> Option<f64> {
    match value {
        Value::Double(v) if (-90.0..=90.0).contains(&v) => Some(v),
        _ => None,
    }
}

fn longitude(value: Value<'_>) -> Option<f64> {
    match value {
        Value::Double(v) if (-180.0..=180.0).contains(&v) => Some(v),
        _ => None,
    }
}

/// Whether a value has the signal's VSS datatype (as the gateway checks on upload).
fn typed(datatype: Datatype, value: &Value<'_>) -> bool {
    match value {
        Value::Bool(_) => datatype == Datatype::Boolean,
        Value::Int(_) => datatype.int_range().is_some(),
        Value::Uint(_) => datatype.uint_max().is_some(),
        Value::Float(_) => datatype == Datatype::Float,
        Value::Double(_) => datatype == Datatype::Double,
        Value::String(_) => datatype == Datatype::String,
    }
}

/// Metres per degree of latitude on a sphere of the Earth's mean radius.
const METRES_PER_DEGREE: f64 = 6_371_008.8 * std::f64::consts::PI / 180.0;

/// The centre of the `grid_m` latitude band holding `lat`.
pub(crate) fn snap_latitude(lat: f64, grid_m: f64) -> f64 {
    let step = grid_m / METRES_PER_DEGREE;
    ((floor(lat / step) + 0.5) * step).clamp(-90.0, 90.0)
}

/// The centre of the cell holding `lon`: cells are `grid_m` wide at the centre of the
/// latitude band, so they are about square at every latitude.
pub(crate) fn snap_longitude(lat: f64, lon: f64, grid_m: f64) -> f64 {
    snap_to_cell(lon, cell_width(snap_latitude(lat, grid_m), grid_m))
}

/// The width in degrees of longitude of the cells of the band centred on `band`.
fn cell_width(band: f64, grid_m: f64) -> f64 {
    let cos = band.to_radians().cos().max(1e-9);
    (grid_m / (METRES_PER_DEGREE * cos)).min(360.0)
}

fn snap_to_cell(lon: f64, width: f64) -> f64 {
    ((floor((lon + 180.0) / width) + 0.5) * width - 180.0).clamp(-180.0, 180.0)
}

/// `x.floor()` for the finite cell numbers above (below 2^52 in magnitude: a cell is at
/// least a metre wide). `f64::floor` is a call into libm on x86-64 without SSE4.1, twice
/// per position.
fn floor(x: f64) -> f64 {
    debug_assert!(x.abs() < 4_503_599_627_370_496.0, "{x}");
    let truncated = x as i64 as f64;
    if truncated > x {
        truncated - 1.0
    } else {
        truncated
    }
}

/// `snap_longitude` over many positions, computing a band's cell width (a cosine) only
/// when the band changes.
struct LongitudeCells {
    grid_m: f64,
    last: Option<(f64, f64)>,
}

impl LongitudeCells {
    fn new(grid_m: f64) -> Self {
        Self { grid_m, last: None }
    }

    fn snap(&mut self, lat: f64, lon: f64) -> f64 {
        let band = snap_latitude(lat, self.grid_m);
        let width = match self.last {
            Some((last, width)) if last == band => width,
            _ => {
                let width = cell_width(band, self.grid_m);
                self.last = Some((band, width));
                width
            }
        };
        snap_to_cell(lon, width)
    }
}

/// Whether a string looks like something that identifies a vehicle or a person: a VIN (or
/// any 17+ letters and digits in a row), an IPv4 or IPv6 address, a phone number (7+ digits
/// with the usual separators). Errs towards dropping.
pub fn looks_like_identifier(text: &str) -> bool {
    let bytes = text.as_bytes();
    // Runs of ASCII letters and digits (a VIN, a serial, an IPv6 group run).
    let long_alnum = bytes
        .split(|b| !b.is_ascii_alphanumeric())
        .any(|run| run.len() >= 17);
    // A phone number has 7 digits, an IPv4 address 4, an IPv6 address colons: most text
    // (every purpose name) has none of them, and is done here.
    if !bytes.contains(&b':') && bytes.iter().filter(|b| b.is_ascii_digit()).count() < 4 {
        return long_alnum;
    }
    // Digits with phone separators: +86 138-0013-8000, (010) 6552 9988.
    let phone = bytes
        .split(|b| !(b.is_ascii_digit() || b" +-.()/".contains(b)))
        .any(|run| run.iter().filter(|b| b.is_ascii_digit()).count() >= 7);
    let ipv6 = text
        .split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
        .any(|token| {
            token.parse::<std::net::Ipv6Addr>().is_ok() || token.matches(':').count() >= 2
        });
    let ipv4 = text
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .any(ipv4_inside);
    long_alnum || phone || ipv4 || ipv6
}

/// Four dot-separated numbers of up to 3 digits in a row (e.g. in "10.0.0.1.").
fn ipv4_inside(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.windows(4).any(|w| {
        w.iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

#[cfg(test)]
mod tests {
    use inland_proto::ingest::v1::{Sample, TelemetryBatch, sample};
    use inland_proto::pipeline::v1::{RawRecord, raw_record};
    use prost::Message;

    use super::*;
    use crate::wire::{Payload, read_raw_record};

    #[test]
    fn identifiers_are_recognised() {
        for text in [
            "LSVAU2180N2183294",
            "vin=lsvau2180n2183294;",
            "192.168.1.20",
            "from 10.0.0.1:8080",
            "2001:db8::1",
            "fe80::1%eth0",
            "::1",
            "+86 138 0013 8000",
            "(010) 6552-9988",
            "13800138000",
        ] {
            assert!(looks_like_identifier(text), "{text}");
        }
        for text in [
            "", "P", "drive", "D3", "eco mode", "1.5", "v2.1.0", "12:30", "ok 42",
        ] {
            assert!(!looks_like_identifier(text), "{text}");
        }
    }

    #[test]
    fn floor_is_f64_floor_on_cell_numbers() {
        for x in [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.0,
            -1.0,
            2.999_999,
            -2.000_001,
            1e7 + 0.5,
            -4e15,
        ] {
            assert_eq!(floor(x), x.floor(), "{x}");
        }
        for n in -20_000..20_000 {
            let x = f64::from(n) * 0.37;
            assert_eq!(floor(x), x.floor(), "{x}");
        }
    }

    #[test]
    fn coarse_positions_are_cell_centres_about_grid_m_apart() {
        let grid = 1000.0;
        let (lat, lon) = (39.9042, 116.4074);
        let (clat, clon) = (snap_latitude(lat, grid), snap_longitude(lat, lon, grid));
        // Within half a cell diagonal of the true position, never on it.
        let dy = (clat - lat) * METRES_PER_DEGREE;
        let dx = (clon - lon) * METRES_PER_DEGREE * clat.to_radians().cos();
        assert!(dy.abs() <= 500.0 && dx.abs() <= 500.0, "{dx} {dy}");
        assert!((clat, clon) != (lat, lon));
        // Every point of the cell maps to the same centre.
        for (dlat, dlon) in [(0.001, 0.001), (-0.001, 0.002), (0.002, -0.003)] {
            let (plat, plon) = (clat + dlat, clon + dlon);
            assert_eq!(snap_latitude(plat, grid), clat);
            assert_eq!(snap_longitude(plat, plon, grid), clon);
        }
        // The neighbouring cell is one grid step away.
        let north = snap_latitude(clat + 0.009, grid);
        assert!(((north - clat) * METRES_PER_DEGREE - grid).abs() < 1e-6);
        let east = snap_longitude(clat, clon + 0.0118, grid);
        let width = (east - clon) * METRES_PER_DEGREE * clat.to_radians().cos();
        assert!((width - grid).abs() < 1e-3, "{width}");
        // Edges of the world stay on it.
        for (lat, lon) in [(90.0, 180.0), (-90.0, -180.0), (89.99999, 179.9999)] {
            let (a, b) = (snap_latitude(lat, grid), snap_longitude(lat, lon, grid));
            assert!((-90.0..=90.0).contains(&a) && (-180.0..=180.0).contains(&b));
        }
    }

    fn purpose(config: PurposeConfig) -> Purpose {
        Purpose::new("test", &config).unwrap()
    }

    #[test]
    fn times_are_floored_to_the_resolution() {
        let p = purpose(PurposeConfig {
            time_resolution: Duration::from_secs(60),
            ..PurposeConfig::default()
        });
        let t = Timestamp {
            seconds: 1_760_000_059,
            nanos: 999_999_999,
        };
        assert_eq!(
            p.coarse_time(&t),
            Timestamp {
                seconds: 1_760_000_040,
                nanos: 0
            }
        );
        let before_1970 = Timestamp {
            seconds: -1,
            nanos: 500,
        };
        assert_eq!(p.coarse_time(&before_1970).seconds, -60);
        // Beyond i64 nanoseconds: the wide path floors the same way.
        let far = Timestamp {
            seconds: 400 * 365 * 86_400 + 59,
            nanos: 1,
        };
        assert_eq!(
            p.coarse_time(&far),
            Timestamp {
                seconds: 400 * 365 * 86_400,
                nanos: 0
            }
        );
        let ms = purpose(PurposeConfig {
            time_resolution: Duration::from_millis(250),
            ..PurposeConfig::default()
        });
        assert_eq!(
            ms.coarse_time(&Timestamp {
                seconds: 5,
                nanos: 700_000_000
            }),
            Timestamp {
                seconds: 5,
                nanos: 500_000_000
            }
        );
    }

    #[test]
    fn purposes_that_would_leak_are_refused() {
        let refuse = |config: PurposeConfig, expected: &str| {
            let err = Purpose::new("p", &config).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
            assert_eq!(err.code(), inland_core::ErrorCode::InvalidInput);
        };
        let with = |signals: &[&str]| PurposeConfig {
            signals: signals.iter().map(|s| s.to_string()).collect(),
            ..PurposeConfig::default()
        };
        refuse(
            with(&["Vehicle.Speed", "Vehicle.VehicleIdentification.VIN"]),
            "never passes the anonymizer",
        );
        refuse(with(&["Vehicle.Sped"]), "not a signal of the VSS catalog");
        for grid in [0.0, 0.5, -1.0, f64::NAN, f64::INFINITY] {
            refuse(
                PurposeConfig {
                    coarse_grid_m: grid,
                    ..with(&["Vehicle.Speed"])
                },
                "coarse_grid_m",
            );
        }
        refuse(
            PurposeConfig {
                time_resolution: Duration::ZERO,
                ..with(&["Vehicle.Speed"])
            },
            "time_resolution",
        );
        for (name, config) in default_purposes() {
            Purpose::new(&name, &config).unwrap();
        }
    }

    fn s(path: &str, ms: Option<i64>, value: sample::Value) -> Sample {
        Sample {
            path: path.into(),
            time: ms.map(|ms| Timestamp {
                seconds: 1_760_000_000 + ms / 1000,
                nanos: (ms % 1000) as i32 * 1_000_000,
            }),
            value: Some(value),
        }
    }

    #[test]
    fn location_follows_the_precision_in_force() {
        use sample::Value::*;
        let p = purpose(PurposeConfig {
            signals: [
                "Vehicle.Speed",
                vss::LATITUDE,
                vss::LONGITUDE,
                "Vehicle.CurrentLocation.Heading",
            ]
            .map(str::to_owned)
            .to_vec(),
            location: LocationPrecision::Precise,
            ..PurposeConfig::default()
        });
        let batch = vec![
            s("Vehicle.Speed", Some(100), FloatValue(50.0)),
            s(vss::LATITUDE, Some(100), DoubleValue(39.9042)),
            s(vss::LONGITUDE, Some(100), DoubleValue(116.4074)),
            s(
                "Vehicle.CurrentLocation.Heading",
                Some(100),
                DoubleValue(90.0),
            ),
            // A longitude without a latitude at its instant cannot be snapped.
            s(vss::LONGITUDE, Some(900), DoubleValue(116.4)),
            s(vss::LATITUDE, Some(1000), DoubleValue(f64::NAN)),
            s("Vehicle.Speed", Some(1100), DoubleValue(50.0)),
            s(
                "Vehicle.Cabin.HVAC.AmbientAirTemperature",
                Some(1100),
                FloatValue(21.0),
            ),
            s(
                "Vehicle.VehicleIdentification.VIN",
                None,
                StringValue("x".into()),
            ),
        ];
        // As the stage reads them: encoded, then read in place.
        let payload = RawRecord {
            payload: Some(raw_record::Payload::Telemetry(TelemetryBatch {
                samples: batch.clone(),
            })),
            ..RawRecord::default()
        }
        .encode_to_vec();
        let Some(Payload::Telemetry(views)) = read_raw_record(&payload).unwrap().payload else {
            panic!("telemetry")
        };
        let run = |precision| {
            let mut tally = Tally::default();
            let mut out = Vec::new();
            p.cut(
                &Batch::new(&views, None),
                precision,
                &mut tally,
                |path, time, value| {
                    out.push(Sample {
                        path: path.into(),
                        time: time.copied(),
                        value: Some(value.to_proto()),
                    });
                },
            );
            (out, tally)
        };
        assert_eq!(p.precision(|| false), LocationPrecision::Coarse);
        assert_eq!(p.precision(|| true), LocationPrecision::Precise);

        let (precise, tally) = run(LocationPrecision::Precise);
        let paths: Vec<&str> = precise.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(
            paths[..4],
            batch[..4]
                .iter()
                .map(|s| s.path.as_str())
                .collect::<Vec<_>>()[..]
        );
        assert_eq!(precise[1].value, batch[1].value);
        assert_eq!(precise[0].time.unwrap().nanos, 0, "floored to 1 s");
        assert_eq!(tally.identifier, 1);
        assert_eq!(tally.not_allowed, 1);
        assert_eq!(tally.mistyped, 1, "a double speed");
        assert_eq!(tally.location, 1, "NaN latitude");

        let (coarse, tally) = run(LocationPrecision::Coarse);
        let expected = [
            ("Vehicle.Speed", FloatValue(50.0)),
            (vss::LATITUDE, DoubleValue(snap_latitude(39.9042, 1000.0))),
            (
                vss::LONGITUDE,
                DoubleValue(snap_longitude(39.9042, 116.4074, 1000.0)),
            ),
        ];
        let got: Vec<_> = coarse
            .iter()
            .map(|s| (s.path.as_str(), s.value.clone().unwrap()))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(tally.location, 3, "heading, lone longitude, NaN");

        let (none, tally) = run(LocationPrecision::None);
        assert_eq!(none.len(), 1);
        assert_eq!(none[0].path, "Vehicle.Speed");
        assert_eq!(tally.location, 5);
    }
}
