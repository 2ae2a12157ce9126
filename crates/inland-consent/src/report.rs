//! Consent states and events as text a compliance officer reads: who decided what, when,
//! through which channel, after which notice.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use inland_proto::Timestamp;
use inland_proto::consent::v1::{
    Category, Channel, ConsentEvent, ConsentState, Decision, Subject, consent_event,
};

use crate::model::{CATEGORIES, category_label};

/// "vehicle VIN" or "driver profile P of vehicle VIN".
pub(crate) fn subject(subject: Option<&Subject>) -> String {
    match subject {
        None => "unknown subject".into(),
        Some(s) if s.driver_profile_id.is_empty() => format!("vehicle {}", s.vin),
        Some(s) => format!(
            "driver profile {} of vehicle {}",
            s.driver_profile_id, s.vin
        ),
    }
}

/// A state as a table of permissions, what is not granted, and its erasure requests.
pub(crate) fn state(state: &ConsentState) -> String {
    let mut out = format!("Consent of {}\n", subject(state.subject.as_ref()));
    if state.permissions.is_empty() {
        out.push_str("  Nothing was ever granted: nothing is collected.\n");
    } else {
        let _ = writeln!(
            out,
            "  {:<17} {:<28} {:<9} {:<20} {:<14} decided by / notice",
            "category", "purpose", "status", "since", "channel"
        );
        for p in &state.permissions {
            let category = Category::try_from(p.category).unwrap_or(Category::Unspecified);
            let (at, channel, by) = decision(p.decision.as_ref());
            let notice = p
                .decision
                .as_ref()
                .and_then(|d| d.notice.as_ref())
                .map(|n| format!("; notice {} (sha256 {})", n.version, n.sha256))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<17} {:<28} {:<9} {:<20} {:<14} {by}{notice}",
                category_label(category),
                p.purpose,
                if p.granted { "GRANTED" } else { "withdrawn" },
                at,
                channel,
            );
        }
        let never: Vec<&str> = CATEGORIES
            .iter()
            .filter(|c| {
                !state
                    .permissions
                    .iter()
                    .any(|p| p.granted && p.category == **c as i32)
            })
            .map(|c| category_label(*c))
            .collect();
        if !never.is_empty() {
            let _ = writeln!(
                out,
                "  Not granted for any purpose (not collected): {}",
                never.join(", ")
            );
        }
    }
    if !state.erasures.is_empty() {
        out.push_str("  Erasure requests (opened by withdrawals):\n");
        for t in &state.erasures {
            let _ = writeln!(
                out,
                "    {}  requested {}  by withdrawal {}",
                t.request_id,
                time(t.requested_at.as_ref()),
                t.event_id
            );
        }
    }
    out
}

/// One line per event, oldest first, and where the complete record is.
pub(crate) fn history(events: &[ConsentEvent]) -> String {
    let mut out = String::new();
    if events.is_empty() {
        out.push_str("No consent events seen for this subject.\n");
    }
    for e in events {
        let _ = writeln!(out, "{}", event(e));
    }
    out.push_str(
        "(As the serving gateway read them from the compacted inland.consent.v1, which keeps \
         the latest event per subject: older events can be missing here. The archive's \
         consent_events dataset holds every event.)\n",
    );
    out
}

/// "TIME  GRANT  subject: what, via channel, by whom, notice  [event id]".
pub(crate) fn event(e: &ConsentEvent) -> String {
    let at = time(e.occurred_at.as_ref());
    let who = subject(e.subject.as_ref());
    let by = actor(e.actor.as_ref());
    let via = channel(e.channel);
    match &e.change {
        Some(consent_event::Change::Granted(g)) => {
            let notice = g
                .notice
                .as_ref()
                .map(|n| format!(", notice {} (sha256 {})", n.version, n.sha256))
                .unwrap_or_default();
            format!(
                "{at}  GRANT     {who}: {} for {}, via {via}, by {by}{notice}  [{}]",
                categories(&g.categories),
                purposes(&g.purposes),
                e.event_id
            )
        }
        Some(consent_event::Change::Withdrawn(w)) => {
            let reason = if w.reason.is_empty() {
                String::new()
            } else {
                format!(", reason {:?}", w.reason)
            };
            format!(
                "{at}  WITHDRAW  {who}: {} for {}, via {via}, by {by}{reason}; erasure request {}  [{}]",
                categories(&w.categories),
                purposes(&w.purposes),
                w.erasure_request_id,
                e.event_id
            )
        }
        Some(consent_event::Change::Reconciled(_)) | None => format!(
            "{at}  RESTATE   {who}: state restated after concurrent changes  [{}]",
            e.event_id
        ),
    }
}

