//! Generated code for Inland's protobuf packages. One module per versioned package.

pub mod codec;
pub mod wire;

pub mod ingest {
    pub mod v1 {
        tonic::include_proto!("inland.ingest.v1");

        /// The gateway's server, uploads taken with their telemetry still encoded.
        pub mod in_place;
    }
}

pub mod pipeline {
    pub mod v1 {
        tonic::include_proto!("inland.pipeline.v1");

        /// The schema header value for records on `inland.raw.v1`.
        pub const RAW_RECORD_SCHEMA: &str = "inland.pipeline.v1.RawRecord";
        /// The schema header value for records on `inland.anonymized.v1`.
        pub const ANONYMIZED_RECORD_SCHEMA: &str = "inland.pipeline.v1.AnonymizedRecord";
    }
}

pub mod consent {
    pub mod v1 {
        tonic::include_proto!("inland.consent.v1");

        /// The schema header value for records on `inland.consent.v1`.
        pub const CONSENT_EVENT_SCHEMA: &str = "inland.consent.v1.ConsentEvent";
        /// The schema header value for records on `inland.erasure.v1`.
        pub const ERASURE_REQUEST_SCHEMA: &str = "inland.consent.v1.ErasureRequest";
    }
}

/// The encoded descriptor set of every package, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/inland_descriptor.bin"));

pub use prost_types::Timestamp;
