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
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, [&root])?;
    std::fs::write(out.join("inland_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .bytes(".inland.ingest.v1.CameraFrame.jpeg")
        .bytes(".inland.pipeline.v1.AnonymizedFrame.jpeg")
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
