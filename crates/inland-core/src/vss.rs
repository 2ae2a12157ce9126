//! The COVESA Vehicle Signal Specification (VSS 4.x) signals Inland accepts, with their
//! datatypes and units as VSS defines them. The gateway validates uploads against this
//! catalog; purposes name signals from it in their allowlists.

use std::sync::OnceLock;

/// A VSS datatype. Integer types carry their range so a value outside it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    Boolean,
    String,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Float,
    Double,
}

impl Datatype {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Boolean => "boolean",
            Self::String => "string",
            Self::Int8 => "int8",
            Self::Int16 => "int16",
            Self::Int32 => "int32",
            Self::Int64 => "int64",
            Self::Uint8 => "uint8",
            Self::Uint16 => "uint16",
            Self::Uint32 => "uint32",
            Self::Uint64 => "uint64",
            Self::Float => "float",
            Self::Double => "double",
        }
    }

    /// The inclusive range of a signed integer type.
    pub fn int_range(self) -> Option<(i64, i64)> {
        match self {
            Self::Int8 => Some((i8::MIN.into(), i8::MAX.into())),
            Self::Int16 => Some((i16::MIN.into(), i16::MAX.into())),
            Self::Int32 => Some((i32::MIN.into(), i32::MAX.into())),
            Self::Int64 => Some((i64::MIN, i64::MAX)),
            _ => None,
        }
    }

    /// The maximum of an unsigned integer type.
    pub fn uint_max(self) -> Option<u64> {
        match self {
            Self::Uint8 => Some(u8::MAX.into()),
            Self::Uint16 => Some(u16::MAX.into()),
            Self::Uint32 => Some(u32::MAX.into()),
            Self::Uint64 => Some(u64::MAX),
            _ => None,
        }
    }
}

/// What a signal is, for the rules that treat some signals specially.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensitivity {
    /// Ordinary vehicle state.
    Plain,
    /// A position component: geofenced and coarsened by consent.
    Location,
    /// Identifies the vehicle or a person: never stored, whatever a purpose says.
    Identifier,
    /// Charging-grid status: "important data" under the law.
    GridStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal {
    pub path: &'static str,
    pub datatype: Datatype,
    /// The VSS unit, empty for unitless signals.
    pub unit: &'static str,
    pub sensitivity: Sensitivity,
}

pub const LATITUDE: &str = "Vehicle.CurrentLocation.Latitude";
pub const LONGITUDE: &str = "Vehicle.CurrentLocation.Longitude";
pub const HORIZONTAL_ACCURACY: &str = "Vehicle.CurrentLocation.HorizontalAccuracy";

const fn signal(path: &'static str, datatype: Datatype, unit: &'static str) -> Signal {
    Signal {
        path,
        datatype,
        unit,
        sensitivity: Sensitivity::Plain,
    }
}

const fn with(
    path: &'static str,
    datatype: Datatype,
    unit: &'static str,
    sensitivity: Sensitivity,
) -> Signal {
    Signal {
        path,
        datatype,
        unit,
        sensitivity,
    }
}

use Datatype::*;
use Sensitivity::*;

