//! Records on `inland.consent.v1` and `inland.erasure.v1`: how events and erasure requests
//! are encoded, and decoded again (also from the archive's `consent_events` payloads).

use inland_proto::consent::v1::{
    CONSENT_EVENT_SCHEMA, ConsentEvent, ConsentState, ERASURE_REQUEST_SCHEMA, ErasureRequest,
    consent_event,
};
use inland_stage::Record;
use prost::Message;
use rand::Rng;

use crate::{Error, SubjectId};

/// The header naming a record's schema, as on every Inland topic.
pub const SCHEMA_HEADER: &str = "inland-schema";

/// Decodes a consent event from a record payload (on the topic, or the `payload` column of
/// the archive's `consent_events` dataset) and checks what every reader relies on: an id,
/// a valid subject, a change, and a state of that same subject.
pub fn decode_event(payload: &[u8]) -> Result<ConsentEvent, Error> {
    let event = ConsentEvent::decode(payload)
        .map_err(|e| Error::BadEvent(format!("not an inland.consent.v1.ConsentEvent ({e})")))?;
    if event.event_id.is_empty() {
        return Err(Error::BadEvent("the event has no event_id".into()));
    }
    let subject = SubjectId::parse(event.subject.as_ref())
        .map_err(|e| Error::BadEvent(format!("its subject is invalid: {e}")))?;
    if event.change.is_none() {
        return Err(Error::BadEvent("the event records no change".into()));
    }
    if let Some(consent_event::Change::Withdrawn(w)) = &event.change
        && w.erasure_request_id.is_empty()
    {
        return Err(Error::BadEvent(
            "the withdrawal names no erasure request".into(),
        ));
    }
    let state_subject = event
        .state
        .as_ref()
        .map(|s| SubjectId::parse(s.subject.as_ref()));
    if !matches!(state_subject, Some(Ok(s)) if s == subject) {
        return Err(Error::BadEvent(
            "the event's state is missing or belongs to another subject".into(),
        ));
    }
    Ok(event)
}

/// The subject of a decoded event (checked by [`decode_event`]).
pub(crate) fn subject_of(event: &ConsentEvent) -> SubjectId {
    SubjectId::parse(event.subject.as_ref()).expect("decode_event checked the subject")
}

/// The record for `inland.consent.v1`: keyed by subject, so compaction keeps each
/// subject's latest event, which carries its whole state.
pub(crate) fn event_record(event: &ConsentEvent) -> Record {
    let subject = subject_of(event);
    Record {
        key: subject.key().into_bytes().into(),
        payload: event.encode_to_vec().into(),
        headers: vec![(SCHEMA_HEADER.into(), CONSENT_EVENT_SCHEMA.as_bytes().into())],
        timestamp_ms: event
            .occurred_at
            .map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000),
    }
}

/// The record for `inland.erasure.v1`, keyed by request id.
pub fn erasure_record(request: &ErasureRequest) -> Record {
    Record {
        key: request.request_id.clone().into_bytes().into(),
        payload: request.encode_to_vec().into(),
        headers: vec![(
            SCHEMA_HEADER.into(),
            ERASURE_REQUEST_SCHEMA.as_bytes().into(),
        )],
        timestamp_ms: request
            .requested_at
            .map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000),
    }
}

/// Decodes an erasure request and checks it names a request and at least one pseudonym.
pub fn decode_erasure(payload: &[u8]) -> Result<ErasureRequest, Error> {
    let request = ErasureRequest::decode(payload)
        .map_err(|e| Error::BadEvent(format!("not an inland.consent.v1.ErasureRequest ({e})")))?;
    if request.request_id.is_empty() || request.requested_at.is_none() {
        return Err(Error::BadEvent(
            "the erasure request has no request_id or requested_at".into(),
        ));
    }
    if request.pseudonyms.iter().all(|p| p.value.is_empty()) {
        return Err(Error::BadEvent(
            "the erasure request names no pseudonym".into(),
        ));
    }
    Ok(request)
}

/// The empty state of `subject`: nothing granted.
pub(crate) fn empty_state(subject: &SubjectId) -> ConsentState {
    ConsentState {
        subject: Some(subject.to_proto()),
        ..ConsentState::default()
    }
}

/// A new random id: `prefix-` and 32 hex digits.
pub(crate) fn new_id(prefix: &str) -> String {
    let id: u128 = rand::rng().random();
    format!("{prefix}-{id:032x}")
}

#[cfg(test)]
mod tests {
    use inland_proto::Timestamp;
    use inland_proto::consent::v1::{Granted, Pseudonym, Withdrawn};

    use super::*;

    const VIN: &str = "LSVAU2180N2183294";

    fn valid() -> ConsentEvent {
        let subject = SubjectId::from_key(VIN.as_bytes()).unwrap();
        ConsentEvent {
            event_id: new_id("ce"),
            subject: Some(subject.to_proto()),
            occurred_at: Some(Timestamp {
                seconds: 1_760_000_000,
                nanos: 5_000_000,
            }),
            change: Some(consent_event::Change::Granted(Granted::default())),
            state: Some(empty_state(&subject)),
            ..ConsentEvent::default()
        }
    }

    #[test]
    fn events_round_trip_and_are_keyed_by_subject() {
        let event = valid();
        let record = event_record(&event);
        assert_eq!(record.key, VIN.as_bytes());
        assert_eq!(record.timestamp_ms, Some(1_760_000_000_005));
        assert_eq!(
            record.header(SCHEMA_HEADER).unwrap(),
            CONSENT_EVENT_SCHEMA.as_bytes()
        );
        assert_eq!(decode_event(&record.payload).unwrap(), event);
        assert!(event.event_id.starts_with("ce-") && event.event_id.len() == 35);
    }

    #[test]
    fn malformed_events_are_refused_with_the_reason() {
        let refuse = |event: ConsentEvent, needle: &str| {
            let err = decode_event(&event.encode_to_vec())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{err}");
        };
        assert!(decode_event(b"\xff\xff").is_err());
        refuse(
            ConsentEvent {
                event_id: String::new(),
                ..valid()
            },
            "no event_id",
        );
        refuse(
            ConsentEvent {
                subject: None,
                ..valid()
            },
            "subject",
        );
        refuse(
            ConsentEvent {
                change: None,
                ..valid()
            },
            "no change",
        );
        refuse(
            ConsentEvent {
                change: Some(consent_event::Change::Withdrawn(Withdrawn::default())),
                ..valid()
            },
            "no erasure request",
        );
        let other = SubjectId::from_key(b"WVWZZZ1JZXW000001").unwrap();
        refuse(
            ConsentEvent {
                state: Some(empty_state(&other)),
                ..valid()
            },
            "another subject",
        );
    }

    #[test]
    fn erasure_requests_round_trip_and_need_a_pseudonym() {
        let request = ErasureRequest {
            request_id: new_id("er"),
            requested_at: Some(Timestamp::default()),
            pseudonyms: vec![Pseudonym {
                key_epoch: 1,
                value: "ab".repeat(16),
            }],
            ..ErasureRequest::default()
        };
        let record = erasure_record(&request);
        assert_eq!(record.key, request.request_id.as_bytes());
        assert_eq!(decode_erasure(&record.payload).unwrap(), request);
        let empty = ErasureRequest {
            pseudonyms: vec![],
            ..request
        };
        let err = decode_erasure(&empty.encode_to_vec()).unwrap_err();
        assert!(err.to_string().contains("no pseudonym"), "{err}");
    }
}
