//! What a vehicle's owner agreed to, as far as the anonymizer needs it.

use inland_core::Vin;

/// Per-vehicle consent the anonymizer consults. Until the consent view (fed by
/// `inland.consent.v1`) exists, [`NoConsent`] answers: nobody agreed to anything, so
/// location is never kept precise (no tracking by default). A view must answer from
/// memory: it is called for every record.
pub trait ConsentView: Send + Sync + 'static {
    /// Whether the vehicle's owner agreed to precise location for research purposes. A
    /// purpose asking for `precise` location gets `coarse` for any other vehicle.
    fn precise_location(&self, vin: &Vin) -> bool {
        let _ = vin;
        false
    }
}

/// No consent recorded for anyone: the safe default.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoConsent;

impl ConsentView for NoConsent {}
