//! The consent view and ledger on the in-process bus: default deny, grants and
//! withdrawals per category and purpose, driver profiles, replay from the topic in order,
//! compaction, concurrent writers, and records that are not consent events.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use inland_consent::proto::{
    Category, Channel, ConsentEvent, GetRequest, GrantRequest, HistoryRequest, Notice, Subject,
    WithdrawRequest, consent_event,
};
use inland_consent::{
    ConsentLedger, ConsentLog, ConsentView, Principal, SubjectId, ViewOptions, decode_event,
};
use inland_core::{ErrorCode, Vin};
use inland_stage::{MemoryBus, MemoryBusConfig, Producer, Record, TopicSpec};
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "test.consent";
const VIN: &str = "LSVAU2180N2183294";
const OTHER: &str = "WVWZZZ1JZXW000001";

fn bus(max_records: usize) -> MemoryBus {
    let bus = MemoryBus::new(MemoryBusConfig {
        max_records,
        max_bytes: 16 << 20,
    });
    bus.ensure_topics(&[TopicSpec {
        name: TOPIC.into(),
        partitions: 2,
        retention_ms: -1,
        compacted: true,
    }])
    .unwrap();
    bus
}

fn options() -> ViewOptions {
    ViewOptions {
        keep_history: true,
        catch_up_timeout: Duration::from_secs(10),
    }
}

async fn ledger(bus: &MemoryBus) -> ConsentLedger {
    let view = ConsentView::on_memory_bus(bus, TOPIC, options())
        .await
        .unwrap();
    ConsentLedger::new(
        ConsentLog {
            view,
            producer: Arc::new(bus.clone()),
        },
        &purposes(),
        Duration::from_secs(5),
    )
    .unwrap()
}

fn purposes() -> Vec<String> {
    ["driving_statistics", "map_improvement", "road_imagery"]
        .map(str::to_owned)
        .to_vec()
}

fn vin(s: &str) -> Vin {
    Vin::parse(s).unwrap()
}

fn subject(vin: &str, profile: &str) -> Option<Subject> {
    Some(Subject {
        vin: vin.into(),
        driver_profile_id: profile.into(),
    })
}

fn grant(vin: &str, profile: &str, categories: &[Category], purposes: &[&str]) -> GrantRequest {
    GrantRequest {
        subject: subject(vin, profile),
        categories: categories.iter().map(|c| *c as i32).collect(),
        purposes: purposes.iter().map(|p| p.to_string()).collect(),
        notice: Some(Notice {
            version: "2026-03".into(),
            sha256: "5e".repeat(32),
        }),
        channel: Channel::Unspecified as i32,
        actor: "owner".into(),
    }
}

/// Grants `categories` for `purposes` to VIN (and its driver `profile`, unless empty) as
/// `who`, which must be allowed to.
async fn granted(
    ledger: &ConsentLedger,
    who: &Principal,
    profile: &str,
    categories: &[Category],
    purposes: &[&str],
) -> ConsentEvent {
    ledger
        .grant(who, grant(VIN, profile, categories, purposes))
        .await
        .unwrap()
}

fn withdraw(vin: &str, categories: &[Category], purposes: &[&str]) -> WithdrawRequest {
    WithdrawRequest {
        subject: subject(vin, ""),
        categories: categories.iter().map(|c| *c as i32).collect(),
        purposes: purposes.iter().map(|p| p.to_string()).collect(),
        channel: Channel::Unspecified as i32,
        actor: "owner".into(),
        reason: "changed my mind".into(),
    }
}

fn operator() -> Principal {
    Principal::Operator("compliance".into())
}

