//! A subject's consent as the fold of its events, and the summary checks read.

use inland_proto::consent::v1::{
    Category, ConsentEvent, ConsentState, Decision, ErasureTicket, Permission, consent_event,
};

/// Applies `event`'s change to `state`. Idempotent: applying an event twice leaves the
/// state as applying it once, so a redelivered or locally pre-applied event is harmless.
pub(crate) fn apply(state: &mut ConsentState, event: &ConsentEvent) {
    let decision = |notice| Decision {
        event_id: event.event_id.clone(),
        at: event.occurred_at,
        channel: event.channel,
        actor: event.actor.clone(),
        notice,
    };
    match &event.change {
        Some(consent_event::Change::Granted(g)) => {
            for &category in &g.categories {
                for purpose in &g.purposes {
                    let permission = Permission {
                        category,
                        purpose: purpose.clone(),
                        granted: true,
                        decision: Some(decision(g.notice.clone())),
                    };
                    match find(state, category, purpose) {
                        Some(i) => state.permissions[i] = permission,
                        None => state.permissions.push(permission),
                    }
                }
            }
            state
                .permissions
                .sort_by(|a, b| (a.category, &a.purpose).cmp(&(b.category, &b.purpose)));
        }
        Some(consent_event::Change::Withdrawn(w)) => {
            for p in &mut state.permissions {
                let category = w.categories.is_empty() || w.categories.contains(&p.category);
                let purpose = w.purposes.is_empty() || w.purposes.contains(&p.purpose);
                if category && purpose {
                    p.granted = false;
                    p.decision = Some(decision(None));
                }
            }
            if !state
                .erasures
                .iter()
                .any(|t| t.request_id == w.erasure_request_id)
            {
                state.erasures.push(ErasureTicket {
                    request_id: w.erasure_request_id.clone(),
                    requested_at: event.occurred_at,
                    event_id: event.event_id.clone(),
                });
            }
        }
        Some(consent_event::Change::Reconciled(_)) | None => {}
    }
}

fn find(state: &ConsentState, category: i32, purpose: &str) -> Option<usize> {
    state
        .permissions
        .iter()
        .position(|p| p.category == category && p.purpose == purpose)
}

/// What is granted, in the form the per-upload checks read without allocating.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Grants {
    /// Bit `c` set: category `c` is granted for at least one purpose.
    categories: u32,
    granted: Vec<(i32, Box<str>)>,
}

impl Grants {
    pub(crate) fn of(state: &ConsentState) -> Self {
        let granted: Vec<(i32, Box<str>)> = state
            .permissions
            .iter()
            .filter(|p| p.granted)
            .map(|p| (p.category, p.purpose.as_str().into()))
            .collect();
        let categories = granted
            .iter()
            .filter(|(c, _)| (0..32).contains(c))
            .fold(0, |mask, (c, _)| mask | 1 << c);
        Self {
            categories,
            granted,
        }
    }

    /// The purposes `category` is granted for.
    pub(crate) fn purposes(&self, category: Category) -> impl Iterator<Item = &str> {
        let c = category as i32;
        self.granted
            .iter()
            .filter(move |(gc, _)| *gc == c)
            .map(|(_, purpose)| &**purpose)
    }

    /// Whether `category` is granted for `purpose`, or with `None` for any purpose.
    pub(crate) fn allows(&self, category: Category, purpose: Option<&str>) -> bool {
        let c = category as i32;
        match purpose {
            None => self.categories & (1 << c) != 0,
            Some(purpose) => self
                .granted
                .iter()
                .any(|(gc, gp)| *gc == c && &**gp == purpose),
        }
    }
}

#[cfg(test)]
mod tests {
    use inland_proto::Timestamp;
    use inland_proto::consent::v1::{Granted, Notice, Withdrawn};

    use super::*;

    fn event(id: &str, seconds: i64, change: consent_event::Change) -> ConsentEvent {
        ConsentEvent {
            event_id: id.into(),
            occurred_at: Some(Timestamp { seconds, nanos: 0 }),
            change: Some(change),
            ..ConsentEvent::default()
        }
    }

    fn grant(id: &str, categories: &[Category], purposes: &[&str]) -> ConsentEvent {
        event(
            id,
            1,
            consent_event::Change::Granted(Granted {
                categories: categories.iter().map(|c| *c as i32).collect(),
                purposes: purposes.iter().map(|p| p.to_string()).collect(),
                notice: Some(Notice {
                    version: "v1".into(),
                    sha256: "0".repeat(64),
                }),
            }),
        )
    }

    fn withdraw(id: &str, categories: &[Category], purposes: &[&str]) -> ConsentEvent {
        event(
            id,
            2,
            consent_event::Change::Withdrawn(Withdrawn {
                categories: categories.iter().map(|c| *c as i32).collect(),
                purposes: purposes.iter().map(|p| p.to_string()).collect(),
                reason: String::new(),
                erasure_request_id: format!("er-{id}"),
            }),
        )
    }

    #[test]
    fn grants_and_withdrawals_fold_per_category_and_purpose() {
        let mut state = ConsentState::default();
        assert!(
            !Grants::of(&state).allows(Category::Telemetry, None),
            "default deny"
        );
        apply(
            &mut state,
            &grant(
                "g1",
                &[Category::Telemetry, Category::PreciseLocation],
                &["driving_statistics", "map_improvement"],
            ),
        );
        assert_eq!(state.permissions.len(), 4);
        let grants = Grants::of(&state);
        assert!(grants.allows(Category::Telemetry, None));
        assert!(grants.allows(Category::PreciseLocation, Some("map_improvement")));
        assert!(!grants.allows(Category::PreciseLocation, Some("road_imagery")));
        assert!(!grants.allows(Category::CameraFrames, None));

        apply(
            &mut state,
            &withdraw("w1", &[Category::PreciseLocation], &["map_improvement"]),
        );
        let grants = Grants::of(&state);
        assert!(!grants.allows(Category::PreciseLocation, Some("map_improvement")));
        assert!(grants.allows(Category::PreciseLocation, Some("driving_statistics")));
        assert_eq!(state.erasures.len(), 1);
        assert_eq!(state.erasures[0].request_id, "er-w1");

        // Everything, and idempotent.
        let all = withdraw("w2", &[], &[]);
        apply(&mut state, &all);
        let once = state.clone();
        apply(&mut state, &all);
        assert_eq!(state, once);
        assert!(state.permissions.iter().all(|p| !p.granted));
        assert_eq!(Grants::of(&state), Grants::default());
        assert_eq!(state.erasures.len(), 2);
        let decision = state.permissions[0].decision.as_ref().unwrap();
        assert_eq!(decision.event_id, "w2");
        assert!(decision.notice.is_none(), "a withdrawal shows no notice");
    }

    #[test]
    fn a_later_grant_replaces_the_withdrawal_and_order_matters() {
        let g = grant("g1", &[Category::CameraFrames], &["road_imagery"]);
        let w = withdraw("w1", &[Category::CameraFrames], &[]);
        let fold = |events: &[&ConsentEvent]| {
            let mut s = ConsentState::default();
            for e in events {
                apply(&mut s, e);
            }
            Grants::of(&s).allows(Category::CameraFrames, Some("road_imagery"))
        };
        assert!(!fold(&[&g, &w]));
        assert!(fold(&[&g, &w, &g]));
        assert!(fold(&[&w, &g]), "withdrawing nothing granted then granting");
    }
}
