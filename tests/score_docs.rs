//! The batch-scoring documentation is true: the `sh` blocks of docs/batch.md and of the README's
//! "Score a file offline" run as written. (The Indexed Job's arguments are checked with the
//! other manifests in tests/k8s_manifests.rs.)

mod common;

use common::docs::{run_script, sh_blocks};
use common::repo;

fn run_blocks(blocks: &[String]) -> String {
    run_script(&blocks.join("\n"), &["data", "model"])
}

#[test]
fn the_batch_page_runs_as_written() {
    let page = std::fs::read_to_string(repo("docs/batch.md")).unwrap();
    let blocks = sh_blocks(&page, None);
    assert!(blocks.len() >= 2, "{blocks:?}");
    let out = run_blocks(&blocks);
    assert!(out.contains("the parts make the whole"), "{out}");
    // The scores the page shows are the ones printed.
    let shown = page
        .split("```text\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the page shows the first rows with their scores");
    assert!(out.contains(shown), "{out}\ndoes not hold\n{shown}");
}

#[test]
fn the_readme_scoring_commands_run_as_written() {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let blocks: Vec<String> = sh_blocks(&readme, Some("## Score a file offline"))
        .into_iter()
        .map(|b| b.replace("cargo run --release -- ", "ml-serving "))
        .collect();
    assert!(!blocks.is_empty());
    run_blocks(&blocks);
}