/// Sorted by path, so a listing of the catalog is in path order.
static CATALOG: &[Signal] = &[
    signal("Vehicle.ADAS.ABS.IsEngaged", Boolean, ""),
    signal("Vehicle.ADAS.ESC.IsEngaged", Boolean, ""),
    signal("Vehicle.Acceleration.Lateral", Float, "m/s^2"),
    signal("Vehicle.Acceleration.Longitudinal", Float, "m/s^2"),
    signal("Vehicle.Acceleration.Vertical", Float, "m/s^2"),
    signal("Vehicle.AngularVelocity.Yaw", Float, "degrees/s"),
    signal("Vehicle.Body.Lights.Beam.High.IsOn", Boolean, ""),
    signal("Vehicle.Body.Lights.Beam.Low.IsOn", Boolean, ""),
    signal("Vehicle.Cabin.HVAC.AmbientAirTemperature", Float, "celsius"),
    signal(
        "Vehicle.Chassis.Accelerator.PedalPosition",
        Uint8,
        "percent",
    ),
    signal("Vehicle.Chassis.Brake.PedalPosition", Uint8, "percent"),
    signal("Vehicle.Chassis.SteeringWheel.Angle", Int16, "degrees"),
    with("Vehicle.CurrentLocation.Altitude", Double, "m", Location),
    with(
        "Vehicle.CurrentLocation.Heading",
        Double,
        "degrees",
        Location,
    ),
    with(HORIZONTAL_ACCURACY, Double, "m", Location),
    with(LATITUDE, Double, "degrees", Location),
    with(LONGITUDE, Double, "degrees", Location),
    signal("Vehicle.Exterior.AirTemperature", Float, "celsius"),
    signal("Vehicle.IsMoving", Boolean, ""),
    signal("Vehicle.Powertrain.Range", Uint32, "m"),
    with(
        "Vehicle.Powertrain.TractionBattery.Charging.ChargeCurrent.DC",
        Float,
        "A",
        GridStatus,
    ),
    with(
        "Vehicle.Powertrain.TractionBattery.Charging.IsCharging",
        Boolean,
        "",
        GridStatus,
    ),
    signal(
        "Vehicle.Powertrain.TractionBattery.CurrentPower",
        Float,
        "W",
    ),
    signal(
        "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current",
        Float,
        "percent",
    ),
    signal(
        "Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed",
        Float,
        "percent",
    ),
    signal("Vehicle.Powertrain.Transmission.CurrentGear", Int8, ""),
    signal("Vehicle.Speed", Float, "km/h"),
    signal("Vehicle.TraveledDistance", Float, "km"),
    with("Vehicle.VehicleIdentification.VIN", String, "", Identifier),
];

/// Looks a signal up by its VSS path.
pub fn lookup(path: &str) -> Option<&'static Signal> {
    index_of(path.as_bytes()).map(|i| &CATALOG[i])
}

/// The index in [`catalog`] of a path given as bytes (as read off the wire, before any
/// UTF-8 check: a catalog path is UTF-8). Every upload's samples go through here, so the
/// paths are bucketed by length instead of binary-searched: paths share long prefixes,
/// which made each comparison of the search walk most of both strings.
pub fn index_of(path: &[u8]) -> Option<usize> {
    /// Per length, the catalog paths of that length with their indices.
    type Buckets = Vec<Vec<(&'static [u8], usize)>>;
    static BY_LENGTH: OnceLock<Buckets> = OnceLock::new();
    let by_length = BY_LENGTH.get_or_init(|| {
        let longest = CATALOG.iter().map(|s| s.path.len()).max().unwrap_or(0);
        let mut buckets = vec![Vec::new(); longest + 1];
        for (i, signal) in CATALOG.iter().enumerate() {
            buckets[signal.path.len()].push((signal.path.as_bytes(), i));
        }
        buckets
    });
    by_length
        .get(path.len())?
        .iter()
        .find(|(known, _)| crate::bytes::same_length_equal(known, path))
        .map(|&(_, i)| i)
}

/// Every signal Inland knows, sorted by path.
pub fn catalog() -> &'static [Signal] {
    CATALOG
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_sorted_and_unique_so_lookup_finds_every_signal() {
        for pair in CATALOG.windows(2) {
            assert!(
                pair[0].path < pair[1].path,
                "{} before {}",
                pair[0].path,
                pair[1].path
            );
        }
        for (i, s) in CATALOG.iter().enumerate() {
            assert_eq!(lookup(s.path), Some(s));
            assert_eq!(index_of(s.path.as_bytes()), Some(i));
            // Same length, one byte off, first and last: not found.
            for at in [0, s.path.len() - 1] {
                let mut near = s.path.as_bytes().to_vec();
                near[at] ^= 1;
                assert_eq!(index_of(&near), None, "{near:?}");
            }
        }
        assert_eq!(lookup("Vehicle.Speed").unwrap().unit, "km/h");
        assert!(lookup("Vehicle.Nope").is_none());
    }

    #[test]
    fn integer_ranges() {
        assert_eq!(Datatype::Int8.int_range(), Some((-128, 127)));
        assert_eq!(Datatype::Uint8.uint_max(), Some(255));
        assert_eq!(Datatype::Float.int_range(), None);
    }
}
