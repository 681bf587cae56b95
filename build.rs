//! Build-time code generation, parsed by `protox` (pure Rust) so the build needs no system
//! `protoc`: the V2 gRPC service and the ONNX protobuf messages.

fn main() {
    if let Err(e) = grpc_predict_v2() {
        panic!("{e}");
    }
    compile_onnx_proto();
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

/// `proto/onnx/onnx-ml.proto` -> `$OUT_DIR/onnx.rs`.
fn compile_onnx_proto() {
    let proto = "proto/onnx/onnx-ml.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto/onnx"]).expect("parsing onnx-ml.proto");
    prost_build::Config::new()
        .compile_fds(descriptors)
        .expect("generating the ONNX protobuf code");
}
