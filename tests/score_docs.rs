//! The batch-scoring documentation is true: the `sh` blocks of docs/batch.md and of the README's
//! "Score a file offline" run as written, and the Indexed Job's arguments are ones `score`
//! accepts.

use std::path::Path;
use std::process::Command;

use clap::Parser;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The ```sh blocks of `markdown` (within `section` when given).
fn sh_blocks(markdown: &str, section: Option<&str>) -> Vec<String> {
    let text = match section {
        Some(title) => {
            let start = markdown.find(title).expect("the section exists");
            let rest = &markdown[start + title.len()..];
            &rest[..rest.find("\n## ").unwrap_or(rest.len())]
        }
        None => markdown,
    };
    text.split("```sh\n")
        .skip(1)
        .map(|b| b[..b.find("```").expect("a closed block")].to_string())
        .collect()
}

/// Runs the blocks in one shell, in a directory holding the repository's data and model, with
/// the built binary first on PATH; returns its standard output.
fn run_blocks(blocks: &[String]) -> String {
    let dir = tempfile::tempdir().unwrap();
    for name in ["data", "model"] {
        std::os::unix::fs::symlink(repo(name), dir.path().join(name)).unwrap();
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_ml-serving"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!("set -euo pipefail\n{}", blocks.join("\n"));
    let out = Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("MODEL_PATH")
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("SHARD_COUNT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\nfailed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
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

#[test]
fn the_indexed_jobs_arguments_are_accepted() {
    let job = std::fs::read_to_string(repo("deploy/k8s/batch/job.yaml")).unwrap();
    // The `args:` list: the `- ` items right after it.
    let after = &job[job.find("args:\n").expect("the Job has args") + "args:\n".len()..];
    let args: Vec<String> = after
        .lines()
        .map_while(|l| l.trim_start().strip_prefix("- "))
        .map(|a| a.replace("$(JOB_COMPLETION_INDEX)", "0"))
        .collect();
    assert_eq!(args.first().map(String::as_str), Some("score"), "{args:?}");
    let parsed = ml_serving::cli::Cli::try_parse_from(
        std::iter::once("ml-serving".to_string()).chain(args.iter().cloned()),
    );
    assert!(parsed.is_ok(), "{args:?}: {}", parsed.unwrap_err());
    // SHARD_COUNT must agree with the number of completions.
    let value_after = |key: &str| -> String {
        let at = job.find(key).unwrap_or_else(|| panic!("{key} in job.yaml"));
        job[at + key.len()..]
            .lines()
            .next()
            .unwrap()
            .trim()
            .trim_matches('"')
            .to_string()
    };
    let completions = value_after("completions:");
    let shard_count = {
        let at = job.find("name: SHARD_COUNT").unwrap();
        let rest = &job[at..];
        let v = rest.find("value:").unwrap();
        rest[v + "value:".len()..]
            .lines()
            .next()
            .unwrap()
            .trim()
            .trim_matches('"')
            .to_string()
    };
    assert_eq!(completions, shard_count);
    assert_eq!(value_after("parallelism:"), completions);
}
