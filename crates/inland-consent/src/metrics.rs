//! Every consent metric with its log line. Nothing here carries a VIN, a driver profile or
//! a person's name: changes are counted by kind and channel only.

use std::time::Duration;

use metrics::{counter, gauge};

use crate::view::ReadOutcome;

/// Events a view read, by `outcome`: `applied`, `conflict` (written from a stale state,
/// then restated by a ledger), `undecodable` (its subject is denied everything until a
/// valid event arrives).
pub const VIEW_EVENTS: &str = "inland_consent_view_events_total";
/// Subjects a view holds.
pub const VIEW_SUBJECTS: &str = "inland_consent_view_subjects";
/// Failures reading or committing the consent topic; the view keeps answering from what
/// it has.
pub const VIEW_ERRORS: &str = "inland_consent_view_errors_total";
/// Changes recorded, by `change` (`grant`, `withdraw`, `reconcile`) and `channel`.
pub const CHANGES: &str = "inland_consent_changes_total";

pub(crate) fn caught_up(topic: &str, subjects: usize, took: Duration) {
    gauge!(VIEW_SUBJECTS).set(subjects as f64);
    tracing::info!(
        topic,
        subjects,
        took_ms = took.as_millis() as u64,
        "consent view caught up"
    );
}

pub(crate) fn event_read(applied: ReadOutcome, subjects: usize) {
    let outcome = match applied {
        ReadOutcome::Applied => "applied",
        ReadOutcome::Conflict => "conflict",
        ReadOutcome::Undecodable => "undecodable",
    };
    counter!(VIEW_EVENTS, "outcome" => outcome).increment(1);
    gauge!(VIEW_SUBJECTS).set(subjects as f64);
    if applied == ReadOutcome::Undecodable {
        tracing::warn!(
            "a record on the consent topic is not a consent event; its subject is denied \
             everything until a valid event for it arrives"
        );
    }
}

pub(crate) fn conflict() {
    tracing::info!(
        "two consent changes of one subject were made from the same state; restating it"
    );
}

pub(crate) fn end_unknown(error: &crate::Error) {
    counter!(VIEW_ERRORS, "op" => "end").increment(1);
    tracing::info!(%error, "cannot tell where the consent topic ends yet; asking again");
}

pub(crate) fn read_failed(error: &inland_stage::Error) {
    counter!(VIEW_ERRORS, "op" => "read").increment(1);
    tracing::warn!(%error, "cannot read the consent topic; answering from the current view");
}

pub(crate) fn commit_failed(error: &inland_stage::Error) {
    counter!(VIEW_ERRORS, "op" => "commit").increment(1);
    tracing::debug!(%error, "consent view commit failed");
}

pub(crate) fn changed(change: &'static str, channel: &'static str) {
    counter!(CHANGES, "change" => change, "channel" => channel).increment(1);
    tracing::info!(change, channel, "consent change recorded");
}

pub(crate) fn reconcile_failed(error: &crate::Error) {
    tracing::warn!(%error, "could not restate a subject's consent; retrying on its next conflict");
}
