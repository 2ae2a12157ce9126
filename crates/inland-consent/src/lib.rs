//! Consent (`inland.consent.v1`): explicit, documented, withdrawable; nothing is granted
//! unless someone grants it.
//!
//! - Events: a grant, a withdrawal (which opens an erasure request) or a restatement, each
//!   carrying the subject's whole state after it, keyed by subject on the compacted topic
//!   `inland.consent.v1`, so compaction keeps exactly what a view needs. [`decode_event`]
//!   reads one from a record payload, on the topic or in the archive's `consent_events`.
//! - [`ConsentView`]: every subject's current consent in memory, fed by a consumer group of
//!   its own from the topic's oldest record, on Kafka or the in-process bus; start-up waits
//!   until it has caught up. Checks ([`ConsentView::allows`]) are one read lock and one map
//!   lookup, without allocating. Default deny.
//! - [`ConsentLedger`]: the ConsentService behind the gateway's API: checks requests,
//!   appends events, and counts its own changes at once.
//! - Erasure: [`erasure_record`] and [`decode_erasure`] for `inland.erasure.v1`, written
//!   by the anonymizer (which holds the pseudonym keys) for every withdrawal.
//! - [`cli`]: `inland consent grant|withdraw|show|history` over gRPC with an operator
//!   certificate.
//!
//! History: the view keeps the events it has read (when asked to). The topic is compacted,
//! so a view started after a subject changed again may miss older events; the archiver
//! keeps every event, and the archive is the complete record for an auditor.

pub mod cli;
mod error;
mod event;
mod follow;
mod ledger;
pub mod metrics;
mod model;
mod report;
mod request;
mod state;
mod view;

pub use error::Error;
pub use event::{SCHEMA_HEADER, decode_erasure, decode_event, erasure_record};
pub use follow::{KafkaEnds, TopicEnds, ViewOptions};
pub use inland_proto::consent::v1 as proto;
pub use ledger::{ConsentLedger, ConsentLog};
pub use model::{CATEGORIES, Principal, SubjectId, category_flag, category_label};
pub use view::ConsentView;
