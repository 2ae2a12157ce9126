//! Every metric of this crate, each with its log line. Nothing here ever sees pixels.

use std::time::Duration;

use metrics::{counter, histogram};

use crate::Error;

/// A frame was anonymized and re-encoded.
pub(crate) fn anonymized(faces: usize, plates: usize, elapsed: Duration) {
    counter!("inland_vision_frames_total", "outcome" => "anonymized").increment(1);
    counter!("inland_vision_objects_total", "class" => "face").increment(faces as u64);
    counter!("inland_vision_objects_total", "class" => "plate").increment(plates as u64);
    histogram!("inland_vision_frame_seconds").record(elapsed.as_secs_f64());
    tracing::debug!(
        faces,
        plates,
        ms = elapsed.as_millis() as u64,
        "frame anonymized"
    );
}

/// A frame was refused; it must go to the dead-letter topic, never on.
pub(crate) fn rejected(error: &Error) {
    counter!("inland_vision_frames_total", "outcome" => "rejected", "reason" => error.reason())
        .increment(1);
    tracing::warn!(reason = error.reason(), %error, "frame rejected");
}

/// Plate candidates from colour that needed a closer look, and how that ended.
pub(crate) fn plate_candidates(
    examined: usize,
    verified: usize,
    unverified_tiny: usize,
    over_limit: usize,
) {
    counter!("inland_vision_plate_candidates_total", "outcome" => "examined")
        .increment(examined as u64);
    counter!("inland_vision_plate_candidates_total", "outcome" => "verified")
        .increment(verified as u64);
    counter!("inland_vision_plate_candidates_total", "outcome" => "tiny_unverified")
        .increment(unverified_tiny as u64);
    counter!("inland_vision_plate_candidates_total", "outcome" => "over_limit")
        .increment(over_limit as u64);
    if over_limit > 0 {
        tracing::warn!(
            examined,
            over_limit,
            "more plate candidates than max_crops: the rest destroyed unverified"
        );
    }
    tracing::trace!(examined, verified, unverified_tiny, "plate candidates");
}

/// The models were loaded into `workers` sets of sessions.
pub(crate) fn loaded(workers: usize, faces: bool, plates: bool, elapsed: Duration) {
    tracing::info!(
        workers,
        faces,
        plates,
        ms = elapsed.as_millis() as u64,
        "vision models loaded"
    );
}
