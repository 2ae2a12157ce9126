//! Compiles proto/ with protox (a pure-Rust protobuf compiler), so building needs no
//! protoc on the machine, and keeps the descriptor set for gRPC server reflection.
use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "inland/ingest/v1/ingest.proto",
    "inland/pipeline/v1/records.proto",
    "inland/pipeline/v1/anonymized.proto",
    "inland/consent/v1/consent.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not baked in when it is built: a target directory shared
    // by several checkouts reuses one build script for all of them.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, [&root])?;
    std::fs::write(out.join("inland_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .codec_path("crate::codec::BytesCodec")
        .bytes(".inland.ingest.v1.CameraFrame.jpeg")
        .bytes(".inland.pipeline.v1.AnonymizedFrame.jpeg")
        .compile_fds(fds)?;
    // The gateway's server of the same service, taking uploads with their telemetry still
    // encoded (src/ingest/v1/in_place.rs); the reflection descriptors stay the proto's.
    let method = |name: &str, route: &str, input: &str, output: &str| {
        tonic_build::manual::Method::builder()
            .name(name)
            .route_name(route)
            .input_type(format!("crate::ingest::v1::in_place::{input}"))
            .output_type(format!("crate::ingest::v1::{output}"))
            .codec_path("crate::codec::BytesCodec")
    };
    let ingest = tonic_build::manual::Service::builder()
        .name("VehicleIngest")
        .package("inland.ingest.v1")
        .method(
            method("upload", "Upload", "UploadRequest", "UploadAck")
                .client_streaming()
                .server_streaming()
                .build(),
        )
        .method(
            method(
                "upload_batch",
                "UploadBatch",
                "UploadBatchRequest",
                "UploadBatchResponse",
            )
            .build(),
        )
        .build();
    tonic_build::manual::Builder::new()
        .build_client(false)
        .compile(&[ingest]);
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
