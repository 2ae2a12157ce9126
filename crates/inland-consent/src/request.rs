//! Checks a Grant or Withdraw request before anything is recorded. Each refusal says
//! exactly which field was wrong and what it must be.

use inland_proto::consent::v1::{
    Channel, GrantRequest, Granted, Notice, WithdrawRequest, Withdrawn, consent_event,
};

use crate::model::category;
use crate::{Error, Principal, SubjectId};

const MAX_PURPOSE: usize = 64;
const MAX_ACTOR: usize = 128;
const MAX_NOTICE_VERSION: usize = 64;
const MAX_REASON: usize = 512;

/// A checked change, ready to become an event.
pub(crate) struct Change {
    pub(crate) subject: SubjectId,
    pub(crate) channel: Channel,
    pub(crate) actor: String,
    pub(crate) change: consent_event::Change,
}

/// Refuses a purpose name that is not a short lower-case identifier (what the
/// anonymizer's purposes are named).
pub(crate) fn check_purpose_name(name: &str) -> Result<(), Error> {
    let ok = (1..=MAX_PURPOSE).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "purpose {name:?}: a purpose is named like the anonymizer's purposes, 1 to \
             {MAX_PURPOSE} of a-z 0-9 _ starting with a letter (e.g. driving_statistics)"
        )))
    }
}

pub(crate) fn grant(
    request: GrantRequest,
    who: &Principal,
    known_purposes: &[String],
) -> Result<Change, Error> {
    let subject = SubjectId::parse(request.subject.as_ref())?;
    who.may_act_for(&subject)?;
    if request.categories.is_empty() {
        return Err(Error::Invalid(
            "categories is empty: name what is granted (e.g. CATEGORY_TELEMETRY)".into(),
        ));
    }
    let categories = categories(&request.categories)?;
    if request.purposes.is_empty() {
        return Err(Error::Invalid(format!(
            "purposes is empty: name what it is granted for ({})",
            known_purposes.join(", ")
        )));
    }
    let purposes = purposes(&request.purposes, known_purposes)?;
    let notice = notice(request.notice)?;
    Ok(Change {
        channel: channel(request.channel, who)?,
        actor: actor(request.actor)?,
        subject,
        change: consent_event::Change::Granted(Granted {
            categories,
            purposes,
            notice: Some(notice),
        }),
    })
}

/// A withdrawal; `erasure_request_id` is the id of the erasure request it opens.
pub(crate) fn withdraw(
    request: WithdrawRequest,
    who: &Principal,
    known_purposes: &[String],
    erasure_request_id: String,
) -> Result<Change, Error> {
    let subject = SubjectId::parse(request.subject.as_ref())?;
    who.may_act_for(&subject)?;
    let categories = categories(&request.categories)?;
    let purposes = purposes(&request.purposes, known_purposes)?;
    if request.reason.chars().count() > MAX_REASON || request.reason.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "reason must be at most {MAX_REASON} characters on one line"
        )));
    }
    Ok(Change {
        channel: channel(request.channel, who)?,
        actor: actor(request.actor)?,
        subject,
        change: consent_event::Change::Withdrawn(Withdrawn {
            categories,
            purposes,
            reason: request.reason,
            erasure_request_id,
        }),
    })
}

/// Known, distinct categories, in enum order.
fn categories(values: &[i32]) -> Result<Vec<i32>, Error> {
    let mut out = Vec::with_capacity(values.len());
    for &v in values {
        out.push(category(v)? as i32);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Known, distinct purposes, sorted.
fn purposes(values: &[String], known: &[String]) -> Result<Vec<String>, Error> {
    let mut out = Vec::with_capacity(values.len());
    for p in values {
        if !known.contains(p) {
            return Err(Error::Invalid(format!(
                "unknown purpose {p:?}: consent can be granted for {}",
                known.join(", ")
            )));
        }
        out.push(p.clone());
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn notice(notice: Option<Notice>) -> Result<Notice, Error> {
    let notice = notice.ok_or_else(|| {
        Error::Invalid(
            "notice is missing: a grant records the version and the SHA-256 of the notice \
             the person was shown"
                .into(),
        )
    })?;
    let version = notice.version.trim();
    if version.is_empty()
        || version.len() > MAX_NOTICE_VERSION
        || version.chars().any(char::is_control)
    {
        return Err(Error::Invalid(format!(
            "notice.version must be 1 to {MAX_NOTICE_VERSION} characters (e.g. \"2026-03\")"
        )));
    }
    if notice.sha256.is_empty() {
        return Err(Error::Invalid(
            "notice.sha256 is missing: give the SHA-256 of the notice text shown".into(),
        ));
    }
    if notice.sha256.len() != 64 || !notice.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Invalid(
            "notice.sha256 must be the SHA-256 of the notice text as 64 hexadecimal digits".into(),
        ));
    }
    Ok(Notice {
        version: version.to_owned(),
        sha256: notice.sha256.to_ascii_lowercase(),
    })
}

fn actor(actor: String) -> Result<String, Error> {
    let actor = actor.trim();
    if actor.is_empty() {
        return Err(Error::Invalid(
            "actor is empty: say who decided (e.g. \"owner\", \"driver\", \"customer service, \
             ticket 4711\")"
                .into(),
        ));
    }
    if actor.chars().count() > MAX_ACTOR || actor.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "actor must be at most {MAX_ACTOR} characters on one line"
        )));
    }
    Ok(actor.to_owned())
}