/// Waits until `check` holds on the view (the follower reads asynchronously).
async fn eventually(view: &ConsentView, check: impl Fn(&ConsentView) -> bool) {
    for _ in 0..500 {
        if check(view) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the view did not reach the expected state");
}

#[tokio::test]
async fn nothing_is_allowed_until_granted_then_per_category_and_purpose() {
    let bus = bus(1000);
    let ledger = ledger(&bus).await;
    let view = ledger.view().clone();
    let v = vin(VIN);
    for category in inland_consent::CATEGORIES {
        assert!(!view.allows(&v, None, category, None), "default deny");
    }
    let event = granted(
        &ledger,
        &Principal::Vehicle(v.clone()),
        "",
        &[Category::Telemetry, Category::PreciseLocation],
        &["map_improvement"],
    )
    .await;
    assert_eq!(event.channel, Channel::VehicleHmi as i32);
    assert_eq!(event.actor.as_ref().unwrap().principal, "vehicle");
    // Counted the moment the grant is durable, before the follower reads it back.
    assert!(view.allows(&v, None, Category::Telemetry, None));
    assert!(view.allows(&v, None, Category::PreciseLocation, Some("map_improvement")));
    assert!(!view.allows(
        &v,
        None,
        Category::PreciseLocation,
        Some("driving_statistics")
    ));
    assert!(!view.allows(&v, None, Category::CameraFrames, None));
    assert!(!view.allows(&vin(OTHER), None, Category::Telemetry, None));

    // A vehicle cannot act for another.
    let refused = ledger
        .grant(
            &Principal::Vehicle(vin(OTHER)),
            grant(VIN, "", &[Category::Voice], &["road_imagery"]),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::PermissionDenied);
    assert!(!view.allows(&v, None, Category::Voice, None));

    // A withdrawal counts at once and opens an erasure request.
    let event = ledger
        .withdraw(&operator(), withdraw(VIN, &[Category::Telemetry], &[]))
        .await
        .unwrap();
    let Some(consent_event::Change::Withdrawn(w)) = &event.change else {
        panic!("a withdrawal")
    };
    assert!(w.erasure_request_id.starts_with("er-"));
    assert!(!view.allows(&v, None, Category::Telemetry, None));
    assert!(view.allows(&v, None, Category::PreciseLocation, Some("map_improvement")));
    let state = &ledger
        .get(
            &operator(),
            GetRequest {
                subject: subject(VIN, ""),
                include_driver_profiles: false,
            },
        )
        .unwrap()
        .states[0];
    assert_eq!(state.erasures.len(), 1);
    assert_eq!(state.erasures[0].request_id, w.erasure_request_id);
    assert_eq!(event.channel, Channel::Operator as i32);

    // The follower reads both events back; the view is unchanged by it.
    eventually(&view, |v| {
        v.history(&SubjectId::vehicle(vin(VIN)), false).len() == 2
    })
    .await;
    assert!(!view.allows(&v, None, Category::Telemetry, None));
    assert!(view.allows(&v, None, Category::PreciseLocation, Some("map_improvement")));
}

#[tokio::test]
async fn a_new_view_replays_the_topic_in_order_and_history_shows_every_event() {
    let bus = bus(1000);
    let ledger = ledger(&bus).await;
    let op = operator();
    granted(
        &ledger,
        &op,
        "",
        &[Category::CameraFrames],
        &["road_imagery"],
    )
    .await;
    ledger.withdraw(&op, withdraw(VIN, &[], &[])).await.unwrap();
    granted(
        &ledger,
        &op,
        "",
        &[Category::Telemetry],
        &["driving_statistics"],
    )
    .await;

    let replayed = ConsentView::on_memory_bus(&bus, TOPIC, options())
        .await
        .unwrap();
    let v = vin(VIN);
    assert!(
        !replayed.allows(&v, None, Category::CameraFrames, None),
        "withdrawn, in order"
    );
    assert!(replayed.allows(&v, None, Category::Telemetry, Some("driving_statistics")));
    let history = replayed.history(&SubjectId::vehicle(v.clone()), true);
    let kinds: Vec<&str> = history
        .iter()
        .map(|e| match e.change {
            Some(consent_event::Change::Granted(_)) => "grant",
            Some(consent_event::Change::Withdrawn(_)) => "withdraw",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["grant", "withdraw", "grant"]);
    eventually(ledger.view(), |view| {
        view.history(&SubjectId::vehicle(v.clone()), true).len() == 3
    })
    .await;
    let over_api = ledger
        .history(
            &Principal::Vehicle(v.clone()),
            HistoryRequest {
                subject: subject(VIN, ""),
                include_driver_profiles: true,
            },
        )
        .unwrap();
    assert_eq!(over_api.events, history);
    let refused = ledger
        .history(
            &Principal::Vehicle(vin(OTHER)),
            HistoryRequest {
                subject: subject(VIN, ""),
                include_driver_profiles: true,
            },
        )
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::PermissionDenied);
    let no_history = ConsentView::on_memory_bus(&bus, TOPIC, ViewOptions::default())
        .await
        .unwrap();
    assert!(
        no_history
            .history(&SubjectId::vehicle(v.clone()), true)
            .is_empty()
    );
    assert!(no_history.allows(&v, None, Category::Telemetry, None));
}

#[tokio::test]
async fn the_latest_event_alone_carries_the_state_so_compaction_keeps_enough() {
    // Two records per partition at most: older events of a key are compacted away once
    // every reader committed them.
    let bus = bus(2);
    let ledger = ledger(&bus).await;
    let op = operator();
    for purpose in ["driving_statistics", "map_improvement", "road_imagery"] {
        granted(&ledger, &op, "", &[Category::Telemetry], &[purpose]).await;
    }
    ledger
        .withdraw(
            &op,
            withdraw(VIN, &[Category::Telemetry], &["map_improvement"]),
        )
        .await
        .unwrap();
    // The partition holds two records: each grant above waited until the ledger's view
    // had read and committed the older ones, so the bus could compact them away.
    granted(&ledger, &op, "", &[Category::Voice], &["road_imagery"]).await;

    let late = ConsentView::on_memory_bus(&bus, TOPIC, options())
        .await
        .unwrap();
    let v = vin(VIN);
    let seen = late.history(&SubjectId::vehicle(v.clone()), false);
    assert!(
        seen.len() < 5,
        "compaction dropped older events: {}",
        seen.len()
    );
    for (purpose, granted) in [
        ("driving_statistics", true),
        ("map_improvement", false),
        ("road_imagery", true),
    ] {
        assert_eq!(
            late.allows(&v, None, Category::Telemetry, Some(purpose)),
            granted,
            "{purpose}"
        );
    }
    assert!(late.allows(&v, None, Category::Voice, Some("road_imagery")));
    assert_eq!(late.state(&SubjectId::vehicle(v)).erasures.len(), 1);
}

#[tokio::test]
async fn a_driver_profile_needs_its_own_consent_and_the_vehicles() {
    let bus = bus(1000);
    let ledger = ledger(&bus).await;
    let view = ledger.view();
    let v = vin(VIN);
    let me = Principal::Vehicle(v.clone());
    granted(
        &ledger,
        &me,
        "driver-2",
        &[Category::CabinCamera],
        &["road_imagery"],
    )
    .await;
    assert!(
        !view.allows(&v, Some("driver-2"), Category::CabinCamera, None),
        "the vehicle (its owner) has not consented"
    );
    assert!(!view.allows(&v, None, Category::CabinCamera, None));
    granted(
        &ledger,
        &me,
        "",
        &[Category::CabinCamera],
        &["road_imagery"],
    )
    .await;
    assert!(view.allows(&v, Some("driver-2"), Category::CabinCamera, None));
    assert!(!view.allows(&v, Some("driver-3"), Category::CabinCamera, None));
    let states = ledger
        .get(
            &me,
            GetRequest {
                subject: subject(VIN, ""),
                include_driver_profiles: true,
            },
        )
        .unwrap()
        .states;
    assert_eq!(states.len(), 2);
    assert_eq!(
        states[1].subject.as_ref().unwrap().driver_profile_id,
        "driver-2"
    );
}

#[tokio::test]
async fn a_stale_event_on_the_topic_is_restated_by_a_ledger() {
    let bus = bus(1000);
    let ledger = ledger(&bus).await;
    let stop = CancellationToken::new();
    tokio::spawn(ledger.clone().restate_conflicts(stop.clone()));
    let op = operator();
    let telemetry = granted(
        &ledger,
        &op,
        "",
        &[Category::Telemetry],
        &["driving_statistics"],
    )
    .await;
    ledger.withdraw(&op, withdraw(VIN, &[], &[])).await.unwrap();
    // Another gateway that had not seen the withdrawal grants voice from the state after
    // the grant: its event carries telemetry as still granted.
    let mut stale = telemetry.clone();
    stale.event_id = "ce-stale".into();
    stale.change = Some(consent_event::Change::Granted(
        inland_consent::proto::Granted {
            categories: vec![Category::Voice as i32],
            purposes: vec!["road_imagery".into()],
            notice: Some(Notice {
                version: "2026-03".into(),
                sha256: "5e".repeat(32),
            }),
        },
    ));
    let state = stale.state.as_mut().unwrap();
    let mut voice = state.permissions[0].clone();
    voice.category = Category::Voice as i32;
    voice.purpose = "road_imagery".into();
    state.permissions.push(voice);
    append(&bus, &stale).await;

    let v = vin(VIN);
    let subject = SubjectId::vehicle(v.clone());
    eventually(ledger.view(), |view| {
        view.history(&subject, false)
            .last()
            .is_some_and(|e| matches!(e.change, Some(consent_event::Change::Reconciled(_))))
    })
    .await;
    let last = ledger.view().history(&subject, false).pop().unwrap();
    let restated = last.state.unwrap();
    let telemetry = restated
        .permissions
        .iter()
        .find(|p| p.category == Category::Telemetry as i32)
        .unwrap();
    assert!(
        !telemetry.granted,
        "the withdrawal survives in the latest event"
    );
    assert!(ledger.view().allows(&v, None, Category::Voice, None));
    assert!(!ledger.view().allows(&v, None, Category::Telemetry, None));
    stop.cancel();
}

#[tokio::test]
async fn a_record_that_is_not_a_consent_event_denies_its_subject() {
    let bus = bus(1000);
    let ledger = ledger(&bus).await;
    let v = vin(VIN);
    granted(
        &ledger,
        &operator(),
        "",
        &[Category::Telemetry],
        &["driving_statistics"],
    )
    .await;
    bus.send(
        TOPIC,
        Record {
            key: Bytes::from_static(VIN.as_bytes()),
            payload: Bytes::from_static(b"\x08\x96\x01garbage"),
            ..Record::default()
        },
    )
    .await
    .unwrap();
    eventually(ledger.view(), |view| {
        !view.allows(&v, None, Category::Telemetry, None)
    })
    .await;
    let fresh = ConsentView::on_memory_bus(&bus, TOPIC, options())
        .await
        .unwrap();
    assert!(!fresh.allows(&v, None, Category::Telemetry, None));
    // A valid event restores the subject.
    granted(
        &ledger,
        &operator(),
        "",
        &[Category::Telemetry],
        &["driving_statistics"],
    )
    .await;
    eventually(&fresh, |view| {
        view.allows(&v, None, Category::Telemetry, None)
    })
    .await;
}

#[tokio::test]
async fn a_view_that_cannot_catch_up_says_so() {
    let bus = bus(1000);
    let err = ConsentView::on_memory_bus(&bus, "no.such.topic", options())
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
    assert!(
        ConsentLedger::new(
            ConsentLog {
                view: ConsentView::on_memory_bus(&bus, TOPIC, options())
                    .await
                    .unwrap(),
                producer: Arc::new(bus.clone()),
            },
            &["Not A Purpose".to_owned()],
            Duration::from_secs(1),
        )
        .is_err()
    );
}

async fn append(bus: &MemoryBus, event: &ConsentEvent) {
    use prost::Message;
    let decoded = decode_event(&event.encode_to_vec()).unwrap();
    bus.send(
        TOPIC,
        Record {
            key: SubjectId::parse(decoded.subject.as_ref())
                .unwrap()
                .key()
                .into_bytes()
                .into(),
            payload: event.encode_to_vec().into(),
            ..Record::default()
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn purposes_are_those_the_vehicle_and_its_driver_profile_both_granted() {
    let bus = bus(1000);
    let ledger = ledger(&bus).await;
    let view = ledger.view();
    let v = vin(VIN);
    let me = Principal::Vehicle(v.clone());
    let purposes_of = |profile: Option<&str>, category| {
        let mut purposes = view.purposes(&v, profile, category);
        purposes.sort();
        purposes
    };
    assert!(
        purposes_of(None, Category::Telemetry).is_empty(),
        "default deny"
    );
    let both = ["driving_statistics", "map_improvement"];
    granted(&ledger, &me, "", &[Category::Telemetry], &both).await;
    granted(
        &ledger,
        &me,
        "driver-2",
        &[Category::Telemetry],
        &["map_improvement"],
    )
    .await;
    assert_eq!(purposes_of(None, Category::Telemetry), both);
    assert_eq!(
        purposes_of(Some("driver-2"), Category::Telemetry),
        ["map_improvement"]
    );
    assert!(purposes_of(Some("driver-3"), Category::Telemetry).is_empty());
    assert!(purposes_of(None, Category::CameraFrames).is_empty());

    ledger
        .withdraw(
            &me,
            withdraw(VIN, &[Category::Telemetry], &["map_improvement"]),
        )
        .await
        .unwrap();
    assert_eq!(
        purposes_of(None, Category::Telemetry),
        ["driving_statistics"]
    );
    assert!(purposes_of(Some("driver-2"), Category::Telemetry).is_empty());
}
