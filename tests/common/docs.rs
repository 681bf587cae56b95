//! Running a documentation page's shell blocks as written, with the built binary first on PATH.

use std::path::Path;
use std::process::Command;

/// The ```sh blocks of `markdown` (within the `## ` section titled `section`, when given).
pub fn sh_blocks(markdown: &str, section: Option<&str>) -> Vec<String> {
    blocks(markdown, section, "```sh\n")
}

/// The blocks opened by `fence` (e.g. "```text\n") of `markdown`, within `section` when given.
pub fn blocks(markdown: &str, section: Option<&str>, fence: &str) -> Vec<String> {
    let text = match section {
        Some(title) => {
            let start = markdown.find(title).expect("the section exists");
            let rest = &markdown[start + title.len()..];
            &rest[..rest.find("\n## ").unwrap_or(rest.len())]
        }
        None => markdown,
    };
    text.split(fence)
        .skip(1)
        .map(|b| b[..b.find("```").expect("a closed block")].to_string())
        .collect()
}

/// Runs `script` with bash (`set -euo pipefail`, at most 300 s) in a fresh directory holding
/// links to the repository's folders `links`, with the built binary first on PATH and no
/// server or shard setting inherited; returns its standard output.
pub fn run_script(script: &str, links: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    for name in links {
        std::os::unix::fs::symlink(super::repo(name), dir.path().join(name)).unwrap();
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_ml-serving"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!("set -euo pipefail\n{script}");
    let out = Command::new("timeout")
        .args(["300", "bash", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("MODEL_PATH")
        .env_remove("MODEL_REPOSITORY")
        .env_remove("API_KEY")
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
