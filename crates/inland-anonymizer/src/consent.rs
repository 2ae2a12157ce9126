//! What a vehicle's owner agreed to, as far as the anonymizer needs it.

use inland_consent::proto::Category;
use inland_core::Vin;

/// Per-vehicle consent the anonymizer consults. [`NoConsent`] answers when no view is
/// configured: nobody agreed to anything, so location is never kept precise (no tracking
/// by default). A view must answer from memory: it is called for every record.
pub trait ConsentView: Send + Sync + 'static {
    /// Whether the vehicle's owner agreed to precise location for `purpose`. A purpose
    /// asking for `precise` location gets `coarse` for any other vehicle.
    fn precise_location(&self, vin: &Vin, purpose: &str) -> bool {
        let _ = (vin, purpose);
        false
    }
}

/// No consent recorded for anyone: the safe default.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoConsent;

impl ConsentView for NoConsent {}

/// The consent topic's view (`inland.consent.v1`), as `inland run` and `inland anonymizer`
/// build it: precise location for a purpose only where the owner granted exactly that.
impl ConsentView for inland_consent::ConsentView {
    fn precise_location(&self, vin: &Vin, purpose: &str) -> bool {
        self.allows(vin, None, Category::PreciseLocation, Some(purpose))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use inland_consent::proto::{GrantRequest, Notice, Subject};
    use inland_consent::{ConsentLedger, ConsentLog, Principal, ViewOptions};
    use inland_stage::{MemoryBus, TopicSpec};

    use super::*;

    #[tokio::test]
    async fn precise_location_is_per_vehicle_and_purpose() {
        let bus = MemoryBus::default();
        bus.ensure_topics(&[TopicSpec {
            name: "consent".into(),
            partitions: 1,
            retention_ms: -1,
            compacted: true,
        }])
        .unwrap();
        let view =
            inland_consent::ConsentView::on_memory_bus(&bus, "consent", ViewOptions::default())
                .await
                .unwrap();
        let ledger = ConsentLedger::new(
            ConsentLog {
                view: view.clone(),
                producer: Arc::new(bus),
            },
            &[
                "driving_statistics".to_owned(),
                "map_improvement".to_owned(),
            ],
            Duration::from_secs(5),
        )
        .unwrap();
        let vin = Vin::parse("LSVAU2180N2183294").unwrap();
        let consent: &dyn ConsentView = &view;
        assert!(!consent.precise_location(&vin, "map_improvement"));
        ledger
            .grant(
                &Principal::Vehicle(vin.clone()),
                GrantRequest {
                    subject: Some(Subject {
                        vin: vin.as_str().into(),
                        driver_profile_id: String::new(),
                    }),
                    categories: vec![Category::PreciseLocation as i32, Category::Telemetry as i32],
                    purposes: vec!["map_improvement".into()],
                    notice: Some(Notice {
                        version: "1".into(),
                        sha256: "2".repeat(64),
                    }),
                    channel: 0,
                    actor: "owner".into(),
                },
            )
            .await
            .unwrap();
        assert!(consent.precise_location(&vin, "map_improvement"));
        assert!(!consent.precise_location(&vin, "driving_statistics"));
        let other = Vin::parse("WVWZZZ1JZXW000001").unwrap();
        assert!(!consent.precise_location(&other, "map_improvement"));
        assert!(!NoConsent.precise_location(&vin, "map_improvement"));
    }
}