/// The channel a decision is recorded under: the vehicle's HMI for a vehicle, what the
/// operator names (OPERATOR by default) for an operator.
fn channel(value: i32, who: &Principal) -> Result<Channel, Error> {
    let requested = Channel::try_from(value).map_err(|_| {
        Error::Invalid(format!(
            "unknown channel {value}: use CHANNEL_VEHICLE_HMI, CHANNEL_COMPANION_APP or \
             CHANNEL_OPERATOR"
        ))
    })?;
    match (who, requested) {
        (Principal::Vehicle(_), Channel::Unspecified | Channel::VehicleHmi) => {
            Ok(Channel::VehicleHmi)
        }
        (Principal::Vehicle(_), _) => Err(Error::Forbidden(
            "a vehicle records consent through its HMI: channel must be CHANNEL_VEHICLE_HMI \
             (or unset)"
                .into(),
        )),
        (Principal::Operator(_), Channel::VehicleHmi) => Err(Error::Forbidden(
            "only the vehicle's own certificate records CHANNEL_VEHICLE_HMI; an operator \
             records CHANNEL_OPERATOR or CHANNEL_COMPANION_APP"
                .into(),
        )),
        (Principal::Operator(_), Channel::Unspecified) => Ok(Channel::Operator),
        (Principal::Operator(_), c) => Ok(c),
    }
}

/// The metrics label of a channel.
pub(crate) fn channel_label(channel: Channel) -> &'static str {
    match channel {
        Channel::Unspecified => "unspecified",
        Channel::VehicleHmi => "vehicle_hmi",
        Channel::CompanionApp => "companion_app",
        Channel::Operator => "operator",
    }
}

#[cfg(test)]
mod tests {
    use inland_core::{ErrorCode, Vin};
    use inland_proto::consent::v1::{Category, Subject};

    use super::*;

    const VIN: &str = "LSVAU2180N2183294";

    fn known() -> Vec<String> {
        vec!["driving_statistics".into(), "road_imagery".into()]
    }

    fn request() -> GrantRequest {
        GrantRequest {
            subject: Some(Subject {
                vin: VIN.into(),
                driver_profile_id: String::new(),
            }),
            categories: vec![Category::Telemetry as i32, Category::Telemetry as i32],
            purposes: vec!["road_imagery".into(), "driving_statistics".into()],
            notice: Some(Notice {
                version: "2026-03".into(),
                sha256: "AB".repeat(32),
            }),
            channel: 0,
            actor: " owner ".into(),
        }
    }

    fn operator() -> Principal {
        Principal::Operator("alice".into())
    }

    fn refused(request: GrantRequest, who: &Principal) -> (ErrorCode, String) {
        let Err(e) = grant(request, who, &known()) else {
            panic!("accepted")
        };
        (e.code(), e.to_string())
    }

    #[test]
    fn a_valid_grant_is_normalized() {
        let change = grant(request(), &operator(), &known()).unwrap();
        assert_eq!(change.channel, Channel::Operator, "an operator's default");
        assert_eq!(change.actor, "owner");
        let consent_event::Change::Granted(g) = change.change else {
            panic!()
        };
        assert_eq!(g.categories, [Category::Telemetry as i32]);
        assert_eq!(g.purposes, ["driving_statistics", "road_imagery"]);
        assert_eq!(g.notice.unwrap().sha256, "ab".repeat(32));
        let vehicle = Principal::Vehicle(Vin::parse(VIN).unwrap());
        assert_eq!(
            grant(request(), &vehicle, &known()).unwrap().channel,
            Channel::VehicleHmi
        );
    }

