//! Build-time code generation, parsed by `protox` (pure Rust) so the build needs no system
//! `protoc`: the V2 gRPC service and the ONNX protobuf messages.

fn main() {
    if let Err(e) = grpc_predict_v2() {
        panic!("{e}");
    }
    compile_onnx_proto();
    link_order();
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

/// Release builds of `ml-serving` lay out first, side by side, the functions that starting
/// `serve` and answering its routes run (`link/serve-functions.txt`, made by
/// `scripts/link-order`), so that the server touches a few contiguous pages of its 14 MB of
/// code instead of pages all over it: less resident memory, fewer page faults at start. Only
/// the order of functions changes. The option is LLD's, Rust's default linker on Linux.
/// `ML_SERVING_LINK_MAP=<file>` also writes the link map there (for `scripts/link-order`).
fn link_order() {
    const FILE: &str = "link/serve-functions.txt";
    println!("cargo:rerun-if-changed={FILE}");
    println!("cargo:rerun-if-env-changed=ML_SERVING_LINK_MAP");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if !(release && linux) {
        return;
    }
    let arg = |arg: &str| println!("cargo:rustc-link-arg-bin=ml-serving={arg}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(FILE);
    if path.is_file() {
        arg(&format!("-Wl,--symbol-ordering-file={}", path.display()));
        // Functions renamed or gone since the list was made are skipped.
        arg("-Wl,--no-warn-symbol-ordering");
    } else {
        println!("cargo:warning={FILE} is missing: the functions of serve are not laid out");
    }
    // Relative relocations packed (DT_RELR): 9 KB for the loader to read at start instead of
    // 920 KB, every page of which stayed resident. The binary then needs glibc 2.36 or newer,
    // so only when it is built natively on one.
    if native_glibc_at_least(2, 36) {
        arg("-Wl,-z,pack-relative-relocs");
    }
    if let Ok(map) = std::env::var("ML_SERVING_LINK_MAP") {
        arg(&format!("-Wl,-Map={map}"));
    }
}

/// Whether this build's target is the machine it runs on, with glibc `major.minor` or newer.
fn native_glibc_at_least(major: u32, minor: u32) -> bool {
    let (Ok(host), Ok(target)) = (std::env::var("HOST"), std::env::var("TARGET")) else {
        return false;
    };
    if host != target || !target.ends_with("-linux-gnu") {
        return false;
    }
    let Ok(out) = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
    else {
        return false;
    };
    // "glibc 2.36"
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .trim()
        .strip_prefix("glibc ")
        .unwrap_or("")
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    found >= (major, minor)
}