fn decision(d: Option<&Decision>) -> (String, &'static str, String) {
    match d {
        None => ("?".into(), "?", "?".into()),
        Some(d) => (
            time(d.at.as_ref()),
            channel(d.channel),
            actor(d.actor.as_ref()),
        ),
    }
}

fn actor(a: Option<&inland_proto::consent::v1::Actor>) -> String {
    match a {
        None => "?".into(),
        Some(a) => format!("{} ({})", a.declared, a.principal),
    }
}

fn channel(value: i32) -> &'static str {
    match Channel::try_from(value) {
        Ok(Channel::VehicleHmi) => "vehicle HMI",
        Ok(Channel::CompanionApp) => "companion app",
        Ok(Channel::Operator) => "operator",
        Ok(Channel::Unspecified) | Err(_) => "-",
    }
}

fn categories(values: &[i32]) -> String {
    if values.is_empty() {
        return "all categories".into();
    }
    values
        .iter()
        .map(|v| category_label(Category::try_from(*v).unwrap_or(Category::Unspecified)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn purposes(values: &[String]) -> String {
    if values.is_empty() {
        "all purposes".into()
    } else {
        values.join(", ")
    }
}

/// RFC 3339 in UTC, to the second.
pub(crate) fn time(t: Option<&Timestamp>) -> String {
    let Some(t) = t else { return "?".into() };
    let Ok(secs) = u64::try_from(t.seconds) else {
        return "?".into();
    };
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .to_string()
}

#[cfg(test)]
mod tests {
    use inland_proto::consent::v1::{Actor, ErasureTicket, Granted, Notice, Permission, Withdrawn};

    use super::*;

    fn subject() -> Option<Subject> {
        Some(Subject {
            vin: "LSVAU2180N2183294".into(),
            driver_profile_id: String::new(),
        })
    }

    fn at() -> Option<Timestamp> {
        Some(Timestamp {
            seconds: 1_777_777_777,
            nanos: 0,
        })
    }

    #[test]
    fn a_state_reads_as_a_table_with_what_is_not_granted() {
        let state = ConsentState {
            subject: subject(),
            permissions: vec![Permission {
                category: Category::Telemetry as i32,
                purpose: "driving_statistics".into(),
                granted: true,
                decision: Some(Decision {
                    event_id: "ce-1".into(),
                    at: at(),
                    channel: Channel::VehicleHmi as i32,
                    actor: Some(Actor {
                        principal: "vehicle".into(),
                        declared: "owner".into(),
                    }),
                    notice: Some(Notice {
                        version: "2026-03".into(),
                        sha256: "ab".repeat(32),
                    }),
                }),
            }],
            erasures: vec![ErasureTicket {
                request_id: "er-9".into(),
                requested_at: at(),
                event_id: "ce-2".into(),
            }],
        };
        let text = super::state(&state);
        assert!(
            text.contains("Consent of vehicle LSVAU2180N2183294"),
            "{text}"
        );
        assert!(text.contains("GRANTED"), "{text}");
        assert!(text.contains("vehicle HMI"), "{text}");
        assert!(text.contains("owner (vehicle)"), "{text}");
        assert!(text.contains("notice 2026-03"), "{text}");
        assert!(text.contains("2026-05-03T03:09:37Z"), "{text}");
        assert!(
            text.contains("precise location, camera frames, cabin camera, voice"),
            "{text}"
        );
        assert!(text.contains("er-9"), "{text}");
        let empty = super::state(&ConsentState {
            subject: subject(),
            ..ConsentState::default()
        });
        assert!(empty.contains("Nothing was ever granted"), "{empty}");
    }

    #[test]
    fn events_read_as_lines() {
        let grant = ConsentEvent {
            event_id: "ce-1".into(),
            subject: subject(),
            occurred_at: at(),
            channel: Channel::Operator as i32,
            actor: Some(Actor {
                principal: "operator:alice".into(),
                declared: "customer service".into(),
            }),
            change: Some(consent_event::Change::Granted(Granted {
                categories: vec![1, 3],
                purposes: vec!["road_imagery".into()],
                notice: None,
            })),
            state: None,
        };
        let line = event(&grant);
        assert!(
            line.contains("GRANT     vehicle LSVAU2180N2183294: telemetry, camera frames for road_imagery, via operator, by customer service (operator:alice)"),
            "{line}"
        );
        let withdraw = ConsentEvent {
            change: Some(consent_event::Change::Withdrawn(Withdrawn {
                erasure_request_id: "er-1".into(),
                reason: "sold the car".into(),
                ..Withdrawn::default()
            })),
            ..grant
        };
        let line = event(&withdraw);
        assert!(line.contains("all categories for all purposes"), "{line}");
        assert!(line.contains("erasure request er-1"), "{line}");
        assert!(history(&[]).contains("No consent events"));
    }
}
