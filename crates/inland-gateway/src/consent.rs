//! Default deny per data category and purpose: an upload is stored only if its vehicle
//! consented to what it carries, and the record names the purposes it was consented for,
//! so the anonymizer serves those alone. One read lock and one map lookup per category.

use inland_consent::ConsentView;
use inland_consent::proto::Category;
use inland_core::Vin;
use inland_proto::ingest::v1::in_place::UploadPayload;

use crate::{Error, metrics};

/// The consent an upload was admitted under (`RawRecord.purposes` and
/// `RawRecord.precise_location_purposes`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Admitted {
    pub purposes: Vec<String>,
    pub precise_location_purposes: Vec<String>,
}

pub struct ConsentCheck {
    view: ConsentView,
    /// First words of exterior cameras' ids, lower case.
    exterior: Vec<Box<str>>,
}

impl ConsentCheck {
    pub fn new(view: ConsentView, exterior_cameras: &[String]) -> Result<Self, Error> {
        let mut exterior = Vec::with_capacity(exterior_cameras.len());
        for name in exterior_cameras {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(Error::Config(format!(
                    "gateway.exterior_cameras: {name:?} is not a word of letters and digits \
                     (the first word of a camera_id, e.g. front)"
                )));
            }
            exterior.push(name.to_ascii_lowercase().into());
        }
        Ok(Self { view, exterior })
    }

    /// The category an upload belongs to. The match is exhaustive on purpose: a new kind
    /// of payload (audio, say) does not compile until it names the consent it needs.
    /// Telemetry with positions needs telemetry consent only: without precise location
    /// consent the anonymizer snaps positions to a grid.
    pub fn category(&self, payload: &UploadPayload) -> Category {
        match payload {
            UploadPayload::Telemetry(_) => Category::Telemetry,
            UploadPayload::Frame(frame) => {
                if self.is_exterior(&frame.camera_id) {
                    Category::CameraFrames
                } else {
                    Category::CabinCamera
                }
            }
        }
    }

    /// Refuses the upload unless the vehicle, and the driver profile when the vehicle
    /// names one, consented to its category for some purpose; otherwise the purposes it
    /// may serve, and which of them may keep precise positions (the anonymizer snaps the
    /// others to a grid). Decided here, once, so every stage after follows the consent in
    /// force when the vehicle was acked, whatever its own view of the topic has caught up.
    pub fn admit(
        &self,
        vin: &Vin,
        driver_profile: Option<&str>,
        payload: &UploadPayload,
    ) -> Result<Admitted, Error> {
        let category = self.category(payload);
        let purposes = self.view.purposes(vin, driver_profile, category);
        if purposes.is_empty() {
            metrics::dropped_without_consent(category);
            return Err(Error::NoConsent {
                category,
                driver_profile: driver_profile.is_some(),
            });
        }
        let mut precise_location_purposes =
            self.view
                .purposes(vin, driver_profile, Category::PreciseLocation);
        precise_location_purposes.retain(|p| purposes.contains(p));
        Ok(Admitted {
            purposes,
            precise_location_purposes,
        })
    }

    fn is_exterior(&self, camera_id: &str) -> bool {
        let first_word = camera_id
            .split(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap_or_default();
        self.exterior
            .iter()
            .any(|name| name.eq_ignore_ascii_case(first_word))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use inland_consent::proto::{GrantRequest, Notice, Subject, WithdrawRequest};
    use inland_consent::{ConsentLedger, ConsentLog, Principal, ViewOptions};
    use inland_core::ErrorCode;
    use inland_proto::ingest::v1::CameraFrame;
    use inland_stage::{MemoryBus, TopicSpec};

    use super::*;
    use crate::GatewayConfig;

    const VIN: &str = "LSVAU2180N2183294";

    async fn ledger() -> ConsentLedger {
        let bus = MemoryBus::default();
        bus.ensure_topics(&[TopicSpec {
            name: "consent".into(),
            partitions: 1,
            retention_ms: -1,
            compacted: true,
        }])
        .unwrap();
        let view = ConsentView::on_memory_bus(&bus, "consent", ViewOptions::default())
            .await
            .unwrap();
        ConsentLedger::new(
            ConsentLog {
                view,
                producer: Arc::new(bus),
            },
            &GatewayConfig::default().consent_purposes,
            Duration::from_secs(5),
        )
        .unwrap()
    }

    /// A ledger, the gateway's check on its view, and the vehicle both are about.
    async fn fixture() -> (ConsentLedger, ConsentCheck, Vin) {
        let ledger = ledger().await;
        let check = ConsentCheck::new(
            ledger.view().clone(),
            &GatewayConfig::default().exterior_cameras,
        )
        .unwrap();
        (ledger, check, Vin::parse(VIN).unwrap())
    }

    fn frame(camera_id: &str) -> UploadPayload {
        UploadPayload::Frame(CameraFrame {
            camera_id: camera_id.into(),
            ..CameraFrame::default()
        })
    }

    fn telemetry() -> UploadPayload {
        UploadPayload::Telemetry(Default::default())
    }

    fn grant(categories: &[Category]) -> GrantRequest {
        GrantRequest {
            subject: Some(Subject {
                vin: VIN.into(),
                driver_profile_id: String::new(),
            }),
            categories: categories.iter().map(|c| *c as i32).collect(),
            purposes: vec!["road_imagery".into()],
            notice: Some(Notice {
                version: "1".into(),
                sha256: "0".repeat(64),
            }),
            channel: 0,
            actor: "owner".into(),
        }
    }

    #[tokio::test]
    async fn each_category_is_refused_until_granted_and_again_once_withdrawn() {
        let (ledger, check, vin) = fixture().await;
        let me = Principal::Vehicle(vin.clone());
        for (payload, category) in [
            (telemetry(), Category::Telemetry),
            (frame("front"), Category::CameraFrames),
            (frame("Front-Wide"), Category::CameraFrames),
            (frame("rear_2"), Category::CameraFrames),
            (frame("cabin"), Category::CabinCamera),
            (frame("frontal-driver-monitor"), Category::CabinCamera),
            (frame(""), Category::CabinCamera),
        ] {
            assert_eq!(check.category(&payload), category);
            let err = check.admit(&vin, None, &payload).unwrap_err();
            assert_eq!(err.code(), ErrorCode::PermissionDenied);
            let message = err.to_string();
            assert!(message.contains(category.as_str_name()), "{message}");
            assert!(message.contains("inland consent grant"), "{message}");
            assert!(!message.contains(VIN), "no VIN in messages: {message}");
        }
        let cabin = check
            .admit(&vin, None, &frame("cabin"))
            .unwrap_err()
            .to_string();
        assert!(cabin.contains("gateway.exterior_cameras"), "{cabin}");

        ledger
            .grant(&me, grant(&[Category::Telemetry, Category::CameraFrames]))
            .await
            .unwrap();
        let road_imagery = || vec!["road_imagery".to_owned()];
        assert_eq!(
            check.admit(&vin, None, &telemetry()).unwrap(),
            Admitted {
                purposes: road_imagery(),
                precise_location_purposes: vec![],
            }
        );
        ledger
            .grant(&me, grant(&[Category::PreciseLocation]))
            .await
            .unwrap();
        assert_eq!(
            check.admit(&vin, None, &frame("front")).unwrap(),
            Admitted {
                purposes: road_imagery(),
                precise_location_purposes: road_imagery(),
            }
        );
        assert!(
            check.admit(&vin, None, &frame("cabin")).is_err(),
            "cabin needs its own"
        );
        ledger
            .grant(&me, grant(&[Category::CabinCamera]))
            .await
            .unwrap();
        check.admit(&vin, None, &frame("cabin")).unwrap();

        ledger
            .withdraw(
                &me,
                WithdrawRequest {
                    subject: grant(&[]).subject,
                    categories: vec![Category::Telemetry as i32],
                    actor: "owner".into(),
                    ..WithdrawRequest::default()
                },
            )
            .await
            .unwrap();
        assert!(check.admit(&vin, None, &telemetry()).is_err(), "at once");
        check.admit(&vin, None, &frame("front")).unwrap();
    }

    #[tokio::test]
    async fn a_named_driver_profile_needs_its_own_consent_besides_the_vehicles() {
        let (ledger, check, vin) = fixture().await;
        let me = Principal::Vehicle(vin.clone());
        let for_profile = |categories: &[Category]| {
            let mut request = grant(categories);
            request.subject.as_mut().unwrap().driver_profile_id = "driver-2".into();
            request
        };
        ledger
            .grant(&me, for_profile(&[Category::Telemetry]))
            .await
            .unwrap();
        let err = check
            .admit(&vin, Some("driver-2"), &telemetry())
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::PermissionDenied);
        assert!(err.to_string().contains("driver profile"), "{err}");

        ledger
            .grant(&me, grant(&[Category::Telemetry]))
            .await
            .unwrap();
        check.admit(&vin, None, &telemetry()).unwrap();
        check.admit(&vin, Some("driver-2"), &telemetry()).unwrap();
        assert!(
            check.admit(&vin, Some("driver-3"), &telemetry()).is_err(),
            "another profile has consented to nothing"
        );
    }

    #[tokio::test]
    async fn refusals_are_counted_as_drops_by_reason_and_category() {
        let (_ledger, check, vin) = fixture().await;
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshots = recorder.snapshotter();
        ::metrics::with_local_recorder(&recorder, || {
            for _ in 0..2 {
                assert!(check.admit(&vin, None, &frame("cabin")).is_err());
            }
        });
        let drops: Vec<(Vec<(String, String)>, u64)> = snapshots
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == "inland_gateway_dropped_total")
            .map(|(key, _, _, value)| {
                let labels = key
                    .key()
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                let metrics_util::debugging::DebugValue::Counter(n) = value else {
                    panic!("a counter")
                };
                (labels, n)
            })
            .collect();
        let expected = vec![
            ("reason".to_owned(), "consent".to_owned()),
            ("category".to_owned(), "cabin-camera".to_owned()),
        ];
        assert_eq!(drops, [(expected, 2)]);
    }

    #[tokio::test]
    async fn exterior_camera_names_are_words() {
        let ledger = ledger().await;
        let bad = ConsentCheck::new(ledger.view().clone(), &["front-".into()]);
        assert!(matches!(bad, Err(Error::Config(_))));
    }
}
