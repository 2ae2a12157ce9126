//! Kafka topic names (and in-process bus channel names), versioned like the protobuf
//! packages: a breaking change to a topic's records gets a new topic.

/// Raw uploads as accepted by the gateway. Holds un-anonymized data: short retention.
pub const RAW: &str = "inland.raw.v1";
/// Records outside every protected zone.
pub const GEOFENCED: &str = "inland.geofenced.v1";
/// Anonymized records, the only input the archiver accepts.
pub const ANONYMIZED: &str = "inland.anonymized.v1";
/// Consent events, compacted by subject.
pub const CONSENT: &str = "inland.consent.v1";
/// Records a stage could not process, with the reason; never pixels or positions in logs.
pub const DEAD_LETTER: &str = "inland.deadletter.v1";
/// Erasure requests (pseudonyms of a vehicle that withdrew consent), written by the
/// anonymizer for the archiver. They link pseudonyms across key epochs: short retention.
pub const ERASURE: &str = "inland.erasure.v1";
