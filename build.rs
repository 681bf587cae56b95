//! Build-time code generation: the ONNX protobuf messages (src/onnx/proto.rs includes them).

fn main() {
    compile_onnx_proto();
}

/// `proto/onnx/onnx-ml.proto` -> `$OUT_DIR/onnx.rs`, parsed by protox (no system `protoc`).
fn compile_onnx_proto() {
    let proto = "proto/onnx/onnx-ml.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto/onnx"]).expect("parsing onnx-ml.proto");
    prost_build::Config::new()
        .compile_fds(descriptors)
        .expect("generating the ONNX protobuf code");
}
