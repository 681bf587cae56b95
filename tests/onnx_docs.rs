//! docs/onnx.md's "Serve it" runs as written and prints what the page shows.

use std::path::Path;
use std::process::Command;

#[test]
fn the_serve_it_section_of_docs_onnx_md_is_true() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/onnx.md")).unwrap();
    let section = &doc[doc.find("## Serve it").unwrap()..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let block = |fence: &str| {
        let start = section.find(fence).expect("the block exists") + fence.len();
        section[start..start + section[start..].find("```").unwrap()].to_string()
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = block("```sh\n").replace("8010", &port.to_string());
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root.join("tests"), dir.path().join("tests")).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_ml-serving"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("timeout")
        .args(["60", "bash", "-c", &format!("set -euo pipefail\n{script}")])
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("MODEL_PATH")
        .env_remove("API_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\nfailed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), block("```text\n"));
}
