//! Writing files (`train --out`, `score --output`): only a regular file is ever replaced, no
//! temporary is left behind on failure, and a killed run's old temporaries are removed.

mod cli_common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use cli_common::*;

/// Runs `train --out target` and `score --output target`; both must refuse with `says`.
fn both_refuse(dir: &Path, target: &Path, says: &str) {
    let train = ml_serving(
        dir,
        &["train", "--data", s(&bundled_csv()), "--out", s(target)],
    );
    let (score, _) = score_to(dir, target);
    for (what, out) in [("train", train), ("score", score)] {
        let err = assert_failure(&out);
        assert!(err.contains(says), "{what}: {says:?} missing from {err}");
        assert!(err.contains("refusing to replace it"), "{what}: {err}");
    }
}

fn score_to(dir: &Path, output: &Path) -> (Output, ()) {
    let model = bundled_model();
    let out = ml_serving(
        dir,
        &[
            "score",
            "--model-path",
            s(&model),
            "--input",
            s(&bundled_csv()),
            "--output",
            s(output),
        ],
    );
    (out, ())
}

fn no_temporaries(dir: &Path) {
    let left: Vec<String> = entries(dir)
        .into_iter()
        .filter(|n| n.starts_with(".ml-serving-tmp-"))
        .collect();
    assert!(left.is_empty(), "temporaries left: {left:?}");
}

#[test]
fn a_symbolic_link_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.csv");
    std::fs::write(&real, "keep me\n").unwrap();
    let link = dir.path().join("link.csv");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    both_refuse(dir.path(), &link, "is a symbolic link");
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&real).unwrap(), "keep me\n");
    no_temporaries(dir.path());
}

#[test]
fn a_fifo_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    both_refuse(dir.path(), &fifo, "is a FIFO");
    assert!(fifo.metadata().unwrap().file_type().is_fifo());
    no_temporaries(dir.path());
}

#[test]
fn a_directory_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    std::fs::create_dir(&target).unwrap();
    both_refuse(dir.path(), &target, "is a directory");
    assert!(entries(&target).is_empty());
    no_temporaries(dir.path());
}

/// A device such as /dev/full: as root, a rename would replace the device node itself. The
/// test makes its own node (the same device as /dev/full) so a failure harms nothing shared;
/// without the right to make one (not root) there is nothing to test.
#[test]
fn a_device_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let device = dir.path().join("full");
    let made = Command::new("mknod")
        .arg(&device)
        .args(["c", "1", "7"])
        .output()
        .unwrap();
    if !made.status.success() {
        eprintln!(
            "skipped: cannot make a device node here (not root?): {}",
            String::from_utf8_lossy(&made.stderr)
        );
        return;
    }
    let rdev = device.metadata().unwrap().rdev();
    both_refuse(dir.path(), &device, "is a device");
    let meta = device.metadata().unwrap();
    assert!(meta.file_type().is_char_device());
    assert_eq!(meta.rdev(), rdev);
    no_temporaries(dir.path());
}

#[test]
fn a_regular_file_is_replaced_and_no_temporary_remains() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("scores.csv");
    std::fs::write(&target, "old\n").unwrap();
    let (out, ()) = score_to(dir.path(), &target);
    assert_success(&out);
    assert!(
        std::fs::read_to_string(&target)
            .unwrap()
            .starts_with("id,prediction,label\n")
    );
    no_temporaries(dir.path());
}

#[test]
fn old_temporaries_of_a_killed_run_are_removed_and_live_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join(".ml-serving-tmp-model.dat.gz-killed");
    let live = dir.path().join(".ml-serving-tmp-model.dat.gz-running");
    let other = dir.path().join(".ml-serving-tmp-other.csv-killed");
    for path in [&stale, &live, &other] {
        std::fs::write(path, "partial").unwrap();
    }
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    for path in [&stale, &other] {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
    }
    let model = dir.path().join("model.dat.gz");
    assert_success(&ml_serving(
        dir.path(),
        &["train", "--data", s(&bundled_csv()), "--out", s(&model)],
    ));
    assert!(!stale.exists(), "the killed run's temporary is still there");
    assert!(
        live.exists(),
        "a recent temporary (a run in progress?) was removed"
    );
    assert!(other.exists(), "another target's temporary was touched");
    assert!(model.exists());
}

#[test]
fn a_failed_score_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.csv");
    std::fs::write(&input, with_cell(&bundled_text(), 3, "area_se", "-1")).unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let (out, output) = score_file(&out_dir, &input, &[]);
    assert_failure(&out);
    assert!(!output.exists());
    assert!(entries(&out_dir).is_empty(), "{:?}", entries(&out_dir));
}

#[test]
fn a_full_standard_output_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = bundled_model();
    let out = Command::new(env!("CARGO_BIN_EXE_ml-serving"))
        .args([
            "score",
            "--model-path",
            s(&model),
            "--input",
            s(&bundled_csv()),
        ])
        .current_dir(dir.path())
        .env_remove("MODEL_PATH")
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    let err = assert_failure(&out);
    assert!(err.contains("No space left on device"), "{err}");
}