    #[test]
    fn grants_missing_what_they_must_record_are_refused() {
        let op = operator();
        let cases: Vec<(GrantRequest, &str)> = vec![
            (
                GrantRequest {
                    notice: None,
                    ..request()
                },
                "notice is missing",
            ),
            (
                GrantRequest {
                    notice: Some(Notice {
                        version: "v1".into(),
                        sha256: String::new(),
                    }),
                    ..request()
                },
                "notice.sha256 is missing",
            ),
            (
                GrantRequest {
                    notice: Some(Notice {
                        version: "v1".into(),
                        sha256: "not a hash".into(),
                    }),
                    ..request()
                },
                "64 hexadecimal digits",
            ),
            (
                GrantRequest {
                    notice: Some(Notice {
                        version: " ".into(),
                        sha256: "0".repeat(64),
                    }),
                    ..request()
                },
                "notice.version",
            ),
            (
                GrantRequest {
                    categories: vec![],
                    ..request()
                },
                "categories is empty",
            ),
            (
                GrantRequest {
                    categories: vec![9],
                    ..request()
                },
                "unknown category 9",
            ),
            (
                GrantRequest {
                    categories: vec![0],
                    ..request()
                },
                "unknown category 0",
            ),
            (
                GrantRequest {
                    purposes: vec![],
                    ..request()
                },
                "purposes is empty",
            ),
            (
                GrantRequest {
                    purposes: vec!["marketing".into()],
                    ..request()
                },
                "unknown purpose \"marketing\"",
            ),
            (
                GrantRequest {
                    actor: "  ".into(),
                    ..request()
                },
                "actor is empty",
            ),
            (
                GrantRequest {
                    channel: 77,
                    ..request()
                },
                "unknown channel 77",
            ),
            (
                GrantRequest {
                    subject: None,
                    ..request()
                },
                "subject is missing",
            ),
        ];
        for (req, needle) in cases {
            let (code, message) = refused(req, &op);
            assert_eq!(code, ErrorCode::InvalidInput, "{message}");
            assert!(message.contains(needle), "{needle}: {message}");
        }
    }

    #[test]
    fn channels_follow_who_is_calling() {
        let vehicle = Principal::Vehicle(Vin::parse(VIN).unwrap());
        let (code, message) = refused(
            GrantRequest {
                channel: Channel::Operator as i32,
                ..request()
            },
            &vehicle,
        );
        assert_eq!(code, ErrorCode::PermissionDenied);
        assert!(message.contains("HMI"), "{message}");
        let (code, _) = refused(
            GrantRequest {
                channel: Channel::VehicleHmi as i32,
                ..request()
            },
            &operator(),
        );
        assert_eq!(code, ErrorCode::PermissionDenied);
        let app = grant(
            GrantRequest {
                channel: Channel::CompanionApp as i32,
                ..request()
            },
            &operator(),
            &known(),
        )
        .unwrap();
        assert_eq!(app.channel, Channel::CompanionApp);
        let other = Principal::Vehicle(Vin::parse("WVWZZZ1JZXW000001").unwrap());
        assert_eq!(refused(request(), &other).0, ErrorCode::PermissionDenied);
    }

    #[test]
    fn withdrawals_may_name_nothing_and_mean_everything() {
        let w = withdraw(
            WithdrawRequest {
                subject: request().subject,
                actor: "owner".into(),
                ..WithdrawRequest::default()
            },
            &operator(),
            &known(),
            "er-1".into(),
        )
        .unwrap();
        let consent_event::Change::Withdrawn(w) = w.change else {
            panic!()
        };
        assert!(w.categories.is_empty() && w.purposes.is_empty());
        assert_eq!(w.erasure_request_id, "er-1");
        let bad = withdraw(
            WithdrawRequest {
                subject: request().subject,
                actor: "owner".into(),
                reason: "line\nbreak".into(),
                ..WithdrawRequest::default()
            },
            &operator(),
            &known(),
            "er-2".into(),
        );
        assert!(bad.is_err());
        assert!(check_purpose_name("Driving").is_err());
        assert!(check_purpose_name("map_improvement").is_ok());
    }
}
