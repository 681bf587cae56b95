//! docs/onnx.md's "Serve it" runs as written and prints what the page shows.

mod common;

use common::docs::{blocks, run_script, sh_blocks};

#[test]
fn the_serve_it_section_of_docs_onnx_md_is_true() {
    let doc = std::fs::read_to_string(common::repo("docs/onnx.md")).unwrap();
    let section = Some("## Serve it");
    let port = common::free_port();
    let script = sh_blocks(&doc, section)[0].replace("8010", &port.to_string());
    let out = run_script(&script, &["tests"]);
    assert_eq!(out, blocks(&doc, section, "```text\n")[0]);
}
