//! Build-time code generation: the V2 gRPC service from its `.proto`, compiled by `protox`
//! (pure Rust), so the build needs no system `protoc`.

fn main() {
    if let Err(e) = grpc_predict_v2() {
        panic!("{e}");
    }
}

/// `proto/grpc_predict_v2.proto` -> `$OUT_DIR/inference.rs` (server and client).
fn grpc_predict_v2() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO: &str = "proto/grpc_predict_v2.proto";
    println!("cargo:rerun-if-changed={PROTO}");
    let descriptors = protox::compile([PROTO], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
