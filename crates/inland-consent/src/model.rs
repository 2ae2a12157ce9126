//! Who consents (a [`SubjectId`]), who acts (a [`Principal`]), and the data categories.

use std::fmt;

use inland_core::Vin;
use inland_proto::consent::v1::{Category, Subject};

use crate::Error;

/// Every category a grant can name, in enum order.
pub const CATEGORIES: [Category; 5] = [
    Category::Telemetry,
    Category::PreciseLocation,
    Category::CameraFrames,
    Category::CabinCamera,
    Category::Voice,
];

/// What a person reads: "precise location".
pub fn category_label(category: Category) -> &'static str {
    match category {
        Category::Unspecified => "unspecified",
        Category::Telemetry => "telemetry",
        Category::PreciseLocation => "precise location",
        Category::CameraFrames => "camera frames",
        Category::CabinCamera => "cabin camera",
        Category::Voice => "voice",
    }
}

/// The name `inland consent --category` takes: "precise-location".
pub fn category_flag(category: Category) -> &'static str {
    match category {
        Category::Unspecified => "unspecified",
        Category::Telemetry => "telemetry",
        Category::PreciseLocation => "precise-location",
        Category::CameraFrames => "camera-frames",
        Category::CabinCamera => "cabin-camera",
        Category::Voice => "voice",
    }
}

