//! Every anonymizer metric together with its log line. Nothing here carries a VIN, a
//! pseudonym, a key, a position or pixels: records are counted by kind and outcome only.

use std::path::Path;

use crate::purpose::Tally;

/// Records processed, by `kind` (`telemetry`, `frame`) and `outcome` (`anonymized`,
/// `dropped`: nothing left for any purpose or frames disabled, `no_consent`: admitted by
/// the gateway for none of the stage's purposes, `rejected`: dead-lettered).
pub const RECORDS: &str = "inland_anonymizer_records_total";
/// Anonymized records written, by `purpose` (one input may yield one per purpose).
pub const OUTPUTS: &str = "inland_anonymizer_outputs_total";
/// Telemetry samples, by `outcome`: `kept`, or dropped as `not_allowed` (outside the
/// purpose), `identifier`, `location` (precision or an invalid position), `mistyped`.
pub const SAMPLES: &str = "inland_anonymizer_samples_total";
/// Faces and plates destroyed in frames, by `object` (`face`, `plate`).
pub const FRAME_OBJECTS: &str = "inland_anonymizer_frame_objects_total";
/// Key epochs loaded from the key file.
pub const KEY_EPOCHS: &str = "inland_anonymizer_key_epochs";
/// Erasure requests written for withdrawals, and consent records that were no consent
/// event (`outcome`: `requested`, `rejected`).
pub const ERASURES: &str = "inland_anonymizer_erasure_requests_total";

/// The stage started.
pub(crate) fn started(key_file: &Path, epochs: &[u32], purposes: &[&str], frames: &str) {
    metrics::gauge!(KEY_EPOCHS).set(epochs.len() as f64);
    tracing::info!(
        key_file = %key_file.display(),
        ?epochs,
        ?purposes,
        frames,
        "anonymizer started"
    );
}

/// The telemetry counters, registered once: looking a labelled counter up per record
/// costs more than the rest of the anonymizer's bookkeeping.
pub(crate) struct TelemetryCounters {
    anonymized: metrics::Counter,
    dropped: metrics::Counter,
    no_consent: metrics::Counter,
    /// kept, not_allowed, identifier, location, mistyped.
    samples: [metrics::Counter; 5],
    /// One per telemetry purpose, in the stage's order.
    outputs: Vec<metrics::Counter>,
}

impl TelemetryCounters {
    pub(crate) fn new(purposes: &[&str]) -> Self {
        let records =
            |outcome| metrics::counter!(RECORDS, "kind" => "telemetry", "outcome" => outcome);
        let samples = |outcome| metrics::counter!(SAMPLES, "outcome" => outcome);
        Self {
            anonymized: records("anonymized"),
            dropped: records("dropped"),
            no_consent: records("no_consent"),
            samples: ["kept", "not_allowed", "identifier", "location", "mistyped"].map(samples),
            outputs: purposes
                .iter()
                .map(|p| metrics::counter!(OUTPUTS, "purpose" => p.to_string()))
                .collect(),
        }
    }

    /// Purpose `i` got a record of a telemetry batch.
    pub(crate) fn output(&self, i: usize) {
        self.outputs[i].increment(1);
    }

    /// A telemetry batch was consented for none of the stage's purposes.
    pub(crate) fn no_consent(&self) {
        self.no_consent.increment(1);
        tracing::trace!("telemetry dropped: consented for none of the purposes");
    }

    /// A telemetry batch was cut for every purpose, and `written` records came of it.
    pub(crate) fn batch(&self, tally: &Tally, written: usize) {
        let outcome = if written == 0 {
            self.dropped.increment(1);
            "dropped"
        } else {
            self.anonymized.increment(1);
            "anonymized"
        };
        let counts = [
            tally.kept,
            tally.not_allowed,
            tally.identifier,
            tally.location,
            tally.mistyped,
        ];
        for (counter, n) in self.samples.iter().zip(counts) {
            if n > 0 {
                counter.increment(n);
            }
        }
        tracing::trace!(outcome, written, kept = tally.kept, "telemetry anonymized");
    }
}

/// A frame was anonymized for `purpose`.
pub(crate) fn frame_output(purpose: &str) {
    metrics::counter!(OUTPUTS, "purpose" => purpose.to_owned()).increment(1);
}

/// A frame was anonymized.
pub(crate) fn frame_anonymized(faces: usize, plates: usize) {
    metrics::counter!(RECORDS, "kind" => "frame", "outcome" => "anonymized").increment(1);
    metrics::counter!(FRAME_OBJECTS, "object" => "face").increment(faces as u64);
    metrics::counter!(FRAME_OBJECTS, "object" => "plate").increment(plates as u64);
    tracing::trace!(faces, plates, "frame anonymized");
}

/// A frame was dropped because the stage runs with `frames = "drop"`.
pub(crate) fn frame_dropped() {
    metrics::counter!(RECORDS, "kind" => "frame", "outcome" => "dropped").increment(1);
    tracing::trace!("frame dropped: frames are disabled (anonymizer.frames = \"drop\")");
}

/// A frame was dropped: consented for another purpose than the frames' purpose.
pub(crate) fn frame_without_consent() {
    metrics::counter!(RECORDS, "kind" => "frame", "outcome" => "no_consent").increment(1);
    tracing::trace!("frame dropped: not consented for the frames' purpose");
}

/// A record was rejected (dead-lettered); `reason` is a short stable label.
pub(crate) fn rejected(kind: &'static str, reason: &'static str) {
    metrics::counter!(RECORDS, "kind" => kind, "outcome" => "rejected").increment(1);
    tracing::debug!(kind, reason, "record rejected");
}

/// An erasure request was written for a withdrawal.
pub(crate) fn erasure_requested(pseudonyms: usize) {
    metrics::counter!(ERASURES, "outcome" => "requested").increment(1);
    tracing::info!(
        pseudonyms,
        "erasure request written for a consent withdrawal"
    );
}

/// A record on the consent topic was not a consent event (dead-lettered).
pub(crate) fn erasure_rejected() {
    metrics::counter!(ERASURES, "outcome" => "rejected").increment(1);
    tracing::warn!("a record on the consent topic is not a consent event; dead-lettered");
}