/// A category from the wire: a known, specified value.
pub(crate) fn category(value: i32) -> Result<Category, Error> {
    match Category::try_from(value) {
        Ok(Category::Unspecified) | Err(_) => Err(Error::Invalid(format!(
            "unknown category {value}: use one of {}",
            CATEGORIES
                .iter()
                .map(|c| c.as_str_name())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        Ok(c) => Ok(c),
    }
}

const MAX_PROFILE_ID: usize = 64;

/// Whose consent: a vehicle (its owner), or one of its driver profiles. Its `Debug` does
/// not print the VIN.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectId {
    pub vin: Vin,
    pub driver_profile: Option<Box<str>>,
}

impl SubjectId {
    pub fn vehicle(vin: Vin) -> Self {
        Self {
            vin,
            driver_profile: None,
        }
    }

    /// Validates a subject from a request or an event.
    pub fn parse(subject: Option<&Subject>) -> Result<Self, Error> {
        let subject = subject.ok_or_else(|| {
            Error::Invalid("subject is missing: name the vehicle (subject.vin)".into())
        })?;
        let vin =
            Vin::parse(&subject.vin).map_err(|e| Error::Invalid(format!("subject.vin: {e}")))?;
        let driver_profile = match subject.driver_profile_id.as_str() {
            "" => None,
            id => Some(parse_profile(id)?),
        };
        Ok(Self {
            vin,
            driver_profile,
        })
    }

    /// The record key on `inland.consent.v1`: `VIN`, or `VIN/driver profile id`.
    pub fn key(&self) -> String {
        match &self.driver_profile {
            None => self.vin.as_str().to_owned(),
            Some(p) => format!("{}/{p}", self.vin.as_str()),
        }
    }

    /// The subject a record key names, if it is a valid key.
    pub fn from_key(key: &[u8]) -> Option<Self> {
        let key = std::str::from_utf8(key).ok()?;
        let (vin, profile) = match key.split_once('/') {
            Some((vin, profile)) => (vin, Some(parse_profile(profile).ok()?)),
            None => (key, None),
        };
        Some(Self {
            vin: Vin::parse(vin).ok()?,
            driver_profile: profile,
        })
    }

    pub fn to_proto(&self) -> Subject {
        Subject {
            vin: self.vin.as_str().to_owned(),
            driver_profile_id: self
                .driver_profile
                .as_deref()
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

fn parse_profile(id: &str) -> Result<Box<str>, Error> {
    let ok = (1..=MAX_PROFILE_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(id.into())
    } else {
        Err(Error::Invalid(format!(
            "subject.driver_profile_id must be 1 to {MAX_PROFILE_ID} characters of A-Z a-z 0-9 . _ -"
        )))
    }
}

/// Who is calling the consent API, as authenticated by the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A vehicle's own certificate: acts for its own VIN only.
    Vehicle(Vin),
    /// An operator certificate (see `inland_tls::ClientIdentity`): acts for any VIN.
    Operator(String),
}

impl Principal {
    /// What a decision records as `Actor.principal`.
    pub fn label(&self) -> String {
        match self {
            Self::Vehicle(_) => "vehicle".into(),
            Self::Operator(name) => format!("operator:{name}"),
        }
    }

    /// Refuses a vehicle acting for another vehicle.
    pub(crate) fn may_act_for(&self, subject: &SubjectId) -> Result<(), Error> {
        match self {
            Self::Vehicle(vin) if *vin != subject.vin => Err(Error::Forbidden(
                "a vehicle's certificate acts for its own VIN only; an operator certificate \
                 acts for any vehicle"
                    .into(),
            )),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Vehicle(_) => f.write_str("vehicle"),
            Self::Operator(name) => write!(f, "operator {name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIN: &str = "LSVAU2180N2183294";

    #[test]
    fn subjects_round_trip_through_their_keys() {
        let vehicle = SubjectId::parse(Some(&Subject {
            vin: VIN.into(),
            driver_profile_id: String::new(),
        }))
        .unwrap();
        assert_eq!(vehicle.key(), VIN);
        assert_eq!(SubjectId::from_key(VIN.as_bytes()), Some(vehicle.clone()));
        let driver = SubjectId::parse(Some(&Subject {
            vin: VIN.into(),
            driver_profile_id: "driver-2".into(),
        }))
        .unwrap();
        assert_eq!(driver.key(), format!("{VIN}/driver-2"));
        assert_eq!(
            SubjectId::from_key(driver.key().as_bytes()),
            Some(driver.clone())
        );
        assert_eq!(SubjectId::from_key(b"nonsense"), None);
        assert_eq!(SubjectId::from_key(format!("{VIN}/a b").as_bytes()), None);
        assert!(!format!("{driver:?}").contains(VIN), "Debug hides the VIN");
    }

    #[test]
    fn bad_subjects_and_categories_are_named() {
        let err =
            |subject: Option<Subject>| SubjectId::parse(subject.as_ref()).unwrap_err().to_string();
        assert!(err(None).contains("subject is missing"));
        assert!(
            err(Some(Subject {
                vin: "SHORT".into(),
                driver_profile_id: String::new()
            }))
            .contains("subject.vin")
        );
        assert!(
            err(Some(Subject {
                vin: VIN.into(),
                driver_profile_id: "x".repeat(65)
            }))
            .contains("driver_profile_id")
        );
        let unknown = category(42).unwrap_err().to_string();
        assert!(unknown.contains("unknown category 42"), "{unknown}");
        assert!(unknown.contains("CATEGORY_CABIN_CAMERA"), "{unknown}");
        assert!(category(0).is_err(), "unspecified is no category");
        assert_eq!(category(5).unwrap(), Category::Voice);
    }

    #[test]
    fn a_vehicle_acts_for_itself_only() {
        let me = Vin::parse(VIN).unwrap();
        let other = SubjectId::vehicle(Vin::parse("WVWZZZ1JZXW000001").unwrap());
        let vehicle = Principal::Vehicle(me.clone());
        vehicle.may_act_for(&SubjectId::vehicle(me)).unwrap();
        let refused = vehicle.may_act_for(&other).unwrap_err();
        assert_eq!(refused.code(), inland_core::ErrorCode::PermissionDenied);
        Principal::Operator("alice".into())
            .may_act_for(&other)
            .unwrap();
        assert_eq!(
            Principal::Operator("alice".into()).label(),
            "operator:alice"
        );
    }
}
